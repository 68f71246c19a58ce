//! The database side of the CLI: the connection (from `DATABASE_URL` or `DATABASE_SECRET_ARN`)
//! and the read queries behind `status`, `--wait` and `verify` (from `shared::db`).
//! Everything that writes goes through `shared` (the migrations) or the Lambda functions.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::db::progress::StatusCounts;
use shared::model::RunId;
use tokio_postgres::{Client, GenericClient};

use crate::error::CliError;

/// Where the database is: the same variables, read and resolved the same way, as the functions.
pub use shared::db::DatabaseSource;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects with a timeout, over TLS as `PGSSLMODE`/the URL say; the session runs in UTC like
/// the functions' sessions.
pub async fn connect(source: &DatabaseSource) -> Result<Client, CliError> {
    let settings = source.settings_from_env().await?;
    Ok(settings.connect(CONNECT_TIMEOUT).await?)
}

// The read queries themselves live with the rest of the SQL in `shared::db`.
pub use shared::db::batches::BatchProblem;
pub use shared::db::progress::StoredTicker;

/// Ticker counts and row totals of several runs at once, by run id.
pub async fn counts_by_run(
    client: &impl GenericClient,
    run_ids: &[&str],
) -> Result<HashMap<String, StatusCounts>, CliError> {
    Ok(shared::db::progress::counts_by_run(client, run_ids).await?)
}

pub async fn batch_problems(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<Vec<BatchProblem>, CliError> {
    Ok(shared::db::batches::problems(client, run_id).await?)
}

pub async fn waiting_batches(client: &impl GenericClient, run_id: &RunId) -> Result<i64, CliError> {
    Ok(shared::db::batches::waiting(client, run_id).await?)
}

pub async fn success_tickers_rows(
    client: &impl GenericClient,
    run_id: &RunId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StoredTicker>, CliError> {
    Ok(shared::db::progress::success_tickers_rows(client, run_id, from, to).await?)
}
