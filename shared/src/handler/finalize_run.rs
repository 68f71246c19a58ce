//! `finalize-run`: closes the run and summarises it in the original job's result shape.

use lambda_runtime::LambdaEvent;
use tracing::{info, Instrument};

use super::App;
use crate::contract::{parse_event, BatchOutcome, FinalizeRunInput, FinalizeRunOutput, RunStatus};
use crate::db::{batches, progress, runs};
use crate::error::BackfillError;

impl App {
    pub async fn finalize_run(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<FinalizeRunOutput, BackfillError> {
        let input: FinalizeRunInput = parse_event(event.payload)?;
        let span = tracing::info_span!("finalize_run", run_id = %input.run_id);
        self.finalize(input).instrument(span).await
    }

    pub async fn finalize(
        &self,
        input: FinalizeRunInput,
    ) -> Result<FinalizeRunOutput, BackfillError> {
        let mut client = self.db().await?;
        let tx = client.transaction().await?;
        let summary = close(
            &tx,
            &input.run_id,
            input.lease_execution.as_deref(),
            input.batch_results.as_ref(),
        )
        .await?;
        tx.commit().await?;
        Ok(summary)
    }
}

/// Closes a run and returns its summary, in the caller's transaction. Idempotent: a run already
/// closed keeps its stored summary and nothing is written (a retried or repeated finalize-run, or
/// one invoked by hand with invented outcomes, changes nothing). A run whose lease another
/// execution holds is not closed by `execution`: its current summary is returned.
pub async fn close(
    tx: &tokio_postgres::Transaction<'_>,
    run_id: &crate::model::RunId,
    execution: Option<&str>,
    batch_results: Option<&serde_json::Value>,
) -> Result<FinalizeRunOutput, BackfillError> {
    let run = runs::get_for_update(tx, run_id).await?;
    if run.status != RunStatus::Running {
        if let Some(stored) = run
            .summary
            .clone()
            .and_then(|s| serde_json::from_value::<FinalizeRunOutput>(s).ok())
        {
            info!(
                status = stored.status.as_str(),
                "run already closed; its summary stands"
            );
            return Ok(stored);
        }
    }
    let leased_elsewhere = matches!(
        (execution, run.lease_execution.as_deref()),
        (Some(me), Some(holder)) if me != holder
    );
    let failed = failed_batches(batch_results);
    if !failed.is_empty() && !leased_elsewhere {
        batches::mark_failed(tx, &run.run_id, &failed).await?;
    }
    let failed_batches = batches::failed(tx, &run.run_id).await?;
    let counts = progress::counts(tx, &run.run_id, None).await?;
    let status = if counts.unfinished() > 0 {
        RunStatus::Incomplete
    } else if counts.failed > 0 {
        RunStatus::CompletedWithFailures
    } else {
        RunStatus::Succeeded
    };
    let errors = progress::problems(tx, &run.run_id, FinalizeRunOutput::MAX_ERRORS as i64).await?;
    let summary = FinalizeRunOutput {
        run_id: run.run_id.clone(),
        status,
        requested: counts.total(),
        success: counts.success,
        failed: counts.failed,
        skipped: i64::from(run.skipped),
        rate_limited: counts.rate_limited,
        pending: counts.pending,
        records_inserted: counts.records_inserted,
        records_updated: counts.records_updated,
        errors,
        failed_batches,
        start_date: run.range.start().to_string(),
        end_date: run.range.end().to_string(),
        interval: run.interval,
        provider: run.provider,
    };
    if leased_elsewhere {
        tracing::warn!(
            holder = run.lease_execution.as_deref().unwrap_or_default(),
            "another execution holds the run's lease; leaving the run open"
        );
        return Ok(FinalizeRunOutput {
            status: RunStatus::Running,
            ..summary
        });
    }
    let json = serde_json::to_value(&summary)
        .map_err(|e| BackfillError::InvalidInput(format!("cannot encode the run summary: {e}")))?;
    runs::finish(tx, &run.run_id, status, &json).await?;
    info!(
        status = status.as_str(),
        requested = summary.requested,
        success = summary.success,
        failed = summary.failed,
        rate_limited = summary.rate_limited,
        pending = summary.pending,
        records_inserted = summary.records_inserted,
        records_updated = summary.records_updated,
        failed_batches = summary.failed_batches.len(),
        "run finalized"
    );
    Ok(summary)
}

/// The batches the state machine reports as failed. A Map that failed as a whole reports an error
/// object instead of outcomes: its batches' tickers simply stay unfinished, which the counts show.
fn failed_batches(results: Option<&serde_json::Value>) -> Vec<(i32, Option<String>)> {
    let Some(serde_json::Value::Array(items)) = results else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| serde_json::from_value::<BatchOutcome>(item.clone()).ok())
        .filter(|o| o.outcome == "failed")
        .map(|o| (o.batch, o.error))
        .collect()
}
