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
