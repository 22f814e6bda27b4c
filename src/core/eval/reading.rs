//! What one poll means: the one interpretation every face reads.
//!
//! A poll goes through the evaluator (`RuleEval::observe_with`), which decides *when* a
//! rule acts. Everything a face shows about that poll is decided here, once: which way
//! is worse for the rule's value ([`Worse`]), which series is the worst, the value the
//! rule shows (the worst series', or the canary's median for `compare`), what it was
//! compared with (the reference), the judges' evidence and the rule's state.
//!
//! The watch loop, replay (`core::history`), the agent's catch-up, `gate` and the
//! verdict routes call [`RuleEval::read`]; the report's peak, replay's peak and the
//! page's chart thinning ask [`Worse`]. Before this module each of them computed its
//! own, and three forgot that a rule judged by `above_baseline` alone is an "above"
//! rule: their peak was the *lowest* value. Now a watch and its replay agree by
//! construction.

use super::{Evidence, Labels, Params, Phase, Poll, RuleEval, Sample, Transition};
use crate::core::stats::Direction;
use std::time::Duration;

/// Which way a rule's value is worse: the direction its peak, its worst series and its
/// chart's thinning follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Worse {
    /// Higher is worse: `above:`, `above_baseline:`, `compare` on an increase (or
    /// either way: the larger side of the canary's median is shown).
    #[default]
    Higher,
    /// Lower is worse: `below:` alone, `below_baseline:` alone, `compare` on a decrease.
    Lower,
}

impl Worse {
    /// The direction of a rule's judging. `compare` decides by its own direction; a
    /// rule with any upper bound (`above`, `above_baseline`) is a "higher is worse"
    /// rule, even when it also has a lower one (a band), as its peak has always been
    /// its highest value; a rule with only lower bounds is "lower is worse". A
    /// `breach_when: present` rule has no bound at all: its values are not judged,
    /// and the lowest is shown as before.
    pub fn of(params: &Params) -> Worse {
        if let Some(c) = params.judge.compare {
            return match c.direction {
                Direction::Decrease => Worse::Lower,
                Direction::Increase | Direction::Either => Worse::Higher,
            };
        }
        let above_baseline = params.judge.baseline.is_some_and(|b| b.above_pct.is_some());
        if params.threshold.above.is_some() || above_baseline {
            Worse::Higher
        } else {
            Worse::Lower
        }
    }

    /// `candidate` is strictly worse than `than` (never for a NaN on either side).
    pub fn is_worse(self, candidate: f64, than: f64) -> bool {
        match self {
            Worse::Higher => candidate > than,
            Worse::Lower => candidate < than,
        }
    }

    /// The worst of `items` by `value`, NaN skipped; among equals, the first.
    pub fn worst<T>(
        self,
        items: impl IntoIterator<Item = T>,
        value: impl Fn(&T) -> f64,
    ) -> Option<T> {
        let mut best: Option<(T, f64)> = None;
        for item in items {
            let v = value(&item);
            if v.is_nan() {
                continue;
            }
            match &best {
                Some((_, b)) if !self.is_worse(v, *b) => {}
                _ => best = Some((item, v)),
            }
        }
        best.map(|(t, _)| t)
    }

    /// The worse of two optional values (either when the other is absent).
    pub fn worse_of<F: PartialOrd + Copy>(self, a: Option<F>, b: Option<F>) -> Option<F> {
        match (a, b) {
            (Some(x), Some(y)) => Some(match self {
                Worse::Higher if y > x => y,
                Worse::Lower if y < x => y,
                _ => x,
            }),
            (x, y) => x.or(y),
        }
    }
}

/// A rule's state as shown after a poll.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RuleState {
    Ok,
    NoData,
    /// Pending for `for_s` of the rule's `for` (`of_s`); for `breaches: M of N`,
    /// `breaches` is `[breaches in the window, M, N]` of the series closest to firing.
    Pending {
        for_s: f64,
        of_s: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        breaches: Option<[u32; 3]>,
    },
    Breached,
    QueryError,
}

impl RuleState {
    /// A rule's state after `poll` at `at`: breached if any series fires, pending (for
    /// the longest-pending series) if any is pending, else what the poll itself showed.
    pub fn of(eval: &RuleEval, at: Duration, poll: &Poll) -> RuleState {
        let series = eval.series();
        if series.values().any(|s| s.phase == Phase::Firing) {
            return RuleState::Breached;
        }
        if let Some(since) = series.values().map(|s| s.since).min() {
            let breaches = eval.params().judge.breaches.map(|b| {
                let k = series
                    .values()
                    .map(|s| s.window.iter().filter(|x| **x).count())
                    .max()
                    .unwrap_or(0);
                [u32::try_from(k).unwrap_or(u32::MAX), b.m, b.n]
            });
            return RuleState::Pending {
                for_s: at.saturating_sub(since).as_secs_f64(),
                of_s: eval.params().for_.as_secs_f64(),
                breaches,
            };
        }
        match poll {
            Poll::Failed => RuleState::QueryError,
            // A guard that cannot be matched fails the poll as a failed query does.
            Poll::Samples(_) if eval.notes().guard_refused().is_some() => RuleState::QueryError,
            Poll::Samples(s) if s.iter().all(|s| s.value.is_nan()) => RuleState::NoData,
            Poll::Samples(_) => RuleState::Ok,
        }
    }
}

/// Everything one poll means, for every face.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// What changed (pending, fired, resolved), as `observe_with` returns it.
    pub transitions: Vec<Transition>,
    /// The worst series with a value, by [`Worse::of`] the rule (the first of equals).
    pub worst: Option<Sample>,
    /// The value the rule shows: the worst series', or for `compare` the canary's
    /// median.
    pub value: Option<f64>,
    /// What `value` was compared with: the worst series' baseline, or the stable
    /// side's median.
    pub reference: Option<f64>,
    /// The judges' evidence behind `value`.
    pub evidence: Evidence,
    /// The rule's state after the poll.
    pub state: RuleState,
}

impl RuleEval {
    /// Which way this rule's value is worse.
    pub fn worse(&self) -> Worse {
        Worse::of(self.params())
    }

    /// Takes one poll (with its judges' inputs of the same instant) and says what it
    /// means: `observe_with` plus the worst series, value, reference, evidence and
    /// state. The one place that interprets a poll.
    pub fn read(&mut self, at: Duration, poll: &Poll, extra: super::Extra) -> Reading {
        let (view, burn) = super::slo::view(self.params().judge.slo.as_ref(), poll);
        let poll = view.as_ref();
        let transitions = self.observe_view(at, poll, burn, extra);
        let worst = match poll {
            Poll::Samples(s) => self.worse().worst(s.iter(), |s| s.value).cloned(),
            Poll::Failed => None,
        };
        let notes = self.notes();
        let (value, evidence) = if self.params().judge.compare.is_some() {
            let e = notes.evidence.get(&Labels::new()).cloned();
            (notes.compare_value(), e.unwrap_or_default())
        } else {
            let e = worst.as_ref().and_then(|w| notes.evidence.get(&w.labels));
            (
                worst.as_ref().map(|w| w.value),
                e.cloned().unwrap_or_default(),
            )
        };
        Reading {
            transitions,
            reference: evidence.baseline,
            value,
            evidence,
            state: RuleState::of(self, at, poll),
            worst,
        }
    }
}

#[cfg(test)]
mod tests;
