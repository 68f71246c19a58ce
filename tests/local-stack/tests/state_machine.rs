//! statemachine/backfill.asl.json on the local stack (moto's interpreter, the adapter's function
//! host), with every function replaced by `relay-function`: each call is answered by a script in
//! the test, so every status, error and crash the contract allows can be played in any order.
//! The real functions run the same definition in tests/e2e.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Json;
use axum::routing::post;
use axum::Router;
use local_stack::aws_sdk_sfn::types::ExecutionStatus;
use local_stack::{unique_name, FunctionTimeouts, LocalStack, LocalStackOptions};
use serde_json::{json, Value};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// One stack at a time: each runs several processes on a small machine.
static SERIAL: AsyncMutex<()> = AsyncMutex::const_new(());

async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

const RUN_ID: &str = "backfill-20260309-120000-0a1b2c3d";

/// A call one of the stand-ins received.
#[derive(Debug, Clone)]
struct Call {
    function: String,
    payload: Value,
    pid: u64,
    at: Instant,
}

/// What a stand-in does with a call: the `relay-function` instruction
/// (`respond` / `error` / `exit` / `sleep_ms`), given the calls so far to the same function.
type Script = dyn Fn(&str, &Value, usize) -> Value + Send + Sync;

struct Relay {
    calls: Arc<Mutex<Vec<Call>>>,
    url: String,
}

impl Relay {
    async fn start(script: Arc<Script>) -> Relay {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let app = Router::new().route(
            "/",
            post(move |Json(asked): Json<Value>| {
                let (calls, script) = (recorded.clone(), script.clone());
                async move {
                    let function = asked["function"].as_str().unwrap_or_default().to_string();
                    let payload = asked["payload"].clone();
                    let earlier = {
                        let mut calls = calls.lock().unwrap();
                        let earlier = calls.iter().filter(|c| c.function == function).count();
                        calls.push(Call {
                            function: function.clone(),
                            payload: payload.clone(),
                            pid: asked["pid"].as_u64().unwrap_or(0),
                            at: Instant::now(),
                        });
                        earlier
                    };
                    Json(script(&function, &payload, earlier))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Relay { calls, url }
    }

    fn calls(&self, function: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.function == function)
            .cloned()
            .collect()
    }
}

/// A stack whose three functions are the relay, plus `options`' settings.
async fn stack_with(script: Arc<Script>, options: LocalStackOptions) -> (LocalStack, Relay) {
    let relay = Relay::start(script).await;
    let program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_relay-function"));
    let mut function_env = options.function_env.clone();
    function_env.push(("RELAY_URL".into(), relay.url.clone()));
    let options = LocalStackOptions {
        function_env,
        function_programs: ["select-tickers", "fetch-batch", "finalize-run"]
            .into_iter()
            .map(|f| (f.to_string(), program.clone()))
            .collect(),
        ..options
    };
    match LocalStack::start(options).await {
        Ok(stack) => (stack, relay),
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

/// A small retry budget, so that the tests never wait long between retries.
fn quick() -> LocalStackOptions {
    LocalStackOptions {
        retry_budget_seconds: 10,
        ..LocalStackOptions::default()
    }
}

fn respond(value: Value) -> Value {
    json!({ "respond": value })
}

fn error(error_type: &str) -> Value {
    json!({ "error": { "type": error_type, "message": format!("{error_type} (stand-in)") } })
}

/// select-tickers' answer for `batches` batches, one lane each.
fn selected(batches: i64) -> Value {
    respond(json!({
        "run_id": RUN_ID,
        "batches": (0..batches).map(|b| json!({"run_id": RUN_ID, "batch": b})).collect::<Vec<_>>(),
        "max_concurrency": batches.max(1),
        "max_rate_limit_rounds": 1,
    }))
}

/// fetch-batch's answer with `status`.
fn fetched(batch: i64, status: &str, retry_after_seconds: Option<u64>) -> Value {
    respond(json!({
        "run_id": RUN_ID, "batch": batch, "status": status,
        "retry_after_seconds": retry_after_seconds, "rate_limit_round": status == "rate_limited",
        "success": 0, "failed": 0, "rate_limited": 0, "pending": 0,
        "records_inserted": 0, "records_updated": 0, "attempted": 0,
    }))
}

/// finalize-run's answer with `status`.
fn finalized(status: &str, success: i64, failed: i64) -> Value {
    respond(json!({
        "run_id": RUN_ID, "status": status, "requested": success + failed,
        "success": success, "failed": failed, "rate_limited": 0, "pending": 0,
        "records_inserted": 0, "errors": [], "failed_batches": [],
    }))
}

/// The `batch_results` finalize-run got.
fn batch_results(relay: &Relay) -> Value {
    let calls = relay.calls("finalize-run");
    let last = calls.last().expect("finalize-run was called");
    last.payload["batch_results"].clone()
}

async fn run(
    stack: &LocalStack,
    input: Value,
    prefix: &str,
) -> (String, local_stack::ExecutionOutcome) {
    let name = unique_name(prefix);
    let arn = stack
        .start_execution(&input, &name)
        .await
        .expect("StartExecution");
    let outcome = stack
        .wait_for_execution(&arn, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs_tail(40)));
    (name, outcome)
}

#[tokio::test]
async fn every_function_gets_the_executions_name_as_the_lease_and_select_tickers_the_input() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, _n| match function {
        "select-tickers" => selected(2),
        "fetch-batch" => fetched(0, "done", None),
        _ => finalized("succeeded", 2, 0),
    });
    let (stack, relay) = stack_with(script, quick()).await;
    // A lease_execution in the input is not the caller's to choose.
    let input =
        json!({"symbols": ["AAPL", "MSFT"], "lease_execution": "someone-else", "batch_size": 1});

    let (name, outcome) = run(&stack, input, "lease").await;

    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    let select = relay.calls("select-tickers");
    assert_eq!(
        select[0].payload,
        json!({"symbols": ["AAPL", "MSFT"], "lease_execution": name, "batch_size": 1})
    );
    let fetches = relay.calls("fetch-batch");
    assert_eq!(fetches.len(), 2);
    for call in &fetches {
        // The parent execution's name, not a Map child's.
        assert_eq!(call.payload["lease_execution"], name, "{:?}", call.payload);
        assert_eq!(call.payload["run_id"], RUN_ID);
    }
    let mut batches: Vec<i64> = fetches
        .iter()
        .map(|c| c.payload["batch"].as_i64().unwrap())
        .collect();
    batches.sort();
    assert_eq!(batches, [0, 1]);
    let finalize = relay.calls("finalize-run");
    assert_eq!(finalize[0].payload["lease_execution"], name);
    assert_eq!(finalize[0].payload["run_id"], RUN_ID);
}

#[tokio::test]
async fn an_input_that_is_not_an_object_reaches_select_tickers_as_it_is() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, payload, _n| match function {
        "select-tickers" => json!({"error": {"type": "InvalidInput",
            "message": format!("the input must be an object, not {payload}")}}),
        _ => respond(json!(null)),
    });
    let (stack, relay) = stack_with(script, quick()).await;

    // (Not `null`: moto's interpreter sends a Lambda payload of JSON null as `{}`, which AWS does
    // not; the Choice sends it on as it is, like these.)
    for input in [json!([]), json!(["AAPL"]), json!("AAPL"), json!(7)] {
        let (_, outcome) = run(&stack, input.clone(), "not-an-object").await;
        assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
        assert_eq!(
            outcome.error.as_deref(),
            Some("InvalidInput"),
            "{outcome:?}"
        );
        assert_eq!(relay.calls("select-tickers").last().unwrap().payload, input);
    }
    // InvalidInput is never retried.
    assert_eq!(relay.calls("select-tickers").len(), 4);
    assert!(relay.calls("fetch-batch").is_empty());
}

#[tokio::test]
async fn unavailable_waits_retry_after_seconds_and_calls_again_without_a_round_limit() {
    let _serial = serial().await;
    // Four outages in a row, more than max_rate_limit_rounds (1) would allow a rate limit.
    let script: Arc<Script> = Arc::new(|function, _payload, n| match function {
        "select-tickers" => selected(1),
        "fetch-batch" if n < 4 => fetched(0, "unavailable", Some(1)),
        "fetch-batch" => fetched(0, "done", None),
        _ => finalized("succeeded", 1, 0),
    });
    let (stack, relay) = stack_with(script, quick()).await;

    let (_, outcome) = run(&stack, json!({"symbols": ["AAPL"]}), "unavailable").await;

    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    let fetches = relay.calls("fetch-batch");
    assert_eq!(fetches.len(), 5);
    for pair in fetches.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_millis(900),
            "called again after {waited:?}, not after retry_after_seconds (1 s)"
        );
    }
    assert_eq!(
        batch_results(&relay),
        json!([{"batch": 0, "outcome": "done"}])
    );
}

#[tokio::test]
async fn stalled_ends_the_batch_and_the_run_ends_incomplete() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, _n| match function {
        "select-tickers" => selected(1),
        "fetch-batch" => fetched(0, "stalled", None),
        _ => respond(json!({
            "run_id": RUN_ID, "status": "incomplete", "requested": 3, "success": 1, "failed": 0,
            "rate_limited": 0, "pending": 2, "records_inserted": 7, "errors": [],
            "failed_batches": [],
        })),
    });
    let (stack, relay) = stack_with(script, quick()).await;

    let (_, outcome) = run(&stack, json!({"symbols": ["A", "B", "C"]}), "stalled").await;

    assert_eq!(
        relay.calls("fetch-batch").len(),
        1,
        "a stalled batch is not called again"
    );
    assert_eq!(
        batch_results(&relay),
        json!([{"batch": 0, "outcome": "stalled"}])
    );
    assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("RunIncomplete"));
    let cause = outcome.cause.unwrap_or_default();
    assert!(
        cause.contains(RUN_ID) && cause.contains("2 pending") && cause.contains("backfill resume"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_run_that_completes_with_failures_fails_the_execution_with_run_completed_with_failures() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, _n| match function {
        "select-tickers" => selected(1),
        "fetch-batch" => fetched(0, "done", None),
        _ => finalized("completed_with_failures", 2, 1),
    });
    let (stack, _relay) = stack_with(script, quick()).await;

    let (_, outcome) = run(
        &stack,
        json!({"symbols": ["A", "B", "ZZZZ"]}),
        "with-failures",
    )
    .await;

    assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("RunCompletedWithFailures"));
    let cause = outcome.cause.unwrap_or_default();
    assert_eq!(
        cause,
        format!(
            "run {RUN_ID} completed with failures: 1 of 3 tickers failed, 2 succeeded; see which and why with: backfill status {RUN_ID}"
        )
    );
}

#[tokio::test]
async fn transient_errors_and_dead_functions_are_retried_and_refusals_are_not() {
    let _serial = serial().await;
    // Batch 0 meets every transient kind once, then finishes; batch 1 is refused for good.
    let batch0_calls = Arc::new(Mutex::new(0usize));
    let script: Arc<Script> = Arc::new(move |function, payload, _n| match function {
        "select-tickers" => selected(2),
        "fetch-batch" if payload["batch"] == 1 => error("ProviderRejected"),
        "fetch-batch" => {
            let mut calls = batch0_calls.lock().unwrap();
            *calls += 1;
            match *calls {
                1 => error("DatabaseUnavailable"),
                2 => error("ProviderUnavailable"),
                3 => json!({"exit": 1}),
                _ => fetched(0, "done", None),
            }
        }
        _ => finalized("succeeded", 2, 0),
    });
    let (stack, relay) = stack_with(script, quick()).await;

    let (_, outcome) = run(&stack, json!({"symbols": ["A", "B"]}), "transient").await;

    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    let fetches = relay.calls("fetch-batch");
    let of = |batch: i64| {
        fetches
            .iter()
            .filter(|c| c.payload["batch"] == batch)
            .count()
    };
    assert_eq!(of(0), 4, "three transient failures, then done");
    assert_eq!(of(1), 1, "ProviderRejected is never retried");
    let mut results = batch_results(&relay).as_array().unwrap().clone();
    results.sort_by_key(|r| r["batch"].as_i64());
    assert_eq!(
        results,
        [
            json!({"batch": 0, "outcome": "done"}),
            json!({"batch": 1, "outcome": "failed", "error": "ProviderRejected"}),
        ]
    );
    // The crash reached the state machine as Lambda names it.
    let crashed: Vec<_> = stack
        .invocations()
        .into_iter()
        .filter(|i| i.function == "fetch-batch" && i.response.contains("Runtime.ExitError"))
        .collect();
    assert_eq!(crashed.len(), 1, "{crashed:?}");
}

#[tokio::test]
async fn a_fetch_batch_killed_mid_batch_is_noticed_within_seconds_and_retried() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, n| match function {
        "select-tickers" => selected(1),
        // The first call hangs (until killed); the retry finishes.
        "fetch-batch" if n == 0 => json!({"sleep_ms": 600_000}),
        "fetch-batch" => fetched(0, "done", None),
        _ => finalized("succeeded", 1, 0),
    });
    let (stack, relay) = stack_with(script, quick()).await;
    let arn = stack
        .start_execution(&json!({"symbols": ["A"]}), &unique_name("killed"))
        .await
        .unwrap();
    let busy = stack
        .wait_for_busy_instance(
            "fetch-batch",
            Duration::from_millis(500),
            |p| p["batch"] == 0,
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs_tail(40)));

    stack.kill_instance(&busy).unwrap();
    let killed_at = Instant::now();
    let outcome = stack
        .wait_for_execution(&arn, Duration::from_secs(120))
        .await
        .unwrap();

    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    let fetches = relay.calls("fetch-batch");
    assert_eq!(fetches.len(), 2);
    assert_eq!(fetches[0].pid, u64::from(busy.pid));
    assert_ne!(
        fetches[1].pid,
        u64::from(busy.pid),
        "a fresh instance ran the retry"
    );
    let noticed = fetches[1].at - killed_at;
    // The retry comes after IntervalSeconds 2 with full jitter: at most 2 s after the answer.
    assert!(
        noticed < Duration::from_secs(10),
        "retried {noticed:?} after the kill"
    );
    let died: Vec<_> = stack
        .invocations()
        .into_iter()
        .filter(|i| i.function == "fetch-batch" && i.function_error.is_some())
        .collect();
    assert_eq!(died.len(), 1);
    assert!(
        died[0].response.contains("Runtime.ExitError")
            && died[0].response.contains("signal: killed"),
        "{died:?}"
    );
}

#[tokio::test]
async fn a_fetch_batch_that_runs_into_its_timeout_is_stopped_and_retried() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, n| match function {
        "select-tickers" => selected(1),
        "fetch-batch" if n == 0 => json!({"sleep_ms": 600_000}),
        "fetch-batch" => fetched(0, "done", None),
        _ => finalized("succeeded", 1, 0),
    });
    let options = LocalStackOptions {
        function_timeouts: FunctionTimeouts {
            fetch_batch: Duration::from_secs(3),
            ..FunctionTimeouts::default()
        },
        ..quick()
    };
    let (stack, relay) = stack_with(script, options).await;

    let (_, outcome) = run(&stack, json!({"symbols": ["A"]}), "timeout").await;

    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    let fetches = relay.calls("fetch-batch");
    assert_eq!(fetches.len(), 2);
    let retried_after = fetches[1].at - fetches[0].at;
    assert!(
        retried_after >= Duration::from_secs(3) && retried_after < Duration::from_secs(15),
        "{retried_after:?}"
    );
    assert!(stack
        .invocations()
        .iter()
        .any(|i| i.function == "fetch-batch" && i.response.contains("Sandbox.Timedout")));
}

#[tokio::test]
async fn a_batch_that_keeps_failing_gives_up_after_the_retry_budget() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, _n| match function {
        "select-tickers" => selected(1),
        "fetch-batch" => error("DatabaseUnavailable"),
        _ => finalized("succeeded", 0, 0),
    });
    // 3 s on average: 2, 4 s delays (jittered) make 2 retries.
    let options = LocalStackOptions {
        retry_budget_seconds: 3,
        ..quick()
    };
    let (stack, relay) = stack_with(script, options).await;

    let (_, _outcome) = run(&stack, json!({"symbols": ["A"]}), "budget").await;

    assert_eq!(relay.calls("fetch-batch").len(), 1 + 2);
    assert_eq!(
        batch_results(&relay),
        json!([{"batch": 0, "outcome": "failed", "error": "DatabaseUnavailable"}])
    );
}

#[tokio::test]
async fn finalize_run_retries_an_unavailable_database_and_the_run_still_succeeds() {
    let _serial = serial().await;
    let script: Arc<Script> = Arc::new(|function, _payload, n| match function {
        "select-tickers" if n == 0 => error("DatabaseUnavailable"),
        "select-tickers" => selected(1),
        "fetch-batch" => fetched(0, "done", None),
        "finalize-run" if n < 2 => error("DatabaseUnavailable"),
        _ => finalized("succeeded", 1, 0),
    });
    let (stack, relay) = stack_with(script, quick()).await;

    let (_, outcome) = run(&stack, json!({"symbols": ["A"]}), "finalize-retry").await;

    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");
    assert_eq!(relay.calls("select-tickers").len(), 2);
    assert_eq!(relay.calls("finalize-run").len(), 3);
}
