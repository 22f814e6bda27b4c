//! `rollwatch launch`: the pipeline's client for `rollwatch serve`.
//!
//! It hands the agent a watch and either returns at once (the pipeline moves on) or,
//! with `--wait`, follows the watch and exits with the code `rollwatch watch` would
//! have, so a pipeline can switch between the two without changing how it branches.
//!
//! Every launch carries an id (generated if not given), so retrying the POST after a
//! network error can never start a second watch; while waiting, the agent being
//! briefly unreachable (it restarts, it is redeployed) is retried, not fatal.

use crate::cmd::args::parse_set;
use crate::core::exit;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    /// The agent's base URL, e.g. http://rollwatch.internal:7093
    #[arg(long, value_name = "URL", env = "ROLLWATCH_SERVER")]
    pub server: String,
    /// File holding the agent's bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The rule file's name in the agent's rules directory.
    #[arg(long, value_name = "NAME")]
    pub rules: String,
    /// Set a variable (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,
    /// Override the file's watch.duration (e.g. 30m).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// The watch's id; a repeated launch with the same id returns the existing watch.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Follow the watch and exit with its code (as `rollwatch watch` would).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up (exit 4) after the agent has been unreachable this long.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::core::rules::parse_duration)]
    pub unreachable_timeout: Duration,
}

/// Why a launch failed.
#[derive(Debug, thiserror::Error)]
enum LaunchError {
    #[error(transparent)]
    Token(#[from] crate::io::secret::SecretFileError),
    #[error("invalid --server URL {0:?}")]
    Server(String),
    #[error("the agent refused the watch (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("cannot reach the agent: {0}")]
    Unreachable(String),
}

impl LaunchError {
    fn exit_code(&self) -> u8 {
        match self {
            LaunchError::Unreachable(_) => exit::INCONCLUSIVE,
            _ => exit::USAGE,
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
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
    async fn send(&self, r: reqwest::RequestBuilder) -> Result<(u16, Value), LaunchError> {
        let resp = r
            .send()
            .await
            .map_err(|e| LaunchError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 500 {
            return Err(LaunchError::Unreachable(format!(
                "HTTP {status}: {}",
                body["error"].as_str().unwrap_or("")
            )));
        }
        if status >= 400 {
            return Err(LaunchError::Refused {
                status,
                message: body["error"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok((status, body))
    }
}

/// `rollwatch launch`.
pub async fn run(args: LaunchArgs) -> u8 {
    match launch(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn launch(args: LaunchArgs) -> Result<u8, LaunchError> {
    let token = match &args.token_file {
        Some(p) => Some(
            crate::io::secret::read_text(p, "token file")?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let base = reqwest::Url::parse(&args.server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| LaunchError::Server(args.server.clone()))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("rollwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LaunchError::Unreachable(e.to_string()))?;
    let client = Client { http, base, token };
    let id = args.id.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-{}",
            args.rules,
            crate::core::events::now_ms(),
            std::process::id()
        )
    });
    let vars: serde_json::Map<String, Value> = args
        .sets
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut body = json!({ "rules": args.rules, "vars": vars, "id": id });
    if let Some(d) = &args.duration {
        body["duration"] = json!(d);
    }
    // The id makes the POST idempotent, so it is safe to retry.
    let mut attempt = 0;
    let (status, watch) = loop {
        match client
            .send(
                client
                    .request(reqwest::Method::POST, "/api/v1/watches")
                    .json(&body),
            )
            .await
        {
            Err(LaunchError::Unreachable(e)) if attempt < 4 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "cannot reach the agent; retrying");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            other => break other?,
        }
    };
    println!("{watch}");
    tracing::info!(event = "launched", id = %id, existing = status == 200, "watch handed to the agent");
    for w in watch["warnings"].as_array().into_iter().flatten() {
        tracing::warn!(event = "watch_warning", id = %id, "{}", w.as_str().unwrap_or_default());
    }
    if !args.wait {
        return Ok(exit::HEALTHY);
    }
    let mut unreachable_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match client
            .send(client.request(reqwest::Method::GET, &format!("/api/v1/watches/{id}")))
            .await
        {
            Ok((_, w)) => {
                unreachable_since = None;
                if w["state"] != "running" {
                    let code = w["exit_code"]
                        .as_u64()
                        .map_or(exit::INCONCLUSIVE, |c| c.min(255) as u8);
                    tracing::info!(
                        event = "watch_finished",
                        outcome = %w["outcome"].as_str().unwrap_or(""),
                        exit_code = code,
                        "{}",
                        w["detail"].as_str().unwrap_or("")
                    );
                    println!("{w}");
                    return Ok(code);
                }
            }
            Err(LaunchError::Unreachable(e)) => {
                let since = *unreachable_since.get_or_insert_with(tokio::time::Instant::now);
                tracing::warn!(error = %e, "cannot reach the agent; still waiting");
                if since.elapsed() >= args.unreachable_timeout {
                    return Err(LaunchError::Unreachable(format!(
                        "{e} (for {}); the watch may still be running on the agent",
                        humantime::format_duration(args.unreachable_timeout)
                    )));
                }
            }
            Err(e) => return Err(e),
        }
    }
}
