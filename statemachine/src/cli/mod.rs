//! The `backfill` command line: flags (clap), dispatch, exit codes.
//!
//! Output goes to the [`Session`]'s writer, stdout in the binary (run ids, reports, JSON);
//! progress, hints and errors go to stderr.

mod follow;
pub mod lease;
mod migrate;
mod plan;
mod render;
mod request;
pub mod resume;
mod run_ref;
mod session;
pub mod start;
mod status;
mod verify;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::{exit, CliError};
use crate::executions::{Connect, SfnExecutions};

pub use session::Session;

pub use request::{execution_name_for_resume, new_run_input, resume_input, validate_new_run};

/// Backfill historical stock bars into PostgreSQL through the price-backfill state machine.
///
/// Talks to Step Functions through the standard AWS environment (AWS_REGION, credentials,
/// AWS_ENDPOINT_URL for the local stack) and to the database through DATABASE_URL (or
/// DATABASE_SECRET_ARN). Exit codes: 0 success; 1 the run finished with failed tickers, is
/// incomplete or its execution failed, `verify` found missing bars, or AWS / the database is
/// unreachable; 2 bad input (a `plan` over the batch cap included), unknown run, a run another
/// execution holds (resume) or missing configuration (nothing started); 130 interrupted while
/// following.
#[derive(Debug, Parser)]
#[command(name = "backfill", version)]
pub struct Cli {
    /// The state machine to start executions of (start, resume); `status RUN_ID` also uses it to
    /// close a run whose execution has ended.
    #[arg(long, env = "STATE_MACHINE_ARN", global = true, value_name = "ARN")]
    pub state_machine_arn: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a new run: validate the request locally, then start an execution named after the run id.
    Start(StartArgs),
    /// Start a new execution of an existing run, with its stored parameters.
    Resume(ResumeArgs),
    /// Show one run in detail, or the recent runs (SQL only; works without AWS).
    Status(StatusArgs),
    /// Show what a run would do (tickers, batches, provider calls, duration); writes nothing.
    Plan(PlanArgs),
    /// Apply the database migrations (idempotent).
    Migrate,
    /// Check that every `success` ticker of a run has bars stored in the run's window.
    Verify(VerifyArgs),
}

/// Which tickers and which bars: the new-run fields of the execution input.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectionArgs {
    /// Explicit symbols, comma-separated (e.g. AAPL,BRK.B); at most 10000.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub symbols: Option<Vec<String>>,
    /// The N most-mentioned tickers (ties broken by symbol), N >= 1.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub top_n: Option<i64>,
    /// Tickers with at least N article mentions, N >= 1 [default: 10; with --top-n: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub min_articles: Option<i64>,
    /// With --top-n or --min-articles: count only mentions of the last N days, 1-36500.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub mentions_within_days: Option<i64>,
    /// First day, YYYY-MM-DD, inclusive [default: BACKFILL_START_DATE of the functions].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start_date: Option<String>,
    /// Last day, YYYY-MM-DD, inclusive [default: today, UTC].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end_date: Option<String>,
    /// Instead of --start-date: start = end - N days, 0-36500.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub lookback_days: Option<i64>,
    /// Bar size: 1h or 1d [default: 1h].
    #[arg(long, value_name = "1h|1d")]
    pub interval: Option<String>,
    /// Tickers per batch (weekdays per batch for a grouped run), 1-1000 [default: 50]. A run has
    /// at most 1000 batches.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub batch_size: Option<i64>,
    /// Price provider: yahoo or polygon [default: PRICE_PROVIDER of the functions].
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// per-ticker (one ranged request per ticker), grouped (Polygon's grouped daily endpoint:
    /// one request per weekday for every ticker; polygon and 1d only) or auto (grouped when it
    /// can be used and the window has fewer weekdays than the run has tickers) [default: auto].
    #[arg(long, value_name = "per-ticker|grouped|auto")]
    pub strategy: Option<String>,
    /// Add listed symbols that the `ticker` table lacks to it, where prices reference `ticker`
    /// (otherwise they end `failed` / NotInTickerTable before any provider call).
    #[arg(long)]
    pub register_tickers: bool,
}

/// The state machine's own knobs.
#[derive(Debug, Clone, Default, Args)]
pub struct ExecutionArgs {
    /// Batches fetched at once, 1-100 [default: 4]. They share one request budget: more of them
    /// keep it busy, they do not raise the rate.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_concurrency: Option<i64>,
    /// Invocations a 429 stopped with nothing finished, per batch, before its tickers are left for
    /// a resume, 0-1000 [default: 50]. Waits for the shared request budget do not count.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_rate_limit_rounds: Option<i64>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// Follow the execution with a progress bar until it ends, then print the summary.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to resume: its id (backfill-YYYYMMDD-HHMMSS-xxxxxxxx), or the name or ARN of one
    /// of its executions (e.g. a scheduled-… execution from a notification).
    #[arg(value_name = "RUN_ID|EXECUTION")]
    pub run_id: String,
    /// incomplete (every ticker not yet success) or all [default: incomplete].
    #[arg(long, value_name = "incomplete|all")]
    pub reprocess: Option<String>,
    /// Add the run's symbols that the `ticker` table lacks to it (see `start --register-tickers`).
    #[arg(long)]
    pub register_tickers: bool,
    /// Take the run's lease over from the execution holding it when this cannot tell whether
    /// that execution still runs (an execution seen running is never taken over).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// Follow the execution with a progress bar until it ends, then print the summary.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One run in detail (its id, or the name or ARN of one of its executions); without it, the
    /// recent runs.
    #[arg(value_name = "RUN_ID|EXECUTION")]
    pub run_id: Option<String>,
    /// Machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// How many recent runs to list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub execution: ExecutionArgs,
    /// Machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run's id, or the name or ARN of one of its executions.
    #[arg(value_name = "RUN_ID|EXECUTION")]
    pub run_id: String,
    /// Machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// The binary's entry point: parses the flags, runs the command, maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version exit 0, usage errors 2.
        Err(e) => e.exit(),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one parsed command on the process's environment and stdout; `Ok` carries the exit code
/// of a command that did its work.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let mut stdout = std::io::stdout();
    run_with(
        cli,
        SfnExecutions::from_env,
        &mut Session::from_env(&mut stdout),
    )
    .await
}

/// [`run`] with the Step Functions port that `connect` gives (tests pass an in-memory
/// [`crate::executions::fake::FakeExecutions`]) and the database and output of `session`.
/// `connect` is called only once a command needs Step Functions, after its input was validated.
pub async fn run_with(
    cli: Cli,
    connect: impl Connect,
    session: &mut Session<'_>,
) -> Result<u8, CliError> {
    let arn = cli.state_machine_arn;
    match cli.command {
        Command::Start(args) => {
            // Validation comes first: bad input never needs AWS.
            let prepared = start::prepare(&args)?;
            let arn = require_arn(arn)?;
            let executions = connect.connect().await?;
            start::run(&executions, &arn, prepared, args.wait, session).await
        }
        Command::Resume(args) => {
            let prepared = resume::prepare(&args)?;
            let arn = require_arn(arn)?;
            let (prepared, db) = resume::check_run(prepared, session).await?;
            let executions = connect.connect().await?;
            let out = session.out();
            resume::run(&executions, &arn, prepared, db, args.wait, args.force, out).await
        }
        Command::Status(args) => status::run(&args, arn.as_deref(), connect, session).await,
        Command::Plan(args) => plan::run(&args, session).await,
        Command::Migrate => migrate::run(session).await,
        Command::Verify(args) => verify::run(&args, session).await,
    }
}

fn require_arn(arn: Option<String>) -> Result<String, CliError> {
    arn.map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .ok_or_else(CliError::state_machine_not_configured)
}

/// Warnings from the shared code (e.g. a malformed symbol skipped by the selection) on stderr;
/// the AWS SDK's own chatter (credential and region probing) stays quiet. `RUST_LOG` overrides.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("error,shared=warn,statemachine=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use shared::request::{
        DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RATE_LIMIT_ROUNDS,
        DEFAULT_MIN_ARTICLES, MAX_BATCHES, MAX_BATCH_SIZE, MAX_DAYS_BACK, MAX_EXPLICIT_SYMBOLS,
        MAX_MAX_CONCURRENCY, MAX_MAX_RATE_LIMIT_ROUNDS,
    };

    use super::Cli;

    /// The long help of `flag` of `backfill start`, on one line.
    fn help(flag: &str) -> String {
        let start = Cli::command();
        let start = start.find_subcommand("start").expect("start exists");
        let arg = start
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("--{flag} exists"));
        arg.get_long_help()
            .or(arg.get_help())
            .map(|h| {
                h.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_stated_ranges_and_defaults_are_select_tickers_own() {
        let expect = [
            ("symbols", format!("at most {MAX_EXPLICIT_SYMBOLS}")),
            ("min-articles", format!("[default: {DEFAULT_MIN_ARTICLES};")),
            ("mentions-within-days", format!("1-{MAX_DAYS_BACK}")),
            ("lookback-days", format!("0-{MAX_DAYS_BACK}")),
            (
                "batch-size",
                format!("1-{MAX_BATCH_SIZE} [default: {DEFAULT_BATCH_SIZE}]"),
            ),
            ("batch-size", format!("at most {MAX_BATCHES} batches")),
            (
                "max-concurrency",
                format!("1-{MAX_MAX_CONCURRENCY} [default: {DEFAULT_MAX_CONCURRENCY}]"),
            ),
            (
                "max-rate-limit-rounds",
                format!("0-{MAX_MAX_RATE_LIMIT_ROUNDS} [default: {DEFAULT_MAX_RATE_LIMIT_ROUNDS}]"),
            ),
        ];
        for (flag, text) in expect {
            let help = help(flag);
            assert!(
                help.contains(&text),
                "--{flag}: {help:?} does not say {text:?}"
            );
        }
    }
}
