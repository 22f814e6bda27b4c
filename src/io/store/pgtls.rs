//! Connections to the shared store: TLS as libpq does it, over rustls, and what a
//! failed connection is in words (and whether trying again can help).
//!
//! Managed databases (RDS, Cloud SQL, Azure) expect TLS, and operators know libpq's
//! `sslmode`, so the modes mean what they mean there:
//! - `disable`: plain; `prefer` (the default): TLS if the server offers it and the
//!   handshake succeeds, else plain; neither verifies the certificate (unless
//!   `sslrootcert` is given: then its chain, and a failure means plain for `prefer`);
//! - `require`: TLS, the certificate not verified, unless `sslrootcert` is given, in
//!   which case its chain is, as libpq's `verify-ca`;
//! - `verify-ca`: the chain to `sslrootcert=FILE` (required), not the host name;
//! - `verify-full`: the chain (to `sslrootcert`, else the system's roots) and the host
//!   name. As in libpq 16, the system's roots (`sslrootcert=system`, or none given) are
//!   trusted only here: with any other mode any public certificate would pass
//!   (`pgconn` refuses those strings).
//!
//! rustls is the one reqwest already builds (with its aws-lc-rs provider); the system's
//! roots are read with rustls-native-certs, which reqwest's verifier also uses.
//!
//! `prefer` falls back to plain after a failed handshake (a rustls or I/O error), as
//! libpq does, with a WARN the first time.
//!
//! A certificate, TLS-incompatibility or configuration error is permanent (no retry fixes it: start-up
//! stops with exit 2); a network error is transient. `describe` decides which.

use super::pgconn::{RootCert, SslMode, Tls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the TLS settings cannot be used (checked before the first connection).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error(
        "no root certificate to verify the server with: the system has none; give sslrootcert=FILE"
    )]
    NoRoots,
    #[error("cannot use the client certificate {cert} with the key {key}: {reason}")]
    ClientCert {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Rustls(String),
    #[error(transparent)]
    Secret(#[from] crate::io::secret::SecretFileError),
}

/// The connector for `tls` (used only when `tls.mode` is not `disable`).
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = match (tls.mode, &tls.root_cert) {
        (SslMode::Disable, _) => None,
        (SslMode::VerifyFull, _) => Some(Check::Full),
        (SslMode::VerifyCa, _) | (_, Some(_)) => Some(Check::ChainOnly),
        _ => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        None => Arc::new(Unverified(provider.clone())),
        Some(check) => {
            let roots = roots(tls.root_cert.as_ref().unwrap_or(&RootCert::System))?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsConfigError::Rustls(e.to_string()))?;
            match check {
                Check::Full => webpki,
                Check::ChainOnly => Arc::new(ChainOnly(webpki)),
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) if tls.mode != SslMode::Disable => {
            let certs = certs(cert, "client certificate (sslcert)")?;
            // libpq's rule: 0600, or 0640 when owned by root.
            let pem = crate::io::secret::read_bytes(
                key,
                "client key (sslkey)",
                crate::io::secret::Allow::GroupIfRootOwned,
            )?;
            let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsConfigError::Read {
                what: "client key (sslkey)",
                path: key.clone(),
                reason: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(certs, der)
                .map_err(|e| TlsConfigError::ClientCert {
                    cert: cert.clone(),
                    key: key.clone(),
                    reason: e.to_string(),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

enum Check {
    Full,
    ChainOnly,
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let read = |reason: String| TlsConfigError::Read {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn roots(root: &RootCert) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let (added, _) =
                store.add_parsable_certificates(certs(path, "root certificate (sslrootcert)")?);
            if added == 0 {
                return Err(TlsConfigError::NoCertificate {
                    what: "root certificate (sslrootcert)",
                    path: path.clone(),
                });
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(TlsConfigError::NoRoots);
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the chain to a trusted root, whatever host name the certificate names.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name only after the chain verified.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`: encrypted, the certificate not
/// verified (libpq's meaning); the handshake's signatures still are.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A failed round trip in words (the server's own message for a database error, the
/// whole cause chain otherwise: tokio-postgres alone says only "db error" or "error
/// performing TLS handshake"), and whether it is permanent: a certificate, TLS or
/// configuration error, or a refused login, which no retry fixes.
pub fn describe(e: &tokio_postgres::Error) -> (String, bool) {
    if let Some(db) = e.as_db_error() {
        // Class 28: invalid authorization (a wrong password, no pg_hba.conf entry).
        let permanent = db.code().code().starts_with("28");
        let mut s = db.message().to_string();
        if let Some(h) = db.hint() {
            s.push_str(&format!(" ({h})"));
        }
        return (s, permanent);
    }
    describe_chain(e)
}

/// `describe` for any error but a database one: its cause chain in words, and whether
/// it is permanent.
fn describe_chain(e: &(dyn std::error::Error + 'static)) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut permanent = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        let text = c.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            permanent |= tls_permanent(r);
            if let Some(h) = hint(r) {
                parts.push(h.to_string());
            }
        }
        cur = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    let first = parts.first().map(String::as_str).unwrap_or("");
    let joined = parts.join(": ");
    permanent = permanent
        || first == "invalid configuration"
        || first == "authentication error"
        || joined.contains("server does not support TLS");
    (joined, permanent)
}

/// Whether a TLS error is one no retry fixes: a certificate refused (by us or by the
/// server's alert) or a protocol the two sides do not share. Anything else (a reset or
/// an unexpected alert mid-handshake, a flaky middlebox) is tried again.
fn tls_permanent(e: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::InvalidCertRevocationList(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::InconsistentKeys(_) => true,
        rustls::Error::AlertReceived(a) => matches!(
            a,
            A::HandshakeFailure
                | A::ProtocolVersion
                | A::InsufficientSecurity
                | A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
                | A::UnknownPSKIdentity
        ),
        _ => false,
    }
}

fn hint(e: &rustls::Error) -> Option<&'static str> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Some(
            "the server's certificate is not signed by sslrootcert's CA (or, without sslrootcert, by a system root)",
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Some("the server's certificate is not for this host name (sslmode=verify-full checks it; verify-ca does not)"),
        _ => None,
    }
}

/// Connects for deadpool-postgres (with libpq's fallback to plain for `prefer`) and
/// drives the connection, logging the server's
/// NOTICE lines at DEBUG (`CREATE TABLE IF NOT EXISTS` says one at every start;
/// tokio-postgres's own driver logs them at INFO).
pub struct Connector {
    pub tls: MakeRustlsConnect,
    /// Whether the fallback to plain was logged at WARN already (once per process:
    /// the pool reconnects often).
    pub fallback_warned: Arc<std::sync::atomic::AtomicBool>,
}

/// Whether `e` is a TLS handshake that failed (a rustls error or an I/O error in its
/// causes), which `prefer` follows with a plain attempt. Not tokio-postgres's own
/// refusals of a setting, which share the words "error performing TLS handshake".
pub fn handshake_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<rustls::Error>() || c.is::<std::io::Error>() {
            return true;
        }
        cur = c.source();
    }
    false
}

type Connected = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

impl deadpool_postgres::Connect for Connector {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Connected, tokio_postgres::Error>> + Send + '_>,
    > {
        let tls = self.tls.clone();
        let config = config.clone();
        let warned = self.fallback_warned.clone();
        Box::pin(async move {
            let (client, mut conn) = match config.connect(tls.clone()).await {
                // libpq's prefer: a failed TLS handshake is tried again without TLS.
                Err(e)
                    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Prefer
                        && handshake_failed(&e) =>
                {
                    let error = describe(&e).0;
                    if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(event = "store_tls_fallback", %error, "TLS failed with sslmode=prefer: connecting without it (unencrypted), as libpq does; use sslmode=require or stronger to refuse that");
                    } else {
                        tracing::debug!(event = "store_tls_fallback", %error, "TLS failed with sslmode=prefer: connecting without it");
                    }
                    let mut plain = config.clone();
                    plain.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    plain.connect(tls).await?
                }
                r => r?,
            };
            let task = tokio::spawn(async move {
                loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(tokio_postgres::AsyncMessage::Notice(n))) => {
                            tracing::debug!(
                                event = "store_notice",
                                severity = n.severity(),
                                "{}",
                                n.message()
                            );
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(event = "store_connection_closed", error = %describe(&e).0, "a store connection failed");
                            break;
                        }
                        None => break,
                    }
                }
            });
            Ok((client, task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_handshake_falls_back_to_plain() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(handshake_failed(&tls));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(handshake_failed(&reset));
        // tokio-postgres's refusal of a setting: a bare message, same outer words.
        let refusal: Box<dyn std::error::Error + Send + Sync> =
            "weak sslmode \"prefer\" may not be used with sslnegotiation=direct".into();
        assert!(!handshake_failed(refusal.as_ref()));
    }

    #[test]
    fn only_certificate_and_incompatibility_tls_errors_are_permanent() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        for e in [
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion),
            rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOfferedOrEnabled),
        ] {
            let (text, permanent) = describe_chain(&io(e.clone()));
            assert!(permanent, "{text}");
        }
        for e in [
            rustls::Error::AlertReceived(rustls::AlertDescription::InternalError),
            rustls::Error::AlertReceived(rustls::AlertDescription::DecodeError),
            rustls::Error::DecryptError,
            rustls::Error::HandshakeNotComplete,
        ] {
            let (text, permanent) = describe_chain(&io(e.clone()));
            assert!(!permanent, "{text}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!describe_chain(&reset).1);
    }
}
