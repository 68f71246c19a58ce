//! The Lambda Invoke adapter: the one endpoint that moto's Step Functions interpreter and AWS SDK
//! clients talk to.
//!
//! - `POST /2015-03-31/functions/{name or ARN}/invocations` runs the function on the
//!   [`FunctionHost`] (the function binaries as Lambda runs them) and answers as Lambda's Invoke
//!   API does: `200` with the response; `200` + `X-Amz-Function-Error: Unhandled` with the error
//!   document for a function error, a process that died (`Runtime.ExitError`) or ran out of time
//!   (`Sandbox.Timedout`); `404 ResourceNotFoundException` for an unknown function; `429
//!   TooManyRequestsException` when every instance stayed busy; `Event` → 202, `DryRun` → 204.
//!   moto's interpreter then sees the function's `errorType` (or `Lambda.<exception>`), as Retry and
//!   Catch expect.
//! - `/runtime/{function}/{instance}/2018-06-01/runtime/…`: the Lambda Runtime API the function
//!   instances poll (see [`crate::runtime`]).
//! - `GET /local-stack/instances`: every function instance, its pid and what it runs (tests find
//!   the process to `kill -9` here).
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
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::runtime::{
    FunctionHost, HostConfig, Outcome, RuntimeApiError, INSTANCES_PATH, RUNTIME_PREFIX,
};

/// Request bodies above this are refused (Lambda's own limit for a synchronous payload is 6 MB;
/// Step Functions requests are far smaller).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const PROXY_TIMEOUT: Duration = Duration::from_secs(300);

/// What the adapter runs and where it proxies the rest.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// moto's address, e.g. `http://127.0.0.1:5000`.
    pub moto_endpoint: String,
    /// The functions, run by the adapter's [`FunctionHost`].
    pub host: HostConfig,
}

/// One Lambda invocation the adapter answered, for tests (e.g. "fetch-batch was never called").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub function: String,
    /// The request id the function saw.
    pub request_id: String,
    /// The request payload as sent.
    pub payload: String,
    /// `None` on success, `Some("Unhandled")` for a function error (the function's own, a dead
    /// process's `Runtime.ExitError`, a timeout's `Sandbox.Timedout`), `Some("Adapter")` when the
    /// function could not be run (unknown, throttled, the host stopping).
    pub function_error: Option<String>,
    /// The response body as returned to the caller.
    pub response: String,
    pub duration: Duration,
}

/// Where the adapter records the invocations it forwarded (tests read it; a process only logs).
pub type InvocationLog = Option<Arc<Mutex<Vec<Invocation>>>>;

#[derive(Clone)]
struct AppState {
    moto_endpoint: Arc<str>,
    host: FunctionHost,
    http: reqwest::Client,
    invocations: InvocationLog,
}

/// The adapter's routes for `host` (whose Runtime API base must be this router's address);
/// every invocation is logged, and recorded when `invocations` is given.
pub fn router(
    moto_endpoint: &str,
    host: FunctionHost,
    invocations: InvocationLog,
) -> Result<Router> {
    let http = reqwest::Client::builder()
        // moto is plain HTTP on loopback; never follow redirects for a client.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the adapter's HTTP client: {e}")))?;
    let state = AppState {
        moto_endpoint: Arc::from(moto_endpoint),
        host,
        http,
        invocations,
    };
    let runtime = format!("{RUNTIME_PREFIX}/{{function}}/{{instance}}/2018-06-01/runtime");
    Ok(Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .route(&format!("{runtime}/invocation/next"), get(runtime_next))
        .route(
            &format!("{runtime}/invocation/{{request_id}}/response"),
            post(runtime_response),
        )
        .route(
            &format!("{runtime}/invocation/{{request_id}}/error"),
            post(runtime_error),
        )
        .route(&format!("{runtime}/init/error"), post(runtime_init_error))
        .route(INSTANCES_PATH, get(instances))
        .fallback(proxy)
        .with_state(state))
}

/// Serves the adapter on `listener` until the future is dropped, running `config`'s functions;
/// the host's instances are stopped when it returns.
pub async fn serve(
    listener: TcpListener,
    config: AdapterConfig,
    invocations: InvocationLog,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let host = FunctionHost::new(config.host)?;
    host.set_runtime_api_base(&format!("http://{addr}"));
    let app =
        router(&config.moto_endpoint, host.clone(), invocations).map_err(std::io::Error::other)?;
    let served = axum::serve(listener, app).await;
    host.stop();
    served
}

/// The adapter running on a thread of its own (with its own runtime), so that it outlives any one
/// test's runtime and keeps serving while a test blocks. Dropping it stops it and every function
/// instance.
pub struct AdapterThread {
    addr: SocketAddr,
    host: FunctionHost,
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
        let host = FunctionHost::new(config.host).map_err(Error::io("the functions' log"))?;
        host.set_runtime_api_base(&format!("http://{addr}"));
        let app = router(
            &config.moto_endpoint,
            host.clone(),
            Some(invocations.clone()),
        )?;
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
            host,
            invocations,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The function host (instances, and what each runs).
    pub fn host(&self) -> &FunctionHost {
        &self.host
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
        self.host.stop();
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
    // The host runs the working tree's build only: that build stands for every version and
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
            let (response, record) = run_invocation(&state, &name, body).await;
            state.record(record);
            response
        }
        // Real Lambda queues the event and answers 202 at once.
        "Event" => {
            let task_state = state.clone();
            tokio::spawn(async move {
                let (_, record) = run_invocation(&task_state, &name, body).await;
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

/// Runs one invocation on the host and answers it as Lambda's Invoke API does.
async fn run_invocation(state: &AppState, name: &str, body: Bytes) -> (Response, Invocation) {
    let started = Instant::now();
    let payload = String::from_utf8_lossy(&body).into_owned();
    let (request_id, outcome) = state.host.invoke(name, body).await;
    let (response, function_error, text) = match outcome {
        Outcome::Response(bytes) => (
            lambda_ok(bytes.clone(), None),
            None,
            String::from_utf8_lossy(&bytes).into_owned(),
        ),
        Outcome::FunctionError(bytes) => (
            lambda_ok(bytes.clone(), Some("Unhandled")),
            Some("Unhandled".to_string()),
            String::from_utf8_lossy(&bytes).into_owned(),
        ),
        Outcome::NotFound(message) => (
            lambda_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &message),
            Some("Adapter".to_string()),
            message,
        ),
        // moto's interpreter names it `Lambda.TooManyRequestsException`, which the state machine
        // retries.
        Outcome::Throttled(message) => (
            lambda_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                &message,
            ),
            Some("Adapter".to_string()),
            message,
        ),
        // Like a Lambda service fault: `Lambda.ServiceException`, which the state machine retries.
        Outcome::Unavailable(message) => (
            lambda_error(StatusCode::BAD_GATEWAY, "ServiceException", &message),
            Some("Adapter".to_string()),
            message,
        ),
    };
    let record = Invocation {
        function: name.to_string(),
        request_id,
        payload,
        function_error,
        response: text,
        duration: started.elapsed(),
    };
    tracing::info!(
        function = %record.function,
        request_id = %record.request_id,
        error = record.function_error.as_deref().unwrap_or("-"),
        ms = record.duration.as_millis() as u64,
        "invoked"
    );
    (response, record)
}

/// `GET /local-stack/instances`.
async fn instances(State(state): State<AppState>) -> Response {
    Json(state.host.instances()).into_response()
}

fn runtime_api_error(error: RuntimeApiError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({ "errorType": "InvalidRequest", "errorMessage": error.message });
    (status, Json(body)).into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "status": "OK" })),
    )
        .into_response()
}

/// `GET …/2018-06-01/runtime/invocation/next`: the instance's next invocation, with the headers
/// the Lambda Runtime API sends (`lambda_runtime` requires the request id, the deadline and the
/// function ARN).
async fn runtime_next(
    State(state): State<AppState>,
    Path((function, instance)): Path<(String, u64)>,
) -> Response {
    match state.host.next(&function, instance).await {
        Ok(next) => {
            let mut response = (StatusCode::OK, next.payload).into_response();
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let mut set = |name: &'static str, value: &str| {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            };
            set("lambda-runtime-aws-request-id", &next.request_id);
            // A constant deadline in the past, like cargo lambda watch: the functions fall back
            // to their configured budget.
            set("lambda-runtime-deadline-ms", "0");
            set("lambda-runtime-invoked-function-arn", &next.function_arn);
            set(
                "lambda-runtime-trace-id",
                &format!(
                    "Root=1-00000000-{};Sampled=0",
                    &next.request_id.replace('-', "")[..24]
                ),
            );
            response
        }
        Err(e) => runtime_api_error(e),
    }
}

/// `POST …/invocation/{request_id}/response`.
async fn runtime_response(
    State(state): State<AppState>,
    Path((function, instance, request_id)): Path<(String, u64, String)>,
    body: Bytes,
) -> Response {
    match state.host.respond(&function, instance, &request_id, body) {
        Ok(()) => accepted(),
        Err(e) => runtime_api_error(e),
    }
}

/// `POST …/invocation/{request_id}/error`.
async fn runtime_error(
    State(state): State<AppState>,
    Path((function, instance, request_id)): Path<(String, u64, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok());
    match state
        .host
        .fail(&function, instance, &request_id, body, error_type)
    {
        Ok(()) => accepted(),
        Err(e) => runtime_api_error(e),
    }
}

/// `POST …/init/error`.
async fn runtime_init_error(
    State(state): State<AppState>,
    Path((function, instance)): Path<(String, u64)>,
    body: Bytes,
) -> Response {
    match state.host.init_error(&function, instance, body) {
        Ok(()) => accepted(),
        Err(e) => runtime_api_error(e),
    }
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
    let url = moto_url(&state.moto_endpoint, &parts.uri);
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
