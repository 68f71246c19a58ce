//! The database side of the CLI: the connection (from `DATABASE_URL` or `DATABASE_SECRET_ARN`)
//! and the read queries behind `status`, `--wait` and `verify` that `shared::db` does not have.
//! Everything that writes goes through `shared` (the migrations) or the Lambda functions.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::config::Secret;
use shared::db::progress::StatusCounts;
use shared::model::RunId;
use shared::secrets::{database_config_from_secret, SecretSource, SecretsManager};
use tokio_postgres::{Client, GenericClient, NoTls};

use crate::error::CliError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is, from the environment (the same variables the functions read).
#[derive(Debug, Clone)]
pub enum DatabaseSetting {
    Url(Secret),
    SecretArn(String),
}

impl DatabaseSetting {
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match (get("DATABASE_URL"), get("DATABASE_SECRET_ARN")) {
            (Some(url), _) => Some(DatabaseSetting::Url(Secret::new(url.trim()))),
            (None, Some(arn)) => Some(DatabaseSetting::SecretArn(arn.trim().to_string())),
            (None, None) => None,
        }
    }
}

/// Connects to the database named by the environment; a clear error when none is.
pub async fn connect_from_env() -> Result<Client, CliError> {
    let setting = DatabaseSetting::from_env().ok_or_else(CliError::database_not_configured)?;
    connect(&setting).await
}

/// Connects with a timeout; the session runs in UTC like the functions' sessions.
pub async fn connect(setting: &DatabaseSetting) -> Result<Client, CliError> {
    let mut config = match setting {
        DatabaseSetting::Url(url) => shared::db::parse_url(url.expose())?,
        DatabaseSetting::SecretArn(arn) => {
            let secret = SecretsManager::from_env().await.secret_string(arn).await?;
            database_config_from_secret(arn, &secret)?
        }
    };
    config.options("-c TimeZone=UTC");
    config.connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        // Ends when the client is dropped; an error here surfaces on the next query.
        let _ = connection.await;
    });
    Ok(client)
}

/// Ticker counts and row totals of several runs at once, by run id.
pub async fn counts_by_run(
    client: &impl GenericClient,
    run_ids: &[&str],
) -> Result<HashMap<String, StatusCounts>, CliError> {
    let rows = client
        .query(
            "SELECT run_id,
                    COUNT(*) FILTER (WHERE status = 'pending')      AS pending,
                    COUNT(*) FILTER (WHERE status = 'success')      AS success,
                    COUNT(*) FILTER (WHERE status = 'failed')       AS failed,
                    COUNT(*) FILTER (WHERE status = 'rate_limited') AS rate_limited,
                    COALESCE(SUM(records_inserted), 0)::bigint      AS records_inserted,
                    COALESCE(SUM(records_updated), 0)::bigint       AS records_updated
               FROM backfill_progress
              WHERE run_id = ANY($1)
           GROUP BY run_id",
            &[&run_ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("run_id")?,
                StatusCounts {
                    pending: r.try_get("pending")?,
                    success: r.try_get("success")?,
                    failed: r.try_get("failed")?,
                    rate_limited: r.try_get("rate_limited")?,
                    records_inserted: r.try_get("records_inserted")?,
                    records_updated: r.try_get("records_updated")?,
                },
            ))
        })
        .collect()
}

/// A batch whose last invocation raised an error, or that the state machine gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchProblem {
    pub batch: i32,
    /// `failed` (given up after the state machine's retries) or `error` (the last invocation
    /// raised; the state machine may still be retrying it).
    pub last_status: String,
    pub error_name: Option<String>,
    pub message: Option<String>,
    pub invocations: i32,
    pub updated_at: DateTime<Utc>,
}

pub async fn batch_problems(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<BatchProblem>, CliError> {
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
pub async fn waiting_batches(client: &impl GenericClient, run_id: &RunId) -> Result<i64, CliError> {
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

/// A `success` ticker of a run and the bars stored for it in the run's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredTicker {
    pub symbol: String,
    pub rows_in_window: i64,
    pub first_bar: Option<DateTime<Utc>>,
    pub last_bar: Option<DateTime<Utc>>,
}

/// Every `success` ticker of the run with the rows `stock_price_history` holds for it in
/// `[from, to)`.
pub async fn success_tickers_rows(
    client: &impl GenericClient,
    run_id: &RunId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StoredTicker>, CliError> {
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
