//! market-sim over loopback HTTP: wire formats, knobs, admin endpoints and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use market_sim::{spawn, Interval, Knobs, Provider, RateLimit, RetryAfter, RunningSim, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

// 2026-03-09 00:00Z and 2026-03-12 00:00Z.
const MAR_09: i64 = 1_773_014_400;
const MAR_12: i64 = 1_773_273_600;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
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
    let sim = sim(Knobs::default()).await;
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
    let timestamps = result["timestamp"].as_array().unwrap();
    assert_eq!(timestamps.len(), 21);
    assert_eq!(timestamps[0], json!(MAR_09 + 13 * 3600 + 1800));
    for k in ["open", "high", "low", "close", "volume"] {
        assert_eq!(
            result["indicators"]["quote"][0][k]
                .as_array()
                .unwrap()
                .len(),
            21,
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
    assert_eq!(bars[0]["ts"], json!("2026-03-09T13:30:00Z"));
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
            "--unknown",
            "NOPE,GONE",
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
        json!({"requests": 5, "window_seconds": 10, "retry_after": {"fixed": 3}})
    );
    assert_eq!(knobs["unknown_symbols"], json!(["GONE", "NOPE"]));
}
