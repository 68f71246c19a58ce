//! `backfill plan …`: what a `start` with the same flags would do, writing nothing. The selection
//! runs in a read-only transaction that is rolled back (an explicit list needs no database).

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;
use shared::config::RunDefaults;
use shared::contract::{BatchOutcome, BatchRef, SelectTickersOutput};
use shared::db::selection;
use shared::handler::select_tickers::MAX_BATCHES;
use shared::model::{Interval, ProviderKind, RunId, Selection, Symbol};
use tokio_postgres::Client;

use super::request::{
    defaults_from_env, new_run_input, provider_is_known, validate_new_run, ValidRun,
};
use super::{render, status, PlanArgs};
use crate::error::{exit, CliError};
use crate::store;

/// Step Functions' cap on a state's input/output.
pub const PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;
/// Step Functions' cap on one execution's history.
pub const HISTORY_EVENTS_QUOTA: i64 = 25_000;
/// Polygon aggregates: bars per page (`limit`).
pub const POLYGON_PAGE_BARS: i64 = shared::provider::polygon::PAGE_BARS as i64;
/// Parent execution, measured on the local stack (34): ExecutionStarted, the input's way to
/// SelectTickers (PrepareSelection, IsTheInputAnObject, WithLease: 2 each), SelectTickers (5), the
/// AnyBatches Choice (2), PlanLanes (2), the Distributed Map over lanes (MapStateEntered,
/// MapRunStarted, MapRunSucceeded, MapStateExited), CollectBatchResults (2), FinalizeRun (5), the
/// final Choice (2), the end (2), ExecutionSucceeded.
pub const PARENT_EVENTS: i64 = 34;
/// A lane's child execution (it runs its batches one after another as a nested map run).
pub const LANE_EVENTS: i64 = 8;
/// Child execution (one batch): ExecutionStarted + the closing Pass (2) + ExecutionSucceeded.
pub const BATCH_FIXED_EVENTS: i64 = 4;
/// One FetchBatch invocation: the Task (5) and the Choice after it (2).
pub const EVENTS_PER_INVOCATION: i64 = 7;
/// One rate-limit round: CountRateLimitRound (2), WaitOutRateLimit (2), and the next invocation (7).
pub const EVENTS_PER_RATE_LIMIT_ROUND: i64 = 11;
/// Tickers listed in the text output.
const SHOWN_SYMBOLS: usize = 30;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub tickers: usize,
    pub symbols: Vec<String>,
    pub selection: Selection,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub days: i64,
    pub weekdays: i64,
    pub interval: Interval,
    pub provider: ProviderKind,
    /// False when neither --provider nor PRICE_PROVIDER is given here: the functions' default
    /// decides, and this plan assumed Yahoo.
    pub provider_known: bool,
    pub batch_size: i32,
    pub batches: i64,
    pub max_batches: i32,
    pub max_concurrency: i64,
    pub max_rate_limit_rounds: i64,
    pub provider_calls: ProviderCalls,
    pub duration: DurationEstimate,
    pub step_functions: StepFunctionsEstimate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderCalls {
    pub per_ticker: i64,
    pub total: i64,
    /// Upper bound: trading hours of every weekday, holidays included.
    pub bars_per_ticker: i64,
    pub rows: i64,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationEstimate {
    /// `PROVIDER_REQUESTS_PER_MINUTE`, or the provider's default pacing.
    pub requests_per_minute_per_instance: u32,
    /// fetch-batch instances at once: min(max_concurrency, batches).
    pub concurrent_instances: i64,
    /// Rounds of concurrent batches: ceil(batches / concurrent_instances).
    pub waves: i64,
    pub calls_per_batch: i64,
    pub seconds: f64,
    pub formula: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFunctionsEstimate {
    pub batches: i64,
    /// select-tickers' output (the Map's items).
    pub select_output_bytes: usize,
    /// The Map's results, at their largest.
    pub map_results_bytes: usize,
    /// The state FinalizeRun receives: both of the above.
    pub largest_state_bytes: usize,
    pub payload_limit_bytes: usize,
    pub parent_events: i64,
    /// FetchBatch invocations per batch without rate limits (`partial` loops included).
    pub invocations_per_batch: i64,
    pub invocation_budget_seconds: u64,
    pub events_per_batch: i64,
    pub events_per_batch_at_round_bound: i64,
    pub events_quota: i64,
}

pub async fn run(args: &PlanArgs) -> Result<u8, CliError> {
    let run_id = RunId::new_now();
    let input = new_run_input(&args.selection, &args.execution, run_id.clone())?;
    let defaults = defaults_from_env()?;
    let provider_known = provider_is_known(&input);
    let valid = validate_new_run(
        &input,
        &defaults,
        provider_known,
        shared::model::today_utc(),
    )?;
    let symbols = match &valid.request.selection {
        Selection::Explicit { symbols } => symbols.clone(),
        other => {
            let mut client = store::connect_from_env().await?;
            resolve_read_only(&mut client, other).await?
        }
    };
    let plan = compute(&valid, &defaults, provider_known, &symbols, &run_id);
    if args.json {
        println!("{}", status::to_json(&plan)?);
    } else {
        print!("{}", render_plan(&plan));
    }
    if plan.batches > i64::from(MAX_BATCHES) {
        eprintln!(
            "error: {} batches exceed the cap of {MAX_BATCHES}: `start` with these flags would be rejected; raise --batch-size",
            plan.batches
        );
        return Ok(exit::USAGE);
    }
    Ok(exit::OK)
}

/// The selection in a read-only transaction, rolled back: nothing can be written.
pub async fn resolve_read_only(
    client: &mut Client,
    sel: &Selection,
) -> Result<Vec<Symbol>, CliError> {
    let tx = client.build_transaction().read_only(true).start().await?;
    let symbols = selection::resolve(&tx, sel).await?;
    tx.rollback().await?;
    Ok(symbols)
}

/// `i64::div_ceil` is unstable; these counts are never negative.
fn div_ceil(a: i64, b: i64) -> i64 {
    (a + b - 1) / b.max(1)
}

fn weekdays(start: NaiveDate, end: NaiveDate) -> i64 {
    start
        .iter_days()
        .take_while(|d| *d <= end)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .count() as i64
}

/// The estimates, from the validated request and the resolved tickers.
pub fn compute(
    valid: &ValidRun,
    defaults: &RunDefaults,
    provider_known: bool,
    symbols: &[Symbol],
    run_id: &RunId,
) -> Plan {
    let req = &valid.request;
    let params = &valid.params;
    let tickers = symbols.len() as i64;
    let batch_size = i64::from(req.batch_size.max(1));
    let batches = div_ceil(tickers, batch_size);
    let days = req.range.days();
    let weekdays = weekdays(req.range.start(), req.range.end());

    // Yahoo serves the regular session (7 hourly bars); Polygon adds extended hours (16).
    let bars_per_day = match (req.interval, req.provider) {
        (Interval::Day, _) => 1,
        (Interval::Hour, ProviderKind::Yahoo) => 7,
        (Interval::Hour, ProviderKind::Polygon) => 16,
    };
    let bars_per_ticker = weekdays * bars_per_day;
    let (per_ticker, rule) = match req.provider {
        ProviderKind::Yahoo => (1, "Yahoo: one ranged chart request per ticker".to_string()),
        ProviderKind::Polygon => (
            div_ceil(bars_per_ticker, POLYGON_PAGE_BARS).max(1),
            format!("Polygon: ceil(bars / {POLYGON_PAGE_BARS}) pages per ticker"),
        ),
    };
    let provider_calls = ProviderCalls {
        per_ticker,
        total: tickers * per_ticker,
        bars_per_ticker,
        rows: tickers * bars_per_ticker,
        rule,
    };

    let rpm = defaults.requests_per_minute_for(req.provider).max(1);
    let instances = params.max_concurrency.min(batches).max(1);
    let waves = div_ceil(batches, instances);
    let calls_per_batch = batch_size.min(tickers) * per_ticker;
    let seconds_per_batch = calls_per_batch as f64 * 60.0 / f64::from(rpm);
    let seconds = waves as f64 * seconds_per_batch;
    let duration = DurationEstimate {
        requests_per_minute_per_instance: rpm,
        concurrent_instances: instances,
        waves,
        calls_per_batch,
        seconds,
        formula: format!(
            "ceil(batches {batches} / instances {instances}) × calls per batch {calls_per_batch} × 60 s / {rpm} requests per minute = {}",
            render::duration(seconds)
        ),
    };

    let budget = defaults.fallback_budget.as_secs().max(1);
    let invocations = ((seconds_per_batch / budget as f64).ceil() as i64).max(1);
    let events_per_batch = BATCH_FIXED_EVENTS + EVENTS_PER_INVOCATION * invocations;
    let select_output = SelectTickersOutput {
        run_id: run_id.clone(),
        batches: (0..batches as i32)
            .map(|batch| BatchRef {
                run_id: run_id.clone(),
                batch,
            })
            .collect(),
        tickers,
        requested: tickers,
        skipped: 0,
        resumed: false,
        start_date: req.range.start().to_string(),
        end_date: req.range.end().to_string(),
        interval: req.interval,
        provider: req.provider,
        batch_size,
        max_concurrency: params.max_concurrency,
        max_rate_limit_rounds: params.max_rate_limit_rounds,
    };
    let select_output_bytes = serde_json::to_vec(&select_output).map_or(0, |v| v.len());
    let widest_outcome = BatchOutcome {
        batch: (batches.max(1) - 1) as i32,
        outcome: "rate_limit_rounds_exhausted".into(),
        error: Some("ProviderUnavailable".into()),
    };
    let per_result = serde_json::to_vec(&widest_outcome).map_or(0, |v| v.len()) + 1;
    let map_results_bytes = per_result * batches as usize + 2;
    let step_functions = StepFunctionsEstimate {
        batches,
        select_output_bytes,
        map_results_bytes,
        largest_state_bytes: select_output_bytes + map_results_bytes + r#","batch_results":"#.len(),
        payload_limit_bytes: PAYLOAD_LIMIT_BYTES,
        parent_events: PARENT_EVENTS,
        invocations_per_batch: invocations,
        invocation_budget_seconds: budget,
        events_per_batch,
        events_per_batch_at_round_bound: events_per_batch
            + EVENTS_PER_RATE_LIMIT_ROUND * params.max_rate_limit_rounds,
        events_quota: HISTORY_EVENTS_QUOTA,
    };

    Plan {
        tickers: symbols.len(),
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        selection: req.selection.clone(),
        start_date: req.range.start(),
        end_date: req.range.end(),
        days,
        weekdays,
        interval: req.interval,
        provider: req.provider,
        provider_known,
        batch_size: req.batch_size,
        batches,
        max_batches: MAX_BATCHES,
        max_concurrency: params.max_concurrency,
        max_rate_limit_rounds: params.max_rate_limit_rounds,
        provider_calls,
        duration,
        step_functions,
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

pub fn render_plan(p: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan (nothing is written)");
    let provider_note = if p.provider_known {
        String::new()
    } else {
        " (assumed: neither --provider nor PRICE_PROVIDER is set here; the functions' PRICE_PROVIDER decides)".into()
    };
    out.push_str(&render::fields(&[
        (
            "window",
            format!(
                "{} .. {} ({} days, {} weekdays), interval {}, provider {}{provider_note}",
                p.start_date, p.end_date, p.days, p.weekdays, p.interval, p.provider
            ),
        ),
        ("selection", render::selection(&p.selection)),
        (
            "tickers",
            if p.symbols.is_empty() {
                "0: nothing matches the selection".to_string()
            } else {
                format!(
                    "{}: {}",
                    p.tickers,
                    render::list_truncated(&p.symbols, SHOWN_SYMBOLS)
                )
            },
        ),
        (
            "batches",
            format!(
                "{} of up to {} tickers (at most {} per run); {} at once (max concurrency)",
                p.batches, p.batch_size, p.max_batches, p.max_concurrency
            ),
        ),
    ]));
    let c = &p.provider_calls;
    let _ = writeln!(out, "provider calls");
    out.push_str(&render::fields(&[
        ("per ticker", format!("{} ({})", c.per_ticker, c.rule)),
        (
            "total",
            format!(
                "{} calls; at most ~{} bars per ticker, ~{} rows (trading hours of every weekday, holidays not excluded)",
                c.total, c.bars_per_ticker, c.rows
            ),
        ),
    ]));
    let d = &p.duration;
    let _ = writeln!(out, "duration estimate (no 429s)");
    out.push_str(&render::fields(&[
        (
            "pacing",
            format!(
                "{} requests per minute per fetch-batch instance (PROVIDER_REQUESTS_PER_MINUTE, or the {} default)",
                d.requests_per_minute_per_instance, p.provider
            ),
        ),
        (
            "instances",
            format!(
                "{} at once = min(max concurrency {}, batches {}); each paces itself, so the aggregate rate is {} per minute",
                d.concurrent_instances,
                p.max_concurrency,
                p.batches,
                i64::from(d.requests_per_minute_per_instance) * d.concurrent_instances
            ),
        ),
        ("formula", d.formula.clone()),
        (
            "caveat",
            "if the provider limits per IP or key, the aggregate rate is what it sees: 429s then add waits (Retry-After or backoff)".into(),
        ),
    ]));
    let s = &p.step_functions;
    let _ = writeln!(out, "step functions");
    out.push_str(&render::fields(&[
        (
            "payload",
            format!(
                "select output {} + map results {} = {} of {} per state",
                kib(s.select_output_bytes),
                kib(s.map_results_bytes),
                kib(s.largest_state_bytes),
                kib(s.payload_limit_bytes)
            ),
        ),
        (
            "history",
            format!(
                "parent execution ≈ {} events; each lane ≈ {}; each batch is a child execution: {} + {} × invocations + {} × rate-limit rounds",
                s.parent_events, LANE_EVENTS, BATCH_FIXED_EVENTS, EVENTS_PER_INVOCATION, EVENTS_PER_RATE_LIMIT_ROUND
            ),
        ),
        (
            "per batch",
            format!(
                "≈ {} events with {} invocation(s) of up to {} s and no 429; {} at the {}-round bound (quota {})",
                s.events_per_batch,
                s.invocations_per_batch,
                s.invocation_budget_seconds,
                s.events_per_batch_at_round_bound,
                p.max_rate_limit_rounds,
                s.events_quota
            ),
        ),
    ]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::request::defaults_from;
    use shared::handler::select_tickers::{ExecutionParams, RunRequest};
    use shared::model::DateRange;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn valid(provider: ProviderKind, interval: Interval, batch_size: i32) -> ValidRun {
        ValidRun {
            request: RunRequest {
                range: DateRange::new(date("2026-03-02"), date("2026-03-15")).unwrap(),
                interval,
                provider,
                selection: Selection::MinArticles {
                    min_articles: 10,
                    within_days: None,
                },
                batch_size,
            },
            params: ExecutionParams {
                max_concurrency: 4,
                max_rate_limit_rounds: 50,
            },
        }
    }

    fn symbols(n: usize) -> Vec<Symbol> {
        (0..n)
            .map(|i| Symbol::parse(&format!("T{i}")).unwrap())
            .collect()
    }

    fn run_id() -> RunId {
        RunId::parse("backfill-20260312-101500-0a1b2c3d").unwrap()
    }

    #[test]
    fn yahoo_makes_one_call_per_ticker_and_paces_per_instance() {
        let defaults = defaults_from(|_| None).unwrap();
        let p = compute(
            &valid(ProviderKind::Yahoo, Interval::Hour, 10),
            &defaults,
            true,
            &symbols(25),
            &run_id(),
        );
        assert_eq!(p.weekdays, 10);
        assert_eq!(p.batches, 3);
        assert_eq!(p.provider_calls.total, 25);
        assert_eq!(p.provider_calls.bars_per_ticker, 70);
        assert_eq!(p.duration.concurrent_instances, 3);
        assert_eq!(p.duration.waves, 1);
        // 10 calls at 30 a minute.
        assert_eq!(p.duration.seconds, 20.0);
        assert_eq!(p.step_functions.events_per_batch, 11);
        assert_eq!(p.step_functions.events_per_batch_at_round_bound, 11 + 550);
    }

    #[test]
    fn polygon_pages_long_hourly_ranges() {
        let defaults =
            defaults_from(|k| (k == "PROVIDER_REQUESTS_PER_MINUTE").then(|| "60".into())).unwrap();
        let mut v = valid(ProviderKind::Polygon, Interval::Hour, 50);
        v.request.range = DateRange::new(date("2019-09-02"), date("2019-12-31")).unwrap();
        let p = compute(&v, &defaults, true, &symbols(2), &run_id());
        // 87 weekdays × 16 bars = 1,392: one page of 5,000.
        assert_eq!(p.provider_calls.per_ticker, 1);
        v.request.range = DateRange::new(date("2010-01-01"), date("2019-12-31")).unwrap();
        let p = compute(&v, &defaults, true, &symbols(2), &run_id());
        // 2609 weekdays × 16 bars = 41,744: 9 pages of 5,000.
        assert_eq!(p.provider_calls.per_ticker, 9);
        assert_eq!(p.duration.requests_per_minute_per_instance, 60);
    }

    #[test]
    fn the_largest_run_fits_the_payload_cap() {
        let defaults = defaults_from(|_| None).unwrap();
        let p = compute(
            &valid(ProviderKind::Yahoo, Interval::Hour, 10),
            &defaults,
            true,
            &symbols(10_000),
            &run_id(),
        );
        assert_eq!(p.batches, 1000);
        assert!(p.step_functions.largest_state_bytes < PAYLOAD_LIMIT_BYTES);
        assert!(p.step_functions.largest_state_bytes > 1000 * 100);
    }
}
