//! The `pre_existing:` key (`load/pre_existing.rs`): what loads, and an error with
//! its file:line:column for every misuse.

use super::*;
use crate::core::eval::PreExisting;

const HEAD: &str = "watch:\n  duration: 10m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n";

fn load(body: &str) -> Result<Loaded, LoadError> {
    let mut f = HEAD.to_string();
    for line in body.lines() {
        f.push_str("    ");
        f.push_str(line);
        f.push('\n');
    }
    load_str("t.yaml", &f, &LoadOptions::default())
}

fn mode(body: &str) -> PreExisting {
    match load(body) {
        Ok((spec, _)) => spec.rules[0].judging.pre_existing,
        Err(e) => panic!("{body}\n{e}"),
    }
}

#[test]
fn each_mode_loads_and_judge_is_the_default() {
    assert_eq!(mode("query: x\nabove: 1\nfor: 1m\n"), PreExisting::Judge);
    assert_eq!(
        mode("query: x\nabove: 1\nfor: 1m\npre_existing: judge\n"),
        PreExisting::Judge
    );
    assert_eq!(
        mode("query: x\nabove: 1\nfor: 1m\npre_existing: ignore\n"),
        PreExisting::Ignore
    );
    assert_eq!(
        mode("query: x\nabove: 1\nfor: 1m\npre_existing: {improve: 10%}\n"),
        PreExisting::Improve { margin_pct: 10.0 }
    );
    assert_eq!(
        mode("query: x\nbelow: 1\nno_data: ok\nfor: 1m\npre_existing:\n  improve: 0%\n"),
        PreExisting::Improve { margin_pct: 0.0 }
    );
    // `ignore` applies to a present rule (nothing to get worse, nothing to act on).
    assert_eq!(
        mode("query: x\nbreach_when: present\nfor: 1m\npre_existing: ignore\n"),
        PreExisting::Ignore
    );
}

#[test]
fn every_misuse_is_an_error_at_its_position() {
    // (body, message, line:column). The rule's first body line is line 8.
    let cases: &[(&str, &str, &str)] = &[
        ("query: x\nabove: 1\nfor: 1m\npre_existing: improve\n", "`pre_existing: improve` needs its margin", "11:19"),
        ("query: x\nabove: 1\nfor: 1m\npre_existing: skip\n", "invalid pre_existing `skip`", "11:19"),
        ("query: x\nabove: 1\nfor: 1m\npre_existing: ignor\n", "did you mean `ignore`?", "11:19"),
        ("query: x\nabove: 1\nfor: 1m\npre_existing: 3\n", "pre_existing must be one of judge | ignore", "11:19"),
        ("query: x\nabove: 1\nfor: 1m\npre_existing: {improve: 10}\n", "`pre_existing.improve` must be a percentage such as `30%`, found 10", "11:29"),
        ("query: x\nabove: 1\nfor: 1m\npre_existing: {improve: -5%}\n", "`pre_existing.improve` `-5%` is out of range", "11:29"),
        ("query: x\nabove: 1\nfor: 1m\npre_existing: {improv: 5%}\n", "did you mean `improve`?", "11:20"),
        ("query: x\nabove: 1\nbreaches: 3 of 5\npre_existing: ignore\n", "`pre_existing: ignore` does not apply with `breaches`", "11:19"),
        ("compare: {canary: a, stable: b, direction: increase, window: 1m}\nfor: 0s\npre_existing: ignore\n", "does not apply with `compare`", "10:19"),
        ("query: 'increase(x[${watch.elapsed}])'\nabove: 1\nfor: 1m\npre_existing: ignore\n", "cannot read a query with `${watch.elapsed}`", "11:19"),
        ("query: x\nbreach_when: present\nfor: 1m\npre_existing: {improve: 5%}\n", "`pre_existing: improve 5%` does not apply with `breach_when: present`", "11:19"),
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
