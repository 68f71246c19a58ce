//! market-sim as a separate process, so that the simulator's memory is not counted as ours.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};
use serde::de::IgnoredAny;
use serde::Deserialize;
use test_support::process::GroupChild;

/// The Polygon key the simulator accepts, and the bench's App sends.
pub const POLYGON_API_KEY: &str = "test-key";

/// A running `market-sim --port 0`; stopped (with its process group) on drop.
pub struct MarketSim {
    base_url: String,
    _process: GroupChild,
}

impl MarketSim {
    /// Starts the binary at `bin` and waits for its `listening on http://HOST:PORT` line.
    pub fn start(bin: &Path) -> anyhow::Result<MarketSim> {
        if !bin.is_file() {
            bail!(
                "no market-sim binary at {} (make bench builds it: cargo build --release -p market-sim)",
                bin.display()
            );
        }
        let mut process = GroupChild::spawn(
            Command::new(bin)
                .args(["--port", "0", "--polygon-api-key", POLYGON_API_KEY])
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        )
        .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = process
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| anyhow!("market-sim's stdout is not piped"))?;
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .context("reading market-sim's first line")?;
        let base_url = first
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("market-sim's first line was {first:?}, not `listening on …`"))?
            .to_string();
        // Whatever it prints later must not fill the pipe and block it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Ok(MarketSim {
            base_url,
            _process: process,
        })
    }

    /// `http://HOST:PORT`, for `POLYGON_BASE_URL`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /__admin/reset` (start-up knobs, counters and rate-limit windows cleared), then
    /// `POST /__admin/knobs` with `knobs` (a partial object, merged).
    pub async fn reset_with(&self, knobs: serde_json::Value) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        for (path, body) in [("reset", serde_json::json!({})), ("knobs", knobs)] {
            let url = format!("{}/__admin/{path}", self.base_url);
            let response = http
                .post(&url)
                .json(&body)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            if !response.status().is_success() {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                bail!("POST {url} {body}: {status} {text}");
            }
        }
        Ok(())
    }

    /// `GET /__admin/requests`: what the simulator answered since the last reset.
    pub async fn requests(&self) -> anyhow::Result<Requests> {
        let url = format!("{}/__admin/requests", self.base_url);
        reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("GET {url}: not the requests report"))
    }

    /// How many bars a correct client stores for `symbol`'s Polygon 1h bars over the days
    /// `start..=end` (`GET /__admin/ground-truth`), and how many it skips.
    pub async fn ground_truth_1h(
        &self,
        symbol: &str,
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    ) -> anyhow::Result<GroundTruthCount> {
        // The bars themselves are not needed: counted without being kept.
        #[derive(Deserialize)]
        struct Answer {
            bars: Vec<IgnoredAny>,
            skipped: u64,
        }
        let url = format!("{}/__admin/ground-truth", self.base_url);
        let (start, end) = (start.to_string(), end.to_string());
        let answer: Answer = reqwest::Client::new()
            .get(&url)
            .query(&[
                ("provider", "polygon"),
                ("symbol", symbol),
                ("interval", "1h"),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("GET {url}: not the ground-truth JSON"))?;
        Ok(GroundTruthCount {
            bars: answer.bars.len() as u64,
            skipped: answer.skipped,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GroundTruthCount {
    pub bars: u64,
    pub skipped: u64,
}

/// The parts of market-sim's request report the bench reads.
#[derive(Debug, Deserialize)]
pub struct Requests {
    by_path: Vec<PathCount>,
    /// The rate limiter's 429s per provider (absent in a market-sim without sliding windows).
    #[serde(default)]
    rate_limited: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct PathCount {
    path: String,
    status: u16,
    count: u64,
}

/// Polygon's per-ticker aggregates (`next_url` pages included).
pub const POLYGON_AGGS: &str = "/v2/aggs/ticker/";
/// Polygon's grouped daily endpoint (one request per day, every US stock).
pub const POLYGON_GROUPED: &str = "/v2/aggs/grouped/";

impl Requests {
    /// Requests answered with a 200 (accepted and served) whose path starts with `prefix`.
    pub fn accepted(&self, prefix: &str) -> u64 {
        self.count(prefix, |s| s == 200)
    }

    /// Requests whose path starts with `prefix`, whatever the answer.
    pub fn count(&self, prefix: &str, status: impl Fn(u16) -> bool) -> u64 {
        self.by_path
            .iter()
            .filter(|p| p.path.starts_with(prefix) && status(p.status))
            .map(|p| p.count)
            .sum()
    }

    /// 429s from the rate limiter for `provider` (`polygon`, `yahoo`).
    pub fn rate_limited(&self, provider: &str) -> u64 {
        self.rate_limited.get(provider).copied().unwrap_or(0)
    }
}
