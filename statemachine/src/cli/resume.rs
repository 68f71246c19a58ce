//! `backfill resume RUN_ID …`: a new execution of an existing run, with `{"run_id": …}`; the
//! run's stored parameters decide the window, interval, provider and tickers.

use chrono::Utc;
use shared::contract::{RunStatus, SelectTickersInput};
use shared::db::runs;
use shared::model::RunId;
use tokio_postgres::Client;

use super::request::{execution_name_for_resume, resume_input};
use super::{follow, start, ResumeArgs};
use crate::error::{exit, CliError};
use crate::executions::{Executions, StartRequest};
use crate::store::{self, DatabaseSetting};

#[derive(Debug, Clone)]
pub struct Prepared {
    pub run_id: RunId,
    pub input: SelectTickersInput,
}

pub fn prepare(args: &ResumeArgs) -> Result<Prepared, CliError> {
    let run_id = RunId::parse(args.run_id.trim())?;
    let input = resume_input(run_id.clone(), args.reprocess.as_deref(), &args.execution)?;
    Ok(Prepared { run_id, input })
}

/// Checks that the run exists (an unknown run is a usage error, exit 2). Without a database
/// setting the check is left to select-tickers, which fails the execution with `RunNotFound`.
pub async fn check_run(prepared: &Prepared) -> Result<Option<Client>, CliError> {
    let Some(setting) = DatabaseSetting::from_env() else {
        eprintln!(
            "note: DATABASE_URL is not set: not checking that run {} exists (select-tickers will)",
            prepared.run_id
        );
        return Ok(None);
    };
    let client = store::connect(&setting).await?;
    let run = runs::get(&client, &prepared.run_id).await?;
    if run.status == RunStatus::Running {
        eprintln!(
            "warning: run {} is marked running: an earlier execution may still be working on it \
             (its unfinished tickers move to this execution's batches)",
            run.run_id
        );
    }
    Ok(Some(client))
}

pub async fn run(
    executions: &impl Executions,
    state_machine_arn: &str,
    prepared: Prepared,
    db: Option<Client>,
    wait: bool,
) -> Result<u8, CliError> {
    let request = StartRequest {
        state_machine_arn: state_machine_arn.to_string(),
        name: execution_name_for_resume(&prepared.run_id, Utc::now()),
        input: serde_json::to_value(&prepared.input)
            .map_err(|e| CliError::InvalidInput(format!("execution input: {e}")))?,
    };
    let execution_arn = executions.start_execution(&request).await?;
    start::print_started(&prepared.run_id, &execution_arn);
    if !wait {
        eprintln!("follow it with: backfill status {}", prepared.run_id);
        return Ok(exit::OK);
    }
    // `db` is `None` only when no database is configured (check_run said so).
    follow::follow(executions, &execution_arn, &prepared.run_id, db.as_ref()).await
}
