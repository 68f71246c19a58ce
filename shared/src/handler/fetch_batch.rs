//! `fetch-batch`: fetches the batch's unfinished tickers one at a time, each in its own
//! transaction (bars and progress commit together), and tells the state machine what to do next.

use std::time::{Duration, Instant as StdInstant};

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use rand::Rng;
use tracing::{info, warn, Instrument};

use super::{stop_time, App};
use crate::config::Config;
use crate::contract::{parse_event, BatchStatus, FetchBatchInput, FetchBatchOutput};
use crate::db::progress::{Claim, TickerOutcome};
use crate::db::runs::RunRecord;
use crate::db::{batches, prices, progress, runs};
use crate::error::BackfillError;
use crate::model::TickerStatus;
use crate::provider::{PriceProvider, ProviderError};

/// How often to look again when the batch's remaining tickers are held by another invocation.
const LOCK_POLL: Duration = Duration::from_secs(1);

/// Why the ticker loop ended.
enum Stop {
    /// Nothing claimable is left (done, or the rest is held by a concurrent invocation).
    Drained,
    Deadline,
    RateLimited {
        retry_after: Option<Duration>,
    },
}

/// What happened to one claimed ticker.
enum TickerResult {
    Success(TickerOutcome),
    Failed,
    RateLimited(Option<Duration>),
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
            BackfillError::InvalidInput(_) | BackfillError::RunNotFound(_)
        ) {
            return;
        }
        tracing::error!(error_name = e.name(), error = %e, "fetch-batch failed");
        let noted = async {
            let client = self.db().await?;
            batches::record_error(&**client, run_id, batch, e.name(), &e.to_string()).await
        }
        .await;
        if let Err(db) = noted {
            warn!(error = %db, "could not record the batch error");
        }
    }

    /// Works on the batch until it is drained, rate limited, or `stop_at` is near.
    /// At least one ticker is attempted per call, so a tiny budget still makes progress.
    pub async fn fetch(
        &self,
        input: FetchBatchInput,
        stop_at: tokio::time::Instant,
    ) -> Result<FetchBatchOutput, BackfillError> {
        let FetchBatchInput { run_id, batch } = input;
        let run = {
            let client = self.db().await?;
            let run = runs::get(&**client, &run_id).await?;
            if !batches::exists(&**client, &run_id, batch).await? {
                return Err(BackfillError::InvalidInput(format!(
                    "run {run_id} has no batch {batch} (it has batches 0..{})",
                    run.batch_count
                )));
            }
            run
        };
        let provider = self.provider(run.provider).await?;

        let mut tried: Vec<String> = Vec::new();
        let mut inserted = 0;
        let mut updated = 0;
        let mut successes = 0;
        let stop = loop {
            if !tried.is_empty() && tokio::time::Instant::now() >= stop_at {
                break Stop::Deadline;
            }
            let mut client = self.db().await?;
            let tx = client.transaction().await?;
            let Some(claim) = progress::claim_next(&*tx, &run_id, batch, &tried).await? else {
                drop(tx);
                // Tickers held by another invocation (a retry that overlapped a slow attempt):
                // wait for them here rather than have the state machine spin on `partial`.
                if progress::held_elsewhere(&**client, &run_id, batch, &tried).await? > 0
                    && tokio::time::Instant::now() + LOCK_POLL < stop_at
                {
                    tokio::time::sleep(LOCK_POLL).await;
                    continue;
                }
                break Stop::Drained;
            };
            tried.push(claim.symbol.to_string());
            let span = tracing::info_span!("ticker", symbol = %claim.symbol);
            let result = match fetch_one(&tx, provider.as_ref(), &run, &claim)
                .instrument(span.clone())
                .await
            {
                Ok(result) => {
                    tx.commit().await?;
                    result
                }
                // The database refused this ticker's rows (a constraint, a value its column
                // cannot hold): the same write fails the same way every time, so the ticker
                // fails for good, with the server's reason, and the batch carries on.
                Err(e) if e.is_ticker_data_rejection() => {
                    tx.rollback().await?;
                    let tx = client.transaction().await?;
                    progress::record_problem(
                        &*tx,
                        claim.id,
                        Utc::now(),
                        TickerStatus::Failed,
                        e.name(),
                        &e.to_string(),
                    )
                    .await?;
                    tx.commit().await?;
                    span.in_scope(|| warn!(error_name = e.name(), error = %e, "ticker failed"));
                    TickerResult::Failed
                }
                Err(e) => return Err(e),
            };
            match result {
                TickerResult::Success(outcome) => {
                    inserted += outcome.inserted;
                    updated += outcome.updated;
                    successes += 1;
                }
                TickerResult::Failed => {}
                TickerResult::RateLimited(retry_after) => break Stop::RateLimited { retry_after },
            }
        };

        let client = self.db().await?;
        let counts = progress::counts(&**client, &run_id, Some(batch)).await?;
        let (status, provider_wait) = match stop {
            Stop::RateLimited { retry_after } => (BatchStatus::RateLimited, retry_after),
            _ if counts.unfinished() == 0 => (BatchStatus::Done, None),
            Stop::Drained | Stop::Deadline => (BatchStatus::Partial, None),
        };
        let rate_limited = status == BatchStatus::RateLimited;
        let status_word = match status {
            BatchStatus::Done => "done",
            BatchStatus::Partial => "partial",
            BatchStatus::RateLimited => "rate_limited",
        };
        let streak = batches::record_invocation(
            &**client,
            &run_id,
            batch,
            status_word,
            rate_limited,
            successes > 0,
        )
        .await?;
        let retry_after_seconds = rate_limited.then(|| match provider_wait {
            Some(wait) => wait.as_secs().max(1),
            None => backoff_seconds(self.config(), streak, &mut rand::rng()),
        });

        info!(
            status = status_word,
            retry_after_seconds,
            attempted = tried.len(),
            records_inserted = inserted,
            records_updated = updated,
            pending = counts.pending,
            rate_limited = counts.rate_limited,
            failed = counts.failed,
            success = counts.success,
            "batch invocation finished"
        );
        Ok(FetchBatchOutput {
            run_id,
            batch,
            status,
            retry_after_seconds,
            success: counts.success,
            failed: counts.failed,
            rate_limited: counts.rate_limited,
            pending: counts.pending,
            records_inserted: inserted,
            records_updated: updated,
            attempted: tried.len() as i64,
        })
    }
}

/// Fetches one claimed ticker and records the result inside the claiming transaction.
/// Transient provider faults and configuration errors are returned as errors: the transaction
/// rolls back, the ticker stays claimable, and the state machine's Retry takes over.
async fn fetch_one(
    tx: &tokio_postgres::Transaction<'_>,
    provider: &dyn PriceProvider,
    run: &RunRecord,
    claim: &Claim,
) -> Result<TickerResult, BackfillError> {
    let started_at = Utc::now();
    let clock = StdInstant::now();
    match provider
        .fetch_bars(&claim.symbol, &run.range, run.interval)
        .await
    {
        Ok(fetched) => {
            let counts = prices::upsert_bars(tx, &claim.symbol, &fetched.bars).await?;
            let outcome = TickerOutcome {
                inserted: counts.inserted,
                updated: counts.updated,
                skipped_bars: i64::from(fetched.skipped),
                last_bar_at: fetched.bars.iter().map(|b| b.ts).max(),
            };
            progress::record_success(tx, claim.id, started_at, &outcome).await?;
            info!(
                bars = fetched.bars.len(),
                inserted = counts.inserted,
                updated = counts.updated,
                skipped_bars = fetched.skipped,
                requests = fetched.requests,
                elapsed_ms = clock.elapsed().as_millis() as u64,
                "ticker fetched"
            );
            Ok(TickerResult::Success(outcome))
        }
        Err(ProviderError::RateLimited { retry_after }) => {
            let message = match retry_after {
                Some(wait) => format!(
                    "rate limited by {}; retry after {}s",
                    run.provider,
                    wait.as_secs()
                ),
                None => format!("rate limited by {} (no Retry-After given)", run.provider),
            };
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
            Ok(TickerResult::RateLimited(retry_after))
        }
        Err(e) if e.is_ticker_failure() => {
            progress::record_problem(
                tx,
                claim.id,
                started_at,
                TickerStatus::Failed,
                e.name(),
                &e.to_string(),
            )
            .await?;
            warn!(error_name = e.name(), error = %e, "ticker failed");
            Ok(TickerResult::Failed)
        }
        Err(e) => {
            warn!(error_name = e.name(), error = %e, attempts = claim.attempts, "transient provider error");
            Err(e.into())
        }
    }
}

/// Wait after a 429 that carried no `Retry-After`: exponential in the batch's streak of
/// consecutive rate-limited invocations, capped, with jitter in `[d/2, d]` so that parallel
/// batches do not all come back at the same second.
pub fn backoff_seconds(config: &Config, streak: i32, rng: &mut impl Rng) -> u64 {
    let base = config.rate_limit_backoff_base.as_secs().max(1);
    let cap = config.rate_limit_backoff_cap.as_secs().max(base);
    let exponent = u32::try_from(streak.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
    let full = base.saturating_mul(1u64 << exponent).min(cap);
    rng.random_range(full.div_ceil(2)..=full).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some("postgres://localhost/x".into()),
            "RATE_LIMIT_BACKOFF_BASE_SECONDS" => Some("5".into()),
            "RATE_LIMIT_BACKOFF_CAP_SECONDS" => Some("60".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn backoff_doubles_per_consecutive_rate_limit_within_jitter_and_cap() {
        let c = config();
        let mut rng = StdRng::seed_from_u64(7);
        for (streak, full) in [(1, 5u64), (2, 10), (3, 20), (4, 40), (5, 60), (9, 60)] {
            for _ in 0..50 {
                let s = backoff_seconds(&c, streak, &mut rng);
                assert!(
                    s >= full.div_ceil(2) && s <= full,
                    "streak {streak}: {s} not in [{}, {full}]",
                    full.div_ceil(2)
                );
            }
        }
    }
}
