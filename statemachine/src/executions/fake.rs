//! An in-memory [`Executions`]: a fake of the Step Functions port for tests of the CLI's logic
//! (what `start` and `resume` send, lease decisions, `--wait` following), in-process. The real
//! adapter, [`super::SfnExecutions`], is tested against moto.
//!
//! Executions started through the fake report `RUNNING` until a test ends them
//! ([`FakeExecutions::end`]), or, with [`FakeExecutions::ending_as`], end the first time they
//! are described after one `RUNNING` answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;

use super::{ExecutionInfo, ExecutionStatus, Executions, StartRequest};
use crate::error::CliError;

/// How executions started through the fake end.
#[derive(Debug, Clone)]
struct Ending {
    status: ExecutionStatus,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    executions: HashMap<String, ExecutionInfo>,
    /// How often each execution was described.
    described: HashMap<String, u32>,
    started: Vec<StartRequest>,
    ending: Option<Ending>,
    /// Every `StartExecution` fails with this `CliError::Aws` detail.
    start_failure: Option<String>,
}

/// A clonable handle: every clone sees the same executions.
#[derive(Debug, Clone, Default)]
pub struct FakeExecutions {
    state: Arc<Mutex<State>>,
}

impl FakeExecutions {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Started executions end, on their second description, with `status` and `output`
    /// (finalize-run's summary as JSON) or, unless `SUCCEEDED`, the given error and cause.
    pub fn ending_as(
        self,
        status: ExecutionStatus,
        output: Option<&str>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Self {
        self.state().ending = Some(Ending {
            status,
            output: output.map(str::to_string),
            error: error.map(str::to_string),
            cause: cause.map(str::to_string),
        });
        self
    }

    /// Every start fails as a Step Functions service error would.
    pub fn failing_starts(self, detail: &str) -> Self {
        self.state().start_failure = Some(detail.to_string());
        self
    }

    /// An execution `name` of `state_machine_arn` that exists already, with `status`; returns its ARN.
    pub fn add(&self, state_machine_arn: &str, name: &str, status: ExecutionStatus) -> String {
        let arn = execution_arn(state_machine_arn, name);
        let info = ExecutionInfo {
            execution_arn: arn.clone(),
            name: Some(name.to_string()),
            status,
            input: Some("{}".into()),
            output: None,
            error: None,
            cause: None,
            started_at: Some(Utc::now()),
            stopped_at: status.is_terminal().then(Utc::now),
        };
        self.state().executions.insert(arn.clone(), info);
        arn
    }

    /// Ends execution `execution_arn` with `status` (e.g. `ABORTED`, as StopExecution would).
    pub fn end(&self, execution_arn: &str, status: ExecutionStatus) {
        if let Some(info) = self.state().executions.get_mut(execution_arn) {
            info.status = status;
            info.stopped_at = Some(Utc::now());
        }
    }

    /// The requests of every execution started so far, in order.
    pub fn started(&self) -> Vec<StartRequest> {
        self.state().started.clone()
    }

    /// How often `execution_arn` was described.
    pub fn described(&self, execution_arn: &str) -> u32 {
        self.state()
            .described
            .get(execution_arn)
            .copied()
            .unwrap_or(0)
    }
}

/// The ARN Step Functions gives execution `name` of `state_machine_arn`.
fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

#[async_trait]
impl Executions for FakeExecutions {
    async fn start_execution(&self, request: &StartRequest) -> Result<String, CliError> {
        let mut state = self.state();
        if let Some(detail) = &state.start_failure {
            return Err(CliError::Aws {
                operation: "StartExecution",
                detail: detail.clone(),
            });
        }
        let arn = execution_arn(&request.state_machine_arn, &request.name);
        if state.executions.contains_key(&arn) {
            return Err(CliError::Aws {
                operation: "StartExecution",
                detail: format!(
                    "an execution named {} already exists: ExecutionAlreadyExists",
                    request.name
                ),
            });
        }
        state.started.push(request.clone());
        state.executions.insert(
            arn.clone(),
            ExecutionInfo {
                execution_arn: arn.clone(),
                name: Some(request.name.clone()),
                status: ExecutionStatus::Running,
                input: Some(request.input.to_string()),
                output: None,
                error: None,
                cause: None,
                started_at: Some(Utc::now()),
                stopped_at: None,
            },
        );
        Ok(arn)
    }

    async fn describe_execution(&self, execution_arn: &str) -> Result<ExecutionInfo, CliError> {
        let mut state = self.state();
        let described = {
            let n = state
                .described
                .entry(execution_arn.to_string())
                .or_default();
            *n += 1;
            *n
        };
        let ending = state.ending.clone();
        let Some(info) = state.executions.get_mut(execution_arn) else {
            return Err(CliError::Aws {
                operation: "DescribeExecution",
                detail: format!(
                    "execution {execution_arn} does not exist (ExecutionDoesNotExist: Execution Does \
                     Not Exist: '{execution_arn}')"
                ),
            });
        };
        if let (Some(ending), false) = (ending, info.status.is_terminal()) {
            if described >= 2 {
                info.status = ending.status;
                info.output = ending.output;
                info.error = ending.error;
                info.cause = ending.cause;
                info.stopped_at = Some(Utc::now());
            }
        }
        Ok(info.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:backfill";

    #[tokio::test]
    async fn records_starts_and_ends_them_as_scripted() {
        let fake = FakeExecutions::new().ending_as(
            ExecutionStatus::Failed,
            None,
            Some("States.TaskFailed"),
            Some("boom"),
        );
        let request = StartRequest {
            state_machine_arn: MACHINE.into(),
            name: "run-1".into(),
            input: serde_json::json!({"a": 1}),
        };
        let arn = fake.start_execution(&request).await.unwrap();
        assert_eq!(
            arn,
            "arn:aws:states:us-east-1:123456789012:execution:backfill:run-1"
        );
        assert_eq!(fake.started(), vec![request.clone()]);
        let first = fake.describe_execution(&arn).await.unwrap();
        assert_eq!(first.status, ExecutionStatus::Running);
        let second = fake.describe_execution(&arn).await.unwrap();
        assert_eq!(second.status, ExecutionStatus::Failed);
        assert_eq!(second.cause.as_deref(), Some("boom"));
        assert_eq!(fake.described(&arn), 2);
        assert!(
            fake.start_execution(&request).await.is_err(),
            "names are unique"
        );
    }

    #[tokio::test]
    async fn an_unknown_execution_is_an_aws_error() {
        let err = FakeExecutions::new()
            .describe_execution("arn:nope")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
