//! The whole system on the original job's own database (test_support::original: its exact
//! tables, keys and rows; DESIGN.md "Data"): selection by `min_articles` and by `top_n`, fetch,
//! finalize, `backfill status`, `backfill verify` and `backfill resume`, all through the local
//! stack and the CLI, as a user of that database would run them.

use e2e::local_stack::LocalStackOptions;
use e2e::{
    cli_ok, count_rows, db, explain_cli, interval_ground_truth, recent_weekdays, run_cli, serial,
    start_stack, stored_bars, Bar,
};
use serde_json::Value;
use test_support::TestDb;
use tokio_postgres::Client;

/// `backfill start <selection…> --interval <interval> --provider yahoo --start-date …
/// --end-date … --wait`.
fn yahoo_start<'a>(
    selection: &[&'a str],
    interval: &'a str,
    (start, end): (&'a str, &'a str),
) -> Vec<&'a str> {
    let mut args = vec!["start"];
    args.extend_from_slice(selection);
    args.extend(["--interval", interval, "--provider", "yahoo"]);
    args.extend(["--start-date", start, "--end-date", end, "--wait"]);
    args
}

/// `backfill status RUN --json`.
async fn status(stack: &e2e::local_stack::LocalStack, run_id: &str) -> Value {
    let out = cli_ok(stack, &["status", run_id, "--json"]).await;
    serde_json::from_slice(&out.stdout).expect("backfill status --json prints JSON")
}

/// The run ids in the database, oldest first.
async fn run_ids(client: &Client) -> Vec<String> {
    test_support::pg::column(
        client,
        "SELECT run_id FROM backfill_run ORDER BY created_at, run_id",
        &[],
    )
    .await
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
    let before = test_support::original::price_rows(&client).await;
    let (start, end) = recent_weekdays();
    let (start_s, end_s) = (start.to_string(), end.to_string());
    let window = (start_s.as_str(), end_s.as_str());

    // 1. The original's full run: at least 10 mentions, hourly.
    let args = yahoo_start(&["--min-articles", "10"], "1h", window);
    cli_ok(&stack, &args).await;
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
    cli_ok(&stack, &args).await;

    // 2. The original's test mode, daily this time: the 2 most mentioned of the last 7 days.
    // Daily rows take 00:00 exchange time, so they sit beside the hourly rows, never on them.
    let args = yahoo_start(
        &["--top-n", "2", "--mentions-within-days", "7"],
        "1d",
        window,
    );
    cli_ok(&stack, &args).await;
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
    let args = yahoo_start(&["--symbols", "AAPL,NEWCO"], "1h", window);
    let out = run_cli(&stack, &args).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        explain_cli(&args, &out, &stack)
    );
    let listed_run = run_ids(&client).await.pop().expect("a run");
    let report = status(&stack, &listed_run).await;
    assert_eq!(report["status"], "completed_with_failures", "{report}");
    let rendered = report.to_string();
    assert!(rendered.contains("NotInTickerTable"), "{report}");
    let args = ["resume", &listed_run, "--register-tickers", "--wait"];
    cli_ok(&stack, &args).await;
    assert_eq!(status(&stack, &listed_run).await["status"], "succeeded");
    assert!(!stored_bars(&client, "NEWCO").await.is_empty());

    // Nothing the original application wrote was changed, and every row of ours has created_at.
    assert_eq!(test_support::original::price_rows(&client).await, before);
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
