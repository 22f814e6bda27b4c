//! `for` counted in the data, not in polls: where a breach began, and whether it held.
//!
//! A watch looks once per `interval`, but a breach begins when the data says so. Left
//! to the polls alone, `for` would start at the poll that first saw the breach and end
//! at the first poll after it elapsed: up to two intervals late. Prometheus counts
//! `for` from the first *evaluation* that saw the breach, at its evaluation interval;
//! rollwatch does the same at the data's resolution (a `step`, by default the scrape
//! interval), wherever its own polls fall:
//!
//! - **Onset** ([`RuleEval::extend_back`]): when a poll sees a series begin to breach,
//!   the steps since the previous poll (one range query) say where the breach began:
//!   the earliest step of the unbroken run of breaching steps that ends at the poll.
//!   `for` counts from there. A finer second look at the step before (`run::steps`)
//!   stands on the sample's own timestamp.
//! - **Confirmation** ([`RuleEval::confirm`]): the poll that would act is scheduled for
//!   the instant `for` has elapsed (`next_due`), and before it is read, the steps of
//!   the pending span are checked: one healthy step resets the timer to the first
//!   breaching step after it, exactly as Prometheus's `for` resets at that resolution.
//!
//! Never early: `since` only moves back over steps that breached, with none healthy
//! between them and the poll that saw the breach, so a series fires only once the data
//! has breached for `for` at every step. A step is judged by the very code a poll is
//! (`observe_with` on a fresh evaluator), so every judge (`min_traffic`, `baseline`,
//! `no_data`, `breach_when: present`) means at a step what it means at a poll.
//!
//! `breaches: M of N` counts polls, not time, and `compare` judges pools of polls:
//! neither has a `for` to count in the data, so both act at the poll that decides, as
//! before ([`Params::precise`] says which rules this module serves).

use super::{Extra, Labels, NoData, Params, Phase, Poll, RuleEval, Transition};
use std::time::Duration;

/// One step of a range answer: the rule's query and its judges' at one instant (on
/// the evaluator's clock), as a poll at that instant would have had them.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPoll {
    pub at: Duration,
    pub poll: Poll,
    /// `min_traffic.query` at the step (None when the rule has no guard).
    pub guard: Option<Poll>,
    /// The `offset:` baseline at the step (None: the rule has none, or a `before:` one,
    /// which is fixed and given to [`RuleEval::extend_back`] / `confirm` separately).
    pub baseline: Option<Poll>,
}

/// What one step says about one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Said {
    Breach,
    Healthy,
    /// Not judged at that step (insufficient traffic, `no_data: hold`, a failed or
    /// refused step): it neither counts nor resets, as at a poll.
    Neither,
}

impl Params {
    /// Whether `for` is counted in the data (this module): a rule with a `for`, judged
    /// neither by `breaches: M of N` nor by `compare`.
    pub fn precise(&self) -> bool {
        !self.for_.is_zero() && self.judge.breaches.is_none() && self.judge.compare.is_none()
    }
}

/// What each step says, judged once per step for all series.
pub(super) struct Judged {
    pub(super) breaching: std::collections::BTreeSet<Labels>,
    healthy: std::collections::BTreeSet<Labels>,
    /// The step had usable samples (the rule-level `{}` series ends there).
    any: bool,
    /// The step was judged at all (not failed, nor refused for its guard).
    judged: bool,
    /// The label sets the step returned (with a value, or any for a present rule).
    present: std::collections::BTreeSet<Labels>,
}

/// One step judged as a poll at its instant would be, by a fresh evaluator carrying
/// the rule's pre-existing breaches still running (`excused`: `pre_existing.rs`), so
/// that a step and a poll mean the same.
pub(super) fn judge_step(
    params: Params,
    excused: &std::collections::BTreeMap<crate::core::series::Labels, f64>,
    step: &StepPoll,
    fixed_baseline: Option<&Poll>,
) -> Judged {
    let mut fresh = RuleEval::new(params);
    fresh.excuse(excused.clone());
    let extra = Extra {
        guard: step.guard.as_ref(),
        baseline: step.baseline.as_ref().or(fixed_baseline),
        stable: None,
    };
    // An `slo` rule's step is seen as a poll is, one sample per series (`slo::view`).
    let (poll, burn) = super::slo::view(params.judge.slo.as_ref(), &step.poll);
    fresh.observe_view(step.at, &poll, burn, extra);
    let notes = fresh.notes();
    let breaching: std::collections::BTreeSet<Labels> = fresh.series().keys().cloned().collect();
    let present: std::collections::BTreeSet<Labels> = match poll.as_ref() {
        Poll::Samples(s) => s
            .iter()
            .filter(|s| params.threshold.present || !s.value.is_nan())
            .map(|s| s.labels.clone())
            .collect(),
        Poll::Failed => Default::default(),
    };
    // Judged and not breaching: returned, not skipped (insufficient, a held baseline).
    let healthy = present
        .iter()
        .filter(|l| !breaching.contains(*l) && !notes.skipped().contains(l))
        .cloned()
        .collect();
    Judged {
        breaching,
        healthy,
        any: notes.any_value,
        judged: notes.judged,
        present,
    }
}

impl Judged {
    /// The step returned the series (for the rule-level `{}`: any data).
    fn returned(&self, labels: &Labels) -> bool {
        if labels.is_empty() {
            self.any
        } else {
            self.present.contains(labels)
        }
    }

    fn said(&self, labels: &Labels, params: &Params) -> Said {
        if !self.judged {
            return Said::Neither;
        }
        if self.breaching.contains(labels) {
            return Said::Breach;
        }
        if self.healthy.contains(labels) {
            return Said::Healthy;
        }
        if labels.is_empty() {
            // The rule-level "no data" series ends as soon as there is data; on an
            // empty step it follows `no_data` (`breach` made it breaching above).
            return match (self.any, params.no_data) {
                (true, _) | (false, NoData::Ok) => Said::Healthy,
                _ => Said::Neither,
            };
        }
        if self.present.contains(labels) {
            // Returned but not judged (insufficient traffic, a held baseline).
            return Said::Neither;
        }
        // Absent at the step: what an absent series means at a poll.
        match (params.threshold.present, params.no_data) {
            (true, _) | (false, NoData::Ok) => Said::Healthy,
            (false, NoData::Breach) => Said::Breach,
            (false, NoData::Hold) => Said::Neither,
        }
    }
}

/// What the steps within a span (`within`) say about one series, oldest first. Steps
/// after the series' last appearance in the span are not read as an absence: a backend
/// that makes samples searchable a second or two late (VictoriaMetrics) leaves the
/// newest steps empty, while the poll being read (an instant query, with its lookback)
/// still sees the series. An absence between two appearances is one, and follows
/// `no_data`.
pub(super) fn span(
    judged: &[(Duration, Judged)],
    labels: &Labels,
    params: &Params,
    within: impl Fn(Duration) -> bool,
) -> Vec<(Duration, Said)> {
    let steps = judged.iter().filter(|(t, _)| within(*t));
    let seen_until = steps
        .clone()
        .filter(|(_, j)| j.returned(labels))
        .map(|(t, _)| *t)
        .max();
    steps
        .map(|(t, j)| match seen_until {
            Some(u) if *t <= u => (*t, j.said(labels, params)),
            _ => (*t, Said::Neither),
        })
        .collect()
}

impl RuleEval {
    /// The instant the first pending series will have breached for `for` (the
    /// evaluator's clock), when this rule counts `for` in the data; the watch polls
    /// then rather than at its next tick.
    pub fn next_due(&self) -> Option<Duration> {
        if !self.params().precise() {
            return None;
        }
        self.series()
            .values()
            .filter(|s| s.phase == Phase::Pending)
            .map(|s| s.since + self.params().for_)
            .min()
    }

    /// The earliest `since` among pending series (where a confirmation's steps start).
    pub fn pending_since(&self) -> Option<Duration> {
        self.series()
            .values()
            .filter(|s| s.phase == Phase::Pending)
            .map(|s| s.since)
            .min()
    }

    /// Series that went pending at `at` (the poll just read): the ones whose onset the
    /// steps before `at` can move back.
    pub fn began_at(&self, at: Duration) -> Vec<Labels> {
        if !self.params().precise() {
            return Vec::new();
        }
        self.series()
            .iter()
            .filter(|(_, s)| s.phase == Phase::Pending && s.since == at)
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// Onset: moves the start of each series in `began` back over the steps just
    /// before it that breached (stopping at the first healthy one; steps that judged
    /// nothing are passed over), then fires, at `at`, every one that has now breached
    /// for `for`. `steps` must cover the time just before each series' start without a
    /// gap (the span since the previous poll, or a finer look at the step before the
    /// onset). `fixed_baseline`: a `before:` baseline.
    pub fn extend_back(
        &mut self,
        at: Duration,
        began: &[Labels],
        steps: &[StepPoll],
        fixed_baseline: Option<&Poll>,
    ) -> Vec<Transition> {
        let params = *self.params();
        if !params.precise() || began.is_empty() {
            return Vec::new();
        }
        let judged: Vec<(Duration, Judged)> = steps
            .iter()
            .map(|s| (s.at, judge_step(params, self.excused(), s, fixed_baseline)))
            .collect();
        let mut out = Vec::new();
        for labels in began {
            let evidence = self
                .notes()
                .evidence
                .get(labels)
                .cloned()
                .unwrap_or_default();
            let Some(state) = self.series_mut().get_mut(labels) else {
                continue;
            };
            if state.phase != Phase::Pending {
                continue;
            }
            let mut since = state.since;
            let before = |t: Duration| t < state.since;
            for (t, said) in span(&judged, labels, &params, before).into_iter().rev() {
                match said {
                    Said::Breach => since = t,
                    Said::Neither => {}
                    Said::Healthy => break,
                }
            }
            state.since = since;
            let breached_for = at.saturating_sub(since);
            if breached_for >= params.for_ {
                state.phase = Phase::Firing;
                out.push(Transition::Fired {
                    labels: labels.clone(),
                    value: state.last_value,
                    breached_for,
                    evidence,
                });
            }
        }
        out
    }

    /// Confirmation, before the poll at `at` is read: each pending series must have
    /// breached at every step of its pending span (`since` up to, not including, `at`).
    /// A healthy step restarts `for` at the first breaching step after it (or at `at`
    /// when none did: the poll itself then decides). Returns the series restarted, with
    /// the step that was healthy.
    pub fn confirm(
        &mut self,
        at: Duration,
        steps: &[StepPoll],
        fixed_baseline: Option<&Poll>,
    ) -> Vec<(Labels, Duration)> {
        let params = *self.params();
        if !params.precise() {
            return Vec::new();
        }
        let judged: Vec<(Duration, Judged)> = steps
            .iter()
            .filter(|s| s.at < at)
            .map(|s| (s.at, judge_step(params, self.excused(), s, fixed_baseline)))
            .collect();
        let mut restarted = Vec::new();
        for (labels, state) in self.series_mut().iter_mut() {
            if state.phase != Phase::Pending {
                continue;
            }
            let from = state.since;
            let mut last_healthy = None;
            let mut first_after: Option<Duration> = None;
            for (t, said) in span(&judged, labels, &params, |t| t >= from) {
                match said {
                    Said::Healthy => {
                        last_healthy = Some(t);
                        first_after = None;
                    }
                    Said::Breach if last_healthy.is_some() && first_after.is_none() => {
                        first_after = Some(t)
                    }
                    _ => {}
                }
            }
            if let Some(h) = last_healthy {
                state.since = first_after.unwrap_or(at);
                restarted.push((labels.clone(), h));
            }
        }
        restarted
    }
}

#[cfg(test)]
#[path = "onset_tests.rs"]
mod onset_tests;
