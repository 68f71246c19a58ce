//! market-sim over loopback HTTP: wire formats, knobs, admin endpoints and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::{DateTime, NaiveDate, Utc};
use market_sim::{
    spawn, GroundTruthBar, Interval, Knobs, LiveBar, Provider, RateLimit, RetryAfter, RunningSim,
    Scale, SimConfig,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

// 2026-03-09 00:00Z and 2026-03-12 00:00Z.
const MAR_09: i64 = 1_773_014_400;
const MAR_12: i64 = 1_773_273_600;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn secs(s: &str) -> i64 {
    at(s).timestamp()
}

async fn post_knobs(sim: &RunningSim, patch: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/__admin/knobs", sim.base_url()))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{patch}");
    response.json().await.unwrap()
}

async fn chart(sim: &RunningSim, symbol: &str, p1: i64, p2: i64, interval: &str) -> Value {
    let response = yahoo(sim, symbol, p1, p2, interval).await;
    assert_eq!(response.status(), StatusCode::OK, "{symbol}");
    let body: Value = response.json().await.unwrap();
    body["chart"]["result"][0].clone()
}

fn stamps(result: &Value) -> Vec<i64> {
    result["timestamp"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_i64().unwrap()).collect())
        .unwrap_or_default()
}

/// Row `i` of a chart as a ground-truth bar stamped as served.
fn row(result: &Value, i: usize) -> GroundTruthBar {
    let q = &result["indicators"]["quote"][0];
    let f = |k: &str| q[k][i].as_f64().unwrap();
    GroundTruthBar {
        ts: DateTime::from_timestamp(stamps(result)[i], 0).unwrap(),
        open: f("open"),
        high: f("high"),
        low: f("low"),
        close: f("close"),
        volume: q["volume"][i].as_i64().unwrap(),
    }
}

async fn ground_truth_json(sim: &RunningSim, query: &str) -> Value {
    reqwest::get(format!("{}/__admin/ground-truth?{query}", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn sim(knobs: Knobs) -> RunningSim {
    spawn(SimConfig::with_knobs(knobs)).await.unwrap()
}

async fn yahoo(
    sim: &RunningSim,
    symbol: &str,
    p1: i64,
    p2: i64,
    interval: &str,
) -> reqwest::Response {
    reqwest::get(format!(
        "{}/v8/finance/chart/{symbol}?period1={p1}&period2={p2}&interval={interval}&includePrePost=false&events=div,splits",
        sim.base_url()
    ))
    .await
    .unwrap()
}

async fn polygon(sim: &RunningSim, path_and_query: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path_and_query}", sim.base_url()))
        .await
        .unwrap()
}

#[tokio::test]
async fn yahoo_serves_the_chart_format_with_half_open_periods() {
    let sim = sim(Knobs {
        clock: Some(at("2026-03-12T15:00:00Z")),
        ..Knobs::default()
    })
    .await;
    let response = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["chart"]["error"], Value::Null);
    let result = &body["chart"]["result"][0];
    assert_eq!(result["meta"]["symbol"], json!("AAPL"));
    assert_eq!(result["meta"]["dataGranularity"], json!("1h"));
    assert_eq!(
        result["meta"]["exchangeTimezoneName"],
        json!("America/New_York")
    );
    // 3 days × 7 bars, then the session-close row of the 11th.
    let timestamps = result["timestamp"].as_array().unwrap();
    assert_eq!(timestamps.len(), 22);
    assert_eq!(timestamps[0], json!(MAR_09 + 13 * 3600 + 1800));
    assert_eq!(timestamps[21], json!(MAR_12 - 4 * 3600));
    for k in ["open", "high", "low", "close", "volume"] {
        assert_eq!(
            result["indicators"]["quote"][0][k]
                .as_array()
                .unwrap()
                .len(),
            22,
            "{k}"
        );
    }
    // period2 is exclusive: ending at the first bar's start leaves nothing.
    let first = timestamps[0].as_i64().unwrap();
    let body: Value = yahoo(&sim, "AAPL", MAR_09, first, "1h")
        .await
        .json()
        .await
        .unwrap();
    assert!(body["chart"]["result"][0].get("timestamp").is_none());
}

#[tokio::test]
async fn yahoo_bars_match_the_ground_truth_endpoint() {
    let sim = sim(Knobs::default()).await;
    let body: Value = yahoo(&sim, "MSFT", MAR_09, MAR_12, "1d")
        .await
        .json()
        .await
        .unwrap();
    let truth: Value = reqwest::get(format!(
        "{}/__admin/ground-truth?provider=yahoo&symbol=MSFT&interval=1d&start=2026-03-09&end=2026-03-11",
        sim.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(truth["skipped"], json!(0));
    let bars = truth["bars"].as_array().unwrap();
    assert_eq!(bars.len(), 3);
    // Yahoo stamps the day at the 09:30 open; a client stores it at New York midnight.
    let stamps = body["chart"]["result"][0]["timestamp"].as_array().unwrap();
    assert_eq!(stamps[0], json!(MAR_09 + 13 * 3600 + 1800));
    assert_eq!(bars[0]["ts"], json!("2026-03-09T04:00:00Z"));
    assert_eq!(bars[2]["ts"], json!("2026-03-11T04:00:00Z"));
    let quote = &body["chart"]["result"][0]["indicators"]["quote"][0];
    for (i, bar) in bars.iter().enumerate() {
        for (k, q) in [
            ("open", "open"),
            ("high", "high"),
            ("low", "low"),
            ("close", "close"),
            ("volume", "volume"),
        ] {
            assert_eq!(bar[k], quote[q][i], "{k} of bar {i}");
        }
    }
}

#[tokio::test]
async fn yahoo_429_is_plain_text_without_retry_after() {
    let sim = sim(Knobs {
        rate_limit: Some(RateLimit {
            requests: 1,
            window_seconds: 60,
            retry_after: RetryAfter::UntilReset,
            kind: Default::default(),
        }),
        ..Knobs::default()
    })
    .await;
    assert_eq!(
        yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h").await.status(),
        StatusCode::OK
    );
    let limited = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_none());
    assert!(limited.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(limited.text().await.unwrap(), "Too Many Requests\r\n");
    assert_eq!(sim.request_count("/v8/finance/chart/AAPL", Some(429)), 1);
}

#[tokio::test]
async fn yahoo_unknown_and_dotted_symbols_are_404_with_a_chart_error() {
    let sim = sim(Knobs {
        unknown_symbols: ["NOPE".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    for symbol in ["NOPE", "BRK.B"] {
        let response = yahoo(&sim, symbol, MAR_09, MAR_12, "1h").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}})
        );
    }
    assert_eq!(
        yahoo(&sim, "BRK-B", MAR_09, MAR_12, "1h").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn yahoo_hourly_ranges_older_than_730_days_are_422() {
    let sim = sim(Knobs::default()).await;
    let now = chrono::Utc::now().timestamp();
    let response = yahoo(&sim, "AAPL", now - 800 * 86_400, now - 790 * 86_400, "1h").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["chart"]["error"]["code"],
        json!("Unprocessable Entity")
    );
    assert!(body["chart"]["error"]["description"]
        .as_str()
        .unwrap()
        .contains("within the last 730 days"));
    let daily = yahoo(&sim, "AAPL", now - 800 * 86_400, now - 790 * 86_400, "1d").await;
    assert_eq!(daily.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_730_day_rule_counts_from_the_clock_knob() {
    let sim = sim(Knobs {
        clock: Some(at("2028-06-01T00:00:00Z")),
        ..Knobs::default()
    })
    .await;
    // Within 730 days of the real today, but not of the simulated one.
    let response = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    post_knobs(&sim, json!({"clock": "2026-06-01T00:00:00Z"})).await;
    let response = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_live_bar_is_stamped_at_the_clock_then_final_at_its_period_start() {
    // 12:48:24 EDT on Tuesday 10 March 2026: the 12:30 bar is running.
    let sim = sim(Knobs {
        clock: Some(at("2026-03-10T16:48:24Z")),
        ..Knobs::default()
    })
    .await;
    let (p1, p2) = (secs("2026-03-10T00:00:00Z"), secs("2026-03-11T00:00:00Z"));
    let live = chart(&sim, "AAPL", p1, p2, "1h").await;
    let meta = &live["meta"];
    assert_eq!(
        meta["regularMarketTime"],
        json!(secs("2026-03-10T16:48:24Z"))
    );
    assert_eq!(
        stamps(&live),
        [
            secs("2026-03-10T13:30:00Z"),
            secs("2026-03-10T14:30:00Z"),
            secs("2026-03-10T15:30:00Z"),
            secs("2026-03-10T16:48:24Z"),
        ]
    );
    let regular = &meta["currentTradingPeriod"]["regular"];
    assert_eq!(regular["start"], json!(secs("2026-03-10T13:30:00Z")));
    assert_eq!(regular["end"], json!(secs("2026-03-10T20:00:00Z")));
    let now = row(&live, 3);
    assert!(now.low <= now.open.min(now.close) && now.high >= now.open.max(now.close));
    assert_eq!(
        now.close,
        f64::from(meta["regularMarketPrice"].as_f64().unwrap() as f32)
    );

    // After the close the same bar is final, at its period start, and equals the ground truth.
    post_knobs(&sim, json!({"clock": "2026-03-10T23:00:00Z"})).await;
    let done = chart(&sim, "AAPL", p1, p2, "1h").await;
    assert_eq!(
        done["meta"]["regularMarketTime"],
        json!(secs("2026-03-10T20:00:00Z"))
    );
    let truth = sim.ground_truth(
        Provider::Yahoo,
        "AAPL",
        Interval::Hour,
        day("2026-03-10"),
        day("2026-03-10"),
    );
    assert_eq!(truth.len(), 7);
    let served: Vec<GroundTruthBar> = (0..7).map(|i| row(&done, i)).collect();
    assert_eq!(served, truth);
    let fin = &truth[3];
    assert_eq!(fin.ts, at("2026-03-10T16:30:00Z"));
    assert_eq!(fin.open, now.open);
    assert!(fin.volume > now.volume);
    // The ground truth ignores the clock: it never holds the live bar.
    sim.update_knobs(|k| k.clock = Some(at("2026-03-10T16:48:24Z")));
    let during = sim.ground_truth(
        Provider::Yahoo,
        "AAPL",
        Interval::Hour,
        day("2026-03-10"),
        day("2026-03-10"),
    );
    assert_eq!(during, truth);
}

#[tokio::test]
async fn the_session_close_row_has_zero_volume_and_one_price() {
    let sim = sim(Knobs {
        clock: Some(at("2026-03-12T15:00:00Z")),
        ..Knobs::default()
    })
    .await;
    let result = chart(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    let ts = stamps(&result);
    assert_eq!(ts.len(), 22);
    let close = row(&result, 21);
    assert_eq!(close.ts, at("2026-03-11T20:00:00Z"));
    assert_eq!(close.volume, 0);
    assert_eq!([close.open, close.high, close.low], [close.close; 3]);
    assert_eq!(close.close, row(&result, 20).close);
    // Not a bar a client stores: the ground truth has the 21 real ones.
    let truth = sim.ground_truth(
        Provider::Yahoo,
        "AAPL",
        Interval::Hour,
        day("2026-03-09"),
        day("2026-03-11"),
    );
    assert_eq!(truth.len(), 21);
    assert!(truth.iter().all(|b| b.ts != close.ts));
    // The knob turns it off; separate live rows can be asked for too.
    post_knobs(&sim, json!({"yahoo_close_bar": false})).await;
    assert_eq!(
        stamps(&chart(&sim, "AAPL", MAR_09, MAR_12, "1h").await).len(),
        21
    );
    post_knobs(
        &sim,
        json!({"clock": "2026-03-11T16:48:24Z", "yahoo_live_bar": "separate"}),
    )
    .await;
    let live = chart(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    let ts = stamps(&live);
    assert_eq!(
        ts[ts.len() - 2..],
        [secs("2026-03-11T16:30:00Z"), secs("2026-03-11T16:48:24Z")]
    );
    assert_eq!(row(&live, ts.len() - 1).volume, 0);
    assert_eq!(sim.knobs().yahoo_live_bar, LiveBar::Separate);
}

#[tokio::test]
async fn exchange_suffixes_keep_their_dot_and_trade_in_their_own_zone() {
    let sim = sim(Knobs {
        clock: Some(at("2026-04-02T00:00:00Z")),
        ..Knobs::default()
    })
    .await;
    let (p1, p2) = (secs("2026-03-27T00:00:00Z"), secs("2026-03-31T00:00:00Z"));
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
            yahoo(&sim, symbol, p1, p2, "1d").await.status(),
            StatusCode::OK,
            "{symbol}"
        );
    }
    // The dash is for share classes: a dashed exchange suffix is as unknown as a dotted class.
    for symbol in ["GS2C-DE", "SAP-DE", "BRK.B", "BF.B"] {
        let response = yahoo(&sim, symbol, p1, p2, "1d").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{symbol}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["chart"]["error"]["code"], json!("Not Found"));
    }
    // XETRA 09:00–17:30: Friday 27 March in CET (08:00Z), Monday 30 March in CEST (07:00Z).
    let hourly = chart(&sim, "SAP.DE", p1, p2, "1h").await;
    let ts = stamps(&hourly);
    assert_eq!(ts.len(), 9 + 9 + 1);
    assert_eq!(ts[0], secs("2026-03-27T08:00:00Z"));
    assert_eq!(ts[8], secs("2026-03-27T16:00:00Z"));
    assert_eq!(ts[9], secs("2026-03-30T07:00:00Z"));
    assert_eq!(
        ts[18],
        secs("2026-03-30T15:30:00Z"),
        "the close row at 17:30 CEST"
    );
    let periods = hourly["meta"]["tradingPeriods"].as_array().unwrap();
    assert_eq!(periods[0][0]["timezone"], json!("CET"));
    assert_eq!(periods[1][0]["timezone"], json!("CEST"));
    assert_eq!(periods[1][0]["gmtoffset"], json!(7200));
    assert_eq!(
        hourly["meta"]["exchangeTimezoneName"],
        json!("Europe/Berlin")
    );
    assert_eq!(hourly["meta"]["currency"], json!("EUR"));
    // Tokyo: 09:00 JST is midnight UTC, all year.
    let tokyo = chart(&sim, "7203.T", p1, p2, "1d").await;
    assert_eq!(
        stamps(&tokyo),
        [secs("2026-03-27T00:00:00Z"), secs("2026-03-30T00:00:00Z")]
    );
    // London moves with Europe, Toronto with New York.
    let london = chart(&sim, "TSCO.L", p1, p2, "1d").await;
    assert_eq!(
        stamps(&london),
        [secs("2026-03-27T08:00:00Z"), secs("2026-03-30T07:00:00Z")]
    );
    let toronto = chart(&sim, "SHOP.TO", p1, p2, "1d").await;
    assert_eq!(
        stamps(&toronto),
        [secs("2026-03-27T13:30:00Z"), secs("2026-03-30T13:30:00Z")]
    );
    assert_eq!(
        toronto["meta"]["exchangeTimezoneName"],
        json!("America/Toronto")
    );
    // Polygon is US-only and unchanged: New York hours whatever the ticker looks like.
    let polygon: Value = polygon(
        &sim,
        "/v2/aggs/ticker/SAP.DE/range/1/day/2026-03-27/2026-03-27?apiKey=test-key",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        polygon["results"][0]["t"],
        json!(secs("2026-03-27T04:00:00Z") * 1000)
    );
}

#[tokio::test]
async fn daily_ground_truth_is_keyed_at_local_midnight_of_the_trading_day() {
    let sim = sim(Knobs::default()).await;
    let query = |provider: &str, symbol: &str| {
        format!("provider={provider}&symbol={symbol}&interval=1d&start=2026-03-27&end=2026-03-30")
    };
    let keys = |truth: &Value| -> Vec<String> {
        truth["bars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["ts"].as_str().unwrap().to_string())
            .collect()
    };
    for (provider, symbol, want) in [
        (
            "yahoo",
            "AAPL",
            ["2026-03-27T04:00:00Z", "2026-03-30T04:00:00Z"],
        ),
        (
            "polygon",
            "AAPL",
            ["2026-03-27T04:00:00Z", "2026-03-30T04:00:00Z"],
        ),
        // Midnight CET, then CEST.
        (
            "yahoo",
            "SAP.DE",
            ["2026-03-26T23:00:00Z", "2026-03-29T22:00:00Z"],
        ),
        (
            "yahoo",
            "7203.T",
            ["2026-03-26T15:00:00Z", "2026-03-29T15:00:00Z"],
        ),
        (
            "yahoo",
            "TSCO.L",
            ["2026-03-27T00:00:00Z", "2026-03-29T23:00:00Z"],
        ),
    ] {
        let truth = ground_truth_json(&sim, &query(provider, symbol)).await;
        assert_eq!(keys(&truth), want, "{provider} {symbol}");
    }
    // The values are the served daily bars'.
    let served = chart(
        &sim,
        "SAP.DE",
        secs("2026-03-27T00:00:00Z"),
        secs("2026-03-31T00:00:00Z"),
        "1d",
    )
    .await;
    let truth = sim.ground_truth(
        Provider::Yahoo,
        "SAP.DE",
        Interval::Day,
        day("2026-03-27"),
        day("2026-03-30"),
    );
    for (i, t) in truth.iter().enumerate() {
        let s = row(&served, i);
        assert_eq!(
            (s.open, s.high, s.low, s.close, s.volume),
            (t.open, t.high, t.low, t.close, t.volume)
        );
    }
}

#[tokio::test]
async fn coarse_symbols_answer_quarterly_bars_and_have_no_ground_truth() {
    let sim = sim(Knobs {
        clock: Some(at("2026-06-01T00:00:00Z")),
        ..Knobs::default()
    })
    .await;
    post_knobs(&sim, json!({"coarse_symbols": ["0P000071W8.TO"]})).await;
    for interval in ["1h", "1d"] {
        let result = chart(&sim, "0P000071W8.TO", MAR_09, MAR_12, interval).await;
        assert_eq!(
            result["meta"]["dataGranularity"],
            json!("3mo"),
            "{interval}"
        );
        // Q1 2026 starts on Thursday 1 January (no holidays): 09:30 EST in Toronto.
        assert_eq!(
            stamps(&result),
            [secs("2026-01-01T14:30:00Z")],
            "{interval}"
        );
    }
    let truth = ground_truth_json(
        &sim,
        "provider=yahoo&symbol=0P000071W8.TO&interval=1d&start=2026-03-09&end=2026-03-11",
    )
    .await;
    assert_eq!(truth["bars"], json!([]));
    // Everyone else gets the interval asked, echoed as asked.
    let hourly = chart(&sim, "SHOP.TO", MAR_09, MAR_12, "60m").await;
    assert_eq!(hourly["meta"]["dataGranularity"], json!("60m"));
}

#[tokio::test]
async fn prices_keep_full_precision_and_round_trip_exactly() {
    let sim = sim(Knobs {
        clock: Some(at("2026-03-12T15:00:00Z")),
        price_scale: [("PENNY".to_string(), Scale::new(0.01).unwrap())].into(),
        ..Knobs::default()
    })
    .await;
    let text = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h")
        .await
        .text()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let result = &body["chart"]["result"][0];
    let truth = sim.ground_truth(
        Provider::Yahoo,
        "AAPL",
        Interval::Hour,
        day("2026-03-09"),
        day("2026-03-11"),
    );
    assert_eq!(truth.len(), 21);
    for (i, t) in truth.iter().enumerate() {
        // Bit for bit, through the JSON text.
        assert_eq!(row(result, i), *t, "bar {i}");
        for p in [t.open, t.high, t.low, t.close] {
            // Yahoo's float32 values printed as float64, not rounded to 4 decimals.
            assert_eq!(f64::from(p as f32), p);
        }
    }
    let long = truth
        .iter()
        .filter(|t| {
            t.close
                .to_string()
                .split_once('.')
                .is_some_and(|(_, d)| d.len() > 4)
        })
        .count();
    assert!(long > 15, "{long} of 21 closes need more than 4 decimals");
    // Polygon: full f64 prices.
    let path =
        "/v2/aggs/ticker/AAPL/range/1/hour/2026-03-09/2026-03-11?limit=50000&apiKey=test-key";
    let body: Value = polygon(&sim, path).await.json().await.unwrap();
    let truth = sim.ground_truth(
        Provider::Polygon,
        "AAPL",
        Interval::Hour,
        day("2026-03-09"),
        day("2026-03-11"),
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), truth.len());
    for (r, t) in results.iter().zip(&truth) {
        let got = [&r["o"], &r["h"], &r["l"], &r["c"]].map(|v| v.as_f64().unwrap());
        assert_eq!(got, [t.open, t.high, t.low, t.close]);
    }
    // A scaled symbol: sub-dollar prices, on both providers, in the ground truth too.
    let penny = chart(&sim, "PENNY", MAR_09, MAR_12, "1d").await;
    let closes = penny["indicators"]["quote"][0]["close"].as_array().unwrap();
    assert!(
        closes
            .iter()
            .all(|c| (0.1..5.0).contains(&c.as_f64().unwrap())),
        "{closes:?}"
    );
    // Yahoo gives sub-unit prices more decimals.
    let hint = if penny["meta"]["regularMarketPrice"].as_f64().unwrap() < 1.0 {
        4
    } else {
        2
    };
    assert_eq!(penny["meta"]["priceHint"], json!(hint));
    let truth = sim.ground_truth(
        Provider::Yahoo,
        "PENNY",
        Interval::Day,
        day("2026-03-09"),
        day("2026-03-11"),
    );
    assert_eq!(truth[0].close, closes[0].as_f64().unwrap());
    let body: Value = polygon(
        &sim,
        "/v2/aggs/ticker/PENNY/range/1/day/2026-03-09/2026-03-09?apiKey=test-key",
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(body["results"][0]["c"].as_f64().unwrap() < 5.0);
}

#[tokio::test]
async fn polygon_checks_the_api_key() {
    let sim = sim(Knobs::default()).await;
    let path = "/v2/aggs/ticker/AAPL/range/1/hour/2026-03-09/2026-03-11?adjusted=true&sort=asc&limit=50000";
    let wrong = polygon(&sim, &format!("{path}&apiKey=nope")).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["status"], json!("NOT_AUTHORIZED"));
    assert_eq!(body["message"], json!("Unknown API Key"));
    assert_eq!(polygon(&sim, path).await.status(), StatusCode::UNAUTHORIZED);
    let ok: Value = polygon(&sim, &format!("{path}&apiKey=test-key"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["status"], json!("OK"));
    assert_eq!(ok["resultsCount"], json!(48));
    assert_eq!(ok["ticker"], json!("AAPL"));
    assert!(ok.get("next_url").is_none());
}

#[tokio::test]
async fn polygon_pages_through_next_url_on_the_public_host() {
    let sim = sim(Knobs {
        polygon_page_size: Some(10),
        ..Knobs::default()
    })
    .await;
    let mut url = format!(
        "{}/v2/aggs/ticker/AAPL/range/1/hour/2026-03-09/2026-03-11?adjusted=true&sort=asc&limit=50000&apiKey=test-key",
        sim.base_url()
    );
    let mut stamps = Vec::new();
    for page in 1.. {
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        stamps.extend(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["t"].as_i64().unwrap()),
        );
        let Some(next) = body.get("next_url").and_then(Value::as_str) else {
            assert_eq!(page, 5);
            break;
        };
        let rest = next.strip_prefix("https://api.polygon.io").unwrap();
        assert!(!rest.contains("apiKey"));
        url = format!("{}{rest}&apiKey=test-key", sim.base_url());
    }
    assert_eq!(stamps.len(), 48);
    assert!(stamps.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(sim.request_count("/v2/aggs/ticker/AAPL/", Some(200)), 5);
}

#[tokio::test]
async fn polygon_429_is_json_with_retry_after_unless_disabled() {
    let sim = sim(Knobs {
        rate_limit: Some(RateLimit {
            requests: 0,
            window_seconds: 60,
            retry_after: RetryAfter::Fixed(7),
            kind: Default::default(),
        }),
        ..Knobs::default()
    })
    .await;
    let path = "/v2/aggs/ticker/AAPL/range/1/day/2026-03-09/2026-03-11?apiKey=test-key";
    let limited = polygon(&sim, path).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "7");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["status"], json!("ERROR"));
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("You've exceeded the maximum requests per minute"));
    sim.update_knobs(|k| {
        if let Some(limit) = &mut k.rate_limit {
            limit.retry_after = RetryAfter::None;
        }
    });
    assert!(polygon(&sim, path)
        .await
        .headers()
        .get("retry-after")
        .is_none());
}

#[tokio::test]
async fn every_nth_provider_request_fails_deterministically() {
    let sim = sim(Knobs {
        fail_every_nth: Some(3),
        ..Knobs::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            yahoo(&sim, "AAPL", MAR_09, MAR_12, "1d")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
}

#[tokio::test]
async fn malformed_symbols_get_a_truncated_200() {
    let sim = sim(Knobs {
        malformed_symbols: ["AAPL".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let response = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());
    let fine = yahoo(&sim, "MSFT", MAR_09, MAR_12, "1h").await;
    assert!(fine.json::<Value>().await.is_ok());
}

#[tokio::test]
async fn null_elements_are_reported_as_skipped_in_the_ground_truth() {
    let sim = sim(Knobs {
        null_symbols: ["AAPL".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let body: Value = yahoo(&sim, "AAPL", MAR_09, MAR_12, "1h")
        .await
        .json()
        .await
        .unwrap();
    let quote = &body["chart"]["result"][0]["indicators"]["quote"][0];
    let with_null = (0..21)
        .filter(|i| {
            ["open", "high", "low", "close", "volume"]
                .iter()
                .any(|k| quote[k][i].is_null())
        })
        .count() as u32;
    let truth = sim.ground_truth_with_skipped(
        Provider::Yahoo,
        "AAPL",
        Interval::Hour,
        day("2026-03-09"),
        day("2026-03-11"),
    );
    assert!(with_null > 0);
    assert_eq!(truth.skipped, with_null);
    assert_eq!(truth.bars.len() as u32 + with_null, 21);
}

#[tokio::test]
async fn admin_endpoints_set_knobs_count_requests_and_reset() {
    let sim = sim(Knobs::default()).await;
    let client = reqwest::Client::new();
    let knobs: Value = client
        .post(format!("{}/__admin/knobs", sim.base_url()))
        .json(&json!({"polygon_status": "DELAYED", "latency_ms": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["polygon_status"], json!("DELAYED"));
    assert_eq!(sim.knobs().latency_ms, 1);
    let knobs = post_knobs(
        &sim,
        json!({
            "clock": "2026-03-10T16:48:24Z",
            "yahoo_close_bar": false,
            "yahoo_live_bar": "at_period_start",
            "coarse_symbols": ["FUND"],
            "price_scale": {"PENNY": 0.01}
        }),
    )
    .await;
    assert_eq!(knobs["clock"], json!("2026-03-10T16:48:24Z"));
    assert_eq!(
        knobs["polygon_status"],
        json!("DELAYED"),
        "a patch keeps the rest"
    );
    assert_eq!(sim.knobs().clock, Some(at("2026-03-10T16:48:24Z")));
    assert_eq!(sim.knobs().scale("PENNY"), 0.01);
    let bad = client
        .post(format!("{}/__admin/knobs", sim.base_url()))
        .json(&json!({"price_scale": {"PENNY": -1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad = client
        .post(format!("{}/__admin/knobs", sim.base_url()))
        .json(&json!({"no_such_knob": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    client
        .get(format!(
            "{}/v8/finance/chart/AAPL?period1={MAR_09}&period2={MAR_12}&interval=1h",
            sim.base_url()
        ))
        .header("user-agent", "Mozilla/5.0 test")
        .send()
        .await
        .unwrap();
    let report: Value = reqwest::get(format!("{}/__admin/requests", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["total"], json!(1));
    assert_eq!(report["by_status"], json!({"200": 1}));
    assert_eq!(
        report["by_route"],
        json!([{"route": "yahoo", "symbol": "AAPL", "status": 200, "count": 1}])
    );
    assert_eq!(
        report["last_user_agent"]["yahoo"],
        json!("Mozilla/5.0 test")
    );
    assert_eq!(
        sim.last_user_agent(Provider::Yahoo).as_deref(),
        Some("Mozilla/5.0 test")
    );

    client
        .post(format!("{}/__admin/reset", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.requests().total, 0);
    assert_eq!(sim.knobs(), Knobs::default());
}

#[test]
fn the_binary_prints_its_address_first_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_market-sim"))
        .args([
            "--port",
            "0",
            "--rate-limit",
            "5",
            "--window-seconds",
            "10",
            "--retry-after",
            "3",
            "--rate-limit-kind",
            "sliding",
            "--unknown",
            "NOPE,GONE",
            "--clock",
            "2026-03-10T16:48:24Z",
            "--no-yahoo-close-bar",
            "--yahoo-live-bar",
            "separate",
            "--coarse",
            "FUND,0P000071W8.TO",
            "--price-scale",
            "PENNY=0.01",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let knobs: Value = runtime.block_on(async {
        reqwest::get(format!("{base}/__admin/knobs"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        knobs["rate_limit"],
        json!({"requests": 5, "window_seconds": 10, "retry_after": {"fixed": 3}, "kind": "sliding"})
    );
    assert_eq!(knobs["unknown_symbols"], json!(["GONE", "NOPE"]));
    assert_eq!(knobs["clock"], json!("2026-03-10T16:48:24Z"));
    assert_eq!(knobs["yahoo_close_bar"], json!(false));
    assert_eq!(knobs["yahoo_live_bar"], json!("separate"));
    assert_eq!(knobs["coarse_symbols"], json!(["0P000071W8.TO", "FUND"]));
    assert_eq!(knobs["price_scale"], json!({"PENNY": 0.01}));
}
