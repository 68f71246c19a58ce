//! The three functions' logic. An [`App`] is built once per execution environment (config,
//! secrets, HTTP client, a lazily connecting pool) and serves every invocation.

pub mod fetch_batch;
pub mod fetch_days;
pub mod finalize_run;
pub mod payload;
pub mod select_tickers;
pub mod serve;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Object, Pool};
use secrecy::SecretString;
use tokio::sync::OnceCell;

use crate::config::{ApiKeySource, Config};
use crate::db;
use crate::db::rate_budget::PgRateBudget;
use crate::db::DatabaseSource;
use crate::error::BackfillError;
use crate::model::ProviderKind;
use crate::provider::budget::{budget_name, interval, RateGate};
use crate::provider::polygon::PolygonProvider;
use crate::provider::yahoo::YahooProvider;
use crate::provider::{http_client, PriceProvider};
use crate::secrets::{api_key_from_secret, SecretSource, SecretsManager};

pub struct App {
    config: Config,
    secrets: Option<Arc<dyn SecretSource>>,
    http: reqwest::Client,
    pool: OnceCell<Pool>,
    yahoo: OnceCell<Arc<YahooProvider>>,
    polygon: OnceCell<Arc<PolygonProvider>>,
    /// Adapters given with [`App::with_provider`], used instead of building the real ones.
    injected: Vec<(ProviderKind, Arc<dyn PriceProvider>)>,
}

impl App {
    /// Reads the environment once. Builds a Secrets Manager client only when a secret ARN is
    /// configured; connects to nothing (the pool dials on first use).
    pub async fn from_env() -> Result<Self, BackfillError> {
        let config = Config::from_env()?;
        let needs_secrets = matches!(config.database, DatabaseSource::SecretArn(_))
            || matches!(config.polygon_api_key, ApiKeySource::SecretArn(_));
        let secrets: Option<Arc<dyn SecretSource>> = if needs_secrets {
            Some(Arc::new(SecretsManager::from_env().await))
        } else {
            None
        };
        Self::new(config, secrets)
    }

    pub fn new(
        config: Config,
        secrets: Option<Arc<dyn SecretSource>>,
    ) -> Result<Self, BackfillError> {
        let http = http_client(config.http_timeout)?;
        Ok(Self {
            config,
            secrets,
            http,
            pool: OnceCell::new(),
            yahoo: OnceCell::new(),
            polygon: OnceCell::new(),
            injected: Vec::new(),
        })
    }

    /// Serves runs of `kind` with `provider` instead of the real adapter (tests use an in-memory
    /// fake, [`crate::provider::fake::FakeProvider`]). Grouped runs need the real Polygon
    /// adapter: with another Polygon provider injected they fail with `ConfigurationError`.
    pub fn with_provider(mut self, kind: ProviderKind, provider: Arc<dyn PriceProvider>) -> Self {
        self.injected.retain(|(k, _)| *k != kind);
        self.injected.push((kind, provider));
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn secrets(&self) -> Result<&Arc<dyn SecretSource>, BackfillError> {
        self.secrets.as_ref().ok_or_else(|| {
            BackfillError::ConfigurationError(
                "a secret ARN is configured but no secret source is available".into(),
            )
        })
    }

    /// The pool, built on first use (the secret is read once per process).
    pub async fn pool(&self) -> Result<&Pool, BackfillError> {
        self.pool
            .get_or_try_init(|| async {
                let settings = self
                    .config
                    .database
                    .settings(self.secrets.as_deref(), &self.config.database_tls)
                    .await?;
                db::pool(&settings, self.config.db_pool_size)
            })
            .await
    }

    pub async fn db(&self) -> Result<Object, BackfillError> {
        Ok(self.pool().await?.get().await?)
    }

    /// The gate every request of `kind` (with `api_key`) passes: the budget this provider and
    /// key share across every instance, kept in the database.
    async fn gate(
        &self,
        kind: ProviderKind,
        api_key: Option<&SecretString>,
    ) -> Result<Arc<RateGate>, BackfillError> {
        let per_minute = self.config.run.requests_per_minute_for(kind);
        let budget = PgRateBudget::new(
            self.pool().await?.clone(),
            budget_name(kind, api_key),
            interval(per_minute),
        );
        Ok(Arc::new(RateGate::new(
            Arc::new(budget),
            self.config.rate_budget_max_wait,
            self.config.rate_limit_pause,
        )))
    }

    /// The adapter for a run's provider, built on first use and then shared by every later
    /// invocation in this environment.
    pub async fn provider(
        &self,
        kind: ProviderKind,
    ) -> Result<Arc<dyn PriceProvider>, BackfillError> {
        if let Some((_, provider)) = self.injected.iter().find(|(k, _)| *k == kind) {
            return Ok(provider.clone());
        }
        match kind {
            ProviderKind::Yahoo => {
                let p = self
                    .yahoo
                    .get_or_try_init(|| async {
                        Ok::<_, BackfillError>(Arc::new(YahooProvider::new(
                            self.http.clone(),
                            self.config.yahoo_base_url.clone(),
                            self.gate(kind, None).await?,
                        )))
                    })
                    .await?;
                Ok(p.clone())
            }
            ProviderKind::Polygon => {
                let p = self
                    .polygon
                    .get_or_try_init(|| async {
                        let key = match &self.config.polygon_api_key {
                            ApiKeySource::Value(key) => key.clone(),
                            ApiKeySource::SecretArn(arn) => {
                                let secret = self.secrets()?.secret_string(arn).await?;
                                api_key_from_secret(arn, &secret)?
                            }
                            ApiKeySource::Missing => {
                                return Err(BackfillError::ConfigurationError(
                                    "the polygon provider needs POLYGON_API_KEY or PROVIDER_SECRET_ARN".into(),
                                ))
                            }
                        };
                        let gate = self.gate(kind, Some(&key)).await?;
                        Ok::<_, BackfillError>(Arc::new(PolygonProvider::new(
                            self.http.clone(),
                            self.config.polygon_base_url.clone(),
                            key,
                            gate,
                        )))
                    })
                    .await?;
                Ok(p.clone())
            }
        }
    }
}

/// When this invocation must stop starting new tickers: the Lambda deadline minus a margin, or,
/// when the deadline is absent or already past (local emulators send a constant 1970 deadline),
/// the configured budget from now.
pub fn stop_time(deadline_ms: u64, config: &Config) -> tokio::time::Instant {
    let now_instant = tokio::time::Instant::now();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let remaining = if deadline_ms > now_ms {
        Duration::from_millis(deadline_ms - now_ms).saturating_sub(config.run.deadline_margin)
    } else {
        config.run.fallback_budget
    };
    now_instant + remaining
}
