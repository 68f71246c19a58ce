//! The stack's processes: each runs as the leader of its own process group with its output in a
//! log file, and stopping one stops everything it started.
//!
//! Stopping a process group is not enough for `cargo lambda watch`: it starts every function
//! instance in a process group of its own. So [`stop_tree`] collects the leader's descendants
//! (from `/proc`) first and signals every group among them.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a stopped process tree may take to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A child process leading its own process group, with stdout and stderr in `log`.
/// Dropping it stops its whole tree, unless it was [`detach`](Service::detach)ed.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Spawns `command` in a new process group, stdin from /dev/null, output in `log` (a fresh
    /// file: readiness checks read it, and must not find an earlier run's lines).
    ///
    /// With `tied`, the process also gets SIGTERM when this process dies, however it dies
    /// (a test interrupted with Ctrl-C or killed never runs its drops).
    pub fn spawn(name: &str, command: &mut Command, log: &Path, tied: bool) -> Result<Service> {
        let out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(log)
            .map_err(Error::io(log))?;
        let err = out.try_clone().map_err(Error::io(log))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let spawned = if tied {
            spawn_tied_to_this_process(command)
        } else {
            command.spawn()
        };
        let child = spawned.map_err(|source| Error::Spawn {
            service: name.to_string(),
            source,
        })?;
        Ok(Service {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The leader's pid (also its process group id); 0 once stopped or detached.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Err` with the log's tail when the process has already exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait().map_err(Error::io(&self.log))?,
            None => None,
        };
        match exited {
            None => Ok(()),
            Some(status) => Err(self.not_ready(Duration::ZERO, format!("exited with {status}"))),
        }
    }

    /// A [`Error::NotReady`] for this service, with the tail of its log.
    pub fn not_ready(&self, waited: Duration, detail: String) -> Error {
        Error::NotReady {
            service: self.name.clone(),
            waited,
            detail,
            log: self.log.display().to_string(),
            tail: tail(&self.log, 30),
        }
    }

    /// Stops the process and everything it started; waits until they are gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_tree(child.id(), STOP_GRACE);
            // Reap the leader (it is our child); it is dead by now.
            let _ = child.wait();
        }
    }

    /// Leaves the process running (for `local-stack up`) and returns its pid.
    pub fn detach(mut self) -> u32 {
        // Dropping a `Child` neither kills nor waits for it.
        self.child.take().map_or(0, |child| child.id())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One spawn request for the spawner thread.
type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` so that it gets SIGTERM when this process dies.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. So the
/// fork happens on one thread that lives as long as the process: a runtime's worker thread, or a
/// test's thread, can end while the stack is still in use.
fn spawn_tied_to_this_process(command: &mut Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<Mutex<mpsc::Sender<SpawnJob>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("local-stack-spawner".into())
            .spawn(move || {
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(jobs))
    });
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let Some(jobs) = spawner else {
        return Err(io::Error::other("cannot start the spawner thread"));
    };
    // `Command` cannot be cloned: move it to the spawner and leave an inert one behind.
    let command = std::mem::replace(command, Command::new("/nonexistent/moved-to-the-spawner"));
    let (reply, answer) = mpsc::channel();
    jobs.lock()
        .map_err(|_| io::Error::other("the spawner thread panicked"))?
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// Stops `pid`, its process group and every descendant's process group: SIGTERM first, SIGKILL
/// for whatever is still running after `grace`. Returns the pids that were still running after
/// the SIGKILL (empty unless something ignores even that, e.g. a process in uninterruptible sleep).
pub fn stop_tree(pid: u32, grace: Duration) -> Vec<u32> {
    let Ok(pid) = i32::try_from(pid) else {
        return Vec::new();
    };
    // Collected before signalling: once the leader dies its children are re-parented to init and
    // no longer findable as its descendants.
    let mut members: BTreeSet<i32> = descendants(pid);
    members.insert(pid);
    let groups: BTreeSet<i32> = members
        .iter()
        .filter_map(|&p| stat(p).map(|s| s.pgrp))
        .chain(std::iter::once(pid))
        .collect();
    let still_running = |members: &BTreeSet<i32>, groups: &BTreeSet<i32>| -> Vec<i32> {
        let mut alive: Vec<i32> = members.iter().copied().filter(|&p| is_running(p)).collect();
        alive.extend(
            group_members(groups)
                .into_iter()
                .filter(|p| !members.contains(p)),
        );
        alive
    };
    signal_groups(&groups, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !still_running(&members, &groups).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if still_running(&members, &groups).is_empty() {
        return Vec::new();
    }
    signal_groups(&groups, libc::SIGKILL);
    for &p in &members {
        // A member that left its group (setsid) is still ours to stop.
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let alive = still_running(&members, &groups);
        if alive.is_empty() || Instant::now() >= deadline {
            return alive
                .into_iter()
                .filter_map(|p| u32::try_from(p).ok())
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_groups(groups: &BTreeSet<i32>, signal: libc::c_int) {
    for &group in groups {
        // Never signal our own group (or init's): only groups the stack created.
        // SAFETY: getpgrp has no preconditions.
        if group <= 1 || group == unsafe { libc::getpgrp() } {
            continue;
        }
        // SAFETY: killpg only sends a signal.
        unsafe { libc::killpg(group, signal) };
    }
}

/// Whether `pid` exists and has not exited (a zombie has exited).
pub fn is_running(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
    /// Clock ticks after boot when the process started: with the pid, it names one process even
    /// after the pid is reused.
    start_time: u64,
}

/// When `pid` started (clock ticks after boot), to recognise it later; `None` when it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(i32::try_from(pid).ok()?).map(|s| s.start_time)
}

fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Field 22 of proc(5); `fields` is at field 6 now.
    let start_time = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        start_time,
    })
}

fn all_processes() -> Vec<(i32, Stat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).map(|s| (pid, s)))
        .collect()
}

/// Every living descendant of `root`.
fn descendants(root: i32) -> BTreeSet<i32> {
    let processes = all_processes();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, s) in &processes {
            if s.ppid == parent && found.insert(*pid) {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Living processes in any of `groups`.
fn group_members(groups: &BTreeSet<i32>) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|(_, s)| groups.contains(&s.pgrp) && !matches!(s.state, 'Z' | 'X'))
        .map(|(pid, _)| pid)
        .collect()
}

/// The last `lines` lines of a log file (at most its last 64 KiB), for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TCP port on 127.0.0.1 that nobody listens on right now. Another process can take it before
/// the caller binds it; callers that can bind port 0 themselves should.
pub fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(Error::io("127.0.0.1:0"))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("127.0.0.1:0"))?
        .port();
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_tree_stops_children_in_other_process_groups() {
        let dir = std::env::temp_dir().join(format!("local-stack-process-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("tree.log");
        // Like cargo lambda watch: the leader starts a child in a process group of its own.
        let mut service = Service::spawn(
            "tree",
            Command::new("python3").args([
                "-c",
                "import os, subprocess, time\n\
                 p = subprocess.Popen(['sleep', '300'], process_group=0)\n\
                 print(p.pid, flush=True)\n\
                 time.sleep(300)",
            ]),
            &log,
            true,
        )
        .unwrap();
        let grandchild = test_support_wait(|| {
            fs::read_to_string(&log)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
        });
        assert!(is_running(grandchild));
        let leader = service.pid() as i32;

        service.stop();

        assert!(!is_running(leader), "leader still running");
        assert!(!is_running(grandchild), "grandchild still running");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn start_time_tells_an_earlier_process_from_a_later_one() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let ours = start_time(std::process::id()).unwrap();
        let theirs = start_time(child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(theirs >= ours, "{theirs} < {ours}");
        assert_eq!(
            start_time(child.id()),
            None,
            "a reaped process has no start time"
        );
    }

    fn test_support_wait<T>(mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(value) = probe() {
                return value;
            }
            assert!(Instant::now() < deadline, "condition never held");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
