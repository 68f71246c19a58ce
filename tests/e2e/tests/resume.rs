//! A run stopped part-way and resumed with the `backfill` CLI: the resume finishes the run,
//! writes no duplicate rows and does not fetch again what was already stored.

use e2e::local_stack::{unique_name, LocalStackOptions};
use e2e::{
    assert_only_ground_truth_stored, cli_ok, db, only_run_id, recent_weekdays, requests_per_symbol,
    run_input, serial, set_knobs, start_stack, stop_once_stored, ticker_statuses,
    EXECUTION_TIMEOUT,
};
use serde_json::{json, Value};

#[tokio::test]
async fn stopped_run_resumed_with_the_cli_completes_without_duplicates_or_refetching() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    // Slow answers, so that the run is still going when the first ticker is stored.
    set_knobs(&stack, json!({"latency_ms": 300})).await;
    let window = recent_weekdays();
    let symbols = [
        "RESMA", "RESMB", "RESMC", "RESMD", "RESME", "RESMF", "RESMG", "RESMH",
    ];
    let input = run_input(
        &symbols,
        window,
        "1h",
        "yahoo",
        json!({"batch_size": 2, "max_concurrency": 1}),
    );
    let arn = stack
        .start_execution(&input, &unique_name("to-stop"))
        .await
        .expect("StartExecution");
    let client = db(&stack).await;

    // Stop the execution as soon as one ticker is stored.
    stop_once_stored(&stack, &client, &arn, 1, EXECUTION_TIMEOUT).await;

    let stored_before: Vec<String> = ticker_statuses(&client)
        .await
        .into_iter()
        .filter(|(_, status)| status == "success")
        .map(|(symbol, _)| symbol)
        .collect();
    assert!(
        stored_before.len() < symbols.len(),
        "the execution was stopped too late to leave anything to resume"
    );
    let requests_before = requests_per_symbol(&stack).await;
    let run_id = only_run_id(&client).await;

    cli_ok(&stack, &["resume", &run_id, "--wait"]).await;

    // Complete, and every bar stored once.
    assert!(ticker_statuses(&client)
        .await
        .iter()
        .all(|(_, status)| status == "success"));
    let rows = assert_only_ground_truth_stored(&stack, &client, "yahoo", &symbols, window).await;
    let status = cli_ok(&stack, &["status", &run_id, "--json"]).await;
    let report: Value =
        serde_json::from_slice(&status.stdout).expect("backfill status --json prints JSON");
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(
        report["records_inserted"],
        json!(rows),
        "every stored bar was inserted exactly once: {report}"
    );

    // Nothing stored before the resume was fetched again.
    let requests_after = requests_per_symbol(&stack).await;
    for symbol in &stored_before {
        assert_eq!(
            requests_after.get(symbol),
            requests_before.get(symbol),
            "{symbol} was already stored, yet fetched again"
        );
    }
    eprintln!(
        "resume: {} of {} tickers were stored when the execution was stopped",
        stored_before.len(),
        symbols.len()
    );
}
