//! AWS Signature Version 4 for Amazon Managed Service for Prometheus (`--sigv4-region`).
//!
//! Why a maintained crate (`aws-sigv4`) signs, and not code of our own: canonical
//! requests have many corners (header value trimming, query ordering, URI encoding) and
//! a signature that is wrong on one of them is a 403 at 3 a.m. What lives here is the
//! one path every request to Prometheus takes to be signed (`sign`): the method, URL,
//! headers and the exact body bytes that are sent, so the payload hash always matches
//! the body. The AWS SigV4 test-suite vectors (tests/fixtures/sigv4) are checked against
//! this function.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningParams, SigningSettings,
};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The AWS credentials a request is signed with. `Debug` never shows the secret or
/// the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// When temporary credentials stop working (None: long-lived keys).
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires", &self.expires)
            .finish()
    }
}

/// Where and for what a request is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub region: String,
    /// The signing name: `aps` for Amazon Managed Service for Prometheus.
    pub service: String,
    /// Add `x-amz-content-sha256` (the payload hash is in the canonical request either
    /// way). Amazon Managed Prometheus does not need it; the test vectors use both.
    pub payload_header: bool,
}

/// Why a request could not be signed. Never carries a credential.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request (SigV4): {0}")]
pub struct SignError(String);

impl SignError {
    pub fn new(why: String) -> SignError {
        SignError(why)
    }
}

/// The headers to add to the request `method url` with `headers` (the ones sent that
/// are signed too; `host` is taken from the URL when absent) and body `body`:
/// `authorization`, `x-amz-date`, and `x-amz-security-token` /
/// `x-amz-content-sha256` when they apply. `url` is as sent (already percent-encoded).
pub fn sign(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    creds: &AwsCredentials,
    scope: &Scope,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    let identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        creds.expires,
        "rollwatch",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = if scope.payload_header {
        PayloadChecksumKind::XAmzSha256
    } else {
        PayloadChecksumKind::NoHeader
    };
    let params: SigningParams = v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name(&scope.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
