//! Helpers for the end-to-end tests in `tests/`: each test starts its own [`LocalStack`] (moto's
//! interpreter, the real function binaries under the stack's Lambda host, a fresh database, its own
//! market-sim), runs the state machine and checks the database against market-sim's ground truth.
//!
//! The tests of one binary run one at a time ([`serial`]): each stack runs several processes,
//! and two at once would only compete for the same two cores.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, Utc};
use local_stack::aws_sdk_sfn::types::ExecutionStatus;
use local_stack::{unique_name, ExecutionOutcome, LocalStack, LocalStackOptions};
use market_sim::{GroundTruth, GroundTruthBar};
use serde_json::{json, Value};
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
    connect(stack.database_url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the stack's database: {e}"))
}

/// A connection to `url`, driven on the current runtime; `Err` while the server is down.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
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
        let truth: Vec<Bar> = interval_ground_truth(stack, provider, "1h", symbol, start, end)
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

/// [`assert_stored_equal_ground_truth`], and `stock_price_history` holds nothing else (no
/// duplicate, no other symbol); returns how many bars that is.
pub async fn assert_only_ground_truth_stored(
    stack: &LocalStack,
    client: &Client,
    provider: &str,
    symbols: &[&str],
    window: (NaiveDate, NaiveDate),
) -> i64 {
    let rows = assert_stored_equal_ground_truth(stack, client, provider, symbols, window).await;
    assert_eq!(
        count_rows(client, "stock_price_history").await,
        rows,
        "rows beyond the ground truth of {symbols:?}"
    );
    rows
}

/// The input of a run over `symbols` in `window` (inclusive) at `interval` (`1h`, `1d`) from
/// `provider` (`yahoo`, `polygon`), with the fields of `more` (an object: `batch_size`,
/// `max_concurrency`, …) added.
pub fn run_input(
    symbols: &[impl AsRef<str>],
    (start, end): (NaiveDate, NaiveDate),
    interval: &str,
    provider: &str,
    more: Value,
) -> Value {
    let symbols: Vec<&str> = symbols.iter().map(AsRef::as_ref).collect();
    let mut input = json!({
        "symbols": symbols,
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "interval": interval,
        "provider": provider,
    });
    let (Some(fields), Value::Object(more)) = (input.as_object_mut(), more) else {
        panic!("run_input: `more` must be a JSON object");
    };
    fields.extend(more);
    input
}

/// The fault suite's run: hourly Yahoo bars of [`recent_weekdays`] for `symbols`, in batches
/// of `batch_size`, `max_concurrency` at once.
pub fn fault_run_input(symbols: &[String], batch_size: usize, max_concurrency: usize) -> Value {
    let more = json!({"batch_size": batch_size, "max_concurrency": max_concurrency});
    run_input(symbols, recent_weekdays(), "1h", "yahoo", more)
}

/// Starts an execution of `input`, named [`unique_name`]`(name)`, and waits for its end (at most
/// `timeout`, or the test fails with the stack's logs). Returns its ARN and how it ended.
pub async fn execute(
    stack: &LocalStack,
    input: &Value,
    name: &str,
    timeout: Duration,
) -> (String, ExecutionOutcome) {
    let arn = stack
        .start_execution(input, &unique_name(name))
        .await
        .expect("StartExecution");
    let outcome = finish(stack, &arn, timeout).await;
    (arn, outcome)
}

/// Asserts that the execution ended `status` (the stack's logs in the message when not).
pub fn assert_ended(stack: &LocalStack, outcome: &ExecutionOutcome, status: ExecutionStatus) {
    assert_eq!(
        outcome.status,
        status,
        "{outcome:?}\n{}",
        stack.logs_tail(60)
    );
}

/// Asserts that the execution SUCCEEDED with finalize-run's summary saying `succeeded`; returns
/// the summary.
pub fn assert_succeeded<'a>(stack: &LocalStack, outcome: &'a ExecutionOutcome) -> &'a Value {
    assert_ended(stack, outcome, ExecutionStatus::Succeeded);
    let output = outcome
        .output
        .as_ref()
        .expect("a succeeded execution has output");
    assert_eq!(output["status"], "succeeded", "{output}");
    output
}

/// Asserts that the execution FAILED with the error `error` (`RunIncomplete`, …).
pub fn assert_failed_with(stack: &LocalStack, outcome: &ExecutionOutcome, error: &str) {
    assert_ended(stack, outcome, ExecutionStatus::Failed);
    assert_eq!(
        outcome.error.as_deref(),
        Some(error),
        "{outcome:?}\n{}",
        stack.logs_tail(60)
    );
}

/// Stops the execution (as an operator would) once at least `tickers` tickers are stored, and
/// waits until it is ABORTED. Each wait takes at most `timeout`.
pub async fn stop_once_stored(
    stack: &LocalStack,
    client: &Client,
    execution_arn: &str,
    tickers: i64,
    timeout: Duration,
) {
    test_support::wait::until(timeout, || async move {
        client
            .query_one(
                "SELECT count(*) FROM backfill_progress WHERE status = 'success'",
                &[],
            )
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) >= tickers)
    })
    .await
    .unwrap_or_else(|e| panic!("no ticker was stored: {e}\n{}", stack.logs_tail(40)));
    stack
        .sfn()
        .stop_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .expect("StopExecution");
    let stopped = finish(stack, execution_arn, timeout).await;
    assert_eq!(stopped.status, ExecutionStatus::Aborted, "{stopped:?}");
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

/// Runs `backfill <args>` with [`backfill_cli`]; fails the test when it does not end within
/// [`EXECUTION_TIMEOUT`].
pub async fn run_cli(stack: &LocalStack, args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        EXECUTION_TIMEOUT,
        backfill_cli(stack).await.args(args).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("backfill {args:?} did not return in time"))
    .unwrap_or_else(|e| panic!("backfill {args:?} did not run: {e}"))
}

/// [`run_cli`], asserting that `backfill` exits 0.
pub async fn cli_ok(stack: &LocalStack, args: &[&str]) -> std::process::Output {
    let out = run_cli(stack, args).await;
    assert!(out.status.success(), "{}", explain_cli(args, &out, stack));
    out
}

/// What a `backfill` run said, with the stack's logs: for failure messages.
pub fn explain_cli(args: &[&str], out: &std::process::Output, stack: &LocalStack) -> String {
    format!(
        "backfill {args:?}: {}\nstdout:\n{}\nstderr:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stack.logs_tail(40)
    )
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

// ---------------------------------------------------------------------------------------------
// The fault suite (tests/fault_*.rs): each test compares everything stored with market-sim's
// ground truth, counts the executions a run needed, and prints one line of figures.

/// Everything `stock_price_history` holds, compared with market-sim's ground truth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Bars the ground truth has for the compared symbols.
    pub expected: i64,
    /// Rows in `stock_price_history` (every symbol).
    pub stored: i64,
    /// Ground-truth bars without a row.
    pub missing: i64,
    /// Rows whose key is in the ground truth but whose values differ (exact float equality).
    pub wrong: i64,
    /// Rows the ground truth does not have (another symbol, another time).
    pub extra: i64,
    /// Rows beyond the first for one `(symbol, date)`.
    pub duplicated: i64,
    /// A few of the differences, for the failure message.
    pub examples: Vec<String>,
}

impl Comparison {
    /// Whether the table holds exactly the ground truth: nothing missing, wrong, extra or twice.
    pub fn is_exact(&self) -> bool {
        self.expected > 0
            && self.missing == 0
            && self.wrong == 0
            && self.extra == 0
            && self.duplicated == 0
            && self.stored == self.expected
    }

    /// Panics, with the counts and a few examples, unless [`Comparison::is_exact`].
    pub fn assert_exact(&self, context: &str) {
        assert!(
            self.is_exact(),
            "{context}: stored rows differ from the ground truth: expected {}, stored {}, \
             missing {}, wrong {}, extra {}, duplicated {}; e.g. {:#?}",
            self.expected,
            self.stored,
            self.missing,
            self.wrong,
            self.extra,
            self.duplicated,
            self.examples
        );
    }
}

/// Compares every row of `stock_price_history` with `provider`'s ground truth for `symbols` at
/// `interval` over the inclusive `window`. Rows of any other symbol count as `extra`.
pub async fn compare_with_ground_truth(
    stack: &LocalStack,
    client: &Client,
    provider: &str,
    interval: &str,
    symbols: &[&str],
    (start, end): (NaiveDate, NaiveDate),
) -> Comparison {
    const EXAMPLES: usize = 5;
    let mut c = Comparison {
        stored: count_rows(client, "stock_price_history").await,
        duplicated: client
            .query_one(
                "SELECT count(*) - count(DISTINCT (symbol, date)) FROM stock_price_history",
                &[],
            )
            .await
            .expect("counting duplicated rows")
            .get(0),
        ..Comparison::default()
    };
    let mut matched = 0;
    for symbol in symbols {
        let truth = interval_ground_truth(stack, provider, interval, symbol, start, end).await;
        let stored: BTreeMap<_, Bar> = stored_bars(client, symbol)
            .await
            .into_iter()
            .map(|b| (b.ts, b))
            .collect();
        c.expected += truth.len() as i64;
        for bar in &truth {
            let want = Bar::from(bar);
            match stored.get(&bar.ts) {
                None => {
                    c.missing += 1;
                    if c.examples.len() < EXAMPLES {
                        c.examples.push(format!("{symbol} {} missing", bar.ts));
                    }
                }
                Some(got) => {
                    matched += 1;
                    if *got != want {
                        c.wrong += 1;
                        if c.examples.len() < EXAMPLES {
                            c.examples.push(format!(
                                "{symbol} {}: stored {got:?}, want {want:?}",
                                bar.ts
                            ));
                        }
                    }
                }
            }
        }
    }
    c.extra = c.stored - matched;
    if c.extra > 0 && c.examples.len() < EXAMPLES {
        let listed: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
        let rows = client
            .query(
                "SELECT symbol, date FROM stock_price_history
                  WHERE NOT (symbol = ANY($1)) ORDER BY symbol, date LIMIT 3",
                &[&listed],
            )
            .await
            .expect("reading extra rows");
        for row in rows {
            let (symbol, date): (String, chrono::DateTime<Utc>) = (row.get(0), row.get(1));
            c.examples.push(format!("{symbol} {date}: not asked for"));
        }
    }
    c
}

/// The state machine's executions as `ListExecutions` gives them: `(name, status)`, oldest
/// first. A Distributed Map's children are not listed (moto runs them inside the parent).
pub async fn executions(stack: &LocalStack) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = stack
            .sfn()
            .list_executions()
            .state_machine_arn(stack.state_machine_arn())
            .set_next_token(token.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListExecutions: {e:?}"));
        for execution in page.executions() {
            all.push((
                execution.start_date().as_secs_f64(),
                execution.name().to_string(),
                execution.status().as_str().to_string(),
            ));
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => break,
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter()
        .map(|(_, name, status)| (name, status))
        .collect()
}

/// Waits for the execution to end (or fails the test with the stack's logs).
pub async fn finish(
    stack: &LocalStack,
    execution_arn: &str,
    timeout: Duration,
) -> ExecutionOutcome {
    stack
        .wait_for_execution(execution_arn, timeout)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs_tail(60)))
}

/// `(symbol, status, error_name)` of every ticker of every run, by symbol.
pub async fn ticker_problems(client: &Client) -> Vec<(String, String, Option<String>)> {
    client
        .query(
            "SELECT symbol, status, error_name FROM backfill_progress ORDER BY symbol",
            &[],
        )
        .await
        .expect("reading backfill_progress")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// `(batch, last_status, last_error_name)` of every batch of every run, by batch.
pub async fn batch_states(client: &Client) -> Vec<(i32, Option<String>, Option<String>)> {
    client
        .query(
            "SELECT batch, last_status, last_error_name FROM backfill_batch ORDER BY batch",
            &[],
        )
        .await
        .expect("reading backfill_batch")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// `backfill_run.status` of the one run in the database.
pub async fn run_status(client: &Client) -> String {
    client
        .query_one("SELECT status FROM backfill_run", &[])
        .await
        .expect("reading backfill_run (exactly one run)")
        .get(0)
}

/// How many tickers have each status.
pub async fn status_counts(client: &Client) -> BTreeMap<String, i64> {
    client
        .query(
            "SELECT status, count(*) FROM backfill_progress GROUP BY status",
            &[],
        )
        .await
        .expect("counting backfill_progress by status")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `n` distinct symbols `<prefix>000`, `<prefix>001`, …
pub fn numbered_symbols(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

/// A process's peak resident set (`VmHWM` in /proc), in KiB, while it is alive.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The figures of one fault test, printed as one line that the suite's summary can quote.
#[derive(Debug, Clone)]
pub struct Figures {
    /// `file::test`, e.g. `fault_provider::five_xx_on_every_10th_request`.
    pub test: &'static str,
    pub rows: Comparison,
    pub elapsed: Duration,
    /// Executions of the state machine that were started, resumes included.
    pub executions: usize,
    /// Anything else worth quoting (`tickers 100/100 success`, `peak RSS 41 MiB`).
    pub note: String,
}

impl Figures {
    /// Writes the line straight to the test process's stderr, so that it shows in `cargo test`
    /// output even when the test passes (libtest captures only `print!`/`eprint!`).
    pub fn print(&self) {
        use std::io::Write as _;
        let line = format!(
            "fault-suite | {} | rows expected {} / stored {} / duplicated {} (missing {}, wrong {}, extra {}) | {:.1} s | executions started {} | {}\n",
            self.test,
            self.rows.expected,
            self.rows.stored,
            self.rows.duplicated,
            self.rows.missing,
            self.rows.wrong,
            self.rows.extra,
            self.elapsed.as_secs_f64(),
            self.executions,
            self.note
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Lines of the functions' log (`functions.log` in the stack's work dir) that contain `needle`,
/// e.g. `"transient provider fault; retrying"`.
pub fn functions_log_lines(stack: &LocalStack, needle: &str) -> usize {
    let log = stack.work_dir().join("functions.log");
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(needle))
        .count()
}

/// Holds a function's first instance at its start until the test opens the gate: a stand-in
/// program (for `LocalStackOptions::function_programs`) that waits for a file, then `exec`s the
/// real binary. While it waits, the invocation that started it is queued in the function host, so
/// a test can set up a fault (stop the database) exactly before the function first runs. Later
/// instances find the gate open and start at once.
pub struct StartGate {
    dir: std::path::PathBuf,
    gate: std::path::PathBuf,
    function: String,
}

impl StartGate {
    /// A closed gate in front of `function` (`finalize-run`, …).
    pub fn new(function: &str) -> StartGate {
        let dir = std::env::temp_dir().join(local_stack::unique_name(&format!("gate-{function}")));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let gate = dir.join("open");
        let real = local_stack::workspace::target_debug_dir().join(function);
        let script = dir.join(function);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# Waits for {gate}, then runs the real {function}.\n\
                 while [ ! -e '{gate}' ]; do sleep 0.05; done\nexec '{real}' \"$@\"\n",
                gate = gate.display(),
                real = real.display(),
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot make {} executable: {e}", script.display()));
        StartGate {
            dir,
            gate,
            function: function.to_string(),
        }
    }

    /// The `function_programs` entry that puts the gate in front of the function.
    pub fn program(&self) -> (String, std::path::PathBuf) {
        (self.function.clone(), self.dir.join(&self.function))
    }

    /// Lets the waiting instance (and every later one) start the real binary.
    pub fn open(&self) {
        std::fs::write(&self.gate, "")
            .unwrap_or_else(|e| panic!("cannot open the gate {}: {e}", self.gate.display()));
    }
}

impl Drop for StartGate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Invocations of `function` that failed with `error_type` (the function's error document).
pub fn function_errors(stack: &LocalStack, function: &str, error_type: &str) -> usize {
    let needle = format!("\"errorType\":\"{error_type}\"");
    stack
        .invocations()
        .iter()
        .filter(|i| {
            i.function == function
                && i.function_error.is_some()
                && i.response.replace(' ', "").contains(&needle)
        })
        .count()
}
