//! What the commands share, below them: the flag groups (`PromArgs` for the Prometheus
//! connection, `OutputArgs` for what a watch shows), loading a rule file with its
//! diagnostics, `--set` parsing, the signal channel, and running a watch with the
//! sinks its flags ask for.
//!
//! A command never imports another command; anything two of them need lives here.

use crate::core::events::Sinks;
use crate::core::exit;
use crate::core::rules::{self, Diagnostic, WatchSpec};
use crate::io::prom::{Connection, PromClient};
use crate::run::watch::{self, Signal, WatchOptions, WatchSinks};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Args, Clone, Default)]
pub struct PromArgs {
    /// Prometheus base URL, with any path prefix (e.g. https://mimir/prometheus).
    #[arg(long, env = "ROLLWATCH_PROMETHEUS_URL")]
    pub prometheus: Option<String>,
    /// File holding a bearer token for Prometheus.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth user name.
    #[arg(long, value_name = "USER")]
    pub basic_auth_user: Option<String>,
    /// File holding the basic auth password.
    #[arg(long, value_name = "FILE", requires = "basic_auth_user")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// Extra request header, `Name: value` (repeatable), e.g. `X-Scope-OrgID: team-a`.
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// PEM file of CA certificates to trust for Prometheus (replaces the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl PromArgs {
    /// The connection these flags describe (what the client and the agent are built from).
    pub fn connection(&self) -> Connection {
        Connection {
            prometheus: self.prometheus.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            basic_auth_user: self.basic_auth_user.clone(),
            basic_auth_password_file: self.basic_auth_password_file.clone(),
            headers: self.headers.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}

/// What a watch shows besides its log: `--events`, `--report`, notifications, live view.
#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Write one JSON object per line for each state change, action and outcome
    /// (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,
    /// Write report.json, report.md and report.html into DIR when the watch ends.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// No live view on a terminal: plain log lines.
    #[arg(long)]
    pub no_live: bool,
}

pub fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if !rules::template::is_name(k) {
        return Err(format!("`{k}` is not a valid variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Prints a file's diagnostics to stderr.
pub fn print_diagnostics(path: &str, source: &str, diags: &[Diagnostic]) {
    for d in diags {
        crate::say!("{}", d.render(path, source));
    }
}

/// Loads a rule file, printing every diagnostic; None (after printing) on errors.
pub fn load_reporting(path: &std::path::Path, opts: &rules::LoadOptions) -> Option<WatchSpec> {
    match rules::load(path, opts) {
        Ok((spec, warnings)) => {
            if !warnings.is_empty() {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                print_diagnostics(&path.display().to_string(), &text, &warnings);
            }
            Some(spec)
        }
        Err(e) => {
            crate::say!("{e}");
            None
        }
    }
}

/// Builds the Prometheus client from the flags, falling back to the file's URL.
pub fn prom_client(
    args: &PromArgs,
    file_url: Option<&str>,
    timeout: Duration,
) -> Result<PromClient, String> {
    args.connection().client(file_url, timeout)
}

/// Forwards SIGINT and SIGTERM into the watch. Installed before anything runs, so a
/// signal can never kill rollwatch half way through an action.
pub fn signal_channel() -> mpsc::Receiver<Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::channel(4);
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = int.recv() => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
            };
            if tx.send(sig).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs a watch with real processes and the sinks `outputs` asks for, then flushes
/// them (waiting, bounded, for notifications in flight). Err(exit code) when an output
/// cannot be opened, before anything runs.
pub async fn run_watch(
    spec: &WatchSpec,
    client: PromClient,
    opts: &WatchOptions,
    outputs: &OutputArgs,
    signals: &mut mpsc::Receiver<Signal>,
) -> Result<watch::Outcome, u8> {
    let mut sinks = watch_sinks(outputs, spec).map_err(|e| {
        crate::say!("error: {e}");
        exit::USAGE
    })?;
    let baselines = before_baselines(spec, &client, crate::core::events::now_ms()).await;
    Ok(watch::run_session(
        spec,
        Arc::new(client),
        opts,
        watch::Start {
            baselines,
            ..Default::default()
        },
        signals,
        &mut sinks,
    )
    .await)
}

/// The `baseline: before:` samples of every rule that has one, each from one range
/// query ending at `start_ms` (`run::preflight::before_baselines`), said in the log.
/// A failed query is a warning: that rule's series then have no baseline and follow
/// `no_baseline`.
pub async fn before_baselines<H: crate::io::prom::HistorySource>(
    spec: &WatchSpec,
    source: &H,
    start_ms: i64,
) -> Vec<Option<Vec<crate::core::series::Sample>>> {
    use crate::run::preflight::{self, Baseline};
    let found = preflight::before_baselines(spec, source, start_ms, &Default::default()).await;
    for (rule, b) in spec.rules.iter().zip(&found) {
        match b {
            Baseline::Taken { samples, window } => {
                tracing::info!(event = "baseline", rule = %rule.name, series = samples.len(), "baseline taken: the mean of the query over the {} before the watch", humantime::format_duration(*window))
            }
            Baseline::Failed(e) => {
                tracing::warn!(event = "baseline_failed", rule = %rule.name, error = %e, "the baseline could not be taken; every series of this rule follows `no_baseline`")
            }
            Baseline::NotWanted | Baseline::Known(_) => {}
        }
    }
    found.iter().map(Baseline::samples).collect()
}

/// Builds the sinks a watch reports to.
pub fn watch_sinks(args: &OutputArgs, spec: &WatchSpec) -> Result<WatchSinks, String> {
    let mut sinks = Sinks::default();
    let live = crate::show::live::multi().is_some();
    if live {
        sinks.push(crate::show::live::LiveView::start(spec));
    } else {
        sinks.push(crate::show::event_lines::LogSink);
    }
    if let Some(target) = &args.events {
        let j = crate::show::event_lines::JsonLines::open(target)
            .map_err(|e| format!("cannot open --events {target}: {e}"))?;
        sinks.push(j);
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create --report directory {}: {e}", dir.display()))?;
        sinks.push(crate::show::report::Recorder::new(dir.clone()));
    }
    if let Some(summary) = crate::show::report::step_summary::StepSummary::from_env() {
        sinks.push(summary);
    }
    let mut deliveries = None;
    if !spec.notify.is_empty() {
        let (mut sink, d) = crate::io::notify::Notifier::new(spec.notify.clone());
        if let Some(dir) = &args.report {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            sink = sink.with_report(dir.join("report.html").display().to_string());
        }
        sinks.push(sink);
        deliveries = Some(d);
    }
    Ok(WatchSinks { sinks, deliveries })
}
