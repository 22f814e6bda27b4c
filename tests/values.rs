//! Sample values leave the program as Prometheus writes them: `+Inf`/`-Inf`, never
//! `null` (which reads as "no data"). End to end against the real Prometheus.

use crate::harness::{prometheus, start, Scratch};
use serde_json::Value;
use std::time::Duration;

/// Prometheus itself evaluates `vector(1) / 0` to +Inf and `vector(-1) / 0` to -Inf: the
/// `--events` stream, report.json, report.md and the rollback's `ROLLWATCH_VALUE` must
/// all say so.
#[test]
fn infinite_values_are_written_as_prometheus_writes_them() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(
        r#"watch:
  duration: 40s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo value=$ROLLWATCH_VALUE >> @DIR@/actions.log"]
  timeout: 30s
rules:
  - name: neg
    query: vector(-1) / 0
    below: -0.5
    for: 0s
    action: notify
  - name: inf
    query: vector(1) / 0
    above: 0.5
    for: 2s
"#,
    );
    let events = s.path("events.jsonl");
    let report = s.path("report");
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--events",
        events.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());

    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let value_of = |event: &str, rule: &str| {
        lines
            .iter()
            .find(|v| v["event"] == event && v["rule"] == rule)
            .unwrap_or_else(|| panic!("no {event} of {rule} in {lines:#?}"))["value"]
            .clone()
    };
    assert_eq!(value_of("pending", "inf"), "+Inf");
    assert_eq!(value_of("fired", "inf"), "+Inf");
    assert_eq!(value_of("fired", "neg"), "-Inf");
    assert_eq!(value_of("notify", "neg"), "-Inf");

    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    let rule = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "inf")
        .unwrap();
    let samples = rule["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{doc:#}");
    assert!(
        samples
            .iter()
            .all(|s| s["value"] == "+Inf" && s["series"][0]["value"] == "+Inf"),
        "{samples:#?}"
    );
    assert_eq!(rule["transitions"][1]["value"], "+Inf", "{rule:#}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| +Inf |"), "{md}");
    assert!(md.contains("| -Inf |"), "{md}");

    assert_eq!(s.lines("actions.log"), ["value=+Inf"]);
}
