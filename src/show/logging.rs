//! Log output: human-readable on a terminal, JSON lines otherwise (CI, log shippers).
//!
//! Every decision is an event with key/value fields (`event`, `rule`, `labels`,
//! `value`, `threshold`, ...), so the JSON form is machine-readable as is.
//!
//! `ROLLWATCH_LOG` chooses the levels, except for the libraries that log what they
//! send at DEBUG or TRACE (tokio-postgres: every statement's parameters, so a rule
//! file's text with its commands' secrets; hyper, h2, reqwest: request heads and
//! bodies): those are capped at INFO by `cap`, whatever the variable says.

use std::io::IsTerminal;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The libraries whose DEBUG/TRACE output may carry request or statement bodies
/// (targets match as prefixes: `tokio_postgres` covers `tokio_postgres::query`).
const CAPPED: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "deadpool",
    "hyper",
    "h2",
    "reqwest",
    "rustls",
];

/// A filter over everything else: the capped libraries at INFO at most, the rest as
/// `ROLLWATCH_LOG` says (this layer lets them through; the env filter decides).
fn cap() -> Targets {
    CAPPED
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| {
            t.with_target(*c, LevelFilter::INFO)
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

/// Log lines while the live view is on: printed above the bars, never through them.
#[derive(Clone, Copy)]
struct LiveWriter;

struct LiveLine(Vec<u8>);

impl std::io::Write for LiveLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        match crate::show::live::multi() {
            Some(m) => {
                let _ = m.println(text);
            }
            None => crate::say!("{text}"),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LiveWriter {
    type Writer = LiveLine;
    fn make_writer(&'a self) -> LiveLine {
        LiveLine(Vec::new())
    }
}

/// Whether this run draws the live view: a terminal, text logs, not quiet.
pub fn live_wanted(format: LogFormat, quiet: bool) -> bool {
    !quiet && format != LogFormat::Json && crate::show::live::wanted()
}

/// Installs the global subscriber. Logs go to stderr; stdout is for results. With
/// `live`, the live view is turned on and log lines are printed above it.
pub fn init(format: LogFormat, quiet: bool, live: bool) {
    if live {
        crate::show::live::enable();
        let filter =
            EnvFilter::try_from_env("ROLLWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(LiveWriter)
            .with_target(false)
            .with_ansi(true)
            .finish()
            .with(cap())
            .try_init();
        return;
    }
    let default = if quiet { "warn" } else { "info" };
    let filter =
        EnvFilter::try_from_env("ROLLWATCH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .with(cap())
            .try_init();
    } else {
        let _ = builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(cap())
            .try_init();
    }
}
