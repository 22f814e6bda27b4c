//! What the decision loop does with one poll (`handle`: read it through
//! `RuleEval::read`, emit what it means, act on what fired) and with the watch's end
//! (`finish`: `core::ending` first, then what the actions did).

use super::act::By;
use super::journal::FiredSeries;
use super::outcome::{Outcome, Signal};
use super::start::{labels_json, unix_ms, PollDone};
use super::state::{Blind, Watch};
use crate::core::ending::{unjudged, RuleSeen};
use crate::core::eval::{Evidence, Extra, Phase, Poll, Transition};
use crate::core::events::{now_ms, Event, SeriesValue, Sinks};
use crate::core::rules::{Action, ExtraKind};
use crate::io::action::{ActionRunner, ActionStatus};
use crate::io::prom::{HistorySource, MetricsSource};

use crate::run::channel;
use std::time::Duration;
use tracing::{error, warn};

/// Awaits `fut` unless a signal comes first: the signal is then recorded (the loop ends
/// on it at once, as on one between polls) and the work is dropped (None).
pub(super) async fn unless_signalled<T>(
    signals: &mut channel::Receiver<Signal>,
    sinks: &mut Sinks,
    deferred: &mut Option<Signal>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    tokio::select! {
        biased;
        r = &mut fut => Some(r),
        Some(sig) = signals.recv() => {
            sinks.emit(now_ms(), &Event::Signal { signal: format!("{sig:?}"), during_action: false });
            deferred.get_or_insert(sig);
            None
        }
    }
}

impl<R: ActionRunner, S: MetricsSource + HistorySource> Watch<'_, R, S> {
    pub(super) fn finish(&self) -> Outcome {
        for (rule, eval) in self.spec.rules.iter().zip(&self.evals) {
            for (labels, s) in eval.series() {
                if s.phase == Phase::Pending {
                    warn!(event = "ended_pending", rule = %rule.name, labels = %labels_json(labels), "watch ended while this series was still pending (breached, but not for `for`)");
                }
            }
        }
        // What the rules saw decides first (`core::ending`, as replay decides it).
        let seen: Vec<RuleSeen> = self
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleSeen {
                name: &r.name,
                last_ok: self.per_rule[i].judged.last_ok,
                ever_ok: self.per_rule[i].judged.ever_ok,
                insufficient: self.evals[i].never_judged(),
                ever_data: self.per_rule[i].judged.ever_data,
                expect_data: r.expect_data,
                held_unconfirmed: self.owed.contains(&i),
            })
            .collect();
        if let Some(why) = unjudged(&seen) {
            let reason = why.reason();
            error!(event = why.event(), rules = ?why.rules(), "{reason}");
            return Outcome::Inconclusive { reason };
        }
        match &self.pause_failed {
            Some((rule, ActionStatus::Unknown)) => {
                return Outcome::ActionUnknown {
                    action: "pause",
                    rule: rule.clone(),
                }
            }
            Some((rule, status)) => {
                return Outcome::PauseFailed {
                    rule: rule.clone(),
                    status: status.clone(),
                }
            }
            None => {}
        }
        match &self.paused_by {
            Some(rule) => Outcome::Paused { rule: rule.clone() },
            None => Outcome::Healthy,
        }
    }

    /// What the end of the watch must say besides its outcome: rules that were judged
    /// but never returned a series (they passed on `no_data` alone).
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (rule, r) in self.spec.rules.iter().zip(&self.per_rule) {
            if r.judged.ever_ok && !r.judged.ever_data && !rule.expect_data {
                let w = format!(
                    "rule `{}` returned no series at any poll of the watch (a renamed metric or label?); it was judged by `no_data: {}` alone",
                    rule.name,
                    rule.no_data.as_str()
                );
                warn!(event = "never_data", rule = %rule.name, "{w}");
                out.push(w);
            }
        }
        out
    }

    /// Handles the polls already waiting in the queue (up to `until` on the watch's
    /// clock, if given); Some(outcome) if one of them ends the watch.
    pub(super) async fn drain(
        &mut self,
        rx: &mut channel::Receiver<Box<PollDone>>,
        blind: &mut Blind,
        until: Option<Duration>,
    ) -> Option<Outcome> {
        while let Ok(done) = rx.try_recv() {
            if self.deferred_signal.is_some() {
                return None;
            }
            if until.is_some_and(|u| done.at >= u) {
                continue;
            }
            blind.saw(&done);
            if let Some(o) = Box::pin(self.handle(*done)).await {
                return Some(o);
            }
        }
        None
    }

    /// Judges the polls a resume caught up on, in their order, until one ends the
    /// watch (Some) or a signal arrived while one was handled.
    pub(super) async fn handle_backlog(&mut self, backlog: Vec<PollDone>) -> Option<Outcome> {
        for done in backlog {
            if self.deferred_signal.is_some() {
                break;
            }
            if let Some(outcome) = Box::pin(self.handle(done)).await {
                return Some(outcome);
            }
        }
        None
    }

    /// Handles one poll; Some(outcome) ends the watch. A pending breach whose `for`
    /// elapsed before this poll is confirmed first, at its own instant
    /// (`confirm.rs`): a confirmation the timer could not make (a failed query, a
    /// catch-up after a restart) is never skipped.
    pub(super) async fn handle(&mut self, done: PollDone) -> Option<Outcome> {
        let mut last = None;
        while let Some(c) = self.evals[done.rule]
            .next_due()
            .filter(|c| *c < done.at && Some(*c) != last)
        {
            last = Some(c);
            if let Some(o) = self.confirm_poll(done.rule, c).await {
                return Some(o);
            }
        }
        self.handle_one(done).await
    }

    /// Reads one poll (confirming the pending span first when `for` has elapsed at
    /// it, and looking for where a breach that begins at it began) and acts on it.
    pub(super) async fn handle_one(&mut self, done: PollDone) -> Option<Outcome> {
        let i = done.rule;
        // A tick's poll that answered after a confirming poll of the same or a later
        // instant was read: the rule has already been judged at or past it (judging
        // the same instant again would record it twice, where replay records it once).
        if self.per_rule[i].last_at.is_some_and(|last| done.at <= last) {
            return None;
        }
        let spec = self.spec;
        let rule = &spec.rules[i];
        let at_ms = unix_ms(done.wall);
        // The judges' queries of the same instant; a missing one (a poll rebuilt from
        // history without them) counts as failed, so it is never taken as evidence.
        let kinds = rule.extra_queries();
        let mut extra_results = done.extra.into_iter();
        let mut extra_polls: Vec<(ExtraKind, Poll)> = Vec::with_capacity(kinds.len());
        let mut extra_error = None;
        for (kind, q, _) in &kinds {
            let what = match kind {
                ExtraKind::Stable => "stable (`compare.stable`)",
                ExtraKind::Guard => "guard (`min_traffic.query`)",
                ExtraKind::Baseline => "baseline (`baseline.offset`)",
            };
            match extra_results.next() {
                Some(Ok(r)) => extra_polls.push((*kind, Poll::Samples(r.samples))),
                Some(Err(e)) => {
                    if e.is_bad_query() && !self.per_rule[i].judged.ever_ok {
                        error!(event = "query_rejected", rule = %rule.name, error = %e, query = %q, "Prometheus rejects this rule's {what} query; fix the rule");
                        return Some(Outcome::QueryRejected {
                            rule: rule.name.clone(),
                            message: format!("the {what} query: {e}"),
                        });
                    }
                    extra_error.get_or_insert(format!("the {what} query failed: {e}"));
                    extra_polls.push((*kind, Poll::Failed));
                }
                None => {
                    extra_error.get_or_insert(format!("the {what} query was not run"));
                    extra_polls.push((*kind, Poll::Failed));
                }
            }
        }
        let (poll, error, warnings) = match done.result {
            Ok(r) => {
                // (`ever_ok` once the evaluator took the poll: a guard it cannot match
                // fails the poll as a failed guard query would.)
                let ok = extra_error.is_none();
                self.per_rule[i].judged.last_ok = ok;
                if r.samples.iter().any(|s| !s.value.is_nan()) {
                    self.per_rule[i].judged.ever_data = true;
                }
                (Poll::Samples(r.samples), extra_error, r.warnings)
            }
            Err(e) => {
                self.per_rule[i].judged.last_ok = false;
                if e.is_bad_query() && !self.per_rule[i].judged.ever_ok {
                    error!(event = "query_rejected", rule = %rule.name, error = %e, query = %rule.query, "Prometheus rejects this rule's query; fix the rule");
                    return Some(Outcome::QueryRejected {
                        rule: rule.name.clone(),
                        message: e.to_string(),
                    });
                }
                (Poll::Failed, Some(e.to_string()), Vec::new())
            }
        };
        let pick = |k: ExtraKind| {
            extra_polls
                .iter()
                .find(|(kind, _)| *kind == k)
                .map(|(_, p)| p)
        };
        let extra = Extra {
            guard: pick(ExtraKind::Guard),
            baseline: pick(ExtraKind::Baseline).or(self.before[i].as_ref()),
            stable: pick(ExtraKind::Stable),
        };
        // What the poll means, with `for` counted in the data (`run::steps::read`).
        let prev = self.per_rule[i].last_at.replace(done.at);
        // (Its range queries are awaited here, in the decision loop: a signal that comes
        // meanwhile ends the watch at once, never after a slow Prometheus answered.)
        let read = crate::run::steps::read(
            &*self.source,
            rule,
            &mut self.evals[i],
            self.origin,
            self.per_rule[i].step,
            prev,
            done.at,
            &poll,
            extra,
            self.before[i].as_ref(),
        );
        let reading =
            unless_signalled(self.signals, self.sinks, &mut self.deferred_signal, read).await?;
        // (What is used of the notes below, copied out: usually nothing to copy.)
        let notes = self.evals[i].notes();
        let guard_refused = notes.guard_refused().map(str::to_owned);
        let no_baseline = notes.no_baseline().to_vec();
        let pre_existing_over = notes.pre_existing_over().to_vec();
        let insufficient = notes.insufficient;
        // A guard that cannot be matched is a failed poll, never a silent sum.
        let error = match guard_refused {
            Some(why) => {
                self.per_rule[i].judged.last_ok = false;
                if self.warned_guard.insert(i) {
                    warn!(event = "guard_unmatched", rule = %rule.name, "{why}");
                }
                error.or(Some(why))
            }
            None => error,
        };
        self.per_rule[i].judged.ever_ok |= self.per_rule[i].judged.last_ok;
        for labels in &no_baseline {
            if self.warned_no_baseline.insert((i, labels.clone())) {
                let nb = rule.judging.baseline.map(|b| b.no_baseline);
                warn!(event = "no_baseline", rule = %rule.name, labels = %labels_json(labels),
                    "this series has no baseline (no value at the baseline's time); judged by `no_baseline: {}`",
                    nb.map_or("hold", |n| n.as_str()));
            }
        }
        // An `slo` rule's series as judged (one burn score each), not its windows.
        let judged = crate::core::eval::slo::view(rule.judging.slo.as_ref(), &poll).0;
        let samples: Vec<SeriesValue> = match judged.as_ref() {
            Poll::Samples(s) => s
                .iter()
                .map(|s| SeriesValue {
                    labels: s.labels.clone(),
                    value: (!s.value.is_nan()).then_some(s.value),
                })
                .collect(),
            Poll::Failed => Vec::new(),
        };
        self.sinks.emit(
            at_ms,
            &Event::Poll {
                rule: rule.name.clone(),
                samples,
                error,
                warnings,
                state: reading.state,
                value: reading.value,
                reference: reading.reference,
                insufficient,
                evidence: reading.evidence,
                windows: self.evals[i].windows(),
            },
        );
        for (labels, value) in pre_existing_over {
            self.sinks.emit(
                at_ms,
                &Event::PreExistingOver {
                    rule: rule.name.clone(),
                    labels,
                    value,
                },
            );
        }

        let threshold = rule.condition();
        let mut fired: Vec<FiredSeries> = Vec::new();
        let mut fired_evidence: Vec<Evidence> = Vec::new();
        for t in reading.transitions {
            let event = match t {
                Transition::Pending {
                    labels,
                    value,
                    evidence,
                } => Event::Pending {
                    rule: rule.name.clone(),
                    since_ms: self.evals[i]
                        .series()
                        .get(&labels)
                        .map(|s| self.origin.ms(s.since)),
                    labels,
                    value,
                    threshold: threshold.clone(),
                    for_s: rule.for_.as_secs_f64(),
                    evidence,
                },
                Transition::Resolved {
                    labels,
                    from,
                    value,
                    breached_for,
                    evidence,
                } => Event::Resolved {
                    rule: rule.name.clone(),
                    labels,
                    value,
                    threshold: threshold.clone(),
                    was: if from == Phase::Firing {
                        "firing"
                    } else {
                        "pending"
                    },
                    breached_for_s: breached_for.as_secs_f64(),
                    evidence,
                },
                Transition::Fired {
                    labels,
                    value,
                    breached_for,
                    evidence,
                } => {
                    fired.push(FiredSeries {
                        labels: labels.clone(),
                        value,
                        since: done.at.saturating_sub(breached_for),
                    });
                    fired_evidence.push(evidence.clone());
                    Event::Fired {
                        rule: rule.name.clone(),
                        labels,
                        value,
                        threshold: threshold.clone(),
                        breached_for_s: breached_for.as_secs_f64(),
                        action: rule.action.as_str(),
                        evidence,
                    }
                }
            };
            self.sinks.emit(at_ms, &event);
        }
        if fired.is_empty() {
            return self.owed_now(i, done.at, at_ms).await;
        }
        self.owed.remove(&i);
        self.act_on(i, fired, fired_evidence, done.at, at_ms).await
    }

    /// Acts on what rule `i` fired at `at`: its notification, pause or rollback, or,
    /// while a person holds automatic actions, `held_back` (it acts when the hold
    /// ends if it still fires then: `manual.rs`).
    pub(super) async fn act_on(
        &mut self,
        i: usize,
        fired: Vec<FiredSeries>,
        fired_evidence: Vec<Evidence>,
        at: Duration,
        at_ms: i64,
    ) -> Option<Outcome> {
        let spec = self.spec;
        let rule = &spec.rules[i];
        let threshold = rule.condition();
        if rule.action != Action::Notify {
            if let Some(hold) = self.held().cloned() {
                for f in &fired {
                    self.sinks.emit(
                        at_ms,
                        &Event::HeldBack {
                            rule: rule.name.clone(),
                            action: rule.action.as_str(),
                            labels: f.labels.clone(),
                            value: f.value,
                            threshold: threshold.clone(),
                            until_ms: hold.until_ms,
                            held_by: hold.who.clone(),
                        },
                    );
                }
                return None;
            }
        }
        match rule.action {
            Action::Notify => {
                for (f, evidence) in fired.into_iter().zip(fired_evidence) {
                    self.sinks.emit(
                        at_ms,
                        &Event::Notify {
                            rule: rule.name.clone(),
                            value: f.value,
                            threshold: threshold.clone(),
                            breached_for_s: at.saturating_sub(f.since).as_secs_f64(),
                            labels: f.labels,
                            evidence,
                        },
                    )
                }
            }
            Action::Pause => {
                // One pause per watch: after it ran (or failed), later firings are noted.
                let by = self
                    .paused_by
                    .clone()
                    .or_else(|| self.pause_failed.as_ref().map(|(r, _)| r.clone()));
                if let Some(by) = by {
                    let ev = Event::PauseSkipped {
                        rule: rule.name.clone(),
                        paused_by: by,
                    };
                    self.sinks.emit(at_ms, &ev);
                    return None;
                }
                let cmd = spec
                    .pause
                    .as_ref()
                    .expect("validated: pause rules have a pause command");
                let report = self.act("pause", By::Rule(rule), cmd, &fired, at).await;
                match report {
                    Some(r) if !r.status.succeeded() => {
                        // The agreed pause could not be carried out: say so (the
                        // `pause_failed` notification went out with the result), and
                        // keep watching, so that the rollback rules still protect the
                        // rest of the window.
                        error!(event = "pause_failed", rule = %rule.name, status = %r.status, "the pause command {}: act by hand; the watch goes on and its rollback rules still act", r.status);
                        self.pause_failed = Some((rule.name.clone(), r.status));
                    }
                    _ => self.paused_by = Some(rule.name.clone()),
                }
            }
            Action::Rollback => {
                let cmd = spec
                    .rollback
                    .as_ref()
                    .expect("validated: rollback rules have a rollback command");
                let report = self.act("rollback", By::Rule(rule), cmd, &fired, at).await;
                return Some(match report {
                    None => Outcome::RolledBack {
                        rule: rule.name.clone(),
                        dry_run: true,
                    },
                    Some(r) if r.status.succeeded() => Outcome::RolledBack {
                        rule: rule.name.clone(),
                        dry_run: false,
                    },
                    Some(r) => Outcome::RollbackFailed {
                        rule: rule.name.clone(),
                        status: r.status,
                    },
                });
            }
        }
        None
    }
}
