//! A `moto_server` of a test's own: Secrets Manager and Step Functions over loopback, for the
//! AWS SDK clients under test.
//!
//! [`Moto::start`] runs `moto_server` on a free port of 127.0.0.1 in a process group of its own
//! (stopped, with everything it started, when the `Moto` is dropped) and returns once it accepts
//! connections. [`Moto::sdk_config`] points any SDK client at it, in [`REGION`] with the
//! [`ACCESS_KEY_ID`] / [`SECRET_ACCESS_KEY`] moto accepts; [`Moto::env`] gives the same to a child
//! process.
//!
//! ```no_run
//! # async fn demo() {
//! let moto = test_support::moto::Moto::start().await;
//! let config = moto.sdk_config();
//! // aws_sdk_sfn::Client::new(&config), aws_sdk_secretsmanager::Client::new(&config), …
//! # }
//! ```
//!
//! The server is `MOTO_SERVER` when set, else the project virtualenv's (`scripts/ensure-tools`
//! installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

use crate::process::GroupChild;

/// The region every client of a test's moto uses.
pub const REGION: &str = "us-east-1";
/// moto does not check credentials; SDKs want some.
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";
/// How long `moto_server` may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server`.
#[derive(Debug)]
pub struct Moto {
    _server: GroupChild,
    port: u16,
    url: String,
}

impl Moto {
    /// Starts `moto_server` on a free port and waits until it listens. Panics with the reason
    /// when it cannot (test set-up).
    pub async fn start() -> Moto {
        let port = crate::net::free_port().expect("test-support: no free port for moto_server");
        let server = GroupChild::spawn(
            Command::new(binary())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("test-support: moto_server starts");
        crate::wait::until(START_TIMEOUT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await
        .expect("test-support: moto_server listens");
        Moto {
            _server: server,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What an SDK client needs to talk to this server (`Client::new(&moto.sdk_config())`).
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "test",
            )))
            .build()
    }

    /// The environment a child process's SDK needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]
    }
}

/// `moto_server`: `MOTO_SERVER`, or the project virtualenv's. Panics with what to run when it is
/// missing.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = workspace_root()
        .join(".venv")
        .join("bin")
        .join("moto_server");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/ensure-tools (make test does)",
        venv.display()
    );
    venv
}

/// The repository root (this crate lives in `<root>/tests/support`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
