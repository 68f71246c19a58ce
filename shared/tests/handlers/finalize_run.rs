use serde_json::json;
use shared::contract::RunStatus;
use shared::db;

use crate::common::*;

#[tokio::test]
async fn a_fully_fetched_run_finalizes_succeeded_with_the_original_result_fields() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL", "MSFT"])).await;
    let fetched = env.fetch_ok(&run.run_id, 0).await;

    let out = env
        .app
        .finalize_run(event(json!({"run_id": run.run_id})))
        .await
        .unwrap();

    assert_eq!(out.status, RunStatus::Succeeded);
    assert_eq!(
        (
            out.requested,
            out.success,
            out.failed,
            out.skipped,
            out.rate_limited
        ),
        (2, 2, 0, 0, 0)
    );
    assert_eq!(out.records_inserted, fetched.records_inserted);
    assert!(out.errors.is_empty());
    let value = serde_json::to_value(&out).unwrap();
    for field in [
        "run_id",
        "requested",
        "success",
        "failed",
        "skipped",
        "rate_limited",
        "errors",
        "status",
    ] {
        assert!(value.get(field).is_some(), "missing {field}");
    }
    let client = env.client().await;
    let stored = db::runs::get(&client, &run.run_id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);
    assert!(stored.finished_at.is_some());
    assert_eq!(stored.summary.unwrap()["success"], 2);
}

#[tokio::test]
async fn failed_tickers_make_the_run_completed_with_failures_and_are_listed() {
    let env = env_with(knobs(json!({"unknown_symbols": ["ZZZZ"]})), &[]).await;
    let (_, out) = env.run_to_end(explicit(&["AAPL", "ZZZZ"])).await;
    assert_eq!(out.status, RunStatus::CompletedWithFailures);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].symbol, "ZZZZ");
    assert_eq!(out.errors[0].error_name.as_deref(), Some("UnknownSymbol"));
}

#[tokio::test]
async fn rate_limited_tickers_leave_the_run_incomplete_for_a_later_resume() {
    let one_an_hour = knobs(json!({"rate_limit": {
        "requests": 1,
        "window_seconds": 3600,
        "retry_after": "none",
    }}));
    // A 429 pauses the shared budget for 1 s: fetch-batch sleeps through it and asks again,
    // and gives up on the third 429 in a row; the resume below finds the pause over.
    let env = env_with(one_an_hour, &[("RATE_LIMIT_PAUSE_SECONDS", "1")]).await;
    let (run, out) = env.run_to_end(explicit(&["AAPL", "MSFT", "NVDA"])).await;
    assert_eq!(out.status, RunStatus::Incomplete);
    assert_eq!((out.success, out.rate_limited, out.pending), (1, 1, 1));
    assert_eq!(out.errors[0].error_name.as_deref(), Some("RateLimited"));

    // Resume after the window: only the unfinished tickers are fetched, the run completes.
    env.sim.update_knobs(|k| k.rate_limit = None);
    let (resumed, out) = env.run_to_end(json!({"run_id": run.run_id})).await;
    assert_eq!((resumed.tickers, resumed.skipped), (2, 1));
    assert_eq!(
        (out.status, out.success, out.skipped),
        (RunStatus::Succeeded, 3, 1)
    );
    assert_eq!(
        env.yahoo_requests("AAPL"),
        1,
        "resume skips success tickers"
    );
}

#[tokio::test]
async fn errors_are_capped_at_one_hundred() {
    let env = env(&[]).await;
    let list: Vec<String> = (0..120).map(|i| format!("X{i:03}")).collect();
    let unknown: std::collections::BTreeSet<String> = list.iter().cloned().collect();
    env.sim.update_knobs(|k| k.unknown_symbols = unknown);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let mut payload = explicit(&refs);
    payload["batch_size"] = json!(200);
    let (_, out) = env.run_to_end(payload).await;
    assert_eq!(out.failed, 120);
    assert_eq!(out.errors.len(), 100);
}

#[tokio::test]
async fn finalize_bad_input_is_named() {
    let env = env(&[]).await;
    let err = env
        .app
        .finalize_run(event(json!({"run": 1})))
        .await
        .unwrap_err();
    assert_eq!(error_type(err), "InvalidInput");
    let err = env
        .app
        .finalize_run(event(
            json!({"run_id": "backfill-20260309-120000-0a1b2c3d"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(error_type(err), "RunNotFound");
    assert_eq!(env.written_rows().await, 0);
}

#[tokio::test]
async fn batches_the_state_machine_reports_failed_are_recorded_and_listed() {
    let env = env(&[]).await;
    let mut payload = explicit(&["AAPL", "MSFT"]);
    payload["batch_size"] = json!(1);
    let run = env.select_ok(payload).await;
    env.fetch_ok(&run.run_id, 0).await;

    let out = env
        .app
        .finalize_run(event(json!({
            "run_id": run.run_id,
            "batch_results": [
                {"batch": 0, "outcome": "done"},
                {"batch": 1, "outcome": "failed", "error": "ProviderRejected"}
            ]
        })))
        .await
        .unwrap();

    assert_eq!(out.status, RunStatus::Incomplete, "MSFT is still pending");
    assert_eq!(out.failed_batches.len(), 1);
    assert_eq!(out.failed_batches[0].batch, 1);
    assert_eq!(
        out.failed_batches[0].error_name.as_deref(),
        Some("ProviderRejected")
    );
}

#[tokio::test]
async fn a_map_failure_object_instead_of_outcomes_is_tolerated() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    let out = env
        .app
        .finalize_run(event(json!({
            "run_id": run.run_id,
            "batch_results": {"Error": "States.DataLimitExceeded", "Cause": "too big"}
        })))
        .await
        .unwrap();
    assert_eq!((out.status, out.pending), (RunStatus::Incomplete, 1));
    assert!(out.failed_batches.is_empty());
}

/// A finished run's summary stands: finalize-run again, even with invented outcomes, changes
/// nothing (a retried FinalizeRun, or one invoked by hand).
#[tokio::test]
async fn finalize_on_a_finished_run_changes_nothing() {
    let env = env(&[]).await;
    let (run, first) = env.run_to_end(explicit(&["AAPL"])).await;
    assert_eq!(first.status, RunStatus::Succeeded);
    // The run's closing as stored, and its failed batches.
    let stored = || async {
        let client = env.client().await;
        let row = client
            .query_one(
                "SELECT status, summary::text, finished_at FROM backfill_run WHERE run_id = $1",
                &[&run.run_id.as_str()],
            )
            .await
            .unwrap();
        let batches: i64 = client
            .query_one(
                "SELECT count(*) FROM backfill_batch WHERE run_id = $1 AND last_status = 'failed'",
                &[&run.run_id.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, chrono::DateTime<chrono::Utc>>(2),
            batches,
        )
    };
    let before = stored().await;

    let again = env
        .app
        .finalize(shared::contract::FinalizeRunInput {
            run_id: run.run_id.clone(),
            lease_execution: None,
            batch_results: Some(serde_json::json!([
                {"batch": 0, "outcome": "failed", "error": "Invented"},
                {"batch": 7, "outcome": "failed", "error": "Invented"}
            ])),
        })
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(stored().await, before);
}

/// An execution whose lease was taken over does not close the run the new one works on.
#[tokio::test]
async fn finalize_by_an_execution_without_the_lease_leaves_the_run_open() {
    let env = env(&[]).await;
    let mut payload = explicit(&["AAPL"]);
    payload["lease_execution"] = serde_json::json!("exec-a");
    let run = env.select_ok(payload).await;
    let out = env
        .app
        .finalize(shared::contract::FinalizeRunInput {
            run_id: run.run_id.clone(),
            lease_execution: Some("exec-b".into()),
            batch_results: None,
        })
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Running);
    let stored = shared::db::runs::get(&env.client().await, &run.run_id)
        .await
        .unwrap();
    assert_eq!(stored.status, RunStatus::Running);
    assert_eq!(stored.lease_execution.as_deref(), Some("exec-a"));
}

#[tokio::test]
async fn finalizing_a_run_stored_with_an_unknown_status_is_stored_data_invalid_and_not_retried() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    env.execute_for_run(
        "UPDATE backfill_run SET status = 'paused' WHERE run_id = $1",
        &run.run_id,
    )
    .await;
    let err = env
        .app
        .finalize_run(event(json!({"run_id": run.run_id})))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("\"paused\""), "{err}");
    assert_eq!(error_type(err), "StoredDataInvalid");
}
