//! The whole system on the original job's own database (test_support::original: its exact
//! tables, keys and rows; DESIGN.md "Data"): selection by `min_articles` and by `top_n`, fetch,
//! finalize, `backfill status`, `backfill verify` and `backfill resume`, all through the local
//! stack and the CLI, as a user of that database would run them.

use std::process::Output;

use e2e::local_stack::LocalStackOptions;
use e2e::{
    backfill_cli, count_rows, db, interval_ground_truth, recent_weekdays, serial, start_stack,
    stored_bars, Bar, EXECUTION_TIMEOUT,
};
use serde_json::Value;
use test_support::TestDb;
use tokio_postgres::Client;

async fn cli(stack: &e2e::local_stack::LocalStack, args: &[&str]) -> Output {
    tokio::time::timeout(
        EXECUTION_TIMEOUT,
        backfill_cli(stack).await.args(args).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("backfill {args:?} did not return in time"))
    .unwrap_or_else(|e| panic!("backfill {args:?} did not run: {e}"))
}

fn explain(args: &[&str], out: &Output, stack: &e2e::local_stack::LocalStack) -> String {
    format!(
        "backfill {args:?}: {}\nstdout:\n{}\nstderr:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stack.logs_tail(40)
    )
}

/// `backfill status RUN --json`.
async fn status(stack: &e2e::local_stack::LocalStack, run_id: &str) -> Value {
    let args = ["status", run_id, "--json"];
    let out = cli(stack, &args).await;
    assert!(out.status.success(), "{}", explain(&args, &out, stack));
    serde_json::from_slice(&out.stdout).expect("backfill status --json prints JSON")
}

/// The run ids in the database, oldest first.
async fn run_ids(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT run_id FROM backfill_run ORDER BY created_at, run_id",
            &[],
        )
        .await
        .expect("reading backfill_run")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The rows other jobs of the original application wrote before this system ran.
async fn original_rows(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT row_to_json(s)::text FROM (
                 SELECT id, symbol, date, open_price, high_price, low_price, close_price, volume, created_at
                   FROM stock_price_history WHERE date < '2026-01-01' ORDER BY id) s",
            &[],
        )
        .await
        .expect("reading the original rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_backfill_runs_unchanged_on_the_original_database() {
    let _serial = serial().await;
    let database = TestDb::new().await;
    let setup = database.client().await;
    test_support::original::create(&setup).await;
    // Recent mentions, as the original's article pipeline writes them: with the fixture's two
    // AAPL articles, AAPL has 12 in all, 10 of them this week.
    test_support::original::seed_mentions(
        &setup,
        &[("AAPL", 10), ("MSFT", 11), ("SAP.DE", 12), ("BRK.B", 3)],
    )
    .await;
    let stack = start_stack(LocalStackOptions {
        database_url: Some(database.url()),
        ..LocalStackOptions::default()
    })
    .await;
    let client = db(&stack).await;
    let before = original_rows(&client).await;
    let (start, end) = recent_weekdays();
    let (start_s, end_s) = (start.to_string(), end.to_string());

    // 1. The original's full run: at least 10 mentions, hourly.
    let args = [
        "start",
        "--min-articles",
        "10",
        "--interval",
        "1h",
        "--provider",
        "yahoo",
        "--start-date",
        &start_s,
        "--end-date",
        &end_s,
        "--wait",
    ];
    let out = cli(&stack, &args).await;
    assert!(out.status.success(), "{}", explain(&args, &out, &stack));
    let hourly_run = run_ids(&client).await.pop().expect("a run");
    let report = status(&stack, &hourly_run).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let selected = ["AAPL", "MSFT", "SAP.DE"];
    let mut hourly_rows = 0;
    for symbol in selected {
        let truth: Vec<Bar> = interval_ground_truth(&stack, "yahoo", "1h", symbol, start, end)
            .await
            .iter()
            .map(Bar::from)
            .collect();
        assert!(!truth.is_empty(), "{symbol}");
        let stored: Vec<Bar> = stored_bars(&client, symbol)
            .await
            .into_iter()
            .filter(|b| b.ts.date_naive() >= start)
            .collect();
        assert_eq!(
            stored, truth,
            "{symbol}: stored bars differ from the ground truth"
        );
        hourly_rows += truth.len() as i64;
    }
    assert_eq!(report["records_inserted"], hourly_rows, "{report}");
    let args = ["verify", &hourly_run];
    let out = cli(&stack, &args).await;
    assert!(out.status.success(), "{}", explain(&args, &out, &stack));

    // 2. The original's test mode, daily this time: the 2 most mentioned of the last 7 days.
    // Daily rows take 00:00 exchange time, so they sit beside the hourly rows, never on them.
    let args = [
        "start",
        "--top-n",
        "2",
        "--mentions-within-days",
        "7",
        "--interval",
        "1d",
        "--provider",
        "yahoo",
        "--start-date",
        &start_s,
        "--end-date",
        &end_s,
        "--wait",
    ];
    let out = cli(&stack, &args).await;
    assert!(out.status.success(), "{}", explain(&args, &out, &stack));
    let daily_run = run_ids(&client).await.pop().expect("a run");
    assert_eq!(status(&stack, &daily_run).await["status"], "succeeded");
    let mut daily_rows = 0;
    for symbol in ["MSFT", "SAP.DE"] {
        let daily: Vec<Bar> = interval_ground_truth(&stack, "yahoo", "1d", symbol, start, end)
            .await
            .iter()
            .map(Bar::from)
            .collect();
        assert_eq!(daily.len(), 3, "{symbol}: one daily bar per trading day");
        let stored = stored_bars(&client, symbol).await;
        for bar in &daily {
            assert!(
                stored.contains(bar),
                "{symbol}: daily bar {bar:?} not stored"
            );
        }
        daily_rows += daily.len() as i64;
    }
    assert_eq!(
        count_rows(&client, "stock_price_history").await,
        before.len() as i64 + hourly_rows + daily_rows,
        "every hourly row and one row per trading day"
    );

    // 3. A listed symbol the ticker table lacks fails by name before any provider call; a
    // resume that registers it finishes the run.
    let args = [
        "start",
        "--symbols",
        "AAPL,NEWCO",
        "--interval",
        "1h",
        "--provider",
        "yahoo",
        "--start-date",
        &start_s,
        "--end-date",
        &end_s,
        "--wait",
    ];
    let out = cli(&stack, &args).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        explain(&args, &out, &stack)
    );
    let listed_run = run_ids(&client).await.pop().expect("a run");
    let report = status(&stack, &listed_run).await;
    assert_eq!(report["status"], "completed_with_failures", "{report}");
    let rendered = report.to_string();
    assert!(rendered.contains("NotInTickerTable"), "{report}");
    let args = ["resume", &listed_run, "--register-tickers", "--wait"];
    let out = cli(&stack, &args).await;
    assert!(out.status.success(), "{}", explain(&args, &out, &stack));
    assert_eq!(status(&stack, &listed_run).await["status"], "succeeded");
    assert!(!stored_bars(&client, "NEWCO").await.is_empty());

    // Nothing the original application wrote was changed, and every row of ours has created_at.
    assert_eq!(original_rows(&client).await, before);
    let unset: i64 = client
        .query_one(
            "SELECT count(*) FROM stock_price_history WHERE created_at IS NULL",
            &[],
        )
        .await
        .expect("counting rows")
        .get(0);
    assert_eq!(unset, 0);
}
