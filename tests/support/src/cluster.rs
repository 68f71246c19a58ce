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

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::{Client, Config};

use crate::pg::{config_to_url, connect, random_u32};
use crate::pg_server::{
    cluster_owner, find_bindir, initdb, new_cluster_dir, port_taken, read_log, PgCtl, Watchdog,
    SUPERUSER,
};

/// The database [`DedicatedCluster::new`] creates (the URL names it).
pub const DATABASE: &str = "backfill";
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
    /// The cluster's folder (`data/`, `postgres.log`, the socket) and how to start and stop it.
    pg_ctl: PgCtl,
    port: u16,
    config: Config,
    watchdog: Mutex<Option<Watchdog>>,
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
        let name = format!(
            "test-support-pg-dedicated-{}-{:08x}",
            std::process::id(),
            random_u32()
        );
        let dir = new_cluster_dir(&name, owner)?;
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
            pg_ctl: PgCtl { bindir, dir, owner },
            port: 0,
            config,
            watchdog: Mutex::new(Some(watchdog)),
        };
        // A free port can be taken between choosing it and binding it: try another.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port =
                crate::net::free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
            cluster.config.port(cluster.port);
            match cluster.pg_ctl.start(cluster.port) {
                Ok(_) => return Ok(cluster),
                Err(message) => {
                    let retry = port_taken(&message);
                    last = message;
                    if !retry {
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
        let pg_ctl = self.pg_ctl.clone();
        self.blocking(move || pg_ctl.stop("fast")).await;
    }

    /// Starts the stopped server again, on the same port and data directory. Returns once it
    /// accepts connections.
    pub async fn start(&self) {
        let (pg_ctl, port) = (self.pg_ctl.clone(), self.port);
        self.blocking(move || pg_ctl.start(port)).await;
    }

    /// Whether the server is running (`pg_ctl status`).
    pub async fn is_running(&self) -> bool {
        let pg_ctl = self.pg_ctl.clone();
        tokio::task::spawn_blocking(move || pg_ctl.is_running())
            .await
            .unwrap_or(false)
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        read_log(&self.pg_ctl.dir)
    }

    /// Runs a pg_ctl call off the runtime; panics with its message when it fails.
    async fn blocking(&self, call: impl FnOnce() -> Result<String, String> + Send + 'static) {
        let outcome = tokio::task::spawn_blocking(call)
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
        if let Some(watchdog) = watchdog {
            if !watchdog.finish(CLEANUP_TIMEOUT) {
                eprintln!(
                    "test-support: the dedicated cluster in {} was not cleaned up within {CLEANUP_TIMEOUT:?}",
                    self.pg_ctl.dir.display()
                );
            }
        }
    }
}

fn spawn_watchdog(
    bindir: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Watchdog, String> {
    let pg_ctl = bindir.join("pg_ctl");
    let args = [pg_ctl.as_os_str(), dir.as_os_str()];
    let (watchdog, _) = Watchdog::spawn(
        WATCHDOG,
        "test-support-pg-dedicated-watchdog",
        &args,
        dir,
        owner,
        Stdio::null(),
    )?;
    Ok(watchdog)
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
        let dir = cluster.pg_ctl.dir.clone();
        let config = cluster.config();
        drop(cluster);
        assert!(!dir.exists(), "{} is still there", dir.display());
        assert!(connect(&config).await.is_err());
    }
}
