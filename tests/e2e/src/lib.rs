//! Helpers for the end-to-end tests in `tests/`: each test starts its own [`LocalStack`] (moto's
//! interpreter, the real function binaries under `cargo lambda watch`, a fresh database, its own
//! market-sim), runs the state machine and checks the database against market-sim's ground truth.
//!
//! The tests of one binary run one at a time ([`serial`]): each stack runs several processes,
//! and two at once would only compete for the same two cores.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, Utc};
use local_stack::{LocalStack, LocalStackOptions};
use market_sim::{GroundTruth, GroundTruthBar};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

pub use local_stack;

/// How long one execution of these small runs may take before the test gives up.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(120);

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the duration of a test so that the tests of a binary run one after another.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Starts a stack or fails the test with the reason (which component, and its log's tail).
pub async fn start_stack(options: LocalStackOptions) -> LocalStack {
    match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

/// A connection to the stack's database.
pub async fn db(stack: &LocalStack) -> Client {
    let (client, connection) = tokio_postgres::connect(stack.database_url(), NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the stack's database: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `SELECT count(*) FROM <table>`.
pub async fn count_rows(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
        .get(0)
}

/// Monday to Wednesday of a week that ended at least a week ago: three weekdays with hourly bars,
/// well inside Yahoo's 730 days of hourly history, whatever the date the tests run on.
pub fn recent_weekdays() -> (NaiveDate, NaiveDate) {
    let a_week_ago = Utc::now().date_naive() - Days::new(7);
    let monday = a_week_ago - Days::new(u64::from(a_week_ago.weekday().num_days_from_monday()));
    (monday, monday + Days::new(2))
}

/// market-sim's ground truth for one symbol (hourly Yahoo bars over inclusive UTC days).
pub async fn ground_truth(
    stack: &LocalStack,
    symbol: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Vec<GroundTruthBar> {
    let url = format!(
        "{}/__admin/ground-truth?provider=yahoo&symbol={symbol}&interval=1h&start={start}&end={end}",
        stack.market_sim_url()
    );
    let truth: GroundTruth = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not ground truth: {e}"));
    truth.bars
}

/// One price row as stored, in the ground truth's terms. Prices compare exactly: the column is
/// double precision, like the original's, and stores every digit the provider sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub ts: chrono::DateTime<Utc>,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: f64,
    pub volume: Option<i64>,
}

impl From<&GroundTruthBar> for Bar {
    fn from(b: &GroundTruthBar) -> Bar {
        Bar {
            ts: b.ts,
            open: Some(b.open),
            high: Some(b.high),
            low: Some(b.low),
            close: b.close,
            volume: Some(b.volume),
        }
    }
}

/// Every stored bar of `symbol`, by time.
pub async fn stored_bars(client: &Client, symbol: &str) -> Vec<Bar> {
    let rows = client
        .query(
            "SELECT date, open_price::float8, high_price::float8, low_price::float8,
                    close_price::float8, volume
               FROM stock_price_history WHERE symbol = $1 ORDER BY date",
            &[&symbol],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the bars of {symbol}: {e}"));
    rows.iter()
        .map(|r| Bar {
            ts: r.get(0),
            open: r.get(1),
            high: r.get(2),
            low: r.get(3),
            close: r.get(4),
            volume: r.get(5),
        })
        .collect()
}

/// market-sim's ground truth for one symbol from `provider` (`yahoo` or `polygon`): hourly bars
/// over inclusive UTC days.
pub async fn provider_ground_truth(
    stack: &LocalStack,
    provider: &str,
    symbol: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Vec<GroundTruthBar> {
    interval_ground_truth(stack, provider, "1h", symbol, start, end).await
}

/// market-sim's ground truth: the bars a correct client stores for `symbol` at `interval`
/// (`1h`: bars starting in the inclusive UTC days; `1d`: trading days in the range, keyed at
/// 00:00 exchange time).
pub async fn interval_ground_truth(
    stack: &LocalStack,
    provider: &str,
    interval: &str,
    symbol: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Vec<GroundTruthBar> {
    let url = format!(
        "{}/__admin/ground-truth?provider={provider}&symbol={symbol}&interval={interval}&start={start}&end={end}",
        stack.market_sim_url()
    );
    let truth: GroundTruth = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not ground truth: {e}"));
    truth.bars
}

/// Asserts that the stored bars of every symbol equal `provider`'s ground truth (and that there
/// is some), and returns how many bars that is in all.
pub async fn assert_stored_equal_ground_truth(
    stack: &LocalStack,
    client: &Client,
    provider: &str,
    symbols: &[&str],
    (start, end): (NaiveDate, NaiveDate),
) -> i64 {
    let mut total = 0;
    for symbol in symbols {
        let truth: Vec<Bar> = provider_ground_truth(stack, provider, symbol, start, end)
            .await
            .iter()
            .map(Bar::from)
            .collect();
        assert!(!truth.is_empty(), "market-sim has no bars for {symbol}");
        let stored = stored_bars(client, symbol).await;
        assert_eq!(
            stored, truth,
            "{symbol}: stored bars differ from {provider}'s ground truth"
        );
        total += truth.len() as i64;
    }
    total
}

/// Merges `knobs` (a partial object, e.g. `{"latency_ms": 300}`) into market-sim's knobs.
pub async fn set_knobs(stack: &LocalStack, knobs: serde_json::Value) {
    let url = format!("{}/__admin/knobs", stack.market_sim_url());
    reqwest::Client::new()
        .post(&url)
        .json(&knobs)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("POST {url} {knobs}: {e}"));
}

/// market-sim's `GET /__admin/requests` (`total`, `by_status`, `by_route`, …).
pub async fn requests_report(stack: &LocalStack) -> serde_json::Value {
    let url = format!("{}/__admin/requests", stack.market_sim_url());
    reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Provider requests market-sim has answered, per symbol (every provider and status).
pub async fn requests_per_symbol(stack: &LocalStack) -> BTreeMap<String, u64> {
    let report = requests_report(stack).await;
    let mut counts = BTreeMap::new();
    for route in report["by_route"].as_array().into_iter().flatten() {
        if let Some(symbol) = route["symbol"].as_str() {
            *counts.entry(symbol.to_string()).or_default() += route["count"].as_u64().unwrap_or(0);
        }
    }
    counts
}

/// `(symbol, status)` of every ticker of every run, by symbol.
pub async fn ticker_statuses(client: &Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT symbol, status FROM backfill_progress ORDER BY symbol",
            &[],
        )
        .await
        .expect("reading backfill_progress")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The id of the one run in the database.
pub async fn only_run_id(client: &Client) -> String {
    let rows = client
        .query("SELECT run_id FROM backfill_run", &[])
        .await
        .expect("reading backfill_run");
    assert_eq!(rows.len(), 1, "expected exactly one run");
    rows[0].get(0)
}

/// The answers of fetch-batch that returned (not function errors), in completion order, as JSON
/// (`FetchBatchOutput`: `batch`, `status`, `retry_after_seconds`, `attempted`, …).
pub fn fetch_batch_outputs(stack: &LocalStack) -> Vec<serde_json::Value> {
    stack
        .invocations()
        .into_iter()
        .filter(|i| i.function == "fetch-batch" && i.function_error.is_none())
        .map(|i| {
            serde_json::from_str(&i.response)
                .unwrap_or_else(|e| panic!("fetch-batch did not answer JSON ({e}): {}", i.response))
        })
        .collect()
}

/// The `backfill` CLI with the stack's environment (and none of the caller's AWS or database
/// settings); the binary is built first, once per test process.
pub async fn backfill_cli(stack: &LocalStack) -> tokio::process::Command {
    tokio::task::spawn_blocking(build_backfill_cli)
        .await
        .expect("the build task panicked");
    let mut command =
        tokio::process::Command::new(local_stack::workspace::target_debug_dir().join("backfill"));
    for key in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "DATABASE_SECRET_ARN"] {
        command.env_remove(key);
    }
    command.envs(stack.env()).kill_on_drop(true);
    command
}

fn build_backfill_cli() {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if *built {
        return;
    }
    let mut cargo = std::process::Command::new(local_stack::workspace::cargo());
    let status = local_stack::workspace::without_cargo_crate_env(&mut cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "statemachine",
            "--bin",
            "backfill",
        ])
        .current_dir(local_stack::workspace::root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the backfill CLI: {e}"));
    assert!(
        status.success(),
        "building the backfill CLI failed: {status}"
    );
    *built = true;
}
