//! The JSON payloads between the state machine, the functions, the CLI and the tests.
//! Field names here are fixed: the ASL and other tools rely on them. Extra fields may be added.
//!
//! Inputs are deserialized by the handlers themselves (not by the runtime) so that a payload that
//! does not parse comes back as `InvalidInput` instead of the runtime's own error type.

use serde::{Deserialize, Serialize};

use crate::error::BackfillError;
use crate::model::{ExecutionName, Interval, ProviderKind, Reprocess, RunId, Symbol};

/// `select-tickers` input; also the state machine's execution input, so fields meant for the ASL
/// (`max_concurrency`, `max_rate_limit_rounds`) are accepted and ignored here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectTickersInput {
    /// Resume this run with its stored parameters; every other selection field must then be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// The id to give a new run (the CLI chooses it to name the execution after it); a fresh id
    /// is generated when absent. Must not exist yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_run_id: Option<RunId>,
    /// The name of the execution creating a new run (the schedule passes its
    /// `scheduled-<id>`), stored with the run so `backfill status`/`resume` find the run by
    /// that name. A second attempt with the same name gets the same run back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_name: Option<ExecutionName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<Symbol>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_n: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_articles: Option<i64>,
    /// Count only mentions in articles published in the last N days (`article.published_at`), for
    /// `top_n` and `min_articles` selections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions_within_days: Option<i64>,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`, inclusive; defaults to today (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// Alternative to `start_date` for schedules: start = end - lookback_days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprocess: Option<Reprocess>,
    /// Where `stock_price_history.symbol` references `ticker` (the original's database), listed
    /// symbols that `ticker` lacks are added to it (name = symbol, empty alias and source lists)
    /// instead of being settled as `failed` / `NotInTickerTable`. New runs and resumes alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_tickers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate_limit_rounds: Option<i64>,
}

/// One Map item: the database holds the batch's tickers, the payload only names the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRef {
    pub run_id: RunId,
    pub batch: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectTickersOutput {
    pub run_id: RunId,
    pub batches: Vec<BatchRef>,
    /// Tickers this execution will work on (not yet `success`, or all with `reprocess: all`).
    pub tickers: i64,
    /// Tickers in the run's plan, including those already `success`.
    pub requested: i64,
    /// Tickers already `success` from an earlier execution of this run.
    pub skipped: i64,
    pub resumed: bool,
    pub start_date: String,
    pub end_date: String,
    pub interval: Interval,
    pub provider: ProviderKind,
    pub batch_size: i64,
    /// For the state machine's Map: how many batches run at once.
    pub max_concurrency: i64,
    /// For the state machine: rate-limit waits per batch before it is left for a later resume.
    pub max_rate_limit_rounds: i64,
}

/// `fetch-batch` input (a Map item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchBatchInput {
    pub run_id: RunId,
    pub batch: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// No ticker of the batch is left to fetch.
    Done,
    /// Stopped before the deadline with tickers left; call again at once.
    Partial,
    /// The provider answered 429; wait `retry_after_seconds`, then call again.
    RateLimited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchBatchOutput {
    pub run_id: RunId,
    pub batch: i32,
    pub status: BatchStatus,
    /// Set only with `status: rate_limited`.
    pub retry_after_seconds: Option<u64>,
    /// Ticker counts of the whole batch after this invocation.
    pub success: i64,
    pub failed: i64,
    pub rate_limited: i64,
    pub pending: i64,
    /// Rows written by this invocation.
    pub records_inserted: i64,
    pub records_updated: i64,
    /// Tickers this invocation attempted.
    pub attempted: i64,
}

/// `finalize-run` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeRunInput {
    pub run_id: RunId,
    /// What the state machine's Map reported: an array of [`BatchOutcome`], or, when the Map
    /// state itself failed, the error object it caught. Absent when invoked by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_results: Option<serde_json::Value>,
}

/// One Map iteration's ending, as the state machine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub batch: i32,
    /// `done`, `rate_limit_rounds_exhausted` or `failed`.
    pub outcome: String,
    /// The error name the state machine caught, for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A batch that ended with an error after the state machine's retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedBatch {
    pub batch: i32,
    pub error_name: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Selected, batches in flight.
    Running,
    /// Every ticker `success`.
    Succeeded,
    /// Nothing left to fetch, but some tickers `failed`.
    CompletedWithFailures,
    /// Tickers left `pending` or `rate_limited`: resume the run later.
    Incomplete,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::CompletedWithFailures => "completed_with_failures",
            RunStatus::Incomplete => "incomplete",
        }
    }

    pub fn parse(s: &str) -> Result<Self, BackfillError> {
        match s {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "completed_with_failures" => Ok(Self::CompletedWithFailures),
            "incomplete" => Ok(Self::Incomplete),
            other => Err(BackfillError::DatabaseUnavailable(format!(
                "backfill_run holds an unknown status {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerError {
    pub symbol: String,
    pub status: String,
    pub error_name: Option<String>,
    pub message: Option<String>,
}

/// `finalize-run` output: the original job's result fields plus the run's final status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeRunOutput {
    pub run_id: RunId,
    pub status: RunStatus,
    pub requested: i64,
    pub success: i64,
    pub failed: i64,
    pub skipped: i64,
    pub rate_limited: i64,
    pub pending: i64,
    pub records_inserted: i64,
    pub records_updated: i64,
    /// Failed and rate-limited tickers with their reasons, at most [`FinalizeRunOutput::MAX_ERRORS`].
    pub errors: Vec<TickerError>,
    /// Batches that ended with an error (their unfinished tickers stay claimable for a resume).
    pub failed_batches: Vec<FailedBatch>,
    pub start_date: String,
    pub end_date: String,
    pub interval: Interval,
    pub provider: ProviderKind,
}

impl FinalizeRunOutput {
    pub const MAX_ERRORS: usize = 100;
}

/// Deserializes a raw event, naming a contract violation `InvalidInput`.
pub fn parse_event<T: serde::de::DeserializeOwned>(
    payload: serde_json::Value,
) -> Result<T, BackfillError> {
    serde_json::from_value(payload).map_err(BackfillError::from)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Each function's example events (for `cargo lambda invoke --data-file`).
    fn events(function: &str) -> Vec<(PathBuf, serde_json::Value)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions")
            .join(function)
            .join("events");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no example events in {}", dir.display());
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
                (p, value)
            })
            .collect()
    }

    fn is_bad_example(path: &Path) -> bool {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("bad-"))
    }

    /// The example events stay in step with the contracts: every good one parses, and the bad
    /// ones are bad for a reason the contract or the handler names.
    #[test]
    fn every_good_example_event_matches_its_contract() {
        for (path, value) in events("select-tickers") {
            let parsed = serde_json::from_value::<SelectTickersInput>(value);
            if !is_bad_example(&path) {
                parsed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
        for (path, value) in events("fetch-batch") {
            let parsed = serde_json::from_value::<FetchBatchInput>(value);
            assert_eq!(parsed.is_ok(), !is_bad_example(&path), "{}", path.display());
        }
        for (path, value) in events("finalize-run") {
            let parsed = serde_json::from_value::<FinalizeRunInput>(value);
            assert_eq!(parsed.is_ok(), !is_bad_example(&path), "{}", path.display());
        }
    }

    #[test]
    fn the_scheduled_example_carries_its_execution_name() {
        let (_, value) = events("select-tickers")
            .into_iter()
            .find(|(p, _)| p.ends_with("scheduled.json"))
            .expect("a scheduled example");
        let input: SelectTickersInput = serde_json::from_value(value).unwrap();
        assert_eq!(
            input.execution_name.map(String::from).as_deref(),
            Some("scheduled-d32c5kddcf5bb8c3")
        );
        assert_eq!(input.lookback_days, Some(7));
    }
}
