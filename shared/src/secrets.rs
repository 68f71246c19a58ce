//! Secrets Manager behind a port, and the parsing of the two secret shapes we accept.

use async_trait::async_trait;
use serde::Deserialize;

use crate::config::Secret;
use crate::db::tls::TlsSettings;
use crate::db::ConnectionSettings;
use crate::error::BackfillError;

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The `SecretString` of the secret `arn`.
    async fn secret_string(&self, arn: &str) -> Result<Secret, BackfillError>;
}

/// The real adapter: `GetSecretValue` through the AWS SDK (honours `AWS_ENDPOINT_URL`).
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub async fn from_env() -> Self {
        let config = aws_config::load_from_env().await;
        Self {
            client: aws_sdk_secretsmanager::Client::new(&config),
        }
    }

    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretSource for SecretsManager {
    async fn secret_string(&self, arn: &str) -> Result<Secret, BackfillError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                // The SDK error names the service failure, never the secret's value.
                BackfillError::ConfigurationError(format!(
                    "cannot read secret {arn}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                ))
            })?;
        out.secret_string().map(Secret::new).ok_or_else(|| {
            BackfillError::ConfigurationError(format!("secret {arn} has no SecretString"))
        })
    }
}

#[derive(Deserialize)]
struct DatabaseSecret {
    url: Option<String>,
    host: Option<String>,
    port: Option<serde_json::Value>,
    username: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
}

/// Turns a database secret into a connection config. Accepts the RDS shape
/// (`host/port/username/password/dbname`) and `{"url": "postgres://…"}`.
pub fn database_config_from_secret(
    arn: &str,
    secret: &Secret,
    tls: &TlsSettings,
) -> Result<ConnectionSettings, BackfillError> {
    let bad =
        |what: &str| BackfillError::ConfigurationError(format!("database secret {arn} {what}"));
    let parsed: DatabaseSecret =
        serde_json::from_str(secret.expose()).map_err(|_| bad("is not a JSON object"))?;
    if let Some(url) = parsed.url {
        // parse_url's errors never echo the URL (it may hold the password).
        return crate::db::parse_url(&url, tls).map_err(|e| match e {
            BackfillError::ConfigurationError(m) => bad(&format!("has a bad `url`: {m}")),
            other => other,
        });
    }
    let host = parsed
        .host
        .ok_or_else(|| bad("has neither `url` nor `host`"))?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host);
    if let Some(port) = parsed.port {
        let port = match &port {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad("has a `port` that is not a port number"))?;
        cfg.port(port);
    }
    cfg.user(&parsed.username.ok_or_else(|| bad("has no `username`"))?);
    if let Some(pw) = parsed.password {
        cfg.password(pw);
    }
    cfg.dbname(parsed.dbname.as_deref().unwrap_or("postgres"));
    Ok(ConnectionSettings {
        postgres: cfg,
        tls: tls.clone(),
    })
}

/// The Polygon key from a provider secret: a plain string or JSON with a key field.
pub fn api_key_from_secret(arn: &str, secret: &Secret) -> Result<Secret, BackfillError> {
    let raw = secret.expose().trim();
    if !raw.starts_with('{') {
        return Ok(Secret::new(raw));
    }
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
        BackfillError::ConfigurationError(format!("provider secret {arn} is not valid JSON"))
    })?;
    ["api_key", "POLYGON_API_KEY", "apiKey", "key"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))
        .map(Secret::new)
        .ok_or_else(|| {
            BackfillError::ConfigurationError(format!(
                "provider secret {arn} has none of the fields api_key, POLYGON_API_KEY, apiKey, key"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123:secret:db";

    #[test]
    fn rds_secret_shape_builds_a_connection_config() {
        let s = Secret::new(
            r#"{"engine":"postgres","host":"db.internal","port":5433,"username":"app","password":"p@ss/w:rd","dbname":"news"}"#,
        );
        let cfg = database_config_from_secret(ARN, &s, &TlsSettings::default())
            .unwrap()
            .postgres;
        assert_eq!(cfg.get_ports(), &[5433]);
        assert_eq!(cfg.get_user(), Some("app"));
        assert_eq!(cfg.get_dbname(), Some("news"));
        assert_eq!(cfg.get_password(), Some(&b"p@ss/w:rd"[..]));
    }

    #[test]
    fn url_secret_shape_is_accepted() {
        let s = Secret::new(r#"{"url":"postgres://app:pw@db.internal:5432/news"}"#);
        let cfg = database_config_from_secret(ARN, &s, &TlsSettings::default())
            .unwrap()
            .postgres;
        assert_eq!(cfg.get_dbname(), Some("news"));
    }

    #[test]
    fn tls_comes_from_the_defaults_unless_the_secret_url_says_otherwise() {
        use crate::db::tls::SslMode;
        let defaults = TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
        };
        let rds = Secret::new(r#"{"host":"db","username":"app","password":"pw"}"#);
        let settings = database_config_from_secret(ARN, &rds, &defaults).unwrap();
        assert_eq!(settings.tls, defaults);

        let url = Secret::new(
            r#"{"url":"postgres://app:pw@db/news?sslmode=verify-full&sslrootcert=/var/task/rds.pem"}"#,
        );
        let settings = database_config_from_secret(ARN, &url, &defaults).unwrap();
        assert_eq!(settings.tls.mode, SslMode::VerifyFull);
        assert_eq!(settings.postgres.get_dbname(), Some("news"));

        let bad = Secret::new(r#"{"url":"postgres://app:hunter2@db/news?sslmode=strict"}"#);
        let err = database_config_from_secret(ARN, &bad, &defaults).unwrap_err();
        assert!(err.to_string().contains("sslmode"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn broken_secrets_are_configuration_errors_without_the_secret_in_the_message() {
        for raw in [
            r#"{"password":"hunter2"}"#,
            "hunter2",
            r#"{"host":"h","port":"x","username":"u","password":"hunter2"}"#,
        ] {
            let err = database_config_from_secret(ARN, &Secret::new(raw), &TlsSettings::default())
                .unwrap_err();
            assert_eq!(err.name(), "ConfigurationError");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn api_key_secret_may_be_plain_or_json() {
        assert_eq!(
            api_key_from_secret(ARN, &Secret::new("k1"))
                .unwrap()
                .expose(),
            "k1"
        );
        assert_eq!(
            api_key_from_secret(ARN, &Secret::new(r#"{"POLYGON_API_KEY":"k2"}"#))
                .unwrap()
                .expose(),
            "k2"
        );
        assert!(api_key_from_secret(ARN, &Secret::new(r#"{"other":"k3"}"#)).is_err());
    }
}
