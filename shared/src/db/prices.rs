//! `stock_price_history`: set-based, idempotent upserts on `(symbol, date)`, staged by binary COPY.

use std::collections::HashMap;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::{Bar, Symbol};

/// The staging table a session's bars are copied into before they are merged. Temporary: each
/// connection has its own, unlogged and invisible to others; created on a connection's first
/// write and emptied before every use (a page's bars never meet another page's).
const STAGING_SQL: &str = "
CREATE TEMP TABLE IF NOT EXISTS backfill_bar_staging (
    symbol TEXT        NOT NULL,
    ts     TIMESTAMPTZ NOT NULL,
    o      FLOAT8,
    h      FLOAT8,
    l      FLOAT8,
    c      FLOAT8      NOT NULL,
    v      INT8
);
TRUNCATE backfill_bar_staging";

/// The binary COPY into the staging table: the fastest way into the server (no per-row parsing of
/// text or parameters).
const COPY_SQL: &str =
    "COPY backfill_bar_staging (symbol, ts, o, h, l, c, v) FROM STDIN (FORMAT binary)";

/// Merges the staged bars into `stock_price_history` in one statement. The staged rows are
/// already one per `(symbol, date)` (collapsed before the COPY, the last one sent winning), so
/// the server sorts nothing. A stored bar is rewritten only when a value really changed, so a
/// re-run writes nothing and the counts are exact (`xmax = 0` marks rows this statement inserted
/// rather than updated).
///
/// Every insert sets `created_at`: the original's column is NOT NULL with no server default (its
/// writers set it), and other jobs keep writing this table beside us. Prices are float8; a double
/// precision column (the original's, and ours) stores them exactly.
pub const MERGE_STAGED_SQL: &str = "
WITH written AS (
    INSERT INTO stock_price_history AS s
           (symbol, date, open_price, high_price, low_price, close_price, volume, created_at)
    SELECT symbol, ts, o, h, l, c, v, now() FROM backfill_bar_staging
    ON CONFLICT (symbol, date) DO UPDATE
       SET open_price = EXCLUDED.open_price, high_price = EXCLUDED.high_price,
           low_price = EXCLUDED.low_price, close_price = EXCLUDED.close_price,
           volume = EXCLUDED.volume, updated_at = now()
     WHERE (s.open_price, s.high_price, s.low_price, s.close_price, s.volume)
           IS DISTINCT FROM
           (EXCLUDED.open_price, EXCLUDED.high_price, EXCLUDED.low_price, EXCLUDED.close_price, EXCLUDED.volume)
    RETURNING s.symbol AS symbol, (xmax = 0) AS inserted
)
SELECT symbol::text AS symbol,
       COUNT(*) FILTER (WHERE inserted) AS inserted,
       COUNT(*) FILTER (WHERE NOT inserted) AS updated
  FROM written
 GROUP BY symbol";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpsertCounts {
    pub inserted: i64,
    pub updated: i64,
}

/// Stores one ticker's bars: binary COPY into the session's staging table, then one merge. Run
/// it inside the transaction that records the ticker's progress, so both commit together.
pub async fn upsert_bars(
    client: &impl GenericClient,
    symbol: &Symbol,
    bars: &[Bar],
) -> Result<UpsertCounts, BackfillError> {
    let counts = stage_and_merge(client, bars.iter().map(|b| (symbol, b)).collect()).await?;
    Ok(counts.into_values().next().unwrap_or_default())
}

/// Stores bars of several symbols at once (a grouped daily answer holds one bar of every ticker);
/// returns the counts of the symbols that had a row inserted or updated (a symbol whose bars were
/// all unchanged is absent).
pub async fn upsert_symbol_bars(
    client: &impl GenericClient,
    bars: &[(Symbol, Bar)],
) -> Result<HashMap<String, UpsertCounts>, BackfillError> {
    stage_and_merge(client, bars.iter().map(|(s, b)| (s, b)).collect()).await
}

async fn stage_and_merge(
    client: &impl GenericClient,
    mut bars: Vec<(&Symbol, &Bar)>,
) -> Result<HashMap<String, UpsertCounts>, BackfillError> {
    if bars.is_empty() {
        return Ok(HashMap::new());
    }
    // One row per (symbol, date), the last one sent winning: a stable sort keeps the order sent
    // within a key, and `dedup_by` keeps the first of a run, so the runs are reversed first.
    bars.reverse();
    bars.sort_by(|a, b| (a.0.as_str(), a.1.ts).cmp(&(b.0.as_str(), b.1.ts)));
    bars.dedup_by(|a, b| a.0 == b.0 && a.1.ts == b.1.ts);
    client.batch_execute(STAGING_SQL).await?;
    let sink = client.client().copy_in(COPY_SQL).await?;
    let types = [
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::INT8,
    ];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for (symbol, bar) in bars {
        writer
            .as_mut()
            .write(&[
                &symbol.as_str(),
                &bar.ts,
                &bar.open,
                &bar.high,
                &bar.low,
                &bar.close,
                &bar.volume,
            ])
            .await?;
    }
    writer.finish().await?;
    let rows = client.query(MERGE_STAGED_SQL, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<_, String>("symbol")?,
                UpsertCounts {
                    inserted: r.try_get("inserted")?,
                    updated: r.try_get("updated")?,
                },
            ))
        })
        .collect()
}

/// A stored bar read back as floats (tests and verification compare against the provider).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBar {
    pub ts: chrono::DateTime<chrono::Utc>,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: f64,
    pub volume: Option<i64>,
}

/// Stored bars of `symbol` in `[from, to)`, by time.
pub async fn stored_bars(
    client: &impl GenericClient,
    symbol: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<StoredBar>, BackfillError> {
    let rows = client
        .query(
            "SELECT date, open_price::float8 AS o, high_price::float8 AS h, low_price::float8 AS l,
                    close_price::float8 AS c, volume::bigint AS v
               FROM stock_price_history
              WHERE symbol = $1 AND date >= $2 AND date < $3
           ORDER BY date",
            &[&symbol, &from, &to],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredBar {
                ts: r.try_get("date")?,
                open: r.try_get("o")?,
                high: r.try_get("h")?,
                low: r.try_get("l")?,
                close: r.try_get("c")?,
                volume: r.try_get("v")?,
            })
        })
        .collect()
}
