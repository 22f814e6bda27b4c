//! The real metrics source: Prometheus's HTTP API (also Thanos, Mimir, VictoriaMetrics).
//!
//! Queries are POSTed as forms so long queries fit; every request is bounded by the
//! query timeout. Fixed credentials (basic auth password, header values) are read once
//! at start; a bearer token is re-read as it rotates and a SigV4 signature made per
//! request (`auth`). None is ever logged; the URL is shown without any user info.

use super::auth::Auth;
use super::auth_aws::AwsCredentialSource;
use super::auth_token::{CommandToken, FileToken, TokenSource, COMMAND_TIMEOUT};
use super::decode::{decode, decode_range};
use super::sigv4::Scope;
use super::skew::ClockSkew;
use super::{HistorySource, MetricsSource, QueryError, QueryResult, RangeResult};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Responses larger than this are refused rather than buffered.
const MAX_BODY: usize = 64 << 20;

/// How to reach Prometheus.
#[derive(Debug, Clone, Default)]
pub struct PromConfig {
    /// Base URL, with any path prefix (`https://mimir.internal/prometheus`).
    pub url: String,
    /// Re-read when it changes.
    pub bearer_token_file: Option<PathBuf>,
    /// argv of a command printing a bearer token, run again before it expires.
    pub bearer_token_command: Option<Vec<String>>,
    pub basic_auth_user: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    /// Extra headers, `Name: value` (e.g. `X-Scope-OrgID: team-a`).
    pub headers: Vec<String>,
    /// A PEM bundle that replaces the system roots for this server.
    pub ca_file: Option<PathBuf>,
    /// Sign every request with AWS SigV4 (Amazon Managed Service for Prometheus).
    pub sigv4: Option<SigV4Config>,
    pub timeout: Duration,
}

/// `--sigv4-region` and `--sigv4-service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Config {
    pub region: String,
    /// `aps` for Amazon Managed Service for Prometheus.
    pub service: String,
}

/// Why the client could not be built (exit code 2: bad input).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct PromClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    shown: String,
    timeout: Duration,
    /// Credentials applied per request (rotating tokens, SigV4).
    auth: Arc<Auth>,
}

/// The form content type queries are POSTed with.
const FORM: &str = "application/x-www-form-urlencoded";

fn read_secret(what: &'static str, path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| ConfigError::Read {
            what,
            path: path.clone(),
            source,
        })
}

impl PromClient {
    pub fn new(cfg: &PromConfig) -> Result<Self, ConfigError> {
        let url_err = |reason: String| ConfigError::Url {
            url: redact(&cfg.url),
            reason,
        };
        let mut base = reqwest::Url::parse(&cfg.url).map_err(|e| url_err(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(url_err("the scheme must be http or https".into()));
        }
        let mut headers = HeaderMap::new();
        if !base.username().is_empty() || base.password().is_some() {
            // Credentials in the URL become basic auth and are removed from the URL.
            let user = base.username().to_string();
            let pass = base.password().map(str::to_string);
            headers.insert(AUTHORIZATION, basic(&user, pass.as_deref())?);
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        let mut auth = Auth::Fixed;
        if let Some(path) = &cfg.bearer_token_file {
            let token =
                FileToken::open(path.clone()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            auth = Auth::Token(TokenSource::File(token));
            // Applied per request, so it replaces what the URL's user info set.
            headers.remove(AUTHORIZATION);
        }
        if let Some(argv) = &cfg.bearer_token_command {
            if argv.is_empty() {
                return Err(ConfigError::Invalid(
                    "--bearer-token-command needs a command".into(),
                ));
            }
            auth = Auth::Token(TokenSource::Command(CommandToken::new(
                argv.clone(),
                COMMAND_TIMEOUT,
            )));
            headers.remove(AUTHORIZATION);
        }
        if let Some(user) = &cfg.basic_auth_user {
            let pass = match &cfg.basic_auth_password_file {
                Some(p) => Some(read_secret("basic auth password file", p)?),
                None => None,
            };
            headers.insert(AUTHORIZATION, basic(user, pass.as_deref())?);
            // Basic auth is applied after the bearer token, and wins (as documented).
            auth = Auth::Fixed;
        }
        for h in &cfg.headers {
            let (name, value) = h.split_once(':').ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "header {:?} is not `Name: value`",
                    h.split(':').next().unwrap_or("")
                ))
            })?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                ConfigError::Invalid(format!("invalid header name {:?}", name.trim()))
            })?;
            let mut value = HeaderValue::from_str(value.trim())
                .map_err(|_| ConfigError::Invalid(format!("invalid value for header {name}")))?;
            value.set_sensitive(true);
            if name == AUTHORIZATION {
                auth = Auth::Fixed;
            }
            headers.insert(name, value);
        }
        if let Some(sig) = &cfg.sigv4 {
            if headers.contains_key(AUTHORIZATION) || !matches!(auth, Auth::Fixed) {
                return Err(ConfigError::Invalid(
                    "--sigv4-region signs every request: it cannot be combined with a bearer token, basic auth, user info in the URL or an Authorization header".into(),
                ));
            }
            let source = AwsCredentialSource::from_env(&|k| std::env::var(k).ok(), &sig.region)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            auth = Auth::SigV4 {
                source,
                scope: Scope {
                    region: sig.region.clone(),
                    service: sig.service.clone(),
                    payload_header: false,
                },
            };
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("rollwatch/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
                what: "CA file",
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError::Invalid(format!("CA file {}: {e}", path.display())))?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let shown = base.to_string();
        let mut endpoint = base.clone();
        {
            let path = base.path().trim_end_matches('/');
            endpoint.set_path(&format!("{path}/api/v1/query"));
        }
        Ok(PromClient {
            http,
            endpoint,
            shown,
            timeout: cfg.timeout,
            auth: Arc::new(auth),
        })
    }

    /// The base URL, safe to log.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }
}

/// The link to a query in Prometheus's graph UI, from a base URL (with any prefix).
pub fn graph_link(base: &str, query: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut u) => {
            let path = u.path().trim_end_matches('/').to_string();
            u.set_path(&format!("{path}/graph"));
            u.query_pairs_mut()
                .append_pair("g0.expr", query)
                .append_pair("g0.tab", "0");
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

fn basic(user: &str, pass: Option<&str>) -> Result<HeaderValue, ConfigError> {
    use base64::Engine as _;
    let raw = format!("{user}:{}", pass.unwrap_or(""));
    let mut v = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    ))
    .map_err(|_| ConfigError::Invalid("invalid basic auth credentials".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// A URL with any user info removed, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

impl PromClient {
    /// POSTs a form to an API path (relative to `/api/v1/`) and returns status and body,
    /// bounded by the query timeout and the body size limit.
    async fn post(&self, api: &str, form: &[(&str, String)]) -> Result<(u16, Vec<u8>), QueryError> {
        self.request(api, Some(form)).await
    }

    /// `post`, or a GET without a form.
    async fn request(
        &self,
        api: &str,
        form: Option<&[(&str, String)]>,
    ) -> Result<(u16, Vec<u8>), QueryError> {
        let mut url = self.endpoint.clone();
        let path = url.path().trim_end_matches("query").to_string();
        url.set_path(&format!("{path}{api}"));
        // The exact bytes sent: a SigV4 signature covers their hash.
        let body = form.map(|form| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                .finish()
        });
        // Credentials are had outside the query timeout: a token command or an STS call
        // has its own, and a poll must not fail because a slow one ate the query's.
        let added = self.authorise(&url, body.as_deref()).await?;
        let (status, bytes) = self.exchange(&url, body.as_deref(), added).await?;
        if matches!(status, 401 | 403) && self.auth.denied(status).await {
            // The credentials were renewed (a rotated token, expired STS keys): once more.
            let added = self.authorise(&url, body.as_deref()).await?;
            return self.exchange(&url, body.as_deref(), added).await;
        }
        Ok((status, bytes))
    }

    /// One request and its answer's status and body, bounded by the query timeout and
    /// the body size limit.
    async fn exchange(
        &self,
        url: &reqwest::Url,
        body: Option<&str>,
        added: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<(u16, Vec<u8>), QueryError> {
        let send = async {
            let mut resp = self.send_once(url, body, added).await?;
            let status = resp.status().as_u16();
            if resp.content_length().is_some_and(|n| n as usize > MAX_BODY) {
                return Err(QueryError::Decode(format!(
                    "response larger than {MAX_BODY} bytes"
                )));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, self.timeout))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(QueryError::Decode(format!(
                        "response larger than {MAX_BODY} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Timeout(self.timeout)),
        }
    }
}

impl PromClient {
    /// The per-request credential headers for a POST of the form `body` (or a GET).
    async fn authorise(
        &self,
        url: &reqwest::Url,
        body: Option<&str>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, QueryError> {
        let (method, content_type) = match body {
            Some(_) => ("POST", Some(FORM)),
            None => ("GET", None),
        };
        self.auth
            .headers(
                method,
                url.as_str(),
                content_type,
                body.unwrap_or("").as_bytes(),
            )
            .await
            .map_err(|e| QueryError::Other(e.to_string()))
    }

    /// Sends one request (a POST of the form `body`, or a GET) with `added` headers.
    async fn send_once(
        &self,
        url: &reqwest::Url,
        body: Option<&str>,
        added: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<reqwest::Response, QueryError> {
        let mut req = match body {
            Some(body) => self
                .http
                .post(url.clone())
                .header(CONTENT_TYPE, FORM)
                .body(body.to_string()),
            None => self.http.get(url.clone()),
        };
        for (name, value) in added {
            req = req.header(name, value);
        }
        req.send().await.map_err(|e| classify(e, self.timeout))
    }
}

impl PromClient {
    /// Measures Prometheus's clock against this machine's: `time()` evaluated at
    /// Prometheus's own now (no `time` parameter), timed with this machine's clock.
    pub async fn clock_skew(&self) -> Result<ClockSkew, QueryError> {
        let form = [
            ("query", "time()".to_string()),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
            nocache(),
        ];
        let wall_ms = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        };
        let sent = wall_ms();
        let (status, body) = self.post("query", &form).await?;
        let received = wall_ms();
        let result = decode(status, &body)?;
        let server = match result.samples.as_slice() {
            [s] if s.value.is_finite() => (s.value * 1000.0).round() as i64,
            _ => {
                return Err(QueryError::Decode(
                    "`time()` did not return one finite scalar".into(),
                ))
            }
        };
        Ok(ClockSkew::measure(sent, received, server))
    }
}

impl PromClient {
    /// Prometheus's global `scrape_interval`, from its configuration
    /// (`/api/v1/status/config`): the resolution at which a breach is read in the data
    /// when the rule file does not set `watch.step`. None when the server does not say
    /// (VictoriaMetrics, a proxy that hides it, an error).
    pub async fn scrape_interval(&self) -> Option<Duration> {
        let (status, body) = self.request("status/config", None).await.ok()?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        global_scrape_interval(v.get("data")?.get("yaml")?.as_str()?)
    }
}

/// `global.scrape_interval` in a Prometheus configuration as Prometheus prints it.
pub fn global_scrape_interval(yaml: &str) -> Option<Duration> {
    let mut in_global = false;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_global = line.trim_end() == "global:";
            continue;
        }
        if in_global {
            if let Some(v) = line.strip_prefix("  scrape_interval:") {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                return humantime::parse_duration(v).ok().filter(|d| !d.is_zero());
            }
        }
    }
    None
}

/// Sent with every query. VictoriaMetrics moves a query time within
/// `-search.latencyOffset` (30s by default) of its now back by that offset, and serves
/// range queries from a cache, unless `nocache=1`: without it every poll would judge
/// the moment 30s ago and `time()` would read 30s behind. Prometheus (and Thanos,
/// Mimir) ignore the parameter.
fn nocache() -> (&'static str, String) {
    ("nocache", "1".to_string())
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

impl MetricsSource for PromClient {
    async fn query(&self, query: &str, at: SystemTime) -> Result<QueryResult, QueryError> {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let form = [
            ("query", query.to_string()),
            ("time", secs(ms)),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
            nocache(),
        ];
        let (status, body) = self.post("query", &form).await?;
        decode(status, &body)
    }
}

impl HistorySource for PromClient {
    async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<RangeResult, QueryError> {
        let form = [
            ("query", query.to_string()),
            ("start", secs(start_ms)),
            ("end", secs(end_ms)),
            ("step", secs(step_ms)),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
            nocache(),
        ];
        let (status, body) = self.post("query_range", &form).await?;
        decode_range(status, &body)
    }
}

fn classify(e: reqwest::Error, timeout: Duration) -> QueryError {
    if e.is_timeout() {
        return QueryError::Timeout(timeout);
    }
    let connect = e.is_connect();
    // The URL is dropped from the message: it is shown once, redacted, at start.
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if connect {
        QueryError::Connect(msg)
    } else {
        QueryError::Other(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_scrape_interval_is_read_from_the_printed_configuration() {
        let yaml = "global:\n  scrape_interval: 1m\n  scrape_timeout: 10s\n  evaluation_interval: 1m\nscrape_configs:\n- job_name: x\n  scrape_interval: 5s\n";
        assert_eq!(global_scrape_interval(yaml), Some(Duration::from_secs(60)));
        assert_eq!(
            global_scrape_interval("scrape_configs:\n- job_name: x\n  scrape_interval: 5s\n"),
            None
        );
        assert_eq!(
            global_scrape_interval("global:\n  scrape_interval: 0s\n"),
            None
        );
        assert_eq!(
            global_scrape_interval("global:\n  scrape_interval: soon\n"),
            None
        );
    }

    #[test]
    fn redact_removes_credentials() {
        assert_eq!(
            redact("https://u:secret@prom:9090/x"),
            "https://prom:9090/x"
        );
        assert!(!redact("https://u:secret@prom").contains("secret"));
    }

    #[test]
    fn endpoint_keeps_path_prefix_and_strips_credentials() {
        let c = PromClient::new(&PromConfig {
            url: "https://user:pw@mimir.internal/prometheus/".into(),
            timeout: Duration::from_secs(1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.endpoint.as_str(),
            "https://mimir.internal/prometheus/api/v1/query"
        );
        assert!(!c.shown_url().contains("pw"));
        assert!(graph_link(c.shown_url(), "up")
            .starts_with("https://mimir.internal/prometheus/graph?g0.expr=up"));
    }
}
