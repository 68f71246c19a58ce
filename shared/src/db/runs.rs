//! `backfill_run`: one row per run, holding the parameters a resume must reuse.

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::{GenericClient, Row};

use crate::contract::RunStatus;
use crate::error::BackfillError;
use crate::model::{DateRange, ExecutionName, Interval, ProviderKind, RunId, Selection, Strategy};

/// A run's stored parameters and state.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: RunId,
    pub status: RunStatus,
    pub range: DateRange,
    pub interval: Interval,
    pub provider: ProviderKind,
    /// How the run fetches (per ticker, or grouped by day); fixed at creation.
    pub strategy: Strategy,
    pub selection: Selection,
    pub batch_size: i32,
    /// Batch numbers handed out so far; a resume numbers its batches from here.
    pub batch_count: i32,
    pub requested: i32,
    pub skipped: i32,
    pub executions: i32,
    /// The execution that created the run, when it said (scheduled runs do).
    pub execution_name: Option<String>,
    /// The execution working on the run now, if any (released when the run is closed).
    pub lease_execution: Option<String>,
    pub summary: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The parameters of a new run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub run_id: RunId,
    pub range: DateRange,
    pub interval: Interval,
    pub provider: ProviderKind,
    pub strategy: Strategy,
    pub selection: Selection,
    pub batch_size: i32,
    pub execution_name: Option<ExecutionName>,
    /// The execution creating it, which holds its lease.
    pub lease_execution: Option<String>,
}

const COLUMNS: &str =
    "run_id, status, start_date, end_date, interval, provider, strategy, selection, batch_size,
     batch_count, requested, skipped, executions, execution_name, lease_execution, summary,
     created_at, updated_at, finished_at";

fn from_row(row: &Row) -> Result<RunRecord, BackfillError> {
    let run_id: String = row.try_get("run_id")?;
    let corrupt = |what: String| {
        BackfillError::StoredDataInvalid(format!("backfill_run row {run_id:?} is corrupt: {what}"))
    };
    let start: NaiveDate = row.try_get("start_date")?;
    let end: NaiveDate = row.try_get("end_date")?;
    let interval: String = row.try_get("interval")?;
    let provider: String = row.try_get("provider")?;
    let strategy: String = row.try_get("strategy")?;
    let selection: serde_json::Value = row.try_get("selection")?;
    let status: String = row.try_get("status")?;
    Ok(RunRecord {
        run_id: RunId::parse(&run_id).map_err(|e| corrupt(e.to_string()))?,
        status: RunStatus::parse(&status)?,
        range: DateRange::new(start, end).map_err(|e| corrupt(e.to_string()))?,
        interval: interval
            .parse()
            .map_err(|e: BackfillError| corrupt(e.to_string()))?,
        provider: provider
            .parse()
            .map_err(|e: BackfillError| corrupt(e.to_string()))?,
        strategy: strategy
            .parse()
            .map_err(|e: BackfillError| corrupt(e.to_string()))?,
        selection: serde_json::from_value(selection).map_err(|e| corrupt(e.to_string()))?,
        batch_size: row.try_get("batch_size")?,
        batch_count: row.try_get("batch_count")?,
        requested: row.try_get("requested")?,
        skipped: row.try_get("skipped")?,
        executions: row.try_get("executions")?,
        execution_name: row.try_get("execution_name")?,
        lease_execution: row.try_get("lease_execution")?,
        summary: row.try_get("summary")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn selection_json(selection: &Selection) -> Result<serde_json::Value, BackfillError> {
    serde_json::to_value(selection)
        .map_err(|e| BackfillError::InvalidInput(format!("selection cannot be stored: {e}")))
}

pub async fn insert(client: &impl GenericClient, run: &NewRun) -> Result<(), BackfillError> {
    client
        .execute(
            "INSERT INTO backfill_run
                 (run_id, start_date, end_date, interval, provider, selection, batch_size, execution_name,
                  lease_execution, lease_taken_at, strategy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text, CASE WHEN $9::text IS NULL THEN NULL ELSE now() END, $10)",
            &[
                &run.run_id.as_str(),
                &run.range.start(),
                &run.range.end(),
                &run.interval.as_str(),
                &run.provider.as_str(),
                &selection_json(&run.selection)?,
                &run.batch_size,
                &run.execution_name.as_ref().map(ExecutionName::as_str),
                &run.lease_execution,
                &run.strategy.as_str(),
            ],
        )
        .await?;
    Ok(())
}

/// The run an execution created, if it named itself (see [`NewRun::execution_name`]).
pub async fn find_by_execution_name(
    client: &impl GenericClient,
    name: &ExecutionName,
) -> Result<Option<RunRecord>, BackfillError> {
    let sql = format!("SELECT {COLUMNS} FROM backfill_run WHERE execution_name = $1");
    client
        .query_opt(&sql, &[&name.as_str()])
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

pub async fn get(client: &impl GenericClient, run_id: &RunId) -> Result<RunRecord, BackfillError> {
    select_one(client, run_id, "").await
}

/// Like [`get`], holding the row lock until the transaction ends, so two resumes of one run
/// cannot hand out the same batch numbers.
pub async fn get_for_update(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<RunRecord, BackfillError> {
    select_one(client, run_id, "FOR UPDATE").await
}

async fn select_one(
    client: &impl GenericClient,
    run_id: &RunId,
    locking: &str,
) -> Result<RunRecord, BackfillError> {
    let sql = format!("SELECT {COLUMNS} FROM backfill_run WHERE run_id = $1 {locking}");
    match client.query_opt(&sql, &[&run_id.as_str()]).await? {
        Some(row) => from_row(&row),
        None => Err(BackfillError::RunNotFound(run_id.to_string())),
    }
}

/// Records a (re)selection: the batch numbers handed out so far and the plan's totals.
pub async fn record_plan(
    client: &impl GenericClient,
    run_id: &RunId,
    batch_count: i32,
    requested: i32,
    skipped: i32,
    new_execution: bool,
) -> Result<(), BackfillError> {
    client
        .execute(
            "UPDATE backfill_run
                SET batch_count = $2, requested = $3, skipped = $4,
                    executions = executions + CASE WHEN $5 THEN 1 ELSE 0 END,
                    status = 'running', finished_at = NULL, updated_at = now()
              WHERE run_id = $1",
            &[
                &run_id.as_str(),
                &batch_count,
                &requested,
                &skipped,
                &new_execution,
            ],
        )
        .await?;
    Ok(())
}

/// Takes the run's lease for `execution`: it must be free, or held by `execution` already, or
/// `take_over` must be set (whoever sets it has checked that the holder no longer runs). On a
/// row locked by the caller's transaction ([`get_for_update`]), so no two callers both win.
pub async fn take_lease(
    client: &impl GenericClient,
    run: &RunRecord,
    execution: &str,
    take_over: bool,
) -> Result<(), BackfillError> {
    match run.lease_execution.as_deref() {
        Some(holder) if holder != execution && !take_over => Err(BackfillError::RunBusy {
            run_id: run.run_id.to_string(),
            execution: holder.to_string(),
        }),
        _ => {
            client
                .execute(
                    "UPDATE backfill_run
                        SET lease_execution = $2, lease_taken_at = now(), updated_at = now()
                      WHERE run_id = $1",
                    &[&run.run_id.as_str(), &execution],
                )
                .await?;
            Ok(())
        }
    }
}

/// Releases the run's lease if `execution` holds it.
pub async fn release_lease(
    client: &impl GenericClient,
    run_id: &RunId,
    execution: &str,
) -> Result<(), BackfillError> {
    client
        .execute(
            "UPDATE backfill_run SET lease_execution = NULL, lease_taken_at = NULL
              WHERE run_id = $1 AND lease_execution = $2",
            &[&run_id.as_str(), &execution],
        )
        .await?;
    Ok(())
}

/// Closes the run with its summary and releases its lease.
pub async fn finish(
    client: &impl GenericClient,
    run_id: &RunId,
    status: RunStatus,
    summary: &serde_json::Value,
) -> Result<(), BackfillError> {
    client
        .execute(
            "UPDATE backfill_run
                SET status = $2, summary = $3, finished_at = now(), updated_at = now(),
                    lease_execution = NULL, lease_taken_at = NULL
              WHERE run_id = $1",
            &[&run_id.as_str(), &status.as_str(), summary],
        )
        .await?;
    Ok(())
}

/// The most recent runs, newest first.
pub async fn recent(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<RunRecord>, BackfillError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM backfill_run ORDER BY created_at DESC, run_id DESC LIMIT $1"
    );
    client
        .query(&sql, &[&limit])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn exists(client: &impl GenericClient, run_id: &RunId) -> Result<bool, BackfillError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM backfill_run WHERE run_id = $1",
            &[&run_id.as_str()],
        )
        .await?
        .is_some())
}
