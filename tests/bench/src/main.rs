//! `make bench`: fetch-batch's peak memory for one Polygon 1h ticker over 20 years, against the
//! same over 1 year, measured in one run (issue 8: "peak RSS of a 20-year Polygon 1h ticker
//! < 64 MB, release build").
//!
//! This process runs the real fetch-batch logic in-process (`shared::handler::App`, as the
//! Lambda main builds it); market-sim and PostgreSQL run as separate processes, so only
//! fetch-batch's memory is counted. Steps:
//!
//! 1. start market-sim (`--port 0`) and, for each range, a fresh database (migrated), an `App`
//!    and a run (`select`) of one ticker, `MEMB`;
//! 2. read the baseline: the process's peak RSS with everything set up, before any fetch;
//! 3. fetch the 1-year run until its batch is `done`, read the peak; then the 20-year run. The
//!    peak (`VmHWM`, and `ru_maxrss` as a cross-check: see [`rss`]) only ever grows, so the
//!    ranges go in ascending order and each one's growth is over the common baseline;
//! 4. only then (nothing after the last reading can raise it): rows stored against market-sim's
//!    ground truth.
//!
//! Prints a table and PASS/FAIL and writes `target/bench/memory.json`. 1 MB here is 1 MiB, as
//! in Lambda's memory sizes.
//!
//! Then, in the same run, issue 9's figures (see [`suite`]): throughput at a provider-wide limit
//! (fixed and sliding windows, 40 and 200 tickers, `max_concurrency` 1, 4, 8, 16), calls ÷
//! minimum calls, `backfill plan`'s estimate ÷ measured, upsert ÷ COPY rows/s, cold start and
//! peak RSS of the release fetch-batch binary, dollars per reference run. One line per figure
//! with its ratio and goal, printed as measured and written to `target/bench/figures.txt` and
//! `figures.json`. Exits 1 if any goal is missed (every figure is still printed and written), 2
//! if the bench itself could not run.

mod coldstart;
mod figures;
mod rss;
mod sim;
mod suite;
mod throughput;
mod writes;

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{Datelike, Days, Months, NaiveDate, Utc, Weekday};
use serde_json::json;
use shared::config::Config;
use shared::contract::{BatchStatus, FetchBatchInput, SelectTickersInput};
use shared::handler::App;
use shared::model::RunId;
use test_support::TestDb;

use figures::{Figure, Figures, Goal};
use rss::{mib, Rss};
use sim::{GroundTruthCount, MarketSim};

const SYMBOL: &str = "MEMB";
/// The goal: the 20-year run's peak RSS stays below this (MiB).
const GOAL_MIB: f64 = 64.0;
/// The ranges, in ascending order (see the module comment); the last one is the goal's.
const YEARS: [u32; 2] = [1, 20];
/// fetch-batch calls per run before the bench gives up (`partial` means "call again").
const MAX_CALLS: u32 = 100;

fn main() -> ExitCode {
    // The functions log every ticker at INFO; the bench's output is its figures. RUST_LOG=info
    // brings the functions' lines back.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    shared::telemetry::init();
    let outcome = tokio::runtime::Runtime::new()
        .context("cannot start the tokio runtime")
        .and_then(|runtime| runtime.block_on(run()));
    match outcome {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

enum Verdict {
    Pass,
    Fail,
}

/// One range's run, ready to fetch.
struct Prepared {
    years: u32,
    start: NaiveDate,
    end: NaiveDate,
    db: TestDb,
    app: App,
    run_id: RunId,
    batches: Vec<i32>,
}

/// One range's figures.
struct Measured {
    years: u32,
    start: NaiveDate,
    end: NaiveDate,
    peak: Rss,
    calls: u32,
    seconds: f64,
    rows: i64,
    truth: GroundTruthCount,
}

impl Measured {
    fn label(&self) -> String {
        match self.years {
            1 => "1 year".to_string(),
            n => format!("{n} years"),
        }
    }

    fn growth_kib(&self, baseline: &Rss) -> u64 {
        self.peak.peak_kib.saturating_sub(baseline.peak_kib)
    }

    fn rows_match(&self) -> bool {
        u64::try_from(self.rows) == Ok(self.truth.bars)
    }
}

async fn run() -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("cannot locate the bench binary")?;
    let sim = MarketSim::start(&exe.with_file_name("market-sim"))?;
    let end = end_date(Utc::now().date_naive());
    let mut figures = Figures::default();

    let report = memory(&sim, &exe).await?;
    let long = report.longest();
    figures.push(Figure::new(
        format!(
            "fetch-batch peak RSS ÷ {GOAL_MIB:.0} MB, Polygon 1h {SYMBOL} over {} (in-process)",
            long.label()
        ),
        mib(long.peak.peak_kib) / GOAL_MIB,
        Goal::AtMost(1.0),
        format!(
            "VmHWM {:.1} MiB; {} rows stored, ground truth {} bars",
            mib(long.peak.peak_kib),
            long.rows,
            long.truth.bars
        ),
    ));
    let rows_ok = report.measured.iter().filter(|m| m.rows_match()).count();
    figures.push(Figure::new(
        "memory runs whose rows match market-sim's ground truth (fraction)",
        rows_ok as f64 / report.measured.len() as f64,
        Goal::AtLeast(1.0),
        format!("{rows_ok} of {}", report.measured.len()),
    ));

    let table = suite::run(&sim, &exe, end, &mut figures).await?;

    let elapsed = started.elapsed();
    println!();
    println!("== summary");
    print!("{table}");
    let failed = figures.failed();
    let header = format!(
        "make bench, {} (UTC), {:.0} s; {} figures, {} missed their goal",
        Utc::now().format("%Y-%m-%d %H:%M"),
        elapsed.as_secs_f64(),
        figures.list.len(),
        failed
    );
    println!("{header}");
    let dir = bench_dir(&exe)?;
    figures.write(&dir, &header)?;
    println!(
        "figures: {} and {}",
        dir.join("figures.txt").display(),
        dir.join("figures.json").display()
    );
    Ok(if failed == 0 {
        Verdict::Pass
    } else {
        Verdict::Fail
    })
}

/// The memory figure (issue 8): the in-process fetch of a 1-year and a 20-year ticker. Runs
/// first, before anything else can raise this process's peak.
async fn memory(sim: &MarketSim, exe: &Path) -> anyhow::Result<Report> {
    let end = end_date(Utc::now().date_naive());

    let mut prepared = Vec::new();
    for years in YEARS {
        prepared.push(prepare(sim, years, end).await?);
    }
    let baseline = Rss::now().context("reading the baseline RSS")?;

    let mut fetched = Vec::new();
    for p in &prepared {
        let started = Instant::now();
        let calls = fetch_until_done(&p.app, &p.run_id, &p.batches)
            .await
            .with_context(|| format!("fetching the {}-year run {}", p.years, p.run_id))?;
        let seconds = started.elapsed().as_secs_f64();
        let peak = Rss::now().context("reading the peak RSS")?;
        fetched.push((calls, seconds, peak));
    }

    // After the last reading: nothing below can raise the peaks.
    let mut measured = Vec::new();
    for (p, (calls, seconds, peak)) in prepared.iter().zip(fetched) {
        let rows: i64 =
            p.db.client()
                .await
                .query_one("SELECT count(*) FROM stock_price_history", &[])
                .await
                .context("counting stored rows")?
                .get(0);
        let truth = sim.ground_truth_1h(SYMBOL, p.start, p.end).await?;
        measured.push(Measured {
            years: p.years,
            start: p.start,
            end: p.end,
            peak,
            calls,
            seconds,
            rows,
            truth,
        });
    }

    let report = Report { baseline, measured };
    report.print();
    let out = bench_dir(exe)?.join("memory.json");
    report.write(&out)?;
    println!("memory figures: {}", out.display());
    Ok(report)
}

/// `target/bench`, next to `target/release` where the bench binary is.
fn bench_dir(exe: &Path) -> anyhow::Result<std::path::PathBuf> {
    exe.parent()
        .and_then(Path::parent)
        .map(|target| target.join("bench"))
        .context("cannot find the target folder")
}

/// A recent weekday at least a week before `today`.
fn end_date(today: NaiveDate) -> NaiveDate {
    let mut end = today - Days::new(7);
    while matches!(end.weekday(), Weekday::Sat | Weekday::Sun) {
        end = end - Days::new(1);
    }
    end
}

/// A fresh database, an `App` on it and market-sim, and a run of `MEMB` over `years` up to `end`.
async fn prepare(sim: &MarketSim, years: u32, end: NaiveDate) -> anyhow::Result<Prepared> {
    let start = end
        .checked_sub_months(Months::new(12 * years))
        .context("start date out of range")?;
    let db = TestDb::new().await;
    shared::db::migrate::run(&mut db.client().await)
        .await
        .context("applying the migrations")?;
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("POLYGON_BASE_URL", sim.base_url().to_string()),
        ("POLYGON_API_KEY", sim::POLYGON_API_KEY.to_string()),
        ("PROVIDER_REQUESTS_PER_MINUTE", "600000".to_string()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned())?;
    let app = App::new(config, None)?;
    let input: SelectTickersInput = serde_json::from_value(json!({
        "symbols": [SYMBOL],
        "provider": "polygon",
        "interval": "1h",
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "batch_size": 1,
    }))?;
    let selected = app
        .select(input)
        .await
        .with_context(|| format!("select-tickers for {start}..{end}"))?;
    Ok(Prepared {
        years,
        start,
        end,
        db,
        app,
        run_id: selected.run_id,
        batches: selected.batches.iter().map(|b| b.batch).collect(),
    })
}

/// Calls fetch-batch on each batch until it is `done`, as the state machine would (without
/// waits: the simulator does not rate-limit here). Returns the number of calls.
async fn fetch_until_done(app: &App, run_id: &RunId, batches: &[i32]) -> anyhow::Result<u32> {
    let stop_at = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut calls = 0;
    for &batch in batches {
        loop {
            calls += 1;
            if calls > MAX_CALLS {
                bail!("batch {batch} not done after {MAX_CALLS} calls");
            }
            let input = FetchBatchInput {
                run_id: run_id.clone(),
                batch,
                lease_execution: None,
            };
            let out = app.fetch(input, stop_at).await?;
            match out.status {
                BatchStatus::Done => break,
                BatchStatus::Partial => continue,
                other => bail!(
                    "batch {batch} answered {} (failed {}, pending {}): see the log above",
                    other.as_str(),
                    out.failed,
                    out.pending
                ),
            }
        }
    }
    Ok(calls)
}

struct Report {
    baseline: Rss,
    measured: Vec<Measured>,
}

impl Report {
    /// The longest range (the goal's).
    fn longest(&self) -> &Measured {
        self.measured.last().expect("at least one range")
    }

    fn shortest(&self) -> &Measured {
        self.measured.first().expect("at least one range")
    }

    fn goal_met(&self) -> bool {
        mib(self.longest().peak.peak_kib) < GOAL_MIB
    }

    fn pass(&self) -> bool {
        self.goal_met() && self.measured.iter().all(Measured::rows_match)
    }

    /// Longest range over shortest: (bars, RSS growth). Growth is `None` when the shorter one
    /// did not grow at all.
    fn ratios(&self) -> (f64, Option<f64>) {
        let (long, short) = (self.longest(), self.shortest());
        let bars = long.truth.bars as f64 / short.truth.bars.max(1) as f64;
        let growth = match short.growth_kib(&self.baseline) {
            0 => None,
            g => Some(long.growth_kib(&self.baseline) as f64 / g as f64),
        };
        (bars, growth)
    }

    fn print(&self) {
        let b = &self.baseline;
        println!();
        println!(
            "fetch-batch peak memory: Polygon 1h {SYMBOL}, release build, in-process \
             (market-sim and PostgreSQL are separate processes); MB = MiB"
        );
        println!(
            "baseline (apps, pools and runs ready, before any fetch): peak RSS {:.1} MB, \
             resident now {:.1} MB",
            mib(b.peak_kib),
            mib(b.now_kib)
        );
        println!();
        println!(
            "{:<9} {:<23} {:>7} {:>11} {:>13} {:>11} {:>10} {:>7}",
            "range",
            "days",
            "bars",
            "rows stored",
            "peak RSS (MB)",
            "growth (MB)",
            "ru_maxrss",
            "fetch s"
        );
        for m in &self.measured {
            println!(
                "{:<9} {:<23} {:>7} {:>11} {:>13.1} {:>11.1} {:>10.1} {:>7.1}",
                m.label(),
                format!("{}..{}", m.start, m.end),
                m.truth.bars,
                m.rows,
                mib(m.peak.peak_kib),
                mib(m.growth_kib(b)),
                mib(m.peak.maxrss_kib),
                m.seconds
            );
        }
        let (bars, growth) = self.ratios();
        let (long, short) = (self.longest(), self.shortest());
        println!();
        println!(
            "{} / {}, ratios measured in one run: bars x{bars:.1}, RSS growth {}",
            long.label(),
            short.label(),
            growth.map_or("n/a (no growth over 1 year)".to_string(), |g| format!(
                "x{g:.1}"
            ))
        );
        let launcher_kib = long.peak.maxrss_kib.saturating_sub(long.peak.peak_kib);
        if launcher_kib > 1024 {
            println!(
                "note: ru_maxrss is {:.1} MB above VmHWM: it includes the memory of the process \
                 that launched this one (run the binary directly, not through cargo run)",
                mib(launcher_kib)
            );
        }
        for m in self.measured.iter().filter(|m| !m.rows_match()) {
            println!(
                "FAIL: {}: {} rows stored, market-sim's ground truth has {} bars",
                m.label(),
                m.rows,
                m.truth.bars
            );
        }
        println!(
            "{}: goal \"{} peak RSS < {GOAL_MIB:.0} MB\": {:.1} MB",
            if self.goal_met() { "PASS" } else { "FAIL" },
            long.label(),
            mib(long.peak.peak_kib)
        );
    }

    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let b = &self.baseline;
        let (bars, growth) = self.ratios();
        let ranges: Vec<_> = self
            .measured
            .iter()
            .map(|m| {
                json!({
                    "range": m.label(),
                    "years": m.years,
                    "start_date": m.start.to_string(),
                    "end_date": m.end.to_string(),
                    "ground_truth_bars": m.truth.bars,
                    "ground_truth_skipped": m.truth.skipped,
                    "rows_stored": m.rows,
                    "rows_match": m.rows_match(),
                    "peak_rss_mib": round(mib(m.peak.peak_kib)),
                    "rss_growth_mib": round(mib(m.growth_kib(b))),
                    "ru_maxrss_mib": round(mib(m.peak.maxrss_kib)),
                    "fetch_calls": m.calls,
                    "fetch_seconds": round(m.seconds),
                })
            })
            .collect();
        let figures = json!({
            "benchmark": "fetch-batch peak memory, one Polygon 1h ticker",
            "symbol": SYMBOL,
            "measured_at": Utc::now().to_rfc3339(),
            "unit": "MiB (1,048,576 bytes)",
            "peak_rss": "VmHWM of /proc/self/status (this program image's high-water mark); \
                         ru_maxrss (getrusage RUSAGE_SELF) also counts the launching process's",
            "baseline": {
                "peak_rss_mib": round(mib(b.peak_kib)),
                "rss_now_mib": round(mib(b.now_kib)),
                "ru_maxrss_mib": round(mib(b.maxrss_kib)),
            },
            "ranges": ranges,
            "ratios": {
                "bars_longest_over_shortest": round(bars),
                "rss_growth_longest_over_shortest": growth.map(round),
            },
            "goal": {
                "description": format!("{} peak RSS < {GOAL_MIB} MiB", self.longest().label()),
                "limit_mib": GOAL_MIB,
                "met": self.goal_met(),
            },
            "pass": self.pass(),
        });
        let dir = path.parent().context("output path has no folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Two decimals, for the JSON.
fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_is_a_weekday_at_least_a_week_back() {
        let date = |s: &str| s.parse::<NaiveDate>().unwrap();
        // Tuesday → the Tuesday before.
        assert_eq!(end_date(date("2026-12-01")), date("2026-11-24"));
        // Monday → a week back is a Monday.
        assert_eq!(end_date(date("2026-11-30")), date("2026-11-23"));
        // Saturday a week back → that Friday.
        assert_eq!(end_date(date("2026-12-05")), date("2026-11-27"));
        // Sunday a week back → that Friday.
        assert_eq!(end_date(date("2026-12-06")), date("2026-11-27"));
    }
}
