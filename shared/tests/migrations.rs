//! The embedded migrations against a real PostgreSQL: an empty database, a database holding the
//! original Python job's schema and rows, and concurrent migrators.

use shared::db::migrate::{self, MIGRATIONS};
use test_support::pg::TestDb;
use tokio_postgres::Client;

const ORIGINAL_SCHEMA: &str = include_str!("fixtures/original_schema.sql");

/// The original job's tables, each with the key its rows are dumped in order of.
const ORIGINAL_TABLES: [(&str, &str); 5] = [
    ("ticker", "symbol"),
    ("article", "id"),
    ("article_ticker", "id"),
    ("stock_price_history", "id"),
    ("backfill_progress", "id"),
];

const ALL_TABLES: [&str; 7] = [
    "ticker",
    "article",
    "article_ticker",
    "stock_price_history",
    "backfill_progress",
    "backfill_run",
    "backfill_batch",
];

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|(version, _, _)| *version).collect()
}

async fn public_tables(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY table_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn columns(client: &Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Every row of `table`, restricted to `cols`, as JSON text in key order.
async fn dump(client: &Client, table: &str, key: &str, cols: &[String]) -> Vec<String> {
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    client
        .query(
            &format!(
                "SELECT row_to_json(t)::text FROM (SELECT {list} FROM {table} ORDER BY {key}) t"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn recorded_versions(client: &Client) -> Vec<i32> {
    client
        .query(
            "SELECT version FROM backfill_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent() {
    let db = TestDb::new().await;
    let mut client = db.client().await;

    let first = migrate::run(&mut client).await.unwrap();
    assert_eq!(first, all_versions());
    let second = migrate::run(&mut client).await.unwrap();
    assert_eq!(second, Vec::<i32>::new());

    let tables = public_tables(&client).await;
    for table in ALL_TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }
    assert_eq!(recorded_versions(&client).await, all_versions());
}

#[tokio::test]
async fn migrating_the_original_schema_keeps_every_row() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    client.batch_execute(ORIGINAL_SCHEMA).await.unwrap();

    let mut before = Vec::new();
    for (table, key) in ORIGINAL_TABLES {
        let cols = columns(&client, table).await;
        let rows = dump(&client, table, key, &cols).await;
        assert!(!rows.is_empty(), "the fixture must fill {table}");
        before.push((table, key, cols, rows));
    }

    assert_eq!(migrate::run(&mut client).await.unwrap(), all_versions());

    for (table, key, cols, rows) in &before {
        let after = dump(&client, table, key, cols).await;
        assert_eq!(&after, rows, "rows of {table} changed");
        let now = columns(&client, table).await;
        assert_eq!(
            &now[..cols.len()],
            &cols[..],
            "original columns of {table} changed"
        );
    }

    let progress = columns(&client, "backfill_progress").await;
    for col in [
        "batch",
        "attempts",
        "error_name",
        "records_updated",
        "bars_skipped",
        "last_bar_at",
        "updated_at",
    ] {
        assert!(
            progress.iter().any(|c| c == col),
            "backfill_progress.{col} missing: {progress:?}"
        );
    }
    // The original rows read as "never attempted by this system" in the new columns.
    let defaults = client
        .query_one(
            "SELECT count(*) FILTER (WHERE attempts = 0 AND records_updated = 0 AND bars_skipped = 0
                                       AND batch IS NULL AND error_name IS NULL
                                       AND last_bar_at IS NULL AND updated_at IS NULL),
                    count(*)
             FROM backfill_progress",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(defaults.get::<_, i64>(0), defaults.get::<_, i64>(1));

    let prices = columns(&client, "stock_price_history").await;
    assert!(prices.iter().any(|c| c == "updated_at"), "{prices:?}");

    let tables = public_tables(&client).await;
    for table in ["backfill_run", "backfill_batch"] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }

    // The keys this system's upserts rely on hold on the original tables' own constraints.
    client
        .batch_execute(
            "INSERT INTO stock_price_history (symbol, date, close_price)
                 VALUES ('AAPL', '2025-10-01 13:30:00+00', 1)
                 ON CONFLICT (symbol, date) DO NOTHING;
             INSERT INTO backfill_progress (run_id, symbol, status)
                 VALUES ('backfill-20251005-000000-a1b2c3d4', 'AAPL', 'pending')
                 ON CONFLICT (run_id, symbol) DO NOTHING;",
        )
        .await
        .unwrap();

    assert_eq!(migrate::run(&mut client).await.unwrap(), Vec::<i32>::new());
    for (table, key, cols, rows) in &before {
        assert_eq!(
            &dump(&client, table, key, cols).await,
            rows,
            "rows of {table} changed by a second migration"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_once() {
    let db = TestDb::new().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(db.client().await);
    }

    let runs = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            migrate::run(&mut client)
                .await
                .map(|applied| (applied, client))
        })
    });
    let mut applied = Vec::new();
    let mut client = None;
    for run in runs.collect::<Vec<_>>() {
        let (versions, c) = run
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a concurrent migration failed: {e}"));
        applied.extend(versions);
        client = Some(c);
    }

    // Each version was applied by exactly one of the callers, and recorded once.
    applied.sort();
    assert_eq!(applied, all_versions());
    let client = client.unwrap();
    assert_eq!(recorded_versions(&client).await, all_versions());
    let tables = public_tables(&client).await;
    for table in ALL_TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }
}
