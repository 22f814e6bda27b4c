//! Floor 5, the faces: one module per command, each owning its flags and its `run`.
//!
//! A command never imports another command; what several share (the Prometheus and
//! output flag groups, loading with diagnostics, `--set` parsing, the signal channel,
//! running a watch with the sinks its flags ask for) is in `common`.

pub mod check;
pub mod common;
pub mod demo;
pub mod gate;
pub mod import;
pub mod launch;
pub mod replay;
pub mod serve;
pub mod supervise;
pub mod watch;
