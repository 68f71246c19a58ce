//! `backfill plan` (writes nothing), `backfill resume` (unknown runs, the execution it starts)
//! and `backfill migrate`, on a real PostgreSQL (and moto for resume).

mod common;

use common::{backfill, Env, Moto};
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
async fn resume_of_an_unknown_run_exits_2_and_starts_nothing() {
    let env = Env::new(Knobs::default()).await;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let vars = moto.env_with_db(&arn, &env);

    let out = backfill(&["resume", "backfill-20260101-000000-00000000"], &vars).await;
    out.assert_fails(2, "run backfill-20260101-000000-00000000 not found");

    let out = backfill(&["resume", "backfill-2026"], &vars).await;
    out.assert_fails(2, "malformed");

    let out = backfill(&["resume", "not/a/run"], &vars).await;
    out.assert_fails(2, "neither a run id");

    // A well-formed execution name that created no run.
    let out = backfill(&["resume", "scheduled-nothing"], &vars).await;
    out.assert_fails(2, "run of execution scheduled-nothing not found");

    let out = backfill(
        &[
            "resume",
            "backfill-20260101-000000-00000000",
            "--reprocess",
            "some",
        ],
        &vars,
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(moto.executions(&arn).await.is_empty());
}

#[tokio::test]
async fn resume_starts_an_execution_of_the_run_with_its_id() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let vars = moto.env_with_db(&arn, &env);

    let out = backfill(
        &[
            "resume",
            run_id.as_str(),
            "--reprocess",
            "all",
            "--max-concurrency",
            "3",
            "--max-rate-limit-rounds",
            "0",
        ],
        &vars,
    )
    .await;

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.field("run_id"), run_id.as_str());
    let executions = moto.executions(&arn).await;
    assert_eq!(executions.len(), 1);
    let (name, execution_arn) = &executions[0];
    assert_eq!(execution_arn, &out.field("execution_arn"));
    let stamp = name
        .strip_prefix(&format!("{run_id}-resume-"))
        .unwrap_or_else(|| panic!("execution name {name}"));
    assert!(
        stamp.len() == 14 && stamp.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert!(name.len() <= 80);
    assert_eq!(
        moto.execution_input(execution_arn).await,
        json!({"run_id": run_id, "reprocess": "all", "max_concurrency": 3, "max_rate_limit_rounds": 0})
    );
}

#[tokio::test]
async fn a_scheduled_executions_name_or_arn_resumes_and_shows_its_run() {
    let env = Env::new(Knobs::default()).await;
    let input = serde_json::from_value(json!({
        "symbols": ["AAPL"],
        "start_date": "2026-03-09",
        "end_date": "2026-03-11",
        "execution_name": "scheduled-d32c5kddcf5bb8c3",
    }))
    .unwrap();
    let run_id = env.app.select(input).await.unwrap().run_id;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let vars = moto.env_with_db(&arn, &env);

    // What a notification names: the execution (and its ARN).
    let out = backfill(&["status", "scheduled-d32c5kddcf5bb8c3"], &vars).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("run {run_id}")),
        "{}",
        out.stdout
    );
    let execution_arn = format!(
        "{}:scheduled-d32c5kddcf5bb8c3",
        arn.replacen(":stateMachine:", ":execution:", 1)
    );
    let out = backfill(&["resume", &execution_arn], &vars).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.field("run_id"), run_id.as_str());
    let executions = moto.executions(&arn).await;
    assert_eq!(executions.len(), 1);
    assert!(
        executions[0].0.starts_with(&format!("{run_id}-resume-")),
        "{executions:?}"
    );
    assert_eq!(
        moto.execution_input(&executions[0].1).await,
        json!({"run_id": run_id})
    );

    // Without a database an execution name cannot be looked up, and nothing starts.
    let no_db = moto.env(&arn);
    let out = backfill(&["resume", "scheduled-d32c5kddcf5bb8c3"], &no_db).await;
    out.assert_fails(2, "needs the database");
    assert_eq!(moto.executions(&arn).await.len(), 1);
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
