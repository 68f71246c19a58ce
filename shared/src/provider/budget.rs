//! One request budget per provider and API key, shared by every fetch-batch instance.
//!
//! Yahoo limits the caller's IP and Polygon the API key, not one process: with N concurrent
//! instances each pacing itself, the provider sees N times the rate and answers 429s. So the
//! budget lives outside the instances (in PostgreSQL: the `db::rate_budget` adapter) and every
//! request reserves its slot there first. The [`RateGate`] in front of each adapter turns a
//! reservation into either a short sleep (the slot is near) or [`ProviderError::Throttled`] (the
//! slot is far: fetch-batch commits and returns `rate_limited`, and the state machine's Wait state
//! waits instead of a billed Lambda sleeping). A 429 pauses the budget for everyone until the
//! provider's `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::ProviderError;
use crate::error::BackfillError;
use crate::model::ProviderKind;

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reservation {
    /// The slot is this caller's: send after `wait`.
    Granted { wait: Duration },
    /// The next free slot is `wait` away, more than the caller may sleep: nothing was reserved.
    Far { wait: Duration },
}

/// The port: the shared budget of one provider (and key).
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Reserves the next request slot if it is at most `max_wait` away.
    async fn reserve(&self, max_wait: Duration) -> Result<Reservation, BackfillError>;

    /// The provider answered 429: nobody sends for `wait`.
    async fn pause(&self, wait: Duration) -> Result<(), BackfillError>;
}

/// The name a budget is kept under: the provider, and for a keyed provider a hash of its key
/// (two deployments with different Polygon keys have two budgets; the key itself is never
/// stored). FNV-1a, because the name must be the same in every instance and every build.
pub fn budget_name(kind: ProviderKind, api_key: Option<&SecretString>) -> String {
    match api_key {
        None => kind.to_string(),
        Some(key) => {
            let hash = key
                .expose_secret()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
                });
            format!("{kind}:{hash:016x}")
        }
    }
}

/// The interval between two requests at `per_minute` requests a minute (0 counts as 1).
pub fn interval(per_minute: u32) -> Duration {
    Duration::from_secs_f64(60.0 / f64::from(per_minute.max(1)))
}

/// Stands in front of an adapter's every request.
pub struct RateGate {
    budget: Arc<dyn RateBudget>,
    /// The longest a request may sleep for its slot (`RATE_BUDGET_MAX_WAIT_SECONDS`).
    max_wait: Duration,
    /// How long a 429 without `Retry-After` pauses the budget.
    default_pause: Duration,
}

impl RateGate {
    pub fn new(budget: Arc<dyn RateBudget>, max_wait: Duration, default_pause: Duration) -> Self {
        Self {
            budget,
            max_wait,
            default_pause,
        }
    }

    /// A gate that never waits (tests that are about something else).
    pub fn unlimited() -> Self {
        Self::new(Arc::new(Unlimited), Duration::ZERO, Duration::ZERO)
    }

    /// Waits for this request's slot, or says how far away the next one is.
    pub async fn acquire(&self) -> Result<(), ProviderError> {
        match self.budget.reserve(self.max_wait).await {
            Ok(Reservation::Granted { wait }) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Ok(Reservation::Far { wait }) => Err(ProviderError::Throttled { wait }),
            // The budget is in the database: when it cannot be reached, nothing can be stored
            // either. Transient: retried with the other faults.
            Err(e) => Err(ProviderError::Unavailable(format!(
                "the shared request budget is unreachable: {e}"
            ))),
        }
    }

    /// The provider answered 429: pauses the budget for everyone until its `Retry-After`, or
    /// for the configured pause when it sent none. Best effort: the 429 itself is reported to
    /// the caller either way.
    pub async fn limited(&self, retry_after: Option<Duration>) {
        let wait = retry_after.unwrap_or(self.default_pause);
        if let Err(e) = self.budget.pause(wait).await {
            tracing::warn!(error = %e, "could not pause the shared request budget");
        }
    }
}

/// No limit at all.
struct Unlimited;

#[async_trait]
impl RateBudget for Unlimited {
    async fn reserve(&self, _max_wait: Duration) -> Result<Reservation, BackfillError> {
        Ok(Reservation::Granted {
            wait: Duration::ZERO,
        })
    }

    async fn pause(&self, _wait: Duration) -> Result<(), BackfillError> {
        Ok(())
    }
}

/// A budget that never waits and remembers what it was asked: a fake of the port for tests of
/// the adapters (every request reserves exactly one slot; a 429 pauses with its `Retry-After`).
#[derive(Default)]
pub struct RecordingBudget {
    reserved: std::sync::atomic::AtomicU32,
    pauses: std::sync::Mutex<Vec<Duration>>,
}

impl RecordingBudget {
    pub fn reserved(&self) -> u32 {
        self.reserved.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn pauses(&self) -> Vec<Duration> {
        self.pauses.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl RateBudget for RecordingBudget {
    async fn reserve(&self, _max_wait: Duration) -> Result<Reservation, BackfillError> {
        self.reserved
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Reservation::Granted {
            wait: Duration::ZERO,
        })
    }

    async fn pause(&self, wait: Duration) -> Result<(), BackfillError> {
        if let Ok(mut pauses) = self.pauses.lock() {
            pauses.push(wait);
        }
        Ok(())
    }
}

/// The same budget kept in this process's memory: a fake of the port for tests and tools that
/// run one process. The rule is the PostgreSQL adapter's (`db::rate_budget`): a slot every
/// `interval`, never before a pause ends, reserved only when it is within `max_wait`.
pub struct LocalRateBudget {
    interval: Duration,
    state: Mutex<LocalState>,
}

struct LocalState {
    next_slot: Instant,
    paused_until: Instant,
}

impl LocalRateBudget {
    pub fn new(per_minute: u32) -> Self {
        let now = Instant::now();
        Self {
            interval: interval(per_minute),
            state: Mutex::new(LocalState {
                next_slot: now,
                paused_until: now,
            }),
        }
    }
}

#[async_trait]
impl RateBudget for LocalRateBudget {
    async fn reserve(&self, max_wait: Duration) -> Result<Reservation, BackfillError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let slot = state.next_slot.max(state.paused_until).max(now);
        let wait = slot - now;
        if wait > max_wait {
            return Ok(Reservation::Far { wait });
        }
        state.next_slot = slot + self.interval;
        Ok(Reservation::Granted { wait })
    }

    async fn pause(&self, wait: Duration) -> Result<(), BackfillError> {
        let mut state = self.state.lock().await;
        state.paused_until = state.paused_until.max(Instant::now() + wait);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_minute: u32, max_wait: Duration) -> Arc<RateGate> {
        Arc::new(RateGate::new(
            Arc::new(LocalRateBudget::new(per_minute)),
            max_wait,
            Duration::from_secs(30),
        ))
    }

    /// Every acquisition's (virtual) time, from `n` concurrent acquirers taking `each` slots.
    async fn acquisitions(gate: Arc<RateGate>, n: usize, each: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    for _ in 0..each {
                        gate.acquire().await.unwrap();
                        times.push(start.elapsed());
                    }
                    times
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        all
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_acquirers_share_one_rate() {
        // 60 a minute: one a second, whoever asks.
        let times = acquisitions(gate(60, Duration::from_secs(3600)), 8, 5).await;
        assert_eq!(times.len(), 40);
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(999), "{pair:?}");
        }
        let last = *times.last().unwrap();
        assert!(last >= Duration::from_secs(39) && last < Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_acquirer() {
        let gate = gate(600, Duration::from_secs(3600));
        gate.acquire().await.unwrap();
        gate.limited(Some(Duration::from_secs(7))).await;
        let times = acquisitions(gate.clone(), 4, 2).await;
        assert!(times[0] >= Duration::from_secs(7), "{times:?}");
        // Without Retry-After: the configured pause (30 s).
        gate.limited(None).await;
        let start = Instant::now();
        gate.acquire().await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_far_slot_is_not_waited_for_nor_taken() {
        // One every 10 s; a caller may sleep 15 s at most.
        let gate = gate(6, Duration::from_secs(15));
        let start = Instant::now();
        gate.acquire().await.unwrap(); // now
        gate.acquire().await.unwrap(); // +10 s
        gate.acquire().await.unwrap(); // +20 s
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        gate.limited(Some(Duration::from_secs(60))).await;
        match gate.acquire().await {
            Err(ProviderError::Throttled { wait }) => {
                assert_eq!(wait, Duration::from_secs(60));
            }
            other => panic!("expected Throttled, got {other:?}"),
        }
        // Nothing was taken: after the pause the next caller gets the pause's end.
        tokio::time::advance(Duration::from_secs(60)).await;
        let before = Instant::now();
        gate.acquire().await.unwrap();
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[test]
    fn budget_names_hash_the_key_and_never_show_it() {
        assert_eq!(budget_name(ProviderKind::Yahoo, None), "yahoo");
        let a = budget_name(ProviderKind::Polygon, Some(&SecretString::from("key-one")));
        let b = budget_name(ProviderKind::Polygon, Some(&SecretString::from("key-two")));
        assert!(a.starts_with("polygon:") && a.len() == "polygon:".len() + 16);
        assert_ne!(a, b);
        assert!(!a.contains("key-one"));
        assert_eq!(
            a,
            budget_name(ProviderKind::Polygon, Some(&SecretString::from("key-one")))
        );
    }
}
