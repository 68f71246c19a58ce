//! `select-tickers`: validates the request, stores the run and its plan, returns batch descriptors.
//! On `run_id` it resumes that run with its stored parameters instead.

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use tracing::{info, Instrument};

use super::App;
use crate::contract::{parse_event, SelectTickersInput, SelectTickersOutput};
use crate::db::{batches, days, progress, runs, selection, tickers};
use crate::error::BackfillError;
use crate::model::{weekdays, ExecutionName, Reprocess, RunId, Strategy, StrategyRequest, Symbol};
/// The request rules live in [`crate::request`]; `RunRequest` stays reachable by this path for
/// the callers that still name it so (the contract tests).
pub use crate::request::RunRequest;
use crate::request::{check_batch_cap, ExecutionParams, PlannedRun, ValidRun};

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
        let ValidRun { request, params } =
            ValidRun::parse(&input, &self.config().run, Utc::now().date_naive())?;
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
                return Ok(planned(&existing).output(0..existing.batch_count, params, false));
            }
            return Err(BackfillError::InvalidInput(format!(
                "run {} already exists (created by {}) with other parameters: resume it with run_id instead",
                existing.run_id,
                existing.execution_name.as_deref().unwrap_or("another request"),
            )));
        }
        let symbols = selection::resolve(&*tx, &request.selection).await?;
        let decision = request.choose_strategy(symbols.len())?;
        // Checked before anything is written: the transaction has only read so far.
        check_batch_cap(&decision, request.batch_size)?;
        // A grouped run's batches are ranges of days (batch_size days each), not of tickers.
        let trading_days = match decision.strategy {
            Strategy::Grouped => weekdays(&request.range),
            Strategy::PerTicker => Vec::new(),
        };
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
        Ok(planned(&run).output(0..batch_count, params, false))
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
        Ok(planned(&reopened).output(first..first + new_batches, params, true))
    }
}

/// A stored run's plan, as select-tickers' output reports it.
fn planned(run: &runs::RunRecord) -> PlannedRun {
    PlannedRun {
        run_id: run.run_id.clone(),
        range: run.range,
        interval: run.interval,
        provider: run.provider,
        strategy: run.strategy,
        batch_size: run.batch_size,
        requested: run.requested,
        skipped: run.skipped,
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
    Ok(planned(&reopened).output(first..first + new_batches, params, true))
}
