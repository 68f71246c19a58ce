//! Polygon aggregates v2:
//! `GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}?adjusted&sort&limit&apiKey`,
//! and the grouped daily bars: `GET /v2/aggs/grouped/locale/us/market/stocks/{date}` (see
//! [`grouped`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::generator::{self, canonical_symbol, Interval, Provider, SimBar};
use crate::knobs::{FailKind, Knobs};
use crate::state::{Admission, SimState};
use crate::{json_response, truncated};

/// Where `next_url` points, as the real API does: clients must keep only its path and query.
pub const PUBLIC_BASE_URL: &str = "https://api.polygon.io";
const DEFAULT_LIMIT: usize = 5000;
const MAX_LIMIT: usize = 50_000;

fn error(state: &SimState, status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"status": "ERROR", "request_id": state.next_request_id(), "error": message}),
    )
}

pub async fn aggregates(
    State(state): State<Arc<SimState>>,
    Path((ticker, multiplier, timespan, from, to)): Path<(String, String, String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let knobs = state.knobs();
    let truncate = match answer_or_refuse(&state, &knobs, &params, &headers).await {
        Ok(truncate) => truncate,
        Err(refused) => return refused,
    };
    let request = match Request::parse(&ticker, &multiplier, &timespan, &from, &to, &params) {
        Ok(r) => r,
        Err(message) => return error(&state, StatusCode::BAD_REQUEST, &message),
    };
    let body = request.page(&knobs, &state.next_request_id());
    if truncate || knobs.is_malformed(&ticker) {
        truncated(&body)
    } else {
        json_response(StatusCode::OK, &body)
    }
}

/// A `from`/`to` path segment: a day in New York time, or epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Day(NaiveDate),
    Millis(i64),
}

impl Bound {
    fn parse(raw: &str) -> Result<Bound, String> {
        if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            return Ok(Bound::Day(day));
        }
        raw.parse::<i64>()
            .map(Bound::Millis)
            .map_err(|_| format!("Could not parse the time parameter: '{raw}'. Use YYYY-MM-DD or a millisecond timestamp."))
    }

    fn segment(&self) -> String {
        match self {
            Bound::Day(d) => d.format("%Y-%m-%d").to_string(),
            Bound::Millis(ms) => ms.to_string(),
        }
    }

    /// `from`: first instant included.
    fn start(&self) -> Option<DateTime<Utc>> {
        match self {
            Bound::Day(d) => generator::new_york_midnight(*d),
            Bound::Millis(ms) => DateTime::from_timestamp_millis(*ms),
        }
    }

    /// `to`: first instant excluded (a day is included whole, a millisecond bound inclusively).
    fn end_exclusive(&self) -> Option<DateTime<Utc>> {
        match self {
            Bound::Day(d) => d.succ_opt().and_then(generator::new_york_midnight),
            Bound::Millis(ms) => DateTime::from_timestamp_millis(ms.saturating_add(1)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Asc,
    Desc,
}

#[derive(Debug)]
struct Request {
    ticker: String,
    interval: Interval,
    from: Bound,
    to: Bound,
    adjusted: bool,
    sort: Sort,
    limit: usize,
}

/// The cursor is an opaque token holding the query of the first request (hex keeps it URL-safe).
fn encode_cursor(query: &str) -> String {
    query.bytes().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn decode_cursor(cursor: &str) -> Option<HashMap<String, String>> {
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(
        text.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

impl Request {
    fn parse(
        ticker: &str,
        multiplier: &str,
        timespan: &str,
        from: &str,
        to: &str,
        params: &HashMap<String, String>,
    ) -> Result<Request, String> {
        if multiplier != "1" {
            return Err(format!(
                "multiplier {multiplier} is not supported by market-sim (use 1)"
            ));
        }
        let interval = match timespan {
            "hour" => Interval::Hour,
            "day" => Interval::Day,
            other => {
                return Err(format!(
                    "timespan {other} is not supported by market-sim (use hour or day)"
                ))
            }
        };
        // A cursor carries the first request's options; explicit parameters are ignored then.
        let mut options = params.clone();
        if let Some(cursor) = params.get("cursor") {
            options = decode_cursor(cursor).ok_or_else(|| "Invalid cursor".to_string())?;
        }
        let adjusted = options.get("adjusted").is_none_or(|v| v != "false");
        let sort = match options.get("sort").map(String::as_str) {
            None | Some("asc") => Sort::Asc,
            Some("desc") => Sort::Desc,
            Some(other) => return Err(format!("sort {other} is not one of asc, desc")),
        };
        let limit = match options.get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .map_err(|_| format!("limit {raw} is not a number"))?
                .clamp(1, MAX_LIMIT),
        };
        Ok(Request {
            ticker: ticker.to_string(),
            interval,
            from: Bound::parse(from)?,
            to: Bound::parse(to)?,
            adjusted,
            sort,
            limit,
        })
    }

    fn bars(&self, knobs: &Knobs) -> Vec<SimBar> {
        // Polygon answers an unknown ticker exactly like an empty range.
        if knobs.is_unknown(&self.ticker) {
            return Vec::new();
        }
        let (Some(from), Some(to)) = (self.from.start(), self.to.end_exclusive()) else {
            return Vec::new();
        };
        let pad = Duration::days(i64::from(knobs.pad_range_days));
        let mut bars = generator::polygon_bars(
            &self.ticker,
            self.interval,
            from - pad,
            to + pad,
            knobs.scale(&self.ticker),
        );
        if self.sort == Sort::Desc {
            bars.reverse();
        }
        bars
    }

    fn next_url(&self, next: &SimBar) -> String {
        let next_ms = Bound::Millis(next.ts.timestamp_millis());
        let (from, to) = match self.sort {
            Sort::Asc => (next_ms, self.to),
            Sort::Desc => (self.from, next_ms),
        };
        let timespan = match self.interval {
            Interval::Hour => "hour",
            Interval::Day => "day",
        };
        let sort = match self.sort {
            Sort::Asc => "asc",
            Sort::Desc => "desc",
        };
        let cursor = encode_cursor(&format!(
            "adjusted={}&limit={}&sort={sort}",
            self.adjusted, self.limit
        ));
        // Like the real API: the public host, and no apiKey.
        format!(
            "{PUBLIC_BASE_URL}/v2/aggs/ticker/{}/range/1/{timespan}/{}/{}?cursor={cursor}",
            self.ticker,
            from.segment(),
            to.segment()
        )
    }

    fn page(&self, knobs: &Knobs, request_id: &str) -> Value {
        let bars = self.bars(knobs);
        let page_size = knobs
            .polygon_page_size
            .map_or(self.limit, |cap| self.limit.min(cap.max(1) as usize));
        let page = &bars[..bars.len().min(page_size)];
        let mut body = json!({
            "ticker": self.ticker,
            "queryCount": page.len(),
            "resultsCount": page.len(),
            "adjusted": self.adjusted,
            "status": knobs.polygon_status,
            "request_id": request_id,
            "count": page.len(),
        });
        let Value::Object(fields) = &mut body else {
            return body;
        };
        if !page.is_empty() {
            let results: Vec<Value> = page
                .iter()
                .map(|b| {
                    json!({
                        // Polygon sends volume as a JSON float (adjusted volumes can be fractional).
                        "v": b.volume as f64,
                        "vw": b.vwap,
                        "o": b.open,
                        "c": b.close,
                        "h": b.high,
                        "l": b.low,
                        "t": b.ts.timestamp_millis(),
                        "n": b.transactions,
                    })
                })
                .collect();
            fields.insert("results".into(), Value::Array(results));
        }
        if let Some(next) = bars.get(page.len()) {
            fields.insert("next_url".into(), Value::String(self.next_url(next)));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: &str, to: &str, extra: &[(&str, &str)]) -> Request {
        let params: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Request::parse("AAPL", "1", "hour", from, to, &params).unwrap()
    }

    fn query_of(url: &str) -> HashMap<String, String> {
        let query = url.split_once('?').unwrap().1;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn days_are_new_york_days_and_milliseconds_are_inclusive() {
        let knobs = Knobs::default();
        let by_day = request("2026-03-10", "2026-03-10", &[]).bars(&knobs);
        assert_eq!(by_day.len(), 16);
        let first = by_day[0].ts.timestamp_millis();
        let last = by_day[15].ts.timestamp_millis();
        let by_ms = request(&first.to_string(), &last.to_string(), &[]).bars(&knobs);
        assert_eq!(by_ms, by_day);
        let one_short = request(&first.to_string(), &(last - 1).to_string(), &[]).bars(&knobs);
        assert_eq!(one_short.len(), 15);
    }

    #[test]
    fn pages_chain_through_next_url_on_the_public_host_without_the_key() {
        let knobs = Knobs {
            polygon_page_size: Some(20),
            ..Knobs::default()
        };
        let mut req = request(
            "2026-03-09",
            "2026-03-11",
            &[("limit", "50000"), ("apiKey", "test-key")],
        );
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            let body = req.page(&knobs, "id");
            for r in body["results"].as_array().unwrap() {
                seen.push(r["t"].as_i64().unwrap());
            }
            let Some(next) = body.get("next_url").and_then(Value::as_str) else {
                break;
            };
            assert!(
                next.starts_with("https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/hour/"),
                "{next}"
            );
            assert!(!next.contains("apiKey"), "{next}");
            let path = next.split_once('?').unwrap().0;
            let segments: Vec<&str> = path.rsplitn(3, '/').collect();
            let params = query_of(next);
            req = Request::parse("AAPL", "1", "hour", segments[1], segments[0], &params).unwrap();
        }
        assert_eq!(pages, 3);
        let all: Vec<i64> = request("2026-03-09", "2026-03-11", &[])
            .bars(&Knobs::default())
            .iter()
            .map(|b| b.ts.timestamp_millis())
            .collect();
        assert_eq!(seen, all);
        assert_eq!(seen.len(), 48);
    }

    #[test]
    fn an_empty_range_has_no_results_key() {
        let body = request("2026-03-07", "2026-03-08", &[]).page(&Knobs::default(), "id");
        assert!(body.get("results").is_none());
        assert_eq!(body["resultsCount"], json!(0));
        assert_eq!(body["status"], json!("OK"));
    }

    #[test]
    fn unknown_tickers_look_like_an_empty_range() {
        let knobs = Knobs {
            unknown_symbols: ["AAPL".to_string()].into(),
            ..Knobs::default()
        };
        let body = request("2026-03-09", "2026-03-11", &[]).page(&knobs, "id");
        assert!(body.get("results").is_none());
        assert_eq!(body["status"], json!("OK"));
    }

    #[test]
    fn volume_is_a_json_float() {
        let body = request("2026-03-09", "2026-03-09", &[]).page(&Knobs::default(), "id");
        assert!(body["results"][0]["v"].is_f64());
    }
}

// ---- grouped daily bars ----------------------------------------------------------------------

/// `GET /v2/aggs/grouped/locale/us/market/stocks/{date}?adjusted&apiKey`: one day's bar of every
/// US stock in the universe. Requests are logged under route `polygon`, symbol `grouped`.
pub const GROUPED_PATH_PREFIX: &str = "/v2/aggs/grouped/";

/// US tickers every grouped answer lists (besides `SYN0000`..`SYN0999` and the
/// `grouped_symbols` knob), unless `unknown_symbols` names them.
pub const GROUPED_UNIVERSE: &[&str] = &[
    "AAPL", "ABBV", "ADBE", "AMD", "AMZN", "AVGO", "BAC", "BRK.A", "BRK.B", "COST", "CRM", "CSCO",
    "CVX", "DIS", "GOOG", "GOOGL", "HD", "IBM", "INTC", "JNJ", "JPM", "KO", "LLY", "MA", "META",
    "MRK", "MSFT", "NFLX", "NVDA", "ORCL", "PEP", "PFE", "PG", "SPY", "T", "TSLA", "UNH", "V",
    "WMT", "XOM",
];

/// How many synthetic tickers (`SYN0000`, `SYN0001`, …) the built-in universe holds.
pub const GROUPED_SYNTHETIC: usize = 1000;

/// Every symbol a grouped answer lists under `knobs`, sorted: the built-in universe and the
/// `grouped_symbols` knob, minus `unknown_symbols` and anything with an exchange suffix (Polygon's
/// grouped endpoint is US stocks only).
pub fn grouped_universe(knobs: &Knobs) -> Vec<String> {
    let mut all: std::collections::BTreeSet<String> = GROUPED_UNIVERSE
        .iter()
        .map(|s| s.to_string())
        .chain((0..GROUPED_SYNTHETIC).map(|i| format!("SYN{i:04}")))
        .chain(knobs.grouped_symbols.iter().map(|s| canonical_symbol(s)))
        .collect();
    all.retain(|s| !knobs.is_unknown(s) && crate::exchange::exchange_of(s).suffix.is_empty());
    all.into_iter().collect()
}

/// The grouped handler. Polygon's documented answer (polygon.io/docs/stocks/
/// get_v2_aggs_grouped_locale_us_market_stocks__date; the reference is quoted in Seerden/trade
/// documentation/price-action/api/polygon/grouped-daily.md, and polygon-io/client-python PR #128
/// added `get_grouped_daily_aggs` for it): `{"status":"OK","adjusted":true,"queryCount":N,
/// "resultsCount":N,"request_id":…,"results":[{"T":"AAPL","v":…,"vw":…,"o":…,"c":…,"h":…,"l":…,
/// "t":…,"n":…}]}`; a day without trading answers `resultsCount: 0` and no `results`. Its example
/// for 2020-10-14 carries `t: 1602705600000` (16:00 New York, the close), so `t` here is the
/// day's 16:00 New York, not the per-ticker endpoint's midnight: a client must key the bars by
/// the day it asked for. The bars are the per-ticker daily endpoint's, same prices.
pub async fn grouped(
    State(state): State<Arc<SimState>>,
    Path(date): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let knobs = state.knobs();
    let truncate = match answer_or_refuse(&state, &knobs, &params, &headers).await {
        Ok(truncate) => truncate,
        Err(refused) => return refused,
    };
    let Ok(day) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
        return error(
            &state,
            StatusCode::BAD_REQUEST,
            &format!("Could not parse the date parameter: '{date}'. Use YYYY-MM-DD."),
        );
    };
    let adjusted = params.get("adjusted").is_none_or(|v| v != "false");
    let body = grouped_body(&knobs, day, adjusted, &state.next_request_id());
    if truncate || knobs.malformed_all {
        truncated(&body)
    } else {
        json_response(StatusCode::OK, &body)
    }
}

/// The `apiKey` (or bearer token) check both Polygon endpoints make.
/// What every Polygon request goes through before its answer, in Polygon's order: the key
/// (401/403), the rate limit (429), then this request's injected fault: a status answered
/// instead, a slow answer, or (`Ok(true)`) a body to cut in half.
async fn answer_or_refuse(
    state: &SimState,
    knobs: &Knobs,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<bool, Response> {
    let seq = state.next_provider_request();
    if let Some(refused) = check_key(state, knobs, params, headers) {
        return Err(refused);
    }
    if let Some(limited) = admit(state, knobs) {
        return Err(limited);
    }
    let fault = knobs
        .fail_every_nth
        .is_some_and(|n| n > 0 && seq.is_multiple_of(n));
    if fault && knobs.fail_kind == FailKind::Status {
        let status =
            StatusCode::from_u16(knobs.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(error(state, status, "Internal server error"));
    }
    if fault && knobs.fail_kind == FailKind::Slow {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.fail_slow_ms)).await;
    }
    Ok(fault && knobs.fail_kind == FailKind::Truncated)
}

fn check_key(
    state: &SimState,
    knobs: &Knobs,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match params.get("apiKey").map(String::as_str).or(bearer) {
        None => Some(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"status": "NOT_AUTHORIZED", "request_id": state.next_request_id(), "message": "API Key was not provided"}),
        )),
        Some(key) if key != knobs.polygon_api_key => Some(json_response(
            StatusCode::FORBIDDEN,
            &json!({"status": "NOT_AUTHORIZED", "request_id": state.next_request_id(), "message": "Unknown API Key"}),
        )),
        Some(_) => None,
    }
}

/// Polygon's 429, when the rate-limit knob says so (the same budget as the aggregates).
fn admit(state: &SimState, knobs: &Knobs) -> Option<Response> {
    let Admission::Limited { retry_after } = state.admit(Provider::Polygon, knobs) else {
        return None;
    };
    let mut response = error(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://polygon.io/pricing",
    );
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Some(response)
}

/// One grouped answer: every listed symbol's daily bar of `day` (none on a weekend).
pub fn grouped_body(knobs: &Knobs, day: NaiveDate, adjusted: bool, request_id: &str) -> Value {
    let (from, to) = match (
        generator::new_york_midnight(day),
        day.succ_opt().and_then(generator::new_york_midnight),
    ) {
        (Some(from), Some(to)) => (from, to),
        _ => (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
    };
    // 16:00 New York, the close, as in Polygon's documented example.
    let stamp = crate::exchange::US
        .at(day, (16, 0))
        .map_or(0, |t| t.timestamp_millis());
    let results: Vec<Value> = grouped_universe(knobs)
        .iter()
        .flat_map(|symbol| {
            generator::polygon_bars(symbol, Interval::Day, from, to, knobs.scale(symbol))
                .into_iter()
                .map(move |b| {
                    json!({
                        "T": symbol,
                        "v": b.volume as f64,
                        "vw": b.vwap,
                        "o": b.open,
                        "c": b.close,
                        "h": b.high,
                        "l": b.low,
                        "t": stamp,
                        "n": b.transactions,
                    })
                })
        })
        .collect();
    let mut body = json!({
        "adjusted": adjusted,
        "queryCount": results.len(),
        "resultsCount": results.len(),
        "status": knobs.polygon_status,
        "request_id": request_id,
    });
    if let (Value::Object(fields), false) = (&mut body, results.is_empty()) {
        fields.insert("results".into(), Value::Array(results));
    }
    body
}

#[cfg(test)]
mod grouped_tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn listed(body: &Value) -> Vec<String> {
        body["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x["T"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_weekday_lists_the_universe_with_the_per_ticker_daily_bars() {
        let knobs = Knobs::default();
        let body = grouped_body(&knobs, day("2026-03-10"), true, "id");
        let symbols = listed(&body);
        assert_eq!(symbols.len(), GROUPED_UNIVERSE.len() + GROUPED_SYNTHETIC);
        assert_eq!(body["resultsCount"], json!(symbols.len()));
        let aapl = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["T"] == "AAPL")
            .unwrap();
        let per_ticker = request_for("AAPL", "2026-03-10").bars(&knobs);
        assert_eq!(per_ticker.len(), 1);
        assert_eq!(aapl["c"].as_f64(), Some(per_ticker[0].close));
        assert_eq!(aapl["o"].as_f64(), Some(per_ticker[0].open));
        // 16:00 New York (EDT from 2026-03-08): 20:00 UTC.
        assert_eq!(aapl["t"], json!(1_773_172_800_000_i64));
    }

    fn request_for(ticker: &str, d: &str) -> Request {
        Request::parse(ticker, "1", "day", d, d, &HashMap::new()).unwrap()
    }

    #[test]
    fn a_weekend_has_no_results_key() {
        let body = grouped_body(&Knobs::default(), day("2026-03-07"), true, "id");
        assert!(body.get("results").is_none());
        assert_eq!(body["resultsCount"], json!(0));
        assert_eq!(body["status"], json!("OK"));
    }

    #[test]
    fn the_universe_knob_adds_us_symbols_and_unknown_or_foreign_ones_are_never_listed() {
        let knobs = Knobs {
            grouped_symbols: ["ZZZT".to_string(), "SAP.DE".to_string()].into(),
            unknown_symbols: ["MSFT".to_string()].into(),
            ..Knobs::default()
        };
        let universe = grouped_universe(&knobs);
        assert!(universe.contains(&"ZZZT".to_string()));
        assert!(universe.contains(&"BRK.B".to_string()));
        assert!(!universe.contains(&"SAP.DE".to_string()));
        assert!(!universe.contains(&"MSFT".to_string()));
        assert!(!universe.contains(&"NOPE".to_string()));
    }
}
