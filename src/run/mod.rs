//! Floor 3, the runtime: what ties the core and the edges into running watches.
//! - `watch`: the watch loop (pollers, one decision loop, exactly one rollback), and
//!   the one way to run a watch with real processes and a set of sinks;
//! - `agent`: `serve`'s runtime: the agent that runs many watches, shares their
//!   Prometheus source, persists their decisions and resumes them after a restart;
//! - `verdict`: every rule of a spec queried once, now (`gate`'s health check and
//!   `serve`'s verdict endpoint);
//! - `preflight`: what is checked before a watch starts (programs, never-fires,
//!   clock), as typed errors and warnings every face renders;
//! - `steps`: a rule's data read step by step when a breach begins and when it is
//!   about to fire (`for` counted in the data), for the watch, replay and catch-up;
//! - `replay`: every rule of a watch replayed over a window (`replay` and `test`);
//! - `interner`: equal values (judging parameters, the page's rule texts) held once
//!   for all the watches;
//! - `channel`: the bounded channels a watch holds for its life (signals, orders,
//!   polls), small where tokio's are not;
//! - `control_socket`: `watch`'s local control socket, people's orders to a watch
//!   without an agent (and the client `ctl --socket` speaks).
//!
//! The runtime imports the core and the edges, never a command or a renderer: the
//! sinks it reports to are handed to it.

pub mod agent;
pub mod channel;
pub mod control_socket;
pub mod interner;
pub mod preflight;
pub mod replay;
pub mod steps;
pub mod verdict;
pub mod watch;
