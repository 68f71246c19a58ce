//! The Lambda Invoke adapter against stand-ins for `cargo lambda watch` and moto: real Lambda
//! answers for function errors and ARNs, everything else passed through untouched.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use local_stack::adapter::{AdapterConfig, AdapterThread};

/// Serves `app` on a free port of 127.0.0.1 and returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Stands in for cargo lambda watch: `ok` echoes its payload, `fails` answers the way the emulator
/// reports a function error (HTTP 500, the error document, no header). Records the names it got.
async fn emulator(names: Arc<Mutex<Vec<String>>>) -> String {
    serve(Router::new().route(
        "/2015-03-31/functions/{name}/invocations",
        post(move |Path(name): Path<String>, body: Bytes| {
            let names = names.clone();
            async move {
                names.lock().unwrap().push(name.clone());
                match name.as_str() {
                    "fails" => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        r#"{"errorType":"ProviderUnavailable","errorMessage":"provider 503"}"#
                            .to_string(),
                    ),
                    _ => (
                        StatusCode::OK,
                        format!(r#"{{"echo":{}}}"#, String::from_utf8_lossy(&body)),
                    ),
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
        let seen = serde_json::json!({
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

async fn adapter(lambda_endpoint: String) -> AdapterThread {
    AdapterThread::start(AdapterConfig {
        lambda_endpoint,
        moto_endpoint: moto().await,
    })
    .unwrap()
}

fn invoke_url(adapter: &AdapterThread, function: &str) -> String {
    format!(
        "http://{}/2015-03-31/functions/{function}/invocations",
        adapter.addr()
    )
}

#[tokio::test]
async fn a_function_error_is_a_200_with_the_function_error_header_and_the_error_document() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let adapter = adapter(emulator(names).await).await;

    let response = reqwest::Client::new()
        .post(invoke_url(&adapter, "fails"))
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"errorType":"ProviderUnavailable","errorMessage":"provider 503"}"#
    );
    let recorded = adapter.invocations();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].function_error.as_deref(), Some("Unhandled"));
}

#[tokio::test]
async fn a_function_arn_is_invoked_by_its_name_and_the_payload_passes_through() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let adapter = adapter(emulator(names.clone()).await).await;
    // As botocore sends it: the ARN percent-encoded in the path.
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afetch-batch";

    let response = reqwest::Client::new()
        .post(invoke_url(&adapter, arn))
        .body(r#"{"run_id":"r","batch":3}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-amz-function-error").is_none());
    assert_eq!(response.headers()["x-amz-executed-version"], "$LATEST");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"echo":{"run_id":"r","batch":3}}"#
    );
    assert_eq!(*names.lock().unwrap(), ["fetch-batch"]);
}

#[tokio::test]
async fn an_event_invocation_is_accepted_at_once_and_still_runs() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let adapter = adapter(emulator(names.clone()).await).await;

    let response = reqwest::Client::new()
        .post(invoke_url(&adapter, "finalize-run"))
        .header("x-amz-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 202);
    test_support::wait::until(std::time::Duration::from_secs(10), || async {
        names.lock().unwrap().len() == 1
    })
    .await
    .expect("the event reaches the function");
}

#[tokio::test]
async fn an_unreachable_emulator_is_a_lambda_service_exception() {
    // Nothing listens on port 1.
    let adapter = adapter("http://127.0.0.1:1".into()).await;

    let response = reqwest::Client::new()
        .post(invoke_url(&adapter, "fetch-batch"))
        .body("{}")
        .send()
        .await
        .unwrap();

    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(response.headers()["x-amzn-errortype"], "ServiceException");
}

#[tokio::test]
async fn everything_else_goes_to_moto_unchanged() {
    let adapter = adapter("http://127.0.0.1:1".into()).await;

    let response = reqwest::Client::new()
        .post(format!("http://{}/?probe=1", adapter.addr()))
        .header("x-amz-target", "AWSStepFunctions.ListStateMachines")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["x-moto"], "yes");
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "method": "POST",
            "uri": "/?probe=1",
            "target": "AWSStepFunctions.ListStateMachines",
            "body": "{}",
        })
    );
}
