//! The `rollwatch` binary: parse the command line, run the command, exit with its code.

use clap::Parser;
use rollwatch::cli::{self, Cli, Command};
use std::process::ExitCode;

// The agent's many small, long-lived allocations fragment glibc's per-thread arenas
// (a fifth of its memory at 20,000 watches; BENCHMARKS.md, issue 21). The
// `system-alloc` feature leaves it out, so that heaptrack, which sees only malloc,
// can profile the agent's heap (bench/README or BENCHMARKS.md, issue 21).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One-shot commands behave like other Unix tools when their reader goes away
    // (`rollwatch check ... | head`): SIGPIPE ends them quietly instead of a panic on
    // the failed write. `watch` and `serve` keep ignoring it: losing a log reader must
    // never stop a watch, least of all while a rollback runs; nor `supervise`, which
    // relays a running rollback's output and must outlive a dead agent.
    if !matches!(
        cli.command,
        Command::Watch(_) | Command::Serve(_) | Command::Supervise(_)
    ) {
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: set before any thread exists; the default action needs no handler code.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    }
    if let Command::Supervise(args) = &cli.command {
        return ExitCode::from(cli::supervise(args));
    }
    // The live view is for a person at a terminal watching a watch.
    let live = match &cli.command {
        Command::Watch(a) => !a.outputs.no_live,
        Command::Demo(a) => !a.outputs.no_live,
        _ => false,
    } && rollwatch::show::logging::live_wanted(cli.log_format, cli.quiet);
    rollwatch::show::logging::init(cli.log_format, cli.quiet, live);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(rollwatch::core::exit::USAGE);
        }
    };
    let code = runtime.block_on(cli::run(cli.command));
    ExitCode::from(code)
}
