//! The `backfill` binary's `start` as a process, where the process matters (its environment,
//! its exit codes and messages), and the Step Functions adapter against a real moto server. The
//! CLI's logic (what is sent, validation, `--wait`) is tested in-process in cli_with_fake.rs.

mod common;

/// A complete AWS setting whose Step Functions endpoint is `endpoint`, a port nothing listens on.
fn unreachable_aws(endpoint: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        (
            "STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:x",
        ),
    ]
}

use common::{backfill, Moto};
use serde_json::json;
use statemachine::executions::{ExecutionStatus, Executions, SfnExecutions, StartRequest};

/// Issue 8: `--start-date 1900-01-01 --interval 1h` exited 0 and the execution failed later.
#[tokio::test]
async fn the_functions_default_provider_is_read_from_price_provider_like_they_read_it() {
    // Yahoo keeps 1h bars for 730 days; Polygon, the default here, serves them from 2003.
    let args = [
        "start",
        "--symbols",
        "AAPL",
        "--start-date",
        "2020-01-01",
        "--end-date",
        "2020-01-31",
        "--interval",
        "1h",
    ];
    // Step Functions answers nothing here: a request that passed validation gets as far as
    // calling it (exit 1, unreachable), a refused one never does (exit 2).
    let endpoint = test_support::net::refused_http_url();
    let mut env = unreachable_aws(&endpoint);

    let out = backfill(&args, &env).await;
    out.assert_fails(2, "730 days");
    assert!(out.stderr.contains("--provider polygon"), "{}", out.stderr);

    env.push(("PRICE_PROVIDER", "polygon"));
    let out = backfill(&args, &env).await;
    out.assert_fails(1, "cannot reach Step Functions");
}

/// `backfill plan` applies the same rules: 0001-01-01 used to plan 8.46 M rows per ticker.
#[tokio::test]
async fn plan_refuses_a_start_in_year_1() {
    let out = backfill(
        &["plan", "--symbols", "AAPL", "--start-date", "0001-01-01"],
        &[],
    )
    .await;
    out.assert_fails(2, "start_date 0001-01-01 is before 1970-01-01");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[tokio::test]
async fn a_missing_state_machine_arn_is_a_usage_error() {
    let out = backfill(
        &["start", "--symbols", "AAPL"],
        &[("AWS_REGION", "us-east-1")],
    )
    .await;
    out.assert_fails(2, "STATE_MACHINE_ARN is not set");
    assert!(out.stderr.contains("--state-machine-arn"), "{}", out.stderr);
}

#[tokio::test]
async fn an_unknown_state_machine_is_a_usage_error() {
    let moto = Moto::start().await;
    let missing = "arn:aws:states:us-east-1:123456789012:stateMachine:nope";
    let out = backfill(&["start", "--symbols", "AAPL"], &moto.env(missing)).await;
    out.assert_fails(2, "does not exist");
}

#[tokio::test]
async fn unreachable_aws_is_reported_clearly_with_exit_1() {
    let endpoint = test_support::net::refused_http_url();
    let out = backfill(&["start", "--symbols", "AAPL"], &unreachable_aws(&endpoint)).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot reach Step Functions") && out.stderr.contains(&endpoint),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("AWS_ENDPOINT_URL"), "{}", out.stderr);
}

#[tokio::test]
async fn missing_credentials_are_a_configuration_error() {
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let env: Vec<(&str, &str)> = moto
        .env(&arn)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    let out = backfill(&["start", "--symbols", "AAPL"], &env).await;
    out.assert_fails(2, "no AWS credentials");
    assert!(moto.executions(&arn).await.is_empty());
}

#[tokio::test]
async fn the_adapter_starts_and_describes_executions() {
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let adapter = SfnExecutions::new(moto.sfn.clone(), moto.url.clone());
    let request = StartRequest {
        state_machine_arn: arn.clone(),
        name: "backfill-20260312-101500-0a1b2c3d".into(),
        input: json!({"new_run_id": "backfill-20260312-101500-0a1b2c3d", "symbols": ["AAPL"]}),
    };

    let execution_arn = adapter.start_execution(&request).await.unwrap();
    let info = adapter.describe_execution(&execution_arn).await.unwrap();

    assert_eq!(info.execution_arn, execution_arn);
    assert_eq!(
        info.name.as_deref(),
        Some("backfill-20260312-101500-0a1b2c3d")
    );
    let input: serde_json::Value = serde_json::from_str(info.input.as_deref().unwrap()).unwrap();
    assert_eq!(input, request.input);
    // Execution is not enabled in this moto: the execution stays running.
    assert_eq!(info.status, ExecutionStatus::Running);
    assert!(info.started_at.is_some());

    // The same name with another input is refused, not silently reused.
    let clash = StartRequest {
        input: json!({"symbols": ["MSFT"]}),
        ..request
    };
    let err = adapter.start_execution(&clash).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
