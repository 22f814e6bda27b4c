//! The `rollwatch` binary: parse the command line, run the command, exit with its code.

use clap::Parser;
use rollwatch::cli::{self, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    rollwatch::logging::init(cli.log_format, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(rollwatch::exit::USAGE);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Watch(args) => cli::watch(args).await,
            Command::Check(args) => rollwatch::check::run(args).await,
            Command::Replay(args) => rollwatch::replay::run(args).await,
            Command::Gate(args) => rollwatch::gate::run(args).await,
            Command::Demo(args) => rollwatch::demo::run(args).await,
        }
    });
    ExitCode::from(code)
}
