//! The fault suite, a long range: twenty years of Polygon hourly bars for one ticker (about
//! 83,500 bars) go through fetch-batch page by page (Polygon's `next_url`), each page committed
//! with the ticker's cursor, and are stored exactly. Prints one line of figures (`fault-suite | …`), with the peak RSS of the fetch-batch
//! process (a debug build here; the < 64 MB goal is for the release build, see `make bench`).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use e2e::local_stack::aws_sdk_sfn::types::ExecutionStatus;
use e2e::local_stack::LocalStackOptions;
use e2e::{
    assert_ended, compare_with_ground_truth, db, execute, executions, peak_rss_kib,
    requests_per_symbol, run_input, run_status, serial, start_stack, ticker_statuses, Figures,
};
use serde_json::json;

#[tokio::test]
async fn twenty_years_of_polygon_hourly_bars_are_stored_exactly() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    let window = (
        NaiveDate::from_ymd_opt(2006, 1, 2).expect("a date"),
        NaiveDate::from_ymd_opt(2025, 12, 31).expect("a date"),
    );
    let symbol = "FLONG";
    let input = run_input(&[symbol], window, "1h", "polygon", json!({}));

    let started = Instant::now();
    let (_, outcome) = execute(&stack, &input, "twenty-years", Duration::from_secs(600)).await;
    let elapsed = started.elapsed();

    // The instance that ran the batch is still alive (idle): its peak RSS so far.
    let peak = stack
        .instances()
        .await
        .expect("the function host lists its instances")
        .iter()
        .filter(|i| i.function == "fetch-batch")
        .filter_map(|i| peak_rss_kib(i.pid))
        .max();
    let client = db(&stack).await;
    let rows = compare_with_ground_truth(&stack, &client, "polygon", "1h", &[symbol], window).await;
    let all = executions(&stack).await;
    let pages = requests_per_symbol(&stack)
        .await
        .get(symbol)
        .copied()
        .unwrap_or(0);
    Figures {
        test: "fault_memory::twenty_years_of_polygon_hourly_bars_are_stored_exactly",
        rows: rows.clone(),
        elapsed,
        executions: all.len(),
        note: format!(
            "{pages} provider requests | fetch-batch peak RSS {} (debug build)",
            peak.map_or("unknown".to_string(), |kib| format!(
                "{:.1} MiB",
                kib as f64 / 1024.0
            ))
        ),
    }
    .print();

    assert_ended(&stack, &outcome, ExecutionStatus::Succeeded);
    assert_eq!(
        ticker_statuses(&client).await,
        [(symbol.to_string(), "success".to_string())]
    );
    assert!(
        rows.expected > 80_000,
        "twenty years of bars: {}",
        rows.expected
    );
    rows.assert_exact("twenty years of Polygon hourly bars");
    assert_eq!(run_status(&client).await, "succeeded");
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        pages >= 2,
        "a range this long comes in pages: {pages} request(s)"
    );
    // The cursor stands at the last bar.
    let cursor: Option<chrono::DateTime<chrono::Utc>> = client
        .query_one("SELECT last_bar_at FROM backfill_progress", &[])
        .await
        .expect("reading the cursor")
        .get(0);
    let last: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT max(date) FROM stock_price_history", &[])
        .await
        .expect("reading the last bar")
        .get(0);
    assert_eq!(cursor, Some(last));
}
