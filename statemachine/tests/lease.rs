//! One active execution per run: `backfill resume` takes the run's lease for the execution it
//! starts, refuses (exit 2, nothing started) while another execution still runs, closes a run
//! its dead execution left open, and takes over a lease it cannot check only with `--force`.
//! moto without execution enabled keeps every execution RUNNING until it is stopped.

mod common;

use common::{backfill, Env, Moto};
use market_sim::Knobs;
use shared::db::runs;

async fn lease_of(env: &Env, run_id: &shared::model::RunId) -> Option<String> {
    runs::get(&env.client().await, run_id)
        .await
        .unwrap()
        .lease_execution
}

#[tokio::test]
async fn a_second_resume_while_the_first_runs_is_refused_and_starts_nothing() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL", "MSFT"], 10).await.run_id;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let mut vars = moto.env(&arn);
    vars.push(("DATABASE_URL", env.url.as_str()));

    let first = backfill(&["resume", run_id.as_str()], &vars).await;
    assert_eq!(first.code, 0, "{first:?}");
    let executions = moto.executions(&arn).await;
    assert_eq!(executions.len(), 1);
    assert_eq!(
        lease_of(&env, &run_id).await.as_ref(),
        Some(&executions[0].0)
    );

    let second = backfill(&["resume", run_id.as_str()], &vars).await;
    assert_eq!(second.code, 2, "{second:?}");
    assert!(
        second.stderr.contains("being worked on") && second.stderr.contains(&executions[0].0),
        "{second:?}"
    );
    assert_eq!(moto.executions(&arn).await.len(), 1, "nothing was started");
    let forced = backfill(&["resume", run_id.as_str(), "--force"], &vars).await;
    assert_eq!(
        forced.code, 2,
        "a running execution is never taken over: {forced:?}"
    );
    assert_eq!(moto.executions(&arn).await.len(), 1);
}

#[tokio::test]
async fn a_run_left_open_by_an_ended_execution_is_closed_and_resumed() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let mut vars = moto.env(&arn);
    vars.push(("DATABASE_URL", env.url.as_str()));
    // An execution that took the lease, then died without FinalizeRun.
    let dead = moto
        .sfn
        .start_execution()
        .state_machine_arn(&arn)
        .name("died-before-finalize")
        .input("{}")
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string();
    moto.sfn
        .stop_execution()
        .execution_arn(&dead)
        .send()
        .await
        .unwrap();
    env.client()
        .await
        .execute(
            "UPDATE backfill_run SET lease_execution = 'died-before-finalize', status = 'running'
              WHERE run_id = $1",
            &[&run_id.as_str()],
        )
        .await
        .unwrap();

    // `backfill status` closes it truthfully: nothing fetched, so incomplete.
    let status = backfill(&["status", run_id.as_str(), "--json"], &vars).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["status"], "incomplete", "{status:?}");
    assert!(status.stderr.contains("died-before-finalize"), "{status:?}");
    assert_eq!(lease_of(&env, &run_id).await, None);

    let resumed = backfill(&["resume", run_id.as_str()], &vars).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let lease = lease_of(&env, &run_id)
        .await
        .expect("the new execution holds the lease");
    assert!(lease.starts_with(&format!("{run_id}-resume-")), "{lease}");
}

#[tokio::test]
async fn a_lease_whose_execution_cannot_be_found_is_taken_over_only_with_force() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let mut vars = moto.env(&arn);
    vars.push(("DATABASE_URL", env.url.as_str()));
    env.client()
        .await
        .execute(
            "UPDATE backfill_run SET lease_execution = 'from-another-state-machine' WHERE run_id = $1",
            &[&run_id.as_str()],
        )
        .await
        .unwrap();

    let refused = backfill(&["resume", run_id.as_str()], &vars).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--force"), "{refused:?}");
    assert!(moto.executions(&arn).await.is_empty());

    let forced = backfill(&["resume", run_id.as_str(), "--force"], &vars).await;
    assert_eq!(forced.code, 0, "{forced:?}");
    assert_eq!(moto.executions(&arn).await.len(), 1);
}
