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
//!   (`for: 0s` fires on the first breaching poll); where the breach began and whether
//!   it held are then read in the data, step by step (`onset.rs`), so `for` counts from
//!   the data, not from the polls;
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
//!
//! The judges beyond a fixed threshold (`judge.rs`) change what counts as a breach and
//! when a series fires, never the rest:
//! - `breaches: M of N` replaces `for`: a series goes pending at its first breach,
//!   fires when M of its last N *judged* polls breached (consecutive or not), and
//!   resolves when none of its last N judged polls breached. `no_data: breach`/`ok`
//!   fill a slot, `hold`, a failed query and an insufficient poll take none;
//! - `min_traffic`: a series whose guard is below `min` (or has no guard series) is
//!   insufficient at that poll: no slot, no change, counted; a guard that cannot be
//!   matched (several series sharing no label with a rule series, or two with the same
//!   `on:` labels) makes the poll a failed one (`PollNotes::guard_refused`), never a sum;
//! - `baseline`: the threshold is `baseline ± P%` (and the absolute one, as a floor);
//!   a series without a baseline follows `no_baseline`;
//! - `compare`: the rule-level series `{}` breaches when the canary pool is worse than
//!   the stable one (`core::stats::compare_by`); too few samples is insufficient; a
//!   NaN sample is no data, an infinite one the extreme of its side.
//!
//! - `slo`: the rule's answer is one sample per window and series (`slo_window`); each
//!   series is judged by its burn score, `> 1` when both windows of a pair burn faster
//!   than the pair's rate (`slo.rs`, read before anything else, at a poll and a step).
//!
//! A guard or baseline query that failed makes the whole poll a failed one.

mod evaluator;
mod judge;
mod onset;
mod pre_existing;
mod reading;
pub mod slo;
#[cfg(test)]
mod test_polls;

pub use crate::core::series::{Labels, Poll, Sample};
pub use evaluator::*;
pub use judge::{
    BaselineParams, Breaches, CompareParams, Direction, EffectMeasure, Evidence, Judging, OnLabels,
};
pub use onset::StepPoll;
pub use pre_existing::{read_before, worse_by, Before, PreExisting};
pub use reading::{Reading, RuleState, Worse};
pub use slo::{BurnPair, SloParams};
