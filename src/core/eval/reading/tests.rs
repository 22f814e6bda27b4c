//! Table tests of what a poll means: the direction of every rule kind, the worst series
//! (first of equals, NaN never), and `read` for the judges whose value is not a plain
//! threshold's.

use super::super::{
    BaselineParams, CompareParams, EffectMeasure, Extra, Judging, NoData, Threshold,
};
use super::*;

fn params(above: Option<f64>, below: Option<f64>, judge: Judging) -> Params {
    Params {
        threshold: Threshold::band(above, below),
        for_: Duration::ZERO,
        no_data: NoData::Ok,
        judge,
    }
}

fn baseline(up: Option<f64>, down: Option<f64>) -> Judging {
    Judging {
        baseline: Some(BaselineParams {
            above_pct: up,
            below_pct: down,
            no_baseline: NoData::Hold,
        }),
        ..Default::default()
    }
}

fn compare(direction: Direction) -> Judging {
    Judging {
        compare: Some(CompareParams {
            direction,
            confidence: 0.99,
            tests: 1,
            min_effect: 0.2,
            window: Duration::from_secs(600),
            min_samples: 3,
            effect: EffectMeasure::default(),
        }),
        ..Default::default()
    }
}

fn samples(items: &[(&str, f64)]) -> Vec<Sample> {
    items
        .iter()
        .map(|(s, v)| Sample::new(&[("s", s)], *v))
        .collect()
}

#[test]
fn the_direction_of_every_rule_kind() {
    let present = Params {
        threshold: Threshold::present(),
        ..params(None, None, Judging::default())
    };
    let table: Vec<(&str, Params, Worse)> = vec![
        (
            "above",
            params(Some(1.0), None, Judging::default()),
            Worse::Higher,
        ),
        (
            "below",
            params(None, Some(1.0), Judging::default()),
            Worse::Lower,
        ),
        (
            "band",
            params(Some(2.0), Some(1.0), Judging::default()),
            Worse::Higher,
        ),
        // The case three faces got wrong: no `above:`, only `above_baseline:`.
        (
            "above_baseline alone",
            params(None, None, baseline(Some(50.0), None)),
            Worse::Higher,
        ),
        (
            "below_baseline alone",
            params(None, None, baseline(None, Some(50.0))),
            Worse::Lower,
        ),
        (
            "below_baseline with an absolute floor above",
            params(Some(9.0), None, baseline(None, Some(50.0))),
            Worse::Higher,
        ),
        (
            "compare, increase",
            params(None, None, compare(Direction::Increase)),
            Worse::Higher,
        ),
        (
            "compare, decrease",
            params(None, None, compare(Direction::Decrease)),
            Worse::Lower,
        ),
        (
            "compare, either",
            params(None, None, compare(Direction::Either)),
            Worse::Higher,
        ),
        ("present", present, Worse::Lower),
    ];
    for (name, p, want) in table {
        assert_eq!(Worse::of(&p), want, "{name}");
        assert_eq!(RuleEval::new(p).worse(), want, "{name}");
    }
}

#[test]
fn the_worst_series_is_the_first_of_equals_and_never_nan() {
    let s = samples(&[
        ("a", 1.0),
        ("b", f64::NAN),
        ("c", 3.0),
        ("d", 3.0),
        ("e", 0.5),
    ]);
    let name = |x: Option<&Sample>| x.map(|x| x.labels["s"].to_string());
    assert_eq!(
        name(Worse::Higher.worst(s.iter(), |x| x.value)),
        Some("c".into())
    );
    assert_eq!(
        name(Worse::Lower.worst(s.iter(), |x| x.value)),
        Some("e".into())
    );
    let nan = samples(&[("a", f64::NAN)]);
    assert_eq!(name(Worse::Higher.worst(nan.iter(), |x| x.value)), None);
    assert_eq!(
        name(Worse::Lower.worst([].iter(), |x: &&Sample| x.value)),
        None
    );
}

#[test]
fn worse_of_keeps_the_worse_value_or_the_one_there_is() {
    let table = [
        (Worse::Higher, Some(1.0), Some(2.0), Some(2.0)),
        (Worse::Lower, Some(1.0), Some(2.0), Some(1.0)),
        (Worse::Higher, None, Some(2.0), Some(2.0)),
        (Worse::Lower, Some(1.0), None, Some(1.0)),
        (Worse::Lower, None, None, None),
    ];
    for (w, a, b, want) in table {
        assert_eq!(w.worse_of(a, b), want, "{w:?} {a:?} {b:?}");
    }
}

#[test]
fn an_above_baseline_rule_reads_its_highest_series_with_its_baseline() {
    let mut eval = RuleEval::new(params(None, None, baseline(Some(50.0), None)));
    let poll = Poll::Samples(samples(&[("a", 1.0), ("b", 4.0), ("c", 2.0)]));
    let base = Poll::Samples(samples(&[("a", 1.0), ("b", 2.0), ("c", 2.0)]));
    let r = eval.read(
        Duration::ZERO,
        &poll,
        Extra {
            baseline: Some(&base),
            ..Default::default()
        },
    );
    assert_eq!(r.worst.map(|w| w.labels["s"].to_string()), Some("b".into()));
    assert_eq!(r.value, Some(4.0));
    assert_eq!(r.reference, Some(2.0), "b's own baseline");
    assert_eq!(r.evidence.baseline, Some(2.0));
    assert_eq!(r.state, RuleState::Breached, "4 > 2 + 50%, for: 0s");
    let fired: Vec<_> = r
        .transitions
        .iter()
        .filter_map(|t| match t {
            Transition::Fired { labels, .. } => Some(labels["s"].to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(fired, vec!["b".to_string()]);
}

#[test]
fn a_failed_poll_reads_no_value_and_a_query_error() {
    let mut eval = RuleEval::new(params(Some(1.0), None, Judging::default()));
    let r = eval.read(Duration::ZERO, &Poll::Failed, Extra::default());
    assert_eq!((r.worst, r.value, r.reference), (None, None, None));
    assert_eq!(r.state, RuleState::QueryError);
    assert!(r.transitions.is_empty());
}

#[test]
fn a_compare_rule_reads_the_canary_median_against_the_stable_median() {
    let mut eval = RuleEval::new(params(None, None, compare(Direction::Increase)));
    let canary = Poll::Samples(samples(&[("a", 5.0), ("b", 9.0), ("c", 7.0)]));
    let stable = Poll::Samples(samples(&[("a", 1.0), ("b", 3.0), ("c", 2.0)]));
    let mut last = None;
    for k in 0..3 {
        last = Some(eval.read(
            Duration::from_secs(10 * k),
            &canary,
            Extra {
                stable: Some(&stable),
                ..Default::default()
            },
        ));
    }
    let r = last.unwrap();
    assert_eq!(
        r.value,
        Some(7.0),
        "the canary pool's median, not its worst series"
    );
    assert_eq!(r.reference, Some(2.0), "the stable pool's median");
    assert_eq!(r.worst.map(|w| w.value), Some(9.0));
}
