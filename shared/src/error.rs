//! The error contract. Each variant has a stable name: it is the Lambda `errorType` that the state
//! machine's Retry/Catch match, the `error_name` stored in `backfill_progress`, and what logs show.

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The request can never succeed as written: fix the input. Not retryable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A `run_id` that no `backfill_run` row holds. Not retryable.
    #[error("run {0} not found: start a new run or check the run id with `backfill status`")]
    RunNotFound(String),
    /// The provider refused every further request for now and no wait could be reported.
    #[error("rate limited by the provider: {0}")]
    RateLimited(String),
    /// 5xx, timeouts, connection errors: transient, retried by the state machine with backoff.
    #[error("price provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// 401/403: the key or plan is wrong. Retrying cannot help; fix the configuration.
    #[error("price provider rejected the request (check the API key and plan): {0}")]
    ProviderRejected(String),
    /// The database could not be reached or a statement failed; retried with backoff.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// The function's environment is incomplete or a secret cannot be read. Not retryable.
    #[error("configuration error: {0}")]
    ConfigurationError(String),
}

impl BackfillError {
    /// Every name the contract knows, for documentation and for tests.
    pub const NAMES: [&'static str; 7] = [
        "InvalidInput",
        "RunNotFound",
        "RateLimited",
        "ProviderUnavailable",
        "ProviderRejected",
        "DatabaseUnavailable",
        "ConfigurationError",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            BackfillError::InvalidInput(_) => "InvalidInput",
            BackfillError::RunNotFound(_) => "RunNotFound",
            BackfillError::RateLimited(_) => "RateLimited",
            BackfillError::ProviderUnavailable(_) => "ProviderUnavailable",
            BackfillError::ProviderRejected(_) => "ProviderRejected",
            BackfillError::DatabaseUnavailable(_) => "DatabaseUnavailable",
            BackfillError::ConfigurationError(_) => "ConfigurationError",
        }
    }

    /// Whether the state machine should retry the call that raised it.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BackfillError::ProviderUnavailable(_) | BackfillError::DatabaseUnavailable(_)
        )
    }
}

impl From<BackfillError> for Diagnostic {
    fn from(e: BackfillError) -> Self {
        Diagnostic {
            error_type: e.name().to_string(),
            error_message: e.to_string(),
        }
    }
}

impl From<tokio_postgres::Error> for BackfillError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The Display of a tokio-postgres error never includes the connection password.
        let detail = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            },
        };
        BackfillError::DatabaseUnavailable(detail)
    }
}

impl From<deadpool_postgres::PoolError> for BackfillError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => pg.into(),
            other => BackfillError::DatabaseUnavailable(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for BackfillError {
    fn from(e: serde_json::Error) -> Self {
        BackfillError::InvalidInput(format!("payload does not match the contract: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<BackfillError> {
        vec![
            BackfillError::InvalidInput("x".into()),
            BackfillError::RunNotFound("backfill-20260101-000000-00000000".into()),
            BackfillError::RateLimited("x".into()),
            BackfillError::ProviderUnavailable("x".into()),
            BackfillError::ProviderRejected("x".into()),
            BackfillError::DatabaseUnavailable("x".into()),
            BackfillError::ConfigurationError("x".into()),
        ]
    }

    #[test]
    fn each_variant_maps_to_its_stable_error_type() {
        let types: Vec<String> = every_variant()
            .into_iter()
            .map(|e| Diagnostic::from(e).error_type)
            .collect();
        assert_eq!(types, BackfillError::NAMES.map(String::from).to_vec());
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        let retryable: Vec<&str> = every_variant()
            .iter()
            .filter(|e| e.is_retryable())
            .map(|e| e.name())
            .collect();
        assert_eq!(retryable, ["ProviderUnavailable", "DatabaseUnavailable"]);
    }

    #[test]
    fn deserialize_failures_become_invalid_input() {
        let err = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let d = Diagnostic::from(BackfillError::from(err));
        assert_eq!(d.error_type, "InvalidInput");
    }
}
