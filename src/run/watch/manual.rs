//! People's orders in the decision loop (issue 22): roll back now, pause now, hold
//! automatic actions, release a hold, extend the watch, end it as healthy.
//!
//! Why here: the decision loop is the only place that starts a command, so a person's
//! rollback and a rule's can never both run (a rollback ends the loop; both go through
//! `act`, whose claim allows one per watch and kind, even across agents). Whether an
//! order applies is decided once, in `core::control` (`ControlState::apply`); this file
//! only carries it out and says what happened (`Event::Manual`, `Event::HeldBack`,
//! `Event::HoldEnded`).
//!
//! A hold suspends automatic pauses and rollbacks, never the judging: a rule that
//! fires during it is reported at once (`HeldBack`) and acts when the hold ends if its
//! evaluator still has a firing series then. That test reads the evaluators, not a
//! note kept beside them, so it holds after a restart too.

use super::act::By;
use super::journal::FiredSeries;
use super::outcome::Outcome;
use super::start::OrderMsg;
use super::state::Watch;
use crate::core::control::{Control, ControlError, Hold, Order};
use crate::core::eval::{Evidence, Phase};
use crate::core::events::{rfc3339_ms, Event};
use crate::core::rules::Action;
use crate::io::action::ActionRunner;
use crate::io::prom::{HistorySource, MetricsSource};
use crate::run::channel;
use std::time::Duration;
use tokio::time::Instant;

/// The next order, or never when the watch takes none.
pub(super) async fn next_order(
    orders: &mut Option<channel::Receiver<OrderMsg>>,
) -> Option<OrderMsg> {
    match orders {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl<R: ActionRunner, S: MetricsSource + HistorySource> Watch<'_, R, S> {
    /// The watch's clock now (time since it was created).
    pub(super) fn now_at(&self) -> Duration {
        self.elapsed + Instant::now().saturating_duration_since(self.start)
    }

    /// How long the watch lasts, with the extensions people gave it.
    pub(super) fn duration(&self) -> Duration {
        self.opts.duration + self.control.extended
    }

    /// When the watch ends on the loop's clock.
    pub(super) fn end_instant(&self) -> Instant {
        self.instant(self.duration())
    }

    /// The hold in force now, if any.
    pub(super) fn held(&self) -> Option<&Hold> {
        self.control.held_at(self.origin.ms(self.now_at()))
    }

    /// When the hold in force (or one that ran out and was not ended yet) ends.
    pub(super) fn hold_deadline(&self) -> Option<Instant> {
        let h = self.control.hold.as_ref()?;
        Some(self.instant(self.origin.at(h.until_ms)))
    }

    /// Carries out one order; Some(outcome) when it ends the watch.
    pub(super) async fn order(&mut self, msg: OrderMsg) -> Option<Outcome> {
        let OrderMsg { control, reply } = msg;
        let mut control = *control;
        // Applied as of when it was given (on the watch's clock: the agent stamps it
        // with the store's, as the watch is timed), so that a hold's end is the same
        // live and when a restart folds the stored orders again; an order without a
        // time, or one from the future, as of now.
        let now = self.origin.ms(self.now_at());
        if control.at_ms <= 0 || control.at_ms > now {
            control.at_ms = now;
        }
        let created = self.origin.0;
        let refused = |why: String| Err(ControlError::Refused(why));
        let checked = match control.order {
            Order::Rollback if self.spec.rollback.is_none() => {
                refused("the watch's rule file has no `rollback:` command".into())
            }
            Order::Pause if self.spec.pause.is_none() => {
                refused("the watch's rule file has no `pause:` command".into())
            }
            Order::Pause if self.paused_by.is_some() || self.pause_failed.is_some() => {
                let by = self
                    .paused_by
                    .clone()
                    .or_else(|| self.pause_failed.as_ref().map(|(r, _)| r.clone()))
                    .unwrap_or_default();
                refused(format!(
                    "the pause command already ran in this watch (for {by}); it runs once"
                ))
            }
            _ => self.control.apply(&control, created, self.opts.duration),
        };
        if let Err(e) = checked {
            let _ = reply.send(Err(e));
            return None;
        }
        let ends_ms = self.control.end_ms(created, self.opts.duration);
        let event = Event::Manual {
            order: control.order.name(),
            by: control.who.clone(),
            reason: control.reason.clone(),
            until_ms: self
                .control
                .hold
                .as_ref()
                .map(|h| h.until_ms)
                .filter(|_| matches!(control.order, Order::Hold(_))),
            ends_ms: matches!(control.order, Order::Extend(_)).then_some(ends_ms),
        };
        let answer = crate::core::events::manual_text(&event).unwrap_or_default();
        self.sinks.emit(control.at_ms, &event);
        match control.order {
            // Answered by `act` once the command's claim committed, never before: an
            // order settled as done always has its claim.
            Order::Rollback | Order::Pause => {
                let text = format!("{answer}; the {} command started", control.order);
                self.answer = Some((reply, text));
            }
            Order::Extend(_) => {
                let _ = reply.send(Ok(format!("{answer} ({})", rfc3339_ms(ends_ms))));
            }
            _ => {
                let _ = reply.send(Ok(answer));
            }
        }
        match control.order {
            Order::Rollback => Some(self.by_hand("rollback", &control).await),
            Order::Pause => {
                self.by_hand("pause", &control).await;
                None
            }
            Order::Release => self.hold_over(Some(control.who.clone())).await,
            Order::End => Some(Outcome::DeclaredHealthy {
                by: control.who,
                reason: control.reason,
            }),
            Order::Supersede => Some(Outcome::Superseded {
                reason: control.reason,
            }),
            Order::Hold(_) | Order::Extend(_) => None,
        }
    }

    /// Runs the rollback or pause command on a person's order: the same claim, the
    /// same command and the same events as a rule's, decided by `manual:NAME`.
    /// Returns what a rollback ends the watch with (a pause's outcome is kept, as a
    /// rule's is, for the end).
    async fn by_hand(&mut self, kind: &'static str, control: &Control) -> Outcome {
        let spec = self.spec;
        let cmd = match kind {
            "rollback" => spec.rollback.as_ref(),
            _ => spec.pause.as_ref(),
        }
        .expect("checked before: the command exists");
        let at = self.now_at();
        let name = By::Person(control).name();
        let report = self.act(kind, By::Person(control), cmd, &[], at).await;
        let ok = report.as_ref().is_none_or(|r| r.status.succeeded());
        match (kind, report) {
            ("rollback", None) => Outcome::RolledBack {
                rule: name,
                dry_run: true,
            },
            ("rollback", Some(r)) if ok => {
                let _ = r;
                Outcome::RolledBack {
                    rule: name,
                    dry_run: false,
                }
            }
            ("rollback", Some(r)) => Outcome::RollbackFailed {
                rule: name,
                status: r.status,
            },
            (_, Some(r)) if !ok => {
                self.pause_failed = Some((name.clone(), r.status.clone()));
                Outcome::PauseFailed {
                    rule: name,
                    status: r.status,
                }
            }
            _ => {
                self.paused_by = Some(name.clone());
                Outcome::Paused { rule: name }
            }
        }
    }

    /// The hold ended (`released_by` a person, or run out): every pause or rollback
    /// rule that still fires acts now, in the rule file's order; one whose last poll
    /// failed is owed, and acts at its next good poll if it still fires then
    /// (`owed_now`).
    pub(super) async fn hold_over(&mut self, released_by: Option<String>) -> Option<Outcome> {
        self.control.hold = None;
        let at = self.now_at();
        let at_ms = self.origin.ms(at);
        self.sinks.emit(at_ms, &Event::HoldEnded { released_by });
        for i in 0..self.spec.rules.len() {
            let rule = &self.spec.rules[i];
            let done = match rule.action {
                Action::Notify => true,
                Action::Pause => self.paused_by.is_some() || self.pause_failed.is_some(),
                Action::Rollback => false,
            };
            if done {
                continue;
            }
            let fired = self.firing(i);
            if fired.is_empty() {
                continue;
            }
            if !self.per_rule[i].judged.last_ok {
                tracing::warn!(event = "hold_over_deferred", rule = %rule.name,
                    "the hold ended while this rule's last poll failed: it acts at its next good poll if it still fires then");
                self.owed.insert(i);
                continue;
            }
            let evidence = vec![Evidence::default(); fired.len()];
            if let Some(o) = self.act_on(i, fired, evidence, at, at_ms).await {
                return Some(o);
            }
        }
        None
    }

    /// After a good poll of rule `i` that fired nothing new: if the hold's end owed it
    /// an action, it acts now on what still fires (or, if nothing does, owes nothing).
    pub(super) async fn owed_now(&mut self, i: usize, at: Duration, at_ms: i64) -> Option<Outcome> {
        if !self.per_rule[i].judged.last_ok || self.held().is_some() || !self.owed.remove(&i) {
            return None;
        }
        let fired = self.firing(i);
        if fired.is_empty() {
            return None;
        }
        let evidence = vec![Evidence::default(); fired.len()];
        self.act_on(i, fired, evidence, at, at_ms).await
    }

    /// The series of rule `i` that are firing now.
    fn firing(&self, i: usize) -> Vec<FiredSeries> {
        self.evals[i]
            .series()
            .iter()
            .filter(|(_, s)| s.phase == Phase::Firing)
            .map(|(labels, s)| FiredSeries {
                labels: labels.clone(),
                value: s.last_value,
                since: s.since,
            })
            .collect()
    }
}
