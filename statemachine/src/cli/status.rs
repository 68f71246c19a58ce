//! `backfill status [RUN_ID] [--json]`: SQL, plus a look at Step Functions only when a run is
//! still `running` (to close one whose execution has ended); it works without AWS.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use shared::contract::{FinalizeRunOutput, TickerError};
use shared::db::{progress, runs};
use shared::model::{Interval, ProviderKind, RunId, Selection};
use tokio_postgres::GenericClient;

use super::render::{self, Align};
use super::run_ref::RunRef;
use super::session::Session;
use super::StatusArgs;
use crate::error::{exit, CliError};
use crate::executions::Connect;
use crate::store::{self, BatchProblem};

/// Problems listed per category in the text report (JSON lists them all).
const TEXT_LIST_LIMIT: usize = 20;
/// Enough for any run (select-tickers caps explicit lists at 10,000 symbols).
const ALL_PROBLEMS: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TickerCounts {
    /// Tickers in the run's plan.
    pub requested: i64,
    pub success: i64,
    pub failed: i64,
    pub rate_limited: i64,
    pub pending: i64,
    /// Tickers already `success` when the latest execution (a resume) started.
    pub skipped: i64,
}

impl TickerCounts {
    /// `N requested: … (K already done before {execution})`.
    pub fn describe(&self, execution: &str) -> String {
        format!(
            "{} requested: {} success, {} failed, {} rate_limited, {} pending ({} already done before {execution})",
            self.requested, self.success, self.failed, self.rate_limited, self.pending, self.skipped
        )
    }
}

impl From<&FinalizeRunOutput> for TickerCounts {
    fn from(s: &FinalizeRunOutput) -> Self {
        TickerCounts {
            requested: s.requested,
            success: s.success,
            failed: s.failed,
            rate_limited: s.rate_limited,
            pending: s.pending,
            skipped: s.skipped,
        }
    }
}

/// One run in detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    /// `running`, `succeeded`, `completed_with_failures` or `incomplete`.
    pub status: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub days: i64,
    pub interval: Interval,
    pub provider: ProviderKind,
    pub selection: Selection,
    pub batch_size: i32,
    /// Batch numbers handed out over every execution of the run.
    pub batches: i32,
    pub executions: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub tickers: TickerCounts,
    pub records_inserted: i64,
    pub records_updated: i64,
    pub failed_tickers: Vec<TickerError>,
    pub rate_limited_tickers: Vec<TickerError>,
    /// Batches given up on (`failed`) or whose last invocation raised (`error`).
    pub failed_batches: Vec<BatchProblem>,
}

/// One line of the recent-runs table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub interval: Interval,
    pub provider: ProviderKind,
    pub tickers: i64,
    pub success: i64,
    pub failed: i64,
    pub rate_limited: i64,
    pub pending: i64,
    pub records_inserted: i64,
    pub records_updated: i64,
}

/// `connect` gives the Step Functions port, asked for only when a running run's execution must
/// be checked.
pub async fn run(
    args: &StatusArgs,
    state_machine_arn: Option<&str>,
    connect: impl Connect,
    session: &mut Session<'_>,
) -> Result<u8, CliError> {
    let target = args.run_id.as_deref().map(RunRef::parse).transpose()?;
    let mut client = session.connect().await?;
    let out = session.out();
    match target {
        Some(target) => {
            let run_id = target.resolve(&client).await?;
            if let Some(arn) = state_machine_arn {
                close_if_abandoned(&mut client, arn, &run_id, connect).await;
            }
            let report = load_report(&client, &run_id).await?;
            if args.json {
                writeln!(out, "{}", to_json(&report)?)?;
            } else {
                write!(out, "{}", render_report(&report))?;
            }
        }
        None => {
            let rows = recent_runs(&client, args.limit.max(1)).await?;
            if args.json {
                writeln!(out, "{}", to_json(&serde_json::json!({ "runs": rows }))?)?;
            } else if rows.is_empty() {
                writeln!(out, "no runs yet: start one with `backfill start`")?;
            } else {
                write!(out, "{}", render_runs(&rows))?;
            }
        }
    }
    Ok(exit::OK)
}

/// A run left `running` by an execution that has ended (it died, or FinalizeRun could not reach
/// the database) is closed truthfully here, so that no finished execution leaves its run open.
/// Best effort: status works without AWS, and says so when it cannot look.
async fn close_if_abandoned(
    client: &mut tokio_postgres::Client,
    arn: &str,
    run_id: &RunId,
    connect: impl Connect,
) {
    let closed = async {
        let run = runs::get(&*client, run_id).await?;
        if run.lease_execution.is_none() || run.status != shared::contract::RunStatus::Running {
            return Ok(());
        }
        let executions = connect.connect().await?;
        let tx = client.transaction().await?;
        let run = runs::get_for_update(&tx, run_id).await?;
        super::lease::reconcile(&tx, &executions, arn, &run).await?;
        tx.commit().await?;
        Ok::<_, CliError>(())
    }
    .await;
    if let Err(e) = closed {
        eprintln!("note: could not check the execution working on run {run_id}: {e}");
    }
}

pub fn to_json(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Other(format!("cannot encode JSON: {e}")))
}

pub async fn load_report(
    client: &impl GenericClient,
    run_id: &RunId,
) -> Result<RunReport, CliError> {
    let run = runs::get(client, run_id).await?;
    let counts = progress::counts(client, run_id, None).await?;
    let (failed_tickers, rate_limited_tickers) = progress::problems(client, run_id, ALL_PROBLEMS)
        .await?
        .into_iter()
        .partition(|t| t.status == "failed");
    let failed_batches = store::batch_problems(client, run_id).await?;
    Ok(RunReport {
        run_id: run.run_id.to_string(),
        status: run.status.as_str().to_string(),
        start_date: run.range.start(),
        end_date: run.range.end(),
        days: run.range.days(),
        interval: run.interval,
        provider: run.provider,
        selection: run.selection,
        batch_size: run.batch_size,
        batches: run.batch_count,
        executions: run.executions,
        created_at: run.created_at,
        updated_at: run.updated_at,
        finished_at: run.finished_at,
        tickers: TickerCounts {
            requested: counts.total(),
            success: counts.success,
            failed: counts.failed,
            rate_limited: counts.rate_limited,
            pending: counts.pending,
            skipped: i64::from(run.skipped),
        },
        records_inserted: counts.records_inserted,
        records_updated: counts.records_updated,
        failed_tickers,
        rate_limited_tickers,
        failed_batches,
    })
}

pub async fn recent_runs(client: &impl GenericClient, limit: i64) -> Result<Vec<RunRow>, CliError> {
    let runs = runs::recent(client, limit).await?;
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    let counts = store::counts_by_run(client, &ids).await?;
    Ok(runs
        .iter()
        .map(|r| {
            let c = counts.get(r.run_id.as_str()).copied().unwrap_or_default();
            RunRow {
                run_id: r.run_id.to_string(),
                status: r.status.as_str().to_string(),
                created_at: r.created_at,
                start_date: r.range.start(),
                end_date: r.range.end(),
                interval: r.interval,
                provider: r.provider,
                tickers: c.total(),
                success: c.success,
                failed: c.failed,
                rate_limited: c.rate_limited,
                pending: c.pending,
                records_inserted: c.records_inserted,
                records_updated: c.records_updated,
            }
        })
        .collect())
}

pub fn render_runs(rows: &[RunRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.status.clone(),
                render::time_short(&r.created_at),
                format!("{}..{}", r.start_date, r.end_date),
                r.interval.to_string(),
                r.provider.to_string(),
                r.tickers.to_string(),
                r.success.to_string(),
                r.failed.to_string(),
                r.rate_limited.to_string(),
                r.pending.to_string(),
            ]
        })
        .collect();
    render::table(&RUN_COLUMNS, &cells)
}

/// The recent-runs table's columns, in the order `render_runs` fills them.
const RUN_COLUMNS: [(&str, Align); 11] = [
    ("RUN ID", Align::Text),
    ("STATUS", Align::Text),
    ("CREATED (UTC)", Align::Text),
    ("WINDOW", Align::Text),
    ("INTERVAL", Align::Text),
    ("PROVIDER", Align::Text),
    ("TICKERS", Align::Number),
    ("SUCCESS", Align::Number),
    ("FAILED", Align::Number),
    ("RATE_LIMITED", Align::Number),
    ("PENDING", Align::Number),
];

pub fn render_report(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}", r.run_id, r.status);
    let t = &r.tickers;
    let finished = r
        .finished_at
        .as_ref()
        .map_or_else(|| "-".to_string(), render::time);
    out.push_str(&render::fields(&[
        (
            "window",
            format!(
                "{} .. {} ({} days, inclusive), interval {}, provider {}",
                r.start_date, r.end_date, r.days, r.interval, r.provider
            ),
        ),
        ("selection", render::selection(&r.selection)),
        (
            "batches",
            format!(
                "{} handed out, {} tickers each; {} execution(s)",
                r.batches, r.batch_size, r.executions
            ),
        ),
        (
            "created",
            format!(
                "{}   updated {}   finished {finished}",
                render::time(&r.created_at),
                render::time(&r.updated_at)
            ),
        ),
        ("tickers", t.describe("the latest execution")),
        (
            "rows",
            render::rows_written(r.records_inserted, r.records_updated),
        ),
    ]));
    let see = format!("`backfill status {} --json` lists them all", r.run_id);
    let tickers = |list: &[TickerError]| -> Vec<Vec<String>> {
        list.iter()
            .map(|e| {
                let [name, message] =
                    render::error_cells(e.error_name.as_deref(), e.message.as_deref());
                vec![e.symbol.clone(), name, message]
            })
            .collect()
    };
    for (title, list) in [
        ("failed tickers", &r.failed_tickers),
        ("rate-limited tickers", &r.rate_limited_tickers),
    ] {
        out.push_str(&render::problem_table(
            title,
            &tickers(list),
            TEXT_LIST_LIMIT,
            &see,
        ));
    }
    let batches: Vec<Vec<String>> = r
        .failed_batches
        .iter()
        .map(|b| {
            let [name, message] =
                render::error_cells(b.error_name.as_deref(), b.message.as_deref());
            vec![
                format!("batch {}", b.batch),
                b.last_status.clone(),
                name,
                message,
            ]
        })
        .collect();
    out.push_str(&render::problem_list("failed batches", &batches));
    if t.pending + t.rate_limited > 0 && r.status != "running" {
        let _ = writeln!(
            out,
            "{} tickers left to fetch: backfill resume {}",
            t.pending + t.rate_limited,
            r.run_id
        );
    }
    out
}
