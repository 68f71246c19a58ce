//! PostgreSQL access: the pool, the migrations, and one module of SQL per table.

pub mod batches;
pub mod days;
pub mod migrate;
pub mod prices;
pub mod progress;
pub mod rate_budget;
pub mod runs;
pub mod selection;
pub mod tickers;
pub mod tls;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Client;

use crate::error::BackfillError;
use tls::TlsSettings;

/// Everything needed to reach the database: the server and login, and how to secure the wire.
#[derive(Clone)]
pub struct ConnectionSettings {
    pub postgres: tokio_postgres::Config,
    pub tls: TlsSettings,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio_postgres::Config's Debug redacts the password; say so explicitly anyway.
        f.debug_struct("ConnectionSettings")
            .field("hosts", &self.postgres.get_hosts())
            .field("dbname", &self.postgres.get_dbname())
            .field("user", &self.postgres.get_user())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// The server's session settings every connection of ours uses, and the TLS mode.
    fn prepared(&self) -> tokio_postgres::Config {
        let mut config = self.postgres.clone();
        // Bars are stamped in UTC; an existing database may still have `timestamp without time
        // zone` columns, which the server converts with the session time zone.
        config.options("-c TimeZone=UTC");
        self.tls.apply(&mut config);
        config
    }

    /// One connection, its driver spawned on the current runtime (it ends when the client is
    /// dropped). For the CLI and tools; the functions use [`pool`].
    pub async fn connect(&self, timeout: Duration) -> Result<Client, BackfillError> {
        let mut config = self.prepared();
        config.connect_timeout(timeout);
        let (client, connection) = config.connect(self.tls.connector()?).await?;
        tokio::spawn(async move {
            // An error here surfaces on the client's next query.
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// A lazily connecting pool: nothing is dialled until the first `get()`, which keeps the Lambda
/// init phase short. Connections are verified on recycle because a thawed environment may hold
/// sockets the server closed long ago.
pub fn pool(settings: &ConnectionSettings, size: usize) -> Result<Pool, BackfillError> {
    let manager = Manager::from_config(
        settings.prepared(),
        settings.tls.connector()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager).max_size(size).build().map_err(|e| {
        BackfillError::ConfigurationError(format!("cannot build the database pool: {e}"))
    })
}

/// Parses a `postgres://` URL (or key=value string), libpq's `sslmode`/`sslrootcert` included;
/// `defaults` (from `PGSSLMODE`/`PGSSLROOTCERT`) apply where the string says nothing.
pub fn parse_url(url: &str, defaults: &TlsSettings) -> Result<ConnectionSettings, BackfillError> {
    // Never echo the URL: it may carry a password.
    let (rest, tls) = tls::split_tls_options(url, defaults)?;
    let postgres = rest.parse().map_err(|_| {
        BackfillError::ConfigurationError(
            "the database URL is not a valid PostgreSQL connection string".into(),
        )
    })?;
    Ok(ConnectionSettings { postgres, tls })
}
