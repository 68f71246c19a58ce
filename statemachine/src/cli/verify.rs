//! `backfill verify RUN_ID`: every `success` ticker of the run has bars in the run's window.

use serde::Serialize;
use shared::db::runs;

use super::run_ref::RunRef;
use super::session::Session;
use super::{status, VerifyArgs};
use crate::error::{exit, CliError};
use crate::store::{self, StoredTicker};

#[derive(Debug, Serialize)]
struct Verification {
    run_id: String,
    start_date: chrono::NaiveDate,
    end_date: chrono::NaiveDate,
    success_tickers: usize,
    ok: bool,
    /// `success` tickers without a single bar in the window.
    missing: Vec<String>,
    tickers: Vec<StoredTicker>,
}

pub async fn run(args: &VerifyArgs, session: &mut Session<'_>) -> Result<u8, CliError> {
    let target = RunRef::parse(&args.run_id)?;
    let client = session.connect().await?;
    let run_id = target.resolve(&client).await?;
    let run = runs::get(&client, &run_id).await?;
    let (from, to) = run.range.stored_window(run.interval);
    let tickers = store::success_tickers_rows(&client, &run_id, from, to).await?;
    let missing: Vec<String> = tickers
        .iter()
        .filter(|t| t.rows_in_window == 0)
        .map(|t| t.symbol.clone())
        .collect();
    let v = Verification {
        run_id: run_id.to_string(),
        start_date: run.range.start(),
        end_date: run.range.end(),
        success_tickers: tickers.len(),
        ok: missing.is_empty(),
        missing,
        tickers,
    };
    if args.json {
        writeln!(session.out(), "{}", status::to_json(&v)?)?;
    } else {
        let rows: i64 = v.tickers.iter().map(|t| t.rows_in_window).sum();
        writeln!(
            session.out(),
            "run {}: {} success tickers, {rows} rows in stock_price_history for {} .. {}",
            v.run_id,
            v.success_tickers,
            v.start_date,
            v.end_date
        )?;
        if v.ok {
            writeln!(
                session.out(),
                "ok: every success ticker has bars in the window"
            )?;
        } else {
            writeln!(
                session.out(),
                "{} success tickers have no bars in the window: {}",
                v.missing.len(),
                v.missing.join(", ")
            )?;
        }
    }
    Ok(if v.ok { exit::OK } else { exit::FAILURE })
}
