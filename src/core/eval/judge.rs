//! The judges beyond a fixed threshold (issue 12): their parameters, the evidence a
//! verdict carries, and the pure helpers the evaluator uses to apply them.
//!
//! - `breaches: M of N`: a series fires when M of its last N judged polls breached;
//! - `min_traffic`: a guard series, matched on the labels both results carry (one guard
//!   series without labels applies to all); below `min` a series is *insufficient* at
//!   that poll: it neither breaches nor clears and takes no slot;
//! - `baseline` with `above_baseline`/`below_baseline`: the value is compared with
//!   `baseline ± |baseline| × P/100` (and with an absolute `above`/`below` on the same
//!   side as a floor: both must be crossed); a series without a usable baseline follows
//!   `no_baseline`;
//! - `compare`: canary and stable pools over a sliding window, judged by
//!   `core::stats::compare_by` (Mann-Whitney U, and the effect by the rule's measure:
//!   the mean ratio by default, the Hodges–Lehmann shift, or the exceedance).

use super::{Labels, NoData, Sample};
pub use crate::core::stats::{Direction, EffectMeasure};
use std::time::Duration;

/// `breaches: M of N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaches {
    pub m: u32,
    pub n: u32,
}

/// `above_baseline` / `below_baseline` (percent, e.g. 30.0) and `no_baseline`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineParams {
    pub above_pct: Option<f64>,
    pub below_pct: Option<f64>,
    pub no_baseline: NoData,
}

/// `compare:` without its queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareParams {
    pub direction: Direction,
    /// e.g. 0.99: a healthy canary breaches in at most 1 watch in 100. The error rate
    /// 1 - confidence is spent over the `tests` polls the rule makes in the watch
    /// (Bonferroni): each poll needs p < (1 - confidence) / tests.
    pub confidence: f64,
    /// The number of tests `confidence` holds for: the rule's polls over the watch's
    /// duration ([`CompareParams::over`]); 1 for one test (`gate`, a verdict).
    pub tests: u32,
    /// A fraction (20% = 0.2).
    pub min_effect: f64,
    pub window: Duration,
    pub min_samples: usize,
    /// `compare.effect`: how `min_effect` is measured.
    pub effect: EffectMeasure,
}

impl CompareParams {
    /// The default `compare.confidence`: per watch.
    pub const CONFIDENCE: f64 = 0.99;

    /// The p-value one poll must be under: 1 - confidence spent over `tests` polls.
    pub fn alpha(&self) -> f64 {
        (1.0 - self.confidence) / f64::from(self.tests.max(1))
    }

    /// These parameters for a watch of `duration` polled every `interval`: the
    /// confidence holds for the whole watch, whose window is re-tested at every poll.
    pub fn over(self, duration: Duration, interval: Duration) -> Self {
        let iv = interval.as_nanos().max(1);
        let polls = duration
            .as_nanos()
            .div_ceil(iv)
            .clamp(1, u128::from(u32::MAX));
        CompareParams {
            tests: polls as u32,
            ..self
        }
    }
}

/// `min_traffic.on: [labels]`: the labels a guard series must agree on with a rule
/// series (absent equals empty, as in PromQL's `on`). Kept as hashes of the names so
/// that `Params` stays `Copy` and the evaluator allocation-free: the key of a series
/// is the sorted (hash, value) pairs of its labels whose name hash is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnLabels {
    hashes: [u64; OnLabels::MAX],
    len: u8,
}

impl OnLabels {
    /// The most labels `on:` may name.
    pub const MAX: usize = 8;

    /// None when there are more than `MAX` names.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Option<OnLabels> {
        if names.len() > Self::MAX {
            return None;
        }
        let mut hashes = [0; Self::MAX];
        for (h, n) in hashes.iter_mut().zip(names) {
            *h = fnv1a(n.as_ref());
        }
        Some(OnLabels {
            hashes,
            len: names.len() as u8,
        })
    }

    fn has(&self, name: &str) -> bool {
        let h = fnv1a(name);
        self.hashes[..self.len as usize].contains(&h)
    }

    /// The values of the `on` labels, in a stable order (empty values left out).
    fn key<'a>(&self, labels: &'a Labels) -> Vec<(u64, &'a str)> {
        let mut k: Vec<(u64, &str)> = labels
            .iter()
            .filter(|(n, v)| !v.is_empty() && self.has(n))
            .map(|(n, v)| (fnv1a(n), v))
            .collect();
        k.sort_unstable();
        k
    }
}

/// `{a="x", b="y"}`, for messages.
fn fmt_labels(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// FNV-1a: a fixed hash (never randomised), so a key is the same in every process.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Which judges a rule uses besides its threshold; all off by default.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Judging {
    pub breaches: Option<Breaches>,
    /// `min_traffic.min`.
    pub min_traffic: Option<f64>,
    /// `min_traffic.on`: match guard series on these labels only.
    pub guard_on: Option<OnLabels>,
    pub baseline: Option<BaselineParams>,
    pub compare: Option<CompareParams>,
    /// `pre_existing:`: what a breach already there before the watch gets.
    pub pre_existing: super::pre_existing::PreExisting,
    /// `slo:`: the rule's answer is read as windows' error ratios (`slo.rs`).
    pub slo: Option<super::slo::SloParams>,
}

/// Why a verdict was reached: everything a judge compared, for logs, events, reports and
/// notifications. Fields a rule's judges do not produce stay `None`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evidence {
    /// The baseline value of this series (`baseline:`), or the stable side's median
    /// (`compare:`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub baseline: Option<f64>,
    /// value / baseline.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub ratio: Option<f64>,
    /// The guard's value for this series (`min_traffic:`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub traffic: Option<f64>,
    /// Mann-Whitney p-value (`compare:`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub p_value: Option<f64>,
    /// How much worse the canary is, by `effect_measure` (`compare:`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub effect: Option<f64>,
    /// How `effect` was measured (`compare:`): `hodges_lehmann`, `mean_ratio` or
    /// `exceedance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_measure: Option<&'static str>,
    /// The Hodges–Lehmann shift itself.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub shift: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_canary: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_stable: Option<usize>,
    /// `breaches: M of N`: breaches among the last N judged polls, and N.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaches: Option<(u32, u32)>,
    /// The rule's insufficient polls so far (series × polls), when it has a guard or
    /// compares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insufficient: Option<u64>,
    /// `pre_existing: ignore | improve`: the worst value of this series in the `for`
    /// before the watch, its breach carried over from before the deploy.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub before_deploy: Option<f64>,
    /// `slo:`: the burn rate of each window of the series.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burn: Vec<super::slo::WindowBurn>,
    /// `slo:`: the share of the period's error budget spent since the watch began.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::core::series::float::option"
    )]
    pub budget_spent: Option<f64>,
}

impl Evidence {
    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        *self == Evidence::default()
    }

    /// A compact text form for log lines and notifications, e.g.
    /// `baseline=120 ratio=0.5` or `p=0.001 effect=+1.02 n=40/40`.
    pub fn text(&self) -> String {
        use crate::core::series::float::text;
        let mut out = Vec::new();
        let mut f = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.push(format!("{k}={}", text(round(v))));
            }
        };
        f("baseline", self.baseline);
        f("ratio", self.ratio);
        f("traffic", self.traffic);
        f("p", self.p_value);
        f("effect", self.effect);
        f("shift", self.shift);
        if let (Some(c), Some(s)) = (self.n_canary, self.n_stable) {
            out.push(format!("n={c}/{s}"));
        }
        if let Some((k, n)) = self.breaches {
            out.push(format!("breaches={k}/{n}"));
        }
        if let Some(i) = self.insufficient {
            out.push(format!("insufficient={i}"));
        }
        if let Some(b) = self.before_deploy {
            out.push(format!("before_deploy={}", text(round(b))));
        }
        for w in &self.burn {
            out.push(format!("burn_{}={}", w.window, text(round(w.burn))));
        }
        if let Some(b) = self.budget_spent {
            out.push(format!("budget_spent={}%", text(round(b * 100.0))));
        }
        out.join(" ")
    }
}

/// Six significant digits: enough for a person, stable in text.
fn round(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    format!("{v:.5e}").parse().unwrap_or(v)
}

/// Whether a guard series applies to a rule series: every label both carry agrees (a
/// guard series without labels applies to all). The metric name is not a label here,
/// as in PromQL's vector matching: a guard on `requests` applies to `errors`.
pub fn guard_matches(series: &Labels, guard: &Labels) -> bool {
    guard
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .all(|(k, v)| series.get(k).is_none_or(|sv| sv == v))
}

/// The traffic of a series: the sum of the matching guard series (NaN ones ignored), or
/// None when no guard series matches. With `on`, the guard series whose `on` labels
/// equal the series' (`guard_problem` has made sure there is at most one).
pub fn traffic(series: &Labels, guard: &[Sample], on: Option<OnLabels>) -> Option<f64> {
    let mut total = None;
    let key = on.map(|o| o.key(series));
    for g in guard.iter().filter(|g| {
        !g.value.is_nan()
            && match (&on, &key) {
                (Some(o), Some(k)) => o.key(&g.labels) == *k,
                _ => guard_matches(series, &g.labels),
            }
    }) {
        *total.get_or_insert(0.0) += g.value;
    }
    total
}

/// Why a guard cannot be matched with the rule's series at this poll, if it cannot:
/// without `on`, several guard series of which none shares a label name with a rule
/// series (each would apply to it and be summed: a guard by pod on a rule by service
/// measures all traffic); with `on`, two guard series with the same `on` labels. The
/// poll is then refused (a failed poll, never evidence) and the reason logged.
pub fn guard_problem<'a>(
    series: impl Iterator<Item = &'a Labels>,
    guard: &[Sample],
    on: Option<OnLabels>,
) -> Option<String> {
    let guard: Vec<&Sample> = guard.iter().filter(|g| !g.value.is_nan()).collect();
    if let Some(on) = on {
        let mut keys: Vec<Vec<(u64, &str)>> = guard.iter().map(|g| on.key(&g.labels)).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        return (keys.len() < before).then(|| {
            "two guard series (`min_traffic.query`) have the same `min_traffic.on` labels, so one rule series would take the sum of both; aggregate the guard by those labels".to_string()
        });
    }
    if guard.len() < 2 {
        return None;
    }
    let names: std::collections::BTreeSet<&str> = guard
        .iter()
        .flat_map(|g| g.labels.keys())
        .filter(|k| *k != "__name__")
        .collect();
    for s in series {
        if !s.keys().any(|k| names.contains(k)) {
            return Some(format!(
                "the guard (`min_traffic.query`) returned {} series, none sharing a label with the rule's series {}: each would apply to it and be summed; aggregate the guard by the rule's labels, make it one label-less series, or name the labels to match with `min_traffic.on`",
                guard.len(),
                fmt_labels(s)
            ));
        }
    }
    None
}

/// The baselines of a poll by label set: the finite value of each baseline series (the
/// mean when a label set is duplicated). Built once per poll, so each series finds its
/// baseline in O(log n).
pub fn baselines(baseline: &[Sample]) -> std::collections::BTreeMap<&Labels, f64> {
    let mut sums: std::collections::BTreeMap<&Labels, (f64, u32)> = Default::default();
    for b in baseline.iter().filter(|b| b.value.is_finite()) {
        let e = sums.entry(&b.labels).or_default();
        e.0 += b.value;
        e.1 += 1;
    }
    sums.into_iter()
        .map(|(l, (sum, n))| (l, sum / n as f64))
        .collect()
}

/// Whether `value` breaches with baseline `b`: on each side with a percentage, it must
/// cross `b ± |b|·P/100` and the absolute threshold of that side when there is one; a
/// side without a percentage is judged by its absolute threshold alone.
pub fn baseline_breached(
    value: f64,
    b: f64,
    p: &BaselineParams,
    above: Option<f64>,
    below: Option<f64>,
) -> bool {
    let up = match p.above_pct {
        Some(pct) => value > b + b.abs() * pct / 100.0 && above.is_none_or(|a| value > a),
        None => above.is_some_and(|a| value > a),
    };
    let down = match p.below_pct {
        Some(pct) => value < b - b.abs() * pct / 100.0 && below.is_none_or(|l| value < l),
        None => below.is_some_and(|l| value < l),
    };
    up || down
}
