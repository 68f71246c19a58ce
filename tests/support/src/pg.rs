//! A fresh PostgreSQL database per test.
//!
//! [`TestDb::new`] creates an empty database with a unique name on one of two servers, chosen once
//! per test process:
//!
//! - **an existing server**, when `TEST_DATABASE_URL` (preferred) or `DATABASE_URL` is set: the URL
//!   must name a database the role can connect to (e.g. `postgres`) and the role must be allowed to
//!   `CREATE DATABASE`. Each [`TestDb`] drops its database when it is dropped.
//! - **a throwaway cluster** otherwise: on first use the process runs `initdb` (as the `postgres`
//!   user when running as root; trust auth, fsync off) in a fresh folder under the temp dir
//!   (`/tmp` when root, so that the `postgres` user can reach it), starts `postgres` on a free
//!   port of 127.0.0.1 (its socket in that folder) and waits until it accepts connections. A small watchdog shell owns the server: it stops it and removes the
//!   folder as soon as the test process is gone (normal exit, panic, or kill), because it waits for
//!   the end of a pipe that only this process holds. On a normal exit an `atexit` hook also waits
//!   for that cleanup, so no `postgres` process outlives `cargo test`.
//!
//! The server binaries are looked up in `PG_BINDIR`, then `pg_config --bindir`, then the newest
//! `/usr/lib/postgresql/*/bin`, then `PATH` (`scripts/ensure-tools` installs them).
//!
//! ```no_run
//! # async fn demo() {
//! let db = test_support::pg::TestDb::new().await;
//! let client = db.client().await;
//! client.batch_execute("CREATE TABLE t (id INT)").await.unwrap();
//! # }
//! ```

use std::ffi::OsStr;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Config, NoTls};

use crate::pg_server::{
    cluster_owner, find_bindir, initdb, new_cluster_dir, port_taken, read_log, Watchdog, SETTINGS,
    SUPERUSER,
};

/// How long a throwaway cluster may take to accept connections (initdb excluded).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the `atexit` hook waits for the server to stop and its folder to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// An empty database that exists for one test.
///
/// Dropping it drops the database on an existing server; on a throwaway cluster the database simply
/// goes away with the cluster.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    config: Config,
    /// The maintenance connection of an existing server, to drop the database from.
    drop_from: Option<Config>,
}

impl TestDb {
    /// Creates a new, empty, uniquely named database. Panics with an explanation when no server can
    /// be found or started (this is test set-up: failing loudly is the useful thing to do).
    pub async fn new() -> TestDb {
        let server = match tokio::task::spawn_blocking(server).await {
            Ok(Ok(server)) => server,
            Ok(Err(message)) => panic!("test-support: no PostgreSQL for tests: {message}"),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        let name = unique_name();
        let admin = server.admin();
        let client = connect(admin).await.unwrap_or_else(|e| {
            panic!(
                "test-support: cannot connect to {} to create a test database: {e}",
                describe(admin)
            )
        });
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "test-support: CREATE DATABASE {name} failed on {}: {e}",
                    describe(admin)
                )
            });
        let mut config = admin.clone();
        config.dbname(&name);
        let drop_from = match server {
            Server::External { admin } => Some(admin.clone()),
            Server::Throwaway(_) => None,
        };
        TestDb {
            name,
            config,
            drop_from,
        }
    }

    /// The database's name (`test_<pid>_<n>_<random>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL for this database, e.g. for `DATABASE_URL` of a child process.
    pub fn url(&self) -> String {
        config_to_url(&self.config)
    }

    /// The connection settings for this database (e.g. for `shared::db::pool`).
    pub fn config(&self) -> Config {
        self.config.clone()
    }

    /// A new connection to this database; its connection task runs on the current tokio runtime.
    pub async fn client(&self) -> Client {
        connect(&self.config).await.unwrap_or_else(|e| {
            panic!(
                "test-support: cannot connect to test database {}: {e}",
                self.name
            )
        })
    }
}

impl TestDb {
    /// Serves this database over TLS only, with `cert_pem`/`key_pem` as the server's certificate
    /// and key: plain connections to it are refused from now on (the other databases of the
    /// cluster are untouched). The certificate is cluster-wide, so every test of one process must
    /// pass the same pair; a different pair is an error.
    ///
    /// Only a throwaway cluster can be reconfigured: on an existing server
    /// (`TEST_DATABASE_URL`) this returns an error saying so.
    pub async fn require_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        self.require_tls_with_user(cert_pem, key_pem, None).await
    }

    /// Like [`TestDb::require_tls`], and `user` logs in to this database with `password` by
    /// SCRAM-SHA-256 (as on RDS), over TLS only; the role is created here.
    pub async fn require_tls_and_password(
        &self,
        cert_pem: &str,
        key_pem: &str,
        user: &str,
        password: &str,
    ) -> Result<(), String> {
        self.require_tls_with_user(cert_pem, key_pem, Some((user, password)))
            .await
    }

    async fn require_tls_with_user(
        &self,
        cert_pem: &str,
        key_pem: &str,
        password_user: Option<(&str, &str)>,
    ) -> Result<(), String> {
        let server = tokio::task::spawn_blocking(server)
            .await
            .map_err(|e| e.to_string())??;
        let Server::Throwaway(cluster) = server else {
            return Err(
                "TLS tests reconfigure the server, so they need the throwaway cluster: \
                        unset TEST_DATABASE_URL and DATABASE_URL"
                    .into(),
            );
        };
        let admin = connect(&cluster.admin).await.map_err(|e| e.to_string())?;
        {
            // One test at a time edits the cluster's files.
            let _guard = TLS_SETUP.lock().await;
            cluster.write_tls_files(cert_pem, key_pem)?;
            let mut rules = format!("hostnossl \"{}\" all all reject\n", self.name);
            if let Some((user, password)) = password_user {
                let sql = format!(
                    "SET password_encryption = 'scram-sha-256'; \
                     CREATE ROLE \"{}\" LOGIN PASSWORD '{}'",
                    user.replace('"', "\"\""),
                    password.replace('\'', "''")
                );
                admin
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| format!("cannot create role {user}: {e}"))?;
                rules.push_str(&format!(
                    "hostssl \"{}\" \"{user}\" all scram-sha-256\n",
                    self.name
                ));
            }
            cluster.prepend_hba_rules(&rules)?;
            // One statement per call: ALTER SYSTEM refuses to run inside a (multi-statement)
            // transaction block.
            for statement in [
                "ALTER SYSTEM SET ssl = on",
                "ALTER SYSTEM SET ssl_cert_file = '../tls.crt'",
                "ALTER SYSTEM SET ssl_key_file = '../tls.key'",
                "SELECT pg_reload_conf()",
            ] {
                admin.batch_execute(statement).await.map_err(|e| {
                    let detail = e
                        .as_db_error()
                        .map_or(e.to_string(), |db| db.message().into());
                    format!("cannot turn TLS on ({statement}): {detail}")
                })?;
            }
        }
        // The postmaster rereads its files asynchronously: done when a plain connection to this
        // database is refused (the hba rule is read after ssl=on, in the same reload).
        let plain = self.config.clone();
        crate::wait::until(START_TIMEOUT, || {
            let plain = plain.clone();
            async move { connect(&plain).await.is_err() }
        })
        .await
        .map_err(|e| {
            format!(
                "the cluster still accepts plain connections to {} ({e}); its log:\n{}",
                self.name,
                read_log(&cluster.dir)
            )
        })
    }
}

static TLS_SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Cluster {
    /// `tls.crt`/`tls.key` beside the data directory, owned by the server's user, key mode 0600
    /// (postgres refuses a key others can read).
    fn write_tls_files(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        for (name, content, mode) in [("tls.crt", cert_pem, 0o644), ("tls.key", key_pem, 0o600)] {
            let path = self.dir.join(name);
            match fs::read_to_string(&path) {
                Ok(existing) if existing == content => continue,
                Ok(_) => {
                    return Err(format!(
                        "{} already holds another certificate or key: one pair per test process",
                        path.display()
                    ))
                }
                Err(_) => {}
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            std::io::Write::write_all(&mut file, content.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot give {} to postgres: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Puts `rules` first in pg_hba.conf (the first matching line decides).
    fn prepend_hba_rules(&self, rules: &str) -> Result<(), String> {
        let path = self.dir.join("data").join("pg_hba.conf");
        let current = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        fs::write(&path, format!("{rules}{current}"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.drop_from.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop may run inside a runtime (end of a #[tokio::test]) or outside one: a thread with its
        // own runtime works in both cases.
        let outcome = std::thread::spawn(move || drop_database(&admin, &name)).join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test-support: could not drop database {}: {e}", self.name),
            Err(_) => eprintln!("test-support: dropping database {} panicked", self.name),
        }
    }
}

fn drop_database(admin: &Config, name: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = connect(admin).await.map_err(|e| e.to_string())?;
        // FORCE (PostgreSQL 13+) ends the test's connections that are still open.
        let forced = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        match forced {
            Ok(()) => Ok(()),
            Err(_) => client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .await
                .map_err(|e| e.to_string()),
        }
    })
}

/// The first column of every row `sql` returns, e.g. `column::<String>(&client, "SELECT
/// symbol FROM ticker ORDER BY symbol", &[])`. Panics with the statement when it fails (test code).
pub async fn column<T>(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<T>
where
    T: for<'a> FromSql<'a>,
{
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("test-support: {sql}: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Connects without TLS and drives the connection on the current runtime.
pub(crate) async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            // Sessions ended by DROP DATABASE … WITH (FORCE) or by the cluster's shutdown are expected.
            let expected = e
                .as_db_error()
                .is_some_and(|db| db.code().code().starts_with("57P"));
            if !expected {
                eprintln!("test-support: database connection ended: {e}");
            }
        }
    });
    Ok(client)
}

/// `test_<pid>_<sequence>_<random>`: unique within the process and, with overwhelming
/// probability, across processes sharing one server.
fn unique_name() -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("test_{}_{n}_{:08x}", std::process::id(), random_u32())
}

pub(crate) fn random_u32() -> u32 {
    // RandomState is seeded from the OS; hashing the time as well varies it per call.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}

/// `host:port/db` for messages; never the password.
pub(crate) fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("?");
    format!("{host}:{port}/{db}")
}

/// Renders a config as a `postgres://user:password@host:port,…/dbname` URL.
pub(crate) fn config_to_url(config: &Config) -> String {
    let mut url = String::from("postgres://");
    if let Some(user) = config.get_user() {
        url.push_str(&percent_encode(user.as_bytes()));
        if let Some(password) = config.get_password() {
            url.push(':');
            url.push_str(&percent_encode(password));
        }
        url.push('@');
    }
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        if i > 0 {
            url.push(',');
        }
        match host {
            Host::Tcp(h) if h.contains(':') => url.push_str(&format!("[{h}]")),
            Host::Tcp(h) => url.push_str(&percent_encode(h.as_bytes())),
            Host::Unix(p) => url.push_str(&percent_encode(p.as_os_str().as_encoded_bytes())),
        }
        if let Some(port) = ports.get(i).or(ports.first()) {
            url.push_str(&format!(":{port}"));
        }
    }
    url.push('/');
    if let Some(db) = config.get_dbname() {
        url.push_str(&percent_encode(db.as_bytes()));
    }
    url
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The server, chosen and (for a throwaway cluster) started once per process.

enum Server {
    External { admin: Config },
    Throwaway(Cluster),
}

impl Server {
    fn admin(&self) -> &Config {
        match self {
            Server::External { admin } => admin,
            Server::Throwaway(cluster) => &cluster.admin,
        }
    }
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The process's server; the first call decides (and may start a cluster), every later call gets
/// the same answer, including the same failure.
fn server() -> Result<&'static Server, String> {
    SERVER
        .get_or_init(choose_server)
        .as_ref()
        .map_err(Clone::clone)
}

fn choose_server() -> Result<Server, String> {
    for var in ["TEST_DATABASE_URL", "DATABASE_URL"] {
        if let Ok(url) = std::env::var(var) {
            if url.trim().is_empty() {
                continue;
            }
            // Never echo the URL: it may carry a password.
            let admin: Config = url
                .parse()
                .map_err(|_| format!("{var} is not a valid PostgreSQL connection string"))?;
            return Ok(Server::External { admin });
        }
    }
    Cluster::start().map(Server::Throwaway)
}

struct Cluster {
    admin: Config,
    /// The cluster's folder (data directory in `data/`, log, socket).
    dir: PathBuf,
    /// The OS user that runs the server when it is not this process's user.
    owner: Option<(u32, u32)>,
    /// The watchdog shell that owns the postmaster; taken by the `atexit` hook.
    watchdog: Mutex<Option<Watchdog>>,
}

/// Why one start attempt failed: a port someone else took (worth another try) or anything else.
enum StartError {
    PortTaken(String),
    Fatal(String),
}

/// Runs as the watchdog: `sh -c WATCHDOG watchdog <postgres> <dir> <port> <settings…>`. It prints
/// the postmaster's pid, then blocks reading stdin; the pipe ends only when the test process is
/// gone.
const WATCHDOG: &str = r#"
set -u
postgres=$1 dir=$2 port=$3
shift 3
exec 2>>"$dir/postgres.log"
"$postgres" -D "$dir/data" -p "$port" -k "$dir" "$@" \
    </dev/null >>"$dir/postgres.log" 2>&1 &
pg=$!
echo "$pg"
cat >/dev/null
kill -QUIT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$dir"
"#;

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bindir = find_bindir()?;
        let owner = cluster_owner()?;
        let mut last = String::new();
        // A free port can be taken between choosing it and binding it: try again on a new one.
        for _ in 0..3 {
            match Cluster::try_start(&bindir, owner) {
                Ok(cluster) => {
                    register_atexit();
                    return Ok(cluster);
                }
                Err(StartError::PortTaken(message)) => last = message,
                Err(StartError::Fatal(message)) => return Err(message),
            }
        }
        Err(last)
    }

    fn try_start(bindir: &Path, owner: Option<(u32, u32)>) -> Result<Cluster, StartError> {
        let name = format!(
            "test-support-pg-{}-{:08x}",
            std::process::id(),
            random_u32()
        );
        let dir = new_cluster_dir(&name, owner).map_err(StartError::Fatal)?;

        if let Err(message) = initdb(bindir, &dir, owner) {
            let _ = fs::remove_dir_all(&dir);
            return Err(StartError::Fatal(message));
        }

        let port = crate::net::free_port().map_err(|e| {
            let _ = fs::remove_dir_all(&dir);
            StartError::Fatal(format!("cannot find a free port: {e}"))
        })?;
        let port_arg = port.to_string();
        let postgres = bindir.join("postgres");
        let mut args = vec![postgres.as_os_str(), dir.as_os_str(), OsStr::new(&port_arg)];
        args.extend(SETTINGS.iter().map(OsStr::new));
        let (watchdog, stdout) = Watchdog::spawn(
            WATCHDOG,
            "test-support-pg-watchdog",
            &args,
            &dir,
            owner,
            Stdio::piped(),
        )
        .map_err(|message| {
            let _ = fs::remove_dir_all(&dir);
            StartError::Fatal(message)
        })?;
        let Some(stdout) = stdout else {
            unreachable!("stdout was requested as a pipe")
        };

        let mut first_line = String::new();
        let postmaster_pid = BufReader::new(stdout)
            .read_line(&mut first_line)
            .ok()
            .and_then(|_| first_line.trim().parse::<u32>().ok());
        let Some(postmaster_pid) = postmaster_pid else {
            let log = read_log(&dir);
            let _ = watchdog.finish(STOP_TIMEOUT);
            return Err(StartError::Fatal(format!(
                "the watchdog did not start postgres:\n{log}"
            )));
        };

        let ready = wait_until_ready(bindir, port, postmaster_pid);
        if let Err(reason) = ready {
            let log = read_log(&dir);
            let _ = watchdog.finish(STOP_TIMEOUT);
            let message = format!(
                "postgres in {} on port {port} {reason}; its log:\n{log}",
                dir.display()
            );
            return Err(if port_taken(&log) {
                StartError::PortTaken(message)
            } else {
                StartError::Fatal(message)
            });
        }

        let mut admin = Config::new();
        admin
            .host("127.0.0.1")
            .port(port)
            .user(SUPERUSER)
            .dbname("postgres");
        Ok(Cluster {
            admin,
            dir,
            owner,
            watchdog: Mutex::new(Some(watchdog)),
        })
    }
}

/// Polls `pg_isready` until the server accepts connections, the postmaster dies, or time is up.
fn wait_until_ready(bindir: &Path, port: u16, postmaster_pid: u32) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let status = Command::new(bindir.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", SUPERUSER, "-d", "postgres"])
            .args(["-t", "5", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run pg_isready: {e}"))?;
        if status.success() {
            return Ok(());
        }
        if !crate::process::is_running(postmaster_pid) {
            return Err("exited before accepting connections".into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "did not accept connections within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn register_atexit() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` that never unwinds.
        unsafe {
            libc::atexit(stop_cluster_at_exit);
        }
    });
}

/// Runs when the test process exits normally: stop the cluster now rather than a moment after
/// the process is gone, so that nothing is left running when `cargo test` returns.
extern "C" fn stop_cluster_at_exit() {
    if let Some(Ok(Server::Throwaway(cluster))) = SERVER.get() {
        let watchdog = match cluster.watchdog.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(watchdog) = watchdog {
            let _ = watchdog.finish(STOP_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trips_through_the_config_parser() {
        let mut config = Config::new();
        config
            .host("127.0.0.1")
            .port(54321)
            .user("post gres")
            .password("p@ss:w/rd")
            .dbname("test_1_2_ab");
        let url = config_to_url(&config);
        assert_eq!(
            url,
            "postgres://post%20gres:p%40ss%3Aw%2Frd@127.0.0.1:54321/test_1_2_ab"
        );
        let parsed: Config = url.parse().unwrap();
        assert_eq!(parsed.get_hosts(), config.get_hosts());
        assert_eq!(parsed.get_ports(), config.get_ports());
        assert_eq!(parsed.get_user(), config.get_user());
        assert_eq!(parsed.get_password(), config.get_password());
        assert_eq!(parsed.get_dbname(), config.get_dbname());
    }

    #[test]
    fn url_of_a_unix_socket_host_is_percent_encoded() {
        let mut config = Config::new();
        config
            .host_path("/tmp/pg dir")
            .port(5432)
            .user("postgres")
            .dbname("db");
        let url = config_to_url(&config);
        assert_eq!(url, "postgres://postgres@%2Ftmp%2Fpg%20dir:5432/db");
        let parsed: Config = url.parse().unwrap();
        assert_eq!(parsed.get_hosts(), config.get_hosts());
    }

    #[test]
    fn names_are_unique_and_valid_identifiers() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.len() <= 63, "{name}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }
}
