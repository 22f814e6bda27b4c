//! `rollwatch watch` against a real Prometheus scraping an exporter the test controls
//! (the scenarios also run on VictoriaMetrics are in `scenarios.rs`).
//! Each test owns one series, `rw_value{test="<name>"}`.

use crate::harness::rule_file::{logged_actions, logging_actions as rules, series};
use crate::harness::{prometheus, start, Scratch};
use nix::sys::signal::Signal;
use std::time::Duration;

/// (action, unix ms) of each line of actions.log.
fn action_times(s: &Scratch) -> Vec<(String, u64)> {
    logged_actions(s)
        .into_iter()
        .map(|(a, _, t)| (a, t))
        .collect()
}

#[test]
fn no_data_breach_rolls_back_when_the_series_is_absent() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(&rules(
        "never-exported",
        "    above: 0.5\n    for: 3s\n    interval: 1s\n    no_data: breach",
        "  duration: 30s\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    let pending = w.await_event("pending", Duration::from_secs(10));
    assert_eq!(pending["value"], "no data");
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert_eq!(action_times(&s).len(), 1);
}

#[test]
fn pause_runs_once_and_exits_5() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "pause";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let file = s.rules(&rules(
        name,
        "    above: 0.5\n    for: 0s\n    interval: 1s\n    action: pause",
        "  duration: 6s\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(30)), 5, "{}", w.dump());
    let actions = action_times(&s);
    assert_eq!(
        actions.len(),
        1,
        "the pause runs once though the breach lasts: {actions:?}"
    );
    assert_eq!(actions[0].0, "pause");
    assert!(
        w.events("poll").len() >= 4,
        "it kept watching after the pause"
    );
}

#[test]
fn failing_rollback_command_exits_3() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "failing";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let yaml = rules(
        name,
        "    above: 0.5\n    for: 0s\n    interval: 1s",
        "  duration: 30s\n  interval: 1s",
    )
    .replace(
        r#"command: ["sh", "-c", "echo rollback"#,
        r#"command: ["sh", "-c", "echo failing >&2; exit 7; echo rollback"#,
    );
    let file = s.rules(&yaml);
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    let finished = w.await_event("action_finished", Duration::from_secs(10));
    assert_eq!(finished["status"], "failed with exit code 7");
    assert_eq!(w.wait(Duration::from_secs(10)), 3, "{}", w.dump());
    assert_eq!(
        w.events("action_started").len(),
        1,
        "no second rollback after a failure"
    );
}

#[test]
fn sigterm_during_a_pending_breach_runs_nothing_and_exits_143() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "sigterm";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let file = s.rules(&rules(
        name,
        "    above: 0.5\n    for: 60s\n    interval: 1s",
        "  duration: 5m\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    w.await_event("pending", Duration::from_secs(10));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait(Duration::from_secs(10)), 143, "{}", w.dump());
    assert!(s.lines("actions.log").is_empty());
}

#[test]
fn sigint_exits_130() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(&rules(
        "sigint",
        "    above: 0.5\n    for: 60s\n    interval: 1s",
        "  duration: 5m\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    w.await_event("poll", Duration::from_secs(10));
    w.signal(Signal::SIGINT);
    assert_eq!(w.wait(Duration::from_secs(10)), 130, "{}", w.dump());
}

#[test]
fn sigterm_during_the_rollback_lets_it_finish() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "sigterm-rollback";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    // The rollback waits for a file the test creates after signalling.
    let yaml = rules(
        name,
        "    above: 0.5\n    for: 0s\n    interval: 1s",
        "  duration: 30s\n  interval: 1s",
    )
    .replace(
        r#"command: ["sh", "-c", "echo rollback"#,
        r#"command: ["sh", "-c", "while [ ! -e @DIR@/go ]; do sleep 0.05; done; echo rollback"#,
    );
    let file = s.rules(&yaml);
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    w.await_event("action_started", Duration::from_secs(10));
    w.signal(Signal::SIGTERM);
    w.await_event("signal", Duration::from_secs(5));
    std::fs::write(s.path("go"), "").unwrap();
    assert_eq!(
        w.wait(Duration::from_secs(10)),
        1,
        "the rollback finished and is reported: {}",
        w.dump()
    );
    assert_eq!(action_times(&s).len(), 1);
}

#[test]
fn unreachable_prometheus_is_inconclusive() {
    let s = Scratch::new();
    let file = s.rules(&rules(
        "unreachable",
        "    above: 0.5\n    for: 0s\n    interval: 1s\n    no_data: breach",
        "  duration: 60s\n  interval: 1s\n  max_blind: 3s",
    ));
    let port = crate::harness::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(20)), 4, "{}", w.dump());
    assert!(!w.events("query_failed").is_empty());
    assert!(
        s.lines("actions.log").is_empty(),
        "errors never count as breaches"
    );
}

#[test]
fn set_value_with_promql_syntax_cannot_alter_the_query() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(&rules(
        "inject",
        "    above: 0.5\n    for: 0s\n    interval: 1s",
        "  duration: 4s\n  interval: 1s",
    ));
    // Unescaped, this would turn the query into `rw_value{test="x"} or vector(1)`,
    // whose value 1 breaches at once.
    let evil = r#"test=x"} or vector(1) or rw_value{test="y"#;
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--set",
        evil,
    ]);
    assert_eq!(w.wait(Duration::from_secs(20)), 0, "{}", w.dump());
    assert!(w.events("fired").is_empty());
    assert!(s.lines("actions.log").is_empty());
    let polls = w.events("poll");
    assert!(
        !polls.is_empty() && polls.iter().all(|p| p["state"] == "no data"),
        "{}",
        w.dump()
    );
}

#[test]
fn multi_series_rule_fires_for_the_breaching_series() {
    let prom = prometheus();
    let s = Scratch::new();
    prom.exporter.set("rw_value{test=\"multi\",pod=\"a\"}", 0.1);
    prom.exporter.set("rw_value{test=\"multi\",pod=\"b\"}", 0.9);
    prom.await_value("rw_value{test=\"multi\",pod=\"b\"}", |v| v == Some(0.9));
    let file = s.rules(&rules(
        "multi",
        "    above: 0.5\n    for: 2s\n    interval: 1s",
        "  duration: 30s\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    let fired = w.await_event("fired", Duration::from_secs(15));
    assert!(
        fired["labels"].as_str().unwrap().contains(r#""pod":"b""#),
        "{fired}"
    );
    assert_eq!(w.wait(Duration::from_secs(10)), 1);
    assert_eq!(action_times(&s).len(), 1);
}

#[test]
fn dry_run_decides_but_runs_nothing() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "dry";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let file = s.rules(&rules(
        name,
        "    above: 0.5\n    for: 0s\n    interval: 1s",
        "  duration: 30s\n  interval: 1s",
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--dry-run",
    ]);
    assert_eq!(w.wait(Duration::from_secs(15)), 1, "{}", w.dump());
    assert_eq!(w.events("action_skipped").len(), 1);
    assert!(s.lines("actions.log").is_empty());
}

#[test]
fn missing_rollback_program_refuses_to_start() {
    let s = Scratch::new();
    let yaml = rules(
        "missing",
        "    above: 0.5\n    for: 0s",
        "  duration: 30s\n  interval: 1s",
    )
    .replace(
        r#"command: ["sh", "-c", "echo rollback"#,
        r#"command: ["/nonexistent/kubectl", "-c", "echo rollback"#,
    );
    let file = s.rules(&yaml);
    let (code, _, stderr) = crate::harness::run(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/kubectl"), "{stderr}");
}
