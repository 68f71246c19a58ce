//! Polygon's grouped daily endpoint over loopback HTTP: its wire format, the knobs that apply to
//! it, and how the request log counts it.

use market_sim::{spawn, Interval, Knobs, Provider, RunningSim, SimConfig, GROUPED_PATH_PREFIX};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn sim(knobs: Knobs) -> RunningSim {
    spawn(SimConfig::with_knobs(knobs)).await.unwrap()
}

async fn grouped(sim: &RunningSim, date: &str, key: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!(
        "{}/v2/aggs/grouped/locale/us/market/stocks/{date}?adjusted=true&apiKey={key}",
        sim.base_url()
    ))
    .await
    .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn grouped_answers_list_the_universe_in_polygons_format_and_are_counted() {
    let sim = sim(Knobs {
        grouped_symbols: ["ZZZT".to_string(), "SAP.DE".to_string()].into(),
        unknown_symbols: ["MSFT".to_string()].into(),
        ..Knobs::default()
    })
    .await;
    let (status, body) = grouped(&sim, "2026-03-10", "test-key").await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], json!("OK"));
    assert_eq!(body["adjusted"], json!(true));
    let results = body["results"].as_array().unwrap();
    assert_eq!(body["resultsCount"], json!(results.len()));
    let find = |t: &str| results.iter().find(|r| r["T"] == t).cloned();
    assert!(find("MSFT").is_none(), "unknown symbols are not listed");
    assert!(find("SAP.DE").is_none(), "non-US symbols are not listed");
    let zzzt = find("ZZZT").expect("the grouped_symbols knob lists ZZZT");
    for field in ["o", "h", "l", "c", "v", "vw", "n", "t"] {
        assert!(zzzt.get(field).is_some(), "{field} in {zzzt}");
    }
    // Same prices as the per-ticker daily bar of that day.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let truth = sim.ground_truth(Provider::Polygon, "ZZZT", Interval::Day, day, day);
    assert_eq!(truth.len(), 1);
    assert_eq!(zzzt["c"].as_f64(), Some(truth[0].close));
    assert_eq!(zzzt["h"].as_f64(), Some(truth[0].high));
    assert_eq!(zzzt["v"].as_f64(), Some(truth[0].volume as f64));

    let (status, body) = grouped(&sim, "2026-03-08", "test-key").await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["resultsCount"], json!(0));
    assert!(body.get("results").is_none());

    assert_eq!(sim.grouped_requests(None), 2);
    assert_eq!(sim.request_count(GROUPED_PATH_PREFIX, Some(200)), 2);
    let report = sim.requests();
    let logged: u64 = report
        .by_route
        .iter()
        .filter(|r| r.route == "polygon" && r.symbol.as_deref() == Some("grouped"))
        .map(|r| r.count)
        .sum();
    assert_eq!(logged, 2);
}

#[tokio::test]
async fn grouped_requests_honour_the_key_rate_limit_and_fault_knobs() {
    let sim = sim(Knobs::default()).await;
    let (status, _) = grouped(&sim, "2026-03-10", "wrong").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    sim.update_knobs(|k| {
        k.rate_limit = Some(market_sim::RateLimit {
            requests: 1,
            window_seconds: 60,
            retry_after: market_sim::RetryAfter::UntilReset,
            kind: Default::default(),
        })
    });
    assert_eq!(
        grouped(&sim, "2026-03-10", "test-key").await.0,
        StatusCode::OK
    );
    assert_eq!(
        grouped(&sim, "2026-03-11", "test-key").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    sim.reset();
    sim.update_knobs(|k| k.fail_every_nth = Some(2));
    assert_eq!(
        grouped(&sim, "2026-03-10", "test-key").await.0,
        StatusCode::OK
    );
    assert_eq!(
        grouped(&sim, "2026-03-10", "test-key").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(sim.grouped_requests(Some(503)), 1);
}
