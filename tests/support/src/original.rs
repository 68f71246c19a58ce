//! The original job's database: its exact schema (with rows as it leaves them) and rows written
//! the way the original application writes them, so that tests run against the database users
//! really have. The facts behind the schema are in DESIGN.md "Data" and issue 7; the file says
//! which.
//!
//! [`seed_mentions`] works on that schema and on the one the migrations create from nothing: both
//! have the original's columns.

use tokio_postgres::Client;

/// The original's five tables with a few rows each (see the file's header).
pub const SCHEMA: &str = include_str!("../fixtures/original_schema.sql");

/// Creates the original's tables and rows in an empty database.
pub async fn create(client: &Client) {
    client
        .batch_execute(SCHEMA)
        .await
        .unwrap_or_else(|e| panic!("test-support: the original schema did not apply: {e}"));
}

/// Adds each symbol to `ticker` (if absent) as the original's ticker loader does (NOT NULL
/// `name`, `aliases`, `sources`, `is_sp500`), and `count` articles published `age_days` ago that
/// mention it, as its article pipeline does (`article.created_at` set by the writer; one
/// `article_ticker` row per article with a confidence).
pub async fn seed_mentions_aged(client: &Client, mentions: &[(&str, i64)], age_days: i32) {
    for (symbol, count) in mentions {
        client
            .execute(
                "INSERT INTO ticker (symbol, name, aliases, exchange, sources, is_sp500)
                 VALUES ($1, $1, '[]'::jsonb, NULL, '[\"test\"]'::jsonb, false)
                 ON CONFLICT (symbol) DO NOTHING",
                &[symbol],
            )
            .await
            .unwrap_or_else(|e| panic!("test-support: inserting ticker {symbol}: {e}"));
        let count = i32::try_from(*count).unwrap_or(i32::MAX);
        client
            .execute(
                "WITH a AS (
                     INSERT INTO article (source, url, published_at, title, created_at)
                     SELECT 'test', 'https://news.example/' || $1 || '/' || gen_random_uuid(),
                            now() - make_interval(days => $3::int),
                            'news ' || g || ' about ' || $1, now()
                       FROM generate_series(1, $2::int) g
                     RETURNING id
                 )
                 INSERT INTO article_ticker (article_id, ticker, confidence, matched_terms)
                 SELECT id, $1, 0.9, json_build_array($1::text) FROM a",
                &[symbol, &count, &age_days],
            )
            .await
            .unwrap_or_else(|e| panic!("test-support: inserting mentions of {symbol}: {e}"));
    }
}

/// [`seed_mentions_aged`] with articles published now.
pub async fn seed_mentions(client: &Client, mentions: &[(&str, i64)]) {
    seed_mentions_aged(client, mentions, 0).await;
}

/// The fixture's `stock_price_history` rows (which other jobs of the original application wrote,
/// all dated before 2026), as JSON text in id order: what nothing of ours may change.
pub async fn price_rows(client: &Client) -> Vec<String> {
    crate::pg::column(
        client,
        "SELECT row_to_json(s)::text FROM (
             SELECT id, symbol, date, open_price, high_price, low_price, close_price, volume, created_at
               FROM stock_price_history WHERE date < '2026-01-01' ORDER BY id) s",
        &[],
    )
    .await
}
