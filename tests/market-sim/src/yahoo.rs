//! Yahoo chart v8: `GET /v8/finance/chart/{symbol}?period1=<s>&period2=<s>&interval=1h|1d`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Offset, Utc};
use chrono_tz::America::New_York;
use serde_json::{json, Value};

use crate::generator::{self, Interval, Provider, SimBar};
use crate::knobs::Knobs;
use crate::state::{Admission, SimState};
use crate::{json_response, truncated};

/// Yahoo keeps intraday (1h) bars for this many days.
pub const HOURLY_HISTORY_DAYS: i64 = 730;

/// A Yahoo error answer: `{"chart":{"result":null,"error":{"code":…,"description":…}}}`.
#[derive(Debug)]
struct ChartError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl ChartError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({"chart": {"result": null, "error": {"code": self.code, "description": self.description}}}),
        )
    }
}

pub async fn chart(
    State(state): State<Arc<SimState>>,
    Path(symbol): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let knobs = state.knobs();
    let seq = state.next_provider_request();
    if let Admission::Limited { retry_after } = state.admit(Provider::Yahoo, &knobs) {
        // Real Yahoo: plain text, no Retry-After.
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
            "Too Many Requests\r\n",
        )
            .into_response();
        if let (true, Some(secs)) = (knobs.yahoo_retry_after, retry_after) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    if knobs.fail_every_nth.is_some_and(|n| n > 0 && seq % n == 0) {
        let status =
            StatusCode::from_u16(knobs.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (
            status,
            [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
            "Service Unavailable\r\n",
        )
            .into_response();
    }
    match answer(&knobs, &symbol, &params, Utc::now()) {
        Ok(body) if knobs.is_malformed(&symbol) => truncated(&body),
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error.into_response(),
    }
}

fn epoch_param(params: &HashMap<String, String>, name: &str) -> Result<DateTime<Utc>, ChartError> {
    let bad = || {
        ChartError::new(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("Invalid input - {name} must be epoch seconds"),
        )
    };
    let raw = params.get(name).ok_or_else(bad)?;
    let secs: i64 = raw.trim().parse().map_err(|_| bad())?;
    DateTime::from_timestamp(secs, 0).ok_or_else(bad)
}

/// The 200 body, or the error response Yahoo would give.
fn answer(
    knobs: &Knobs,
    symbol: &str,
    params: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Value, ChartError> {
    let interval: Interval = match params.get("interval").map(String::as_str).unwrap_or("1d") {
        "1h" | "60m" => Interval::Hour,
        "1d" => Interval::Day,
        other => {
            return Err(ChartError::new(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!(
                "Invalid input - interval={other} is not supported. Valid intervals: [1h, 60m, 1d]"
            ),
            ))
        }
    };
    let period1 = epoch_param(params, "period1")?;
    let period2 = epoch_param(params, "period2")?;
    // Yahoo spells class shares with a dash; `BRK.B` is not one of its symbols.
    if symbol.contains('.') || knobs.is_unknown(symbol) {
        return Err(ChartError::new(
            StatusCode::NOT_FOUND,
            "Not Found",
            "No data found, symbol may be delisted",
        ));
    }
    if interval == Interval::Hour && period1 < now - Duration::days(HOURLY_HISTORY_DAYS) {
        return Err(ChartError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Entity",
            format!(
                "1h data not available for startTime={} and endTime={}. The requested range must be within the last 730 days.",
                period1.timestamp(),
                period2.timestamp()
            ),
        ));
    }
    let pad = Duration::days(i64::from(knobs.pad_range_days));
    let bars = generator::bars(
        Provider::Yahoo,
        symbol,
        interval,
        period1 - pad,
        period2 + pad,
    );
    Ok(body(knobs, symbol, interval, &bars, now))
}

fn column(
    bars: &[SimBar],
    nulls: &[Option<usize>],
    element: usize,
    value: impl Fn(&SimBar) -> Value,
) -> Value {
    bars.iter()
        .zip(nulls)
        .map(|(bar, null)| {
            if *null == Some(element) {
                Value::Null
            } else {
                value(bar)
            }
        })
        .collect()
}

fn body(
    knobs: &Knobs,
    symbol: &str,
    interval: Interval,
    bars: &[SimBar],
    now: DateTime<Utc>,
) -> Value {
    let offset = now
        .with_timezone(&New_York)
        .offset()
        .fix()
        .local_minus_utc();
    let zone = if offset == -4 * 3600 { "EDT" } else { "EST" };
    let mut meta = json!({
        "currency": "USD",
        "symbol": symbol,
        "exchangeName": "NMS",
        "fullExchangeName": "NasdaqGS",
        "instrumentType": "EQUITY",
        "firstTradeDate": 345_479_400,
        "regularMarketTime": now.timestamp(),
        "hasPrePostMarketData": true,
        "gmtoffset": offset,
        "timezone": zone,
        "exchangeTimezoneName": "America/New_York",
        "regularMarketPrice": generator::price_at(symbol, now),
        "priceHint": 2,
        "dataGranularity": interval.as_str(),
        "range": "",
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "ytd", "1y", "2y", "5y", "10y", "max"],
    });
    if let (Some(first), Value::Object(m)) = (bars.first(), &mut meta) {
        m.insert("chartPreviousClose".into(), json!(first.open));
    }
    if bars.is_empty() {
        // What Yahoo sends for a range without bars: no `timestamp`, one empty quote object.
        return json!({"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}]}}], "error": null}});
    }
    let nulls: Vec<Option<usize>> = bars
        .iter()
        .map(|b| knobs.null_element(symbol, b.ordinal))
        .collect();
    let quote = json!({
        "open": column(bars, &nulls, 0, |b| json!(b.open)),
        "high": column(bars, &nulls, 1, |b| json!(b.high)),
        "low": column(bars, &nulls, 2, |b| json!(b.low)),
        "close": column(bars, &nulls, 3, |b| json!(b.close)),
        "volume": column(bars, &nulls, 4, |b| json!(b.volume)),
    });
    let mut indicators = json!({"quote": [quote]});
    if interval == Interval::Day {
        // Daily charts also carry adjusted closes; clients must tolerate the extra array.
        if let Value::Object(m) = &mut indicators {
            m.insert(
                "adjclose".into(),
                json!([{"adjclose": column(bars, &nulls, 3, |b| json!(b.close))}]),
            );
        }
    }
    let timestamps: Vec<i64> = bars.iter().map(|b| b.ts.timestamp()).collect();
    json!({"chart": {"result": [{"meta": meta, "timestamp": timestamps, "indicators": indicators}], "error": null}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn params(p1: i64, p2: i64, interval: &str) -> HashMap<String, String> {
        [
            ("period1".to_string(), p1.to_string()),
            ("period2".to_string(), p2.to_string()),
            ("interval".to_string(), interval.to_string()),
        ]
        .into()
    }

    fn status(result: Result<Value, ChartError>) -> StatusCode {
        match result {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status,
        }
    }

    #[test]
    fn hourly_ranges_starting_more_than_730_days_ago_are_422() {
        let now = Utc.with_ymd_and_hms(2026, 3, 12, 15, 0, 0).unwrap();
        let knobs = Knobs::default();
        let limit = (now - Duration::days(730)).timestamp();
        let p2 = now.timestamp();
        assert_eq!(
            status(answer(&knobs, "AAPL", &params(limit - 1, p2, "1h"), now)),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(answer(&knobs, "AAPL", &params(limit, p2, "1h"), now)),
            StatusCode::OK
        );
        assert_eq!(
            status(answer(&knobs, "AAPL", &params(0, p2, "1d"), now)),
            StatusCode::OK
        );
    }

    #[test]
    fn dotted_class_shares_and_unknown_symbols_are_404() {
        let now = Utc.with_ymd_and_hms(2026, 3, 12, 15, 0, 0).unwrap();
        let p = params(now.timestamp() - 86_400 * 3, now.timestamp(), "1h");
        let knobs = Knobs {
            unknown_symbols: ["ZZZZ".to_string()].into(),
            ..Knobs::default()
        };
        assert_eq!(
            status(answer(&knobs, "BRK.B", &p, now)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(answer(&knobs, "ZZZZ", &p, now)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status(answer(&knobs, "BRK-B", &p, now)), StatusCode::OK);
    }

    #[test]
    fn an_empty_range_has_no_timestamp_key_and_an_empty_quote() {
        let now = Utc.with_ymd_and_hms(2026, 3, 12, 15, 0, 0).unwrap();
        let saturday = Utc
            .with_ymd_and_hms(2026, 3, 7, 0, 0, 0)
            .unwrap()
            .timestamp();
        let body = answer(
            &Knobs::default(),
            "AAPL",
            &params(saturday, saturday + 86_400, "1h"),
            now,
        )
        .unwrap();
        let result = &body["chart"]["result"][0];
        assert!(result.get("timestamp").is_none());
        assert_eq!(result["indicators"], json!({"quote": [{}]}));
        assert_eq!(result["meta"]["gmtoffset"], json!(-14_400));
    }

    #[test]
    fn null_knob_nulls_one_element_of_every_nth_bar() {
        let now = Utc.with_ymd_and_hms(2026, 3, 12, 15, 0, 0).unwrap();
        let knobs = Knobs {
            null_symbols: ["AAPL".to_string()].into(),
            ..Knobs::default()
        };
        let from = Utc
            .with_ymd_and_hms(2026, 3, 9, 0, 0, 0)
            .unwrap()
            .timestamp();
        let body = answer(&knobs, "AAPL", &params(from, from + 3 * 86_400, "1h"), now).unwrap();
        let quote = &body["chart"]["result"][0]["indicators"]["quote"][0];
        let nulls: usize = ["open", "high", "low", "close", "volume"]
            .iter()
            .map(|k| {
                quote[k]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|v| v.is_null())
                    .count()
            })
            .sum();
        // 21 consecutive slots of a 7-slot day: 4 or 5 multiples of 5.
        assert!((4..=5).contains(&nulls), "{nulls}");
    }
}
