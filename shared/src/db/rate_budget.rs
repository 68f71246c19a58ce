//! `backfill_rate_budget`: the request budget every fetch-batch instance shares (see
//! [`crate::provider::budget`] for why). Each statement is one short auto-committed upsert: the
//! row is locked for that statement only, never across a request or a ticker's transaction.
//!
//! Time is the database server's (`statement_timestamp()`), one clock for every instance. Tests
//! pass their own `at` to run the same statements on simulated time.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::provider::budget::{RateBudget, Reservation};

/// Takes the next slot, `max(next_slot_at, paused_until, now)`, when it is at most `$4` seconds
/// away, and moves `next_slot_at` one interval (`$2` seconds) past it; otherwise changes nothing
/// but the `denied` count. A first reservation creates the row and gets `now`. `now` travels in
/// as the excluded row's `updated_at`, so that every expression sees the same instant.
/// Returns `(granted, seconds until the slot)`.
pub const RESERVE_SQL: &str = "
    INSERT INTO backfill_rate_budget AS b (budget, next_slot_at, last_slot_at, granted, updated_at)
    SELECT $1, t.now + make_interval(secs => $2), t.now, 1, t.now
      FROM (SELECT COALESCE($3::timestamptz, statement_timestamp()) AS now) t
    ON CONFLICT (budget) DO UPDATE SET
        next_slot_at = CASE
            WHEN GREATEST(b.next_slot_at, b.paused_until, EXCLUDED.updated_at)
                 <= EXCLUDED.updated_at + make_interval(secs => $4)
            THEN GREATEST(b.next_slot_at, b.paused_until, EXCLUDED.updated_at)
                 + make_interval(secs => $2)
            ELSE b.next_slot_at END,
        last_slot_at = CASE
            WHEN GREATEST(b.next_slot_at, b.paused_until, EXCLUDED.updated_at)
                 <= EXCLUDED.updated_at + make_interval(secs => $4)
            THEN GREATEST(b.next_slot_at, b.paused_until, EXCLUDED.updated_at)
            END,
        granted = b.granted + CASE
            WHEN GREATEST(b.next_slot_at, b.paused_until, EXCLUDED.updated_at)
                 <= EXCLUDED.updated_at + make_interval(secs => $4)
            THEN 1 ELSE 0 END,
        denied = b.denied + CASE
            WHEN GREATEST(b.next_slot_at, b.paused_until, EXCLUDED.updated_at)
                 <= EXCLUDED.updated_at + make_interval(secs => $4)
            THEN 0 ELSE 1 END,
        updated_at = EXCLUDED.updated_at
    RETURNING last_slot_at IS NOT NULL,
              EXTRACT(EPOCH FROM COALESCE(last_slot_at, GREATEST(next_slot_at, paused_until))
                                 - updated_at)::float8";

/// Nobody is granted a slot before `now + $2` seconds (a pause only ever grows).
pub const PAUSE_SQL: &str = "
    INSERT INTO backfill_rate_budget AS b (budget, next_slot_at, paused_until, paused, updated_at)
    SELECT $1, t.now, t.now + make_interval(secs => $2), 1, t.now
      FROM (SELECT COALESCE($3::timestamptz, statement_timestamp()) AS now) t
    ON CONFLICT (budget) DO UPDATE SET
        paused_until = GREATEST(b.paused_until, EXCLUDED.paused_until),
        paused = b.paused + 1,
        updated_at = EXCLUDED.updated_at";

/// Reserves the next slot of `budget` (one request every `interval`) if it is within `max_wait`
/// of `at` (the server's clock when `None`).
pub async fn reserve(
    client: &impl GenericClient,
    budget: &str,
    interval: Duration,
    max_wait: Duration,
    at: Option<DateTime<Utc>>,
) -> Result<Reservation, BackfillError> {
    let row = client
        .query_one(
            RESERVE_SQL,
            &[
                &budget,
                &interval.as_secs_f64(),
                &at,
                &max_wait.as_secs_f64(),
            ],
        )
        .await?;
    let granted: bool = row.try_get(0)?;
    let seconds: f64 = row.try_get(1)?;
    // Never negative: a slot in the past is now.
    let wait = Duration::from_secs_f64(seconds.max(0.0));
    Ok(if granted {
        Reservation::Granted { wait }
    } else {
        Reservation::Far { wait }
    })
}

/// Pauses `budget` for `wait` from `at` (the server's clock when `None`).
pub async fn pause(
    client: &impl GenericClient,
    budget: &str,
    wait: Duration,
    at: Option<DateTime<Utc>>,
) -> Result<(), BackfillError> {
    client
        .execute(PAUSE_SQL, &[&budget, &wait.as_secs_f64(), &at])
        .await?;
    Ok(())
}

/// How a budget has been used, for `backfill status` and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetUse {
    pub granted: i64,
    pub denied: i64,
    pub paused: i64,
}

pub async fn usage(client: &impl GenericClient, budget: &str) -> Result<BudgetUse, BackfillError> {
    let row = client
        .query_opt(
            "SELECT granted, denied, paused FROM backfill_rate_budget WHERE budget = $1",
            &[&budget],
        )
        .await?;
    Ok(match row {
        Some(row) => BudgetUse {
            granted: row.try_get(0)?,
            denied: row.try_get(1)?,
            paused: row.try_get(2)?,
        },
        None => BudgetUse::default(),
    })
}

/// The adapter of the [`RateBudget`] port: the shared budget in PostgreSQL, reached through the
/// instance's pool (a connection of its own, never the one holding a ticker's transaction).
pub struct PgRateBudget {
    pool: Pool,
    budget: String,
    interval: Duration,
}

impl PgRateBudget {
    pub fn new(pool: Pool, budget: String, interval: Duration) -> Self {
        Self {
            pool,
            budget,
            interval,
        }
    }
}

#[async_trait]
impl RateBudget for PgRateBudget {
    async fn reserve(&self, max_wait: Duration) -> Result<Reservation, BackfillError> {
        let client = self.pool.get().await?;
        reserve(&**client, &self.budget, self.interval, max_wait, None).await
    }

    async fn pause(&self, wait: Duration) -> Result<(), BackfillError> {
        let client = self.pool.get().await?;
        pause(&**client, &self.budget, wait, None).await
    }
}
