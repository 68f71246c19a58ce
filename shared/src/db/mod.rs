//! PostgreSQL access: the pool, the migrations, and one module of SQL per table.

pub mod batches;
pub mod migrate;
pub mod prices;
pub mod progress;
pub mod runs;
pub mod selection;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::BackfillError;

/// A lazily connecting pool: nothing is dialled until the first `get()`, which keeps the Lambda
/// init phase short. Connections are verified on recycle because a thawed environment may hold
/// sockets the server closed long ago.
pub fn pool(mut config: tokio_postgres::Config, size: usize) -> Result<Pool, BackfillError> {
    // Bars are stamped in UTC; an existing database may still have `timestamp without time zone`
    // columns, which the server converts with the session time zone.
    config.options("-c TimeZone=UTC");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager).max_size(size).build().map_err(|e| {
        BackfillError::ConfigurationError(format!("cannot build the database pool: {e}"))
    })
}

/// Parses a `postgres://` URL (or key=value string) into a connection config.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, BackfillError> {
    url.parse().map_err(|_| {
        // Never echo the URL: it may carry a password.
        BackfillError::ConfigurationError(
            "DATABASE_URL is not a valid PostgreSQL connection string".into(),
        )
    })
}
