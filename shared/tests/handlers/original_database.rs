//! The handlers on the original job's own database (test_support::original: its exact tables,
//! keys and rows), where `article_ticker` has no time of its own, `stock_price_history.created_at`
//! is NOT NULL without a default, prices are double precision and reference `ticker`.

use market_sim::{Interval, Knobs, Provider};
use serde_json::json;
use shared::contract::BatchStatus;
use shared::db;

use crate::common::*;

async fn original() -> Env {
    env_on(Schema::Original, Knobs::default(), &[]).await
}

/// The original's rows of `stock_price_history`, which other jobs wrote and nothing here may touch.
async fn original_price_rows(env: &Env) -> Vec<String> {
    test_support::original::price_rows(&env.client().await).await
}

#[tokio::test]
async fn min_articles_and_top_n_select_from_the_original_tables() {
    let env = original().await;
    // The fixture: AAPL in 2 articles, BRK.B and MSFT in 1 each, all published in October 2025.
    let by_threshold = env
        .select_ok(json!({"min_articles": 2, "start_date": "2026-03-09", "end_date": "2026-03-11"}))
        .await;
    assert_eq!(env.planned_symbols(&by_threshold.run_id).await, ["AAPL"]);
    let top = env
        .select_ok(json!({"top_n": 2, "start_date": "2026-03-09", "end_date": "2026-03-11"}))
        .await;
    assert_eq!(env.planned_symbols(&top.run_id).await, ["AAPL", "BRK.B"]);

    // Recency counts by the article's published_at: only MSFT was mentioned this week.
    test_support::original::seed_mentions(&env.client().await, &[("MSFT", 1)]).await;
    let recent = env
        .select_ok(json!({"top_n": 2, "mentions_within_days": 7, "start_date": "2026-03-09", "end_date": "2026-03-11"}))
        .await;
    assert_eq!(env.planned_symbols(&recent.run_id).await, ["MSFT"]);
}

#[tokio::test]
async fn fetched_bars_are_stored_exactly_with_created_at_beside_the_original_rows() {
    let env = original().await;
    let before = original_price_rows(&env).await;
    let plan = env.select_ok(explicit(&["AAPL", "SAP.DE"])).await;
    let out = env.fetch_ok(&plan.run_id, 0).await;
    assert_eq!(
        (out.status, out.success, out.failed),
        (BatchStatus::Done, 2, 0)
    );

    let client = env.client().await;
    for symbol in ["AAPL", "SAP.DE"] {
        let truth = env.sim.ground_truth(
            Provider::Yahoo,
            symbol,
            Interval::Hour,
            date("2026-03-09"),
            date("2026-03-11"),
        );
        assert!(!truth.is_empty(), "{symbol}");
        let rows = client
            .query(
                "SELECT date, open_price, high_price, low_price, close_price, volume, created_at
                   FROM stock_price_history
                  WHERE symbol = $1 AND date >= '2026-03-09' ORDER BY date",
                &[&symbol],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), truth.len(), "{symbol}");
        for (row, bar) in rows.iter().zip(&truth) {
            let stored: (chrono::DateTime<chrono::Utc>, f64, f64, f64, f64, i64) = (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            );
            // Bit for bit: double precision keeps every digit the provider sent.
            assert_eq!(
                stored,
                (bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume),
                "{symbol}"
            );
            let created: chrono::DateTime<chrono::Utc> = row.get(6);
            assert!(created > chrono::Utc::now() - chrono::Duration::minutes(10));
        }
    }
    assert_eq!(original_price_rows(&env).await, before);
}

#[tokio::test]
async fn a_listed_symbol_missing_from_ticker_fails_before_any_provider_call() {
    let env = original().await;
    let plan = env.select_ok(explicit(&["AAPL", "NEWCO"])).await;
    let rows = db::progress::list(&env.client().await, &plan.run_id)
        .await
        .unwrap();
    let newco = rows.iter().find(|r| r.symbol == "NEWCO").unwrap();
    assert_eq!(newco.status, "failed");
    assert_eq!(newco.error_name.as_deref(), Some("NotInTickerTable"));
    let message = newco.error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("stock_price_history_symbol_fkey") && message.contains("register"),
        "{message}"
    );
    assert_eq!(newco.batch, None);

    // NEWCO is in no batch: the batch holds AAPL alone, the run counts NEWCO as failed.
    let out = env.fetch_ok(&plan.run_id, 0).await;
    assert_eq!(
        (out.status, out.success, out.failed),
        (BatchStatus::Done, 1, 0)
    );
    let run = db::progress::counts(&env.client().await, &plan.run_id, None)
        .await
        .unwrap();
    assert_eq!((run.success, run.failed, run.unfinished()), (1, 1, 0));
    assert_eq!(env.yahoo_requests("NEWCO"), 0);
    let registered: i64 = env
        .client()
        .await
        .query_one("SELECT count(*) FROM ticker WHERE symbol = 'NEWCO'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(registered, 0, "nothing registers a ticker unless asked");
}

#[tokio::test]
async fn register_tickers_adds_what_the_original_requires_and_fetches_it() {
    let env = original().await;
    let mut payload = explicit(&["NEWCO"]);
    payload["register_tickers"] = json!(true);
    let plan = env.select_ok(payload).await;
    let row = env
        .client()
        .await
        .query_one(
            "SELECT name, aliases::text, sources::text, is_sp500, exchange, cik
               FROM ticker WHERE symbol = 'NEWCO'",
            &[],
        )
        .await
        .unwrap();
    let got: (String, String, String, bool, Option<String>, Option<String>) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    assert_eq!(
        got,
        ("NEWCO".into(), "[]".into(), "[]".into(), false, None, None)
    );
    let out = env.fetch_ok(&plan.run_id, 0).await;
    assert_eq!((out.success, out.failed), (1, 0));
    assert!(out.records_inserted > 0);
}

#[tokio::test]
async fn a_resume_settles_unlisted_tickers_again_and_can_register_them() {
    let env = original().await;
    let plan = env.select_ok(explicit(&["AAPL", "NEWCO"])).await;
    env.fetch_ok(&plan.run_id, 0).await;

    // Still missing: settled again, nothing to fetch.
    let again = env.select_ok(json!({"run_id": plan.run_id.as_str()})).await;
    assert!(again.batches.is_empty(), "{again:?}");
    let status = env.progress_status(&plan.run_id).await;
    assert!(
        status.contains(&("NEWCO".into(), "failed".into())),
        "{status:?}"
    );

    let registered = env
        .select_ok(json!({"run_id": plan.run_id.as_str(), "register_tickers": true}))
        .await;
    assert_eq!(registered.batches.len(), 1);
    let out = env
        .fetch_ok(&plan.run_id, registered.batches[0].batch)
        .await;
    assert_eq!((out.success, out.failed), (1, 0));
    assert_eq!(
        env.progress_status(&plan.run_id).await,
        [
            ("AAPL".to_string(), "success".to_string()),
            ("NEWCO".to_string(), "success".to_string())
        ]
    );
}

#[tokio::test]
async fn a_constraint_violation_fails_only_that_ticker_as_database_rejected() {
    let env = original().await;
    // A rule of the user's own that MSFT's new rows break (existing rows are not checked).
    env.client()
        .await
        .batch_execute(
            "ALTER TABLE stock_price_history
                 ADD CONSTRAINT no_new_msft CHECK (symbol <> 'MSFT') NOT VALID",
        )
        .await
        .unwrap();
    let plan = env.select_ok(explicit(&["AAPL", "MSFT"])).await;
    let out = env.fetch_ok(&plan.run_id, 0).await;
    assert_eq!(
        (out.status, out.success, out.failed),
        (BatchStatus::Done, 1, 1)
    );
    let rows = db::progress::list(&env.client().await, &plan.run_id)
        .await
        .unwrap();
    let msft = rows.iter().find(|r| r.symbol == "MSFT").unwrap();
    assert_eq!(msft.error_name.as_deref(), Some("DatabaseRejected"));
    let message = msft.error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("no_new_msft") && message.contains("23514"),
        "{message}"
    );
    assert_eq!(msft.attempts, 1, "tried once, not retried");
}

#[tokio::test]
async fn an_undefined_column_is_database_rejected_and_not_retryable() {
    let env = original().await;
    let plan = env.select_ok(explicit(&["AAPL"])).await;
    env.client()
        .await
        .batch_execute("ALTER TABLE stock_price_history RENAME COLUMN volume TO traded_volume")
        .await
        .unwrap();
    let err = env.fetch(&plan.run_id, 0).await.unwrap_err();
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert_eq!(error_type(err), "DatabaseRejected");
    assert!(
        message.contains("volume") && message.contains("42703"),
        "{message}"
    );
    // Nothing was half-written: the ticker is still to do once the column is back.
    assert_eq!(
        env.progress_status(&plan.run_id).await,
        [("AAPL".to_string(), "pending".to_string())]
    );
}

#[tokio::test]
async fn a_lost_connection_is_database_unavailable_and_retryable() {
    let env = env_on(
        Schema::Original,
        Knobs::default(),
        // Nothing listens on port 1.
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")],
    )
    .await;
    let err = env.select(explicit(&["AAPL"])).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(error_type(err), "DatabaseUnavailable");
}
