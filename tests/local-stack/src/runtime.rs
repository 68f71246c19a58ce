//! The function host: runs the function binaries the way Lambda runs them, behind the adapter's
//! Invoke API.
//!
//! - Each function has up to `concurrency` execution environments ("instances"): processes of its
//!   binary, started when an invocation finds none free, each polling the Lambda Runtime API
//!   (`GET …/runtime/invocation/next`, `POST …/invocation/{id}/response|error`,
//!   `POST …/init/error`) that the host serves under `/runtime/{function}/{instance}/` on the
//!   adapter's port. The instance's path names it, so the host always knows which invocation each
//!   process holds.
//! - An instance that dies (a crash, `kill -9`, running out of memory) fails the invocation it held
//!   at once, the way Lambda does: `200` + `X-Amz-Function-Error: Unhandled` with
//!   `{"errorType": "Runtime.ExitError", "errorMessage": "RequestId: … Error: Runtime exited with
//!   error: signal: killed"}`. The next invocation gets a fresh instance.
//! - An invocation that runs longer than the function's timeout is answered `Sandbox.Timedout`
//!   (`Task timed out after N.00 seconds`) and its instance is killed, as Lambda stops the
//!   environment. So the host never waits longer than the function's timeout for a running
//!   invocation, which is shorter than the Task's `TimeoutSeconds`.
//! - An invocation that finds every instance busy waits in a queue (as `cargo lambda watch` lets
//!   it); after the function's timeout in the queue it is refused like a throttled call
//!   (`TooManyRequestsException`, which the state machine retries).
//!
//! Why not `cargo lambda watch`, which the stack used before: it cannot tell which of a function's
//! processes holds which invocation, never answers an invocation whose process died (the caller
//! waited an hour), and never starts that function again. Error documents follow what Lambda
//! returns for these cases (Runtime.ExitError for an exited runtime, Sandbox.Timedout for a
//! timeout; see the retriers in statemachine/backfill.asl.json).
//!
//! Like `cargo lambda watch`, the host sends a constant deadline in the past
//! (`Lambda-Runtime-Deadline-Ms: 0`), so the functions use their configured budget
//! (`FETCH_BUDGET_SECONDS`) instead of the deadline, as they do under any local emulator.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{oneshot, Notify};

use crate::stack::{ACCOUNT_ID, REGION};

/// Where the adapter serves [`FunctionHost::instances`] (GET, JSON).
pub const INSTANCES_PATH: &str = "/local-stack/instances";
/// The prefix of the Runtime API routes; an instance's `AWS_LAMBDA_RUNTIME_API` is
/// `http://<adapter>/runtime/<function>/<instance>`.
pub const RUNTIME_PREFIX: &str = "/runtime";

/// One function the host runs.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's name, as invoked (`fetch-batch`).
    pub name: String,
    /// The binary (or a stand-in) each instance runs.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment added to the host's own (the functions' configuration).
    pub env: Vec<(String, String)>,
    /// Lambda's function timeout: an invocation running longer is `Sandbox.Timedout`.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (informational; nothing enforces it).
    pub memory_mb: u32,
}

impl FunctionSpec {
    pub fn new(name: &str, program: impl Into<PathBuf>, timeout: Duration) -> FunctionSpec {
        FunctionSpec {
            name: name.to_string(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            timeout,
            memory_mb: 256,
        }
    }
}

/// What the host runs, and how.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub functions: Vec<FunctionSpec>,
    /// Instances per function at most (Lambda's reserved concurrency).
    pub concurrency: usize,
    /// Where the instances' output goes, each line prefixed `[<function> #<instance>] `, with a
    /// line for every instance that starts or exits. `None`: discarded.
    pub log: Option<PathBuf>,
}

/// How an invocation ended, for the adapter to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response.
    Response(Bytes),
    /// The function failed (`X-Amz-Function-Error: Unhandled`): its error document, or the one
    /// Lambda writes for a process that died or ran out of time.
    FunctionError(Bytes),
    /// No such function (`ResourceNotFoundException`).
    NotFound(String),
    /// Every instance stayed busy for the function's timeout (`TooManyRequestsException`).
    Throttled(String),
    /// The host could not run the function at all (`ServiceException`).
    Unavailable(String),
}

/// What an instance is doing, as [`FunctionHost::instances`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Started, or between invocations: not waiting for work yet.
    Starting,
    /// Waiting for an invocation (`GET …/next` outstanding).
    Idle,
    /// Running an invocation.
    Busy,
    /// Being stopped (timed out).
    Stopping,
}

/// One instance of a function, as [`FunctionHost::instances`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub function: String,
    /// The instance's number (unique for the host's lifetime).
    pub instance: u64,
    /// Its process (and process group) id: what `kill -9` takes.
    pub pid: u32,
    pub state: InstanceState,
    /// The invocation it runs, when busy.
    pub request_id: Option<String>,
    /// That invocation's payload, when busy.
    pub payload: Option<String>,
    /// How long it has been running that invocation, when busy.
    pub busy_ms: Option<u64>,
}

/// The host; cheap to clone (every clone is the same host).
#[derive(Clone)]
pub struct FunctionHost {
    inner: Arc<Inner>,
}

struct Inner {
    functions: HashMap<String, Function>,
    concurrency: usize,
    /// `http://<adapter address>/runtime`, known once the adapter has bound its port.
    api_base: Mutex<Option<String>>,
    log: Option<Mutex<File>>,
    next_instance: AtomicU64,
    next_request: AtomicU64,
    stopped: AtomicBool,
}

struct Function {
    spec: FunctionSpec,
    state: Mutex<FunctionState>,
    /// Woken for every queued invocation: an idle instance takes it.
    work: Notify,
}

#[derive(Default)]
struct FunctionState {
    queue: VecDeque<Pending>,
    instances: BTreeMap<u64, Instance>,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct Instance {
    pid: u32,
    slot: Slot,
    /// What the runtime reported through `…/init/error`, if anything.
    init_error: Option<Bytes>,
    /// Whether it ever asked for work: one that exits before has failed to start.
    polled: bool,
}

enum Slot {
    Starting,
    Idle,
    Busy(Running),
    Stopping,
}

struct Running {
    request_id: String,
    payload: Bytes,
    since: Instant,
    /// Taken by whoever answers first: the function, its death, or its timeout.
    reply: Option<oneshot::Sender<Outcome>>,
}

/// An error of the Runtime API, answered to the instance.
#[derive(Debug)]
pub struct RuntimeApiError {
    pub status: u16,
    pub message: String,
}

/// The invocation `GET …/next` hands an instance. (No client context: nothing here sends one.)
#[derive(Debug)]
pub struct NextInvocation {
    pub request_id: String,
    pub payload: Bytes,
    pub function_arn: String,
}

impl FunctionHost {
    /// A host for `config`'s functions; nothing runs before the first invocation. Call
    /// [`set_runtime_api_base`](Self::set_runtime_api_base) before any.
    pub fn new(config: HostConfig) -> std::io::Result<FunctionHost> {
        let log = match &config.log {
            Some(path) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        let functions = config
            .functions
            .into_iter()
            .map(|spec| {
                (
                    spec.name.clone(),
                    Function {
                        spec,
                        state: Mutex::new(FunctionState::default()),
                        work: Notify::new(),
                    },
                )
            })
            .collect();
        Ok(FunctionHost {
            inner: Arc::new(Inner {
                functions,
                concurrency: config.concurrency.max(1),
                api_base: Mutex::new(None),
                log,
                next_instance: AtomicU64::new(1),
                next_request: AtomicU64::new(1),
                stopped: AtomicBool::new(false),
            }),
        })
    }

    /// `http://HOST:PORT` of the adapter that serves the Runtime API routes.
    pub fn set_runtime_api_base(&self, adapter_url: &str) {
        *lock(&self.inner.api_base) = Some(format!(
            "{}{RUNTIME_PREFIX}",
            adapter_url.trim_end_matches('/')
        ));
    }

    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.functions.keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs one invocation to its end (response, function error, death, timeout or throttle).
    pub async fn invoke(&self, name: &str, payload: Bytes) -> (String, Outcome) {
        let request_id = self.new_request_id();
        let Some(function) = self.inner.functions.get(name) else {
            return (
                request_id,
                Outcome::NotFound(format!(
                    "Function not found: {name} (the local stack runs {:?})",
                    self.function_names()
                )),
            );
        };
        if self.inner.stopped.load(Ordering::SeqCst) {
            return (
                request_id,
                Outcome::Unavailable("the local stack is stopping".into()),
            );
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut state = lock(&function.state);
            state.queue.push_back(Pending {
                request_id: request_id.clone(),
                payload,
                reply,
            });
            self.scale(function, &mut state);
        }
        function.work.notify_one();
        // A queued invocation that no instance takes within the function's timeout is throttled.
        let host = self.clone();
        let (queued_name, queued_id) = (name.to_string(), request_id.clone());
        let timeout = function.spec.timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            host.throttle_if_still_queued(&queued_name, &queued_id);
        });
        let outcome = answer.await.unwrap_or_else(|_| {
            Outcome::Unavailable("the local stack stopped before the function answered".into())
        });
        (request_id, outcome)
    }

    /// Every instance of every function, by function and number.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let mut out = Vec::new();
        for name in self.function_names() {
            let function = &self.inner.functions[&name];
            let state = lock(&function.state);
            for (&id, instance) in &state.instances {
                let (state, request_id, payload, busy_ms) = match &instance.slot {
                    Slot::Starting => (InstanceState::Starting, None, None, None),
                    Slot::Idle => (InstanceState::Idle, None, None, None),
                    Slot::Busy(running) => (
                        InstanceState::Busy,
                        Some(running.request_id.clone()),
                        Some(String::from_utf8_lossy(&running.payload).into_owned()),
                        Some(running.since.elapsed().as_millis() as u64),
                    ),
                    Slot::Stopping => (InstanceState::Stopping, None, None, None),
                };
                out.push(InstanceInfo {
                    function: name.clone(),
                    instance: id,
                    pid: instance.pid,
                    state,
                    request_id,
                    payload,
                    busy_ms,
                });
            }
        }
        out
    }

    /// Stops every instance and fails every queued invocation; later invocations are refused.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        for function in self.inner.functions.values() {
            let mut state = lock(&function.state);
            for pending in state.queue.drain(..) {
                let _ = pending
                    .reply
                    .send(Outcome::Unavailable("the local stack is stopping".into()));
            }
            for instance in state.instances.values_mut() {
                if let Slot::Busy(running) = &mut instance.slot {
                    if let Some(reply) = running.reply.take() {
                        let _ = reply.send(Outcome::Unavailable(
                            "the local stack stopped the function".into(),
                        ));
                    }
                }
                kill_group(instance.pid);
            }
        }
    }

    // ---- the Runtime API ---------------------------------------------------------------------

    /// `GET /runtime/{function}/{instance}/2018-06-01/runtime/invocation/next`: waits for the
    /// next invocation and hands it to this instance.
    pub async fn next(&self, name: &str, instance: u64) -> Result<NextInvocation, RuntimeApiError> {
        let function = self.function(name)?;
        loop {
            let notified = function.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&function.state);
                let FunctionState { queue, instances } = &mut *state;
                let Some(me) = instances.get_mut(&instance) else {
                    return Err(gone(name, instance));
                };
                if matches!(me.slot, Slot::Stopping) {
                    return Err(gone(name, instance));
                }
                me.polled = true;
                // An invocation whose caller went away (the Task timed out) is not run.
                while let Some(pending) = queue.pop_front() {
                    if pending.reply.is_closed() {
                        continue;
                    }
                    me.slot = Slot::Busy(Running {
                        request_id: pending.request_id.clone(),
                        payload: pending.payload.clone(),
                        since: Instant::now(),
                        reply: Some(pending.reply),
                    });
                    self.start_timer(&function.spec, instance, &pending.request_id);
                    return Ok(NextInvocation {
                        request_id: pending.request_id,
                        payload: pending.payload,
                        function_arn: format!(
                            "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
                        ),
                    });
                }
                me.slot = Slot::Idle;
            }
            notified.await;
        }
    }

    /// `POST …/invocation/{request_id}/response`.
    pub fn respond(
        &self,
        name: &str,
        instance: u64,
        request_id: &str,
        body: Bytes,
    ) -> Result<(), RuntimeApiError> {
        self.finish(name, instance, request_id, Outcome::Response(body))
    }

    /// `POST …/invocation/{request_id}/error`: the function's error document.
    pub fn fail(
        &self,
        name: &str,
        instance: u64,
        request_id: &str,
        body: Bytes,
        error_type: Option<&str>,
    ) -> Result<(), RuntimeApiError> {
        let body = if is_error_document(&body) {
            body
        } else {
            error_document(
                error_type.unwrap_or("Unhandled"),
                &String::from_utf8_lossy(&body),
            )
        };
        self.finish(name, instance, request_id, Outcome::FunctionError(body))
    }

    /// `POST …/init/error`: the runtime could not start; it exits next.
    pub fn init_error(
        &self,
        name: &str,
        instance: u64,
        body: Bytes,
    ) -> Result<(), RuntimeApiError> {
        self.with_instance(name, instance, |me| {
            me.init_error = Some(body);
            Ok(())
        })
    }

    // ---- internals -----------------------------------------------------------------------------

    fn function(&self, name: &str) -> Result<&Function, RuntimeApiError> {
        self.inner.functions.get(name).ok_or(RuntimeApiError {
            status: 404,
            message: format!("no function {name}"),
        })
    }

    fn new_request_id(&self) -> String {
        // Unique per host and recognisable; Lambda's are UUIDs.
        let n = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (nanos >> 32) as u32,
            (nanos >> 16) as u16,
            (n >> 12) & 0xfff,
            n & 0xfff,
            std::process::id() as u64 * 0x1_0000 + (n & 0xffff)
        )
    }

    fn finish(
        &self,
        name: &str,
        instance: u64,
        request_id: &str,
        outcome: Outcome,
    ) -> Result<(), RuntimeApiError> {
        self.with_instance(name, instance, |me| match &mut me.slot {
            Slot::Busy(running) if running.request_id == request_id => {
                if let Some(reply) = running.reply.take() {
                    let _ = reply.send(outcome);
                }
                me.slot = Slot::Starting;
                Ok(())
            }
            _ => Err(RuntimeApiError {
                status: 400,
                message: format!(
                    "instance {instance} of {name} does not run invocation {request_id}"
                ),
            }),
        })
    }

    /// `f` on instance `instance` of function `name`, under the function's lock; an instance
    /// that is gone (stopped, or never started) is an error for its runtime.
    fn with_instance<T>(
        &self,
        name: &str,
        instance: u64,
        f: impl FnOnce(&mut Instance) -> Result<T, RuntimeApiError>,
    ) -> Result<T, RuntimeApiError> {
        let function = self.function(name)?;
        let mut state = lock(&function.state);
        let me = state
            .instances
            .get_mut(&instance)
            .ok_or_else(|| gone(name, instance))?;
        f(me)
    }

    /// Starts instances while invocations wait and fewer instances than them are free.
    fn scale(&self, function: &Function, state: &mut FunctionState) {
        let free = state
            .instances
            .values()
            .filter(|i| matches!(i.slot, Slot::Starting | Slot::Idle))
            .count();
        let live = state
            .instances
            .values()
            .filter(|i| !matches!(i.slot, Slot::Stopping))
            .count();
        let waiting = state.queue.len();
        let wanted = waiting
            .saturating_sub(free)
            .min(self.inner.concurrency.saturating_sub(live));
        for _ in 0..wanted {
            if let Err(message) = self.spawn_instance(function, state) {
                self.log(&format!("[local-stack] {message}"));
                // Nothing can run the queue: fail what waits rather than leave it hanging.
                if state.instances.is_empty() {
                    for pending in state.queue.drain(..) {
                        let _ = pending.reply.send(Outcome::Unavailable(message.clone()));
                    }
                }
                return;
            }
        }
    }

    fn spawn_instance(&self, function: &Function, state: &mut FunctionState) -> Result<(), String> {
        let spec = &function.spec;
        let api_base = lock(&self.inner.api_base)
            .clone()
            .ok_or_else(|| "the Runtime API has no address yet".to_string())?;
        let id = self.inner.next_instance.fetch_add(1, Ordering::Relaxed);
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            // Never the caller's AWS endpoint: the functions read secrets only when told to.
            .env_remove("AWS_ENDPOINT_URL")
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("{api_base}/{}/{id}", spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local-stack/{id}"))
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a test kills exactly this process, and stopping it stops
            // whatever it started.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: runs in the forked child before exec and only calls prctl, which is
        // async-signal-safe. The instance dies with the thread that forked it (the host's
        // runtime), whatever kills this process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start {} ({}): {e}",
                spec.name,
                spec.program.display()
            )
        })?;
        let pid = child.id().unwrap_or(0);
        let prefix = format!("[{} #{id}] ", spec.name);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(self.clone().copy_lines(out, prefix.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(self.clone().copy_lines(err, prefix));
        }
        state.instances.insert(
            id,
            Instance {
                pid,
                slot: Slot::Starting,
                init_error: None,
                polled: false,
            },
        );
        self.log(&format!(
            "[local-stack] started {} #{id} (pid {pid})",
            spec.name
        ));
        let host = self.clone();
        let name = spec.name.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            host.exited(&name, id, status);
        });
        Ok(())
    }

    /// An instance's process ended: whatever it held fails the way Lambda reports it.
    fn exited(&self, name: &str, id: u64, status: std::io::Result<ExitStatus>) {
        let Some(function) = self.inner.functions.get(name) else {
            return;
        };
        let how = match &status {
            Ok(status) => describe_exit(status),
            Err(e) => format!("unknown ({e})"),
        };
        let mut state = lock(&function.state);
        let Some(instance) = state.instances.remove(&id) else {
            return;
        };
        self.log(&format!(
            "[local-stack] {name} #{id} (pid {}) exited: {how}",
            instance.pid
        ));
        match instance.slot {
            Slot::Busy(mut running) => {
                if let Some(reply) = running.reply.take() {
                    let _ = reply.send(Outcome::FunctionError(error_document(
                        "Runtime.ExitError",
                        &format!(
                            "RequestId: {} Error: Runtime exited with error: {how}",
                            running.request_id
                        ),
                    )));
                }
            }
            // It never took work: it failed to start. Lambda fails the invocation that waited
            // for it; without this, a function that cannot start would be restarted forever.
            Slot::Starting if !instance.polled && !self.inner.stopped.load(Ordering::SeqCst) => {
                while let Some(pending) = state.queue.pop_front() {
                    if pending.reply.is_closed() {
                        continue;
                    }
                    let document = instance.init_error.clone().unwrap_or_else(|| {
                        error_document(
                            "Runtime.ExitError",
                            &format!(
                                "RequestId: {} Error: Runtime exited with error: {how}",
                                pending.request_id
                            ),
                        )
                    });
                    let _ = pending.reply.send(Outcome::FunctionError(document));
                    break;
                }
            }
            _ => {}
        }
        if !self.inner.stopped.load(Ordering::SeqCst) {
            self.scale(function, &mut state);
        }
    }

    fn start_timer(&self, spec: &FunctionSpec, instance: u64, request_id: &str) {
        let host = self.clone();
        let name = spec.name.clone();
        let timeout = spec.timeout;
        let request_id = request_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            host.timed_out(&name, instance, &request_id, timeout);
        });
    }

    /// The function's timeout passed with the invocation still running: answer it as Lambda does
    /// and stop the instance.
    fn timed_out(&self, name: &str, instance: u64, request_id: &str, timeout: Duration) {
        let Some(function) = self.inner.functions.get(name) else {
            return;
        };
        let mut state = lock(&function.state);
        let Some(me) = state.instances.get_mut(&instance) else {
            return;
        };
        let Slot::Busy(running) = &mut me.slot else {
            return;
        };
        if running.request_id != request_id {
            return;
        }
        if let Some(reply) = running.reply.take() {
            let _ = reply.send(Outcome::FunctionError(error_document(
                "Sandbox.Timedout",
                &format!(
                    "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                    timeout.as_secs_f64()
                ),
            )));
        }
        let pid = me.pid;
        me.slot = Slot::Stopping;
        drop(state);
        self.log(&format!(
            "[local-stack] {name} #{instance} (pid {pid}) timed out after {:.2} s: stopping it",
            timeout.as_secs_f64()
        ));
        kill_group(pid);
    }

    fn throttle_if_still_queued(&self, name: &str, request_id: &str) {
        let Some(function) = self.inner.functions.get(name) else {
            return;
        };
        let mut state = lock(&function.state);
        if let Some(at) = state.queue.iter().position(|p| p.request_id == request_id) {
            if let Some(pending) = state.queue.remove(at) {
                let _ = pending.reply.send(Outcome::Throttled(format!(
                    "Rate Exceeded: every instance of {name} stayed busy for {} s",
                    function.spec.timeout.as_secs()
                )));
            }
        }
    }

    async fn copy_lines(self, from: impl AsyncRead + Unpin + Send + 'static, prefix: String) {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            self.log(&format!("{prefix}{line}"));
        }
    }

    fn log(&self, line: &str) {
        if let Some(log) = &self.inner.log {
            let mut file = lock(log);
            let _ = writeln!(file, "{line}");
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the state is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn gone(name: &str, instance: u64) -> RuntimeApiError {
    RuntimeApiError {
        status: 410,
        message: format!("instance {instance} of {name} is not running"),
    }
}

/// How Lambda words a runtime's end in `Runtime exited with error: …`.
fn describe_exit(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(libc::SIGKILL)) => "signal: killed".into(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => "unknown".into(),
    }
}

/// SIGKILL to a process group (an instance leads its own).
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            // SAFETY: killpg only sends a signal.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
    }
}

/// `{"errorType": …, "errorMessage": …}`, the shape of Lambda's error documents.
pub fn error_document(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

/// Whether `bytes` is a JSON object with a string `errorType`.
pub fn is_error_document(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("errorType").is_some_and(|t| t.is_string()))
}

/// The log file's path for a work dir (`functions.log`).
pub fn functions_log(work_dir: &Path) -> PathBuf {
    work_dir.join("functions.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_worded_as_lambda_words_them() {
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(libc::SIGKILL)),
            "signal: killed"
        );
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(1 << 8)),
            "exit status 1"
        );
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(libc::SIGSEGV)),
            "signal: 11"
        );
    }

    #[test]
    fn error_documents_have_a_type_and_a_message() {
        let doc = error_document("Runtime.ExitError", "RequestId: x Error: boom");
        assert!(is_error_document(&doc));
        let value: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(value["errorType"], "Runtime.ExitError");
        assert!(!is_error_document(b"{\"errorMessage\": \"no type\"}"));
        assert!(!is_error_document(b"not json"));
    }
}
