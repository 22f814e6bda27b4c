//! Floor 5, the faces: one module per command, each owning its flags and its `run`.
//!
//! A command never imports another command; what several share is in modules named
//! for it: `args` (the Prometheus and output flag groups, `--set` parsing),
//! `rule_file` (loading with diagnostics), `signals` (the signal channel),
//! `session` (running a watch with the sinks its flags ask for) and `agent_client`
//! (the agent's API, for `launch` and `ctl`).

pub mod agent_client;
pub mod args;
pub mod check;
pub mod ctl;
pub mod demo;
pub mod gate;
pub mod import;
pub mod launch;
pub mod replay;
pub mod rule_file;
pub mod serve;
pub mod session;
pub mod signals;
pub mod supervise;
pub mod test;
pub mod watch;
