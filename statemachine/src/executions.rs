//! The Step Functions port: what the CLI needs from an execution service, and the real adapter
//! (aws-sdk-sfn). The adapter honours the standard AWS environment, so `AWS_ENDPOINT_URL` points
//! it at the local stack (moto) exactly as it would at AWS. [`fake::FakeExecutions`] is the
//! in-memory fake the CLI's tests use.

pub mod fake;

use std::future::Future;

use async_trait::async_trait;
use aws_sdk_sfn::config::ProvideCredentials;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::CliError;

/// Step Functions caps execution names at 80 characters.
pub const MAX_EXECUTION_NAME: usize = 80;

/// What to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub state_machine_arn: String,
    /// Unique per state machine (Step Functions keeps names for 90 days).
    pub name: String,
    pub input: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
    /// A status this client does not know yet; treated as still running.
    Unknown,
}

impl ExecutionStatus {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::TimedOut
                | ExecutionStatus::Aborted
        )
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
            ExecutionStatus::PendingRedrive => "PENDING_REDRIVE",
            ExecutionStatus::Unknown => "UNKNOWN",
        }
    }
}

/// One execution as DescribeExecution reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub name: Option<String>,
    pub status: ExecutionStatus,
    pub input: Option<String>,
    /// The execution's output (finalize-run's output), once it has succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Executions: Send + Sync {
    /// Starts an execution and returns its ARN.
    async fn start_execution(&self, request: &StartRequest) -> Result<String, CliError>;
    async fn describe_execution(&self, execution_arn: &str) -> Result<ExecutionInfo, CliError>;
}

/// How a command gets the Step Functions port: only once it needs it, after its input was
/// validated, so that bad input never even builds an AWS client. The binary passes
/// [`SfnExecutions::from_env`]; tests pass a closure giving a [`fake::FakeExecutions`].
pub trait Connect {
    type Port: Executions;
    fn connect(self) -> impl Future<Output = Result<Self::Port, CliError>>;
}

impl<E, F, Fut> Connect for F
where
    E: Executions,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<E, CliError>>,
{
    type Port = E;
    fn connect(self) -> impl Future<Output = Result<E, CliError>> {
        self()
    }
}

/// The real adapter.
pub struct SfnExecutions {
    client: aws_sdk_sfn::Client,
    /// For messages: where requests go.
    endpoint: String,
}

impl SfnExecutions {
    /// Loads the standard AWS configuration (environment, profile, `AWS_ENDPOINT_URL`).
    pub async fn from_env() -> Result<Self, CliError> {
        let config = aws_config::load_from_env().await;
        let Some(region) = config.region().map(|r| r.to_string()) else {
            return Err(CliError::Configuration(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region); \
                 for the local stack `source .local/stack/env`"
                    .into(),
            ));
        };
        // Resolved once here, so that missing credentials read as configuration, not as a failed call.
        let credentials = match config.credentials_provider() {
            Some(provider) => provider
                .provide_credentials()
                .await
                .map(|_| ())
                .map_err(|e| error_chain(&e)),
            None => Err("no credentials provider".to_string()),
        };
        if let Err(detail) = credentials {
            return Err(CliError::Configuration(format!(
                "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE \
                 (for the local stack `source .local/stack/env`): {detail}"
            )));
        }
        let endpoint = config
            .endpoint_url()
            .map(str::to_string)
            .or_else(|| non_empty_env("AWS_ENDPOINT_URL_SFN"))
            .unwrap_or_else(|| format!("the Step Functions endpoint of {region}"));
        Ok(Self::new(aws_sdk_sfn::Client::new(&config), endpoint))
    }

    pub fn new(client: aws_sdk_sfn::Client, endpoint: impl Into<String>) -> Self {
        Self {
            client,
            endpoint: endpoint.into(),
        }
    }

    fn sdk_error<E>(&self, operation: &'static str, e: &SdkError<E>) -> Option<CliError>
    where
        E: std::error::Error + 'static,
    {
        let detail = error_chain(e);
        match e {
            SdkError::DispatchFailure(f) if f.is_io() || f.is_timeout() => {
                Some(CliError::AwsUnreachable {
                    endpoint: self.endpoint.clone(),
                    detail,
                })
            }
            SdkError::TimeoutError(_) => Some(CliError::AwsUnreachable {
                endpoint: self.endpoint.clone(),
                detail,
            }),
            SdkError::ServiceError(_) => None,
            _ => Some(CliError::Aws { operation, detail }),
        }
    }
}

/// An error and its sources on one line, without repeats (`dispatch failure: io error: … refused`).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// `Code: message` of a service error, without the SDK's debug dump of the response.
fn service_detail(e: &impl ProvideErrorMetadata) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => message.to_string(),
        (None, None) => "unknown error".to_string(),
    }
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn to_chrono(t: &aws_sdk_sfn::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[async_trait]
impl Executions for SfnExecutions {
    async fn start_execution(&self, request: &StartRequest) -> Result<String, CliError> {
        let input = serde_json::to_string(&request.input)
            .map_err(|e| CliError::InvalidInput(format!("execution input: {e}")))?;
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&request.state_machine_arn)
            .name(&request.name)
            .input(input)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.execution_arn().to_string()),
            Err(e) => {
                if let Some(mapped) = self.sdk_error("StartExecution", &e) {
                    return Err(mapped);
                }
                let detail = service_detail(&e);
                let arn = &request.state_machine_arn;
                Err(match e.into_service_error() {
                    StartExecutionError::StateMachineDoesNotExist(_)
                    | StartExecutionError::InvalidArn(_) => CliError::Configuration(format!(
                        "state machine {arn} does not exist at {}: check --state-machine-arn / \
                         STATE_MACHINE_ARN (for the local stack `source .local/stack/env`); {detail}",
                        self.endpoint
                    )),
                    StartExecutionError::InvalidExecutionInput(_)
                    | StartExecutionError::InvalidName(_) => CliError::InvalidInput(detail),
                    StartExecutionError::ExecutionAlreadyExists(_) => CliError::Aws {
                        operation: "StartExecution",
                        detail: format!(
                            "an execution named {} already exists with another input: {detail}",
                            request.name
                        ),
                    },
                    _ => CliError::Aws {
                        operation: "StartExecution",
                        detail,
                    },
                })
            }
        }
    }

    async fn describe_execution(&self, execution_arn: &str) -> Result<ExecutionInfo, CliError> {
        let result = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                if let Some(mapped) = self.sdk_error("DescribeExecution", &e) {
                    return Err(mapped);
                }
                let detail = service_detail(&e);
                return Err(match e.into_service_error() {
                    DescribeExecutionError::ExecutionDoesNotExist(_) => CliError::Aws {
                        operation: "DescribeExecution",
                        detail: format!("execution {execution_arn} does not exist ({detail})"),
                    },
                    _ => CliError::Aws {
                        operation: "DescribeExecution",
                        detail,
                    },
                });
            }
        };
        use aws_sdk_sfn::types::ExecutionStatus as S;
        let status = match out.status() {
            S::Running => ExecutionStatus::Running,
            S::Succeeded => ExecutionStatus::Succeeded,
            S::Failed => ExecutionStatus::Failed,
            S::TimedOut => ExecutionStatus::TimedOut,
            S::Aborted => ExecutionStatus::Aborted,
            S::PendingRedrive => ExecutionStatus::PendingRedrive,
            _ => ExecutionStatus::Unknown,
        };
        Ok(ExecutionInfo {
            execution_arn: out.execution_arn().to_string(),
            name: out.name().map(str::to_string),
            status,
            input: out.input().map(str::to_string),
            output: out.output().map(str::to_string),
            error: out.error().map(str::to_string),
            cause: out.cause().map(str::to_string),
            started_at: to_chrono(out.start_date()),
            stopped_at: out.stop_date().and_then(to_chrono),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_statuses_end_the_wait() {
        assert!(!ExecutionStatus::Running.is_terminal());
        assert!(!ExecutionStatus::PendingRedrive.is_terminal());
        assert!(!ExecutionStatus::Unknown.is_terminal());
        for s in [
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::TimedOut,
            ExecutionStatus::Aborted,
        ] {
            assert!(s.is_terminal(), "{}", s.as_str());
        }
    }
}
