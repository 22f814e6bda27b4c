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
//!
//! With `--socket PATH` instead of `--server`, the order goes to a `rollwatch watch`
//! started with `--control-socket PATH` (no agent): the socket is the watch, so no
//! WATCH is given. The same exit codes: 0 carried out, 2 refused or malformed, 4 no
//! answer (no watch listens there, or none came in time).

use crate::cmd::agent_client::{AgentError, Client};
use crate::core::exit;
use crate::run::control_socket::{self, Request};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The watch's id (not with --socket: the socket is the watch).
    #[arg(required_unless_present = "socket", conflicts_with = "socket")]
    pub watch: Option<String>,
    /// Why (required: the record an emergency change needs).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// How long, for `hold` and `extend` (e.g. 15m).
    #[arg(long = "for", value_name = "DURATION")]
    pub for_: Option<String>,
    /// Who gives the order, when the token has no name (a named token's name is who: another name is refused).
    /// With --socket: your user name unless given.
    #[arg(long, value_name = "NAME", env = "ROLLWATCH_BY")]
    pub by: Option<String>,
    /// The agent's base URL, e.g. http://rollwatch.internal:7093 (default: the
    /// environment variable ROLLWATCH_SERVER, unless --socket is given).
    // (Not clap's `env`: clap would count the variable as given, and a shell that
    // sets it for the agent could then never use --socket.)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// File holding your bearer token (`name:token` lines on the agent say whose).
    #[arg(long, value_name = "FILE", conflicts_with = "socket")]
    pub token_file: Option<PathBuf>,
    /// The control socket of a `rollwatch watch --control-socket PATH` (instead of
    /// --server; wins over ROLLWATCH_SERVER).
    #[arg(long, value_name = "PATH", conflicts_with = "server")]
    pub socket: Option<PathBuf>,
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

/// How long `--socket` waits for the answer: a rollback's is given when its command
/// starts, which may wait for a command already running.
const SOCKET_WAIT: Duration = Duration::from_secs(60);

/// The order to the watch listening at `path`.
async fn by_socket(path: &Path, args: &CtlArgs) -> u8 {
    let request = Request {
        order: args.order.name().to_string(),
        reason: args.reason.clone(),
        for_: args.for_.clone(),
        // (None: the watch records the user at the other end of the socket.)
        by: args.by.clone(),
    };
    match control_socket::ask(path, &request, SOCKET_WAIT).await {
        Ok(answer) => {
            let (line, code) = match &answer {
                Ok(done) => (json!({"ok": true, "result": done}), exit::HEALTHY),
                Err(why) => (json!({"ok": false, "error": why}), exit::USAGE),
            };
            println!("{line}");
            match answer {
                Ok(done) => eprintln!("{done}"),
                Err(why) => eprintln!("error: {why}"),
            }
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::INCONCLUSIVE
        }
    }
}

async fn ctl(args: CtlArgs) -> Result<u8, AgentError> {
    // (clap refuses --socket with --server, WATCH or --token-file; ROLLWATCH_SERVER,
    // which a shell may set for the agent, is not read with --socket.)
    if let Some(path) = &args.socket {
        return Ok(by_socket(path, &args).await);
    }
    let server = args
        .server
        .clone()
        .or_else(|| std::env::var("ROLLWATCH_SERVER").ok())
        .filter(|s| !s.is_empty());
    let (Some(server), Some(watch)) = (server, &args.watch) else {
        eprintln!("error: give --server URL (or ROLLWATCH_SERVER) and WATCH, or --socket PATH");
        return Ok(exit::USAGE);
    };
    let client = Client::connect(&server, args.token_file.as_deref())?;
    // `by` only when given: a named token's name is who, and a `by` naming someone
    // else is refused. `$USER` goes as `user`, used only when nothing else says who.
    let by = args.by.clone().filter(|b| !b.trim().is_empty());
    let user = std::env::var("USER").ok().filter(|u| !u.trim().is_empty());
    let mut body = json!({ "order": args.order.name(), "reason": args.reason });
    if let Some(d) = &args.for_ {
        body["for"] = json!(d);
    }
    if let Some(by) = by {
        body["by"] = json!(by);
    }
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let path = format!("/api/v1/watches/{}/orders", url_segment(watch));
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
            "stored, not carried out yet: the agent holding watch `{watch}` has not taken it (it will when one holds the watch)"
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
