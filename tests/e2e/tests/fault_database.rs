//! The fault suite, database outages: the stack's PostgreSQL is stopped (`pg_ctl stop -m fast`)
//! and started again on the same port and data directory while the state machine runs. Each test
//! has a cluster of its own (`test_support::cluster::DedicatedCluster`), so stopping it disturbs
//! no other test, and the two tests of this file run at the same time (no serial lock): the suite
//! grows by the longer outage, not by both.
//!
//! Each test compares everything stored with market-sim's ground truth (0 missing, 0 duplicated,
//! 0 wrong rows), checks the tickers' and the execution's final status and that no person was
//! needed (one execution, no resume), and prints one line of figures (`fault-suite | …`).

use std::time::{Duration, Instant};

use e2e::local_stack::{unique_name, LocalStack, LocalStackOptions};
use e2e::{
    assert_succeeded, compare_with_ground_truth, connect, executions, fault_run_input, finish,
    function_errors, functions_log_lines, numbered_symbols, recent_weekdays, run_status, set_knobs,
    start_stack, status_counts, ticker_problems, Figures, StartGate,
};
use serde_json::json;
use test_support::cluster::DedicatedCluster;
use test_support::wait;

/// How long a run without an outage may take to reach the point where the database is stopped.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Tickers `success` so far (0 when the database cannot be read).
async fn successes(url: &str) -> i64 {
    let Ok(client) = connect(url).await else {
        return 0;
    };
    client
        .query_one(
            "SELECT count(*) FROM backfill_progress WHERE status = 'success'",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// The run ended SUCCEEDED without a resume, every ticker `success`, everything stored exactly
/// once and exactly as the ground truth. Prints the figures first.
async fn assert_succeeded_without_a_person(
    test: &'static str,
    stack: &LocalStack,
    symbols: &[String],
    outcome: &e2e::local_stack::ExecutionOutcome,
    elapsed: Duration,
    note: String,
) {
    let client = connect(stack.database_url())
        .await
        .expect("the database is back");
    let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let rows =
        compare_with_ground_truth(stack, &client, "yahoo", "1h", &names, recent_weekdays()).await;
    let started = executions(stack).await;
    let counts = status_counts(&client).await;
    Figures {
        test,
        rows: rows.clone(),
        elapsed,
        executions: started.len(),
        note: format!("tickers {counts:?} | {note}"),
    }
    .print();

    let output = assert_succeeded(stack, outcome);
    assert_eq!(output["success"], json!(symbols.len()), "{output}");
    assert_eq!(output["failed_batches"], json!([]), "{output}");
    let tickers = ticker_problems(&client).await;
    assert!(
        tickers.iter().all(|t| t.1 == "success") && tickers.len() == symbols.len(),
        "{tickers:?}"
    );
    rows.assert_exact(test);
    assert_eq!(output["records_inserted"], json!(rows.expected), "{output}");
    assert_eq!(run_status(&client).await, "succeeded");
    let lease: Option<String> = client
        .query_one("SELECT lease_execution FROM backfill_run", &[])
        .await
        .expect("reading the run's lease")
        .get(0);
    assert_eq!(lease, None, "the finished run released its lease");
    assert_eq!(
        started.len(),
        1,
        "no resume, no second execution: {started:?}"
    );
}

#[tokio::test]
async fn database_outage_of_60_seconds_mid_run_succeeds_without_a_resume() {
    const OUTAGE: Duration = Duration::from_secs(60);
    let cluster = DedicatedCluster::new().await;
    let stack = start_stack(LocalStackOptions {
        database_url: Some(cluster.url()),
        ..LocalStackOptions::default()
    })
    .await;
    // Slow answers, so that the run is well under way, not over, when the database goes.
    set_knobs(&stack, json!({"latency_ms": 400})).await;
    let symbols = numbered_symbols("FDBA", 24);
    let started = Instant::now();
    let arn = stack
        .start_execution(
            &fault_run_input(&symbols, 6, 2),
            &unique_name("db-outage-60s"),
        )
        .await
        .expect("StartExecution");

    // Mid-run: some tickers stored, most not.
    let url = stack.database_url().to_string();
    wait::until(SETUP_TIMEOUT, || {
        let url = url.clone();
        async move { successes(&url).await >= 4 }
    })
    .await
    .unwrap_or_else(|e| panic!("the run did not get going: {e}\n{}", stack.logs_tail(40)));
    let stored_before = successes(&url).await;
    assert!(
        stored_before < symbols.len() as i64,
        "the run was over before the outage"
    );
    cluster.stop().await;
    let down_at = started.elapsed();
    tokio::time::sleep(OUTAGE).await;
    cluster.start().await;

    let outcome = finish(&stack, &arn, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    let lost = functions_log_lines(&stack, "database connection lost; retrying");
    let thrown = function_errors(&stack, "fetch-batch", "DatabaseUnavailable");
    assert_succeeded_without_a_person(
        "fault_database::database_outage_of_60_seconds_mid_run_succeeds_without_a_resume",
        &stack,
        &symbols,
        &outcome,
        elapsed,
        format!(
            "database down at {:.1} s for {} s with {stored_before} tickers stored | fetch-batch: \
             {lost} lost connections retried in place, {thrown} DatabaseUnavailable retried by the state machine",
            down_at.as_secs_f64(),
            OUTAGE.as_secs()
        ),
    )
    .await;
    assert!(
        lost + thrown > 0,
        "fetch-batch never met the outage\n{}",
        stack.logs_tail(60)
    );
}

#[tokio::test]
async fn database_outage_of_5_minutes_across_finalize_run_succeeds_without_a_resume() {
    const OUTAGE: Duration = Duration::from_secs(300);
    let cluster = DedicatedCluster::new().await;
    // finalize-run's first instance waits at its start until the database is down, so that
    // FinalizeRun, and nothing before it, meets the outage.
    let gate = StartGate::new("finalize-run");
    let stack = start_stack(LocalStackOptions {
        database_url: Some(cluster.url()),
        function_programs: vec![gate.program()],
        ..LocalStackOptions::default()
    })
    .await;
    let symbols = numbered_symbols("FDBF", 8);
    let started = Instant::now();
    let arn = stack
        .start_execution(
            &fault_run_input(&symbols, 4, 2),
            &unique_name("db-outage-5min"),
        )
        .await
        .expect("StartExecution");

    // Every batch done and FinalizeRun invoked (its instance is waiting at the gate).
    let url = stack.database_url().to_string();
    let total = symbols.len() as i64;
    wait::until(SETUP_TIMEOUT, || {
        let url = url.clone();
        async move { successes(&url).await == total }
    })
    .await
    .unwrap_or_else(|e| panic!("the batches did not finish: {e}\n{}", stack.logs_tail(40)));
    wait::until(SETUP_TIMEOUT, || async {
        stack
            .instances()
            .await
            .is_ok_and(|all| all.iter().any(|i| i.function == "finalize-run"))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "FinalizeRun was never invoked: {e}\n{}",
            stack.logs_tail(40)
        )
    });
    cluster.stop().await;
    let down_at = started.elapsed();
    gate.open();
    tokio::time::sleep(OUTAGE).await;
    cluster.start().await;

    let outcome = finish(&stack, &arn, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    let thrown = function_errors(&stack, "finalize-run", "DatabaseUnavailable");
    let finalize_calls = stack
        .invocations()
        .iter()
        .filter(|i| i.function == "finalize-run")
        .count();
    assert_succeeded_without_a_person(
        "fault_database::database_outage_of_5_minutes_across_finalize_run_succeeds_without_a_resume",
        &stack,
        &symbols,
        &outcome,
        elapsed,
        format!(
            "database down at {:.1} s for {} s as FinalizeRun started | finalize-run called \
             {finalize_calls} times, {thrown} DatabaseUnavailable retried by the state machine",
            down_at.as_secs_f64(),
            OUTAGE.as_secs()
        ),
    )
    .await;
    assert!(
        thrown >= 1,
        "FinalizeRun never met the outage\n{}",
        stack.logs_tail(60)
    );
}
