use super::*;
use crate::core::eval::{NoData, Threshold};
use proptest::prelude::*;

fn labels(s: &str) -> Labels {
    [("s".to_string(), s.to_string())].into_iter().collect()
}

fn params(above: f64, for_ms: u64, no_data: NoData) -> Params {
    Params {
        threshold: Threshold::band(Some(above), None),
        for_: Duration::from_millis(for_ms),
        no_data,
        judge: Default::default(),
    }
}

/// Builds a series from per-step values (None = no point at that step).
fn series(name: &str, from: i64, step: i64, values: &[Option<f64>]) -> RangeSeries {
    RangeSeries {
        labels: labels(name),
        points: values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (from + k as i64 * step, v)))
            .collect(),
    }
}

fn fired_at(h: &RuleHistory) -> Option<i64> {
    h.entries.iter().find(|e| e.kind == "fired").map(|e| e.at)
}

#[test]
fn breach_longer_than_for_fires_at_the_right_step() {
    let v: Vec<Option<f64>> = (0..20)
        .map(|k| Some(if (5..15).contains(&k) { 1.0 } else { 0.0 }))
        .collect();
    let h = replay_rule(
        params(0.5, 30_000, NoData::Ok),
        0,
        190_000,
        10_000,
        &[series("a", 0, 10_000, &v)],
    );
    assert_eq!(fired_at(&h), Some(80_000));
    assert_eq!(h.entries[0].kind, "pending");
    assert_eq!(h.entries[0].at, 50_000);
}

#[test]
fn gap_in_history_resets_a_pending_breach_under_no_data_ok() {
    let mut v: Vec<Option<f64>> = vec![Some(1.0); 20];
    v[2] = None;
    let h = replay_rule(
        params(0.5, 30_000, NoData::Ok),
        0,
        190_000,
        10_000,
        &[series("a", 0, 10_000, &v)],
    );
    assert_eq!(fired_at(&h), Some(60_000), "pending restarts at step 3");
}

#[test]
fn empty_history_with_no_data_breach_fires_after_for() {
    let h = replay_rule(params(0.5, 30_000, NoData::Breach), 0, 100_000, 10_000, &[]);
    assert_eq!(fired_at(&h), Some(30_000));
    assert_eq!(h.steps, 11);
}

#[test]
fn decide_cuts_at_the_first_rollback() {
    let fired = |at| RuleHistory {
        entries: vec![Entry {
            at,
            kind: "fired",
            labels: Labels::new(),
            value: Some(1.0),
            evidence: Default::default(),
        }],
        ..Default::default()
    };
    let (a, b, c) = (fired(50), fired(30), fired(10));
    let d = conclude(
        &[
            RuleReplay {
                name: "a",
                action: Action::Rollback,
                expect_data: false,
                history: Some(&a),
            },
            RuleReplay {
                name: "b",
                action: Action::Rollback,
                expect_data: false,
                history: Some(&b),
            },
            RuleReplay {
                name: "c",
                action: Action::Pause,
                expect_data: false,
                history: Some(&c),
            },
        ],
        100,
    );
    assert_eq!(
        (d.verdict, d.decided_at, d.rule.as_deref()),
        (ReplayOutcome::RolledBack, 30, Some("b"))
    );
    let d = conclude(
        &[
            RuleReplay {
                name: "c",
                action: Action::Pause,
                expect_data: false,
                history: Some(&c),
            },
            RuleReplay {
                name: "n",
                action: Action::Notify,
                expect_data: false,
                history: Some(&a),
            },
        ],
        100,
    );
    assert_eq!((d.verdict, d.decided_at), (ReplayOutcome::Paused, 10));
    let d = conclude(
        &[RuleReplay {
            name: "c",
            action: Action::Rollback,
            expect_data: false,
            history: None,
        }],
        100,
    );
    assert_eq!(d.verdict, ReplayOutcome::Inconclusive);
    let d = conclude(
        &[RuleReplay {
            name: "n",
            action: Action::Notify,
            expect_data: false,
            history: Some(&a),
        }],
        100,
    );
    assert_eq!((d.verdict, d.decided_at), (ReplayOutcome::Healthy, 100));
}

/// A replay ends inconclusive where a live watch would (`core::ending`): an
/// `expect_data: true` rule that never returned a series, with the watch's words.
#[test]
fn decide_is_inconclusive_where_a_watch_would_be() {
    let empty = RuleHistory::default();
    let with_data = RuleHistory {
        ever_data: true,
        ..Default::default()
    };
    let rule = |expect_data, history| RuleReplay {
        name: "r",
        action: Action::Rollback,
        expect_data,
        history,
    };
    let d = conclude(&[rule(true, Some(&empty))], 100);
    assert_eq!(d.verdict, ReplayOutcome::Inconclusive);
    assert_eq!(
        d.reason.as_deref(),
        Some("rule `r` returned no series at any poll and has `expect_data: true`: a renamed metric or label?")
    );
    assert_eq!(
        conclude(&[rule(false, Some(&empty))], 100).verdict,
        ReplayOutcome::Healthy
    );
    assert_eq!(
        conclude(&[rule(true, Some(&with_data))], 100).verdict,
        ReplayOutcome::Healthy
    );
    let never = RuleHistory {
        never_judged: true,
        ..with_data.clone()
    };
    let d = conclude(&[rule(false, Some(&never))], 100);
    assert!(d.reason.unwrap().contains("insufficient at every poll"));
}

/// Prometheus's alerting rule, simulated directly: each label set present in the
/// result with a breaching value is an active alert (activeAt = first such evaluation);
/// any evaluation where it is absent or not breaching deletes it; it fires at the
/// first evaluation with `ts - activeAt >= for`. The rule fires when any series does.
fn prometheus_fire_time(
    all: &[Vec<Option<f64>>],
    above: f64,
    for_ms: i64,
    step: i64,
) -> Option<i64> {
    let mut active: Vec<Option<i64>> = vec![None; all.len()];
    let steps = all.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..steps {
        let ts = k as i64 * step;
        for (i, s) in all.iter().enumerate() {
            match s.get(k).copied().flatten() {
                Some(v) if !v.is_nan() && v > above => {
                    let since = *active[i].get_or_insert(ts);
                    if ts - since >= for_ms {
                        return Some(ts);
                    }
                }
                _ => active[i] = None,
            }
        }
    }
    None
}

fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        6 => (0.0f64..1.0).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn replay_fire_time_equals_prometheus_for_rule(
        series_values in prop::collection::vec(prop::collection::vec(value(), 1..60), 1..4),
        above in 0.2f64..0.8,
        for_steps in 0i64..8,
        step in prop_oneof![Just(1_000i64), Just(15_000), Just(60_000)],
    ) {
        let steps = series_values.iter().map(Vec::len).max().unwrap();
        let for_ms = for_steps * step;
        let input: Vec<RangeSeries> = series_values
            .iter()
            .enumerate()
            .map(|(i, v)| series(&format!("s{i}"), 0, step, v))
            .collect();
        let h = replay_rule(params(above, for_ms as u64, NoData::Ok), 0, (steps as i64 - 1) * step, step, &input);
        prop_assert_eq!(fired_at(&h), prometheus_fire_time(&series_values, above, for_ms, step));
    }
}
