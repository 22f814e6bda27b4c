//! Table tests of the judges beyond a fixed threshold (`judge.rs`): `breaches: M of N`,
//! `min_traffic`, `baseline` and `compare`. Polls are written as in `tests.rs`:
//! `"a=0.2 b=0.01"` is a result with series `{s="a"}` and `{s="b"}`, `"v=1"` the
//! label-less series, `"-"` an empty result, `"err"` a failed query.

use super::*;
use crate::core::eval::{BaselineParams, Breaches, Direction, EffectMeasure, OnLabels};

use crate::core::eval::test_polls::poll;

fn name(labels: &Labels) -> String {
    labels.get("s").unwrap_or("_").to_string()
}

fn s(t: &Transition) -> String {
    match t {
        Transition::Pending { labels, .. } => format!("pending {}", name(labels)),
        Transition::Fired { labels, .. } => format!("fired {}", name(labels)),
        Transition::Resolved { labels, .. } => format!("resolved {}", name(labels)),
    }
}

fn params(above: Option<f64>, below: Option<f64>, no_data: NoData, judge: Judging) -> Params {
    Params {
        threshold: Threshold::band(above, below),
        for_: Duration::ZERO,
        no_data,
        judge,
    }
}

fn m_of_n(m: u32, n: u32) -> Judging {
    Judging {
        breaches: Some(Breaches { m, n }),
        ..Default::default()
    }
}

/// One poll of the table: (seconds, rule's poll, guard poll, baseline poll).
type Row = (u64, &'static str, &'static str, &'static str);

/// Runs polls (every 10 s) with their guard and baseline ("" = not given).
fn run(p: Params, rows: &[Row]) -> (Vec<String>, RuleEval) {
    let mut eval = RuleEval::new(p);
    let mut out = Vec::new();
    for (t, main, guard, base) in rows {
        let (g, b) = (poll(guard), poll(base));
        let extra = Extra {
            guard: (!guard.is_empty()).then_some(&g),
            baseline: (!base.is_empty()).then_some(&b),
            stable: None,
        };
        for tr in eval.observe_with(Duration::from_secs(*t), &poll(main), extra) {
            out.push(format!("{t} {}", s(&tr)));
        }
    }
    (out, eval)
}

fn plain(polls: &[(u64, &'static str)]) -> Vec<Row> {
    polls.iter().map(|(t, p)| (*t, *p, "", "")).collect()
}

struct Case {
    name: &'static str,
    params: Params,
    rows: Vec<Row>,
    expect: &'static [&'static str],
}

#[test]
fn breaches_m_of_n_table() {
    let above = |m, n, nd| params(Some(0.05), None, nd, m_of_n(m, n));
    let cases = [
        Case {
            name: "3 of 5, not consecutive, fires at the third breach",
            params: above(3, 5, NoData::Ok),
            rows: plain(&[
                (0, "a=1"),
                (10, "a=0"),
                (20, "a=1"),
                (30, "a=0"),
                (40, "a=1"),
            ]),
            expect: &["0 pending a", "40 fired a"],
        },
        Case {
            name: "3 of 3 needs three in the last three: alternating never fires",
            params: above(3, 3, NoData::Ok),
            rows: plain(&[
                (0, "a=1"),
                (10, "a=1"),
                (20, "a=0"),
                (30, "a=1"),
                (40, "a=1"),
                (50, "a=0"),
            ]),
            expect: &["0 pending a"],
        },
        Case {
            name: "single-scrape spikes: 3 of 5 catches what resets `for`",
            params: above(3, 5, NoData::Ok),
            rows: plain(&[
                (0, "a=1"),
                (10, "a=0"),
                (20, "a=1"),
                (30, "a=0"),
                (40, "a=1"),
                (50, "a=0"),
            ]),
            expect: &["0 pending a", "40 fired a"],
        },
        Case {
            name: "one flaky scrape does not fire 3 of 5; it resolves when all N slots are clean",
            params: above(3, 5, NoData::Ok),
            rows: plain(&[
                (0, "a=1"),
                (10, "a=0"),
                (20, "a=0"),
                (30, "a=0"),
                (40, "a=0"),
                (50, "a=0"),
            ]),
            expect: &["0 pending a", "50 resolved a"],
        },
        Case {
            name: "1 of N fires on the first breach",
            params: above(1, 4, NoData::Ok),
            rows: plain(&[(0, "a=0"), (10, "a=1")]),
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "no_data: breach fills a breaching slot",
            params: above(3, 5, NoData::Breach),
            rows: plain(&[(0, "a=1"), (10, "-"), (20, "-")]),
            expect: &["0 pending a", "20 fired a"],
        },
        Case {
            name: "no_data: ok fills a clean slot",
            params: above(2, 2, NoData::Ok),
            rows: plain(&[(0, "a=1"), (10, "-"), (20, "a=1"), (30, "a=1")]),
            expect: &["0 pending a", "30 fired a"],
        },
        Case {
            name: "no_data: hold takes no slot",
            params: above(3, 3, NoData::Hold),
            rows: plain(&[(0, "a=1"), (10, "-"), (20, "a=1"), (30, "-"), (40, "a=1")]),
            expect: &["0 pending a", "40 fired a"],
        },
        Case {
            name: "a failed query takes no slot",
            params: above(3, 3, NoData::Ok),
            rows: plain(&[
                (0, "a=1"),
                (10, "err"),
                (20, "a=1"),
                (30, "err"),
                (40, "a=1"),
            ]),
            expect: &["0 pending a", "40 fired a"],
        },
        Case {
            name: "series are counted each on its own",
            params: above(2, 3, NoData::Ok),
            rows: plain(&[(0, "a=1 b=0"), (10, "a=0 b=1"), (20, "a=1 b=0")]),
            expect: &["0 pending a", "10 pending b", "20 fired a"],
        },
        Case {
            name: "the rule-level no-data series counts with no_data: breach",
            params: above(2, 3, NoData::Breach),
            rows: plain(&[(0, "-"), (10, "-")]),
            expect: &["0 pending _", "10 fired _"],
        },
    ];
    for c in cases {
        assert_eq!(run(c.params, &c.rows).0, c.expect, "{}", c.name);
    }
}

#[test]
fn breaches_evidence_counts_the_window() {
    let mut eval = RuleEval::new(params(Some(0.05), None, NoData::Ok, m_of_n(2, 4)));
    eval.observe(Duration::ZERO, &poll("a=1"));
    eval.observe(Duration::from_secs(10), &poll("a=0"));
    let out = eval.observe(Duration::from_secs(20), &poll("a=1"));
    let Transition::Fired {
        evidence,
        breached_for,
        ..
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!(evidence.breaches, Some((2, 4)));
    assert_eq!(*breached_for, Duration::from_secs(20));
}

#[test]
fn a_huge_n_keeps_only_n_slots() {
    let mut eval = RuleEval::new(params(Some(0.05), None, NoData::Ok, m_of_n(1000, 1000)));
    for k in 0..3000u64 {
        eval.observe(
            Duration::from_secs(k),
            &poll(if k == 0 { "a=1" } else { "a=0" }),
        );
    }
    // The single breach slid out after 1000 polls: resolved, nothing kept.
    assert!(eval.series().is_empty());
}

fn guarded(min: f64, extra: Judging) -> Params {
    params(
        Some(0.05),
        None,
        NoData::Ok,
        Judging {
            min_traffic: Some(min),
            ..extra
        },
    )
}

#[test]
fn min_traffic_table() {
    let cases = [
        Case {
            name: "1 error in 3 requests under the guard is insufficient, not a breach",
            params: guarded(0.5, Judging::default()),
            rows: vec![(0, "a=0.33", "a=0.05", ""), (10, "a=0.33", "a=0.05", "")],
            expect: &[],
        },
        Case {
            name: "matched on shared labels: only the busy series is judged",
            params: guarded(0.5, Judging::default()),
            rows: vec![(0, "a=0.3 b=0.3", "a=10 b=0.1", "")],
            expect: &["0 pending a", "0 fired a"],
        },
        Case {
            name: "one guard series without labels applies to all",
            params: guarded(0.5, Judging::default()),
            rows: vec![
                (0, "a=0.3 b=0.3", "v=0.1", ""),
                (10, "a=0.3 b=0.3", "v=9", ""),
            ],
            expect: &["10 pending a", "10 fired a", "10 pending b", "10 fired b"],
        },
        Case {
            name: "an insufficient poll neither breaches nor clears",
            params: guarded(0.5, Judging::default()),
            rows: vec![
                (0, "a=0.3", "a=9", ""),
                (10, "a=0.0", "a=0.1", ""),
                (20, "a=0.0", "a=9", ""),
            ],
            expect: &["0 pending a", "0 fired a", "20 resolved a"],
        },
        Case {
            name: "an insufficient poll takes no slot of M of N",
            params: guarded(0.5, m_of_n(2, 2)),
            rows: vec![
                (0, "a=0.3", "a=9", ""),
                (10, "a=0.0", "a=0.1", ""),
                (20, "a=0.3", "a=9", ""),
            ],
            expect: &["0 pending a", "20 fired a"],
        },
        Case {
            name: "no guard series for a series is insufficient (no traffic seen)",
            params: guarded(0.5, Judging::default()),
            rows: vec![(0, "a=0.3", "b=9", ""), (10, "a=0.3", "-", "")],
            expect: &[],
        },
        Case {
            name: "a failed guard makes the poll a failed one: no change",
            params: guarded(0.5, Judging::default()),
            rows: vec![(0, "a=0.3", "a=9", ""), (10, "a=0.0", "err", "")],
            expect: &["0 pending a", "0 fired a"],
        },
        Case {
            name: "several guard series matching one series are summed",
            params: guarded(0.5, Judging::default()),
            rows: vec![(0, "a=0.3", "a=0.3 a=0.3", "")],
            expect: &["0 pending a", "0 fired a"],
        },
        Case {
            name: "a NaN guard is no traffic, +Inf is plenty",
            params: guarded(0.5, Judging::default()),
            rows: vec![(0, "a=0.3", "a=nan", ""), (10, "a=0.3", "a=inf", "")],
            expect: &["10 pending a", "10 fired a"],
        },
    ];
    for c in cases {
        assert_eq!(run(c.params, &c.rows).0, c.expect, "{}", c.name);
    }
}

#[test]
fn the_metric_name_is_not_a_shared_label() {
    let l = |pairs: &[(&str, &str)]| Sample::new(pairs, 0.0).labels;
    let series = l(&[("__name__", "errors"), ("service", "shop")]);
    assert!(judge::guard_matches(
        &series,
        &l(&[("__name__", "requests"), ("service", "shop")])
    ));
    assert!(!judge::guard_matches(
        &series,
        &l(&[("__name__", "requests"), ("service", "cart")])
    ));
    assert!(judge::guard_matches(&series, &l(&[])));
    assert!(judge::guard_matches(&series, &l(&[("pod", "p1")])));
}

#[test]
fn insufficient_polls_are_counted_and_all_insufficient_is_not_judged() {
    let (_, eval) = run(
        guarded(0.5, Judging::default()),
        &[
            (0, "a=0.3 b=0.3", "a=0.1 b=0.1", ""),
            (10, "a=0.3", "a=0.1", ""),
        ],
    );
    assert_eq!(eval.insufficient_count(), 3);
    assert_eq!(eval.judged_count(), 0);
    assert!(eval.never_judged());
    assert_eq!(eval.notes().insufficient, 1);
    let (_, eval) = run(
        guarded(0.5, Judging::default()),
        &[(0, "a=0.3", "a=0.1", ""), (10, "a=0.01", "a=9", "")],
    );
    assert!(!eval.never_judged());
    assert_eq!((eval.judged_count(), eval.insufficient_count()), (1, 1));
    // A rule without a guard is never "insufficient".
    let (_, eval) = run(
        params(Some(1.0), None, NoData::Ok, Judging::default()),
        &plain(&[(0, "a=0")]),
    );
    assert!(!eval.never_judged());
}

#[test]
fn insufficient_count_is_in_the_evidence() {
    let (_, mut eval) = run(
        guarded(0.5, Judging::default()),
        &[(0, "a=0.3", "a=0.1", "")],
    );
    let g = poll("a=9");
    let out = eval.observe_with(
        Duration::from_secs(10),
        &poll("a=0.3"),
        Extra {
            guard: Some(&g),
            ..Default::default()
        },
    );
    let Transition::Pending { evidence, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(evidence.insufficient, Some(1));
    assert_eq!(evidence.traffic, Some(9.0));
}

fn based(
    above: Option<f64>,
    below: Option<f64>,
    up: Option<f64>,
    down: Option<f64>,
    nb: NoData,
) -> Params {
    params(
        above,
        below,
        NoData::Ok,
        Judging {
            baseline: Some(BaselineParams {
                above_pct: up,
                below_pct: down,
                no_baseline: nb,
            }),
            ..Default::default()
        },
    )
}

#[test]
fn baseline_table() {
    let below30 = based(None, None, None, Some(30.0), NoData::Hold);
    let cases = [
        Case {
            name: "a nightly dip as deep as last week's is no breach",
            params: below30,
            rows: vec![(0, "a=40", "", "a=50"), (10, "a=38", "", "a=50")],
            expect: &[],
        },
        Case {
            name: "a 50% drop against the baseline breaches",
            params: below30,
            rows: vec![(0, "a=50", "", "a=100")],
            expect: &["0 pending a", "0 fired a"],
        },
        Case {
            name: "exactly at baseline - 30% is not more than 30% below",
            params: below30,
            rows: vec![(0, "a=70", "", "a=100")],
            expect: &[],
        },
        Case {
            name: "above_baseline: more than P% above",
            params: based(None, None, Some(50.0), None, NoData::Hold),
            rows: vec![(0, "a=150", "", "a=100"), (10, "a=151", "", "a=100")],
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "the absolute threshold is a floor: a tiny baseline makes no noise",
            params: based(Some(0.01), None, Some(50.0), None, NoData::Hold),
            rows: vec![(0, "a=0.002", "", "a=0.001"), (10, "a=0.02", "", "a=0.001")],
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "crossing the absolute one alone is not enough either",
            params: based(Some(0.01), None, Some(50.0), None, NoData::Hold),
            rows: vec![(0, "a=0.02", "", "a=0.02")],
            expect: &[],
        },
        Case {
            name: "no baseline, hold: nothing changes",
            params: below30,
            rows: vec![(0, "a=1", "", "b=100"), (10, "a=1", "", "-")],
            expect: &[],
        },
        Case {
            name: "no baseline, breach",
            params: based(None, None, None, Some(30.0), NoData::Breach),
            rows: vec![(0, "a=1", "", "-")],
            expect: &["0 pending a", "0 fired a"],
        },
        Case {
            name: "no baseline, ok clears a breach",
            params: based(None, None, None, Some(30.0), NoData::Ok),
            rows: vec![(0, "a=1", "", "a=100"), (10, "a=1", "", "-")],
            expect: &["0 pending a", "0 fired a", "10 resolved a"],
        },
        Case {
            name: "a NaN or infinite baseline is no baseline",
            params: based(None, None, None, Some(30.0), NoData::Breach),
            rows: vec![(0, "a=100", "", "a=nan"), (10, "b=100", "", "b=inf")],
            expect: &[
                "0 pending a",
                "0 fired a",
                "10 pending b",
                "10 fired b",
                "10 resolved a",
            ],
        },
        Case {
            name: "a baseline of 0: any rise is above it, 0 is not",
            params: based(None, None, Some(10.0), None, NoData::Hold),
            rows: vec![(0, "a=0", "", "a=0"), (10, "a=0.5", "", "a=0")],
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "a negative baseline: P% is of its size",
            params: based(None, None, Some(10.0), None, NoData::Hold),
            rows: vec![(0, "a=-95", "", "a=-100"), (10, "a=-80", "", "a=-100")],
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "a failed baseline query is a failed poll",
            params: below30,
            rows: vec![(0, "a=10", "", "err")],
            expect: &[],
        },
    ];
    for c in cases {
        assert_eq!(run(c.params, &c.rows).0, c.expect, "{}", c.name);
    }
}

#[test]
fn baseline_evidence_and_no_baseline_notes() {
    let (out, mut eval) = run(
        based(None, None, None, Some(30.0), NoData::Hold),
        &[(0, "a=50", "", "a=100")],
    );
    assert_eq!(out, ["0 pending a", "0 fired a"]);
    let b = poll("a=100");
    let tr = eval.observe_with(
        Duration::from_secs(10),
        &poll("a=100 c=3"),
        Extra {
            baseline: Some(&b),
            ..Default::default()
        },
    );
    let Transition::Resolved { evidence, .. } = &tr[0] else {
        panic!("{tr:?}")
    };
    assert_eq!(
        (evidence.baseline, evidence.ratio),
        (Some(100.0), Some(1.0))
    );
    assert_eq!(
        eval.notes().no_baseline().to_vec(),
        vec![Sample::new(&[("s", "c")], 0.0).labels]
    );
    let e = &eval.notes().evidence[&Sample::new(&[("s", "a")], 0.0).labels];
    assert_eq!(e.text(), "baseline=100 ratio=1");
}

#[test]
fn a_judge_without_its_input_never_judges() {
    // A guard or baseline that was not given (a surface that forgot to run it) is a
    // failed poll, never a pass.
    let (out, eval) = run(guarded(0.5, Judging::default()), &plain(&[(0, "a=1")]));
    assert!(out.is_empty());
    assert_eq!(eval.judged_count(), 0);
    let (out, _) = run(
        based(None, None, None, Some(30.0), NoData::Breach),
        &plain(&[(0, "a=1")]),
    );
    assert!(out.is_empty());
}

fn comparing(window_s: u64, min_samples: usize) -> Params {
    params(
        None,
        None,
        NoData::Ok,
        Judging {
            compare: Some(CompareParams {
                direction: Direction::Increase,
                confidence: 0.98,
                tests: 1,
                min_effect: 0.2,
                window: Duration::from_secs(window_s),
                min_samples,
                effect: EffectMeasure::default(),
            }),
            ..Default::default()
        },
    )
}

fn compare_run(p: Params, rows: &[(u64, &str, &str)]) -> (Vec<String>, RuleEval) {
    let mut eval = RuleEval::new(p);
    let mut out = Vec::new();
    for (t, canary, stable) in rows {
        let st = poll(stable);
        let extra = Extra {
            stable: Some(&st),
            ..Default::default()
        };
        for tr in eval.observe_with(Duration::from_secs(*t), &poll(canary), extra) {
            out.push(format!("{t} {}", s(&tr)));
        }
    }
    (out, eval)
}

fn ns(eval: &RuleEval) -> (Option<usize>, Option<usize>) {
    let e = &eval.notes().evidence[&Labels::new()];
    (e.n_canary, e.n_stable)
}

#[test]
fn compare_pools_slide_per_side_and_count_insufficient() {
    // Window 30 s, polls every 10 s: a pool holds the last three polls' samples.
    let (out, eval) = compare_run(
        comparing(30, 1000),
        &[
            (0, "a=1 b=1", "x=1"),
            (10, "a=1 b=1", "x=1 y=1"),
            (20, "a=1 b=nan", "x=1"),
            (30, "a=1 b=inf", "-"),
        ],
    );
    assert!(out.is_empty());
    // Canary: t=10 (2), 20 (1: NaN dropped), 30 (2: +Inf is a value); stable: 2 + 1 + 0.
    assert_eq!(ns(&eval), (Some(5), Some(3)));
    assert_eq!(eval.insufficient_count(), 4);
    assert!(eval.never_judged());
    // A window shorter than the interval holds this poll's samples only.
    let (_, eval) = compare_run(
        comparing(5, 1000),
        &[(0, "a=1 b=1", "x=1"), (10, "a=1", "x=1")],
    );
    assert_eq!(ns(&eval), (Some(1), Some(1)));
    // A failed side is a failed poll: nothing added, nothing counted.
    let (_, eval) = compare_run(
        comparing(30, 1000),
        &[(0, "a=1", "x=1"), (10, "a=1", "err")],
    );
    assert_eq!(eval.insufficient_count(), 1);
}

/// `n` pods' values at poll `k`: around `base`, varied by pod and poll.
fn side(prefix: &str, n: usize, k: u64, base: f64, factor: f64) -> String {
    (0..n)
        .map(|p| {
            let v = (base + 0.004 * p as f64 + 0.002 * (k % 7) as f64) * factor;
            format!("{prefix}{p}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn compare_table(p: Params, polls: u64, canary_factor: f64) -> (Vec<String>, RuleEval) {
    let rows: Vec<(u64, String, String)> = (0..polls)
        .map(|k| {
            (
                k * 10,
                side("c", 5, k, 0.1, canary_factor),
                side("s", 5, k, 0.1, 1.0),
            )
        })
        .collect();
    let rows: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|(t, c, s)| (*t, c.as_str(), s.as_str()))
        .collect();
    compare_run(p, &rows)
}

#[test]
fn compare_table_with_the_statistics() {
    // 5 pods a side, a 60 s window at 10 s polls: 20 samples a side from the 4th poll.
    let p = comparing(60, 20);
    let (out, eval) = compare_table(p, 6, 2.0);
    assert_eq!(
        out,
        ["30 pending _", "30 fired _"],
        "double the stable: acts once judged"
    );
    let e = &eval.notes().evidence[&Labels::new()];
    assert!(
        e.p_value.unwrap() < 0.02 && e.effect.unwrap() > 0.9,
        "{e:?}"
    );
    assert_eq!(
        eval.insufficient_count(),
        3,
        "the first three polls were too few"
    );
    // Identical data never breaches.
    let (out, _) = compare_table(p, 8, 1.0);
    assert!(out.is_empty(), "{out:?}");
    // Significant but under min_effect (10% worse, min 20%): no breach.
    let (out, eval) = compare_table(p, 8, 1.1);
    assert!(out.is_empty(), "{out:?}");
    assert!(eval.notes().evidence[&Labels::new()].p_value.unwrap() < 0.02);
    // The good direction is no breach for `increase`, a breach for `either`/`decrease`.
    let (out, _) = compare_table(p, 6, 0.5);
    assert!(out.is_empty(), "{out:?}");
    let mut down = p;
    down.judge.compare.as_mut().unwrap().direction = Direction::Decrease;
    assert_eq!(
        compare_table(down, 6, 0.5).0,
        ["30 pending _", "30 fired _"]
    );
    // Constant samples on both sides, equal: never a breach.
    let rows: Vec<(u64, &str, &str)> = (0..8)
        .map(|k| (k * 10, "a=1 b=1 c=1", "x=1 y=1 z=1"))
        .collect();
    let (out, _) = compare_run(comparing(60, 3), &rows);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_pending_m_of_n_rule_shows_its_count_not_a_timer() {
    use crate::core::events::RuleState;
    let p = params(Some(0.5), None, NoData::Hold, m_of_n(3, 5));
    let (_, eval) = run(
        p,
        &[
            (0, "a=0.9", "", ""),
            (10, "a=0.1", "", ""),
            (20, "a=0.9", "", ""),
        ],
    );
    let state = RuleState::of(&eval, Duration::from_secs(20), &poll("a=0.9"));
    assert_eq!(
        state,
        RuleState::Pending {
            for_s: 20.0,
            of_s: 0.0,
            breaches: Some([2, 3, 5]),
        }
    );
    assert_eq!(state.to_string(), "pending: 2 of 3 breaches (last 5 polls)");
}

#[test]
fn a_canary_at_plus_inf_is_the_worst_value_and_nan_stays_no_data() {
    // `histogram_quantile` gives +Inf when the canary is slower than the top bucket.
    let rows: Vec<(u64, String, String)> = (0..6)
        .map(|k| {
            (
                k * 10,
                "c0=inf c1=inf c2=inf c3=0.1 c4=inf".to_string(),
                side("s", 5, k, 0.1, 1.0),
            )
        })
        .collect();
    let rows: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|(t, c, s)| (*t, c.as_str(), s.as_str()))
        .collect();
    for effect in [
        EffectMeasure::MeanRatio,
        EffectMeasure::HodgesLehmann,
        EffectMeasure::Exceedance,
    ] {
        let mut p = comparing(60, 20);
        p.judge.compare.as_mut().unwrap().effect = effect;
        let (out, eval) = compare_run(p, &rows);
        assert_eq!(out, ["30 pending _", "30 fired _"], "{effect:?}");
        let e = &eval.notes().evidence[&Labels::new()];
        assert_eq!(e.n_canary, Some(30), "{e:?}");
        assert!(
            e.p_value.unwrap() < 0.02 && e.effect.unwrap() > 0.2,
            "{effect:?} {e:?}"
        );
        // The canary's value is shown as it is.
        assert_eq!(eval.notes().compare_value(), Some(f64::INFINITY));
    }
    // +Inf on a `decrease` rule is the good direction: no breach.
    let mut down = comparing(60, 20);
    down.judge.compare.as_mut().unwrap().direction = Direction::Decrease;
    assert!(compare_run(down, &rows).0.is_empty());
    // NaN is no data: the canary pool stays empty, insufficient, never a breach.
    let nan: Vec<(u64, String, String)> = (0..6)
        .map(|k| {
            (
                k * 10,
                "c0=nan c1=nan c2=nan c3=nan c4=nan".to_string(),
                side("s", 5, k, 0.1, 1.0),
            )
        })
        .collect();
    let nan: Vec<(u64, &str, &str)> = nan
        .iter()
        .map(|(t, c, s)| (*t, c.as_str(), s.as_str()))
        .collect();
    let (out, eval) = compare_run(comparing(60, 20), &nan);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(ns(&eval), (Some(0), Some(30)));
    assert!(eval.never_judged());
}

#[test]
fn the_default_effect_sees_a_canary_that_errs_four_times_as_often() {
    // Per-pod error counts, 0 most of the time: 5 pods a side, 42 polls (210 samples a
    // side); the canary errs at 64 of them, stable at 17 (means 0.66 and 0.15).
    let counts = |nonzero: &[(usize, u32)]| {
        let mut v = vec![0u32; 210];
        let mut i = 0;
        for &(n, val) in nonzero {
            for _ in 0..n {
                v[(i * 97) % 210] = val; // spread over the polls
                i += 1;
            }
        }
        v
    };
    let c = counts(&[(9, 1), (35, 2), (20, 3)]);
    let s = counts(&[(7, 1), (5, 2), (5, 3)]);
    let rows: Vec<(u64, String, String)> = (0..42)
        .map(|k| {
            let side = |p: &str, v: &[u32]| {
                (0..5)
                    .map(|pod| format!("{p}{pod}={}", v[k * 5 + pod]))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            (k as u64 * 10, side("c", &c), side("s", &s))
        })
        .collect();
    let rows: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|(t, c, s)| (*t, c.as_str(), s.as_str()))
        .collect();
    // The window holds all 42 polls; judged from the first poll with 210 a side.
    let mut p = comparing(420, 210);
    p.judge.compare.as_mut().unwrap().min_effect = 0.0;
    let (out, eval) = compare_run(p, &rows);
    assert_eq!(
        out,
        ["410 pending _", "410 fired _"],
        "the default (mean ratio) acts"
    );
    let e = &eval.notes().evidence[&Labels::new()];
    assert!(
        e.p_value.unwrap() < 1e-6 && e.effect.unwrap() > 3.0,
        "{e:?}"
    );
    assert_eq!((e.shift, e.effect_measure), (Some(0.0), Some("mean_ratio")));
    // Hodges–Lehmann sees a shift of 0, and never acts on it.
    p.judge.compare.as_mut().unwrap().effect = EffectMeasure::HodgesLehmann;
    assert!(compare_run(p, &rows).0.is_empty());
}

fn labelled(labels: &[(&str, &str)], v: f64) -> Sample {
    Sample::new(labels, v)
}

#[test]
fn a_guard_sharing_no_label_with_the_rule_is_refused_never_summed() {
    // A rule by service; a guard by pod: three pods of 0.1 req/s (thin traffic).
    let rule = Poll::Samples(vec![labelled(&[("service", "a")], 0.9)]);
    let by_pod = Poll::Samples(vec![
        labelled(&[("pod", "p1")], 0.1),
        labelled(&[("pod", "p2")], 0.1),
        labelled(&[("pod", "p3")], 0.1),
    ]);
    let mut p = guarded(0.25, Judging::default());
    p.threshold = Threshold::band(Some(0.5), None);
    let mut eval = RuleEval::new(p);
    let extra = Extra {
        guard: Some(&by_pod),
        ..Default::default()
    };
    // Summed, 0.3 would pass `min: 0.25` and the thin traffic would act: refused.
    let out = eval.observe_with(Duration::ZERO, &rule, extra);
    assert!(out.is_empty(), "{out:?}");
    let why = eval
        .notes()
        .guard_refused()
        .map(str::to_owned)
        .expect("refused");
    assert_eq!(
        crate::core::events::RuleState::of(&eval, Duration::ZERO, &rule),
        crate::core::events::RuleState::QueryError,
        "shown as a failed poll (watch, replay, the agent's page and verdicts)"
    );
    assert!(
        why.contains("3 series") && why.contains("min_traffic.on"),
        "{why}"
    );
    assert!(!eval.notes().judged);
    assert_eq!((eval.judged_count(), eval.insufficient_count()), (0, 0));
    // One label-less guard series applies to every series, as documented.
    let total = Poll::Samples(vec![labelled(&[], 0.3)]);
    let extra = Extra {
        guard: Some(&total),
        ..Default::default()
    };
    let out = eval.observe_with(Duration::from_secs(10), &rule, extra);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(eval.notes().guard_refused(), None);
    // A guard by service (a shared label) is matched by it.
    let mut eval = RuleEval::new(p);
    let by_service = Poll::Samples(vec![
        labelled(&[("service", "a")], 0.1),
        labelled(&[("service", "b")], 9.0),
    ]);
    let extra = Extra {
        guard: Some(&by_service),
        ..Default::default()
    };
    assert!(eval.observe_with(Duration::ZERO, &rule, extra).is_empty());
    assert_eq!(eval.notes().insufficient, 1, "service a has 0.1 < 0.25");
    // `on: [service]` matches on the named labels only: a guard by (service, zone)...
    p.judge.guard_on = OnLabels::new(&["service"]);
    let zoned = Poll::Samples(vec![
        labelled(&[("service", "a"), ("zone", "z1")], 1.0),
        labelled(&[("service", "b"), ("zone", "z1")], 0.1),
    ]);
    let mut eval = RuleEval::new(p);
    let extra = Extra {
        guard: Some(&zoned),
        ..Default::default()
    };
    assert_eq!(eval.observe_with(Duration::ZERO, &rule, extra).len(), 2);
    assert_eq!(
        eval.notes().evidence[&Labels::from([("service", "a")])].traffic,
        Some(1.0)
    );
    // ...and two guard series with one `on` key would be summed: refused too.
    let two_zones = Poll::Samples(vec![
        labelled(&[("service", "a"), ("zone", "z1")], 0.1),
        labelled(&[("service", "a"), ("zone", "z2")], 0.2),
    ]);
    let mut eval = RuleEval::new(p);
    let extra = Extra {
        guard: Some(&two_zones),
        ..Default::default()
    };
    assert!(eval.observe_with(Duration::ZERO, &rule, extra).is_empty());
    assert!(eval.notes().guard_refused().is_some());
}

/// `breaches: M of N` across a restart: the windows exported after any poll, imported
/// into a new evaluator with the series, give the same transitions at the same polls
/// as the evaluator that never stopped (issue 19, item 6).
#[test]
fn breaches_window_survives_export_and_import() {
    let table: &[(&str, u32, u32, &[&str])] = &[
        (
            "3 of 5, two breaches then a restart",
            3,
            5,
            &["a=1", "a=1", "a=0", "a=1", "a=1"],
        ),
        (
            "3 of 5, gaps",
            3,
            5,
            &["a=1", "a=0", "a=0", "a=1", "a=0", "a=1", "a=1"],
        ),
        (
            "2 of 3, resolves",
            2,
            3,
            &["a=1", "a=0", "a=0", "a=0", "a=1", "a=1"],
        ),
        (
            "4 of 4, two series",
            4,
            4,
            &["a=1 b=1", "a=1 b=0", "a=1 b=1", "a=1 b=1", "a=0 b=1"],
        ),
        (
            "3 of 5, absent and hold",
            3,
            5,
            &["a=1", "-", "a=1", "err", "a=1"],
        ),
    ];
    for (name, m, n, polls) in table {
        let p = params(Some(0.5), None, NoData::Hold, m_of_n(*m, *n));
        let at = |k: usize| Duration::from_secs(10 * k as u64);
        let mut whole = RuleEval::new(p);
        let expected: Vec<Vec<String>> = polls
            .iter()
            .enumerate()
            .map(|(k, q)| whole.observe(at(k), &poll(q)).iter().map(s).collect())
            .collect();
        for cut in 1..polls.len() {
            let mut before = RuleEval::new(p);
            for (k, q) in polls[..cut].iter().enumerate() {
                before.observe(at(k), &poll(q));
            }
            let windows = before.windows().expect("a breaches rule has windows");
            // What the store keeps: the series rows, and the windows as text.
            let series = before
                .series()
                .iter()
                .map(|(l, st)| {
                    let text = &windows.iter().find(|(wl, _)| wl == l).unwrap().1;
                    let window = parse_window(text, *n).expect("round trip");
                    assert_eq!(&window, &st.window, "{name}: round trip");
                    let st = SeriesState {
                        window,
                        ..st.clone()
                    };
                    (l.clone(), st)
                })
                .collect();
            let mut after = RuleEval::restore(p, series);
            for (k, q) in polls.iter().enumerate().skip(cut) {
                let got: Vec<String> = after.observe(at(k), &poll(q)).iter().map(s).collect();
                assert_eq!(
                    got, expected[k],
                    "{name}: restart after poll {cut}, poll {k}"
                );
            }
        }
    }
    assert_eq!(parse_window("10x", 5), None);
    assert_eq!(
        parse_window("110101", 3),
        Some(VecDeque::from([true, false, true]))
    );
    assert_eq!(window_text(&VecDeque::from([true, false])), "10");
    assert_eq!(
        RuleEval::new(params(Some(0.5), None, NoData::Hold, Judging::default())).windows(),
        None
    );
}

/// `compare` across a restart: pools refilled with the polls judged before it (what the
/// agent reads back from Prometheus's history) judge every later poll exactly as the
/// evaluator that never stopped: same transitions, same pool sizes (issue 19, item 6).
#[test]
fn compare_pools_refilled_after_a_restart_judge_as_if_never_stopped() {
    let p = comparing(60, 20);
    let rows: Vec<(Duration, Poll, Poll)> = (0..8)
        .map(|k| {
            let factor = if k < 5 { 2.0 } else { 1.0 };
            (
                Duration::from_secs(k * 10),
                poll(&side("c", 5, k, 0.1, factor)),
                poll(&side("s", 5, k, 0.1, 1.0)),
            )
        })
        .collect();
    let step = |e: &mut RuleEval, (at, c, st): &(Duration, Poll, Poll)| {
        let extra = Extra {
            stable: Some(st),
            ..Default::default()
        };
        let out: Vec<String> = e.observe_with(*at, c, extra).iter().map(s).collect();
        let n = e
            .notes()
            .evidence
            .get(&Labels::new())
            .map(|e| (e.n_canary, e.n_stable));
        (out, n)
    };
    let mut whole = RuleEval::new(p);
    let expected: Vec<_> = rows.iter().map(|r| step(&mut whole, r)).collect();
    assert_eq!(expected[3].0, ["pending _", "fired _"]);
    for cut in 1..rows.len() {
        let mut before = RuleEval::new(p);
        for r in &rows[..cut] {
            step(&mut before, r);
        }
        // The series as the store keeps them, the pools from history.
        let mut after = RuleEval::restore(p, before.series().clone());
        for (at, c, st) in &rows[..cut] {
            after.refill(*at, c, st);
        }
        for (k, r) in rows.iter().enumerate().skip(cut) {
            let got = step(&mut after, r);
            assert_eq!(got, expected[k], "restart after poll {cut}, poll {k}");
        }
    }
    // Without the refill, the first poll after a restart has one poll's samples.
    let mut fresh = RuleEval::new(p);
    assert_eq!(step(&mut fresh, &rows[3]).1, Some((Some(5), Some(5))));
    // A failed side refills nothing; another rule ignores it.
    let mut e = RuleEval::new(p);
    e.refill(Duration::ZERO, &Poll::Failed, &rows[0].2);
    assert_eq!(step(&mut e, &rows[1]).1, Some((Some(5), Some(5))));
}
