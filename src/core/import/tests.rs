//! Unit tests of the import: threshold extraction, `--match` through the tree, and
//! the written file loading with rollwatch's own loader.

use super::*;
use crate::core::rules::{load_str, LoadOptions};

fn one(expr: &str) -> OutRule {
    let text =
        format!("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: {expr:?}\n");
    let mut got = import_str(&text, &[], &mut BTreeSet::new());
    assert!(got.diagnostics.is_empty(), "{expr}: {:?}", got.diagnostics);
    got.rules.remove(0)
}

fn threshold(r: &OutRule) -> (Option<f64>, Option<f64>, bool, bool) {
    (
        r.above,
        r.below,
        r.breach_when.is_some(),
        !r.notes.is_empty(),
    )
}

#[test]
fn comparisons_with_a_literal_become_thresholds() {
    let cases = [
        (
            "rate(x[5m]) > 0.05",
            "rate(x[5m])",
            (Some(0.05), None, false, false),
        ),
        ("x < 3", "x", (None, Some(3.0), false, false)),
        ("0.5 < x", "x", (Some(0.5), None, false, false)),
        ("2 > sum(x)", "sum(x)", (None, Some(2.0), false, false)),
        ("(x) > (1)", "(x)", (Some(1.0), None, false, false)),
        (
            "x * on(instance) group_left(node) y > 1",
            "x * on (instance) group_left (node) y",
            (Some(1.0), None, false, false),
        ),
    ];
    for (expr, query, want) in cases {
        let r = one(expr);
        assert_eq!(threshold(&r), want, "{expr}");
        assert_eq!(r.query, query, "{expr}");
    }
}

/// Issue 23: `import` never changes what a rule means. rollwatch's `above`/`below`
/// are strict, so an inclusive comparison, an equality or a `bool` stays the
/// expression as written, which returns a series exactly when the alert's did: at a
/// value equal to the literal too (the etcd mixin's leader changes, exactly 4, with
/// `>= 4`).
#[test]
fn inclusive_equal_and_bool_comparisons_keep_their_meaning() {
    for expr in [
        "x >= 4",
        "x <= -1",
        "10 <= x",
        "4 >= sum(x)",
        "increase(etcd_server_leader_changes_seen_total[15m]) >= 4",
        "x == 4",
        "x != 0",
        "4 == x",
        "x >= bool 4",
        "x <= bool 4",
        "x == bool 1",
        "x != bool 1",
        "x > bool 4",
    ] {
        let r = one(expr);
        assert_eq!(threshold(&r), (None, None, true, false), "{expr}");
        assert_eq!(
            structure::parse(&r.query).unwrap(),
            structure::parse(expr).unwrap(),
            "{expr}: the query is the whole expression"
        );
    }
}

#[test]
fn anything_else_breaches_while_present() {
    for expr in [
        "up == 0",
        "x > bool 1",
        "x > y",
        "absent(up{job=\"a\"})",
        "x > 1 and y > 2",
        "x unless y",
        "x > 1 unless on(instance) y",
        "x > on(instance) group_left(node) y",
        "x > Inf",
    ] {
        let r = one(expr);
        assert_eq!(threshold(&r), (None, None, true, false), "{expr}");
        // The query is the whole expression, printed back from its tree.
        assert_eq!(
            structure::parse(&r.query).unwrap(),
            structure::parse(expr).unwrap(),
            "{expr}"
        );
    }
}

#[test]
fn match_adds_a_matcher_to_every_selector_through_the_tree() {
    let mut e = structure::parse(
        "sum(rate(a{code=~\"5..\"}[5m])) / on(x) group_left b > 1 unless absent(c{service=\"checkout\"}) or d{e=\"1\" or f=\"2\"}",
    )
    .unwrap();
    add_matcher(&mut e, "service", "checkout");
    let text = e.to_string();
    // What is printed parses back (and prints the same), and in every selector, each
    // alternative of an `or` included, the matcher holds.
    let again = structure::parse(&text).unwrap();
    assert_eq!(again.to_string(), text);
    assert!(text.contains(r#"absent(c{service="checkout"})"#), "{text}");
    let mut count = 0;
    let mut check = |v: &VectorSelector| {
        count += 1;
        let m = Matcher::new(MatchOp::Equal, "service", "checkout");
        let groups = &v.matchers.or_matchers;
        assert!(
            v.matchers.matchers.contains(&m)
                || (!groups.is_empty() && groups.iter().all(|g| g.contains(&m))),
            "{text}"
        );
    };
    fn walk(e: &Expr, f: &mut dyn FnMut(&VectorSelector)) {
        match e {
            Expr::Aggregate(a) => walk(&a.expr, f),
            Expr::Binary(b) => {
                walk(&b.lhs, f);
                walk(&b.rhs, f);
            }
            Expr::Paren(p) => walk(&p.expr, f),
            Expr::VectorSelector(v) => f(v),
            Expr::MatrixSelector(m) => f(&m.vs),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
            _ => {}
        }
    }
    walk(&again, &mut check);
    assert_eq!(count, 4);
    // A value that needs escaping stays one label value.
    let mut e = structure::parse("up").unwrap();
    add_matcher(&mut e, "team", "a\"b\\c");
    let back = structure::parse(&e.to_string()).unwrap();
    let Expr::VectorSelector(v) = back else {
        panic!()
    };
    assert!(v
        .matchers
        .matchers
        .contains(&Matcher::new(MatchOp::Equal, "team", "a\"b\\c")));
}

#[test]
fn the_written_file_loads_with_the_same_loader_as_watch() {
    let text = r#"
groups:
  - name: g
    interval: 1m
    rules:
      - record: job:x:rate5m
        expr: rate(x[5m])
      - alert: "High error rate!"
        expr: rate(x[5m]) > 0.05
        for: 5m
        keep_firing_for: 10m
        labels: {severity: critical, team: "a: b"}
        annotations:
          summary: "Errors on {{ $labels.instance }}: \"quoted\" # not a comment"
          description: |
            Line one.
            Line two with ${dollar} and 'quotes'.
      - alert: High error rate!
        expr: 'up{path=~"/x${y}"} == 0'
      - alert: Low
        expr: x <= 2
        for: 90s
"#;
    let mut names = BTreeSet::new();
    let got = import_str(text, &[], &mut names);
    assert_eq!(got.notes.len(), 1);
    assert_eq!(got.diagnostics.len(), 1, "the keep_firing_for warning");
    assert!(!got.has_errors());
    let longest = got.longest_for;
    let out = render(got.rules, longest, &["a\nb.yaml".into()]).unwrap();
    let (spec, _) = load_str(
        "out.yaml",
        &out,
        &LoadOptions {
            outside: None,
            sets: &[],
            check: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(spec.rules.len(), 3, "{out}");
    let r = &spec.rules[0];
    assert_eq!(r.name, "High-error-rate");
    assert_eq!(r.query, "rate(x[5m])");
    assert_eq!(r.threshold.above, Some(0.05));
    assert_eq!(r.for_, Duration::from_secs(300));
    assert_eq!(r.interval, Duration::from_secs(60));
    let d = r.description.as_deref().unwrap();
    assert!(d.contains("\"quoted\" # not a comment"), "{d}");
    assert!(d.contains("Line two with ${dollar}"), "{d}");
    assert!(d.contains("severity=critical, team=a: b"), "{d}");
    assert_eq!(spec.rules[1].name, "High-error-rate-2");
    assert_eq!(spec.rules[1].query, "up{path=~\"/x${y}\"} == 0");
    assert!(spec.rules[1].threshold.present);
    assert_eq!(spec.rules[1].for_, Duration::ZERO);
    assert!(spec.rules[2].threshold.present, "`x <= 2` as written");
    assert_eq!(spec.rules[2].query, "x <= 2");
    assert_eq!(spec.rules[2].for_, Duration::from_secs(90));
    assert!(!out.contains("compares strictly"), "{out}");
    assert!(out.contains("#   a?b.yaml\n"), "{out}");
    assert_eq!(spec.rollback.unwrap().argv, vec!["false"]);
}

#[test]
fn bad_input_points_at_its_position() {
    let got = import_str("groups: [\n", &[], &mut BTreeSet::new());
    assert!(got.has_errors());
    assert!(got.diagnostics[0].pos.is_some());
    let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m] > 1\n";
    let got = import_str(text, &[], &mut BTreeSet::new());
    let d = &got.diagnostics[0];
    assert!(d.message.contains("is not valid PromQL"), "{d:?}");
    let pos = d.pos.unwrap();
    assert_eq!((pos.line, pos.column), (5, 15));
    let got = import_str("kind: ConfigMap\n", &[], &mut BTreeSet::new());
    assert!(got.diagnostics[0].message.contains("no `groups:`"));
}

#[test]
fn non_latin_alert_names_stay_readable_and_never_share_a_rule() {
    let text = r#"
groups:
  - name: g
    rules:
      - alert: "Ошибки 🚨"
        expr: x > 1
      - alert: "Ошибки 🔥"
        expr: y > 1
      - alert: "エラー率"
        expr: z > 1
      - alert: "🚨"
        expr: w > 1
"#;
    let got = import_str(text, &[], &mut BTreeSet::new());
    assert!(!got.has_errors(), "{:?}", got.diagnostics);
    let names: Vec<String> = got.rules.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, ["Ошибки", "Ошибки-2", "エラー率", "alert"]);
    let out = render(got.rules, Duration::ZERO, &[]).unwrap();
    let (spec, _) = load_str(
        "out.yaml",
        &out,
        &LoadOptions {
            outside: None,
            sets: &[],
            check: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{out}"));
    let loaded: Vec<String> = spec.rules.iter().map(|r| r.name.clone()).collect();
    assert_eq!(loaded, names);
}

#[test]
fn every_document_of_a_multi_document_input_is_imported() {
    let text = "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nspec:\n  groups:\n    - name: a\n      rules:\n        - alert: A\n          expr: x > 1\n---\nkind: Service\nmetadata: {name: s}\n---\nkind: PrometheusRule\nspec:\n  groups:\n    - name: b\n      rules:\n        - alert: B\n          expr: y > 2\n---\n";
    let got = import_str(text, &[], &mut BTreeSet::new());
    assert!(!got.has_errors(), "{:?}", got.diagnostics);
    let names: Vec<&str> = got.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    assert!(
        got.notes
            .iter()
            .any(|(p, n)| p.line == 10 && n.contains("skipped")),
        "{:?}",
        got.notes
    );
}
