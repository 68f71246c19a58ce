//! A run's lease (one active execution per run) as the CLI sees it: who holds it, whether that
//! execution still runs, and closing a run its execution left open.

use shared::contract::RunStatus;
use shared::db::runs::{self, RunRecord};
use shared::run_close::close;

use crate::error::CliError;
use crate::executions::{ExecutionStatus, Executions};

/// Where a run's lease stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Lease {
    /// Nobody holds it, or its execution has ended (the run is closed now if it was left open).
    Free,
    /// `execution` holds it and still runs (`status`).
    Active {
        execution: String,
        status: ExecutionStatus,
    },
    /// `execution` holds it, and whether it still runs cannot be told (`why`).
    Unknown { execution: String, why: String },
}

/// The ARN of execution `name` of the state machine `state_machine_arn`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// Looks at the execution holding `run`'s lease. If it has ended and left the run `running`
/// (it died, or FinalizeRun never reached the database), the run is closed truthfully, in `tx`,
/// from what the database holds, and its lease released.
pub async fn reconcile(
    tx: &tokio_postgres::Transaction<'_>,
    executions: &impl Executions,
    state_machine_arn: &str,
    run: &RunRecord,
) -> Result<Lease, CliError> {
    let Some(holder) = run.lease_execution.clone() else {
        return Ok(Lease::Free);
    };
    match executions
        .describe_execution(&execution_arn(state_machine_arn, &holder))
        .await
    {
        Ok(info) if !info.status.is_terminal() => Ok(Lease::Active {
            execution: holder,
            status: info.status,
        }),
        Ok(info) => {
            if run.status == RunStatus::Running {
                let summary = close(tx, &run.run_id, Some(&holder), None).await?;
                eprintln!(
                    "note: execution {holder} ended {} without closing run {}; closed it as {}",
                    info.status.as_str(),
                    run.run_id,
                    summary.status.as_str()
                );
            } else {
                runs::release_lease(tx, &run.run_id, &holder).await?;
            }
            Ok(Lease::Free)
        }
        Err(e) => Ok(Lease::Unknown {
            execution: holder,
            why: e.to_string(),
        }),
    }
}
