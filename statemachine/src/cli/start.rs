//! `backfill start …`: a new run. The run id is chosen here and passed as `new_run_id`, so the
//! execution can be named after it.

use std::io::Write;

use shared::contract::SelectTickersInput;
use shared::model::{today_utc, RunId};

use super::request::{defaults_from_env, new_run_input, provider_is_known, validate_new_run};
use super::session::Session;
use super::{follow, StartArgs};
use crate::error::{exit, CliError};
use crate::executions::{Executions, StartRequest};

/// A validated new run, ready to start.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub run_id: RunId,
    pub input: SelectTickersInput,
}

/// Builds and validates the execution input; no network.
pub fn prepare(args: &StartArgs) -> Result<Prepared, CliError> {
    let run_id = RunId::new_now();
    let input = new_run_input(&args.selection, &args.execution, run_id.clone())?;
    let defaults = defaults_from_env()?;
    validate_new_run(&input, &defaults, provider_is_known(&input), today_utc())?;
    Ok(Prepared { run_id, input })
}

pub async fn run(
    executions: &impl Executions,
    state_machine_arn: &str,
    prepared: Prepared,
    wait: bool,
    session: &mut Session<'_>,
) -> Result<u8, CliError> {
    let db = if wait {
        follow::optional_db(session).await
    } else {
        None
    };
    let request = StartRequest {
        state_machine_arn: state_machine_arn.to_string(),
        // The execution is named after the run: one look-up key for both.
        name: prepared.run_id.to_string(),
        input: serde_json::to_value(&prepared.input)
            .map_err(|e| CliError::InvalidInput(format!("execution input: {e}")))?,
    };
    let execution_arn = executions.start_execution(&request).await?;
    print_started(session.out(), &prepared.run_id, &execution_arn)?;
    if !wait {
        eprintln!("follow it with: backfill status {}", prepared.run_id);
        return Ok(exit::OK);
    }
    let (id, out) = (&prepared.run_id, session.out());
    follow::follow(executions, &execution_arn, id, db.as_ref(), out).await
}

/// The two lines scripts read (`run_id: …`, `execution_arn: …`).
pub fn print_started(
    out: &mut (dyn Write + Send),
    run_id: &RunId,
    execution_arn: &str,
) -> Result<(), CliError> {
    writeln!(out, "run_id: {run_id}")?;
    writeln!(out, "execution_arn: {execution_arn}")?;
    Ok(())
}
