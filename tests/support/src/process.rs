//! Children that take their whole process group with them.
//!
//! Servers started by tests (`cargo lambda watch`, `moto_server`, …) often start children of
//! their own; killing only the direct child leaves those running. [`GroupChild`] starts the child
//! as the leader of a new process group and, on [`GroupChild::stop`] or drop, sends SIGTERM to the
//! group, waits a grace period, then SIGKILLs whatever is left.
//!
//! ```no_run
//! use std::process::Command;
//! use test_support::process::GroupChild;
//!
//! let server = GroupChild::spawn(Command::new("moto_server").args(["-H", "127.0.0.1", "-p", "5000"]))
//!     .expect("moto_server starts");
//! // … the group is stopped when `server` goes out of scope.
//! ```
//!
//! Only drop stops the group: a test process killed with SIGKILL leaves it running.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long [`Drop`] lets the group exit after SIGTERM before SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A child process leading its own process group; the group is stopped on drop.
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

    /// SIGTERM to the group; after `grace`, SIGKILL to what is left. Returns the leader's status.
    pub fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.stopped = true;
        let deadline = Instant::now() + grace;
        let _ = self.signal(libc::SIGTERM);
        // The leader first, then any member that outlived it, until the grace period ends.
        let mut status = None;
        while Instant::now() < deadline {
            if status.is_none() {
                status = self.child.try_wait()?;
            }
            if status.is_some() && !crate::procfs::group_is_running(self.pgid.into()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.signal(libc::SIGKILL);
        match status {
            Some(status) => Ok(status),
            None => self.child.wait(),
        }
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop(DEFAULT_GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        crate::procfs::is_running(pid)
    }

    #[test]
    fn dropping_stops_the_leader_and_its_children() {
        // The shell starts a grandchild that ignores the shell's death, and reports its pid.
        let mut child = GroupChild::spawn(
            Command::new("sh")
                .args(["-c", "sleep 300 & echo $!; wait"])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap();
        let mut line = String::new();
        let stdout = child.child_mut().stdout.take().unwrap();
        io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line).unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let leader = child.id();
        assert!(alive(grandchild));

        drop(child);

        assert!(!alive(leader), "leader still running");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild), "grandchild still running");
    }

    #[test]
    fn stop_lets_the_leader_exit_gracefully_and_reports_its_status() {
        let mut child = GroupChild::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done",
                ])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap();
        let stdout = child.child_mut().stdout.take().unwrap();
        let mut line = String::new();
        io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready");

        let status = child.stop(Duration::from_secs(5)).unwrap();
        assert_eq!(status.code(), Some(3));
    }
}
