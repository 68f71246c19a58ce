//! The real Secrets Manager adapter (AWS SDK) against moto's Secrets Manager over loopback: the
//! database and the Polygon key come from secrets, in the shapes docs/configuration.md
//! documents, and are read once per process.

use std::collections::HashMap;
use std::sync::Arc;

use shared::config::Config;
use shared::handler::App;
use shared::model::{DateRange, Interval, ProviderKind, Symbol};
use shared::secrets::{SecretSource, SecretsManager};
use test_support::TestDb;
use tokio_postgres::config::Host;

/// A moto of the test's own, and a Secrets Manager client on it.
struct Moto {
    _server: test_support::moto::Moto,
    client: aws_sdk_secretsmanager::Client,
}

async fn moto() -> Moto {
    let server = test_support::moto::Moto::start().await;
    Moto {
        client: aws_sdk_secretsmanager::Client::new(&server.sdk_config()),
        _server: server,
    }
}

async fn create_secret(moto: &Moto, name: &str, value: &str) -> String {
    moto.client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("arn")
        .to_string()
}

fn rds_secret(db: &TestDb) -> String {
    let cfg = db.config();
    let host = match &cfg.get_hosts()[0] {
        Host::Tcp(h) => h.clone(),
        Host::Unix(p) => p.display().to_string(),
    };
    serde_json::json!({
        "engine": "postgres",
        "host": host,
        "port": cfg.get_ports().first().copied().unwrap_or(5432),
        "username": cfg.get_user().unwrap_or("postgres"),
        "password": cfg.get_password().map(|p| String::from_utf8_lossy(p).to_string()).unwrap_or_default(),
        "dbname": db.name(),
    })
    .to_string()
}

fn app(vars: &[(&str, String)], moto: &Moto) -> App {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let secrets: Arc<dyn SecretSource> = Arc::new(SecretsManager::new(moto.client.clone()));
    App::new(config, Some(secrets)).unwrap()
}

#[tokio::test]
async fn database_from_an_rds_shaped_secret_is_read_once_per_process() {
    let moto = moto().await;
    let db = TestDb::new().await;
    let arn = create_secret(&moto, "prod/db", &rds_secret(&db)).await;
    let app = app(&[("DATABASE_SECRET_ARN", arn.clone())], &moto);

    let client = app.db().await.expect("connects through the secret");
    let name: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, db.name());
    drop(client);

    // Gone from Secrets Manager, still usable: the secret was resolved once and cached.
    moto.client
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let again = app
        .db()
        .await
        .expect("the cached pool needs no second secret read");
    again.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn database_from_a_url_secret() {
    let moto = moto().await;
    let db = TestDb::new().await;
    let arn = create_secret(
        &moto,
        "db-url",
        &serde_json::json!({"url": db.url()}).to_string(),
    )
    .await;
    let app = app(&[("DATABASE_SECRET_ARN", arn)], &moto);
    let client = app.db().await.expect("connects through the url secret");
    client.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn polygon_key_from_a_provider_secret_reaches_polygon() {
    let moto = moto().await;
    let sim = market_sim::spawn(market_sim::SimConfig::default())
        .await
        .unwrap();
    // Every request reserves its slot in the shared budget, which lives in the database.
    let db = TestDb::new().await;
    shared::db::migrate::run(&mut db.client().await)
        .await
        .unwrap();
    let arn = create_secret(&moto, "polygon", r#"{"api_key":"test-key"}"#).await;
    let app = app(
        &[
            ("DATABASE_URL", db.url()),
            ("PROVIDER_SECRET_ARN", arn),
            ("POLYGON_BASE_URL", sim.base_url()),
            ("PROVIDER_REQUESTS_PER_MINUTE", "60000".to_string()),
        ],
        &moto,
    );
    let provider = app.provider(ProviderKind::Polygon).await.unwrap();
    let d = |s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let range = DateRange::new(d("2026-03-09"), d("2026-03-09")).unwrap();
    let bars = provider
        .fetch_bars(&Symbol::parse("AAPL").unwrap(), &range, Interval::Hour)
        .await
        .unwrap();
    assert!(
        !bars.bars.is_empty(),
        "the key from the secret was accepted"
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_configuration_error_naming_the_arn() {
    let moto = moto().await;
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf".to_string();
    let app = app(&[("DATABASE_SECRET_ARN", arn.clone())], &moto);
    let err = app.db().await.unwrap_err();
    assert_eq!(err.name(), "ConfigurationError");
    assert!(err.to_string().contains(&arn), "{err}");
}
