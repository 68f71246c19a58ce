//! The CLI's own logic in-process, against the in-memory Step Functions fake
//! (`FakeExecutions`) and a real database: what `start` and `resume` send and print, that bad
//! input calls nothing, `--wait`'s reports and exit codes, finding a run by execution name, and
//! the lease decisions of `resume` and `status`. The real adapter is tested against moto
//! (start.rs), the binary's own output and exit codes in status.rs and start.rs.

mod common;

use common::{backfill_in_process, Env, Output, MACHINE};
use market_sim::Knobs;
use serde_json::json;
use shared::contract::RunStatus;
use shared::db::runs;
use shared::model::RunId;
use statemachine::executions::fake::FakeExecutions;
use statemachine::executions::ExecutionStatus;

/// `backfill args…` in-process without a database setting.
async fn backfill(fake: &FakeExecutions, args: &[&str]) -> Output {
    backfill_in_process(fake, None, args).await
}

/// `backfill args…` in-process on `env`'s database.
async fn backfill_on(env: &Env, fake: &FakeExecutions, args: &[&str]) -> Output {
    backfill_in_process(fake, Some(&env.url), args).await
}

/// `backfill resume run_id [--force]` in-process on `env`'s database.
async fn resume(env: &Env, fake: &FakeExecutions, run_id: &str, force: bool) -> Output {
    let mut args = vec!["resume", run_id];
    if force {
        args.push("--force");
    }
    backfill_on(env, fake, &args).await
}

/// A run whose lease is held by an execution that took it, then died without FinalizeRun: the
/// run stays `running`.
async fn run_left_open_by_a_dead_execution() -> (Env, FakeExecutions, RunId) {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let fake = FakeExecutions::new();
    fake.add(MACHINE, "died-before-finalize", ExecutionStatus::Aborted);
    env.update_run(
        &run_id,
        "lease_execution = 'died-before-finalize', status = 'running'",
    )
    .await;
    (env, fake, run_id)
}

/// The run was closed truthfully (nothing was fetched: `incomplete`) and one resume started,
/// whose execution holds the lease.
async fn assert_closed_and_resumed(env: &Env, fake: &FakeExecutions, run_id: &RunId) {
    let run = runs::get(&env.client().await, run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Incomplete);
    let lease = run
        .lease_execution
        .expect("the new execution holds the lease");
    assert!(lease.starts_with(&format!("{run_id}-resume-")), "{lease}");
    assert_eq!(fake.started().len(), 1);
}

/// The ARN the fake gives execution `name` of [`MACHINE`].
fn execution_arn(name: &str) -> String {
    format!(
        "{}:{name}",
        MACHINE.replacen(":stateMachine:", ":execution:", 1)
    )
}

#[tokio::test]
async fn start_sends_the_validated_input_named_after_the_run_id() {
    let fake = FakeExecutions::new();
    let out = backfill(
        &fake,
        &[
            "start",
            "--symbols",
            "aapl,brk.b",
            "--start-date",
            "2026-03-09",
            "--end-date",
            "2026-03-11",
            "--interval",
            "1d",
            "--batch-size",
            "10",
            "--provider",
            "polygon",
            "--max-concurrency",
            "2",
            "--max-rate-limit-rounds",
            "3",
        ],
    )
    .await;

    assert_eq!(out.code, 0, "{out:?}");
    let started = fake.started();
    assert_eq!(started.len(), 1);
    let run_id = started[0].name.clone();
    assert!(shared::model::RunId::parse(&run_id).is_ok(), "{run_id}");
    assert_eq!(out.field("run_id"), run_id);
    assert_eq!(out.field("execution_arn"), execution_arn(&run_id));
    assert_eq!(started[0].state_machine_arn, MACHINE);
    assert_eq!(
        started[0].input,
        json!({
            "new_run_id": run_id,
            "symbols": ["AAPL", "BRK.B"],
            "start_date": "2026-03-09",
            "end_date": "2026-03-11",
            "interval": "1d",
            "batch_size": 10,
            "provider": "polygon",
            "max_concurrency": 2,
            "max_rate_limit_rounds": 3,
        })
    );
}

#[tokio::test]
async fn absent_flags_are_left_to_the_functions() {
    let fake = FakeExecutions::new();
    let out = backfill(
        &fake,
        &[
            "start",
            "--top-n",
            "5",
            "--mentions-within-days",
            "7",
            "--lookback-days",
            "7",
        ],
    )
    .await;

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        fake.started()[0].input,
        json!({
            "new_run_id": out.field("run_id"),
            "top_n": 5,
            "mentions_within_days": 7,
            "lookback_days": 7,
        })
    );
}

#[tokio::test]
async fn bad_input_exits_2_before_any_step_functions_call() {
    let cases: &[(&[&str], &str)] = &[
        (&["--start-date", "2026-13-01"], "start_date"),
        (
            &["--start-date", "2026-03-10", "--end-date", "2026-03-09"],
            "after end_date",
        ),
        (&["--end-date", "2999-01-01"], "in the future"),
        (&["--interval", "2h"], "interval"),
        (&["--interval", "5m"], "interval"),
        (&["--batch-size", "0"], "batch_size"),
        (&["--batch-size", "1001"], "batch_size"),
        (&["--batch-size", "-5"], "batch_size"),
        (&["--symbols", "AAPL,A/B"], "malformed symbol"),
        (&["--symbols", "AAPL", "--top-n", "3"], "not both"),
        (&["--top-n", "0"], "top_n"),
        (&["--provider", "alpaca"], "provider"),
        (&["--max-concurrency", "0"], "max_concurrency"),
        (
            &["--max-rate-limit-rounds", "5000"],
            "max_rate_limit_rounds",
        ),
        (
            &["--lookback-days", "3", "--start-date", "2026-03-01"],
            "not both",
        ),
        (
            &[
                "--provider",
                "yahoo",
                "--start-date",
                "2020-01-01",
                "--end-date",
                "2026-03-01",
            ],
            "730 days",
        ),
        // The provider's range rules apply with the functions' default provider too.
        (
            &["--start-date", "2020-01-01", "--end-date", "2026-03-01"],
            "provider yahoo assumed",
        ),
        (
            &["--start-date", "1969-12-31", "--interval", "1d"],
            "1970-01-01",
        ),
        (
            &["--provider", "polygon", "--start-date", "1800-01-01"],
            "is before 1970-01-01",
        ),
        (
            &["--provider", "polygon", "--start-date", "1999-01-04"],
            "Polygon has no stock aggregates before 2003-09-10",
        ),
    ];
    for (flags, expected) in cases {
        let fake = FakeExecutions::new();
        let connected = std::sync::atomic::AtomicBool::new(false);
        let mut argv = vec!["backfill", "--state-machine-arn", MACHINE, "start"];
        argv.extend_from_slice(flags);
        let cli = <statemachine::cli::Cli as clap::Parser>::try_parse_from(argv)
            .expect("the flags parse");
        let mut stdout = Vec::new();
        let result = statemachine::cli::run_with(
            cli,
            || async {
                connected.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(fake.clone())
            },
            &mut statemachine::cli::Session::new(None, &mut stdout),
        )
        .await;
        let err = result.expect_err(&format!("{flags:?} is refused"));
        assert_eq!(err.exit_code(), 2, "{flags:?}: {err}");
        let said = format!("error: {err}");
        assert!(
            said.contains("invalid input") && said.contains(expected),
            "{flags:?}: {said}"
        );
        assert!(
            !connected.load(std::sync::atomic::Ordering::SeqCst),
            "{flags:?}: no Step Functions client is even built"
        );
        assert!(fake.started().is_empty(), "{flags:?}");
        assert!(stdout.is_empty(), "{flags:?}");
    }
    // Usage errors caught by the flag parser itself.
    let fake = FakeExecutions::new();
    for args in [
        &["start", "--top-n", "many"][..],
        &["start", "--no-such-flag"],
        &["frobnicate"],
    ] {
        let out = backfill(&fake, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    assert!(fake.started().is_empty(), "nothing may start");
}

#[tokio::test]
async fn wait_exits_0_only_when_every_ticker_succeeded() {
    let summary = |status: &str, failed: i64| {
        let errors = if failed > 0 {
            json!([{"symbol": "NOPE", "status": "failed", "error_name": "UnknownSymbol",
                    "message": "Yahoo does not know NOPE"}])
        } else {
            json!([])
        };
        json!({
            "run_id": "backfill-20260311-120000-abcdef01", "status": status,
            "requested": 2 + failed, "success": 2, "failed": failed, "skipped": 0,
            "rate_limited": 0, "pending": 0, "records_inserted": 42, "records_updated": 0,
            "errors": errors, "failed_batches": [],
            "start_date": "2026-03-09", "end_date": "2026-03-11",
            "interval": "1h", "provider": "yahoo"
        })
        .to_string()
    };
    let args = [
        "start",
        "--symbols",
        "AAPL,MSFT",
        "--start-date",
        "2026-03-09",
        "--end-date",
        "2026-03-11",
        "--wait",
    ];

    let clean = summary("succeeded", 0);
    let fake =
        FakeExecutions::new().ending_as(ExecutionStatus::Succeeded, Some(&clean), None, None);
    let out = backfill(&fake, &args).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("execution SUCCEEDED"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("run backfill-20260311-120000-abcdef01  succeeded"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("42 inserted"), "{}", out.stdout);
    let name = &fake.started()[0].name;
    assert_eq!(
        fake.described(&execution_arn(name)),
        2,
        "followed until it ended"
    );

    let with_failures = summary("completed_with_failures", 1);
    let fake = FakeExecutions::new().ending_as(
        ExecutionStatus::Succeeded,
        Some(&with_failures),
        None,
        None,
    );
    let out = backfill(&fake, &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("completed_with_failures"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("NOPE") && out.stdout.contains("UnknownSymbol"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn wait_reports_a_failed_execution_with_its_error_and_cause() {
    let fake = FakeExecutions::new().ending_as(
        ExecutionStatus::Failed,
        None,
        Some("RunIncomplete"),
        Some("run is incomplete: resume it with: backfill resume"),
    );
    // With a database, the run's own report follows (here: select-tickers never ran).
    let env = Env::new(Knobs::default()).await;

    let out = backfill_on(&env, &fake, &["start", "--symbols", "AAPL", "--wait"]).await;

    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("execution FAILED"), "{}", out.stdout);
    assert!(
        out.stdout.contains("error: RunIncomplete"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("cause: run is incomplete"),
        "{}",
        out.stdout
    );
    let run_id = out.field("run_id");
    assert!(
        out.stdout
            .contains(&format!("run {run_id} was not created")),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn resume_of_an_unknown_run_exits_2_and_starts_nothing() {
    let env = Env::new(Knobs::default()).await;
    let fake = FakeExecutions::new();

    let out = resume(&env, &fake, "backfill-20260101-000000-00000000", false).await;
    out.assert_fails(2, "run backfill-20260101-000000-00000000 not found");

    let out = resume(&env, &fake, "backfill-2026", false).await;
    out.assert_fails(2, "malformed");

    let out = resume(&env, &fake, "not/a/run", false).await;
    out.assert_fails(2, "neither a run id");

    // A well-formed execution name that created no run.
    let out = resume(&env, &fake, "scheduled-nothing", false).await;
    out.assert_fails(2, "run of execution scheduled-nothing not found");

    let out = backfill_on(
        &env,
        &fake,
        &[
            "resume",
            "backfill-20260101-000000-00000000",
            "--reprocess",
            "some",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(fake.started().is_empty());
}

#[tokio::test]
async fn resume_starts_an_execution_of_the_run_with_its_id() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let fake = FakeExecutions::new();

    let out = backfill_on(
        &env,
        &fake,
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
    )
    .await;

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.field("run_id"), run_id.as_str());
    let started = fake.started();
    assert_eq!(started.len(), 1);
    let name = &started[0].name;
    assert_eq!(out.field("execution_arn"), execution_arn(name));
    let stamp = name
        .strip_prefix(&format!("{run_id}-resume-"))
        .unwrap_or_else(|| panic!("execution name {name}"));
    assert!(
        stamp.len() == 14 && stamp.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert!(name.len() <= 80);
    assert_eq!(
        started[0].input,
        json!({"run_id": run_id, "reprocess": "all", "max_concurrency": 3, "max_rate_limit_rounds": 0})
    );
    assert_eq!(env.lease_of(&run_id).await.as_ref(), Some(name));
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
    let fake = FakeExecutions::new();

    // What a notification names: the execution (and its ARN).
    let out = backfill_on(&env, &fake, &["status", "scheduled-d32c5kddcf5bb8c3"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("run {run_id}")),
        "{}",
        out.stdout
    );
    let out = resume(
        &env,
        &fake,
        &execution_arn("scheduled-d32c5kddcf5bb8c3"),
        false,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.field("run_id"), run_id.as_str());
    let started = fake.started();
    assert_eq!(started.len(), 1);
    assert!(
        started[0].name.starts_with(&format!("{run_id}-resume-")),
        "{started:?}"
    );
    assert_eq!(started[0].input, json!({"run_id": run_id}));

    // Without a database an execution name cannot be looked up, and nothing starts.
    let out = backfill(&fake, &["resume", "scheduled-d32c5kddcf5bb8c3"]).await;
    out.assert_fails(2, "needs the database");
    assert_eq!(fake.started().len(), 1);
}

#[tokio::test]
async fn a_second_resume_while_the_first_runs_is_refused_and_starts_nothing() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL", "MSFT"], 10).await.run_id;
    let fake = FakeExecutions::new();

    let out = resume(&env, &fake, run_id.as_str(), false).await;
    assert_eq!(out.code, 0, "{out:?}");
    let started = fake.started();
    assert_eq!(started.len(), 1);
    assert_eq!(env.lease_of(&run_id).await.as_ref(), Some(&started[0].name));

    let out = resume(&env, &fake, run_id.as_str(), false).await;
    out.assert_fails(2, "being worked on");
    assert!(out.stderr.contains(&started[0].name), "{out:?}");
    let out = resume(&env, &fake, run_id.as_str(), true).await;
    assert_eq!(
        out.code, 2,
        "a running execution is never taken over: {out:?}"
    );
    assert_eq!(fake.started().len(), 1, "nothing more was started");
}

#[tokio::test]
async fn a_run_left_open_by_an_ended_execution_is_closed_by_status_and_resumed() {
    let (env, fake, run_id) = run_left_open_by_a_dead_execution().await;

    // `backfill status` closes it truthfully: nothing fetched, so incomplete.
    let out = backfill_on(&env, &fake, &["status", run_id.as_str(), "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["status"], "incomplete", "{out:?}");
    assert_eq!(
        fake.described(&execution_arn("died-before-finalize")),
        1,
        "status looked at the lease's execution"
    );
    assert_eq!(env.lease_of(&run_id).await, None);

    let out = resume(&env, &fake, run_id.as_str(), false).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_closed_and_resumed(&env, &fake, &run_id).await;
}

#[tokio::test]
async fn resume_closes_a_run_left_open_by_an_ended_execution_by_itself() {
    let (env, fake, run_id) = run_left_open_by_a_dead_execution().await;

    let out = resume(&env, &fake, run_id.as_str(), false).await;
    assert_eq!(out.code, 0, "{out:?}");

    assert_closed_and_resumed(&env, &fake, &run_id).await;
}

#[tokio::test]
async fn a_lease_whose_execution_cannot_be_found_is_taken_over_only_with_force() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    env.update_run(&run_id, "lease_execution = 'from-another-state-machine'")
        .await;
    let fake = FakeExecutions::new();

    let out = resume(&env, &fake, run_id.as_str(), false).await;
    out.assert_fails(2, "--force");
    assert!(fake.started().is_empty());

    let out = resume(&env, &fake, run_id.as_str(), true).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fake.started().len(), 1);
}

#[tokio::test]
async fn a_resume_whose_execution_cannot_start_gives_the_lease_back() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let fake = FakeExecutions::new().failing_starts("ServiceUnavailable");

    let out = resume(&env, &fake, run_id.as_str(), false).await;
    out.assert_fails(1, "ServiceUnavailable");
    assert_eq!(
        env.lease_of(&run_id).await,
        None,
        "no execution runs, so none holds the run"
    );

    // The next resume is not refused by a lease nobody holds.
    let fake = FakeExecutions::new();
    let out = resume(&env, &fake, run_id.as_str(), false).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fake.started().len(), 1);
}
