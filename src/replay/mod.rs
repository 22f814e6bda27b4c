//! `rollwatch replay` (stub, being written)

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}

pub async fn run(_args: ReplayArgs) -> u8 {
    crate::exit::USAGE
}
