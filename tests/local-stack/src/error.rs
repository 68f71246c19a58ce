//! What can go wrong while starting, driving or stopping the local stack.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool the stack runs is missing (e.g. `.venv` was never built).
    #[error("{what} not found at {path}: {hint}")]
    MissingTool {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// `cargo build` of the function binaries or market-sim failed.
    #[error("building {what} failed ({status}); rerun `{command}` to see why")]
    Build {
        what: String,
        status: String,
        command: String,
    },

    /// A process could not be spawned.
    #[error("cannot start {service}: {source}")]
    Spawn {
        service: String,
        #[source]
        source: std::io::Error,
    },

    /// A service exited or never became ready; the tail of its log says why.
    #[error(
        "{service} is not ready after {waited:?}: {detail}\n--- last lines of {log} ---\n{tail}"
    )]
    NotReady {
        service: String,
        waited: Duration,
        detail: String,
        log: String,
        tail: String,
    },

    /// The state machine definition could not be rendered or parsed.
    #[error("state machine definition: {0}")]
    Definition(String),

    /// PostgreSQL could not be reached, or migrations failed.
    #[error("database: {0}")]
    Database(String),

    /// A Step Functions call to moto failed.
    #[error("Step Functions {operation}: {message}")]
    StepFunctions {
        operation: &'static str,
        message: String,
    },

    /// An execution did not end in time.
    #[error("execution {execution_arn} still {status} after {waited:?}")]
    ExecutionTimeout {
        execution_arn: String,
        status: String,
        waited: Duration,
    },

    /// The stack was asked for something it cannot do (e.g. detach a stack that lives in-process).
    #[error("{0}")]
    Unsupported(String),

    /// A failure of our own machinery (a task that panicked, a client that cannot be built).
    #[error("internal: {0}")]
    Internal(String),

    /// Reading or writing the stack's files.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// An SDK error with its full chain: the top-level message alone ("service error") says
    /// nothing useful.
    pub(crate) fn sfn(operation: &'static str, error: impl std::error::Error) -> Error {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::StepFunctions { operation, message }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
