//! The state of one running watch (`Watch`: the evaluators, what ran, the journal,
//! the sinks), owned by the decision loop alone, and when it goes blind (`Blind`).
//! Its methods live by what they do: `handle.rs` (a poll, the end) and `act.rs`
//! (a command).

use super::journal::Journal;
use super::outcome::Signal;
use super::start::OrderMsg;

/// Where a person's order is answered.
pub(super) type Answer =
    tokio::sync::oneshot::Sender<Result<String, crate::core::control::ControlError>>;
use super::start::{ClockAnchor, Judged, PollDone, WatchOptions};
use crate::core::control::ControlState;
use crate::core::eval::{Labels, Poll, RuleEval};
use crate::core::events::Sinks;
use crate::core::rules::WatchSpec;
use crate::io::action::ActionStatus;
use crate::run::channel;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// The state of one running watch.
pub(super) struct Watch<'a, R, S> {
    pub(super) spec: &'a WatchSpec,
    /// Where the steps of a pending breach are read (`run::steps`), and its
    /// confirming poll asked.
    pub(super) source: std::sync::Arc<S>,
    /// The watch's clock: `start` (an instant) is `elapsed` into the watch, and the
    /// watch's time zero is `origin` (Unix ms).
    pub(super) start: Instant,
    pub(super) elapsed: Duration,
    pub(super) origin: crate::run::steps::Origin,
    /// What the loop keeps of each rule besides its evaluator, in the rule file's
    /// order.
    pub(super) per_rule: Vec<RuleLoop>,
    /// How long after an instant the confirming poll asks about it: `watch.lag` plus
    /// how far this clock may be ahead of Prometheus's.
    pub(super) lag: Duration,
    /// The clock the watch is timed on (`Start::clock`; None: this machine's wall
    /// clock): what the watch stamps outside itself (a silence's start and end) is
    /// read on it, so an agent whose own clock is off never silences the wrong hour.
    pub(super) clock: Option<ClockAnchor>,
    pub(super) runner: &'a R,
    pub(super) opts: &'a WatchOptions,
    pub(super) signals: &'a mut channel::Receiver<Signal>,
    pub(super) sinks: &'a mut Sinks,
    pub(super) evals: Vec<RuleEval>,
    pub(super) paused_by: Option<String>,
    /// The rule whose pause failed, and how.
    pub(super) pause_failed: Option<(String, ActionStatus)>,
    pub(super) journal: Box<dyn Journal>,
    /// A signal that arrived while a command ran; honoured once it is done.
    pub(super) deferred_signal: Option<Signal>,
    /// Each rule's `baseline: before:` samples, as the poll the evaluator is given.
    pub(super) before: Vec<Option<Poll>>,
    /// Series already warned about having no baseline (rule index, labels).
    pub(super) warned_no_baseline: BTreeSet<(usize, Labels)>,
    /// Rules whose unmatched guard was logged (once per rule).
    pub(super) warned_guard: BTreeSet<usize>,
    /// Silences still being created: they run beside the watch and its ending, never
    /// in front of them (`Silencing`).
    pub(super) silences: Vec<Silencing>,
    /// What people's orders so far add up to (`core::control`): a hold, extensions.
    pub(super) control: ControlState,
    /// Where people's orders arrive (`manual.rs`); None: nobody can give any.
    pub(super) orders: Option<channel::Receiver<OrderMsg>>,
    /// Rules the hold's end found firing while their last poll had failed: each acts
    /// at its next good poll if it still fires then (`manual.rs`), never on a value
    /// its failed polls could not confirm.
    pub(super) owed: BTreeSet<usize>,
    /// The answer to a person's rollback or pause, sent by `act` once the command's
    /// claim committed (or could not be: nothing ran), never before.
    pub(super) answer: Option<(Answer, String)>,
}

/// What the loop keeps of one rule besides its evaluator: one list of these, not a
/// list for each (issue 21: six lists were six allocations and 144 bytes of every
/// watch's future).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RuleLoop {
    /// The rule's data resolution (`WatchSpec::step_for`).
    pub(super) step: Duration,
    /// The rule's last poll (the onset of a breach is looked for since then).
    pub(super) last_at: Option<Duration>,
    /// The last confirmation tried by the timer (not tried again by it).
    pub(super) tried: Option<Duration>,
    /// What its polls have shown so far (a resume carries it over).
    pub(super) judged: Judged,
}

/// When the watch goes blind: `max_blind` after the last successful query, on the
/// watch's clock (time since it was created).
pub(super) struct Blind {
    pub(super) start: Instant,
    /// The watch's clock at `start`.
    pub(super) elapsed: Duration,
    /// The watch's clock at the last successful query (or at `start`).
    pub(super) last_ok: Duration,
    pub(super) max_blind: Duration,
}

impl Blind {
    pub(super) fn saw(&mut self, done: &PollDone) {
        if done.result.is_ok() {
            self.last_ok = self.last_ok.max(done.at);
        }
    }
    pub(super) fn deadline(&self) -> Instant {
        self.start + (self.last_ok + self.max_blind).saturating_sub(self.elapsed)
    }
}

/// A silence being created beside a rollback.
pub(super) struct Silencing {
    pub(super) task: tokio::task::JoinHandle<Result<String, String>>,
    pub(super) rule: String,
    pub(super) matchers: std::collections::BTreeMap<String, String>,
    pub(super) ends_at: String,
}
