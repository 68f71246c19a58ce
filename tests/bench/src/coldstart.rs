//! The release fetch-batch binary as Lambda runs it: cold start and peak RSS of one invocation.
//!
//! A tiny Lambda Runtime API on loopback (`AWS_LAMBDA_RUNTIME_API`) records when the process
//! first polls `GET /2018-06-01/runtime/invocation/next`: cold start = spawn to that poll (what
//! Lambda's init phase covers for a custom runtime). For the RSS, that first poll is answered
//! with a real fetch-batch event; when the function posts its response and polls again, the
//! invocation is over: the process's `VmHWM` is read from `/proc/<pid>/status` before it is
//! stopped (its next poll is never answered).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use test_support::process::GroupChild;
use tokio::sync::mpsc;

/// What the fake Runtime API saw.
#[derive(Debug)]
enum Seen {
    Poll(Instant),
    Response(String),
}

struct Api {
    /// Events to hand out, one per poll; when empty a poll is never answered.
    events: Mutex<Vec<serde_json::Value>>,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    let _ = api.seen.send(Seen::Poll(Instant::now()));
    let event = api.events.lock().expect("events lock").pop();
    let Some(event) = event else {
        // The bench reads the process's memory and stops it: this poll stays unanswered.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(900);
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", "bench-request-1".into());
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:fetch-batch".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, event.to_string()).into_response()
}

async fn response(
    State(api): State<Arc<Api>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let _ = api.seen.send(Seen::Response(body));
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Arc<Api>>, body: String) -> StatusCode {
    let _ = api.seen.send(Seen::Response(format!("error: {body}")));
    StatusCode::ACCEPTED
}

/// One start of the binary.
pub struct Start {
    pub cold_start: Duration,
    /// With an event: the response body and the peak RSS (KiB) after the invocation.
    pub invocation: Option<(String, u64)>,
}

/// Starts `bin` with `env` against a fresh Runtime API; hands it `event` if given.
pub async fn start(
    bin: &Path,
    env: &HashMap<&'static str, String>,
    event: Option<serde_json::Value>,
) -> anyhow::Result<Start> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let has_event = event.is_some();
    let api = Arc::new(Api {
        events: Mutex::new(event.into_iter().collect()),
        seen: tx,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut command = Command::new(bin);
    command
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "fetch-batch")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/fetch-batch")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned = Instant::now();
    let mut child =
        GroupChild::spawn(&mut command).with_context(|| format!("starting {}", bin.display()))?;
    let outcome = async {
        let first = match next_seen(&mut rx).await? {
            Seen::Poll(at) => at,
            Seen::Response(body) => bail!("fetch-batch answered before its first poll: {body}"),
        };
        let cold_start = first.duration_since(spawned);
        if !has_event {
            return Ok(Start {
                cold_start,
                invocation: None,
            });
        }
        let body = match next_seen(&mut rx).await? {
            Seen::Response(body) => body,
            Seen::Poll(_) => bail!("fetch-batch polled again without answering the event"),
        };
        // The next poll: the invocation is over, nothing else runs in the process.
        match next_seen(&mut rx).await? {
            Seen::Poll(_) => {}
            Seen::Response(other) => bail!("a second answer to one event: {other}"),
        }
        let peak = peak_rss_kib(child.id())?;
        Ok(Start {
            cold_start,
            invocation: Some((body, peak)),
        })
    }
    .await;
    let _ = child.stop(Duration::from_secs(2));
    server.abort();
    outcome
}

/// What the Runtime API sees next (an invocation of a batch takes seconds; two minutes is
/// generous).
async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> anyhow::Result<Seen> {
    let timeout = Duration::from_secs(120);
    tokio::time::timeout(timeout, rx.recv())
        .await
        .map_err(|_| anyhow!("fetch-batch said nothing to the Runtime API for {timeout:?}"))?
        .ok_or_else(|| anyhow!("the Runtime API stopped"))
}

/// `VmHWM` of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    crate::rss::status_kib(&status, "VmHWM").ok_or_else(|| anyhow!("no VmHWM for {pid}"))
}
