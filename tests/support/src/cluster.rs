//! A PostgreSQL cluster of a test's own, which the test can stop and start again: database
//! outages without disturbing any other test.
//!
//! [`TestDb`](crate::TestDb) gives each test a database on a cluster the whole test process
//! shares, so stopping that server would fail every other test running at the time.
//! [`DedicatedCluster::new`] runs `initdb` for one test instead (as the `postgres` user when
//! running as root, in a fresh folder under `/tmp` that user can traverse; trust auth, fsync off),
//! starts it with `pg_ctl` on a free port of 127.0.0.1 (its socket in that folder) and creates one
//! empty database. [`DedicatedCluster::stop`] is `pg_ctl stop -m fast` (the server ends every
//! session and refuses new connections, as a database failing over or restarting does);
//! [`DedicatedCluster::start`] brings it back on the same port and data directory, with the data
//! that was committed.
//!
//! Dropping it stops the server (`-m immediate`) and removes the folder. A small watchdog shell
//! does the same if the test process dies without dropping it (killed, or aborted by a panic in
//! another thread): it waits for the end of a pipe that only this process holds.
//!
//! ```no_run
//! # async fn demo() {
//! let cluster = test_support::cluster::DedicatedCluster::new().await;
//! let url = cluster.url(); // postgres://postgres@127.0.0.1:<port>/backfill
//! cluster.stop().await;    // connections fail from now on
//! cluster.start().await;   // and work again, same URL, same data
//! # }
//! ```

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config};

use crate::pg::{
    as_owner, cluster_owner, config_to_url, connect, find_bindir, free_port, initdb, random_u32,
    read_log, SUPERUSER,
};

/// The database [`DedicatedCluster::new`] creates (the URL names it).
pub const DATABASE: &str = "backfill";
/// How long `pg_ctl` may take to start or stop the server.
const PG_CTL_TIMEOUT_SECONDS: u32 = 60;
/// How long dropping waits for the watchdog to stop the server and remove the folder.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs as the watchdog: `sh -c WATCHDOG watchdog <pg_ctl> <dir>`. It blocks reading stdin; the
/// pipe ends when the owning process drops the cluster or is gone, and then the server stops.
const WATCHDOG: &str = r#"
set -u
pg_ctl=$1 dir=$2
cat >/dev/null
"$pg_ctl" -D "$dir/data" stop -m immediate -w >/dev/null 2>&1
rm -rf "$dir"
"#;

/// One test's own PostgreSQL server, with one database ([`DATABASE`]).
#[derive(Debug)]
pub struct DedicatedCluster {
    bindir: PathBuf,
    /// The cluster's folder: `data/`, `postgres.log`, the socket.
    dir: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    config: Config,
    watchdog: Mutex<Option<Watchdog>>,
}

#[derive(Debug)]
struct Watchdog {
    child: Child,
    lifeline: ChildStdin,
}

impl DedicatedCluster {
    /// initdb, start, and create the database. Panics with the reason (and the server's log)
    /// when that cannot be done: this is test set-up.
    pub async fn new() -> DedicatedCluster {
        let cluster = match tokio::task::spawn_blocking(DedicatedCluster::create).await {
            Ok(Ok(cluster)) => cluster,
            Ok(Err(message)) => panic!("test-support: no dedicated PostgreSQL cluster: {message}"),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        let mut admin = cluster.config.clone();
        admin.dbname("postgres");
        let client = connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "test-support: cannot connect to the dedicated cluster on port {}: {e}",
                cluster.port
            )
        });
        client
            .batch_execute(&format!("CREATE DATABASE \"{DATABASE}\""))
            .await
            .unwrap_or_else(|e| panic!("test-support: CREATE DATABASE {DATABASE} failed: {e}"));
        cluster
    }

    fn create() -> Result<DedicatedCluster, String> {
        let bindir = find_bindir()?;
        let owner = cluster_owner()?;
        let parent = match owner {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = parent.join(format!(
            "test-support-pg-dedicated-{}-{:08x}",
            std::process::id(),
            random_u32()
        ));
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
        if let Err(message) = initdb(&bindir, &dir, owner) {
            let _ = fs::remove_dir_all(&dir);
            return Err(message);
        }
        // From here on the watchdog removes the folder, whatever happens to this process.
        let watchdog = match spawn_watchdog(&bindir, &dir, owner) {
            Ok(watchdog) => watchdog,
            Err(message) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(message);
            }
        };
        let mut config = Config::new();
        config.host("127.0.0.1").user(SUPERUSER).dbname(DATABASE);
        let mut cluster = DedicatedCluster {
            bindir,
            dir,
            port: 0,
            owner,
            config,
            watchdog: Mutex::new(Some(watchdog)),
        };
        // A free port can be taken between choosing it and binding it: try another.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
            cluster.config.port(cluster.port);
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(message) => {
                    let port_taken =
                        message.contains("could not bind") || message.contains("already in use");
                    last = message;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// A `postgres://` URL for the cluster's database (for `DATABASE_URL`).
    pub fn url(&self) -> String {
        config_to_url(&self.config)
    }

    /// The connection settings of the cluster's database.
    pub fn config(&self) -> Config {
        self.config.clone()
    }

    /// The port the server listens on (the same after every [`DedicatedCluster::start`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new connection to the cluster's database (panics when the server is down).
    pub async fn client(&self) -> Client {
        connect(&self.config).await.unwrap_or_else(|e| {
            panic!(
                "test-support: cannot connect to the dedicated cluster on port {}: {e}",
                self.port
            )
        })
    }

    /// `pg_ctl stop -m fast`: every session is ended and new connections are refused until
    /// [`DedicatedCluster::start`]. Returns once the server is down.
    pub async fn stop(&self) {
        let args = self.pg_ctl_args(&["stop", "-m", "fast"]);
        self.run_pg_ctl("stop", args).await;
    }

    /// Starts the stopped server again, on the same port and data directory. Returns once it
    /// accepts connections.
    pub async fn start(&self) {
        let args = self.start_args();
        self.run_pg_ctl("start", args).await;
    }

    /// Whether the server is running (`pg_ctl status`).
    pub async fn is_running(&self) -> bool {
        let args = self.pg_ctl_args(&["status"]);
        let mut command = self.pg_ctl_command(&args);
        tokio::task::spawn_blocking(move || command.output())
            .await
            .ok()
            .and_then(Result::ok)
            .is_some_and(|output| output.status.success())
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        read_log(&self.dir)
    }

    fn start_args(&self) -> Vec<String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let mut args = self.pg_ctl_args(&["start"]);
        args.extend(["-l".to_string(), log, "-o".to_string(), options]);
        args
    }

    fn pg_ctl_args(&self, action: &[&str]) -> Vec<String> {
        let mut args = vec![
            "-D".to_string(),
            self.dir.join("data").display().to_string(),
            "-w".to_string(),
            "-t".to_string(),
            PG_CTL_TIMEOUT_SECONDS.to_string(),
        ];
        args.extend(action.iter().map(|a| a.to_string()));
        args
    }

    fn pg_ctl_command(&self, args: &[String]) -> Command {
        let mut command = Command::new(self.bindir.join("pg_ctl"));
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            // The server pg_ctl starts must not die with a Ctrl-C meant for `cargo test` before
            // the watchdog stops it.
            .process_group(0);
        as_owner(&mut command, self.owner);
        command
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let args = self.start_args();
        run_blocking(self.pg_ctl_command(&args), "start", &self.dir)
    }

    async fn run_pg_ctl(&self, what: &'static str, args: Vec<String>) {
        let command = self.pg_ctl_command(&args);
        let dir = self.dir.clone();
        let outcome = tokio::task::spawn_blocking(move || run_blocking(command, what, &dir))
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        if let Err(message) = outcome {
            panic!("test-support: {message}");
        }
    }
}

impl Drop for DedicatedCluster {
    fn drop(&mut self) {
        let watchdog = match self.watchdog.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(Watchdog {
            mut child,
            lifeline,
        }) = watchdog
        {
            drop(lifeline);
            let deadline = Instant::now() + CLEANUP_TIMEOUT;
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Ok(Some(_)) | Err(_) => return,
                }
            }
            eprintln!(
                "test-support: the dedicated cluster in {} was not cleaned up within {CLEANUP_TIMEOUT:?}",
                self.dir.display()
            );
        }
    }
}

fn spawn_watchdog(
    bindir: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Watchdog, String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("test-support-pg-dedicated-watchdog")
        .arg(bindir.join("pg_ctl"))
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
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
    Ok(Watchdog { child, lifeline })
}

fn run_blocking(mut command: Command, what: &str, dir: &Path) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run pg_ctl {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "pg_ctl {what} failed ({}) in {}:\n{}{}\nserver log:\n{}",
        output.status,
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        read_log(dir)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_refuses_connections_and_start_brings_the_data_back() {
        let cluster = DedicatedCluster::new().await;
        let client = cluster.client().await;
        client
            .batch_execute("CREATE TABLE t (id INT); INSERT INTO t VALUES (7)")
            .await
            .unwrap();
        assert!(cluster.is_running().await);

        cluster.stop().await;
        assert!(!cluster.is_running().await);
        assert!(connect(&cluster.config()).await.is_err());
        assert!(
            client.simple_query("SELECT 1").await.is_err(),
            "the session ended"
        );

        cluster.start().await;
        let client = cluster.client().await;
        let row = client.query_one("SELECT id FROM t", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 7);
        assert_eq!(
            cluster.url(),
            format!("postgres://postgres@127.0.0.1:{}/backfill", cluster.port())
        );
    }

    #[tokio::test]
    async fn dropping_stops_the_server_and_removes_its_folder() {
        let cluster = DedicatedCluster::new().await;
        let dir = cluster.dir.clone();
        let config = cluster.config();
        drop(cluster);
        assert!(!dir.exists(), "{} is still there", dir.display());
        assert!(connect(&config).await.is_err());
    }
}
