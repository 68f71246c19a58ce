//! `stock_price_history`: set-based, idempotent upserts on `(symbol, date)`.

use tokio_postgres::GenericClient;

use crate::error::BackfillError;
use crate::model::{Bar, Symbol};

/// One statement for a ticker's whole fetch. Bars arrive as parallel arrays; duplicates within
/// the batch collapse to the last one sent (`DISTINCT ON` over the arrays' order); a stored bar is
/// rewritten only when a value really changed, so a re-run writes nothing and the counts are exact
/// (`xmax = 0` marks rows this statement inserted rather than updated).
///
/// Every insert sets `created_at`: the original's column is NOT NULL with no server default (its
/// writers set it), and other jobs keep writing this table beside us. Prices are bound as float8;
/// a double precision column (the original's, and ours) stores them exactly.
pub const UPSERT_BARS_SQL: &str = "
WITH incoming AS (
    SELECT DISTINCT ON (ts) ts, o, h, l, c, v
      FROM UNNEST($2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::int8[])
           WITH ORDINALITY AS u(ts, o, h, l, c, v, ord)
  ORDER BY ts, ord DESC
), written AS (
    INSERT INTO stock_price_history AS s
           (symbol, date, open_price, high_price, low_price, close_price, volume, created_at)
    SELECT $1, ts, o, h, l, c, v, now() FROM incoming
    ON CONFLICT (symbol, date) DO UPDATE
       SET open_price = EXCLUDED.open_price, high_price = EXCLUDED.high_price,
           low_price = EXCLUDED.low_price, close_price = EXCLUDED.close_price,
           volume = EXCLUDED.volume, updated_at = now()
     WHERE (s.open_price, s.high_price, s.low_price, s.close_price, s.volume)
           IS DISTINCT FROM
           (EXCLUDED.open_price, EXCLUDED.high_price, EXCLUDED.low_price, EXCLUDED.close_price, EXCLUDED.volume)
    RETURNING (xmax = 0) AS inserted
)
SELECT COUNT(*) FILTER (WHERE inserted) AS inserted,
       COUNT(*) FILTER (WHERE NOT inserted) AS updated
  FROM written";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpsertCounts {
    pub inserted: i64,
    pub updated: i64,
}

pub async fn upsert_bars(
    client: &impl GenericClient,
    symbol: &Symbol,
    bars: &[Bar],
) -> Result<UpsertCounts, BackfillError> {
    if bars.is_empty() {
        return Ok(UpsertCounts::default());
    }
    let ts: Vec<_> = bars.iter().map(|b| b.ts).collect();
    let open: Vec<_> = bars.iter().map(|b| b.open).collect();
    let high: Vec<_> = bars.iter().map(|b| b.high).collect();
    let low: Vec<_> = bars.iter().map(|b| b.low).collect();
    let close: Vec<_> = bars.iter().map(|b| b.close).collect();
    let volume: Vec<_> = bars.iter().map(|b| b.volume).collect();
    let row = client
        .query_one(
            UPSERT_BARS_SQL,
            &[&symbol.as_str(), &ts, &open, &high, &low, &close, &volume],
        )
        .await?;
    Ok(UpsertCounts {
        inserted: row.try_get("inserted")?,
        updated: row.try_get("updated")?,
    })
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
