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
        check: true,
        ..Default::default()
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
    // `X * on() group_left() Y >= 0.75`: inclusive, so the expression as written
    // (rollwatch's `above` is strict; issue 23).
    let r = rule(&spec, "CheckoutLatencyByNode");
    assert!(r.threshold.present);
    assert!(r.query.contains("group_left (node)"), "{}", r.query);
    assert!(r.query.ends_with(">= 0.75"), "{}", r.query);
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

/// Values every 15s from `base`: `rw_imp{svc="checkout"}` is 0.9 from +600s to +1200s,
/// `rw_imp{svc="other"}` from +300s to +1500s; 0.1 otherwise.
const STEP: i64 = 15;
const POINTS: i64 = 120;

fn imp_value(svc: &str, t: i64) -> f64 {
    let (from, to) = if svc == "checkout" {
        (600, 1200)
    } else {
        (300, 1500)
    };
    if (from..to).contains(&t) {
        0.9
    } else {
        0.1
    }
}

const ALERTS: &str = r#"groups:
  - name: imp
    interval: 15s
    rules:
      - alert: ImpHigh
        expr: rw_imp > 0.5
        for: 2m
"#;

/// Prometheus's own rule engine (`promtool test rules`) on the same series: the alert
/// for each series fires exactly at `fires[svc]`, not one evaluation earlier.
fn promtool_says_fires_at(dir: &std::path::Path, fires: &[(&str, i64)]) {
    std::fs::write(dir.join("alerts.yaml"), ALERTS).unwrap();
    let mut series = String::new();
    for svc in ["checkout", "other"] {
        let values: Vec<String> = (0..POINTS)
            .map(|i| imp_value(svc, i * STEP).to_string())
            .collect();
        series.push_str(&format!(
            "      - series: 'rw_imp{{svc=\"{svc}\"}}'\n        values: '{}'\n",
            values.join(" ")
        ));
    }
    // At each series' fire time and one evaluation before it: exactly the series
    // firing by then.
    let mut checks = String::new();
    let mut times: Vec<i64> = fires.iter().flat_map(|(_, t)| [*t - STEP, *t]).collect();
    times.sort();
    for t in times {
        checks.push_str(&format!(
            "      - eval_time: {t}s\n        alertname: ImpHigh\n        exp_alerts:\n"
        ));
        let firing: Vec<&str> = fires
            .iter()
            .filter(|(_, at)| *at <= t)
            .map(|(s, _)| *s)
            .collect();
        if firing.is_empty() {
            checks.push_str("          []\n");
        }
        for svc in firing {
            checks.push_str(&format!("          - exp_labels: {{svc: {svc}}}\n"));
        }
    }
    let test = format!(
        "rule_files: [alerts.yaml]\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n{series}    alert_rule_test:\n{checks}"
    );
    std::fs::write(dir.join("alerts_test.yaml"), &test).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", "alerts_test.yaml"])
        .current_dir(dir)
        .output()
        .expect("run promtool (apt-get install -y prometheus)");
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same series backfilled into a real Prometheus; its address and `base`.
fn backfilled(dir: &std::path::Path) -> (String, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = (now - 2 * 3600) / 60 * 60;
    let mut om = String::from("# HELP rw_imp Import test history.\n# TYPE rw_imp gauge\n");
    for svc in ["checkout", "other"] {
        for i in 0..POINTS {
            let t = i * STEP;
            om.push_str(&format!(
                "rw_imp{{svc=\"{svc}\"}} {} {}\n",
                imp_value(svc, t),
                base + t
            ));
        }
    }
    // What Prometheus itself writes while `ImpHigh` fires for checkout (+720s..+1200s).
    om.push_str("# HELP ALERTS Alerts.\n# TYPE ALERTS gauge\n");
    for i in 0..POINTS {
        let t = i * STEP;
        if (720..1200).contains(&t) {
            om.push_str(&format!(
                "ALERTS{{alertname=\"ImpHigh\",alertstate=\"firing\",svc=\"checkout\"}} 1 {}\n",
                base + t
            ));
        }
    }
    om.push_str("# EOF\n");
    let input = dir.join("history.om");
    std::fs::write(&input, om).unwrap();
    let data = dir.join("data");
    let out = std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = crate::harness::spawn_prometheus(dir, "global:\n  scrape_interval: 1m\n", &data);
    (format!("http://{addr}"), base)
}

/// Issue 14: an imported rule, replayed over the history Prometheus's own alert was
/// tested on, fires at the same evaluation, for the same series; with `--match`, for
/// the matched series only. An `alert:` rule fires while the ALERTS series does.
#[test]
fn issue_14_replay_of_an_imported_rule_fires_where_prometheus_fired() {
    let s = Scratch::new();
    // checkout breaches from +600s, `for: 2m`; other from +300s.
    promtool_says_fires_at(s.dir.path(), &[("other", 420), ("checkout", 720)]);
    let (url, base) = backfilled(s.dir.path());
    let alerts = s.path("alerts.yaml").display().to_string();
    for (matched, svc, at) in [
        (None, "other", 420),
        (Some("svc=checkout"), "checkout", 720),
    ] {
        let mut args = vec!["import", alerts.as_str()];
        if let Some(m) = matched {
            args.extend(["--match", m]);
        }
        let (code, imported, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        let file = s.path("imported.yaml");
        std::fs::write(&file, &imported).unwrap();
        let (code, stdout, stderr) = run(&[
            "replay",
            "--rules",
            &file.display().to_string(),
            "--prometheus",
            &url,
            "--from",
            &base.to_string(),
            "--to",
            &(base + 1800).to_string(),
            "--format",
            "json",
        ]);
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}\n{imported}"));
        assert_eq!(code, 1, "{doc:#}");
        let rule = &doc["rules"][0];
        let fired: jiff::Timestamp = rule["fired_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(fired.as_second() - base, at, "{matched:?}: {doc:#}");
        assert_eq!(rule["labels"]["svc"], svc, "{doc:#}");
    }

    // `alert: ImpHigh` reads the ALERTS series Prometheus keeps for that alert.
    for (labels, code, at) in [("svc: checkout", 1, Some(720)), ("svc: other", 0, None)] {
        let file = s.path("alert.yaml");
        std::fs::write(
            &file,
            format!(
                "watch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: imp-high\n    alert: ImpHigh\n    labels: {{{labels}}}\n    for: 0s\n"
            ),
        )
        .unwrap();
        let (got, stdout, stderr) = run(&[
            "replay",
            "--rules",
            &file.display().to_string(),
            "--prometheus",
            &url,
            "--from",
            &base.to_string(),
            "--to",
            &(base + 1800).to_string(),
            "--format",
            "json",
        ]);
        let doc: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        assert_eq!(got, code, "{labels}: {doc:#}");
        let fired = doc["rules"][0]["fired_at"]
            .as_str()
            .map(|t| t.parse::<jiff::Timestamp>().unwrap().as_second() - base);
        assert_eq!(fired, at, "{labels}: {doc:#}");
    }
}
