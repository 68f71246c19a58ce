//! Polygon aggregates v2 adapter: one ranged
//! `GET /v2/aggs/ticker/{SYMBOL}/range/1/{hour|day}/{from_ms}/{to_ms}` per ticker and interval,
//! then `next_url` pages.
//!
//! Polygon's quirks handled here: `from`/`to` as days would be New York days, so the window is
//! sent as epoch milliseconds (inclusive) to match our UTC days exactly; `next_url` names the
//! public host and drops the key, so only its path and query are kept, resolved against the
//! configured base URL, and the key is added back; an empty range and an unknown ticker look the
//! same (no `results`); `DELAYED` is a success; volumes may be floats. The key travels in the
//! query string, so no URL ever reaches an error message or a log line.

pub mod grouped;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::budget::RateGate;
use super::http::{self, Answer};
use super::{BarPages, FetchedBars, PriceProvider, ProviderError};
use crate::error::BackfillError;
use crate::model::{Bar, DateRange, Interval, ProviderKind, Symbol};

/// Results per page asked for. Each page is stored (with the ticker's cursor) before the next is
/// asked for, so a page is the most a ticker holds in memory: 5,000 bars, about 2 MB with its
/// body, whatever the range (Polygon allows up to 50,000; for intraday bars its `limit` counts
/// the minute aggregates they are built from, so real hourly pages are smaller still).
pub const PAGE_BARS: u32 = 5000;
/// Far more pages than any real range needs (20 years of hourly bars is 17): a guard against a
/// provider that keeps handing out `next_url`s.
const MAX_PAGES: u32 = 1000;

pub struct PolygonProvider {
    http: reqwest::Client,
    base_url: Url,
    api_key: SecretString,
    gate: Arc<RateGate>,
}

impl PolygonProvider {
    pub fn new(
        http: reqwest::Client,
        base_url: Url,
        api_key: SecretString,
        gate: Arc<RateGate>,
    ) -> Self {
        Self {
            http,
            base_url,
            api_key,
            gate,
        }
    }

    fn bad_base_url(&self) -> ProviderError {
        ProviderError::Rejected(format!(
            "POLYGON_BASE_URL {} cannot carry a path: use an http(s) URL",
            self.base_url
        ))
    }

    /// The first page's URL, without the key.
    fn first_url(
        &self,
        symbol: &Symbol,
        range: &DateRange,
        interval: Interval,
        after: Option<DateTime<Utc>>,
    ) -> Result<Url, ProviderError> {
        let timespan = match interval {
            Interval::Hour => "hour",
            Interval::Day => "day",
        };
        // From the cursor on (the bars up to it are stored), else from the range's first day.
        let from_ms = after
            .map(|t| t.timestamp_millis() + 1)
            .unwrap_or(i64::MIN)
            .max(range.start_instant().timestamp_millis());
        // Polygon's millisecond bounds are inclusive: stop one millisecond before the next day.
        let to_ms = range.end_exclusive_instant().timestamp_millis() - 1;
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| self.bad_base_url())?
            .pop_if_empty()
            .extend([
                "v2",
                "aggs",
                "ticker",
                symbol.as_str(),
                "range",
                "1",
                timespan,
                &from_ms.to_string(),
                &to_ms.to_string(),
            ]);
        url.query_pairs_mut()
            .append_pair("adjusted", "true")
            .append_pair("sort", "asc")
            .append_pair("limit", &PAGE_BARS.to_string());
        Ok(url)
    }

    /// A `next_url` moved onto the configured base URL: its host is the public API's (useless
    /// behind a proxy or against market-sim), so only its path and query are kept, minus any key.
    fn next_page_url(&self, next_url: &str) -> Result<Url, ProviderError> {
        let next = Url::parse(next_url)
            .or_else(|_| Url::parse("http://next-url.invalid/").and_then(|b| b.join(next_url)))
            .map_err(|e| {
                ProviderError::MalformedResponse(format!(
                    "polygon sent a next_url that is not a URL ({e})"
                ))
            })?;
        let mut url = self.base_url.clone();
        if url.cannot_be_a_base() {
            return Err(self.bad_base_url());
        }
        let prefix = self.base_url.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{}", next.path()));
        let pairs: Vec<(String, String)> = next
            .query_pairs()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("apikey"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        Ok(url)
    }

    fn with_key(&self, url: &Url) -> Url {
        let mut url = url.clone();
        url.query_pairs_mut()
            .append_pair("apiKey", self.api_key.expose_secret());
        url
    }

    /// Removes the key from text that came from outside (a body echoing the request, say).
    fn redact(&self, text: &str) -> String {
        let key = self.api_key.expose_secret();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "***")
        }
    }

    /// Redacts every message of an error before it leaves the adapter.
    fn redact_error(&self, e: ProviderError) -> ProviderError {
        match e {
            ProviderError::Unavailable(m) => ProviderError::Unavailable(self.redact(&m)),
            ProviderError::Rejected(m) => ProviderError::Rejected(self.redact(&m)),
            ProviderError::UnknownSymbol(m) => ProviderError::UnknownSymbol(self.redact(&m)),
            ProviderError::RangeUnsupported(m) => ProviderError::RangeUnsupported(self.redact(&m)),
            ProviderError::MalformedResponse(m) => {
                ProviderError::MalformedResponse(self.redact(&m))
            }
            ProviderError::Garbled(m) => ProviderError::Garbled(self.redact(&m)),
            e @ (ProviderError::RateLimited { .. } | ProviderError::Throttled { .. }) => e,
        }
    }

    /// One aggregates page: its bars in `range`, sorted, and the next page's URL.
    async fn fetch_page(
        &self,
        url: &Url,
        symbol: &Symbol,
        range: &DateRange,
        interval: Interval,
    ) -> Result<(FetchedBars, Option<Url>), ProviderError> {
        let (from, to) = (range.start_instant(), range.end_exclusive_instant());
        let mut fetched = FetchedBars {
            requests: 1,
            ..FetchedBars::default()
        };
        let request = self.http.get(self.with_key(url));
        let Answer {
            status,
            retry_after,
            body,
        } = http::send(&self.gate, request, "polygon", symbol).await?;
        let page = interpret(status, retry_after, &body, "aggregates", symbol);
        // The body can be megabytes: gone before the bars are built.
        drop(body);
        tracing::debug!(
            provider = "polygon",
            symbol = %symbol,
            interval = %interval,
            status = status.as_u16(),
            bars = page.as_ref().map_or(0, |p| p.results.as_ref().map_or(0, Vec::len)),
            "polygon aggregates request"
        );
        let page = page?;
        for agg in page.results.unwrap_or_default() {
            let ts = DateTime::from_timestamp_millis(agg.t).ok_or_else(|| {
                ProviderError::MalformedResponse(format!(
                    "polygon sent a bar for {symbol} with timestamp {} out of range",
                    agg.t
                ))
            })?;
            // Bars outside the requested window are not ours to store.
            if ts < from || ts >= to {
                continue;
            }
            match agg.bar(ts) {
                Some(bar) => fetched.bars.push(bar),
                None => fetched.skipped += 1,
            }
        }
        fetched.bars.sort_by_key(|b| b.ts);
        let next = page
            .next_url
            .filter(|n| !n.trim().is_empty())
            .map(|n| self.next_page_url(&n))
            .transpose()?;
        Ok((fetched, next))
    }
}

/// A Polygon fetch page by page, following `next_url`.
struct PolygonPages<'a> {
    provider: &'a PolygonProvider,
    symbol: &'a Symbol,
    range: &'a DateRange,
    interval: Interval,
    /// The page to ask for next; `None` once the last page was returned.
    next: Option<Result<Url, ProviderError>>,
    seen: HashSet<String>,
    pages: u32,
}

#[async_trait]
impl BarPages for PolygonPages<'_> {
    async fn next_page(&mut self) -> Result<Option<FetchedBars>, ProviderError> {
        let url = match self.next.take() {
            None => return Ok(None),
            Some(Err(e)) => return Err(self.provider.redact_error(e)),
            Some(Ok(url)) => url,
        };
        if self.seen.contains(url.as_str()) || self.pages >= MAX_PAGES {
            return Err(ProviderError::MalformedResponse(format!(
                "polygon kept paging {} after {} pages (next_url repeats or never ends)",
                self.symbol, self.pages
            )));
        }
        match self
            .provider
            .fetch_page(&url, self.symbol, self.range, self.interval)
            .await
        {
            Ok((page, next)) => {
                self.seen.insert(url.to_string());
                self.pages += 1;
                self.next = next.map(Ok);
                Ok(Some(page))
            }
            Err(e) => {
                // Asked again, the same page is fetched again.
                self.next = Some(Ok(url));
                Err(self.provider.redact_error(e))
            }
        }
    }

    fn done(&self) -> bool {
        self.next.is_none()
    }
}

/// The first day of Polygon's US stock aggregates, on any plan: 2003-09-10.
///
/// Polygon documents its history per plan, not as one date (the free Basic plan reaches about
/// two years back, paid plans further; beyond its plan a key is refused by the API itself, which
/// only the key can tell). The earliest data any plan serves is where Polygon's own archive
/// starts:
/// - its flat files of minute aggregates (`us_stocks_sip/minute_aggs_v1` on files.polygon.io)
///   begin on 2003-09-10 (the first day fetched by the public project
///   shinathan/polygon.io-stock-database, `START_DATE = date(2003, 9, 10)`);
/// - the aggregates endpoint answers a range that starts earlier with bars from 2003-10-01 on
///   (polygon-io/issues#100, 2020: "the erroneous data starts at 2003-10-01" for a range from
///   2011; alpacahq/alpaca-trade-api-python#361, 2021: AAPL day bars asked from 1900-01-01 begin
///   on 2003-10-01).
///
/// The earlier of the two is taken, so that no bar Polygon holds is refused.
pub const FIRST_DATA_DATE: chrono::NaiveDate =
    chrono::NaiveDate::from_ymd_opt(2003, 9, 10).expect("a valid date");

/// Every range rule of Polygon's, for either interval: nothing before [`FIRST_DATA_DATE`]
/// (which also keeps the 1970 rule). The one definition: `check_range`, select-tickers and the
/// CLI all apply this.
pub fn check_history(range: &DateRange, _interval: Interval) -> Result<(), BackfillError> {
    crate::model::check_not_before_epoch(range)?;
    if range.start() >= FIRST_DATA_DATE {
        return Ok(());
    }
    Err(BackfillError::InvalidInput(format!(
        "Polygon has no stock aggregates before {FIRST_DATA_DATE} (the oldest data of any plan; \
         smaller plans reach back less far), and start_date {} is older: use a start_date on or \
         after {FIRST_DATA_DATE}",
        range.start()
    )))
}

#[async_trait]
impl PriceProvider for PolygonProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Polygon
    }

    /// The history every plan lacks is refused here; how deep a key's own plan reaches, the API
    /// says when asked.
    fn check_range(&self, range: &DateRange, interval: Interval) -> Result<(), BackfillError> {
        check_history(range, interval)
    }

    fn pages<'a>(
        &'a self,
        symbol: &'a Symbol,
        range: &'a DateRange,
        interval: Interval,
        after: Option<DateTime<Utc>>,
    ) -> Box<dyn BarPages + 'a> {
        Box::new(PolygonPages {
            provider: self,
            symbol,
            range,
            interval,
            next: Some(self.first_url(symbol, range, interval, after)),
            seen: HashSet::new(),
            pages: 0,
        })
    }
}

/// A 200 answer: the aggregates of one ticker (`/v2/aggs/ticker/…/range/…`, paged by
/// `next_url`), or the grouped daily bars of one day (`/v2/aggs/grouped/…`, one page, each
/// result naming its ticker in `T`).
#[derive(Debug, Deserialize)]
struct Page {
    status: String,
    /// Absent for an empty range, an unknown ticker and a day without trading alike.
    results: Option<Vec<Agg>>,
    next_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Agg {
    /// Grouped bars only.
    #[serde(rename = "T")]
    ticker: Option<String>,
    t: i64,
    o: Option<f64>,
    h: Option<f64>,
    l: Option<f64>,
    c: Option<f64>,
    /// A float on the wire (adjusted volumes can be fractional).
    v: Option<f64>,
}

impl Agg {
    /// The bar keyed at `ts`, or `None` when a price or the volume is missing (such bars are
    /// counted as skipped, never stored half empty).
    fn bar(&self, ts: DateTime<Utc>) -> Option<Bar> {
        let volume = self.v.filter(|v| v.is_finite()).map(|v| v.round() as i64);
        match (self.o, self.h, self.l, self.c, volume) {
            (Some(o), Some(h), Some(l), Some(c), Some(v)) => Some(Bar {
                ts,
                open: Some(o),
                high: Some(h),
                low: Some(l),
                close: c,
                volume: Some(v),
            }),
            _ => None,
        }
    }
}

/// Polygon's error bodies: `{"status":"NOT_AUTHORIZED","message":…}` or
/// `{"status":"ERROR","error":…}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    status: Option<String>,
    message: Option<String>,
    error: Option<String>,
}

impl ErrorBody {
    fn describe(body: &str) -> String {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(e) => {
                let status = e.status.unwrap_or_else(|| "no status".into());
                match e.message.or(e.error) {
                    Some(text) => format!("{status}: {text}"),
                    None => status,
                }
            }
            Err(_) => "no JSON error body".into(),
        }
    }
}

/// Maps one response (aggregates, or a grouped day) to its body or to the error it means.
/// Messages built here may quote the body; the caller redacts the key.
fn interpret(
    status: StatusCode,
    retry_after: Option<std::time::Duration>,
    body: &str,
    what: &str,
    symbol: &Symbol,
) -> Result<Page, ProviderError> {
    match status {
        StatusCode::OK => {
            let page: Page = serde_json::from_str(body).map_err(|e| {
                // Cut or garbled: worth another try; well-formed but not this JSON: permanent.
                if e.is_syntax() || e.is_eof() {
                    ProviderError::Garbled(format!(
                        "polygon sent {what} for {symbol} that are not complete JSON ({e})"
                    ))
                } else {
                    ProviderError::MalformedResponse(format!(
                        "polygon sent {what} for {symbol} that cannot be read ({e})"
                    ))
                }
            })?;
            match page.status.as_str() {
                // DELAYED: a plan with delayed data; the bars are as good for history.
                "OK" | "DELAYED" => Ok(page),
                other => Err(ProviderError::MalformedResponse(format!(
                    "polygon answered status {other:?} for the {what} of {symbol}: {}",
                    ErrorBody::describe(body)
                ))),
            }
        }
        StatusCode::TOO_MANY_REQUESTS => Err(ProviderError::RateLimited { retry_after }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ProviderError::Rejected(format!(
            "polygon rejected the API key for {symbol} (HTTP {status}, {}): check POLYGON_API_KEY or the provider secret",
            ErrorBody::describe(body)
        ))),
        s if s.is_server_error() => Err(ProviderError::Unavailable(format!(
            "polygon answered HTTP {status} for {symbol} ({})",
            ErrorBody::describe(body)
        ))),
        s if s.is_client_error() => Err(ProviderError::Rejected(format!(
            "polygon refused the request for {symbol} with HTTP {status} ({}): check POLYGON_BASE_URL",
            ErrorBody::describe(body)
        ))),
        _ => Err(ProviderError::Unavailable(format!(
            "polygon answered an unexpected HTTP {status} for {symbol}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(base: &str) -> PolygonProvider {
        PolygonProvider::new(
            reqwest::Client::new(),
            Url::parse(base).unwrap(),
            SecretString::from("pk_secret"),
            Arc::new(RateGate::unlimited()),
        )
    }

    #[test]
    fn next_url_keeps_path_and_query_on_the_configured_base_without_any_key() {
        let p = provider("http://127.0.0.1:9999/proxy/");
        let url = p
            .next_page_url(
                "https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/hour/1/2?cursor=abc&apiKey=leaked",
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9999/proxy/v2/aggs/ticker/AAPL/range/1/hour/1/2?cursor=abc"
        );
    }

    #[test]
    fn the_window_is_sent_as_inclusive_milliseconds() {
        let range =
            DateRange::new("2026-03-09".parse().unwrap(), "2026-03-11".parse().unwrap()).unwrap();
        let url = provider("http://h")
            .first_url(
                &Symbol::parse("BRK.B").unwrap(),
                &range,
                Interval::Hour,
                None,
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://h/v2/aggs/ticker/BRK.B/range/1/hour/1773014400000/1773273599999?adjusted=true&sort=asc&limit=5000"
        );
    }

    #[test]
    fn errors_never_carry_the_key() {
        let p = provider("http://h");
        let e = p.redact_error(ProviderError::Rejected("echo: apiKey=pk_secret".into()));
        assert_eq!(e, ProviderError::Rejected("echo: apiKey=***".into()));
    }
}
