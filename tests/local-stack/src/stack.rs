//! [`LocalStack`]: every component of the local stack, started in order, stopped on drop.
//!
//! ```text
//!  SDK clients (tests, backfill CLI) ──► adapter ──► moto (Step Functions interpreter)
//!                                          ▲  │             │ Lambda calls go to
//!                                          │  │             │ localhost:$MOTO_PORT
//!                                          └──┼─────────────┘
//!                                             └─ Invoke ──► function host (in the adapter) ──►
//!                                                           instances of the real binaries,
//!                                                           polling its Lambda Runtime API
//!                                                                        │
//!                                                       PostgreSQL ◄─────┴────► market-sim
//! ```

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use test_support::process::log_tail;
use test_support::{wait, TestDb};

use crate::adapter::{AdapterConfig, AdapterThread, Invocation};
use crate::error::{Error, Result};
use crate::process::Service;
use crate::runtime::{self, FunctionSpec, HostConfig, InstanceInfo, InstanceState, INSTANCES_PATH};
use crate::workspace::{self, MapMode};

/// The region and account moto uses; the rendered definition's ARNs name them too.
pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "123456789012";
/// moto does not check credentials; SDKs want some.
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";
/// moto does not check the role either; real deployments pass their own.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/price-backfill-local-stack";
/// How often [`LocalStack::wait_for_execution`] asks whether an execution has ended.
const EXECUTION_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How the Lambda Invoke adapter runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdapterMode {
    /// On a thread of this process (tests: nothing more to build, and it records invocations).
    #[default]
    InProcess,
    /// As the `lambda-invoke-adapter` binary at this path (`local-stack up`: it must outlive us).
    Process(PathBuf),
}

/// The functions' timeouts (Lambda's function timeout), as the Terraform module's
/// `*_timeout_seconds` variables set them. The function host stops an invocation that runs longer
/// (`Sandbox.Timedout`), and each Task's `TimeoutSeconds` is the timeout plus 60 s, rendered by
/// `scripts/render-asl` as deployment renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionTimeouts {
    pub select_tickers: Duration,
    pub fetch_batch: Duration,
    pub finalize_run: Duration,
}

impl Default for FunctionTimeouts {
    fn default() -> Self {
        FunctionTimeouts {
            select_tickers: Duration::from_secs(60),
            fetch_batch: Duration::from_secs(900),
            finalize_run: Duration::from_secs(60),
        }
    }
}

impl FunctionTimeouts {
    /// The timeout of one of [`workspace::FUNCTIONS`].
    pub fn of(&self, function: &str) -> Duration {
        match function {
            "select-tickers" => self.select_tickers,
            "fetch-batch" => self.fetch_batch,
            "finalize-run" => self.finalize_run,
            _ => Duration::from_secs(900),
        }
    }
}

/// What to start, and how.
#[derive(Debug, Clone)]
pub struct LocalStackOptions {
    /// Extra environment for the functions, applied after the defaults (`DATABASE_URL`,
    /// `YAHOO_BASE_URL`, `POLYGON_BASE_URL`, `POLYGON_API_KEY=test-key`,
    /// `PROVIDER_REQUESTS_PER_MINUTE=6000`, `RUST_LOG=info`), so it can override them; e.g.
    /// `FETCH_BUDGET_SECONDS`, `RATE_LIMIT_PAUSE_SECONDS`.
    pub function_env: Vec<(String, String)>,
    /// market-sim's flags after `--port 0`, e.g. `--rate-limit 3 --window-seconds 5 --retry-after 2`.
    pub market_sim_args: Vec<String>,
    /// Use this database (it is migrated). `None`: a fresh database on the test process's
    /// throwaway cluster (`test_support::TestDb`), dropped with the stack; like `TestDb::new`,
    /// that panics when no PostgreSQL can be found or started.
    pub database_url: Option<String>,
    /// Instances of each function that may run at once (Lambda's reserved concurrency; the Map's
    /// concurrent batches need as many fetch-batch instances).
    pub lambda_concurrency: u32,
    /// The functions' timeouts (and so the Tasks' `TimeoutSeconds`).
    pub function_timeouts: FunctionTimeouts,
    /// How long each Task retries transient errors in a row, on average (the Terraform module's
    /// `transient_fault_retry_budget_seconds`; `scripts/render-asl`'s `ASL_RETRY_BUDGET_SECONDS`).
    /// Tests that meet such errors use a small one.
    pub retry_budget_seconds: u32,
    /// Run another program in place of a function's binary (test stand-ins), by function name.
    pub function_programs: Vec<(String, PathBuf)>,
    pub state_machine_name: String,
    pub map_mode: MapMode,
    /// Build the function binaries and market-sim first (once per process).
    pub build: bool,
    /// Where the logs and the rendered definition go. `None`: a fresh folder under the temp dir,
    /// removed on drop (kept, and its path printed, when the thread is panicking).
    pub work_dir: Option<PathBuf>,
    pub adapter: AdapterMode,
    /// How long each component may take to become ready.
    pub startup_timeout: Duration,
    /// Let the processes outlive this one ([`LocalStack::detach`], for `local-stack up`).
    /// Otherwise each gets SIGTERM when this process dies, even when no drop runs (a test
    /// interrupted with Ctrl-C).
    pub detachable: bool,
}

impl Default for LocalStackOptions {
    fn default() -> Self {
        LocalStackOptions {
            function_env: Vec::new(),
            market_sim_args: Vec::new(),
            database_url: None,
            lambda_concurrency: 4,
            function_timeouts: FunctionTimeouts::default(),
            retry_budget_seconds: 1800,
            function_programs: Vec::new(),
            state_machine_name: "price-backfill".into(),
            map_mode: MapMode::AsDeployed,
            build: true,
            work_dir: None,
            adapter: AdapterMode::InProcess,
            startup_timeout: Duration::from_secs(60),
            detachable: false,
        }
    }
}

enum Adapter {
    Thread(AdapterThread),
    Process(Service),
}

/// The programs the stack runs.
struct Tools {
    moto_server: PathBuf,
    market_sim: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools> {
        let market_sim = workspace::target_debug_dir().join("market-sim");
        if !market_sim.is_file() {
            return Err(Error::MissingTool {
                what: "market-sim",
                path: market_sim,
                hint: "build it with `cargo build -p market-sim` (or start with `build: true`)",
            });
        }
        Ok(Tools {
            moto_server: workspace::venv_tool("moto_server")?,
            market_sim,
        })
    }
}

/// A running local stack. Dropping it stops every process it started (each process group, and
/// the function instances the adapter started in groups of their own).
pub struct LocalStack {
    // Stopped in this order by `stop`: the interpreter first, the database last.
    moto: Option<Service>,
    adapter: Option<Adapter>,
    market_sim: Option<Service>,
    test_db: Option<TestDb>,
    sfn: aws_sdk_sfn::Client,
    state_machine_arn: String,
    aws_endpoint_url: String,
    database_url: String,
    market_sim_url: String,
    work_dir: PathBuf,
    remove_work_dir: bool,
    detachable: bool,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    /// The execution's output (JSON), when it succeeded.
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// A Distributed Map run of an execution, as `DescribeMapRun` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRunSummary {
    pub map_run_arn: String,
    pub status: String,
    pub items_total: i64,
    pub items_succeeded: i64,
    pub items_failed: i64,
}

/// An execution's history events, and its Map Runs.
///
/// moto runs a Distributed Map's children inside the parent's interpreter and keeps no history
/// for them: `ListExecutions` with a `mapRunArn` fails there, and there are no child execution
/// ARNs to ask for. The parent's history holds only the MapRun events; [`ExecutionHistory::map_runs`]
/// has their item counts. To measure a child's history size, run the stack with
/// [`MapMode::InlineForMeasuring`] and use [`ExecutionHistory::iterations`].
#[derive(Debug, Clone)]
pub struct ExecutionHistory {
    pub events: Vec<HistoryEvent>,
    pub map_runs: Vec<MapRunSummary>,
}

/// One Map iteration's share of an inline-mode history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iteration {
    /// The Map state's name.
    pub map_state: String,
    pub index: i32,
    /// The events a child execution for this iteration would have: its own events, with
    /// `MapIterationStarted`/`…Succeeded` standing for `ExecutionStarted`/`…Succeeded`, and
    /// without the events of iterations nested in it. A nested Distributed Map would add its
    /// `MapRunStarted`/`MapRunSucceeded` pair, which the inline mode does not have.
    pub events: usize,
}

impl ExecutionHistory {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn count(&self, event_type: HistoryEventType) -> usize {
        self.events
            .iter()
            .filter(|e| e.r#type == event_type)
            .count()
    }

    pub fn types(&self) -> Vec<HistoryEventType> {
        self.events.iter().map(|e| e.r#type.clone()).collect()
    }

    /// Every Map iteration of an inline-mode history with its event count. Attribution follows
    /// the order of events, so it is exact only when iterations ran one at a time
    /// (`max_concurrency: 1`).
    pub fn iterations(&self) -> Vec<Iteration> {
        let mut open: Vec<Iteration> = Vec::new();
        let mut done = Vec::new();
        for event in &self.events {
            match event.r#type {
                HistoryEventType::MapIterationStarted => {
                    let details = event.map_iteration_started_event_details();
                    open.push(Iteration {
                        map_state: details
                            .and_then(|d| d.name())
                            .unwrap_or_default()
                            .to_string(),
                        index: details.map_or(-1, |d| d.index()),
                        events: 1,
                    });
                }
                HistoryEventType::MapIterationSucceeded
                | HistoryEventType::MapIterationFailed
                | HistoryEventType::MapIterationAborted => {
                    if let Some(mut iteration) = open.pop() {
                        iteration.events += 1;
                        done.push(iteration);
                    }
                }
                _ => {
                    if let Some(iteration) = open.last_mut() {
                        iteration.events += 1;
                    }
                }
            }
        }
        done
    }
}

impl LocalStack {
    /// Starts every component and creates the state machine; on any failure, stops what was
    /// started and says which component failed, with the tail of its log.
    pub async fn start(options: LocalStackOptions) -> Result<LocalStack> {
        if options.build {
            // The functions the stack runs as built, not those a stand-in replaces.
            let functions: Vec<&'static str> = workspace::FUNCTIONS
                .into_iter()
                .filter(|f| !options.function_programs.iter().any(|(name, _)| name == f))
                .collect();
            tokio::task::spawn_blocking(move || workspace::build_binaries(&functions))
                .await
                .map_err(|e| Error::Internal(format!("the build task failed: {e}")))??;
        }
        let tools = Tools::find()?;
        let (work_dir, remove_work_dir) = match &options.work_dir {
            Some(dir) => (dir.clone(), false),
            None => (fresh_temp_dir()?, true),
        };
        std::fs::create_dir_all(&work_dir).map_err(Error::io(&work_dir))?;

        // Filled in as components come up, so that an early return stops what is running.
        let mut stack = LocalStack {
            moto: None,
            adapter: None,
            market_sim: None,
            test_db: None,
            sfn: sfn_client("http://127.0.0.1:1"),
            state_machine_arn: String::new(),
            aws_endpoint_url: String::new(),
            database_url: String::new(),
            market_sim_url: String::new(),
            work_dir,
            remove_work_dir,
            detachable: options.detachable,
        };
        match stack.launch(&options, &tools).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                // The error quotes the failing component's log; the others may matter too.
                if stack.remove_work_dir {
                    stack.remove_work_dir = false;
                    eprintln!("local-stack: logs kept in {}", stack.work_dir.display());
                }
                Err(e)
            }
        }
    }

    /// Starts the components in order (each waits for the one before).
    async fn launch(&mut self, options: &LocalStackOptions, tools: &Tools) -> Result<()> {
        let timeout = options.startup_timeout;
        let tied = !options.detachable;

        // PostgreSQL, migrated.
        self.database_url = match &options.database_url {
            Some(url) => url.clone(),
            None => {
                let db = TestDb::new().await;
                let url = db.url();
                self.test_db = Some(db);
                url
            }
        };
        migrate(&self.database_url).await?;

        // market-sim on a port of its choosing; its first line says which.
        let log = self.work_dir.join("market-sim.log");
        let mut sim = Service::spawn(
            "market-sim",
            Command::new(&tools.market_sim)
                .args(["--port", "0"])
                .args(&options.market_sim_args),
            &log,
            tied,
        )?;
        let url = wait_for_listening_line(&mut sim, timeout).await;
        self.market_sim = Some(sim);
        self.market_sim_url = url?;

        // The functions' environment and programs, run by the adapter's function host.
        let mut env = vec![
            ("DATABASE_URL".to_string(), self.database_url.clone()),
            ("YAHOO_BASE_URL".to_string(), self.market_sim_url.clone()),
            ("POLYGON_BASE_URL".to_string(), self.market_sim_url.clone()),
            ("POLYGON_API_KEY".to_string(), "test-key".to_string()),
            (
                "PROVIDER_REQUESTS_PER_MINUTE".to_string(),
                "6000".to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        env.extend(options.function_env.iter().cloned());
        let functions: Vec<FunctionSpec> = workspace::FUNCTIONS
            .iter()
            .map(|&name| {
                let program = options
                    .function_programs
                    .iter()
                    .find(|(f, _)| f == name)
                    .map(|(_, program)| program.clone())
                    .unwrap_or_else(|| workspace::target_debug_dir().join(name));
                FunctionSpec::new(name, program, options.function_timeouts.of(name))
            })
            .collect();
        for spec in &functions {
            if !spec.program.is_file() {
                return Err(Error::MissingTool {
                    what: "a function binary",
                    path: spec.program.clone(),
                    hint: "build the functions with `cargo build -p select-tickers -p fetch-batch -p finalize-run --bins` (or start with `build: true`)",
                });
            }
        }
        let functions_log = runtime::functions_log(&self.work_dir);
        // A fresh log: nobody must read an earlier run's lines as this one's.
        std::fs::write(&functions_log, "").map_err(Error::io(&functions_log))?;

        // moto's port; the adapter binds its own.
        let moto_port = test_support::net::free_port().map_err(Error::io("127.0.0.1:0"))?;
        let moto_url = format!("http://127.0.0.1:{moto_port}");
        let adapter_url = match &options.adapter {
            AdapterMode::InProcess => {
                let thread = AdapterThread::start(AdapterConfig {
                    moto_endpoint: moto_url.clone(),
                    host: HostConfig {
                        functions: functions
                            .iter()
                            .cloned()
                            .map(|spec| FunctionSpec {
                                env: env.clone(),
                                ..spec
                            })
                            .collect(),
                        concurrency: options.lambda_concurrency.max(1) as usize,
                        log: Some(functions_log.clone()),
                    },
                })?;
                let url = format!("http://{}", thread.addr());
                self.adapter = Some(Adapter::Thread(thread));
                url
            }
            AdapterMode::Process(binary) => {
                let log = self.work_dir.join("adapter.log");
                let mut command = Command::new(binary);
                command
                    .args(["--listen", "127.0.0.1:0", "--moto-endpoint", &moto_url])
                    .args([
                        "--concurrency",
                        &options.lambda_concurrency.max(1).to_string(),
                    ])
                    .arg("--functions-log")
                    .arg(&functions_log);
                for spec in &functions {
                    command
                        .arg("--function")
                        .arg(format!("{}={}", spec.name, spec.program.display()))
                        .arg("--timeout")
                        .arg(format!("{}={}", spec.name, spec.timeout.as_secs()));
                }
                // The functions get the adapter's environment: theirs (never the caller's AWS
                // endpoint: the functions read secrets only when told to).
                command
                    .env_remove("AWS_ENDPOINT_URL")
                    .envs(env.iter().cloned());
                let mut adapter =
                    Service::spawn("lambda-invoke-adapter", &mut command, &log, tied)?;
                let url = wait_for_listening_line(&mut adapter, timeout).await;
                self.adapter = Some(Adapter::Process(adapter));
                url?
            }
        };
        let adapter_port = adapter_url
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        self.aws_endpoint_url = adapter_url.clone();

        // moto, sending its interpreter's Lambda calls to the adapter, with execution enabled.
        let log = self.work_dir.join("moto.log");
        let moto = Service::spawn(
            "moto",
            Command::new(&tools.moto_server)
                .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
                .env("MOTO_PORT", &adapter_port)
                // The interpreter's own boto3 clients need a region.
                .env("AWS_DEFAULT_REGION", REGION),
            &log,
            tied,
        )?;
        self.moto = Some(moto);
        enable_execution(self.moto.as_mut(), &moto_url, timeout).await?;

        // The state machine, from the definition `make lint` checks.
        self.sfn = sfn_client(&adapter_url);
        let rendered = self.work_dir.join("backfill.asl.json");
        let definition = workspace::render_definition(
            &rendered,
            options.map_mode,
            &workspace::RenderSettings {
                timeouts: options.function_timeouts,
                retry_budget_seconds: options.retry_budget_seconds,
            },
        )?;
        let created = self
            .sfn
            .create_state_machine()
            .name(&options.state_machine_name)
            .definition(definition)
            .role_arn(ROLE_ARN)
            .send()
            .await
            .map_err(|e| Error::sfn("CreateStateMachine", e))?;
        self.state_machine_arn = created.state_machine_arn().to_string();
        Ok(())
    }

    pub fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }

    /// The one AWS endpoint of the stack (the adapter: Lambda Invoke, and moto for the rest).
    pub fn aws_endpoint_url(&self) -> &str {
        &self.aws_endpoint_url
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn market_sim_url(&self) -> &str {
        &self.market_sim_url
    }

    /// A Step Functions client for this stack.
    pub fn sfn(&self) -> &aws_sdk_sfn::Client {
        &self.sfn
    }

    /// The environment a client of the stack needs (e.g. the `backfill` CLI as a child process).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.aws_endpoint_url.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("STATE_MACHINE_ARN", self.state_machine_arn.as_str()),
            ("DATABASE_URL", self.database_url.as_str()),
            ("MARKET_SIM_URL", self.market_sim_url.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Where the logs are: `market-sim.log`, `moto.log`, `functions.log` (the functions' output,
    /// each line prefixed `[<function> #<instance>]`, and every instance's start and exit),
    /// `adapter.log` (process mode).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The last `lines` lines of every log, for failure messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["functions.log", "moto.log", "market-sim.log", "adapter.log"] {
            let path = self.work_dir.join(name);
            if path.exists() {
                out.push_str(&format!(
                    "--- {} ---\n{}\n",
                    path.display(),
                    log_tail(&path, lines)
                ));
            }
        }
        out
    }

    /// Every Lambda invocation so far (in-process adapter only; empty otherwise).
    pub fn invocations(&self) -> Vec<Invocation> {
        match &self.adapter {
            Some(Adapter::Thread(thread)) => thread.invocations(),
            _ => Vec::new(),
        }
    }

    /// Every instance of every function, with its pid and what it runs (`GET
    /// /local-stack/instances` on the adapter, in either adapter mode).
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>> {
        let url = format!("{}{INSTANCES_PATH}", self.aws_endpoint_url);
        let response = reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Error::Internal(format!("GET {url}: {e}")))?;
        response
            .json()
            .await
            .map_err(|e| Error::Internal(format!("GET {url}: not a list of instances: {e}")))
    }

    /// Waits until an instance of `function` is running an invocation for which `wanted` (given
    /// the payload) holds, and has run it for at least `busy_for`; returns it.
    pub async fn wait_for_busy_instance(
        &self,
        function: &str,
        busy_for: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<InstanceInfo> {
        let found = wait::until_some(timeout, || {
            let listed = self.instances();
            let wanted = &wanted;
            async move {
                let instances = match listed.await {
                    Ok(instances) => instances,
                    Err(e) => return Some(Err(e)),
                };
                let busy = instances.into_iter().find(|i| {
                    i.function == function
                        && i.state == InstanceState::Busy
                        && i.busy_ms.unwrap_or(0) >= busy_for.as_millis() as u64
                        && i.payload
                            .as_deref()
                            .and_then(|p| serde_json::from_str(p).ok())
                            .is_some_and(|p| wanted(&p))
                });
                match busy {
                    Some(instance) => Some(Ok(instance)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        None
                    }
                }
            }
        })
        .await;
        match found {
            Ok(result) => result,
            Err(timed_out) => Err(Error::Internal(format!(
                "no instance of {function} ran a matching invocation for {busy_for:?} within {:?}",
                timed_out.waited
            ))),
        }
    }

    /// `kill -9` of an instance's process, as an operator (or the kernel's OOM killer) would: the
    /// function host notices and fails the invocation it held with `Runtime.ExitError`.
    pub fn kill_instance(&self, instance: &InstanceInfo) -> Result<()> {
        let pid = i32::try_from(instance.pid)
            .ok()
            .filter(|&p| p > 1)
            .ok_or_else(|| Error::Internal(format!("{instance:?} has no pid to kill")))?;
        // SAFETY: kill only sends a signal.
        if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "kill -9 {pid} ({} #{}): {}",
                instance.function,
                instance.instance,
                std::io::Error::last_os_error()
            )))
        }
    }

    /// Starts an execution of the stack's state machine. `name` must be unique per state machine
    /// (see [`unique_name`]); moto, like AWS, refuses a second execution with the same name.
    pub async fn start_execution(&self, input: &serde_json::Value, name: &str) -> Result<String> {
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| Error::sfn("StartExecution", e))?;
        Ok(started.execution_arn().to_string())
    }

    /// Waits until the execution has ended, for at most `timeout`.
    pub async fn wait_for_execution(
        &self,
        execution_arn: &str,
        timeout: Duration,
    ) -> Result<ExecutionOutcome> {
        // Shared by the probe's futures, each of which only borrows it.
        let last_status = RefCell::new(String::from("unknown"));
        let ended = wait::until_some(timeout, || {
            let request = self
                .sfn
                .describe_execution()
                .execution_arn(execution_arn)
                .send();
            let last_status = &last_status;
            async move {
                match request.await {
                    Ok(execution) if execution.status() == &ExecutionStatus::Running => {
                        *last_status.borrow_mut() = "RUNNING".into();
                        // Executions take seconds: no need to ask moto 50 times a second.
                        tokio::time::sleep(EXECUTION_POLL_INTERVAL).await;
                        None
                    }
                    Ok(execution) => Some(Ok(execution)),
                    // moto answered, and said no (an unknown execution, a bad ARN): final.
                    Err(e @ SdkError::ServiceError(_)) => {
                        Some(Err(Error::sfn("DescribeExecution", e)))
                    }
                    // Not answered (connection, timeout): ask again.
                    Err(e) => {
                        *last_status.borrow_mut() = format!("unknown ({e})");
                        None
                    }
                }
            }
        })
        .await;
        match ended {
            Ok(Ok(execution)) => Ok(ExecutionOutcome {
                status: execution.status().clone(),
                output: execution.output().map(|o| {
                    serde_json::from_str(o).unwrap_or(serde_json::Value::String(o.into()))
                }),
                error: execution.error().map(str::to_string),
                cause: execution.cause().map(str::to_string),
            }),
            Ok(Err(e)) => Err(e),
            Err(timed_out) => Err(Error::ExecutionTimeout {
                execution_arn: execution_arn.to_string(),
                status: last_status.into_inner(),
                waited: timed_out.waited,
            }),
        }
    }

    /// The execution's full history (every page) and its Map Runs.
    pub async fn history(&self, execution_arn: &str) -> Result<ExecutionHistory> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(execution_arn)
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| Error::sfn("GetExecutionHistory", e))?;
            events.extend(page.events().iter().cloned());
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        let listed = self
            .sfn
            .list_map_runs()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| Error::sfn("ListMapRuns", e))?;
        let mut map_runs = Vec::new();
        for run in listed.map_runs() {
            let described = self
                .sfn
                .describe_map_run()
                .map_run_arn(run.map_run_arn())
                .send()
                .await
                .map_err(|e| Error::sfn("DescribeMapRun", e))?;
            let items = described.item_counts();
            map_runs.push(MapRunSummary {
                map_run_arn: run.map_run_arn().to_string(),
                status: described.status().as_str().to_string(),
                items_total: items.map_or(0, |c| c.total()),
                items_succeeded: items.map_or(0, |c| c.succeeded()),
                items_failed: items.map_or(0, |c| c.failed()),
            });
        }
        Ok(ExecutionHistory { events, map_runs })
    }

    /// Leaves every process running (for `local-stack up`) and returns `(name, pid)` for each.
    /// Needs an external database and the adapter as a process: nothing may depend on this
    /// process staying alive.
    pub fn detach(mut self) -> Result<Vec<(String, u32)>> {
        if !self.detachable
            || self.test_db.is_some()
            || matches!(self.adapter, Some(Adapter::Thread(_)))
        {
            return Err(Error::Unsupported(
                "only a stack started `detachable`, with an external database and the adapter as a process, can be detached"
                    .into(),
            ));
        }
        self.remove_work_dir = false;
        let mut pids = Vec::new();
        let services = [
            self.market_sim.take(),
            match self.adapter.take() {
                Some(Adapter::Process(service)) => Some(service),
                _ => None,
            },
            self.moto.take(),
        ];
        for service in services.into_iter().flatten() {
            let name = service.name().to_string();
            pids.push((name, service.detach()));
        }
        Ok(pids)
    }

    /// Stops every process; called by drop.
    fn stop(&mut self) {
        if let Some(mut moto) = self.moto.take() {
            moto.stop();
        }
        match self.adapter.take() {
            Some(Adapter::Thread(thread)) => drop(thread),
            Some(Adapter::Process(mut service)) => service.stop(),
            None => {}
        }
        if let Some(mut sim) = self.market_sim.take() {
            sim.stop();
        }
        self.test_db.take();
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
        if !self.remove_work_dir {
            return;
        }
        if std::thread::panicking() {
            eprintln!("local-stack: logs kept in {}", self.work_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        }
    }
}

/// An execution name that is unique across processes and calls: `<prefix>-<pid>-<time>-<n>`,
/// within Step Functions' 80 characters of `[A-Za-z0-9_-]`.
pub fn unique_name(prefix: &str) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{millis}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

fn sfn_client(endpoint: &str) -> aws_sdk_sfn::Client {
    let config = aws_sdk_sfn::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "local-stack",
        ))
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}

fn fresh_temp_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(unique_name("local-stack"));
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    Ok(dir)
}

const MIGRATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies the migrations (idempotent) to `url`.
async fn migrate(url: &str) -> Result<()> {
    let settings = shared::db::tls::TlsSettings::from_env()
        .and_then(|tls| shared::db::parse_url(url, &tls))
        .map_err(|e| Error::Database(format!("DATABASE_URL: {e}")))?;
    let mut client = settings
        .connect(MIGRATE_CONNECT_TIMEOUT)
        .await
        .map_err(|e| Error::Database(format!("cannot connect to run the migrations: {e}")))?;
    shared::db::migrate::run(&mut client)
        .await
        .map(|_| ())
        .map_err(|e| Error::Database(format!("migrations failed: {e}")))
}

/// Waits for `listening on http://HOST:PORT` in the service's log (market-sim and the adapter
/// print it first) and returns the URL.
async fn wait_for_listening_line(service: &mut Service, timeout: Duration) -> Result<String> {
    let log = service.log().to_path_buf();
    let found = wait::until_some(timeout, || {
        let running = service.ensure_running();
        let log = log.clone();
        async move {
            if let Err(e) = running {
                return Some(Err(e));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .find_map(|line| line.split_once("listening on ").map(|(_, url)| url.trim()))
                .map(|url| Ok(url.to_string()))
        }
    })
    .await;
    match found {
        Ok(result) => result,
        Err(timed_out) => Err(service.not_ready(
            timed_out.waited,
            "no `listening on` line in its output".into(),
        )),
    }
}

/// Waits until moto answers and turns on state machine execution (it is off by default; the
/// setting survives `/moto-api/reset`). Must happen before CreateStateMachine: moto keeps
/// executing and non-executing state machines in different backends.
async fn enable_execution(moto: Option<&mut Service>, url: &str, timeout: Duration) -> Result<()> {
    let Some(moto) = moto else {
        return Ok(());
    };
    let http = reqwest::Client::new();
    let config_url = format!("{url}/moto-api/config");
    let last = RefCell::new(String::from("no answer yet"));
    let enabled = wait::until_some(timeout, || {
        let running = moto.ensure_running();
        let request = http
            .post(&config_url)
            .header("content-type", "application/json")
            .body(r#"{"stepfunctions":{"execute_state_machine":true}}"#)
            .send();
        let last = &last;
        async move {
            if let Err(e) = running {
                return Some(Err(e));
            }
            match request.await {
                Ok(response) if response.status().is_success() => Some(Ok(())),
                Ok(response) => {
                    *last.borrow_mut() =
                        format!("POST /moto-api/config answered {}", response.status());
                    None
                }
                Err(e) => {
                    *last.borrow_mut() = e.to_string();
                    None
                }
            }
        }
    })
    .await;
    match enabled {
        Ok(result) => result,
        Err(timed_out) => Err(moto.not_ready(timed_out.waited, last.into_inner())),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sfn::primitives::DateTime;
    use aws_sdk_sfn::types::MapIterationEventDetails;

    use super::*;

    fn event(
        id: i64,
        event_type: HistoryEventType,
        iteration: Option<(&str, i32)>,
    ) -> HistoryEvent {
        let details = iteration.map(|(name, index)| {
            MapIterationEventDetails::builder()
                .name(name)
                .index(index)
                .build()
        });
        HistoryEvent::builder()
            .id(id)
            .timestamp(DateTime::from_secs(0))
            .r#type(event_type)
            .set_map_iteration_started_event_details(details)
            .build()
            .unwrap()
    }

    #[test]
    fn iterations_count_their_own_events_without_nested_iterations() {
        use HistoryEventType as T;
        let events = vec![
            event(1, T::ExecutionStarted, None),
            event(2, T::MapStateEntered, None),
            event(3, T::MapIterationStarted, Some(("Lanes", 0))),
            event(4, T::MapStateEntered, None),
            event(5, T::MapIterationStarted, Some(("Batches", 0))),
            event(6, T::TaskStateEntered, None),
            event(7, T::TaskStateExited, None),
            event(8, T::MapIterationSucceeded, None),
            event(9, T::MapStateExited, None),
            event(10, T::MapIterationSucceeded, None),
            event(11, T::MapStateExited, None),
            event(12, T::ExecutionSucceeded, None),
        ];
        let history = ExecutionHistory {
            events,
            map_runs: Vec::new(),
        };

        assert_eq!(
            history.iterations(),
            [
                Iteration {
                    map_state: "Batches".into(),
                    index: 0,
                    events: 4
                },
                Iteration {
                    map_state: "Lanes".into(),
                    index: 0,
                    events: 4
                },
            ]
        );
        assert_eq!(history.count(T::MapStateEntered), 2);
    }

    #[test]
    fn unique_names_are_unique_and_valid_execution_names() {
        let a = unique_name("full run/é");
        let b = unique_name("full run/é");
        assert_ne!(a, b);
        assert!(a.len() <= 80, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
    }
}
