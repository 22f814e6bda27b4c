//! Table tests of `for` counted in the data (`onset.rs`). Steps are written like polls
//! in `tests.rs`: `"a=0.9"` the series `{s="a"}`, `"-"` an empty step, `"err"` a failed
//! one; each step list is one per second before (or within) the span.

use super::*;
use crate::core::eval::{Breaches, Judging, NoData, Params, Sample, Threshold};
use std::time::Duration;

fn params(for_secs: u64, no_data: NoData) -> Params {
    Params {
        threshold: Threshold::band(Some(0.5), None),
        for_: Duration::from_secs(for_secs),
        no_data,
        judge: Judging::default(),
    }
}

use crate::core::eval::test_polls::poll;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Steps at `first`, `first + 1`, ... seconds.
fn steps(first: u64, specs: &[&str]) -> Vec<StepPoll> {
    specs
        .iter()
        .enumerate()
        .map(|(i, p)| StepPoll {
            at: s(first + i as u64),
            poll: poll(p),
            guard: None,
            baseline: None,
        })
        .collect()
}

fn a() -> Labels {
    Sample::new(&[("s", "a")], 0.0).labels
}

/// A rule whose series `a` went pending at the poll of `at` seconds.
fn pending_at(p: Params, at: u64) -> RuleEval {
    let mut e = RuleEval::new(p);
    e.observe(s(0), &poll("a=0.1"));
    e.observe(s(at), &poll("a=0.9"));
    if e.params().precise() {
        assert_eq!(e.began_at(s(at)), vec![a()]);
    } else {
        assert!(
            e.began_at(s(at)).is_empty(),
            "only a `for` counted in the data has an onset"
        );
    }
    e
}

#[test]
fn the_onset_is_the_first_step_of_the_unbroken_breach_before_the_poll() {
    // (steps from 5s to 9s, the poll at 10s, `for` 30s; expected `since`)
    let cases: &[(&[&str], NoData, u64)] = &[
        (
            &["a=0.1", "a=0.1", "a=0.9", "a=0.9", "a=0.9"],
            NoData::Ok,
            7,
        ),
        // a healthy step inside the run: only what follows it counts
        (
            &["a=0.9", "a=0.1", "a=0.9", "a=0.9", "a=0.9"],
            NoData::Ok,
            7,
        ),
        (
            &["a=0.9", "a=0.9", "a=0.9", "a=0.9", "a=0.1"],
            NoData::Ok,
            10,
        ),
        // a failed step neither counts nor breaks the run
        (&["a=0.1", "a=0.9", "err", "a=0.9", "a=0.9"], NoData::Ok, 6),
        // an absent series follows `no_data`
        (&["a=0.1", "a=0.9", "-", "a=0.9", "a=0.9"], NoData::Ok, 8),
        (&["a=0.1", "a=0.9", "-", "a=0.9", "a=0.9"], NoData::Hold, 6),
        (&["a=0.1", "-", "-", "a=0.9", "a=0.9"], NoData::Breach, 6),
    ];
    for (specs, nd, since) in cases {
        let mut e = pending_at(params(30, *nd), 10);
        let fired = e.extend_back(s(10), &[a()], &steps(5, specs), None);
        assert!(fired.is_empty(), "{specs:?}");
        assert_eq!(e.series()[&a()].since, s(*since), "{specs:?} {nd:?}");
    }
}

#[test]
fn a_breach_older_than_for_at_the_poll_that_sees_it_fires_there() {
    let mut e = pending_at(params(3, NoData::Ok), 10);
    let fired = e.extend_back(
        s(10),
        &[a()],
        &steps(5, &["a=0.1", "a=0.9", "a=0.9", "a=0.9", "a=0.9"]),
        None,
    );
    assert!(
        matches!(&fired[..], [Transition::Fired { breached_for, .. }] if *breached_for == s(4)),
        "{fired:?}"
    );
    assert_eq!(e.series()[&a()].phase, Phase::Firing);
    // One step short of `for` does not fire.
    let mut e = pending_at(params(6, NoData::Ok), 10);
    let fired = e.extend_back(
        s(10),
        &[a()],
        &steps(5, &["a=0.1", "a=0.9", "a=0.9", "a=0.9", "a=0.9"]),
        None,
    );
    assert!(fired.is_empty());
    assert_eq!(e.next_due(), Some(s(12)));
}

#[test]
fn a_healthy_step_in_the_pending_span_restarts_for_at_the_next_breaching_step() {
    // Pending since 10s, `for` 5s: due at 15s. Steps 10..14.
    let cases: &[(&[&str], Option<u64>)] = &[
        (&["a=0.9", "a=0.9", "a=0.9", "a=0.9", "a=0.9"], None),
        (&["a=0.9", "a=0.1", "a=0.9", "a=0.9", "a=0.9"], Some(12)),
        (&["a=0.9", "a=0.1", "a=0.9", "a=0.1", "a=0.9"], Some(14)),
        // healthy at the last step: `for` restarts at the poll itself
        (&["a=0.9", "a=0.9", "a=0.9", "a=0.9", "a=0.1"], Some(15)),
        (&["a=0.9", "err", "-", "a=0.9", "a=0.9"], Some(13)),
        // the newest steps empty (samples not yet searchable, as on VictoriaMetrics):
        // not an absence, no restart
        (&["a=0.9", "a=0.9", "a=0.9", "-", "-"], None),
        (&["a=0.9", "a=0.9", "a=0.1", "-", "-"], Some(15)),
    ];
    for (specs, restarted) in cases {
        let mut e = pending_at(params(5, NoData::Ok), 10);
        assert_eq!(e.next_due(), Some(s(15)));
        let r = e.confirm(s(15), &steps(10, specs), None);
        match restarted {
            None => {
                assert!(r.is_empty(), "{specs:?}");
                assert_eq!(e.series()[&a()].since, s(10));
            }
            Some(since) => {
                assert_eq!(r.len(), 1, "{specs:?}");
                assert_eq!(e.series()[&a()].since, s(*since), "{specs:?}");
            }
        }
    }
}

#[test]
fn rules_that_count_polls_are_not_counted_in_the_data() {
    let mut p = params(30, NoData::Ok);
    p.judge.breaches = Some(Breaches { m: 2, n: 3 });
    let e = pending_at(p, 10);
    assert_eq!(e.next_due(), None);
    assert!(!params(0, NoData::Ok).precise());
    assert!(params(1, NoData::Ok).precise());
}

#[test]
fn the_newest_steps_before_a_poll_are_not_read_as_an_absence() {
    // Steps 5..9 before the poll of 10s: the two newest empty (not yet searchable).
    let mut e = pending_at(params(30, NoData::Ok), 10);
    e.extend_back(
        s(10),
        &[a()],
        &steps(5, &["a=0.1", "a=0.9", "a=0.9", "-", "-"]),
        None,
    );
    assert_eq!(e.series()[&a()].since, s(6));
}
