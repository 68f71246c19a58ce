//! A throwaway PostgreSQL cluster that outlives the process that starts it: `make db-up`
//! (scripts/pg-up, scripts/pg-down), the Lambda smoke test and `local-stack up`.
//!
//! [`up`] keeps its state in a folder of the caller's (`.local/pg`): `env` (`export
//! DATABASE_URL=…`, `export PG_CLUSTER_DIR=…`) and `cluster` (where the cluster lives). The
//! cluster itself lives in a fresh `pg-up.<random>` folder under the system temp dir, which the
//! `postgres` user can traverse (a repository under /root could not be) and which keeps the
//! socket path short. Trust auth, listening on 127.0.0.1 only, on a free port (or `PG_PORT`),
//! fsync off: this is for throwaway data. Idempotent: a running cluster is reused, a stopped one
//! is started again. [`down`] stops it and removes it and the state. One `up`/`down` at a time
//! per state folder (a lock file in it).
//!
//! Unlike [`TestDb`](crate::TestDb)'s and [`DedicatedCluster`](crate::cluster::DedicatedCluster)'s,
//! nothing stops this cluster when its starter exits: [`down`] does.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::pg_server::{cluster_owner, find_bindir, initdb, new_cluster_dir, read_log, PgCtl};
use crate::shell;

/// The state files [`up`] writes into its folder.
const ENV: &str = "env";
const CLUSTER: &str = "cluster";
const LOCK: &str = ".lock";
/// Every cluster folder [`up`] creates is named so; [`down`] removes no other.
const CLUSTER_PREFIX: &str = "pg-up.";
/// Start attempts on fresh ports before giving up (a port chosen free can be taken before the
/// server binds it).
const ATTEMPTS: usize = 3;

/// Why [`up`] failed.
#[derive(Debug)]
pub enum UpError {
    /// No `initdb`/`postgres`/`pg_ctl` on this machine: `scripts/ensure-tools postgres` installs
    /// them.
    NoServerBinaries(String),
    Failed(String),
}

impl std::fmt::Display for UpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpError::NoServerBinaries(message) | UpError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for UpError {}

/// A running cluster, as [`up`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub database_url: String,
    /// The cluster's folder (`data/`, `postgres.log`).
    pub cluster_dir: PathBuf,
    /// The text of `<state>/env`: comment and `export` lines for a POSIX shell.
    pub env: String,
}

/// Starts (or finds running) the cluster of `state` and returns how to reach it. Progress goes to
/// `log`, one line at a time. `PG_PORT` in the environment chooses the port.
pub fn up(state: &Path, log: &mut dyn FnMut(String)) -> Result<Running, UpError> {
    let failed = UpError::Failed;
    fs::create_dir_all(state)
        .map_err(|e| failed(format!("cannot create {}: {e}", state.display())))?;
    let state = std::path::absolute(state)
        .map_err(|e| failed(format!("cannot resolve {}: {e}", state.display())))?;
    let _lock = lock(&state).map_err(failed)?;
    let bindir = find_bindir().map_err(UpError::NoServerBinaries)?;
    let owner = cluster_owner().map_err(failed)?;
    let port_from_env = match std::env::var("PG_PORT") {
        Ok(port) if !port.trim().is_empty() => Some(
            port.trim()
                .parse::<u16>()
                .map_err(|_| failed(format!("PG_PORT={port} is not a port number")))?,
        ),
        _ => None,
    };

    let recorded = fs::read_to_string(state.join(CLUSTER))
        .ok()
        .map(|text| PathBuf::from(text.trim_end_matches('\n')))
        .filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = &recorded {
        let pg_ctl = PgCtl {
            bindir: bindir.clone(),
            dir: dir.clone(),
            owner,
        };
        if let (true, Ok(env)) = (
            dir.join("data").join("postmaster.pid").is_file() && pg_ctl.is_running(),
            fs::read_to_string(state.join(ENV)),
        ) {
            log(format!("already running ({})", dir.display()));
            let database_url = env
                .lines()
                .find_map(|line| line.strip_prefix("export DATABASE_URL="))
                .map(str::to_string)
                .ok_or_else(|| {
                    failed(format!("{} has no DATABASE_URL", state.join(ENV).display()))
                })?;
            return Ok(Running {
                database_url,
                cluster_dir: dir.clone(),
                env,
            });
        }
    }

    let cluster_dir = match recorded {
        Some(dir) if dir.join("data").join("PG_VERSION").is_file() => dir,
        _ => {
            let name = format!("{CLUSTER_PREFIX}{:08x}", crate::pg::random_u32());
            let dir = new_cluster_dir(&name, owner).map_err(failed)?;
            write_atomically(&state.join(CLUSTER), &format!("{}\n", dir.display()))
                .map_err(failed)?;
            log(format!("initdb in {}", dir.display()));
            initdb(&bindir, &dir, owner).map_err(failed)?;
            dir
        }
    };
    let pg_ctl = PgCtl {
        bindir,
        dir: cluster_dir.clone(),
        owner,
    };
    for attempt in 1..=ATTEMPTS {
        let port = match port_from_env {
            Some(port) => port,
            None => crate::net::free_port()
                .map_err(|e| failed(format!("cannot find a free port: {e}")))?,
        };
        match pg_ctl.start(port) {
            Ok(said) => {
                for line in said.lines() {
                    log(line.to_string());
                }
                let running = record(&state, &cluster_dir, port).map_err(failed)?;
                log(format!(
                    "PostgreSQL on 127.0.0.1:{port} (data in {}, log {})",
                    cluster_dir.display(),
                    cluster_dir.join("postgres.log").display()
                ));
                return Ok(running);
            }
            Err(message) => {
                log(format!("start attempt {attempt} on port {port} failed:"));
                let tail = read_log(&cluster_dir);
                let tail: Vec<&str> = tail.lines().collect();
                for line in &tail[tail.len().saturating_sub(5)..] {
                    log(line.to_string());
                }
                if port_from_env.is_some() || attempt == ATTEMPTS {
                    return Err(failed(format!(
                        "could not start PostgreSQL (log: {}): {message}",
                        cluster_dir.join("postgres.log").display()
                    )));
                }
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Stops the cluster [`up`] started for `state` and removes it and `state`'s files (and `state`
/// itself when nothing else is in it). Nothing to stop is not an error.
pub fn down(state: &Path, log: &mut dyn FnMut(String)) -> Result<(), String> {
    if !state.is_dir() {
        log(format!(
            "nothing to stop: {} does not exist",
            state.display()
        ));
        return Ok(());
    }
    let state = std::path::absolute(state)
        .map_err(|e| format!("cannot resolve {}: {e}", state.display()))?;
    let lock_file = lock(&state)?;
    let cluster = fs::read_to_string(state.join(CLUSTER))
        .ok()
        .map(|text| PathBuf::from(text.trim_end_matches('\n')))
        .filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = &cluster {
        if dir.join("data").join("postmaster.pid").is_file() {
            let bindir = find_bindir().map_err(|_| {
                format!(
                    "cannot stop {}: no PostgreSQL server binaries found",
                    dir.display()
                )
            })?;
            log(format!("stopping PostgreSQL in {}", dir.display()));
            let pg_ctl = PgCtl {
                bindir,
                dir: dir.clone(),
                owner: cluster_owner()?,
            };
            match pg_ctl.stop("fast") {
                Ok(said) => said.lines().for_each(|line| log(line.to_string())),
                Err(message) => log(format!("pg_ctl stop failed (already stopped?): {message}")),
            }
        }
        // Only ever remove what `up` created.
        let ours = dir
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(CLUSTER_PREFIX));
        if ours {
            if let Err(e) = fs::remove_dir_all(dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(format!("cannot remove {}: {e}", dir.display()));
                }
            }
        } else {
            log(format!(
                "not removing {}: not a pg-up folder",
                dir.display()
            ));
        }
    }
    for file in [ENV, "env.tmp", CLUSTER, "cluster.tmp", LOCK] {
        let _ = fs::remove_file(state.join(file));
    }
    drop(lock_file);
    if fs::remove_dir(&state).is_err() {
        log(format!("kept {}: it holds other files", state.display()));
    }
    log("done".to_string());
    Ok(())
}

/// Writes `<state>/env` and `<state>/cluster` for a cluster now running on `port`.
fn record(state: &Path, cluster_dir: &Path, port: u16) -> Result<Running, String> {
    let database_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let env = format!(
        "# written by scripts/pg-up; remove with scripts/pg-down {}\n\
         export DATABASE_URL={database_url}\n\
         export PG_CLUSTER_DIR={}\n",
        shell::quote(&state.display().to_string()),
        shell::quote(&cluster_dir.display().to_string()),
    );
    write_atomically(&state.join(ENV), &env)?;
    write_atomically(
        &state.join(CLUSTER),
        &format!("{}\n", cluster_dir.display()),
    )?;
    Ok(Running {
        database_url,
        cluster_dir: cluster_dir.to_path_buf(),
        env,
    })
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// An exclusive lock on `<state>/.lock`, held until the file is dropped. The file is opened
/// close-on-exec: the server never inherits (and holds) it.
fn lock(state: &Path) -> Result<File, String> {
    let path = state.join(LOCK);
    let file = File::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; it touches no memory of ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "cannot lock {}: {}",
            path.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(file)
}
