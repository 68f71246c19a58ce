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
    /// Another execution holds the run's lease (it is working on the run). Not retryable:
    /// wait for it to finish, or take the lease over once it no longer runs.
    #[error(
        "run {run_id} is being worked on by execution {execution}: wait for it to end \
         (`backfill status {run_id}`), or, if it no longer runs, `backfill resume {run_id} --force`"
    )]
    RunBusy { run_id: String, execution: String },
    /// The provider refused every further request for now and no wait could be reported.
    #[error("rate limited by the provider: {0}")]
    RateLimited(String),
    /// 5xx, timeouts, connection errors: transient, retried by the state machine with backoff.
    #[error("price provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// 401/403: the key or plan is wrong. Retrying cannot help; fix the configuration.
    #[error("price provider rejected the request (check the API key and plan): {0}")]
    ProviderRejected(String),
    /// The database could not be reached, or dropped the connection, timed out, shut down, or
    /// aborted the transaction for a serialization failure or a deadlock (SQLSTATE classes 08,
    /// 53, 57, 40, 58, and lock timeouts): transient, retried with backoff.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// The database refused the statement itself: an integrity violation (class 23), an undefined
    /// table or column or a missing privilege (42), bad data (22), or any other SQLSTATE that is
    /// not transient. The same statement fails the same way again, so it is never retried; the
    /// message names the table, column or constraint when the server does.
    #[error("database rejected the statement: {message} (SQLSTATE {code})")]
    DatabaseRejected { code: String, message: String },
    /// A stored row cannot be read as this version expects: a value no type of ours accepts (a
    /// malformed symbol, an unknown provider or status) or a column of another type than the
    /// code reads. Reading it again gives the same answer, so it is never retried; the message
    /// names the table and the value, which must be corrected (or the run left alone).
    #[error(
        "stored data cannot be read (retrying cannot help; correct the row in the database): {0}"
    )]
    StoredDataInvalid(String),
    /// The function's environment is incomplete or a secret cannot be read. Not retryable.
    #[error("configuration error: {0}")]
    ConfigurationError(String),
}

impl BackfillError {
    /// Every name the contract knows, for documentation and for tests.
    pub const NAMES: [&'static str; 10] = [
        "InvalidInput",
        "RunNotFound",
        "RunBusy",
        "RateLimited",
        "ProviderUnavailable",
        "ProviderRejected",
        "DatabaseUnavailable",
        "DatabaseRejected",
        "StoredDataInvalid",
        "ConfigurationError",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            BackfillError::InvalidInput(_) => "InvalidInput",
            BackfillError::RunNotFound(_) => "RunNotFound",
            BackfillError::RunBusy { .. } => "RunBusy",
            BackfillError::RateLimited(_) => "RateLimited",
            BackfillError::ProviderUnavailable(_) => "ProviderUnavailable",
            BackfillError::ProviderRejected(_) => "ProviderRejected",
            BackfillError::DatabaseUnavailable(_) => "DatabaseUnavailable",
            BackfillError::DatabaseRejected { .. } => "DatabaseRejected",
            BackfillError::StoredDataInvalid(_) => "StoredDataInvalid",
            BackfillError::ConfigurationError(_) => "ConfigurationError",
        }
    }

    /// Whether the database refused this ticker's data (an integrity violation or a value the
    /// column cannot hold): the ticker fails, the batch carries on.
    pub fn is_ticker_data_rejection(&self) -> bool {
        matches!(self, BackfillError::DatabaseRejected { code, .. }
            if code.starts_with("23") || code.starts_with("22"))
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

/// SQLSTATEs worth retrying: the connection (08), resources (53), operator intervention and
/// statement timeouts (57: shutdowns, `57014` query canceled), transaction rollbacks for
/// serialization failures and deadlocks (40), system I/O errors (58), and `55P03` lock timeouts.
/// Refusals while connecting — authentication (28) and a missing database (3D) — are about
/// reaching the database, not about a statement: they stay `DatabaseUnavailable` (a rotated
/// secret or a database being restored is back on a later try). Every other SQLSTATE is the
/// statement's own fault.
pub fn is_transient_sqlstate(code: &str) -> bool {
    ["08", "53", "57", "40", "58", "28", "3D"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "55P03"
}

/// Whether a tokio-postgres error without a server answer is the client failing to read a row
/// it was sent (`row.try_get`: a value its Rust type refuses, a NULL where none is expected, a
/// column missing or of another type). tokio-postgres keeps its error kinds private; these are
/// the Display texts of its `FromSql`, `Column` and `ColumnCount` kinds, which carry no
/// SQLSTATE and are never about the connection.
fn is_row_decode_error(e: &tokio_postgres::Error) -> bool {
    let text = e.to_string();
    !e.is_closed()
        && e.code().is_none()
        && (text.starts_with("error deserializing column")
            || text.starts_with("invalid column `")
            || text == "query returned an unexpected number of columns")
}

impl From<tokio_postgres::Error> for BackfillError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The Display of a tokio-postgres error never includes the connection password.
        if is_row_decode_error(&e) {
            let detail = match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            };
            return BackfillError::StoredDataInvalid(detail);
        }
        let Some(db) = e.as_db_error() else {
            // No answer from the server: an I/O error, a closed connection, a timeout.
            let detail = match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            };
            return BackfillError::DatabaseUnavailable(detail);
        };
        let code = db.code().code().to_string();
        if is_transient_sqlstate(&code) {
            return BackfillError::DatabaseUnavailable(format!("{} ({code})", db.message()));
        }
        // Name what the server names, first (status lines are cut short), so that an operator
        // sees which table, column or constraint of their schema refused the write.
        let named: Vec<String> = [
            ("table", db.table()),
            ("column", db.column()),
            ("constraint", db.constraint()),
        ]
        .into_iter()
        .filter_map(|(what, name)| name.map(|n| format!("{what} {n}")))
        .collect();
        let mut message = if named.is_empty() {
            db.message().to_string()
        } else {
            format!("[{}] {}", named.join(", "), db.message())
        };
        if let Some(detail) = db.detail() {
            message.push_str(&format!(": {detail}"));
        }
        BackfillError::DatabaseRejected { code, message }
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
            BackfillError::RunBusy {
                run_id: "backfill-20260101-000000-00000000".into(),
                execution: "x".into(),
            },
            BackfillError::RateLimited("x".into()),
            BackfillError::ProviderUnavailable("x".into()),
            BackfillError::ProviderRejected("x".into()),
            BackfillError::DatabaseUnavailable("x".into()),
            BackfillError::DatabaseRejected {
                code: "23502".into(),
                message: "x".into(),
            },
            BackfillError::StoredDataInvalid("x".into()),
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
    fn unreadable_stored_data_is_neither_retried_nor_a_ticker_rejection() {
        let e = BackfillError::StoredDataInvalid("backfill_run holds an unknown status".into());
        assert!(!e.is_retryable());
        assert!(!e.is_ticker_data_rejection());
        assert_eq!(Diagnostic::from(e).error_type, "StoredDataInvalid");
    }

    #[test]
    fn only_connecting_resource_shutdown_and_rollback_sqlstates_are_transient() {
        for transient in [
            "08006", "08001", "53300", "57P01", "57P03", "57014", "40001", "40P01", "58030",
            "55P03", "28P01", "28000", "3D000",
        ] {
            assert!(is_transient_sqlstate(transient), "{transient}");
        }
        for permanent in [
            "23502", "23503", "23505", "42703", "42P01", "42501", "22003", "XX000",
        ] {
            assert!(!is_transient_sqlstate(permanent), "{permanent}");
        }
    }

    #[test]
    fn integrity_and_data_rejections_fail_the_ticker_only() {
        let rejected = |code: &str| BackfillError::DatabaseRejected {
            code: code.into(),
            message: "x".into(),
        };
        assert!(rejected("23503").is_ticker_data_rejection());
        assert!(rejected("22003").is_ticker_data_rejection());
        assert!(!rejected("42703").is_ticker_data_rejection());
        assert!(!BackfillError::DatabaseUnavailable("x".into()).is_ticker_data_rejection());
    }

    #[test]
    fn deserialize_failures_become_invalid_input() {
        let err = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let d = Diagnostic::from(BackfillError::from(err));
        assert_eq!(d.error_type, "InvalidInput");
    }
}
