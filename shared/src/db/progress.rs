//! `backfill_progress`: one row per (run, ticker). Doubles as the run's work queue: fetch-batch
//! claims rows with `FOR UPDATE SKIP LOCKED`, so concurrent invocations of one batch never fetch
//! the same ticker at once.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use crate::contract::TickerError;
use crate::error::BackfillError;
use crate::model::{Reprocess, RunId, Symbol, TickerStatus};

/// Writes a new run's plan: every symbol `pending`, in batches of `batch_size` by symbol order,
/// numbered from `first_batch`. Returns the number of batches.
pub async fn insert_plan(
    client: &impl GenericClient,
    run_id: &RunId,
    symbols: &[Symbol],
    batch_size: i32,
    first_batch: i32,
) -> Result<i32, BackfillError> {
    let names: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
    client
        .execute(
            "INSERT INTO backfill_progress (run_id, symbol, status, batch, records_inserted, updated_at)
             SELECT $1, s.symbol, 'pending', $3::int + ((s.ord - 1) / $2::int)::int, 0, now()
               FROM UNNEST($4::text[]) WITH ORDINALITY AS s(symbol, ord)",
            &[&run_id.as_str(), &batch_size, &first_batch, &names],
        )
        .await?;
    Ok(batch_count(symbols.len(), batch_size))
}

/// Records symbols that cannot be stored (see [`crate::db::tickers`]) as `failed` with
/// `error_name` = `NotInTickerTable`, outside any batch, so that no invocation fetches them and
/// the run's counts and `backfill status` show them with their reason. On a resume the rows
/// exist already and are updated the same way.
pub async fn record_unlisted(
    client: &impl GenericClient,
    run_id: &RunId,
    unlisted: &[(Symbol, String)],
) -> Result<(), BackfillError> {
    if unlisted.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = unlisted.iter().map(|(s, _)| s.as_str()).collect();
    let messages: Vec<&str> = unlisted.iter().map(|(_, m)| m.as_str()).collect();
    client
        .execute(
            "INSERT INTO backfill_progress
                    (run_id, symbol, status, batch, records_inserted, error_name, error_message,
                     completed_at, updated_at)
             SELECT $1, u.symbol, 'failed', NULL, 0, $2, u.message, now(), now()
               FROM UNNEST($3::text[], $4::text[]) AS u(symbol, message)
             ON CONFLICT (run_id, symbol) DO UPDATE
                SET status = 'failed', batch = NULL, error_name = EXCLUDED.error_name,
                    error_message = EXCLUDED.error_message, completed_at = now(),
                    updated_at = now()",
            &[
                &run_id.as_str(),
                &crate::db::tickers::NOT_IN_TICKER_TABLE,
                &names,
                &messages,
            ],
        )
        .await?;
    Ok(())
}

/// The symbols a resume would work on again: every ticker not yet `success`, or every ticker.
pub async fn requeue_candidates(
    client: &impl GenericClient,
    run_id: &RunId,
    reprocess: Reprocess,
) -> Result<Vec<Symbol>, BackfillError> {
    let rows = client
        .query(
            "SELECT symbol FROM backfill_progress
              WHERE run_id = $1 AND ($2 OR status <> 'success')
           ORDER BY symbol",
            &[&run_id.as_str(), &(reprocess == Reprocess::All)],
        )
        .await?;
    rows.iter().map(|r| stored_symbol(r, 0, run_id)).collect()
}

/// A `backfill_progress.symbol` read back: a value that is not a symbol was written by someone
/// else (or by hand), so it is `StoredDataInvalid`, which no retry can fix.
fn stored_symbol<I>(row: &Row, column: I, run_id: &RunId) -> Result<Symbol, BackfillError>
where
    I: tokio_postgres::row::RowIndex + std::fmt::Display,
{
    let raw: String = row.try_get(column)?;
    Symbol::parse(&raw).map_err(|e| {
        BackfillError::StoredDataInvalid(format!(
            "backfill_progress of run {run_id} holds a malformed symbol: {e}"
        ))
    })
}

fn batch_count(tickers: usize, batch_size: i32) -> i32 {
    let size = usize::try_from(batch_size.max(1)).unwrap_or(1);
    i32::try_from(tickers.div_ceil(size)).unwrap_or(i32::MAX)
}

/// Puts a resumed run's tickers back in the queue under fresh batch numbers (from `first_batch`),
/// so that each execution's batches hold only the tickers it works on. With
/// [`Reprocess::Incomplete`] `success` tickers keep their rows untouched; `exclude` (symbols
/// settled as unstorable) stay as they are.
/// Returns `(tickers requeued, batches)`.
pub async fn requeue(
    client: &impl GenericClient,
    run_id: &RunId,
    reprocess: Reprocess,
    batch_size: i32,
    first_batch: i32,
    exclude: &[Symbol],
) -> Result<(i64, i32), BackfillError> {
    let all = reprocess == Reprocess::All;
    let exclude: Vec<&str> = exclude.iter().map(Symbol::as_str).collect();
    let requeued = client
        .execute(
            "WITH todo AS (
                 SELECT id, ROW_NUMBER() OVER (ORDER BY symbol) AS ord
                   FROM backfill_progress
                  WHERE run_id = $1 AND ($4 OR status <> 'success') AND NOT (symbol = ANY($5))
             )
             UPDATE backfill_progress p
                SET status = 'pending', batch = $3::int + ((todo.ord - 1) / $2::int)::int,
                    error_name = NULL, error_message = NULL, completed_at = NULL, updated_at = now(),
                    -- A refresh of every ticker starts over; an incomplete one goes on.
                    last_bar_at = CASE WHEN $4 THEN NULL ELSE p.last_bar_at END
               FROM todo
              WHERE p.id = todo.id
                -- Checked again on the row itself: a fetch that committed `success` after this
                -- statement's snapshot is re-read here (READ COMMITTED), never moved back.
                AND ($4 OR p.status <> 'success')",
            &[&run_id.as_str(), &batch_size, &first_batch, &all, &exclude],
        )
        .await?;
    let requeued = i64::try_from(requeued).unwrap_or(i64::MAX);
    Ok((requeued, batch_count(requeued as usize, batch_size)))
}

/// A ticker claimed for fetching; the row stays locked until the claiming transaction ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub id: i64,
    pub symbol: Symbol,
    pub attempts: i32,
    /// The ticker's cursor: the newest bar this run stored for it (a fetch interrupted mid-range
    /// goes on from here).
    pub last_bar_at: Option<DateTime<Utc>>,
}

/// Claims the batch's next unfinished ticker (by symbol) that no other transaction holds and that
/// this invocation has not tried yet.
pub async fn claim_next(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    tried: &[String],
) -> Result<Option<Claim>, BackfillError> {
    let row = client
        .query_opt(
            "SELECT id, symbol, attempts, last_bar_at
               FROM backfill_progress
              WHERE run_id = $1 AND batch = $2 AND status IN ('pending', 'rate_limited')
                AND NOT (symbol = ANY($3))
           ORDER BY symbol
              LIMIT 1
                FOR UPDATE SKIP LOCKED",
            &[&run_id.as_str(), &batch, &tried],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Claim {
        id: row.try_get("id")?,
        symbol: stored_symbol(&row, "symbol", run_id)?,
        attempts: row.try_get("attempts")?,
        last_bar_at: row.try_get("last_bar_at")?,
    }))
}

/// Claims ticker `id` again after one of its pages was committed (which let the row go): `None`
/// if another invocation holds it now or it is no longer claimable, and that one goes on from
/// the committed cursor.
pub async fn reclaim(client: &impl GenericClient, id: i64) -> Result<bool, BackfillError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM backfill_progress
              WHERE id = $1 AND status IN ('pending', 'rate_limited')
                FOR UPDATE SKIP LOCKED",
            &[&id],
        )
        .await?
        .is_some())
}

/// Records one stored page of a claimed ticker: its rows, and the cursor, committed with them.
pub async fn record_page(
    client: &impl GenericClient,
    id: i64,
    started_at: DateTime<Utc>,
    inserted: i64,
    updated: i64,
    last_bar_at: Option<DateTime<Utc>>,
) -> Result<(), BackfillError> {
    let to_i32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    client
        .execute(
            "UPDATE backfill_progress
                SET records_inserted = COALESCE(records_inserted, 0) + $3,
                    records_updated = records_updated + $4,
                    last_bar_at = GREATEST(last_bar_at, $5),
                    started_at = COALESCE(started_at, $2), updated_at = now()
              WHERE id = $1",
            &[
                &id,
                &started_at,
                &to_i32(inserted),
                &to_i32(updated),
                &last_bar_at,
            ],
        )
        .await?;
    Ok(())
}

/// Unfinished tickers of the batch that this invocation has not tried: when `claim_next` finds
/// none of them, another transaction holds them.
pub async fn held_elsewhere(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: i32,
    tried: &[String],
) -> Result<i64, BackfillError> {
    let row = client
        .query_one(
            "SELECT COUNT(*) FROM backfill_progress
              WHERE run_id = $1 AND batch = $2 AND status IN ('pending', 'rate_limited')
                AND NOT (symbol = ANY($3))",
            &[&run_id.as_str(), &batch, &tried],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// What one successful fetch of a ticker wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickerOutcome {
    pub inserted: i64,
    pub updated: i64,
    pub skipped_bars: i64,
    pub last_bar_at: Option<DateTime<Utc>>,
}

/// Marks a claimed ticker `success`; row counts accumulate over a run's attempts.
pub async fn record_success(
    client: &impl GenericClient,
    id: i64,
    started_at: DateTime<Utc>,
    outcome: &TickerOutcome,
) -> Result<(), BackfillError> {
    let to_i32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    client
        .execute(
            "UPDATE backfill_progress
                SET status = 'success',
                    records_inserted = COALESCE(records_inserted, 0) + $3,
                    records_updated = records_updated + $4,
                    bars_skipped = $5,
                    last_bar_at = GREATEST(last_bar_at, $6),
                    attempts = attempts + 1,
                    error_name = NULL, error_message = NULL,
                    started_at = COALESCE(started_at, $2), completed_at = now(), updated_at = now()
              WHERE id = $1",
            &[
                &id,
                &started_at,
                &to_i32(outcome.inserted),
                &to_i32(outcome.updated),
                &to_i32(outcome.skipped_bars),
                &outcome.last_bar_at,
            ],
        )
        .await?;
    Ok(())
}

/// Notes a transient fault on a claimed ticker that stays claimable (`pending`): the attempt
/// counts, and `backfill status` shows what the batch is waiting on.
pub async fn record_fault(
    client: &impl GenericClient,
    id: i64,
    started_at: DateTime<Utc>,
    error_name: &str,
    message: &str,
) -> Result<(), BackfillError> {
    client
        .execute(
            "UPDATE backfill_progress
                SET status = 'pending', error_name = $2, error_message = $3,
                    attempts = attempts + 1, started_at = COALESCE(started_at, $4),
                    updated_at = now()
              WHERE id = $1",
            &[&id, &error_name, &message, &started_at],
        )
        .await?;
    Ok(())
}

/// Marks a claimed ticker `failed` or `rate_limited` with an error name and a readable message.
pub async fn record_problem(
    client: &impl GenericClient,
    id: i64,
    started_at: DateTime<Utc>,
    status: TickerStatus,
    error_name: &str,
    message: &str,
) -> Result<(), BackfillError> {
    let completed = status == TickerStatus::Failed;
    client
        .execute(
            "UPDATE backfill_progress
                SET status = $2, error_name = $3, error_message = $4,
                    attempts = attempts + 1,
                    started_at = COALESCE(started_at, $5),
                    completed_at = CASE WHEN $6 THEN now() ELSE NULL END,
                    updated_at = now()
              WHERE id = $1",
            &[
                &id,
                &status.as_str(),
                &error_name,
                &message,
                &started_at,
                &completed,
            ],
        )
        .await?;
    Ok(())
}

/// Ticker counts per status and row totals, for a whole run or one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusCounts {
    pub pending: i64,
    pub success: i64,
    pub failed: i64,
    pub rate_limited: i64,
    pub records_inserted: i64,
    pub records_updated: i64,
}

impl StatusCounts {
    pub fn total(&self) -> i64 {
        self.pending + self.success + self.failed + self.rate_limited
    }

    /// Tickers a later invocation or resume can still fetch.
    pub fn unfinished(&self) -> i64 {
        self.pending + self.rate_limited
    }
}

/// Ticker counts per status and row totals, as SELECT columns over `backfill_progress`.
const COUNT_COLUMNS: &str = "
    COUNT(*) FILTER (WHERE status = 'pending')      AS pending,
    COUNT(*) FILTER (WHERE status = 'success')      AS success,
    COUNT(*) FILTER (WHERE status = 'failed')       AS failed,
    COUNT(*) FILTER (WHERE status = 'rate_limited') AS rate_limited,
    COALESCE(SUM(records_inserted), 0)::bigint      AS records_inserted,
    COALESCE(SUM(records_updated), 0)::bigint       AS records_updated";

fn counts_from_row(row: &Row) -> Result<StatusCounts, BackfillError> {
    Ok(StatusCounts {
        pending: row.try_get("pending")?,
        success: row.try_get("success")?,
        failed: row.try_get("failed")?,
        rate_limited: row.try_get("rate_limited")?,
        records_inserted: row.try_get("records_inserted")?,
        records_updated: row.try_get("records_updated")?,
    })
}

pub async fn counts(
    client: &impl GenericClient,
    run_id: &RunId,
    batch: Option<i32>,
) -> Result<StatusCounts, BackfillError> {
    let sql = format!(
        "SELECT {COUNT_COLUMNS} FROM backfill_progress
          WHERE run_id = $1 AND ($2::int IS NULL OR batch = $2)"
    );
    let row = client.query_one(&sql, &[&run_id.as_str(), &batch]).await?;
    counts_from_row(&row)
}

/// [`counts`] for several runs at once, by run id (runs without progress rows are absent).
pub async fn counts_by_run(
    client: &impl GenericClient,
    run_ids: &[&str],
) -> Result<std::collections::HashMap<String, StatusCounts>, BackfillError> {
    let sql = format!(
        "SELECT run_id, {COUNT_COLUMNS} FROM backfill_progress
          WHERE run_id = ANY($1) GROUP BY run_id"
    );
    let rows = client.query(&sql, &[&run_ids]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("run_id")?, counts_from_row(r)?)))
        .collect()
}

/// A `success` ticker of a run and the bars stored for it in the run's window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredTicker {
    pub symbol: String,
    pub rows_in_window: i64,
    pub first_bar: Option<DateTime<Utc>>,
    pub last_bar: Option<DateTime<Utc>>,
}

/// Every `success` ticker of the run with the rows `stock_price_history` holds for it in
/// `[from, to)` (what `backfill verify` checks).
pub async fn success_tickers_rows(
    client: &impl GenericClient,
    run_id: &RunId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StoredTicker>, BackfillError> {
    let rows = client
        .query(
            "SELECT p.symbol, COUNT(s.id) AS n, MIN(s.date) AS first_bar, MAX(s.date) AS last_bar
               FROM backfill_progress p
          LEFT JOIN stock_price_history s
                 ON s.symbol = p.symbol AND s.date >= $2 AND s.date < $3
              WHERE p.run_id = $1 AND p.status = 'success'
           GROUP BY p.symbol
           ORDER BY p.symbol",
            &[&run_id.as_str(), &from, &to],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredTicker {
                symbol: r.try_get("symbol")?,
                rows_in_window: r.try_get("n")?,
                first_bar: r.try_get("first_bar")?,
                last_bar: r.try_get("last_bar")?,
            })
        })
        .collect()
}

/// Failed and rate-limited tickers with their reasons, failed first, then by symbol.
pub async fn problems(
    client: &impl GenericClient,
    run_id: &RunId,
    limit: i64,
) -> Result<Vec<TickerError>, BackfillError> {
    let rows = client
        .query(
            "SELECT symbol, status, error_name, error_message
               FROM backfill_progress
              WHERE run_id = $1 AND status IN ('failed', 'rate_limited')
           ORDER BY status = 'failed' DESC, symbol
              LIMIT $2",
            &[&run_id.as_str(), &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TickerError {
                symbol: r.try_get("symbol")?,
                status: r.try_get("status")?,
                error_name: r.try_get("error_name")?,
                message: r.try_get("error_message")?,
            })
        })
        .collect()
}

/// One ticker's progress row, for status reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressRow {
    pub symbol: String,
    pub status: String,
    pub batch: Option<i32>,
    pub attempts: i32,
    pub records_inserted: i64,
    pub records_updated: i64,
    pub error_name: Option<String>,
    pub error_message: Option<String>,
}

pub async fn list(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<ProgressRow>, BackfillError> {
    let rows = client
        .query(
            "SELECT symbol, status, batch, attempts, COALESCE(records_inserted, 0)::bigint AS ins,
                    records_updated::bigint AS upd, error_name, error_message
               FROM backfill_progress WHERE run_id = $1 ORDER BY symbol",
            &[&run_id.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ProgressRow {
                symbol: r.try_get("symbol")?,
                status: r.try_get("status")?,
                batch: r.try_get("batch")?,
                attempts: r.try_get("attempts")?,
                records_inserted: r.try_get("ins")?,
                records_updated: r.try_get("upd")?,
                error_name: r.try_get("error_name")?,
                error_message: r.try_get("error_message")?,
            })
        })
        .collect()
}

// ---- grouped runs --------------------------------------------------------------------------

/// The error name of a ticker of a grouped run that no day's answer listed.
pub const NOT_LISTED_BY_PROVIDER: &str = "NotListedByProvider";

/// Writes a grouped run's tickers, every one `pending` and in no batch: a grouped run's batches
/// are ranges of days (`backfill_day`), and a ticker is settled once every day is done.
pub async fn insert_grouped_plan(
    client: &impl GenericClient,
    run_id: &RunId,
    symbols: &[Symbol],
) -> Result<(), BackfillError> {
    let names: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
    client
        .execute(
            "INSERT INTO backfill_progress (run_id, symbol, status, batch, records_inserted, updated_at)
             SELECT $1, s.symbol, 'pending', NULL, 0, now() FROM UNNEST($2::text[]) AS s(symbol)",
            &[&run_id.as_str(), &names],
        )
        .await?;
    Ok(())
}

/// The tickers a grouped run still stores bars for: every one not settled yet.
pub async fn unsettled(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<Symbol>, BackfillError> {
    let rows = client
        .query(
            "SELECT symbol FROM backfill_progress
              WHERE run_id = $1 AND status IN ('pending', 'rate_limited')
           ORDER BY symbol",
            &[&run_id.as_str()],
        )
        .await?;
    rows.iter().map(|r| stored_symbol(r, 0, run_id)).collect()
}

/// One day's rows of a grouped run: each listed ticker's inserted and updated counts are added
/// to its progress, and its cursor (`last_bar_at`) moves to the day's key, which is what marks
/// a ticker as listed by the provider (a day fetched again adds 0: the upsert's counts are what
/// changed). Tickers not in `symbols` are untouched.
pub async fn record_grouped_day(
    client: &impl GenericClient,
    run_id: &RunId,
    day_key: DateTime<Utc>,
    listed: &[(String, i64, i64)],
) -> Result<(), BackfillError> {
    if listed.is_empty() {
        return Ok(());
    }
    let to_i32 = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    let symbols: Vec<&str> = listed.iter().map(|(s, _, _)| s.as_str()).collect();
    let inserted: Vec<i32> = listed.iter().map(|(_, i, _)| to_i32(*i)).collect();
    let updated: Vec<i32> = listed.iter().map(|(_, _, u)| to_i32(*u)).collect();
    client
        .execute(
            // Batches storing different days at once update the same tickers' rows: each locks
            // them in id order first (the sort sits below the row locks), so two days can wait
            // for each other but never deadlock, whatever order the provider listed them in.
            "WITH d AS (
                 SELECT * FROM UNNEST($3::text[], $4::int[], $5::int[]) AS d(symbol, inserted, updated)
             ), locked AS (
                 SELECT p.id FROM backfill_progress p JOIN d ON d.symbol = p.symbol
                  WHERE p.run_id = $1 AND p.status IN ('pending', 'rate_limited')
                  ORDER BY p.id
                    FOR UPDATE OF p
             )
             UPDATE backfill_progress p
                SET records_inserted = COALESCE(p.records_inserted, 0) + d.inserted,
                    records_updated = p.records_updated + d.updated,
                    last_bar_at = GREATEST(p.last_bar_at, $2),
                    started_at = COALESCE(p.started_at, now()), updated_at = now()
               FROM d
              WHERE p.id IN (SELECT id FROM locked) AND p.symbol = d.symbol",
            &[&run_id.as_str(), &day_key, &symbols, &inserted, &updated],
        )
        .await?;
    Ok(())
}

/// Settles a grouped run's tickers once every day is done: a ticker some day's answer listed is
/// `success`; one the provider never listed is `failed` / [`NOT_LISTED_BY_PROVIDER`]. Returns
/// `(success, failed)` settled by this call (0, 0 when an earlier call settled them).
pub async fn settle_grouped(
    client: &impl GenericClient,
    run_id: &RunId,
    window: &str,
) -> Result<(u64, u64), BackfillError> {
    let success = client
        .execute(
            "UPDATE backfill_progress
                SET status = 'success', attempts = attempts + 1, error_name = NULL,
                    error_message = NULL, completed_at = now(), updated_at = now()
              WHERE run_id = $1 AND status IN ('pending', 'rate_limited')
                AND last_bar_at IS NOT NULL",
            &[&run_id.as_str()],
        )
        .await?;
    let message = format!(
        "polygon's grouped daily answers listed no bar for this ticker on any day of {window}: \
         it is not a US stock polygon knows, or it did not trade in the window (check the \
         spelling, e.g. BRK.B, or fetch it with strategy per-ticker)"
    );
    let failed = client
        .execute(
            "UPDATE backfill_progress
                SET status = 'failed', attempts = attempts + 1, error_name = $2,
                    error_message = $3, completed_at = now(), updated_at = now()
              WHERE run_id = $1 AND status IN ('pending', 'rate_limited')",
            &[&run_id.as_str(), &NOT_LISTED_BY_PROVIDER, &message],
        )
        .await?;
    Ok((success, failed))
}

/// Puts a resumed grouped run's tickers back to `pending` (in no batch): the unsettled and
/// `failed` ones, or every one with `all` (which also forgets which were listed, so that they
/// are judged again on the days fetched again). Returns the tickers requeued.
pub async fn requeue_grouped(
    client: &impl GenericClient,
    run_id: &RunId,
    all: bool,
    exclude: &[Symbol],
) -> Result<i64, BackfillError> {
    let exclude: Vec<&str> = exclude.iter().map(Symbol::as_str).collect();
    let n = client
        .execute(
            "UPDATE backfill_progress
                SET status = 'pending', batch = NULL, error_name = NULL, error_message = NULL,
                    completed_at = NULL, updated_at = now(),
                    last_bar_at = CASE WHEN $2 THEN NULL ELSE last_bar_at END
              WHERE run_id = $1 AND ($2 OR status <> 'success') AND NOT (symbol = ANY($3))",
            &[&run_id.as_str(), &all, &exclude],
        )
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}
