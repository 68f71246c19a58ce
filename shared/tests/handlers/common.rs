//! Test harness: a migrated fresh database, a market-sim, and an `App` wired to both.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use market_sim::{Knobs, Provider, RunningSim, SimConfig};
use serde_json::Value;
use shared::config::Config;
use shared::contract::{
    FetchBatchInput, FetchBatchOutput, FinalizeRunInput, FinalizeRunOutput, SelectTickersOutput,
};
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
        self.fetch_until(run_id, batch, stop_at).await
    }

    /// fetch-batch that starts no ticker after `stop_at` (a Lambda deadline near or past).
    pub async fn fetch_until(
        &self,
        run_id: &RunId,
        batch: i32,
        stop_at: tokio::time::Instant,
    ) -> Result<FetchBatchOutput, BackfillError> {
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

    /// select-tickers, then fetch-batch of the first batch (`0` for a new run).
    pub async fn select_and_fetch(
        &self,
        payload: Value,
    ) -> (SelectTickersOutput, FetchBatchOutput) {
        let run = self.select_ok(payload).await;
        let first = run.batches.first().map_or(0, |b| b.batch);
        let fetched = self.fetch_ok(&run.run_id, first).await;
        (run, fetched)
    }

    /// select-tickers, fetch-batch once for every planned batch, then finalize-run: one
    /// execution of the state machine in which nothing is retried or waited for.
    pub async fn run_to_end(&self, payload: Value) -> (SelectTickersOutput, FinalizeRunOutput) {
        let run = self.select_ok(payload).await;
        for batch in &run.batches {
            self.fetch_ok(&run.run_id, batch.batch).await;
        }
        let out = self.finalize_ok(&run.run_id).await;
        (run, out)
    }

    /// finalize-run as the state machine calls it after a Map that reported nothing.
    pub async fn finalize_ok(&self, run_id: &RunId) -> FinalizeRunOutput {
        let input = FinalizeRunInput {
            run_id: run_id.clone(),
            lease_execution: None,
            batch_results: None,
        };
        match self.app.finalize(input).await {
            Ok(out) => out,
            Err(e) => panic!("finalize-run {run_id} failed: {e}"),
        }
    }

    /// Runs `sql` with the run's id as `$1`: stored rows as something else left them.
    pub async fn execute_for_run(&self, sql: &str, run_id: &RunId) {
        self.client()
            .await
            .execute(sql, &[&run_id.as_str()])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows in `stock_price_history`.
    pub async fn stored_rows(&self) -> i64 {
        self.client()
            .await
            .query_one("SELECT COUNT(*) FROM stock_price_history", &[])
            .await
            .expect("count rows")
            .get(0)
    }

    /// [`Env::assert_stored_equals_truth`] for the hourly bars of an [`explicit`] or [`polygon`]
    /// run ([`THREE_DAYS`]).
    pub async fn assert_stored_hourly(&self, provider: Provider, symbol: &str) -> usize {
        self.assert_stored_equals_truth(provider, market_sim::Interval::Hour, symbol, THREE_DAYS)
            .await
    }

    /// Asserts that the stored bars of `symbol` in the UTC days `start..=end` equal market-sim's
    /// ground truth (and that there is some); returns how many bars that is.
    pub async fn assert_stored_equals_truth(
        &self,
        provider: Provider,
        interval: market_sim::Interval,
        symbol: &str,
        (start, end): (&str, &str),
    ) -> usize {
        let truth = self
            .sim
            .ground_truth(provider, symbol, interval, date(start), date(end));
        let client = self.client().await;
        let from = date(start).and_hms_opt(0, 0, 0).unwrap().and_utc();
        let to = date(end)
            .succ_opt()
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let stored = db::prices::stored_bars(&client, symbol, from, to)
            .await
            .unwrap();
        assert!(!truth.is_empty(), "ground truth for {symbol} is empty");
        let stored: Vec<_> = stored
            .iter()
            .map(|b| (b.ts, b.open, b.high, b.low, b.close, b.volume))
            .collect();
        let expected: Vec<_> = truth
            .iter()
            .map(|b| {
                (
                    b.ts,
                    Some(b.open),
                    Some(b.high),
                    Some(b.low),
                    b.close,
                    Some(b.volume),
                )
            })
            .collect();
        assert_eq!(
            stored, expected,
            "{symbol}: stored bars differ from ground truth"
        );
        expected.len()
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

    /// The run's tickers, by symbol.
    pub async fn planned_symbols(&self, run_id: &RunId) -> Vec<String> {
        let statuses = self.progress_status(run_id).await;
        statuses.into_iter().map(|(symbol, _)| symbol).collect()
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

/// The window of [`explicit`] and [`polygon`] runs: Monday to Wednesday.
pub const THREE_DAYS: (&str, &str) = ("2026-03-09", "2026-03-11");

/// A new run over explicit symbols, [`THREE_DAYS`] hourly on Yahoo.
pub fn explicit(list: &[&str]) -> Value {
    serde_json::json!({
        "symbols": list,
        "start_date": THREE_DAYS.0,
        "end_date": THREE_DAYS.1,
        "interval": "1h",
        "provider": "yahoo",
    })
}

/// A new run over explicit symbols, [`THREE_DAYS`] on Polygon (the default interval).
pub fn polygon(list: &[&str]) -> Value {
    serde_json::json!({
        "symbols": list,
        "start_date": THREE_DAYS.0,
        "end_date": THREE_DAYS.1,
        "provider": "polygon",
    })
}

/// market-sim's default knobs with `patch` merged in, e.g. `{"unknown_symbols": ["ZZZZ"]}`.
pub fn knobs(patch: Value) -> Knobs {
    Knobs::default().merged(&patch).unwrap()
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
