//! The client of `rollwatch serve`'s API that `launch` and `ctl` share: the agent's
//! URL, its bearer token (read as a secret file), and what an answer means (a 5xx or a
//! network error is worth retrying; a 4xx is the request's fault).

use crate::core::exit;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Why a request to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Token(#[from] crate::io::secret::SecretFileError),
    #[error("invalid --server URL {0:?}")]
    Server(String),
    #[error("the agent refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot reach the agent: {0}")]
    Unreachable(String),
}

impl AgentError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Unreachable(_) => exit::INCONCLUSIVE,
            _ => exit::USAGE,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl Client {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends and decodes; Err(Unreachable) for network errors and 5xx (worth retrying).
    pub async fn send(&self, r: reqwest::RequestBuilder) -> Result<(u16, Value), AgentError> {
        let resp = r
            .send()
            .await
            .map_err(|e| AgentError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 500 {
            return Err(AgentError::Unreachable(format!(
                "HTTP {status}: {}",
                body["error"].as_str().unwrap_or("")
            )));
        }
        if status >= 400 {
            return Err(AgentError::Refused {
                status,
                message: body["error"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok((status, body))
    }
}

impl Client {
    /// A client of the agent at `server` (http or https), with the token in
    /// `token_file` if given.
    pub fn connect(server: &str, token_file: Option<&Path>) -> Result<Client, AgentError> {
        let token = match token_file {
            Some(p) => Some(
                crate::io::secret::read_text(p, "token file")?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let base = reqwest::Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| AgentError::Server(server.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("rollwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AgentError::Unreachable(e.to_string()))?;
        Ok(Client { http, base, token })
    }
}
