//! fetch-batch's logic around the provider port, in-process: an in-memory `FakeProvider`
//! scripts the provider's answers (faults, 429s, unknown symbols) that market-sim would need
//! fault knobs for; the database is a real PostgreSQL (its adapter is what stores the bars).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use shared::config::Config;
use shared::contract::{BatchStatus, FetchBatchInput, FetchBatchOutput};
use shared::db;
use shared::handler::App;
use shared::model::{Bar, ProviderKind, RunId};
use shared::provider::fake::FakeProvider;
use shared::provider::ProviderError;
use test_support::TestDb;

use crate::common::{event, explicit};

/// A migrated database and an `App` whose Yahoo adapter is `provider`.
struct FakeEnv {
    db: TestDb,
    app: App,
}

async fn fake_env(provider: Arc<FakeProvider>) -> FakeEnv {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    db::migrate::run(&mut client)
        .await
        .expect("migrations apply");
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url()),
        ("FAULT_PATIENCE_SECONDS", "10".to_string()),
        ("FAULT_BACKOFF_BASE_MS", "10".to_string()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid");
    let app = App::new(config, None)
        .expect("app builds")
        .with_provider(ProviderKind::Yahoo, provider);
    FakeEnv { db, app }
}

impl FakeEnv {
    /// A run over `symbols` (2026-03-09..=2026-03-11, 1h, Yahoo), one batch.
    async fn run(&self, symbols: &[&str]) -> RunId {
        self.app
            .select_tickers(event(explicit(symbols)))
            .await
            .expect("select-tickers")
            .run_id
    }

    async fn fetch(&self, run_id: &RunId) -> FetchBatchOutput {
        let stop_at = tokio::time::Instant::now() + Duration::from_secs(600);
        let input = FetchBatchInput {
            run_id: run_id.clone(),
            batch: 0,
            lease_execution: None,
        };
        self.app.fetch(input, stop_at).await.expect("fetch-batch")
    }

    /// (symbol, status, error_name) of every ticker of the run, by symbol.
    async fn progress(&self, run_id: &RunId) -> Vec<(String, String, Option<String>)> {
        let client = self.db.client().await;
        db::progress::list(&client, run_id)
            .await
            .expect("list progress")
            .into_iter()
            .map(|r| (r.symbol, r.status, r.error_name))
            .collect()
    }

    async fn stored_bars(&self, symbol: &str) -> i64 {
        let client = self.db.client().await;
        client
            .query_one(
                "SELECT COUNT(*) FROM stock_price_history WHERE symbol = $1",
                &[&symbol],
            )
            .await
            .expect("count bars")
            .get(0)
    }
}

/// Three hourly bars on 2026-03-10.
fn bars() -> Vec<Bar> {
    (14..17)
        .map(|hour| Bar {
            ts: Utc.with_ymd_and_hms(2026, 3, 10, hour, 0, 0).unwrap(),
            open: Some(10.0),
            high: Some(11.0),
            low: Some(9.0),
            close: 10.5,
            volume: Some(1000),
        })
        .collect()
}

fn status(s: &str, name: Option<&str>, symbol: &str) -> (String, String, Option<String>) {
    (symbol.to_string(), s.to_string(), name.map(str::to_string))
}

#[tokio::test]
async fn transient_faults_then_success_are_retried_within_the_patience() {
    let provider = Arc::new(
        FakeProvider::new(ProviderKind::Yahoo)
            .with_page_size(2)
            .with_bars("AAPL", bars())
            .with_errors(
                "AAPL",
                [
                    ProviderError::Unavailable("503 Service Unavailable".into()),
                    ProviderError::Garbled("the body ends mid-JSON".into()),
                ],
            )
            .with_bars("MSFT", bars()),
    );
    let env = fake_env(provider.clone()).await;
    let run_id = env.run(&["AAPL", "MSFT"]).await;

    let out = env.fetch(&run_id).await;

    assert_eq!(out.status, BatchStatus::Done, "{out:?}");
    assert_eq!((out.success, out.failed, out.pending), (2, 0, 0));
    // Two faults, then two pages.
    assert_eq!(provider.requests("AAPL"), 4);
    assert_eq!(provider.requests("MSFT"), 2);
    assert_eq!(env.stored_bars("AAPL").await, 3);
    assert_eq!(env.stored_bars("MSFT").await, 3);
}

#[tokio::test]
async fn a_429_with_retry_after_commits_the_finished_tickers_and_reports_the_wait() {
    // The real adapter pauses the shared budget on a 429, so the next try finds the budget's
    // slot far: `Throttled` for what is left of the `Retry-After`.
    let provider = Arc::new(
        FakeProvider::new(ProviderKind::Yahoo)
            .with_bars("AAPL", bars())
            .with_bars("MSFT", bars())
            .with_errors(
                "MSFT",
                [
                    ProviderError::RateLimited {
                        retry_after: Some(Duration::from_secs(42)),
                    },
                    ProviderError::Throttled {
                        wait: Duration::from_secs(41),
                    },
                ],
            )
            .with_bars("NVDA", bars()),
    );
    let env = fake_env(provider.clone()).await;
    let run_id = env.run(&["AAPL", "MSFT", "NVDA"]).await;

    let out = env.fetch(&run_id).await;

    assert_eq!(out.status, BatchStatus::RateLimited, "{out:?}");
    assert_eq!(out.retry_after_seconds, Some(41));
    assert!(!out.rate_limit_round, "AAPL finished in this invocation");
    assert_eq!(
        env.progress(&run_id).await,
        vec![
            status("success", None, "AAPL"),
            status("rate_limited", Some("RateLimited"), "MSFT"),
            status("pending", None, "NVDA"),
        ]
    );
    assert_eq!(provider.requests("NVDA"), 0, "the batch stops at the 429");
    assert_eq!(env.stored_bars("AAPL").await, 3);

    // Once the wait is over, the next invocation finishes the batch.
    let out = env.fetch(&run_id).await;
    assert_eq!(out.status, BatchStatus::Done, "{out:?}");
    assert_eq!(out.success, 3);
}

#[tokio::test]
async fn an_unknown_symbol_fails_only_that_ticker_without_a_retry() {
    let provider = Arc::new(
        FakeProvider::new(ProviderKind::Yahoo)
            .with_bars("AAPL", bars())
            .with_unknown("ZZZZ")
            .with_bars("MSFT", bars()),
    );
    let env = fake_env(provider.clone()).await;
    let run_id = env.run(&["AAPL", "ZZZZ", "MSFT"]).await;

    let out = env.fetch(&run_id).await;

    assert_eq!(out.status, BatchStatus::Done, "{out:?}");
    assert_eq!((out.success, out.failed), (2, 1));
    assert_eq!(
        env.progress(&run_id).await,
        vec![
            status("success", None, "AAPL"),
            status("success", None, "MSFT"),
            status("failed", Some("UnknownSymbol"), "ZZZZ"),
        ]
    );
    assert_eq!(
        provider.requests("ZZZZ"),
        1,
        "a ticker failure is not retried"
    );
}
