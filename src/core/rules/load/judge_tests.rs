//! The judges' keys (`load/judge.rs`): what loads, and an error with its
//! file:line:column for every misuse.

use super::*;
use crate::core::eval::NoData;
use crate::core::eval::{
    BaselineParams, Breaches, CompareParams, Direction, EffectMeasure, OnLabels,
};
use crate::core::rules::BaselineSource;
use crate::core::rules::Rule;
use std::time::Duration;

const HEAD: &str = "vars:\n  service: checkout\nwatch:\n  duration: 10m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n";

/// A file whose only rule is `name: r` followed by `body` (its lines indented by four).
fn file(body: &str) -> String {
    let mut f = HEAD.to_string();
    for line in body.lines() {
        f.push_str("    ");
        f.push_str(line);
        f.push('\n');
    }
    f
}

fn load(body: &str) -> Result<Loaded, LoadError> {
    load_str("t.yaml", &file(body), &LoadOptions::default())
}

fn rule(body: &str) -> Rule {
    match load(body) {
        Ok((spec, _)) => spec.rules[0].clone(),
        Err(e) => panic!("{body}\n{e}"),
    }
}

/// A rule with no judge beyond its threshold holds none (issue 21: a `Judging` is
/// 408 bytes, and a rule file's snapshot is held for every watch of its own vars);
/// one with a judge, even only `pre_existing:`, reads it back whole.
#[test]
fn a_rule_without_judges_holds_none() {
    let plain = rule("query: x\nabove: 1\nfor: 1m\n");
    assert_eq!(*plain.judging, crate::core::eval::Judging::default());
    assert_eq!(plain.judging, crate::core::rules::Judges::default());
    let size = std::mem::size_of::<Rule>();
    assert!(size <= 400, "a rule is {size} bytes");
    let judged = rule("query: x\nabove: 1\nfor: 1m\npre_existing: ignore\n");
    assert_ne!(judged.judging, crate::core::rules::Judges::default());
    assert_eq!(
        judged.judging.pre_existing,
        crate::core::eval::PreExisting::Ignore
    );
    assert_eq!(
        judged.params().judge.pre_existing,
        judged.judging.pre_existing
    );
}

#[test]
fn the_issue_keys_load() {
    let r = rule("query: sum(rate(x{service=\"${service}\"}[1m]))\nabove: 0.05\nbreaches: 3 of 5\nmin_traffic:\n  query: sum(rate(y{service=\"${service}\"}[1m]))\n  min: 0.5\n");
    assert_eq!(r.judging.breaches, Some(Breaches { m: 3, n: 5 }));
    assert_eq!(r.judging.min_traffic, Some(0.5));
    assert_eq!(
        r.guard.as_deref(),
        Some("sum(rate(y{service=\"checkout\"}[1m]))")
    );
    assert_eq!(r.for_, Duration::ZERO);

    let r = rule("query: sum(rate(orders_total[5m]))\nbaseline:\n  offset: 1w\nbelow_baseline: 30%\nfor: 10m\n");
    assert_eq!(
        r.baseline,
        Some(BaselineSource::Offset(Duration::from_secs(7 * 86400)))
    );
    assert_eq!(
        r.judging.baseline,
        Some(BaselineParams {
            above_pct: None,
            below_pct: Some(30.0),
            no_baseline: NoData::Hold
        })
    );
    assert_eq!(r.extra_queries().len(), 1);

    let r = rule("query: x\nbaseline: {before: 30m}\nabove_baseline: 12.5%\nabove: 0.01\nno_baseline: breach\nfor: 0s\n");
    assert_eq!(
        r.baseline,
        Some(BaselineSource::Before(Duration::from_secs(1800)))
    );
    assert_eq!(r.judging.baseline.unwrap().above_pct, Some(12.5));
    assert_eq!(r.judging.baseline.unwrap().no_baseline, NoData::Breach);
    assert_eq!(r.threshold.above, Some(0.01));
    assert!(
        r.extra_queries().is_empty(),
        "before: is taken once, not per poll"
    );

    let r = rule("compare:\n  canary: max by (pod) (lat{track=\"canary\",service=\"${service}\"})\n  stable: max by (pod) (lat{track=\"stable\"})\n  direction: increase\n  confidence: 0.98\n  min_effect: 20%\n  window: 10m\n  min_samples: 20\nfor: 2m\n");
    assert_eq!(
        r.query,
        "max by (pod) (lat{track=\"canary\",service=\"checkout\"})"
    );
    assert_eq!(
        r.stable.as_deref(),
        Some("max by (pod) (lat{track=\"stable\"})")
    );
    assert_eq!(
        r.judging.compare,
        Some(CompareParams {
            direction: Direction::Increase,
            confidence: 0.98,
            tests: 1,
            min_effect: 0.2,
            window: Duration::from_secs(600),
            min_samples: 20,
            effect: EffectMeasure::MeanRatio,
        })
    );
    for (written, measure) in [
        ("hodges_lehmann", EffectMeasure::HodgesLehmann),
        ("mean_ratio", EffectMeasure::MeanRatio),
        ("exceedance", EffectMeasure::Exceedance),
    ] {
        let r = rule(&format!("compare: {{canary: a, stable: b, direction: increase, window: 1m, effect: {written}}}\nfor: 0s\n"));
        assert_eq!(r.judging.compare.unwrap().effect, measure);
    }
}

#[test]
fn every_misuse_is_an_error_at_its_position() {
    // (body, message, line:column). The rule's first body line is line 10.
    let cases: &[(&str, &str, &str)] = &[
        ("query: x\nabove: 1\nfor: 1m\nbreaches: 3 of 5\n", "has both `for` and `breaches`", "12:10"),
        ("query: x\nabove: 1\nbreaches: 6 of 5\n", "can never be reached (M > N)", "12:15"),
        ("query: x\nabove: 1\nbreaches: 0 of 5\n", "would act without any breach", "12:15"),
        ("query: x\nabove: 1\nbreaches: 3/5\n", "invalid `breaches`", "12:15"),
        ("query: x\nabove: 1\nbreaches: 3\n", "`breaches` must be `M of N`", "12:15"),
        ("query: x\nabove: 1\nbreaches: 3 of 100000\n", "N is too large", "12:15"),
        ("query: x\nabove: 1\nbreaches: -1 of 5\n", "invalid `breaches`", "12:15"),
        ("query: x\nabove_baseline: 10%\nfor: 0s\n", "has `above_baseline` without `baseline`", "11:21"),
        ("query: x\nabove: 1\nno_baseline: ok\nfor: 0s\n", "has `no_baseline` without `baseline`", "12:18"),
        ("query: x\nbaseline: {offset: 1w}\nfor: 0s\n", "has a `baseline` but no `above_baseline` or `below_baseline`", "11:15"),
        ("query: x\nbaseline: {offset: 1w}\nbelow_baseline: 30\nfor: 0s\n", "must be a percentage such as `30%`, found 30", "12:21"),
        ("query: x\nbaseline: {offset: 1w}\nbelow_baseline: 30 %%\nfor: 0s\n", "must be a percentage", "12:21"),
        ("query: x\nbaseline: {offset: 1w}\nbelow_baseline: 130%\nfor: 0s\n", "`below_baseline` `130%` is out of range", "12:21"),
        ("query: x\nbaseline: {offset: 1w}\nabove_baseline: -5%\nfor: 0s\n", "out of range", "12:21"),
        ("query: x\nbaseline: {offset: 1w, before: 1h}\nbelow_baseline: 5%\nfor: 0s\n", "has both `offset` and `before`", "11:36"),
        ("query: x\nbaseline: {}\nbelow_baseline: 5%\nfor: 0s\n", "has neither `offset` nor `before`", "11:15"),
        ("query: x\nbaseline: {offset: 0s}\nbelow_baseline: 5%\nfor: 0s\n", "must be longer than 0s", "11:24"),
        ("query: x\nbaseline: {ofset: 1w}\nbelow_baseline: 5%\nfor: 0s\n", "did you mean `offset`?", "11:16"),
        ("query: x\nbaseline: {offset: 1w}\nbelow_baseline: 5%\nno_baseline: skip\nfor: 0s\n", "invalid no_baseline `skip`", "13:18"),
        ("query: x\nbreach_when: present\nbaseline: {offset: 1w}\nbelow_baseline: 5%\nfor: 0s\n", "has both `baseline` and `breach_when`", "11:18"),
        ("query: x\nabove: 1\nmin_traffic: {min: 1}\nfor: 0s\n", "`min_traffic` has no `query`", "12:18"),
        ("query: x\nabove: 1\nmin_traffic: {query: y}\nfor: 0s\n", "`min_traffic` has no `min`", "12:18"),
        ("query: x\nabove: 1\nmin_traffic: {query: y, min: \"0.5\"}\nfor: 0s\n", "`min_traffic.min` must be a number", "12:34"),
        ("query: x\nabove: 1\nmin_traffic: {query: \"rate(y[\", min: 1}\nfor: 0s\n", "the guard query (`min_traffic.query`) of rule `r` is not valid PromQL", "12:26"),
        ("query: x\nabove: 1\nmin_traffic: {query: \"y{s=\\\"${nope}\\\"}\", min: 1}\nfor: 0s\n", "unknown variable `${nope}`", "12:33"),
        ("query: x\nabove: 1\nmin_traffic: {query: \"y[5m]\", min: 1}\nfor: 0s\n", "returns a range vector", "12:26"),
        ("query: x\ncompare: {canary: a, stable: b, direction: up, window: 1m}\nfor: 0s\n", "has both `compare` and `query`", "10:12"),
        ("compare: {canary: a, stable: b, direction: up, window: 1m}\nfor: 0s\n", "invalid direction `up`", "10:48"),
        ("compare: {canary: a, direction: increase, window: 1m}\nfor: 0s\n", "`compare` has no `stable`", "10:14"),
        ("compare: {canary: a, stable: b, direction: increase}\nfor: 0s\n", "`compare` has no `window`", "10:14"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, confidence: 1}\nfor: 0s\n", "`compare.confidence` must be between 0 and 1", "10:82"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, confidence: 0}\nfor: 0s\n", "must be between 0 and 1", "10:82"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, min_effect: 0.2}\nfor: 0s\n", "`compare.min_effect` must be a percentage", "10:82"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, effect: exceedance, min_effect: 150%}\nfor: 0s\n", "`compare.min_effect` `150%` is out of range for `effect: exceedance`", "10:102"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, min_samples: 0}\nfor: 0s\n", "`compare.min_samples` must be a whole number", "10:83"),
        ("compare: {canary: a, stable: \"b[1m]\", direction: increase, window: 1m}\nfor: 0s\n", "`compare.stable` of rule `r` returns a range vector", "10:34"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m}\nabove: 1\nfor: 0s\n", "has both `compare` and `above`", "11:12"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m}\nbaseline: {offset: 1w}\nbelow_baseline: 5%\nfor: 0s\n", "has both `compare` and `baseline`", "11:15"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, size: 3}\nfor: 0s\n", "unknown key `size` in `compare`", "10:70"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m, effect: median}\nfor: 0s\n", "invalid `compare.effect` `median`", "10:78"),
    ];
    let mut wrong = Vec::new();
    for (body, message, at) in cases {
        let err = match load(body) {
            Ok(_) => "loaded without error".to_string(),
            Err(e) => e.to_string(),
        };
        if !err.contains(message) || !err.contains(&format!("--> t.yaml:{at}\n")) {
            wrong.push(format!("{body}wanted {message:?} at {at}, got:\n{err}\n"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_compare_window_shorter_than_the_interval_is_a_warning() {
    let (_, warnings) =
        load("compare: {canary: a, stable: b, direction: either, window: 5s}\nfor: 0s\n").unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("shorter than the poll interval")),
        "{warnings:?}"
    );
}

#[test]
fn placeholders_in_judge_queries_are_escaped_like_the_query() {
    // A value that would change a guard's or a side's structure is refused there too.
    let body =
        "query: x\nabove: 1\nmin_traffic: {query: \"y{s=\\\"${service}\\\"}\", min: 1}\nfor: 0s\n";
    let sets = [(
        "service".to_string(),
        "a\"} or vector(1) or y{s=\"".to_string(),
    )];
    let (spec, _) = load_str(
        "t.yaml",
        &file(body),
        &LoadOptions {
            outside: None,
            sets: &sets,
            check: false,
        },
    )
    .unwrap();
    let guard = spec.rules[0].guard.clone().unwrap();
    // Escaped into one label value: the structure is that of the template.
    assert!(guard.starts_with("y{s=\"a\\\"} or vector(1)"), "{guard}");
    let body = "compare: {canary: \"a{s=\\\"${service}\\\"}\", stable: \"a{s=~\\\"${service}\\\"}\", direction: either, window: 1m}\nfor: 0s\n";
    let (spec, _) = load_str(
        "t.yaml",
        &file(body),
        &LoadOptions {
            outside: None,
            sets: &sets,
            check: false,
        },
    )
    .unwrap();
    assert!(
        spec.rules[0].stable.clone().unwrap().contains("\\\""),
        "{:?}",
        spec.rules[0].stable
    );
}

#[test]
fn a_guard_that_can_share_no_label_with_the_rule_is_refused_where_written() {
    let body = |guard: &str, on: &str| {
        format!("query: sum by (service) (rate(errors[5m]))\nabove: 0.05\nfor: 0s\nmin_traffic:\n  query: {guard}\n  min: 1\n{on}")
    };
    let e = load(&body("sum by (pod) (rate(requests[5m]))", "")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("share no label") && text.contains("`pod`") && text.contains("`service`"),
        "{text}"
    );
    assert!(text.contains("--> t.yaml:14:14\n"), "{text}");
    assert!(
        text.contains("help:") && text.contains("on: [...]") && text.contains("sum by (service)"),
        "{text}"
    );
    // A rule without labels and a guard by pod: the same sum.
    let lone = "query: sum(rate(errors[5m]))\nabove: 0.05\nfor: 0s\nmin_traffic:\n  query: sum by (pod) (rate(requests[5m]))\n  min: 1\n";
    assert!(load(lone)
        .unwrap_err()
        .to_string()
        .contains("share no label"));
    // What loads: a shared label, one label-less guard, labels unknown until run
    // time (the evaluator checks then), or `on:` naming labels both keep.
    for (guard, on) in [
        ("sum by (service, pod) (rate(requests[5m]))", ""),
        ("sum(rate(requests[5m]))", ""),
        ("rate(requests[5m])", ""),
        (
            "sum by (service, zone) (rate(requests[5m]))",
            "  on: [service]\n",
        ),
    ] {
        let (spec, _) = load(&body(guard, on)).unwrap_or_else(|e| panic!("{guard}: {e}"));
        assert_eq!(
            spec.rules[0].judging.guard_on,
            (!on.is_empty()).then(|| OnLabels::new(&["service"]).unwrap())
        );
    }
    // `on:` naming a label one side drops.
    let e = load(&body(
        "sum by (zone) (rate(requests[5m]))",
        "  on: [service]\n",
    ))
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("`min_traffic.on` names `service`, but the guard's series carry only `zone`"),
        "{text}"
    );
    assert!(text.contains("--> t.yaml:16:"), "{text}");
    let e = load(&body("rate(requests[5m])", "  on: [\"a-b\"]\n")).unwrap_err();
    assert!(e.to_string().contains("not a label name"), "{e}");
}
