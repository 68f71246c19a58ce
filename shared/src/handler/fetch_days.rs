//! fetch-batch for a grouped run (`Strategy::Grouped`): the batch is a range of days, and each
//! day is one request to Polygon's grouped daily endpoint, which lists one bar of every US stock.
//!
//! A day is claimed with `FOR UPDATE SKIP LOCKED` (`backfill_day`), fetched, and in one
//! transaction the run's tickers' bars of that day are upserted, each ticker's inserted and
//! updated counts are added to its `backfill_progress` row (the upsert's own counts, so a day
//! fetched again adds nothing), and the day is marked done. In the transaction that finishes the
//! run's last day, the tickers are settled: `success` for each one some day listed, `failed` /
//! `NotListedByProvider` for the others. 429s, transient faults and the deadline are handled as
//! the per-ticker fetch handles them, and the answer is the same `FetchBatchOutput`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use chrono::NaiveDate;
use tracing::{info, warn, Instrument};

use super::fetch_batch::{fault_backoff, patient};
use super::App;
use crate::config::Config;
use crate::contract::{BatchStatus, FetchBatchOutput};
use crate::db::runs::RunRecord;
use crate::db::{batches, days, prices, progress};
use crate::error::BackfillError;
use crate::model::{Bar, ProviderKind, Symbol};
use crate::provider::polygon::{new_york_midnight, GroupedDay, PolygonProvider};
use crate::provider::ProviderError;

/// How often to look again when the batch's remaining days are held by another invocation.
const LOCK_POLL: Duration = Duration::from_secs(1);
/// 429s for one day before the invocation gives up and the state machine waits (as for a
/// per-ticker page: the shared budget already waits out each one's pause).
const MAX_429_PER_DAY: u32 = 3;

/// Why the day loop ended.
enum Stop {
    Drained,
    Deadline,
    /// The provider answered 429 (`by_provider`), or the shared budget's next slot is far.
    RateLimited {
        retry_after: Option<Duration>,
        by_provider: bool,
    },
    /// Transient faults outlasted the patience for two days in a row.
    Unavailable,
}

/// What became of one claimed day.
enum DayResult {
    Done {
        inserted: i64,
        updated: i64,
    },
    RateLimited(Option<Duration>),
    /// The shared budget has no slot soon enough: nothing was sent, the day is untouched.
    Throttled(Duration),
    /// Transient faults on every try within the patience; the day stays pending.
    Unavailable(ProviderError),
}

enum Turn {
    Day(NaiveDate, DayResult),
    Drained,
    HeldElsewhere,
}

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

        let mut tried: Vec<NaiveDate> = Vec::new();
        let (mut inserted, mut updated, mut finished, mut attempted) = (0i64, 0i64, 0i64, 0i64);
        let mut db_fault: Option<(StdInstant, u32)> = None;
        let mut fault: Option<(String, String)> = None;
        let mut faulted_in_a_row = 0u32;
        let stop = loop {
            if attempted > 0 && tokio::time::Instant::now() >= stop_at {
                break Stop::Deadline;
            }
            // After a day used up the patience, the next one gets a single try.
            let patience = if faulted_in_a_row == 0 {
                self.config().fault_patience
            } else {
                Duration::ZERO
            };
            let turn = self
                .day_turn(&run, batch, &tried, &polygon, &tickers, stop_at, patience)
                .await;
            let turn = match turn {
                Ok(turn) => {
                    db_fault = None;
                    turn
                }
                Err(e @ BackfillError::DatabaseUnavailable(_)) => {
                    let (since, faults) = db_fault.get_or_insert((StdInstant::now(), 0));
                    *faults += 1;
                    let wait = fault_backoff(self.config(), *faults, &mut rand::rng());
                    if !patient(*since, wait, self.config().fault_patience, stop_at) {
                        return Err(e);
                    }
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "database connection lost; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match turn {
                Turn::Drained => break Stop::Drained,
                Turn::HeldElsewhere => {
                    if tokio::time::Instant::now() + LOCK_POLL >= stop_at {
                        break Stop::Drained;
                    }
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Turn::Day(day, result) => {
                    attempted += 1;
                    tried.push(day);
                    match result {
                        DayResult::Done {
                            inserted: i,
                            updated: u,
                        } => {
                            inserted += i;
                            updated += u;
                            finished += 1;
                            faulted_in_a_row = 0;
                        }
                        DayResult::RateLimited(retry_after) => {
                            break Stop::RateLimited {
                                retry_after,
                                by_provider: true,
                            }
                        }
                        DayResult::Throttled(wait) => {
                            break Stop::RateLimited {
                                retry_after: Some(wait),
                                by_provider: false,
                            }
                        }
                        DayResult::Unavailable(e) => {
                            fault = Some((e.name().to_string(), e.to_string()));
                            faulted_in_a_row += 1;
                            if faulted_in_a_row >= 2 {
                                break Stop::Unavailable;
                            }
                        }
                    }
                }
            }
        };

        let client = self.db().await?;
        let run_id = run.run_id.clone();
        let days_left = days::pending(&**client, &run_id, Some(batch)).await?;
        let counts = progress::counts(&**client, &run_id, None).await?;
        let (mut status, provider_wait) = match &stop {
            Stop::RateLimited { retry_after, .. } => (BatchStatus::RateLimited, *retry_after),
            _ if days_left == 0 => (BatchStatus::Done, None),
            Stop::Unavailable => (BatchStatus::Unavailable, None),
            Stop::Drained if fault.is_some() => (BatchStatus::Unavailable, None),
            Stop::Drained | Stop::Deadline => (BatchStatus::Partial, None),
        };
        let record =
            batches::record_invocation(&**client, &run_id, batch, status.as_str(), finished > 0)
                .await?;
        if let (BatchStatus::Unavailable, Some((error_name, message))) = (status, &fault) {
            batches::note_fault(&**client, &run_id, batch, error_name, message).await?;
            if record.idle >= self.config().no_progress_timeout {
                let why = format!(
                    "no day of batch {batch} finished for {}s (NO_PROGRESS_TIMEOUT_SECONDS {}); \
                     the last fault was {error_name}: {message}",
                    record.idle.as_secs(),
                    self.config().no_progress_timeout.as_secs()
                );
                batches::mark_stalled(&**client, &run_id, batch, &why).await?;
                warn!(
                    idle_s = record.idle.as_secs(),
                    "no progress for too long; giving the batch up"
                );
                status = BatchStatus::Stalled;
            }
        }
        let retry_after_seconds = match status {
            // The wait the shared budget named (its next slot, or a 429's pause).
            BatchStatus::RateLimited => Some(
                provider_wait
                    .unwrap_or(self.config().rate_limit_pause)
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
            ),
            BatchStatus::Unavailable => Some(
                fault_backoff(
                    self.config(),
                    u32::try_from(record.fault_streak.max(1)).unwrap_or(1),
                    &mut rand::rng(),
                )
                .as_secs()
                .max(1),
            ),
            BatchStatus::Done | BatchStatus::Partial | BatchStatus::Stalled => None,
        };
        // As for per-ticker batches: only a 429 this invocation could not get past, with no day
        // finished, counts towards the state machine's max_rate_limit_rounds.
        let rate_limit_round = matches!(
            stop,
            Stop::RateLimited {
                by_provider: true,
                ..
            }
        ) && finished == 0;
        info!(
            strategy = "grouped",
            rate_limit_round,
            status = status.as_str(),
            retry_after_seconds,
            days_attempted = attempted,
            days_done = finished,
            days_left,
            records_inserted = inserted,
            records_updated = updated,
            pending = counts.pending,
            failed = counts.failed,
            success = counts.success,
            "batch invocation finished"
        );
        // A grouped batch holds days, not tickers: the ticker counts are the run's.
        Ok(FetchBatchOutput {
            run_id,
            batch,
            status,
            retry_after_seconds,
            rate_limit_round,
            success: counts.success,
            failed: counts.failed,
            rate_limited: counts.rate_limited,
            pending: counts.pending,
            records_inserted: inserted,
            records_updated: updated,
            attempted,
        })
    }

    /// One turn: claim the batch's next day, fetch it, and commit what became of it (the day's
    /// bars, the tickers' counts and the day's `done` together).
    #[allow(clippy::too_many_arguments)]
    async fn day_turn(
        &self,
        run: &RunRecord,
        batch: i32,
        tried: &[NaiveDate],
        polygon: &PolygonProvider,
        tickers: &HashSet<Symbol>,
        stop_at: tokio::time::Instant,
        patience: Duration,
    ) -> Result<Turn, BackfillError> {
        let run_id = &run.run_id;
        let mut client = self.db().await?;
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
        let answer = next_day(polygon, day, self.config(), patience, stop_at)
            .instrument(span.clone())
            .await;
        let grouped = match answer {
            Ok(grouped) => grouped,
            Err(ProviderError::RateLimited { retry_after }) => {
                let message = match retry_after {
                    Some(wait) => {
                        format!("rate limited by polygon; retry after {}s", wait.as_secs())
                    }
                    None => "rate limited by polygon (no Retry-After given)".to_string(),
                };
                days::record_problem(&*tx, run_id, day, "RateLimited", &message).await?;
                tx.commit().await?;
                span.in_scope(|| {
                    warn!(
                        retry_after_s = retry_after.map(|d| d.as_secs()),
                        "rate limited; stopping the batch"
                    )
                });
                return Ok(Turn::Day(day, DayResult::RateLimited(retry_after)));
            }
            Err(ProviderError::Throttled { wait }) => {
                // Nothing was sent: the day stays as it was, for the next invocation.
                drop(tx);
                return Ok(Turn::Day(day, DayResult::Throttled(wait)));
            }
            Err(e) if e.is_transient() => {
                days::record_problem(&*tx, run_id, day, e.name(), &e.to_string()).await?;
                tx.commit().await?;
                span.in_scope(|| warn!(error_name = e.name(), error = %e, "transient provider faults outlasted this invocation's patience"));
                return Ok(Turn::Day(day, DayResult::Unavailable(e)));
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
        Ok(Turn::Day(
            day,
            DayResult::Done {
                inserted: stored.inserted,
                updated: stored.updated,
            },
        ))
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

/// The grouped answer for `day`, with transient faults retried here (the day's claim held),
/// for at most `patience` and never past `stop_at`.
async fn next_day(
    polygon: &PolygonProvider,
    day: NaiveDate,
    config: &Config,
    patience: Duration,
    stop_at: tokio::time::Instant,
) -> Result<GroupedDay, ProviderError> {
    let clock = StdInstant::now();
    let mut faults = 0u32;
    let mut answered_429 = 0u32;
    loop {
        match polygon.grouped_daily(day).await {
            // The adapter paused the shared budget: asking again waits for the pause's end
            // through the budget, or ends the invocation when that is far.
            Err(ProviderError::RateLimited { retry_after }) => {
                answered_429 += 1;
                if answered_429 >= MAX_429_PER_DAY {
                    return Err(ProviderError::RateLimited { retry_after });
                }
                warn!(
                    retry_after_s = retry_after.map(|d| d.as_secs()),
                    "rate limited; asking again through the shared budget"
                );
            }
            // Far because of the provider's own 429: the day was rate limited.
            Err(ProviderError::Throttled { wait }) if answered_429 > 0 => {
                return Err(ProviderError::RateLimited {
                    retry_after: Some(wait),
                })
            }
            Err(e) if e.is_transient() => {
                faults += 1;
                let wait = fault_backoff(config, faults, &mut rand::rng());
                if !patient(clock, wait, patience, stop_at) {
                    return Err(e);
                }
                warn!(error_name = e.name(), error = %e, faults, retry_in_ms = wait.as_millis() as u64, "transient provider fault; retrying");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
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
