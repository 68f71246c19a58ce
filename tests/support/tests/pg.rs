//! TestDb against a real server: isolation between databases, and a throwaway cluster that never
//! outlives its test process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::pg::TestDb;
use test_support::wait;

#[tokio::test]
async fn two_test_dbs_are_isolated() {
    let a = TestDb::new().await;
    let b = TestDb::new().await;
    assert_ne!(a.name(), b.name());

    let a_client = a.client().await;
    a_client
        .batch_execute("CREATE TABLE only_in_a (v TEXT); INSERT INTO only_in_a VALUES ('a');")
        .await
        .unwrap();

    let b_client = b.client().await;
    let visible_in_b: i64 = b_client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible_in_b, 0);
    let in_a: String = a_client
        .query_one("SELECT v FROM only_in_a", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_a, "a");
}

#[tokio::test]
async fn a_new_database_is_empty() {
    let db = TestDb::new().await;
    let tables: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn url_config_and_client_reach_the_same_database() {
    let db = TestDb::new().await;

    let (from_url, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let (from_config, connection) = db.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);

    for client in [&from_url, &from_config, &db.client().await] {
        let name: String = client
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, db.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_can_be_created_concurrently() {
    let handles: Vec<_> = (0..6)
        .map(|_| tokio::spawn(async { TestDb::new().await }))
        .collect();
    let mut names = Vec::new();
    for handle in handles {
        names.push(handle.await.unwrap().name().to_string());
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6);
}

// --- A throwaway cluster's lifetime is its process's -----------------------------------------
//
// The parent tests below run this test binary again as a child (with the ignored test
// `child_starts_a_cluster`), read where the child's cluster lives, end the child, and check that
// the postmaster and its folder are gone.

const CHILD_ENV: &str = "TEST_SUPPORT_PG_CHILD";

/// Only does something when started by the parent tests: starts a throwaway cluster, prints the
/// postmaster's pid and data directory, then exits or (mode `hang`) waits to be killed.
#[tokio::test]
#[ignore = "helper: run by the lifetime tests in a child process"]
async fn child_starts_a_cluster() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = TestDb::new().await;
    let client = db.client().await;
    let row = client
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .unwrap();
    let data_directory: String = row.get(0);
    // The postmaster's pid is the first line of its pid file. Read here, while the cluster
    // surely runs: in mode `exit` the parent may look only after this process is gone.
    let pid_file = std::fs::read_to_string(format!("{data_directory}/postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap().trim().to_string();
    println!("POSTMASTER={postmaster}");
    println!("DATA={data_directory}");
    if mode == "hang" {
        std::future::pending::<()>().await;
    }
}

struct ChildCluster {
    postmaster: u32,
    folder: PathBuf,
}

fn spawn_child(mode: &str) -> (std::process::Child, ChildCluster) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_a_cluster",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, mode)
        .env_remove("TEST_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut postmaster, mut data) = (None, None);
    for line in stdout.by_ref() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("POSTMASTER=") {
            postmaster = Some(v.parse::<u32>().unwrap());
        } else if let Some(v) = line.strip_prefix("DATA=") {
            data = Some(PathBuf::from(v));
        }
        if postmaster.is_some() && data.is_some() {
            break;
        }
    }
    // Keep reading: a child writing to a closed pipe would fail.
    std::thread::spawn(move || stdout.for_each(drop));
    let postmaster = postmaster.expect("child postmaster");
    let folder = data.expect("child data").parent().unwrap().to_path_buf();
    (child, ChildCluster { postmaster, folder })
}

fn gone(cluster: &ChildCluster) -> bool {
    let running = std::fs::read_to_string(format!("/proc/{}/stat", cluster.postmaster))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    !running && !cluster.folder.exists()
}

#[tokio::test]
async fn a_cluster_is_gone_when_its_process_exits() {
    let (mut child, cluster) = spawn_child("exit");
    let status = child.wait().unwrap();
    assert!(status.success());
    // The child's atexit hook waited for the cleanup: nothing to wait for here.
    assert!(
        gone(&cluster),
        "postmaster {} or {} outlived the process",
        cluster.postmaster,
        cluster.folder.display()
    );
}

#[tokio::test]
async fn a_cluster_is_gone_when_its_process_is_killed() {
    let (mut child, cluster) = spawn_child("hang");
    assert!(cluster.folder.exists());
    assert!(!gone(&cluster));
    child.kill().unwrap(); // SIGKILL: no atexit, no destructors
    child.wait().unwrap();
    wait::until(Duration::from_secs(20), || async { gone(&cluster) })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "postmaster {} or {} outlived the killed process: {e}",
                cluster.postmaster,
                cluster.folder.display()
            )
        });
}
