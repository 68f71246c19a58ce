//! TLS to PostgreSQL, with libpq's `sslmode` words and meanings, so a URL or a `PGSSLMODE` that
//! works with `psql` works here too.
//!
//! | mode          | TLS                        | certificate checked                           |
//! |---------------|----------------------------|-----------------------------------------------|
//! | `disable`     | never                      | –                                             |
//! | `prefer`      | when the server offers it  | chain only if a root certificate is given     |
//! | `require`     | always                     | chain only if a root certificate is given     |
//! | `verify-ca`   | always                     | chain (root file, else the system's store)    |
//! | `verify-full` | always                     | chain and host name                           |
//!
//! `prefer` is the default, as in libpq: a local cluster without TLS keeps working. RDS for
//! PostgreSQL 15+ refuses plaintext (`rds.force_ssl`), which `prefer` and `require` satisfy; the
//! Terraform module sets `require`, and `verify-full` with the RDS CA bundle checks who answers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::env;
use crate::error::BackfillError;

/// libpq's `sslmode`, including the two verifying modes tokio-postgres does not parse itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const WORDS: [&'static str; 5] =
        ["disable", "prefer", "require", "verify-ca", "verify-full"];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What the wire protocol needs to know: whether to ask for TLS and whether to insist.
    fn wire(self) -> WireSslMode {
        match self {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Prefer => WireSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
        }
    }
}

impl FromStr for SslMode {
    type Err = BackfillError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(BackfillError::ConfigurationError(format!(
                "sslmode {other:?} is not one of {}",
                SslMode::WORDS.join(", ")
            ))),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to secure the database connection: the mode and, optionally, the CAs to trust.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// A PEM file of trusted CA certificates (libpq's `sslrootcert`).
    pub root_cert: Option<PathBuf>,
}

impl TlsSettings {
    /// The defaults every connection starts from: `PGSSLMODE` and `PGSSLROOTCERT`, as libpq reads
    /// them. A URL's own `sslmode`/`sslrootcert` override these.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, BackfillError> {
        let get = env::non_blank(get);
        let mode = match get("PGSSLMODE") {
            Some(word) => word.parse().map_err(|_| {
                BackfillError::ConfigurationError(format!(
                    "PGSSLMODE {word:?} is not one of {}",
                    SslMode::WORDS.join(", ")
                ))
            })?,
            None => SslMode::default(),
        };
        let root_cert = get("PGSSLROOTCERT").map(PathBuf::from);
        Ok(TlsSettings { mode, root_cert })
    }

    pub fn from_env() -> Result<Self, BackfillError> {
        Self::from_lookup(env::var)
    }

    /// Tells tokio-postgres whether to ask for TLS.
    pub(crate) fn apply(&self, config: &mut tokio_postgres::Config) {
        config.ssl_mode(self.mode.wire());
    }

    /// The TLS connector for these settings. Reads the root certificate file, so a missing or
    /// empty file is reported here, before any connection is tried.
    pub fn connector(&self) -> Result<MakeRustlsConnect, BackfillError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| BackfillError::ConfigurationError(format!("TLS set-up failed: {e}")))?;
        let check = match (self.mode, &self.root_cert) {
            (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => Check::Nothing,
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, Some(_))
            | (SslMode::VerifyCa, None) => Check::Chain,
            (SslMode::VerifyFull, _) => Check::ChainAndName,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(LibpqVerifier {
                provider,
                chain: None,
            }),
            Check::Chain | Check::ChainAndName => {
                let roots = match &self.root_cert {
                    Some(path) => roots_from_file(path)?,
                    None => system_roots()?,
                };
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| {
                            BackfillError::ConfigurationError(format!(
                                "cannot build the certificate verifier: {e}"
                            ))
                        })?;
                if check == Check::Chain {
                    Arc::new(LibpqVerifier {
                        provider,
                        chain: Some(webpki),
                    })
                } else {
                    webpki
                }
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, BackfillError> {
    let bad = |what: String| {
        BackfillError::ConfigurationError(format!(
            "root certificate file {}: {what}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(bad(format!(
            "none of its {unusable} certificates is usable"
        )));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, BackfillError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(BackfillError::ConfigurationError(
            "sslmode verify-ca/verify-full needs trusted CAs: set PGSSLROOTCERT (or sslrootcert) \
             to a PEM bundle, e.g. the RDS global bundle; the system store is empty"
                .into(),
        ));
    }
    Ok(roots)
}

/// The checks libpq makes that rustls's own verifier does not: `prefer`/`require` without a root
/// certificate (`chain: None`: encrypted, but anyone can answer) and `verify-ca` (the chain must
/// lead to a trusted CA; the name in the certificate may differ from the host dialled: RDS behind
/// an alias, a proxy, an IP address). The handshake signature is always checked, so the session
/// key belongs to the certificate shown.
#[derive(Debug)]
struct LibpqVerifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name last, after the chain, so a name error means the chain passed.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Takes libpq's `sslmode` and `sslrootcert` out of a connection string (URL query or
/// `key=value` words), because tokio-postgres rejects `verify-ca`/`verify-full` and does not know
/// `sslrootcert`. Returns the rest of the string untouched and the settings with the overrides.
pub(crate) fn split_tls_options(
    conn: &str,
    defaults: &TlsSettings,
) -> Result<(String, TlsSettings), BackfillError> {
    let mut tls = defaults.clone();
    let mut take = |key: &str, value: &str| -> Result<bool, BackfillError> {
        match key {
            "sslmode" => {
                tls.mode = value.parse()?;
                Ok(true)
            }
            "sslrootcert" => {
                tls.root_cert = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let decoded = url::form_urlencoded::parse(pair.as_bytes()).next();
                    let taken = match decoded {
                        Some((key, value)) => take(&key, &value)?,
                        None => false,
                    };
                    if !taken {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in conn.split_whitespace() {
            let taken = match word.split_once('=') {
                Some((key, value)) => take(key.trim(), value.trim_matches('\''))?,
                None => false,
            };
            if !taken {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_word_parses_and_prints_back() {
        for word in SslMode::WORDS {
            assert_eq!(word.parse::<SslMode>().unwrap().as_str(), word);
        }
        let err = "verify_full".parse::<SslMode>().unwrap_err();
        assert_eq!(err.name(), "ConfigurationError");
    }

    #[test]
    fn environment_sets_the_defaults() {
        let tls = TlsSettings::from_lookup(|k| match k {
            "PGSSLMODE" => Some("verify-full".into()),
            "PGSSLROOTCERT" => Some("/var/task/rds.pem".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(
            tls.root_cert.as_deref(),
            Some(Path::new("/var/task/rds.pem"))
        );
        assert_eq!(
            TlsSettings::from_lookup(|_| None).unwrap(),
            TlsSettings::default()
        );
        let err =
            TlsSettings::from_lookup(|k| (k == "PGSSLMODE").then(|| "on".into())).unwrap_err();
        assert!(err.to_string().contains("PGSSLMODE"), "{err}");
    }

    #[test]
    fn url_options_override_the_defaults_and_leave_the_rest_alone() {
        let defaults = TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
        };
        let (rest, tls) = split_tls_options(
            "postgres://u:p%40ss@db:5432/news?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Frds.pem&connect_timeout=5",
            &defaults,
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db:5432/news?application_name=x&connect_timeout=5"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/etc/rds.pem")));

        let (rest, tls) =
            split_tls_options("postgres://u@db/news?sslmode=disable", &defaults).unwrap();
        assert_eq!(rest, "postgres://u@db/news");
        assert_eq!(tls.mode, SslMode::Disable);

        let (rest, tls) = split_tls_options("postgres://u@db/news", &defaults).unwrap();
        assert_eq!(rest, "postgres://u@db/news");
        assert_eq!(tls, defaults);

        let (rest, tls) = split_tls_options(
            "host=db user=u sslmode=verify-ca sslrootcert='/x.pem' dbname=news",
            &defaults,
        )
        .unwrap();
        assert_eq!(rest, "host=db user=u dbname=news");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/x.pem")));

        let err = split_tls_options("postgres://db/x?sslmode=always", &defaults).unwrap_err();
        assert_eq!(err.name(), "ConfigurationError");
    }

    #[test]
    fn a_root_file_without_certificates_is_a_configuration_error() {
        let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let settings = TlsSettings {
                mode,
                root_cert: Some(empty.clone()),
            };
            let err = settings
                .connector()
                .err()
                .expect("no certificates in the file");
            assert_eq!(err.name(), "ConfigurationError");
            assert!(err.to_string().contains("empty.pem"), "{err}");
        }
        let missing = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(dir.join("missing.pem")),
        };
        assert_eq!(
            missing.connector().err().unwrap().name(),
            "ConfigurationError"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
