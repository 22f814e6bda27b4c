//! The agent's own sinks on a watch's event bus: `StoreSink` persists each decision as
//! it is made (with the notifications that report it: `outbox`) and keeps the API's
//! live view, and `AgentLog` logs it with the watch's id.

use super::exactly_once;
use super::lease::LeaseBook;
use super::metrics::Metrics;
use super::types::{cancelled, lock, Live, PollBook, RuleLive};
use crate::core::eval::{Labels, Phase};
use crate::core::events::{now_ms, Event, Sink};
use crate::io::store::{
    Ending, Fence, NewNote, Noted, PollMark, SeriesRow, StoreError, StoreHandle, WatchState,
    Windows,
};
use crate::run::channel;
use crate::run::watch::Signal;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{error, info, warn};

/// Writes each decision of a watch to the store as it is made, and keeps the live view.
///
/// Pending series and resolutions are written here. A series that fires for a rollback
/// or pause rule is not: it is written with its action's claim (`StoreJournal`), in
/// one transaction, so no restart can find it firing without its action. The ending
/// is written here too, on `watch_finished`. With notification channels, what the
/// `HeraldSink` before it rendered goes into the same transaction as the change it
/// reports (a notify rule's firing series waits for its `notify` event, so both are
/// one write); notes of events that change nothing are written alone. A write that
/// fails is logged (`store_error`); the watch goes on. Every write carries the lease's
/// fence; one the store refuses (the lease moved) is logged (`write_fenced`), counted,
/// and the watch stops here.
///
/// `Sink::emit` is synchronous, and the order of writes is the order of events (a
/// write lands before any later sink sees its event), so the store is called through
/// `StoreHandle::blocking`.
pub(super) struct StoreSink {
    /// (Shared with each of its last-poll marks.)
    pub(super) id: Arc<str>,
    pub(super) store: StoreHandle,
    pub(super) metrics: Metrics,
    pub(super) link: SinkLink,
    pub(super) live: Live,
    /// Each rule's `breaches` windows after its last poll: a transition's poll mark
    /// carries them too, so the stored last poll and its windows always agree. Only
    /// rules with `breaches` have any: a watch without allocates nothing here.
    pub(super) windows: std::collections::HashMap<String, Windows>,
    pub(super) herald: Option<Arc<super::outbox::Herald>>,
    /// Firing series of notify rules waiting for their `notify` event (and its notes).
    pub(super) notify_fired: Vec<(i64, SeriesRow)>,
    /// The lease book's entry for this watch, read at each poll without the book
    /// (`lease::Trust`); asked of the book again once it is no longer current.
    pub(super) trust: Option<Arc<super::lease::Trust>>,
}

/// What a watch's `StoreSink` may use of its agent, and nothing more: the lease book
/// (each write's fence), the book of last polls (flushed by the agent's round),
/// whether the agent is stopping (an interrupted watch is then suspended, not
/// cancelled), and the watch's own signal channel (a write the store fenced stops the
/// watch's loop here).
pub(super) struct SinkLink {
    pub(super) leases: Arc<LeaseBook>,
    pub(super) polls: Arc<PollBook>,
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) stop: channel::Sender<Signal>,
}

impl SinkLink {
    /// A write this agent may no longer make (see `exactly_once::write_fenced`); the
    /// watch's loop here stops.
    fn write_fenced(&self, metrics: &Metrics, id: &str, what: &str, why: &str) {
        exactly_once::write_fenced(metrics, &self.leases, id, what, why);
        let _ = self.stop.try_send(Signal::Terminate);
    }
}

impl StoreSink {
    /// The lease's token if it is held and still trusted: `LeaseBook::trusted`, read
    /// from the book's entry kept here while it is current.
    fn trusted(&mut self) -> Option<i64> {
        if let Some(t) = self.trust.as_ref().filter(|t| t.is_current()) {
            return t.token_now();
        }
        self.trust = self.link.leases.trust(&self.id);
        self.trust.as_ref().and_then(|t| t.token_now())
    }

    /// A poll: its mark (batched to the store), its `breaches` windows and the live
    /// view, with as few copies as each needs (this runs for every poll of every
    /// watch).
    #[allow(clippy::too_many_arguments)]
    fn polled(
        &mut self,
        at_ms: i64,
        token: i64,
        rule: &str,
        error: &Option<String>,
        state: &crate::core::events::RuleState,
        value: Option<f64>,
        samples: &[crate::core::events::SeriesValue],
        windows: &Option<Vec<(Labels, String)>>,
    ) {
        self.metrics.evaluations.inc();
        match (self.windows.get_mut(rule), windows) {
            (Some(w), Some(new)) => w.clone_from(new),
            (None, Some(new)) => {
                self.windows.insert(rule.to_string(), new.clone());
            }
            (Some(_), None) => {
                self.windows.remove(rule);
            }
            (None, None) => {}
        }
        let mut live = lock(&self.live);
        let i = match live.iter().position(|(r, _)| **r == *rule) {
            Some(i) => i,
            None => {
                // One more slot at a time: a handful of rules, each added once (a
                // doubling list held 8 slots for 5 rules, 340 bytes a watch).
                live.reserve_exact(1);
                live.push((rule.into(), RuleLive::default()));
                live.len() - 1
            }
        };
        let (name, l) = &mut live[i];
        l.state = Some(state.clone());
        l.value = value;
        l.last_poll_ms = Some(at_ms);
        l.error.clone_from(error);
        let rule = name.clone();
        drop(live);
        self.link.polls.mark(PollMark {
            id: self.id.clone(),
            token,
            rule,
            at_ms,
            ok: error.is_none(),
            data: samples.iter().any(|s| s.value.is_some()),
            windows: windows.clone(),
        });
    }

    /// Writes `change` with the notes rendered so far, in one transaction.
    fn noted(
        &self,
        fence: &Fence,
        what: &str,
        change: Noted<'_>,
        notes: Vec<NewNote>,
    ) -> Option<()> {
        let r = self
            .store
            .blocking(|s| s.write_noted(&self.id, fence, change, &notes));
        let done = self.check(what, r);
        if done.is_some() && !notes.is_empty() {
            if let Some(h) = &self.herald {
                h.wake();
            }
        }
        done
    }

    fn notes(&self) -> Vec<NewNote> {
        self.herald.as_ref().map_or_else(Vec::new, |h| h.take())
    }

    fn check<T>(&self, what: &str, r: Result<T, StoreError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e @ StoreError::Fenced { .. }) => {
                self.link
                    .write_fenced(&self.metrics, &self.id, what, &e.to_string());
                None
            }
            Err(e) => {
                self.metrics.store_errors.inc();
                error!(event = "store_error", watch = %self.id, error = %e, "cannot record {what}");
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn series(
        &self,
        fence: &Fence,
        at_ms: i64,
        rule: &str,
        labels: &Labels,
        phase: Phase,
        since_ms: i64,
        value: Option<f64>,
    ) {
        let row = SeriesRow {
            rule: rule.to_string(),
            labels: labels.clone(),
            phase,
            since_ms,
            last_value: value,
        };
        let r = self.store.blocking(|s| s.put_series(&self.id, fence, &row));
        if self.check("a series' breach state", r).is_some() {
            self.transition_poll(fence, at_ms, rule, value.is_some());
        }
    }

    /// The last poll goes with a transition (always a successful poll), so a catch-up
    /// never starts before it.
    fn transition_poll(&self, fence: &Fence, at_ms: i64, rule: &str, data: bool) {
        let mark = PollMark {
            id: self.id.clone(),
            token: fence.token,
            rule: rule.into(),
            at_ms,
            ok: true,
            data,
            windows: self.windows.get(rule).cloned(),
        };
        let r = self
            .store
            .blocking(|s| s.save_polls(&fence.holder, std::slice::from_ref(&mark)));
        let refused = match r {
            Ok(refused) => !refused.is_empty(),
            Err(e) => {
                self.check("a last poll", Err::<(), _>(e));
                false
            }
        };
        if refused {
            self.link.write_fenced(
                &self.metrics,
                &self.id,
                "a last poll",
                "the store refused it: the lease moved",
            );
        }
    }
}

impl Sink for StoreSink {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        // (A poll, the most frequent event by far, needs only the lease's token.)
        if let Event::Poll {
            rule,
            error,
            state,
            value,
            samples,
            windows,
            ..
        } = event
        {
            if let Some(token) = self.trusted() {
                self.polled(at_ms, token, rule, error, state, *value, samples, windows);
                return;
            }
        }
        // A watch whose lease this agent lost, or no longer trusts (past the trust
        // window: the agent was paused, or the store did not answer), writes nothing
        // more: another agent owns it (or will adopt it) and resumes it from the store
        // and Prometheus.
        let Some(fence) = self.link.leases.fence(&self.id) else {
            if let Event::WatchFinished { .. } = event {
                info!(event = "watch_suspended", watch = %self.id, "this agent lost the watch's lease: it stopped here, and the agent that holds the lease goes on with it");
            }
            drop(self.notes());
            return;
        };
        let fence = &fence;
        match event {
            // (Written above, while the lease is trusted.)
            Event::Poll { .. } => {}
            Event::Pending {
                rule,
                labels,
                value,
                since_ms,
                ..
            } => {
                // Since where the breach began in the data (never after this poll), so
                // a restart counts `for` as the watch did.
                let since = since_ms.map_or(at_ms, |s| s.min(at_ms));
                self.series(fence, at_ms, rule, labels, Phase::Pending, since, *value);
                exactly_once::crash_point("pending_saved");
            }
            Event::Fired {
                rule,
                labels,
                value,
                breached_for_s,
                action: "notify",
                ..
            } => {
                let since = at_ms - (breached_for_s * 1000.0).round() as i64;
                if self.herald.is_some() {
                    // Written with its `notify` event's notes, next.
                    let row = SeriesRow {
                        rule: rule.clone(),
                        labels: labels.clone(),
                        phase: Phase::Firing,
                        since_ms: since,
                        last_value: *value,
                    };
                    self.notify_fired.push((at_ms, row));
                    return;
                }
                self.series(fence, at_ms, rule, labels, Phase::Firing, since, *value)
            }
            Event::Notify { rule, labels, .. } => {
                let i = self
                    .notify_fired
                    .iter()
                    .position(|(_, r)| &r.rule == rule && &r.labels == labels);
                if let Some(i) = i {
                    let (at, row) = self.notify_fired.remove(i);
                    let notes = self.notes();
                    self.noted(
                        fence,
                        "a series' breach state",
                        Noted::PutSeries(&row),
                        notes,
                    );
                    self.transition_poll(fence, at, rule, row.last_value.is_some());
                }
            }
            Event::Resolved {
                rule,
                labels,
                value,
                ..
            } => {
                let r = self
                    .store
                    .blocking(|s| s.clear_series(&self.id, fence, rule, labels));
                if self.check("a resolved series", r).is_some() {
                    self.transition_poll(fence, at_ms, rule, value.is_some());
                }
            }
            Event::ActionFinished {
                action, succeeded, ..
            } => {
                let result = if *succeeded { "succeeded" } else { "failed" };
                self.metrics
                    .actions
                    .with_label_values(&[action, result])
                    .inc();
            }
            Event::WatchFinished {
                outcome,
                exit_code,
                detail,
                ..
            } => {
                let ending = match *outcome {
                    "interrupted" if self.link.stopping.load(Ordering::SeqCst) => {
                        info!(event = "watch_suspended", watch = %self.id, "agent stopping: the watch resumes at the next start");
                        return;
                    }
                    "interrupted" => cancelled(),
                    _ => Ending {
                        state: WatchState::Finished,
                        outcome: outcome.to_string(),
                        exit_code: *exit_code,
                        detail: detail.clone(),
                        at_ms: now_ms(),
                    },
                };
                let notes = self.notes();
                let done = self.noted(fence, "how the watch ended", Noted::Finish(&ending), notes);
                if done.is_some() {
                    exactly_once::crash_point("ending_saved");
                }
            }
            // A breach carried over from before the watch ended: recorded beside the
            // reading (`run::preflight::still_carried`), so a restart never carries it
            // over again.
            Event::PreExistingOver { rule, labels, .. } => {
                let key = crate::run::preflight::pre_existing_over_key(rule, labels);
                let r = self
                    .store
                    .blocking(|s| s.put_baselines(&self.id, fence, &key, &[]));
                self.check("the end of a breach carried over from before the watch", r);
            }
            _ => {}
        }
        // What this event rendered and no state change took along: written alone.
        let notes = self.notes();
        if !notes.is_empty() {
            self.noted(fence, "notifications", Noted::Nothing, notes);
        }
    }
}

/// The agent's log of a watch: every decision with the watch's id; polls only when
/// they fail (5,000 watches polling would drown everything else).
pub(super) struct AgentLog {
    pub(super) id: String,
}

impl Sink for AgentLog {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        match event {
            Event::Poll { error: None, .. } => {}
            Event::Poll {
                rule,
                error: Some(e),
                ..
            } => {
                warn!(event = "query_failed", watch = %self.id, rule = %rule, error = %e, "query failed; the rule keeps its state")
            }
            Event::WatchStarted { .. } => {
                info!(event = "watch_started", watch = %self.id, unix_ms = at_ms, "watch started")
            }
            Event::WatchFinished {
                outcome,
                exit_code,
                detail,
                ..
            } => {
                info!(event = "watch_finished", watch = %self.id, outcome = %outcome, exit_code, "{detail}")
            }
            other => {
                let detail = serde_json::to_string(other).unwrap_or_default();
                info!(event = other.name(), watch = %self.id, unix_ms = at_ms, detail = %detail, "{}", other.name())
            }
        }
    }
}
