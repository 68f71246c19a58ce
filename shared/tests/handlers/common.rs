//! Test harness: a migrated fresh database, a market-sim, and an `App` wired to both.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use market_sim::{Knobs, RunningSim, SimConfig};
use serde_json::Value;
use shared::config::Config;
use shared::contract::{FetchBatchInput, FetchBatchOutput, SelectTickersOutput};
use shared::db;
use shared::handler::App;
use shared::model::RunId;
use shared::BackfillError;
use test_support::TestDb;

pub struct Env {
    pub db: TestDb,
    pub sim: RunningSim,
    pub app: App,
}

/// A harness with default knobs and the given extra environment.
pub async fn env(extra: &[(&str, &str)]) -> Env {
    env_with(Knobs::default(), extra).await
}

pub async fn env_with(knobs: Knobs, extra: &[(&str, &str)]) -> Env {
    env_on(Schema::Fresh, knobs, extra).await
}

/// Which database the harness starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Empty: the migrations create every table.
    Fresh,
    /// The original job's tables and rows (test_support::original), then the migrations.
    Original,
}

pub async fn env_on(schema: Schema, knobs: Knobs, extra: &[(&str, &str)]) -> Env {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    if schema == Schema::Original {
        test_support::original::create(&client).await;
    }
    db::migrate::run(&mut client)
        .await
        .expect("migrations apply");
    let sim = market_sim::spawn(SimConfig::with_knobs(knobs))
        .await
        .expect("market-sim starts");
    let app = app_for(&db, &sim, extra);
    Env { db, sim, app }
}

/// An `App` (one Lambda instance) on `db` and `sim`, with the given extra environment.
fn app_for(db: &TestDb, sim: &RunningSim, extra: &[(&str, &str)]) -> App {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url()),
        ("YAHOO_BASE_URL".into(), sim.base_url()),
        ("POLYGON_BASE_URL".into(), sim.base_url()),
        ("POLYGON_API_KEY".into(), "test-key".into()),
        ("PROVIDER_REQUESTS_PER_MINUTE".into(), "60000".into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid");
    App::new(config, None).expect("app builds")
}

impl Env {
    /// Another instance of the functions on the same database and market-sim.
    pub fn second_instance(&self, extra: &[(&str, &str)]) -> App {
        app_for(&self.db, &self.sim, extra)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.db.client().await
    }

    pub async fn select(&self, payload: Value) -> Result<SelectTickersOutput, BackfillError> {
        self.app.select_tickers(event(payload)).await
    }

    pub async fn select_ok(&self, payload: Value) -> SelectTickersOutput {
        match self.select(payload.clone()).await {
            Ok(out) => out,
            Err(e) => panic!("select-tickers {payload} failed: {e}"),
        }
    }

    /// fetch-batch with a generous budget (no deadline pressure).
    pub async fn fetch(
        &self,
        run_id: &RunId,
        batch: i32,
    ) -> Result<FetchBatchOutput, BackfillError> {
        let stop_at = tokio::time::Instant::now() + Duration::from_secs(600);
        self.app
            .fetch(
                FetchBatchInput {
                    run_id: run_id.clone(),
                    batch,
                    lease_execution: None,
                },
                stop_at,
            )
            .await
    }

    pub async fn fetch_ok(&self, run_id: &RunId, batch: i32) -> FetchBatchOutput {
        match self.fetch(run_id, batch).await {
            Ok(out) => out,
            Err(e) => panic!("fetch-batch {run_id}/{batch} failed: {e}"),
        }
    }

    /// Rows in the tables a handler may write; bad input must leave them all at zero.
    pub async fn written_rows(&self) -> i64 {
        let client = self.client().await;
        let row = client
            .query_one(
                "SELECT (SELECT COUNT(*) FROM backfill_run) + (SELECT COUNT(*) FROM backfill_progress)
                      + (SELECT COUNT(*) FROM backfill_batch) + (SELECT COUNT(*) FROM stock_price_history)",
                &[],
            )
            .await
            .expect("count rows");
        row.get(0)
    }

    /// Inserts tickers and `mentions` articles for each, as the original application writes them.
    pub async fn seed_mentions(&self, mentions: &[(&str, i64)]) {
        test_support::original::seed_mentions(&self.client().await, mentions).await;
    }

    pub async fn progress_status(&self, run_id: &RunId) -> Vec<(String, String)> {
        let client = self.client().await;
        db::progress::list(&client, run_id)
            .await
            .expect("list progress")
            .into_iter()
            .map(|r| (r.symbol, r.status))
            .collect()
    }

    /// Yahoo chart requests the sim answered for `symbol` (any status).
    pub fn yahoo_requests(&self, symbol: &str) -> u64 {
        self.sim
            .request_count(&format!("/v8/finance/chart/{symbol}"), None)
    }
}

pub fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// A new run over explicit symbols, 2026-03-09..=2026-03-11 hourly on Yahoo.
pub fn explicit(list: &[&str]) -> Value {
    serde_json::json!({
        "symbols": list,
        "start_date": "2026-03-09",
        "end_date": "2026-03-11",
        "interval": "1h",
        "provider": "yahoo",
    })
}

pub fn error_type(e: BackfillError) -> String {
    Diagnostic::from(e).error_type
}

impl Env {
    /// Sum of `records_inserted` over a run's progress rows.
    pub async fn progress_inserted(&self, run_id: &RunId) -> i64 {
        let client = self.client().await;
        db::progress::counts(&client, run_id, None)
            .await
            .expect("counts")
            .records_inserted
    }
}
