//! The Lambda Invoke adapter as a process: what `local-stack up` runs in front of moto, running
//! the function binaries itself (see `local_stack::adapter` and `local_stack::runtime`).
//!
//! The functions get this process's environment (the stack starts it with theirs), without
//! `AWS_ENDPOINT_URL`. Its first stdout line is `listening on http://HOST:PORT`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use local_stack::adapter::{self, AdapterConfig};
use local_stack::runtime::{FunctionSpec, HostConfig};

#[derive(Debug, Parser)]
#[command(
    about = "Runs the Lambda functions as Lambda does, answers Lambda Invoke calls, and proxies everything else to moto"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// moto's address.
    #[arg(long)]
    moto_endpoint: String,
    /// A function as NAME=PROGRAM (repeat for each).
    #[arg(long = "function", value_name = "NAME=PROGRAM")]
    functions: Vec<String>,
    /// A function's timeout as NAME=SECONDS (default 900).
    #[arg(long = "timeout", value_name = "NAME=SECONDS")]
    timeouts: Vec<String>,
    /// Instances per function at most.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Where the instances' output goes.
    #[arg(long)]
    functions_log: Option<PathBuf>,
}

/// A function's timeout when `--timeout` names none (Lambda's maximum).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Not RUST_LOG: that one is the functions' (this process passes its environment on).
            tracing_subscriber::EnvFilter::try_from_env("ADAPTER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Usually a log file (local-stack up): colour codes would only clutter it.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let mut functions = Vec::new();
    for spec in &args.functions {
        let (name, program) = spec
            .split_once('=')
            .with_context(|| format!("--function {spec:?} is not NAME=PROGRAM"))?;
        functions.push(FunctionSpec::new(name, program, DEFAULT_TIMEOUT));
    }
    for spec in &args.timeouts {
        let (name, seconds) = spec
            .split_once('=')
            .with_context(|| format!("--timeout {spec:?} is not NAME=SECONDS"))?;
        let seconds: u64 = seconds
            .parse()
            .with_context(|| format!("--timeout {spec:?}: not a whole number of seconds"))?;
        let Some(function) = functions.iter_mut().find(|f| f.name == name) else {
            bail!("--timeout {spec:?}: no --function {name}");
        };
        function.timeout = Duration::from_secs(seconds);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    println!("listening on http://{addr}");
    let config = AdapterConfig {
        moto_endpoint: args.moto_endpoint,
        host: HostConfig {
            functions,
            concurrency: args.concurrency,
            log: args.functions_log,
        },
    };
    // Nobody reads a process's invocation record: the log (stderr) has every invocation.
    tokio::select! {
        served = adapter::serve(listener, config, None) => served.context("the adapter stopped"),
        // Stopped (local-stack down): returning from serve stops the function instances.
        _ = terminated() => Ok(()),
    }
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
