//! `rollwatch import` (issue 14): public-style rule files in, a rule file that `check`
//! accepts out; thresholds taken from the tree, everything else `breach_when: present`,
//! `--match` on every selector, and bad input refused at its file:line:column.

use crate::harness::{repo_path, run, Scratch};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};
use rollwatch::core::rules::{load_str, structure, LoadOptions, WatchSpec};
use std::time::Duration;

fn fixture(name: &str) -> String {
    repo_path(&format!("tests/fixtures/import/{name}"))
        .display()
        .to_string()
}

/// Runs `import`, then `check` on what it wrote; returns the loaded spec and stderr.
fn import_and_check(args: &[&str]) -> (WatchSpec, String) {
    let mut full = vec!["import"];
    full.extend_from_slice(args);
    let (code, stdout, stderr) = run(&full);
    assert_eq!(code, 0, "import: {stderr}");
    let s = Scratch::new();
    let out = s.path("imported.yaml");
    std::fs::write(&out, &stdout).unwrap();
    let out = out.display().to_string();
    let (code, checked, check_err) = run(&["check", &out]);
    assert_eq!(code, 0, "check of\n{stdout}\n{check_err}");
    assert!(checked.contains(&format!("ok: {out}")), "{checked}");
    let opts = LoadOptions {
        sets: &[],
        check: true,
    };
    let (spec, _) = load_str("imported.yaml", &stdout, &opts).unwrap();
    (spec, stderr)
}

fn rule<'s>(spec: &'s WatchSpec, name: &str) -> &'s rollwatch::core::rules::Rule {
    spec.rules
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

#[test]
fn issue_14_prometheus_rule_manifest_imports_and_passes_check() {
    let (spec, stderr) = import_and_check(&[&fixture("checkout-prometheusrule.yaml")]);
    let names: Vec<&str> = spec.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CheckoutHighErrorRate",
            "CheckoutDown",
            "CheckoutPodNotReady",
            "CheckoutLatencyByNode"
        ]
    );
    // `A > 0.05`: the ratio is the query, 0.05 the threshold.
    let r = rule(&spec, "CheckoutHighErrorRate");
    assert_eq!(r.threshold.above, Some(0.05));
    assert!(!r.threshold.present);
    assert_eq!(
        structure::parse(&r.query).unwrap(),
        structure::parse(
            r#"sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (service) (rate(http_requests_total[5m]))"#
        )
        .unwrap()
    );
    assert_eq!(r.for_, Duration::from_secs(120));
    let d = r.description.as_deref().unwrap();
    assert!(d.starts_with("Checkout is failing requests\n"), "{d}");
    assert!(d.contains("{{ $labels.service }} fail."), "{d}");
    assert!(d.contains("labels: severity=critical"), "{d}");
    // absent(), `and on()`: present rules, the whole expression as the query.
    let r = rule(&spec, "CheckoutDown");
    assert!(r.threshold.present);
    assert_eq!(r.query, r#"absent(up{job="checkout"} == 1)"#);
    assert_eq!(r.for_, Duration::ZERO);
    assert!(rule(&spec, "CheckoutPodNotReady").threshold.present);
    // `X * on() group_left() Y >= 0.75`: a threshold (strict in rollwatch).
    let r = rule(&spec, "CheckoutLatencyByNode");
    assert_eq!(r.threshold.above, Some(0.75));
    assert!(r.query.contains("group_left (node)"), "{}", r.query);
    assert!(
        stderr.contains("checkout-prometheusrule.yaml:15:19: recording rule `service:http_requests:rate5m` skipped"),
        "{stderr}"
    );
}

#[test]
fn issue_14_rule_file_thresholds_flip_and_keep_firing_for_warns() {
    let (spec, stderr) = import_and_check(&[&fixture("node-rules.yaml")]);
    // `A * 100 < 10`: below, with an explicit no_data.
    let r = rule(&spec, "HostOutOfMemory");
    assert_eq!((r.threshold.above, r.threshold.below), (None, Some(10.0)));
    assert_eq!(r.interval, Duration::from_secs(30), "the group's interval");
    // `80 < A`: the literal on the left flips to `above`.
    let r = rule(&spec, "HostHighCpuLoad");
    assert_eq!((r.threshold.above, r.threshold.below), (Some(80.0), None));
    assert_eq!(r.for_, Duration::ZERO, "`for: 0m`");
    assert!(
        rule(&spec, "HostDiskWillFillSoon").threshold.present,
        "`unless`"
    );
    let r = rule(&spec, "ExporterDown");
    assert!(r.threshold.present);
    assert_eq!(r.for_, Duration::ZERO, "a missing `for` is 0s");
    // The longest `for` (1h) still has time to fire.
    assert!(spec.duration > Duration::from_secs(3600));
    assert!(
        stderr.contains("warning: alert `HostHighCpuLoad`: `keep_firing_for` is not imported"),
        "{stderr}"
    );
    assert!(stderr.contains("node-rules.yaml:18:26"), "{stderr}");
    assert!(stderr.contains("recording rule `instance:node_cpu:ratio` skipped"));
}

#[test]
fn issue_14_match_narrows_every_selector() {
    let (spec, _) = import_and_check(&[
        "--match",
        "service=checkout",
        &fixture("checkout-prometheusrule.yaml"),
        &fixture("node-rules.yaml"),
    ]);
    assert_eq!(spec.rules.len(), 8);
    let want = Matcher::new(MatchOp::Equal, "service", "checkout");
    fn selectors<'e>(e: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
        match e {
            Expr::Aggregate(a) => selectors(&a.expr, out),
            Expr::Unary(u) => selectors(&u.expr, out),
            Expr::Binary(b) => {
                selectors(&b.lhs, out);
                selectors(&b.rhs, out);
            }
            Expr::Paren(p) => selectors(&p.expr, out),
            Expr::Subquery(s) => selectors(&s.expr, out),
            Expr::VectorSelector(v) => out.push(v),
            Expr::MatrixSelector(m) => out.push(&m.vs),
            Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
            _ => {}
        }
    }
    let mut total = 0;
    for r in &spec.rules {
        let expr = structure::parse(&r.query).unwrap();
        let mut found = Vec::new();
        selectors(&expr, &mut found);
        assert!(!found.is_empty(), "{}", r.query);
        for v in found {
            total += 1;
            assert!(
                v.matchers.matchers.contains(&want),
                "{}: {}",
                r.name,
                r.query
            );
        }
    }
    assert!(total >= 12, "{total}");
    // The other matchers stay as they were.
    assert!(rule(&spec, "CheckoutDown")
        .query
        .contains(r#"up{job="checkout",service="checkout"}"#));
}

#[test]
fn issue_14_bad_input_exits_2_at_file_line_column() {
    let path = fixture("bad/not-yaml.yaml");
    let (code, stdout, stderr) = run(&["import", &path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("error: not a YAML rule file"), "{stderr}");
    assert!(stderr.contains(&format!("{path}:4:7")), "{stderr}");

    let path = fixture("bad/bad-expr.yaml");
    let (code, stdout, stderr) = run(&["import", &path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "nothing half-written: {stdout}");
    assert!(
        stderr.contains("error: the `expr` of alert `Unclosed` is not valid PromQL"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{path}:7:15")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, _, stderr) = run(&["import", "--match", "9x=y", &fixture("node-rules.yaml")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a label name"), "{stderr}");
}
