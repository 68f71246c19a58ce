//! Yahoo chart v8 adapter: one ranged `GET /v8/finance/chart/{symbol}` per ticker and interval.
//!
//! Yahoo's quirks handled here: class shares are spelled with a dash (`BRK-B`), any OHLCV
//! element may be null, a range without bars has no `timestamp` key, 1h history reaches back
//! 730 days only (422 beyond), and a 429 is plain text without `Retry-After`. Yahoo is keyless
//! but turns away clients that do not look like a browser, hence the User-Agent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::USER_AGENT;
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::http::{self, Answer};
use super::pacing::Pacer;
use super::{FetchedBars, PriceProvider, ProviderError};
use crate::error::BackfillError;
use crate::model::{today_utc, Bar, DateRange, Interval, ProviderKind, Symbol};

/// A current desktop Chrome. Yahoo answers 429 or an empty body to library-like agents.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36";

/// How far back Yahoo serves 1h bars, counted to the second from now.
pub const HOURLY_HISTORY_DAYS: u64 = 730;

pub struct YahooProvider {
    http: reqwest::Client,
    base_url: Url,
    pacer: Arc<Pacer>,
}

impl YahooProvider {
    pub fn new(http: reqwest::Client, base_url: Url, pacer: Arc<Pacer>) -> Self {
        Self {
            http,
            base_url,
            pacer,
        }
    }

    fn chart_url(
        &self,
        yahoo_symbol: &str,
        range: &DateRange,
        interval: Interval,
    ) -> Result<Url, ProviderError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ProviderError::Rejected(format!(
                    "YAHOO_BASE_URL {} cannot carry a path: use an http(s) URL",
                    self.base_url
                ))
            })?
            .pop_if_empty()
            .extend(["v8", "finance", "chart", yahoo_symbol]);
        url.query_pairs_mut()
            .append_pair("period1", &range.start_instant().timestamp().to_string())
            .append_pair(
                "period2",
                &range.end_exclusive_instant().timestamp().to_string(),
            )
            .append_pair("interval", interval.as_str())
            .append_pair("includePrePost", "false")
            .append_pair("events", "div,splits");
        Ok(url)
    }
}

/// Yahoo's spelling of a symbol: class shares take a dash (`BRK.B` → `BRK-B`).
pub fn yahoo_symbol(symbol: &Symbol) -> String {
    symbol.as_str().replace('.', "-")
}

/// The 730-day rule for 1h bars, against `today` (UTC). A start date is accepted only if its
/// first instant is within 730 days of any time of day today, so that the request cannot be
/// refused later in the day: the earliest accepted start is `today - 729 days`.
pub fn check_hourly_history(
    range: &DateRange,
    interval: Interval,
    today: NaiveDate,
) -> Result<(), BackfillError> {
    if interval != Interval::Hour {
        return Ok(());
    }
    let earliest = today
        .checked_sub_days(chrono::Days::new(HOURLY_HISTORY_DAYS - 1))
        .unwrap_or(NaiveDate::MIN);
    if range.start() >= earliest {
        return Ok(());
    }
    Err(BackfillError::InvalidInput(format!(
        "Yahoo keeps 1h bars for the last {HOURLY_HISTORY_DAYS} days only, and start_date {} is older: \
         use a start_date on or after {earliest}, or interval 1d for older history",
        range.start()
    )))
}

#[async_trait]
impl PriceProvider for YahooProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Yahoo
    }

    fn check_range(&self, range: &DateRange, interval: Interval) -> Result<(), BackfillError> {
        check_hourly_history(range, interval, today_utc())
    }

    async fn fetch_bars(
        &self,
        symbol: &Symbol,
        range: &DateRange,
        interval: Interval,
    ) -> Result<FetchedBars, ProviderError> {
        let requested_as = yahoo_symbol(symbol);
        let url = self.chart_url(&requested_as, range, interval)?;
        self.pacer.acquire().await;
        let request = self.http.get(url).header(USER_AGENT, BROWSER_USER_AGENT);
        let Answer {
            status,
            retry_after,
            body,
        } = http::send(request, "yahoo", symbol).await?;
        let result = interpret(status, retry_after, &body, symbol, &requested_as, range);
        tracing::debug!(
            provider = "yahoo",
            symbol = %symbol,
            requested_as = %requested_as,
            interval = %interval,
            status = status.as_u16(),
            bars = result.as_ref().map_or(0, |f| f.bars.len()),
            skipped = result.as_ref().map_or(0, |f| f.skipped),
            "yahoo chart request"
        );
        result
    }
}

/// Maps one chart response to bars or to the error it means.
fn interpret(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
    symbol: &Symbol,
    requested_as: &str,
    range: &DateRange,
) -> Result<FetchedBars, ProviderError> {
    let chart_error = || {
        serde_json::from_str::<ChartEnvelope>(body)
            .ok()
            .and_then(|c| c.chart.error)
    };
    match status {
        StatusCode::OK => {
            let (bars, skipped) = parse_chart(body, range).map_err(|e| match e {
                ChartProblem::Unknown(description) => {
                    unknown_symbol(symbol, requested_as, &description)
                }
                ChartProblem::Malformed(detail) => ProviderError::MalformedResponse(format!(
                    "yahoo sent a chart for {symbol} that cannot be read: {detail}"
                )),
            })?;
            Ok(FetchedBars {
                bars,
                skipped,
                requests: 1,
            })
        }
        StatusCode::NOT_FOUND => match chart_error() {
            Some(e) => Err(unknown_symbol(symbol, requested_as, &e.description)),
            // Not Yahoo's "no such symbol" answer: most likely a wrong base URL.
            None => Err(ProviderError::Rejected(format!(
                "yahoo answered 404 without a chart error for {symbol}: check YAHOO_BASE_URL"
            ))),
        },
        StatusCode::UNPROCESSABLE_ENTITY => {
            let description = chart_error().map_or_else(
                || "the range is not available at this interval".to_string(),
                |e| e.description,
            );
            Err(ProviderError::RangeUnsupported(format!(
                "yahoo cannot serve {symbol} over {range}: {description}"
            )))
        }
        StatusCode::TOO_MANY_REQUESTS => Err(ProviderError::RateLimited { retry_after }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ProviderError::Rejected(format!(
            "yahoo refused the request for {symbol} with HTTP {status}"
        ))),
        s if s.is_server_error() => Err(ProviderError::Unavailable(format!(
            "yahoo answered HTTP {status} for {symbol}"
        ))),
        s if s.is_client_error() => {
            let detail = chart_error().map_or_else(String::new, |e| format!(": {}", e.description));
            Err(ProviderError::Rejected(format!(
                "yahoo refused the request for {symbol} with HTTP {status}{detail}"
            )))
        }
        _ => Err(ProviderError::Unavailable(format!(
            "yahoo answered an unexpected HTTP {status} for {symbol}"
        ))),
    }
}

fn unknown_symbol(symbol: &Symbol, requested_as: &str, description: &str) -> ProviderError {
    ProviderError::UnknownSymbol(format!(
        "yahoo does not know {symbol} (requested as {requested_as}): {description}"
    ))
}

#[derive(Debug, Deserialize)]
struct ChartEnvelope {
    chart: Chart,
}

#[derive(Debug, Deserialize)]
struct Chart {
    result: Option<Vec<ChartResult>>,
    error: Option<ChartErrorBody>,
}

#[derive(Debug, Deserialize)]
struct ChartErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
struct ChartResult {
    /// Absent when the range holds no bars.
    timestamp: Option<Vec<i64>>,
    indicators: Indicators,
}

#[derive(Debug, Deserialize)]
struct Indicators {
    quote: Vec<Quote>,
}

/// Each array is absent in the empty-range answer `{"quote":[{}]}`.
#[derive(Debug, Deserialize)]
struct Quote {
    open: Option<Vec<Option<f64>>>,
    high: Option<Vec<Option<f64>>>,
    low: Option<Vec<Option<f64>>>,
    close: Option<Vec<Option<f64>>>,
    /// An integer on the wire; read as a number so that a `1.2e6` cannot fail the whole chart.
    volume: Option<Vec<Option<f64>>>,
}

#[derive(Debug, PartialEq)]
enum ChartProblem {
    /// `chart.error` with code "Not Found" in a 200.
    Unknown(String),
    Malformed(String),
}

/// Bars of a 200 chart body whose start lies in the range, sorted, and the number of bars
/// skipped for a null element.
fn parse_chart(body: &str, range: &DateRange) -> Result<(Vec<Bar>, u32), ChartProblem> {
    let envelope: ChartEnvelope = serde_json::from_str(body)
        .map_err(|e| ChartProblem::Malformed(format!("not chart JSON ({e})")))?;
    let result = match (envelope.chart.result, envelope.chart.error) {
        (_, Some(e)) if e.code == "Not Found" => return Err(ChartProblem::Unknown(e.description)),
        (_, Some(e)) => {
            return Err(ChartProblem::Malformed(format!(
                "chart error {}: {}",
                e.code, e.description
            )))
        }
        (Some(results), None) => results
            .into_iter()
            .next()
            .ok_or_else(|| ChartProblem::Malformed("empty chart.result".into()))?,
        (None, None) => {
            return Err(ChartProblem::Malformed(
                "neither chart.result nor chart.error".into(),
            ))
        }
    };
    let Some(timestamps) = result.timestamp else {
        // Yahoo's way of saying "no bars in this range".
        return Ok((Vec::new(), 0));
    };
    let quote = result
        .indicators
        .quote
        .into_iter()
        .next()
        .ok_or_else(|| ChartProblem::Malformed("indicators.quote is empty".into()))?;
    let column = |values: Option<Vec<Option<f64>>>, name: &str| {
        let values = values.ok_or_else(|| ChartProblem::Malformed(format!("no {name} array")))?;
        if values.len() == timestamps.len() {
            Ok(values)
        } else {
            Err(ChartProblem::Malformed(format!(
                "{name} has {} values for {} timestamps",
                values.len(),
                timestamps.len()
            )))
        }
    };
    let open = column(quote.open, "open")?;
    let high = column(quote.high, "high")?;
    let low = column(quote.low, "low")?;
    let close = column(quote.close, "close")?;
    let volume = column(quote.volume, "volume")?;
    let (from, to) = (range.start_instant(), range.end_exclusive_instant());
    let mut bars = Vec::with_capacity(timestamps.len());
    let mut skipped = 0;
    for (i, &secs) in timestamps.iter().enumerate() {
        let ts = DateTime::<Utc>::from_timestamp(secs, 0)
            .ok_or_else(|| ChartProblem::Malformed(format!("timestamp {secs} is out of range")))?;
        // Yahoo may add bars outside the requested window (e.g. the current session).
        if ts < from || ts >= to {
            continue;
        }
        let volume = volume[i]
            .filter(|v| v.is_finite())
            .map(|v| v.round() as i64);
        match (open[i], high[i], low[i], close[i], volume) {
            (Some(o), Some(h), Some(l), Some(c), Some(v)) => bars.push(Bar {
                ts,
                open: Some(o),
                high: Some(h),
                low: Some(l),
                close: c,
                volume: Some(v),
            }),
            _ => skipped += 1,
        }
    }
    bars.sort_by_key(|b| b.ts);
    Ok((bars, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_date;

    fn range(start: &str, end: &str) -> DateRange {
        DateRange::new(
            parse_date("start", start).unwrap(),
            parse_date("end", end).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn class_shares_take_a_dash() {
        assert_eq!(yahoo_symbol(&Symbol::parse("brk.b").unwrap()), "BRK-B");
        assert_eq!(yahoo_symbol(&Symbol::parse("AAPL").unwrap()), "AAPL");
    }

    #[test]
    fn hourly_history_is_729_full_days_back_and_daily_is_unlimited() {
        let today = parse_date("today", "2026-03-12").unwrap();
        let ok = range("2024-03-13", "2026-03-11");
        assert!(check_hourly_history(&ok, Interval::Hour, today).is_ok());
        let old = range("2024-03-12", "2026-03-11");
        let err = check_hourly_history(&old, Interval::Hour, today).unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
        assert!(err.to_string().contains("2024-03-13"), "{err}");
        assert!(check_hourly_history(&old, Interval::Day, today).is_ok());
    }

    #[test]
    fn arrays_shorter_than_the_timestamps_are_malformed() {
        let body = r#"{"chart":{"result":[{"meta":{},"timestamp":[1773063000,1773066600],
            "indicators":{"quote":[{"open":[1.0],"high":[1.0,1.0],"low":[1.0,1.0],"close":[1.0,1.0],"volume":[1,1]}]}}],"error":null}}"#;
        let got = parse_chart(body, &range("2026-03-09", "2026-03-09"));
        assert!(matches!(got, Err(ChartProblem::Malformed(m)) if m.contains("open")));
    }
}
