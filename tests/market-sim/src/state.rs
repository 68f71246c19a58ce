//! Shared server state: the knobs, the rate-limit windows and the request log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::generator::Provider;
use crate::knobs::{Knobs, RetryAfter, WindowKind};
use crate::polygon::GROUPED_PATH_PREFIX;

/// Where a request went, as the request log groups it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Provider { provider: Provider, symbol: String },
    Other,
}

impl Route {
    /// Classifies a request path. Symbols are taken as sent (percent-decoding is not needed for
    /// the symbols tests use).
    pub fn of(path: &str) -> Route {
        let symbol_after = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.split('/').next())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(symbol) = symbol_after("/v8/finance/chart/") {
            Route::Provider {
                provider: Provider::Yahoo,
                symbol,
            }
        } else if path.starts_with(GROUPED_PATH_PREFIX) {
            // One request for every ticker of a day: logged under the symbol `grouped`.
            Route::Provider {
                provider: Provider::Polygon,
                symbol: "grouped".to_string(),
            }
        } else if let Some(symbol) = symbol_after("/v2/aggs/ticker/") {
            Route::Provider {
                provider: Provider::Polygon,
                symbol,
            }
        } else {
            Route::Other
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Route::Provider { provider, .. } => provider.as_str(),
            Route::Other => "other",
        }
    }

    fn symbol(&self) -> Option<&str> {
        match self {
            Route::Provider { symbol, .. } => Some(symbol),
            Route::Other => None,
        }
    }
}

/// The answer of the rate limiter for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accepted,
    /// Rejected; `retry_after` is the header value to send, if any.
    Limited {
        retry_after: Option<u64>,
    },
}

/// One provider's rate-limit state, of the kind its `rate_limit` asks for.
#[derive(Debug)]
enum Window {
    Fixed {
        started: Instant,
        accepted: u32,
    },
    /// When each request still inside the window was accepted, oldest first.
    Sliding {
        accepted: VecDeque<Instant>,
    },
}

impl Window {
    fn new(kind: WindowKind, now: Instant) -> Window {
        match kind {
            WindowKind::Fixed => Window::Fixed {
                started: now,
                accepted: 0,
            },
            WindowKind::Sliding => Window::Sliding {
                accepted: VecDeque::new(),
            },
        }
    }

    fn kind(&self) -> WindowKind {
        match self {
            Window::Fixed { .. } => WindowKind::Fixed,
            Window::Sliding { .. } => WindowKind::Sliding,
        }
    }

    /// Accepts a request (`None`) or says how long until one would be accepted.
    fn admit(&mut self, requests: u32, len: Duration, now: Instant) -> Option<Duration> {
        match self {
            Window::Fixed { started, accepted } => {
                if now.duration_since(*started) >= len {
                    *started = now;
                    *accepted = 0;
                }
                if *accepted < requests {
                    *accepted += 1;
                    return None;
                }
                Some(len.saturating_sub(now.duration_since(*started)))
            }
            Window::Sliding { accepted } => {
                while accepted
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= len)
                {
                    accepted.pop_front();
                }
                if accepted.len() < requests as usize {
                    accepted.push_back(now);
                    return None;
                }
                // With a limit of 0 nothing is ever accepted: a whole window is as good a wait
                // as any.
                Some(accepted.front().map_or(len, |oldest| {
                    len.saturating_sub(now.duration_since(*oldest))
                }))
            }
        }
    }
}

#[derive(Debug, Default)]
struct Log {
    /// Provider requests since start or reset (drives `fail_every_nth`).
    provider_requests: u64,
    windows: HashMap<Provider, Window>,
    by_route: BTreeMap<(Route, u16), u64>,
    by_path: BTreeMap<(String, u16), u64>,
    /// Requests the rate limiter answered with 429, per provider.
    rate_limited: BTreeMap<Provider, u64>,
    last_user_agent: BTreeMap<Provider, String>,
    request_ids: u64,
}

#[derive(Debug)]
pub struct SimState {
    initial: Knobs,
    knobs: Mutex<Knobs>,
    log: Mutex<Log>,
}

/// A poisoned lock only means another handler panicked mid-update; the counters are still usable
/// and a test server should keep answering.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `GET /__admin/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestsReport {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_route: Vec<RouteCount>,
    pub by_path: Vec<PathCount>,
    /// Requests the rate limiter refused (429), per provider (`yahoo`, `polygon`); a provider
    /// never limited is absent. `by_status["429"]` also counts a `fail_status` of 429.
    pub rate_limited: BTreeMap<String, u64>,
    /// The `User-Agent` of the latest request per provider.
    pub last_user_agent: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteCount {
    /// `yahoo`, `polygon` or `other`.
    pub route: String,
    pub symbol: Option<String>,
    pub status: u16,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathCount {
    pub path: String,
    pub status: u16,
    pub count: u64,
}

impl SimState {
    pub fn new(knobs: Knobs) -> Self {
        Self {
            initial: knobs.clone(),
            knobs: Mutex::new(knobs),
            log: Mutex::new(Log::default()),
        }
    }

    pub fn knobs(&self) -> Knobs {
        lock(&self.knobs).clone()
    }

    /// Replaces the knobs. Rate-limit windows restart so a new limit applies from now.
    pub fn set_knobs(&self, knobs: Knobs) {
        *lock(&self.knobs) = knobs;
        lock(&self.log).windows.clear();
    }

    /// Back to the knobs the server started with, and empty counters.
    pub fn reset(&self) {
        *lock(&self.knobs) = self.initial.clone();
        *lock(&self.log) = Log::default();
    }

    /// Counts a provider request and returns its 1-based sequence number.
    pub fn next_provider_request(&self) -> u64 {
        let mut log = lock(&self.log);
        log.provider_requests += 1;
        log.provider_requests
    }

    pub fn next_request_id(&self) -> String {
        let mut log = lock(&self.log);
        log.request_ids += 1;
        format!(
            "{:032x}",
            0x5e1d_0000_0000_0000_0000_u128 + u128::from(log.request_ids)
        )
    }

    /// The rate limiter, one window per provider: a fixed window started by the first request
    /// after the previous window ended, or a sliding window over the accepted requests' times
    /// (see [`WindowKind`]).
    pub fn admit(&self, provider: Provider, knobs: &Knobs) -> Admission {
        self.admit_at(provider, knobs, Instant::now())
    }

    fn admit_at(&self, provider: Provider, knobs: &Knobs, now: Instant) -> Admission {
        let Some(limit) = knobs.rate_limit else {
            return Admission::Accepted;
        };
        let window_len = Duration::from_secs(limit.window_seconds.max(1));
        let mut log = lock(&self.log);
        let window = log
            .windows
            .entry(provider)
            .or_insert_with(|| Window::new(limit.kind, now));
        if window.kind() != limit.kind {
            *window = Window::new(limit.kind, now);
        }
        let Some(remaining) = window.admit(limit.requests, window_len, now) else {
            return Admission::Accepted;
        };
        *log.rate_limited.entry(provider).or_default() += 1;
        // Rounded up: coming back after the advertised wait must find room in the window.
        let until_reset = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        let retry_after = match limit.retry_after {
            RetryAfter::UntilReset => Some(until_reset.max(1)),
            RetryAfter::None => None,
            RetryAfter::Fixed(secs) => Some(secs),
        };
        Admission::Limited { retry_after }
    }

    pub fn record(&self, route: Route, path: &str, status: u16, user_agent: Option<String>) {
        let mut log = lock(&self.log);
        if let (Route::Provider { provider, .. }, Some(ua)) = (&route, user_agent) {
            log.last_user_agent.insert(*provider, ua);
        }
        *log.by_route.entry((route, status)).or_default() += 1;
        *log.by_path.entry((path.to_string(), status)).or_default() += 1;
    }

    /// Requests whose path starts with `path_prefix`, with `status` if given.
    pub fn request_count(&self, path_prefix: &str, status: Option<u16>) -> u64 {
        lock(&self.log)
            .by_path
            .iter()
            .filter(|((path, s), _)| {
                path.starts_with(path_prefix) && status.is_none_or(|want| *s == want)
            })
            .map(|(_, n)| n)
            .sum()
    }

    pub fn last_user_agent(&self, provider: Provider) -> Option<String> {
        lock(&self.log).last_user_agent.get(&provider).cloned()
    }

    pub fn report(&self) -> RequestsReport {
        let log = lock(&self.log);
        let mut by_status = BTreeMap::new();
        let mut total = 0;
        for ((_, status), n) in &log.by_route {
            total += n;
            *by_status.entry(status.to_string()).or_default() += n;
        }
        RequestsReport {
            total,
            by_status,
            by_route: log
                .by_route
                .iter()
                .map(|((route, status), n)| RouteCount {
                    route: route.name().to_string(),
                    symbol: route.symbol().map(str::to_string),
                    status: *status,
                    count: *n,
                })
                .collect(),
            by_path: log
                .by_path
                .iter()
                .map(|((path, status), n)| PathCount {
                    path: path.clone(),
                    status: *status,
                    count: *n,
                })
                .collect(),
            rate_limited: log
                .rate_limited
                .iter()
                .map(|(p, n)| (p.as_str().to_string(), *n))
                .collect(),
            last_user_agent: log
                .last_user_agent
                .iter()
                .map(|(p, ua)| (p.as_str().to_string(), ua.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::RateLimit;

    fn limited(requests: u32, retry_after: RetryAfter) -> Knobs {
        Knobs {
            rate_limit: Some(RateLimit {
                requests,
                window_seconds: 60,
                retry_after,
                kind: WindowKind::Fixed,
            }),
            ..Knobs::default()
        }
    }

    fn limit_of(kind: WindowKind, requests: u32, window_seconds: u64) -> Knobs {
        Knobs {
            rate_limit: Some(RateLimit {
                requests,
                window_seconds,
                retry_after: RetryAfter::UntilReset,
                kind,
            }),
            ..Knobs::default()
        }
    }

    fn retry_after(admission: Admission) -> Option<u64> {
        match admission {
            Admission::Limited { retry_after } => retry_after,
            Admission::Accepted => panic!("expected a 429, the request was accepted"),
        }
    }

    #[test]
    fn a_fixed_window_starts_afresh_after_its_length_so_a_boundary_lets_twice_the_limit_through() {
        let knobs = limit_of(WindowKind::Fixed, 2, 10);
        let state = SimState::new(knobs.clone());
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(0.0)),
            Admission::Accepted
        );
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(9.0)),
            Admission::Accepted
        );
        // 9.5 s into the window: 0.5 s left, rounded up.
        assert_eq!(
            retry_after(state.admit_at(Provider::Polygon, &knobs, at(9.5))),
            Some(1)
        );
        // The window that started at 0 ends at 10: two more at once, four within 1.5 s.
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(10.0)),
            Admission::Accepted
        );
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(10.5)),
            Admission::Accepted
        );
        assert_eq!(
            retry_after(state.admit_at(Provider::Polygon, &knobs, at(11.0))),
            Some(9)
        );
    }

    #[test]
    fn a_sliding_window_admits_at_most_the_limit_in_any_interval_of_its_length() {
        let knobs = limit_of(WindowKind::Sliding, 2, 10);
        let state = SimState::new(knobs.clone());
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(0.0)),
            Admission::Accepted
        );
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(9.0)),
            Admission::Accepted
        );
        // The oldest (at 0) leaves at 10: 0.5 s from 9.5, rounded up.
        assert_eq!(
            retry_after(state.admit_at(Provider::Polygon, &knobs, at(9.5))),
            Some(1)
        );
        // Refused requests do not count: the one at 0 has left, the one at 9 is still in.
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(10.0)),
            Admission::Accepted
        );
        // No boundary burst, unlike the fixed window: at 10.5 the window holds 9 and 10 …
        // and the wait is until 9 leaves, at 19.
        assert_eq!(
            retry_after(state.admit_at(Provider::Polygon, &knobs, at(10.5))),
            Some(9)
        );
        assert_eq!(
            retry_after(state.admit_at(Provider::Polygon, &knobs, at(18.2))),
            Some(1)
        );
        assert_eq!(
            state.admit_at(Provider::Polygon, &knobs, at(19.0)),
            Admission::Accepted
        );
        // Per provider, as the fixed window.
        assert_eq!(
            state.admit_at(Provider::Yahoo, &knobs, at(19.0)),
            Admission::Accepted
        );
        // A limit of 0 refuses everything and says to come back after a whole window.
        let none = limit_of(WindowKind::Sliding, 0, 10);
        let state = SimState::new(none.clone());
        assert_eq!(
            retry_after(state.admit_at(Provider::Yahoo, &none, at(20.0))),
            Some(10)
        );
    }

    #[test]
    fn the_request_report_counts_the_limiters_429s_per_provider() {
        let knobs = limit_of(WindowKind::Sliding, 1, 60);
        let state = SimState::new(knobs.clone());
        assert_eq!(state.admit(Provider::Polygon, &knobs), Admission::Accepted);
        for _ in 0..3 {
            assert!(matches!(
                state.admit(Provider::Polygon, &knobs),
                Admission::Limited { .. }
            ));
        }
        let report = state.report();
        assert_eq!(report.rate_limited.get("polygon"), Some(&3));
        assert_eq!(report.rate_limited.get("yahoo"), None);
        state.reset();
        assert!(state.report().rate_limited.is_empty());
    }

    #[test]
    fn the_limit_admits_n_requests_per_window_and_per_provider() {
        let knobs = limited(2, RetryAfter::UntilReset);
        let state = SimState::new(knobs.clone());
        assert_eq!(state.admit(Provider::Yahoo, &knobs), Admission::Accepted);
        assert_eq!(state.admit(Provider::Yahoo, &knobs), Admission::Accepted);
        let Admission::Limited {
            retry_after: Some(secs),
        } = state.admit(Provider::Yahoo, &knobs)
        else {
            panic!("third request should be limited with a Retry-After");
        };
        assert!((59..=60).contains(&secs), "{secs}");
        assert_eq!(state.admit(Provider::Polygon, &knobs), Admission::Accepted);
    }

    #[test]
    fn retry_after_can_be_fixed_or_absent() {
        for (mode, want) in [(RetryAfter::Fixed(7), Some(7)), (RetryAfter::None, None)] {
            let knobs = limited(0, mode);
            let state = SimState::new(knobs.clone());
            assert_eq!(
                state.admit(Provider::Polygon, &knobs),
                Admission::Limited { retry_after: want }
            );
        }
    }

    #[test]
    fn routes_are_classified_by_provider_and_symbol() {
        assert_eq!(
            Route::of("/v8/finance/chart/BRK-B"),
            Route::Provider {
                provider: Provider::Yahoo,
                symbol: "BRK-B".into()
            }
        );
        assert_eq!(
            Route::of("/v2/aggs/ticker/AAPL/range/1/hour/1/2"),
            Route::Provider {
                provider: Provider::Polygon,
                symbol: "AAPL".into()
            }
        );
        assert_eq!(Route::of("/favicon.ico"), Route::Other);
    }
}
