//! The top-level command line: the parser and the dispatch to each command's `run`.
//!
//! Used by `main` alone. Each command owns its flags and its `run` (in `cmd`); this
//! module only names them. `completions` and `man` are generated here, from the parser
//! itself, because only this floor sees the whole command line.

use crate::cmd;
use crate::show::logging::LogFormat;
use clap::{CommandFactory, Parser, Subcommand};

/// `--version`: the crate version and the git commit it was built from (build.rs;
/// "unknown" when built without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROLLWATCH_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "rollwatch",
    version = VERSION,
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
    #[command(
        after_long_help = "Notifications: the rule file's `notify:` list posts to webhooks, Slack, Microsoft Teams (adaptive cards), Alertmanager, PagerDuty (Events API v2: trigger on fire and action, resolve at the end) and Grafana (annotations of the start, each action and the end); URLs, routing keys and tokens are secrets, never shown. See docs/notifications.md."
    )]
    Watch(cmd::watch::WatchArgs),
    /// Validate rule files offline (and, with --prometheus, run each query once).
    Check(cmd::check::CheckArgs),
    /// Backtest rules against Prometheus history: would they have fired, and when?
    Replay(cmd::replay::ReplayArgs),
    /// Ask before deploying: inside a window, outside a freeze, and not into an incident?
    Gate(cmd::gate::GateArgs),
    /// Show a watch catching a bad release, on this machine, in about a minute.
    Demo(cmd::demo::DemoArgs),
    /// Run the agent that pipelines hand watches to (HTTP API, durable state).
    Serve(cmd::serve::ServeArgs),
    /// Hand a watch to a running agent (and, with --wait, exit with its code).
    Launch(cmd::launch::LaunchArgs),
    /// Order a running watch (on an agent, or a `watch --control-socket`): roll back or pause now, hold, release, extend, end.
    Ctl(cmd::ctl::CtlArgs),
    /// Turn Prometheus alerting rules (or PrometheusRule manifests) into a rule file.
    Import(cmd::import::ImportArgs),
    /// Run unit tests of rule files: synthetic series, a real Prometheus, replay's judgement.
    Test(cmd::test::TestArgs),
    /// Print a shell completion script (e.g. `rollwatch completions bash > /etc/bash_completion.d/rollwatch`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout (e.g. `rollwatch man > rollwatch.1`).
    Man,
    /// (Internal) run a command for `serve` and record its exit (`supervise`).
    #[command(hide = true)]
    Supervise(cmd::supervise::SuperviseArgs),
}

/// Runs `supervise`, synchronously and before any runtime or logging exists (its
/// stderr is the command's).
pub fn supervise(args: &cmd::supervise::SuperviseArgs) -> u8 {
    cmd::supervise::run(args)
}

/// Runs one command to its end; the exit code out.
pub async fn run(command: Command) -> u8 {
    match command {
        Command::Watch(args) => cmd::watch::run(args).await,
        Command::Check(args) => cmd::check::run(args).await,
        Command::Replay(args) => cmd::replay::run(args).await,
        Command::Gate(args) => cmd::gate::run(args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Serve(args) => cmd::serve::run(args).await,
        Command::Launch(args) => cmd::launch::run(args).await,
        Command::Ctl(args) => cmd::ctl::run(args).await,
        Command::Import(args) => cmd::import::run(args).await,
        Command::Test(args) => cmd::test::run(args).await,
        Command::Completions { shell } => completions(shell, &mut std::io::stdout()),
        Command::Man => man(&mut std::io::stdout()),
        Command::Supervise(args) => supervise(&args),
    }
}

/// Writes the completion script for `shell`. It is generated into memory first:
/// clap_complete panics on a failed write, and a full disk must be an error instead.
fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rollwatch", &mut script);
    write_out(out, &script, "completion script")
}

/// Writes the man page.
fn man(out: &mut dyn std::io::Write) -> u8 {
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
        crate::say!("error: cannot render the man page: {e}");
        return crate::core::exit::USAGE;
    }
    write_out(out, &page, "man page")
}

fn write_out(out: &mut dyn std::io::Write, bytes: &[u8], what: &str) -> u8 {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => crate::core::exit::HEALTHY,
        Err(e) => {
            crate::say!("error: cannot write the {what}: {e}");
            crate::core::exit::USAGE
        }
    }
}
