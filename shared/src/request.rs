//! A new run's request, validated once, and the rules every caller of select-tickers' logic shares:
//! the limits, the one constructor of a validated request ([`ValidRun::parse`]), the batch cap
//! ([`check_batch_cap`]) and the shape of select-tickers' output ([`PlannedRun::output`]). The
//! select-tickers handler and the `backfill` CLI (`start`, `plan`) both call these, so a request
//! the CLI accepts is one the function accepts, and a plan shows what the function would return.

use std::ops::Range;

use chrono::{Duration as Days, NaiveDate};

use crate::config::RunDefaults;
use crate::contract::{BatchRef, SelectTickersInput, SelectTickersOutput};
use crate::error::BackfillError;
use crate::model::{
    choose_strategy, parse_date, DateRange, Interval, ProviderKind, RunId, Selection, Strategy,
    StrategyDecision, StrategyRequest, Symbol,
};

pub const DEFAULT_MIN_ARTICLES: i64 = 10;
pub const DEFAULT_BATCH_SIZE: i64 = 50;
pub const MAX_BATCH_SIZE: i64 = 1000;
pub const MAX_EXPLICIT_SYMBOLS: usize = 10_000;
/// Keeps the batch list (and the Map's results) far below Step Functions' 256 KiB payload cap:
/// about 70 bytes per descriptor and 60 per result.
pub const MAX_BATCHES: i32 = 1000;
pub const DEFAULT_MAX_CONCURRENCY: i64 = 4;
/// Each lane of the state machine's Map is an open map run; AWS allows 1,000 open map runs per
/// account and Region, so a run keeps well clear of that.
pub const MAX_MAX_CONCURRENCY: i64 = 100;
pub const DEFAULT_MAX_RATE_LIMIT_ROUNDS: i64 = 50;
/// About 11 history events per rate-limit round keeps one batch's execution below the 25,000
/// events quota even at this bound.
pub const MAX_MAX_RATE_LIMIT_ROUNDS: i64 = 1000;
/// `lookback_days` and `mentions_within_days` reach back at most this far (about a century).
pub const MAX_DAYS_BACK: i64 = 36_500;

/// The state machine's own knobs, validated here so that bad values fail before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionParams {
    pub max_concurrency: i64,
    pub max_rate_limit_rounds: i64,
}

impl ExecutionParams {
    pub fn parse(input: &SelectTickersInput) -> Result<Self, BackfillError> {
        let max_concurrency = input.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if !(1..=MAX_MAX_CONCURRENCY).contains(&max_concurrency) {
            return Err(BackfillError::InvalidInput(format!(
                "max_concurrency {max_concurrency} must be between 1 and {MAX_MAX_CONCURRENCY}"
            )));
        }
        let max_rate_limit_rounds = input
            .max_rate_limit_rounds
            .unwrap_or(DEFAULT_MAX_RATE_LIMIT_ROUNDS);
        if !(0..=MAX_MAX_RATE_LIMIT_ROUNDS).contains(&max_rate_limit_rounds) {
            return Err(BackfillError::InvalidInput(format!(
                "max_rate_limit_rounds {max_rate_limit_rounds} must be between 0 and {MAX_MAX_RATE_LIMIT_ROUNDS}"
            )));
        }
        Ok(Self {
            max_concurrency,
            max_rate_limit_rounds,
        })
    }
}

/// A new run's request after validation: nothing here can be wrong any more.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub range: DateRange,
    pub interval: Interval,
    pub provider: ProviderKind,
    pub selection: Selection,
    pub batch_size: i32,
    /// The strategy asked for; `auto` is decided once the tickers are known
    /// ([`RunRequest::choose_strategy`]).
    pub strategy: StrategyRequest,
}

impl RunRequest {
    /// Parses a new-run input. `today` is the default end date (UTC).
    pub fn parse(
        input: &SelectTickersInput,
        defaults: &RunDefaults,
        today: NaiveDate,
    ) -> Result<Self, BackfillError> {
        let invalid = |m: String| BackfillError::InvalidInput(m);
        let end = match &input.end_date {
            Some(raw) => parse_date("end_date", raw)?,
            None => today,
        };
        if end > today {
            return Err(invalid(format!(
                "end_date {end} is in the future (today is {today} UTC): there are no bars to fetch yet"
            )));
        }
        let start = match (&input.start_date, input.lookback_days) {
            (Some(_), Some(_)) => {
                return Err(invalid("give start_date or lookback_days, not both".into()))
            }
            (Some(raw), None) => parse_date("start_date", raw)?,
            (None, Some(days)) if (0..=MAX_DAYS_BACK).contains(&days) => end - Days::days(days),
            (None, Some(days)) => {
                return Err(invalid(format!(
                    "lookback_days {days} must be between 0 and {MAX_DAYS_BACK}"
                )))
            }
            (None, None) => defaults.start_date,
        };
        let range = DateRange::new(start, end)?;
        let interval = input.interval.unwrap_or_default();
        let provider = input.provider.unwrap_or(defaults.provider);
        // The range rules of the run's provider, the default one included, before anything is
        // written; the CLI applies this very parse before it starts an execution.
        match provider {
            ProviderKind::Yahoo => crate::provider::yahoo::check_history(&range, interval, today)?,
            ProviderKind::Polygon => crate::provider::polygon::check_history(&range, interval)?,
        }
        let strategy = input.strategy.unwrap_or_default();
        strategy.check(provider, interval)?;
        let batch_size = input.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(invalid(format!(
                "batch_size {batch_size} must be between 1 and {MAX_BATCH_SIZE}"
            )));
        }
        let min_articles = input.min_articles.unwrap_or(DEFAULT_MIN_ARTICLES);
        if min_articles < 1 {
            return Err(invalid(format!(
                "min_articles {min_articles} must be at least 1"
            )));
        }
        let within_days = match input.mentions_within_days {
            Some(days) if !(1..=MAX_DAYS_BACK).contains(&days) => {
                return Err(invalid(format!(
                    "mentions_within_days {days} must be between 1 and {MAX_DAYS_BACK}"
                )))
            }
            other => other,
        };
        if within_days.is_some() && input.symbols.is_some() {
            return Err(invalid(
                "mentions_within_days selects by mentions; it cannot be combined with symbols"
                    .into(),
            ));
        }
        let selection = match (&input.symbols, input.top_n) {
            (Some(_), Some(_)) => return Err(invalid("give symbols or top_n, not both".into())),
            (Some(symbols), None) => {
                if symbols.is_empty() {
                    return Err(invalid("symbols is empty: list at least one symbol".into()));
                }
                if symbols.len() > MAX_EXPLICIT_SYMBOLS {
                    return Err(invalid(format!(
                        "symbols lists {} symbols; at most {MAX_EXPLICIT_SYMBOLS} per run",
                        symbols.len()
                    )));
                }
                let mut symbols: Vec<Symbol> = symbols.clone();
                symbols.sort();
                symbols.dedup();
                Selection::Explicit { symbols }
            }
            (None, Some(n)) if n >= 1 => Selection::TopN {
                n,
                // top_n ranks every mentioned ticker unless a threshold is asked for explicitly.
                min_articles: input.min_articles.unwrap_or(1),
                within_days,
            },
            (None, Some(n)) => return Err(invalid(format!("top_n {n} must be at least 1"))),
            (None, None) => Selection::MinArticles {
                min_articles,
                within_days,
            },
        };
        Ok(Self {
            range,
            interval,
            provider,
            selection,
            batch_size: i32::try_from(batch_size).unwrap_or(i32::MAX),
            strategy,
        })
    }

    /// The strategy this request gets once it is known to cover `tickers` tickers (`auto`
    /// decided, `grouped` refused on a window without a weekday).
    pub fn choose_strategy(&self, tickers: usize) -> Result<StrategyDecision, BackfillError> {
        choose_strategy(
            self.strategy,
            self.provider,
            self.interval,
            &self.range,
            tickers,
        )
    }
}

/// A new run as select-tickers accepts it: the request and the state machine's knobs, both
/// validated. The one constructor the handler and the CLI call before anything is written or
/// started.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRun {
    pub request: RunRequest,
    pub params: ExecutionParams,
}

impl ValidRun {
    /// Every check of a new-run input that needs no database. The knobs come first, so that a
    /// refusal of the request itself is about the request alone.
    pub fn parse(
        input: &SelectTickersInput,
        defaults: &RunDefaults,
        today: NaiveDate,
    ) -> Result<Self, BackfillError> {
        let params = ExecutionParams::parse(input)?;
        let request = RunRequest::parse(input, defaults, today)?;
        Ok(Self { request, params })
    }
}

/// Batches a run of `decision` makes in batches of `batch_size`: ranges of trading days for a
/// grouped run, of tickers for a per-ticker run.
pub fn batch_count(decision: &StrategyDecision, batch_size: i32) -> i64 {
    let units = match decision.strategy {
        Strategy::Grouped => decision.trading_days,
        Strategy::PerTicker => decision.tickers,
    };
    let size = i64::from(batch_size.max(1));
    (units.max(0) + size - 1) / size
}

/// The batch cap: a run makes at most [`MAX_BATCHES`] batches. Returns the run's batch count,
/// or `InvalidInput` naming the count and how to lower it.
pub fn check_batch_cap(decision: &StrategyDecision, batch_size: i32) -> Result<i32, BackfillError> {
    let batches = batch_count(decision, batch_size);
    if batches > i64::from(MAX_BATCHES) {
        let (units, unit) = match decision.strategy {
            Strategy::Grouped => (decision.trading_days, "trading days"),
            Strategy::PerTicker => (decision.tickers, "tickers"),
        };
        return Err(BackfillError::InvalidInput(format!(
            "{units} {unit} in batches of {batch_size} make {batches} batches; at most {MAX_BATCHES} per run: raise batch_size"
        )));
    }
    Ok(i32::try_from(batches).unwrap_or(i32::MAX))
}

/// A run's plan as select-tickers reports it: the fields its output repeats, from the stored run
/// (the handler) or from the validated request and the tickers it would select (`backfill plan`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub run_id: RunId,
    pub range: DateRange,
    pub interval: Interval,
    pub provider: ProviderKind,
    pub strategy: Strategy,
    pub batch_size: i32,
    /// Tickers in the run's plan, those already `success` included.
    pub requested: i32,
    /// Tickers already `success` from an earlier execution of the run.
    pub skipped: i32,
}

impl PlannedRun {
    /// A new run of `request` over `tickers` tickers, fetched as `strategy` says.
    pub fn new_run(
        run_id: RunId,
        request: &RunRequest,
        strategy: Strategy,
        tickers: usize,
    ) -> Self {
        Self {
            run_id,
            range: request.range,
            interval: request.interval,
            provider: request.provider,
            strategy,
            batch_size: request.batch_size,
            requested: i32::try_from(tickers).unwrap_or(i32::MAX),
            skipped: 0,
        }
    }

    /// select-tickers' output handing `batches` of the run to the state machine.
    pub fn output(
        &self,
        batches: Range<i32>,
        params: ExecutionParams,
        resumed: bool,
    ) -> SelectTickersOutput {
        SelectTickersOutput {
            run_id: self.run_id.clone(),
            batches: batches
                .map(|batch| BatchRef {
                    run_id: self.run_id.clone(),
                    batch,
                })
                .collect(),
            tickers: i64::from(self.requested - self.skipped),
            requested: i64::from(self.requested),
            skipped: i64::from(self.skipped),
            resumed,
            start_date: self.range.start().to_string(),
            end_date: self.range.end().to_string(),
            interval: self.interval,
            provider: self.provider,
            strategy: self.strategy,
            batch_size: i64::from(self.batch_size),
            max_concurrency: params.max_concurrency,
            max_rate_limit_rounds: params.max_rate_limit_rounds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 12).unwrap()
    }

    fn defaults() -> RunDefaults {
        RunDefaults::from_lookup(|_| None).unwrap()
    }

    fn input(json: serde_json::Value) -> SelectTickersInput {
        serde_json::from_value(json).unwrap()
    }

    fn decision(strategy: Strategy, trading_days: i64, tickers: i64) -> StrategyDecision {
        StrategyDecision {
            strategy,
            trading_days,
            tickers,
            calls: 0,
            alternative_calls: None,
            reason: String::new(),
        }
    }

    #[test]
    fn the_knobs_are_checked_before_the_request() {
        // Both are wrong: the knob is named, so a caller that retries the request with another
        // provider (the CLI's assumed-provider hint) sees the same refusal.
        let e = ValidRun::parse(
            &input(serde_json::json!({"max_concurrency": 0, "batch_size": 0})),
            &defaults(),
            today(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_concurrency 0"), "{e}");
    }

    #[test]
    fn defaults_fill_a_minimal_request() {
        let v = ValidRun::parse(
            &input(serde_json::json!({"symbols": ["AAPL"]})),
            &defaults(),
            today(),
        )
        .unwrap();
        assert_eq!(i64::from(v.request.batch_size), DEFAULT_BATCH_SIZE);
        assert_eq!(v.request.range.end(), today());
        assert_eq!(
            v.params,
            ExecutionParams {
                max_concurrency: DEFAULT_MAX_CONCURRENCY,
                max_rate_limit_rounds: DEFAULT_MAX_RATE_LIMIT_ROUNDS,
            }
        );
    }

    #[test]
    fn the_limits_are_inclusive_bounds() {
        let ok = |json: serde_json::Value| {
            let mut j = serde_json::json!({"symbols": ["AAPL"], "start_date": "2026-03-02"});
            j.as_object_mut()
                .unwrap()
                .extend(json.as_object().unwrap().clone());
            ValidRun::parse(&input(j), &defaults(), today()).is_ok()
        };
        assert!(ok(serde_json::json!({"batch_size": MAX_BATCH_SIZE})));
        assert!(!ok(serde_json::json!({"batch_size": MAX_BATCH_SIZE + 1})));
        assert!(ok(
            serde_json::json!({"max_concurrency": MAX_MAX_CONCURRENCY})
        ));
        assert!(!ok(
            serde_json::json!({"max_concurrency": MAX_MAX_CONCURRENCY + 1})
        ));
        assert!(ok(serde_json::json!({"max_rate_limit_rounds": 0})));
        assert!(ok(
            serde_json::json!({"max_rate_limit_rounds": MAX_MAX_RATE_LIMIT_ROUNDS})
        ));
        assert!(!ok(
            serde_json::json!({"max_rate_limit_rounds": MAX_MAX_RATE_LIMIT_ROUNDS + 1})
        ));
    }

    #[test]
    fn the_batch_cap_counts_tickers_or_trading_days_by_strategy() {
        let cap = i64::from(MAX_BATCHES);
        assert_eq!(
            check_batch_cap(&decision(Strategy::PerTicker, 5, cap), 1).unwrap(),
            MAX_BATCHES
        );
        let e = check_batch_cap(&decision(Strategy::PerTicker, 5, cap + 1), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input: 1001 tickers in batches of 1 make 1001 batches; at most 1000 per run: raise batch_size"
        );
        // A grouped run's batches are ranges of days: its ticker count does not matter.
        assert_eq!(
            check_batch_cap(&decision(Strategy::Grouped, 520, 10_000), 50).unwrap(),
            11
        );
        let e = check_batch_cap(&decision(Strategy::Grouped, cap + 1, 3), 1).unwrap_err();
        assert!(e.to_string().contains("1001 trading days"), "{e}");
        assert_eq!(batch_count(&decision(Strategy::PerTicker, 5, 0), 50), 0);
    }

    #[test]
    fn the_output_echoes_the_plan_and_hands_out_the_given_batches() {
        let run_id = RunId::parse("backfill-20260312-101500-0a1b2c3d").unwrap();
        let range = DateRange::new(
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 6).unwrap(),
        )
        .unwrap();
        let plan = PlannedRun {
            run_id: run_id.clone(),
            range,
            interval: Interval::Day,
            provider: ProviderKind::Polygon,
            strategy: Strategy::Grouped,
            batch_size: 2,
            requested: 10,
            skipped: 4,
        };
        let params = ExecutionParams {
            max_concurrency: 3,
            max_rate_limit_rounds: 7,
        };
        let out = plan.output(5..7, params, true);
        let batches: Vec<i32> = out.batches.iter().map(|b| b.batch).collect();
        assert_eq!(batches, [5, 6]);
        assert!(out.batches.iter().all(|b| b.run_id == run_id));
        assert_eq!((out.tickers, out.requested, out.skipped), (6, 10, 4));
        assert_eq!(
            (out.start_date.as_str(), out.end_date.as_str()),
            ("2026-03-02", "2026-03-06")
        );
        assert_eq!((out.max_concurrency, out.max_rate_limit_rounds), (3, 7));
        assert!(out.resumed);
    }
}
