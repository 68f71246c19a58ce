//! The SQL modules against a real PostgreSQL, one fresh database per test.

use chrono::{DateTime, TimeZone, Utc};
use shared::db::{self, prices, progress};
use shared::model::{Bar, RunId, Symbol};
use test_support::TestDb;

async fn migrated() -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    db::migrate::run(&mut client).await.unwrap();
    (db, client)
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, hour, 30, 0).unwrap()
}

fn bar(hour: u32, close: f64) -> Bar {
    Bar {
        ts: at(hour),
        open: Some(close - 1.0),
        high: Some(close + 1.0),
        low: Some(close - 2.0),
        close,
        volume: Some(1000),
    }
}

#[tokio::test]
async fn upsert_counts_inserts_exactly_and_collapses_duplicates_within_a_batch() {
    let (_db, client) = migrated().await;
    let aapl = Symbol::parse("AAPL").unwrap();
    // Hour 14 appears twice: the later value wins and is one row.
    let bars = [bar(13, 10.0), bar(14, 11.0), bar(14, 12.5), bar(15, 13.0)];

    let counts = prices::upsert_bars(&client, &aapl, &bars).await.unwrap();

    assert_eq!((counts.inserted, counts.updated), (3, 0));
    let stored = prices::stored_bars(&client, "AAPL", at(0), at(23))
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|b| b.close).collect::<Vec<_>>(),
        [10.0, 12.5, 13.0]
    );
}

#[tokio::test]
async fn upsert_rewrites_only_rows_whose_values_changed() {
    let (_db, client) = migrated().await;
    let aapl = Symbol::parse("AAPL").unwrap();
    prices::upsert_bars(&client, &aapl, &[bar(13, 10.0), bar(14, 11.0)])
        .await
        .unwrap();

    let same = prices::upsert_bars(&client, &aapl, &[bar(13, 10.0), bar(14, 11.0)])
        .await
        .unwrap();
    assert_eq!((same.inserted, same.updated), (0, 0));

    let mut changed_volume = bar(14, 11.0);
    changed_volume.volume = Some(999);
    let counts = prices::upsert_bars(
        &client,
        &aapl,
        &[bar(13, 10.0), changed_volume, bar(15, 12.0)],
    )
    .await
    .unwrap();
    assert_eq!((counts.inserted, counts.updated), (1, 1));

    // Double precision keeps every digit: a change in the fifth decimal is a change (the
    // NUMERIC(14,4) of earlier versions rounded it away).
    let counts = prices::upsert_bars(&client, &aapl, &[bar(13, 10.000_01)])
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated), (0, 1));
    let stored = prices::stored_bars(&client, "AAPL", at(13), at(14))
        .await
        .unwrap();
    assert_eq!(stored[0].close.to_bits(), 10.000_01f64.to_bits());
}

#[tokio::test]
async fn bars_of_other_symbols_are_untouched() {
    let (_db, client) = migrated().await;
    prices::upsert_bars(&client, &Symbol::parse("MSFT").unwrap(), &[bar(13, 50.0)])
        .await
        .unwrap();
    let counts = prices::upsert_bars(&client, &Symbol::parse("AAPL").unwrap(), &[bar(13, 10.0)])
        .await
        .unwrap();
    assert_eq!(counts.inserted, 1);
    assert_eq!(
        prices::stored_bars(&client, "MSFT", at(0), at(23))
            .await
            .unwrap()[0]
            .close,
        50.0
    );
}

#[tokio::test]
async fn claim_next_skips_rows_locked_by_another_transaction() {
    let (db, mut first) = migrated().await;
    let mut second = db.client().await;
    let run = RunId::parse("backfill-20260309-120000-0a1b2c3d").unwrap();
    let symbols: Vec<Symbol> = ["A", "B"]
        .iter()
        .map(|s| Symbol::parse(s).unwrap())
        .collect();
    progress::insert_plan(&first, &run, &symbols, 10, 0)
        .await
        .unwrap();

    let tx1 = first.transaction().await.unwrap();
    let a = progress::claim_next(&tx1, &run, 0, &[])
        .await
        .unwrap()
        .unwrap();
    let tx2 = second.transaction().await.unwrap();
    let b = progress::claim_next(&tx2, &run, 0, &[])
        .await
        .unwrap()
        .unwrap();
    let none = progress::claim_next(&tx2, &run, 0, &[b.symbol.to_string()])
        .await
        .unwrap();

    assert_eq!((a.symbol.as_str(), b.symbol.as_str()), ("A", "B"));
    assert_eq!(
        none, None,
        "A is held by the first transaction, B was already tried"
    );
    tx1.rollback().await.unwrap();
    let again = progress::claim_next(&tx2, &run, 0, &[b.symbol.to_string()])
        .await
        .unwrap();
    assert_eq!(
        again.map(|c| c.symbol.to_string()),
        Some("A".to_string()),
        "released on rollback"
    );
}
