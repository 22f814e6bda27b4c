//! How to reach Prometheus, as the operator gave it: a URL that overrides the rule
//! file's, and the credentials, headers and CA to use.
//!
//! The commands fill it from their `--prometheus` flag group and the agent keeps one
//! in its configuration; both build their clients from it here, so the agent needs no
//! command's flags to reach Prometheus.

use super::{PromClient, PromConfig, SigV4Config};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Prometheus base URL; when None, the rule file's `watch.prometheus`.
    pub prometheus: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    /// argv of a command printing a bearer token (`--bearer-token-command`).
    pub bearer_token_command: Option<Vec<String>>,
    pub basic_auth_user: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    /// `Name: value` request headers.
    pub headers: Vec<String>,
    pub ca_file: Option<PathBuf>,
    /// `--sigv4-region` / `--sigv4-service`.
    pub sigv4: Option<SigV4Config>,
}

impl Connection {
    /// Builds the Prometheus client, falling back to the file's URL.
    pub fn client(&self, file_url: Option<&str>, timeout: Duration) -> Result<PromClient, String> {
        let url = self
            .prometheus
            .clone()
            .or_else(|| file_url.map(str::to_string))
            .ok_or("no Prometheus URL: pass --prometheus URL (or set ROLLWATCH_PROMETHEUS_URL, or `watch.prometheus` in the rule file)")?;
        PromClient::new(&PromConfig {
            url,
            bearer_token_file: self.bearer_token_file.clone(),
            bearer_token_command: self.bearer_token_command.clone(),
            basic_auth_user: self.basic_auth_user.clone(),
            basic_auth_password_file: self.basic_auth_password_file.clone(),
            headers: self.headers.clone(),
            ca_file: self.ca_file.clone(),
            sigv4: self.sigv4.clone(),
            timeout,
        })
        .map_err(|e| e.to_string())
    }
}
