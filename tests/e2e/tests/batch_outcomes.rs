//! How a batch ends, end to end: a ticker the provider does not know fails alone, and a tiny
//! time budget makes fetch-batch return `partial` until the batch is done.

use e2e::local_stack::LocalStackOptions;
use e2e::{
    assert_failed_with, assert_stored_equal_ground_truth, assert_succeeded, db, execute,
    fetch_batch_outputs, recent_weekdays, run_input, serial, set_knobs, start_stack, stored_bars,
    ticker_statuses, EXECUTION_TIMEOUT,
};
use serde_json::json;

#[tokio::test]
async fn unknown_ticker_fails_while_the_others_succeed() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    set_knobs(&stack, json!({"unknown_symbols": ["UNKNOWNX"]})).await;
    let window = recent_weekdays();
    // One batch, the unknown ticker in the middle of it.
    let input = run_input(
        &["KNOWNA", "UNKNOWNX", "KNOWNB"],
        window,
        "1h",
        "yahoo",
        json!({"batch_size": 3}),
    );

    let (_, outcome) = execute(&stack, &input, "unknown-ticker", EXECUTION_TIMEOUT).await;

    // A run with failed tickers ends in a way that notifies: the execution FAILS, by name.
    assert_failed_with(&stack, &outcome, "RunCompletedWithFailures");
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("1 of 3 tickers failed") && cause.contains("backfill status"),
        "{cause}"
    );

    // The run's summary, as finalize-run stored it.
    let client = db(&stack).await;
    let output: serde_json::Value = client
        .query_one("SELECT summary FROM backfill_run", &[])
        .await
        .expect("reading the run's summary")
        .get(0);
    assert_eq!(output["status"], "completed_with_failures", "{output}");
    assert_eq!(output["success"], 2, "{output}");
    assert_eq!(output["failed"], 1, "{output}");
    assert_eq!(output["failed_batches"], json!([]), "{output}");
    let errors = output["errors"].as_array().expect("errors is an array");
    assert_eq!(errors.len(), 1, "{output}");
    assert_eq!(errors[0]["symbol"], "UNKNOWNX", "{output}");
    assert_eq!(errors[0]["status"], "failed", "{output}");
    assert_eq!(errors[0]["error_name"], "UnknownSymbol", "{output}");

    assert_eq!(
        ticker_statuses(&client).await,
        [
            ("KNOWNA".to_string(), "success".to_string()),
            ("KNOWNB".to_string(), "success".to_string()),
            ("UNKNOWNX".to_string(), "failed".to_string()),
        ]
    );
    assert_stored_equal_ground_truth(&stack, &client, "yahoo", &["KNOWNA", "KNOWNB"], window).await;
    assert_eq!(stored_bars(&client, "UNKNOWNX").await, []);
}

#[tokio::test]
async fn partial_returns_loop_until_done() {
    let _serial = serial().await;
    // No time budget: each invocation fetches one ticker (at least one always), then returns.
    let stack = start_stack(LocalStackOptions {
        function_env: vec![("FETCH_BUDGET_SECONDS".into(), "0".into())],
        ..LocalStackOptions::default()
    })
    .await;
    let window = recent_weekdays();
    let symbols = ["PARTA", "PARTB", "PARTC", "PARTD"];
    let input = run_input(&symbols, window, "1h", "yahoo", json!({"batch_size": 4}));

    let (arn, outcome) = execute(&stack, &input, "partial", EXECUTION_TIMEOUT).await;

    let output = assert_succeeded(&stack, &outcome);
    assert_eq!(output["success"], 4, "{output}");

    // The one batch was called again after each `partial`, one ticker per call, until `done`.
    let answers = fetch_batch_outputs(&stack);
    let calls: Vec<(i64, String, i64)> = answers
        .iter()
        .map(|o| {
            (
                o["batch"].as_i64().unwrap_or(-1),
                o["status"].as_str().unwrap_or_default().to_string(),
                o["attempted"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let batch = answers[0]["batch"].as_i64().unwrap_or(-1);
    assert_eq!(
        calls,
        [
            (batch, "partial".to_string(), 1),
            (batch, "partial".to_string(), 1),
            (batch, "partial".to_string(), 1),
            (batch, "done".to_string(), 1),
        ]
    );
    let client = db(&stack).await;
    assert_stored_equal_ground_truth(&stack, &client, "yahoo", &symbols, window).await;
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    eprintln!(
        "partial run: {} history events in the parent execution",
        history.len()
    );
}
