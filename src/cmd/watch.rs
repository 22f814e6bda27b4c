//! `rollwatch watch`: guard one release from this process, and exit with its verdict.
//!
//! Signals are installed first; then the rule file is loaded, the client built, the
//! rollback and pause programs checked (unless `--dry-run`), and the clock compared
//! with Prometheus's, all before the watch starts; then the watch runs with the sinks
//! the output flags ask for. With `--control-socket PATH`, people's orders reach the
//! running watch through a local socket (`run::control_socket`): a signal cannot say
//! who gives an order or why.

use crate::cmd::args::{parse_set, prom_client, OutputArgs, PromArgs};
use crate::cmd::rule_file::load_reporting;
use crate::cmd::session::run_watch;
use crate::cmd::signals::signal_channel;
use crate::core::exit;
use crate::core::rules;
use crate::io::prom::PromClient;
use crate::run::channel;
use crate::run::control_socket::ControlSocket;
use crate::run::preflight::{self, PreflightWarning, WatchClock};
use crate::run::watch::WatchOptions;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Take people's orders (`rollwatch ctl ORDER --socket PATH --reason ...`) on a Unix
    /// socket made at PATH, private to this user (0600) and removed when the watch ends.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    match rules::parse_duration(s)? {
        d if d.is_zero() => Err("the duration must be longer than 0s".into()),
        d => Ok(d),
    }
}

/// `rollwatch watch`.
pub async fn run(args: WatchArgs) -> u8 {
    let mut signals = signal_channel();
    let opts = rules::LoadOptions {
        outside: Some(&crate::io::host::HOST),
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
        if let Some(e) = preflight::programs(&spec).into_iter().next() {
            crate::say!(
                "error: {e} (PATH={})\n  = help: a watch that cannot roll back must not start; install it, fix the path, or use --dry-run",
                std::env::var("PATH").unwrap_or_default()
            );
            return exit::USAGE;
        }
    }
    let duration = args.duration.unwrap_or(spec.duration);
    for n in preflight::never_fires(&spec, duration) {
        tracing::warn!(
            event = "never_fires",
            rule = %n.rule,
            for_s = n.for_.as_secs_f64(),
            duration_s = n.duration.as_secs_f64(),
            help = %n.help(),
            "{n}"
        );
    }
    // Made before the clock check so that a refused PATH fails fast; removed when
    // `socket` is dropped, however this returns (a signal ends the watch, then this),
    // and closed at the end so that the order that ended the watch gets its answer.
    let (socket, orders) = match &args.control_socket {
        None => (None, None),
        Some(path) => {
            let (tx, rx) = channel::channel(8);
            match ControlSocket::open(path, tx).await {
                Ok(s) => {
                    tracing::info!(event = "control_socket", path = %path.display(), "people's orders are taken on {} (rollwatch ctl ORDER --socket PATH --reason ...)", path.display());
                    (Some(s), Some(rx))
                }
                Err(e) => {
                    crate::say!("error: {e}");
                    return exit::USAGE;
                }
            }
        }
    };
    let ahead = match check_clock(&client, spec.max_blind, duration).await {
        Ok(ahead) => ahead,
        Err(code) => return code,
    };
    let opts = WatchOptions {
        duration,
        dry_run: args.dry_run,
        prometheus: client.shown_url().to_string(),
    };
    let code = match run_watch(
        &spec,
        client,
        &opts,
        &args.outputs,
        &mut signals,
        ahead,
        orders,
    )
    .await
    {
        Ok(outcome) => outcome.exit_code(),
        Err(code) => code,
    };
    if let Some(socket) = socket {
        socket.close().await;
    }
    code
}

/// Compares Prometheus's clock with this machine's before a watch starts (polls ask
/// about this machine's now), and renders the pre-flight's finding
/// (`run::preflight::judge_clock`): `clock_skew` is logged above `SKEW_WARN`, and a
/// refusal is Err(exit code). A failed measurement is logged and does not hold the
/// watch back. Ok: how far this clock may be ahead of Prometheus's
/// (`ClockSkew::ahead`), which the confirming poll of a pending breach waits out.
pub async fn check_clock(
    client: &PromClient,
    max_blind: Duration,
    duration: Duration,
) -> Result<Duration, u8> {
    let measured = client.clock_skew().await.map_err(|e| e.to_string());
    let ahead = measured.as_ref().map(|s| s.ahead()).unwrap_or_default();
    match preflight::judge_clock(measured, WatchClock::ThisMachine, max_blind, duration) {
        Ok(None) => Ok(ahead),
        Ok(Some(PreflightWarning::ClockSkew { skew, .. })) => {
            tracing::warn!(
                event = "clock_skew",
                skew_s = skew.seconds(),
                uncertainty_s = skew.uncertainty_ms as f64 / 1000.0,
                max_blind_s = preflight::clock_limit(max_blind, duration).as_secs_f64(),
                "{skew}: every poll asks Prometheus about a moment that far off; sync this machine's clock (NTP)"
            );
            Ok(ahead)
        }
        Ok(Some(PreflightWarning::ClockUnknown { reason, .. })) => {
            tracing::warn!(event = "clock_skew_unknown", error = %reason, "cannot compare this machine's clock with Prometheus's; watching anyway");
            Ok(ahead)
        }
        Ok(Some(_)) => Ok(ahead),
        Err(e) => {
            crate::say!("error: {e}\n  = help: {}", WatchClock::ThisMachine.help());
            Err(exit::USAGE)
        }
    }
}
