//! The pure core: samples and times in, transitions out.
//!
//! This module decides *when* a rule acts. It has no I/O, no clock and no async: the
//! watch loop (and later the replay) feeds it one poll at a time with the time the poll
//! was taken, and gets back what changed. Keeping it pure is what lets the table tests
//! below cover every edge, and what makes a replay say exactly what a watch would do.
//!
//! The semantics follow Prometheus's alerting `for`:
//! - every series of a rule's result is judged on its own, keyed by its label set;
//! - when one result holds the same label set more than once (a proxy merging two
//!   Prometheus replicas, a federation overlap, VictoriaMetrics, a buggy exporter), the
//!   value judged is the one most in breach: the highest for `above`, the lowest for
//!   `below`, for a band the one farthest outside it (`Threshold::severity`; ties go to
//!   the larger value), and a NaN duplicate never hides a number. That choice does not
//!   depend on the order the samples arrived in, so a watch and its replay judge the
//!   same; and it errs towards acting, the safe side for a guard. The decoder warns
//!   about every duplicated label set, so the poll says it happened;
//! - a series goes *pending* at the first poll that breaches, and *fires* at the first
//!   later poll that still breaches once `for` has elapsed since it went pending
//!   (`for: 0s` fires on the first breaching poll);
//! - a poll where the series does not breach resets it;
//! - a poll where the series is absent (or NaN) follows `no_data`: `ok` resets it,
//!   `breach` counts it as breaching, `hold` leaves its state exactly as it was;
//! - when a poll has no usable sample at all and no series is pending or firing, the
//!   rule-level series `{}` stands for "this rule has no data" and follows `no_data`
//!   the same way (it ends as soon as any sample comes back);
//! - a failed query changes nothing: errors are never evidence of a breach or of health.
//!
//! A rule written `breach_when: present` (`Threshold::present`) is Prometheus's own
//! alerting condition: every series the query returns breaches, whatever its value
//! (NaN included, as Prometheus fires on it; the evidence then shows no value). An
//! empty result means "no breach": absent series resolve and there is no rule-level
//! `{}` series, whatever `no_data` says (the loader refuses any `no_data` but `ok`).

pub use crate::core::series::{Labels, Poll, Sample};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The condition a value must meet to count as breaching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Breached when the value is strictly above this.
    pub above: Option<f64>,
    /// Breached when the value is strictly below this.
    pub below: Option<f64>,
    /// `breach_when: present`: every returned series breaches, whatever its value
    /// (`above`/`below` are then `None`).
    pub present: bool,
}

impl Threshold {
    /// Breached when the value is above `above` or below `below` (either may be absent).
    pub fn band(above: Option<f64>, below: Option<f64>) -> Self {
        Threshold {
            above,
            below,
            present: false,
        }
    }

    /// Breached by any series the query returns (`breach_when: present`).
    pub fn present() -> Self {
        Threshold {
            above: None,
            below: None,
            present: true,
        }
    }

    pub fn breached(&self, value: f64) -> bool {
        self.present
            || self.above.is_some_and(|a| value > a)
            || self.below.is_some_and(|b| value < b)
    }

    /// How far past the threshold `value` is (positive when breached, the larger the
    /// worse): `value - above`, `below - value`, or for a band the larger of the two.
    /// Used to pick one value among duplicates of a label set.
    pub fn severity(&self, value: f64) -> f64 {
        let over = self.above.map(|a| value - a);
        let under = self.below.map(|b| b - value);
        match (over, under) {
            (Some(o), Some(u)) => o.max(u),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => value,
        }
    }

    /// Whether `a` is more in breach than `b` (ties: the larger value), a total order
    /// on non-NaN values so the pick among duplicates is the same in any order.
    fn worse(&self, a: f64, b: f64) -> bool {
        match self.severity(a).total_cmp(&self.severity(b)) {
            std::cmp::Ordering::Equal => a.total_cmp(&b).is_gt(),
            o => o.is_gt(),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.present {
            return write!(f, "present");
        }
        match (self.above, self.below) {
            (Some(a), None) => write!(f, "> {a}"),
            (None, Some(b)) => write!(f, "< {b}"),
            (Some(a), Some(b)) => write!(f, "< {b} or > {a}"),
            (None, None) => write!(f, "never"),
        }
    }
}

/// What an absent series (or an empty result) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    Ok,
    Breach,
    Hold,
}

impl NoData {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoData::Ok => "ok",
            NoData::Breach => "breach",
            NoData::Hold => "hold",
        }
    }
}

/// The parameters of one rule that the evaluator needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub threshold: Threshold,
    pub for_: Duration,
    pub no_data: NoData,
}

/// A series' current phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Firing,
}

/// What the evaluator keeps for a series that is pending or firing.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesState {
    pub phase: Phase,
    /// Time of the first breaching poll of this run of breaches.
    pub since: Duration,
    /// The last value seen (None if the series was absent and counted by `no_data`).
    pub last_value: Option<f64>,
}

/// A change worth logging or acting on.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The series breached for the first time in a run.
    Pending { labels: Labels, value: Option<f64> },
    /// The series has breached at every poll for `for`: act.
    Fired {
        labels: Labels,
        value: Option<f64>,
        breached_for: Duration,
    },
    /// The series stopped breaching.
    Resolved {
        labels: Labels,
        from: Phase,
        value: Option<f64>,
        breached_for: Duration,
    },
}

/// The evaluator of one rule.
#[derive(Debug, Clone)]
pub struct RuleEval {
    params: Params,
    series: BTreeMap<Labels, SeriesState>,
}

impl RuleEval {
    pub fn new(params: Params) -> Self {
        RuleEval {
            params,
            series: BTreeMap::new(),
        }
    }

    /// An evaluator that continues from saved series state (what `serve` persisted
    /// before a restart). `since` must be on the same clock as the polls that follow.
    pub fn restore(params: Params, series: BTreeMap<Labels, SeriesState>) -> Self {
        RuleEval { params, series }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Series currently pending or firing.
    pub fn series(&self) -> &BTreeMap<Labels, SeriesState> {
        &self.series
    }

    /// Feeds one poll taken at `at` (any monotonic origin) and returns what changed.
    pub fn observe(&mut self, at: Duration, poll: &Poll) -> Vec<Transition> {
        let samples = match poll {
            Poll::Failed => return Vec::new(),
            Poll::Samples(s) => s,
        };
        let mut out = Vec::new();
        let mut seen: BTreeMap<&Labels, f64> = BTreeMap::new();
        let threshold = self.params.threshold;
        // A present rule counts a NaN sample as a series (Prometheus fires on it).
        for s in samples
            .iter()
            .filter(|s| threshold.present || !s.value.is_nan())
        {
            // Duplicates of a label set: the one most in breach (see the module doc).
            seen.entry(&s.labels)
                .and_modify(|v| {
                    // (Only a present rule sees NaN here: a number still wins.)
                    if !s.value.is_nan() && (v.is_nan() || threshold.worse(s.value, *v)) {
                        *v = s.value;
                    }
                })
                .or_insert(s.value);
        }
        for (labels, value) in &seen {
            let breaching = threshold.breached(*value);
            let value = (!value.is_nan()).then_some(*value);
            self.step(at, labels, value, breaching, &mut out);
        }
        let absent: Vec<Labels> = self
            .series
            .keys()
            .filter(|l| !seen.contains_key(l))
            .cloned()
            .collect();
        for labels in absent {
            if labels.is_empty() && !seen.is_empty() {
                // The rule-level "no data" series ends as soon as there is data.
                self.step(at, &labels, None, false, &mut out);
            } else {
                self.absent(at, &labels, &mut out);
            }
        }
        let nothing = Labels::new();
        if seen.is_empty() && self.series.is_empty() {
            self.absent(at, &nothing, &mut out);
        }
        out
    }

    fn absent(&mut self, at: Duration, labels: &Labels, out: &mut Vec<Transition>) {
        // For a present rule an absent series is the healthy state.
        let no_data = if self.params.threshold.present {
            NoData::Ok
        } else {
            self.params.no_data
        };
        match no_data {
            NoData::Ok => self.step(at, labels, None, false, out),
            NoData::Breach => self.step(at, labels, None, true, out),
            NoData::Hold => {}
        }
    }

    fn step(
        &mut self,
        at: Duration,
        labels: &Labels,
        value: Option<f64>,
        breaching: bool,
        out: &mut Vec<Transition>,
    ) {
        let for_ = self.params.for_;
        match (self.series.get_mut(labels), breaching) {
            (None, false) => {}
            (None, true) => {
                let phase = if for_.is_zero() {
                    out.push(Transition::Pending {
                        labels: labels.clone(),
                        value,
                    });
                    out.push(Transition::Fired {
                        labels: labels.clone(),
                        value,
                        breached_for: Duration::ZERO,
                    });
                    Phase::Firing
                } else {
                    out.push(Transition::Pending {
                        labels: labels.clone(),
                        value,
                    });
                    Phase::Pending
                };
                self.series.insert(
                    labels.clone(),
                    SeriesState {
                        phase,
                        since: at,
                        last_value: value,
                    },
                );
            }
            (Some(state), true) => {
                state.last_value = value;
                let breached_for = at.saturating_sub(state.since);
                if state.phase == Phase::Pending && breached_for >= for_ {
                    state.phase = Phase::Firing;
                    out.push(Transition::Fired {
                        labels: labels.clone(),
                        value,
                        breached_for,
                    });
                }
            }
            (Some(state), false) => {
                let from = state.phase;
                let breached_for = at.saturating_sub(state.since);
                self.series.remove(labels);
                out.push(Transition::Resolved {
                    labels: labels.clone(),
                    from,
                    value,
                    breached_for,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
