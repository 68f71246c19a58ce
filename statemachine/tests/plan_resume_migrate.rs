//! The `backfill` binary's `plan` (writes nothing) and `migrate`, on a real PostgreSQL. `resume`
//! is tested in-process in cli_with_fake.rs.

mod common;

use common::{backfill, Env};
use market_sim::Knobs;
use serde_json::json;

#[tokio::test]
async fn plan_reports_tickers_batches_and_calls_and_writes_nothing() {
    let env = Env::new(Knobs::default()).await;
    test_support::original::seed_mentions(
        &env.client().await,
        &[("AAPL", 30), ("MSFT", 20), ("TSLA", 12), ("IBM", 3)],
    )
    .await;
    let before = env.row_counts().await;
    let db = env.db_env();
    let flags = [
        "--min-articles",
        "10",
        "--start-date",
        "2026-03-09",
        "--end-date",
        "2026-03-13",
        "--provider",
        "yahoo",
        "--batch-size",
        "2",
        "--max-concurrency",
        "4",
    ];

    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(&flags);
    let out = backfill(&args, &db).await;

    assert_eq!(out.code, 0, "{out:?}");
    let plan = out.json();
    assert_eq!(plan["symbols"], json!(["AAPL", "MSFT", "TSLA"]));
    assert_eq!(plan["batches"], 2);
    assert_eq!(plan["weekdays"], 5);
    assert_eq!(plan["provider_calls"]["per_ticker"], 1);
    assert_eq!(plan["provider_calls"]["total"], 3);
    // Yahoo's default pacing, shared by the two instances: 3 calls at 30 a minute.
    assert_eq!(plan["duration"]["requests_per_minute"], 30);
    assert_eq!(plan["duration"]["concurrent_instances"], 2);
    assert_eq!(plan["duration"]["seconds"], 6.0);
    assert_eq!(plan["step_functions"]["events_per_batch"], 11);
    assert_eq!(env.row_counts().await, before, "plan must write nothing");

    let mut args = vec!["plan"];
    args.extend_from_slice(&flags);
    let out = backfill(&args, &db).await;
    assert_eq!(out.code, 0, "{out:?}");
    for expected in [
        "tickers    3: AAPL, MSFT, TSLA",
        "2 of up to 2 tickers",
        "3 calls",
        "30 requests per minute for every fetch-batch instance together",
        "formula",
        "step functions",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }
    assert_eq!(env.row_counts().await, before, "plan must write nothing");
}

#[tokio::test]
async fn plan_of_an_explicit_list_needs_no_database_and_pages_polygon() {
    let out = backfill(
        &[
            "plan",
            "--json",
            "--symbols",
            "AAPL,MSFT",
            "--provider",
            "polygon",
            "--interval",
            "1d",
            "--start-date",
            "2026-01-01",
            "--end-date",
            "2026-03-01",
        ],
        &[("PROVIDER_REQUESTS_PER_MINUTE", "5")],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let plan = out.json();
    assert_eq!(plan["tickers"], 2);
    assert_eq!(plan["batches"], 1);
    assert_eq!(plan["provider_calls"]["total"], 2);
    assert_eq!(plan["duration"]["requests_per_minute"], 5);
    assert_eq!(plan["duration"]["seconds"], 24.0);

    let out = backfill(&["plan", "--batch-size", "0", "--symbols", "AAPL"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test]
async fn migrate_applies_the_schema_once() {
    let db = test_support::TestDb::new().await;
    let url = db.url();
    let vars = [("DATABASE_URL", url.as_str())];

    let out = backfill(&["migrate"], &vars).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("applied migrations"), "{}", out.stdout);

    let out = backfill(&["migrate"], &vars).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("up to date"), "{}", out.stdout);

    let out = backfill(&["status"], &vars).await;
    assert_eq!(out.code, 0, "{out:?}");
}
