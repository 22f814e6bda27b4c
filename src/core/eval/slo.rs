//! SLO burn-rate rules (issue 24): what "this release burns its error budget too
//! fast" means, decided once, here.
//!
//! An `slo:` rule states a service-level objective (`objective: 99.9%`), how to count
//! errors and requests (`errors:` and `total:`, each with a `${window}` placeholder),
//! and pairs of windows with a burn rate (the Google SRE workbook's multi-window,
//! multi-burn-rate alerts: `1h`/`5m` at 14.4 and `6h`/`30m` at 6 by default). The
//! burn rate of a window is its error ratio over the error budget, `1 - objective`:
//! at 1 the budget lasts exactly the period, at 14.4 a 30-day budget's 2% is gone in
//! an hour. A series breaches when, for ANY pair, BOTH its long and its short window
//! burn faster than the pair's rate: the long window says the burn is significant, the
//! short one that it is still going on.
//!
//! The loader (`core/rules/load/slo.rs`) writes one query that returns, for every
//! series of the user's queries, one sample per window, labelled
//! `slo_window="<window>"`: the window's error ratio; and one labelled
//! `slo_window="spent"`: the error ratio since the watch began times the seconds since
//! then. [`view`] turns that answer into what the evaluator judges: one sample per
//! series (the label removed) whose value is the *burn score*, the largest over the
//! pairs of `min(long burn, short burn) / burn`, so that the ordinary threshold
//! `> 1` is exactly "both windows of some pair above its rate". The burn rate of each
//! window and the share of the period's budget spent since the watch began go into the
//! series' evidence. Every face (watch, replay, the agent, `gate`, the verdict routes,
//! a step of a range read) reads a poll through the evaluator, and the evaluator
//! through [`view`]: one meaning of an SLO poll.

use super::{Labels, Poll, Sample};
use std::collections::BTreeMap;
use std::time::Duration;

/// The label the loader's query puts on each window's sample.
pub const WINDOW_LABEL: &str = "slo_window";
/// The `slo_window` value of the error ratio since the start times its seconds.
pub const SPENT: &str = "spent";
/// The most window pairs a rule may have (the workbook's page and ticket levels).
pub const MAX_PAIRS: usize = 4;
/// The default period of the objective, over which its error budget is spent.
pub const PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// One pair of windows and the burn rate both must exceed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnPair {
    pub long: Duration,
    pub short: Duration,
    pub burn: f64,
}

impl BurnPair {
    /// The SRE workbook's page-level pairs: 2% of a 30-day budget in an hour, 5% in
    /// six hours.
    pub const PAGE: [BurnPair; 2] = [
        BurnPair {
            long: Duration::from_secs(3600),
            short: Duration::from_secs(300),
            burn: 14.4,
        },
        BurnPair {
            long: Duration::from_secs(6 * 3600),
            short: Duration::from_secs(1800),
            burn: 6.0,
        },
    ];
}

/// An `slo:` rule without its queries. `Copy`, as all of `Params` is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloParams {
    /// The objective as a fraction (99.9% is 0.999).
    pub objective: f64,
    /// The period the budget is for (`period:`, 30 days by default).
    pub period: Duration,
    pairs: [BurnPair; MAX_PAIRS],
    len: u8,
}

impl SloParams {
    /// None when there is no pair or more than `MAX_PAIRS`.
    pub fn new(objective: f64, period: Duration, pairs: &[BurnPair]) -> Option<SloParams> {
        if pairs.is_empty() || pairs.len() > MAX_PAIRS {
            return None;
        }
        let mut all = [pairs[0]; MAX_PAIRS];
        all[..pairs.len()].copy_from_slice(pairs);
        Some(SloParams {
            objective,
            period,
            pairs: all,
            len: pairs.len() as u8,
        })
    }

    pub fn pairs(&self) -> &[BurnPair] {
        &self.pairs[..self.len as usize]
    }

    /// The error budget: the share of requests that may fail, `1 - objective`.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective
    }

    /// A window's burn rate from its error ratio.
    pub fn burn_rate(&self, error_ratio: f64) -> f64 {
        error_ratio / self.budget()
    }

    /// The distinct windows, in the order the pairs name them (long, then short).
    pub fn windows(&self) -> Vec<Duration> {
        let mut out: Vec<Duration> = Vec::new();
        for p in self.pairs() {
            for w in [p.long, p.short] {
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
        out
    }

    /// The condition in words: `burn > 14.4 over 1h and 5m, or > 6 over 6h and 30m`.
    pub fn condition(&self) -> String {
        let parts: Vec<String> = self
            .pairs()
            .iter()
            .map(|p| {
                format!(
                    "> {} over {} and {}",
                    p.burn,
                    window_label(p.long),
                    window_label(p.short)
                )
            })
            .collect();
        format!("burn {}", parts.join(", or "))
    }
}

/// A window as its `slo_window` label and its evidence write it: `5m`, `1h`, `1d`,
/// else seconds (`90s`).
pub fn window_label(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The burn rate of one window of one series.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowBurn {
    pub window: String,
    #[serde(serialize_with = "crate::core::series::float::serialize")]
    pub burn: f64,
}

/// What one poll says of one series besides its score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SloEvidence {
    /// Each window's burn rate, in the order of [`SloParams::windows`].
    pub burn: Vec<WindowBurn>,
    /// The share of the period's budget spent since the watch began.
    pub budget_spent: Option<f64>,
}

/// The burn score of one series from its windows' error ratios: the largest over the
/// pairs whose both windows have a number of `min(long, short) / burn`; None when no
/// pair has both.
pub fn score(p: &SloParams, ratio: impl Fn(Duration) -> Option<f64>) -> Option<f64> {
    p.pairs()
        .iter()
        .filter_map(|pair| {
            let l = p.burn_rate(ratio(pair.long)?);
            let s = p.burn_rate(ratio(pair.short)?);
            (!l.is_nan() && !s.is_nan()).then(|| l.min(s) / pair.burn)
        })
        .reduce(f64::max)
}

/// The poll the evaluator judges, and each series' burn evidence: for a rule without
/// `slo`, the poll itself. For an `slo` rule, the samples are grouped by their labels
/// without `slo_window`; each group becomes one sample whose value is its [`score`]
/// (a group without any complete pair is absent: no data). A failed poll stays failed.
pub fn view<'a>(
    slo: Option<&SloParams>,
    poll: &'a Poll,
) -> (std::borrow::Cow<'a, Poll>, BTreeMap<Labels, SloEvidence>) {
    use std::borrow::Cow;
    let (Some(p), Poll::Samples(samples)) = (slo, poll) else {
        return (Cow::Borrowed(poll), BTreeMap::new());
    };
    let windows = p.windows();
    let names: Vec<String> = windows.iter().map(|w| window_label(*w)).collect();
    // Per series: each window's ratio (the worse of duplicates), and `spent`.
    let mut groups: BTreeMap<Labels, BTreeMap<&str, f64>> = BTreeMap::new();
    for s in samples {
        let Some(w) = s.labels.get(WINDOW_LABEL) else {
            continue;
        };
        let Some(name) = names
            .iter()
            .map(String::as_str)
            .chain([SPENT])
            .find(|n| *n == w)
        else {
            continue;
        };
        let key = s.labels.without(WINDOW_LABEL);
        let slot = groups.entry(key).or_default();
        // Duplicates of a window (merged replicas): the higher ratio, a number over NaN.
        let keep = slot.get(name).is_some_and(|v| !v.is_nan() && s.value <= *v)
            || (s.value.is_nan() && slot.contains_key(name));
        if !keep {
            slot.insert(name, s.value);
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut evidence = BTreeMap::new();
    for (labels, ratios) in groups {
        let ratio = |w: Duration| {
            let i = windows.iter().position(|x| *x == w)?;
            ratios.get(names[i].as_str()).copied()
        };
        let Some(value) = score(p, ratio) else {
            continue;
        };
        let burn = windows
            .iter()
            .zip(&names)
            .filter_map(|(w, n)| {
                let r = ratio(*w)?;
                (!r.is_nan()).then(|| WindowBurn {
                    window: n.clone(),
                    burn: p.burn_rate(r),
                })
            })
            .collect();
        let budget_spent = ratios
            .get(SPENT)
            .filter(|v| !v.is_nan())
            .map(|v| v / (p.budget() * p.period.as_secs_f64()));
        evidence.insert(labels.clone(), SloEvidence { burn, budget_spent });
        out.push(Sample { labels, value });
    }
    (Cow::Owned(Poll::Samples(out)), evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(window: &str, service: &str, v: f64) -> Sample {
        Sample::new(&[(WINDOW_LABEL, window), ("service", service)], v)
    }

    fn page() -> SloParams {
        SloParams::new(0.999, PERIOD, &BurnPair::PAGE).unwrap()
    }

    fn one(poll: &Poll) -> (Option<f64>, SloEvidence) {
        let (v, ev) = view(Some(&page()), poll);
        let Poll::Samples(out) = v.as_ref() else {
            panic!("failed")
        };
        assert!(out.len() <= 1);
        (
            out.first().map(|s| s.value),
            ev.into_values().next().unwrap_or_default(),
        )
    }

    #[test]
    fn breaches_only_when_both_windows_of_a_pair_burn_faster_than_its_rate() {
        // error ratios; budget 0.001: a ratio of 0.0144 is a burn of 14.4.
        let cases: &[([f64; 4], bool)] = &[
            // 1h, 5m, 6h, 30m
            ([0.02, 0.02, 0.0, 0.0], true), // the page pair, both above 14.4
            ([0.02, 0.001, 0.0, 0.0], false), // long burning, short recovered
            ([0.001, 0.5, 0.0, 0.0], false), // a short spike only
            ([0.0, 0.0, 0.007, 0.007], true), // the slow pair, both above 6
            ([0.0, 0.0, 0.007, 0.005], false), // its short one under 6
            ([0.0144, 0.0144, 0.0, 0.0], false), // exactly at the rate: not above
        ];
        for (ratios, want) in cases {
            let poll = Poll::Samples(
                ["1h", "5m", "6h", "30m"]
                    .iter()
                    .zip(ratios)
                    .map(|(w, r)| s(w, "checkout", *r))
                    .collect(),
            );
            let (v, ev) = one(&poll);
            let v = v.expect("a score");
            assert_eq!(v > 1.0, *want, "{ratios:?}: score {v}");
            assert_eq!(ev.burn.len(), 4);
            assert_eq!(ev.burn[0].window, "1h");
            assert!((ev.burn[0].burn - ratios[0] / 0.001).abs() < 1e-6);
        }
    }

    #[test]
    fn a_series_is_grouped_without_the_window_label_and_spends_budget() {
        let poll = Poll::Samples(vec![
            s("1h", "a", 0.02),
            s("5m", "a", 0.03),
            s("6h", "b", 0.02),
            // b has no 30m sample, and no 1h/5m: no complete pair, so no data.
            // 0.01 error ratio over one hour, of a 30-day budget of 0.001.
            s(SPENT, "a", 0.01 * 3600.0),
        ]);
        let (v, ev) = view(Some(&page()), &poll);
        let Poll::Samples(out) = v.as_ref() else {
            panic!()
        };
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels, Sample::new(&[("service", "a")], 0.0).labels);
        assert!((out[0].value - 20.0 / 14.4).abs() < 1e-9);
        let e = &ev[&out[0].labels];
        // 36 error-seconds of budget 0.001 × 2,592,000 s: 1.39%.
        assert!((e.budget_spent.unwrap() - 36.0 / 2592.0).abs() < 1e-9);
    }

    #[test]
    fn a_rule_without_slo_and_a_failed_poll_are_left_as_they_are() {
        let poll = Poll::Samples(vec![s("1h", "a", 0.5)]);
        assert_eq!(view(None, &poll).0.as_ref(), &poll);
        assert_eq!(view(Some(&page()), &Poll::Failed).0.as_ref(), &Poll::Failed);
    }

    #[test]
    fn the_evaluator_judges_the_score_and_carries_each_window_as_evidence() {
        use crate::core::eval::{Judging, NoData, Params, RuleEval, Threshold, Transition};
        let params = Params {
            threshold: Threshold::band(Some(1.0), None),
            for_: Duration::ZERO,
            no_data: NoData::Ok,
            judge: Judging {
                slo: Some(page()),
                ..Judging::default()
            },
        };
        let mut eval = RuleEval::new(params);
        let poll = |short: f64| {
            Poll::Samples(vec![
                s("1h", "a", 0.02),
                s("5m", "a", short),
                s("6h", "a", 0.001),
                s("30m", "a", 0.001),
                s(SPENT, "a", 0.02 * 600.0),
            ])
        };
        let r = eval.read(Duration::ZERO, &poll(0.001), Default::default());
        assert!(r.transitions.is_empty(), "{r:?}");
        // The slow pair is the closer one: min(1, 1) / 6 (the fast one: min(20, 1) / 14.4).
        assert!((r.value.unwrap() - 1.0 / 6.0).abs() < 1e-9, "{r:?}");
        let r = eval.read(Duration::from_secs(15), &poll(0.03), Default::default());
        let Some(Transition::Fired {
            labels, evidence, ..
        }) = r.transitions.get(1)
        else {
            panic!("{r:?}")
        };
        assert_eq!(labels.get("service"), Some("a"));
        assert!(!labels.contains_key(WINDOW_LABEL));
        assert_eq!(
            evidence.text(),
            "burn_1h=20 burn_5m=30 burn_6h=1 burn_30m=1 budget_spent=0.462963%"
        );
        assert_eq!(r.worst.map(|w| w.labels), Some(labels.clone()));
    }

    #[test]
    fn a_healthy_step_of_the_pending_span_restarts_for_as_a_healthy_poll_would() {
        use crate::core::eval::{Judging, NoData, Params, RuleEval, StepPoll, Threshold};
        let params = Params {
            threshold: Threshold::band(Some(1.0), None),
            for_: Duration::from_secs(60),
            no_data: NoData::Ok,
            judge: Judging {
                slo: Some(page()),
                ..Judging::default()
            },
        };
        // Both windows of the page pair above 14.4, or the short one recovered.
        let poll = |burning: bool| {
            Poll::Samples(vec![
                s("1h", "a", 0.02),
                s("5m", "a", if burning { 0.03 } else { 0.001 }),
                s("6h", "a", 0.0),
                s("30m", "a", 0.0),
            ])
        };
        let mut eval = RuleEval::new(params);
        eval.read(Duration::ZERO, &poll(true), Default::default());
        assert_eq!(eval.next_due(), Some(Duration::from_secs(60)));
        let steps: Vec<StepPoll> = (1..=6)
            .map(|k| StepPoll {
                at: Duration::from_secs(10 * k),
                poll: poll(k != 2),
                guard: None,
                baseline: None,
            })
            .collect();
        let restarted = eval.confirm(Duration::from_secs(60), &steps, None);
        let a = Sample::new(&[("service", "a")], 0.0).labels;
        assert_eq!(restarted, vec![(a, Duration::from_secs(20))]);
    }

    #[test]
    fn a_burn_before_the_watch_is_read_with_its_score_even_without_labels() {
        use crate::core::eval::{read_before, Judging, NoData, Params, StepPoll, Threshold};
        let params = Params {
            threshold: Threshold::band(Some(1.0), None),
            for_: Duration::from_secs(20),
            no_data: NoData::Ok,
            judge: Judging {
                slo: Some(page()),
                ..Judging::default()
            },
        };
        // `sum(...)`: the series has no labels but its window.
        let w = |window: &str, v: f64| Sample::new(&[(WINDOW_LABEL, window)], v);
        let steps: Vec<StepPoll> = (0..3)
            .map(|k| StepPoll {
                at: Duration::from_secs(10 * k),
                poll: Poll::Samples(vec![
                    w("1h", 0.02),
                    w("5m", 0.03),
                    w("6h", 0.0),
                    w("30m", 0.0),
                ]),
                guard: None,
                baseline: None,
            })
            .collect();
        let before = read_before(&params, &steps, None);
        let score = before.get(&Labels::new()).copied();
        assert!(
            score.is_some_and(|v| (v - 20.0 / 14.4).abs() < 1e-6),
            "{before:?}"
        );
    }

    #[test]
    fn windows_and_condition_read_as_written() {
        let p = page();
        assert_eq!(p.windows().len(), 4);
        assert_eq!(
            p.condition(),
            "burn > 14.4 over 1h and 5m, or > 6 over 6h and 30m"
        );
        assert_eq!(window_label(Duration::from_secs(90)), "90s");
        assert_eq!(window_label(Duration::from_secs(3 * 86_400)), "3d");
    }
}
