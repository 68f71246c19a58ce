//! market-sim: a local stand-in for the Yahoo chart v8 and Polygon aggregates v2 APIs.
//!
//! It speaks their real wire formats over deterministic synthetic bars (see [`generator`]), Yahoo
//! on each symbol's own exchange (see [`exchange`]), and has knobs for rate limits, latency, 5xx,
//! malformed bodies, unknown symbols, null elements, the clock, Yahoo's live and session-close
//! bars, coarse granularity and price scales (see [`Knobs`]). Tests start it in-process with [`spawn`]; scripts run the `market-sim` binary.
//!
//! Routes:
//! - `GET /v8/finance/chart/{symbol}` — Yahoo
//! - `GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}` — Polygon
//! - `GET /v2/aggs/grouped/locale/us/market/stocks/{date}` — Polygon's grouped daily bars (one
//!   day of every US stock in [`grouped_universe`]; logged under route `polygon`, symbol `grouped`)
//! - `GET /__admin/health` — `ok`
//! - `GET /__admin/knobs`, `POST /__admin/knobs` (partial JSON object, merged) — the knobs
//! - `POST /__admin/reset` — start-up knobs back, counters cleared
//! - `GET /__admin/requests` — [`RequestsReport`]
//! - `GET /__admin/ground-truth?provider=&symbol=&interval=&start=&end=` — [`GroundTruth`]

pub mod exchange;
pub mod generator;
pub mod knobs;
mod polygon;
mod state;
mod yahoo;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use exchange::Exchange;
pub use generator::{Granularity, Interval, Provider};
pub use knobs::{FailKind, Knobs, LiveBar, RateLimit, RetryAfter, Scale, WindowKind};
pub use polygon::{
    grouped_universe, GROUPED_PATH_PREFIX, GROUPED_SYNTHETIC, GROUPED_UNIVERSE,
    PUBLIC_BASE_URL as POLYGON_PUBLIC_BASE_URL,
};
pub use state::{PathCount, RequestsReport, RouteCount};
pub use yahoo::HOURLY_HISTORY_DAYS;

use state::{Route, SimState};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Defaults to `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// Knobs at start-up, and what `POST /__admin/reset` returns to.
    pub knobs: Knobs,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            knobs: Knobs::default(),
        }
    }
}

impl SimConfig {
    pub fn with_knobs(knobs: Knobs) -> Self {
        Self {
            knobs,
            ..Self::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One bar as a correct client should store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthBar {
    /// The bar's period start on the grid every provider agrees on, UTC: an intraday bar's start;
    /// for a daily bar, 00:00 of its trading day in the exchange's time zone (Yahoo stamps daily
    /// bars at the session open, Polygon at New York midnight).
    pub ts: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: i64,
}

/// The bars of a symbol over inclusive days, and how many a correct client skips (the bars the
/// null-elements knob gives a null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub bars: Vec<GroundTruthBar>,
    pub skipped: u32,
}

/// Ground truth under `knobs`: what a correct client stores for the days `start..=end`.
///
/// - `1h`: the bars with a start in `[start 00:00Z, end+1 00:00Z)`, the window the adapters
///   request.
/// - `1d`: the trading days whose exchange-local date is in `[start, end]`, keyed at local
///   midnight.
///
/// Values are final (as if the clock were past every close: the `clock` knob is ignored) and
/// scaled by `price_scale`. Never a live bar, a session-close row or a quarterly bar: a symbol in
/// `coarse_symbols` has no Yahoo ground truth. Unknown symbols have none; any spelling of a
/// security works (`BRK.B`, `BRK-B`; `GS2C.DE`).
pub fn ground_truth_with(
    knobs: &Knobs,
    provider: Provider,
    symbol: &str,
    interval: Interval,
    start: NaiveDate,
    end: NaiveDate,
) -> GroundTruth {
    let none = GroundTruth {
        bars: Vec::new(),
        skipped: 0,
    };
    if knobs.is_unknown(symbol) || (provider == Provider::Yahoo && knobs.is_coarse(symbol)) {
        return none;
    }
    let scale = knobs.scale(symbol);
    // Yahoo trades a symbol on its own exchange; Polygon is US-only.
    let exchange = match provider {
        Provider::Yahoo => exchange::exchange_of(symbol),
        Provider::Polygon => &exchange::US,
    };
    let (from, to) = match interval {
        Interval::Hour => generator::utc_days(start, end),
        Interval::Day => {
            let next = end.succ_opt().unwrap_or(end);
            match (exchange.midnight(start), exchange.midnight(next)) {
                (Some(from), Some(to)) => (from, to),
                _ => return none,
            }
        }
    };
    let bars = match provider {
        Provider::Yahoo => generator::yahoo_bars(symbol, interval.into(), from, to, scale, None),
        Provider::Polygon => generator::polygon_bars(symbol, interval, from, to, scale),
    };
    let mut skipped = 0;
    let bars = bars
        .into_iter()
        .filter(|b| {
            // Only Yahoo sends nulls.
            let nulled =
                provider == Provider::Yahoo && knobs.null_element(symbol, b.ordinal).is_some();
            skipped += u32::from(nulled);
            !nulled
        })
        .filter_map(|b| {
            let ts = match interval {
                Interval::Hour => b.ts,
                Interval::Day => exchange.midnight(exchange.local_date(b.ts))?,
            };
            Some(GroundTruthBar {
                ts,
                open: b.open,
                high: b.high,
                low: b.low,
                close: b.close,
                volume: b.volume,
            })
        })
        .collect();
    GroundTruth { bars, skipped }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Binds `config.addr` and serves on the current Tokio runtime.
pub async fn spawn(config: SimConfig) -> Result<RunningSim, SimError> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.addr,
        source,
    })?;
    let state = Arc::new(SimState::new(config.knobs));
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            // A dropped sender also means "stop".
            let _ = rx.await;
        });
        // Accept errors are retried inside axum; nothing useful to do with a final error in a
        // background test server.
        let _ = serve.await;
    });
    Ok(RunningSim {
        addr,
        state,
        shutdown: Some(tx),
        task: Some(task),
    })
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn knobs(&self) -> Knobs {
        self.state.knobs()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.state.set_knobs(knobs);
    }

    /// Changes some knobs: `sim.update_knobs(|k| k.latency_ms = 50)`.
    pub fn update_knobs(&self, change: impl FnOnce(&mut Knobs)) {
        let mut knobs = self.state.knobs();
        change(&mut knobs);
        self.state.set_knobs(knobs);
    }

    /// Start-up knobs back, counters cleared.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Requests whose path starts with `path_prefix` (e.g. `/v8/finance/chart/AAPL`), answered
    /// with `status` if given.
    pub fn request_count(&self, path_prefix: &str, status: Option<u16>) -> u64 {
        self.state.request_count(path_prefix, status)
    }

    /// Grouped daily requests (`/v2/aggs/grouped/…`) answered with `status` if given: a grouped
    /// run's calls (its minimum is the weekdays of its window).
    pub fn grouped_requests(&self, status: Option<u16>) -> u64 {
        self.state.request_count(GROUPED_PATH_PREFIX, status)
    }

    pub fn requests(&self) -> RequestsReport {
        self.state.report()
    }

    pub fn last_user_agent(&self, provider: Provider) -> Option<String> {
        self.state.last_user_agent(provider)
    }

    /// The bars a correct client stores for the days `start..=end` (see [`ground_truth_with`]).
    pub fn ground_truth(
        &self,
        provider: Provider,
        symbol: &str,
        interval: Interval,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Vec<GroundTruthBar> {
        self.ground_truth_with_skipped(provider, symbol, interval, start, end)
            .bars
    }

    /// [`Self::ground_truth`] plus the number of bars a correct client skips.
    pub fn ground_truth_with_skipped(
        &self,
        provider: Provider,
        symbol: &str,
        interval: Interval,
        start: NaiveDate,
        end: NaiveDate,
    ) -> GroundTruth {
        ground_truth_with(&self.state.knobs(), provider, symbol, interval, start, end)
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v8/finance/chart/{symbol}", get(yahoo::chart))
        .route(
            "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}",
            get(polygon::aggregates),
        )
        .route(
            "/v2/aggs/grouped/locale/us/market/stocks/{date}",
            get(polygon::grouped),
        )
        .route("/__admin/health", get(|| async { "ok" }))
        .route("/__admin/knobs", get(get_knobs).post(post_knobs))
        .route("/__admin/reset", post(post_reset))
        .route("/__admin/requests", get(get_requests))
        .route("/__admin/ground-truth", get(get_ground_truth))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Adds the configured latency to provider requests and records every non-admin request.
async fn observe(State(state): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/__admin/") {
        return next.run(request).await;
    }
    let route = Route::of(&path);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if matches!(route, Route::Provider { .. }) {
        let latency = state.knobs().latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
    }
    let response = next.run(request).await;
    state.record(route, &path, response.status().as_u16(), user_agent);
    response
}

pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A 200 whose JSON stops half-way, as a flaky proxy or a cut connection would leave it.
pub(crate) fn truncated(body: &serde_json::Value) -> Response {
    let text = body.to_string();
    let cut: String = text.chars().take(text.chars().count() / 2).collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        cut,
    )
        .into_response()
}

async fn get_knobs(State(state): State<Arc<SimState>>) -> Json<Knobs> {
    Json(state.knobs())
}

async fn post_knobs(
    State(state): State<Arc<SimState>>,
    Json(patch): Json<serde_json::Value>,
) -> Response {
    match state.knobs().merged(&patch) {
        Ok(knobs) => {
            state.set_knobs(knobs.clone());
            Json(knobs).into_response()
        }
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn post_reset(State(state): State<Arc<SimState>>) -> Json<Knobs> {
    state.reset();
    Json(state.knobs())
}

async fn get_requests(State(state): State<Arc<SimState>>) -> Json<RequestsReport> {
    Json(state.report())
}

#[derive(Debug, Serialize)]
struct GroundTruthAnswer {
    provider: Provider,
    symbol: String,
    interval: Interval,
    start: NaiveDate,
    end: NaiveDate,
    #[serde(flatten)]
    truth: GroundTruth,
}

async fn get_ground_truth(
    State(state): State<Arc<SimState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let parsed = (|| -> Result<GroundTruthAnswer, String> {
        let get = |k: &str| {
            params
                .get(k)
                .map(String::as_str)
                .ok_or_else(|| format!("missing query parameter {k}"))
        };
        let day = |k: &str| -> Result<NaiveDate, String> {
            let raw = get(k)?;
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map_err(|_| format!("{k} {raw:?} is not YYYY-MM-DD"))
        };
        let provider: Provider = get("provider")?.parse()?;
        let interval: Interval = params
            .get("interval")
            .map_or(Ok(Interval::Hour), |s| s.parse())?;
        let symbol = get("symbol")?.to_string();
        let (start, end) = (day("start")?, day("end")?);
        let truth = ground_truth_with(&state.knobs(), provider, &symbol, interval, start, end);
        Ok(GroundTruthAnswer {
            provider,
            symbol,
            interval,
            start,
            end,
            truth,
        })
    })();
    match parsed {
        Ok(answer) => Json(answer).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}
