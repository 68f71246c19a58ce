//! `backfill resume RUN_ID|EXECUTION …`: a new execution of an existing run, with `{"run_id": …}`; the
//! run's stored parameters decide the window, interval, provider and tickers.

use chrono::Utc;
use shared::contract::{RunStatus, SelectTickersInput};
use shared::db::runs;
use shared::model::RunId;
use tokio_postgres::Client;

use super::request::{execution_name_for_resume, resume_options};
use super::run_ref::RunRef;
use super::{follow, start, ResumeArgs};
use crate::error::{exit, CliError};
use crate::executions::{Executions, StartRequest};
use crate::store::{self, DatabaseSetting};

/// The flags, validated; the run not yet looked up.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: RunRef,
    /// The execution input without its run id.
    pub options: SelectTickersInput,
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub run_id: RunId,
    pub input: SelectTickersInput,
}

impl Prepared {
    fn new(run_id: RunId, options: SelectTickersInput) -> Self {
        let input = SelectTickersInput {
            run_id: Some(run_id.clone()),
            ..options
        };
        Prepared { run_id, input }
    }
}

pub fn prepare(args: &ResumeArgs) -> Result<Request, CliError> {
    Ok(Request {
        target: RunRef::parse(&args.run_id)?,
        options: resume_options(
            args.reprocess.as_deref(),
            args.register_tickers,
            &args.execution,
        )?,
    })
}

/// Finds the run (an execution name is looked up) and checks that it exists: an unknown run is a
/// usage error (exit 2). Without a database setting a run id goes unchecked (select-tickers fails
/// the execution with `RunNotFound`), but an execution name cannot be resolved.
pub async fn check_run(request: Request) -> Result<(Prepared, Option<Client>), CliError> {
    let Some(setting) = DatabaseSetting::from_env() else {
        let Some(run_id) = request.target.run_id().cloned() else {
            return Err(CliError::Configuration(format!(
                "finding {} needs the database: set DATABASE_URL (or DATABASE_SECRET_ARN), or \
                 give the run id",
                request.target
            )));
        };
        eprintln!(
            "note: DATABASE_URL is not set: not checking that run {run_id} exists (select-tickers will)"
        );
        return Ok((Prepared::new(run_id, request.options), None));
    };
    let client = store::connect(&setting).await?;
    let run_id = request.target.resolve(&client).await?;
    let run = runs::get(&client, &run_id).await?;
    if run.status == RunStatus::Running {
        eprintln!(
            "warning: run {} is marked running: an earlier execution may still be working on it \
             (its unfinished tickers move to this execution's batches)",
            run.run_id
        );
    }
    Ok((Prepared::new(run_id, request.options), Some(client)))
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
