//! `select-tickers`: validates the request, stores the run and its plan, returns batch descriptors.
//! On `run_id` it resumes that run with its stored parameters instead.

use chrono::{Duration as Days, Utc};
use lambda_runtime::LambdaEvent;
use tracing::{info, Instrument};

use super::App;
use crate::contract::{parse_event, BatchRef, SelectTickersInput, SelectTickersOutput};
use crate::db::{batches, days, progress, runs, selection, tickers};
use crate::error::BackfillError;
use crate::model::{
    choose_strategy, parse_date, weekdays, DateRange, ExecutionName, Interval, Reprocess, RunId,
    Selection, Strategy, StrategyRequest, Symbol,
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
    pub provider: crate::model::ProviderKind,
    pub selection: Selection,
    pub batch_size: i32,
    /// The strategy asked for; `auto` is decided once the tickers are known
    /// ([`crate::model::choose_strategy`]).
    pub strategy: StrategyRequest,
}

impl RunRequest {
    /// Parses a new-run input. `today` is the default end date (UTC).
    pub fn parse(
        input: &SelectTickersInput,
        defaults: &crate::config::RunDefaults,
        today: chrono::NaiveDate,
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
            (None, Some(days)) if (0..=36_500).contains(&days) => end - Days::days(days),
            (None, Some(days)) => {
                return Err(invalid(format!(
                    "lookback_days {days} must be between 0 and 36500"
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
            crate::model::ProviderKind::Yahoo => {
                crate::provider::yahoo::check_history(&range, interval, today)?
            }
            crate::model::ProviderKind::Polygon => {
                crate::provider::polygon::check_history(&range, interval)?
            }
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
            Some(days) if !(1..=36_500).contains(&days) => {
                return Err(invalid(format!(
                    "mentions_within_days {days} must be between 1 and 36500"
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
}

impl App {
    pub async fn select_tickers(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<SelectTickersOutput, BackfillError> {
        let input: SelectTickersInput = parse_event(event.payload)?;
        self.select(input).await
    }

    pub async fn select(
        &self,
        input: SelectTickersInput,
    ) -> Result<SelectTickersOutput, BackfillError> {
        match input.run_id.clone() {
            Some(run_id) => {
                let span = tracing::info_span!("select_tickers", run_id = %run_id, resume = true);
                self.resume(run_id, input).instrument(span).await
            }
            None => {
                let run_id = input.new_run_id.clone().unwrap_or_else(RunId::new_now);
                let span = tracing::info_span!("select_tickers", run_id = %run_id, resume = false);
                self.start(run_id, input).instrument(span).await
            }
        }
    }

    async fn start(
        &self,
        run_id: RunId,
        input: SelectTickersInput,
    ) -> Result<SelectTickersOutput, BackfillError> {
        let request = RunRequest::parse(&input, &self.config().run, Utc::now().date_naive())?;
        let params = ExecutionParams::parse(&input)?;
        self.provider(request.provider)
            .await?
            .check_range(&request.range, request.interval)?;

        let mut client = self.db().await?;
        let tx = client.transaction().await?;
        // The state machine retries this task after a timeout even when the first attempt
        // committed: the same request under the same id (the CLI's new_run_id) or from the same
        // execution (the schedule's execution_name) gets the same plan back.
        let earlier = match (&input.new_run_id, &input.execution_name) {
            (Some(_), _) if runs::exists(&*tx, &run_id).await? => {
                Some(runs::get(&*tx, &run_id).await?)
            }
            (_, Some(name)) => runs::find_by_execution_name(&*tx, name).await?,
            _ => None,
        };
        if let Some(existing) = earlier {
            let same_request = existing.executions == 1
                && (input.new_run_id.is_none() || existing.run_id == run_id)
                && existing.execution_name.as_deref()
                    == input.execution_name.as_ref().map(ExecutionName::as_str)
                && existing.range == request.range
                && existing.interval == request.interval
                && existing.provider == request.provider
                && existing.selection == request.selection
                && existing.batch_size == request.batch_size
                && match request.strategy {
                    StrategyRequest::Auto => true,
                    StrategyRequest::PerTicker => existing.strategy == Strategy::PerTicker,
                    StrategyRequest::Grouped => existing.strategy == Strategy::Grouped,
                };
            if same_request {
                info!(run_id = %existing.run_id, "run already created by an earlier attempt; returning its plan");
                return Ok(plan_output(
                    &existing,
                    0..existing.batch_count,
                    params,
                    false,
                ));
            }
            return Err(BackfillError::InvalidInput(format!(
                "run {} already exists (created by {}) with other parameters: resume it with run_id instead",
                existing.run_id,
                existing.execution_name.as_deref().unwrap_or("another request"),
            )));
        }
        let symbols = selection::resolve(&*tx, &request.selection).await?;
        let decision = choose_strategy(
            request.strategy,
            request.provider,
            request.interval,
            &request.range,
            symbols.len(),
        )?;
        // A grouped run's batches are ranges of days (batch_size days each), not of tickers.
        let trading_days = match decision.strategy {
            Strategy::Grouped => weekdays(&request.range),
            Strategy::PerTicker => Vec::new(),
        };
        let (units, unit) = match decision.strategy {
            Strategy::Grouped => (trading_days.len(), "trading days"),
            Strategy::PerTicker => (symbols.len(), "tickers"),
        };
        // Checked before anything is written: the transaction has only read so far.
        let needed = units.div_ceil(request.batch_size.max(1) as usize);
        if needed > MAX_BATCHES as usize {
            return Err(BackfillError::InvalidInput(format!(
                "{units} {unit} in batches of {} make {needed} batches; at most {MAX_BATCHES} per run: raise batch_size",
                request.batch_size
            )));
        }
        // Symbols whose prices the database would refuse are settled now, before any provider
        // call (or registered, when asked); a failure here rolls back whatever it wrote.
        let settled =
            tickers::settle(&*tx, &symbols, input.register_tickers.unwrap_or(false)).await?;
        runs::insert(
            &*tx,
            &runs::NewRun {
                run_id: run_id.clone(),
                range: request.range,
                interval: request.interval,
                provider: request.provider,
                strategy: decision.strategy,
                selection: request.selection.clone(),
                batch_size: request.batch_size,
                execution_name: input.execution_name.clone(),
                lease_execution: input.lease_execution.clone(),
            },
        )
        .await?;
        let batch_count = match decision.strategy {
            Strategy::PerTicker => {
                progress::insert_plan(&*tx, &run_id, &settled.fetchable, request.batch_size, 0)
                    .await?
            }
            Strategy::Grouped => {
                progress::insert_grouped_plan(&*tx, &run_id, &settled.fetchable).await?;
                days::insert_plan(&*tx, &run_id, &trading_days, request.batch_size, 0).await?
            }
        };
        progress::record_unlisted(&*tx, &run_id, &settled.unlisted).await?;
        batches::insert_range(&*tx, &run_id, 0, batch_count).await?;
        let requested = i32::try_from(symbols.len()).unwrap_or(i32::MAX);
        runs::record_plan(&*tx, &run_id, batch_count, requested, 0, false).await?;
        let run = runs::get(&*tx, &run_id).await?;
        tx.commit().await?;

        info!(
            tickers = symbols.len(),
            not_in_ticker_table = settled.unlisted.len(),
            registered_tickers = settled.registered,
            batches = batch_count,
            range = %request.range,
            interval = %request.interval,
            provider = %request.provider,
            strategy = %decision.strategy,
            strategy_reason = %decision.reason,
            "run created"
        );
        Ok(plan_output(&run, 0..batch_count, params, false))
    }

    async fn resume(
        &self,
        run_id: RunId,
        input: SelectTickersInput,
    ) -> Result<SelectTickersOutput, BackfillError> {
        let conflicting: Vec<&str> = [
            ("new_run_id", input.new_run_id.is_some()),
            ("execution_name", input.execution_name.is_some()),
            ("symbols", input.symbols.is_some()),
            ("top_n", input.top_n.is_some()),
            ("min_articles", input.min_articles.is_some()),
            ("mentions_within_days", input.mentions_within_days.is_some()),
            ("start_date", input.start_date.is_some()),
            ("end_date", input.end_date.is_some()),
            ("lookback_days", input.lookback_days.is_some()),
            ("interval", input.interval.is_some()),
            ("batch_size", input.batch_size.is_some()),
            ("provider", input.provider.is_some()),
            ("strategy", input.strategy.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if !conflicting.is_empty() {
            return Err(BackfillError::InvalidInput(format!(
                "run_id resumes a run with its stored parameters; remove {}",
                conflicting.join(", ")
            )));
        }
        let reprocess = input.reprocess.unwrap_or(Reprocess::Incomplete);
        let params = ExecutionParams::parse(&input)?;

        let mut client = self.db().await?;
        let tx = client.transaction().await?;
        let run = runs::get_for_update(&*tx, &run_id).await?;
        // One active execution per run: checked and taken under the row lock.
        let take_over = input.take_over_lease.unwrap_or(false);
        match (&input.lease_execution, &run.lease_execution) {
            (Some(me), _) => runs::take_lease(&*tx, &run, me, take_over).await?,
            (None, Some(holder)) if !take_over => {
                return Err(BackfillError::RunBusy {
                    run_id: run_id.to_string(),
                    execution: holder.clone(),
                })
            }
            (None, _) => {}
        }
        let first = run.batch_count;
        if run.strategy == Strategy::Grouped {
            return resume_grouped(tx, &run, reprocess, &input, params).await;
        }
        // `ticker` may have changed since: settle the tickers to work on again against it.
        let candidates = progress::requeue_candidates(&*tx, &run_id, reprocess).await?;
        let settled =
            tickers::settle(&*tx, &candidates, input.register_tickers.unwrap_or(false)).await?;
        progress::record_unlisted(&*tx, &run_id, &settled.unlisted).await?;
        let unlisted: Vec<Symbol> = settled.unlisted.iter().map(|(s, _)| s.clone()).collect();
        let (tickers, new_batches) =
            progress::requeue(&*tx, &run_id, reprocess, run.batch_size, first, &unlisted).await?;
        batches::insert_range(&*tx, &run_id, first, new_batches).await?;
        let counts = progress::counts(&*tx, &run_id, None).await?;
        let requested = counts.total();
        // Tickers already `success`; the ones settled as unstorable count as worked on (failed).
        let skipped = requested - tickers - unlisted.len() as i64;
        let to_i32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        runs::record_plan(
            &*tx,
            &run_id,
            first + new_batches,
            to_i32(requested),
            to_i32(skipped),
            true,
        )
        .await?;
        let reopened = runs::get(&*tx, &run_id).await?;
        tx.commit().await?;

        info!(
            tickers,
            skipped,
            not_in_ticker_table = unlisted.len(),
            registered_tickers = settled.registered,
            batches = new_batches,
            reprocess = reprocess.as_str(),
            "run resumed"
        );
        Ok(plan_output(
            &reopened,
            first..first + new_batches,
            params,
            true,
        ))
    }
}

/// The output for the batches `batches` of a run, from its stored row.
fn plan_output(
    run: &runs::RunRecord,
    batches: std::ops::Range<i32>,
    params: ExecutionParams,
    resumed: bool,
) -> SelectTickersOutput {
    SelectTickersOutput {
        run_id: run.run_id.clone(),
        batches: batches
            .map(|batch| BatchRef {
                run_id: run.run_id.clone(),
                batch,
            })
            .collect(),
        tickers: i64::from(run.requested - run.skipped),
        requested: i64::from(run.requested),
        skipped: i64::from(run.skipped),
        resumed,
        start_date: run.range.start().to_string(),
        end_date: run.range.end().to_string(),
        interval: run.interval,
        provider: run.provider,
        strategy: run.strategy,
        batch_size: i64::from(run.batch_size),
        max_concurrency: params.max_concurrency,
        max_rate_limit_rounds: params.max_rate_limit_rounds,
    }
}

/// Resumes a grouped run (its row locked and its lease taken by the caller's transaction): the
/// days not yet done (every day with `reprocess: all`) go back in the queue under fresh batch
/// numbers; with `all` every ticker is judged again on them, otherwise settled tickers stay as
/// they are and unsettled ones wait for the remaining days.
async fn resume_grouped(
    tx: deadpool_postgres::Transaction<'_>,
    run: &runs::RunRecord,
    reprocess: Reprocess,
    input: &SelectTickersInput,
    params: ExecutionParams,
) -> Result<SelectTickersOutput, BackfillError> {
    let run_id = &run.run_id;
    let first = run.batch_count;
    let all = reprocess == Reprocess::All;
    let mut unlisted = 0;
    if all {
        let candidates = progress::requeue_candidates(&*tx, run_id, reprocess).await?;
        let settled =
            tickers::settle(&*tx, &candidates, input.register_tickers.unwrap_or(false)).await?;
        progress::record_unlisted(&*tx, run_id, &settled.unlisted).await?;
        let excluded: Vec<Symbol> = settled.unlisted.iter().map(|(s, _)| s.clone()).collect();
        unlisted = excluded.len() as i64;
        progress::requeue_grouped(&*tx, run_id, true, &excluded).await?;
    }
    let (requeued_days, new_batches) =
        days::requeue(&*tx, run_id, all, run.batch_size, first).await?;
    batches::insert_range(&*tx, run_id, first, new_batches).await?;
    // Nothing left to fetch, yet tickers unsettled (a resume of a run whose last batch ended
    // between storing its last day and settling): settle them now.
    days::lock_completion(&*tx, run_id).await?;
    if days::pending(&*tx, run_id, None).await? == 0 {
        progress::settle_grouped(&*tx, run_id, &run.range.to_string()).await?;
    }
    let counts = progress::counts(&*tx, run_id, None).await?;
    let requested = counts.total();
    let skipped = requested - counts.unfinished() - unlisted;
    let to_i32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    runs::record_plan(
        &*tx,
        run_id,
        first + new_batches,
        to_i32(requested),
        to_i32(skipped),
        true,
    )
    .await?;
    let reopened = runs::get(&*tx, run_id).await?;
    tx.commit().await?;
    info!(
        tickers = counts.unfinished(),
        skipped,
        days = requeued_days,
        batches = new_batches,
        reprocess = reprocess.as_str(),
        strategy = %Strategy::Grouped,
        "grouped run resumed"
    );
    Ok(plan_output(
        &reopened,
        first..first + new_batches,
        params,
        true,
    ))
}
