//! An in-memory [`PriceProvider`]: a fake of the port for tests of the logic around it
//! (fetch-batch's retries, its 429 handling, ticker failures), in-process, without market-sim.
//! The real adapters are tested against market-sim.
//!
//! Each symbol has a script: the errors its next requests answer, one per request, then its
//! bars, served in pages of `page_size`. A symbol without a script is unknown to the provider.
//!
//! ```
//! # use shared::provider::fake::FakeProvider;
//! # use shared::provider::ProviderError;
//! # use shared::model::ProviderKind;
//! let provider = FakeProvider::new(ProviderKind::Yahoo)
//!     .with_page_size(10)
//!     .with_bars("AAPL", vec![])
//!     .with_errors("AAPL", [ProviderError::Unavailable("503".into())]);
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};

use super::{BarPages, FetchedBars, PriceProvider, ProviderError};
use crate::error::BackfillError;
use crate::model::{Bar, DateRange, Interval, ProviderKind, Symbol};

/// One symbol's script.
#[derive(Debug, Default)]
struct Script {
    /// Answered first, one per request (a page asked again after an error asks again).
    errors: VecDeque<ProviderError>,
    /// Then the bars, in pages.
    bars: Vec<Bar>,
}

/// A scripted, in-memory price provider that counts the requests made for each symbol.
pub struct FakeProvider {
    kind: ProviderKind,
    page_size: usize,
    scripts: Mutex<HashMap<String, Script>>,
    requests: Mutex<HashMap<String, u32>>,
}

impl FakeProvider {
    /// A provider of `kind` that knows no symbol yet, with pages of 1000 bars.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            page_size: 1000,
            scripts: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
        }
    }

    /// Pages of at most `bars` bars (at least 1).
    pub fn with_page_size(mut self, bars: usize) -> Self {
        self.page_size = bars.max(1);
        self
    }

    /// `symbol` is known and has `bars` (any order; those outside the asked range are not served).
    pub fn with_bars(self, symbol: &str, bars: Vec<Bar>) -> Self {
        self.script(symbol, |s| s.bars = bars);
        self
    }

    /// `symbol`'s next requests answer `errors`, one per request, before its bars are served
    /// (e.g. two `Unavailable` then the bars; a `RateLimited` with its `Retry-After`). Adds to
    /// what is already queued; a symbol given only errors is known and has no bars.
    pub fn with_errors(
        self,
        symbol: &str,
        errors: impl IntoIterator<Item = ProviderError>,
    ) -> Self {
        self.push_errors(symbol, errors);
        self
    }

    /// `symbol` is not known: every request answers `UnknownSymbol` (as a symbol without a
    /// script does).
    pub fn with_unknown(self, symbol: &str) -> Self {
        self.scripts_lock().remove(symbol);
        self
    }

    /// Queues more errors for `symbol` while a test runs (e.g. an outage that starts later).
    pub fn push_errors(&self, symbol: &str, errors: impl IntoIterator<Item = ProviderError>) {
        self.script(symbol, |s| s.errors.extend(errors));
    }

    /// Requests made for `symbol` so far (every page and every failed try counts).
    pub fn requests(&self, symbol: &str) -> u32 {
        self.requests_lock().get(symbol).copied().unwrap_or(0)
    }

    fn script(&self, symbol: &str, f: impl FnOnce(&mut Script)) {
        f(self.scripts_lock().entry(symbol.to_string()).or_default());
    }

    fn scripts_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Script>> {
        self.scripts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn requests_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request for `symbol`: counted, then the next scripted error, or `Ok` with the bars
    /// of its script in `[from, to)` after `after`.
    fn request(
        &self,
        symbol: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
    ) -> Result<Vec<Bar>, ProviderError> {
        *self.requests_lock().entry(symbol.to_string()).or_default() += 1;
        let mut scripts = self.scripts_lock();
        let Some(script) = scripts.get_mut(symbol) else {
            return Err(ProviderError::UnknownSymbol(format!(
                "{} does not know symbol {symbol}",
                self.kind
            )));
        };
        if let Some(e) = script.errors.pop_front() {
            return Err(e);
        }
        let mut bars: Vec<Bar> = script
            .bars
            .iter()
            .filter(|b| b.ts >= from && b.ts < to && after.is_none_or(|a| b.ts > a))
            .cloned()
            .collect();
        bars.sort_by_key(|b| b.ts);
        Ok(bars)
    }
}

#[async_trait]
impl PriceProvider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn check_range(&self, _range: &DateRange, _interval: Interval) -> Result<(), BackfillError> {
        Ok(())
    }

    fn pages<'a>(
        &'a self,
        symbol: &'a Symbol,
        range: &'a DateRange,
        _interval: Interval,
        after: Option<DateTime<Utc>>,
    ) -> Box<dyn BarPages + 'a> {
        Box::new(FakePages {
            provider: self,
            symbol: symbol.as_str(),
            from: range.start().and_time(NaiveTime::MIN).and_utc(),
            to: range.end().and_time(NaiveTime::MIN).and_utc() + ChronoDuration::days(1),
            after,
            served: 0,
            done: false,
        })
    }
}

/// One fetch: each `next_page` is one request, answering the script's next error or the next
/// `page_size` bars after what was served.
struct FakePages<'a> {
    provider: &'a FakeProvider,
    symbol: &'a str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
    served: usize,
    done: bool,
}

#[async_trait]
impl BarPages for FakePages<'_> {
    async fn next_page(&mut self) -> Result<Option<FetchedBars>, ProviderError> {
        if self.done {
            return Ok(None);
        }
        let bars = self
            .provider
            .request(self.symbol, self.from, self.to, self.after)?;
        let page: Vec<Bar> = bars
            .into_iter()
            .skip(self.served)
            .take(self.provider.page_size + 1)
            .collect();
        let more = page.len() > self.provider.page_size;
        let page: Vec<Bar> = page.into_iter().take(self.provider.page_size).collect();
        self.served += page.len();
        self.done = !more;
        Ok(Some(FetchedBars {
            bars: page,
            skipped: 0,
            requests: 1,
        }))
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn bar(day: u32, hour: u32) -> Bar {
        Bar {
            ts: Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap(),
            open: Some(1.0),
            high: Some(2.0),
            low: Some(0.5),
            close: 1.5,
            volume: Some(100),
        }
    }

    fn range() -> DateRange {
        DateRange::new(
            NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn serves_the_bars_in_the_range_in_pages_and_counts_each_request() {
        let bars = vec![bar(9, 14), bar(9, 15), bar(10, 14), bar(11, 14), bar(8, 14)];
        let provider = FakeProvider::new(ProviderKind::Polygon)
            .with_page_size(2)
            .with_bars("AAPL", bars);
        let aapl = Symbol::parse("AAPL").unwrap();
        let fetched = provider
            .fetch_bars(&aapl, &range(), Interval::Hour)
            .await
            .unwrap();
        assert_eq!(fetched.bars, vec![bar(9, 14), bar(9, 15), bar(10, 14)]);
        assert_eq!(fetched.requests, 2);
        assert_eq!(provider.requests("AAPL"), 2);
    }

    #[tokio::test]
    async fn answers_the_scripted_errors_first_then_the_bars() {
        let provider = FakeProvider::new(ProviderKind::Yahoo)
            .with_bars("AAPL", vec![bar(9, 14)])
            .with_errors(
                "AAPL",
                [
                    ProviderError::Unavailable("503".into()),
                    ProviderError::RateLimited {
                        retry_after: Some(Duration::from_secs(7)),
                    },
                ],
            );
        let (aapl, range) = (Symbol::parse("AAPL").unwrap(), range());
        let mut pages = provider.pages(&aapl, &range, Interval::Hour, None);
        assert_eq!(
            pages.next_page().await.unwrap_err().name(),
            "ProviderUnavailable"
        );
        assert_eq!(
            pages.next_page().await.unwrap_err(),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(pages.next_page().await.unwrap().unwrap().bars.len(), 1);
        assert!(pages.done());
        assert_eq!(pages.next_page().await.unwrap(), None);
        assert_eq!(provider.requests("AAPL"), 3);
    }

    #[tokio::test]
    async fn a_symbol_without_a_script_is_unknown() {
        let provider = FakeProvider::new(ProviderKind::Yahoo).with_unknown("ZZZZ");
        let zzzz = Symbol::parse("ZZZZ").unwrap();
        let err = provider
            .fetch_bars(&zzzz, &range(), Interval::Hour)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "UnknownSymbol");
        assert!(err.is_ticker_failure());
        assert_eq!(provider.requests("ZZZZ"), 1);
    }
}
