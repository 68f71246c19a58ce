//! `local-stack up|down|env`: the local stack as detached processes (scripts/local-up,
//! scripts/local-down, `make local-up`, the demo).
//!
//! `up` starts PostgreSQL (test_support::pg_up, what scripts/pg-up runs, unless `--database-url`),
//! market-sim, the Lambda Invoke
//! adapter (which runs the function binaries) and moto, each in its own process group, creates
//! the state machine and writes `<state-dir>/env` (`export` lines for clients) and
//! `<state-dir>/pids`.
//! `down` stops every process (and what they started) and the PostgreSQL cluster.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use local_stack::process::STOP_GRACE;
use local_stack::{workspace, AdapterMode, LocalStack, LocalStackOptions};
use test_support::pg_up::{self, UpError};
use test_support::process::{is_running, start_time, stop_tree};
use test_support::shell;

#[derive(Debug, Parser)]
#[command(
    about = "The price-backfill local stack: moto + the Lambda Invoke adapter running the functions + PostgreSQL + market-sim"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the stack detached; prints the environment for its clients (also in <state-dir>/env).
    Up(UpArgs),
    /// Stop every process of the stack and its PostgreSQL cluster.
    Down {
        #[arg(long, default_value = ".local/stack")]
        state_dir: PathBuf,
    },
    /// Print the `export` lines of a running stack (`eval "$(local-stack env)"`).
    Env {
        #[arg(long, default_value = ".local/stack")]
        state_dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    #[arg(long, default_value = ".local/stack")]
    state_dir: PathBuf,
    /// Use this PostgreSQL database (migrated) instead of a throwaway cluster. Never taken from
    /// DATABASE_URL implicitly: the stack writes runs and prices into it.
    #[arg(long)]
    database_url: Option<String>,
    /// market-sim flags, e.g. "--rate-limit 3 --window-seconds 5 --retry-after 2".
    #[arg(long, env = "LOCAL_STACK_MARKET_SIM_ARGS", allow_hyphen_values = true)]
    market_sim_args: Option<String>,
    /// Extra function environment as KEY=VALUE (repeat, or comma-separated), e.g.
    /// FETCH_BUDGET_SECONDS=5,RATE_LIMIT_PAUSE_SECONDS=1.
    #[arg(long, env = "LOCAL_STACK_FUNCTION_ENV", value_delimiter = ',')]
    function_env: Vec<String>,
    /// Instances of each function that may run at once.
    #[arg(long, default_value_t = 4)]
    lambda_concurrency: u32,
    /// How long each Task retries transient errors in a row, on average (the Terraform module's
    /// transient_fault_retry_budget_seconds); small values make fault experiments quick.
    #[arg(long, env = "LOCAL_STACK_RETRY_BUDGET_SECONDS", default_value_t = 1800)]
    retry_budget_seconds: u32,
    /// Skip building the function binaries and market-sim.
    #[arg(long)]
    no_build: bool,
}

/// `<state-dir>/pids`: one `name pid start-time` line per process.
const PIDS: &str = "pids";
const ENV: &str = "env";
/// The PostgreSQL cluster's state (test_support::pg_up), inside the state dir.
const PG: &str = "pg";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Up(args) => up(args),
        Cmd::Down { state_dir } => down(&state_dir),
        Cmd::Env { state_dir } => {
            let env = state_dir.join(ENV);
            let text = std::fs::read_to_string(&env).with_context(|| {
                format!(
                    "no local stack in {}: start one with `make local-up`",
                    state_dir.display()
                )
            })?;
            print!("{text}");
            Ok(())
        }
    }
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let state_dir = absolute(&args.state_dir)?;
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    match recorded_processes(&state_dir)? {
        Some(processes) if processes.iter().all(Recorded::is_running) => {
            eprintln!("local-stack: already up ({})", state_dir.display());
            print!("{}", std::fs::read_to_string(state_dir.join(ENV)).unwrap_or_default());
            return Ok(());
        }
        Some(_) => bail!(
            "a local stack in {} is only partly running: run `local-stack down --state-dir {}` first",
            state_dir.display(),
            state_dir.display()
        ),
        None => {}
    }
    let function_env = args
        .function_env
        .iter()
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .with_context(|| format!("--function-env {kv:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let adapter = std::env::current_exe()
        .context("cannot find this program's path")?
        .with_file_name("lambda-invoke-adapter");
    if !adapter.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p local-stack --bins`",
            adapter.display()
        );
    }

    let (database_url, own_cluster) = match args.database_url {
        Some(url) => (url, false),
        None => (start_postgres(&state_dir)?, true),
    };
    let options = LocalStackOptions {
        function_env,
        market_sim_args: args
            .market_sim_args
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        database_url: Some(database_url),
        lambda_concurrency: args.lambda_concurrency,
        retry_budget_seconds: args.retry_budget_seconds,
        build: !args.no_build,
        work_dir: Some(state_dir.clone()),
        adapter: AdapterMode::Process(adapter),
        detachable: true,
        ..LocalStackOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start a tokio runtime")?;
    // Interrupted while starting: dropping the half-started stack stops what it had started
    // (its processes are in process groups of their own and never see the terminal's Ctrl-C).
    let started = runtime.block_on(async {
        tokio::select! {
            started = LocalStack::start(options) => Some(started),
            _ = interrupted() => None,
        }
    });
    let stack = match started {
        Some(Ok(stack)) => stack,
        Some(Err(e)) => {
            if own_cluster {
                stop_postgres(&state_dir);
            }
            return Err(anyhow::Error::new(e).context("the local stack did not start"));
        }
        None => {
            if own_cluster {
                stop_postgres(&state_dir);
            }
            bail!("interrupted: everything started so far is stopped again");
        }
    };
    let mut env = format!(
        "# written by `local-stack up`; stop the stack with `local-stack down --state-dir {}`\n",
        state_dir.display()
    );
    for (key, value) in stack.env() {
        let _ = writeln!(env, "export {key}={}", shell::quote(&value));
    }
    let processes = stack.detach()?;
    let mut pids = String::new();
    for (name, pid) in &processes {
        let _ = writeln!(
            pids,
            "{}\t{pid}\t{}",
            name.replace(char::is_whitespace, "-"),
            start_time(*pid).unwrap_or(0)
        );
    }
    write_file(&state_dir.join(PIDS), &pids)?;
    write_file(&state_dir.join(ENV), &env)?;
    eprintln!(
        "local-stack: up; logs in {}, stop it with `make local-down`",
        state_dir.display()
    );
    print!("{env}");
    Ok(())
}

/// SIGINT or SIGTERM.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler only Ctrl-C interrupts.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn down(state_dir: &Path) -> anyhow::Result<()> {
    let state_dir = absolute(state_dir)?;
    let processes = recorded_processes(&state_dir)?.unwrap_or_default();
    let mut survivors = Vec::new();
    // The interpreter first (started last), then the adapter and its function instances, then
    // market-sim.
    for process in processes.iter().rev() {
        if !process.is_running() {
            continue;
        }
        eprintln!(
            "local-stack: stopping {} (pid {})",
            process.name, process.pid
        );
        survivors.extend(stop_tree(process.pid, STOP_GRACE));
    }
    if state_dir.join(PG).exists() {
        stop_postgres(&state_dir);
    }
    for file in [PIDS, ENV] {
        let path = state_dir.join(file);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    if !survivors.is_empty() {
        bail!("processes still running after SIGKILL: {survivors:?}");
    }
    eprintln!("local-stack: down (logs kept in {})", state_dir.display());
    Ok(())
}

/// A process `up` started, as recorded in the pids file.
#[derive(Debug)]
struct Recorded {
    name: String,
    pid: u32,
    start_time: u64,
}

impl Recorded {
    /// Running, and the same process (not a later one that reuses the pid).
    fn is_running(&self) -> bool {
        is_running(self.pid) && start_time(self.pid) == Some(self.start_time)
    }
}

fn recorded_processes(state_dir: &Path) -> anyhow::Result<Option<Vec<Recorded>>> {
    let path = state_dir.join(PIDS);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut processes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let parsed = match fields.as_slice() {
            [name, pid, start] => {
                pid.parse()
                    .ok()
                    .zip(start.parse().ok())
                    .map(|(pid, start_time)| Recorded {
                        name: name.to_string(),
                        pid,
                        start_time,
                    })
            }
            _ => None,
        };
        processes.push(parsed.with_context(|| format!("{}: bad line {line:?}", path.display()))?);
    }
    Ok(Some(processes))
}

/// A throwaway cluster in `<state-dir>/pg` (as scripts/pg-up starts one, installing the server
/// binaries first when they are missing), then a `backfill` database on it; returns its URL.
fn start_postgres(state_dir: &Path) -> anyhow::Result<String> {
    let state = state_dir.join(PG);
    // Progress is shown only when starting fails.
    let mut said = Vec::new();
    let mut up = || pg_up::up(&state, &mut |line| said.push(line));
    let running = match up() {
        Err(UpError::NoServerBinaries(_)) => {
            let ensure_tools = workspace::root().join("scripts").join("ensure-tools");
            eprintln!(
                "local-stack: PostgreSQL server binaries not found; running {} postgres",
                ensure_tools.display()
            );
            let status = Command::new(&ensure_tools)
                .arg("postgres")
                .status()
                .with_context(|| format!("cannot run {}", ensure_tools.display()))?;
            if !status.success() {
                bail!("{} postgres failed ({status})", ensure_tools.display());
            }
            up()
        }
        first => first,
    };
    let admin_url = match running {
        Ok(running) => running.database_url,
        Err(e) => bail!(
            "PostgreSQL did not start: {e}
{}",
            said.join("\n")
        ),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start a tokio runtime")?;
    let created = runtime.block_on(create_database(&admin_url, "backfill"));
    if let Err(e) = created {
        stop_postgres(state_dir);
        return Err(e);
    }
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    Ok(format!("{base}/backfill"))
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let settings = shared::db::parse_url(admin_url, &shared::db::tls::TlsSettings::from_env()?)
        .context("pg-up's DATABASE_URL")?;
    let client = settings
        .connect(Duration::from_secs(10))
        .await
        .context("cannot connect to the new PostgreSQL cluster")?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .context("cannot list databases")?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
    }
    Ok(())
}

fn stop_postgres(state_dir: &Path) {
    if let Err(e) = pg_up::down(&state_dir.join(PG), &mut |line| {
        eprintln!("pg-down: {line}")
    }) {
        eprintln!("local-stack: stopping PostgreSQL failed: {e}");
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("no current directory")?
        .join(path))
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
