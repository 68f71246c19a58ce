//! A run stopped part-way and resumed with the `backfill` CLI: the resume finishes the run,
//! writes no duplicate rows and does not fetch again what was already stored.

use e2e::local_stack::aws_sdk_sfn::types::ExecutionStatus;
use e2e::local_stack::{unique_name, LocalStackOptions};
use e2e::{
    assert_stored_equal_ground_truth, backfill_cli, count_rows, db, only_run_id, recent_weekdays,
    requests_per_symbol, serial, set_knobs, start_stack, ticker_statuses, EXECUTION_TIMEOUT,
};
use serde_json::{json, Value};
use test_support::wait;

#[tokio::test]
async fn stopped_run_resumed_with_the_cli_completes_without_duplicates_or_refetching() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    // Slow answers, so that the run is still going when the first ticker is stored.
    set_knobs(&stack, json!({"latency_ms": 300})).await;
    let window = recent_weekdays();
    let symbols = [
        "RESMA", "RESMB", "RESMC", "RESMD", "RESME", "RESMF", "RESMG", "RESMH",
    ];
    let input = json!({
        "symbols": symbols,
        "start_date": window.0.to_string(),
        "end_date": window.1.to_string(),
        "interval": "1h",
        "provider": "yahoo",
        "batch_size": 2,
        "max_concurrency": 1,
    });
    let arn = stack
        .start_execution(&input, &unique_name("to-stop"))
        .await
        .expect("StartExecution");
    let client = db(&stack).await;

    // Stop the execution as soon as one ticker is stored.
    let client_ref = &client;
    wait::until(EXECUTION_TIMEOUT, || async move {
        let stored: i64 = client_ref
            .query_one(
                "SELECT count(*) FROM backfill_progress WHERE status = 'success'",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        stored >= 1
    })
    .await
    .unwrap_or_else(|e| panic!("no ticker was stored: {e}\n{}", stack.logs_tail(40)));
    stack
        .sfn()
        .stop_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("StopExecution");
    let stopped = stack
        .wait_for_execution(&arn, EXECUTION_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs_tail(40)));
    assert_eq!(stopped.status, ExecutionStatus::Aborted, "{stopped:?}");

    let stored_before: Vec<String> = ticker_statuses(&client)
        .await
        .into_iter()
        .filter(|(_, status)| status == "success")
        .map(|(symbol, _)| symbol)
        .collect();
    assert!(
        stored_before.len() < symbols.len(),
        "the execution was stopped too late to leave anything to resume"
    );
    let requests_before = requests_per_symbol(&stack).await;
    let run_id = only_run_id(&client).await;

    let resumed = tokio::time::timeout(
        EXECUTION_TIMEOUT,
        backfill_cli(&stack)
            .await
            .args(["resume", &run_id, "--wait"])
            .output(),
    )
    .await
    .expect("backfill resume --wait did not return in time")
    .expect("backfill resume ran");
    assert!(
        resumed.status.success(),
        "backfill resume --wait: {}\nstdout:\n{}\nstderr:\n{}\n{}",
        resumed.status,
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr),
        stack.logs_tail(40)
    );

    // Complete, and every bar stored once.
    assert!(ticker_statuses(&client)
        .await
        .iter()
        .all(|(_, status)| status == "success"));
    let rows = assert_stored_equal_ground_truth(&stack, &client, "yahoo", &symbols, window).await;
    assert_eq!(count_rows(&client, "stock_price_history").await, rows);
    let status = backfill_cli(&stack)
        .await
        .args(["status", &run_id, "--json"])
        .output()
        .await
        .expect("backfill status ran");
    assert!(status.status.success(), "backfill status: {status:?}");
    let report: Value =
        serde_json::from_slice(&status.stdout).expect("backfill status --json prints JSON");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(
        report["records_inserted"],
        json!(rows),
        "every stored bar was inserted exactly once: {report}"
    );

    // Nothing stored before the resume was fetched again.
    let requests_after = requests_per_symbol(&stack).await;
    for symbol in &stored_before {
        assert_eq!(
            requests_after.get(symbol),
            requests_before.get(symbol),
            "{symbol} was already stored, yet fetched again"
        );
    }
    eprintln!(
        "resume: {} of {} tickers were stored when the execution was stopped",
        stored_before.len(),
        symbols.len()
    );
}
