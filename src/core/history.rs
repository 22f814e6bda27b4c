//! History on a grid: range-query history in, the polls a watch would have made and
//! what it would have decided out.
//!
//! Two callers need this and neither owns it: `rollwatch replay` (backtests) and the
//! agent, which rebuilds the polls it missed while it was down (`polls_on_grid`). It is
//! pure, so replay's property test runs without a clock or a network.
//!
//! History arrives as range-query series; each rule's points are regrouped into the
//! polls a watch would have made (one per step, at the rule's interval, from the start
//! of the window) and fed, in time order, to the same `RuleEval` that `watch` uses. A
//! step where a series has no point is that series being absent, exactly as a poll with
//! an empty result would be; NaN is no data, as in a watch.

use crate::core::ending::{unjudged, RuleSeen};
use crate::core::eval::{Params, RuleEval, Transition, Worse};
use crate::core::rules::Action;
use crate::core::series::{Labels, Poll, RangeSeries, Sample};
use std::collections::BTreeMap;
use std::time::Duration;

/// What happened to one series at one step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    /// Unix milliseconds.
    pub at: i64,
    /// `pending`, `resolved` or `fired`.
    pub kind: &'static str,
    pub labels: Labels,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub value: Option<f64>,
    /// The judges' evidence, when any.
    #[serde(skip_serializing_if = "crate::core::eval::Evidence::is_empty")]
    pub evidence: crate::core::eval::Evidence,
}

/// One rule's replay over the whole window (before cutting at the first rollback).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleHistory {
    pub entries: Vec<Entry>,
    /// Which way the rule's value is worse.
    pub worse: Worse,
    /// The value the rule showed at each step (`Reading::value`: its worst series',
    /// or for `compare` the canary's median) and the series it came from (`{}` for
    /// `compare`): (unix ms, value, labels).
    pub shown: Vec<(i64, f64, Labels)>,
    /// One of its steps had a usable sample (what a watch calls `ever_data`).
    pub ever_data: bool,
    /// The rule's state and worst value at every step, as a watch would show it.
    pub states: Vec<(i64, Option<f64>, crate::core::events::RuleState)>,
    pub steps: usize,
    /// Insufficient at every step (`min_traffic`, `compare`): not judged at all, which
    /// makes the replayed watch inconclusive unless a rollback decided it.
    pub never_judged: bool,
    /// Series × steps that were insufficient.
    pub insufficient: u64,
    /// What each step's worst series was compared with (its baseline, or the stable
    /// median), for the report's reference line.
    pub references: Vec<(i64, Option<f64>)>,
}

impl RuleHistory {
    /// The worst value the rule showed over the steps up to `until` (unix ms;
    /// inclusive), the way its value is worse: the first of equals.
    pub fn peak(&self, until: i64) -> Option<&(i64, f64, Labels)> {
        let upto = self.shown.iter().filter(|(t, _, _)| *t <= until);
        self.worse.worst(upto, |(_, v, _)| *v)
    }
}

/// The history of a rule's judges over the same window as its own, each from range
/// queries fetched once for the window (never per step).
#[derive(Debug, Clone, Default)]
pub struct JudgeHistory {
    /// `min_traffic.query` over the window.
    pub guard: Option<Vec<RangeSeries>>,
    /// `compare.stable` over the window.
    pub stable: Option<Vec<RangeSeries>>,
    /// The baseline: `offset:` the rule's query over the window shifted back by the
    /// offset, with its points moved forward by it (`shift_forward`); `before:` the
    /// per-series means (fixed for the whole window).
    pub baseline: Option<BaselineHistory>,
}

/// A baseline over a replayed window.
#[derive(Debug, Clone)]
pub enum BaselineHistory {
    /// Points already moved onto the window's time.
    Offset(Vec<RangeSeries>),
    /// One value per series for the whole window.
    Fixed(Vec<Sample>),
}

/// Moves every point `by` ms later: a range query over `[from - D, to - D]` becomes the
/// `offset D` baseline of `[from, to]`.
pub fn shift_forward(mut series: Vec<RangeSeries>, by: i64) -> Vec<RangeSeries> {
    for s in &mut series {
        for p in &mut s.points {
            p.0 += by;
        }
    }
    series
}

/// Regroups range-query points into the polls a watch would have made: one per step
/// of the grid `from, from + step, ... <= to`, each with the samples nearest to it.
/// Returns the number of steps and the samples by step (a step without any is absent).
/// (Also used by the agent to catch up on the time it was down.)
pub fn polls_on_grid(
    from: i64,
    to: i64,
    step: i64,
    series: &[RangeSeries],
) -> (usize, BTreeMap<usize, Vec<Sample>>) {
    let steps = if to < from || step <= 0 {
        0
    } else {
        ((to - from) / step) as usize + 1
    };
    // Regroup points into polls: step index -> samples.
    let mut polls: BTreeMap<usize, Vec<Sample>> = BTreeMap::new();
    for s in series {
        for &(t, v) in &s.points {
            let offset = t - from;
            if offset < 0 || step <= 0 {
                continue;
            }
            let k = ((offset + step / 2) / step) as usize;
            if k < steps {
                polls.entry(k).or_default().push(Sample {
                    labels: s.labels.clone(),
                    value: v,
                });
            }
        }
    }
    (steps, polls)
}

/// Replays one rule: `series` from a range query over `[from, to]` at `step`.
pub fn replay_rule(
    params: Params,
    from: i64,
    to: i64,
    step: i64,
    series: &[RangeSeries],
) -> RuleHistory {
    replay_judged(params, from, to, step, series, &JudgeHistory::default())
}

/// `replay_rule` with the history of the rule's judges: every poll on the grid, read
/// as the watch reads it, without looking between polls (`Replaying` is what replay
/// drives with the steps between them, `run::steps::replay`).
pub fn replay_judged(
    params: Params,
    from: i64,
    to: i64,
    step: i64,
    series: &[RangeSeries],
    judges: &JudgeHistory,
) -> RuleHistory {
    let mut r = Replaying::new(params, from, to, step, series, judges);
    let fixed = r.fixed_baseline().cloned();
    while r.next_at().is_some() {
        let (at, poll, guard, stable, baseline) = r.grid_poll();
        let extra = crate::core::eval::Extra {
            guard: guard.as_ref(),
            stable: stable.as_ref(),
            baseline: baseline.as_ref().or(fixed.as_ref()),
        };
        let reading = r.eval.read(at, &poll, extra);
        r.record(at, reading);
    }
    r.finish()
}

/// A replay in progress: the polls on the grid, the rule's evaluator, and what the
/// replayed watch showed so far. Its driver reads each poll (and any poll between
/// them, such as the confirming poll of a pending breach) and records the reading.
pub struct Replaying {
    pub eval: RuleEval,
    out: RuleHistory,
    polls: BTreeMap<usize, Vec<Sample>>,
    guard: Option<BTreeMap<usize, Vec<Sample>>>,
    stable: Option<BTreeMap<usize, Vec<Sample>>>,
    base_steps: Option<BTreeMap<usize, Vec<Sample>>>,
    base_fixed: Option<Poll>,
    from: i64,
    step: i64,
    k: usize,
}

/// One grid poll: its time, the rule's poll and its judges' (guard, stable, offset
/// baseline) at it.
pub type GridPoll = (Duration, Poll, Option<Poll>, Option<Poll>, Option<Poll>);

impl Replaying {
    pub fn new(
        params: Params,
        from: i64,
        to: i64,
        step: i64,
        series: &[RangeSeries],
        judges: &JudgeHistory,
    ) -> Self {
        let (steps, polls) = polls_on_grid(from, to, step, series);
        let grid =
            |s: &Option<Vec<RangeSeries>>| s.as_ref().map(|s| polls_on_grid(from, to, step, s).1);
        let (base_steps, base_fixed) = match &judges.baseline {
            Some(BaselineHistory::Offset(s)) => (Some(polls_on_grid(from, to, step, s).1), None),
            Some(BaselineHistory::Fixed(v)) => (None, Some(Poll::Samples(v.clone()))),
            None => (None, None),
        };
        let eval = RuleEval::new(params);
        Replaying {
            out: RuleHistory {
                steps,
                worse: eval.worse(),
                ..Default::default()
            },
            eval,
            polls,
            guard: grid(&judges.guard),
            stable: grid(&judges.stable),
            base_steps,
            base_fixed,
            from,
            step,
            k: 0,
        }
    }

    /// The time of the next grid poll (from the window's start), if any is left.
    pub fn next_at(&self) -> Option<Duration> {
        (self.k < self.out.steps).then(|| Duration::from_millis((self.k as i64 * self.step) as u64))
    }

    /// A `before:` baseline, fixed for the window.
    pub fn fixed_baseline(&self) -> Option<&Poll> {
        self.base_fixed.as_ref()
    }

    /// Takes the next grid poll and its judges' inputs.
    pub fn grid_poll(&mut self) -> GridPoll {
        let k = self.k;
        self.k += 1;
        let at_step = |m: &Option<BTreeMap<usize, Vec<Sample>>>| {
            m.as_ref()
                .map(|m| Poll::Samples(m.get(&k).cloned().unwrap_or_default()))
        };
        (
            Duration::from_millis((k as i64 * self.step) as u64),
            Poll::Samples(self.polls.get(&k).cloned().unwrap_or_default()),
            at_step(&self.guard),
            at_step(&self.stable),
            at_step(&self.base_steps),
        )
    }

    /// Records what a poll at `at` (from the window's start) showed.
    pub fn record(&mut self, at: Duration, reading: crate::core::eval::Reading) {
        let params = *self.eval.params();
        let out = &mut self.out;
        let at_ms = self.from + at.as_millis() as i64;
        out.ever_data |= reading.worst.is_some();
        if let Some(v) = reading.value {
            let labels = match &reading.worst {
                Some(w) if params.judge.compare.is_none() => w.labels.clone(),
                _ => Labels::new(),
            };
            out.shown.push((at_ms, v, labels));
        }
        out.references.push((at_ms, reading.reference));
        out.states.push((at_ms, reading.value, reading.state));
        for t in reading.transitions {
            let (kind, labels, value, evidence) = match t {
                Transition::Pending {
                    labels,
                    value,
                    evidence,
                } => ("pending", labels, value, evidence),
                Transition::Resolved {
                    labels,
                    value,
                    evidence,
                    ..
                } => ("resolved", labels, value, evidence),
                Transition::Fired {
                    labels,
                    value,
                    evidence,
                    ..
                } => ("fired", labels, value, evidence),
            };
            out.entries.push(Entry {
                at: at_ms,
                kind,
                labels,
                value,
                evidence,
            });
        }
    }

    pub fn finish(mut self) -> RuleHistory {
        self.out.never_judged = self.eval.never_judged();
        self.out.insufficient = self.eval.insufficient_count();
        self.out
    }
}

/// How a replayed watch would have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    Healthy,
    RolledBack,
    Paused,
    Inconclusive,
}

impl ReplayOutcome {
    pub fn name(&self) -> &'static str {
        match self {
            ReplayOutcome::Healthy => "healthy",
            ReplayOutcome::RolledBack => "rolled_back",
            ReplayOutcome::Paused => "paused",
            ReplayOutcome::Inconclusive => "inconclusive",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            ReplayOutcome::Healthy => crate::core::exit::HEALTHY,
            ReplayOutcome::RolledBack => crate::core::exit::ROLLED_BACK,
            ReplayOutcome::Paused => crate::core::exit::PAUSED,
            ReplayOutcome::Inconclusive => crate::core::exit::INCONCLUSIVE,
        }
    }

    /// Severity for summing up several replays: the worst verdict decides.
    pub fn severity(&self) -> u8 {
        match self {
            ReplayOutcome::Healthy => 0,
            ReplayOutcome::Inconclusive => 1,
            ReplayOutcome::Paused => 2,
            ReplayOutcome::RolledBack => 3,
        }
    }
}

/// The decision over all rules: the first rollback ends the watch, as it would live.
#[derive(Debug, Clone, PartialEq)]
pub struct Conclusion {
    pub verdict: ReplayOutcome,
    /// Unix ms of the deciding action, or the end of the window.
    pub decided_at: i64,
    /// The rule whose action decided, if any.
    pub rule: Option<String>,
    /// Entries after this instant did not happen: the watch had ended.
    pub cut_at: i64,
    /// Why the rules could not vouch for the release (`Inconclusive` only), in the
    /// words a live watch would have ended with.
    pub reason: Option<String>,
}

/// One rule's replay, as `conclude` needs it.
#[derive(Debug, Clone, Copy)]
pub struct RuleReplay<'a> {
    pub name: &'a str,
    pub action: Action,
    /// The rule says `expect_data: true`.
    pub expect_data: bool,
    /// None: its history could not be read (every query of it failed).
    pub history: Option<&'a RuleHistory>,
}

/// Combines rule histories. The first rollback ends the watch, as it would live;
/// otherwise the rules as seen over the window conclude (`core::ending`, as at a live
/// watch's end: never judged, insufficient, no data where data was expected), then
/// the first pause.
pub fn conclude(rules: &[RuleReplay], to: i64) -> Conclusion {
    let first_fire = |action: Action| {
        rules
            .iter()
            .filter(|r| r.action == action)
            .filter_map(|r| {
                r.history
                    .and_then(|h| h.entries.iter().find(|e| e.kind == "fired"))
                    .map(|e| (e.at, r.name.to_string()))
            })
            .min()
    };
    let at_end = |verdict, rule, reason| Conclusion {
        verdict,
        decided_at: to,
        rule,
        cut_at: to,
        reason,
    };
    if let Some((at, rule)) = first_fire(Action::Rollback) {
        return Conclusion {
            verdict: ReplayOutcome::RolledBack,
            decided_at: at,
            rule: Some(rule),
            cut_at: at,
            reason: None,
        };
    }
    let seen: Vec<RuleSeen> = rules
        .iter()
        .map(|r| RuleSeen {
            name: r.name,
            last_ok: r.history.is_some(),
            ever_ok: r.history.is_some(),
            insufficient: r.history.is_some_and(|h| h.never_judged),
            ever_data: r.history.is_some_and(|h| h.ever_data),
            expect_data: r.expect_data,
            // Replay has no people's holds.
            held_unconfirmed: false,
        })
        .collect();
    if let Some(why) = unjudged(&seen) {
        return at_end(ReplayOutcome::Inconclusive, None, Some(why.reason()));
    }
    if let Some((at, rule)) = first_fire(Action::Pause) {
        return Conclusion {
            verdict: ReplayOutcome::Paused,
            decided_at: at,
            rule: Some(rule),
            cut_at: to,
            reason: None,
        };
    }
    at_end(ReplayOutcome::Healthy, None, None)
}

#[cfg(test)]
mod tests;
