//! `fetch-batch`: works on a batch one unit at a time, each in its own transaction (bars and
//! progress commit together), and tells the state machine what to do next. A per-ticker run's
//! unit is a ticker (here); a grouped run's is a day ([`super::fetch_days`]). The loop over the
//! units, the provider's retries and the answer are one for both, so that a rule of how a batch
//! waits, gives up or reports holds for either.

use std::future::Future;
use std::time::{Duration, Instant as StdInstant};

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use rand::Rng;
use tokio_postgres::{Client, GenericClient};
use tracing::{info, warn, Instrument};

use super::{stop_time, App};
use crate::config::Config;
use crate::contract::{parse_event, BatchStatus, FetchBatchInput, FetchBatchOutput};
use crate::db::batches::BatchNote;
use crate::db::progress::{Claim, StatusCounts, TickerOutcome};
use crate::db::runs::RunRecord;
use crate::db::{batches, prices, progress, runs};
use crate::error::BackfillError;
use crate::model::{ProviderKind, RunId, TickerStatus};
use crate::provider::{BarPages, FetchedBars, PriceProvider, ProviderError};

/// How often to look again when the batch's remaining units are held by another invocation.
const LOCK_POLL: Duration = Duration::from_secs(1);

/// 429s for one request (a ticker's page, a grouped day) before the invocation gives up and the
/// state machine waits: the budget already waits out each one's `Retry-After`, so more in a row
/// mean the provider counts differently (another client on the key, a daily quota).
const MAX_429_PER_REQUEST: u32 = 3;

/// Why the work loop ended.
enum Stop {
    /// Nothing claimable is left (done, or the rest is held by a concurrent invocation).
    Drained,
    Deadline,
    /// The provider answered 429 (`by_provider`), or the shared budget's next slot is far.
    RateLimited {
        retry_after: Option<Duration>,
        by_provider: bool,
    },
    /// Transient faults outlasted this invocation's patience for two units in a row.
    Unavailable,
}

/// What happened to one claimed unit (a ticker, or a grouped day).
pub(super) enum UnitResult {
    /// Every bar fetched and stored: the unit is finished.
    Done { inserted: i64, updated: i64 },
    /// The ticker failed for good (a day never does: it stays pending with the reason).
    Failed,
    /// The provider answered 429 and the budget's pause outlasts what this invocation may wait.
    RateLimited(Option<Duration>),
    /// The shared budget has no slot soon enough: nothing was sent, the unit is untouched.
    Throttled(Duration),
    /// Transient faults on every try within the patience; what was stored stays (with a
    /// ticker's cursor), and the unit stays claimable.
    Unavailable(ProviderError),
    /// The deadline came between two pages of a ticker: stored so far, the rest for the next call.
    Interrupted,
    /// Another invocation claimed the ticker between two pages, and goes on from the cursor.
    HandedOff,
}

/// What one turn of the work loop did; `K` names a unit for the claims that follow.
pub(super) enum Turn<K> {
    /// A unit was worked on and its outcome committed.
    Unit(K, UnitResult),
    /// Nothing left that this invocation can claim.
    Drained,
    /// The batch's other units are held by another invocation: look again shortly.
    HeldElsewhere,
}

/// What the work loop did in one invocation.
struct Worked {
    stop: Stop,
    /// The last transient provider fault a unit could not get past, as (name, message).
    fault: Option<(String, String)>,
    attempted: i64,
    finished: i64,
    inserted: i64,
    updated: i64,
}

impl App {
    pub async fn fetch_batch(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<FetchBatchOutput, BackfillError> {
        let input: FetchBatchInput = parse_event(event.payload)?;
        let stop_at = stop_time(event.context.deadline, self.config());
        let span = tracing::info_span!("fetch_batch", run_id = %input.run_id, batch = input.batch);
        let (run_id, batch) = (input.run_id.clone(), input.batch);
        let result = self.fetch(input, stop_at).instrument(span.clone()).await;
        if let Err(e) = &result {
            self.note_batch_error(&run_id, batch, e)
                .instrument(span)
                .await;
        }
        result
    }

    /// Leaves the error on the batch's row for `backfill status`; best effort, since the
    /// database itself may be what failed.
    async fn note_batch_error(&self, run_id: &crate::model::RunId, batch: i32, e: &BackfillError) {
        if matches!(
            e,
            BackfillError::InvalidInput(_)
                | BackfillError::RunNotFound(_)
                | BackfillError::RunBusy { .. }
        ) {
            return;
        }
        tracing::error!(error_name = e.name(), error = %e, "fetch-batch failed");
        let noted = async {
            let client = self.db().await?;
            batches::note(
                &**client,
                run_id,
                batch,
                BatchNote::Error {
                    error_name: e.name(),
                    message: &e.to_string(),
                },
            )
            .await
        }
        .await;
        if let Err(db) = noted {
            warn!(error = %db, "could not record the batch error");
        }
    }

    /// Works on the batch (its tickers, or a grouped run's days) until it is drained, rate
    /// limited, out of patience with a transient fault, or `stop_at` is near.
    pub async fn fetch(
        &self,
        input: FetchBatchInput,
        stop_at: tokio::time::Instant,
    ) -> Result<FetchBatchOutput, BackfillError> {
        let FetchBatchInput {
            run_id,
            batch,
            lease_execution,
        } = input;
        let run = {
            let client = self.db().await?;
            let run = runs::get(&**client, &run_id).await?;
            // One active execution per run: an execution whose lease was taken over stops.
            if let (Some(me), Some(holder)) = (&lease_execution, &run.lease_execution) {
                if me != holder {
                    return Err(BackfillError::RunBusy {
                        run_id: run_id.to_string(),
                        execution: holder.clone(),
                    });
                }
            }
            if !batches::exists(&**client, &run_id, batch).await? {
                return Err(BackfillError::InvalidInput(format!(
                    "run {run_id} has no batch {batch} (it has batches 0..{})",
                    run.batch_count
                )));
            }
            run
        };
        if run.strategy == crate::model::Strategy::Grouped {
            return self.fetch_days(run, batch, stop_at).await;
        }
        let provider = self.provider(run.provider).await?;
        let tickers = Tickers {
            app: self,
            run: &run,
            batch,
            provider: provider.as_ref(),
            stop_at,
        };
        self.work_batch(&tickers, run_id, batch, stop_at).await
    }

    /// One invocation's work on a batch: unit after unit, then how it ended, recorded and
    /// answered.
    pub(super) async fn work_batch<U: BatchUnits>(
        &self,
        units: &U,
        run_id: RunId,
        batch: i32,
        stop_at: tokio::time::Instant,
    ) -> Result<FetchBatchOutput, BackfillError> {
        let worked = self.work(units, stop_at).await?;
        self.finish_invocation(units, run_id, batch, worked).await
    }

    /// Takes turns until the batch is drained, rate limited, out of patience with a transient
    /// fault, or `stop_at` is near. At least one unit is attempted per call, so a tiny budget
    /// still makes progress. Transient faults are retried where they happen: a provider's per
    /// unit (with the unit's claim held), a lost database connection by starting the turn again
    /// on a fresh connection; both with backoff and jitter, for at most the configured patience.
    /// Faults already got past never count against the batch.
    async fn work<U: BatchUnits>(
        &self,
        units: &U,
        stop_at: tokio::time::Instant,
    ) -> Result<Worked, BackfillError> {
        let mut tried: Vec<U::Key> = Vec::new();
        let (mut inserted, mut updated, mut finished, mut attempted) = (0i64, 0i64, 0i64, 0i64);
        // The first of the current run of lost database connections, and how many.
        let mut db_fault: Option<(StdInstant, u32)> = None;
        // The last transient provider fault a unit could not get past, and how many units in a
        // row ended that way: one such unit is passed over for the others (it may be that unit's
        // trouble); a second in a row means the provider itself is down.
        let mut fault: Option<(String, String)> = None;
        let mut faulted_in_a_row = 0u32;
        let stop = loop {
            if attempted > 0 && tokio::time::Instant::now() >= stop_at {
                break Stop::Deadline;
            }
            // After a unit used up the patience, the next one gets a single try.
            let patience = if faulted_in_a_row == 0 {
                self.config().fault_patience
            } else {
                Duration::ZERO
            };
            let next = match units.turn(&tried, patience).await {
                Ok(next) => {
                    db_fault = None;
                    next
                }
                Err(e @ BackfillError::DatabaseUnavailable(_)) => {
                    let (since, faults) = db_fault.get_or_insert((StdInstant::now(), 0));
                    *faults += 1;
                    let wait = fault_backoff(self.config(), *faults, &mut rand::rng());
                    if !patient(*since, wait, self.config().fault_patience, stop_at) {
                        // Nothing more can be recorded without the database: the state
                        // machine's Retry takes over.
                        return Err(e);
                    }
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "database connection lost; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match next {
                Turn::Drained => break Stop::Drained,
                Turn::HeldElsewhere => {
                    if tokio::time::Instant::now() + LOCK_POLL >= stop_at {
                        break Stop::Drained;
                    }
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Turn::Unit(key, result) => {
                    attempted += 1;
                    tried.push(key);
                    match result {
                        UnitResult::Done {
                            inserted: i,
                            updated: u,
                        } => {
                            inserted += i;
                            updated += u;
                            finished += 1;
                            faulted_in_a_row = 0;
                        }
                        UnitResult::Failed => {
                            finished += 1;
                            faulted_in_a_row = 0;
                        }
                        UnitResult::Interrupted | UnitResult::HandedOff => {}
                        UnitResult::RateLimited(retry_after) => {
                            break Stop::RateLimited {
                                retry_after,
                                by_provider: true,
                            }
                        }
                        UnitResult::Throttled(wait) => {
                            break Stop::RateLimited {
                                retry_after: Some(wait),
                                by_provider: false,
                            }
                        }
                        UnitResult::Unavailable(e) => {
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
        Ok(Worked {
            stop,
            fault,
            attempted,
            finished,
            inserted,
            updated,
        })
    }

    /// Records on the batch's row how the invocation ended (giving the batch up when it has
    /// made no progress for too long) and builds the answer: the status, how long the state
    /// machine waits before the next call, and whether the call counts as a rate-limit round.
    async fn finish_invocation<U: BatchUnits>(
        &self,
        units: &U,
        run_id: RunId,
        batch: i32,
        worked: Worked,
    ) -> Result<FetchBatchOutput, BackfillError> {
        let client = self.db().await?;
        let (left, counts) = units.standing(&client).await?;
        let (mut status, provider_wait) = match &worked.stop {
            Stop::RateLimited { retry_after, .. } => (BatchStatus::RateLimited, *retry_after),
            _ if left == 0 => (BatchStatus::Done, None),
            Stop::Unavailable => (BatchStatus::Unavailable, None),
            // Everything else was tried; what is left is waiting on a fault.
            Stop::Drained if worked.fault.is_some() => (BatchStatus::Unavailable, None),
            Stop::Drained | Stop::Deadline => (BatchStatus::Partial, None),
        };
        let record = batches::record_invocation(
            &**client,
            &run_id,
            batch,
            status.as_str(),
            worked.finished > 0,
        )
        .await?;
        if let (BatchStatus::Unavailable, Some((error_name, message))) = (status, &worked.fault) {
            let note = BatchNote::Fault {
                error_name,
                message,
            };
            batches::note(&**client, &run_id, batch, note).await?;
            if record.idle >= self.config().no_progress_timeout {
                let why = format!(
                    "no {} of batch {batch} finished for {}s (NO_PROGRESS_TIMEOUT_SECONDS {}); \
                     the last fault was {error_name}: {message}",
                    U::NOUN,
                    record.idle.as_secs(),
                    self.config().no_progress_timeout.as_secs()
                );
                let note = BatchNote::Stalled { message: &why };
                batches::note(&**client, &run_id, batch, note).await?;
                warn!(
                    idle_s = record.idle.as_secs(),
                    "no progress for too long; giving the batch up"
                );
                status = BatchStatus::Stalled;
            }
        }
        let retry_after_seconds = match status {
            // The wait the shared budget named (its next slot, or a 429's pause): one wait for
            // every batch, no per-batch backoff stacked on top.
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
        // Only a 429 that this invocation could not get past, with no unit finished, counts
        // towards the state machine's max_rate_limit_rounds: waiting for the shared budget's next
        // slot is pacing, not trouble.
        let rate_limit_round = matches!(
            worked.stop,
            Stop::RateLimited {
                by_provider: true,
                ..
            }
        ) && worked.finished == 0;
        let answer = FetchBatchOutput {
            run_id,
            batch,
            status,
            retry_after_seconds,
            rate_limit_round,
            success: counts.success,
            failed: counts.failed,
            rate_limited: counts.rate_limited,
            pending: counts.pending,
            records_inserted: worked.inserted,
            records_updated: worked.updated,
            attempted: worked.attempted,
        };
        units.log_finished(&answer, worked.finished, left);
        Ok(answer)
    }
}

/// A batch's units as one invocation works on them: [`Tickers`] here, a grouped run's days in
/// [`super::fetch_days`]. Only what differs between the two is here; the loop over the units and
/// the answer are [`App::work_batch`]'s.
pub(super) trait BatchUnits: Sync {
    /// Names a unit among those this invocation has tried (a ticker's symbol, a day).
    type Key: Send + Sync;
    /// What a unit is called in the batch's messages.
    const NOUN: &'static str;

    /// One turn of the work loop: claims the next unit not in `tried`, works on it, and commits
    /// what became of it.
    // `Send` is declared rather than inferred: behind the loop's generic, rustc cannot prove it
    // (higher-ranked lifetimes), and the Lambda runtime and the bench spawn the invocation.
    fn turn(
        &self,
        tried: &[Self::Key],
        patience: Duration,
    ) -> impl Future<Output = Result<Turn<Self::Key>, BackfillError>> + Send;

    /// The batch's units not finished yet, and the ticker counts the answer carries.
    fn standing(
        &self,
        client: &Client,
    ) -> impl Future<Output = Result<(i64, StatusCounts), BackfillError>> + Send;

    /// The invocation's summary line, in the words operators search this strategy's logs by.
    fn log_finished(&self, answer: &FetchBatchOutput, finished: i64, left: i64);
}

/// A per-ticker run's batch: its tickers, each fetched page by page.
#[derive(Clone, Copy)]
struct Tickers<'a> {
    app: &'a App,
    run: &'a RunRecord,
    batch: i32,
    provider: &'a dyn PriceProvider,
    stop_at: tokio::time::Instant,
}

impl BatchUnits for Tickers<'_> {
    type Key = String;
    const NOUN: &'static str = "ticker";

    async fn standing(&self, client: &Client) -> Result<(i64, StatusCounts), BackfillError> {
        let counts = progress::counts(client, &self.run.run_id, Some(self.batch)).await?;
        Ok((counts.unfinished(), counts))
    }

    fn log_finished(&self, answer: &FetchBatchOutput, _finished: i64, _left: i64) {
        let status = answer.status.as_str();
        info!(
            status,
            retry_after_seconds = answer.retry_after_seconds,
            rate_limit_round = answer.rate_limit_round,
            attempted = answer.attempted,
            records_inserted = answer.records_inserted,
            records_updated = answer.records_updated,
            pending = answer.pending,
            rate_limited = answer.rate_limited,
            failed = answer.failed,
            success = answer.success,
            "batch invocation finished"
        );
    }

    /// Claims the next ticker, fetches it page by page (each page committed with the ticker's
    /// cursor), and commits what became of it.
    async fn turn(
        &self,
        tried: &[String],
        patience: Duration,
    ) -> Result<Turn<String>, BackfillError> {
        let Tickers {
            app,
            run,
            batch,
            provider,
            stop_at,
        } = *self;
        let mut client = app.db().await?;
        let tx = client.transaction().await?;
        let Some(claim) = progress::claim_next(&*tx, &run.run_id, batch, tried).await? else {
            drop(tx);
            // Tickers held by another invocation (a retry that overlapped a slow attempt):
            // wait for them here rather than have the state machine spin on `partial`.
            if progress::held_elsewhere(&**client, &run.run_id, batch, tried).await? > 0 {
                return Ok(Turn::HeldElsewhere);
            }
            return Ok(Turn::Drained);
        };
        let span = tracing::info_span!("ticker", symbol = %claim.symbol);
        let started_at = Utc::now();
        let clock = StdInstant::now();
        let mut pages = provider.pages(&claim.symbol, &run.range, run.interval, claim.last_bar_at);
        let mut totals = TickerOutcome {
            last_bar_at: claim.last_bar_at,
            ..TickerOutcome::default()
        };
        let mut requests = 0u32;
        let mut tx = tx;
        let result = loop {
            let answer = ask_provider(app.config(), patience, stop_at, pages.as_mut())
                .instrument(span.clone())
                .await;
            let page = match answer {
                Ok(Some(page)) => page,
                Ok(None) => {
                    progress::record_success(
                        &*tx,
                        claim.id,
                        started_at,
                        &TickerOutcome {
                            inserted: 0,
                            updated: 0,
                            ..totals
                        },
                    )
                    .await?;
                    tx.commit().await?;
                    span.in_scope(|| {
                        info!(
                            inserted = totals.inserted,
                            updated = totals.updated,
                            skipped_bars = totals.skipped_bars,
                            requests,
                            elapsed_ms = clock.elapsed().as_millis() as u64,
                            "ticker fetched"
                        )
                    });
                    break UnitResult::Done {
                        inserted: totals.inserted,
                        updated: totals.updated,
                    };
                }
                Err(e) => {
                    let result = record_provider_error(&*tx, run, &claim, started_at, e)
                        .instrument(span.clone())
                        .await?;
                    tx.commit().await?;
                    break result;
                }
            };
            requests += page.requests;
            let stored = prices::upsert_bars(&*tx, &claim.symbol, &page.bars).await;
            let counts = match stored {
                Ok(counts) => counts,
                // The database refused this ticker's rows (a constraint, a value its column
                // cannot hold): the same write fails the same way every time, so the ticker
                // fails for good, with the server's reason, and the batch carries on.
                Err(e) if e.is_ticker_data_rejection() => {
                    tx.rollback().await?;
                    let tx = client.transaction().await?;
                    let result = fail_ticker(&*tx, &claim, started_at, e.name(), &e.to_string())
                        .instrument(span.clone())
                        .await?;
                    tx.commit().await?;
                    break result;
                }
                Err(e) => return Err(e),
            };
            let page_last = page.bars.iter().map(|b| b.ts).max();
            totals.inserted += counts.inserted;
            totals.updated += counts.updated;
            totals.skipped_bars += i64::from(page.skipped);
            totals.last_bar_at = totals.last_bar_at.max(page_last);
            drop(page);
            progress::record_page(
                &*tx,
                claim.id,
                started_at,
                counts.inserted,
                counts.updated,
                page_last,
            )
            .await?;
            if pages.done() {
                // The last page: the ticker's success commits with it, the claim held throughout,
                // so no other invocation can take the ticker up in between.
                continue;
            }
            // Pages left: this page and the cursor are made durable together; a fetch
            // interrupted from here on goes on after this page.
            tx.commit().await?;
            tx = client.transaction().await?;
            if !progress::reclaim(&*tx, claim.id).await? {
                break UnitResult::HandedOff;
            }
            // Past the deadline: stop here; each call stores at least a page, so even a tiny
            // budget gets through a long range.
            if tokio::time::Instant::now() >= stop_at {
                tx.commit().await?;
                break UnitResult::Interrupted;
            }
        };
        drop(pages);
        Ok(Turn::Unit(claim.symbol.to_string(), result))
    }
}

/// A request a unit makes of its provider (a ticker's next page, a grouped day), which
/// [`ask_provider`] sends again after a 429 or a transient fault.
pub(super) trait ProviderRequest {
    type Answer;

    // `Send` is declared for the reason given at `BatchUnits::turn`.
    fn send(&mut self) -> impl Future<Output = Result<Self::Answer, ProviderError>> + Send;
}

impl ProviderRequest for dyn BarPages + '_ {
    type Answer = Option<FetchedBars>;

    fn send(&mut self) -> impl Future<Output = Result<Self::Answer, ProviderError>> + Send {
        self.next_page()
    }
}

/// The provider's answer to `request`, with transient faults retried here (the unit's claim
/// held), for at most `patience` and never past `stop_at`.
pub(super) async fn ask_provider<R: ProviderRequest + ?Sized>(
    config: &Config,
    patience: Duration,
    stop_at: tokio::time::Instant,
    request: &mut R,
) -> Result<R::Answer, ProviderError> {
    let clock = StdInstant::now();
    let mut faults = 0u32;
    let mut answered_429 = 0u32;
    loop {
        match request.send().await {
            // The adapter paused the shared budget: asking again waits for the pause's end
            // through the budget, or ends the invocation when that is far.
            Err(ProviderError::RateLimited { retry_after }) => {
                answered_429 += 1;
                if answered_429 >= MAX_429_PER_REQUEST {
                    return Err(ProviderError::RateLimited { retry_after });
                }
                warn!(
                    retry_after_s = retry_after.map(|d| d.as_secs()),
                    "rate limited; asking again through the shared budget"
                );
            }
            // Far because of the provider's own 429: the unit was rate limited.
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

/// The reason a unit stopped on a 429, for `backfill status`.
pub(super) fn rate_limit_message(provider: ProviderKind, retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(
            "rate limited by {provider}; retry after {}s",
            wait.as_secs()
        ),
        None => format!("rate limited by {provider} (no Retry-After given)"),
    }
}

/// Fails a claimed ticker for good, with the error's name and message for `backfill status`:
/// the same request or write would fail the same way every time, so the batch carries on
/// without it.
async fn fail_ticker(
    tx: &impl GenericClient,
    claim: &Claim,
    started_at: chrono::DateTime<Utc>,
    error_name: &str,
    message: &str,
) -> Result<UnitResult, BackfillError> {
    progress::record_problem(
        tx,
        claim.id,
        started_at,
        TickerStatus::Failed,
        error_name,
        message,
    )
    .await?;
    warn!(error_name, error = %message, "ticker failed");
    Ok(UnitResult::Failed)
}

/// Records what a provider error means for a claimed ticker, inside the claiming transaction:
/// a 429 stops the batch (`rate_limited`), a transient fault that outlasted the patience leaves
/// it claimable with the reason, a ticker failure fails it; anything else (401/403, a base URL
/// that cannot work) is the configuration's, returned as an error.
async fn record_provider_error(
    tx: &impl GenericClient,
    run: &RunRecord,
    claim: &Claim,
    started_at: chrono::DateTime<Utc>,
    e: ProviderError,
) -> Result<UnitResult, BackfillError> {
    match e {
        ProviderError::Throttled { wait } => {
            // Nothing was sent: the ticker stays as it was, claimable by the next call.
            info!(
                wait_ms = wait.as_millis() as u64,
                "the shared request budget's next slot is far; handing the wait to the state machine"
            );
            Ok(UnitResult::Throttled(wait))
        }
        ProviderError::RateLimited { retry_after } => {
            let message = rate_limit_message(run.provider, retry_after);
            progress::record_problem(
                tx,
                claim.id,
                started_at,
                TickerStatus::RateLimited,
                "RateLimited",
                &message,
            )
            .await?;
            warn!(
                retry_after_s = retry_after.map(|d| d.as_secs()),
                "rate limited; stopping the batch"
            );
            Ok(UnitResult::RateLimited(retry_after))
        }
        e if e.is_transient() => {
            // Still claimable: `pending` with the reason, for `backfill status`.
            progress::record_fault(tx, claim.id, started_at, e.name(), &e.to_string()).await?;
            warn!(error_name = e.name(), error = %e, "transient provider faults outlasted this invocation's patience");
            Ok(UnitResult::Unavailable(e))
        }
        e if e.is_ticker_failure() => {
            fail_ticker(tx, claim, started_at, e.name(), &e.to_string()).await
        }
        e => {
            warn!(error_name = e.name(), error = %e, "provider refused the request");
            Err(e.into())
        }
    }
}

/// Whether another try, after waiting `wait`, still fits: within `patience` of the first fault
/// (at `since`) and before `stop_at`.
pub(crate) fn patient(
    since: StdInstant,
    wait: Duration,
    patience: Duration,
    stop_at: tokio::time::Instant,
) -> bool {
    since.elapsed() + wait <= patience && tokio::time::Instant::now() + wait < stop_at
}

/// Wait before another try after `faults` consecutive transient faults: exponential from the
/// configured base, capped, with jitter in `[d/2, d]` so that parallel retries spread out.
pub fn fault_backoff(config: &Config, faults: u32, rng: &mut impl Rng) -> Duration {
    let base = config.fault_backoff_base.as_millis().max(1) as u64;
    let cap = (config.fault_backoff_cap.as_millis() as u64).max(base);
    let exponent = faults.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u64 << exponent).min(cap);
    Duration::from_millis(rng.random_range(full.div_ceil(2)..=full).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn fault_backoff_doubles_per_consecutive_fault_within_jitter_and_cap() {
        let c = Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://localhost/x".into()),
            "FAULT_BACKOFF_BASE_MS" => Some("500".into()),
            "FAULT_BACKOFF_CAP_SECONDS" => Some("4".into()),
            _ => None,
        })
        .unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        for (faults, full) in [
            (1, 500u64),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (5, 4000),
            (40, 4000),
        ] {
            for _ in 0..50 {
                let ms = fault_backoff(&c, faults, &mut rng).as_millis() as u64;
                assert!(
                    ms >= full.div_ceil(2) && ms <= full,
                    "{faults} faults: {ms} ms not in [{}, {full}]",
                    full.div_ceil(2)
                );
            }
        }
    }
}
