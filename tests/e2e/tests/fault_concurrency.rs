//! The fault suite, concurrent operators: two `backfill resume RUN_ID` one second apart on a
//! stopped run. One resume starts an execution, the other is refused (exit 2, nothing started);
//! the run ends succeeded, no ticker ever goes from `success` back to `pending`, and no symbol is
//! fetched more often than one resume needs. Prints one line of figures (`fault-suite | …`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::local_stack::{unique_name, LocalStackOptions};
use e2e::{
    backfill_cli, compare_with_ground_truth, db, executions, finish, numbered_symbols, only_run_id,
    recent_weekdays, requests_per_symbol, run_input, run_status, serial, set_knobs, start_stack,
    stop_once_stored, ticker_statuses, Figures,
};
use serde_json::json;

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn two_resumes_one_second_apart_start_one_execution_and_the_run_succeeds() {
    let _serial = serial().await;
    let stack = start_stack(LocalStackOptions::default()).await;
    // Slow answers: the run lasts several seconds, so the second resume finds the first's
    // execution still running.
    set_knobs(&stack, json!({"latency_ms": 500})).await;
    let symbols = numbered_symbols("FRES", 12);
    let (start, end) = recent_weekdays();
    let input = run_input(
        &symbols,
        (start, end),
        "1h",
        "yahoo",
        json!({"batch_size": 3, "max_concurrency": 1}),
    );
    let started = Instant::now();
    let first = stack
        .start_execution(&input, &unique_name("to-stop"))
        .await
        .expect("StartExecution");
    let client = db(&stack).await;

    // Stop the run part-way, as an operator would: two tickers stored, the rest not.
    stop_once_stored(&stack, &client, &first, 2, RUN_TIMEOUT).await;
    let run_id = only_run_id(&client).await;

    // Watch every ticker's status until the end: once `success`, always `success`.
    let regressions: Arc<Mutex<Vec<String>>> = Arc::default();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let regressions = Arc::clone(&regressions);
        let watching = Arc::clone(&watching);
        let watch_client = db(&stack).await;
        tokio::spawn(async move {
            let mut succeeded: BTreeMap<String, ()> = BTreeMap::new();
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                for (symbol, status) in ticker_statuses(&watch_client).await {
                    if status == "success" {
                        succeeded.insert(symbol, ());
                    } else if succeeded.contains_key(&symbol) {
                        regressions
                            .lock()
                            .unwrap()
                            .push(format!("{symbol}: success -> {status}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    // Two operators resume the same run, one second apart, each following it to the end.
    let resume = || async {
        backfill_cli(&stack)
            .await
            .args(["resume", &run_id, "--wait"])
            .output()
            .await
            .expect("backfill resume ran")
    };
    let (a, b) = tokio::time::timeout(RUN_TIMEOUT, async {
        tokio::join!(resume(), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            resume().await
        })
    })
    .await
    .expect("the resumes did not return in time");
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    watcher.await.expect("the watcher panicked");
    let elapsed = started.elapsed();

    let describe = |o: &std::process::Output| {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let rows =
        compare_with_ground_truth(&stack, &client, "yahoo", "1h", &names, (start, end)).await;
    let all = executions(&stack).await;
    let requests = requests_per_symbol(&stack).await;
    Figures {
        test: "fault_concurrency::two_resumes_one_second_apart_start_one_execution_and_the_run_succeeds",
        rows: rows.clone(),
        elapsed,
        executions: all.len(),
        note: format!(
            "resume exits {:?} and {:?} | executions {all:?} | provider requests {} for {} tickers",
            a.status.code(),
            b.status.code(),
            requests.values().sum::<u64>(),
            symbols.len()
        ),
    }
    .print();

    // One resume started an execution and followed it to success; the other was refused.
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(2)],
        "first resume: {}\nsecond resume: {}\n{}",
        describe(&a),
        describe(&b),
        stack.logs_tail(40)
    );
    let refused = if a.status.code() == Some(2) { &a } else { &b };
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert!(
        refusal.contains("being worked on") && refusal.contains("nothing was started"),
        "the refusal says why and that nothing was started: {}",
        describe(refused)
    );
    assert_eq!(
        all.len(),
        2,
        "the stopped execution and one resume: {all:?}"
    );
    assert_eq!(all[0].1, "ABORTED", "{all:?}");
    assert_eq!(all[1].1, "SUCCEEDED", "{all:?}");
    let resumed_arn = format!(
        "{}:{}",
        stack
            .state_machine_arn()
            .replacen(":stateMachine:", ":execution:", 1),
        all[1].0
    );
    let resumed = finish(&stack, &resumed_arn, RUN_TIMEOUT).await;
    assert_eq!(
        resumed.output.as_ref().map(|o| o["status"].clone()),
        Some(json!("succeeded"))
    );

    // The run succeeded, every bar stored once, no ticker went back, nothing fetched twice.
    assert_eq!(run_status(&client).await, "succeeded");
    assert!(ticker_statuses(&client)
        .await
        .iter()
        .all(|(_, status)| status == "success"));
    rows.assert_exact("two concurrent resumes");
    let regressions = regressions.lock().unwrap().clone();
    assert!(regressions.is_empty(), "{regressions:?}");
    for symbol in &symbols {
        assert_eq!(
            requests.get(symbol).copied().unwrap_or(0),
            1,
            "{symbol} was fetched more than once (one request serves it): {requests:?}"
        );
    }
}
