//! Floor 2, the edges: where rollwatch touches the outside world, each behind a small
//! trait so the runtime above can be driven with real parts or scripted ones.
//! - `prom`: the Prometheus client (instant and range queries) and its pure decoder;
//! - `action`: running rollback and pause commands (process groups, timeouts);
//! - `store`: the agent's durable state (SQLite) and its state file;
//! - `notify`: delivering notifications (webhook, Slack, Alertmanager alerts) without delaying a watch.
//! - `silence`: the Alertmanager silence a rollback may create.
//! - `secret`: reading files that hold secrets, if private to their owner;
//! - `huge_pages`: the agent's transparent huge pages off, its children's as found;
//! - `host`: the rule files and calendars read from disk, and the environment and files
//!   a rule file points at (the core loads only text).
//!
//! Edges import only the core.

pub mod action;
pub mod host;
pub mod huge_pages;
pub mod notify;
#[cfg(test)]
mod notify_tests;
pub mod prom;
pub mod scratch_prom;
pub mod secret;
pub mod silence;
pub mod store;
pub mod supervise;
