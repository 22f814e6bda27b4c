//! The credentials that change while a watch runs, applied to each request: a bearer
//! token re-read from its file or re-fetched from its command (`auth_token`), or a SigV4
//! signature with credentials from the AWS chain (`auth_aws`, `sigv4`).
//!
//! Why per request and not in the client's default headers (as basic auth and
//! `--header` are): these change under a running watch (rotated tokens, expiring STS
//! credentials), and a signature covers the exact method, URL, time and body of one
//! request. `PromClient::request` is the one place every face (watch, replay, gate,
//! check, the agent) sends through, and it calls `headers` here for each request and
//! `denied` on a 401/403, retrying once if that renewed anything.

use super::auth_aws::{AwsAuthError, AwsCredentialSource};
use super::auth_token::{TokenError, TokenSource};
use super::sigv4::{self, Scope, SignError};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use std::time::SystemTime;

#[derive(Debug, Default)]
pub enum Auth {
    /// Nothing beyond the client's fixed headers.
    #[default]
    Fixed,
    /// `Authorization: Bearer …` from a file or a command, renewed as it rotates.
    Token(TokenSource),
    /// AWS SigV4 (`--sigv4-region`).
    SigV4 {
        source: AwsCredentialSource,
        scope: Scope,
    },
}

/// Why a request could not be authorised. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Aws(#[from] AwsAuthError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Auth {
    /// The headers to add to the request `method url` carrying `body` with
    /// `content_type` (sent and signed as given).
    pub async fn headers(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, AuthError> {
        match self {
            Auth::Fixed => Ok(vec![]),
            Auth::Token(t) => Ok(vec![(AUTHORIZATION, t.header().await?)]),
            Auth::SigV4 { source, scope } => {
                let creds = source.credentials().await?;
                let signed: Vec<(&str, &str)> = content_type
                    .map(|c| ("content-type", c))
                    .into_iter()
                    .collect();
                let added =
                    sigv4::sign(method, url, &signed, body, &creds, scope, SystemTime::now())?;
                added
                    .into_iter()
                    .map(|(n, v)| {
                        let name = HeaderName::from_bytes(n.as_bytes())
                            .map_err(|e| SignError::new(e.to_string()))?;
                        let mut value = HeaderValue::from_str(&v)
                            .map_err(|_| SignError::new(format!("invalid value for {name}")))?;
                        value.set_sensitive(true);
                        Ok((name, value))
                    })
                    .collect()
            }
        }
    }

    /// After Prometheus (or the proxy before it) answered `status`: whether renewing
    /// the credentials may help, having renewed them (a 401 for tokens, 401/403 for
    /// temporary AWS credentials).
    pub async fn denied(&self, status: u16) -> bool {
        match self {
            Auth::Fixed => false,
            Auth::Token(t) if status == 401 => {
                t.invalidate().await;
                true
            }
            Auth::Token(_) => false,
            Auth::SigV4 { source, .. } if matches!(status, 401 | 403) => source.invalidate().await,
            Auth::SigV4 { .. } => false,
        }
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
