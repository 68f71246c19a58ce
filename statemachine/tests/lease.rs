//! One active execution per run, through the real adapter and moto: `backfill status` closes a run
//! its dead execution left open, and `backfill resume` then takes its lease. The lease decisions
//! themselves are tested in-process against the fake (cli_with_fake.rs).
//! moto without execution enabled keeps every execution RUNNING until it is stopped.

mod common;

use common::{backfill, Env, Moto};
use market_sim::Knobs;

#[tokio::test]
async fn a_run_left_open_by_an_ended_execution_is_closed_and_resumed() {
    let env = Env::new(Knobs::default()).await;
    let run_id = env.new_run(&["AAPL"], 10).await.run_id;
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let vars = moto.env_with_db(&arn, &env);
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
    env.update_run(
        &run_id,
        "lease_execution = 'died-before-finalize', status = 'running'",
    )
    .await;

    // `backfill status` closes it truthfully: nothing fetched, so incomplete.
    let status = backfill(&["status", run_id.as_str(), "--json"], &vars).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["status"], "incomplete", "{status:?}");
    assert!(status.stderr.contains("died-before-finalize"), "{status:?}");
    assert_eq!(env.lease_of(&run_id).await, None);

    let resumed = backfill(&["resume", run_id.as_str()], &vars).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let lease = env
        .lease_of(&run_id)
        .await
        .expect("the new execution holds the lease");
    assert!(lease.starts_with(&format!("{run_id}-resume-")), "{lease}");
}
