//! Secrets Manager behind a port, and the provider secret's shapes. Secret values are
//! [`SecretString`]s: `Debug` shows a placeholder, and reading one takes `expose_secret()`.
//! (The database secret's shapes are parsed with the rest of the connection, in the `db` module.)

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::error::BackfillError;

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The `SecretString` of the secret `arn`.
    async fn secret_string(&self, arn: &str) -> Result<SecretString, BackfillError>;
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
    async fn secret_string(&self, arn: &str) -> Result<SecretString, BackfillError> {
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
        out.secret_string().map(SecretString::from).ok_or_else(|| {
            BackfillError::ConfigurationError(format!("secret {arn} has no SecretString"))
        })
    }
}

/// The Polygon key from a provider secret: a plain string or JSON with a key field.
pub fn api_key_from_secret(
    arn: &str,
    secret: &SecretString,
) -> Result<SecretString, BackfillError> {
    let raw = secret.expose_secret().trim();
    if !raw.starts_with('{') {
        return Ok(raw.into());
    }
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
        BackfillError::ConfigurationError(format!("provider secret {arn} is not valid JSON"))
    })?;
    ["api_key", "POLYGON_API_KEY", "apiKey", "key"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))
        .map(SecretString::from)
        .ok_or_else(|| {
            BackfillError::ConfigurationError(format!(
                "provider secret {arn} has none of the fields api_key, POLYGON_API_KEY, apiKey, key"
            ))
        })
}

/// An in-memory [`SecretSource`]: a map ARN → secret string, for tests of the logic that reads
/// secrets (the real adapter is tested against moto). Counts every read; a missing ARN fails as
/// the real adapter's does, with a `ConfigurationError` that names the ARN.
#[derive(Default)]
pub struct FakeSecrets {
    secrets: std::collections::HashMap<String, SecretString>,
    reads: std::sync::atomic::AtomicU32,
}

impl FakeSecrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Secret `arn` holds `value`.
    pub fn with(mut self, arn: &str, value: &str) -> Self {
        self.secrets.insert(arn.to_string(), value.into());
        self
    }

    /// Reads so far (of any ARN, found or not).
    pub fn reads(&self) -> u32 {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretSource for FakeSecrets {
    async fn secret_string(&self, arn: &str) -> Result<SecretString, BackfillError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.secrets.get(arn).cloned().ok_or_else(|| {
            BackfillError::ConfigurationError(format!(
                "cannot read secret {arn}: ResourceNotFoundException: Secrets Manager can't find \
                 the specified secret."
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123:secret:pk";

    fn key(raw: &str) -> Result<String, BackfillError> {
        api_key_from_secret(ARN, &raw.into()).map(|k| k.expose_secret().to_string())
    }

    #[test]
    fn api_key_secret_may_be_plain_or_json() {
        assert_eq!(key(" k1\n").unwrap(), "k1");
        assert_eq!(key(r#"{"POLYGON_API_KEY":"k2"}"#).unwrap(), "k2");
        let err = key(r#"{"other":"k3"}"#).unwrap_err();
        assert_eq!(err.name(), "ConfigurationError");
        assert!(!err.to_string().contains("k3"), "{err}");
    }

    #[test]
    fn secret_values_debug_as_a_placeholder() {
        let key = api_key_from_secret(ARN, &r#"{"api_key":"pk_live_123"}"#.into()).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("pk_live_123"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[tokio::test]
    async fn the_fake_source_counts_reads_and_names_a_missing_arn() {
        let source = FakeSecrets::new().with(ARN, "k1");
        assert_eq!(
            source.secret_string(ARN).await.unwrap().expose_secret(),
            "k1"
        );
        let err = source.secret_string("arn:missing").await.unwrap_err();
        assert_eq!(err.name(), "ConfigurationError");
        assert!(err.to_string().contains("arn:missing"), "{err}");
        assert_eq!(source.reads(), 2);
    }
}
