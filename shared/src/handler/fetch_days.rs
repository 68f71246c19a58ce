//! fetch-batch for a grouped run (`Strategy::Grouped`): the batch is a range of days, and each
//! day is one request to Polygon's grouped daily endpoint, which lists one bar of every US stock.
//!
//! A day is claimed with `FOR UPDATE SKIP LOCKED` (`backfill_day`), fetched, and in one
//! transaction the run's tickers' bars of that day are upserted, each ticker's inserted and
//! updated counts are added to its `backfill_progress` row (the upsert's own counts, so a day
//! fetched again adds nothing), and the day is marked done. In the transaction that finishes the
//! run's last day, the tickers are settled: `success` for each one some day listed, `failed` /
//! `NotListedByProvider` for the others. The loop over the days, their 429s and transient
//! faults, the deadline and the answer are the per-ticker fetch's own ([`super::fetch_batch`]):
//! only what a day is and how one is stored are here.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use chrono::NaiveDate;
use tokio_postgres::Client;
use tracing::{info, warn, Instrument};

use super::fetch_batch::{
    ask_provider, rate_limit_message, BatchUnits, ProviderRequest, Turn, UnitResult,
};
use super::App;
use crate::contract::FetchBatchOutput;
use crate::db::progress::StatusCounts;
use crate::db::runs::RunRecord;
use crate::db::{days, prices, progress};
use crate::error::BackfillError;
use crate::model::{Bar, ProviderKind, Symbol};
use crate::provider::polygon::grouped::{new_york_midnight, GroupedDay};
use crate::provider::polygon::PolygonProvider;
use crate::provider::ProviderError;

impl App {
    /// Works on a grouped run's batch of days until it is drained, rate limited, out of patience
    /// with a transient fault, or `stop_at` is near; at least one day is attempted per call.
    pub(crate) async fn fetch_days(
        &self,
        run: RunRecord,
        batch: i32,
        stop_at: tokio::time::Instant,
    ) -> Result<FetchBatchOutput, BackfillError> {
        if run.provider != ProviderKind::Polygon {
            return Err(BackfillError::InvalidInput(format!(
                "run {} is a grouped run on {}, which has no grouped daily endpoint",
                run.run_id, run.provider
            )));
        }
        // Builds the shared adapter (and its pacing) on first use, then takes it as Polygon's.
        self.provider(ProviderKind::Polygon).await?;
        let polygon: Arc<PolygonProvider> = self.polygon.get().cloned().ok_or_else(|| {
            BackfillError::ConfigurationError("the polygon adapter is not available".into())
        })?;
        let tickers: HashSet<Symbol> = {
            let client = self.db().await?;
            progress::unsettled(&**client, &run.run_id)
                .await?
                .into_iter()
                .collect()
        };
        let days = Days {
            app: self,
            run: &run,
            batch,
            polygon: &polygon,
            tickers: &tickers,
            stop_at,
        };
        self.work_batch(&days, run.run_id.clone(), batch, stop_at)
            .await
    }
}

/// A grouped run's batch: its days, each one grouped daily request.
#[derive(Clone, Copy)]
struct Days<'a> {
    app: &'a App,
    run: &'a RunRecord,
    batch: i32,
    polygon: &'a PolygonProvider,
    /// The run's tickers not settled yet: a day's answer is kept for these only.
    tickers: &'a HashSet<Symbol>,
    stop_at: tokio::time::Instant,
}

impl BatchUnits for Days<'_> {
    type Key = NaiveDate;
    const NOUN: &'static str = "day";

    /// A grouped batch holds days, not tickers: the ticker counts are the run's.
    async fn standing(&self, client: &Client) -> Result<(i64, StatusCounts), BackfillError> {
        let run_id = &self.run.run_id;
        let days_left = days::pending(client, run_id, Some(self.batch)).await?;
        Ok((days_left, progress::counts(client, run_id, None).await?))
    }

    fn log_finished(&self, answer: &FetchBatchOutput, finished: i64, left: i64) {
        let status = answer.status.as_str();
        info!(
            strategy = "grouped",
            rate_limit_round = answer.rate_limit_round,
            status,
            retry_after_seconds = answer.retry_after_seconds,
            days_attempted = answer.attempted,
            days_done = finished,
            days_left = left,
            records_inserted = answer.records_inserted,
            records_updated = answer.records_updated,
            pending = answer.pending,
            failed = answer.failed,
            success = answer.success,
            "batch invocation finished"
        );
    }

    /// Claims the batch's next day, fetches it, and commits what became of it (the day's bars,
    /// the tickers' counts and the day's `done` together).
    async fn turn(
        &self,
        tried: &[NaiveDate],
        patience: Duration,
    ) -> Result<Turn<NaiveDate>, BackfillError> {
        let Days {
            app,
            run,
            batch,
            polygon,
            tickers,
            stop_at,
        } = *self;
        let run_id = &run.run_id;
        let mut client = app.db().await?;
        let tx = client.transaction().await?;
        let Some(day) = days::claim_next(&*tx, run_id, batch, tried).await? else {
            drop(tx);
            if days::held_elsewhere(&**client, run_id, batch, tried).await? > 0 {
                return Ok(Turn::HeldElsewhere);
            }
            return Ok(Turn::Drained);
        };
        let span = tracing::info_span!("day", day = %day);
        let clock = StdInstant::now();
        let mut request = GroupedDaily { polygon, day };
        let answer = ask_provider(app.config(), patience, stop_at, &mut request)
            .instrument(span.clone())
            .await;
        let grouped = match answer {
            Ok(grouped) => grouped,
            Err(ProviderError::RateLimited { retry_after }) => {
                let message = rate_limit_message(run.provider, retry_after);
                days::record_problem(&*tx, run_id, day, "RateLimited", &message).await?;
                tx.commit().await?;
                span.in_scope(|| {
                    warn!(
                        retry_after_s = retry_after.map(|d| d.as_secs()),
                        "rate limited; stopping the batch"
                    )
                });
                return Ok(Turn::Unit(day, UnitResult::RateLimited(retry_after)));
            }
            Err(ProviderError::Throttled { wait }) => {
                // Nothing was sent: the day stays as it was, for the next invocation.
                drop(tx);
                return Ok(Turn::Unit(day, UnitResult::Throttled(wait)));
            }
            Err(e) if e.is_transient() => {
                days::record_problem(&*tx, run_id, day, e.name(), &e.to_string()).await?;
                tx.commit().await?;
                span.in_scope(|| warn!(error_name = e.name(), error = %e, "transient provider faults outlasted this invocation's patience"));
                return Ok(Turn::Unit(day, UnitResult::Unavailable(e)));
            }
            Err(e) => {
                // A refused key, or an answer that breaks the contract: the same request gets the
                // same answer, and skipping the day would mark tickers success without its bars.
                // The day stays pending with the reason; the batch fails by name.
                days::record_problem(&*tx, run_id, day, e.name(), &e.to_string()).await?;
                tx.commit().await?;
                span.in_scope(
                    || warn!(error_name = e.name(), error = %e, "grouped daily request failed"),
                );
                return Err(e.into());
            }
        };
        let key = new_york_midnight(day).ok_or_else(|| {
            BackfillError::InvalidInput(format!("{day} has no midnight in New York"))
        })?;
        let stored = store_day(&*tx, run, &grouped, tickers, key).await?;
        days::mark_done(&*tx, run_id, day, stored.listed, stored.inserted).await?;
        // The run's last day settles its tickers, in the same transaction.
        days::lock_completion(&*tx, run_id).await?;
        let settled = if days::pending(&*tx, run_id, None).await? == 0 {
            Some(progress::settle_grouped(&*tx, run_id, &run.range.to_string()).await?)
        } else {
            None
        };
        tx.commit().await?;
        span.in_scope(|| {
            info!(
                listed = stored.listed,
                provider_results = grouped.bars.len(),
                skipped_results = grouped.skipped,
                inserted = stored.inserted,
                updated = stored.updated,
                requests = grouped.requests,
                elapsed_ms = clock.elapsed().as_millis() as u64,
                "day fetched"
            );
            if let Some((success, failed)) = settled {
                info!(success, failed, "every day done; tickers settled");
            }
        });
        Ok(Turn::Unit(
            day,
            UnitResult::Done {
                inserted: stored.inserted,
                updated: stored.updated,
            },
        ))
    }
}

/// The grouped daily request for one day.
struct GroupedDaily<'a> {
    polygon: &'a PolygonProvider,
    day: NaiveDate,
}

impl ProviderRequest for GroupedDaily<'_> {
    type Answer = GroupedDay;

    fn send(&mut self) -> impl Future<Output = Result<GroupedDay, ProviderError>> + Send {
        self.polygon.grouped_daily(self.day)
    }
}

/// What one day's answer wrote for the run's tickers.
struct StoredDay {
    listed: i64,
    inserted: i64,
    updated: i64,
}

/// Keeps the run's tickers of a grouped answer, upserts their bars in one statement, and adds
/// each one's counts to its progress row.
async fn store_day(
    tx: &impl tokio_postgres::GenericClient,
    run: &RunRecord,
    grouped: &GroupedDay,
    tickers: &HashSet<Symbol>,
    key: chrono::DateTime<chrono::Utc>,
) -> Result<StoredDay, BackfillError> {
    let bars: Vec<(Symbol, Bar)> = grouped
        .bars
        .iter()
        .filter_map(|(ticker, bar)| {
            // Polygon's spelling (`BRK.B`) is ours; a ticker we cannot spell is none of ours.
            let symbol = Symbol::parse(ticker).ok()?;
            tickers.contains(&symbol).then(|| (symbol, bar.clone()))
        })
        .collect();
    let counts = prices::upsert_symbol_bars(tx, &bars).await?;
    let listed: Vec<(String, i64, i64)> = bars
        .iter()
        .map(|(symbol, _)| {
            let c = counts.get(symbol.as_str()).copied().unwrap_or_default();
            (symbol.to_string(), c.inserted, c.updated)
        })
        .collect();
    progress::record_grouped_day(tx, &run.run_id, key, &listed).await?;
    Ok(StoredDay {
        listed: listed.len() as i64,
        inserted: listed.iter().map(|(_, i, _)| i).sum(),
        updated: listed.iter().map(|(_, _, u)| u).sum(),
    })
}

/// Calls made by a grouped run ÷ the fewest it could make: `calls` (grouped requests the
/// provider answered, e.g. market-sim's request log under `/v2/aggs/grouped/`) over the weekdays
/// of the window (one call per trading day; exchange holidays are weekdays too, so they count in
/// both). 1.0 is optimal; retries after 5xx and 429s raise it.
pub fn grouped_call_ratio(calls: u64, range: &crate::model::DateRange) -> f64 {
    let minimum = crate::model::weekdays(range).len().max(1);
    calls as f64 / minimum as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DateRange;

    #[test]
    fn the_call_ratio_is_calls_over_weekdays() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let range = DateRange::new(d("2026-03-09"), d("2026-03-15")).unwrap();
        assert_eq!(grouped_call_ratio(5, &range), 1.0);
        assert_eq!(grouped_call_ratio(6, &range), 1.2);
    }
}
