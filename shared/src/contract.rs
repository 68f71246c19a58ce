//! The JSON payloads between the state machine, the functions, the CLI and the tests.
//! Field names here are fixed: the ASL and other tools rely on them. Extra fields may be added.
//!
//! Inputs are deserialized by the handlers themselves (not by the runtime) so that a payload that
//! does not parse comes back as `InvalidInput` instead of the runtime's own error type, and
//! strictly ([`parse_event`]): a payload that is not an object, a field no contract has (a typo
//! such as `symbol` or `max_concurency`) or a value of the wrong type is refused by name, never
//! ignored or defaulted.
//!
//! ```
//! use serde_json::json;
//! use shared::contract::{parse_event, FetchBatchInput};
//!
//! let run_id = "backfill-20260309-120000-0a1b2c3d";
//! let input: FetchBatchInput = parse_event(json!({"run_id": run_id, "batch": 0})).unwrap();
//! assert_eq!(input.batch, 0);
//!
//! let typo = parse_event::<FetchBatchInput>(json!({"run_id": run_id, "batchs": 0})).unwrap_err();
//! assert_eq!(typo.name(), "InvalidInput");
//! assert!(typo.to_string().contains(r#""batchs" (did you mean "batch"?)"#));
//! ```
//!
//! # The payloads
//!
//! | function | input | output |
//! | --- | --- | --- |
//! | select-tickers (also the state machine's execution input) | [`SelectTickersInput`] | [`SelectTickersOutput`] |
//! | fetch-batch (one call per batch, from the Map) | [`FetchBatchInput`] | [`FetchBatchOutput`] |
//! | finalize-run (always runs; its output is the execution's output) | [`FinalizeRunInput`] | [`FinalizeRunOutput`] |
//!
//! Payloads stay small: the database holds the ticker lists, the state machine carries run ids
//! and batch numbers. Example events for `cargo lambda invoke --data-file` are in
//! `functions/<name>/events/`; a test keeps them in step with these types (the `bad-` ones must be
//! refused). Run ids keep the original job's format `backfill-YYYYMMDD-HHMMSS-<8 hex>` (UTC).
//!
//! # Error names (`errorType`)
//!
//! A function's error reaches the state machine as a Lambda `errorType`, the stable name of a
//! [`BackfillError`] variant, never a Rust type name; the ASL's Retry and Catch match on it. The
//! transient budget below is `transient_fault_retry_budget_seconds` (30 minutes on average; a
//! successful invocation starts a new one).
//!
//! | errorType | when | retried by the state machine |
//! | --- | --- | --- |
//! | `InvalidInput` | payload that is not JSON or not an object (`null`, `[]`), a field the contract does not have (named, with the field probably meant), missing/malformed field, start after end, future end, a start before 1970, a range the provider cannot serve (Yahoo 1h older than 730 days, Polygon before 2003-09-10), malformed symbol, unknown batch | no |
//! | `RunNotFound` | `run_id` not in `backfill_run` | no |
//! | `RunBusy` | another execution holds the run's lease (one active execution per run): a resume from another execution, or a fetch-batch whose execution lost the lease | no |
//! | `ProviderUnavailable` | provider 5xx, timeout, connection error, garbled body | yes (FetchBatch), within the transient budget |
//! | `ProviderRejected` | provider 401/403 (key or plan) | no |
//! | `DatabaseUnavailable` | database unreachable or refusing the login, connection lost, timeout, shutdown, serialization failure or deadlock (SQLSTATE classes 08, 53, 57, 40, 58, 28, 3D; 55P03) | yes (every Task), within the transient budget |
//! | `DatabaseRejected` | the database refused the statement itself: integrity (23), undefined table/column or privilege (42), bad data (22), any other SQLSTATE; the message names the table, column or constraint. For one ticker's rows (23, 22) the ticker fails with this name and the batch carries on | no |
//! | `StoredDataInvalid` | a stored row cannot be read as this version expects: a `backfill_run` with an unknown provider, strategy or status, a `backfill_progress` symbol that does not parse, a column of another type than the code reads; the message names the table and the value. Reading it again gives the same answer: correct the row | no |
//! | `ConfigurationError` | missing/invalid environment or unreadable secret | no |
//! | `RateLimited` | reserved; a 429 is reported as `status: rate_limited` ([`BatchStatus::RateLimited`]), not thrown | — |
//! | `RunIncomplete` | the execution's own error (Fail state): finalize-run found tickers left `pending`/`rate_limited` (rate-limit rounds exhausted, a batch stalled or failed), or reported a status the definition does not know; the cause names the run id and the resume command | — |
//! | `RunCompletedWithFailures` | the execution's own error (Fail state): nothing is left to fetch but some tickers `failed` for good; the cause names the run id, how many failed and `backfill status <run_id>`. The execution FAILS so the notification rule and the `ExecutionsFailed` alarm report it | — |
//! | `Runtime.ExitError`, `Runtime.OutOfMemory` | Lambda's errorType for a function process that died (a crash, `kill -9`, out of memory; "Runtime exited with error: signal: killed") | yes, within the transient budget |
//! | `Lambda.ServiceException`, `Lambda.AWSLambdaException`, `Lambda.SdkClientException`, `Lambda.ClientExecutionTimeoutException`, `Lambda.TooManyRequestsException`, `Lambda.Unknown` | the Lambda service failed or throttled the call, or (`Lambda.Unknown`) Step Functions could not tell what became of it | yes, within the transient budget |
//! | `Sandbox.Timedout`, `States.Timeout` | the function ran into its own timeout (Lambda), or gave no answer by the Task's `TimeoutSeconds` (its timeout + 60 s) | yes, twice more |
//!
//! Bad input writes nothing. Per-ticker failures never fail a batch: the ticker becomes `failed`
//! with `error_name` (`UnknownSymbol`, `RangeUnsupported`, `MalformedResponse` — e.g. Yahoo
//! answering `dataGranularity` `3mo` where `1h` was asked —, `DatabaseRejected`,
//! `NotInTickerTable`) and a readable `error_message`. A batch given up for lack of progress
//! carries the error `NoProgress` (see [`BatchStatus::Stalled`]).

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::BackfillError;
use crate::model::{
    ExecutionName, Interval, ProviderKind, Reprocess, RunId, Strategy, StrategyRequest, Symbol,
};

/// `select-tickers` input; also the state machine's execution input, so the fields meant for the
/// ASL (`max_concurrency`, `max_rate_limit_rounds`) are accepted here too: validated, and passed
/// on in [`SelectTickersOutput`] for the Map. Any other field is refused. The `backfill start`
/// flags are these fields, with the same defaults and bounds.
///
/// | field | default | meaning |
/// | --- | --- | --- |
/// | `run_id` | — | resume this run with its stored parameters (no other selection field allowed) |
/// | `new_run_id` | generated | the id for a new run (the CLI picks it so the execution is named after it); a retry with the same request returns the same plan |
/// | `execution_name` | — | the name of the execution creating a new run (the schedule passes its `scheduled-<id>`): stored with the run so `backfill status/resume <execution name>` find it; a retry from the same execution returns the same plan |
/// | `symbols` | — | explicit list, e.g. `["AAPL","BRK.B"]`; at most 10,000, not with `top_n` |
/// | `top_n` | — | the N most-mentioned tickers (ties broken by symbol), N ≥ 1 |
/// | `min_articles` | 10; with `top_n`: 1 | without `symbols`/`top_n`: tickers with at least this many mentions (`article_ticker` rows, all time), by symbol; with `top_n`: the mentions a ranked ticker needs at least. At least 1 |
/// | `mentions_within_days` | — | count only mentions in articles published in the last N days (`article.published_at`; `top_n` or `min_articles`, not `symbols`), 1–36,500; the original's test mode is `top_n` 5 within 7 days |
/// | `register_tickers` | false | where `stock_price_history.symbol` references `ticker` (the original's database): add listed symbols that `ticker` lacks to it (name = symbol, empty `aliases`/`sources`, `is_sp500` false) instead of settling them as `failed` / `NotInTickerTable` before any provider call; also on a resume |
/// | `start_date` | `BACKFILL_START_DATE` | `YYYY-MM-DD`, inclusive |
/// | `end_date` | today (UTC) | `YYYY-MM-DD`, inclusive; not in the future |
/// | `lookback_days` | — | instead of `start_date`: start = end − N days (for schedules), 0–36,500 |
/// | `interval` | `1h` | `1h` or `1d`; never changes silently |
/// | `batch_size` | 50 | tickers per batch (weekdays per batch for a grouped run), 1–1000; a run has at most 1,000 batches |
/// | `provider` | `PRICE_PROVIDER` | `yahoo` or `polygon` |
/// | `strategy` | `auto` | `per-ticker`, `grouped` or `auto`, see the field below |
/// | `reprocess` | `incomplete` | on resume: `incomplete` (every ticker not yet `success`) or `all` |
/// | `max_concurrency` | 4 | batches fetched at once (1–100) |
/// | `max_rate_limit_rounds` | 50 | rate-limit waits per batch before its tickers are left `rate_limited` for a later resume (0–1000) |
/// | `lease_execution` | — | set by the state machine (`PrepareSelection`): the execution's own name |
/// | `take_over_lease` | false | on resume, set by the CLI: take the run's lease over |
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// `per-ticker`, `grouped` (Polygon's grouped daily endpoint: one call per day for every
    /// ticker; polygon and 1d only) or `auto` (the default: grouped when the window has fewer
    /// weekdays than the run has tickers). Stored with the run; a resume keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyRequest>,
    /// Where `stock_price_history.symbol` references `ticker` (the original's database), listed
    /// symbols that `ticker` lacks are added to it (name = symbol, empty alias and source lists)
    /// instead of being settled as `failed` / `NotInTickerTable`. New runs and resumes alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_tickers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate_limit_rounds: Option<i64>,
    /// The Step Functions execution working on the run (`$$.Execution.Name`), which holds the
    /// run's lease while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_execution: Option<String>,
    /// On a resume: take the run's lease over from the execution holding it. The CLI sets it
    /// only after it saw that execution is no longer running (or with `--force`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_over_lease: Option<bool>,
}

/// One Map item: the database holds the batch's tickers, the payload only names the batch
/// (about 70 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRef {
    pub run_id: RunId,
    pub batch: i32,
}

/// `select-tickers` output:
///
/// ```text
/// {"run_id", "batches": [{"run_id", "batch"}, …], "tickers", "requested", "skipped", "resumed",
///  "start_date", "end_date", "interval", "provider", "strategy", "batch_size", "max_concurrency",
///  "max_rate_limit_rounds"}
/// ```
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
    /// How the run fetches: with `grouped`, each batch is a range of days, not of tickers.
    #[serde(default)]
    pub strategy: Strategy,
    pub batch_size: i64,
    /// For the state machine's Map: how many batches run at once.
    pub max_concurrency: i64,
    /// For the state machine: rate-limit waits per batch before it is left for a later resume.
    pub max_rate_limit_rounds: i64,
}

/// `fetch-batch` input (a Map item): `{"run_id", "batch", "lease_execution"?}`. An execution
/// whose lease another execution took over stops (`RunBusy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchBatchInput {
    pub run_id: RunId,
    pub batch: i32,
    /// The execution fetching (`$$.Execution.Name`): if another execution has taken the run's
    /// lease over, this one stops (`RunBusy`) instead of working beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_execution: Option<String>,
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
    /// Transient faults (provider 5xx, timeouts, garbled bodies, a lost database connection)
    /// outlasted this invocation's patience; what was done is committed. Wait
    /// `retry_after_seconds`, then call again: there is no round limit, fetch-batch itself says
    /// `stalled` when the batch has made no progress for too long.
    Unavailable,
    /// No ticker of the batch finished for `NO_PROGRESS_TIMEOUT_SECONDS`: give the batch up (its
    /// tickers stay claimable for a resume; the reason is on the batch's row).
    Stalled,
}

impl BatchStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            BatchStatus::Done => "done",
            BatchStatus::Partial => "partial",
            BatchStatus::RateLimited => "rate_limited",
            BatchStatus::Unavailable => "unavailable",
            BatchStatus::Stalled => "stalled",
        }
    }

    /// Whether the state machine waits `retry_after_seconds` before the next call.
    pub fn waits(&self) -> bool {
        matches!(self, BatchStatus::RateLimited | BatchStatus::Unavailable)
    }
}

/// `fetch-batch` output: ticker counts for the whole batch, row counts for this invocation.
///
/// ```text
/// {"run_id", "batch", "status": "done" | "partial" | "rate_limited" | "unavailable" | "stalled",
///  "retry_after_seconds", "rate_limit_round", "success", "failed", "rate_limited", "pending",
///  "records_inserted", "records_updated", "attempted"}
/// ```
///
/// - A ticker's bars are stored page by page (Polygon's `next_url` pages; one chart for Yahoo),
///   each page committed with the ticker's cursor (`backfill_progress.last_bar_at`): an
///   interrupted ticker goes on after its cursor, and memory does not grow with the range.
/// - Transient faults — provider 5xx, timeouts, bodies that are not complete JSON, a lost
///   database connection — are retried where they happen, with backoff and jitter, for at most
///   `FAULT_PATIENCE_SECONDS`; a fault already got past never counts against the batch. One that
///   outlasts the patience ends the invocation with everything so far committed and
///   `unavailable` (wait `retry_after_seconds`, call again, no round limit). A batch in which no
///   ticker finished for `NO_PROGRESS_TIMEOUT_SECONDS` is given up: `stalled` (error
///   `NoProgress` on the batch, its tickers left for a resume).
/// - A well-formed answer that breaks the provider's contract fails only that ticker, for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchBatchOutput {
    pub run_id: RunId,
    pub batch: i32,
    pub status: BatchStatus,
    /// Set with `status: rate_limited` (and `unavailable`): how long to wait.
    pub retry_after_seconds: Option<u64>,
    /// With `status: rate_limited`: whether this wait counts towards the state machine's
    /// `max_rate_limit_rounds` (the provider answered 429 and no ticker finished). Waiting for
    /// the shared budget's next slot is pacing and does not count.
    #[serde(default)]
    pub rate_limit_round: bool,
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

/// `finalize-run` input: `{"run_id", "batch_results"?, "lease_execution"?}`, the batch results
/// being the Map's outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeRunInput {
    pub run_id: RunId,
    /// The execution finalizing (`$$.Execution.Name`): a run whose lease another execution
    /// holds is not closed by this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_execution: Option<String>,
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

/// A run's status, stored in `backfill_run` and reported by finalize-run. The state machine ends
/// the execution by it: SUCCEEDED for `succeeded` (`RunFinished`), FAILED with
/// `RunCompletedWithFailures` for `completed_with_failures`, FAILED with `RunIncomplete` for
/// `incomplete` (or any status it does not know).
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
            other => Err(BackfillError::StoredDataInvalid(format!(
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

/// `finalize-run` output: the original job's result fields plus the run's final status, the
/// failed batches and the run's parameters.
///
/// ```text
/// {"run_id", "status", "requested", "success", "failed", "skipped", "rate_limited", "pending",
///  "records_inserted", "records_updated",
///  "errors": [{"symbol", "status", "error_name", "message"}, …],
///  "failed_batches": [{"batch", "error_name", "message"}, …],
///  "start_date", "end_date", "interval", "provider"}
/// ```
///
/// `errors` holds at most 100 tickers (`MAX_ERRORS`). `status` is `succeeded`,
/// `completed_with_failures` (nothing left to fetch, some tickers failed) or `incomplete`
/// (tickers left `pending`/`rate_limited`: resume later).
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

// ---- strict parsing -------------------------------------------------------------------------

/// An input payload of one of the functions, parsed by [`parse_event`].
pub trait Contract: DeserializeOwned {
    /// The function whose input this is, for messages.
    const FUNCTION: &'static str;
    /// A small valid payload, shown to whoever sent something other than an object.
    const EXAMPLE: &'static str;
    /// Fields accepted besides the struct's own, each an optional string this function does not
    /// read (the state machine may pass them to every function alike).
    const ALSO_ACCEPTED: &'static [&'static str] = &[];
}

impl Contract for SelectTickersInput {
    const FUNCTION: &'static str = "select-tickers";
    const EXAMPLE: &'static str = r#"{"symbols": ["AAPL"], "start_date": "2026-03-09"}"#;
}

impl Contract for FetchBatchInput {
    const FUNCTION: &'static str = "fetch-batch";
    const EXAMPLE: &'static str = r#"{"run_id": "backfill-20260309-120000-0a1b2c3d", "batch": 0}"#;
}

impl Contract for FinalizeRunInput {
    const FUNCTION: &'static str = "finalize-run";
    const EXAMPLE: &'static str = r#"{"run_id": "backfill-20260309-120000-0a1b2c3d"}"#;
}

/// Parses a raw event strictly, every violation an `InvalidInput` that names what is wrong: a
/// payload that is not an object (`null`, an array, a number, a string), a field the contract
/// does not have (with the field probably meant), a value of the wrong type or form (with its
/// field), a required field that is missing.
pub fn parse_event<T: Contract>(payload: Value) -> Result<T, BackfillError> {
    let function = T::FUNCTION;
    let invalid = |message: String| BackfillError::InvalidInput(message);
    let mut object = match payload {
        Value::Object(object) => object,
        other => {
            return Err(invalid(format!(
                "the {function} payload must be a JSON object such as {}, not {}",
                T::EXAMPLE,
                describe(&other)
            )))
        }
    };
    let fields = contract_fields::<T>();
    let known = |key: &str| fields.contains(&key) || T::ALSO_ACCEPTED.contains(&key);
    let unknown: Vec<String> = object
        .keys()
        .filter(|key| !known(key))
        .map(|key| {
            let candidates = fields.iter().chain(T::ALSO_ACCEPTED).copied();
            match meant(key, candidates) {
                Some(field) => format!("{key:?} (did you mean {field:?}?)"),
                None => format!("{key:?}"),
            }
        })
        .collect();
    if !unknown.is_empty() {
        let plural = if unknown.len() == 1 { "" } else { "s" };
        return Err(invalid(format!(
            "unknown field{plural} {} in the {function} payload; its fields are {}",
            unknown.join(", "),
            fields
                .iter()
                .chain(T::ALSO_ACCEPTED)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for extra in T::ALSO_ACCEPTED.iter().filter(|f| !fields.contains(f)) {
        match object.remove(*extra) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "field {extra:?} of the {function} payload must be a string, not {}",
                    describe(&other)
                )))
            }
        }
    }
    let mut field = None;
    T::deserialize(Fields {
        object,
        current: &mut field,
    })
    .map_err(|e| {
        // The newtypes' own messages (`RunId`, `Symbol`, …) already say "invalid input".
        let text = e.to_string();
        let detail = text.strip_prefix("invalid input: ").unwrap_or(&text);
        match field {
            Some(field) => invalid(format!(
                "field {field:?} of the {function} payload: {detail}"
            )),
            None => invalid(format!("the {function} payload: {detail}")),
        }
    })
}

/// A payload value as a message shows it: its kind, and a short value where it helps.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) if s.chars().count() <= 40 => format!("a string ({s:?})"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The field names of a contract, as its `Deserialize` (serde's derive) declares them: the
/// derive hands them to `Deserializer::deserialize_struct`, where this deserializer writes them
/// down before it gives up. So the list can never drift from the struct.
fn contract_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("a contract is a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields written down"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// A payload object handed to a contract's `Deserialize` one field at a time, remembering the
/// field being read, so that an error names it (`serde_json::from_value` does not).
struct Fields<'a> {
    object: Map<String, Value>,
    current: &'a mut Option<String>,
}

impl<'de> Deserializer<'de> for Fields<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(FieldsAccess {
            entries: self.object.into_iter(),
            value: None,
            current: self.current,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct FieldsAccess<'a> {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
    current: &'a mut Option<String>,
}

impl<'de> MapAccess<'de> for FieldsAccess<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            // Past the last field: what fails now (a missing field) belongs to none.
            *self.current = None;
            return Ok(None);
        };
        *self.current = Some(key.clone());
        self.value = Some(value);
        let key: de::value::StringDeserializer<serde_json::Error> = key.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked for before its key"))?;
        seed.deserialize(value)
    }
}

/// The field a misspelt `key` most likely meant, where that is obvious: the same letters in
/// another case or separator (`startDate`, `RUN-ID`), or one or two letters off
/// (`symbol` → `symbols`, `max_concurency` → `max_concurrency`).
fn meant<'f>(key: &str, candidates: impl Iterator<Item = &'f str> + Clone) -> Option<&'f str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let squashed = squash(key);
    if let Some(same) = candidates.clone().find(|c| squash(c) == squashed) {
        return Some(same);
    }
    let lower = key.to_lowercase();
    let tolerance = if key.chars().count() < 5 { 1 } else { 2 };
    candidates
        .map(|c| (edit_distance(&lower, c), c))
        .filter(|(distance, _)| *distance <= tolerance)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
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
    /// ones are bad for a reason the contract or the request rules name.
    #[test]
    fn every_good_example_event_matches_its_contract() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
        let defaults = crate::config::RunDefaults::from_lookup(|_| None).unwrap();
        for (path, value) in events("select-tickers") {
            let parsed = parse_event::<SelectTickersInput>(value).and_then(|input| {
                if input.run_id.is_none() {
                    crate::handler::select_tickers::RunRequest::parse(&input, &defaults, today)?;
                }
                Ok(input)
            });
            assert_eq!(
                parsed.is_ok(),
                !is_bad_example(&path),
                "{}: {parsed:?}",
                path.display()
            );
        }
        for (path, value) in events("fetch-batch") {
            let parsed = parse_event::<FetchBatchInput>(value);
            assert_eq!(parsed.is_ok(), !is_bad_example(&path), "{}", path.display());
        }
        for (path, value) in events("finalize-run") {
            let parsed = parse_event::<FinalizeRunInput>(value);
            assert_eq!(parsed.is_ok(), !is_bad_example(&path), "{}", path.display());
        }
    }

    #[test]
    fn the_field_lists_come_from_the_structs() {
        let fetch = contract_fields::<FetchBatchInput>();
        assert!(fetch.starts_with(&["run_id", "batch"]), "{fetch:?}");
        let finalize = contract_fields::<FinalizeRunInput>();
        for field in ["run_id", "batch_results", "lease_execution"] {
            assert!(finalize.contains(&field), "{field}: {finalize:?}");
        }
        let select = contract_fields::<SelectTickersInput>();
        for field in [
            "symbols",
            "max_concurrency",
            "register_tickers",
            "lease_execution",
        ] {
            assert!(select.contains(&field), "{field}: {select:?}");
        }
    }

    #[test]
    fn the_meant_field_is_suggested_only_where_obvious() {
        let fields = [
            "symbols",
            "start_date",
            "max_concurrency",
            "run_id",
            "batch",
        ];
        let meant = |key: &str| meant(key, fields.iter().copied());
        assert_eq!(meant("symbol"), Some("symbols"));
        assert_eq!(meant("max_concurency"), Some("max_concurrency"));
        assert_eq!(meant("startDate"), Some("start_date"));
        assert_eq!(meant("RUN-ID"), Some("run_id"));
        assert_eq!(meant("batchs"), Some("batch"));
        assert_eq!(meant("start"), None);
        assert_eq!(meant("tickers"), None);
        assert_eq!(meant("bat"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
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
