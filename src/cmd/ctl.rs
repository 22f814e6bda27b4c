//! `rollwatch ctl ORDER WATCH --reason ...`: a person's order to a watch running on
//! an agent (`rollwatch serve`), as `launch` talks to it: roll back now, pause now,
//! hold automatic actions `--for` a while, release the hold, extend the watch `--for`
//! a while, end it as healthy. What each does, and that a rollback runs once whoever
//! presses, is decided in the agent (`core::control`, the watch's decision loop).
//!
//! Exit codes: 0 the order was carried out; 2 it was refused (another person's
//! rollback, a rule's, a watch that ended: the message says who and when) or is
//! malformed; 4 it is stored but not carried out yet (the watch's agent has not
//! taken it: it will when one holds the watch), or the agent cannot be reached.

use crate::cmd::agent_client::{AgentError, Client};
use crate::core::exit;
use serde_json::json;
use std::path::PathBuf;

/// What to order.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CtlOrder {
    /// Run the watch's rollback command now (once per watch, whoever asks).
    Rollback,
    /// Run the watch's pause command now.
    Pause,
    /// Suspend automatic pauses and rollbacks --for a while (the watch keeps judging).
    Hold,
    /// End a hold now: what still fires acts at once.
    Release,
    /// Make the watch last --for longer.
    Extend,
    /// End the watch now as healthy: your verdict, recorded as yours.
    End,
}

#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The order.
    #[arg(value_enum)]
    pub order: CtlOrder,
    /// The watch's id.
    pub watch: String,
    /// Why (required: the record an emergency change needs).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// How long, for `hold` and `extend` (e.g. 15m).
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: Option<String>,
    /// Who gives the order, when the token has no name (a named token's name wins).
    #[arg(long, value_name = "NAME", env = "ROLLWATCH_BY")]
    pub by: Option<String>,
    /// The agent's base URL, e.g. http://rollwatch.internal:7093
    #[arg(long, value_name = "URL", env = "ROLLWATCH_SERVER")]
    pub server: String,
    /// File holding your bearer token (`name:token` lines on the agent say whose).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl CtlOrder {
    fn name(self) -> &'static str {
        match self {
            CtlOrder::Rollback => "rollback",
            CtlOrder::Pause => "pause",
            CtlOrder::Hold => "hold",
            CtlOrder::Release => "release",
            CtlOrder::Extend => "extend",
            CtlOrder::End => "end",
        }
    }
}

/// `rollwatch ctl`.
pub async fn run(args: CtlArgs) -> u8 {
    match ctl(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn ctl(args: CtlArgs) -> Result<u8, AgentError> {
    let client = Client::connect(&args.server, args.token_file.as_deref())?;
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty());
    let mut body = json!({ "order": args.order.name(), "reason": args.reason });
    if let Some(d) = &args.for_ {
        body["for"] = json!(d);
    }
    if let Some(by) = by {
        body["by"] = json!(by);
    }
    let path = format!("/api/v1/watches/{}/orders", url_segment(&args.watch));
    // Not retried: an order that reached the agent is stored; a second POST would be
    // answered with the first (rollback, pause) or be a second hold. Say so instead.
    let (status, answer) = client
        .send(client.request(reqwest::Method::POST, &path).json(&body))
        .await?;
    println!("{answer}");
    let o = &answer["order"];
    let what = o["result"].as_str().unwrap_or_default();
    if status == 202 {
        eprintln!(
            "stored, not carried out yet: the agent holding watch `{}` has not taken it (it will when one holds the watch)",
            args.watch
        );
        return Ok(exit::INCONCLUSIVE);
    }
    eprintln!("{what}");
    Ok(exit::HEALTHY)
}

/// A watch id as one path segment (percent-encoded: an id with `/` or `?` stays one
/// segment and never changes the path).
fn url_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_id_stays_one_path_segment() {
        assert_eq!(url_segment("web-2026.11"), "web-2026.11");
        assert_eq!(url_segment("../x?y=1"), "..%2Fx%3Fy%3D1");
        assert_eq!(url_segment("a b"), "a%20b");
    }
}
