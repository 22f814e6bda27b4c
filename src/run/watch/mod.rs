//! The watch loop: polls every rule on its interval, feeds the evaluator, runs actions.
//!
//! A poller, run beside the decision loop in the watch's one task, queries each rule
//! at its interval and sends the result, stamped with its tick, to the loop. The decision loop
//! owns all state (evaluators, what has run) and is the only place that starts a
//! command, which is how "exactly once" stays simple: a rollback ends the loop, and the
//! pause command is guarded by a flag that only this loop touches.
//!
//! `session` runs a watch with real processes and the sinks it is handed; `journal`
//! is where the loop records what it claims before a command runs (the agent's store).
//!
//! The loop is split by what each part does: `start` (what a watch is given),
//! `poller` (the queries), `beside` (the loop and its poller in one task, each polled
//! when woken), `decision_loop` (`run_from`), `state` (the loop's state),
//! `handle` (a poll and the end), `confirm` (the poll made when a pending breach's
//! `for` has elapsed in the data), `manual` (people's orders: roll back now, hold,
//! extend, end) and `act` (a command). `mod.rs` only names them, so
//! no child takes anything from the module that re-exports it.

mod act;
mod beside;
mod carry;
mod confirm;
mod decision_loop;
mod handle;
pub mod journal;
mod manual;
mod outcome;
mod poller;
pub mod session;
mod start;
mod state;

pub use act::{action_started, finished_event, run_claimed, watch_started};
pub use decision_loop::run_from;
pub use outcome::{Outcome, OutcomeKind, Signal};
pub use session::{run_session, WatchSinks};
pub use start::{rule_info, ClockAnchor, Judged, OrderMsg, PollDone, Start, WatchOptions};

#[cfg(test)]
mod carry_tests;
#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod manual_tests;
#[cfg(test)]
mod tests;
