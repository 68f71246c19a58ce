//! `backfill resume RUN_ID|EXECUTION …`: a new execution of an existing run, with `{"run_id": …}`; the
//! run's stored parameters decide the window, interval, provider and tickers.

use std::io::Write;

use chrono::Utc;
use shared::contract::{RunStatus, SelectTickersInput};
use shared::db::runs;
use shared::model::RunId;
use tokio_postgres::Client;

use super::lease::{self, Lease};
use super::request::{execution_name_for_resume, resume_options};
use super::run_ref::RunRef;
use super::session::Session;
use super::{follow, start, ResumeArgs};
use crate::error::{exit, CliError};
use crate::executions::{Executions, StartRequest};

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
pub async fn check_run(
    request: Request,
    session: &Session<'_>,
) -> Result<(Prepared, Option<Client>), CliError> {
    if session.database().is_none() {
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
    }
    let client = session.connect().await?;
    let prepared = check_run_on(request, &client).await?;
    Ok((prepared, Some(client)))
}

/// [`check_run`] on the database `client` is connected to.
pub async fn check_run_on(request: Request, client: &Client) -> Result<Prepared, CliError> {
    let run_id = request.target.resolve(client).await?;
    let run = runs::get(client, &run_id).await?;
    if run.status == RunStatus::Running {
        eprintln!(
            "warning: run {} is marked running: an earlier execution may still be working on it \
             (its unfinished tickers move to this execution's batches)",
            run.run_id
        );
    }
    Ok(Prepared::new(run_id, request.options))
}

pub async fn run(
    executions: &impl Executions,
    state_machine_arn: &str,
    prepared: Prepared,
    mut db: Option<Client>,
    wait: bool,
    force: bool,
    out: &mut (dyn Write + Send),
) -> Result<u8, CliError> {
    let name = execution_name_for_resume(&prepared.run_id, Utc::now());
    // One active execution per run: the lease is taken here, for the execution about to start,
    // before anything is started, so that of two resumes one is refused at once.
    if let Some(client) = db.as_mut() {
        take_lease(
            client,
            executions,
            state_machine_arn,
            &prepared.run_id,
            &name,
            force,
        )
        .await?;
    }
    let request = StartRequest {
        state_machine_arn: state_machine_arn.to_string(),
        name: name.clone(),
        input: serde_json::to_value(&prepared.input)
            .map_err(|e| CliError::InvalidInput(format!("execution input: {e}")))?,
    };
    let execution_arn = match executions.start_execution(&request).await {
        Ok(arn) => arn,
        Err(e) => {
            if let Some(client) = db.as_ref() {
                release_lease(client, &prepared.run_id, &name).await;
            }
            return Err(e);
        }
    };
    start::print_started(out, &prepared.run_id, &execution_arn)?;
    if !wait {
        eprintln!("follow it with: backfill status {}", prepared.run_id);
        return Ok(exit::OK);
    }
    // `db` is `None` only when no database is configured (check_run said so).
    follow::follow(
        executions,
        &execution_arn,
        &prepared.run_id,
        db.as_ref(),
        out,
    )
    .await
}

/// Takes the run's lease for execution `name`. A lease held by an execution that still runs is
/// never taken (exit 2). One whose execution has ended is taken, after the run is closed
/// truthfully if that execution left it open. One whose execution cannot be looked up is taken
/// only with `--force`.
async fn take_lease(
    client: &mut Client,
    executions: &impl Executions,
    state_machine_arn: &str,
    run_id: &RunId,
    name: &str,
    force: bool,
) -> Result<(), CliError> {
    let tx = client.transaction().await?;
    let run = runs::get_for_update(&tx, run_id).await?;
    match lease::reconcile(&tx, executions, state_machine_arn, &run).await? {
        Lease::Free => {}
        Lease::Active { execution, status } => {
            return Err(CliError::RunBusy(format!(
                "run {run_id} is being worked on by execution {execution}, which is {}: wait for \
                 it to end (`backfill status {run_id}`); nothing was started",
                status.as_str()
            )))
        }
        Lease::Unknown { execution, why } if force => eprintln!(
            "warning: cannot tell whether execution {execution} still runs ({why}); taking its \
             lease over (--force)"
        ),
        Lease::Unknown { execution, why } => {
            return Err(CliError::RunBusy(format!(
                "run {run_id} is held by execution {execution}, and whether it still runs cannot \
                 be told ({why}); if it does not, add --force; nothing was started"
            )))
        }
    }
    let run = runs::get_for_update(&tx, run_id).await?;
    runs::take_lease(&tx, &run, name, true).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives back a lease taken for an execution that did not start; best effort.
async fn release_lease(client: &Client, run_id: &RunId, name: &str) {
    if let Err(e) = runs::release_lease(client, run_id, name).await {
        eprintln!("warning: could not release the lease of run {run_id}: {e}");
    }
}
