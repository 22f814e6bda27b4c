//! Breaches that began before the deploy (`pre_existing:`): what was already breaching
//! when the watch began, and what a rule does about it.
//!
//! At the start, each rule's history over the `for` before the watch (one range
//! query per query of the rule, at the rule's step: `run::preflight::pre_existing`) is
//! read here ([`read_before`]): a series that breached at every step of that window,
//! as a poll would judge it (the very judging `onset.rs` does at a step), was already
//! breaching before the release; the worst value it had there is its reference. A
//! rule already breaching is reported `pre_existing` whatever its mode.
//!
//! What happens next is the rule's [`PreExisting`] mode, applied in the evaluator to
//! each such series (`RuleEval::excuse`) for as long as its run of breaches continues
//! from before the start:
//! - `judge` (the default): as any breach, as before this key existed (`for` counts
//!   from the watch's start);
//! - `ignore`: never a breach for the rule: never pending, never acted on;
//! - `improve: P%` (the release is the fix): a breach only where the value is worse
//!   than the reference by more than P% of it (higher for a rule whose reference is
//!   above its `above:`, lower below its `below:`, else the rule's [`Worse`]); the
//!   rule's `for` then applies to that, as to any breach.
//!
//! The run ends at the first judged poll where the series does not breach the rule as
//! written (or is absent, where an absence is healthy: `no_data: ok`, a `present`
//! rule); from then on the series is judged like any other, and a new breach is the
//! release's. Reading the steps of a pending breach (`onset.rs`) judges them with the
//! same mode, so `for` counts the same thing at a step and at a poll.

use super::onset::{judge_step, span, Said};
use super::{Labels, Params, Poll, Sample, StepPoll, Worse};
use std::collections::BTreeMap;

/// What a rule does about a breach already there when the watch began.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PreExisting {
    /// Judged as any breach (today's behaviour).
    #[default]
    Judge,
    /// Never acted on while it lasts.
    Ignore,
    /// Acted on only where the value gets worse than before the deploy by more than
    /// `margin_pct` percent of it.
    Improve { margin_pct: f64 },
}

impl PreExisting {
    /// As the rule file writes it: `judge`, `ignore`, `improve 10%`.
    pub fn text(&self) -> String {
        match self {
            PreExisting::Judge => "judge".into(),
            PreExisting::Ignore => "ignore".into(),
            PreExisting::Improve { margin_pct } => {
                format!("improve {}%", crate::core::series::float::text(*margin_pct))
            }
        }
    }

    /// What the mode does to a pre-existing breach, in words (events, `gate`).
    pub fn meaning(&self) -> String {
        match self {
            PreExisting::Judge => "judged as any breach".into(),
            PreExisting::Ignore => "never acted on while it lasts".into(),
            PreExisting::Improve { margin_pct } => format!(
                "acted on only if it gets more than {}% worse than before the deploy",
                crate::core::series::float::text(*margin_pct)
            ),
        }
    }
}

/// The series breaching through the whole window before the watch, each with the worst
/// value it had there (NaN when it had none: a `present` rule's NaN series).
pub type Before = BTreeMap<Labels, f64>;

/// Reads the steps of the window before the watch (oldest first; the first at or
/// before `start − for`, the last at or before the start): the series that breached
/// at every step (steps that judged nothing passed over, as `onset.rs` does; the first
/// must breach), with their worst value. The rule-level "no data" series is never
/// one (a rule without data before the deploy has no breach to carry over); a series
/// without labels that has values (`sum(...)`) is one like any.
/// `fixed_baseline`: a `before:` baseline.
pub fn read_before(params: &Params, steps: &[StepPoll], fixed_baseline: Option<&Poll>) -> Before {
    let raw = Default::default();
    let judged: Vec<_> = steps
        .iter()
        .map(|s| (s.at, judge_step(*params, &raw, s, fixed_baseline)))
        .collect();
    let candidates: std::collections::BTreeSet<Labels> = judged
        .iter()
        .flat_map(|(_, j)| j.breaching.iter().cloned())
        .collect();
    let worse = Worse::of(params);
    let mut out = Before::new();
    for labels in candidates {
        let said = span(&judged, &labels, params, |_| true);
        if said.first().is_none_or(|(_, s)| *s != Said::Breach)
            || said.iter().any(|(_, s)| *s == Said::Healthy)
        {
            continue;
        }
        // Each step's samples as judged (an `slo` rule's: one burn score per series).
        let seen: Vec<Sample> = steps
            .iter()
            .flat_map(|s| {
                match super::slo::view(params.judge.slo.as_ref(), &s.poll)
                    .0
                    .as_ref()
                {
                    Poll::Samples(v) => v.iter().filter(|x| x.labels == labels).cloned().collect(),
                    Poll::Failed => Vec::new(),
                }
            })
            .collect();
        if labels.is_empty() && seen.is_empty() {
            // The rule-level "no data" series, not a series without labels (`sum(...)`).
            continue;
        }
        let worst = worse.worst(seen.iter(), |x: &&Sample| x.value);
        out.insert(labels, worst.map_or(f64::NAN, |x| x.value));
    }
    out
}

/// Which way is worse for one pre-existing series: the side of the threshold its
/// reference breached, else the rule's own [`Worse`].
pub(super) fn worse_for(params: &Params, reference: f64) -> Worse {
    let t = params.threshold;
    if t.above.is_some_and(|a| reference > a) {
        Worse::Higher
    } else if t.below.is_some_and(|b| reference < b) {
        Worse::Lower
    } else {
        Worse::of(params)
    }
}

/// `improve`: whether `value` is worse than `reference` by more than `margin_pct`
/// percent of it (strictly, as thresholds are). A NaN on either side is never worse.
pub fn worse_by(worse: Worse, value: f64, reference: f64, margin_pct: f64) -> bool {
    let margin = reference.abs() * margin_pct / 100.0;
    match worse {
        Worse::Higher => value > reference + margin,
        Worse::Lower => value < reference - margin,
    }
}

#[cfg(test)]
#[path = "pre_existing_tests.rs"]
mod tests;
