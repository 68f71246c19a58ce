//! The state machine end to end: moto's interpreter runs `statemachine/backfill.asl.json` (as
//! deployed, Distributed Maps included), whose Lambda calls reach the real function binaries
//! through the adapter's function host, against a fresh database and market-sim: the lease every
//! function is given, a run with failed tickers failing as `RunCompletedWithFailures`, and a
//! provider outage waited out through `unavailable` answers.

use std::time::Duration;

use e2e::local_stack::aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use e2e::local_stack::{unique_name, LocalStackOptions, MapMode};
use e2e::{
    assert_ended, assert_failed_with, assert_only_ground_truth_stored, assert_succeeded,
    count_rows, db, execute, fetch_batch_outputs, finish, only_run_id, recent_weekdays, run_input,
    serial, set_knobs, start_stack, ticker_statuses, EXECUTION_TIMEOUT,
};
use serde_json::json;

#[tokio::test]
async fn full_run_writes_exactly_the_ground_truth_and_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    let window = recent_weekdays();
    let symbols = ["FULLA", "FULLB", "FULLC", "FULLD", "FULLE"];
    // Five tickers in batches of two: three batches, in two lanes of the Map.
    let input = run_input(
        &symbols,
        window,
        "1h",
        "yahoo",
        json!({"batch_size": 2, "max_concurrency": 2}),
    );

    // Named here: every function is told this name as the run's lease holder.
    let name = unique_name("full-run");
    let arn = stack
        .start_execution(&input, &name)
        .await
        .expect("StartExecution");
    let outcome = finish(&stack, &arn, EXECUTION_TIMEOUT).await;

    let output = assert_succeeded(&stack, &outcome);
    assert_eq!(output["requested"], 5, "{output}");
    assert_eq!(output["success"], 5, "{output}");
    assert_eq!(output["failed"], 0, "{output}");
    assert_eq!(output["failed_batches"], json!([]), "{output}");

    let client = db(&stack).await;
    let expected_rows =
        assert_only_ground_truth_stored(&stack, &client, "yahoo", &symbols, window).await;
    assert_eq!(output["records_inserted"], expected_rows, "{output}");
    assert_eq!(
        ticker_statuses(&client).await,
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
    // Every function was told which execution holds the run's lease: this one (its name, even
    // inside the Map's child executions), and select-tickers got the input besides.
    for invocation in stack.invocations() {
        let payload: serde_json::Value = serde_json::from_str(&invocation.payload).unwrap();
        assert_eq!(
            payload["lease_execution"], name,
            "{}: {payload}",
            invocation.function
        );
        if invocation.function == "select-tickers" {
            let mut without_lease = payload.clone();
            without_lease
                .as_object_mut()
                .unwrap()
                .remove("lease_execution");
            assert_eq!(without_lease, input);
        }
    }
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

    let (arn, outcome) = execute(&stack, &input, "bad-input", EXECUTION_TIMEOUT).await;

    assert_failed_with(&stack, &outcome, "InvalidInput");
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

#[tokio::test]
async fn a_run_with_failed_tickers_fails_the_execution_with_run_completed_with_failures() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    set_knobs(&stack, json!({"unknown_symbols": ["NOSUCHX"]})).await;
    let input = run_input(
        &["FAILA", "NOSUCHX", "FAILB"],
        recent_weekdays(),
        "1h",
        "yahoo",
        json!({"batch_size": 3}),
    );

    let (_, outcome) = execute(&stack, &input, "with-failures", EXECUTION_TIMEOUT).await;

    // FAILED, so the notification rule and the ExecutionsFailed alarm report it.
    assert_failed_with(&stack, &outcome, "RunCompletedWithFailures");
    let client = db(&stack).await;
    let run_id = only_run_id(&client).await;
    assert_eq!(
        outcome.cause.as_deref(),
        Some(
            format!(
                "run {run_id} completed with failures: 1 of 3 tickers failed, 2 succeeded; \
                 see which and why with: backfill status {run_id}"
            )
            .as_str()
        )
    );
    // The run itself is closed, and the other tickers are stored.
    assert_eq!(
        ticker_statuses(&client).await,
        [
            ("FAILA".to_string(), "success".to_string()),
            ("FAILB".to_string(), "success".to_string()),
            ("NOSUCHX".to_string(), "failed".to_string()),
        ]
    );
    let status: String = client
        .query_one(
            "SELECT status FROM backfill_run WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .expect("reading backfill_run")
        .get(0);
    assert_eq!(status, "completed_with_failures");
    // Failed tickers are settled, not transient: nothing was retried.
    let fetches = stack
        .invocations()
        .into_iter()
        .filter(|i| i.function == "fetch-batch")
        .count();
    assert_eq!(fetches, 1);
}

#[tokio::test]
async fn a_provider_outage_longer_than_fetch_batchs_patience_is_waited_out_by_the_state_machine() {
    let _serial = serial().await;
    // The Wait states live in the per-batch child executions, of which moto keeps no history; with
    // the Maps inline the parent's history holds them.
    let stack = start_stack(LocalStackOptions {
        map_mode: MapMode::InlineForMeasuring,
        function_env: vec![
            ("FAULT_PATIENCE_SECONDS".into(), "1".into()),
            ("FAULT_BACKOFF_BASE_MS".into(), "100".into()),
            ("FAULT_BACKOFF_CAP_SECONDS".into(), "1".into()),
        ],
        ..LocalStackOptions::default()
    })
    .await;
    // Every provider request fails with 503 until the outage ends.
    set_knobs(&stack, json!({"fail_every_nth": 1, "fail_status": 503})).await;
    let window = recent_weekdays();
    let symbols = ["OUTA", "OUTB"];
    let input = run_input(
        &symbols,
        window,
        "1h",
        "yahoo",
        json!({"batch_size": 2, "max_concurrency": 1}),
    );
    let arn = stack
        .start_execution(&input, &unique_name("outage"))
        .await
        .expect("StartExecution");

    // fetch-batch gives up on the provider and says so; the state machine waits and calls again.
    test_support::wait::until(Duration::from_secs(60), || async {
        fetch_batch_outputs(&stack)
            .iter()
            .filter(|o| o["status"] == "unavailable")
            .count()
            >= 2
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "fetch-batch never answered unavailable twice: {e:?}\n{}",
            stack.logs_tail(40)
        )
    });
    set_knobs(&stack, json!({"fail_every_nth": null})).await;
    let outcome = finish(&stack, &arn, EXECUTION_TIMEOUT).await;

    assert_ended(&stack, &outcome, ExecutionStatus::Succeeded);
    let answers = fetch_batch_outputs(&stack);
    let unavailable: Vec<_> = answers
        .iter()
        .filter(|o| o["status"] == "unavailable")
        .collect();
    for answer in &unavailable {
        assert!(
            answer["retry_after_seconds"]
                .as_u64()
                .is_some_and(|s| s >= 1),
            "unavailable comes with a wait: {answer}"
        );
    }
    assert_eq!(answers.last().unwrap()["status"], "done", "{answers:?}");
    // Nothing thrown: the outage never cost a retry of the Task, only Wait states.
    assert!(
        stack
            .invocations()
            .iter()
            .all(|i| i.function_error.is_none()),
        "{:#?}",
        stack.invocations()
    );
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    let waits = history
        .events
        .iter()
        .filter(|e| {
            e.r#type == HistoryEventType::WaitStateEntered
                && e.state_entered_event_details()
                    .is_some_and(|d| d.name() == "WaitOutUnavailable")
        })
        .count();
    assert_eq!(waits, unavailable.len(), "one Wait per unavailable answer");
    let client = db(&stack).await;
    let rows = assert_only_ground_truth_stored(&stack, &client, "yahoo", &symbols, window).await;
    eprintln!(
        "outage: {} unavailable answers waited out, {rows} rows stored exactly, 1 execution",
        unavailable.len()
    );
}
