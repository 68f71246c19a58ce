use serde_json::json;
use shared::db;
use shared::model::{ExecutionName, Selection};

use crate::common::*;

#[tokio::test]
async fn min_articles_keeps_the_original_threshold_semantics() {
    let env = env(&[]).await;
    test_support::original::seed_mentions(
        &env.client().await,
        &[("MSFT", 12), ("AAPL", 10), ("TSLA", 9), ("NVDA", 30)],
    )
    .await;

    let out = env
        .select_ok(json!({"start_date": "2026-03-09", "end_date": "2026-03-11"}))
        .await;

    let planned = env.planned_symbols(&out.run_id).await;
    assert_eq!(
        planned,
        ["AAPL", "MSFT", "NVDA"],
        "default threshold 10, ordered by symbol"
    );
    let client = env.client().await;
    let run = db::runs::get(&client, &out.run_id).await.unwrap();
    assert_eq!(
        run.selection,
        Selection::MinArticles {
            min_articles: 10,
            within_days: None
        }
    );

    let lower = env
        .select_ok(json!({"min_articles": 9, "start_date": "2026-03-09"}))
        .await;
    assert_eq!(lower.tickers, 4);
}

#[tokio::test]
async fn top_n_ranks_by_mentions_and_breaks_ties_by_symbol() {
    let env = env(&[]).await;
    test_support::original::seed_mentions(
        &env.client().await,
        &[("XOM", 5), ("ZM", 7), ("AMD", 7), ("IBM", 3), ("KO", 7)],
    )
    .await;

    let out = env
        .select_ok(json!({"top_n": 2, "start_date": "2026-03-09"}))
        .await;
    let planned = env.planned_symbols(&out.run_id).await;
    assert_eq!(
        planned,
        ["AMD", "KO"],
        "three tickers tie at 7: the first two by symbol win"
    );

    let out = env
        .select_ok(json!({"top_n": 4, "start_date": "2026-03-09"}))
        .await;
    let planned = env.planned_symbols(&out.run_id).await;
    assert_eq!(planned, ["AMD", "KO", "XOM", "ZM"]);
}

#[tokio::test]
async fn explicit_list_is_normalised_and_need_not_be_in_the_ticker_table() {
    let env = env(&[]).await;
    let out = env
        .select_ok(explicit(&["msft", "AAPL", "MSFT", "brk.b"]))
        .await;
    assert_eq!(out.tickers, 3);
    let planned = env.planned_symbols(&out.run_id).await;
    assert_eq!(planned, ["AAPL", "BRK.B", "MSFT"]);
}

#[tokio::test]
async fn tickers_are_split_into_batches_of_batch_size_and_the_run_is_stored() {
    let env = env(&[]).await;
    let mut payload = explicit(&["A", "B", "C", "D", "E"]);
    payload["batch_size"] = json!(2);
    let out = env.select_ok(payload).await;

    assert_eq!(out.batches.len(), 3);
    assert_eq!(
        out.batches.iter().map(|b| b.batch).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(out.batches.iter().all(|b| b.run_id == out.run_id));
    assert!(out.run_id.as_str().starts_with("backfill-"));

    let client = env.client().await;
    let rows = db::progress::list(&client, &out.run_id).await.unwrap();
    let batches: Vec<Option<i32>> = rows.iter().map(|r| r.batch).collect();
    assert_eq!(batches, [Some(0), Some(0), Some(1), Some(1), Some(2)]);
    assert!(rows.iter().all(|r| r.status == "pending"));

    let run = db::runs::get(&client, &out.run_id).await.unwrap();
    assert_eq!(
        (run.range.start(), run.range.end()),
        (date("2026-03-09"), date("2026-03-11"))
    );
    assert_eq!(run.interval.as_str(), "1h");
    assert_eq!(run.provider.as_str(), "yahoo");
    assert_eq!((run.batch_size, run.batch_count, run.requested), (2, 3, 5));
}

#[tokio::test]
async fn defaults_fill_end_date_interval_batch_size_and_start_date() {
    let env = env(&[("BACKFILL_START_DATE", "2026-01-05")]).await;
    let out = env.select_ok(json!({"symbols": ["AAPL"]})).await;
    assert_eq!(out.start_date, "2026-01-05");
    assert_eq!(out.end_date, chrono::Utc::now().date_naive().to_string());
    assert_eq!(out.interval.as_str(), "1h");
    assert_eq!(out.batch_size, 50);

    let out = env
        .select_ok(json!({"symbols": ["AAPL"], "lookback_days": 7, "end_date": "2026-03-11"}))
        .await;
    assert_eq!(
        (out.start_date.as_str(), out.end_date.as_str()),
        ("2026-03-04", "2026-03-11")
    );
}

#[tokio::test]
async fn every_bad_input_is_invalid_input_and_writes_nothing() {
    let env = env(&[]).await;
    let today = chrono::Utc::now().date_naive();
    let too_old = (today - chrono::Days::new(800)).to_string();
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let cases = [
        json!("not an object"),
        json!([1, 2]),
        json!({"symbols": "AAPL"}),
        json!({"symbols": []}),
        json!({"symbols": ["AAPL MSFT"]}),
        json!({"symbols": ["DROP;TABLE"]}),
        json!({"symbols": ["AAPL"], "start_date": "2026-03-12", "end_date": "2026-03-11"}),
        json!({"symbols": ["AAPL"], "start_date": "03/09/2026"}),
        json!({"symbols": ["AAPL"], "start_date": "2026-02-30"}),
        json!({"symbols": ["AAPL"], "end_date": tomorrow}),
        json!({"symbols": ["AAPL"], "interval": "5m"}),
        json!({"symbols": ["AAPL"], "provider": "alpaca"}),
        json!({"symbols": ["AAPL"], "batch_size": 0}),
        json!({"symbols": ["AAPL"], "batch_size": "fifty"}),
        json!({"min_articles": 0}),
        json!({"top_n": 0}),
        json!({"symbols": ["AAPL"], "top_n": 3}),
        json!({"symbols": ["AAPL"], "start_date": "2026-03-01", "lookback_days": 7}),
        json!({"symbols": ["AAPL"], "lookback_days": -1}),
        json!({"symbols": ["AAPL"], "interval": "1h", "provider": "yahoo", "start_date": too_old}),
        json!({"symbols": ["AAPL"], "reprocess": "some"}),
        json!({"symbols": ["AAPL"], "max_concurrency": 0}),
        json!({"top_n": 5, "mentions_within_days": 0}),
        json!({"symbols": ["AAPL"], "mentions_within_days": 7}),
        json!({"symbols": ["AAPL"], "max_rate_limit_rounds": -1}),
        json!({"symbols": ["AAPL"], "max_rate_limit_rounds": 5000}),
        json!({"run_id": "backfill-20260309-120000-0a1b2c3d", "max_concurrency": 0}),
        json!({"run_id": "backfill-42"}),
        json!({"run_id": "backfill-20260309-120000-0a1b2c3d", "symbols": ["AAPL"]}),
    ];
    for payload in cases {
        let err = env
            .select(payload.clone())
            .await
            .expect_err(&payload.to_string());
        assert_eq!(error_type(err), "InvalidInput", "{payload}");
    }
    assert_eq!(env.written_rows().await, 0, "bad input must write nothing");
}

#[tokio::test]
async fn hourly_yahoo_range_older_than_730_days_names_the_limit() {
    let env = env(&[]).await;
    let start = (chrono::Utc::now().date_naive() - chrono::Days::new(800)).to_string();
    let err = env
        .select(json!({"symbols": ["AAPL"], "start_date": start, "interval": "1h"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("730"), "{err}");
    // The same window daily is fine.
    env.select_ok(json!({"symbols": ["AAPL"], "start_date": start, "interval": "1d"}))
        .await;
}

#[tokio::test]
async fn resume_of_an_unknown_run_is_run_not_found_and_writes_nothing() {
    let env = env(&[]).await;
    let err = env
        .select(json!({"run_id": "backfill-20260309-120000-0a1b2c3d"}))
        .await
        .unwrap_err();
    assert_eq!(error_type(err), "RunNotFound");
    assert_eq!(env.written_rows().await, 0);
}

#[tokio::test]
async fn resume_requeues_only_unfinished_tickers_under_new_batch_numbers() {
    let env = env_with(knobs(json!({"unknown_symbols": ["BAD"]})), &[]).await;
    let mut payload = explicit(&["AAPL", "BAD", "MSFT"]);
    payload["batch_size"] = json!(2);
    let first = env.select_ok(payload).await;
    env.fetch_ok(&first.run_id, 0).await; // AAPL success, BAD failed; MSFT (batch 1) untouched

    let resumed = env
        .select_ok(json!({"run_id": first.run_id, "max_concurrency": 2}))
        .await;
    assert!(resumed.resumed);
    assert_eq!(
        (resumed.requested, resumed.tickers, resumed.skipped),
        (3, 2, 1)
    );
    assert_eq!(
        resumed.batches.iter().map(|b| b.batch).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        (resumed.start_date.as_str(), resumed.end_date.as_str()),
        ("2026-03-09", "2026-03-11")
    );

    let client = env.client().await;
    let rows = db::progress::list(&client, &first.run_id).await.unwrap();
    let view: Vec<(&str, &str, Option<i32>)> = rows
        .iter()
        .map(|r| (r.symbol.as_str(), r.status.as_str(), r.batch))
        .collect();
    assert_eq!(
        view,
        [
            ("AAPL", "success", Some(0)),
            ("BAD", "pending", Some(2)),
            ("MSFT", "pending", Some(2))
        ]
    );
    let run = db::runs::get(&client, &first.run_id).await.unwrap();
    assert_eq!((run.executions, run.batch_count, run.skipped), (2, 3, 1));
}

#[tokio::test]
async fn execution_knobs_are_validated_and_echoed_for_the_state_machine() {
    let env = env(&[]).await;
    let out = env.select_ok(explicit(&["AAPL"])).await;
    assert_eq!((out.max_concurrency, out.max_rate_limit_rounds), (4, 50));
    let mut payload = explicit(&["AAPL"]);
    payload["max_concurrency"] = json!(8);
    payload["max_rate_limit_rounds"] = json!(3);
    let out = env.select_ok(payload).await;
    assert_eq!((out.max_concurrency, out.max_rate_limit_rounds), (8, 3));
}

#[tokio::test]
async fn more_batches_than_the_payload_budget_allows_is_invalid_input_and_writes_nothing() {
    let env = env(&[]).await;
    let many: Vec<String> = (0..1001).map(|i| format!("T{i:04}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut payload = explicit(&refs);
    payload["batch_size"] = json!(1);
    let err = env.select(payload.clone()).await.unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
    assert_eq!(error_type(err), "InvalidInput");
    assert_eq!(env.written_rows().await, 0);
    payload["batch_size"] = json!(2);
    assert_eq!(env.select_ok(payload).await.batches.len(), 501);
}

#[tokio::test]
async fn a_caller_chosen_run_id_names_the_new_run_and_a_retry_is_idempotent() {
    let env = env(&[]).await;
    let id = "backfill-20260309-120000-0a1b2c3d";
    let mut payload = explicit(&["AAPL"]);
    payload["new_run_id"] = json!(id);
    let out = env.select_ok(payload.clone()).await;
    assert_eq!(out.run_id.as_str(), id);
    let before = env.written_rows().await;
    // A retry of the same request (the state machine retries after timeouts) gets the same plan.
    let again = env.select_ok(payload.clone()).await;
    assert_eq!(again.batches, out.batches);
    assert_eq!(env.written_rows().await, before);
    payload["end_date"] = json!("2026-03-10");
    let err = env.select(payload).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(error_type(err), "InvalidInput");
    assert_eq!(env.written_rows().await, before);
    let err = env
        .select(json!({"run_id": id, "new_run_id": id}))
        .await
        .unwrap_err();
    assert_eq!(error_type(err), "InvalidInput");
}

#[tokio::test]
async fn a_scheduled_execution_name_is_stored_and_a_retry_from_it_gets_the_same_run() {
    let env = env(&[]).await;
    let mut payload = json!({"symbols": ["AAPL", "MSFT"], "lookback_days": 3});
    payload["execution_name"] = json!("scheduled-d32c5kddcf5bb8c3");
    let out = env.select_ok(payload.clone()).await;
    let client = env.client().await;
    let name = ExecutionName::parse("scheduled-d32c5kddcf5bb8c3").unwrap();
    let found = db::runs::find_by_execution_name(&client, &name)
        .await
        .unwrap()
        .expect("the run is found by its execution's name");
    assert_eq!(found.run_id, out.run_id);
    assert_eq!(found.execution_name.as_deref(), Some(name.as_str()));

    // Without new_run_id each attempt would mint a fresh id: the name makes a retry idempotent.
    let before = env.written_rows().await;
    let again = env.select_ok(payload.clone()).await;
    assert_eq!(again.run_id, out.run_id);
    assert_eq!(again.batches, out.batches);
    assert_eq!(env.written_rows().await, before);

    // The same execution cannot create a second, different run.
    payload["symbols"] = json!(["NVDA"]);
    let err = env.select(payload).await.unwrap_err();
    assert!(
        err.to_string().contains("scheduled-d32c5kddcf5bb8c3"),
        "{err}"
    );
    assert_eq!(error_type(err), "InvalidInput");
    assert_eq!(env.written_rows().await, before);

    // Another execution with the same request is another run.
    let other = env
        .select_ok(json!({"symbols": ["AAPL", "MSFT"], "lookback_days": 3, "execution_name": "scheduled-other"}))
        .await;
    assert_ne!(other.run_id, out.run_id);
}

#[tokio::test]
async fn a_malformed_execution_name_or_one_on_a_resume_is_invalid_input() {
    let env = env(&[]).await;
    let before = env.written_rows().await;
    for name in [
        json!(""),
        json!("has space"),
        json!("a:b"),
        json!("x".repeat(81)),
        json!(7),
    ] {
        let err = env
            .select(json!({"symbols": ["AAPL"], "execution_name": name}))
            .await
            .unwrap_err();
        assert_eq!(error_type(err), "InvalidInput", "{name}");
    }
    assert_eq!(env.written_rows().await, before);
    let run = env.select_ok(explicit(&["AAPL"])).await;
    let before = env.written_rows().await;
    let err = env
        .select(json!({"run_id": run.run_id, "execution_name": "scheduled-x"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("execution_name"), "{err}");
    assert_eq!(error_type(err), "InvalidInput");
    assert_eq!(env.written_rows().await, before);
}

#[tokio::test]
async fn mentions_within_days_counts_only_recent_mentions_like_the_original_test_mode() {
    let env = env(&[]).await;
    let client = env.client().await;
    // OLD's articles were published a month ago; NEW's and MID's this week. Recency is the
    // article's `published_at`: the original `article_ticker` has no time of its own.
    test_support::original::seed_mentions_aged(&client, &[("OLD", 9)], 30).await;
    test_support::original::seed_mentions(&env.client().await, &[("NEW", 3), ("MID", 2)]).await;

    let all_time = env
        .select_ok(json!({"top_n": 2, "start_date": "2026-03-09"}))
        .await;
    let recent = env
        .select_ok(json!({"top_n": 2, "mentions_within_days": 7, "start_date": "2026-03-09"}))
        .await;

    assert_eq!(env.planned_symbols(&all_time.run_id).await, ["NEW", "OLD"]);
    assert_eq!(env.planned_symbols(&recent.run_id).await, ["MID", "NEW"]);
    let run = db::runs::get(&client, &recent.run_id).await.unwrap();
    assert_eq!(
        run.selection,
        Selection::TopN {
            n: 2,
            min_articles: 1,
            within_days: Some(7)
        }
    );
}

/// One active execution per run: the execution creating a run holds its lease; a resume from
/// another execution is `RunBusy` (writing nothing) unless it takes the lease over; a fetch from
/// an execution that lost the lease stops.
#[tokio::test]
async fn a_run_held_by_one_execution_is_refused_to_another() {
    let env = env(&[]).await;
    let mut payload = explicit(&["AAPL", "MSFT"]);
    payload["lease_execution"] = json!("exec-a");
    let run = env.select_ok(payload).await;
    let before = env.written_rows().await;

    let err = env
        .select(json!({"run_id": run.run_id.as_str(), "lease_execution": "exec-b"}))
        .await
        .unwrap_err();
    assert_eq!(error_type(err), "RunBusy");
    assert_eq!(env.written_rows().await, before);
    let err = env
        .select(json!({"run_id": run.run_id.as_str()}))
        .await
        .unwrap_err();
    assert_eq!(error_type(err), "RunBusy");

    let taken = env
        .select(json!({"run_id": run.run_id.as_str(), "lease_execution": "exec-b", "take_over_lease": true}))
        .await
        .unwrap();
    let stale = env
        .app
        .fetch(
            shared::contract::FetchBatchInput {
                run_id: run.run_id.clone(),
                batch: taken.batches[0].batch,
                lease_execution: Some("exec-a".into()),
            },
            tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(error_type(stale), "RunBusy");
    assert_eq!(
        env.yahoo_requests("AAPL"),
        0,
        "the stale execution fetched nothing"
    );
}

/// Stored rows the code cannot read are `StoredDataInvalid`, which the state machine never
/// retries (reading the row again gives the same answer), and the resume writes nothing.
async fn resume_refused_as_stored_data_invalid(env: &Env, run_id: &str) -> String {
    let before = env.written_rows().await;
    let err = env.select(json!({"run_id": run_id})).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let message = err.to_string();
    assert_eq!(error_type(err), "StoredDataInvalid", "{message}");
    assert_eq!(env.written_rows().await, before);
    let run = db::runs::exists(
        &env.client().await,
        &shared::model::RunId::parse(run_id).unwrap(),
    )
    .await
    .unwrap();
    assert!(run, "the run is still there");
    message
}

#[tokio::test]
async fn resume_of_a_stored_run_with_an_unknown_provider_is_stored_data_invalid() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    env.execute_for_run(
        "UPDATE backfill_run SET provider = 'alpaca' WHERE run_id = $1",
        &run.run_id,
    )
    .await;
    let message = resume_refused_as_stored_data_invalid(&env, run.run_id.as_str()).await;
    assert!(
        message.contains("backfill_run") && message.contains("alpaca"),
        "{message}"
    );
}

#[tokio::test]
async fn resume_of_a_run_whose_stored_progress_holds_a_malformed_symbol_is_stored_data_invalid() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL", "MSFT"])).await;
    env.execute_for_run(
        "UPDATE backfill_progress SET symbol = 'A/B' WHERE run_id = $1 AND symbol = 'MSFT'",
        &run.run_id,
    )
    .await;
    let message = resume_refused_as_stored_data_invalid(&env, run.run_id.as_str()).await;
    assert!(
        message.contains("backfill_progress") && message.contains("malformed symbol"),
        "{message}"
    );
    let stored = db::runs::get(&env.client().await, &run.run_id)
        .await
        .unwrap();
    assert_eq!(stored.executions, 1, "the refused resume was rolled back");
}

/// A column whose type is not the one the code reads (`row.try_get` fails to decode it, with no
/// SQLSTATE and the connection fine) is the data's fault, not the connection's.
#[tokio::test]
async fn resume_of_a_run_whose_stored_column_has_another_type_is_stored_data_invalid() {
    let env = env(&[]).await;
    let run = env.select_ok(explicit(&["AAPL"])).await;
    env.client()
        .await
        .batch_execute("ALTER TABLE backfill_run ALTER COLUMN batch_size TYPE bigint")
        .await
        .unwrap();
    let message = resume_refused_as_stored_data_invalid(&env, run.run_id.as_str()).await;
    assert!(message.contains("error deserializing column"), "{message}");
}
