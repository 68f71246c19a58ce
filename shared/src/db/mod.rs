//! PostgreSQL access: where the database is ([`DatabaseSource`]), the pool, the migrations, and
//! one module of SQL per table.

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
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_postgres::Client;

use crate::env;
use crate::error::BackfillError;
use crate::secrets::{SecretSource, SecretsManager};
use tls::TlsSettings;

/// Where the database is, as the functions and the CLI both read it.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// `DATABASE_URL` (it may hold a password).
    Url(SecretString),
    /// `DATABASE_SECRET_ARN`: an RDS secret (`host/port/username/password/dbname`) or `{"url": …}`.
    SecretArn(String),
}

impl DatabaseSource {
    /// `DATABASE_URL` wins over `DATABASE_SECRET_ARN`; `None` when neither is set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let get = env::non_blank(get);
        match (get("DATABASE_URL"), get("DATABASE_SECRET_ARN")) {
            (Some(url), _) => Some(DatabaseSource::Url(url.into())),
            (None, Some(arn)) => Some(DatabaseSource::SecretArn(arn)),
            (None, None) => None,
        }
    }

    pub fn from_env() -> Option<Self> {
        Self::from_lookup(env::var)
    }

    /// The connection settings: the URL parsed, or the secret read from `secrets` and parsed.
    /// `tls` holds the defaults (`PGSSLMODE`, `PGSSLROOTCERT`); a URL's own options win.
    pub async fn settings(
        &self,
        secrets: Option<&dyn SecretSource>,
        tls: &TlsSettings,
    ) -> Result<ConnectionSettings, BackfillError> {
        match self {
            DatabaseSource::Url(url) => parse_url(url.expose_secret(), tls),
            DatabaseSource::SecretArn(arn) => {
                let secrets = secrets.ok_or_else(|| {
                    BackfillError::ConfigurationError(format!(
                        "DATABASE_SECRET_ARN {arn} is set but no secret source is available"
                    ))
                })?;
                let secret = secrets.secret_string(arn).await?;
                settings_from_secret(arn, &secret, tls)
            }
        }
    }

    /// [`settings`](Self::settings) with everything else from the environment: the TLS defaults,
    /// and Secrets Manager (only when the source is a secret). For one-off connections (the CLI);
    /// the functions build their secret source once per process.
    pub async fn settings_from_env(&self) -> Result<ConnectionSettings, BackfillError> {
        let tls = TlsSettings::from_env()?;
        let secrets = match self {
            DatabaseSource::SecretArn(_) => Some(SecretsManager::from_env().await),
            DatabaseSource::Url(_) => None,
        };
        self.settings(secrets.as_ref().map(|s| s as &dyn SecretSource), &tls)
            .await
    }
}

/// A database secret's JSON, in either shape we accept.
#[derive(Deserialize)]
struct DatabaseSecret {
    url: Option<String>,
    host: Option<String>,
    port: Option<serde_json::Value>,
    username: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
}

/// Turns a database secret into connection settings. Accepts the RDS shape
/// (`host/port/username/password/dbname`) and `{"url": "postgres://…"}`; errors name the secret
/// `arn`, never its value.
pub fn settings_from_secret(
    arn: &str,
    secret: &SecretString,
    tls: &TlsSettings,
) -> Result<ConnectionSettings, BackfillError> {
    let bad =
        |what: &str| BackfillError::ConfigurationError(format!("database secret {arn} {what}"));
    let parsed: DatabaseSecret =
        serde_json::from_str(secret.expose_secret()).map_err(|_| bad("is not a JSON object"))?;
    if let Some(url) = parsed.url {
        // parse_url's errors never echo the URL (it may hold the password).
        return parse_url(&url, tls).map_err(|e| match e {
            BackfillError::ConfigurationError(m) => bad(&format!("has a bad `url`: {m}")),
            other => other,
        });
    }
    let host = parsed
        .host
        .ok_or_else(|| bad("has neither `url` nor `host`"))?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host);
    if let Some(port) = parsed.port {
        let port = match &port {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad("has a `port` that is not a port number"))?;
        cfg.port(port);
    }
    cfg.user(&parsed.username.ok_or_else(|| bad("has no `username`"))?);
    if let Some(pw) = parsed.password {
        cfg.password(pw);
    }
    cfg.dbname(parsed.dbname.as_deref().unwrap_or("postgres"));
    Ok(ConnectionSettings {
        postgres: cfg,
        tls: tls.clone(),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123:secret:db";

    fn secret(raw: &str) -> SecretString {
        raw.into()
    }

    #[test]
    fn database_url_wins_over_the_secret_arn_and_blank_values_are_unset() {
        let both = DatabaseSource::from_lookup(|k| match k {
            "DATABASE_URL" => Some(" postgres://db/x ".into()),
            "DATABASE_SECRET_ARN" => Some(ARN.into()),
            _ => None,
        });
        assert!(
            matches!(&both, Some(DatabaseSource::Url(u)) if u.expose_secret() == "postgres://db/x")
        );
        let arn_only = DatabaseSource::from_lookup(|k| match k {
            "DATABASE_URL" => Some("  ".into()),
            "DATABASE_SECRET_ARN" => Some(ARN.into()),
            _ => None,
        });
        assert!(matches!(arn_only, Some(DatabaseSource::SecretArn(a)) if a == ARN));
        assert!(DatabaseSource::from_lookup(|_| None).is_none());
    }

    #[test]
    fn a_database_url_never_prints() {
        let source = DatabaseSource::Url("postgres://u:hunter2@db/x".into());
        let shown = format!("{source:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn a_secret_arn_without_a_secret_source_is_a_configuration_error() {
        let source = DatabaseSource::SecretArn(ARN.into());
        let err = source
            .settings(None, &TlsSettings::default())
            .await
            .unwrap_err();
        assert_eq!(err.name(), "ConfigurationError");
        assert!(err.to_string().contains(ARN), "{err}");
    }

    #[test]
    fn rds_secret_shape_builds_connection_settings() {
        let s = secret(
            r#"{"engine":"postgres","host":"db.internal","port":5433,"username":"app","password":"p@ss/w:rd","dbname":"news"}"#,
        );
        let cfg = settings_from_secret(ARN, &s, &TlsSettings::default())
            .unwrap()
            .postgres;
        assert_eq!(cfg.get_ports(), &[5433]);
        assert_eq!(cfg.get_user(), Some("app"));
        assert_eq!(cfg.get_dbname(), Some("news"));
        assert_eq!(cfg.get_password(), Some(&b"p@ss/w:rd"[..]));
    }

    #[test]
    fn url_secret_shape_is_accepted() {
        let s = secret(r#"{"url":"postgres://app:pw@db.internal:5432/news"}"#);
        let cfg = settings_from_secret(ARN, &s, &TlsSettings::default())
            .unwrap()
            .postgres;
        assert_eq!(cfg.get_dbname(), Some("news"));
    }

    #[test]
    fn tls_comes_from_the_defaults_unless_the_secret_url_says_otherwise() {
        use tls::SslMode;
        let defaults = TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
        };
        let rds = secret(r#"{"host":"db","username":"app","password":"pw"}"#);
        let settings = settings_from_secret(ARN, &rds, &defaults).unwrap();
        assert_eq!(settings.tls, defaults);

        let url = secret(
            r#"{"url":"postgres://app:pw@db/news?sslmode=verify-full&sslrootcert=/var/task/rds.pem"}"#,
        );
        let settings = settings_from_secret(ARN, &url, &defaults).unwrap();
        assert_eq!(settings.tls.mode, SslMode::VerifyFull);
        assert_eq!(settings.postgres.get_dbname(), Some("news"));

        let bad = secret(r#"{"url":"postgres://app:hunter2@db/news?sslmode=strict"}"#);
        let err = settings_from_secret(ARN, &bad, &defaults).unwrap_err();
        assert!(err.to_string().contains("sslmode"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn broken_secrets_are_configuration_errors_without_the_secret_in_the_message() {
        for raw in [
            r#"{"password":"hunter2"}"#,
            "hunter2",
            r#"{"host":"h","port":"x","username":"u","password":"hunter2"}"#,
        ] {
            let err = settings_from_secret(ARN, &secret(raw), &TlsSettings::default()).unwrap_err();
            assert_eq!(err.name(), "ConfigurationError");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
