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

/// What the batch's row says after an invocation was recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvocationRecord {
    /// Consecutive invocations that ended on transient faults (drives their backoff).
    pub fault_streak: i32,
    /// How long since a unit of the batch (a ticker, or a grouped day) last finished.
    pub idle: std::time::Duration,
}

/// Records how an invocation ended (`status`: done, partial, rate_limited, unavailable).
/// Transient faults extend the streak of faulted invocations (restarting at 1 when this
/// invocation finished a unit first); any other ending resets it. Finishing a unit is progress:
/// it restarts the batch's idle clock. `consecutive_rate_limits` is no longer written (a 429's
/// wait is the shared budget's, not a per-batch backoff); the column stays, defaulting to 0,
/// because an earlier release still running during a deploy writes it.
pub async fn record_invocation(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    status: &str,
    made_progress: bool,
) -> Result<InvocationRecord, BackfillError> {
    let row = client
        .query_one(
            "UPDATE backfill_batch
                SET invocations = invocations + 1,
                    last_status = $3::text,
                    consecutive_faults = CASE
                        WHEN $3::text <> 'unavailable' THEN 0
                        WHEN $4 THEN 1
                        ELSE consecutive_faults + 1 END,
                    last_progress_at = CASE WHEN $4 THEN now() ELSE last_progress_at END,
                    updated_at = now()
              WHERE run_id = $1 AND batch = $2
          RETURNING consecutive_faults,
                    GREATEST(EXTRACT(EPOCH FROM now() - last_progress_at), 0)::float8 AS idle",
            &[&run_id.as_str(), &batch, &status, &made_progress],
        )
        .await?;
    let idle: f64 = row.try_get("idle")?;
    Ok(InvocationRecord {
        fault_streak: row.try_get("consecutive_faults")?,
        idle: std::time::Duration::from_secs_f64(idle.max(0.0)),
    })
}

/// The error name of a batch given up for want of progress.
pub const NO_PROGRESS: &str = "NoProgress";

// The ways a batch's row takes an error, each with the status and counters that go with it.
// Each binds $1 run, $2 batch, $3 error name, $4 message (see `note`).
const MARK_STALLED: &str = "UPDATE backfill_batch
        SET last_status = 'stalled', last_error_name = $3, last_error_message = $4,
            updated_at = now()
      WHERE run_id = $1 AND batch = $2";
const NOTE_FAULT: &str = "UPDATE backfill_batch SET last_error_name = $3, last_error_message = $4
      WHERE run_id = $1 AND batch = $2";
const RECORD_ERROR: &str = "UPDATE backfill_batch
        SET invocations = invocations + 1, last_status = 'error',
            last_error_name = $3, last_error_message = $4, updated_at = now()
      WHERE run_id = $1 AND batch = $2";

/// What an invocation leaves on its batch's row besides its status, for `backfill status` and
/// finalize-run.
#[derive(Debug, Clone, Copy)]
pub enum BatchNote<'a> {
    /// The batch is given up for want of progress: `stalled`, with the reason.
    Stalled { message: &'a str },
    /// The transient fault the invocation could not get past: what the state machine is waiting
    /// out, and the reason if the batch is given up later.
    Fault {
        error_name: &'a str,
        message: &'a str,
    },
    /// The error the invocation raised (best effort), so that a stuck batch can be explained.
    Error {
        error_name: &'a str,
        message: &'a str,
    },
}

pub async fn note(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    note: BatchNote<'_>,
) -> Result<(), BackfillError> {
    let (statement, error_name, message) = match note {
        BatchNote::Stalled { message } => (MARK_STALLED, NO_PROGRESS, message),
        BatchNote::Fault {
            error_name,
            message,
        } => (NOTE_FAULT, error_name, message),
        BatchNote::Error {
            error_name,
            message,
        } => (RECORD_ERROR, error_name, message),
    };
    client
        .execute(
            statement,
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
              WHERE run_id = $1 AND last_status IN ('failed', 'stalled')
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
    /// `failed` (given up after the state machine's retries), `stalled` (given up for want of
    /// progress) or `error` (the last invocation raised; the state machine may still be
    /// retrying it).
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
              WHERE run_id = $1 AND last_status IN ('failed', 'error', 'stalled')
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

/// Batches whose last invocation was rate limited or ended on transient faults and that still
/// have tickers to fetch: the batches the state machine is waiting on right now (or gave up on
/// after its rounds).
pub async fn waiting(client: &impl GenericClient, run_id: &RunId) -> Result<i64, BackfillError> {
    let row = client
        .query_one(
            "SELECT COUNT(*) AS waiting
               FROM backfill_batch b
              WHERE b.run_id = $1 AND b.last_status IN ('rate_limited', 'unavailable')
                AND EXISTS (SELECT 1 FROM backfill_progress p
                             WHERE p.run_id = b.run_id AND p.batch = b.batch
                               AND p.status IN ('pending', 'rate_limited'))",
            &[&run_id.as_str()],
        )
        .await?;
    Ok(row.try_get("waiting")?)
}
