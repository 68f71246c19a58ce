//! Price providers behind one port. One ranged request per ticker and interval (plus paging),
//! never one per day.

pub mod budget;
pub mod fake;
mod http;
pub mod polygon;
pub mod yahoo;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::BackfillError;
use crate::model::{Bar, DateRange, Interval, ProviderKind, Symbol};

/// What one ticker's fetch produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchedBars {
    /// Sorted by `ts`, possibly with duplicates (the store de-duplicates).
    pub bars: Vec<Bar>,
    /// Bars the provider sent with a null element; skipped, not stored.
    pub skipped: u32,
    /// HTTP requests made (pages included).
    pub requests: u32,
}

/// Why a ticker's fetch did not produce bars.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// 429. `retry_after` is the provider's `Retry-After` when it sent one.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// Not sent: the shared request budget's next free slot is `wait` away, more than an
    /// invocation may sleep.
    #[error("the shared request budget has no slot for {wait:?}")]
    Throttled { wait: Duration },
    /// 5xx, timeouts, connection errors.
    #[error("{0}")]
    Unavailable(String),
    /// 401/403: configuration, not retryable.
    #[error("{0}")]
    Rejected(String),
    /// The provider does not know the symbol (Yahoo 404 with `chart.error`).
    #[error("{0}")]
    UnknownSymbol(String),
    /// The provider cannot serve this range for this interval (Yahoo 422, 1h older than 730 days).
    #[error("{0}")]
    RangeUnsupported(String),
    /// A well-formed answer that breaks the provider's contract (missing arrays, another bar
    /// size than asked): the same request gets the same answer, so the ticker fails.
    #[error("{0}")]
    MalformedResponse(String),
    /// A body that is not complete JSON (cut short, a proxy's page): transient, retried.
    #[error("{0}")]
    Garbled(String),
}

impl ProviderError {
    /// Stable name stored as `backfill_progress.error_name`.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "RateLimited",
            ProviderError::Throttled { .. } => "Throttled",
            ProviderError::Unavailable(_) => "ProviderUnavailable",
            ProviderError::Rejected(_) => "ProviderRejected",
            ProviderError::UnknownSymbol(_) => "UnknownSymbol",
            ProviderError::RangeUnsupported(_) => "RangeUnsupported",
            ProviderError::MalformedResponse(_) => "MalformedResponse",
            ProviderError::Garbled(_) => "GarbledResponse",
        }
    }

    /// Whether another try may succeed: 5xx, timeouts, connection errors, garbled bodies.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable(_) | ProviderError::Garbled(_)
        )
    }

    /// Whether this error fails only the ticker (the batch carries on).
    pub fn is_ticker_failure(&self) -> bool {
        matches!(
            self,
            ProviderError::UnknownSymbol(_)
                | ProviderError::RangeUnsupported(_)
                | ProviderError::MalformedResponse(_)
        )
    }
}

impl From<ProviderError> for BackfillError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::RateLimited { .. } | ProviderError::Throttled { .. } => {
                BackfillError::RateLimited(e.to_string())
            }
            ProviderError::Unavailable(m) => BackfillError::ProviderUnavailable(m),
            ProviderError::Rejected(m) => BackfillError::ProviderRejected(m),
            ProviderError::RangeUnsupported(m) | ProviderError::UnknownSymbol(m) => {
                BackfillError::InvalidInput(m)
            }
            // Only reached where a ticker failure cannot be recorded.
            ProviderError::MalformedResponse(m) => BackfillError::InvalidInput(m),
            ProviderError::Garbled(m) => BackfillError::ProviderUnavailable(m),
        }
    }
}

/// The port every price API adapter implements.
#[async_trait]
pub trait PriceProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Checks, before anything is written, that this provider can serve `range` at `interval`
    /// (Yahoo keeps 1h bars for 730 days only). Errors are `InvalidInput`.
    fn check_range(&self, range: &DateRange, interval: Interval) -> Result<(), BackfillError>;

    /// A fetch of `symbol`'s bars in `range`, page by page, starting after `after` (the
    /// ticker's cursor: the newest bar already stored), each request through the shared budget.
    /// Bars are keyed the way every writer of `stock_price_history` keys them: intraday bars at
    /// their period start, those starting within the range's days (UTC); daily bars at 00:00 of
    /// the trading day in the exchange's time zone, those whose trading day is in the range.
    fn pages<'a>(
        &'a self,
        symbol: &'a Symbol,
        range: &'a DateRange,
        interval: Interval,
        after: Option<DateTime<Utc>>,
    ) -> Box<dyn BarPages + 'a>;

    /// Every bar of `symbol` in `range`, every page collected (for tools and tests; fetch-batch
    /// stores page by page).
    async fn fetch_bars(
        &self,
        symbol: &Symbol,
        range: &DateRange,
        interval: Interval,
    ) -> Result<FetchedBars, ProviderError> {
        let mut pages = self.pages(symbol, range, interval, None);
        let mut all = FetchedBars::default();
        while let Some(page) = pages.next_page().await? {
            all.bars.extend(page.bars);
            all.skipped += page.skipped;
            all.requests += page.requests;
        }
        all.bars.sort_by_key(|b| b.ts);
        Ok(all)
    }
}

/// One ticker's fetch, a page at a time: fetch-batch stores each page (with the ticker's cursor)
/// before it asks for the next, so memory does not grow with the range.
#[async_trait]
pub trait BarPages: Send {
    /// The next page (its bars sorted), or `None` when the range is exhausted. After an error,
    /// asking again asks for the same page again.
    async fn next_page(&mut self) -> Result<Option<FetchedBars>, ProviderError>;

    /// Whether every page has been returned (the next `next_page` would be `None`).
    fn done(&self) -> bool;
}

/// The HTTP client every adapter shares: rustls, a per-request timeout, connection reuse.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, BackfillError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| {
            BackfillError::ConfigurationError(format!("cannot build the HTTP client: {e}"))
        })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    /// Providers send prices with every digit (Yahoo: float32 values printed as float64, e.g.
    /// 187.44000244140625; Polygon: float64), and `stock_price_history` stores double precision:
    /// a parsed price must be the very double that was printed. serde_json gets about one in ten
    /// wrong by one ulp unless its `float_roundtrip` feature is on (the workspace enables it).
    #[test]
    fn prices_parse_bit_for_bit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let prices: Vec<f64> = (0..20_000)
            .map(|i| {
                let p: f64 = rng.random_range(0.0001..5000.0);
                if i % 2 == 0 {
                    f64::from(p as f32)
                } else {
                    p
                }
            })
            .collect();
        let body = serde_json::to_string(&prices).unwrap();
        let parsed: Vec<f64> = serde_json::from_str(&body).unwrap();
        let off = prices
            .iter()
            .zip(&parsed)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            off,
            0,
            "{off} of {} prices changed in a JSON round trip",
            prices.len()
        );
    }
}
