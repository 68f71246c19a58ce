//! `market-sim`: runs the simulator until SIGINT/SIGTERM. The first stdout line is
//! `listening on http://HOST:PORT`, so scripts can pass `--port 0` and read the port back.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use market_sim::{Knobs, LiveBar, RateLimit, RetryAfter, Scale, SimConfig};

#[derive(Debug, Parser)]
#[command(
    name = "market-sim",
    about = "Local stand-in for the Yahoo chart v8 and Polygon aggregates v2 APIs"
)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Requests per window and per provider; unlimited when absent.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Length of the rate-limit window.
    #[arg(long, default_value_t = 60)]
    window_seconds: u64,
    /// fixed: windows one after another; sliding: at most --rate-limit in any --window-seconds.
    #[arg(long, value_enum, default_value = "fixed")]
    rate_limit_kind: market_sim::WindowKind,
    /// Fixed Polygon `Retry-After` seconds (default: seconds until the window resets).
    #[arg(long, conflicts_with = "no_retry_after")]
    retry_after: Option<u64>,
    /// Polygon 429s without `Retry-After`.
    #[arg(long)]
    no_retry_after: bool,
    /// Yahoo 429s carry `Retry-After` too (real Yahoo's do not).
    #[arg(long)]
    yahoo_retry_after: bool,
    /// Milliseconds added to every provider response.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer every n-th provider request with --fail-status.
    #[arg(long)]
    fail_every_nth: Option<u64>,
    #[arg(long, default_value_t = 503)]
    fail_status: u16,
    /// How the n-th requests fail: status, truncated (a cut JSON body) or slow.
    #[arg(long, value_enum, default_value = "status")]
    fail_kind: market_sim::FailKind,
    /// With --fail-kind slow: how long those answers take.
    #[arg(long, default_value_t = 30_000)]
    fail_slow_ms: u64,
    /// Symbols answered with a truncated JSON body (repeatable or comma-separated).
    #[arg(long = "malformed", value_delimiter = ',')]
    malformed: Vec<String>,
    /// Truncate every provider body.
    #[arg(long)]
    malformed_all: bool,
    /// Symbols the providers do not know (repeatable or comma-separated).
    #[arg(long = "unknown", value_delimiter = ',')]
    unknown: Vec<String>,
    /// US symbols Polygon's grouped daily answers list besides the built-in universe
    /// (repeatable or comma-separated).
    #[arg(long = "grouped-symbols", value_delimiter = ',')]
    grouped_symbols: Vec<String>,
    /// Symbols whose Yahoo bars have a null element every --null-every-nth bar.
    #[arg(long = "null-symbols", value_delimiter = ',')]
    null_symbols: Vec<String>,
    #[arg(long, default_value_t = 5)]
    null_every_nth: u32,
    /// Extra days served on each side of a requested range.
    #[arg(long, default_value_t = 0)]
    pad_range_days: u32,
    /// Cap on Polygon's page size, to exercise `next_url` paging.
    #[arg(long)]
    polygon_page_size: Option<u32>,
    /// Polygon's status word on success (OK or DELAYED).
    #[arg(long, default_value = "OK")]
    polygon_status: String,
    /// The only Polygon `apiKey` accepted.
    #[arg(long, env = "MARKET_SIM_POLYGON_API_KEY", default_value = "test-key")]
    polygon_api_key: String,
    /// "Now" for Yahoo answers, RFC 3339 (e.g. 2026-03-10T16:48:24Z); real time when absent.
    #[arg(long)]
    clock: Option<DateTime<Utc>>,
    /// Intraday Yahoo charts without the zero-volume bar at the session close.
    #[arg(long)]
    no_yahoo_close_bar: bool,
    /// How Yahoo shows the bar that holds the clock.
    #[arg(long, value_enum, default_value_t = LiveBarArg::AtClock)]
    yahoo_live_bar: LiveBarArg,
    /// Symbols whose Yahoo charts are quarterly (`dataGranularity` 3mo) whatever was asked.
    #[arg(long = "coarse", value_delimiter = ',')]
    coarse: Vec<String>,
    /// Price multipliers, SYMBOL=FACTOR (repeatable or comma-separated), e.g. PENNY=0.01.
    #[arg(long = "price-scale", value_delimiter = ',', value_parser = parse_scale)]
    price_scale: Vec<(String, Scale)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LiveBarArg {
    AtClock,
    AtPeriodStart,
    Separate,
}

impl From<LiveBarArg> for LiveBar {
    fn from(arg: LiveBarArg) -> Self {
        match arg {
            LiveBarArg::AtClock => LiveBar::AtClock,
            LiveBarArg::AtPeriodStart => LiveBar::AtPeriodStart,
            LiveBarArg::Separate => LiveBar::Separate,
        }
    }
}

fn parse_scale(raw: &str) -> Result<(String, Scale), String> {
    let (symbol, factor) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not SYMBOL=FACTOR"))?;
    let factor: f64 = factor
        .trim()
        .parse()
        .map_err(|_| format!("{factor:?} is not a number"))?;
    Ok((symbol.trim().to_string(), Scale::new(factor)?))
}

impl Args {
    fn knobs(&self) -> Knobs {
        let set = |v: &[String]| {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<BTreeSet<_>>()
        };
        let retry_after = match (self.no_retry_after, self.retry_after) {
            (true, _) => RetryAfter::None,
            (false, Some(secs)) => RetryAfter::Fixed(secs),
            (false, None) => RetryAfter::UntilReset,
        };
        Knobs {
            rate_limit: self.rate_limit.map(|requests| RateLimit {
                requests,
                window_seconds: self.window_seconds,
                retry_after,
                kind: self.rate_limit_kind,
            }),
            yahoo_retry_after: self.yahoo_retry_after,
            latency_ms: self.latency_ms,
            fail_every_nth: self.fail_every_nth,
            fail_status: self.fail_status,
            fail_kind: self.fail_kind,
            fail_slow_ms: self.fail_slow_ms,
            malformed_symbols: set(&self.malformed),
            malformed_all: self.malformed_all,
            unknown_symbols: set(&self.unknown),
            null_symbols: set(&self.null_symbols),
            null_every_nth: self.null_every_nth,
            pad_range_days: self.pad_range_days,
            polygon_page_size: self.polygon_page_size,
            polygon_status: self.polygon_status.clone(),
            polygon_api_key: self.polygon_api_key.clone(),
            clock: self.clock,
            yahoo_close_bar: !self.no_yahoo_close_bar,
            yahoo_live_bar: self.yahoo_live_bar.into(),
            coarse_symbols: set(&self.coarse),
            price_scale: self.price_scale.iter().cloned().collect(),
            grouped_symbols: set(&self.grouped_symbols),
        }
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = SimConfig {
        addr: SocketAddr::new(args.host, args.port),
        knobs: args.knobs(),
    };
    let sim = match market_sim::spawn(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("market-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", sim.base_url());
    // Scripts block on this line: make sure it leaves the pipe buffer now.
    if let Err(e) = std::io::stdout().flush() {
        eprintln!("market-sim: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    stop_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}
