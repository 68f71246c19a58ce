//! Yahoo chart v8 adapter: one ranged `GET /v8/finance/chart/{symbol}` per ticker and interval.
//!
//! Yahoo's quirks handled here: class shares are spelled with a dash (`BRK-B`) while exchange
//! suffixes keep their dot (`GS2C.DE`), any OHLCV element may be null, a range without bars has
//! no `timestamp` key, 1h history reaches back 730 days only (422 beyond), and a 429 is plain
//! text without `Retry-After`. Yahoo is keyless but turns away clients that do not look like a
//! browser, hence the User-Agent.
//!
//! Bars are keyed the way the rest of `stock_price_history` is (other jobs write it with
//! yfinance): intraday bars at their period start, daily bars at 00:00 of the trading day in the
//! exchange's time zone. Yahoo's stamps differ from that in three ways, all repaired in
//! `parse_chart`:
//! - a daily bar is stamped at the session open, and the bar of a session in progress at
//!   `meta.regularMarketTime`: both become the local midnight of their trading day;
//! - the intraday bar of the period in progress is stamped at `meta.regularMarketTime`, off the
//!   period grid: it is moved to its period start (merged with a bar already there);
//! - intraday charts append a zero-volume bar stamped at the session close: it is not a period
//!   and is not stored.
//!
//! `meta.dataGranularity` that is not the interval asked for fails the ticker.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use reqwest::header::USER_AGENT;
use reqwest::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use super::budget::RateGate;
use super::http::{self, Answer};
use super::{BarPages, FetchedBars, PriceProvider, ProviderError};
use crate::error::BackfillError;
use crate::model::{today_utc, Bar, DateRange, Interval, ProviderKind, Symbol};

/// A current desktop Chrome. Yahoo answers 429 or an empty body to library-like agents.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36";

/// How far back Yahoo serves 1h bars, counted to the second from now.
pub const HOURLY_HISTORY_DAYS: u64 = 730;

/// Yahoo's exchange suffixes (the part after the last dot of `7203.T`, `TSCO.L`, `GS2C.DE`).
///
/// Source: Yahoo's help page "Exchanges and data providers on Yahoo Finance" (SLN2310,
/// <https://help.yahoo.com/kb/SLN2310.html>), as reproduced in yfinance's
/// `yfinance/const.py` (`_MIC_TO_YAHOO_SUFFIX`, "map last updated as of 2025.12.19") and in
/// `exchange_suffix.md` of the public repository ThomasKillin/portfolio-tracker; the union of
/// both is listed. A trailing `.XX` that is not here is a share class (`BRK.B`, `BF.B`).
/// Sorted for the binary search.
pub const EXCHANGE_SUFFIXES: &[&str] = &[
    "AE", "AQ", "AS", "AT", "AX", "BA", "BD", "BE", "BK", "BM", "BO", "BR", "CA", "CBT", "CL",
    "CME", "CMX", "CN", "CO", "CR", "DE", "DU", "F", "HA", "HE", "HK", "HM", "IC", "IL", "IR",
    "IS", "JK", "JO", "KL", "KQ", "KS", "KW", "L", "LS", "MC", "ME", "MI", "MU", "MX", "NE", "NS",
    "NX", "NYB", "NYM", "NZ", "OL", "PA", "PR", "PS", "QA", "RG", "RO", "SA", "SAU", "SG", "SI",
    "SN", "SR", "SS", "ST", "SW", "SZ", "T", "TA", "TI", "TL", "TO", "TW", "TWO", "V", "VI", "VN",
    "VS", "WA", "XA", "XC", "XD",
];

/// Length of one intraday period (the only intraday interval a run can ask for is 1h).
const HOUR_SECS: i64 = 3_600;

pub struct YahooProvider {
    http: reqwest::Client,
    base_url: Url,
    gate: Arc<RateGate>,
}

impl YahooProvider {
    pub fn new(http: reqwest::Client, base_url: Url, gate: Arc<RateGate>) -> Self {
        Self {
            http,
            base_url,
            gate,
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
        let (period1, period2) = request_window(range, interval);
        url.query_pairs_mut()
            .append_pair("period1", &period1.timestamp().to_string())
            .append_pair("period2", &period2.timestamp().to_string())
            .append_pair("interval", interval.as_str())
            .append_pair("includePrePost", "false")
            .append_pair("events", "div,splits");
        Ok(url)
    }
}

/// The `[period1, period2)` a chart request asks for. Intraday bars are selected by their UTC
/// start, so the run's UTC days are asked for. Daily bars are selected by their exchange-local
/// trading date, whose bar Yahoo stamps up to 14 hours before (east of UTC) or 12 hours after
/// (west of UTC) that date's UTC midnight: a day more on each side keeps the edge days.
fn request_window(range: &DateRange, interval: Interval) -> (DateTime<Utc>, DateTime<Utc>) {
    let (from, to) = (range.start_instant(), range.end_exclusive_instant());
    match interval {
        Interval::Hour => (from, to),
        Interval::Day => {
            let day = chrono::Duration::days(1);
            (
                from.checked_sub_signed(day).unwrap_or(from),
                to.checked_add_signed(day).unwrap_or(to),
            )
        }
    }
}

/// Yahoo's spelling of a symbol. Share classes take a dash (`BRK.B` → `BRK-B`, Yahoo's own
/// convention: its dot separates the exchange); a trailing exchange suffix from
/// [`EXCHANGE_SUFFIXES`] keeps its dot (`GS2C.DE`, `0P000071W8.TO`), and a class before it still
/// takes a dash (`BT.A.L` → `BT-A.L`).
pub fn yahoo_symbol(symbol: &Symbol) -> String {
    let raw = symbol.as_str();
    match raw.rsplit_once('.') {
        Some((base, suffix)) if !base.is_empty() && is_exchange_suffix(suffix) => {
            format!("{}.{suffix}", base.replace('.', "-"))
        }
        _ => raw.replace('.', "-"),
    }
}

/// Whether `suffix` (without the dot, any case) is one of Yahoo's exchange suffixes.
pub fn is_exchange_suffix(suffix: &str) -> bool {
    let upper = suffix.to_ascii_uppercase();
    EXCHANGE_SUFFIXES.binary_search(&upper.as_str()).is_ok()
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

/// Every range rule of Yahoo's, against `today` (UTC): nothing before 1970
/// ([`crate::model::check_not_before_epoch`]), and 1h no older than [`HOURLY_HISTORY_DAYS`].
/// The one definition: `check_range`, select-tickers and the CLI all apply this.
pub fn check_history(
    range: &DateRange,
    interval: Interval,
    today: NaiveDate,
) -> Result<(), BackfillError> {
    crate::model::check_not_before_epoch(range)?;
    check_hourly_history(range, interval, today)
}

#[async_trait]
impl PriceProvider for YahooProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Yahoo
    }

    fn check_range(&self, range: &DateRange, interval: Interval) -> Result<(), BackfillError> {
        check_history(range, interval, today_utc())
    }

    fn pages<'a>(
        &'a self,
        symbol: &'a Symbol,
        range: &'a DateRange,
        interval: Interval,
        after: Option<DateTime<Utc>>,
    ) -> Box<dyn BarPages + 'a> {
        // From the cursor's day on: the bars up to the cursor are stored (asking for that day
        // again costs nothing, the store keeps one row per key).
        let rest = match after {
            None => Some(*range),
            Some(cursor) => {
                let from = cursor.date_naive().max(range.start());
                DateRange::new(from, range.end()).ok()
            }
        };
        Box::new(YahooPages {
            provider: self,
            symbol,
            interval,
            rest,
        })
    }
}

/// A Yahoo fetch: one chart request for the whole range (Yahoo does not page; its longest
/// answer, decades of daily bars, is a few thousand bars).
struct YahooPages<'a> {
    provider: &'a YahooProvider,
    symbol: &'a Symbol,
    interval: Interval,
    /// What is left to ask for; `None` once the chart was returned.
    rest: Option<DateRange>,
}

#[async_trait]
impl BarPages for YahooPages<'_> {
    async fn next_page(&mut self) -> Result<Option<FetchedBars>, ProviderError> {
        let Some(range) = self.rest else {
            return Ok(None);
        };
        let page = self
            .provider
            .chart(self.symbol, &range, self.interval)
            .await?;
        self.rest = None;
        Ok(Some(page))
    }

    fn done(&self) -> bool {
        self.rest.is_none()
    }
}

impl YahooProvider {
    /// One ranged chart request.
    async fn chart(
        &self,
        symbol: &Symbol,
        range: &DateRange,
        interval: Interval,
    ) -> Result<FetchedBars, ProviderError> {
        let requested_as = yahoo_symbol(symbol);
        let url = self.chart_url(&requested_as, range, interval)?;
        let request = self.http.get(url).header(USER_AGENT, BROWSER_USER_AGENT);
        let Answer {
            status,
            retry_after,
            body,
        } = http::send(&self.gate, request, "yahoo", symbol).await?;
        let request = ChartRequest {
            symbol,
            requested_as: &requested_as,
            range,
            interval,
        };
        let result = interpret(status, retry_after, &body, &request);
        let repairs = result.as_ref().map(|(_, r)| *r).unwrap_or_default();
        tracing::debug!(
            provider = "yahoo",
            symbol = %symbol,
            requested_as = %requested_as,
            interval = %interval,
            status = status.as_u16(),
            bars = result.as_ref().map_or(0, |(f, _)| f.bars.len()),
            skipped = result.as_ref().map_or(0, |(f, _)| f.skipped),
            live_bars_moved = repairs.live_moved,
            live_bars_merged = repairs.live_merged,
            live_bars_dropped = repairs.live_dropped,
            close_bars_dropped = repairs.close_dropped,
            "yahoo chart request"
        );
        result.map(|(fetched, _)| fetched)
    }
}

/// What one chart request was for: the run's symbol, Yahoo's spelling of it, the run's days and
/// interval.
struct ChartRequest<'a> {
    symbol: &'a Symbol,
    requested_as: &'a str,
    range: &'a DateRange,
    interval: Interval,
}

/// Maps one chart response to bars (and the repairs made to them) or to the error it means.
fn interpret(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
    request: &ChartRequest<'_>,
) -> Result<(FetchedBars, Repairs), ProviderError> {
    let ChartRequest {
        symbol,
        requested_as,
        range,
        interval,
    } = *request;
    let chart_error = || {
        serde_json::from_str::<ChartEnvelope>(body)
            .ok()
            .and_then(|c| c.chart.error)
    };
    match status {
        StatusCode::OK => {
            let parsed = parse_chart(body, range, interval).map_err(|e| match e {
                ChartProblem::Unknown(description) => {
                    unknown_symbol(symbol, requested_as, &description)
                }
                ChartProblem::Granularity { sent } => ProviderError::MalformedResponse(format!(
                    "yahoo sent {sent} bars for {symbol} where {interval} was asked"
                )),
                ChartProblem::Malformed(detail) => ProviderError::MalformedResponse(format!(
                    "yahoo sent a chart for {symbol} that cannot be read: {detail}"
                )),
                ChartProblem::Garbled(detail) => ProviderError::Garbled(format!(
                    "yahoo sent a chart for {symbol} that is not complete JSON: {detail}"
                )),
            })?;
            Ok((
                FetchedBars {
                    bars: parsed.bars,
                    skipped: parsed.skipped,
                    requests: 1,
                },
                parsed.repairs,
            ))
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
    #[serde(default)]
    meta: Meta,
    /// Absent when the range holds no bars.
    timestamp: Option<Vec<i64>>,
    indicators: Indicators,
}

/// The parts of `chart.result[0].meta` the bar keys depend on; every one may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Meta {
    /// IANA name of the exchange's zone (`America/New_York`, `Asia/Tokyo`).
    exchange_timezone_name: Option<String>,
    /// When the last trade was seen; the live bar of a session in progress carries this stamp.
    regular_market_time: Option<i64>,
    /// The bar size Yahoo actually sent (`1h`, `60m`, `1d`, `3mo` …).
    data_granularity: Option<String>,
    current_trading_period: Option<CurrentTradingPeriod>,
    trading_periods: Option<TradingPeriods>,
}

#[derive(Debug, Deserialize)]
struct CurrentTradingPeriod {
    regular: Option<Period>,
}

/// A session as Yahoo describes it: `[start, end]` in epoch seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Period {
    start: i64,
    end: i64,
}

/// `meta.tradingPeriods` of an intraday chart: one list of regular sessions per day when pre-
/// and post-market are left out (`includePrePost=false`, as this adapter asks), an object of
/// `pre`/`regular`/`post` lists when they are included. Anything else is ignored rather than
/// failing the chart: the periods only refine the live-bar and close-bar rules.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TradingPeriods {
    Regular(Vec<Vec<Period>>),
    Split {
        #[serde(default)]
        regular: Vec<Vec<Period>>,
    },
    Other(IgnoredAny),
}

impl TradingPeriods {
    fn regular(&self) -> impl Iterator<Item = Period> + '_ {
        let days: &[Vec<Period>] = match self {
            TradingPeriods::Regular(days) | TradingPeriods::Split { regular: days } => days,
            TradingPeriods::Other(_) => &[],
        };
        days.iter().flatten().copied()
    }
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
    /// `meta.dataGranularity` names another bar size than the one asked for.
    Granularity {
        sent: String,
    },
    Malformed(String),
    /// The body is not complete JSON.
    Garbled(String),
}

/// What [`parse_chart`] changed about Yahoo's bars, for the fetch's log line.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Repairs {
    /// Live intraday bars moved to the start of their period (no bar was there yet).
    live_moved: u32,
    /// Live intraday bars merged into the bar already at their period start.
    live_merged: u32,
    /// Live intraday bars whose period could not be told.
    live_dropped: u32,
    /// Zero-volume bars stamped at the session close.
    close_dropped: u32,
}

/// A chart's bars keyed the project's way, in the run's range, sorted, one per key.
#[derive(Debug, PartialEq)]
struct ParsedChart {
    bars: Vec<Bar>,
    /// Bars in the range skipped for a null element.
    skipped: u32,
    repairs: Repairs,
}

/// One row of the chart as Yahoo sent it.
#[derive(Debug, Clone, Copy)]
struct Row {
    ts: DateTime<Utc>,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    close: Option<f64>,
    volume: Option<i64>,
}

impl Row {
    /// The bar this row is, if no element is null.
    fn bar(&self) -> Option<Bar> {
        Some(Bar {
            ts: self.ts,
            open: Some(self.open?),
            high: Some(self.high?),
            low: Some(self.low?),
            close: self.close?,
            volume: Some(self.volume?),
        })
    }
}

/// Whether Yahoo's `dataGranularity` means `interval`. Yahoo echoes the interval as asked
/// (`1h` for `interval=1h`, `60m` for `interval=60m`), and `60m` and `1h` are the same bar size.
fn granularity_matches(sent: &str, interval: Interval) -> bool {
    let sent = sent.trim().to_ascii_lowercase();
    match interval {
        Interval::Hour => matches!(sent.as_str(), "1h" | "60m"),
        Interval::Day => sent == "1d",
    }
}

/// Bars of a 200 chart body keyed the project's way and selected by the run's range, and the
/// number of bars in the range skipped for a null element.
fn parse_chart(
    body: &str,
    range: &DateRange,
    interval: Interval,
) -> Result<ParsedChart, ChartProblem> {
    let envelope: ChartEnvelope = serde_json::from_str(body).map_err(|e| {
        // A cut or garbled body (a proxy's error page, a dropped connection) is worth another
        // try; well-formed JSON that is not a chart breaks the contract.
        if e.is_syntax() || e.is_eof() {
            ChartProblem::Garbled(e.to_string())
        } else {
            ChartProblem::Malformed(format!("not chart JSON ({e})"))
        }
    })?;
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
    // Another bar size would be stored under keys of the wrong period: nothing of it is kept.
    if let Some(sent) = &result.meta.data_granularity {
        if !granularity_matches(sent, interval) {
            return Err(ChartProblem::Granularity { sent: sent.clone() });
        }
    }
    let Some(timestamps) = result.timestamp else {
        // Yahoo's way of saying "no bars in this range".
        return Ok(ParsedChart {
            bars: Vec::new(),
            skipped: 0,
            repairs: Repairs::default(),
        });
    };
    let rows = rows(&timestamps, result.indicators)?;
    match interval {
        Interval::Day => daily_bars(&rows, &result.meta, range),
        Interval::Hour => Ok(hourly_bars(&rows, &result.meta, range)),
    }
}

/// The chart's rows, each array checked against the timestamps.
fn rows(timestamps: &[i64], indicators: Indicators) -> Result<Vec<Row>, ChartProblem> {
    let quote = indicators
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
    timestamps
        .iter()
        .enumerate()
        .map(|(i, &secs)| {
            let ts = DateTime::<Utc>::from_timestamp(secs, 0).ok_or_else(|| {
                ChartProblem::Malformed(format!("timestamp {secs} is out of range"))
            })?;
            Ok(Row {
                ts,
                open: open[i],
                high: high[i],
                low: low[i],
                close: close[i],
                volume: volume[i]
                    .filter(|v| v.is_finite())
                    .map(|v| v.round() as i64),
            })
        })
        .collect()
}

/// The exchange's zone from `meta.exchangeTimezoneName`.
fn exchange_zone(meta: &Meta) -> Result<Tz, String> {
    let name = meta
        .exchange_timezone_name
        .as_deref()
        .ok_or("meta.exchangeTimezoneName is missing")?;
    Tz::from_str(name)
        .map_err(|_| format!("meta.exchangeTimezoneName {name:?} is not a known zone"))
}

/// The first instant of `date` in `zone`. Where a DST change skips midnight (e.g.
/// America/Santiago, Asia/Beirut) the day starts at the first wall time that exists.
fn local_midnight(zone: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..=12).find_map(|quarter| {
        let wall = midnight + chrono::Duration::minutes(15 * quarter);
        zone.from_local_datetime(&wall)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Daily bars keyed at 00:00 exchange-local of their trading day, for the trading days whose
/// local date lies in `range`. Yahoo stamps a finished day at its session open and the day in
/// progress at `regularMarketTime` (sometimes both in one answer): both map to the same key, and
/// the later stamp — the freshest numbers — wins, as yfinance does when two daily rows share a
/// date (`fix_Yahoo_returning_live_separate` in yfinance/utils.py drops the earlier one).
fn daily_bars(rows: &[Row], meta: &Meta, range: &DateRange) -> Result<ParsedChart, ChartProblem> {
    if rows.is_empty() {
        return Ok(ParsedChart {
            bars: Vec::new(),
            skipped: 0,
            repairs: Repairs::default(),
        });
    }
    let zone = exchange_zone(meta).map_err(|m| {
        ChartProblem::Malformed(format!(
            "{m}: daily bars are keyed by the exchange's trading date"
        ))
    })?;
    let mut by_key: BTreeMap<DateTime<Utc>, (DateTime<Utc>, Bar)> = BTreeMap::new();
    let mut skipped = 0;
    for row in rows {
        let date = row.ts.with_timezone(&zone).date_naive();
        if date < range.start() || date > range.end() {
            continue;
        }
        let Some(mut bar) = row.bar() else {
            skipped += 1;
            continue;
        };
        let key = local_midnight(zone, date)
            .ok_or_else(|| ChartProblem::Malformed(format!("{date} has no midnight in {zone}")))?;
        bar.ts = key;
        match by_key.get(&key) {
            Some((stamped, _)) if *stamped > row.ts => {}
            _ => {
                by_key.insert(key, (row.ts, bar));
            }
        }
    }
    Ok(ParsedChart {
        bars: by_key.into_values().map(|(_, bar)| bar).collect(),
        skipped,
        repairs: Repairs::default(),
    })
}

/// What is known of an intraday chart's sessions, to tell where a day's periods start and
/// where its session closes.
struct Sessions {
    /// The exchange's zone, or UTC when the chart does not name one (intraday keys do not
    /// depend on it; it only groups bars into trading days).
    zone: Tz,
    /// Regular sessions from `tradingPeriods` and `currentTradingPeriod.regular`.
    periods: Vec<Period>,
    /// `currentTradingPeriod.regular.start`: the open of the latest session.
    current_start: Option<DateTime<Utc>>,
    /// The first bar of each local trading day.
    first_bar: BTreeMap<NaiveDate, DateTime<Utc>>,
    /// The last bar of each local trading day.
    last_bar: BTreeMap<NaiveDate, DateTime<Utc>>,
}

impl Sessions {
    fn new(rows: &[Row], meta: &Meta) -> Self {
        let zone = exchange_zone(meta).unwrap_or(Tz::UTC);
        let current = meta.current_trading_period.as_ref().and_then(|c| c.regular);
        let mut periods: Vec<Period> = meta
            .trading_periods
            .as_ref()
            .map(|t| t.regular().collect())
            .unwrap_or_default();
        periods.extend(current);
        let mut first_bar = BTreeMap::new();
        let mut last_bar = BTreeMap::new();
        for row in rows {
            let date = row.ts.with_timezone(&zone).date_naive();
            first_bar
                .entry(date)
                .and_modify(|t: &mut DateTime<Utc>| *t = (*t).min(row.ts))
                .or_insert(row.ts);
            last_bar
                .entry(date)
                .and_modify(|t: &mut DateTime<Utc>| *t = (*t).max(row.ts))
                .or_insert(row.ts);
        }
        Self {
            zone,
            periods,
            current_start: current.and_then(|p| DateTime::from_timestamp(p.start, 0)),
            first_bar,
            last_bar,
        }
    }

    fn local_date(&self, ts: DateTime<Utc>) -> NaiveDate {
        ts.with_timezone(&self.zone).date_naive()
    }

    /// The regular session `ts` lies in (open to close, both included).
    fn session_of(&self, ts: DateTime<Utc>) -> Option<Period> {
        let secs = ts.timestamp();
        self.periods
            .iter()
            .copied()
            .find(|p| p.start <= secs && secs <= p.end)
    }

    /// Where the hourly grid of `ts`'s trading day starts: the open of its session (from
    /// `tradingPeriods` or `currentTradingPeriod`); else the latest session's local opening time
    /// on that day (exchanges open at the same wall time every day, across DST changes too);
    /// else the day's first bar other than `ts` itself.
    fn anchor(&self, ts: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(session) = self.session_of(ts) {
            return DateTime::from_timestamp(session.start, 0);
        }
        let date = self.local_date(ts);
        if let Some(current) = self.current_start {
            let open = current.with_timezone(&self.zone).time();
            if let Some(start) = self
                .zone
                .from_local_datetime(&date.and_time(open))
                .earliest()
            {
                return Some(start.with_timezone(&Utc));
            }
        }
        self.first_bar
            .get(&date)
            .copied()
            .filter(|first| *first != ts)
    }

    /// The start of the hourly period `ts` falls in, if its day's grid is known and `ts` is
    /// not before the day's first period.
    fn period_start(&self, ts: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let anchor = self.anchor(ts)?;
        let offset = (ts - anchor).num_seconds();
        if offset < 0 {
            return None;
        }
        DateTime::from_timestamp(anchor.timestamp() + offset - offset % HOUR_SECS, 0)
    }

    /// Whether `ts` is a period start of its day's grid (unknown grid: taken as on it).
    fn on_grid(&self, ts: DateTime<Utc>) -> bool {
        self.period_start(ts).is_none_or(|start| start == ts)
    }

    /// Whether `row` is the zero-volume bar Yahoo appends at the session close: volume 0, one
    /// price for all four, stamped at the close of a known session, or off the grid as the
    /// last bar of its trading day. yfinance drops the same bar (rows at or after the session
    /// end, `fix_Yahoo_returning_prepost_unrequested` in yfinance/utils.py; see also yfinance
    /// pull request #2806: "Yahoo returns a bar at exactly `end` … `Volume == 0`").
    ///
    /// The live bar of a session in progress looks the same (last of its day, off the grid,
    /// often one price and volume 0: see the recorded AAPL answer in tests/fixtures/yahoo), so
    /// a bar stamped at `live_at` counts only when it is at a known session's close.
    fn is_close_bar(&self, row: &Row, live_at: Option<DateTime<Utc>>) -> bool {
        let flat = matches!(
            (row.open, row.high, row.low, row.close),
            (Some(o), Some(h), Some(l), Some(c)) if o == h && h == l && l == c
        );
        if row.volume != Some(0) || !flat {
            return false;
        }
        let at_close = self
            .session_of(row.ts)
            .is_some_and(|p| p.end == row.ts.timestamp());
        let last_of_day = self.last_bar.get(&self.local_date(row.ts)) == Some(&row.ts);
        at_close || (Some(row.ts) != live_at && last_of_day && !self.on_grid(row.ts))
    }
}

/// Hourly bars at their period start, for the periods whose start lies in `range` (UTC days).
fn hourly_bars(rows: &[Row], meta: &Meta, range: &DateRange) -> ParsedChart {
    let sessions = Sessions::new(rows, meta);
    let live_at = meta
        .regular_market_time
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
    let (from, to) = (range.start_instant(), range.end_exclusive_instant());
    let in_range = |ts: DateTime<Utc>| from <= ts && ts < to;
    let mut repairs = Repairs::default();
    let mut skipped = 0;
    let mut by_start: BTreeMap<DateTime<Utc>, Bar> = BTreeMap::new();
    let mut live: Vec<Bar> = Vec::new();
    for row in rows {
        let Some(bar) = row.bar() else {
            // Yahoo may add bars outside the requested window (e.g. the current session).
            skipped += u32::from(in_range(row.ts));
            continue;
        };
        // The close bar first: when the live stamp is the close itself, the bar is still the
        // closing print, not a period.
        if sessions.is_close_bar(row, live_at) {
            repairs.close_dropped += 1;
            continue;
        }
        if Some(row.ts) == live_at {
            match sessions.period_start(row.ts) {
                // On the grid: the period's own bar, nothing to repair.
                Some(start) if start == row.ts => {}
                Some(_) => {
                    live.push(bar);
                    continue;
                }
                // Stored at its raw stamp it would be a key no other writer uses.
                None => {
                    repairs.live_dropped += 1;
                    continue;
                }
            }
        }
        // A repeated stamp keeps the later row, as the store would.
        by_start.insert(bar.ts, bar);
    }
    for mut bar in live {
        let Some(start) = sessions.period_start(bar.ts) else {
            repairs.live_dropped += 1;
            continue;
        };
        match by_start.get_mut(&start) {
            Some(period) => {
                period.high = max_of(period.high, bar.high);
                period.low = min_of(period.low, bar.low);
                period.close = bar.close;
                period.volume = max_of(period.volume, bar.volume);
                repairs.live_merged += 1;
            }
            None => {
                bar.ts = start;
                by_start.insert(start, bar);
                repairs.live_moved += 1;
            }
        }
    }
    ParsedChart {
        bars: by_start
            .into_values()
            .filter(|bar| in_range(bar.ts))
            .collect(),
        skipped,
        repairs,
    }
}

fn max_of<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn min_of<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_date;
    use serde_json::{json, Value};

    fn range(start: &str, end: &str) -> DateRange {
        DateRange::new(
            parse_date("start", start).unwrap(),
            parse_date("end", end).unwrap(),
        )
        .unwrap()
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(rfc3339: &str) -> i64 {
        at(rfc3339).timestamp()
    }

    fn spelt(raw: &str) -> String {
        yahoo_symbol(&Symbol::parse(raw).unwrap())
    }

    /// One row: stamp, open, high, low, close, volume.
    type R = (&'static str, f64, f64, f64, f64, i64);

    /// A 200 chart body with `meta` and these rows.
    fn chart(meta: Value, rows: &[R]) -> String {
        let column = |f: fn(&R) -> Value| rows.iter().map(f).collect::<Vec<Value>>();
        json!({"chart": {"result": [{
            "meta": meta,
            "timestamp": rows.iter().map(|r| secs(r.0)).collect::<Vec<i64>>(),
            "indicators": {"quote": [{
                "open": column(|r| json!(r.1)),
                "high": column(|r| json!(r.2)),
                "low": column(|r| json!(r.3)),
                "close": column(|r| json!(r.4)),
                "volume": column(|r| json!(r.5)),
            }]}
        }], "error": null}})
        .to_string()
    }

    fn bar(ts: &str, o: f64, h: f64, l: f64, c: f64, v: i64) -> Bar {
        Bar {
            ts: at(ts),
            open: Some(o),
            high: Some(h),
            low: Some(l),
            close: c,
            volume: Some(v),
        }
    }

    fn stamps(parsed: &ParsedChart) -> Vec<String> {
        parsed
            .bars
            .iter()
            .map(|b| b.ts.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    fn parse_ok(body: &str, r: &DateRange, interval: Interval) -> ParsedChart {
        match parse_chart(body, r, interval) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{e:?}"),
        }
    }

    const RECORDED_NVDA_CLOSE_BAR: &str =
        include_str!("../../tests/fixtures/yahoo/nvda_1h_2024-05-03_close_bar.json");
    const RECORDED_AAPL_LIVE_HOUR: &str =
        include_str!("../../tests/fixtures/yahoo/aapl_1h_5d_2026-10-05_live.json");
    const RECORDED_TOKYO_LIVE_DAY: &str =
        include_str!("../../tests/fixtures/yahoo/6309_t_1d_2025-05-19_live.json");
    const RECORDED_LONDON_DAY: &str =
        include_str!("../../tests/fixtures/yahoo/ocdo_l_1d_2020-01-02.json");
    const RECORDED_JAKARTA_DAY: &str =
        include_str!("../../tests/fixtures/yahoo/wskt_jk_1d_2020-01-02.json");
    const RECORDED_TSLA_30M: &str =
        include_str!("../../tests/fixtures/yahoo/tsla_30m_2021-11-22_trimmed.json");

    // ---- symbol spelling ----

    #[test]
    fn share_classes_take_a_dash() {
        assert_eq!(spelt("brk.b"), "BRK-B");
        assert_eq!(spelt("BF.B"), "BF-B");
        assert_eq!(spelt("BRK.A"), "BRK-A");
        assert_eq!(spelt("AAPL"), "AAPL");
        assert_eq!(spelt("BRK-B"), "BRK-B");
    }

    #[test]
    fn exchange_suffixes_keep_their_dot() {
        for symbol in [
            "GS2C.DE",
            "WSU.DE",
            "SAP.DE",
            "0P000071W8.TO",
            "SHOP.TO",
            "7203.T",
            "TSCO.L",
            "OCDO.L",
            "WSKT.JK",
            "6309.T",
        ] {
            assert_eq!(spelt(symbol), symbol);
        }
        // A class before an exchange suffix still takes a dash (Yahoo's `BT-A.L`).
        assert_eq!(spelt("BT.A.L"), "BT-A.L");
        // Symbols without a dot pass through, whatever else they hold.
        for symbol in ["^GSPC", "EURUSD=X", "BTC-USD"] {
            assert_eq!(spelt(symbol), symbol);
        }
    }

    #[test]
    fn a_suffix_not_in_the_table_is_a_share_class() {
        assert!(!is_exchange_suffix("B"));
        assert_eq!(spelt("ABC.XYZ"), "ABC-XYZ");
        assert!(is_exchange_suffix("de"));
    }

    #[test]
    fn the_suffix_table_is_sorted_unique_and_upper_case() {
        for pair in EXCHANGE_SUFFIXES.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        for suffix in EXCHANGE_SUFFIXES {
            assert_eq!(suffix.to_ascii_uppercase(), *suffix);
        }
        for suffix in ["DE", "TO", "T", "L", "PA", "HK", "AX", "SW", "V", "F"] {
            assert!(is_exchange_suffix(suffix), "{suffix}");
        }
    }

    // ---- request window and the 730-day rule ----

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
    fn daily_requests_ask_for_a_day_more_on_each_side_and_hourly_for_the_utc_days() {
        let r = range("2026-03-09", "2026-03-11");
        assert_eq!(
            request_window(&r, Interval::Day),
            (at("2026-03-08T00:00:00Z"), at("2026-03-13T00:00:00Z"))
        );
        assert_eq!(
            request_window(&r, Interval::Hour),
            (at("2026-03-09T00:00:00Z"), at("2026-03-12T00:00:00Z"))
        );
    }

    // ---- body shape ----

    #[test]
    fn arrays_shorter_than_the_timestamps_are_malformed() {
        let body = r#"{"chart":{"result":[{"meta":{},"timestamp":[1773063000,1773066600],
            "indicators":{"quote":[{"open":[1.0],"high":[1.0,1.0],"low":[1.0,1.0],"close":[1.0,1.0],"volume":[1,1]}]}}],"error":null}}"#;
        let got = parse_chart(body, &range("2026-03-09", "2026-03-09"), Interval::Hour);
        assert!(matches!(got, Err(ChartProblem::Malformed(m)) if m.contains("open")));
    }

    // ---- granularity ----

    fn interpret_200(
        body: &str,
        symbol: &str,
        interval: Interval,
    ) -> Result<FetchedBars, ProviderError> {
        let symbol = Symbol::parse(symbol).unwrap();
        let requested_as = yahoo_symbol(&symbol);
        let r = range("2026-03-09", "2026-03-11");
        let request = ChartRequest {
            symbol: &symbol,
            requested_as: &requested_as,
            range: &r,
            interval,
        };
        interpret(StatusCode::OK, None, body, &request).map(|(fetched, _)| fetched)
    }

    #[test]
    fn another_granularity_than_asked_fails_the_ticker_naming_both() {
        let body = chart(
            json!({"dataGranularity": "3mo", "exchangeTimezoneName": "America/New_York"}),
            &[("2026-03-09T13:30:00Z", 1.0, 2.0, 0.5, 1.5, 100)],
        );
        let err = interpret_200(&body, "MSFT", Interval::Hour).unwrap_err();
        assert_eq!(
            err,
            ProviderError::MalformedResponse(
                "yahoo sent 3mo bars for MSFT where 1h was asked".to_string()
            )
        );
        assert!(err.is_ticker_failure());
        // Hourly bars sent for a daily run are refused the same way.
        let hourly = chart(
            json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York"}),
            &[("2026-03-09T13:30:00Z", 1.0, 2.0, 0.5, 1.5, 100)],
        );
        let err = interpret_200(&hourly, "MSFT", Interval::Day).unwrap_err();
        assert!(
            matches!(&err, ProviderError::MalformedResponse(m) if m == "yahoo sent 1h bars for MSFT where 1d was asked"),
            "{err:?}"
        );
    }

    #[test]
    fn sixty_minutes_is_one_hour_and_a_missing_granularity_is_accepted() {
        let rows = [("2026-03-09T13:30:00Z", 1.0, 2.0, 0.5, 1.5, 100)];
        for meta in [
            json!({"dataGranularity": "60m"}),
            json!({"dataGranularity": "1h"}),
            json!({}),
        ] {
            let fetched = interpret_200(&chart(meta.clone(), &rows), "MSFT", Interval::Hour)
                .unwrap_or_else(|e| panic!("{meta}: {e:?}"));
            assert_eq!(fetched.bars.len(), 1, "{meta}");
        }
    }

    #[test]
    fn an_empty_chart_of_another_granularity_still_fails() {
        let body = json!({"chart": {"result": [{"meta": {"dataGranularity": "1wk"},
            "indicators": {"quote": [{}]}}], "error": null}})
        .to_string();
        let got = parse_chart(&body, &range("2026-03-09", "2026-03-11"), Interval::Day);
        assert_eq!(got, Err(ChartProblem::Granularity { sent: "1wk".into() }));
    }

    // ---- daily keys ----

    fn daily_meta(zone: &str) -> Value {
        json!({"dataGranularity": "1d", "exchangeTimezoneName": zone})
    }

    #[test]
    fn daily_bars_are_keyed_at_new_york_midnight_in_summer_and_winter() {
        let body = chart(
            daily_meta("America/New_York"),
            &[
                ("2026-03-06T14:30:00Z", 10.0, 11.0, 9.0, 10.5, 1000),
                ("2026-03-09T13:30:00Z", 10.5, 12.0, 10.0, 11.0, 2000),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-03-06", "2026-03-09"), Interval::Day);
        // EST (-5) on Friday, EDT (-4) from Monday on.
        assert_eq!(
            stamps(&parsed),
            ["2026-03-06T05:00:00Z", "2026-03-09T04:00:00Z"]
        );
        assert_eq!(
            parsed.bars[1],
            bar("2026-03-09T04:00:00Z", 10.5, 12.0, 10.0, 11.0, 2000)
        );
    }

    #[test]
    fn the_live_daily_bar_and_the_final_bar_share_a_key_and_the_later_stamp_wins() {
        let final_bar = ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.0, 10.5, 1000);
        let live_bar = ("2026-07-14T16:48:24Z", 10.0, 11.5, 9.0, 11.2, 1500);
        let live_meta = json!({"dataGranularity": "1d", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs("2026-07-14T16:48:24Z")});
        let r = range("2026-07-14", "2026-07-14");
        let live_only = parse_ok(&chart(live_meta.clone(), &[live_bar]), &r, Interval::Day);
        let final_only = parse_ok(&chart(live_meta.clone(), &[final_bar]), &r, Interval::Day);
        assert_eq!(stamps(&live_only), ["2026-07-14T04:00:00Z"]);
        assert_eq!(stamps(&final_only), stamps(&live_only));
        // Both in one answer (yfinance has seen it): one bar, the live numbers.
        let both = parse_ok(&chart(live_meta, &[final_bar, live_bar]), &r, Interval::Day);
        assert_eq!(
            both.bars,
            [bar("2026-07-14T04:00:00Z", 10.0, 11.5, 9.0, 11.2, 1500)]
        );
    }

    #[test]
    fn tokyo_daily_keys_fall_on_the_previous_utc_day_and_days_are_chosen_by_tokyo_date() {
        // Tokyo opens 09:00 JST = 00:00Z; its day starts at 15:00Z the day before.
        let body = chart(
            daily_meta("Asia/Tokyo"),
            &[
                ("2026-03-09T00:00:00Z", 1.0, 2.0, 0.5, 1.5, 10),
                ("2026-03-10T00:00:00Z", 1.5, 2.5, 1.0, 2.0, 20),
                ("2026-03-11T00:00:00Z", 2.0, 3.0, 1.5, 2.5, 30),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-03-10", "2026-03-10"), Interval::Day);
        assert_eq!(stamps(&parsed), ["2026-03-09T15:00:00Z"]);
        assert_eq!(parsed.bars[0].close, 2.0);
    }

    #[test]
    fn berlin_daily_keys_follow_its_daylight_saving_time() {
        // Xetra opens 09:00 local: 08:00Z in winter (CET), 07:00Z in summer (CEST, from 29 March 2026).
        let body = chart(
            daily_meta("Europe/Berlin"),
            &[
                ("2026-03-27T08:00:00Z", 1.0, 2.0, 0.5, 1.5, 10),
                ("2026-03-30T07:00:00Z", 1.5, 2.5, 1.0, 2.0, 20),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-03-27", "2026-03-30"), Interval::Day);
        assert_eq!(
            stamps(&parsed),
            ["2026-03-26T23:00:00Z", "2026-03-29T22:00:00Z"]
        );
    }

    #[test]
    fn a_midnight_skipped_by_dst_keys_the_day_at_its_first_instant() {
        // Santiago springs forward at 24:00 on 2026-09-05: 2026-09-06 starts at 01:00 local (-03).
        let zone: Tz = "America/Santiago".parse().unwrap();
        let day = parse_date("day", "2026-09-06").unwrap();
        assert_eq!(local_midnight(zone, day), Some(at("2026-09-06T04:00:00Z")));
    }

    #[test]
    fn a_daily_chart_without_a_known_exchange_zone_is_malformed() {
        let rows = [("2026-03-09T13:30:00Z", 1.0, 2.0, 0.5, 1.5, 10)];
        let r = range("2026-03-09", "2026-03-09");
        let missing = parse_chart(
            &chart(json!({"dataGranularity": "1d"}), &rows),
            &r,
            Interval::Day,
        );
        assert!(
            matches!(&missing, Err(ChartProblem::Malformed(m)) if m.contains("exchangeTimezoneName is missing")),
            "{missing:?}"
        );
        let unknown = parse_chart(
            &chart(daily_meta("Mars/Olympus_Mons"), &rows),
            &r,
            Interval::Day,
        );
        assert!(
            matches!(&unknown, Err(ChartProblem::Malformed(m)) if m.contains("Mars/Olympus_Mons")),
            "{unknown:?}"
        );
        let err = interpret_200(&chart(json!({}), &rows), "AAPL", Interval::Day).unwrap_err();
        assert_eq!(err.name(), "MalformedResponse");
        // Without bars the zone is not needed.
        let empty = json!({"chart": {"result": [{"meta": {"dataGranularity": "1d"},
            "indicators": {"quote": [{}]}}], "error": null}})
        .to_string();
        assert_eq!(parse_ok(&empty, &r, Interval::Day).bars, []);
    }

    #[test]
    fn daily_nulls_in_the_range_are_counted_and_the_rest_kept() {
        let body = json!({"chart": {"result": [{
            "meta": daily_meta("America/New_York"),
            "timestamp": [secs("2026-03-09T13:30:00Z"), secs("2026-03-10T13:30:00Z"), secs("2026-03-13T13:30:00Z")],
            "indicators": {"quote": [{"open": [1.0, null, 1.0], "high": [2.0, 2.0, 2.0],
                "low": [0.5, 0.5, 0.5], "close": [1.5, 1.5, null], "volume": [1, 1, 1]}]}
        }], "error": null}})
        .to_string();
        let parsed = parse_ok(&body, &range("2026-03-09", "2026-03-10"), Interval::Day);
        assert_eq!(stamps(&parsed), ["2026-03-09T04:00:00Z"]);
        // The null on the 13th lies outside the range: not counted.
        assert_eq!(parsed.skipped, 1);
    }

    // ---- intraday live bar ----

    fn hourly_meta(live: &str) -> Value {
        json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs(live),
            "currentTradingPeriod": {"regular": {"timezone": "EDT",
                "start": secs("2026-07-14T13:30:00Z"), "end": secs("2026-07-14T20:00:00Z"), "gmtoffset": -14400}}})
    }

    #[test]
    fn the_live_hourly_bar_is_merged_into_the_bar_of_its_period() {
        let body = chart(
            hourly_meta("2026-07-14T15:48:24Z"),
            &[
                ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T14:30:00Z", 10.5, 12.0, 10.0, 11.0, 900),
                ("2026-07-14T15:30:00Z", 11.0, 11.5, 10.8, 11.2, 400),
                ("2026-07-14T15:48:24Z", 11.3, 11.9, 10.6, 11.7, 350),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(
            parsed.bars.last(),
            // First open, max high, min low, last close, larger volume.
            Some(&bar("2026-07-14T15:30:00Z", 11.0, 11.9, 10.6, 11.7, 400))
        );
        assert_eq!(parsed.bars.len(), 3);
        assert_eq!(parsed.repairs.live_merged, 1);
    }

    #[test]
    fn the_live_hourly_bar_alone_in_its_period_moves_to_the_period_start() {
        let body = chart(
            hourly_meta("2026-07-14T16:48:24Z"),
            &[
                ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T14:30:00Z", 10.5, 12.0, 10.0, 11.0, 900),
                ("2026-07-14T15:30:00Z", 11.0, 11.5, 10.8, 11.2, 400),
                ("2026-07-14T16:48:24Z", 11.3, 11.9, 10.6, 11.7, 350),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(
            stamps(&parsed),
            [
                "2026-07-14T13:30:00Z",
                "2026-07-14T14:30:00Z",
                "2026-07-14T15:30:00Z",
                "2026-07-14T16:30:00Z"
            ]
        );
        assert_eq!(
            parsed.bars[3],
            bar("2026-07-14T16:30:00Z", 11.3, 11.9, 10.6, 11.7, 350)
        );
        assert_eq!(parsed.repairs.live_moved, 1);
    }

    #[test]
    fn a_live_bar_whose_period_cannot_be_told_is_dropped() {
        // No session in the meta and no other bar that day to anchor the grid.
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs("2026-07-14T16:48:24Z")});
        let body = chart(
            meta,
            &[
                ("2026-07-13T19:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T16:48:24Z", 11.3, 11.9, 10.6, 11.7, 350),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-13", "2026-07-14"), Interval::Hour);
        assert_eq!(stamps(&parsed), ["2026-07-13T19:30:00Z"]);
        assert_eq!(parsed.repairs.live_dropped, 1);
    }

    #[test]
    fn without_sessions_the_grid_starts_at_the_days_first_bar() {
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs("2026-07-14T14:05:00Z")});
        let body = chart(
            meta,
            &[
                ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T14:05:00Z", 10.6, 11.2, 10.1, 10.9, 100),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(
            parsed.bars,
            [bar("2026-07-14T13:30:00Z", 10.0, 11.2, 9.5, 10.9, 1000)]
        );
    }

    #[test]
    fn the_session_open_of_another_day_gives_the_grid_in_local_time_across_dst() {
        // The current session is a summer one (13:30Z = 09:30 EDT); a live bar on a winter day
        // (e.g. a chart cached across the change) is gridded from 09:30 EST = 14:30Z.
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs("2026-03-06T15:10:00Z"),
            "currentTradingPeriod": {"regular": {"start": secs("2026-07-14T13:30:00Z"), "end": secs("2026-07-14T20:00:00Z")}}});
        let body = chart(meta, &[("2026-03-06T15:10:00Z", 1.0, 2.0, 0.5, 1.5, 10)]);
        let parsed = parse_ok(&body, &range("2026-03-06", "2026-03-06"), Interval::Hour);
        assert_eq!(stamps(&parsed), ["2026-03-06T14:30:00Z"]);
    }

    #[test]
    fn a_flat_zero_volume_live_bar_is_merged_not_taken_for_the_close_bar() {
        // Mid-session, no session in the meta: last of its day and off the grid like a close
        // bar, but stamped at the market time (as in the recorded AAPL answer).
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs("2026-07-14T13:59:16Z")});
        let body = chart(
            meta,
            &[
                ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T13:59:16Z", 10.7, 10.7, 10.7, 10.7, 0),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(
            parsed.bars,
            [bar("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.7, 1000)]
        );
        assert_eq!(parsed.repairs.close_dropped, 0);
    }

    #[test]
    fn an_on_grid_bar_stamped_at_the_market_time_is_an_ordinary_bar() {
        let body = chart(
            hourly_meta("2026-07-14T14:30:00Z"),
            &[
                ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T14:30:00Z", 10.5, 12.0, 10.0, 11.0, 900),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(
            stamps(&parsed),
            ["2026-07-14T13:30:00Z", "2026-07-14T14:30:00Z"]
        );
        assert_eq!(parsed.repairs, Repairs::default());
    }

    // ---- intraday close bar ----

    #[test]
    fn the_zero_volume_bar_at_the_session_close_is_not_stored() {
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "regularMarketTime": secs("2026-07-14T20:00:05Z"),
            "tradingPeriods": [[{"start": secs("2026-07-14T13:30:00Z"), "end": secs("2026-07-14T20:00:00Z")}]]});
        let body = chart(
            meta,
            &[
                ("2026-07-14T18:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T19:30:00Z", 10.5, 12.0, 10.0, 11.0, 900),
                ("2026-07-14T20:00:00Z", 11.0, 11.0, 11.0, 11.0, 0),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(
            stamps(&parsed),
            ["2026-07-14T18:30:00Z", "2026-07-14T19:30:00Z"]
        );
        assert_eq!(parsed.bars[1].close, 11.0);
        assert_eq!(parsed.repairs.close_dropped, 1);
        assert_eq!(parsed.skipped, 0);
    }

    #[test]
    fn without_sessions_the_close_bar_is_the_days_last_bar_off_the_grid() {
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York"});
        let body = chart(
            meta,
            &[
                ("2026-07-13T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-13T19:30:00Z", 10.5, 12.0, 10.0, 11.0, 900),
                ("2026-07-13T20:00:00Z", 11.0, 11.0, 11.0, 11.0, 0),
                ("2026-07-14T13:30:00Z", 11.0, 11.5, 10.5, 11.1, 800),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-13", "2026-07-14"), Interval::Hour);
        assert_eq!(
            stamps(&parsed),
            [
                "2026-07-13T13:30:00Z",
                "2026-07-13T19:30:00Z",
                "2026-07-14T13:30:00Z"
            ]
        );
    }

    #[test]
    fn a_quiet_on_grid_hour_with_zero_volume_is_kept() {
        let meta = json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York",
            "tradingPeriods": [[{"start": secs("2026-07-14T13:30:00Z"), "end": secs("2026-07-14T20:00:00Z")}]]});
        let body = chart(
            meta,
            &[
                ("2026-07-14T13:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T14:30:00Z", 10.5, 10.5, 10.5, 10.5, 0),
                ("2026-07-14T19:30:00Z", 10.5, 10.5, 10.5, 10.5, 0),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(parsed.bars.len(), 3);
        assert_eq!(parsed.repairs.close_dropped, 0);
    }

    #[test]
    fn hourly_bars_are_chosen_by_their_utc_start() {
        let body = chart(
            json!({"dataGranularity": "1h", "exchangeTimezoneName": "America/New_York"}),
            &[
                ("2026-07-13T19:30:00Z", 10.0, 11.0, 9.5, 10.5, 1000),
                ("2026-07-14T13:30:00Z", 11.0, 11.5, 10.5, 11.1, 800),
                ("2026-07-15T13:30:00Z", 11.0, 11.5, 10.5, 11.1, 800),
            ],
        );
        let parsed = parse_ok(&body, &range("2026-07-14", "2026-07-14"), Interval::Hour);
        assert_eq!(stamps(&parsed), ["2026-07-14T13:30:00Z"]);
    }

    // ---- recorded answers (see tests/fixtures/yahoo/README.md) ----

    #[test]
    fn recorded_nvda_hourly_chart_loses_its_appended_close_bar() {
        let parsed = parse_ok(
            RECORDED_NVDA_CLOSE_BAR,
            &range("2024-05-03", "2024-05-03"),
            Interval::Hour,
        );
        assert_eq!(
            stamps(&parsed),
            [
                "2024-05-03T13:30:00Z",
                "2024-05-03T14:30:00Z",
                "2024-05-03T15:30:00Z",
                "2024-05-03T16:30:00Z",
                "2024-05-03T17:30:00Z",
                "2024-05-03T18:30:00Z",
                "2024-05-03T19:30:00Z"
            ]
        );
        assert_eq!(parsed.repairs.close_dropped, 1);
        assert_eq!(parsed.bars[6].close, 887.8699951171875);
        assert_eq!(parsed.bars[6].volume, Some(2798449));
    }

    #[test]
    fn recorded_aapl_live_hour_is_merged_into_its_period() {
        let parsed = parse_ok(
            RECORDED_AAPL_LIVE_HOUR,
            &range("2026-09-29", "2026-10-05"),
            Interval::Hour,
        );
        assert_eq!(parsed.bars.len(), 7);
        assert_eq!(
            parsed.bars.last(),
            Some(&bar(
                "2026-10-05T13:30:00Z",
                332.7950134277344,
                336.19000244140625,
                331.6499938964844,
                333.79071044921875,
                3960224
            ))
        );
        assert_eq!(parsed.repairs.live_merged, 1);
        assert!(parsed
            .bars
            .iter()
            .all(|b| b.ts.format("%M:%S").to_string() == "30:00"));
    }

    #[test]
    fn recorded_tokyo_daily_chart_keys_the_live_day_like_the_others() {
        let parsed = parse_ok(
            RECORDED_TOKYO_LIVE_DAY,
            &range("2025-04-21", "2025-05-19"),
            Interval::Day,
        );
        assert_eq!(parsed.bars.len(), 18);
        // Every key is 00:00 JST = 15:00Z of the day before.
        assert!(parsed
            .bars
            .iter()
            .all(|b| b.ts.format("%H:%M:%S").to_string() == "15:00:00"));
        assert_eq!(stamps(&parsed)[0], "2025-04-20T15:00:00Z");
        assert_eq!(
            parsed.bars[17],
            bar(
                "2025-05-18T15:00:00Z",
                1407.0,
                1431.0,
                1402.0,
                1403.0,
                105500
            )
        );
        // The range is of Tokyo dates: 18 May (a Sunday in Tokyo) has no bar even though the
        // key of the 19th lies on 18 May UTC.
        let sunday = parse_ok(
            RECORDED_TOKYO_LIVE_DAY,
            &range("2025-05-18", "2025-05-18"),
            Interval::Day,
        );
        assert_eq!(sunday.bars, []);
        let monday = parse_ok(
            RECORDED_TOKYO_LIVE_DAY,
            &range("2025-05-19", "2025-05-19"),
            Interval::Day,
        );
        assert_eq!(stamps(&monday), ["2025-05-18T15:00:00Z"]);
    }

    #[test]
    fn recorded_london_and_jakarta_daily_bars_are_keyed_at_local_midnight() {
        let london = parse_ok(
            RECORDED_LONDON_DAY,
            &range("2020-01-02", "2020-01-02"),
            Interval::Day,
        );
        assert_eq!(
            london.bars,
            [bar(
                "2020-01-02T00:00:00Z",
                1279.5,
                1286.5699462890625,
                1258.0,
                1259.5,
                728520
            )]
        );
        let jakarta = parse_ok(
            RECORDED_JAKARTA_DAY,
            &range("2020-01-02", "2020-01-02"),
            Interval::Day,
        );
        assert_eq!(
            jakarta.bars,
            [bar(
                "2020-01-01T17:00:00Z",
                1485.0,
                1515.0,
                1480.0,
                1505.0,
                23547100
            )]
        );
        let utc_day_of_the_key = parse_ok(
            RECORDED_JAKARTA_DAY,
            &range("2020-01-01", "2020-01-01"),
            Interval::Day,
        );
        assert_eq!(utc_day_of_the_key.bars, []);
    }

    #[test]
    fn recorded_thirty_minute_chart_fails_an_hourly_request() {
        let got = parse_chart(
            RECORDED_TSLA_30M,
            &range("2021-11-22", "2021-11-22"),
            Interval::Hour,
        );
        assert_eq!(got, Err(ChartProblem::Granularity { sent: "30m".into() }));
        let err = interpret_200(RECORDED_TSLA_30M, "TSLA", Interval::Hour).unwrap_err();
        assert!(
            matches!(&err, ProviderError::MalformedResponse(m) if m == "yahoo sent 30m bars for TSLA where 1h was asked"),
            "{err:?}"
        );
    }

    #[test]
    fn trading_periods_with_pre_and_post_market_are_read_for_their_regular_sessions() {
        // The TSLA recording's `{pre, regular, post}` shape, with its granularity made 1h.
        let body = RECORDED_TSLA_30M.replace("\"30m\"", "\"1h\"");
        let envelope: ChartEnvelope = serde_json::from_str(&body).unwrap();
        let meta = &envelope.chart.result.unwrap()[0].meta;
        let regular: Vec<(i64, i64)> = meta
            .trading_periods
            .as_ref()
            .unwrap()
            .regular()
            .map(|p| (p.start, p.end))
            .collect();
        assert_eq!(regular, [(1637591400, 1637614800)]);
    }
}
