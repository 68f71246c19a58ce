//! The Lambda Invoke adapter as a process: what `local-stack up` runs in front of
//! `cargo lambda watch` and moto (see `local_stack::adapter`).
//!
//! Its first stdout line is `listening on http://HOST:PORT`.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use local_stack::adapter::{self, AdapterConfig};

#[derive(Debug, Parser)]
#[command(
    about = "Gives cargo lambda watch real Lambda Invoke semantics and proxies everything else to moto"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// cargo lambda watch's address.
    #[arg(long)]
    lambda_endpoint: String,
    /// moto's address.
    #[arg(long)]
    moto_endpoint: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Usually a log file (local-stack up): colour codes would only clutter it.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    println!("listening on http://{addr}");
    let config = AdapterConfig {
        lambda_endpoint: args.lambda_endpoint,
        moto_endpoint: args.moto_endpoint,
    };
    // Nobody reads a process's invocation record: the log (stderr) has every invocation.
    adapter::serve(listener, config, None)
        .await
        .context("the adapter stopped")
}
