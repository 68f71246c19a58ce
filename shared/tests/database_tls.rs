//! TLS to PostgreSQL against a real server that refuses plaintext (as RDS with `rds.force_ssl`
//! does): libpq's `sslmode` words mean what they mean for `psql`, from the URL or from
//! `PGSSLMODE`/`PGSSLROOTCERT`, for the functions' pool and the CLI's single connection alike.
//!
//! One CA signs one server certificate for the name `localhost` only, so the same server answers
//! as a name the certificate holds (`localhost`) and one it does not (`127.0.0.1`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use shared::config::Config;
use shared::db::tls::{SslMode, TlsSettings};
use shared::db::{self, ConnectionSettings};
use shared::handler::App;
use test_support::TestDb;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Pki {
    server_cert: String,
    server_key: String,
    /// The CA that signed the server's certificate.
    ca_file: PathBuf,
    /// A CA that signed nothing the server holds.
    stranger_ca_file: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The process's certificates (the server's certificate is cluster-wide: one pair per process).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let authority = ca("price-backfill test CA");
        let stranger = ca("some other CA");
        let server_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = params.signed_by(&server_key, &authority).unwrap();

        let dir = std::env::temp_dir().join(format!("database-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        let stranger_ca_file = dir.join("stranger-ca.pem");
        std::fs::write(&ca_file, authority.pem()).unwrap();
        std::fs::write(&stranger_ca_file, stranger.pem()).unwrap();
        Pki {
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            ca_file,
            stranger_ca_file,
        }
    })
}

/// A database only reachable over TLS.
async fn tls_only_db() -> TestDb {
    let db = TestDb::new().await;
    let pki = pki();
    db.require_tls(&pki.server_cert, &pki.server_key)
        .await
        .expect("the test cluster serves TLS");
    db
}

/// The database's URL as a given host name, with extra query options.
fn url(db: &TestDb, host: &str, query: &str) -> String {
    let url = db.url().replace("@127.0.0.1:", &format!("@{host}:"));
    assert!(url.contains(host), "unexpected test URL shape");
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

fn defaults(mode: SslMode, root: Option<&PathBuf>) -> TlsSettings {
    TlsSettings {
        mode,
        root_cert: root.cloned(),
    }
}

/// Connects and says whether the session is encrypted, from the server's own view.
async fn encrypted(settings: &ConnectionSettings) -> Result<bool, shared::BackfillError> {
    let client = settings.connect(TIMEOUT).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn require_and_prefer_connect_encrypted_to_a_server_that_refuses_plaintext() {
    let db = tls_only_db().await;
    for query in ["sslmode=require", "sslmode=prefer", ""] {
        let settings =
            db::parse_url(&url(&db, "127.0.0.1", query), &TlsSettings::default()).unwrap();
        assert_eq!(
            encrypted(&settings).await.map_err(|e| e.to_string()),
            Ok(true),
            "{query:?}"
        );
    }
}

#[tokio::test]
async fn disable_is_refused_by_a_tls_only_server_as_database_unavailable() {
    let db = tls_only_db().await;
    let settings = db::parse_url(
        &url(&db, "127.0.0.1", "sslmode=disable"),
        &TlsSettings::default(),
    )
    .unwrap();
    let err = encrypted(&settings).await.unwrap_err();
    assert_eq!(err.name(), "DatabaseUnavailable");
    assert!(err.to_string().contains("no encryption"), "{err}");
}

#[tokio::test]
async fn verify_full_accepts_the_signing_ca_and_a_host_the_certificate_names() {
    let db = tls_only_db().await;
    let pki = pki();
    // From the environment's defaults …
    let settings = db::parse_url(
        &url(&db, "localhost", ""),
        &defaults(SslMode::VerifyFull, Some(&pki.ca_file)),
    )
    .unwrap();
    assert!(encrypted(&settings).await.unwrap());
    // … and from the URL alone, as a psql user would write it.
    let query = format!("sslmode=verify-full&sslrootcert={}", pki.ca_file.display());
    let settings = db::parse_url(&url(&db, "localhost", &query), &TlsSettings::default()).unwrap();
    assert_eq!(settings.tls.mode, SslMode::VerifyFull);
    assert!(encrypted(&settings).await.unwrap());
}

#[tokio::test]
async fn verify_full_refuses_a_host_the_certificate_does_not_name_and_verify_ca_does_not_care() {
    let db = tls_only_db().await;
    let pki = pki();
    let as_ip = url(&db, "127.0.0.1", "");
    let full = db::parse_url(&as_ip, &defaults(SslMode::VerifyFull, Some(&pki.ca_file))).unwrap();
    let err = encrypted(&full).await.unwrap_err();
    assert_eq!(err.name(), "DatabaseUnavailable");
    assert!(err.to_string().contains("certificate"), "{err}");

    let chain_only =
        db::parse_url(&as_ip, &defaults(SslMode::VerifyCa, Some(&pki.ca_file))).unwrap();
    assert!(encrypted(&chain_only).await.unwrap());
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_whenever_a_root_is_given() {
    let db = tls_only_db().await;
    let pki = pki();
    // libpq checks the chain in require (and prefer) too once a root certificate is named.
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let settings = db::parse_url(
            &url(&db, "localhost", ""),
            &defaults(mode, Some(&pki.stranger_ca_file)),
        )
        .unwrap();
        let err = encrypted(&settings).await.unwrap_err();
        assert_eq!(err.name(), "DatabaseUnavailable", "{mode}");
        assert!(err.to_string().contains("certificate"), "{mode}: {err}");
    }
}

#[tokio::test]
async fn the_functions_pool_follows_pgsslmode_and_pgsslrootcert() {
    let db = tls_only_db().await;
    let pki = pki();
    let vars = [
        ("DATABASE_URL", url(&db, "localhost", "")),
        ("PGSSLMODE", "verify-full".to_string()),
        ("PGSSLROOTCERT", pki.ca_file.display().to_string()),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let app = App::new(config, None).unwrap();
    let mut conn = app.db().await.expect("the pool connects over verified TLS");
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    // The whole schema goes through the same connection.
    db::migrate::run(&mut conn).await.unwrap();
}

#[tokio::test]
async fn scram_with_channel_binding_over_verified_tls_logs_in_as_on_rds() {
    let db = TestDb::new().await;
    let pki = pki();
    let user = format!("app_{}", db.name());
    db.require_tls_and_password(&pki.server_cert, &pki.server_key, &user, "correct-horse")
        .await
        .expect("the test cluster serves TLS with a password user");
    let port = db.config().get_ports()[0];
    let url = |password: &str| {
        format!(
            "postgres://{user}:{password}@localhost:{port}/{}?sslmode=verify-full&sslrootcert={}&channel_binding=require",
            db.name(),
            pki.ca_file.display()
        )
    };
    // channel_binding=require: SCRAM-SHA-256-PLUS, bound to the server certificate, or nothing.
    let settings = db::parse_url(&url("correct-horse"), &TlsSettings::default()).unwrap();
    let client = settings.connect(TIMEOUT).await.expect("logs in over TLS");
    let row = client
        .query_one(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), user);
    assert!(row.get::<_, bool>(1));

    let settings = db::parse_url(&url("wrong-horse"), &TlsSettings::default()).unwrap();
    let err = settings.connect(TIMEOUT).await.unwrap_err();
    assert_eq!(err.name(), "DatabaseUnavailable");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-horse"), "{err}");
}
