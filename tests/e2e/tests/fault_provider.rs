//! The fault suite, provider faults: 5xx answers, truncated bodies (that recover, and that never
//! do) and timeouts, injected by market-sim while the state machine runs the real functions.
//! Each test compares everything stored with market-sim's ground truth (0 missing, 0 duplicated,
//! 0 wrong rows), checks the tickers' and the execution's final status and that no person was
//! needed (one execution, no resume), and prints one line of figures (`fault-suite | …`).

use std::time::{Duration, Instant};

use e2e::local_stack::{LocalStack, LocalStackOptions};
use e2e::{
    assert_failed_with, assert_succeeded, batch_states, compare_with_ground_truth, db, execute,
    executions, fault_run_input, functions_log_lines, numbered_symbols, recent_weekdays,
    requests_per_symbol, requests_report, run_status, serial, set_knobs, start_stack,
    ticker_problems, Figures,
};
use serde_json::{json, Value};

/// How long one of these runs may take before the test gives up (they take seconds to a minute).
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

fn strs(symbols: &[String]) -> Vec<&str> {
    symbols.iter().map(String::as_str).collect()
}

/// Starts one execution of `input` and waits for its end; returns it with the time it took.
async fn run_once(
    stack: &LocalStack,
    input: &Value,
    name: &str,
) -> (e2e::local_stack::ExecutionOutcome, Duration) {
    let started = Instant::now();
    let (_, outcome) = execute(stack, input, name, RUN_TIMEOUT).await;
    (outcome, started.elapsed())
}

/// One execution over `symbols` (in batches of `batch_size`, `max_concurrency` at once) ends
/// SUCCEEDED with every ticker `success`, everything stored exactly once and exactly as the
/// ground truth, and nobody had to start another execution. Prints the figures.
async fn assert_one_run_stores_every_ticker(
    test: &'static str,
    stack: &LocalStack,
    symbols: &[String],
    (batch_size, max_concurrency): (usize, usize),
    name: &str,
) {
    let input = fault_run_input(symbols, batch_size, max_concurrency);
    let (outcome, elapsed) = run_once(stack, &input, name).await;
    let outcome = &outcome;
    let client = db(stack).await;
    let rows = compare_with_ground_truth(
        stack,
        &client,
        "yahoo",
        "1h",
        &strs(symbols),
        recent_weekdays(),
    )
    .await;
    let started = executions(stack).await;
    let tickers = ticker_problems(&client).await;
    let success = tickers.iter().filter(|t| t.1 == "success").count();
    let report = requests_report(stack).await;
    let retried = functions_log_lines(stack, "transient provider fault; retrying");
    Figures {
        test,
        rows: rows.clone(),
        elapsed,
        executions: started.len(),
        note: format!(
            "tickers {success}/{} success | provider requests {} {} | faults retried in place {retried}",
            symbols.len(),
            report["total"],
            report["by_status"]
        ),
    }
    .print();

    let output = assert_succeeded(stack, outcome);
    assert_eq!(output["success"], json!(symbols.len()), "{output}");
    assert_eq!(output["failed"], 0, "{output}");
    assert_eq!(output["failed_batches"], json!([]), "{output}");
    let not_success: Vec<_> = tickers.iter().filter(|t| t.1 != "success").collect();
    assert!(
        not_success.is_empty(),
        "tickers not stored: {not_success:?}"
    );
    assert_eq!(tickers.len(), symbols.len());
    rows.assert_exact(test);
    assert_eq!(output["records_inserted"], json!(rows.expected), "{output}");
    assert_eq!(run_status(&client).await, "succeeded");
    assert_eq!(
        started.len(),
        1,
        "no resume, no second execution: {started:?}"
    );
}

/// market-sim answered `fail_status` to exactly every `n`-th provider request.
async fn assert_every_nth_request_failed(stack: &LocalStack, n: u64) {
    let report = requests_report(stack).await;
    let total = report["total"].as_u64().unwrap_or(0);
    assert_eq!(
        report["by_status"]["503"].as_u64().unwrap_or(0),
        total / n,
        "every {n}th of {total} requests was answered 503: {}",
        report["by_status"]
    );
    assert!(
        total >= 2 * n,
        "too few requests to meet the fault: {total}"
    );
}

#[tokio::test]
async fn five_xx_on_every_10th_request_every_ticker_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    set_knobs(&stack, json!({"fail_every_nth": 10, "fail_kind": "status"})).await;
    let symbols = numbered_symbols("FTEN", 100);

    assert_one_run_stores_every_ticker(
        "fault_provider::five_xx_on_every_10th_request_every_ticker_succeeds",
        &stack,
        &symbols,
        (10, 4),
        "five-xx-10",
    )
    .await;
    assert_every_nth_request_failed(&stack, 10).await;
}

#[tokio::test]
async fn five_xx_on_every_2nd_request_every_ticker_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    set_knobs(&stack, json!({"fail_every_nth": 2, "fail_kind": "status"})).await;
    let symbols = numbered_symbols("FTWO", 20);

    assert_one_run_stores_every_ticker(
        "fault_provider::five_xx_on_every_2nd_request_every_ticker_succeeds",
        &stack,
        &symbols,
        (5, 4),
        "five-xx-2",
    )
    .await;
    assert_every_nth_request_failed(&stack, 2).await;
}

#[tokio::test]
async fn truncated_bodies_that_recover_are_retried_and_every_ticker_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    // Every 2nd answer is a 200 whose JSON is cut in half.
    set_knobs(
        &stack,
        json!({"fail_every_nth": 2, "fail_kind": "truncated"}),
    )
    .await;
    let symbols = numbered_symbols("FTRU", 20);

    assert_one_run_stores_every_ticker(
        "fault_provider::truncated_bodies_that_recover_are_retried_and_every_ticker_succeeds",
        &stack,
        &symbols,
        (5, 4),
        "truncated",
    )
    .await;
    // Each ticker needed more than one request: the truncated answers were asked again.
    let requests: u64 = requests_per_symbol(&stack).await.values().sum();
    assert!(
        requests >= 2 * symbols.len() as u64 - 1,
        "{requests} requests for {} tickers",
        symbols.len()
    );
}

#[tokio::test]
async fn truncated_bodies_that_never_recover_stall_the_batch_and_fail_the_execution_run_incomplete()
{
    let _serial = serial().await;
    // Impatient functions, so that giving up takes seconds instead of the 30 minutes of the
    // defaults: each invocation retries a fault for 1 s, and a batch without a finished ticker
    // for 8 s is given up.
    let stack = start_stack(LocalStackOptions {
        function_env: vec![
            ("FAULT_PATIENCE_SECONDS".into(), "1".into()),
            ("FAULT_BACKOFF_BASE_MS".into(), "200".into()),
            ("FAULT_BACKOFF_CAP_SECONDS".into(), "1".into()),
            ("NO_PROGRESS_TIMEOUT_SECONDS".into(), "8".into()),
        ],
        ..LocalStackOptions::default()
    })
    .await;
    let symbols = numbered_symbols("FGAR", 10);
    // Two tickers whose every answer is cut in half, amid eight good ones of the same batch.
    let garbled = [symbols[3].clone(), symbols[7].clone()];
    set_knobs(&stack, json!({"malformed_symbols": garbled})).await;
    let good: Vec<String> = symbols
        .iter()
        .filter(|s| !garbled.contains(s))
        .cloned()
        .collect();

    let (outcome, elapsed) =
        run_once(&stack, &fault_run_input(&symbols, 10, 1), "never-recovers").await;

    let client = db(&stack).await;
    let rows = compare_with_ground_truth(
        &stack,
        &client,
        "yahoo",
        "1h",
        &strs(&good),
        recent_weekdays(),
    )
    .await;
    let started = executions(&stack).await;
    let tickers = ticker_problems(&client).await;
    let requests = requests_per_symbol(&stack).await;
    Figures {
        test: "fault_provider::truncated_bodies_that_never_recover_stall_the_batch_and_fail_the_execution_run_incomplete",
        rows: rows.clone(),
        elapsed,
        executions: started.len(),
        note: format!(
            "tickers {}/{} success, garbled {:?} requested {:?} times",
            tickers.iter().filter(|t| t.1 == "success").count(),
            symbols.len(),
            garbled,
            garbled.iter().map(|s| requests.get(s).copied().unwrap_or(0)).collect::<Vec<_>>()
        ),
    }
    .print();

    // A notifying end: the execution fails, naming the run and how to resume it.
    assert_failed_with(&stack, &outcome, "RunIncomplete");
    let run_id: String = client
        .query_one("SELECT run_id FROM backfill_run", &[])
        .await
        .expect("one run")
        .get(0);
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&run_id) && cause.contains("backfill resume"),
        "the cause names the run and the resume command: {cause}"
    );
    assert_eq!(run_status(&client).await, "incomplete");
    // The garbled tickers stay claimable (pending) with the reason; every other ticker is stored.
    for (symbol, status, error_name) in &tickers {
        if garbled.contains(symbol) {
            assert_eq!(
                (status.as_str(), error_name.as_deref()),
                ("pending", Some("GarbledResponse")),
                "{symbol}: {tickers:?}"
            );
        } else {
            assert_eq!(status, "success", "{symbol} was not stored: {tickers:?}");
        }
    }
    rows.assert_exact("the good tickers of the batch");
    // The batch was given up for want of progress, with that reason recorded.
    let batches = batch_states(&client).await;
    assert_eq!(
        batches,
        [(
            0,
            Some("stalled".to_string()),
            Some("NoProgress".to_string())
        )],
        "{batches:?}"
    );
    // Garbled is transient: retried, not failed on the first cut body.
    for symbol in &garbled {
        assert!(
            requests.get(symbol).copied().unwrap_or(0) >= 2,
            "{symbol} was not retried: {requests:?}"
        );
    }
    assert_eq!(started.len(), 1, "{started:?}");
}

#[tokio::test]
async fn provider_timeouts_are_retried_and_every_ticker_succeeds() {
    let _serial = serial().await;
    // The client gives up after 1 s; every 3rd answer comes after 3 s.
    let stack = start_stack(LocalStackOptions {
        function_env: vec![("PROVIDER_TIMEOUT_SECONDS".into(), "1".into())],
        ..LocalStackOptions::default()
    })
    .await;
    set_knobs(
        &stack,
        json!({"fail_every_nth": 3, "fail_kind": "slow", "fail_slow_ms": 3000}),
    )
    .await;
    let symbols = numbered_symbols("FSLO", 12);

    assert_one_run_stores_every_ticker(
        "fault_provider::provider_timeouts_are_retried_and_every_ticker_succeeds",
        &stack,
        &symbols,
        (4, 3),
        "timeouts",
    )
    .await;
    // The client gave up on the slow answers (market-sim never logs an abandoned request).
    let retried = functions_log_lines(&stack, "transient provider fault; retrying");
    assert!(
        retried >= 1,
        "no timeout was retried\n{}",
        stack.logs_tail(40)
    );
}

#[tokio::test]
async fn a_well_formed_wrong_answer_fails_only_that_ticker_and_the_execution_notifies() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    let symbols = numbered_symbols("FWRO", 6);
    // Complete JSON, but quarterly bars where hourly ones were asked: wrong, not garbled.
    let wrong = symbols[2].clone();
    set_knobs(&stack, json!({"coarse_symbols": [wrong]})).await;
    let good: Vec<String> = symbols.iter().filter(|s| **s != wrong).cloned().collect();

    let (outcome, elapsed) =
        run_once(&stack, &fault_run_input(&symbols, 6, 1), "wrong-answer").await;

    let client = db(&stack).await;
    let rows = compare_with_ground_truth(
        &stack,
        &client,
        "yahoo",
        "1h",
        &strs(&good),
        recent_weekdays(),
    )
    .await;
    let started = executions(&stack).await;
    let tickers = ticker_problems(&client).await;
    let requests = requests_per_symbol(&stack).await;
    Figures {
        test: "fault_provider::a_well_formed_wrong_answer_fails_only_that_ticker_and_the_execution_notifies",
        rows: rows.clone(),
        elapsed,
        executions: started.len(),
        note: format!(
            "tickers {}/{} success, {wrong} failed after {} request(s)",
            tickers.iter().filter(|t| t.1 == "success").count(),
            symbols.len(),
            requests.get(&wrong).copied().unwrap_or(0)
        ),
    }
    .print();

    // Nothing is left to fetch, but a person should look: the execution fails, saying so.
    assert_failed_with(&stack, &outcome, "RunCompletedWithFailures");
    assert_eq!(run_status(&client).await, "completed_with_failures");
    for (symbol, status, error_name) in &tickers {
        if *symbol == wrong {
            assert_eq!(
                (status.as_str(), error_name.as_deref()),
                ("failed", Some("MalformedResponse")),
                "{tickers:?}"
            );
        } else {
            assert_eq!(status, "success", "{symbol}: {tickers:?}");
        }
    }
    rows.assert_exact("the other tickers");
    assert_eq!(
        requests.get(&wrong).copied(),
        Some(1),
        "a wrong answer is not asked again: {requests:?}"
    );
    assert_eq!(started.len(), 1, "{started:?}");
}
