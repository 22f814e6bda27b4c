//! Table tests of breaches carried over from before the watch (`pre_existing.rs`):
//! what the window before the start says, and what each mode does with it. Polls and
//! steps are written as in `tests.rs` (`"a=0.9"` the series `{s="a"}`, `"-"` empty,
//! `"err"` failed); the rule breaches above 0.5 (or below 0.5) with a `for` of 3s.

use super::*;
use crate::core::eval::test_polls::poll;
use crate::core::eval::{Judging, NoData, Params, RuleEval, Threshold, Transition};
use std::time::Duration;

fn params(mode: PreExisting, above: Option<f64>, below: Option<f64>) -> Params {
    Params {
        threshold: Threshold::band(above, below),
        for_: Duration::from_secs(3),
        no_data: NoData::Ok,
        judge: Judging {
            pre_existing: mode,
            ..Default::default()
        },
    }
}

fn above(mode: PreExisting) -> Params {
    params(mode, Some(0.5), None)
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn steps(specs: &[&str]) -> Vec<StepPoll> {
    specs
        .iter()
        .enumerate()
        .map(|(i, p)| StepPoll {
            at: s(i as u64),
            poll: poll(p),
            guard: None,
            baseline: None,
        })
        .collect()
}

fn series(name: &str) -> Labels {
    crate::core::series::Sample::new(&[("s", name)], 0.0).labels
}

/// `{a: worst, ...}` as text, for the tables.
fn shown(b: &Before) -> String {
    b.iter()
        .map(|(l, v)| format!("{}={v}", l.get("s").unwrap_or("{}")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_series_is_pre_existing_only_when_it_breached_at_every_step_of_the_window() {
    // (steps over the `for` before the start, oldest first; what was pre-existing)
    let cases: &[(&[&str], &str)] = &[
        (&["a=0.9", "a=0.8", "a=0.95", "a=0.7"], "a=0.95"),
        // One healthy step anywhere: it began within the window, not before it.
        (&["a=0.9", "a=0.1", "a=0.95", "a=0.7"], ""),
        (&["a=0.1", "a=0.9", "a=0.95", "a=0.7"], ""),
        // Absent at the first step (`no_data: ok`): it began later.
        (&["-", "a=0.9", "a=0.9", "a=0.9"], ""),
        // A step that judged nothing (a failed one) neither counts nor resets.
        (&["a=0.9", "err", "a=0.6", "a=0.7"], "a=0.9"),
        // Each series on its own; the healthy one never is.
        (&["a=0.9 b=0.6", "a=0.9 b=0.2", "a=0.6 b=0.9"], "a=0.9"),
        (
            &["a=0.9 b=0.6", "a=0.9 b=0.7", "a=0.6 b=0.9"],
            "a=0.9 b=0.9",
        ),
        // A series without labels (`sum(...)`) is one like any.
        (&["v=0.9", "v=0.8"], "{}=0.9"),
        // No data at all is not a breach carried over, whatever `no_data` says.
        (&["-", "-"], ""),
        (&[], ""),
    ];
    for (window, want) in cases {
        let got = read_before(&above(PreExisting::Ignore), &steps(window), None);
        assert_eq!(shown(&got), *want, "{window:?}");
    }
    // A `below:` rule's worst is its lowest value.
    let low = params(PreExisting::Ignore, None, Some(0.5));
    assert_eq!(
        shown(&read_before(
            &low,
            &steps(&["a=0.3", "a=0.1", "a=0.2"]),
            None
        )),
        "a=0.1"
    );
    // `no_data: breach`: an absence is a breach (between two appearances).
    let mut nd = above(PreExisting::Ignore);
    nd.no_data = NoData::Breach;
    assert_eq!(
        shown(&read_before(&nd, &steps(&["a=0.9", "-", "a=0.8"]), None)),
        "a=0.9"
    );
    // ...and an empty window is the rule-level "no data" series: never carried over.
    assert_eq!(shown(&read_before(&nd, &steps(&["-", "-", "-"]), None)), "");
}

#[test]
fn improve_is_worse_by_more_than_the_margin_of_the_reference() {
    use crate::core::eval::Worse::{Higher, Lower};
    // (worse, value, reference, margin %, worse by it)
    let cases = [
        (Higher, 1.1, 1.0, 10.0, false),
        (Higher, 1.11, 1.0, 10.0, true),
        (Higher, 1.0001, 1.0, 0.0, true),
        (Higher, 1.0, 1.0, 0.0, false),
        (Lower, 0.9, 1.0, 10.0, false),
        (Lower, 0.89, 1.0, 10.0, true),
        // The margin is a share of the reference's size, whatever its sign.
        (Higher, -0.85, -1.0, 10.0, true),
        (Higher, f64::NAN, 1.0, 10.0, false),
        (Higher, 5.0, f64::NAN, 10.0, false),
    ];
    for (w, v, r, m, want) in cases {
        assert_eq!(worse_by(w, v, r, m), want, "{w:?} {v} {r} {m}");
    }
    // A band's reference says which side is worse for it.
    let band = params(PreExisting::Ignore, Some(0.9), Some(0.1));
    assert_eq!(worse_for(&band, 0.95), Higher);
    assert_eq!(worse_for(&band, 0.05), Lower);
}

/// Feeds polls one a second from 0s; the transitions of each, as `P` pending, `F`
/// fired, `R` resolved, `.` nothing (series `a` only).
fn run(p: Params, before: &str, polls: &[&str]) -> (String, RuleEval) {
    let mut e = RuleEval::new(p);
    e.excuse(read_before(
        &p,
        &steps(&[before, before, before, before]),
        None,
    ));
    let mut out = String::new();
    for (i, spec) in polls.iter().enumerate() {
        let t = e.observe(s(i as u64), &poll(spec));
        let mark: String = t
            .iter()
            .map(|t| match t {
                Transition::Pending { .. } => 'P',
                Transition::Fired { .. } => 'F',
                Transition::Resolved { .. } => 'R',
            })
            .collect();
        out.push_str(if mark.is_empty() { "." } else { &mark });
        out.push(' ');
    }
    (out.trim_end().to_string(), e)
}

#[test]
fn each_mode_against_a_breach_that_began_before_the_watch() {
    let ignore = PreExisting::Ignore;
    let improve = PreExisting::Improve { margin_pct: 10.0 };
    // (mode, the value before the start, polls from 0s, transitions)
    let cases: &[(PreExisting, &str, &[&str], &str)] = &[
        // `judge`: as today: pending at the first poll, fired once `for` elapsed.
        (
            PreExisting::Judge,
            "a=0.8",
            &["a=0.8", "a=0.8", "a=0.8", "a=0.8"],
            "P . . F",
        ),
        // `ignore`: never, however much worse, while it lasts...
        (
            ignore,
            "a=0.8",
            &["a=0.8", "a=5", "a=9", "a=9", "a=9"],
            ". . . . .",
        ),
        // ...and once it resolves, a new breach is the release's.
        (
            ignore,
            "a=0.8",
            &["a=0.8", "a=0.2", "a=0.8", "a=0.8", "a=0.8", "a=0.8"],
            ". . P . . F",
        ),
        // `improve: 10%`: within the margin of its worst before (0.8): nothing.
        (
            improve,
            "a=0.8",
            &["a=0.8", "a=0.85", "a=0.88", "a=0.7", "a=0.88"],
            ". . . . .",
        ),
        // Worse than 0.88 for `for`: acts.
        (
            improve,
            "a=0.8",
            &["a=0.8", "a=0.9", "a=0.9", "a=0.9", "a=0.9"],
            ". P . . F",
        ),
        // Worse for less than `for`, then back within the margin: resolved, nothing ran.
        (
            improve,
            "a=0.8",
            &["a=0.9", "a=0.9", "a=0.85", "a=0.9"],
            "P . R P",
        ),
        // The release fixed it, then broke it again: judged as any breach.
        (
            improve,
            "a=0.8",
            &["a=0.3", "a=0.6", "a=0.6", "a=0.6", "a=0.6"],
            ". P . . F",
        ),
        // A series that was healthy before the start is judged as ever.
        (
            ignore,
            "a=0.2",
            &["a=0.8", "a=0.8", "a=0.8", "a=0.8"],
            "P . . F",
        ),
    ];
    for (mode, before, polls, want) in cases {
        let (got, _) = run(above(*mode), before, polls);
        assert_eq!(got, *want, "{mode:?} before {before}: {polls:?}");
    }
}

#[test]
fn the_end_of_a_carried_over_breach_is_noted_once_with_its_value() {
    let (_, mut e) = run(above(PreExisting::Ignore), "a=0.8", &["a=0.8"]);
    assert_eq!(e.excused().len(), 1);
    assert_eq!(e.notes().pre_existing_over().to_vec(), vec![]);
    // Its evidence says what it was before the deploy.
    e.observe(s(1), &poll("a=0.9"));
    assert_eq!(e.notes().evidence[&series("a")].before_deploy, Some(0.8));
    e.observe(s(2), &poll("a=0.3"));
    assert_eq!(
        e.notes().pre_existing_over().to_vec(),
        vec![(series("a"), Some(0.3))]
    );
    assert!(e.excused().is_empty());
    e.observe(s(3), &poll("a=0.3"));
    assert_eq!(e.notes().pre_existing_over().to_vec(), vec![]);
    // Gone where an absence is healthy (`no_data: ok`): over too.
    let (_, mut e) = run(above(PreExisting::Ignore), "a=0.8", &["a=0.8"]);
    e.observe(s(1), &poll("b=0.1"));
    assert_eq!(
        e.notes().pre_existing_over().to_vec(),
        vec![(series("a"), None)]
    );
    // `no_data: breach`: an absence goes on with it, and is never worse.
    let mut p = above(PreExisting::Improve { margin_pct: 0.0 });
    p.no_data = NoData::Breach;
    let (got, e) = run(p, "a=0.8", &["a=0.8", "-", "-", "-", "-"]);
    assert_eq!(got, ". . . . .");
    assert_eq!(e.excused().len(), 1);
    // `judge` carries nothing over.
    let (_, e) = run(above(PreExisting::Judge), "a=0.8", &["a=0.8"]);
    assert!(e.excused().is_empty());
}

#[test]
fn the_steps_of_a_pending_breach_are_judged_with_the_mode() {
    // `improve: 10%` of 0.8: a poll at 10s sees 0.95 (worse); the steps before it
    // breached the threshold but stayed within the margin until 9s: `for` counts from
    // the poll, never from the steps that were only as bad as before the deploy.
    let p = above(PreExisting::Improve { margin_pct: 10.0 });
    let mut e = RuleEval::new(p);
    e.excuse(read_before(&p, &steps(&["a=0.8", "a=0.8"]), None));
    e.observe(s(5), &poll("a=0.8"));
    e.observe(s(10), &poll("a=0.95"));
    assert_eq!(e.began_at(s(10)), vec![series("a")]);
    let between: Vec<StepPoll> = [(6, "a=0.8"), (7, "a=0.85"), (8, "a=0.8"), (9, "a=0.95")]
        .iter()
        .map(|(t, p)| StepPoll {
            at: s(*t),
            poll: poll(p),
            guard: None,
            baseline: None,
        })
        .collect();
    assert!(e
        .extend_back(s(10), &[series("a")], &between, None)
        .is_empty());
    assert_eq!(e.pending_since(), Some(s(9)));
}
