//! `rollwatch gate`: may a change go out now? (stub, being written)

#[derive(Debug, clap::Args)]
pub struct GateArgs {}

pub async fn run(_args: GateArgs) -> u8 {
    crate::exit::USAGE
}
