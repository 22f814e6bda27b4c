//! `rollwatch supervise` (hidden): what `serve` runs a command through, so that its
//! exit is recorded even if the agent dies while it runs (`io::supervise`).

use std::path::PathBuf;

/// `rollwatch supervise --status-file FILE -- COMMAND [ARGS...]`: not for people.
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// Where the command's exit is recorded (atomically, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub status_file: PathBuf,
    /// The claim's intent file, taken before the command starts (`io::supervise`).
    #[arg(long, value_name = "FILE")]
    pub intent_file: Option<PathBuf>,
    /// Turn transparent huge pages back on before the command starts: the agent turned
    /// them off for itself, and a child inherits that (`io::huge_pages`).
    #[arg(long)]
    pub huge_pages_as_found: bool,
    /// The command and its arguments, after `--` (never read as options).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub argv: Vec<String>,
}

/// Runs the command and exits as it did: its code, or its signal re-raised.
pub fn run(args: &SuperviseArgs) -> u8 {
    if args.huge_pages_as_found {
        crate::io::huge_pages::as_found();
    }
    match crate::io::supervise::supervise(
        &args.status_file,
        args.intent_file.as_deref(),
        &args.argv,
    ) {
        Ok(code) => code,
        Err(signal) => crate::io::supervise::die_by(signal),
    }
}
