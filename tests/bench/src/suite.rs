//! Issue 9's figures, measured in the same run as the memory figure: throughput at a
//! provider-wide limit, calls ÷ minimum calls, the plan's estimate, upsert ÷ COPY, cold start and
//! peak RSS of the release fetch-batch, and dollars per reference run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde_json::json;
use test_support::TestDb;

use crate::coldstart;
use crate::figures::{Figure, Figures, Goal};
use crate::rss::mib;
use crate::sim::{MarketSim, POLYGON_AGGS, POLYGON_GROUPED};
use crate::throughput::{self, Function, Limit, RunResult, RunSpec};
use crate::writes;

/// market-sim's provider-wide limit: 100 requests per 10 s (10 per second). Short windows keep
/// the matrix within the 15-minute budget (≈ 2 × 4 × 240 calls ÷ 10/s ≈ 3.2 minutes at the
/// limit) while a window still holds many requests, and one worker can keep up with it (checked
/// by the calibration figure).
const LIMIT_REQUESTS: u32 = 100;
const LIMIT_WINDOW_SECONDS: u64 = 10;
/// The functions' `PROVIDER_REQUESTS_PER_MINUTE`: 95 % of market-sim's limit, the margin a
/// deployment keeps below a provider's published limit. The ideal time is computed from
/// market-sim's real limit, so this margin counts against the wall ÷ ideal goal (≥ 1.053).
const BUDGET_SHARE: f64 = 0.95;
const KINDS: [&str; 2] = ["fixed", "sliding"];
const TICKERS: [usize; 2] = [40, 200];
const CONCURRENCY: [usize; 4] = [1, 4, 8, 16];
/// Weekdays in the matrix's window: short, one Polygon page per ticker.
const MATRIX_WEEKDAYS: u32 = 5;

const GOAL_WALL: f64 = 1.10;
const GOAL_429_PER_CALL: f64 = 0.05;
const GOAL_ESTIMATE: f64 = 0.15;
const GOAL_UPSERT: f64 = 0.6;

/// Lambda list prices, x86_64, us-east-1, first tier:
/// $0.0000166667 per GB-second and $0.20 per million requests
/// (https://aws.amazon.com/lambda/pricing/; the same in
/// https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html).
/// Duration is billed per invocation, rounded up to the millisecond.
const LAMBDA_GB_SECOND: f64 = 0.000_016_666_7;
const LAMBDA_REQUEST: f64 = 0.20 / 1_000_000.0;
/// Step Functions Standard, us-east-1: $0.025 per 1,000 state transitions
/// (https://aws.amazon.com/step-functions/pricing/).
const SFN_TRANSITION: f64 = 0.025 / 1_000.0;
/// The functions' memory (the deployment's default), in GB as Lambda bills it (1 GB = 1024 MB).
const LAMBDA_MEMORY_MB: f64 = 128.0;

fn limit(kind: &'static str) -> Limit {
    Limit {
        kind,
        requests: LIMIT_REQUESTS,
        window_seconds: LIMIT_WINDOW_SECONDS,
    }
}

/// `PROVIDER_REQUESTS_PER_MINUTE` for the bench's limit.
fn budget_per_minute() -> u32 {
    let per_minute = f64::from(LIMIT_REQUESTS) * 60.0 / LIMIT_WINDOW_SECONDS as f64;
    (per_minute * BUDGET_SHARE).floor() as u32
}

/// The `n` weekdays ending on `end` (a weekday): (start, end).
fn weekdays_back(end: NaiveDate, n: u32) -> (NaiveDate, NaiveDate) {
    let mut start = end;
    let mut left = n.saturating_sub(1);
    while left > 0 {
        start = start - Days::new(1);
        if !matches!(start.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    (start, end)
}

/// One matrix cell's figures.
struct Cell {
    kind: &'static str,
    tickers: usize,
    concurrency: usize,
    result: RunResult,
    ideal: f64,
    estimate: Option<f64>,
}

impl Cell {
    fn wall(&self) -> f64 {
        self.result.wall.as_secs_f64()
    }

    fn per_call_429(&self) -> f64 {
        self.result.rate_limited_429 as f64 / self.result.calls.max(1) as f64
    }
}

pub async fn run(
    sim: &MarketSim,
    exe: &Path,
    end: NaiveDate,
    figures: &mut Figures,
) -> anyhow::Result<String> {
    let mut table = String::new();
    let backfill = exe.with_file_name("backfill");
    anyhow::ensure!(
        backfill.is_file(),
        "no backfill CLI at {} (make bench builds it: cargo build --release -p statemachine)",
        backfill.display()
    );
    let (start, end) = weekdays_back(end, MATRIX_WEEKDAYS);
    let rpm = budget_per_minute();
    let limit_per_second = limit("sliding").per_second();
    println!();
    println!(
        "throughput: market-sim limit {LIMIT_REQUESTS} requests per {LIMIT_WINDOW_SECONDS} s \
         ({limit_per_second}/s, Polygon, provider-wide), PROVIDER_REQUESTS_PER_MINUTE {rpm} \
         ({:.0} % of it); Polygon 1h, {start}..{end} ({MATRIX_WEEKDAYS} weekdays)",
        BUDGET_SHARE * 100.0
    );

    // Calibration: one worker, no limit. What one ticker's fetch and store take bounds the rate
    // one worker can sustain; the limit must be well below it, or the matrix measures the
    // worker instead of the budget.
    let symbols = throughput::symbols("C", 40)?;
    let calibration = throughput::run(
        sim,
        &RunSpec {
            symbols: symbols.clone(),
            start,
            end,
            batch_size: Some(40),
            max_concurrency: 1,
            requests_per_minute: 600_000,
            limit: None,
        },
        "calibration",
    )
    .await?;
    let per_ticker = fetch_seconds(&calibration) / symbols.len() as f64;
    figures.push(Figure::new(
        "calibration: the limit ÷ one worker's unlimited rate",
        limit_per_second * per_ticker,
        Goal::AtMost(0.5),
        format!(
            "one worker fetches and stores a ticker in {:.1} ms (40 tickers, no limit): \
             {:.0} tickers/s against a limit of {limit_per_second}/s",
            per_ticker * 1000.0,
            1.0 / per_ticker.max(1e-9)
        ),
    ));

    let mut cells = Vec::new();
    for kind in KINDS {
        for tickers in TICKERS {
            let symbols = throughput::symbols(&kind[..1].to_uppercase(), tickers)?;
            for concurrency in CONCURRENCY {
                // At least as many batches as workers, all of equal size where possible.
                let batch_size = (tickers / concurrency).max(1) as i64;
                let spec = RunSpec {
                    symbols: symbols.clone(),
                    start,
                    end,
                    batch_size: Some(batch_size),
                    max_concurrency: concurrency,
                    requests_per_minute: rpm,
                    limit: Some(limit(kind)),
                };
                let label = format!("{kind}-{tickers}-c{concurrency}");
                let result = throughput::run(sim, &spec, &label)
                    .await
                    .with_context(|| format!("throughput run {label}"))?;
                let ideal = result.calls as f64 / limit_per_second;
                let estimate = throughput::plan_seconds(&backfill, &spec);
                let cell = Cell {
                    kind,
                    tickers,
                    concurrency,
                    result,
                    ideal,
                    estimate: estimate.as_ref().ok().copied(),
                };
                push_cell(figures, &cell, estimate.err());
                cells.push(cell);
            }
        }
    }
    let calls: u64 = cells.iter().map(|c| c.result.calls).sum();
    let minimum: usize = cells.iter().map(|c| c.tickers).sum();
    figures.push(Figure::new(
        "calls ÷ minimum calls, per-ticker strategy",
        calls as f64 / minimum as f64,
        Goal::AtMost(1.0),
        format!(
            "{calls} accepted requests for {minimum} tickers over the {} matrix runs; \
             minimum: 1 per ticker ({MATRIX_WEEKDAYS} weekdays of 1h bars fit one Polygon page)",
            cells.len()
        ),
    ));
    let _ = writeln!(
        table,
        "throughput at {LIMIT_REQUESTS}/{LIMIT_WINDOW_SECONDS}s (budget {rpm}/min):"
    );
    let _ = writeln!(
        table,
        "  {:<8} {:>7} {:>4} {:>7} {:>6} {:>5} {:>8} {:>8} {:>10} {:>6} {:>10} {:>11}",
        "window",
        "tickers",
        "conc",
        "batches",
        "calls",
        "429s",
        "wall s",
        "ideal s",
        "wall/ideal",
        "429/c",
        "estimate s",
        "est/wall"
    );
    for c in &cells {
        let _ = writeln!(
            table,
            "  {:<8} {:>7} {:>4} {:>7} {:>6} {:>5} {:>8.1} {:>8.1} {:>10.3} {:>6.3} {:>10} {:>11}",
            c.kind,
            c.tickers,
            c.concurrency,
            c.result.batches,
            c.result.calls,
            c.result.rate_limited_429,
            c.wall(),
            c.ideal,
            c.wall() / c.ideal.max(1e-9),
            c.per_call_429(),
            c.estimate.map_or("n/a".into(), |e| format!("{e:.1}")),
            c.estimate
                .map_or("n/a".into(), |e| format!("{:.3}", e / c.wall().max(1e-9))),
        );
    }

    // Dollars per reference run: the original's full run, 200 tickers × 2 months hourly, with
    // the functions' defaults (batch_size 50, max_concurrency 4), at the bench's limit.
    let reference_end = end;
    let reference_start = reference_end
        .checked_sub_months(chrono::Months::new(2))
        .context("reference start")?;
    let reference = throughput::run(
        sim,
        &RunSpec {
            symbols: throughput::symbols("R", 200)?,
            start: reference_start,
            end: reference_end,
            batch_size: None,
            max_concurrency: 4,
            requests_per_minute: rpm,
            limit: Some(limit("sliding")),
        },
        "reference",
    )
    .await
    .context("the reference run")?;
    let cost = Cost::of(&reference);
    figures.push(Figure::new(
        "dollars per reference run (200 tickers × 2 months 1h, list prices)",
        cost.total(),
        Goal::Info,
        cost.describe(&reference, reference_start, reference_end),
    ));
    let _ = writeln!(
        table,
        "reference run {reference_start}..{reference_end}: {} tickers, {} batches, {} calls, \
         wall {:.1} s, {} invocations, {:.1} GB-s, {} transitions, ${:.5}",
        reference.tickers,
        reference.batches,
        reference.calls,
        reference.wall.as_secs_f64(),
        reference.invocations.len(),
        cost.gb_seconds,
        cost.transitions,
        cost.total()
    );

    grouped(sim, end, figures, &mut table).await?;

    println!();
    println!(
        "writes: {} rows ({} symbols × {} hourly bars), median of {}",
        writes::SYMBOLS * writes::BARS_PER_SYMBOL,
        writes::SYMBOLS,
        writes::BARS_PER_SYMBOL,
        writes::REPEATS
    );
    let rates = writes::measure().await?;
    figures.push(Figure::new(
        "upsert ÷ COPY rows/s",
        rates.upsert / rates.copy_per_symbol,
        Goal::AtLeast(GOAL_UPSERT),
        format!(
            "shared::db::prices::upsert_bars {:.0} rows/s, binary COPY into stock_price_history \
             {:.0} rows/s (both one transaction per symbol, {} rows, fresh databases)",
            rates.upsert, rates.copy_per_symbol, rates.rows
        ),
    ));
    figures.push(Figure::new(
        "upsert ÷ one binary COPY of every row, rows/s",
        rates.upsert / rates.copy_one,
        Goal::Info,
        format!(
            "a single COPY in one transaction: {:.0} rows/s",
            rates.copy_one
        ),
    ));
    let _ = writeln!(
        table,
        "writes: upsert {:.0} rows/s, COPY per symbol {:.0} rows/s, one COPY {:.0} rows/s",
        rates.upsert, rates.copy_per_symbol, rates.copy_one
    );

    cold_start(sim, exe, end, figures, &mut table).await?;
    Ok(table)
}

fn push_cell(figures: &mut Figures, c: &Cell, estimate_error: Option<anyhow::Error>) {
    let name = format!(
        "{} window, {} tickers, max_concurrency {}",
        c.kind, c.tickers, c.concurrency
    );
    let r = &c.result;
    figures.push(Figure::new(
        format!("wall ÷ ideal, {name}"),
        c.wall() / c.ideal.max(1e-9),
        Goal::AtMost(GOAL_WALL),
        format!(
            "wall {:.2} s (select → finalize), ideal {:.2} s = {} calls ÷ {}/s; {} batches, \
             {} fetch-batch invocations ({} budget waits, {} rate-limit rounds, {} partial, \
             {} unavailable), run {}",
            c.wall(),
            c.ideal,
            r.calls,
            limit(c.kind).per_second(),
            r.batches,
            r.fetch_invocations(),
            r.budget_waits,
            r.rate_limited,
            r.partial,
            r.unavailable,
            r.run_status
        ),
    ));
    figures.push(Figure::new(
        format!("429s per call, {name}"),
        c.per_call_429(),
        Goal::AtMost(GOAL_429_PER_CALL),
        format!("{} 429s for {} accepted calls", r.rate_limited_429, r.calls),
    ));
    let estimate_name = format!("`backfill plan` estimate ÷ measured, {name}");
    match (c.estimate, estimate_error) {
        (Some(e), _) => figures.push(Figure::new(
            estimate_name,
            e / c.wall().max(1e-9),
            Goal::Near(GOAL_ESTIMATE),
            format!("estimate {e:.2} s, measured {:.2} s", c.wall()),
        )),
        (None, e) => figures.push(Figure::unavailable(
            estimate_name,
            Goal::Near(GOAL_ESTIMATE),
            format!("the plan refused the request: {e:?}"),
        )),
    }
}

/// The run's fetch-batch time (summed over invocations).
fn fetch_seconds(r: &RunResult) -> f64 {
    r.invocations
        .iter()
        .filter(|i| i.function == Function::Fetch)
        .map(|i| i.duration.as_secs_f64())
        .sum()
}

/// What a run costs at list prices.
struct Cost {
    invocations: usize,
    billed_ms: u64,
    gb_seconds: f64,
    transitions: u64,
}

impl Cost {
    fn of(r: &RunResult) -> Cost {
        // Billed duration: each invocation's, rounded up to the millisecond.
        let billed_ms: u64 = r
            .invocations
            .iter()
            .map(|i| i.duration.as_micros().div_ceil(1000) as u64)
            .sum();
        Cost {
            invocations: r.invocations.len(),
            billed_ms,
            gb_seconds: billed_ms as f64 / 1000.0 * LAMBDA_MEMORY_MB / 1024.0,
            transitions: r.transitions(),
        }
    }

    fn lambda(&self) -> f64 {
        self.gb_seconds * LAMBDA_GB_SECOND + self.invocations as f64 * LAMBDA_REQUEST
    }

    fn step_functions(&self) -> f64 {
        self.transitions as f64 * SFN_TRANSITION
    }

    fn total(&self) -> f64 {
        self.lambda() + self.step_functions()
    }

    fn describe(&self, r: &RunResult, start: NaiveDate, end: NaiveDate) -> String {
        format!(
            "measured at the bench's limit ({LIMIT_REQUESTS}/{LIMIT_WINDOW_SECONDS}s sliding, \
             batch_size 50, max_concurrency 4, Polygon {start}..{end}): Lambda {} invocations, \
             {} ms billed at {LAMBDA_MEMORY_MB} MB = {:.2} GB-s, ${:.6}; Step Functions {} \
             transitions (counted from the driver's calls mapped onto backfill.asl.json's \
             states), ${:.6}; fetch-batch's billed time includes its waits for the shared \
             budget (at most RATE_BUDGET_MAX_WAIT_SECONDS each), so a provider's slower default \
             limit would bill more fetch-batch seconds per call",
            self.invocations,
            self.billed_ms,
            self.gb_seconds,
            self.lambda(),
            self.transitions,
            self.step_functions()
        ) + &format!(", {} calls", r.calls)
    }
}

/// Issue 9, grouped: calls ÷ minimum calls for Polygon's grouped daily strategy (`strategy:
/// "grouped"`, market-sim's `/v2/aggs/grouped/locale/us/market/stocks/{date}`): 300 tickers over
/// 10 weekdays of 1d bars, whose minimum is one request per weekday. Reported as not available
/// (without failing the bench) where the tree has no such strategy yet.
async fn grouped(
    sim: &MarketSim,
    end: NaiveDate,
    figures: &mut Figures,
    table: &mut String,
) -> anyhow::Result<()> {
    const NAME: &str = "calls ÷ minimum calls, grouped strategy (300 tickers × 10 weekdays 1d)";
    let (start, end) = weekdays_back(end, 10);
    let weekdays = 10u64;
    // market-sim's grouped answers list a built-in universe that includes SYN0000..SYN0999.
    let symbols = (0..300)
        .map(|i| shared::model::Symbol::parse(&format!("SYN{i:04}")))
        .collect::<Result<Vec<_>, _>>()?;
    let input = json!({
        "symbols": symbols.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "provider": "polygon",
        "interval": "1d",
        "strategy": "grouped",
        "start_date": start.to_string(),
        "end_date": end.to_string(),
        "register_tickers": true,
        "max_concurrency": 1,
    });
    let unavailable =
        |why: String| Figure::unavailable(NAME, Goal::AtMost(1.0), format!("not available: {why}"));
    let input: shared::contract::SelectTickersInput = match serde_json::from_value(input) {
        Ok(input) => input,
        Err(e) => {
            figures.push(unavailable(format!(
                "the run request has no strategy ({e})"
            )));
            return Ok(());
        }
    };
    let db = TestDb::new().await;
    shared::db::migrate::run(&mut db.client().await)
        .await
        .context("applying the migrations")?;
    sim.reset_with(json!({})).await?;
    let vars = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("POLYGON_BASE_URL", sim.base_url().to_string()),
        ("POLYGON_API_KEY", crate::sim::POLYGON_API_KEY.to_string()),
        ("PROVIDER_REQUESTS_PER_MINUTE", "600000".to_string()),
    ]);
    let config = shared::config::Config::from_lookup(|k| vars.get(k).cloned())?;
    let app = shared::handler::App::new(config, None)?;
    let selected = match app.select(input).await {
        Ok(s) => s,
        Err(e) => {
            figures.push(unavailable(format!("select-tickers refused it: {e}")));
            return Ok(());
        }
    };
    let started = Instant::now();
    for b in &selected.batches {
        let mut calls = 0;
        loop {
            calls += 1;
            anyhow::ensure!(calls < 1000, "grouped batch {} never done", b.batch);
            let out = app
                .fetch(
                    shared::contract::FetchBatchInput {
                        run_id: selected.run_id.clone(),
                        batch: b.batch,
                        lease_execution: None,
                    },
                    tokio::time::Instant::now() + Duration::from_secs(870),
                )
                .await?;
            match out.status {
                shared::contract::BatchStatus::Done => break,
                shared::contract::BatchStatus::Stalled => {
                    anyhow::bail!("grouped batch {} stalled", b.batch)
                }
                s if s.waits() => {
                    tokio::time::sleep(Duration::from_secs(out.retry_after_seconds.unwrap_or(1)))
                        .await
                }
                _ => {}
            }
        }
    }
    let finalized = app
        .finalize(shared::contract::FinalizeRunInput {
            run_id: selected.run_id.clone(),
            lease_execution: None,
            batch_results: None,
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let requests = sim.requests().await?;
    let grouped_calls = requests.accepted(POLYGON_GROUPED);
    let ticker_calls = requests.accepted(POLYGON_AGGS);
    if grouped_calls == 0 {
        figures.push(unavailable(format!(
            "the run made no grouped request ({ticker_calls} per-ticker requests instead)"
        )));
        return Ok(());
    }
    let calls = grouped_calls + ticker_calls;
    let stored: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM stock_price_history", &[])
        .await?
        .get(0);
    figures.push(Figure::new(
        NAME,
        calls as f64 / weekdays as f64,
        Goal::AtMost(1.0),
        format!(
            "{grouped_calls} grouped + {ticker_calls} per-ticker requests for {} tickers over \
             {start}..{end} ({weekdays} weekdays, holidays included), {stored} rows stored, \
             {seconds:.1} s",
            symbols.len()
        ),
    ));
    figures.push(Figure::new(
        "grouped run: tickers stored ÷ tickers requested",
        finalized.success as f64 / symbols.len() as f64,
        Goal::AtLeast(1.0),
        format!(
            "run {}: {} success, {} failed, {} pending",
            finalized.status.as_str(),
            finalized.success,
            finalized.failed,
            finalized.pending
        ),
    ));
    let _ = writeln!(
        table,
        "grouped: {calls} calls for {weekdays} weekdays × {} tickers, {stored} rows, run {}",
        symbols.len(),
        finalized.status.as_str()
    );
    Ok(())
}

/// Cold start (median of 5) and peak RSS of one real invocation of the release fetch-batch.
async fn cold_start(
    sim: &MarketSim,
    exe: &Path,
    end: NaiveDate,
    figures: &mut Figures,
    table: &mut String,
) -> anyhow::Result<()> {
    let bin = exe.with_file_name("fetch-batch");
    anyhow::ensure!(
        bin.is_file(),
        "no fetch-batch binary at {} (make bench builds it: cargo build --release -p fetch-batch)",
        bin.display()
    );
    // A real run to serve: one batch of 50 tickers × 2 months hourly (the reference run's
    // batch), selected in-process; the binary fetches it from market-sim, unlimited.
    let db = TestDb::new().await;
    shared::db::migrate::run(&mut db.client().await)
        .await
        .context("applying the migrations")?;
    sim.reset_with(json!({})).await?;
    let start = end
        .checked_sub_months(chrono::Months::new(2))
        .context("start")?;
    let spec = RunSpec {
        symbols: throughput::symbols("K", 50)?,
        start,
        end,
        batch_size: Some(50),
        max_concurrency: 1,
        requests_per_minute: 600_000,
        limit: None,
    };
    let vars = spec.vars(&db, sim);
    let config = shared::config::Config::from_lookup(|k| vars.get(k).cloned())?;
    let app = shared::handler::App::new(config, None)?;
    let selected = app.select(spec.input("bench-coldstart")?).await?;
    let event = json!({
        "run_id": selected.run_id.to_string(),
        "batch": selected.batches.first().context("no batch")?.batch,
        "lease_execution": "bench-coldstart",
    });

    let mut starts = Vec::new();
    for _ in 0..4 {
        starts.push(coldstart::start(&bin, &vars, None).await?.cold_start);
    }
    let served = coldstart::start(&bin, &vars, Some(event)).await?;
    starts.push(served.cold_start);
    starts.sort();
    let median = starts[starts.len() / 2];
    let (body, peak_kib) = served.invocation.context("the invocation was not served")?;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or(json!({"raw": body}));
    figures.push(Figure::new(
        "cold start of the release fetch-batch, ms (spawn → first Runtime API poll, median of 5)",
        median.as_secs_f64() * 1000.0,
        Goal::Info,
        format!(
            "all five: {}",
            starts
                .iter()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    figures.push(Figure::new(
        "peak RSS of the release fetch-batch ÷ 128 MB (one invocation: 50 tickers × 2 months 1h)",
        mib(peak_kib) / LAMBDA_MEMORY_MB,
        Goal::AtMost(1.0),
        format!(
            "VmHWM {:.1} MiB after the invocation answered status {}, {} rows inserted",
            mib(peak_kib),
            answer["status"],
            answer["records_inserted"]
        ),
    ));
    let _ = writeln!(
        table,
        "release fetch-batch: cold start {:.1} ms (median of 5), peak RSS {:.1} MiB",
        median.as_secs_f64() * 1000.0,
        mib(peak_kib)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_back_skips_weekends() {
        let date = |s: &str| s.parse::<NaiveDate>().unwrap();
        // Tuesday back 5 weekdays: from the Wednesday before.
        assert_eq!(
            weekdays_back(date("2026-11-24"), 5),
            (date("2026-11-18"), date("2026-11-24"))
        );
        assert_eq!(
            weekdays_back(date("2026-11-24"), 1),
            (date("2026-11-24"), date("2026-11-24"))
        );
    }

    #[test]
    fn the_budget_is_95_percent_of_the_limit() {
        assert_eq!(budget_per_minute(), 570);
    }
}
