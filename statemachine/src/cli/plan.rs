//! `backfill plan …`: what a `start` with the same flags would do, writing nothing. The selection
//! runs in a read-only transaction that is rolled back (an explicit list needs no database).

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;
use shared::config::RunDefaults;
use shared::contract::BatchOutcome;
use shared::db::selection;
use shared::model::{Interval, ProviderKind, RunId, Selection, Strategy, StrategyDecision, Symbol};
use shared::request::{batch_count, check_batch_cap, PlannedRun, MAX_BATCHES};
use tokio_postgres::Client;

use super::request::{
    defaults_from_env, new_run_input, provider_is_known, validate_new_run, ValidRun,
};
use super::session::Session;
use super::{render, status, PlanArgs};
use crate::error::{exit, CliError};

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
/// One provider call and the write of its bars, seen from one fetch-batch instance: what bounds
/// the duration when the budget is generous (a day or two of hourly bars against market-sim
/// takes about this; `make bench` compares the estimate with measured runs).
pub const SECONDS_PER_CALL: f64 = 0.1;

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
    /// The strategy `start` would pick, with its calls and why.
    pub strategy: StrategyDecision,
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
    /// `PROVIDER_REQUESTS_PER_MINUTE`, or the provider's default: the rate every fetch-batch
    /// instance of every run shares (one budget per provider and key).
    pub requests_per_minute: u32,
    /// fetch-batch instances at once: min(max_concurrency, batches).
    pub concurrent_instances: i64,
    pub calls_per_batch: i64,
    /// What the shared budget allows: calls × 60 s / requests per minute.
    pub budget_seconds: f64,
    /// What the instances can do: calls × the time one call and its write take, spread over the
    /// instances (binds only when the budget is generous).
    pub work_seconds: f64,
    /// The larger of the two.
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

pub async fn run(args: &PlanArgs, session: &mut Session<'_>) -> Result<u8, CliError> {
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
            let mut client = session.connect().await?;
            resolve_read_only(&mut client, other).await?
        }
    };
    // What select-tickers would refuse once the tickers are known (grouped on a window
    // without a weekday) is refused here too.
    valid.request.choose_strategy(symbols.len())?;
    let plan = compute(&valid, &defaults, provider_known, &symbols, &run_id);
    if args.json {
        writeln!(session.out(), "{}", status::to_json(&plan)?)?;
    } else {
        write!(session.out(), "{}", render_plan(&plan))?;
    }
    // select-tickers' own batch cap, on the strategy it would pick.
    if let Err(e) = check_batch_cap(&plan.strategy, plan.batch_size) {
        eprintln!("error: {e} (--batch-size); `start` with these flags would be rejected");
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
    let days = req.range.days();
    let weekdays = shared::model::weekdays(&req.range).len() as i64;
    let strategy = req
        .choose_strategy(symbols.len())
        .unwrap_or_else(|e| StrategyDecision {
            strategy: Strategy::PerTicker,
            trading_days: weekdays,
            tickers,
            calls: tickers,
            alternative_calls: None,
            reason: format!("refused: {e}"),
        });
    let grouped = strategy.strategy == Strategy::Grouped;
    // A grouped run's batches are ranges of batch_size days; a per-ticker run's, of tickers.
    let batches = batch_count(&strategy, req.batch_size);

    // Yahoo serves the regular session (7 hourly bars); Polygon adds extended hours (16).
    let bars_per_day = match (req.interval, req.provider) {
        (Interval::Day, _) => 1,
        (Interval::Hour, ProviderKind::Yahoo) => 7,
        (Interval::Hour, ProviderKind::Polygon) => 16,
    };
    let bars_per_ticker = weekdays * bars_per_day;
    let (per_ticker, rule) = match req.provider {
        _ if grouped => (
            0,
            "Polygon grouped daily: one call per weekday for every ticker (holidays cost one empty call each, ~9 a year)".to_string(),
        ),
        ProviderKind::Yahoo => (1, "Yahoo: one ranged chart request per ticker".to_string()),
        ProviderKind::Polygon => (
            div_ceil(bars_per_ticker, POLYGON_PAGE_BARS).max(1),
            format!("Polygon: ceil(bars / {POLYGON_PAGE_BARS}) pages per ticker"),
        ),
    };
    let provider_calls = ProviderCalls {
        per_ticker,
        total: if grouped {
            weekdays
        } else {
            tickers * per_ticker
        },
        bars_per_ticker,
        rows: tickers * bars_per_ticker,
        rule,
    };

    let rpm = defaults.requests_per_minute_for(req.provider).max(1);
    let instances = params.max_concurrency.min(batches).max(1);
    let calls_per_batch = if grouped {
        batch_size.min(weekdays)
    } else {
        batch_size.min(tickers) * per_ticker
    };
    let calls = provider_calls.total;
    let budget_seconds = calls as f64 * 60.0 / f64::from(rpm);
    let work_seconds = calls as f64 * SECONDS_PER_CALL / instances as f64;
    let seconds = budget_seconds.max(work_seconds);
    // A batch gets its share of the budget while all instances run.
    let seconds_per_batch = seconds * instances as f64 / batches.max(1) as f64;
    let duration = DurationEstimate {
        requests_per_minute: rpm,
        concurrent_instances: instances,
        calls_per_batch,
        budget_seconds,
        work_seconds,
        seconds,
        formula: format!(
            "max(calls {calls} × 60 s / {rpm} requests per minute, calls {calls} × {SECONDS_PER_CALL} s / instances {instances}) = {}",
            render::duration(seconds)
        ),
    };

    let budget = defaults.fallback_budget.as_secs().max(1);
    let invocations = ((seconds_per_batch / budget as f64).ceil() as i64).max(1);
    let events_per_batch = BATCH_FIXED_EVENTS + EVENTS_PER_INVOCATION * invocations;
    // What select-tickers would return, built as it builds it.
    let select_output = PlannedRun::new_run(run_id.clone(), req, strategy.strategy, symbols.len())
        .output(0..batches as i32, *params, false);
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
        strategy,
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
        ("strategy", p.strategy.reason.clone()),
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
                "{} of up to {} {} (at most {} per run); {} at once (max concurrency)",
                p.batches,
                p.batch_size,
                match p.strategy.strategy {
                    Strategy::Grouped => "days",
                    Strategy::PerTicker => "tickers",
                },
                p.max_batches,
                p.max_concurrency
            ),
        ),
    ]));
    let c = &p.provider_calls;
    let _ = writeln!(out, "provider calls");
    let per_ticker = match p.strategy.strategy {
        Strategy::Grouped => ("per day", format!("1 ({})", c.rule)),
        Strategy::PerTicker => ("per ticker", format!("{} ({})", c.per_ticker, c.rule)),
    };
    out.push_str(&render::fields(&[
        per_ticker,
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
                "{} requests per minute for every fetch-batch instance together (PROVIDER_REQUESTS_PER_MINUTE, or the {} default), one budget shared in the database",
                d.requests_per_minute, p.provider
            ),
        ),
        (
            "instances",
            format!(
                "{} at once = min(max concurrency {}, batches {}); more instances do not raise the rate, they only keep the budget busy",
                d.concurrent_instances, p.max_concurrency, p.batches
            ),
        ),
        ("formula", d.formula.clone()),
        (
            "caveat",
            "other runs on the same provider and key share the budget and slow this one; a 429 pauses everyone until its Retry-After".into(),
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
    use shared::model::DateRange;
    use shared::request::{ExecutionParams, RunRequest};

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
                strategy: shared::model::StrategyRequest::Auto,
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
        // 25 calls at 30 a minute for all three instances together.
        assert_eq!(p.duration.budget_seconds, 50.0);
        assert_eq!(p.duration.seconds, 50.0);
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
        assert_eq!(p.duration.requests_per_minute, 60);
    }

    #[test]
    fn grouped_daily_plans_one_call_per_weekday_and_says_why() {
        let defaults = defaults_from(|_| None).unwrap();
        let mut v = valid(ProviderKind::Polygon, Interval::Day, 50);
        // Two years from a Monday: 520 weekdays.
        v.request.range = DateRange::new(date("2024-01-01"), date("2025-12-28")).unwrap();
        let p = compute(&v, &defaults, true, &symbols(10_000), &run_id());
        assert_eq!(p.strategy.strategy, Strategy::Grouped);
        assert_eq!(p.provider_calls.total, 520);
        assert_eq!(p.batches, 11, "520 days in batches of 50");
        let text = render_plan(&p);
        assert!(
            text.contains("grouped: 520 trading days < 10000 tickers: 520 calls instead of 10000"),
            "{text}"
        );
        // Hourly, or fewer tickers than days: per ticker.
        let few = compute(&v, &defaults, true, &symbols(20), &run_id());
        assert_eq!(few.strategy.strategy, Strategy::PerTicker);
        assert_eq!(few.provider_calls.total, 20);
        assert!(render_plan(&few).contains("per-ticker: 520 trading days >= 20 tickers"));
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
