//! The stack's processes: each runs as the leader of its own process group with its output in a
//! log file, and stopping one stops everything it started.
//!
//! Stopping a process group is not enough for `cargo lambda watch`: it starts every function
//! instance in a process group of its own. So stopping goes through
//! [`test_support::process::stop_tree`], which collects the leader's descendants (from `/proc`)
//! first and signals every group among them.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use test_support::process::{log_tail, spawn_tied, stop_tree};

use crate::error::{Error, Result};

/// How long a stopped process tree may take to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = test_support::process::DEFAULT_GRACE;

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
            spawn_tied(command)
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
            tail: log_tail(&self.log, 30),
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
