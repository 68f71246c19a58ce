//! Harness for the CLI's tests: the `backfill` binary run as a child process with a clean
//! environment, or in-process against the Step Functions fake; a real moto server for the
//! adapter's tests; and a migrated PostgreSQL database with the shared handlers (against
//! market-sim) to make real runs.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use market_sim::{Knobs, RunningSim, SimConfig};
use serde_json::Value;
use shared::config::Config;
use shared::contract::SelectTickersInput;
use shared::db::DatabaseSource;
use shared::handler::App;
use shared::model::RunId;
use statemachine::cli::{run_with, Cli, Session};
use statemachine::executions::fake::FakeExecutions;
use test_support::TestDb;

pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/backfill-test";

/// What a run of the binary left behind.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// A `key: value` line of stdout (`run_id: …`, `execution_arn: …`).
    pub fn field(&self, key: &str) -> String {
        let prefix = format!("{key}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key} line in stdout:\n{}", self.stdout))
            .trim()
            .to_string()
    }

    /// Asserts that the binary exited `code` and said `needle` on stderr.
    pub fn assert_fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.contains(needle), "{}", self.stderr);
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `backfill args…` with only `env` set (plus what any AWS call needs to stay local).
pub async fn backfill(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_backfill"));
    cmd.args(args)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("backfill finishes within 2 minutes")
        .expect("backfill runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The state machine the in-process runs name (`--state-machine-arn`).
pub const MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:backfill";

/// `backfill --state-machine-arn MACHINE args…` in-process, as the binary would run it, but with
/// `fake` as Step Functions, the database at `database_url` (`None`: no database setting) and
/// stdout captured. `stderr` holds what the binary prints for an error (its warnings and
/// progress go to the test's own stderr).
pub async fn backfill_in_process(
    fake: &FakeExecutions,
    database_url: Option<&str>,
    args: &[&str],
) -> Output {
    let mut argv = vec!["backfill", "--state-machine-arn", MACHINE];
    argv.extend_from_slice(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            return Output {
                code: e.exit_code(),
                stdout: String::new(),
                stderr: e.to_string(),
            }
        }
    };
    let database = database_url.map(|url| DatabaseSource::Url(url.to_string().into()));
    let mut stdout = Vec::new();
    let result = run_with(
        cli,
        || async { Ok(fake.clone()) },
        &mut Session::new(database, &mut stdout),
    )
    .await;
    let (code, stderr) = match result {
        Ok(code) => (i32::from(code), String::new()),
        Err(e) => (i32::from(e.exit_code()), format!("error: {e}\n")),
    };
    Output {
        code,
        stdout: String::from_utf8(stdout).expect("the CLI writes UTF-8"),
        stderr,
    }
}

/// A moto server of this test's own, with a Step Functions client pointed at it.
pub struct Moto {
    server: test_support::moto::Moto,
    pub url: String,
    pub sfn: aws_sdk_sfn::Client,
}

impl Moto {
    pub async fn start() -> Moto {
        let server = test_support::moto::Moto::start().await;
        Moto {
            url: server.url().to_string(),
            sfn: aws_sdk_sfn::Client::new(&server.sdk_config()),
            server,
        }
    }

    /// Lets moto really run executions (Pass/Fail machines need no Lambda).
    pub async fn enable_execution(&self) {
        let status = reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.url))
            .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .await
            .expect("moto config call")
            .status();
        assert!(status.is_success(), "moto config: {status}");
    }

    pub async fn create_state_machine(&self, name: &str, definition: &Value) -> String {
        self.sfn
            .create_state_machine()
            .name(name)
            .definition(definition.to_string())
            .role_arn(ROLE_ARN)
            .send()
            .await
            .expect("create state machine")
            .state_machine_arn()
            .to_string()
    }

    /// A one-state machine that passes its input through.
    pub async fn pass_machine(&self) -> String {
        self.create_state_machine(
            "backfill-pass",
            &serde_json::json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
        )
        .await
    }

    pub async fn executions(&self, state_machine_arn: &str) -> Vec<(String, String)> {
        self.sfn
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .send()
            .await
            .expect("list executions")
            .executions()
            .iter()
            .map(|e| (e.name().to_string(), e.execution_arn().to_string()))
            .collect()
    }

    pub async fn execution_input(&self, execution_arn: &str) -> Value {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .expect("describe execution");
        serde_json::from_str(out.input().expect("execution input")).expect("input is JSON")
    }

    /// The environment the binary needs to reach this moto and run `state_machine_arn`.
    pub fn env<'a>(&'a self, state_machine_arn: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut env: Vec<(&str, &str)> = self.server.env();
        env.push(("STATE_MACHINE_ARN", state_machine_arn));
        env
    }

    /// [`Moto::env`] with `DATABASE_URL` pointing at `env`'s database.
    pub fn env_with_db<'a>(
        &'a self,
        state_machine_arn: &'a str,
        env: &'a Env,
    ) -> Vec<(&'a str, &'a str)> {
        let mut vars = self.env(state_machine_arn);
        vars.push(("DATABASE_URL", env.url.as_str()));
        vars
    }
}

/// A migrated database, a market-sim, and the shared handlers wired to both.
pub struct Env {
    pub db: TestDb,
    pub url: String,
    pub sim: RunningSim,
    pub app: App,
}

impl Env {
    pub async fn new(knobs: Knobs) -> Env {
        let db = TestDb::new().await;
        let mut client = db.client().await;
        shared::db::migrate::run(&mut client)
            .await
            .expect("migrations apply");
        let sim = market_sim::spawn(SimConfig::with_knobs(knobs))
            .await
            .expect("market-sim starts");
        let vars: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), db.url()),
            ("YAHOO_BASE_URL".into(), sim.base_url()),
            ("POLYGON_BASE_URL".into(), sim.base_url()),
            ("POLYGON_API_KEY".into(), "test-key".into()),
            ("PROVIDER_REQUESTS_PER_MINUTE".into(), "60000".into()),
            // Faults that never recover end an invocation quickly.
            ("FAULT_PATIENCE_SECONDS".into(), "1".into()),
            ("FAULT_BACKOFF_BASE_MS".into(), "50".into()),
        ]);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let app = App::new(config, None).expect("app builds");
        let url = db.url();
        Env { db, url, sim, app }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.db.client().await
    }

    /// The environment the binary needs to reach this database.
    pub fn db_env(&self) -> [(&str, &str); 1] {
        [("DATABASE_URL", self.url.as_str())]
    }

    /// `UPDATE backfill_run SET <set> WHERE run_id = <run_id>`: a run as something else left it.
    pub async fn update_run(&self, run_id: &RunId, set: &str) {
        self.client()
            .await
            .execute(
                &format!("UPDATE backfill_run SET {set} WHERE run_id = $1"),
                &[&run_id.as_str()],
            )
            .await
            .unwrap_or_else(|e| panic!("UPDATE backfill_run SET {set}: {e}"));
    }

    /// The execution holding the run's lease.
    pub async fn lease_of(&self, run_id: &RunId) -> Option<String> {
        shared::db::runs::get(&self.client().await, run_id)
            .await
            .expect("the run is stored")
            .lease_execution
    }

    /// select-tickers for a new run over explicit symbols, 2026-03-09..=2026-03-11 hourly, Yahoo.
    pub async fn new_run(
        &self,
        symbols: &[&str],
        batch_size: i64,
    ) -> shared::contract::SelectTickersOutput {
        let input: SelectTickersInput = serde_json::from_value(serde_json::json!({
            "symbols": symbols,
            "start_date": "2026-03-09",
            "end_date": "2026-03-11",
            "interval": "1h",
            "provider": "yahoo",
            "batch_size": batch_size,
        }))
        .expect("input parses");
        self.app.select(input).await.expect("select-tickers")
    }

    /// fetch-batch as the Lambda runtime calls it (so that a raised error is noted on the batch).
    pub async fn fetch_batch(
        &self,
        run_id: &RunId,
        batch: i32,
    ) -> Result<shared::contract::FetchBatchOutput, shared::BackfillError> {
        let payload = serde_json::json!({"run_id": run_id, "batch": batch});
        self.app
            .fetch_batch(lambda_runtime::LambdaEvent::new(
                payload,
                lambda_runtime::Context::default(),
            ))
            .await
    }

    pub async fn finalize(
        &self,
        run_id: &RunId,
        batch_results: Option<Value>,
    ) -> shared::contract::FinalizeRunOutput {
        self.app
            .finalize(shared::contract::FinalizeRunInput {
                run_id: run_id.clone(),
                lease_execution: None,
                batch_results,
            })
            .await
            .expect("finalize-run")
    }

    /// Rows of every table, by table name: what "writes nothing" is checked against.
    pub async fn row_counts(&self) -> Vec<(String, i64)> {
        let client = self.client().await;
        let mut out = Vec::new();
        for table in [
            "ticker",
            "article",
            "article_ticker",
            "stock_price_history",
            "backfill_progress",
            "backfill_run",
            "backfill_batch",
        ] {
            let n: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await
                .expect("count rows")
                .get(0);
            out.push((table.to_string(), n));
        }
        out
    }
}
