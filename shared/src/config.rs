//! Configuration from the environment, read once per process (in `main`) and shared by every
//! invocation. It only reads settings: it does no I/O. Secret values are [`SecretString`]s, so
//! they never reach a log line or an error; where the database is, and how to reach it, is
//! [`DatabaseSource`] (in [`crate::db`]).

use std::time::Duration;

use chrono::NaiveDate;
use secrecy::SecretString;
use url::Url;

use crate::db::tls::TlsSettings;
use crate::db::DatabaseSource;
use crate::env;
use crate::error::BackfillError;
use crate::model::{parse_date, ProviderKind};

pub const DEFAULT_YAHOO_BASE_URL: &str = "https://query1.finance.yahoo.com";
pub const DEFAULT_POLYGON_BASE_URL: &str = "https://api.polygon.io";
pub const DEFAULT_START_DATE: &str = "2025-10-01";

/// Where the Polygon API key comes from.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// `POLYGON_API_KEY`.
    Value(SecretString),
    /// `PROVIDER_SECRET_ARN`: a plain string, or JSON with `api_key` / `POLYGON_API_KEY` / `apiKey`.
    SecretArn(String),
    Missing,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseSource,
    /// `PGSSLMODE` / `PGSSLROOTCERT`: how to secure the database connection by default.
    pub database_tls: TlsSettings,
    /// What runs get when their request says nothing (also read by the CLI, without a database).
    pub run: RunDefaults,
    pub yahoo_base_url: Url,
    pub polygon_base_url: Url,
    pub polygon_api_key: ApiKeySource,
    /// Per-request timeout towards the provider.
    pub http_timeout: Duration,
    /// How long a 429 without `Retry-After` pauses the shared request budget for every instance
    /// (the providers' limits are per minute: one window).
    pub rate_limit_pause: Duration,
    /// The longest a request sleeps for its slot in the shared budget; a slot further away ends
    /// the invocation `rate_limited`, and the state machine waits instead of a billed Lambda.
    pub rate_budget_max_wait: Duration,
    /// Transient faults (provider 5xx, timeouts, garbled bodies, a lost database connection):
    /// retried where they happen with exponential backoff and jitter from `fault_backoff_base`,
    /// capped at `fault_backoff_cap`, for at most `fault_patience` per ticker and invocation;
    /// then fetch-batch returns `unavailable` and the state machine waits (the same backoff,
    /// per consecutive faulted invocation) before calling again.
    pub fault_backoff_base: Duration,
    pub fault_backoff_cap: Duration,
    pub fault_patience: Duration,
    /// A batch in which no ticker finished for this long is given up (`stalled`).
    pub no_progress_timeout: Duration,
    /// Database pool size per process: at least 2, one connection for a ticker's transaction and
    /// one for the shared request budget (which must never wait inside that transaction).
    pub db_pool_size: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, BackfillError> {
        Self::from_lookup(env::var)
    }

    /// Builds the configuration from any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, BackfillError> {
        let get = &env::non_blank(get);
        let database = DatabaseSource::from_lookup(get).ok_or_else(|| {
            BackfillError::ConfigurationError("set DATABASE_URL or DATABASE_SECRET_ARN".into())
        })?;
        let url = |key: &str, default: &str| -> Result<Url, BackfillError> {
            let raw = get(key).unwrap_or_else(|| default.to_string());
            Url::parse(&raw).map_err(|e| {
                BackfillError::ConfigurationError(format!("{key} {raw:?} is not a URL: {e}"))
            })
        };
        let polygon_api_key = match (get("POLYGON_API_KEY"), get("PROVIDER_SECRET_ARN")) {
            (Some(key), _) => ApiKeySource::Value(key.into()),
            (None, Some(arn)) => ApiKeySource::SecretArn(arn),
            (None, None) => ApiKeySource::Missing,
        };
        let number = |key: &str| number(get, key);
        let secs = |key: &str, default: u64| -> Result<Duration, BackfillError> {
            Ok(Duration::from_secs(number(key)?.unwrap_or(default)))
        };
        Ok(Self {
            database,
            database_tls: TlsSettings::from_lookup(get)?,
            run: RunDefaults::from_lookup(get)?,
            yahoo_base_url: url("YAHOO_BASE_URL", DEFAULT_YAHOO_BASE_URL)?,
            polygon_base_url: url("POLYGON_BASE_URL", DEFAULT_POLYGON_BASE_URL)?,
            polygon_api_key,
            http_timeout: secs("PROVIDER_TIMEOUT_SECONDS", 20)?,
            rate_limit_pause: secs("RATE_LIMIT_PAUSE_SECONDS", 60)?,
            rate_budget_max_wait: secs("RATE_BUDGET_MAX_WAIT_SECONDS", 10)?,
            fault_backoff_base: Duration::from_millis(
                number("FAULT_BACKOFF_BASE_MS")?.unwrap_or(500),
            ),
            fault_backoff_cap: secs("FAULT_BACKOFF_CAP_SECONDS", 60)?,
            fault_patience: secs("FAULT_PATIENCE_SECONDS", 60)?,
            no_progress_timeout: secs("NO_PROGRESS_TIMEOUT_SECONDS", 1800)?,
            db_pool_size: number("DATABASE_POOL_SIZE")?.unwrap_or(2).max(2) as usize,
        })
    }
}

/// What a run gets where its request says nothing, and how fast and how long a fetch may go.
/// Needs no database, so the CLI validates and plans with exactly the functions' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDefaults {
    /// `PRICE_PROVIDER`: the provider of runs whose request names none.
    pub provider: ProviderKind,
    /// `BACKFILL_START_DATE`: the start of runs whose request gives neither a start nor a lookback.
    pub start_date: NaiveDate,
    /// `PROVIDER_REQUESTS_PER_MINUTE`: the aggregate rate of every fetch-batch instance of every
    /// run together (one shared budget per provider and key); `None` means the provider's default.
    pub requests_per_minute: Option<u32>,
    /// Stop starting tickers when less than this remains before the deadline.
    pub deadline_margin: Duration,
    /// Time budget used when the Lambda deadline is absent or already past (local emulators, tests).
    pub fallback_budget: Duration,
}

impl RunDefaults {
    /// Reads only its own keys: nothing else in the environment can fail it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, BackfillError> {
        let get = &env::non_blank(get);
        let secs = |key: &str, default: u64| -> Result<Duration, BackfillError> {
            Ok(Duration::from_secs(number(get, key)?.unwrap_or(default)))
        };
        let provider = match get("PRICE_PROVIDER") {
            Some(p) => p.parse().map_err(|e: BackfillError| {
                BackfillError::ConfigurationError(format!("PRICE_PROVIDER: {e}"))
            })?,
            None => ProviderKind::Yahoo,
        };
        let requests_per_minute = match number(get, "PROVIDER_REQUESTS_PER_MINUTE")? {
            Some(0) => {
                return Err(BackfillError::ConfigurationError(
                    "PROVIDER_REQUESTS_PER_MINUTE must be at least 1".into(),
                ))
            }
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        let start_date = parse_date(
            "BACKFILL_START_DATE",
            &get("BACKFILL_START_DATE").unwrap_or_else(|| DEFAULT_START_DATE.to_string()),
        )
        .map_err(|e| BackfillError::ConfigurationError(e.to_string()))?;
        Ok(RunDefaults {
            provider,
            start_date,
            requests_per_minute,
            deadline_margin: secs("DEADLINE_MARGIN_SECONDS", 30)?,
            fallback_budget: secs("FETCH_BUDGET_SECONDS", 600)?,
        })
    }

    pub fn from_env() -> Result<Self, BackfillError> {
        Self::from_lookup(env::var)
    }

    /// Pacing for a provider: the configured override, else a default below its published limit.
    pub fn requests_per_minute_for(&self, provider: ProviderKind) -> u32 {
        self.requests_per_minute.unwrap_or(match provider {
            // Yahoo publishes no limit; the original paced at one call every 2 s.
            ProviderKind::Yahoo => 30,
            // Polygon's free plan allows 5 calls a minute.
            ProviderKind::Polygon => 5,
        })
    }
}

/// A non-negative integer setting, `None` when unset.
fn number(get: impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<u64>, BackfillError> {
    get(key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                BackfillError::ConfigurationError(format!(
                    "{key} {v:?} is not a non-negative integer"
                ))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, BackfillError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_database_is_set() {
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]).unwrap();
        assert_eq!(c.run.provider, ProviderKind::Yahoo);
        assert_eq!(
            c.yahoo_base_url.as_str(),
            "https://query1.finance.yahoo.com/"
        );
        assert_eq!(c.run.start_date.to_string(), "2025-10-01");
        assert_eq!(c.run.requests_per_minute_for(ProviderKind::Polygon), 5);
        assert!(matches!(c.polygon_api_key, ApiKeySource::Missing));
    }

    #[test]
    fn run_defaults_need_no_database_and_match_what_the_functions_read() {
        let pairs = [
            ("PRICE_PROVIDER", "polygon"),
            ("BACKFILL_START_DATE", "2024-01-02"),
            ("FETCH_BUDGET_SECONDS", "90"),
            ("YAHOO_BASE_URL", "not a url"),
        ];
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        // Neither a database nor a broken unrelated setting gets in the way.
        let defaults = RunDefaults::from_lookup(get).unwrap();
        assert_eq!(defaults.provider, ProviderKind::Polygon);
        assert_eq!(defaults.start_date.to_string(), "2024-01-02");
        assert_eq!(defaults.fallback_budget, Duration::from_secs(90));
        assert_eq!(defaults.requests_per_minute_for(ProviderKind::Polygon), 5);

        let with_db = |k: &str| match k {
            "DATABASE_URL" => Some("postgres://db/x".to_string()),
            "YAHOO_BASE_URL" => None,
            other => get(other),
        };
        assert_eq!(Config::from_lookup(with_db).unwrap().run, defaults);
        let err = RunDefaults::from_lookup(|k| (k == "PRICE_PROVIDER").then(|| "bloomberg".into()))
            .unwrap_err();
        assert_eq!(err.name(), "ConfigurationError");
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("POLYGON_API_KEY", "pk_live_123"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pk_live_123"),
            "{shown}"
        );
    }

    #[test]
    fn missing_database_and_bad_values_are_configuration_errors() {
        assert_eq!(config(&[]).unwrap_err().name(), "ConfigurationError");
        for (k, v) in [
            ("PRICE_PROVIDER", "alpaca"),
            ("PROVIDER_REQUESTS_PER_MINUTE", "0"),
            ("PROVIDER_REQUESTS_PER_MINUTE", "fast"),
            ("BACKFILL_START_DATE", "2025-13-01"),
            ("YAHOO_BASE_URL", "not a url"),
        ] {
            let err = config(&[("DATABASE_URL", "postgres://db/x"), (k, v)]).unwrap_err();
            assert_eq!(err.name(), "ConfigurationError", "{k}={v}");
        }
    }

    #[test]
    fn secret_arns_are_used_when_no_plain_value_is_given() {
        let c = config(&[
            (
                "DATABASE_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:db",
            ),
            (
                "PROVIDER_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:pk",
            ),
            ("PROVIDER_REQUESTS_PER_MINUTE", "120"),
        ])
        .unwrap();
        assert!(matches!(c.database, DatabaseSource::SecretArn(_)));
        assert!(matches!(c.polygon_api_key, ApiKeySource::SecretArn(_)));
        assert_eq!(c.run.requests_per_minute_for(ProviderKind::Yahoo), 120);
    }
}
