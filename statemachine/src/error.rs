//! The CLI's one error type. Every variant maps to an exit code, and every message says what to do.

use shared::BackfillError;

/// Exit codes: the contract with scripts and Makefiles.
pub mod exit {
    /// The command did its job; for `start --wait`/`resume --wait`, the run finished with every
    /// ticker `success`.
    pub const OK: u8 = 0;
    /// The run finished with `failed` tickers, is incomplete, or its execution failed; or an
    /// operational error (AWS or the database unreachable, a refused call).
    pub const FAILURE: u8 = 1;
    /// Bad input or usage: invalid flags, an unknown run, missing configuration. Nothing was started.
    pub const USAGE: u8 = 2;
    /// Interrupted (Ctrl-C) while following an execution; the execution itself goes on.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The request can never work as written; fix the flags.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("run {0} not found: `backfill status` lists the recent runs")]
    RunNotFound(String),
    /// Another execution is working on the run; nothing was started.
    #[error("{0}")]
    RunBusy(String),
    /// A setting is missing or wrong (state machine ARN, database, region).
    #[error("{0}")]
    Configuration(String),
    /// No answer from the Step Functions endpoint at all.
    #[error(
        "cannot reach Step Functions at {endpoint}: {detail}\n\
         check AWS_ENDPOINT_URL (for the local stack: `source .local/stack/env` after `make local-up`), \
         the network, and the AWS credentials"
    )]
    AwsUnreachable { endpoint: String, detail: String },
    /// Step Functions answered with an error.
    #[error("Step Functions {operation} failed: {detail}")]
    Aws {
        operation: &'static str,
        detail: String,
    },
    #[error("database unavailable: {0}\ncheck DATABASE_URL (or DATABASE_SECRET_ARN) and that the server is up")]
    Database(String),
    /// Anything else the shared code reports (its message already says what went wrong).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidInput(_)
            | CliError::RunNotFound(_)
            | CliError::RunBusy(_)
            | CliError::Configuration(_) => exit::USAGE,
            CliError::AwsUnreachable { .. }
            | CliError::Aws { .. }
            | CliError::Database(_)
            | CliError::Other(_) => exit::FAILURE,
        }
    }

    pub(crate) fn database_not_configured() -> Self {
        CliError::Configuration(
            "DATABASE_URL is not set: export DATABASE_URL=postgres://… (or DATABASE_SECRET_ARN), \
             or `source .local/stack/env` for the local stack"
                .into(),
        )
    }

    pub(crate) fn state_machine_not_configured() -> Self {
        CliError::Configuration(
            "STATE_MACHINE_ARN is not set: pass --state-machine-arn or `source .local/stack/env` \
             (written by `make local-up`); on AWS use the ARN from the Terraform output"
                .into(),
        )
    }
}

/// Writing the output failed (a closed pipe, a full disk).
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Other(format!("cannot write the output: {e}"))
    }
}

impl From<BackfillError> for CliError {
    fn from(e: BackfillError) -> Self {
        match e {
            BackfillError::InvalidInput(m) => CliError::InvalidInput(m),
            BackfillError::RunNotFound(run) => CliError::RunNotFound(run),
            busy @ BackfillError::RunBusy { .. } => CliError::RunBusy(busy.to_string()),
            BackfillError::ConfigurationError(m) => CliError::Configuration(m),
            BackfillError::DatabaseUnavailable(m) => CliError::Database(m),
            other => CliError::Other(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for CliError {
    fn from(e: tokio_postgres::Error) -> Self {
        // shared's conversion never echoes the connection password.
        BackfillError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_and_unknown_runs_are_usage_errors() {
        assert_eq!(CliError::InvalidInput("x".into()).exit_code(), exit::USAGE);
        assert_eq!(CliError::RunNotFound("r".into()).exit_code(), exit::USAGE);
        assert_eq!(
            CliError::state_machine_not_configured().exit_code(),
            exit::USAGE
        );
        assert_eq!(CliError::database_not_configured().exit_code(), exit::USAGE);
    }

    #[test]
    fn operational_errors_exit_1() {
        let unreachable = CliError::AwsUnreachable {
            endpoint: "http://127.0.0.1:1".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(unreachable.exit_code(), exit::FAILURE);
        assert!(unreachable.to_string().contains("AWS_ENDPOINT_URL"));
        assert_eq!(CliError::Database("down".into()).exit_code(), exit::FAILURE);
    }

    #[test]
    fn shared_errors_keep_their_meaning() {
        let e: CliError =
            BackfillError::RunNotFound("backfill-20260101-000000-00000000".into()).into();
        assert!(matches!(e, CliError::RunNotFound(_)));
        let e: CliError = BackfillError::InvalidInput("bad".into()).into();
        assert_eq!(e.exit_code(), exit::USAGE);
        let e: CliError = BackfillError::DatabaseUnavailable("down".into()).into();
        assert_eq!(e.exit_code(), exit::FAILURE);
    }
}
