//! Floor 1, the pure core: data and decisions, no I/O, no tokio, no sockets.
//!
//! Everything a watch decides is decided here, as a function of its inputs, so table
//! and property tests cover it without a network or a timer. Higher floors (edges,
//! runtime, faces) import from here; nothing here imports from them.
//! - `series`: the plain data of a query result (labels, samples, polls, range series);
//! - `eval`: the evaluator (polls and times in, transitions out) and what a poll means
//!   (`eval::reading`: worst series, direction, value, reference, evidence, state);
//! - `ending`: how a watch ends when no rollback decided it (live and replayed alike);
//! - `history`: range-query history regrouped into polls on a grid, and what a watch
//!   would have done on it (replay, and the agent's catch-up after a restart);
//! - `rules`: the rule model and its two-step loader; `calendar`: deploy calendars and
//!   the gate's decision;
//! - `events`: the typed events and the `Sink` trait, the bus between the floors;
//! - `control`: what a person may order a running watch to do (roll back now, hold,
//!   extend, end) and what the orders so far add up to;
//! - `exit`: the exit codes;
//! - `stats`: the statistics of the canary-vs-stable judge (Mann-Whitney U, Hodges–Lehmann).
//! - `import`: alerting rules converted to a rule file (`rollwatch import`'s pure part);
//! - `time`: times as written on a command line (`replay`), parsed and printed.

pub mod calendar;
pub mod control;
pub mod ending;
pub mod eval;
pub mod events;
pub mod exit;
pub mod history;
pub mod import;
pub mod promtest;
pub mod rules;
pub mod series;
pub mod stats;
pub mod time;
pub mod yaml;
