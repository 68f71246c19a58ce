//! The Lambda Invoke adapter and its function host, with `relay-function` (a stand-in function
//! that does what a test server tells it) and a stand-in for moto: real Lambda answers for
//! responses, function errors, dead processes and timeouts; everything else passed to moto.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Json, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use local_stack::adapter::{AdapterConfig, AdapterThread};
use local_stack::runtime::{FunctionSpec, HostConfig, InstanceState};
use serde_json::{json, Value};
use test_support::process::is_running;

/// Serves `app` on a free port of 127.0.0.1 and returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The relay's server: the instruction is the payload's `do`, else an echo of the payload. Records
/// every request (function, pid, payload).
async fn relay(seen: Arc<Mutex<Vec<Value>>>) -> String {
    serve(Router::new().route(
        "/",
        post(move |Json(asked): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(asked.clone());
                let payload = &asked["payload"];
                match payload.get("do") {
                    Some(instruction) => Json(instruction.clone()),
                    None => Json(json!({ "respond": { "echo": payload } })),
                }
            }
        }),
    ))
    .await
}

/// Stands in for moto: answers 418 with what it received.
async fn moto() -> String {
    serve(Router::new().fallback(|request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let seen = json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "target": parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()),
            "body": String::from_utf8_lossy(&body),
        });
        (
            StatusCode::IM_A_TEAPOT,
            [("x-moto", "yes")],
            seen.to_string(),
        )
            .into_response()
    }))
    .await
}

struct Setup {
    adapter: AdapterThread,
    seen: Arc<Mutex<Vec<Value>>>,
}

/// An adapter whose functions `fetch-batch` and `finalize-run` are the relay, with `timeout` and
/// `concurrency`; `broken` runs a program that exits at once.
async fn setup(timeout: Duration, concurrency: usize) -> Setup {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let relay_url = relay(seen.clone()).await;
    let program = env!("CARGO_BIN_EXE_relay-function");
    let spec = |name: &str| FunctionSpec {
        env: vec![("RELAY_URL".into(), relay_url.clone())],
        ..FunctionSpec::new(name, program, timeout)
    };
    let adapter = AdapterThread::start(AdapterConfig {
        moto_endpoint: moto().await,
        host: HostConfig {
            functions: vec![
                spec("fetch-batch"),
                spec("finalize-run"),
                FunctionSpec::new("broken", "/bin/false", timeout),
            ],
            concurrency,
            log: None,
        },
    })
    .unwrap();
    Setup { adapter, seen }
}

fn invoke_url(adapter: &AdapterThread, function: &str) -> String {
    format!(
        "http://{}/2015-03-31/functions/{function}/invocations",
        adapter.addr()
    )
}

async fn invoke(adapter: &AdapterThread, function: &str, payload: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(invoke_url(adapter, function))
        .body(payload.to_string())
        .send()
        .await
        .unwrap()
}

/// Waits (at most 30 s) for a busy instance of `function` and returns its pid.
async fn busy_pid(adapter: &AdapterThread, function: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(busy) = adapter
            .host()
            .instances()
            .into_iter()
            .find(|i| i.function == function && i.state == InstanceState::Busy)
        {
            return busy.pid;
        }
        assert!(Instant::now() < deadline, "no busy instance of {function}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_response_passes_through_and_a_function_arn_is_invoked_by_its_name() {
    let s = setup(Duration::from_secs(30), 2).await;
    // As botocore sends it: the ARN percent-encoded in the path.
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afetch-batch";

    let response = invoke(&s.adapter, arn, json!({"run_id": "r", "batch": 3})).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-amz-function-error").is_none());
    assert_eq!(response.headers()["x-amz-executed-version"], "$LATEST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"echo": {"run_id": "r", "batch": 3}}));
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["function"], "fetch-batch");
    let recorded = s.adapter.invocations();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].function, "fetch-batch");
    assert_eq!(
        Some(recorded[0].request_id.as_str()),
        seen[0]["request_id"].as_str(),
        "the function saw the request id the adapter recorded"
    );
}

#[tokio::test]
async fn a_function_error_is_a_200_with_the_function_error_header_and_the_error_document() {
    let s = setup(Duration::from_secs(30), 2).await;

    let response = invoke(
        &s.adapter,
        "fetch-batch",
        json!({"do": {"error": {"type": "ProviderUnavailable", "message": "provider 503"}}}),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "ProviderUnavailable");
    assert_eq!(body["errorMessage"], "provider 503");
    let recorded = s.adapter.invocations();
    assert_eq!(recorded[0].function_error.as_deref(), Some("Unhandled"));
}

#[tokio::test]
async fn a_killed_instance_fails_its_invocation_at_once_and_the_next_one_gets_a_fresh_instance() {
    let s = setup(Duration::from_secs(600), 2).await;
    let adapter = &s.adapter;
    let hanging = tokio::spawn({
        let url = invoke_url(adapter, "fetch-batch");
        async move {
            reqwest::Client::new()
                .post(url)
                .body(json!({"do": {"sleep_ms": 600_000}}).to_string())
                .send()
                .await
                .unwrap()
        }
    });
    let pid = busy_pid(adapter, "fetch-batch").await;
    // Mid-invocation: the function has asked the relay what to do, and is sleeping.
    let seen = s.seen.clone();
    test_support::wait::until(Duration::from_secs(20), || async {
        seen.lock().unwrap().len() == 1
    })
    .await
    .expect("the function runs");

    // kill -9, as an operator or the OOM killer would.
    let killed_at = Instant::now();
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let response = tokio::time::timeout(Duration::from_secs(10), hanging)
        .await
        .expect("the dead instance's invocation is answered within seconds")
        .unwrap();

    assert!(
        killed_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed_at.elapsed()
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ")
            && message.ends_with("Error: Runtime exited with error: signal: killed"),
        "{message}"
    );

    // The next invocation runs on another process, as Lambda starts a fresh environment.
    let next = invoke(adapter, "fetch-batch", json!({"again": true})).await;
    assert_eq!(next.status(), 200);
    assert!(next.headers().get("x-amz-function-error").is_none());
    let seen = s.seen.lock().unwrap().clone();
    let pids: Vec<u64> = seen.iter().filter_map(|r| r["pid"].as_u64()).collect();
    assert_eq!(pids.len(), 2, "{seen:?}");
    assert_eq!(
        pids[0], pid as u64,
        "the killed process ran the first invocation"
    );
    assert_ne!(pids[1], pid as u64, "{seen:?}");
    assert_eq!(seen[1]["payload"], json!({"again": true}), "{seen:?}");
    assert!(!is_running(pid));
    assert!(adapter.host().instances().iter().all(|i| i.pid != pid));
}

#[tokio::test]
async fn a_crash_is_runtime_exit_error_with_its_exit_status() {
    let s = setup(Duration::from_secs(30), 1).await;

    let response = invoke(&s.adapter, "finalize-run", json!({"do": {"exit": 3}})).await;

    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3"),
        "{body}"
    );
}

#[tokio::test]
async fn an_invocation_over_the_timeout_is_sandbox_timedout_and_its_instance_is_stopped() {
    let s = setup(Duration::from_secs(1), 1).await;
    let started = Instant::now();

    let response = invoke(
        &s.adapter,
        "fetch-batch",
        json!({"do": {"sleep_ms": 60_000}}),
    )
    .await;

    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Task timed out after 1.00 seconds"),
        "{body}"
    );
    let pid = s.seen.lock().unwrap()[0]["pid"].as_u64().unwrap() as u32;
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(pid) {
        assert!(
            Instant::now() < deadline,
            "the timed-out instance is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the function still works.
    let next = invoke(&s.adapter, "fetch-batch", json!({"fine": 1})).await;
    assert!(next.headers().get("x-amz-function-error").is_none());
}

#[tokio::test]
async fn concurrent_invocations_run_on_at_most_concurrency_instances() {
    let s = setup(Duration::from_secs(30), 2).await;
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let url = invoke_url(&s.adapter, "fetch-batch");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .body(json!({"do": {"sleep_ms": 300, "respond": i}}).to_string())
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }

    assert_eq!(answers, [json!(0), json!(1), json!(2), json!(3)]);
    let pids: BTreeSet<u64> = s
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| r["pid"].as_u64())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "two instances served four invocations: {pids:?}"
    );
}

#[tokio::test]
async fn a_function_that_cannot_start_fails_the_invocation_instead_of_hanging() {
    let s = setup(Duration::from_secs(30), 1).await;

    let response = tokio::time::timeout(
        Duration::from_secs(10),
        invoke(&s.adapter, "broken", json!({})),
    )
    .await
    .expect("answered");

    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("exit status 1"),
        "{body}"
    );
}

#[tokio::test]
async fn an_event_invocation_is_accepted_at_once_and_still_runs() {
    let s = setup(Duration::from_secs(30), 1).await;

    let response = reqwest::Client::new()
        .post(invoke_url(&s.adapter, "finalize-run"))
        .header("x-amz-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 202);
    let seen = s.seen.clone();
    test_support::wait::until(Duration::from_secs(20), || async {
        seen.lock().unwrap().len() == 1
    })
    .await
    .expect("the event reaches the function");
}

#[tokio::test]
async fn an_unknown_function_is_resource_not_found() {
    let s = setup(Duration::from_secs(30), 1).await;

    let response = invoke(&s.adapter, "no-such-function", json!({})).await;

    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn the_instances_endpoint_lists_pids_and_what_they_run() {
    let s = setup(Duration::from_secs(30), 1).await;
    let call = tokio::spawn({
        let url = invoke_url(&s.adapter, "fetch-batch");
        async move {
            reqwest::Client::new()
                .post(url)
                .body(json!({"do": {"sleep_ms": 1_000, "respond": 1}, "batch": 7}).to_string())
                .send()
                .await
                .unwrap()
        }
    });
    let pid = busy_pid(&s.adapter, "fetch-batch").await;

    let listed: Vec<Value> =
        reqwest::get(format!("http://{}/local-stack/instances", s.adapter.addr()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();

    let busy = listed
        .iter()
        .find(|i| i["pid"] == pid)
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(busy["function"], "fetch-batch");
    assert_eq!(busy["state"], "busy");
    let payload: Value = serde_json::from_str(busy["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["batch"], 7);
    call.await.unwrap();
}

#[tokio::test]
async fn everything_else_goes_to_moto_unchanged() {
    let s = setup(Duration::from_secs(30), 1).await;

    let response = reqwest::Client::new()
        .post(format!("http://{}/?probe=1", s.adapter.addr()))
        .header("x-amz-target", "AWSStepFunctions.ListStateMachines")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["x-moto"], "yes");
    let seen: Value = response.json().await.unwrap();
    assert_eq!(
        seen,
        json!({
            "method": "POST",
            "uri": "/?probe=1",
            "target": "AWSStepFunctions.ListStateMachines",
            "body": "{}",
        })
    );
}
