use super::*;
use crate::core::eval::Threshold;
use crate::core::rules::load::common::MAX_DURATION;
use crate::core::rules::structure;
use std::path::Path;

#[test]
fn a_variable_can_never_name_the_program() {
    for program in ["${tool}", "/opt/${tool}/bin/undo", "${tool}-undo"] {
        let file = format!(
            "vars:\n  tool: kubectl\nwatch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"{program}\", \"undo\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 0s\n"
        );
        let err = load_str("r.yaml", &file, &LoadOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("program cannot contain a variable (`${tool}`)"),
            "{program}: {text}"
        );
        assert!(text.contains("r.yaml:7:"), "points at the command: {text}");
    }
}

#[test]
fn rollback_idempotent_is_a_boolean_defaulting_to_false() {
    let file = |extra: &str| {
        format!(
                "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\n{extra}rules:\n  - name: r\n    query: up\n    above: 1\n    for: 0s\n"
            )
    };
    let opts = LoadOptions::default();
    let (spec, _) = load_str("r.yaml", &file(""), &opts).unwrap();
    assert!(!spec.rollback.unwrap().idempotent);
    let (spec, _) = load_str("r.yaml", &file("  idempotent: true\n"), &opts).unwrap();
    assert!(spec.rollback.unwrap().idempotent);
    let err = load_str("r.yaml", &file("  idempotent: \"yes\"\n"), &opts).unwrap_err();
    assert!(
        err.to_string()
            .contains("rollback idempotent must be true or false, found a string"),
        "{err}"
    );
    let err = load_str("r.yaml", &file("  idempotant: true\n"), &opts).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `idempotent`?"),
        "{err}"
    );
}

/// Regression (found by the fault work on issue 7): a duration the parser accepted
/// overflowed `Instant + Duration` and `rollwatch watch` panicked at start.
#[test]
fn durations_too_long_to_add_to_a_clock_are_refused() {
    let now = tokio::time::Instant::now();
    assert!(now.checked_add(MAX_DURATION).is_some());
    assert!(parse_duration("100y").is_ok());
    for huge in ["18446744073709551615s", "584542046090y", "101y"] {
        let e = parse_duration(huge).unwrap_err();
        assert!(e.contains("too long"), "{huge}: {e}");
    }
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/rule_file/duration-overflows-instant.yaml"),
    )
    .unwrap();
    let err = load_str("t.yaml", &text, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.errors().count(), 3, "{err}");
    assert!(err.to_string().contains("too long"), "{err}");
}

/// CI replays the fuzzer's corpus and the crashes it found (fuzz/corpus and
/// fuzz/regressions) without cargo-fuzz: every input loads or is refused with
/// diagnostics that render, and none panics.
#[test]
fn replays_the_fuzz_corpus_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let sets = [("service".to_string(), "x\"} or vector(1)".to_string())];
    let mut inputs = 0;
    for dir in ["corpus/rule_file", "regressions/rule_file"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for opts in [
                LoadOptions::default(),
                LoadOptions {
                    outside: None,
                    sets: &sets,
                    check: true,
                },
            ] {
                match load_str("fuzz.yaml", &text, &opts) {
                    Err(e) => drop(e.to_string()),
                    Ok((spec, warnings)) => {
                        for w in &warnings {
                            drop(w.render("fuzz.yaml", &text));
                        }
                        let now = tokio::time::Instant::now();
                        for r in &spec.rules {
                            assert!(now.checked_add(r.for_.max(r.interval)).is_some());
                        }
                        assert!(now.checked_add(spec.duration).is_some());
                    }
                }
            }
            inputs += 1;
        }
    }
    assert!(
        inputs >= 5,
        "only {inputs} inputs found under {}",
        root.display()
    );
}

/// Issue 14: `breach_when: present` is a rule form of its own, and refuses what
/// cannot apply to it.
#[test]
fn breach_when_present_loads_and_refuses_thresholds_and_no_data() {
    let file = |rule: &str| {
        format!(
            "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up == 0\n    for: 0s\n{rule}"
        )
    };
    let opts = LoadOptions::default();
    let (spec, _) = load_str("r.yaml", &file("    breach_when: present\n"), &opts).unwrap();
    assert_eq!(spec.rules[0].threshold, Threshold::present());
    let (spec, _) = load_str(
        "r.yaml",
        &file("    breach_when: present\n    no_data: ok\n    expect_data: false\n"),
        &opts,
    )
    .unwrap();
    assert!(spec.rules[0].threshold.present);

    let err = |rule: &str| {
        load_str("r.yaml", &file(rule), &opts)
            .unwrap_err()
            .to_string()
    };
    let e = err("    breach_when: present\n    above: 1\n");
    assert!(e.contains("has both `breach_when` and a threshold"), "{e}");
    assert!(e.contains("r.yaml:10:18"), "{e}");
    let e = err("    breach_when: presnt\n");
    assert!(e.contains("invalid breach_when `presnt`"), "{e}");
    assert!(e.contains("did you mean `present`?"), "{e}");
    let e = err("    breach_when: present\n    no_data: breach\n");
    assert!(
        e.contains("`no_data` does not apply with `breach_when: present`"),
        "{e}"
    );
    let e = err("    breach_when: present\n    expect_data: true\n");
    assert!(
        e.contains("`expect_data` does not apply with `breach_when: present`"),
        "{e}"
    );
    let e = err("");
    assert!(e.contains("or `breach_when: present`"), "{e}");
}

/// Issue 14: `alert: NAME` reads Prometheus's own `ALERTS` series, built through the
/// parser's types so that a value (a placeholder's too) is only ever a label value.
#[test]
fn alert_rules_read_alerts_and_values_stay_label_values() {
    let file = |rule: &str| {
        format!(
            "vars:\n  service: checkout\nwatch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    for: 0s\n{rule}"
        )
    };
    let opts = LoadOptions::default();
    let (spec, _) = load_str(
        "r.yaml",
        &file("    alert: HighErrorRate\n    labels:\n      service: ${service}\n      severity: critical\n"),
        &opts,
    )
    .unwrap();
    let r = &spec.rules[0];
    assert!(r.threshold.present);
    assert_eq!(
        r.query,
        r#"ALERTS{alertname="HighErrorRate",alertstate="firing",service="checkout",severity="critical"}"#
    );
    // A value that would break out of a string stays inside it.
    let sets = [("service".to_string(), "x\"} or vector(1) #".to_string())];
    let (spec, _) = load_str(
        "r.yaml",
        &file("    alert: A\n    labels: {service: \"${service}\"}\n"),
        &LoadOptions {
            outside: None,
            sets: &sets,
            check: false,
        },
    )
    .unwrap();
    let expr = structure::parse(&spec.rules[0].query).unwrap();
    let promql_parser::parser::Expr::VectorSelector(v) = expr else {
        panic!("{}", spec.rules[0].query)
    };
    assert!(v
        .matchers
        .matchers
        .iter()
        .any(|m| m.name == "service" && m.value == "x\"} or vector(1) #"));

    let err = |rule: &str| {
        load_str("r.yaml", &file(rule), &opts)
            .unwrap_err()
            .to_string()
    };
    let e = err("    alert: A\n    query: up\n");
    assert!(e.contains("has both `query` and `alert`"), "{e}");
    let e = err("    query: up\n    above: 1\n    labels: {a: b}\n");
    assert!(e.contains("has `labels` without `alert`"), "{e}");
    let e = err("    alert: A\n    above: 1\n");
    assert!(e.contains("has both `alert` and a threshold"), "{e}");
    let e = err("    alert: A\n    labels: {alertstate: pending, 9x: y}\n");
    assert!(e.contains("`alertstate` cannot be a label"), "{e}");
    assert!(e.contains("`9x` cannot be a label"), "{e}");
    let e = err("    alert: A\n    no_data: breach\n");
    assert!(e.contains("`no_data` does not apply with `alert`"), "{e}");
    let e = err("    alert: ${nope}\n");
    assert!(e.contains("unknown variable `${nope}`"), "{e}");
}
