//! Claiming an action before its command starts.
//!
//! "Exactly once" across a crash needs the decision to act and the record of it to be
//! one thing: if the agent dies after the command started, a restart must find a row
//! saying so; if it dies before, it must find none (and no firing series either, so the
//! rule fires again from the data). The watch loop therefore asks a `Journal` to
//! *claim* every command it is about to run, and runs it only when the claim is
//! committed. `watch` on a terminal has nothing to survive and uses `NoJournal`;
//! `serve` claims in its store, in one transaction with the series that fired.

use crate::core::eval::Labels;
use crate::core::events::Event;
use crate::io::action::{ActionStatus, SpawnHook};
use std::time::Duration;

/// One series that fired and caused the action.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredSeries {
    pub labels: Labels,
    pub value: Option<f64>,
    /// When its run of breaches began, on the watch's clock (time since it started).
    pub since: Duration,
}

/// What the loop is about to run.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// `rollback` or `pause`.
    pub kind: &'static str,
    pub rule: &'a str,
    pub argv: &'a [String],
    /// The environment the command gets (`ROLLWATCH_*`), kept so that a re-run after a
    /// crash gets the very same one.
    pub env: &'a [(String, String)],
    /// The series of this rule that fired at this poll.
    pub fired: &'a [FiredSeries],
    /// Unix ms of the decision.
    pub at_ms: i64,
}

/// A committed claim.
#[derive(Default)]
pub struct Ticket {
    /// Extra environment for the command (e.g. `ROLLWATCH_ACTION_ID`).
    pub env: Vec<(String, String)>,
    /// Records the command's process group as soon as it has started.
    pub on_spawn: Option<SpawnHook>,
    /// Where the command's supervisor records its exit (`io::supervise`), if anywhere.
    pub status_file: Option<std::path::PathBuf>,
    /// The claim's intent file, for the supervisor to take (`io::supervise`).
    pub intent_file: Option<std::path::PathBuf>,
}

/// Where actions are claimed and their results recorded.
pub trait Journal: Send {
    /// Claims the action; the command starts only if this returns `Ok`. An `Err` says
    /// why it could not be recorded, and the command is not run.
    fn claim(&mut self, claim: &Claim<'_>) -> Result<Ticket, String>;
    /// Records how the claimed command ended; `event` is the `action_finished` the
    /// loop emits next (`serve` stores its notifications with the result).
    fn finished(&mut self, status: &ActionStatus, at_ms: i64, event: &Event);
}

/// For `watch`: nothing to survive, every claim succeeds.
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn claim(&mut self, _: &Claim<'_>) -> Result<Ticket, String> {
        Ok(Ticket::default())
    }
    fn finished(&mut self, _: &ActionStatus, _: i64, _: &Event) {}
}
