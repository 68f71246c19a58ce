//! The state machine end to end: moto's interpreter runs `statemachine/backfill.asl.json` (as
//! deployed, Distributed Maps included), whose Lambda calls reach the real function binaries
//! through the adapter and `cargo lambda watch`, against a fresh database and market-sim.

use e2e::local_stack::aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use e2e::local_stack::{unique_name, LocalStackOptions};
use e2e::{
    count_rows, db, ground_truth, recent_weekdays, serial, start_stack, stored_bars, Bar,
    EXECUTION_TIMEOUT,
};
use serde_json::json;

#[tokio::test]
async fn full_run_writes_exactly_the_ground_truth_and_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    let (start, end) = recent_weekdays();
    let symbols = ["FULLA", "FULLB", "FULLC", "FULLD", "FULLE"];
    // Five tickers in batches of two: three batches, in two lanes of the Map.
    let input = json!({
        "symbols": symbols,
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "interval": "1h",
        "provider": "yahoo",
        "batch_size": 2,
        "max_concurrency": 2,
    });

    let arn = stack
        .start_execution(&input, &unique_name("full-run"))
        .await
        .expect("StartExecution");
    let outcome = stack
        .wait_for_execution(&arn, EXECUTION_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs_tail(40)));

    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{outcome:?}\n{}",
        stack.logs_tail(40)
    );
    let output = outcome.output.expect("a succeeded execution has output");
    assert_eq!(output["status"], "succeeded", "{output}");
    assert_eq!(output["requested"], 5, "{output}");
    assert_eq!(output["success"], 5, "{output}");
    assert_eq!(output["failed"], 0, "{output}");
    assert_eq!(output["failed_batches"], json!([]), "{output}");

    let client = db(&stack).await;
    let mut expected_rows = 0;
    for symbol in symbols {
        let truth: Vec<Bar> = ground_truth(&stack, symbol, start, end)
            .await
            .iter()
            .map(Bar::from)
            .collect();
        assert!(!truth.is_empty(), "market-sim has no bars for {symbol}");
        let stored = stored_bars(&client, symbol).await;
        assert_eq!(
            stored, truth,
            "{symbol}: stored bars differ from the ground truth"
        );
        expected_rows += truth.len() as i64;
    }
    assert_eq!(
        count_rows(&client, "stock_price_history").await,
        expected_rows
    );
    assert_eq!(output["records_inserted"], expected_rows, "{output}");
    let statuses: Vec<(String, String)> = client
        .query(
            "SELECT symbol, status FROM backfill_progress ORDER BY symbol",
            &[],
        )
        .await
        .expect("reading backfill_progress")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        statuses,
        symbols
            .iter()
            .map(|s| (s.to_string(), "success".to_string()))
            .collect::<Vec<_>>()
    );

    // Three batches went through the Map, each fetched once; nothing was retried or caught.
    let fetches: Vec<_> = stack
        .invocations()
        .into_iter()
        .filter(|i| i.function == "fetch-batch")
        .collect();
    assert_eq!(fetches.len(), 3, "{fetches:#?}");
    assert!(
        fetches.iter().all(|i| i.function_error.is_none()),
        "{fetches:#?}"
    );
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    assert_eq!(history.count(HistoryEventType::TaskFailed), 0);
    assert_eq!(history.count(HistoryEventType::MapRunStarted), 1);
    eprintln!(
        "full run: {} history events in the parent execution; map runs: {:?}",
        history.len(),
        history.map_runs
    );
}

#[tokio::test]
async fn bad_execution_input_fails_fast_with_invalid_input_and_writes_nothing() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    let (start, end) = recent_weekdays();
    // The range is backwards: select-tickers rejects it before writing anything.
    let input = json!({
        "symbols": ["BADIN"],
        "start_date": end.to_string(),
        "end_date": start.to_string(),
    });

    let arn = stack
        .start_execution(&input, &unique_name("bad-input"))
        .await
        .expect("StartExecution");
    let outcome = stack
        .wait_for_execution(&arn, EXECUTION_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs_tail(40)));

    assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("InvalidInput"),
        "{outcome:?}"
    );
    let cause = outcome.cause.unwrap_or_default();
    assert!(
        cause.contains("start_date"),
        "the cause says what is wrong: {cause}"
    );

    // Fast: one call to select-tickers (InvalidInput is not retried), no Map, no finalize-run.
    let called: Vec<String> = stack
        .invocations()
        .into_iter()
        .map(|i| i.function)
        .collect();
    assert_eq!(called, ["select-tickers"]);
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    assert_eq!(history.count(HistoryEventType::TaskScheduled), 1);
    assert_eq!(history.count(HistoryEventType::MapStateEntered), 0);
    assert_eq!(history.count(HistoryEventType::ExecutionFailed), 1);

    let client = db(&stack).await;
    for table in [
        "backfill_run",
        "backfill_progress",
        "backfill_batch",
        "stock_price_history",
    ] {
        assert_eq!(count_rows(&client, table).await, 0, "{table} has rows");
    }
}
