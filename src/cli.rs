//! The command line: arguments, and turning each command's result into an exit code.

use crate::action::{find_program, ProcessRunner};
use crate::exit;
use crate::logging::LogFormat;
use crate::prom::{PromClient, PromConfig, SkewVerdict};
use crate::rules::{self, Diagnostic, WatchSpec};
use crate::watch::{self, Signal, WatchOptions};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(
    name = "rollwatch",
    version,
    about = "Guards production after a release: polls Prometheus rules and runs the agreed rollback exactly once."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: text on a terminal and JSON lines otherwise (auto), or forced.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Log only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch a release: poll the rules and act when one stays breached.
    Watch(WatchArgs),
    /// Validate rule files offline (and, with --prometheus, run each query once).
    Check(CheckArgs),
    /// Backtest rules against Prometheus history: would they have fired, and when?
    Replay(crate::replay::ReplayArgs),
    /// Ask before deploying: inside a window, outside a freeze, and not into an incident?
    Gate(crate::gate::GateArgs),
    /// Show a watch catching a bad release, on this machine, in about a minute.
    Demo(crate::demo::DemoArgs),
    /// Run the agent that pipelines hand watches to (HTTP API, durable state).
    Serve(crate::serve::ServeArgs),
    /// Hand a watch to a running agent (and, with --wait, exit with its code).
    Launch(crate::launch::LaunchArgs),
}

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

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The rule file describing this watch.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    #[command(flatten)]
    pub prom: PromArgs,
    /// Override the file's watch.duration.
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Set a variable, overriding its default (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,
    /// Decide and log everything, but run no command.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub outputs: OutputArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rule files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set a variable, overriding its default (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,
    #[command(flatten)]
    pub prom: PromArgs,
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

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    match rules::parse_duration(s)? {
        d if d.is_zero() => Err("the duration must be longer than 0s".into()),
        d => Ok(d),
    }
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
    let url = args
        .prometheus
        .clone()
        .or_else(|| file_url.map(str::to_string))
        .ok_or("no Prometheus URL: pass --prometheus URL (or set ROLLWATCH_PROMETHEUS_URL, or `watch.prometheus` in the rule file)")?;
    PromClient::new(&PromConfig {
        url,
        bearer_token_file: args.bearer_token_file.clone(),
        basic_auth_user: args.basic_auth_user.clone(),
        basic_auth_password_file: args.basic_auth_password_file.clone(),
        headers: args.headers.clone(),
        ca_file: args.ca_file.clone(),
        timeout,
    })
    .map_err(|e| e.to_string())
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

/// `rollwatch watch`.
pub async fn watch(args: WatchArgs) -> u8 {
    let mut signals = signal_channel();
    let opts = rules::LoadOptions {
        sets: &args.sets,
        check: false,
    };
    let Some(spec) = load_reporting(&args.rules, &opts) else {
        return exit::USAGE;
    };
    let client = match prom_client(&args.prom, spec.prometheus.as_deref(), spec.query_timeout) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("error: {e}");
            return exit::USAGE;
        }
    };
    if !args.dry_run {
        for (section, cmd) in [("rollback", &spec.rollback), ("pause", &spec.pause)] {
            if let Some(cmd) = cmd {
                if find_program(&cmd.argv[0]).is_none() {
                    crate::say!(
                        "error: the {section} command's program `{}` is not found or not executable (PATH={})\n  = help: a watch that cannot roll back must not start; install it, fix the path, or use --dry-run",
                        cmd.argv[0],
                        std::env::var("PATH").unwrap_or_default()
                    );
                    return exit::USAGE;
                }
            }
        }
    }
    let duration = args.duration.unwrap_or(spec.duration);
    for n in rules::lint::never_fires(&spec, duration) {
        tracing::warn!(
            event = "never_fires",
            rule = %n.rule,
            for_s = n.for_.as_secs_f64(),
            duration_s = n.duration.as_secs_f64(),
            help = %n.help(),
            "{n}"
        );
    }
    if let Err(code) = check_clock(&client, spec.max_blind, duration).await {
        return code;
    }
    let opts = WatchOptions {
        duration,
        dry_run: args.dry_run,
        prometheus: client.shown_url().to_string(),
    };
    match run_watch(&spec, client, &opts, &args.outputs, &mut signals).await {
        Ok(outcome) => outcome.exit_code(),
        Err(code) => code,
    }
}

/// Compares Prometheus's clock with this machine's before a watch starts (polls ask
/// about this machine's now): logs `clock_skew` above `SKEW_WARN`, and Err(exit code)
/// when the skew exceeds the watch's `max_blind` (capped by its duration, as the watch
/// loop caps it), since then every poll would judge a moment Prometheus has no samples
/// for yet, or one long past. A failed measurement does not hold the watch back (its
/// own blind handling judges an unreachable Prometheus); it is logged.
pub async fn check_clock(
    client: &PromClient,
    max_blind: Duration,
    duration: Duration,
) -> Result<(), u8> {
    let (limit, what) = if duration < max_blind {
        (duration, "the watch's whole duration")
    } else {
        (max_blind, "the watch's max_blind")
    };
    let skew = match client.clock_skew().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(event = "clock_skew_unknown", error = %e, "cannot compare this machine's clock with Prometheus's; watching anyway");
            return Ok(());
        }
    };
    match skew.judge(limit) {
        SkewVerdict::Fine => Ok(()),
        SkewVerdict::Warn => {
            tracing::warn!(
                event = "clock_skew",
                skew_s = skew.seconds(),
                uncertainty_s = skew.uncertainty_ms as f64 / 1000.0,
                max_blind_s = limit.as_secs_f64(),
                "{skew}: every poll asks Prometheus about a moment that far off; sync this machine's clock (NTP)"
            );
            Ok(())
        }
        SkewVerdict::Refuse => {
            let judged = if skew.skew_ms < 0 {
                "a moment Prometheus has no samples for yet (an empty answer can pass as healthy)"
            } else {
                "a moment long past"
            };
            crate::say!(
                "error: {skew}, more than {what} ({}): every poll would ask about {judged}\n  = help: sync this machine's clock (NTP: `timedatectl`, `chronyc tracking`) or run the watch on a machine whose clock is right",
                humantime::format_duration(limit)
            );
            Err(exit::USAGE)
        }
    }
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
    let outcome = watch::run(
        spec,
        Arc::new(client),
        &ProcessRunner::default(),
        opts,
        signals,
        &mut sinks.sinks,
    )
    .await;
    sinks.finish().await;
    Ok(outcome)
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

/// The sinks of a watch, and what must be awaited once it ends.
pub struct WatchSinks {
    pub sinks: crate::events::Sinks,
    pub deliveries: Option<crate::notify::Deliveries>,
}

impl WatchSinks {
    /// Flushes every sink; waits (bounded) for notifications still being delivered.
    pub async fn finish(&mut self) {
        if let Some(d) = &self.deliveries {
            d.drain(Duration::from_secs(15)).await;
        }
        self.sinks.finish();
    }
}

/// Builds the sinks a watch reports to.
pub fn watch_sinks(args: &OutputArgs, spec: &WatchSpec) -> Result<WatchSinks, String> {
    let mut sinks = crate::events::Sinks::default();
    let live = crate::live::multi().is_some();
    if live {
        sinks.push(crate::live::LiveView::start(spec));
    } else {
        sinks.push(crate::events::LogSink);
    }
    if let Some(target) = &args.events {
        let j = crate::events::JsonLines::open(target)
            .map_err(|e| format!("cannot open --events {target}: {e}"))?;
        sinks.push(j);
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create --report directory {}: {e}", dir.display()))?;
        sinks.push(crate::report::Recorder::new(dir.clone()));
    }
    let mut deliveries = None;
    if !spec.notify.is_empty() {
        let (sink, d) = crate::notify::Notifier::new(spec.notify.clone());
        sinks.push(sink);
        deliveries = Some(d);
    }
    Ok(WatchSinks { sinks, deliveries })
}
