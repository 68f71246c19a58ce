//! The provider adapters' tests (provider_yahoo.rs, provider_polygon.rs,
//! provider_polygon_grouped.rs): a market-sim over loopback, the adapters pointed at it, the
//! windows they ask for, market-sim's ground truth in the adapters' terms, and a budget that
//! records its use.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use market_sim::{
    GroundTruthBar, Interval as SimInterval, Knobs, Provider, RateLimit, RetryAfter, RunningSim,
    SimConfig,
};
use secrecy::SecretString;
use shared::model::{Bar, DateRange, Interval, ProviderKind, Symbol};
use shared::provider::budget::{RateGate, RecordingBudget};
use shared::provider::polygon::PolygonProvider;
use shared::provider::yahoo::YahooProvider;
use shared::provider::{http_client, FetchedBars, PriceProvider, ProviderError};
use url::Url;

/// The key market-sim expects by default.
pub const POLYGON_KEY: &str = "test-key";
/// How long an adapter waits for an answer unless a test says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn range(start: &str, end: &str) -> DateRange {
    DateRange::new(day(start), day(end)).unwrap()
}

/// Monday 9 to Wednesday 11 March 2026: the window most tests ask for.
pub fn three_days() -> DateRange {
    range("2026-03-09", "2026-03-11")
}

pub fn symbol(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

pub async fn sim(knobs: Knobs) -> RunningSim {
    market_sim::spawn(SimConfig::with_knobs(knobs))
        .await
        .unwrap()
}

/// Knobs under which every request is answered 429 (no request in a 60 s window is allowed).
pub fn rate_limited(retry_after: RetryAfter) -> Knobs {
    Knobs {
        rate_limit: Some(RateLimit {
            requests: 0,
            window_seconds: 60,
            retry_after,
            kind: Default::default(),
        }),
        ..Knobs::default()
    }
}

/// An `http://` base URL where every connection is refused (a port that was free a moment ago
/// and has no listener now).
pub fn refused_base_url() -> Url {
    Url::parse(&test_support::net::refused_http_url()).unwrap()
}

pub fn yahoo_with(sim: &RunningSim, pacer: Arc<RateGate>, timeout: Duration) -> YahooProvider {
    YahooProvider::new(
        http_client(timeout).unwrap(),
        Url::parse(&sim.base_url()).unwrap(),
        pacer,
    )
}

/// Yahoo on `sim`, unpaced.
pub fn yahoo(sim: &RunningSim) -> YahooProvider {
    yahoo_with(sim, Arc::new(RateGate::unlimited()), TIMEOUT)
}

pub fn polygon_with(base_url: &str, key: &str, pacer: Arc<RateGate>) -> PolygonProvider {
    PolygonProvider::new(
        http_client(TIMEOUT).unwrap(),
        Url::parse(base_url).unwrap(),
        SecretString::from(key),
        pacer,
    )
}

/// Polygon on `sim` with the key it expects, unpaced.
pub fn polygon(sim: &RunningSim) -> PolygonProvider {
    polygon_with(
        &sim.base_url(),
        POLYGON_KEY,
        Arc::new(RateGate::unlimited()),
    )
}

pub async fn fetch(
    provider: &impl PriceProvider,
    sym: &str,
    r: &DateRange,
    interval: Interval,
) -> Result<FetchedBars, ProviderError> {
    provider.fetch_bars(&symbol(sym), r, interval).await
}

/// AAPL's hourly bars over [`three_days`]: the request of every test about one answer.
pub async fn fetch_aapl(provider: &impl PriceProvider) -> Result<FetchedBars, ProviderError> {
    fetch(provider, "AAPL", &three_days(), Interval::Hour).await
}

pub fn as_bars(truth: Vec<GroundTruthBar>) -> Vec<Bar> {
    truth
        .into_iter()
        .map(|t| Bar {
            ts: t.ts,
            open: Some(t.open),
            high: Some(t.high),
            low: Some(t.low),
            close: t.close,
            volume: Some(t.volume),
        })
        .collect()
}

/// market-sim's ground truth from `provider` for `sym` over `r`, as the adapters' bars.
pub fn ground_truth(
    sim: &RunningSim,
    provider: Provider,
    sym: &str,
    r: &DateRange,
    interval: SimInterval,
) -> Vec<Bar> {
    as_bars(sim.ground_truth(provider, sym, interval, r.start(), r.end()))
}

/// Fetches `sym`'s bars over `r` at `interval` and asserts that they are market-sim's ground
/// truth (from the provider `provider` speaks for); returns what was fetched.
pub async fn fetch_the_truth(
    provider: &impl PriceProvider,
    sim: &RunningSim,
    sym: &str,
    r: &DateRange,
    interval: Interval,
) -> FetchedBars {
    let fetched = fetch(provider, sym, r, interval)
        .await
        .unwrap_or_else(|e| panic!("{sym} {interval}: {e:?}"));
    let source = match provider.kind() {
        ProviderKind::Yahoo => Provider::Yahoo,
        ProviderKind::Polygon => Provider::Polygon,
    };
    let sim_interval = match interval {
        Interval::Hour => SimInterval::Hour,
        Interval::Day => SimInterval::Day,
    };
    assert_eq!(
        fetched.bars,
        ground_truth(sim, source, sym, r, sim_interval),
        "{sym} {interval}"
    );
    fetched
}

/// A gate on a budget that records its use; the pause a 429 without Retry-After sets is 60 s.
pub fn recording() -> (Arc<RecordingBudget>, Arc<RateGate>) {
    let budget = Arc::new(RecordingBudget::default());
    let gate = RateGate::new(budget.clone(), Duration::ZERO, Duration::from_secs(60));
    (budget, Arc::new(gate))
}
