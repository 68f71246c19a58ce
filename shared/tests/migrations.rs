//! The embedded migrations against a real PostgreSQL: an empty database, a database holding the
//! original Python job's schema and rows (test_support::original, built from the original's own
//! models and migrations), a database an earlier version of this project created, and concurrent
//! migrators.

use shared::db::migrate::{self, MIGRATIONS};
use test_support::pg::{column, TestDb};
use tokio_postgres::Client;

/// The original job's tables, each with the key its rows are dumped in order of.
const ORIGINAL_TABLES: [(&str, &str); 5] = [
    ("ticker", "symbol"),
    ("article", "id"),
    ("article_ticker", "article_id, ticker"),
    ("stock_price_history", "id"),
    ("backfill_progress", "id"),
];

/// Every column of `table` with its full type, nullability and default, in column order.
async fn column_definitions(client: &Client, table: &str) -> Vec<String> {
    column(
        client,
        "SELECT format('%s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod),
                           CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'NULL' END,
                           coalesce(pg_get_expr(d.adbin, d.adrelid), 'no default'))
               FROM pg_attribute a
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum",
        &[&table],
    )
    .await
}

/// The table's constraints and indexes, as the catalog prints them.
async fn keys_and_indexes(client: &Client, table: &str) -> Vec<String> {
    column(
        client,
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
              WHERE conrelid = to_regclass($1)
             UNION ALL
             SELECT indexdef FROM pg_indexes
              WHERE schemaname = current_schema() AND tablename = $1
             ORDER BY 1",
        &[&table],
    )
    .await
}

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
    column(
        client,
        "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY table_name",
        &[],
    )
    .await
}

async fn columns(client: &Client, table: &str) -> Vec<String> {
    column(
        client,
        "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        &[&table],
    )
    .await
}

/// Every row of `table`, restricted to `cols`, as JSON text in key order.
async fn dump(client: &Client, table: &str, key: &str, cols: &[String]) -> Vec<String> {
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    column(
        client,
        &format!("SELECT row_to_json(t)::text FROM (SELECT {list} FROM {table} ORDER BY {key}) t"),
        &[],
    )
    .await
}

async fn recorded_versions(client: &Client) -> Vec<i32> {
    column(
        client,
        "SELECT version FROM backfill_schema_migrations ORDER BY version",
        &[],
    )
    .await
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
    test_support::original::create(&client).await;

    let mut definitions = Vec::new();
    for (table, _) in ORIGINAL_TABLES {
        definitions.push((
            table,
            column_definitions(&client, table).await,
            keys_and_indexes(&client, table).await,
        ));
    }
    let mut before = Vec::new();
    for (table, key) in ORIGINAL_TABLES {
        let cols = columns(&client, table).await;
        let rows = dump(&client, table, key, &cols).await;
        assert!(!rows.is_empty(), "the fixture must fill {table}");
        before.push((table, key, cols, rows));
    }

    assert_eq!(migrate::run(&mut client).await.unwrap(), all_versions());

    // Every original column keeps its type, nullability and default; every original key and
    // index stays (this system adds its own columns and one index of its own).
    for (table, columns, keys) in &definitions {
        let now = column_definitions(&client, table).await;
        assert_eq!(
            &now[..columns.len()],
            &columns[..],
            "columns of {table} changed"
        );
        let now_keys = keys_and_indexes(&client, table).await;
        for key in keys {
            assert!(now_keys.contains(key), "{table} lost {key}: {now_keys:?}");
        }
        let added: Vec<&String> = now_keys.iter().filter(|k| !keys.contains(k)).collect();
        let allowed = if *table == "backfill_progress" {
            vec!["idx_backfill_progress_run_batch"]
        } else {
            vec![]
        };
        assert!(
            added.iter().all(|k| allowed.iter().any(|a| k.contains(a))),
            "migrations added {added:?} to the user's {table}"
        );
    }
    assert!(
        migrate::lossy_price_columns(&client)
            .await
            .unwrap()
            .is_empty(),
        "the original's prices are double precision"
    );

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
            "INSERT INTO stock_price_history (symbol, date, close_price, created_at)
                 VALUES ('AAPL', '2025-10-01 13:30:00+00', 1, now())
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

/// The original tables as the migrations create them from nothing: the original's own
/// definitions (DESIGN.md "Data"), double precision prices and all, without the foreign key from
/// prices to `ticker` (a standalone database backfills any symbol it is given).
#[tokio::test]
async fn a_database_created_from_nothing_has_the_original_columns() {
    let original = TestDb::new().await;
    let original_client = original.client().await;
    test_support::original::create(&original_client).await;
    let fresh = TestDb::new().await;
    let mut client = fresh.client().await;
    migrate::run(&mut client).await.unwrap();

    for (table, _) in ORIGINAL_TABLES {
        let theirs = column_definitions(&original_client, table).await;
        let ours = column_definitions(&client, table).await;
        assert_eq!(&ours[..theirs.len()], &theirs[..], "columns of {table}");
    }
    assert_eq!(
        shared::db::tickers::price_foreign_key(&client)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        shared::db::tickers::price_foreign_key(&original_client)
            .await
            .unwrap()
            .as_deref(),
        Some("stock_price_history_symbol_fkey")
    );
}

/// A database that this project's first V1 created holds NUMERIC(14,4) prices; V4 makes them
/// double precision and keeps every stored value.
#[tokio::test]
async fn this_projects_own_numeric_prices_become_double_precision() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    client
        .batch_execute(include_str!("fixtures/v1_before_original_schema.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO stock_price_history (symbol, date, open_price, high_price, low_price, close_price, volume)
                 VALUES ('NVDA', '2021-06-01 13:30:00+00', 0.1234, 0.125, 0.12, 0.1244, 100);",
        )
        .await
        .unwrap();
    // Record V1-V3 as applied, as the earlier version did; V4 is what runs now.
    migrate::run(&mut client).await.unwrap();
    client
        .batch_execute(
            "DELETE FROM backfill_schema_migrations WHERE version = 4;
             ALTER TABLE stock_price_history
                 ALTER COLUMN open_price TYPE NUMERIC(14, 4), ALTER COLUMN high_price TYPE NUMERIC(14, 4),
                 ALTER COLUMN low_price TYPE NUMERIC(14, 4), ALTER COLUMN close_price TYPE NUMERIC(14, 4);",
        )
        .await
        .unwrap();
    assert_eq!(
        migrate::lossy_price_columns(&client).await.unwrap().len(),
        4
    );

    assert_eq!(migrate::run(&mut client).await.unwrap(), vec![4]);

    assert!(migrate::lossy_price_columns(&client)
        .await
        .unwrap()
        .is_empty());
    let row = client
        .query_one(
            "SELECT open_price, close_price FROM stock_price_history WHERE symbol = 'NVDA'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, f64>(0), 0.1234);
    assert_eq!(row.get::<_, f64>(1), 0.1244);
}

/// A user's own price columns that are not double precision stay as they are, and are reported.
#[tokio::test]
async fn a_users_numeric_prices_are_never_retyped_and_are_reported() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE stock_price_history (
                 id SERIAL PRIMARY KEY, symbol VARCHAR(20) NOT NULL, date TIMESTAMPTZ NOT NULL,
                 open_price NUMERIC(12, 4), high_price NUMERIC(12, 4), low_price NUMERIC(12, 4),
                 close_price NUMERIC(12, 4) NOT NULL, volume BIGINT,
                 created_at TIMESTAMPTZ DEFAULT now(),
                 CONSTRAINT uq_stock_price_symbol_date UNIQUE (symbol, date));",
        )
        .await
        .unwrap();
    let before = column_definitions(&client, "stock_price_history").await;

    migrate::run(&mut client).await.unwrap();

    let after = column_definitions(&client, "stock_price_history").await;
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(
        migrate::lossy_price_columns(&client).await.unwrap(),
        ["open_price", "high_price", "low_price", "close_price"]
            .map(|c| (c.to_string(), "numeric(12,4)".to_string()))
            .to_vec()
    );
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
