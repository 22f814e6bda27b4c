//! Table tests of the evaluator. Each case is a sequence of polls written compactly:
//! `"a=0.2 b=0.01"` is a result with series `{s="a"}` and `{s="b"}`; `"v=0.2"` with `v`
//! alone is the label-less series `{}`; `"-"` is an empty result; `"err"` a failed query;
//! `"a=nan"` a NaN sample. Expected transitions are written `"<secs> pending a"`,
//! `"<secs> fired a"`, `"<secs> resolved a"` (with `{}` written as `_`).

use super::*;

fn params(above: Option<f64>, below: Option<f64>, for_secs: u64, no_data: NoData) -> Params {
    Params {
        threshold: Threshold::band(above, below),
        for_: Duration::from_secs(for_secs),
        no_data,
        judge: Default::default(),
    }
}

use crate::core::eval::test_polls::poll;

fn name(labels: &Labels) -> String {
    labels.get("s").unwrap_or("_").to_string()
}

fn run(p: Params, polls: &[(u64, &str)]) -> Vec<String> {
    let mut eval = RuleEval::new(p);
    let mut out = Vec::new();
    for (t, spec) in polls {
        for tr in eval.observe(Duration::from_secs(*t), &poll(spec)) {
            out.push(match tr {
                Transition::Pending { labels, .. } => format!("{t} pending {}", name(&labels)),
                Transition::Fired { labels, .. } => format!("{t} fired {}", name(&labels)),
                Transition::Resolved { labels, .. } => format!("{t} resolved {}", name(&labels)),
            });
        }
    }
    out
}

struct Case {
    name: &'static str,
    params: Params,
    polls: &'static [(u64, &'static str)],
    expect: &'static [&'static str],
}

#[test]
fn transitions_table() {
    let above = |for_s, nd| params(Some(0.05), None, for_s, nd);
    let cases = [
        Case {
            name: "healthy series never transitions",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.01"), (10, "a=0.02"), (20, "a=0.05")],
            expect: &[],
        },
        Case {
            name: "sustained breach fires exactly when `for` has elapsed",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.1"), (10, "a=0.1"), (20, "a=0.1"), (30, "a=0.1")],
            expect: &["0 pending a", "20 fired a"],
        },
        Case {
            name: "never fires before `for` even one poll short",
            params: above(25, NoData::Ok),
            polls: &[(0, "a=0.1"), (10, "a=0.1"), (20, "a=0.1"), (30, "a=0.1")],
            expect: &["0 pending a", "30 fired a"],
        },
        Case {
            name: "for 0s fires on the first breaching poll",
            params: above(0, NoData::Ok),
            polls: &[(0, "a=0.01"), (10, "a=0.5")],
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "flapping resets the pending period every time",
            params: above(20, NoData::Ok),
            polls: &[
                (0, "a=0.1"),
                (10, "a=0.01"),
                (20, "a=0.1"),
                (30, "a=0.1"),
                (40, "a=0.01"),
                (50, "a=0.1"),
            ],
            expect: &[
                "0 pending a",
                "10 resolved a",
                "20 pending a",
                "40 resolved a",
                "50 pending a",
            ],
        },
        Case {
            name: "firing series resolves when it recovers and can fire again",
            params: above(10, NoData::Ok),
            polls: &[
                (0, "a=0.1"),
                (10, "a=0.1"),
                (20, "a=0.0"),
                (30, "a=0.1"),
                (40, "a=0.1"),
            ],
            expect: &[
                "0 pending a",
                "10 fired a",
                "20 resolved a",
                "30 pending a",
                "40 fired a",
            ],
        },
        Case {
            name: "the threshold itself is not a breach (strictly above)",
            params: above(0, NoData::Ok),
            polls: &[(0, "a=0.05")],
            expect: &[],
        },
        Case {
            name: "below: breached under the threshold",
            params: params(None, Some(10.0), 0, NoData::Ok),
            polls: &[(0, "a=12"), (10, "a=9.5")],
            expect: &["10 pending a", "10 fired a"],
        },
        Case {
            name: "band: breached outside either edge",
            params: params(Some(5.0), Some(1.0), 0, NoData::Ok),
            polls: &[(0, "a=3 b=0.5 c=6")],
            expect: &["0 pending b", "0 fired b", "0 pending c", "0 fired c"],
        },
        Case {
            name: "NaN is no data: with no_data ok it resets a pending series",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.1"), (10, "a=nan"), (20, "a=0.1")],
            expect: &["0 pending a", "10 resolved a", "20 pending a"],
        },
        Case {
            name: "NaN is no data: with no_data breach it keeps counting",
            params: above(20, NoData::Breach),
            polls: &[(0, "a=0.1"), (10, "a=nan"), (20, "a=0.1")],
            expect: &["0 pending a", "20 fired a"],
        },
        Case {
            name: "no_data ok: an empty result resets a pending series",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.1"), (10, "-"), (20, "a=0.1"), (30, "a=0.1")],
            expect: &["0 pending a", "10 resolved a", "20 pending a"],
        },
        Case {
            name: "no_data ok: a rule that never has data never fires",
            params: above(0, NoData::Ok),
            polls: &[(0, "-"), (10, "-"), (20, "a=nan")],
            expect: &[],
        },
        Case {
            name: "no_data breach: an empty result from the start fires after `for`",
            params: above(20, NoData::Breach),
            polls: &[(0, "-"), (10, "-"), (20, "-")],
            expect: &["0 pending _", "20 fired _"],
        },
        Case {
            name: "no_data breach: data coming back resolves the no-data series",
            params: above(20, NoData::Breach),
            polls: &[(0, "-"), (10, "a=0.01"), (20, "-")],
            expect: &["0 pending _", "10 resolved _", "20 pending _"],
        },
        Case {
            name: "no_data breach: a pending series that vanishes keeps counting",
            params: above(20, NoData::Breach),
            polls: &[(0, "a=0.1 b=0.0"), (10, "b=0.0"), (20, "b=0.0")],
            expect: &["0 pending a", "20 fired a"],
        },
        Case {
            name: "no_data hold: absence neither resets nor advances",
            params: above(20, NoData::Hold),
            polls: &[(0, "a=0.1"), (10, "-"), (20, "-"), (30, "a=0.1")],
            expect: &["0 pending a", "30 fired a"],
        },
        Case {
            name: "no_data hold: an empty result never fires by itself",
            params: above(0, NoData::Hold),
            polls: &[(0, "-"), (10, "-")],
            expect: &[],
        },
        Case {
            name: "query errors in a pending period change nothing",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.1"), (10, "err"), (20, "err"), (30, "a=0.1")],
            expect: &["0 pending a", "30 fired a"],
        },
        Case {
            name: "an error at the moment `for` expires delays firing to the next good poll",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.1"), (10, "a=0.1"), (20, "err"), (25, "a=0.1")],
            expect: &["0 pending a", "25 fired a"],
        },
        Case {
            name: "errors never count as breaches",
            params: above(0, NoData::Breach),
            polls: &[(0, "err"), (10, "err")],
            expect: &[],
        },
        Case {
            name: "multi-series: each series is judged on its own",
            params: above(20, NoData::Ok),
            polls: &[
                (0, "a=0.1 b=0.0"),
                (10, "a=0.0 b=0.1"),
                (20, "a=0.1 b=0.1"),
                (30, "a=0.1 b=0.1"),
            ],
            expect: &[
                "0 pending a",
                "10 resolved a",
                "10 pending b",
                "20 pending a",
                "30 fired b",
            ],
        },
        Case {
            name: "multi-series: a vanished pending series resets under no_data ok",
            params: above(20, NoData::Ok),
            polls: &[(0, "a=0.1 b=0.1"), (10, "b=0.1"), (20, "a=0.1 b=0.1")],
            expect: &[
                "0 pending a",
                "0 pending b",
                "10 resolved a",
                "20 pending a",
                "20 fired b",
            ],
        },
        Case {
            name: "label-less (aggregated) series behaves like any other",
            params: above(10, NoData::Ok),
            polls: &[(0, "v=0.1"), (10, "v=0.1")],
            expect: &["0 pending _", "10 fired _"],
        },
        Case {
            name: "infinity is a value, not no data",
            params: above(0, NoData::Ok),
            polls: &[(0, "a=inf")],
            expect: &["0 pending a", "0 fired a"],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let got = run(case.params, case.polls);
        if got != case.expect {
            failures.push(format!(
                "{}:\n  expected {:?}\n  got      {:?}",
                case.name, case.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `breach_when: present`: any returned series breaches; an empty result resolves.
#[test]
fn present_table() {
    let present = |for_s, nd| Params {
        threshold: Threshold::present(),
        for_: Duration::from_secs(for_s),
        no_data: nd,
        judge: Default::default(),
    };
    let cases = [
        Case {
            name: "present: any value breaches, zero and negative included",
            params: present(0, NoData::Ok),
            polls: &[(0, "a=0 b=-3")],
            expect: &["0 pending a", "0 fired a", "0 pending b", "0 fired b"],
        },
        Case {
            name: "present: `for` counts from the first poll the series is returned",
            params: present(20, NoData::Ok),
            polls: &[(0, "-"), (10, "a=1"), (20, "a=1"), (30, "a=1")],
            expect: &["10 pending a", "30 fired a"],
        },
        Case {
            name: "present: an empty result resolves (no rule-level `{}` series)",
            params: present(20, NoData::Ok),
            polls: &[(0, "a=1"), (10, "-"), (20, "-"), (30, "a=1")],
            expect: &["0 pending a", "10 resolved a", "30 pending a"],
        },
        Case {
            name: "present: `no_data: breach` cannot turn an empty result into a breach",
            params: present(0, NoData::Breach),
            polls: &[(0, "-"), (10, "a=1"), (20, "-")],
            expect: &["10 pending a", "10 fired a", "20 resolved a"],
        },
        Case {
            name: "present: `no_data: hold` does not keep a vanished series",
            params: present(20, NoData::Hold),
            polls: &[(0, "a=1"), (10, "b=1")],
            expect: &["0 pending a", "10 pending b", "10 resolved a"],
        },
        Case {
            name: "present: a NaN sample is a returned series",
            params: present(10, NoData::Ok),
            polls: &[(0, "a=nan"), (10, "a=nan")],
            expect: &["0 pending a", "10 fired a"],
        },
        Case {
            name: "present: a failed query changes nothing",
            params: present(10, NoData::Ok),
            polls: &[(0, "a=1"), (5, "err"), (10, "a=1")],
            expect: &["0 pending a", "10 fired a"],
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let got = run(case.params, case.polls);
        if got != case.expect {
            failures.push(format!(
                "{}:\n  expected {:?}\n  got      {:?}",
                case.name, case.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn present_nan_shows_no_value_and_a_number_wins_among_duplicates() {
    let mut eval = RuleEval::new(Params {
        threshold: Threshold::present(),
        for_: Duration::ZERO,
        no_data: NoData::Ok,
        judge: Default::default(),
    });
    let out = eval.observe(Duration::ZERO, &poll("a=nan a=2 a=nan"));
    assert_eq!(
        out[1],
        Transition::Fired {
            labels: poll_labels("a"),
            value: Some(2.0),
            breached_for: Duration::ZERO,
            evidence: Evidence::default(),
        }
    );
    let mut eval = RuleEval::new(eval.params().to_owned());
    let out = eval.observe(Duration::ZERO, &poll("a=nan"));
    assert_eq!(
        out[0],
        Transition::Pending {
            labels: poll_labels("a"),
            value: None,
            evidence: Evidence::default(),
        }
    );
}

#[test]
fn fired_reports_how_long_it_breached_and_the_value() {
    let mut eval = RuleEval::new(params(Some(1.0), None, 20, NoData::Ok));
    eval.observe(Duration::from_secs(5), &poll("a=2"));
    eval.observe(Duration::from_secs(15), &poll("a=3"));
    let out = eval.observe(Duration::from_secs(27), &poll("a=4"));
    assert_eq!(
        out,
        vec![Transition::Fired {
            labels: poll_labels("a"),
            value: Some(4.0),
            breached_for: Duration::from_secs(22),
            evidence: Evidence::default(),
        }]
    );
    assert_eq!(eval.series()[&poll_labels("a")].phase, Phase::Firing);
}

fn poll_labels(s: &str) -> Labels {
    Sample::new(&[("s", s)], 0.0).labels
}

#[test]
fn threshold_display() {
    assert_eq!(Threshold::band(Some(0.05), None).to_string(), "> 0.05");
    assert_eq!(Threshold::band(None, Some(3.0)).to_string(), "< 3");
    assert_eq!(
        Threshold::band(Some(5.0), Some(1.0)).to_string(),
        "< 1 or > 5"
    );
    assert_eq!(Threshold::present().to_string(), "present");
}

/// Like `run`, with each transition's value, to show which duplicate was judged.
fn run_values(p: Params, polls: &[(u64, &str)]) -> Vec<String> {
    let mut eval = RuleEval::new(p);
    let mut out = Vec::new();
    for (t, spec) in polls {
        for tr in eval.observe(Duration::from_secs(*t), &poll(spec)) {
            let (kind, labels, value) = match tr {
                Transition::Pending { labels, value, .. } => ("pending", labels, value),
                Transition::Fired { labels, value, .. } => ("fired", labels, value),
                Transition::Resolved { labels, value, .. } => ("resolved", labels, value),
            };
            let value = value.map_or("none".to_string(), |v| v.to_string());
            out.push(format!("{t} {kind} {} {value}", name(&labels)));
        }
    }
    out
}

/// The same polls with every result's samples in reverse order.
fn reversed(polls: &[(u64, &'static str)]) -> Vec<(u64, String)> {
    polls
        .iter()
        .map(|(t, spec)| {
            let items: Vec<&str> = spec.split_whitespace().rev().collect();
            (*t, items.join(" "))
        })
        .collect()
}

/// (what, params, polls, expected transitions with values)
type DupCase = (
    &'static str,
    Params,
    &'static [(u64, &'static str)],
    &'static [&'static str],
);

#[test]
fn duplicate_label_sets_are_judged_the_same_in_any_order() {
    let cases: &[DupCase] = &[
        (
            "above: the highest duplicate is judged",
            params(Some(0.05), None, 0, NoData::Ok),
            &[(0, "a=0.01 a=0.2")],
            &["0 pending a 0.2", "0 fired a 0.2"],
        ),
        (
            "below: the lowest duplicate is judged",
            params(None, Some(0.5), 0, NoData::Ok),
            &[(0, "a=0.9 a=0.1")],
            &["0 pending a 0.1", "0 fired a 0.1"],
        ),
        (
            "band: the duplicate farthest outside it is judged",
            params(Some(1.0), Some(0.0), 0, NoData::Ok),
            &[(0, "a=0.5 a=2 a=-3")],
            &["0 pending a -3", "0 fired a -3"],
        ),
        (
            "band: a breaching duplicate beats one inside the band",
            params(Some(1.0), Some(0.0), 0, NoData::Ok),
            &[(0, "a=0.5 a=2")],
            &["0 pending a 2", "0 fired a 2"],
        ),
        (
            "none breaches: the series resolves with the same value either way",
            params(Some(0.05), None, 20, NoData::Ok),
            &[(0, "a=0.1"), (10, "a=0.01 a=0.02")],
            &["0 pending a 0.1", "10 resolved a 0.02"],
        ),
        (
            "a NaN duplicate never hides a number",
            params(Some(0.05), None, 0, NoData::Ok),
            &[(0, "a=nan a=0.2")],
            &["0 pending a 0.2", "0 fired a 0.2"],
        ),
        (
            "duplicates of several series, each judged on its own",
            params(Some(0.05), None, 10, NoData::Ok),
            &[
                (0, "a=0.01 b=0.2 a=0.3 b=0.01"),
                (10, "b=0.3 a=0.01 a=0.02 b=0.01"),
            ],
            &[
                "0 pending a 0.3",
                "0 pending b 0.2",
                "10 resolved a 0.02",
                "10 fired b 0.3",
            ],
        ),
    ];
    for (what, p, polls, expect) in cases {
        let forward = run_values(*p, polls);
        let backward_polls = reversed(polls);
        let backward_refs: Vec<(u64, &str)> = backward_polls
            .iter()
            .map(|(t, s)| (*t, s.as_str()))
            .collect();
        let backward = run_values(*p, &backward_refs);
        assert_eq!(forward, *expect, "{what}");
        assert_eq!(backward, *expect, "{what} (samples in reverse order)");
    }
}

/// A rule's last notes are kept for every rule of every watch (issue 21): those of a
/// healthy threshold poll box nothing, and what a rare poll notes is gone at the next.
#[test]
fn a_healthy_polls_notes_take_no_room() {
    assert!(std::mem::size_of::<PollNotes>() <= 64);
    let mut eval = RuleEval::new(params(Some(0.05), None, 10, NoData::Ok));
    eval.observe(Duration::from_secs(0), &poll("a=0.01 b=0.02"));
    assert!(eval.notes.rare.is_none(), "{:?}", eval.notes);
    assert_eq!(eval.notes().series_judged, 2);
    eval.notes.rare().skipped.push(Labels::new());
    assert_eq!(eval.notes().skipped().len(), 1);
    eval.observe(Duration::from_secs(10), &poll("a=0.01"));
    assert!(eval.notes.rare.is_none(), "{:?}", eval.notes);
    assert_eq!(eval.notes().skipped(), &[] as &[Labels]);
    // Nor does a rule without `pre_existing:` or `slo:` keep room for them; a
    // `pre_existing: ignore` rule with nothing carried over takes none either.
    assert!(eval.kept.is_none());
    assert!(std::mem::size_of::<RuleEval>() <= 120);
    let mut p = params(Some(0.05), None, 10, NoData::Ok);
    p.judge.pre_existing = crate::core::eval::PreExisting::Ignore;
    let mut eval = RuleEval::new(p);
    eval.excuse(Default::default());
    assert!(eval.kept.is_none());
}
