//! The Lambda Invoke adapter: the one endpoint that moto's Step Functions interpreter and AWS SDK
//! clients talk to.
//!
//! - `POST /2015-03-31/functions/{name or ARN}/invocations` goes to `cargo lambda watch`, with
//!   real Lambda semantics added: the emulator answers a function error with HTTP 500 and no
//!   `X-Amz-Function-Error` header (real Lambda: 200 with that header and the error document as
//!   the body), and it does not know function ARNs. Without this, moto's interpreter would see a
//!   service error instead of the function's `errorType`, and Retry/Catch could not match it.
//! - Everything else is proxied to moto unchanged (Step Functions, Secrets Manager, moto-api).
//!
//! moto's interpreter sends its Lambda calls to `http://localhost:$MOTO_PORT`: start moto with
//! `MOTO_PORT` set to this adapter's port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Request bodies above this are refused (Lambda's own limit for a synchronous payload is 6 MB;
/// Step Functions requests are far smaller).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// A Lambda invocation may run as long as the function's budget; this only catches a hung emulator.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(3600);
const PROXY_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the adapter sends what it receives.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// `cargo lambda watch`'s address, e.g. `http://127.0.0.1:9000`.
    pub lambda_endpoint: String,
    /// moto's address, e.g. `http://127.0.0.1:5000`.
    pub moto_endpoint: String,
}

/// One Lambda invocation the adapter forwarded, for tests (e.g. "fetch-batch was never called").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub function: String,
    /// The request payload as sent.
    pub payload: String,
    /// `None` on success, `Some("Unhandled")` for a function error, `Some("Adapter")` when the
    /// emulator could not be reached or answered something unexpected.
    pub function_error: Option<String>,
    /// The response body as returned to the caller.
    pub response: String,
    pub duration: Duration,
}

/// Where the adapter records the invocations it forwarded (tests read it; a process only logs).
pub type InvocationLog = Option<Arc<Mutex<Vec<Invocation>>>>;

#[derive(Clone)]
struct AppState {
    config: Arc<AdapterConfig>,
    http: reqwest::Client,
    invocations: InvocationLog,
}

/// The adapter's routes; every invocation is logged, and recorded when `invocations` is given.
pub fn router(config: AdapterConfig, invocations: InvocationLog) -> Result<Router> {
    let http = reqwest::Client::builder()
        // moto and the emulator are plain HTTP on loopback; never follow redirects for a client.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the adapter's HTTP client: {e}")))?;
    let state = AppState {
        config: Arc::new(config),
        http,
        invocations,
    };
    Ok(Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .fallback(proxy)
        .with_state(state))
}

/// Serves the adapter on `listener` until the future is dropped.
pub async fn serve(
    listener: TcpListener,
    config: AdapterConfig,
    invocations: InvocationLog,
) -> std::io::Result<()> {
    let app = router(config, invocations).map_err(std::io::Error::other)?;
    axum::serve(listener, app).await
}

/// The adapter running on a thread of its own (with its own runtime), so that it outlives any one
/// test's runtime and keeps serving while a test blocks. Dropping it stops it.
pub struct AdapterThread {
    addr: SocketAddr,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdapterThread {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub fn start(config: AdapterConfig) -> Result<AdapterThread> {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(Error::io("127.0.0.1:0"))?;
        let addr = listener.local_addr().map_err(Error::io("127.0.0.1:0"))?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("adapter listener"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("adapter runtime"))?;
        let invocations = Arc::new(Mutex::new(Vec::new()));
        let app = router(config, Some(invocations.clone()))?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lambda-invoke-adapter".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("lambda-invoke-adapter: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        served = axum::serve(listener, app) => {
                            if let Err(e) = served {
                                tracing::error!("lambda-invoke-adapter stopped: {e}");
                            }
                        }
                        _ = stop => {}
                    }
                });
                // In-flight invocations are abandoned: their callers are being stopped too.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(Error::io("adapter thread"))?;
        Ok(AdapterThread {
            addr,
            invocations,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every invocation forwarded so far, in completion order.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

impl Drop for AdapterThread {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl AppState {
    fn record(&self, invocation: Invocation) {
        if let Some(Ok(mut list)) = self.invocations.as_ref().map(|l| l.lock()) {
            list.push(invocation);
        }
    }
}

#[derive(Debug, Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// The function name inside a name, a partial ARN (`123456789012:function:name`) or a full ARN
/// (`arn:aws:lambda:region:account:function:name`), each optionally followed by `:qualifier`.
pub fn function_name(name_or_arn: &str) -> (&str, Option<&str>) {
    let rest = match name_or_arn.find(":function:") {
        Some(at) => &name_or_arn[at + ":function:".len()..],
        None => name_or_arn,
    };
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

async fn invoke(
    State(state): State<AppState>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (name, arn_qualifier) = function_name(&function);
    let name = name.to_string();
    // The emulator serves the working tree's build only: that build stands for every version and
    // alias, so a qualifier is accepted and reported back as the version that ran.
    let qualifier = query.qualifier.as_deref().or(arn_qualifier);
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    tracing::debug!(function = %name, ?qualifier, %invocation_type, "invoke");
    match invocation_type.as_str() {
        "RequestResponse" => {
            let (response, record) = forward_invocation(&state, &name, &headers, body).await;
            state.record(record);
            response
        }
        // Real Lambda queues the event and answers 202 at once.
        "Event" => {
            let task_state = state.clone();
            tokio::spawn(async move {
                let (_, record) = forward_invocation(&task_state, &name, &headers, body).await;
                task_state.record(record);
            });
            StatusCode::ACCEPTED.into_response()
        }
        // Real Lambda only checks that the call would be allowed.
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("X-Amz-Invocation-Type {other:?} is not RequestResponse, Event or DryRun"),
        ),
    }
}

/// Sends one invocation to the emulator and turns its answer into a real Lambda answer.
async fn forward_invocation(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> (Response, Invocation) {
    let started = Instant::now();
    let payload = String::from_utf8_lossy(&body).into_owned();
    let url = format!(
        "{}/2015-03-31/functions/{name}/invocations",
        state.config.lambda_endpoint.trim_end_matches('/')
    );
    let mut request = state
        .http
        .post(url)
        .timeout(INVOKE_TIMEOUT)
        .header("content-type", "application/json")
        .body(body);
    if let Some(context) = headers.get("x-amz-client-context") {
        request = request.header("x-amz-client-context", context.clone());
    }
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status();
            match response.bytes().await {
                Ok(bytes) => Ok((status, bytes)),
                Err(e) => Err(format!("reading the emulator's answer: {e}")),
            }
        }
        Err(e) => Err(format!("cannot reach cargo lambda watch: {e}")),
    };
    let (response, function_error, text) = match outcome {
        Ok((status, bytes)) if status.is_success() => (
            lambda_ok(bytes.clone(), None),
            None,
            String::from_utf8_lossy(&bytes).into_owned(),
        ),
        // The emulator's function error: a JSON error document with `errorType`.
        Ok((status, bytes))
            if status == StatusCode::INTERNAL_SERVER_ERROR && is_error_document(&bytes) =>
        {
            (
                lambda_ok(bytes.clone(), Some("Unhandled")),
                Some("Unhandled".to_string()),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        }
        Ok((status, bytes)) => {
            let message = format!(
                "cargo lambda watch answered HTTP {status} for {name}: {}",
                String::from_utf8_lossy(&bytes)
            );
            let status = if status == StatusCode::NOT_FOUND {
                status
            } else {
                StatusCode::BAD_GATEWAY
            };
            let error_type = if status == StatusCode::NOT_FOUND {
                "ResourceNotFoundException"
            } else {
                "ServiceException"
            };
            (
                lambda_error(status, error_type, &message),
                Some("Adapter".to_string()),
                message,
            )
        }
        // Like a Lambda service fault: moto's interpreter names it `Lambda.ServiceException`,
        // which the state machine retries.
        Err(message) => (
            lambda_error(StatusCode::BAD_GATEWAY, "ServiceException", &message),
            Some("Adapter".to_string()),
            message,
        ),
    };
    let record = Invocation {
        function: name.to_string(),
        payload,
        function_error,
        response: text,
        duration: started.elapsed(),
    };
    tracing::info!(
        function = %record.function,
        error = record.function_error.as_deref().unwrap_or("-"),
        ms = record.duration.as_millis() as u64,
        "invoked"
    );
    (response, record)
}

fn is_error_document(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("errorType").is_some_and(|t| t.is_string()))
}

fn lambda_ok(body: Bytes, function_error: Option<&'static str>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if let Some(kind) = function_error {
        headers.insert("x-amz-function-error", HeaderValue::from_static(kind));
    }
    response
}

/// A Lambda API error the way AWS SDKs parse it (`x-amzn-ErrorType` and a JSON message).
fn lambda_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let body = serde_json::json!({ "Type": "Service", "message": message }).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the length, which the
/// HTTP stacks on either side compute themselves.
fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// Everything that is not a Lambda invocation: forwarded to moto as is (the Host header too, so
/// that moto sees the address its clients used).
async fn proxy(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")).into_response()
        }
    };
    let url = moto_url(&state.config.moto_endpoint, &parts.uri);
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut request = state.http.request(method, url).timeout(PROXY_TIMEOUT);
    for (name, value) in parts.headers.iter() {
        if !is_hop_header(name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        request = request.body(body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("cannot reach moto: {e}")).into_response()
        }
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            if !is_hop_header(&name) {
                headers.append(name, value);
            }
        }
    }
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("reading moto's answer: {e}"),
            )
                .into_response()
        }
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn moto_url(endpoint: &str, uri: &Uri) -> String {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{}{path_and_query}", endpoint.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_out_of_names_and_arns() {
        assert_eq!(function_name("fetch-batch"), ("fetch-batch", None));
        assert_eq!(
            function_name("fetch-batch:live"),
            ("fetch-batch", Some("live"))
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:fetch-batch"),
            ("fetch-batch", None)
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:fetch-batch:$LATEST"),
            ("fetch-batch", Some("$LATEST"))
        );
        assert_eq!(
            function_name("123456789012:function:finalize-run"),
            ("finalize-run", None)
        );
        assert_eq!(
            function_name("my-function:blue"),
            ("my-function", Some("blue"))
        );
    }
}
