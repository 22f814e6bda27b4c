//! `rollwatch launch`: the pipeline's client for `rollwatch serve`.
//!
//! It hands the agent a watch and either returns at once (the pipeline moves on) or,
//! with `--wait`, follows the watch and exits with the code `rollwatch watch` would
//! have, so a pipeline can switch between the two without changing how it branches.
//!
//! Every launch carries an id (generated if not given), so retrying the POST after a
//! network error can never start a second watch; while waiting, the agent being
//! briefly unreachable (it restarts, it is redeployed) is retried, not fatal.

use crate::cmd::agent_client::{AgentError as LaunchError, Client};
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
    let client = Client::connect(&args.server, args.token_file.as_deref())?;
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
