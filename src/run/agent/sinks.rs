//! The agent's own sinks on a watch's event bus: `StoreSink` persists each decision as
//! it is made (and keeps the API's live view), `AgentLog` logs it with the watch's id,
//! and `NoInterrupted` keeps notifications quiet about watches the agent suspends.

use super::exactly_once;
use super::metrics::Metrics;
use super::{cancelled, lock, Agent, Live};
use crate::core::eval::{Labels, Phase};
use crate::core::events::{now_ms, Event, Sink};
use crate::io::store::{
    Ending, Fence, PollMark, SeriesRow, Store, StoreError, WatchState, Windows,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{error, info, warn};

/// Writes each decision of a watch to the store as it is made, and keeps the live view.
///
/// Pending series and resolutions are written here. A series that fires for a rollback
/// or pause rule is not: it is written with its action's claim (`StoreJournal`), in
/// one transaction, so no restart can find it firing without its action. The ending
/// is written here too, on `watch_finished`, before any later sink (notifications)
/// sees it. A write that fails is logged (`store_error`); the watch goes on. Every
/// write carries the lease's fence; one the store refuses (the lease moved) is logged
/// (`write_fenced`), counted, and the watch stops here.
pub(super) struct StoreSink {
    pub(super) id: String,
    pub(super) store: Arc<dyn Store>,
    pub(super) metrics: Metrics,
    pub(super) agent: Arc<Agent>,
    pub(super) live: Live,
    /// Each rule's `breaches` windows after its last poll: a transition's poll mark
    /// carries them too, so the stored last poll and its windows always agree.
    pub(super) windows: std::collections::HashMap<String, Option<Windows>>,
}

impl StoreSink {
    fn check<T>(&self, what: &str, r: Result<T, StoreError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e @ StoreError::Fenced { .. }) => {
                self.agent.write_fenced(&self.id, what, &e.to_string());
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
        let r = self.store.put_series(
            &self.id,
            fence,
            &SeriesRow {
                rule: rule.to_string(),
                labels: labels.clone(),
                phase,
                since_ms,
                last_value: value,
            },
        );
        if self.check("a series' breach state", r).is_some() {
            self.transition_poll(fence, at_ms, rule, value.is_some());
        }
    }

    /// The last poll goes with a transition (always a successful poll), so a catch-up
    /// never starts before it.
    fn transition_poll(&self, fence: &Fence, at_ms: i64, rule: &str, data: bool) {
        let r = self.store.save_polls(
            &fence.holder,
            &[PollMark {
                id: self.id.clone(),
                token: fence.token,
                rule: rule.to_string(),
                at_ms,
                ok: true,
                data,
                windows: self.windows.get(rule).cloned().flatten(),
            }],
        );
        let refused = match r {
            Ok(refused) => !refused.is_empty(),
            Err(e) => {
                self.check("a last poll", Err::<(), _>(e));
                false
            }
        };
        if refused {
            self.agent.write_fenced(
                &self.id,
                "a last poll",
                "the store refused it: the lease moved",
            );
        }
    }
}

impl Sink for StoreSink {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        // A watch whose lease this agent lost, or no longer trusts (past the trust
        // window: the agent was paused, or the store did not answer), writes nothing
        // more: another agent owns it (or will adopt it) and resumes it from the store
        // and Prometheus.
        let Some(fence) = self.agent.leases.fence(&self.id) else {
            if let Event::WatchFinished { .. } = event {
                info!(event = "watch_suspended", watch = %self.id, "this agent lost the watch's lease: it stopped here, and the agent that holds the lease goes on with it");
            }
            return;
        };
        let fence = &fence;
        match event {
            Event::Poll {
                rule,
                error,
                state,
                value,
                samples,
                windows,
                ..
            } => {
                self.metrics.evaluations.inc();
                self.windows.insert(rule.clone(), windows.clone());
                self.agent.polls.mark(PollMark {
                    id: self.id.clone(),
                    token: fence.token,
                    rule: rule.clone(),
                    at_ms,
                    ok: error.is_none(),
                    data: samples.iter().any(|s| s.value.is_some()),
                    windows: windows.clone(),
                });
                let mut live = lock(&self.live);
                let l = live.entry(rule.clone()).or_default();
                l.state = Some(state.clone());
                l.value = *value;
                l.last_poll_ms = Some(at_ms);
                l.error = error.clone();
            }
            Event::Pending {
                rule,
                labels,
                value,
                ..
            } => {
                self.series(fence, at_ms, rule, labels, Phase::Pending, at_ms, *value);
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
                self.series(fence, at_ms, rule, labels, Phase::Firing, since, *value)
            }
            Event::Resolved {
                rule,
                labels,
                value,
                ..
            } => {
                let r = self.store.clear_series(&self.id, fence, rule, labels);
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
                    "interrupted" if self.agent.shutting_down.load(Ordering::SeqCst) => {
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
                let r = self.store.finish(&self.id, fence, &ending);
                if self.check("how the watch ended", r).is_some() {
                    exactly_once::crash_point("ending_saved");
                }
            }
            _ => {}
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

/// Notifications, except "interrupted": a watch the agent suspends to stop resumes at
/// the next start, and a cancelled one was cancelled on purpose.
pub(super) struct NoInterrupted(
    pub(super) crate::io::notify::Notifier,
    /// A watch whose lease was lost notifies nothing more (its new owner does).
    pub(super) Arc<super::lease::LeaseBook>,
    pub(super) String,
);

impl Sink for NoInterrupted {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        if self.1.trusted(&self.2).is_none() {
            return;
        }
        if let Event::WatchFinished {
            outcome: "interrupted",
            ..
        } = event
        {
            return;
        }
        self.0.emit(at_ms, event);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}
