//! Closing a run: its final status and summary from what the database holds. finalize-run closes
//! the run its execution worked on; the CLI closes a run whose execution ended without doing so.

use tracing::info;

use crate::contract::{FinalizeRunOutput, RunStatus};
use crate::db::{batches, progress, runs};
use crate::error::BackfillError;
use crate::model::RunId;

/// Closes a run and returns its summary, in the caller's transaction. Idempotent: a run already
/// closed keeps its stored summary and nothing is written (a retried or repeated finalize-run, or
/// one invoked by hand with invented outcomes, changes nothing). A run whose lease another
/// execution holds is not closed by `execution`: its current summary is returned.
/// `batch_results` is what the state machine's Map reported (absent when nobody reports any).
pub async fn close(
    tx: &tokio_postgres::Transaction<'_>,
    run_id: &RunId,
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

/// The batches the state machine reports as failed, from its Map results. A Map that failed as a
/// whole reports an error object instead of outcomes: its batches' tickers simply stay
/// unfinished, which the counts show.
fn failed_batches(results: Option<&serde_json::Value>) -> Vec<(i32, Option<String>)> {
    let Some(serde_json::Value::Array(items)) = results else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            serde_json::from_value::<crate::contract::BatchOutcome>(item.clone()).ok()
        })
        .filter(|o| o.outcome == "failed")
        .map(|o| (o.batch, o.error))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_outcomes_of_an_outcome_list_are_failed_batches() {
        let results = serde_json::json!([
            {"batch": 0, "outcome": "done"},
            {"batch": 1, "outcome": "failed", "error": "DatabaseRejected"},
            {"batch": 2, "outcome": "rate_limit_rounds_exhausted"},
            {"batch": 3, "outcome": "failed"},
            "not an outcome",
        ]);
        assert_eq!(
            failed_batches(Some(&results)),
            [(1, Some("DatabaseRejected".to_string())), (3, None)]
        );
        // A Map that failed as a whole reports an error object: no batch is singled out.
        let map_error = serde_json::json!({"Error": "States.ExceedToleratedFailureThreshold"});
        assert!(failed_batches(Some(&map_error)).is_empty());
        assert!(failed_batches(None).is_empty());
    }
}
