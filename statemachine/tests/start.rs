//! `backfill start` against a real moto server: local validation before any call, the execution
//! input and name moto received, `--wait` and its exit codes, and the Step Functions adapter.

mod common;

use common::{backfill, Moto};
use serde_json::json;
use statemachine::executions::{ExecutionStatus, Executions, SfnExecutions, StartRequest};

#[tokio::test]
async fn absent_flags_are_left_to_the_functions() {
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;

    let out = backfill(
        &[
            "start",
            "--top-n",
            "5",
            "--mentions-within-days",
            "7",
            "--lookback-days",
            "7",
        ],
        &moto.env(&arn),
    )
    .await;

    assert_eq!(out.code, 0, "{out:?}");
    let input = moto.execution_input(&out.field("execution_arn")).await;
    assert_eq!(
        input,
        json!({
            "new_run_id": out.field("run_id"),
            "top_n": 5,
            "mentions_within_days": 7,
            "lookback_days": 7,
        })
    );
}

#[tokio::test]
async fn bad_input_exits_2_before_any_aws_call() {
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
    let cases: &[(&[&str], &str)] = &[
        (&["--start-date", "2026-13-01"], "start_date"),
        (
            &["--start-date", "2026-03-10", "--end-date", "2026-03-09"],
            "after end_date",
        ),
        (&["--end-date", "2999-01-01"], "in the future"),
        (&["--interval", "2h"], "interval"),
        (&["--batch-size", "0"], "batch_size"),
        (&["--batch-size", "1001"], "batch_size"),
        (&["--batch-size", "-5"], "batch_size"),
        (&["--symbols", "AAPL,A/B"], "malformed symbol"),
        (&["--symbols", "AAPL", "--top-n", "3"], "not both"),
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
        let mut args = vec!["start"];
        args.extend_from_slice(flags);
        let out = backfill(&args, &moto.env(&arn)).await;
        assert_eq!(out.code, 2, "{flags:?}: {out:?}");
        assert!(
            out.stderr.contains("invalid input") && out.stderr.contains(expected),
            "{flags:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{flags:?}: {}", out.stdout);
    }
    // Usage errors caught by the flag parser itself.
    for args in [
        vec!["start", "--top-n", "many"],
        vec!["start", "--no-such-flag"],
        vec!["frobnicate"],
    ] {
        let out = backfill(&args, &moto.env(&arn)).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    assert!(moto.executions(&arn).await.is_empty(), "nothing may start");
}

/// Issue 8: `--start-date 1900-01-01 --interval 1h` exited 0 and the execution failed later.
#[tokio::test]
async fn the_functions_default_provider_is_read_from_price_provider_like_they_read_it() {
    let moto = Moto::start().await;
    let arn = moto.pass_machine().await;
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

    let mut env = moto.env(&arn);
    env.push(("PRICE_PROVIDER", "polygon"));
    let out = backfill(&args, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(moto.executions(&arn).await.len(), 1);

    let out = backfill(&args, &moto.env(&arn)).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("730 days") && out.stderr.contains("--provider polygon"),
        "{}",
        out.stderr
    );
    assert_eq!(
        moto.executions(&arn).await.len(),
        1,
        "the refused one started nothing"
    );
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
    // A port nothing listens on.
    let endpoint = test_support::net::refused_http_url();
    let out = backfill(
        &["start", "--symbols", "AAPL"],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            (
                "STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:123456789012:stateMachine:x",
            ),
        ],
    )
    .await;
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

/// A machine that ends like the real one would after finalize-run reported `status`.
async fn finalize_like_machine(moto: &Moto, name: &str, status: &str, failed: i64) -> String {
    let errors = if failed > 0 {
        json!([{"symbol": "NOPE", "status": "failed", "error_name": "UnknownSymbol", "message": "Yahoo does not know NOPE"}])
    } else {
        json!([])
    };
    moto.create_state_machine(
        name,
        &json!({
            "StartAt": "FinalizeRun",
            "States": {"FinalizeRun": {"Type": "Pass", "End": true, "Parameters": {
                "run_id.$": "$.new_run_id",
                "status": status,
                "requested": 2 + failed, "success": 2, "failed": failed, "skipped": 0,
                "rate_limited": 0, "pending": 0, "records_inserted": 42, "records_updated": 0,
                "errors": errors, "failed_batches": [],
                "start_date": "2026-03-09", "end_date": "2026-03-11",
                "interval": "1h", "provider": "yahoo"
            }}}
        }),
    )
    .await
}

#[tokio::test]
async fn wait_exits_0_only_when_every_ticker_succeeded() {
    let moto = Moto::start().await;
    moto.enable_execution().await;
    let clean = finalize_like_machine(&moto, "clean", "succeeded", 0).await;
    let with_failures =
        finalize_like_machine(&moto, "failures", "completed_with_failures", 1).await;
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

    let out = backfill(&args, &moto.env(&clean)).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("execution SUCCEEDED"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("run {}  succeeded", out.field("run_id"))),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("42 inserted"), "{}", out.stdout);

    let out = backfill(&args, &moto.env(&with_failures)).await;
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
    let moto = Moto::start().await;
    moto.enable_execution().await;
    let failing = moto
        .create_state_machine(
            "incomplete",
            &json!({"StartAt": "RunIncomplete", "States": {"RunIncomplete": {
                "Type": "Fail", "Error": "RunIncomplete",
                "Cause": "run is incomplete: resume it with: backfill resume"
            }}}),
        )
        .await;

    // With a database, the run's own report follows (here: select-tickers never ran).
    let env = common::Env::new(market_sim::Knobs::default()).await;
    let vars = moto.env_with_db(&failing, &env);

    let out = backfill(&["start", "--symbols", "AAPL", "--wait"], &vars).await;

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
