use market_sim::{Knobs, Provider};
use serde_json::json;
use shared::contract::BatchStatus;
use shared::db;
use shared::model::RunId;

use crate::common::*;

#[tokio::test]
async fn fetch_batch_writes_exactly_the_ground_truth_bars_from_yahoo() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL", "MSFT"])).await;
    assert_eq!(run.batches.len(), 1);

    let out = env.fetch_ok(&run.run_id, 0).await;

    assert_eq!(out.status, BatchStatus::Done);
    assert_eq!(
        (out.success, out.failed, out.pending, out.rate_limited),
        (2, 0, 0, 0)
    );
    assert_eq!(out.retry_after_seconds, None);
    let mut total = 0;
    for s in ["AAPL", "MSFT"] {
        total += env.assert_stored_hourly(Provider::Yahoo, s).await;
        assert_eq!(
            env.yahoo_requests(s),
            1,
            "one ranged request per ticker, never one per day"
        );
    }
    assert_eq!(out.records_inserted, total as i64);
    assert_eq!(out.records_updated, 0);
}

#[tokio::test]
async fn fetch_batch_writes_exactly_the_ground_truth_bars_from_polygon_across_pages() {
    let env = env_with(knobs(json!({"polygon_page_size": 10})), &[]).await;
    let (_, out) = env.select_and_fetch(polygon(&["AAPL"])).await;
    assert_eq!(out.status, BatchStatus::Done);
    let n = env.assert_stored_hourly(Provider::Polygon, "AAPL").await;
    assert_eq!(out.records_inserted, n as i64);
    assert!(
        env.sim.request_count("/v2/aggs/ticker/AAPL", Some(200)) > 1,
        "paged"
    );
}

/// Yahoo stamps daily bars at the session open (13:30 UTC in March for New York); they are stored
/// at 00:00 New York time of the trading day (04:00 UTC after the DST change of 2026-03-08), the
/// key the original's daily job and Polygon use.
#[tokio::test]
async fn daily_bars_are_stored_at_midnight_exchange_time() {
    let env = env(&[]).await;
    let mut payload = explicit(&["AAPL"]);
    payload["interval"] = json!("1d");
    let (_, out) = env.select_and_fetch(payload).await;
    let n = env
        .assert_stored_equals_truth(
            Provider::Yahoo,
            market_sim::Interval::Day,
            "AAPL",
            THREE_DAYS,
        )
        .await;
    assert_eq!((n, out.records_inserted), (3, 3));
    let keys: Vec<String> = db::prices::stored_bars(
        &env.client().await,
        "AAPL",
        date("2026-03-09").and_hms_opt(0, 0, 0).unwrap().and_utc(),
        date("2026-03-12").and_hms_opt(0, 0, 0).unwrap().and_utc(),
    )
    .await
    .unwrap()
    .iter()
    .map(|b| b.ts.to_rfc3339())
    .collect();
    assert_eq!(
        keys,
        [
            "2026-03-09T04:00:00+00:00",
            "2026-03-10T04:00:00+00:00",
            "2026-03-11T04:00:00+00:00"
        ]
    );
}

#[tokio::test]
async fn a_second_fetch_of_the_same_window_inserts_zero_and_updates_zero() {
    let env = env(&[]).await;
    let (run, first) = env.select_and_fetch(explicit(&["AAPL", "MSFT"])).await;
    assert!(first.records_inserted > 0);

    let again = env
        .select_ok(json!({"run_id": run.run_id, "reprocess": "all"}))
        .await;
    let second = env.fetch_ok(&run.run_id, again.batches[0].batch).await;

    assert_eq!(second.attempted, 2, "both tickers were fetched again");
    assert_eq!((second.records_inserted, second.records_updated), (0, 0));
}

#[tokio::test]
async fn a_changed_bar_is_refreshed_and_counted_as_updated() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    env.fetch_ok(&run.run_id, 0).await;
    let client = env.client().await;
    let changed = client
        .execute(
            "UPDATE stock_price_history SET close_price = close_price + 1
              WHERE symbol = 'AAPL' AND date = (SELECT min(date) FROM stock_price_history)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);

    let again = env
        .select_ok(json!({"run_id": run.run_id, "reprocess": "all"}))
        .await;
    let out = env.fetch_ok(&run.run_id, again.batches[0].batch).await;

    assert_eq!((out.records_inserted, out.records_updated), (0, 1));
    env.assert_stored_hourly(Provider::Yahoo, "AAPL").await;
    let refreshed: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM stock_price_history WHERE updated_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refreshed, 1);
}

#[tokio::test]
async fn null_elements_are_skipped_and_counted() {
    let env = env_with(knobs(json!({"null_symbols": ["AAPL"]})), &[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    env.fetch_ok(&run.run_id, 0).await;
    env.assert_stored_hourly(Provider::Yahoo, "AAPL").await;
    let truth = env.sim.ground_truth_with_skipped(
        Provider::Yahoo,
        "AAPL",
        market_sim::Interval::Hour,
        date("2026-03-09"),
        date("2026-03-11"),
    );
    assert!(truth.skipped > 0);
    let client = env.client().await;
    let skipped: i32 = client
        .query_one(
            "SELECT bars_skipped FROM backfill_progress WHERE symbol = 'AAPL'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(skipped as u32, truth.skipped);
}

#[tokio::test]
async fn rate_limit_mid_batch_commits_progress_and_reports_the_budgets_pause() {
    // Yahoo's 429 carries no Retry-After: it pauses the shared budget for RATE_LIMIT_PAUSE_SECONDS,
    // longer than an invocation may sleep (RATE_BUDGET_MAX_WAIT_SECONDS), so the batch returns.
    let two_an_hour = knobs(json!({"rate_limit": {
        "requests": 2,
        "window_seconds": 3600,
        "retry_after": "none",
    }}));
    let env = env_with(
        two_an_hour,
        &[
            ("RATE_LIMIT_PAUSE_SECONDS", "2"),
            ("RATE_BUDGET_MAX_WAIT_SECONDS", "1"),
        ],
    )
    .await;
    let (run, out) = env.select_and_fetch(explicit(&["A", "B", "C", "D"])).await;

    assert_eq!(out.status, BatchStatus::RateLimited);
    assert_eq!((out.success, out.rate_limited, out.pending), (2, 1, 1));
    let wait = out.retry_after_seconds.expect("a wait is reported");
    assert_eq!(wait, 2, "the pause a 429 without Retry-After sets");
    assert!(
        !out.rate_limit_round,
        "two tickers finished before the 429: not a round of max_rate_limit_rounds"
    );
    assert_eq!(
        env.progress_status(&run.run_id).await,
        [
            ("A".to_string(), "success".to_string()),
            ("B".into(), "success".into()),
            ("C".into(), "rate_limited".into()),
            ("D".into(), "pending".into()),
        ]
    );
    env.assert_stored_hourly(Provider::Yahoo, "B").await;
    assert_eq!(
        env.yahoo_requests("D"),
        0,
        "no new ticker is started after a 429"
    );

    // Called again at once: the budget is still paused, so nothing is sent, and the wait is
    // what is left of the pause; no per-batch backoff doubles it.
    let requests_before = env.yahoo_requests("C");
    let out = env.fetch_ok(&run.run_id, 0).await;
    assert_eq!(out.status, BatchStatus::RateLimited);
    let wait = out.retry_after_seconds.unwrap();
    assert!((1..=2).contains(&wait), "the rest of the pause, got {wait}");
    assert!(!out.rate_limit_round, "waiting for the budget is no round");
    assert_eq!(env.yahoo_requests("C"), requests_before);

    // The window opens again and the wait is over (the state machine's Wait state): the batch
    // finishes from where it stopped.
    env.sim.update_knobs(|k| k.rate_limit = None);
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let out = env.fetch_ok(&run.run_id, 0).await;
    assert_eq!(out.status, BatchStatus::Done);
    assert_eq!(out.success, 4);
    assert_eq!(
        env.yahoo_requests("A"),
        1,
        "success tickers are not fetched again"
    );
}

#[tokio::test]
async fn polygon_retry_after_is_reported_as_the_wait() {
    let one_an_hour = knobs(json!({"rate_limit": {
        "requests": 1,
        "window_seconds": 3600,
        "retry_after": {"fixed": 17},
    }}));
    let env = env_with(one_an_hour, &[]).await;
    let (_, out) = env.select_and_fetch(polygon(&["AAPL", "MSFT"])).await;
    assert_eq!(out.status, BatchStatus::RateLimited);
    assert_eq!(out.retry_after_seconds, Some(17));
    assert_eq!((out.success, out.rate_limited), (1, 1));
}

#[tokio::test]
async fn an_unknown_symbol_fails_only_that_ticker_with_a_readable_reason() {
    let env = env_with(knobs(json!({"unknown_symbols": ["ZZZZ"]})), &[]).await;
    let (run, out) = env
        .select_and_fetch(explicit(&["AAPL", "ZZZZ", "MSFT"]))
        .await;

    assert_eq!(out.status, BatchStatus::Done);
    assert_eq!((out.success, out.failed), (2, 1));
    let client = env.client().await;
    let rows = db::progress::list(&client, &run.run_id).await.unwrap();
    let bad = rows.iter().find(|r| r.symbol == "ZZZZ").unwrap();
    assert_eq!(bad.status, "failed");
    assert_eq!(bad.error_name.as_deref(), Some("UnknownSymbol"));
    assert!(
        bad.error_message
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains("zzzz")
            || bad
                .error_message
                .as_deref()
                .unwrap_or("")
                .contains("delisted"),
        "{:?}",
        bad.error_message
    );
}

/// Short patience so that faults that never recover end the invocation quickly.
const IMPATIENT: [(&str, &str); 3] = [
    ("FAULT_PATIENCE_SECONDS", "1"),
    ("FAULT_BACKOFF_BASE_MS", "50"),
    ("FAULT_BACKOFF_CAP_SECONDS", "1"),
];

#[tokio::test]
async fn a_well_formed_answer_that_breaks_the_contract_fails_the_ticker_not_the_batch() {
    // MSFT's chart comes back as 3-month bars where 1h was asked: complete JSON, wrong answer.
    let env = env_with(knobs(json!({"coarse_symbols": ["MSFT"]})), &IMPATIENT).await;
    let (run, out) = env.select_and_fetch(explicit(&["AAPL", "MSFT"])).await;
    assert_eq!(
        (out.status, out.success, out.failed),
        (BatchStatus::Done, 1, 1)
    );
    let rows = db::progress::list(&env.client().await, &run.run_id)
        .await
        .unwrap();
    assert_eq!(rows[1].error_name.as_deref(), Some("MalformedResponse"));
    assert_eq!(
        env.yahoo_requests("MSFT"),
        1,
        "a wrong answer is not asked again"
    );
}

#[tokio::test]
async fn truncated_bodies_and_5xx_that_recover_are_retried_and_every_ticker_is_stored() {
    for fault in [
        json!({"fail_every_nth": 2, "fail_kind": "truncated"}),
        json!({"fail_every_nth": 2, "fail_kind": "status"}),
    ] {
        let env = env_with(knobs(fault.clone()), &IMPATIENT).await;
        let symbols = ["AAPL", "AMZN", "MSFT", "NVDA"];
        let (_, out) = env.select_and_fetch(explicit(&symbols)).await;
        assert_eq!(
            (out.status, out.success, out.failed),
            (BatchStatus::Done, 4, 0),
            "{fault}"
        );
        for symbol in symbols {
            env.assert_stored_hourly(Provider::Yahoo, symbol).await;
        }
    }
}

#[tokio::test]
async fn a_fault_that_outlasts_the_patience_commits_progress_and_asks_to_wait() {
    // MSFT's body is always cut short: garbled, so retried, but it never recovers.
    let env = env_with(knobs(json!({"malformed_symbols": ["MSFT"]})), &IMPATIENT).await;
    let (run, out) = env
        .select_and_fetch(explicit(&["AAPL", "MSFT", "NVDA"]))
        .await;
    assert_eq!(out.status, BatchStatus::Unavailable);
    assert!(out.retry_after_seconds.is_some_and(|s| s >= 1), "{out:?}");
    assert_eq!(
        env.progress_status(&run.run_id).await,
        [
            ("AAPL".to_string(), "success".to_string()),
            ("MSFT".into(), "pending".into()),
            ("NVDA".into(), "success".into())
        ],
        "one ticker's trouble does not hold the others back; MSFT stays claimable"
    );
    let rows = db::progress::list(&env.client().await, &run.run_id)
        .await
        .unwrap();
    assert_eq!(rows[1].error_name.as_deref(), Some("GarbledResponse"));
    assert!(
        env.yahoo_requests("MSFT") >= 2,
        "retried within the invocation"
    );

    // Once the provider recovers, the next call finishes the batch.
    env.sim.set_knobs(Knobs::default());
    let out = env.fetch_ok(&run.run_id, 0).await;
    assert_eq!((out.status, out.success), (BatchStatus::Done, 3));
}

#[tokio::test]
async fn a_provider_wide_outage_stops_the_invocation_after_two_tickers() {
    let env = env_with(knobs(json!({"fail_every_nth": 1})), &IMPATIENT).await;
    let symbols = ["A", "B", "C", "D", "E", "F"];
    let (_, out) = env.select_and_fetch(explicit(&symbols)).await;
    assert_eq!(out.status, BatchStatus::Unavailable);
    assert_eq!(
        out.attempted, 2,
        "the second faulted ticker in a row ends the call: {out:?}"
    );
    assert!(out.retry_after_seconds.is_some());
}

#[tokio::test]
async fn a_batch_without_progress_for_the_timeout_is_stalled_with_its_reason() {
    let mut extra = IMPATIENT.to_vec();
    extra.push(("NO_PROGRESS_TIMEOUT_SECONDS", "0"));
    let env = env_with(knobs(json!({"fail_every_nth": 1})), &extra).await;
    let (run, out) = env.select_and_fetch(explicit(&["AAPL", "MSFT"])).await;
    assert_eq!(out.status, BatchStatus::Stalled);
    assert_eq!(out.retry_after_seconds, None);
    let problems = db::batches::problems(&env.client().await, &run.run_id)
        .await
        .unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].last_status, "stalled");
    assert_eq!(problems[0].error_name.as_deref(), Some("NoProgress"));
    let message = problems[0].message.as_deref().unwrap_or_default();
    assert!(message.contains("ProviderUnavailable"), "{message}");
    assert_eq!(
        env.progress_status(&run.run_id).await,
        [
            ("AAPL".to_string(), "pending".to_string()),
            ("MSFT".into(), "pending".into())
        ],
        "the tickers stay claimable for a resume"
    );
}

#[tokio::test]
async fn a_rejected_key_is_provider_rejected() {
    let env = env(&[("POLYGON_API_KEY", "wrong-key")]).await;
    let run = env.select_ok(polygon(&["AAPL"])).await;
    let err = env.fetch(&run.run_id, 0).await.unwrap_err();
    assert!(
        !err.to_string().contains("wrong-key"),
        "the key leaked: {err}"
    );
    assert_eq!(error_type(err), "ProviderRejected");
    assert_eq!(env.progress_status(&run.run_id).await[0].1, "pending");
}

#[tokio::test]
async fn a_tiny_budget_returns_partial_after_one_ticker_until_done() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["A", "B", "C"])).await;
    let past = tokio::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let out = env.fetch_until(&run.run_id, 0, past).await.unwrap();
        assert_eq!(
            out.attempted, 1,
            "at least one ticker per call, so a tiny budget still progresses"
        );
        statuses.push(out.status);
    }
    assert_eq!(
        statuses,
        [
            BatchStatus::Partial,
            BatchStatus::Partial,
            BatchStatus::Done
        ]
    );
}

#[tokio::test]
async fn a_lambda_deadline_in_the_past_falls_back_to_the_configured_budget() {
    let env = env(&[("FETCH_BUDGET_SECONDS", "600")]).await;
    let run = env.select_ok(explicit(&["A", "B", "C"])).await;
    // Context::default() carries deadline 0 (1970), like cargo lambda watch.
    let out = env
        .app
        .fetch_batch(event(json!({"run_id": run.run_id, "batch": 0})))
        .await
        .unwrap();
    assert_eq!((out.status, out.attempted), (BatchStatus::Done, 3));
}

#[tokio::test]
async fn concurrent_invocations_of_one_batch_never_fetch_the_same_ticker() {
    let env = env_with(knobs(json!({"latency_ms": 150})), &[]).await;
    let list = ["A", "B", "C", "D", "E", "F"];
    let run = env.select_ok(explicit(&list)).await;

    let (a, b) = tokio::join!(env.fetch(&run.run_id, 0), env.fetch(&run.run_id, 0));
    let (a, b) = (a.unwrap(), b.unwrap());

    assert_eq!(a.attempted + b.attempted, 6);
    assert!(
        a.attempted > 0 && b.attempted > 0,
        "both invocations did work: {a:?} {b:?}"
    );
    for s in list {
        assert_eq!(env.yahoo_requests(s), 1, "{s} fetched once");
    }
    assert_eq!(
        a.records_inserted + b.records_inserted,
        env.progress_inserted(&run.run_id).await
    );
}

#[tokio::test]
async fn fetch_batch_bad_input_is_named_and_writes_nothing() {
    let env = env(&[]).await;
    for payload in [
        json!({"run_id": "nope", "batch": 0}),
        json!({"batch": 0}),
        json!({"run_id": "backfill-20260309-120000-0a1b2c3d", "batch": "x"}),
        json!(null),
    ] {
        let err = env
            .app
            .fetch_batch(event(payload.clone()))
            .await
            .unwrap_err();
        assert_eq!(error_type(err), "InvalidInput", "{payload}");
    }
    let unknown = RunId::parse("backfill-20260309-120000-0a1b2c3d").unwrap();
    assert_eq!(
        error_type(env.fetch(&unknown, 0).await.unwrap_err()),
        "RunNotFound"
    );
    assert_eq!(env.written_rows().await, 0);

    let run = env.select_ok(explicit(&["AAPL"])).await;
    let before = env.written_rows().await;
    assert_eq!(
        error_type(env.fetch(&run.run_id, 7).await.unwrap_err()),
        "InvalidInput"
    );
    assert_eq!(env.written_rows().await, before);
}

#[tokio::test]
async fn tickers_held_by_another_invocation_are_waited_for_not_refetched() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    let mut holder = env.client().await;
    let tx = holder.transaction().await.unwrap();
    let claim = db::progress::claim_next(&tx, &run.run_id, 0, &[])
        .await
        .unwrap();
    assert!(claim.is_some());

    // The only ticker is held for the whole (short) budget: nothing is fetched, `partial` says
    // "call again", and the holder's work is not duplicated.
    let stop_at = tokio::time::Instant::now() + std::time::Duration::from_millis(2500);
    let out = env.fetch_until(&run.run_id, 0, stop_at).await.unwrap();
    assert_eq!(
        (out.status, out.attempted, out.pending),
        (BatchStatus::Partial, 0, 1)
    );
    assert_eq!(env.yahoo_requests("AAPL"), 0);

    tx.rollback().await.unwrap();
    let out = env.fetch_ok(&run.run_id, 0).await;
    assert_eq!((out.status, out.attempted), (BatchStatus::Done, 1));
}

/// A long range is stored page by page with the ticker's cursor committed alongside: a call
/// whose deadline passes stops after a page, and the next call goes on after the cursor, never
/// asking for a stored page again.
#[tokio::test]
async fn an_interrupted_ticker_goes_on_from_its_cursor_page_by_page() {
    let env = env_with(knobs(json!({"polygon_page_size": 20})), &[]).await;
    let run = env.select_ok(polygon(&["AAPL"])).await;
    let past = tokio::time::Instant::now();
    let mut statuses = Vec::new();
    let mut cursors = Vec::new();
    for _ in 0..3 {
        let out = env.fetch_until(&run.run_id, 0, past).await.unwrap();
        statuses.push(out.status);
        let cursor: Option<chrono::DateTime<chrono::Utc>> = env
            .client()
            .await
            .query_one(
                "SELECT last_bar_at FROM backfill_progress WHERE run_id = $1",
                &[&run.run_id.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        cursors.push(cursor);
    }
    assert_eq!(
        statuses,
        [
            BatchStatus::Partial,
            BatchStatus::Partial,
            BatchStatus::Done
        ]
    );
    let truth = env.sim.ground_truth(
        Provider::Polygon,
        "AAPL",
        market_sim::Interval::Hour,
        date("2026-03-09"),
        date("2026-03-11"),
    );
    assert_eq!(truth.len(), 48);
    assert_eq!(
        cursors,
        [Some(truth[19].ts), Some(truth[39].ts), Some(truth[47].ts)],
        "the cursor moves a page at a time"
    );
    assert_eq!(
        env.sim.request_count("/v2/aggs/ticker/AAPL", None),
        3,
        "no page was asked for twice"
    );
    let n = env.assert_stored_hourly(Provider::Polygon, "AAPL").await;
    assert_eq!(n, 48);
    assert_eq!(env.progress_inserted(&run.run_id).await, 48);
}

#[tokio::test]
async fn a_far_slot_in_the_shared_budget_returns_rate_limited_without_sending() {
    // One request every 10 s for everyone; an invocation may sleep 1 s for its slot.
    let env = env_with(
        Knobs::default(),
        &[
            ("PROVIDER_REQUESTS_PER_MINUTE", "6"),
            ("RATE_BUDGET_MAX_WAIT_SECONDS", "1"),
        ],
    )
    .await;
    let (run, out) = env.select_and_fetch(explicit(&["FARA", "FARB"])).await;

    assert_eq!(out.status, BatchStatus::RateLimited);
    assert_eq!((out.success, out.rate_limited, out.pending), (1, 0, 1));
    // The next slot is the interval after the first request: the state machine waits for it.
    let wait = out.retry_after_seconds.expect("a wait is reported");
    assert!(
        (9..=10).contains(&wait),
        "the next slot is ~10 s away: {wait}"
    );
    assert!(!out.rate_limit_round, "pacing is not a rate-limit round");
    assert_eq!(
        env.yahoo_requests("FARB"),
        0,
        "nothing is sent for a far slot"
    );
    assert_eq!(
        env.progress_status(&run.run_id).await[1],
        ("FARB".to_string(), "pending".to_string()),
        "the ticker is left as it was"
    );
    let client = env.client().await;
    let usage = db::rate_budget::usage(&client, "yahoo").await.unwrap();
    assert_eq!((usage.granted, usage.denied), (1, 1));
}

#[tokio::test]
async fn two_instances_share_one_budget() {
    // Two Apps (two Lambda instances) on one database: 600 a minute between them, so their 8
    // requests take at least 0.7 s of slots whatever the split, and they never come closer than
    // the interval (the budget's ledger says how many it granted).
    let env = env_with(Knobs::default(), &[("PROVIDER_REQUESTS_PER_MINUTE", "600")]).await;
    let run = env
        .select_ok(json!({"symbols": ["SHA", "SHB", "SHC", "SHD", "SHE", "SHF", "SHG", "SHH"], "start_date": "2026-03-09", "end_date": "2026-03-10", "interval": "1h", "batch_size": 4}))
        .await;
    let other = env.second_instance(&[("PROVIDER_REQUESTS_PER_MINUTE", "600")]);
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        env.fetch_ok(&run.run_id, 0),
        other.fetch_batch(event(json!({"run_id": run.run_id, "batch": 1})))
    );
    let elapsed = started.elapsed();
    assert_eq!(a.status, BatchStatus::Done);
    assert_eq!(b.unwrap().status, BatchStatus::Done);
    assert!(
        elapsed >= std::time::Duration::from_millis(700),
        "8 requests at 10 a second between two instances took only {elapsed:?}"
    );
    let client = env.client().await;
    let usage = db::rate_budget::usage(&client, "yahoo").await.unwrap();
    assert_eq!(usage.granted, 8);
}

/// A malformed symbol in the batch's stored progress fails the invocation at once with the
/// non-retried `StoredDataInvalid`, instead of being waited on as a lost connection.
#[tokio::test]
async fn a_malformed_stored_symbol_in_the_batch_is_stored_data_invalid_at_once() {
    let env = env(&[("FAULT_PATIENCE_SECONDS", "600")]).await;
    let run = env.select_ok(explicit(&["AAPL", "MSFT"])).await;
    env.execute_for_run(
        "UPDATE backfill_progress SET symbol = 'A/B' WHERE run_id = $1 AND symbol = 'MSFT'",
        &run.run_id,
    )
    .await;
    let started = std::time::Instant::now();
    let err = env.fetch(&run.run_id, 0).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("malformed symbol"), "{err}");
    assert_eq!(error_type(err), "StoredDataInvalid");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "refused without waiting out the fault patience ({:?})",
        started.elapsed()
    );
}
