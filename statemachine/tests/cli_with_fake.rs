//! The CLI's own logic in-process, against the in-memory Step Functions fake
//! (`FakeExecutions`): what `start` sends, that bad input calls nothing, `--wait`'s exit codes,
//! and `resume`'s lease decisions. The real adapter's requests are tested against moto
//! (start.rs).

mod common;

use clap::Parser;
use common::Env;
use market_sim::Knobs;
use serde_json::json;
use shared::contract::RunStatus;
use shared::db::runs;
use statemachine::cli::{resume, run_with, Cli, Command};
use statemachine::executions::fake::FakeExecutions;
use statemachine::executions::ExecutionStatus;
use statemachine::CliError;

const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:backfill";

/// `backfill args…` in-process with `fake` as Step Functions: the exit code, or the error.
async fn backfill(fake: &FakeExecutions, args: &[&str]) -> Result<u8, CliError> {
    let mut argv = vec!["backfill", "--state-machine-arn", MACHINE];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("the flags parse");
    run_with(cli, || async { Ok(fake.clone()) }).await
}

/// `backfill resume run_id [--force]` in-process on `env`'s database.
async fn resume(
    env: &Env,
    fake: &FakeExecutions,
    run_id: &str,
    force: bool,
) -> Result<u8, CliError> {
    let mut argv = vec!["backfill", "resume", run_id];
    if force {
        argv.push("--force");
    }
    let Command::Resume(args) = Cli::try_parse_from(argv).expect("the flags parse").command else {
        unreachable!("a resume");
    };
    let client = env.client().await;
    let prepared = resume::check_run_on(resume::prepare(&args)?, &client).await?;
    resume::run(fake, MACHINE, prepared, Some(client), false, args.force).await
}

#[tokio::test]
async fn start_sends_the_validated_input_named_after_the_run_id() {
    let fake = FakeExecutions::new();
    let code = backfill(
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
    .await
    .expect("start");

    assert_eq!(code, 0);
    let started = fake.started();
    assert_eq!(started.len(), 1);
    let run_id = started[0].name.clone();
    assert!(shared::model::RunId::parse(&run_id).is_ok(), "{run_id}");
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
async fn bad_input_is_a_usage_error_before_any_step_functions_call() {
    for args in [
        &["start", "--symbols", "AAPL", "--interval", "5m"][..],
        &["start", "--symbols", "AAPL", "--batch-size", "0"],
        &[
            "start",
            "--symbols",
            "AAPL",
            "--start-date",
            "2026-03-11",
            "--end-date",
            "2026-03-09",
        ],
        &[
            "start",
            "--symbols",
            "AAPL",
            "--start-date",
            "1969-12-31",
            "--end-date",
            "1970-01-02",
        ],
        &["start", "--top-n", "0"],
        &["start", "--symbols", "AAPL", "--provider", "nope"],
    ] {
        let fake = FakeExecutions::new();
        let connected = std::sync::atomic::AtomicBool::new(false);
        let mut argv = vec!["backfill", "--state-machine-arn", MACHINE];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("the flags parse");
        let result = run_with(cli, || async {
            connected.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(fake.clone())
        })
        .await;
        let err = result.expect_err(&format!("{args:?} is refused"));
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        assert!(
            !connected.load(std::sync::atomic::Ordering::SeqCst),
            "{args:?}: no Step Functions client is even built"
        );
        assert!(fake.started().is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn wait_exits_0_when_every_ticker_succeeded_and_1_otherwise() {
    let summary = |status: &str, failed: i64| {
        json!({
            "run_id": "backfill-20260311-120000-abcdef01", "status": status,
            "requested": 2 + failed, "success": 2, "failed": failed, "skipped": 0,
            "rate_limited": 0, "pending": 0, "records_inserted": 42, "records_updated": 0,
            "errors": [], "failed_batches": [],
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
        "--wait",
    ];
    for (status, failed, code) in [("succeeded", 0, 0), ("completed_with_failures", 1, 1)] {
        let output = summary(status, failed);
        let fake =
            FakeExecutions::new().ending_as(ExecutionStatus::Succeeded, Some(&output), None, None);
        assert_eq!(
            backfill(&fake, &args).await.expect("start --wait"),
            code,
            "{status}"
        );
        let arn = format!(
            "arn:aws:states:us-east-1:123456789012:execution:backfill:{}",
            fake.started()[0].name
        );
        assert_eq!(fake.described(&arn), 2, "followed until it ended");
    }

    let fake = FakeExecutions::new().ending_as(
        ExecutionStatus::Failed,
        None,
        Some("RunIncomplete"),
        Some("run is incomplete"),
    );
    assert_eq!(backfill(&fake, &args).await.expect("start --wait"), 1);
}

#[tokio::test]
async fn a_second_resume_while_the_first_runs_is_refused_and_starts_nothing() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL", "MSFT"], 10).await.run_id;
    let fake = FakeExecutions::new();

    assert_eq!(
        resume(&env, &fake, run_id.as_str(), false).await.unwrap(),
        0
    );
    let started = fake.started();
    assert_eq!(started.len(), 1);
    assert_eq!(env.lease_of(&run_id).await.as_ref(), Some(&started[0].name));

    let err = resume(&env, &fake, run_id.as_str(), false)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(
        err.to_string().contains("being worked on") && err.to_string().contains(&started[0].name),
        "{err}"
    );
    let err = resume(&env, &fake, run_id.as_str(), true)
        .await
        .unwrap_err();
    assert_eq!(
        err.exit_code(),
        2,
        "a running execution is never taken over: {err}"
    );
    assert_eq!(fake.started().len(), 1, "nothing more was started");
}

#[tokio::test]
async fn a_run_left_open_by_an_ended_execution_is_closed_and_resumed() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let fake = FakeExecutions::new();
    // An execution that took the lease, then died without FinalizeRun.
    fake.add(MACHINE, "died-before-finalize", ExecutionStatus::Aborted);
    env.update_run(
        &run_id,
        "lease_execution = 'died-before-finalize', status = 'running'",
    )
    .await;

    assert_eq!(
        resume(&env, &fake, run_id.as_str(), false).await.unwrap(),
        0
    );

    let run = runs::get(&env.client().await, &run_id).await.unwrap();
    assert_eq!(
        run.status,
        RunStatus::Incomplete,
        "closed truthfully: nothing was fetched"
    );
    let lease = run
        .lease_execution
        .expect("the new execution holds the lease");
    assert!(lease.starts_with(&format!("{run_id}-resume-")), "{lease}");
    assert_eq!(fake.started().len(), 1);
}

#[tokio::test]
async fn a_lease_whose_execution_cannot_be_found_is_taken_over_only_with_force() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    env.update_run(&run_id, "lease_execution = 'from-another-state-machine'")
        .await;
    let fake = FakeExecutions::new();

    let err = resume(&env, &fake, run_id.as_str(), false)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(fake.started().is_empty());

    assert_eq!(resume(&env, &fake, run_id.as_str(), true).await.unwrap(), 0);
    assert_eq!(fake.started().len(), 1);
}
