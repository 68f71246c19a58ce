//! The write path against a plain binary COPY: the same rows, the same server, fresh databases.
//!
//! (i) `shared::db::prices::upsert_bars`, one transaction per symbol as fetch-batch commits a
//! ticker; (ii) `COPY stock_price_history (…) FROM STDIN BINARY` of the same rows, also one
//! transaction per symbol, so that both do the same number of commits and the ratio is the cost
//! of the statement (staging, conflict handling) over a bare load. A single COPY of every row is
//! reported too, without a goal. Each is timed on its own freshly migrated database (tickers
//! registered: prices reference `ticker`), three times; the medians are compared.

use std::pin::pin;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use shared::model::{Bar, Symbol};
use test_support::TestDb;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

pub const SYMBOLS: usize = 100;
pub const BARS_PER_SYMBOL: usize = 2_000;
pub const REPEATS: usize = 3;

const COPY_SQL: &str = "COPY stock_price_history \
    (symbol, date, open_price, high_price, low_price, close_price, volume, created_at) \
    FROM STDIN BINARY";
const COPY_TYPES: [Type; 8] = [
    Type::VARCHAR,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT8,
    Type::TIMESTAMPTZ,
];

/// Rows per second of each way, medians of [`REPEATS`].
#[derive(Debug, Clone, Copy)]
pub struct WriteRates {
    pub rows: usize,
    pub upsert: f64,
    pub copy_per_symbol: f64,
    pub copy_one: f64,
}

/// Hourly bars with varied prices, `BARS_PER_SYMBOL` per symbol.
fn data() -> anyhow::Result<Vec<(Symbol, Vec<Bar>)>> {
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2015, 1, 2, 14, 0, 0).unwrap();
    (0..SYMBOLS)
        .map(|s| {
            let symbol = Symbol::parse(&format!("W{s:03}"))?;
            let bars = (0..BARS_PER_SYMBOL)
                .map(|i| {
                    let p = 10.0 + s as f64 + (i as f64 * 0.37).sin() * 3.0 + i as f64 * 1e-4;
                    Bar {
                        ts: start + Span::hours(i as i64),
                        open: Some(p),
                        high: Some(p + 0.25),
                        low: Some(p - 0.25),
                        close: p + 0.01,
                        volume: Some(1_000 + (i as i64 * 37) % 5_000),
                    }
                })
                .collect();
            Ok((symbol, bars))
        })
        .collect()
}

/// A fresh, migrated database with the symbols in `ticker`.
async fn fresh(data: &[(Symbol, Vec<Bar>)]) -> anyhow::Result<(TestDb, Client)> {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    shared::db::migrate::run(&mut client)
        .await
        .context("applying the migrations")?;
    let symbols: Vec<&str> = data.iter().map(|(s, _)| s.as_str()).collect();
    client
        .execute(
            "INSERT INTO ticker (symbol, name, aliases, sources, is_sp500)
             SELECT s, s, '[]'::jsonb, '[]'::jsonb, false FROM UNNEST($1::text[]) AS s",
            &[&symbols],
        )
        .await
        .context("registering the bench's tickers")?;
    Ok((db, client))
}

async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[(Symbol, Vec<Bar>)],
) -> anyhow::Result<()> {
    let sink = tx.copy_in(COPY_SQL).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &COPY_TYPES));
    let now = Utc::now();
    for (symbol, bars) in rows {
        let symbol = symbol.as_str();
        for b in bars {
            let row: [&(dyn ToSql + Sync); 8] = [
                &symbol, &b.ts, &b.open, &b.high, &b.low, &b.close, &b.volume, &now,
            ];
            writer.as_mut().write(&row).await?;
        }
    }
    writer.finish().await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Way {
    Upsert,
    CopyPerSymbol,
    CopyOne,
}

/// Seconds to write every row one way, on a fresh database.
async fn time(way: Way, data: &[(Symbol, Vec<Bar>)]) -> anyhow::Result<f64> {
    let (_db, mut client) = fresh(data).await?;
    let started = Instant::now();
    match way {
        Way::Upsert => {
            for (symbol, bars) in data {
                let tx = client.transaction().await?;
                shared::db::prices::upsert_bars(&tx, symbol, bars).await?;
                tx.commit().await?;
            }
        }
        Way::CopyPerSymbol => {
            for one in data.chunks(1) {
                let tx = client.transaction().await?;
                copy_rows(&tx, one).await?;
                tx.commit().await?;
            }
        }
        Way::CopyOne => {
            let tx = client.transaction().await?;
            copy_rows(&tx, data).await?;
            tx.commit().await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM stock_price_history", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        stored as usize == SYMBOLS * BARS_PER_SYMBOL,
        "{stored} rows stored, expected {}",
        SYMBOLS * BARS_PER_SYMBOL
    );
    Ok(seconds)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub async fn measure() -> anyhow::Result<WriteRates> {
    let data = data()?;
    let rows = SYMBOLS * BARS_PER_SYMBOL;
    let mut secs = [Vec::new(), Vec::new(), Vec::new()];
    // Interleaved, so a slow moment of the machine does not fall on one way only.
    for _ in 0..REPEATS {
        for (i, way) in [Way::Upsert, Way::CopyPerSymbol, Way::CopyOne]
            .into_iter()
            .enumerate()
        {
            secs[i].push(time(way, &data).await?);
        }
    }
    let rate = |s: &Vec<f64>| rows as f64 / median(s.clone());
    Ok(WriteRates {
        rows,
        upsert: rate(&secs[0]),
        copy_per_symbol: rate(&secs[1]),
        copy_one: rate(&secs[2]),
    })
}
