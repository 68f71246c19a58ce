//! One key per bar period, on the grid the original's other jobs use: intraday bars at their
//! period start, daily bars at 00:00 of the trading day in the exchange's time zone. So a daily
//! run never lands on hourly rows, whatever the order, and a live bar and the final bar of one
//! period share a key.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use market_sim::{GroundTruthBar, Interval, Knobs, Provider};
use serde_json::{json, Value};
use shared::db;

use crate::common::*;

/// US, Frankfurt (Europe/Berlin) and Tokyo (east of UTC: its midnight is the day before in UTC).
const SYMBOLS: [&str; 3] = ["AAPL", "SAP.DE", "7203.T"];
const START: &str = "2026-03-09";
const END: &str = "2026-03-11";

fn run_input(interval: &str) -> Value {
    json!({
        "symbols": SYMBOLS,
        "start_date": START,
        "end_date": END,
        "interval": interval,
        "provider": "yahoo",
    })
}

async fn run(env: &Env, interval: &str) {
    let plan = env.select_ok(run_input(interval)).await;
    let out = env.fetch_ok(&plan.run_id, 0).await;
    assert_eq!((out.success, out.failed), (3, 0), "{interval}: {out:?}");
}

fn truth(env: &Env, symbol: &str, interval: Interval) -> Vec<GroundTruthBar> {
    env.sim
        .ground_truth(Provider::Yahoo, symbol, interval, date(START), date(END))
}

/// Every stored row of `symbol` as `(key, open, high, low, close, volume)`.
async fn stored(env: &Env, symbol: &str) -> Vec<(DateTime<Utc>, f64, f64, f64, f64, i64)> {
    let far = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    db::prices::stored_bars(
        &env.client().await,
        symbol,
        far("2000-01-01T00:00:00Z"),
        far("2100-01-01T00:00:00Z"),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|b| {
        (
            b.ts,
            b.open.unwrap(),
            b.high.unwrap(),
            b.low.unwrap(),
            b.close,
            b.volume.unwrap(),
        )
    })
    .collect()
}

fn as_rows(bars: &[GroundTruthBar]) -> Vec<(DateTime<Utc>, f64, f64, f64, f64, i64)> {
    bars.iter()
        .map(|b| (b.ts, b.open, b.high, b.low, b.close, b.volume))
        .collect()
}

/// Every hourly row and one daily row per trading day, with the final values, and nothing else.
async fn assert_hourly_and_daily_rows(env: &Env) {
    for symbol in SYMBOLS {
        let hourly = truth(env, symbol, Interval::Hour);
        let daily = truth(env, symbol, Interval::Day);
        assert_eq!(daily.len(), 3, "{symbol}: three trading days");
        let hourly_keys: BTreeSet<_> = hourly.iter().map(|b| b.ts).collect();
        assert!(
            daily.iter().all(|b| !hourly_keys.contains(&b.ts)),
            "{symbol}: a daily key is also an hourly key"
        );
        let mut expected = as_rows(&hourly);
        expected.extend(as_rows(&daily));
        expected.sort_by_key(|r| r.0);
        let rows = stored(env, symbol).await;
        assert_eq!(
            rows.len(),
            hourly.len() + daily.len(),
            "{symbol}: {} hourly + {} daily rows expected",
            hourly.len(),
            daily.len()
        );
        assert_eq!(rows, expected, "{symbol}");
    }
}

#[tokio::test]
async fn a_daily_run_after_an_hourly_run_keeps_every_hourly_row() {
    let env = env(&[]).await;
    run(&env, "1h").await;
    run(&env, "1d").await;
    assert_hourly_and_daily_rows(&env).await;
}

#[tokio::test]
async fn an_hourly_run_after_a_daily_run_keeps_every_daily_row() {
    let env = env(&[]).await;
    run(&env, "1d").await;
    run(&env, "1h").await;
    assert_hourly_and_daily_rows(&env).await;
}

#[tokio::test]
async fn a_run_during_the_session_and_a_later_run_leave_one_row_per_period_with_final_values() {
    // Wednesday 2026-03-11 16:48:24 UTC: 12:48 in New York, mid-session for AAPL; 17:48 in
    // Frankfurt, after XETRA's close, so its close bar is already there.
    let live = Knobs::default()
        .merged(&json!({"clock": "2026-03-11T16:48:24Z"}))
        .unwrap();
    let env = env_with(live, &[]).await;
    run(&env, "1h").await;
    run(&env, "1d").await;
    let during = stored(&env, "AAPL").await;
    // The live bars were stored at their period's key, never at the quote time.
    assert!(
        during.iter().all(|r| r.0.timestamp() % 1800 == 0),
        "a row is off the grid: {during:?}"
    );

    env.sim.set_knobs(Knobs::default());
    run(&env, "1h").await;
    run(&env, "1d").await;
    assert_hourly_and_daily_rows(&env).await;
}
