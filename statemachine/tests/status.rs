//! `backfill status` against runs made by the real handlers (select, fetch, finalize) on a real
//! PostgreSQL and market-sim: counts, ticker errors, failed batches, the run list, `--json`.

mod common;

use std::collections::BTreeSet;

use common::{backfill, Env};
use market_sim::{Knobs, RateLimit, RetryAfter};
use serde_json::json;
use shared::contract::{BatchStatus, RunStatus};
use shared::model::RunId;

/// A database (market-sim never heard of NOPE) with two runs made by the real handlers:
/// Run 1: AAPL and MSFT succeed, NOPE is unknown to the provider (completed_with_failures).
/// Run 2: batch 0 (IBM, ORCL) hits a 429 on IBM; batch 1 (SAP) keeps getting a provider 503 and
/// the state machine gives up on it (incomplete).
async fn two_runs() -> (Env, RunId, RunId) {
    let env = Env::new(Knobs {
        unknown_symbols: BTreeSet::from(["NOPE".to_string()]),
        ..Knobs::default()
    })
    .await;
    let run1 = env.new_run(&["AAPL", "MSFT", "NOPE"], 2).await.run_id;
    for batch in 0..2 {
        env.fetch_batch(&run1, batch).await.expect("fetch-batch");
    }
    assert_eq!(
        env.finalize(&run1, None).await.status,
        RunStatus::CompletedWithFailures
    );

    let run2 = env.new_run(&["IBM", "ORCL", "SAP"], 2).await.run_id;
    env.sim.update_knobs(|k| {
        k.rate_limit = Some(RateLimit {
            requests: 0,
            window_seconds: 3600,
            retry_after: RetryAfter::Fixed(30),
            kind: Default::default(),
        })
    });
    let out = env.fetch_batch(&run2, 0).await.expect("fetch-batch");
    assert_eq!(out.status, BatchStatus::RateLimited);
    // The 429 paused the shared request budget for its Retry-After (30 s): let that time pass.
    env.client()
        .await
        .execute(
            "UPDATE backfill_rate_budget SET paused_until = '-infinity'",
            &[],
        )
        .await
        .expect("ending the pause");
    env.sim.update_knobs(|k| {
        k.rate_limit = None;
        k.fail_every_nth = Some(1);
    });
    let out = env.fetch_batch(&run2, 1).await.expect("fetch-batch");
    assert_eq!(out.status, BatchStatus::Unavailable);
    let results = json!([
        {"batch": 0, "outcome": "rate_limit_rounds_exhausted"},
        {"batch": 1, "outcome": "failed", "error": "ProviderUnavailable"}
    ]);
    assert_eq!(
        env.finalize(&run2, Some(results)).await.status,
        RunStatus::Incomplete
    );
    (env, run1, run2)
}

#[tokio::test]
async fn status_of_a_run_shows_counts_errors_and_failed_batches() {
    let (env, run1, run2) = two_runs().await;
    let db = env.db_env();

    let out = backfill(&["status", run1.as_str()], &db).await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = &out.stdout;
    assert!(
        text.contains(&format!("run {run1}  completed_with_failures")),
        "{text}"
    );
    assert!(text.contains("2026-03-09 .. 2026-03-11"), "{text}");
    assert!(text.contains("interval 1h, provider yahoo"), "{text}");
    assert!(text.contains("symbols AAPL, MSFT, NOPE"), "{text}");
    assert!(
        text.contains("3 requested: 2 success, 1 failed, 0 rate_limited, 0 pending"),
        "{text}"
    );
    assert!(text.contains("failed tickers (1):"), "{text}");
    assert!(
        text.contains("NOPE") && text.contains("UnknownSymbol"),
        "{text}"
    );

    let out = backfill(&["status", run2.as_str()], &db).await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = &out.stdout;
    assert!(text.contains(&format!("run {run2}  incomplete")), "{text}");
    assert!(
        text.contains("3 requested: 0 success, 0 failed, 1 rate_limited, 2 pending"),
        "{text}"
    );
    assert!(text.contains("rate-limited tickers (1):"), "{text}");
    assert!(
        text.contains("IBM") && text.contains("RateLimited"),
        "{text}"
    );
    assert!(text.contains("failed batches (1):"), "{text}");
    assert!(
        text.contains("batch 1  failed  ProviderUnavailable"),
        "{text}"
    );
    assert!(text.contains(&format!("backfill resume {run2}")), "{text}");
}

#[tokio::test]
async fn status_json_is_machine_readable() {
    let (env, run1, run2) = two_runs().await;
    let db = env.db_env();

    let one = backfill(&["status", run2.as_str(), "--json"], &db).await;
    assert_eq!(one.code, 0, "{one:?}");
    let v = one.json();
    assert_eq!(v["run_id"], run2.as_str());
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["interval"], "1h");
    assert_eq!(v["selection"]["mode"], "explicit");
    assert_eq!(
        v["tickers"],
        json!({"requested": 3, "success": 0, "failed": 0, "rate_limited": 1, "pending": 2, "skipped": 0})
    );
    assert_eq!(v["rate_limited_tickers"][0]["symbol"], "IBM");
    assert_eq!(v["rate_limited_tickers"][0]["error_name"], "RateLimited");
    let batch = &v["failed_batches"][0];
    assert_eq!(batch["batch"], 1);
    assert_eq!(batch["last_status"], "failed");
    assert_eq!(batch["error_name"], "ProviderUnavailable");
    assert!(
        batch["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{batch}"
    );

    let list = backfill(&["status", "--json"], &db).await;
    assert_eq!(list.code, 0, "{list:?}");
    let runs = list.json()["runs"].as_array().cloned().expect("runs array");
    let ids: BTreeSet<&str> = runs.iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert_eq!(ids, BTreeSet::from([run1.as_str(), run2.as_str()]));
    let first = runs.iter().find(|r| r["run_id"] == run1.as_str()).unwrap();
    assert_eq!(first["success"], 2);
    assert_eq!(first["failed"], 1);
    assert!(first["records_inserted"].as_i64().unwrap() > 0, "{first}");
}

#[tokio::test]
async fn status_without_a_run_id_lists_the_recent_runs() {
    let (env, run1, run2) = two_runs().await;

    let out = backfill(&["status"], &env.db_env()).await;

    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for header in [
        "RUN ID",
        "STATUS",
        "CREATED (UTC)",
        "WINDOW",
        "INTERVAL",
        "PROVIDER",
        "TICKERS",
        "SUCCESS",
        "FAILED",
        "RATE_LIMITED",
        "PENDING",
    ] {
        assert!(lines[0].contains(header), "{}", lines[0]);
    }
    let row = |id: &RunId| -> Vec<String> {
        lines
            .iter()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("no row for {id}:\n{}", out.stdout))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let r1 = row(&run1);
    assert_eq!(r1[1], "completed_with_failures");
    assert_eq!(
        r1[4..],
        [
            "2026-03-09..2026-03-11",
            "1h",
            "yahoo",
            "3",
            "2",
            "1",
            "0",
            "0"
        ]
    );
    let r2 = row(&run2);
    assert_eq!(r2[1], "incomplete");
    assert_eq!(r2[7..], ["3", "0", "0", "1", "2"]);
}

#[tokio::test]
async fn status_of_an_unknown_or_malformed_run_exits_2() {
    let env = Env::new(Knobs::default()).await;
    let db = env.db_env();

    let out = backfill(&["status", "backfill-20260101-000000-00000000"], &db).await;
    out.assert_fails(2, "not found");

    let out = backfill(&["status", "backfill-yesterday"], &db).await;
    out.assert_fails(2, "malformed");

    // Not a run id: looked up as an execution name, which created no run.
    let out = backfill(&["status", "yesterday"], &db).await;
    out.assert_fails(2, "run of execution yesterday not found");

    let out = backfill(&["status"], &db).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("no runs yet"), "{}", out.stdout);
}

#[tokio::test]
async fn status_needs_a_database_and_says_how_to_name_one() {
    let out = backfill(&["status"], &[]).await;
    out.assert_fails(2, "DATABASE_URL is not set");

    // A server that is not there: exit 1, and the password never shows.
    let port = test_support::net::free_port().unwrap();
    let url = format!("postgres://backfill:hunter2@127.0.0.1:{port}/nothing");
    let out = backfill(&["status"], &[("DATABASE_URL", url.as_str())]).await;
    out.assert_fails(1, "database unavailable");
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

#[tokio::test]
async fn verify_checks_that_success_tickers_have_bars() {
    let (env, run1, _) = two_runs().await;
    let db = env.db_env();

    let out = backfill(&["verify", run1.as_str(), "--json"], &db).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["success_tickers"], 2);

    // Bars deleted behind the run's back are noticed.
    let client = env.client().await;
    client
        .execute("DELETE FROM stock_price_history WHERE symbol = 'MSFT'", &[])
        .await
        .unwrap();
    let out = backfill(&["verify", run1.as_str()], &db).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("no bars in the window: MSFT"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn a_rate_limited_batch_with_tickers_left_counts_as_waiting() {
    let (env, run1, run2) = two_runs().await;
    let client = env.client().await;

    // Run 2's batch 0 was answered 429 with IBM and ORCL unfinished; its batch 1 failed otherwise.
    assert_eq!(
        statemachine::store::waiting_batches(&client, &run2)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        statemachine::store::waiting_batches(&client, &run1)
            .await
            .unwrap(),
        0
    );
}

/// The database refusing a ticker's rows (the user's own constraint) fails that ticker by name;
/// refusing the statement itself (a renamed column) fails the batch by name, unretried. Both
/// show in `backfill status` with what the server named.
#[tokio::test]
async fn database_rejections_show_in_status_by_name() {
    let env = Env::new(Knobs::default()).await;
    let client = env.client().await;
    client
        .batch_execute(
            "ALTER TABLE stock_price_history
                 ADD CONSTRAINT no_new_msft CHECK (symbol <> 'MSFT') NOT VALID",
        )
        .await
        .unwrap();
    let run = env.new_run(&["AAPL", "MSFT", "ORCL"], 2).await.run_id;
    let out = env.fetch_batch(&run, 0).await.expect("fetch-batch");
    assert_eq!((out.success, out.failed), (1, 1));

    client
        .batch_execute("ALTER TABLE stock_price_history RENAME COLUMN volume TO traded_volume")
        .await
        .unwrap();
    let err = env.fetch_batch(&run, 1).await.unwrap_err();
    assert_eq!(err.name(), "DatabaseRejected");
    assert!(!err.is_retryable());
    let results = json!([
        {"batch": 0, "outcome": "done"},
        {"batch": 1, "outcome": "failed", "error": "DatabaseRejected"}
    ]);
    assert_eq!(
        env.finalize(&run, Some(results)).await.status,
        RunStatus::Incomplete
    );

    let out = backfill(&["status", run.as_str()], &env.db_env()).await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = &out.stdout;
    assert!(
        text.contains("MSFT") && text.contains("DatabaseRejected") && text.contains("no_new_msft"),
        "{text}"
    );
    assert!(text.contains("batch 1  failed  DatabaseRejected"), "{text}");
}
