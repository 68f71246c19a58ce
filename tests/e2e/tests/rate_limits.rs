//! Rate limits end to end: market-sim answers 429 (with and without `Retry-After`), the 429
//! pauses the shared request budget, fetch-batch returns `rate_limited` with the pause's wait when
//! it is longer than an invocation may sleep (`RATE_BUDGET_MAX_WAIT_SECONDS`), and the state
//! machine waits it out on its own, or, after `max_rate_limit_rounds` invocations that a 429
//! stopped with nothing finished, leaves the run for a resume.

use std::time::Duration;

use e2e::local_stack::aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use e2e::local_stack::{ExecutionOutcome, LocalStack, LocalStackOptions, MapMode};
use e2e::{
    assert_failed_with, assert_only_ground_truth_stored, assert_stored_equal_ground_truth,
    assert_succeeded, db, execute, fetch_batch_outputs, only_run_id, recent_weekdays,
    requests_report, run_input, serial, set_knobs, start_stack, ticker_statuses, EXECUTION_TIMEOUT,
};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// market-sim's `Retry-After` in the test that sends one.
const RETRY_AFTER_SECONDS: u64 = 2;

/// The execution SUCCEEDED with every ticker `success`; returns a connection to the database.
async fn assert_every_ticker_succeeded(
    stack: &LocalStack,
    outcome: &ExecutionOutcome,
    symbols: &[&str],
) -> Client {
    let output = assert_succeeded(stack, outcome);
    assert_eq!(output["success"], symbols.len(), "{output}");
    let client = db(stack).await;
    let all_success: Vec<(String, String)> = symbols
        .iter()
        .map(|s| (s.to_string(), "success".to_string()))
        .collect();
    assert_eq!(ticker_statuses(&client).await, all_success);
    client
}

/// fetch-batch's `rate_limited` answers, of which there is at least one.
fn rate_limited_answers(stack: &LocalStack) -> Vec<Value> {
    let limited: Vec<Value> = fetch_batch_outputs(stack)
        .into_iter()
        .filter(|o| o["status"] == "rate_limited")
        .collect();
    assert!(!limited.is_empty(), "market-sim never rate limited the run");
    limited
}

/// The wait a Wait state was entered with: a counted round's `wait_seconds`, or the budget wait's
/// `fetched.retry_after_seconds`.
fn wait_seconds(event: &HistoryEvent) -> Option<u64> {
    let input = event.state_entered_event_details()?.input()?;
    let input = serde_json::from_str::<Value>(input).ok()?;
    input["wait_seconds"]
        .as_u64()
        .or_else(|| input["fetched"]["retry_after_seconds"].as_u64())
}

/// Pauses (2 s) longer than an invocation may sleep for its slot (1 s): every 429 ends the
/// invocation, so the state machine's Wait states are what is tested. The local stack's pacing
/// (6000 a minute) keeps every ordinary slot within that second.
fn short_sleep() -> (String, String) {
    ("RATE_BUDGET_MAX_WAIT_SECONDS".into(), "1".into())
}

fn millis(event: &HistoryEvent) -> i64 {
    event.timestamp().to_millis().unwrap_or_default()
}

#[tokio::test]
async fn rate_limited_run_waits_with_retry_after_and_still_succeeds() {
    let _serial = serial().await;
    // The Wait states live in the per-batch child executions, of which moto keeps no history; with
    // the Maps inline (the same batch processor, states and paths) the parent's history holds
    // every Wait state with its input and timestamps.
    let stack = start_stack(LocalStackOptions {
        map_mode: MapMode::InlineForMeasuring,
        function_env: vec![short_sleep()],
        ..LocalStackOptions::default()
    })
    .await;
    // Polygon's 429 carries Retry-After. Two requests per 2 s window: every batch after the
    // first finds the window used up and must wait once.
    set_knobs(
        &stack,
        json!({"rate_limit": {
            "requests": 2,
            "window_seconds": 2,
            "retry_after": {"fixed": RETRY_AFTER_SECONDS},
        }}),
    )
    .await;
    let window = recent_weekdays();
    let symbols = ["RLRAA", "RLRAB", "RLRAC", "RLRAD", "RLRAE"];
    // One batch at a time, so that the inline history attributes events exactly.
    let input = run_input(
        &symbols,
        window,
        "1h",
        "polygon",
        json!({"batch_size": 2, "max_concurrency": 1}),
    );

    let (arn, outcome) = execute(&stack, &input, "retry-after", EXECUTION_TIMEOUT).await;

    let client = assert_every_ticker_succeeded(&stack, &outcome, &symbols).await;
    assert_only_ground_truth_stored(&stack, &client, "polygon", &symbols, window).await;

    // Every 429 stopped a batch invocation with `rate_limited`, carrying the header's value.
    let limited = rate_limited_answers(&stack);
    for answer in &limited {
        assert_eq!(
            answer["retry_after_seconds"],
            json!(RETRY_AFTER_SECONDS),
            "{answer}"
        );
    }
    let report = requests_report(&stack).await;
    assert_eq!(
        report["by_status"]["429"],
        json!(limited.len()),
        "one rate_limited answer per 429: {report}"
    );

    // One Wait state per rate_limited answer, each waiting the Retry-After it was given.
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    let events = &history.events;
    let entered: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].r#type == HistoryEventType::WaitStateEntered)
        .collect();
    assert_eq!(entered.len(), limited.len(), "{:?}", history.types());
    for &i in &entered {
        assert_eq!(
            wait_seconds(&events[i]),
            Some(RETRY_AFTER_SECONDS),
            "{:?}",
            events[i]
        );
        let exited = events[i..]
            .iter()
            .find(|e| e.r#type == HistoryEventType::WaitStateExited)
            .expect("every Wait state was left");
        // moto really sleeps; only a loose lower bound, the equality above is the assertion.
        let waited = Duration::from_millis((millis(exited) - millis(&events[i])).max(0) as u64);
        assert!(
            waited + Duration::from_millis(500) >= Duration::from_secs(RETRY_AFTER_SECONDS),
            "the Wait state lasted only {waited:?}"
        );
    }
    let largest_batch = history.iterations().iter().map(|i| i.events).max();
    eprintln!(
        "retry-after run (inline): {} history events in all; the largest batch iteration: {largest_batch:?} events",
        history.len()
    );
}

#[tokio::test]
async fn rate_limited_run_without_retry_after_pauses_and_still_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions {
        function_env: vec![
            ("RATE_LIMIT_PAUSE_SECONDS".into(), "2".into()),
            short_sleep(),
        ],
        ..LocalStackOptions::default()
    })
    .await;
    // Yahoo's plain 429: no Retry-After, so the budget pauses RATE_LIMIT_PAUSE_SECONDS.
    set_knobs(
        &stack,
        json!({"rate_limit": {"requests": 2, "window_seconds": 2}, "yahoo_retry_after": false}),
    )
    .await;
    let window = recent_weekdays();
    let symbols = ["RLBOA", "RLBOB", "RLBOC", "RLBOD", "RLBOE"];
    let input = run_input(
        &symbols,
        window,
        "1h",
        "yahoo",
        json!({"batch_size": 2, "max_concurrency": 2}),
    );

    let (arn, outcome) = execute(&stack, &input, "backoff", EXECUTION_TIMEOUT).await;

    let client = assert_every_ticker_succeeded(&stack, &outcome, &symbols).await;
    assert_stored_equal_ground_truth(&stack, &client, "yahoo", &symbols, window).await;

    let limited = rate_limited_answers(&stack);
    for answer in &limited {
        let wait = answer["retry_after_seconds"].as_u64();
        assert!(
            wait.is_some_and(|w| (1..=2).contains(&w)),
            "the pause (2 s), or what the other batch left of it: {answer}"
        );
    }
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    eprintln!(
        "pause run: {} history events in the parent execution; {} rate_limited answers",
        history.len(),
        limited.len()
    );
}

#[tokio::test]
async fn rate_limit_rounds_exhausted_leaves_the_run_incomplete_and_fails_the_execution_with_the_run_id(
) {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    // One request per hour: the second ticker stays rate limited however long the run waits.
    set_knobs(
        &stack,
        json!({"rate_limit": {"requests": 1, "window_seconds": 3600, "retry_after": {"fixed": 1}}}),
    )
    .await;
    let input = run_input(
        &["RLEXA", "RLEXB"],
        recent_weekdays(),
        "1h",
        "polygon",
        json!({"batch_size": 2, "max_rate_limit_rounds": 1}),
    );

    let (arn, outcome) = execute(&stack, &input, "rounds-exhausted", EXECUTION_TIMEOUT).await;

    assert_failed_with(&stack, &outcome, "RunIncomplete");
    let client = db(&stack).await;
    let run_id = only_run_id(&client).await;
    let cause = outcome.cause.unwrap_or_default();
    assert!(cause.contains(&run_id), "the cause names the run: {cause}");
    assert!(
        cause.contains(&format!("backfill resume {run_id}")),
        "the cause says how to resume: {cause}"
    );

    // The first invocation finished RLEXA before the 429s stopped it: no round. The next two
    // finished nothing: round 1 is waited out, round 2 exceeds max_rate_limit_rounds 1 and the
    // batch is left as it was: the run is incomplete, not failed.
    let answers: Vec<(String, bool)> = fetch_batch_outputs(&stack)
        .iter()
        .map(|o| {
            (
                o["status"].as_str().unwrap_or_default().to_string(),
                o["rate_limit_round"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    let limited = |round| ("rate_limited".to_string(), round);
    assert_eq!(answers, [limited(false), limited(true), limited(true)]);
    let run_status: String = client
        .query_one("SELECT status FROM backfill_run", &[])
        .await
        .expect("reading backfill_run")
        .get(0);
    assert_eq!(run_status, "incomplete");
    assert_eq!(
        ticker_statuses(&client).await,
        [
            ("RLEXA".to_string(), "success".to_string()),
            ("RLEXB".to_string(), "rate_limited".to_string()),
        ]
    );
    let history = stack.history(&arn).await.expect("GetExecutionHistory");
    eprintln!(
        "rounds-exhausted run: {} history events in the parent execution",
        history.len()
    );
}
