//! Yahoo chart v8: `GET /v8/finance/chart/{symbol}?period1=<s>&period2=<s>&interval=1h|60m|1d`.
//!
//! What the wire looks like is taken from recorded Yahoo answers (see the tests for sources): the
//! exchange's own zone and session in `meta`, a live bar while a session runs, a zero-volume
//! one-price row at the session close of intraday charts, and float32 prices printed as float64.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::exchange::{self, Exchange};
use crate::generator::{self, Granularity, Interval, Provider};
use crate::knobs::{FailKind, Knobs, LiveBar};
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
    let fault = knobs.fail_every_nth.is_some_and(|n| n > 0 && seq % n == 0);
    if fault && knobs.fail_kind == FailKind::Status {
        let status =
            StatusCode::from_u16(knobs.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (
            status,
            [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
            "Service Unavailable\r\n",
        )
            .into_response();
    }
    if fault && knobs.fail_kind == FailKind::Slow {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.fail_slow_ms)).await;
    }
    let cut = fault && knobs.fail_kind == FailKind::Truncated;
    match answer(&knobs, &symbol, &params, knobs.now()) {
        Ok(body) if cut || knobs.is_malformed(&symbol) => truncated(&body),
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
    // Yahoo echoes the interval as asked in `dataGranularity` (`1h` for interval=1h).
    let asked = params.get("interval").map_or("1d", String::as_str);
    let interval: Interval = match asked {
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
    // Yahoo spells class shares with a dash and keeps the dot of exchange suffixes: `BRK.B` and
    // `GS2C-DE` are not its symbols.
    let exchange = match exchange::yahoo_listing(symbol) {
        Some(exchange) if !knobs.is_unknown(symbol) => exchange,
        _ => {
            return Err(ChartError::new(
                StatusCode::NOT_FOUND,
                "Not Found",
                "No data found, symbol may be delisted",
            ))
        }
    };
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
    let chart = Chart {
        knobs,
        symbol,
        exchange,
        granularity: if knobs.is_coarse(symbol) {
            Granularity::Quarter
        } else {
            interval.into()
        },
        asked,
        from: period1 - pad,
        to: period2 + pad,
        scale: knobs.scale(symbol),
        now,
    };
    Ok(chart.body())
}

/// One row of the chart arrays.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    ts: DateTime<Utc>,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: i64,
    /// Which element the null knob blanks (0 open … 4 volume), if any.
    null: Option<usize>,
}

impl Row {
    /// A bar that is one price: Yahoo's session-close row and its live-price row.
    fn flat(ts: DateTime<Utc>, price: f64) -> Row {
        Row {
            ts,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0,
            null: None,
        }
    }
}

struct Chart<'a> {
    knobs: &'a Knobs,
    symbol: &'a str,
    exchange: &'static Exchange,
    granularity: Granularity,
    /// The interval as asked (`dataGranularity` echoes it unless the chart is coarse).
    asked: &'a str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    scale: f64,
    now: DateTime<Utc>,
}

impl Chart<'_> {
    fn price(&self, t: DateTime<Utc>) -> f64 {
        generator::price_at(self.symbol, t) * self.scale
    }

    /// The bars as Yahoo shows them at `now`: the live bar per `yahoo_live_bar`, and the
    /// session-close row at the end of an intraday chart.
    fn rows(&self) -> Vec<Row> {
        let bars = generator::yahoo_bars(
            self.symbol,
            self.granularity,
            self.from,
            self.to,
            self.scale,
            Some(self.now),
        );
        let mut rows: Vec<Row> = bars
            .iter()
            .map(|b| Row {
                ts: b.ts,
                open: b.open,
                high: b.high,
                low: b.low,
                close: b.close,
                volume: b.volume,
                null: self.knobs.null_element(self.symbol, b.ordinal),
            })
            .collect();
        let Some(last) = bars.last() else {
            return rows;
        };
        if last.end > self.now {
            // Only the last bar can hold the clock.
            match self.knobs.yahoo_live_bar {
                LiveBar::AtClock => {
                    if let Some(row) = rows.last_mut() {
                        row.ts = self.now;
                    }
                }
                LiveBar::AtPeriodStart => {}
                LiveBar::Separate => rows.push(Row::flat(self.now, last.close)),
            }
        } else if self.granularity == Granularity::Hour && self.knobs.yahoo_close_bar {
            // The close of the last session in the chart, when the range covers it; the clock is
            // past it since the last bar is final.
            let close = self
                .exchange
                .session(self.exchange.local_date(last.ts))
                .map(|s| s.close);
            if let Some(close) = close.filter(|c| *c < self.to && *c <= self.now) {
                rows.push(Row::flat(close, last.close));
            }
        }
        rows
    }

    fn period(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
        json!({
            "timezone": self.exchange.abbreviation(start),
            "start": start.timestamp(),
            "end": end.timestamp(),
            "gmtoffset": self.exchange.gmtoffset(start),
        })
    }

    fn meta(&self, rows: &[Row]) -> Value {
        let e = self.exchange;
        let market_time = e.regular_market_time(self.now);
        let price = self.price(market_time);
        let mut meta = json!({
            "currency": e.currency,
            "symbol": self.symbol,
            "exchangeName": e.exchange_name,
            "fullExchangeName": e.full_exchange_name,
            "instrumentType": "EQUITY",
            "firstTradeDate": 345_479_400,
            "regularMarketTime": market_time.timestamp(),
            "hasPrePostMarketData": e.pre_start != e.open || e.post_end != e.close,
            "gmtoffset": e.gmtoffset(self.now),
            "timezone": e.abbreviation(self.now),
            "exchangeTimezoneName": e.zone_name(),
            "regularMarketPrice": price,
            "priceHint": if price < 1.0 { 4 } else { 2 },
        });
        let Value::Object(m) = &mut meta else {
            return meta;
        };
        // The close of the session before the chart's first bar.
        if let Some(close) = rows.first().and_then(|r| e.last_close(r.ts)) {
            m.insert(
                "chartPreviousClose".into(),
                json!(generator::yahoo_float(self.price(close))),
            );
        }
        if let Some(day) = e.trading_day(self.now) {
            m.insert(
                "currentTradingPeriod".into(),
                json!({
                    "pre": self.period(day.pre_start, day.open),
                    "regular": self.period(day.open, day.close),
                    "post": self.period(day.close, day.post_end),
                }),
            );
        }
        if self.granularity == Granularity::Hour {
            // One regular period per trading day of the range that has started.
            let first = e.local_date(self.from);
            let last = e.local_date(self.to);
            let periods: Vec<Value> = first
                .iter_days()
                .take_while(|d| *d <= last)
                .filter_map(|d| e.session(d))
                .filter(|s| s.open < self.to && s.close > self.from && s.open <= self.now)
                .map(|s| json!([self.period(s.open, s.close)]))
                .collect();
            m.insert("tradingPeriods".into(), Value::Array(periods));
        }
        let granularity = match self.granularity {
            Granularity::Quarter => Granularity::Quarter.as_str(),
            _ => self.asked,
        };
        m.insert("dataGranularity".into(), json!(granularity));
        m.insert("range".into(), json!(""));
        m.insert(
            "validRanges".into(),
            json!(["1d", "5d", "1mo", "3mo", "6mo", "ytd", "1y", "2y", "5y", "10y", "max"]),
        );
        meta
    }

    fn body(&self) -> Value {
        let rows = self.rows();
        let meta = self.meta(&rows);
        if rows.is_empty() {
            // What Yahoo sends for a range without bars: no `timestamp`, one empty quote object.
            return json!({"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}]}}], "error": null}});
        }
        let quote = json!({
            "open": column(&rows, 0, |r| json!(r.open)),
            "high": column(&rows, 1, |r| json!(r.high)),
            "low": column(&rows, 2, |r| json!(r.low)),
            "close": column(&rows, 3, |r| json!(r.close)),
            "volume": column(&rows, 4, |r| json!(r.volume)),
        });
        let mut indicators = json!({"quote": [quote]});
        if self.granularity != Granularity::Hour {
            // Daily and coarser charts also carry adjusted closes; clients must tolerate them.
            if let Value::Object(m) = &mut indicators {
                m.insert(
                    "adjclose".into(),
                    json!([{"adjclose": column(&rows, 3, |r| json!(r.close))}]),
                );
            }
        }
        let timestamps: Vec<i64> = rows.iter().map(|r| r.ts.timestamp()).collect();
        json!({"chart": {"result": [{"meta": meta, "timestamp": timestamps, "indicators": indicators}], "error": null}})
    }
}

fn column(rows: &[Row], element: usize, value: impl Fn(&Row) -> Value) -> Value {
    rows.iter()
        .map(|row| {
            if row.null == Some(element) {
                Value::Null
            } else {
                value(row)
            }
        })
        .collect()
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

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn utc_day(s: &str) -> i64 {
        at(&format!("{s}T00:00:00Z")).timestamp()
    }

    /// The one result of a 200 answer, at `clock`, for `[from 00:00Z, to 00:00Z)`.
    fn chart(
        knobs: &Knobs,
        symbol: &str,
        from: &str,
        to: &str,
        interval: &str,
        clock: &str,
    ) -> Value {
        let clock = at(clock);
        let knobs = Knobs {
            clock: Some(clock),
            ..knobs.clone()
        };
        let p = params(utc_day(from), utc_day(to), interval);
        answer(&knobs, symbol, &p, clock).unwrap()["chart"]["result"][0].clone()
    }

    fn stamps(result: &Value) -> Vec<i64> {
        result["timestamp"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_i64().unwrap()).collect())
            .unwrap_or_default()
    }

    fn row(result: &Value, i: usize) -> (f64, f64, f64, f64, i64) {
        let q = &result["indicators"]["quote"][0];
        let f = |k: &str| q[k][i].as_f64().unwrap();
        (
            f("open"),
            f("high"),
            f("low"),
            f("close"),
            q["volume"][i].as_i64().unwrap(),
        )
    }

    // Real Yahoo, after the close (a recorded NVDA chart, interval=1h range=1d, 2024-05-03:
    // `regularMarketTime` 16:00:07 EDT): the last row is stamped at `tradingPeriods[0].end`, the
    // 16:00 close, with volume 0 and open = high = low = close = 887.8900146484375, which is
    // `regularMarketPrice` 887.89 as float32; `dataGranularity` echoes "1h" (found by exact-string
    // search in public test fixtures, search-index file 30295244419). yfinance documents the same
    // row: "Yahoo returns a bar at exactly `end` … Volume == 0"
    // (https://github.com/ranaroussi/yfinance/pull/2806).
    #[test]
    fn an_intraday_chart_ends_with_a_zero_volume_bar_at_the_session_close() {
        let knobs = Knobs::default();
        let result = chart(
            &knobs,
            "AAPL",
            "2026-03-09",
            "2026-03-12",
            "1h",
            "2026-03-12T15:00:00Z",
        );
        let ts = stamps(&result);
        // 3 × 7 bars, then 16:00 EDT on the 11th (20:00Z). Earlier days get no such row.
        assert_eq!(ts.len(), 22);
        assert_eq!(ts[21], at("2026-03-11T20:00:00Z").timestamp());
        assert!(!ts.contains(&at("2026-03-10T20:00:00Z").timestamp()));
        let (o, h, l, c, v) = row(&result, 21);
        assert_eq!((o, h, l, v), (c, c, c, 0));
        assert_eq!(c, row(&result, 20).3);
        let periods = result["meta"]["tradingPeriods"].as_array().unwrap();
        assert_eq!(periods.len(), 3);
        assert_eq!(periods[2][0]["end"], json!(ts[21]));
        assert_eq!(result["meta"]["dataGranularity"], json!("1h"));
        // Not when the knob is off, nor in a daily chart, nor when the range stops before the
        // close, nor before the clock reaches the close.
        let off = Knobs {
            yahoo_close_bar: false,
            ..Knobs::default()
        };
        let clock = "2026-03-12T15:00:00Z";
        assert_eq!(
            stamps(&chart(
                &off,
                "AAPL",
                "2026-03-09",
                "2026-03-12",
                "1h",
                clock
            ))
            .len(),
            21
        );
        assert_eq!(
            stamps(&chart(
                &knobs,
                "AAPL",
                "2026-03-09",
                "2026-03-12",
                "1d",
                clock
            ))
            .len(),
            3
        );
        let p = params(
            utc_day("2026-03-11"),
            at("2026-03-11T19:45:00Z").timestamp(),
            "1h",
        );
        let cut = answer(&knobs, "AAPL", &p, at(clock)).unwrap();
        assert_eq!(stamps(&cut["chart"]["result"][0]).len(), 7);
        let during = chart(
            &knobs,
            "AAPL",
            "2026-03-11",
            "2026-03-12",
            "1h",
            "2026-03-11T19:59:59Z",
        );
        assert!(!stamps(&during).contains(&at("2026-03-11T20:00:00Z").timestamp()));
    }

    #[test]
    fn during_a_session_the_current_bar_is_stamped_at_the_clock() {
        let clock = "2026-03-10T16:48:24Z";
        let result = chart(
            &Knobs::default(),
            "AAPL",
            "2026-03-10",
            "2026-03-11",
            "1h",
            clock,
        );
        let meta = &result["meta"];
        // 09:30, 10:30, 11:30 EDT final; the 12:30 bar is live, stamped at regularMarketTime.
        let ts = stamps(&result);
        assert_eq!(ts.len(), 4);
        assert_eq!(ts[3], at(clock).timestamp());
        assert_eq!(meta["regularMarketTime"], json!(ts[3]));
        let (o, h, l, c, v) = row(&result, 3);
        assert_eq!(
            c,
            generator::yahoo_float(meta["regularMarketPrice"].as_f64().unwrap())
        );
        assert!(l <= o.min(c) && h >= o.max(c) && v > 0);
        let regular = &meta["currentTradingPeriod"]["regular"];
        assert_eq!(
            regular["start"],
            json!(at("2026-03-10T13:30:00Z").timestamp())
        );
        assert_eq!(
            regular["end"],
            json!(at("2026-03-10T20:00:00Z").timestamp())
        );
        assert_eq!(regular["timezone"], json!("EDT"));
        // The daily chart's bar for today is live too.
        let daily = chart(
            &Knobs::default(),
            "AAPL",
            "2026-03-09",
            "2026-03-11",
            "1d",
            clock,
        );
        assert_eq!(
            stamps(&daily),
            [at("2026-03-09T13:30:00Z").timestamp(), ts[3]]
        );
    }

    // Real Yahoo also shows the running bar at its period start followed by a zero-volume row at
    // `regularMarketTime` whose prices all equal the current price (a recorded AAPL chart,
    // interval=1h range=5d: …1791207000, 1791208756 with volume …3960224, 0; the same in a
    // recorded BTC-USD 1h chart; search-index files 71256061011 and 53162460938), which yfinance
    // merges back ("Yahoo normally returns todays data as a separate row", `yfinance/utils.py`,
    // `fix_Yahoo_returning_live_separate`, https://github.com/ranaroussi/yfinance).
    #[test]
    fn the_live_bar_can_also_sit_at_its_period_start_alone_or_with_a_separate_row() {
        let clock = "2026-03-10T16:48:24Z";
        let at_clock = chart(
            &Knobs::default(),
            "AAPL",
            "2026-03-10",
            "2026-03-11",
            "1h",
            clock,
        );
        let start = at("2026-03-10T16:30:00Z").timestamp();
        let knobs = |mode| Knobs {
            yahoo_live_bar: mode,
            ..Knobs::default()
        };
        let period_start = chart(
            &knobs(LiveBar::AtPeriodStart),
            "AAPL",
            "2026-03-10",
            "2026-03-11",
            "1h",
            clock,
        );
        assert_eq!(stamps(&period_start)[3], start);
        assert_eq!(row(&period_start, 3), row(&at_clock, 3));
        let separate = chart(
            &knobs(LiveBar::Separate),
            "AAPL",
            "2026-03-10",
            "2026-03-11",
            "1h",
            clock,
        );
        let ts = stamps(&separate);
        assert_eq!(ts[3..], [start, at(clock).timestamp()]);
        assert_eq!(row(&separate, 3), row(&at_clock, 3));
        let (o, h, l, c, v) = row(&separate, 4);
        assert_eq!((o, h, l, c, v), (c, c, c, row(&at_clock, 3).3, 0));
    }

    #[test]
    fn each_exchange_answers_in_its_own_zone_currency_and_session() {
        // Thursday 26 March 2026, 10:00Z: New York is on EDT already, Europe still on winter time.
        let clock = "2026-03-26T10:00:00Z";
        let cases = [
            (
                "AAPL",
                "USD",
                "NMS",
                "NasdaqGS",
                "America/New_York",
                "EDT",
                -14_400,
                "13:30",
                "20:00",
            ),
            (
                "SAP.DE",
                "EUR",
                "GER",
                "XETRA",
                "Europe/Berlin",
                "CET",
                3_600,
                "08:00",
                "16:30",
            ),
            (
                "SHOP.TO",
                "CAD",
                "TOR",
                "Toronto",
                "America/Toronto",
                "EDT",
                -14_400,
                "13:30",
                "20:00",
            ),
            (
                "7203.T",
                "JPY",
                "JPX",
                "Tokyo",
                "Asia/Tokyo",
                "JST",
                32_400,
                "00:00",
                "06:30",
            ),
            (
                "TSCO.L",
                "GBp",
                "LSE",
                "LSE",
                "Europe/London",
                "GMT",
                0,
                "08:00",
                "16:30",
            ),
        ];
        for (symbol, currency, name, full, zone, abbr, offset, open, close) in cases {
            let result = chart(
                &Knobs::default(),
                symbol,
                "2026-03-26",
                "2026-03-27",
                "1d",
                clock,
            );
            let meta = &result["meta"];
            assert_eq!(meta["symbol"], json!(symbol));
            assert_eq!(meta["currency"], json!(currency), "{symbol}");
            assert_eq!(meta["exchangeName"], json!(name), "{symbol}");
            assert_eq!(meta["fullExchangeName"], json!(full), "{symbol}");
            assert_eq!(meta["exchangeTimezoneName"], json!(zone), "{symbol}");
            assert_eq!(meta["timezone"], json!(abbr), "{symbol}");
            assert_eq!(meta["gmtoffset"], json!(offset), "{symbol}");
            let regular = &meta["currentTradingPeriod"]["regular"];
            let hm = |k: &str| {
                DateTime::from_timestamp(regular[k].as_i64().unwrap(), 0)
                    .unwrap()
                    .format("%H:%M")
                    .to_string()
            };
            assert_eq!(
                (hm("start"), hm("end")),
                (open.to_string(), close.to_string()),
                "{symbol}"
            );
            assert_eq!(regular["gmtoffset"], json!(offset), "{symbol}");
            for period in ["pre", "regular", "post"] {
                let p = &meta["currentTradingPeriod"][period];
                assert_eq!(p["timezone"], json!(abbr), "{symbol} {period}");
                assert!(
                    p["start"].as_i64() <= p["end"].as_i64(),
                    "{symbol} {period}"
                );
            }
            // The day's bar is stamped at the local open (live in Frankfurt and London, final in
            // Tokyo); New York and Toronto have not opened yet.
            let (start, end) = (
                regular["start"].as_i64().unwrap(),
                regular["end"].as_i64().unwrap(),
            );
            let want: Vec<i64> = match symbol {
                "7203.T" => vec![start],
                "SAP.DE" | "TSCO.L" => vec![at(clock).timestamp()],
                _ => vec![],
            };
            assert_eq!(stamps(&result), want, "{symbol}");
            let market_time = meta["regularMarketTime"].as_i64().unwrap();
            let want = match symbol {
                "7203.T" => end,
                "SAP.DE" | "TSCO.L" => at(clock).timestamp(),
                // Before the open: the previous day's close.
                _ => end - 86_400,
            };
            assert_eq!(market_time, want, "{symbol}");
            assert!(
                meta.get("tradingPeriods").is_none(),
                "daily charts have none"
            );
        }
    }

    #[test]
    fn dashed_exchange_suffixes_and_dotted_class_shares_are_404() {
        let now = at("2026-03-12T15:00:00Z");
        let p = params(now.timestamp() - 86_400 * 3, now.timestamp(), "1d");
        let knobs = Knobs::default();
        for symbol in [
            "GS2C.DE",
            "WSU.DE",
            "SAP.DE",
            "0P000071W8.TO",
            "SHOP.TO",
            "7203.T",
            "TSCO.L",
        ] {
            assert_eq!(
                status(answer(&knobs, symbol, &p, now)),
                StatusCode::OK,
                "{symbol}"
            );
        }
        for symbol in ["GS2C-DE", "SAP-DE", "BRK.B", "BF.B"] {
            assert_eq!(
                status(answer(&knobs, symbol, &p, now)),
                StatusCode::NOT_FOUND,
                "{symbol}"
            );
        }
    }

    #[test]
    fn coarse_symbols_answer_quarterly_bars_whatever_the_interval() {
        let knobs = Knobs {
            coarse_symbols: ["FUND".to_string()].into(),
            ..Knobs::default()
        };
        for interval in ["1h", "1d"] {
            let result = chart(
                &knobs,
                "FUND",
                "2026-03-09",
                "2026-03-12",
                interval,
                "2026-06-01T00:00:00Z",
            );
            assert_eq!(result["meta"]["dataGranularity"], json!("3mo"));
            // The quarter that holds the range, stamped at its first trading day's open.
            assert_eq!(stamps(&result), [at("2026-01-01T14:30:00Z").timestamp()]);
            assert!(result["indicators"]["adjclose"].is_array());
            assert!(result["meta"].get("tradingPeriods").is_none());
        }
        // Others echo the interval as asked.
        let plain = chart(
            &Knobs::default(),
            "AAPL",
            "2026-03-09",
            "2026-03-12",
            "60m",
            "2026-06-01T00:00:00Z",
        );
        assert_eq!(plain["meta"]["dataGranularity"], json!("60m"));
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
