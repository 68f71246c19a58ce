//! A grouped daily run end to end: moto's interpreter runs `statemachine/backfill.asl.json`, the
//! real function binaries plan a 1d Polygon run as days (`backfill_day`) and fetch Polygon's
//! grouped daily endpoint once per weekday, for every ticker at once; market-sim answers it. The
//! stored rows are the per-ticker ground truth, each listed ticker is `success`, the one market-sim
//! never lists is `failed` / `NotListedByProvider` (so the execution fails with
//! `RunCompletedWithFailures`), and market-sim saw one grouped request per weekday and no
//! per-ticker request at all.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, Timelike, Weekday};
use e2e::local_stack::LocalStackOptions;
use e2e::{
    assert_failed_with, compare_with_ground_truth, count_rows, db, execute, fetch_batch_outputs,
    interval_ground_truth, only_run_id, recent_weekdays, requests_report, run_input, run_status,
    serial, set_knobs, start_stack, ticker_problems, EXECUTION_TIMEOUT,
};
use serde_json::json;

/// Polygon's grouped daily route, as market-sim logs its paths (`…/stocks/{date}`).
const GROUPED_PATH: &str = "/v2/aggs/grouped/locale/us/market/stocks/";
/// Polygon's per-ticker aggregates route.
const TICKER_PATH: &str = "/v2/aggs/ticker/";
/// In market-sim's grouped universe, but made unknown by the test: never listed.
const UNLISTED: &str = "SYN0012";

#[tokio::test]
async fn grouped_run_fetches_one_call_per_weekday_and_stores_the_per_ticker_truth() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    set_knobs(&stack, json!({"unknown_symbols": [UNLISTED]})).await;
    // Monday to Friday of a week that ended at least a week ago: 5 weekdays.
    let (monday, _) = recent_weekdays();
    let friday = monday + Days::new(4);
    assert_eq!(
        (monday.weekday(), friday.weekday()),
        (Weekday::Mon, Weekday::Fri)
    );
    let window = (monday, friday);
    let listed: Vec<String> = (1..=11).map(|i| format!("SYN{i:04}")).collect();
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    let mut symbols = listed.clone();
    symbols.push(UNLISTED);
    // 12 tickers > 5 weekdays: the grouped strategy; 2 days per batch: 3 batches, 2 at a time.
    let input = run_input(
        &symbols,
        window,
        "1d",
        "polygon",
        json!({"strategy": "grouped", "batch_size": 2, "max_concurrency": 2}),
    );

    let (_, outcome) = execute(&stack, &input, "grouped", EXECUTION_TIMEOUT).await;

    // A run with a failed ticker is closed, then fails the execution by name.
    assert_failed_with(&stack, &outcome, "RunCompletedWithFailures");
    let client = db(&stack).await;
    let run_id = only_run_id(&client).await;
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&format!(
            "run {run_id} completed with failures: 1 of 12 tickers failed, 11 succeeded"
        )),
        "{cause}"
    );
    assert_eq!(run_status(&client).await, "completed_with_failures");
    let strategy: String = client
        .query_one(
            "SELECT strategy FROM backfill_run WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .expect("reading backfill_run")
        .get(0);
    assert_eq!(strategy, "grouped");

    // The plan: the 5 weekdays in 3 batches of contiguous days, every one done.
    let days: Vec<(String, i32, String)> = client
        .query(
            "SELECT day::text, batch, status FROM backfill_day WHERE run_id = $1 ORDER BY day",
            &[&run_id],
        )
        .await
        .expect("reading backfill_day")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let weekdays: Vec<String> = (0..5)
        .map(|i| (monday + Days::new(i)).to_string())
        .collect();
    assert_eq!(
        days,
        weekdays
            .iter()
            .zip([0, 0, 1, 1, 2])
            .map(|(d, b)| (d.clone(), b, "done".to_string()))
            .collect::<Vec<_>>()
    );
    let fetched = fetch_batch_outputs(&stack);
    let mut batches: Vec<i64> = fetched
        .iter()
        .map(|o| o["batch"].as_i64().unwrap_or(-1))
        .collect();
    batches.sort_unstable();
    assert_eq!(batches, [0, 1, 2], "one invocation per batch: {fetched:#?}");
    assert!(
        fetched.iter().all(|o| o["status"] == "done"),
        "{fetched:#?}"
    );

    // Tickers: the listed ones success, the unknown one failed as never listed.
    let mut expected: Vec<(String, String, Option<String>)> = listed
        .iter()
        .map(|s| (s.to_string(), "success".to_string(), None))
        .collect();
    expected.push((
        UNLISTED.to_string(),
        "failed".to_string(),
        Some("NotListedByProvider".to_string()),
    ));
    assert_eq!(ticker_problems(&client).await, expected);

    // The rows are exactly what a per-ticker run stores: daily bars keyed at 00:00 New York.
    let rows = compare_with_ground_truth(&stack, &client, "polygon", "1d", &listed, window).await;
    rows.assert_exact("grouped run");
    assert_eq!(rows.expected, 11 * 5, "one bar per ticker and weekday");
    // Daily keys are 00:00 in New York: 05:00 UTC (EST) or 04:00 UTC (EDT), on the weekday.
    for symbol in &listed {
        let truth = interval_ground_truth(&stack, "polygon", "1d", symbol, monday, friday).await;
        let keys: Vec<(String, u32, u32)> = truth
            .iter()
            .map(|b| (b.ts.date_naive().to_string(), b.ts.hour(), b.ts.minute()))
            .collect();
        assert_eq!(keys.len(), 5, "{symbol}: {keys:?}");
        for ((day, hour, minute), weekday) in keys.iter().zip(&weekdays) {
            assert!(
                day == weekday && (4..=5).contains(hour) && *minute == 0,
                "{symbol}: a daily bar not keyed at 00:00 New York on {weekday}: {keys:?}"
            );
        }
    }
    assert_eq!(count_rows(&client, "stock_price_history").await, 55);
    let records: i64 = client
        .query_one(
            "SELECT COALESCE(SUM(records_inserted), 0)::bigint FROM backfill_progress",
            &[],
        )
        .await
        .expect("summing records_inserted")
        .get(0);
    assert_eq!(records, 55);

    // market-sim: one grouped request per weekday, each answered 200, and none per ticker.
    let report = requests_report(&stack).await;
    let mut grouped: BTreeMap<String, (u16, u64)> = BTreeMap::new();
    let mut per_ticker = 0;
    for entry in report["by_path"].as_array().expect("by_path") {
        let path = entry["path"].as_str().unwrap_or_default();
        let status = entry["status"].as_u64().unwrap_or_default() as u16;
        let count = entry["count"].as_u64().unwrap_or_default();
        if let Some(day) = path.strip_prefix(GROUPED_PATH) {
            let seen = grouped.entry(day.to_string()).or_insert((status, 0));
            seen.1 += count;
            if status != 200 {
                seen.0 = status;
            }
        } else if path.starts_with(TICKER_PATH) {
            per_ticker += count;
        }
    }
    assert_eq!(
        grouped,
        weekdays
            .iter()
            .map(|d| (d.clone(), (200, 1)))
            .collect::<BTreeMap<_, _>>(),
        "{report}"
    );
    assert_eq!(per_ticker, 0, "{report}");
    assert_eq!(report["total"], 5, "{report}");
}
