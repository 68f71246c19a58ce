//! What every PostgreSQL cluster this crate starts has in common: the server binaries, the OS
//! user that runs them, a folder of its own (`data/`, `postgres.log`, the socket), `initdb`,
//! the server settings, and `pg_ctl` for the clusters that are started and stopped by it.
//!
//! Used by the throwaway cluster of [`pg`](crate::pg), the [`cluster`](crate::cluster) a test
//! owns, and the cluster [`pg_up`](crate::pg_up) leaves running for scripts.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser of every cluster (initdb `-U`), whatever OS user runs it.
pub(crate) const SUPERUSER: &str = "postgres";

/// How long `pg_ctl` may take to start or stop a server.
const PG_CTL_TIMEOUT_SECONDS: u32 = 60;

/// The server's settings besides port and socket folder: loopback only, room for many test
/// connections, and no durability (the data is thrown away).
pub(crate) const SETTINGS: [&str; 10] = [
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "max_connections=200",
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
];

/// Whether a failed start's message (or the server's log) says another process has the port:
/// worth another try on another port.
pub(crate) fn port_taken(message: &str) -> bool {
    message.contains("could not bind") || message.contains("in use")
}

/// Creates `<parent>/<name>`, mode 0700, owned by `owner` when given. The parent is `/tmp` when
/// the cluster runs as another user (it must traverse every parent: a TMPDIR in root's home would
/// not do), else the system temp folder.
pub(crate) fn new_cluster_dir(name: &str, owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let parent = match owner {
        Some(_) => PathBuf::from("/tmp"),
        None => std::env::temp_dir(),
    };
    let dir = parent.join(name);
    DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        if let Err(e) = std::os::unix::fs::chown(&dir, Some(uid), Some(gid)) {
            let _ = fs::remove_dir_all(&dir);
            return Err(format!(
                "cannot give {} to the postgres user: {e}",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

pub(crate) fn initdb(bindir: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    let mut cmd = Command::new(bindir.join("initdb"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .current_dir(dir)
        .stdin(Stdio::null());
    as_owner(&mut cmd, owner);
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bindir.join("initdb").display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "initdb failed ({}) in {}:\n{}{}",
            output.status,
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The last 30 lines of the cluster's `postgres.log`, for failure messages.
pub(crate) fn read_log(dir: &Path) -> String {
    crate::process::log_tail(&dir.join("postgres.log"), 30)
}

/// `Some((uid, gid))` of the `postgres` user when this process is root (initdb and postgres
/// refuse to run as root), `None` to run them as ourselves.
pub(crate) fn cluster_owner() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, String> {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("cannot run `id`: {e}"))?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                "running as root, but there is no `postgres` user to run the cluster as \
                 (install Debian's postgresql package: scripts/ensure-tools)"
                    .to_string()
            })
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

pub(crate) fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        // std drops the supplementary groups too when root changes uid.
        cmd.uid(uid).gid(gid);
    }
}

/// The binaries every cluster needs.
const SERVER_BINARIES: [&str; 4] = ["initdb", "postgres", "pg_ctl", "pg_isready"];

/// The folder with the server binaries: `PG_BINDIR`, then `pg_config --bindir`, then the newest
/// `/usr/lib/postgresql/*/bin`, then `PATH`.
pub(crate) fn find_bindir() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        candidates.push(dir.into());
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            candidates.push(String::from_utf8_lossy(&output.stdout).trim().into());
        }
    }
    // Debian: /usr/lib/postgresql/<major>/bin, newest first.
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versioned: Vec<(Vec<u32>, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|entry| {
                let version = entry
                    .file_name()
                    .to_string_lossy()
                    .split('.')
                    .map(|part| part.parse().unwrap_or(0))
                    .collect();
                (version, entry.path().join("bin"))
            })
            .collect();
        versioned.sort_by(|a, b| b.0.cmp(&a.0));
        candidates.extend(versioned.into_iter().map(|(_, dir)| dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| SERVER_BINARIES.iter().all(|bin| dir.join(bin).is_file()))
        .ok_or_else(|| {
            "the PostgreSQL server binaries (initdb, postgres, pg_ctl) were not found: run \
             scripts/ensure-tools, set PG_BINDIR, or point TEST_DATABASE_URL at a server"
                .to_string()
        })
}

/// `pg_ctl` for the cluster in `dir` (`dir/data`, its log in `dir/postgres.log`, the socket in
/// `dir`), run as the cluster's owner.
#[derive(Debug, Clone)]
pub(crate) struct PgCtl {
    pub(crate) bindir: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) owner: Option<(u32, u32)>,
}

impl PgCtl {
    /// Starts the server on `port` and waits until it accepts connections; `Ok` carries what
    /// pg_ctl said, `Err` that and the server log's tail.
    pub(crate) fn start(&self, port: u16) -> Result<String, String> {
        let mut options = format!("-p {port} -k {}", self.dir.display());
        for setting in SETTINGS {
            options.push(' ');
            options.push_str(setting);
        }
        let log = self.dir.join("postgres.log").display().to_string();
        self.run("start", &["-l", &log, "-o", &options])
    }

    /// Stops the server (`mode`: `fast` ends every session, `immediate` does not even wait for
    /// that) and waits until it is down.
    pub(crate) fn stop(&self, mode: &str) -> Result<String, String> {
        self.run("stop", &["-m", mode])
    }

    /// Whether the server is running (`pg_ctl status`).
    pub(crate) fn is_running(&self) -> bool {
        self.command("status", &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// `pg_ctl <action> -D <data> -w -t 60 <args…>`, run in the cluster's folder.
    pub(crate) fn command(&self, action: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.bindir.join("pg_ctl"));
        command
            .arg(action)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", &PG_CTL_TIMEOUT_SECONDS.to_string()])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            // The server pg_ctl starts must not die with a Ctrl-C meant for the caller (`cargo
            // test`, a script) before the caller's own clean-up stops it.
            .process_group(0);
        as_owner(&mut command, self.owner);
        command
    }

    fn run(&self, action: &str, args: &[&str]) -> Result<String, String> {
        let output = self
            .command(action, args)
            .output()
            .map_err(|e| format!("cannot run pg_ctl {action}: {e}"))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            return Ok(said);
        }
        Err(format!(
            "pg_ctl {action} failed ({}) in {}:\n{said}\nserver log:\n{}",
            output.status,
            self.dir.display(),
            read_log(&self.dir)
        ))
    }
}

/// A shell that owns a cluster for a process: it runs `script` and, when its stdin (the
/// lifeline, which only that process holds) ends, stops the server and removes the folder. The
/// pipe ends when the process lets go ([`Watchdog::finish`]) or is gone, however it ended.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    lifeline: ChildStdin,
}

impl Watchdog {
    /// `sh -c <script> <name> <args…>` in `dir`, as the cluster's owner, in a process group of its
    /// own (a Ctrl-C meant for `cargo test` must not kill it before it has cleaned up). Returns
    /// its stdout too when `stdout` is `Stdio::piped()`.
    pub(crate) fn spawn(
        script: &str,
        name: &str,
        args: &[&OsStr],
        dir: &Path,
        owner: Option<(u32, u32)>,
        stdout: Stdio,
    ) -> Result<(Watchdog, Option<ChildStdout>), String> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg(name)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::null())
            .process_group(0);
        as_owner(&mut command, owner);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the watchdog shell: {e}"))?;
        let lifeline = child
            .stdin
            .take()
            .ok_or_else(|| "the watchdog has no stdin pipe".to_string())?;
        let stdout = child.stdout.take();
        Ok((Watchdog { child, lifeline }, stdout))
    }

    /// Closes the lifeline and waits (at most `timeout`) for the watchdog to stop the server and
    /// clean up; `false` when it was still at it.
    pub(crate) fn finish(self, timeout: Duration) -> bool {
        let Watchdog {
            mut child,
            lifeline,
        } = self;
        drop(lifeline);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Ok(Some(_)) | Err(_) => return true,
            }
        }
        false
    }
}
