//! `backfill_batch`: state of a batch that outlives one fetch-batch invocation.

use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::RunId;

/// Creates the rows for batches `first..first + count`.
pub async fn insert_range(
    client: &impl GenericClient,
    run_id: &RunId,
    first: i32,
    count: i32,
) -> Result<(), BackfillError> {
    client
        .execute(
            "INSERT INTO backfill_batch (run_id, batch)
             SELECT $1, b FROM generate_series($2::int, $2::int + $3::int - 1) AS b
             ON CONFLICT DO NOTHING",
            &[&run_id.as_str(), &first, &count],
        )
        .await?;
    Ok(())
}

pub async fn exists(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
) -> Result<bool, BackfillError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM backfill_batch WHERE run_id = $1 AND batch = $2",
            &[&run_id.as_str(), &batch],
        )
        .await?
        .is_some())
}

/// Records how an invocation ended. A 429 extends the streak of consecutive rate-limited
/// invocations (restarting it at 1 when this invocation finished a ticker first); any other
/// ending resets it. Returns the streak, which drives the backoff when no `Retry-After` is given.
pub async fn record_invocation(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    status: &str,
    rate_limited: bool,
    made_progress: bool,
) -> Result<i32, BackfillError> {
    let row = client
        .query_one(
            "UPDATE backfill_batch
                SET invocations = invocations + 1,
                    last_status = $3,
                    consecutive_rate_limits = CASE
                        WHEN NOT $4 THEN 0
                        WHEN $5 THEN 1
                        ELSE consecutive_rate_limits + 1 END,
                    updated_at = now()
              WHERE run_id = $1 AND batch = $2
          RETURNING consecutive_rate_limits",
            &[
                &run_id.as_str(),
                &batch,
                &status,
                &rate_limited,
                &made_progress,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Best-effort note of the error an invocation raised, so that a stuck batch can be explained.
pub async fn record_error(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    error_name: &str,
    message: &str,
) -> Result<(), BackfillError> {
    client
        .execute(
            "UPDATE backfill_batch
                SET invocations = invocations + 1, last_status = 'error',
                    last_error_name = $3, last_error_message = $4, updated_at = now()
              WHERE run_id = $1 AND batch = $2",
            &[&run_id.as_str(), &batch, &error_name, &message],
        )
        .await?;
    Ok(())
}

/// Marks batches the state machine gave up on after its retries.
pub async fn mark_failed(
    client: &impl GenericClient,
    run_id: &RunId,
    failed: &[(i32, Option<String>)],
) -> Result<(), BackfillError> {
    let batches: Vec<i32> = failed.iter().map(|(b, _)| *b).collect();
    let names: Vec<Option<String>> = failed.iter().map(|(_, n)| n.clone()).collect();
    client
        .execute(
            "UPDATE backfill_batch b
                SET last_status = 'failed',
                    last_error_name = COALESCE(f.name, b.last_error_name),
                    updated_at = now()
               FROM UNNEST($2::int[], $3::text[]) AS f(batch, name)
              WHERE b.run_id = $1 AND b.batch = f.batch",
            &[&run_id.as_str(), &batches, &names],
        )
        .await?;
    Ok(())
}

/// Batches of the run marked `failed`, by number.
pub async fn failed(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<crate::contract::FailedBatch>, BackfillError> {
    let rows = client
        .query(
            "SELECT batch, last_error_name, last_error_message
               FROM backfill_batch
              WHERE run_id = $1 AND last_status = 'failed'
           ORDER BY batch",
            &[&run_id.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(crate::contract::FailedBatch {
                batch: r.try_get("batch")?,
                error_name: r.try_get("last_error_name")?,
                message: r.try_get("last_error_message")?,
            })
        })
        .collect()
}

/// A batch whose last invocation raised an error, or that the state machine gave up on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchProblem {
    pub batch: i32,
    /// `failed` (given up after the state machine's retries) or `error` (the last invocation
    /// raised; the state machine may still be retrying it).
    pub last_status: String,
    pub error_name: Option<String>,
    pub message: Option<String>,
    pub invocations: i32,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub async fn problems(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<BatchProblem>, BackfillError> {
    let rows = client
        .query(
            "SELECT batch, last_status, last_error_name, last_error_message, invocations, updated_at
               FROM backfill_batch
              WHERE run_id = $1 AND last_status IN ('failed', 'error')
           ORDER BY batch",
            &[&run_id.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(BatchProblem {
                batch: r.try_get("batch")?,
                last_status: r.try_get("last_status")?,
                error_name: r.try_get("last_error_name")?,
                message: r.try_get("last_error_message")?,
                invocations: r.try_get("invocations")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Batches whose last invocation was rate limited and that still have tickers to fetch: the
/// batches the state machine is waiting on right now (or gave up on after its rounds).
pub async fn waiting(client: &impl GenericClient, run_id: &RunId) -> Result<i64, BackfillError> {
    let row = client
        .query_one(
            "SELECT COUNT(*) AS waiting
               FROM backfill_batch b
              WHERE b.run_id = $1 AND b.last_status = 'rate_limited'
                AND EXISTS (SELECT 1 FROM backfill_progress p
                             WHERE p.run_id = b.run_id AND p.batch = b.batch
                               AND p.status IN ('pending', 'rate_limited'))",
            &[&run_id.as_str()],
        )
        .await?;
    Ok(row.try_get("waiting")?)
}
