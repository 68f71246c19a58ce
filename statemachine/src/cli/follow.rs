//! `--wait`: follows an execution until it ends (DescribeExecution + SQL about once a second),
//! with a progress bar on a terminal and plain lines otherwise, then prints the summary and
//! decides the exit code.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use shared::contract::{FinalizeRunOutput, RunStatus};
use shared::db::progress::{self, StatusCounts};
use shared::model::RunId;
use tokio_postgres::Client;

use super::session::Session;
use super::{render, status};
use crate::error::{exit, CliError};
use crate::executions::{ExecutionInfo, ExecutionStatus, Executions};
use crate::store;

const POLL: Duration = Duration::from_secs(1);
/// Without a terminal, a progress line at most this often (and whenever the execution's status changes).
const LINE_EVERY: Duration = Duration::from_secs(10);

/// A database connection for the progress counts, when one is configured; following works
/// without it (the execution's status and output only).
pub async fn optional_db(session: &Session<'_>) -> Option<Client> {
    if session.database().is_none() {
        eprintln!(
            "note: DATABASE_URL is not set: following the execution without ticker counts \
             (`backfill status RUN_ID` shows them once the database is reachable)"
        );
        return None;
    }
    match session.connect().await {
        Ok(client) => Some(client),
        Err(e) => {
            eprintln!("warning: following without ticker counts: {e}");
            None
        }
    }
}

/// What the database says about the run right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Snapshot {
    counts: StatusCounts,
    waiting_batches: i64,
}

async fn snapshot(client: &Client, run_id: &RunId) -> Result<Snapshot, CliError> {
    Ok(Snapshot {
        counts: progress::counts(client, run_id, None).await?,
        waiting_batches: store::waiting_batches(client, run_id).await?,
    })
}

enum View {
    /// A terminal: a spinner until the run's tickers are known, then a bar over them.
    Bar { bar: ProgressBar, counting: bool },
    /// No terminal (CI, a pipe): a line when something changed, at most every [`LINE_EVERY`].
    Lines { last: Option<(Instant, String)> },
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

impl View {
    fn new() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(style("{spinner} [{elapsed_precise}] {msg}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            View::Bar {
                bar,
                counting: false,
            }
        } else {
            View::Lines { last: None }
        }
    }

    fn update(&mut self, info: &ExecutionInfo, snap: Option<&Snapshot>, started: Instant) {
        let message = describe(info.status, snap);
        match self {
            View::Bar { bar, counting } => {
                if let Some(s) = snap.filter(|s| s.counts.total() > 0) {
                    if !*counting {
                        bar.set_style(style(
                            "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} tickers done  {msg}",
                        ));
                        *counting = true;
                    }
                    bar.set_length(s.counts.total() as u64);
                    bar.set_position((s.counts.success + s.counts.failed).max(0) as u64);
                }
                bar.set_message(message);
            }
            View::Lines { last } => {
                let line = match snap {
                    Some(s) => format!(
                        "{}/{} tickers done  {message}",
                        s.counts.success + s.counts.failed,
                        s.counts.total()
                    ),
                    None => message,
                };
                let due = match last {
                    None => true,
                    Some((at, previous)) => {
                        at.elapsed() >= LINE_EVERY && *previous != line
                            || !previous.contains(info.status.as_str())
                    }
                };
                if due {
                    eprintln!(
                        "[{}] {line}",
                        render::duration(started.elapsed().as_secs_f64())
                    );
                    *last = Some((Instant::now(), line));
                }
            }
        }
    }

    fn finish(self) {
        if let View::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

fn describe(status: ExecutionStatus, snap: Option<&Snapshot>) -> String {
    let Some(s) = snap else {
        return status.as_str().to_string();
    };
    let c = &s.counts;
    let mut msg = format!(
        "{} · rows {}",
        status.as_str(),
        render::rows_written(c.records_inserted, c.records_updated)
    );
    if c.failed > 0 {
        let _ = write!(msg, " · {} failed", c.failed);
    }
    if c.rate_limited > 0 || s.waiting_batches > 0 {
        let _ = write!(
            msg,
            " · waiting out rate limits: {} tickers, {} batches",
            c.rate_limited, s.waiting_batches
        );
    }
    msg
}

/// Follows `execution_arn` until it ends; returns the exit code (0 only when the run finished
/// with every ticker `success`).
pub async fn follow(
    executions: &impl Executions,
    execution_arn: &str,
    run_id: &RunId,
    db: Option<&Client>,
    out: &mut (dyn Write + Send),
) -> Result<u8, CliError> {
    let started = Instant::now();
    let mut view = View::new();
    let mut last_snapshot = None;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let info = loop {
        let info = executions.describe_execution(execution_arn).await?;
        if let Some(client) = db {
            // A hiccup in the counts must not stop the follow; the last counts stay on screen.
            if let Ok(snap) = snapshot(client, run_id).await {
                last_snapshot = Some(snap);
            }
        }
        view.update(&info, last_snapshot.as_ref(), started);
        if info.status.is_terminal() {
            break info;
        }
        tokio::select! {
            _ = &mut interrupt => {
                view.finish();
                eprintln!(
                    "stopped following; the execution goes on. Check it with: backfill status {run_id}"
                );
                return Ok(exit::INTERRUPTED);
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    };
    view.finish();
    let elapsed = match (info.started_at, info.stopped_at) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => started.elapsed().as_secs_f64(),
    };
    report_end(&info, elapsed, run_id, db, out).await
}

/// Prints how the execution ended and returns the exit code.
async fn report_end(
    info: &ExecutionInfo,
    elapsed_seconds: f64,
    run_id: &RunId,
    db: Option<&Client>,
    out: &mut (dyn Write + Send),
) -> Result<u8, CliError> {
    writeln!(
        out,
        "execution {} after {}",
        info.status.as_str(),
        render::duration(elapsed_seconds)
    )?;
    if info.status == ExecutionStatus::Succeeded {
        let output = info.output.as_deref().unwrap_or("null");
        match serde_json::from_str::<FinalizeRunOutput>(output) {
            Ok(summary) => {
                write!(out, "{}", render_summary(&summary))?;
                return Ok(
                    if summary.status == RunStatus::Succeeded && summary.failed == 0 {
                        exit::OK
                    } else {
                        exit::FAILURE
                    },
                );
            }
            Err(e) => {
                writeln!(
                    out,
                    "the execution's output is not a finalize-run summary ({e}):\n{output}"
                )?;
            }
        }
    } else {
        writeln!(out, "error: {}", info.error.as_deref().unwrap_or("-"))?;
        writeln!(out, "cause: {}", info.cause.as_deref().unwrap_or("-"))?;
    }
    if let Some(client) = db {
        match status::load_report(client, run_id).await {
            Ok(report) => write!(out, "{}", status::render_report(&report))?,
            Err(CliError::RunNotFound(_)) => {
                writeln!(out, "run {run_id} was not created: nothing was written")?
            }
            Err(e) => eprintln!("warning: cannot read the run from the database: {e}"),
        }
    }
    Ok(exit::FAILURE)
}

/// The finalize-run output (the execution's output) as text.
pub fn render_summary(s: &FinalizeRunOutput) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}", s.run_id, s.status.as_str());
    out.push_str(&render::fields(&[
        (
            "window",
            format!(
                "{} .. {}, interval {}, provider {}",
                s.start_date, s.end_date, s.interval, s.provider
            ),
        ),
        (
            "tickers",
            status::TickerCounts::from(s).describe("this execution"),
        ),
        (
            "rows",
            render::rows_written(s.records_inserted, s.records_updated),
        ),
    ]));
    let problems: Vec<Vec<String>> = s
        .errors
        .iter()
        .map(|e| {
            let [name, message] =
                render::error_cells(e.error_name.as_deref(), e.message.as_deref());
            vec![e.symbol.clone(), e.status.clone(), name, message]
        })
        .collect();
    out.push_str(&render::problem_list("problems", &problems));
    for b in &s.failed_batches {
        let [name, message] = render::error_cells(b.error_name.as_deref(), b.message.as_deref());
        let _ = writeln!(out, "failed batch {}: {name} {message}", b.batch);
    }
    if s.pending + s.rate_limited > 0 {
        let _ = writeln!(out, "resume it with: backfill resume {}", s.run_id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_waits() {
        let snap = Snapshot {
            counts: StatusCounts {
                pending: 3,
                success: 5,
                failed: 1,
                rate_limited: 2,
                records_inserted: 120,
                records_updated: 4,
            },
            waiting_batches: 1,
        };
        assert_eq!(
            describe(ExecutionStatus::Running, Some(&snap)),
            "RUNNING · rows 120 inserted, 4 updated · 1 failed · waiting out rate limits: 2 tickers, 1 batches"
        );
        assert_eq!(describe(ExecutionStatus::Running, None), "RUNNING");
    }

    #[test]
    fn the_summary_lists_problem_tickers_and_failed_batches() {
        let summary: FinalizeRunOutput = serde_json::from_value(serde_json::json!({
            "run_id": "backfill-20260312-101500-0a1b2c3d", "status": "incomplete",
            "requested": 3, "success": 1, "failed": 1, "skipped": 0, "rate_limited": 1,
            "pending": 0, "records_inserted": 42, "records_updated": 3,
            "errors": [
                {"symbol": "NOPE", "status": "failed", "error_name": "UnknownSymbol",
                 "message": "Yahoo does not\n know NOPE"},
                {"symbol": "IBM", "status": "rate_limited", "error_name": null, "message": null}
            ],
            "failed_batches": [{"batch": 4, "error_name": null, "message": "boom"}],
            "start_date": "2026-03-09", "end_date": "2026-03-11",
            "interval": "1h", "provider": "yahoo"
        }))
        .unwrap();
        assert_eq!(
            render_summary(&summary),
            "run backfill-20260312-101500-0a1b2c3d  incomplete\n\
             \x20 window   2026-03-09 .. 2026-03-11, interval 1h, provider yahoo\n\
             \x20 tickers  3 requested: 1 success, 1 failed, 1 rate_limited, 0 pending (0 already done before this execution)\n\
             \x20 rows     42 inserted, 3 updated\n\
             problems (2):\n\
             \x20 NOPE  failed  UnknownSymbol  Yahoo does not know NOPE\n\
             \x20 IBM  rate_limited  -  \n\
             failed batch 4: - boom\n\
             resume it with: backfill resume backfill-20260312-101500-0a1b2c3d\n"
        );
    }
}
