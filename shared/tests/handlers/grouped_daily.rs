//! Grouped daily runs (issue 9): Polygon's grouped endpoint, one call per weekday for every
//! ticker, with truthful per-ticker progress.

use market_sim::{Interval as SimInterval, Provider};
use serde_json::json;
use shared::contract::BatchStatus;
use shared::db;
use shared::model::{DateRange, Interval, RunId, Strategy};

use crate::common::{date, env, error_type, Env};

const LISTED: [&str; 11] = [
    "AAPL", "AMZN", "BRK.B", "GOOG", "JPM", "META", "MSFT", "NVDA", "SYN0001", "SYN0002", "TSLA",
];
const NOT_LISTED: &str = "ZZNOPE";

/// Monday to Sunday: 5 weekdays.
const WEEK: (&str, &str) = ("2026-03-09", "2026-03-15");

fn grouped_request(batch_size: i64) -> serde_json::Value {
    let mut symbols: Vec<&str> = LISTED.to_vec();
    symbols.push(NOT_LISTED);
    json!({
        "symbols": symbols,
        "start_date": WEEK.0,
        "end_date": WEEK.1,
        "interval": "1d",
        "provider": "polygon",
        "batch_size": batch_size,
    })
}

/// Every listed ticker's stored bars are what a per-ticker run stores (the same keys and
/// prices): one daily bar per weekday.
async fn assert_listed_tickers_store_the_per_ticker_truth(env: &Env) {
    for symbol in LISTED {
        let stored = env
            .assert_stored_equals_truth(Provider::Polygon, SimInterval::Day, symbol, WEEK)
            .await;
        assert_eq!(stored, 5, "{symbol}");
    }
}

async fn day_statuses(client: &tokio_postgres::Client, run_id: &RunId) -> Vec<(String, String)> {
    db::days::list(client, run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.day.to_string(), d.status))
        .collect()
}

#[tokio::test]
async fn a_grouped_run_stores_the_per_ticker_truth_in_one_call_per_weekday() {
    let env = env(&[]).await;
    // 5 weekdays < 12 tickers: auto picks grouped; 2 days per batch.
    let out = env.select_ok(grouped_request(2)).await;
    assert_eq!(out.strategy, Strategy::Grouped);
    assert_eq!(out.batches.len(), 3, "days 9-10, 11-12, 13");
    let run_id = out.run_id.clone();
    let client = env.client().await;
    let run = db::runs::get(&client, &run_id).await.unwrap();
    assert_eq!(run.strategy, Strategy::Grouped);
    let planned = db::days::list(&client, &run_id).await.unwrap();
    let batches: Vec<(String, i32)> = planned
        .iter()
        .map(|d| (d.day.to_string(), d.batch))
        .collect();
    assert_eq!(
        batches,
        [
            ("2026-03-09".to_string(), 0),
            ("2026-03-10".to_string(), 0),
            ("2026-03-11".to_string(), 1),
            ("2026-03-12".to_string(), 1),
            ("2026-03-13".to_string(), 2),
        ]
    );
    // One pending progress row per ticker, as for a per-ticker run.
    let statuses = env.progress_status(&run_id).await;
    assert_eq!(statuses.len(), 12);
    assert!(statuses.iter().all(|(_, s)| s == "pending"), "{statuses:?}");

    for batch in 0..3 {
        let fetched = env.fetch_ok(&run_id, batch).await;
        assert_eq!(fetched.status, BatchStatus::Done, "batch {batch}");
    }
    assert_eq!(env.sim.grouped_requests(None), 5, "one call per weekday");
    assert_eq!(env.sim.request_count("/v2/aggs/ticker/", None), 0);
    assert!(day_statuses(&client, &run_id)
        .await
        .iter()
        .all(|(_, s)| s == "done"));

    let rows = db::progress::list(&client, &run_id).await.unwrap();
    for row in &rows {
        if row.symbol == NOT_LISTED {
            assert_eq!(row.status, "failed");
            assert_eq!(row.error_name.as_deref(), Some("NotListedByProvider"));
            assert!(
                row.error_message
                    .as_deref()
                    .is_some_and(|m| m.contains("listed no bar")),
                "{row:?}"
            );
            assert_eq!(row.records_inserted, 0);
        } else {
            assert_eq!(row.status, "success", "{row:?}");
            assert_eq!(row.records_inserted, 5, "{row:?}");
        }
    }

    // The stored rows are what a per-ticker run stores: the same keys and prices.
    let range = DateRange::new(date("2026-03-09"), date("2026-03-15")).unwrap();
    let (from, to) = range.stored_window(Interval::Day);
    assert_listed_tickers_store_the_per_ticker_truth(&env).await;
    let nothing = db::prices::stored_bars(&client, NOT_LISTED, from, to)
        .await
        .unwrap();
    assert!(nothing.is_empty());
    let summary = env.finalize_ok(&run_id).await;
    assert_eq!((summary.success, summary.failed), (11, 1));
    assert_eq!(summary.records_inserted, 55);
    // calls ÷ minimum calls (weekdays of the window).
    assert_eq!(
        shared::handler::fetch_days::grouped_call_ratio(env.sim.grouped_requests(None), &range),
        1.0
    );
}

#[tokio::test]
async fn a_day_fetched_twice_stores_and_counts_nothing_twice() {
    let env = env(&[]).await;
    let out = env.select_ok(grouped_request(2)).await;
    let run_id = out.run_id;
    let client = env.client().await;
    assert_eq!(env.fetch_ok(&run_id, 0).await.records_inserted, 22);
    // As a retried invocation would find it: the first day pending again.
    client
        .execute(
            "UPDATE backfill_day SET status = 'pending' WHERE run_id = $1 AND day = '2026-03-09'",
            &[&run_id.as_str()],
        )
        .await
        .unwrap();
    let again = env.fetch_ok(&run_id, 0).await;
    assert_eq!(again.status, BatchStatus::Done);
    assert_eq!((again.records_inserted, again.records_updated), (0, 0));
    assert_eq!(env.progress_inserted(&run_id).await, 22);
    // Still unsettled: days 11-13 are not done.
    assert_eq!(again.pending, 12);
    env.fetch_ok(&run_id, 1).await;
    let last = env.fetch_ok(&run_id, 2).await;
    assert_eq!((last.success, last.failed, last.pending), (11, 1, 0));
    assert_eq!(env.progress_inserted(&run_id).await, 55);
    assert_eq!(env.stored_rows().await, 55);
    assert_eq!(env.sim.grouped_requests(None), 6);
}

#[tokio::test]
async fn the_strategy_is_asked_for_by_name_and_refused_where_it_cannot_work() {
    let env = env(&[]).await;
    let mut per_ticker = grouped_request(50);
    per_ticker["strategy"] = json!("per-ticker");
    let out = env.select_ok(per_ticker).await;
    assert_eq!(out.strategy, Strategy::PerTicker);

    for (patch, says) in [
        (json!({"provider": "yahoo"}), "needs provider polygon"),
        (json!({"interval": "1h"}), "daily bars only"),
    ] {
        let mut request = grouped_request(50);
        request["strategy"] = json!("grouped");
        for (k, v) in patch.as_object().unwrap() {
            request[k] = v.clone();
        }
        let before = env.written_rows().await;
        let e = env.select(request).await.unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(error_type(e), "InvalidInput");
        assert_eq!(env.written_rows().await, before);
    }
    let mut unknown = grouped_request(50);
    unknown["strategy"] = json!("daily");
    assert_eq!(
        error_type(env.select(unknown).await.unwrap_err()),
        "InvalidInput"
    );
}

/// The weekdays of `grouped_request`'s window.
const WEEKDAYS: [&str; 5] = [
    "2026-03-09",
    "2026-03-10",
    "2026-03-11",
    "2026-03-12",
    "2026-03-13",
];

/// Grouped requests market-sim answered for `day` with `status` (any status if `None`).
fn grouped_requests_for(env: &Env, day: &str, status: Option<u16>) -> u64 {
    env.sim.request_count(
        &format!("/v2/aggs/grouped/locale/us/market/stocks/{day}"),
        status,
    )
}

#[tokio::test]
async fn a_resumed_grouped_run_fetches_only_the_days_not_done_and_completes() {
    let env = env(&[]).await;
    let out = env.select_ok(grouped_request(2)).await;
    assert_eq!(out.strategy, Strategy::Grouped);
    assert_eq!(out.batches.len(), 3);
    let run_id = out.run_id.clone();
    let client = env.client().await;

    // Batch 0 (days 9-10) is fetched; batch 1's first day (11) fails for good (Polygon refuses
    // the request: not transient, the invocation fails by name); batch 2 is never fetched, as
    // when an execution stops early.
    assert_eq!(env.fetch_ok(&run_id, 0).await.status, BatchStatus::Done);
    env.sim.update_knobs(|k| {
        k.fail_every_nth = Some(1);
        k.fail_status = 403;
    });
    let refused = env.fetch(&run_id, 1).await.unwrap_err();
    assert_eq!(error_type(refused), "ProviderRejected");
    env.sim.update_knobs(|k| k.fail_every_nth = None);
    let days = db::days::list(&client, &run_id).await.unwrap();
    let states: Vec<(String, i32, String, Option<String>)> = days
        .iter()
        .map(|d| {
            (
                d.day.to_string(),
                d.batch,
                d.status.clone(),
                d.error_name.clone(),
            )
        })
        .collect();
    let row = |day: &str, batch: i32, status: &str, error: Option<&str>| {
        (
            day.to_string(),
            batch,
            status.to_string(),
            error.map(str::to_string),
        )
    };
    assert_eq!(
        states,
        [
            row("2026-03-09", 0, "done", None),
            row("2026-03-10", 0, "done", None),
            row("2026-03-11", 1, "pending", Some("ProviderRejected")),
            row("2026-03-12", 1, "pending", None),
            row("2026-03-13", 2, "pending", None),
        ]
    );
    // Every ticker waits for the days not done: the run closes incomplete, nothing settled.
    let closed = env.finalize_ok(&run_id).await;
    assert_eq!(closed.status, shared::contract::RunStatus::Incomplete);
    assert_eq!(
        (closed.success, closed.failed, closed.pending),
        (0, 0, 12),
        "{closed:?}"
    );
    assert_eq!(closed.records_inserted, 22);

    // The resume plans the 3 days not done, under fresh batch numbers (2 days a batch).
    let resumed = env.select_ok(json!({"run_id": run_id.as_str()})).await;
    assert!(resumed.resumed);
    assert_eq!(resumed.strategy, Strategy::Grouped);
    let batches: Vec<i32> = resumed.batches.iter().map(|b| b.batch).collect();
    assert_eq!(batches, [3, 4]);
    assert_eq!((resumed.tickers, resumed.skipped), (12, 0));
    let planned: Vec<(String, i32, String)> = db::days::list(&client, &run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.day.to_string(), d.batch, d.status))
        .collect();
    let plan = |day: &str, batch: i32, status: &str| (day.to_string(), batch, status.to_string());
    assert_eq!(
        planned,
        [
            plan("2026-03-09", 0, "done"),
            plan("2026-03-10", 0, "done"),
            plan("2026-03-11", 3, "pending"),
            plan("2026-03-12", 3, "pending"),
            plan("2026-03-13", 4, "pending"),
        ]
    );
    // The old batches hold no day any more: fetching one again asks Polygon nothing.
    let before = env.sim.grouped_requests(None);
    let stale = env.fetch_ok(&run_id, 2).await;
    assert_eq!((stale.status, stale.attempted), (BatchStatus::Done, 0));
    assert_eq!(env.sim.grouped_requests(None), before);

    let first = env.fetch_ok(&run_id, 3).await;
    assert_eq!(first.status, BatchStatus::Done);
    assert_eq!(first.pending, 12, "day 13 is not done yet");
    let last = env.fetch_ok(&run_id, 4).await;
    assert_eq!(last.status, BatchStatus::Done);
    assert_eq!((last.success, last.failed, last.pending), (11, 1, 0));
    assert!(day_statuses(&client, &run_id)
        .await
        .iter()
        .all(|(_, s)| s == "done"));

    // Each weekday answered (200) exactly once: no day was fetched twice; the one refusal is
    // the only other grouped request, and no per-ticker request was made.
    for day in WEEKDAYS {
        assert_eq!(grouped_requests_for(&env, day, Some(200)), 1, "{day}");
    }
    assert_eq!(grouped_requests_for(&env, "2026-03-11", Some(403)), 1);
    assert_eq!(env.sim.grouped_requests(None), 6);
    assert_eq!(env.sim.request_count("/v2/aggs/ticker/", None), 0);

    // Every listed ticker success with the per-ticker truth, the unlisted one failed.
    for row in db::progress::list(&client, &run_id).await.unwrap() {
        if row.symbol == NOT_LISTED {
            assert_eq!(row.status, "failed", "{row:?}");
            assert_eq!(row.error_name.as_deref(), Some("NotListedByProvider"));
        } else {
            assert_eq!(row.status, "success", "{row:?}");
            assert_eq!(row.records_inserted, 5, "{row:?}");
        }
    }
    assert_listed_tickers_store_the_per_ticker_truth(&env).await;
    assert_eq!(env.stored_rows().await, 55);

    let summary = env.finalize_ok(&run_id).await;
    assert_eq!(
        summary.status,
        shared::contract::RunStatus::CompletedWithFailures
    );
    assert_eq!((summary.success, summary.failed), (11, 1));
    assert_eq!(summary.records_inserted, 55);
}
