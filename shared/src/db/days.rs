//! `backfill_day`: a grouped run's work queue, one row per weekday of the window. fetch-batch
//! claims days with `FOR UPDATE SKIP LOCKED` (as it claims tickers of a per-ticker run), so
//! concurrent invocations of one batch never fetch the same day at once, and a day is marked
//! `done` in the transaction that stores its bars.

use chrono::NaiveDate;
use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::RunId;

/// Writes a grouped run's days, `pending`, in batches of `days_per_batch` contiguous days
/// (in date order), numbered from `first_batch`. Returns the number of batches.
pub async fn insert_plan(
    client: &impl GenericClient,
    run_id: &RunId,
    days: &[NaiveDate],
    days_per_batch: i32,
    first_batch: i32,
) -> Result<i32, BackfillError> {
    client
        .execute(
            "INSERT INTO backfill_day (run_id, day, batch, status)
             SELECT $1, d.day, $3::int + ((d.ord - 1) / $2::int)::int, 'pending'
               FROM UNNEST($4::date[]) WITH ORDINALITY AS d(day, ord)",
            &[
                &run_id.as_str(),
                &days_per_batch.max(1),
                &first_batch,
                &days,
            ],
        )
        .await?;
    Ok(batch_count(days.len(), days_per_batch))
}

fn batch_count(days: usize, days_per_batch: i32) -> i32 {
    let size = usize::try_from(days_per_batch.max(1)).unwrap_or(1);
    i32::try_from(days.div_ceil(size)).unwrap_or(i32::MAX)
}

/// Puts a resumed grouped run's days back in the queue under fresh batch numbers (from
/// `first_batch`): the days not yet `done`, or every day with `all`. Returns
/// `(days requeued, batches)`.
pub async fn requeue(
    client: &impl GenericClient,
    run_id: &RunId,
    all: bool,
    days_per_batch: i32,
    first_batch: i32,
) -> Result<(i64, i32), BackfillError> {
    let requeued = client
        .execute(
            "WITH todo AS (
                 SELECT day, ROW_NUMBER() OVER (ORDER BY day) AS ord
                   FROM backfill_day
                  WHERE run_id = $1 AND ($4 OR status <> 'done')
             )
             UPDATE backfill_day d
                SET status = 'pending', batch = $3::int + ((todo.ord - 1) / $2::int)::int,
                    error_name = NULL, error_message = NULL, completed_at = NULL, updated_at = now()
               FROM todo
              WHERE d.run_id = $1 AND d.day = todo.day",
            &[&run_id.as_str(), &days_per_batch.max(1), &first_batch, &all],
        )
        .await?;
    let requeued = usize::try_from(requeued).unwrap_or(usize::MAX);
    Ok((
        i64::try_from(requeued).unwrap_or(i64::MAX),
        batch_count(requeued, days_per_batch),
    ))
}

/// Claims the batch's earliest pending day that no other transaction holds and that this
/// invocation has not tried yet; the row stays locked until the claiming transaction ends.
pub async fn claim_next(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    tried: &[NaiveDate],
) -> Result<Option<NaiveDate>, BackfillError> {
    let row = client
        .query_opt(
            "SELECT day FROM backfill_day
              WHERE run_id = $1 AND batch = $2 AND status = 'pending' AND NOT (day = ANY($3))
           ORDER BY day
              LIMIT 1
                FOR UPDATE SKIP LOCKED",
            &[&run_id.as_str(), &batch, &tried],
        )
        .await?;
    Ok(row.map(|r| r.try_get("day")).transpose()?)
}

/// Pending days of the batch this invocation has not tried: when [`claim_next`] finds none of
/// them, another transaction holds them.
pub async fn held_elsewhere(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    tried: &[NaiveDate],
) -> Result<i64, BackfillError> {
    let row = client
        .query_one(
            "SELECT COUNT(*) FROM backfill_day
              WHERE run_id = $1 AND batch = $2 AND status = 'pending' AND NOT (day = ANY($3))",
            &[&run_id.as_str(), &batch, &tried],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Marks a claimed day `done` with what it brought.
pub async fn mark_done(
    client: &impl GenericClient,
    run_id: &RunId,
    day: NaiveDate,
    tickers_listed: i64,
    inserted: i64,
) -> Result<(), BackfillError> {
    let to_i32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    client
        .execute(
            "UPDATE backfill_day
                SET status = 'done', attempts = attempts + 1, tickers_listed = $3,
                    records_inserted = records_inserted + $4, error_name = NULL,
                    error_message = NULL, completed_at = now(), updated_at = now()
              WHERE run_id = $1 AND day = $2",
            &[
                &run_id.as_str(),
                &day,
                &to_i32(tickers_listed),
                &to_i32(inserted),
            ],
        )
        .await?;
    Ok(())
}

/// Notes on a claimed day that stays `pending` what went wrong (a transient fault, a 429), for
/// `backfill status` and the next invocation.
pub async fn record_problem(
    client: &impl GenericClient,
    run_id: &RunId,
    day: NaiveDate,
    error_name: &str,
    message: &str,
) -> Result<(), BackfillError> {
    client
        .execute(
            "UPDATE backfill_day
                SET attempts = attempts + 1, error_name = $3, error_message = $4, updated_at = now()
              WHERE run_id = $1 AND day = $2",
            &[&run_id.as_str(), &day, &error_name, &message],
        )
        .await?;
    Ok(())
}

/// Days of a run (or of one of its batches) not yet `done`.
pub async fn pending(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: Option<i32>,
) -> Result<i64, BackfillError> {
    let row = client
        .query_one(
            "SELECT COUNT(*) FROM backfill_day
              WHERE run_id = $1 AND ($2::int IS NULL OR batch = $2) AND status <> 'done'",
            &[&run_id.as_str(), &batch],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Serializes the "is every day done?" check of one run's concurrent batches, until the
/// caller's transaction ends: each batch marks its day done first, then takes this lock, then
/// counts; so of two batches finishing the last two days at once, the second to get the lock
/// sees both days done (READ COMMITTED reads what the first committed) and settles the tickers.
pub async fn lock_completion(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<(), BackfillError> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('backfill_day:' || $1::text))",
            &[&run_id.as_str()],
        )
        .await?;
    Ok(())
}

/// One day of a grouped run, for status reports and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub day: NaiveDate,
    pub batch: i32,
    pub status: String,
    pub attempts: i32,
    pub tickers_listed: Option<i32>,
    pub records_inserted: i32,
    pub error_name: Option<String>,
}

pub async fn list(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<DayRow>, BackfillError> {
    let rows = client
        .query(
            "SELECT day, batch, status, attempts, tickers_listed, records_inserted, error_name
               FROM backfill_day WHERE run_id = $1 ORDER BY day",
            &[&run_id.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DayRow {
                day: r.try_get("day")?,
                batch: r.try_get("batch")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                tickers_listed: r.try_get("tickers_listed")?,
                records_inserted: r.try_get("records_inserted")?,
                error_name: r.try_get("error_name")?,
            })
        })
        .collect()
}
