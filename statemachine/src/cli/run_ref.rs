//! How `status`, `resume` and `verify` name a run: its id, or the name or ARN of an execution of
//! it, as a notification or the console shows them. The CLI names its executions after the run
//! (`<run_id>`, `<run_id>-resume-<time>`); the schedule's `scheduled-<id>` executions pass their
//! name to select-tickers, which stores it with the run they create.

use std::fmt;

use shared::db::runs;
use shared::model::{ExecutionName, RunId};
use tokio_postgres::GenericClient;

use crate::error::CliError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRef {
    Id(RunId),
    /// An execution that is not named after its run: found through `backfill_run.execution_name`.
    Execution(ExecutionName),
}

impl RunRef {
    pub fn parse(raw: &str) -> Result<Self, CliError> {
        let raw = raw.trim();
        // arn:aws:states:<region>:<account>:execution:<state machine>:<execution name>
        let name = match raw.strip_prefix("arn:") {
            Some(_) => raw.rsplit(':').next().unwrap_or(raw),
            None => raw,
        };
        if let Ok(id) = RunId::parse(name) {
            return Ok(RunRef::Id(id));
        }
        if let Some((prefix, _)) = name.split_once("-resume-") {
            if let Ok(id) = RunId::parse(prefix) {
                return Ok(RunRef::Id(id));
            }
        }
        if name.starts_with("backfill-") {
            // Meant as a run id: say what is wrong with it rather than look for an execution.
            return Err(RunId::parse(name).err().map_or_else(
                || CliError::InvalidInput(format!("run id {name:?} is malformed")),
                CliError::from,
            ));
        }
        ExecutionName::parse(name)
            .map(RunRef::Execution)
            .map_err(|_| {
                CliError::InvalidInput(format!(
                    "{raw:?} is neither a run id (backfill-YYYYMMDD-HHMMSS-<8 hex digits>) nor an \
                 execution name or ARN"
                ))
            })
    }

    /// The run id when it is written in the reference itself.
    pub fn run_id(&self) -> Option<&RunId> {
        match self {
            RunRef::Id(id) => Some(id),
            RunRef::Execution(_) => None,
        }
    }

    /// The run id, from the database when the reference is an execution name.
    pub async fn resolve(&self, client: &impl GenericClient) -> Result<RunId, CliError> {
        match self {
            RunRef::Id(id) => Ok(id.clone()),
            RunRef::Execution(name) => match runs::find_by_execution_name(client, name).await? {
                Some(run) => Ok(run.run_id),
                // An execution that failed before select-tickers stored its run has none.
                None => Err(CliError::RunNotFound(format!("of execution {name}"))),
            },
        }
    }
}

impl fmt::Display for RunRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunRef::Id(id) => write!(f, "{id}"),
            RunRef::Execution(name) => write!(f, "the run of execution {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "backfill-20260312-101500-0a1b2c3d";

    #[test]
    fn run_ids_and_the_clis_execution_names_are_read_without_a_lookup() {
        for raw in [
            ID.to_string(),
            format!(" {ID} "),
            format!("{ID}-resume-20260313080000"),
            format!("arn:aws:states:eu-west-1:123456789012:execution:price-backfill:{ID}"),
            format!(
                "arn:aws:states:eu-west-1:123456789012:execution:price-backfill:{ID}-resume-20260313080000"
            ),
        ] {
            assert_eq!(
                RunRef::parse(&raw).unwrap(),
                RunRef::Id(RunId::parse(ID).unwrap()),
                "{raw}"
            );
        }
    }

    #[test]
    fn other_execution_names_and_arns_are_looked_up() {
        let expected =
            RunRef::Execution(ExecutionName::parse("scheduled-d32c5kddcf5bb8c3").unwrap());
        assert_eq!(
            RunRef::parse("scheduled-d32c5kddcf5bb8c3").unwrap(),
            expected
        );
        assert_eq!(
            RunRef::parse(
                "arn:aws:states:eu-west-1:123456789012:execution:price-backfill:scheduled-d32c5kddcf5bb8c3"
            )
            .unwrap(),
            expected
        );
        assert_eq!(expected.run_id(), None);
    }

    #[test]
    fn malformed_references_are_invalid_input() {
        for raw in [
            "backfill-2026",
            "backfill-20260312-101500-xyz",
            "",
            "a b",
            "x/y",
        ] {
            let err = RunRef::parse(raw).unwrap_err();
            assert!(matches!(err, CliError::InvalidInput(_)), "{raw:?}: {err}");
        }
        let err = RunRef::parse("backfill-2026").unwrap_err();
        assert!(
            err.to_string().contains("backfill-YYYYMMDD-HHMMSS"),
            "{err}"
        );
    }
}
