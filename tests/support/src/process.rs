//! Children that take everything they started with them.
//!
//! Servers started by tests and by the local stack (`moto_server`, `postgres`, the function host,
//! …) often start children of their own, sometimes in process groups of their own (`cargo lambda
//! watch` starts every function instance so); killing only the direct child leaves those running.
//!
//! - [`stop_tree`] stops a process, its process group and every descendant's process group:
//!   SIGTERM, a grace period, then SIGKILL for what is left.
//! - [`GroupChild`] starts a child as the leader of a new process group and stops its tree on
//!   [`GroupChild::stop`] or drop.
//! - [`spawn_tied`] starts a child that gets SIGTERM when this process dies, however it dies.
//! - [`is_running`] and [`start_time`] recognise a process later (a pid file's entry).
//!
//! ```no_run
//! use std::process::Command;
//! use test_support::process::GroupChild;
//!
//! let server = GroupChild::spawn(Command::new("moto_server").args(["-H", "127.0.0.1", "-p", "5000"]))
//!     .expect("moto_server starts");
//! // … the tree is stopped when `server` goes out of scope.
//! ```
//!
//! Only drop stops a [`GroupChild`]: a test process killed with SIGKILL leaves it running (unless
//! it was also [`spawn_tied`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::procfs;

/// How long a stopped tree may take to exit after SIGTERM before SIGKILL (what [`Drop`] of a
/// [`GroupChild`] allows).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A child process leading its own process group; its tree is stopped on drop.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    pgid: libc::pid_t,
    stopped: bool,
}

impl GroupChild {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> io::Result<GroupChild> {
        let child = command.process_group(0).spawn()?;
        let pgid = libc::pid_t::try_from(child.id())
            .map_err(|_| io::Error::other("child pid does not fit pid_t"))?;
        Ok(GroupChild {
            child,
            pgid,
            stopped: false,
        })
    }

    /// The leader's pid (also the process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The leader, e.g. to take its stdout or to `try_wait` it.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) to every process of the group.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: killpg only sends a signal; it touches no memory of ours.
        if unsafe { libc::killpg(self.pgid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// [`stop_tree`] with `grace`, then reaps the leader and returns its status.
    pub fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.stopped = true;
        stop_tree(self.child.id(), grace);
        self.child.wait()
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop(DEFAULT_GRACE);
        }
    }
}

/// One spawn request for the spawner thread.
type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` so that it gets SIGTERM when this process dies, however it dies (a test
/// interrupted with Ctrl-C or killed never runs its drops).
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. So the
/// fork happens on one thread that lives as long as the process: a runtime's worker thread, or a
/// test's thread, can end while the child is still in use. `command` is left inert (it was moved
/// to that thread).
pub fn spawn_tied(command: &mut Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<Mutex<mpsc::Sender<SpawnJob>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-support-spawner".into())
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
///
/// A zombie counts as stopped: the caller that is `pid`'s parent still has to reap it.
pub fn stop_tree(pid: u32, grace: Duration) -> Vec<u32> {
    let Ok(pid) = i32::try_from(pid) else {
        return Vec::new();
    };
    // Collected before signalling: once the leader dies its children are re-parented to init and
    // no longer findable as its descendants.
    let mut members: BTreeSet<i32> = procfs::descendants(pid);
    members.insert(pid);
    let groups: BTreeSet<i32> = members
        .iter()
        .filter_map(|&p| procfs::stat(p).map(|s| s.pgrp))
        .chain(std::iter::once(pid))
        .collect();
    let still_running = |members: &BTreeSet<i32>, groups: &BTreeSet<i32>| -> Vec<i32> {
        let mut alive: Vec<i32> = members
            .iter()
            .copied()
            .filter(|&p| procfs::is_running(p))
            .collect();
        alive.extend(
            procfs::group_members(groups)
                .into_iter()
                .filter(|p| !members.contains(p)),
        );
        alive
    };
    signal_groups(&groups, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !still_running(&members, &groups).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
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
        // Never signal our own group (or init's): only groups the caller created.
        // SAFETY: getpgrp has no preconditions.
        if group <= 1 || group == unsafe { libc::getpgrp() } {
            continue;
        }
        // SAFETY: killpg only sends a signal.
        unsafe { libc::killpg(group, signal) };
    }
}

/// Whether `pid` exists and has not exited (a zombie has exited).
pub fn is_running(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(procfs::is_running)
}

/// When `pid` started (clock ticks after boot), to recognise it later; `None` when it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    procfs::stat(i32::try_from(pid).ok()?).map(|s| s.start_time)
}

/// The last `lines` lines of a log file (at most its last 64 KiB), for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let text = match file.read_to_end(&mut bytes) {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;
    use std::process::Stdio;

    use super::*;

    /// The first line `child` prints.
    fn first_line(child: &mut Child) -> String {
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        io::BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    fn wait_until_gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        !is_running(pid)
    }

    #[test]
    fn dropping_stops_the_leader_and_its_children() {
        // The shell starts a grandchild that ignores the shell's death, and reports its pid.
        let mut child = GroupChild::spawn(
            Command::new("sh")
                .args(["-c", "sleep 300 & echo $!; wait"])
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let grandchild: u32 = first_line(child.child_mut()).parse().unwrap();
        let leader = child.id();
        assert!(is_running(grandchild));

        drop(child);

        assert!(!is_running(leader), "leader still running");
        assert!(wait_until_gone(grandchild), "grandchild still running");
    }

    #[test]
    fn stop_lets_the_leader_exit_gracefully_and_reports_its_status() {
        let mut child = GroupChild::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done",
                ])
                .stdout(Stdio::piped()),
        )
        .unwrap();
        assert_eq!(first_line(child.child_mut()), "ready");

        let status = child.stop(Duration::from_secs(5)).unwrap();
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn stop_tree_stops_children_in_other_process_groups() {
        // Like cargo lambda watch: the leader starts a child in a process group of its own.
        let mut leader = spawn_tied(
            Command::new("python3")
                .args([
                    "-c",
                    "import os, subprocess, time\n\
                     p = subprocess.Popen(['sleep', '300'], process_group=0)\n\
                     print(p.pid, flush=True)\n\
                     time.sleep(300)",
                ])
                .stdout(Stdio::piped())
                .process_group(0),
        )
        .unwrap();
        let grandchild: u32 = first_line(&mut leader).parse().unwrap();
        assert!(is_running(grandchild));

        stop_tree(leader.id(), DEFAULT_GRACE);
        leader.wait().unwrap();

        assert!(!is_running(leader.id()), "leader still running");
        assert!(!is_running(grandchild), "grandchild still running");
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
}
