//! Throughput at a provider-wide rate limit: the Step Functions run emulated in-process.
//!
//! One run = select-tickers once, then `max_concurrency` workers, each with its OWN [`App`] (its
//! own pool, HTTP client and pacer, as separate Lambda execution environments have), each taking
//! the next unstarted batch and calling fetch-batch until the batch is `done` — sleeping
//! `retry_after_seconds` on `rate_limited` / `unavailable` (the Wait states), calling again at
//! once on `partial`, giving the batch up after `max_rate_limit_rounds` rate-limit rounds (the
//! RateLimitRoundsExhausted state) — then finalize-run with the batches' outcomes. The ASL runs
//! batches in fixed lanes (`States.ArrayPartition`); taking the next unstarted batch is the same
//! when, as here, there are at least as many batches as workers and they are of equal size.
//!
//! market-sim (a separate process) enforces the limit and counts accepted requests and 429s.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use chrono::NaiveDate;
use serde_json::json;
use shared::config::Config;
use shared::contract::{
    BatchStatus, FetchBatchInput, FinalizeRunInput, SelectTickersInput, SelectTickersOutput,
};
use shared::handler::App;
use shared::model::{RunId, Symbol};
use test_support::TestDb;

use crate::sim::{self, MarketSim, POLYGON_AGGS};

/// Lambda's maximum timeout: fetch-batch's deadline as the runtime would pass it.
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the ASL's transient-error Retry waits at first (its delays start at 2 s).
const TRANSIENT_RETRY: Duration = Duration::from_secs(2);
/// Errors the ASL's FetchBatch Retry treats as transient.
const TRANSIENT: [&str; 2] = ["DatabaseUnavailable", "ProviderUnavailable"];

/// market-sim's limit for one run.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// `fixed` or `sliding` (market-sim's `rate_limit.kind`).
    pub kind: &'static str,
    pub requests: u32,
    pub window_seconds: u64,
}

impl Limit {
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.window_seconds as f64
    }

    pub fn knobs(&self) -> serde_json::Value {
        json!({"rate_limit": {
            "requests": self.requests,
            "window_seconds": self.window_seconds,
            "kind": self.kind,
        }})
    }
}

/// What one run asks for.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub symbols: Vec<Symbol>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// `None`: the functions' default (50).
    pub batch_size: Option<i64>,
    pub max_concurrency: usize,
    /// `PROVIDER_REQUESTS_PER_MINUTE` of the functions.
    pub requests_per_minute: u32,
    /// market-sim's limit; `None`: unlimited.
    pub limit: Option<Limit>,
}

impl RunSpec {
    /// select-tickers' input (also the state machine's execution input).
    pub fn input(&self, execution: &str) -> anyhow::Result<SelectTickersInput> {
        let mut input = json!({
            "symbols": self.symbols.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "provider": "polygon",
            "interval": "1h",
            "start_date": self.start.to_string(),
            "end_date": self.end.to_string(),
            "max_concurrency": self.max_concurrency,
            // A fresh database's prices reference `ticker`: register the bench's symbols.
            "register_tickers": true,
            "lease_execution": execution,
        });
        if let Some(size) = self.batch_size {
            input["batch_size"] = json!(size);
        }
        serde_json::from_value(input).context("the bench's run request")
    }

    /// The functions' environment (as the Lambda configuration would set it).
    pub fn vars(&self, db: &TestDb, sim: &MarketSim) -> HashMap<&'static str, String> {
        HashMap::from([
            ("DATABASE_URL", db.url()),
            ("POLYGON_BASE_URL", sim.base_url().to_string()),
            ("POLYGON_API_KEY", sim::POLYGON_API_KEY.to_string()),
            (
                "PROVIDER_REQUESTS_PER_MINUTE",
                self.requests_per_minute.to_string(),
            ),
        ])
    }
}

/// One Lambda invocation as the driver saw it.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    pub function: Function,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Select,
    Fetch,
    Finalize,
}

/// What one emulated run did and how long it took.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub tickers: usize,
    pub batches: usize,
    /// Workers (lanes) that ran: min(max_concurrency, batches).
    pub lanes: usize,
    pub wall: Duration,
    /// market-sim: accepted Polygon aggregates requests (status 200).
    pub calls: u64,
    /// market-sim: the limiter's 429s.
    pub rate_limited_429: u64,
    pub invocations: Vec<Invocation>,
    /// fetch-batch answers by status, and transient errors retried.
    pub partial: u64,
    pub rate_limited: u64,
    /// `rate_limited` answers that are no round: waits for the shared budget's next slot.
    pub budget_waits: u64,
    pub unavailable: u64,
    pub retried_errors: u64,
    pub run_status: String,
}

impl RunResult {
    /// Billed Step Functions state transitions, counted from what the driver did mapped onto
    /// statemachine/backfill.asl.json (as infrastructure/README.md's cost section counts them):
    /// - the parent: PrepareSelection, IsTheInputAnObject, WithLease, SelectTickers, AnyBatches,
    ///   PlanLanes, FetchBatches, CollectBatchResults, FinalizeRun, DidTheRunDoItsJob,
    ///   RunFinished = 11;
    /// - a lane's child execution: its start + FetchLane = 2;
    /// - a batch's child execution: its start + FetchBatch, WhatNext, BatchDone = 4;
    /// - each `partial`: FetchBatch, WhatNext again = 2;
    /// - each `rate_limited` round: CountRateLimitRound, WaitOutRateLimit, FetchBatch, WhatNext = 4;
    /// - each wait for the shared budget: WaitForRequestBudget, FetchBatch, WhatNext = 3;
    /// - each `unavailable`: WaitOutUnavailable, FetchBatch, WhatNext = 3;
    /// - each retried error: one more FetchBatch attempt = 1.
    pub fn transitions(&self) -> u64 {
        11 + 2 * self.lanes as u64
            + 4 * self.batches as u64
            + 2 * self.partial
            + 4 * self.rate_limited
            + 3 * self.budget_waits
            + 3 * self.unavailable
            + self.retried_errors
    }

    pub fn fetch_invocations(&self) -> usize {
        self.invocations
            .iter()
            .filter(|i| i.function == Function::Fetch)
            .count()
    }
}

/// Runs `spec` against a fresh database and market-sim reset to `spec.limit`.
pub async fn run(sim: &MarketSim, spec: &RunSpec, label: &str) -> anyhow::Result<RunResult> {
    let db = TestDb::new().await;
    shared::db::migrate::run(&mut db.client().await)
        .await
        .context("applying the migrations")?;
    sim.reset_with(spec.limit.map_or(json!({}), |l| l.knobs()))
        .await?;
    let vars = spec.vars(&db, sim);
    let config = Config::from_lookup(|k| vars.get(k).cloned())?;
    // Separate Lambda functions, separate execution environments: one App each, one per worker.
    let new_app = || App::new(config.clone(), None).context("building an App");
    let select_app = new_app()?;
    let finalize_app = new_app()?;
    let execution = format!("bench-{label}");
    let input = spec.input(&execution)?;
    let log = Arc::new(Mutex::new(Log::default()));

    let started = Instant::now();
    let t = Instant::now();
    let selected: SelectTickersOutput = select_app
        .select(input)
        .await
        .with_context(|| format!("{label}: select-tickers"))?;
    log.lock()
        .expect("log lock")
        .invoked(Function::Select, t.elapsed());
    let batches: VecDeque<i32> = selected.batches.iter().map(|b| b.batch).collect();
    let batch_count = batches.len();
    let lanes = spec.max_concurrency.min(batch_count).max(1);
    let queue = Arc::new(Mutex::new(batches));
    let mut workers = Vec::new();
    for _ in 0..lanes {
        let app = new_app()?;
        let (queue, log) = (queue.clone(), log.clone());
        let run_id = selected.run_id.clone();
        let execution = execution.clone();
        let rounds = selected.max_rate_limit_rounds;
        workers.push(tokio::spawn(async move {
            worker(app, run_id, execution, rounds, queue, log).await
        }));
    }
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.context("a worker panicked")??);
    }
    let t = Instant::now();
    let finalized = finalize_app
        .finalize(FinalizeRunInput {
            run_id: selected.run_id.clone(),
            lease_execution: Some(execution),
            batch_results: Some(serde_json::to_value(&outcomes)?),
        })
        .await
        .with_context(|| format!("{label}: finalize-run"))?;
    let wall = started.elapsed();
    let mut log = log.lock().expect("log lock").clone();
    log.invoked(Function::Finalize, t.elapsed());

    let requests = sim.requests().await?;
    let run_status = serde_json::to_value(&finalized)?
        .get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("?")
        .to_string();
    Ok(RunResult {
        tickers: spec.symbols.len(),
        batches: batch_count,
        lanes,
        wall,
        calls: requests.accepted(POLYGON_AGGS),
        rate_limited_429: requests.rate_limited("polygon"),
        invocations: log.invocations,
        partial: log.partial,
        rate_limited: log.rate_limited,
        budget_waits: log.budget_waits,
        unavailable: log.unavailable,
        retried_errors: log.retried_errors,
        run_status,
    })
}

#[derive(Debug, Default, Clone)]
struct Log {
    invocations: Vec<Invocation>,
    partial: u64,
    rate_limited: u64,
    budget_waits: u64,
    unavailable: u64,
    retried_errors: u64,
}

impl Log {
    fn invoked(&mut self, function: Function, duration: Duration) {
        self.invocations.push(Invocation { function, duration });
    }
}

/// One lane: takes the next unstarted batch until none is left; returns the batches' outcomes
/// as the Map reports them to finalize-run.
async fn worker(
    app: App,
    run_id: RunId,
    execution: String,
    max_rounds: i64,
    queue: Arc<Mutex<VecDeque<i32>>>,
    log: Arc<Mutex<Log>>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut outcomes = Vec::new();
    loop {
        let Some(batch) = queue.lock().expect("queue lock").pop_front() else {
            return Ok(outcomes);
        };
        let mut rounds = 0;
        let outcome = loop {
            let input = FetchBatchInput {
                run_id: run_id.clone(),
                batch,
                lease_execution: Some(execution.clone()),
            };
            let t = Instant::now();
            let result = app.fetch(input, deadline(&app)).await;
            // What the state machine does next; the log's lock is never held across an await.
            let next = {
                let mut l = log.lock().expect("log lock");
                l.invoked(Function::Fetch, t.elapsed());
                match result {
                    Err(e) if TRANSIENT.contains(&e.name()) => {
                        l.retried_errors += 1;
                        Next::Wait(TRANSIENT_RETRY)
                    }
                    Err(e) => bail!("batch {batch}: fetch-batch failed: {} {e}", e.name()),
                    Ok(out) => {
                        let wait = Duration::from_secs(out.retry_after_seconds.unwrap_or(1));
                        match out.status {
                            BatchStatus::Done => Next::End("done"),
                            BatchStatus::Partial => {
                                l.partial += 1;
                                Next::Again
                            }
                            // WhatNext: a wait for the shared budget is no round.
                            BatchStatus::RateLimited if !out.rate_limit_round => {
                                l.budget_waits += 1;
                                Next::Wait(wait)
                            }
                            BatchStatus::RateLimited if rounds >= max_rounds => {
                                Next::End("rate_limit_rounds_exhausted")
                            }
                            BatchStatus::RateLimited => {
                                rounds += 1;
                                l.rate_limited += 1;
                                Next::Wait(wait)
                            }
                            BatchStatus::Unavailable => {
                                l.unavailable += 1;
                                Next::Wait(wait)
                            }
                            BatchStatus::Stalled => Next::End("stalled"),
                        }
                    }
                }
            };
            match next {
                Next::End(outcome) => break outcome,
                Next::Again => {}
                Next::Wait(wait) => tokio::time::sleep(wait).await,
            }
        };
        outcomes.push(json!({"batch": batch, "outcome": outcome}));
    }
}

enum Next {
    End(&'static str),
    Again,
    Wait(Duration),
}

/// The stop time fetch-batch computes from a fresh invocation's deadline (Lambda's maximum
/// timeout), as the runtime would hand it over.
fn deadline(app: &App) -> tokio::time::Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    shared::handler::stop_time(now_ms + LAMBDA_TIMEOUT.as_millis() as u64, app.config())
}

/// `n` symbols the simulator serves (any well-formed symbol has deterministic bars).
pub fn symbols(prefix: &str, n: usize) -> anyhow::Result<Vec<Symbol>> {
    (0..n)
        .map(|i| Symbol::parse(&format!("{prefix}{i:03}")).map_err(anyhow::Error::from))
        .collect()
}

/// `backfill plan`'s duration estimate for the same request: the built CLI (`backfill plan
/// --json`, the plan module is not public in the statemachine library), run with the functions'
/// `PROVIDER_REQUESTS_PER_MINUTE`; explicit symbols need no database.
pub fn plan_seconds(backfill: &Path, spec: &RunSpec) -> anyhow::Result<f64> {
    let symbols: Vec<String> = spec.symbols.iter().map(|s| s.to_string()).collect();
    let mut command = std::process::Command::new(backfill);
    command
        .args([
            "plan",
            "--json",
            "--provider",
            "polygon",
            "--interval",
            "1h",
        ])
        .args(["--symbols", &symbols.join(",")])
        .args(["--start-date", &spec.start.to_string()])
        .args(["--end-date", &spec.end.to_string()])
        .args(["--max-concurrency", &spec.max_concurrency.to_string()])
        .env(
            "PROVIDER_REQUESTS_PER_MINUTE",
            spec.requests_per_minute.to_string(),
        )
        .env_remove("DATABASE_URL")
        .env_remove("PRICE_PROVIDER");
    if let Some(size) = spec.batch_size {
        command.args(["--batch-size", &size.to_string()]);
    }
    let out = command
        .output()
        .with_context(|| format!("running {} plan", backfill.display()))?;
    if !out.status.success() {
        bail!(
            "backfill plan exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let plan: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("backfill plan --json: not JSON")?;
    plan["duration"]["seconds"]
        .as_f64()
        .context("backfill plan --json has no duration.seconds")
}
