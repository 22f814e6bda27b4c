//! Exit codes. Pipelines branch on these, so they are documented constants (README,
//! "Exit codes") and never change meaning.

/// The watch ran its full duration and nothing breached long enough to act.
pub const HEALTHY: u8 = 0;
/// A rule fired and the rollback command succeeded.
pub const ROLLED_BACK: u8 = 1;
/// Usage or rule-file error: nothing was run.
pub const USAGE: u8 = 2;
/// The rollback (or pause) command failed, timed out or could not be started.
pub const ACTION_FAILED: u8 = 3;
/// Prometheus was unusable: the release could not be judged.
pub const INCONCLUSIVE: u8 = 4;
/// A pause fired and no rollback followed.
pub const PAUSED: u8 = 5;
/// `gate`: the change must not go out now (outside every window, inside a freeze, or
/// the system is unhealthy); the output says why and when the next window opens.
pub const NO_GO: u8 = 6;
/// `serve`: a newer watch with the same `watch.key` took over before this one's
/// verdict (the newer watch's exit code is the release's).
pub const SUPERSEDED: u8 = 7;
/// Interrupted by SIGINT (128 + 2).
pub const SIGINT: u8 = 130;
/// Interrupted by SIGTERM (128 + 15).
pub const SIGTERM: u8 = 143;
