//! The test file's shape: the issue's example loads; mistakes are reported with
//! their line and column.

use super::*;

const EXAMPLE: &str = r#"rule_files: [../rules/payments.yaml]
evaluation_interval: 15s
tests:
  - name: duplicate charges roll back at once
    interval: 15s
    vars: {service: payments, version: "2026.11.3"}
    input_series:
      - series: payment_duplicate_charges_total{service="payments",version="2026.11.3"}
        values: "0x20 1+1x20"
    expect:
      outcome: rolled_back
      actions: [{action: rollback, rule: duplicate-charges, at: 5m15s}]
      rules: [{rule: failed-payments, pending_at: null}]
"#;

#[test]
fn the_example_loads() {
    let f = load_str("t.yaml", EXAMPLE).unwrap();
    assert_eq!(f.rule_files[0].0, "../rules/payments.yaml");
    assert_eq!(f.evaluation_interval, Some(Duration::from_secs(15)));
    let t = &f.tests[0];
    assert_eq!(t.interval, Duration::from_secs(15));
    assert_eq!(t.vars[1], ("version".into(), "2026.11.3".into()));
    assert_eq!(t.input[0].name, "payment_duplicate_charges_total");
    assert_eq!(t.input[0].labels.len(), 2);
    assert_eq!(t.input[0].points.len(), 42);
    assert_eq!(t.expect.outcome.as_deref(), Some("rolled_back"));
    assert_eq!(
        t.expect.actions.as_ref().unwrap()[0].at,
        Duration::from_secs(315)
    );
    assert_eq!(t.expect.rules[0].pending_at, Some(None));
}

fn errors(text: &str) -> Vec<(String, u64, u64)> {
    load_str("t.yaml", text)
        .unwrap_err()
        .diagnostics
        .into_iter()
        .map(|d| {
            let p = d.pos.unwrap_or_default();
            (d.message, p.line, p.column)
        })
        .collect()
}

#[test]
fn every_mistake_is_reported_where_it_is() {
    let bad = EXAMPLE
        .replace("0x20 1+1x20", "0x20 1+1")
        .replace("outcome: rolled_back", "outcome: rolledback")
        .replace("interval: 15s\n    vars", "intervall: 15s\n    vars");
    let e = errors(&bad);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].0.contains("unknown key `intervall`"), "{e:?}");
    assert_eq!((e[0].1, e[0].2), (5, 5));
    assert!(e[1].0.contains("`1+1`"), "{e:?}");
    assert_eq!((e[1].1, e[1].2), (9, 23));
    assert!(e[2].0.contains("unknown outcome `rolledback`"), "{e:?}");
    assert_eq!(e[2].1, 11);
}

#[test]
fn a_series_is_a_name_with_equal_labels() {
    assert!(selector("up{job=~\"a\"}").is_err());
    assert!(selector("rate(x[5m])").is_err());
    assert!(selector("{job=\"a\"}").is_err());
    assert_eq!(
        selector("{__name__=\"up\",b=\"2\",a=\"1\"}").unwrap(),
        (
            "up".into(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        )
    );
}

#[test]
fn a_name_that_would_write_other_samples_and_a_label_given_twice_are_refused() {
    // Written as it is into the backfilled OpenMetrics: a line break in `__name__`
    // would add a sample the test never gave.
    for text in [
        "{__name__=\"x 1 0\\nevil\"}",
        "{__name__=\"a b\"}",
        "{__name__=\"x{y}\"}",
        "{__name__=\"1up\"}",
        "{__name__=\"up\",__name__=\"x\\ny\"}",
    ] {
        let e = selector(text).unwrap_err();
        assert!(e.contains("not a Prometheus metric name"), "{text}: {e}");
    }
    assert!(selector("{__name__=\"job:up:rate5m\"}").is_ok());
    let e = selector("up{a=\"1\",a=\"2\"}").unwrap_err();
    assert!(e.contains("label `a` is given twice"), "{e}");
}
