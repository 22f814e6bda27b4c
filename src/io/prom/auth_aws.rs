//! Where SigV4 credentials come from: the usual AWS chain, in the SDKs' order.
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared files (`~/.aws/credentials`, `~/.aws/config`, or
//!    `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`), profile `AWS_PROFILE` (else
//!    `default`): static keys, or `role_arn` + `web_identity_token_file`;
//! 3. web identity (EKS service accounts): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`,
//!    exchanged with STS `AssumeRoleWithWebIdentity` for temporary credentials, which
//!    are fetched again before they expire (the token file is re-read each time: the
//!    kubelet rotates it). `AWS_ENDPOINT_URL_STS` (or `AWS_ENDPOINT_URL`) overrides the
//!    STS endpoint, as in the SDKs.
//!
//! Why our own chain and not `aws-config`: that crate brings the generated STS, SSO and
//! SSO-OIDC SDKs (about 215 crates); these three sources are what a watch in a pipeline
//! or a pod needs. The chain is chosen once at start (no source: exit 2, saying what
//! to set); only web identity does I/O later, on the runtime, never blocking it.

use super::sigv4::AwsCredentials;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// Fetch temporary credentials again when they have less than this left.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// How long an STS call may take.
const STS_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no credentials were found or fetched. Never carries a key, token or secret.
#[derive(Debug, thiserror::Error)]
pub enum AwsAuthError {
    #[error("no AWS credentials for --sigv4-region: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile of ~/.aws/credentials or ~/.aws/config), or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN")]
    None,
    #[error("AWS profile `{0}` is not in the shared credentials or config file")]
    NoProfile(String),
    #[error("AWS profile `{profile}` has no usable credentials: {why}")]
    Profile { profile: String, why: String },
    #[error("{0} is set but {1} is not")]
    Half(&'static str, &'static str),
    #[error("cannot read the web identity token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("STS AssumeRoleWithWebIdentity failed: {0}")]
    Sts(String),
}

/// The source the chain settled on.
pub enum AwsCredentialSource {
    /// Long-lived or fixed keys (environment, profile).
    Static(AwsCredentials),
    /// Temporary credentials from STS for a web identity token, cached until near expiry.
    WebIdentity(WebIdentity),
}

impl std::fmt::Debug for AwsCredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AwsCredentialSource::Static(c) => f.debug_tuple("Static").field(c).finish(),
            AwsCredentialSource::WebIdentity(w) => f
                .debug_struct("WebIdentity")
                .field("role_arn", &w.role_arn)
                .field("token_file", &w.token_file)
                .finish(),
        }
    }
}

pub struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: String,
    endpoint: String,
    http: reqwest::Client,
    cache: Mutex<Option<AwsCredentials>>,
}

/// The process environment, as the chain reads it (a function, so tests pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl AwsCredentialSource {
    /// Picks the first source of the chain that is configured, reading the shared
    /// files if it gets to them. `region` names the default STS endpoint.
    pub fn from_env(env: Env<'_>, region: &str) -> Result<Self, AwsAuthError> {
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                return Ok(AwsCredentialSource::Static(AwsCredentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: var("AWS_SESSION_TOKEN"),
                    expires: None,
                }))
            }
            (Some(_), None) => {
                return Err(AwsAuthError::Half(
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ))
            }
            (None, Some(_)) => {
                return Err(AwsAuthError::Half(
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_ACCESS_KEY_ID",
                ))
            }
            (None, None) => {}
        }
        let endpoint = var("AWS_ENDPOINT_URL_STS")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        let session_name = var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "rollwatch".into());
        let explicit = var("AWS_PROFILE");
        let profile_name = explicit.clone().unwrap_or_else(|| "default".into());
        let home = var("HOME").map(PathBuf::from);
        let file = |var_name: &str, rel: &str| {
            var(var_name)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(rel)))
        };
        let credentials = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
        let config = file("AWS_CONFIG_FILE", ".aws/config");
        let profile = load_profile(credentials.as_deref(), config.as_deref(), &profile_name);
        match profile {
            Some(p) => {
                let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                if let (Some(id), Some(secret)) =
                    (get("aws_access_key_id"), get("aws_secret_access_key"))
                {
                    return Ok(AwsCredentialSource::Static(AwsCredentials {
                        access_key_id: id,
                        secret_access_key: secret,
                        session_token: get("aws_session_token"),
                        expires: None,
                    }));
                }
                if let (Some(role), Some(token)) = (get("role_arn"), get("web_identity_token_file"))
                {
                    return Ok(AwsCredentialSource::WebIdentity(WebIdentity::new(
                        token.into(),
                        role,
                        get("role_session_name").unwrap_or(session_name),
                        endpoint,
                    )));
                }
                if explicit.is_some() {
                    return Err(AwsAuthError::Profile {
                        profile: profile_name,
                        why: "it has neither aws_access_key_id and aws_secret_access_key nor role_arn and web_identity_token_file (rollwatch does not run SSO or credential_process)".into(),
                    });
                }
            }
            None if explicit.is_some() => return Err(AwsAuthError::NoProfile(profile_name)),
            None => {}
        }
        match (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN")) {
            (Some(token), Some(role)) => Ok(AwsCredentialSource::WebIdentity(WebIdentity::new(
                token.into(),
                role,
                session_name,
                endpoint,
            ))),
            (Some(_), None) => Err(AwsAuthError::Half(
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN",
            )),
            (None, Some(_)) => Err(AwsAuthError::Half(
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            )),
            (None, None) => Err(AwsAuthError::None),
        }
    }

    /// The credentials to sign with now.
    pub async fn credentials(&self) -> Result<AwsCredentials, AwsAuthError> {
        match self {
            AwsCredentialSource::Static(c) => Ok(c.clone()),
            AwsCredentialSource::WebIdentity(w) => w.credentials().await,
        }
    }

    /// Forgets cached temporary credentials (after a 403), so the next request
    /// fetches new ones. Returns whether there was anything to forget.
    pub async fn invalidate(&self) -> bool {
        match self {
            AwsCredentialSource::Static(_) => false,
            AwsCredentialSource::WebIdentity(w) => w.cache.lock().await.take().is_some(),
        }
    }
}

impl WebIdentity {
    fn new(token_file: PathBuf, role_arn: String, session_name: String, endpoint: String) -> Self {
        WebIdentity {
            token_file,
            role_arn,
            session_name,
            endpoint,
            http: reqwest::Client::builder()
                .timeout(STS_TIMEOUT)
                .user_agent(concat!("rollwatch/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            cache: Mutex::new(None),
        }
    }

    async fn credentials(&self) -> Result<AwsCredentials, AwsAuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if !needs_refresh(c, SystemTime::now()) {
                return Ok(c.clone());
            }
        }
        match self.assume_role().await {
            Ok(c) => {
                *cache = Some(c.clone());
                Ok(c)
            }
            // Still valid: keep signing with them, and try again at the next request.
            Err(_)
                if cache
                    .as_ref()
                    .is_some_and(|c| !expired(c, SystemTime::now())) =>
            {
                Ok(cache.clone().expect("checked"))
            }
            Err(e) => Err(e),
        }
    }

    async fn assume_role(&self) -> Result<AwsCredentials, AwsAuthError> {
        let path = self.token_file.clone();
        let token = tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            .map_err(|source| AwsAuthError::TokenFile {
                path: self.token_file.clone(),
                source,
            })?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.role_arn)
            .append_pair("RoleSessionName", &self.session_name)
            .append_pair("WebIdentityToken", token.trim())
            .finish();
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/xml")
            .body(body)
            .send()
            .await
            // Without the URL (it may carry user info) and with no body quoted.
            .map_err(|e| AwsAuthError::Sts(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| AwsAuthError::Sts(e.without_url().to_string()))?;
        if status != 200 {
            // Only the error code: the message may quote the token's claims.
            let code = xml_tag(&text, "Code").unwrap_or_default();
            return Err(AwsAuthError::Sts(format!("HTTP {status} {code}")));
        }
        parse_sts(&text).ok_or_else(|| {
            AwsAuthError::Sts("the answer holds no Credentials (AccessKeyId, SecretAccessKey, SessionToken, Expiration)".into())
        })
    }
}

/// Whether `c` should be fetched again at `now` (less than `REFRESH_BEFORE` left).
pub fn needs_refresh(c: &AwsCredentials, now: SystemTime) -> bool {
    c.expires.is_some_and(|e| {
        e.duration_since(now)
            .map_or(true, |left| left < REFRESH_BEFORE)
    })
}

fn expired(c: &AwsCredentials, now: SystemTime) -> bool {
    c.expires.is_some_and(|e| e <= now)
}

/// The credentials of an `AssumeRoleWithWebIdentityResponse`.
pub fn parse_sts(xml: &str) -> Option<AwsCredentials> {
    let creds = xml_tag(xml, "Credentials")?;
    let expires: jiff::Timestamp = xml_tag(&creds, "Expiration")?.parse().ok()?;
    Some(AwsCredentials {
        access_key_id: xml_tag(&creds, "AccessKeyId")?,
        secret_access_key: xml_tag(&creds, "SecretAccessKey")?,
        session_token: Some(xml_tag(&creds, "SessionToken")?),
        expires: Some(SystemTime::from(expires)),
    })
}

/// The text of the first `<tag>…</tag>` in `xml`, entities decoded. STS answers are
/// flat and small; this is all of XML they need.
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The keys of `profile`: the credentials file's `[name]` section over the config
/// file's `[profile name]` (`[default]` for the default profile). None when neither
/// file has it.
fn load_profile(
    credentials: Option<&Path>,
    config: Option<&Path>,
    profile: &str,
) -> Option<Vec<(String, String)>> {
    let read = |p: Option<&Path>| p.and_then(|p| std::fs::read_to_string(p).ok());
    let mut keys = read(credentials).and_then(|t| ini_section(&t, profile));
    let config_name = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    if let Some(more) = read(config).and_then(|t| ini_section(&t, &config_name)) {
        let keys = keys.get_or_insert_with(Vec::new);
        for (k, v) in more {
            if !keys.iter().any(|(n, _)| *n == k) {
                keys.push((k, v));
            }
        }
    }
    keys
}

/// The `key = value` lines of section `[name]` of an AWS shared file.
pub fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut found = None;
    let mut current = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = section.trim() == name;
            if current {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if current {
            if let Some((k, v)) = line.split_once('=') {
                found
                    .get_or_insert_with(Vec::new)
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    found
}

#[cfg(test)]
#[path = "auth_aws_tests.rs"]
mod tests;
