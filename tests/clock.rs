//! Clock skew between the runner and Prometheus: polls ask about the runner's now, so
//! the binary runs under `faketime` (Debian package `faketime`) against the real
//! Prometheus, its wall clock shifted and its monotonic clock (the timers) left alone.

use crate::harness::rule_file::{rule_file, series};
use crate::harness::{bin, prometheus, Scratch};
use serde_json::Value;
use std::process::Command;

/// A healthy watch: `max_blind` 5m, the one rule never breached.
fn rules(duration: &str) -> String {
    rule_file()
        .watch(&format!(
            "  duration: {duration}\n  interval: 1s\n  max_blind: 5m"
        ))
        .rollback("echo rollback >> @DIR@/actions.log", None)
        .rule(
            "canary",
            Some(&series("canary")),
            "    above: 100\n    for: 0s\n    no_data: ok",
        )
        .build()
}

/// Runs `rollwatch watch` with its wall clock `offset` seconds off; returns the exit
/// code, the JSON log lines and the raw stderr.
fn watch_skewed(offset: i64, s: &Scratch, duration: &str) -> (i32, Vec<Value>, String) {
    let file = s.rules(&rules(duration));
    // Bounded by `timeout` (exit 124): a watch that does not refuse runs its duration.
    let out = Command::new("timeout")
        .args([
            "--signal=KILL",
            "60",
            "faketime",
            "-m",
            "--exclude-monotonic",
            "-f",
        ])
        .arg(format!("{offset:+}s"))
        .arg(bin())
        .args(["watch", "--rules", file.to_str().unwrap()])
        .args(["--prometheus", &prometheus().url, "--log-format=json"])
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .expect("run faketime (apt-get install -y faketime)");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.code().unwrap_or(-1), log, stderr)
}

fn events<'a>(log: &'a [Value], name: &str) -> Vec<&'a Value> {
    log.iter().filter(|v| v["event"] == name).collect()
}

#[test]
fn clock_ten_minutes_ahead_of_prometheus_refuses_to_watch() {
    let s = Scratch::new();
    let (code, log, stderr) = watch_skewed(600, &s, "10m");
    assert_eq!(code, 2, "{stderr}");
    let ahead: f64 = stderr
        .strip_prefix("error: this machine's clock is ")
        .and_then(|r| r.split_once("s ahead of Prometheus's"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no skew in the error: {stderr}"));
    assert!((ahead - 600.0).abs() < 1.0, "{ahead}s: {stderr}");
    assert!(
        stderr.contains("more than the watch's max_blind (5m)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("= help: sync this machine's clock"),
        "{stderr}"
    );
    assert!(
        events(&log, "watch_started").is_empty() && events(&log, "poll").is_empty(),
        "nothing ran: {stderr}"
    );
    assert!(s.lines("actions.log").is_empty());
}

#[test]
fn clock_a_few_seconds_off_warns_and_watches() {
    let s = Scratch::new();
    // Longer than the skew: a watch shorter than it would be refused.
    let (code, log, stderr) = watch_skewed(5, &s, "8s");
    assert_eq!(code, 0, "{stderr}");
    let skew = events(&log, "clock_skew");
    assert_eq!(skew.len(), 1, "{stderr}");
    assert_eq!(skew[0]["level"], "WARN", "{}", skew[0]);
    // Prometheus's clock minus ours: about -5s, give or take the round trip.
    let secs = skew[0]["skew_s"].as_f64().unwrap();
    let uncertainty = skew[0]["uncertainty_s"].as_f64().unwrap();
    assert!(
        (secs + 5.0).abs() <= uncertainty + 0.05,
        "skew {secs}s ±{uncertainty}s, expected -5s: {}",
        skew[0]
    );
    assert!(!events(&log, "poll").is_empty(), "it watched: {stderr}");
    let finished = events(&log, "watch_finished");
    assert_eq!(finished.len(), 1, "{stderr}");
    assert_eq!(finished[0]["outcome"], "healthy", "{}", finished[0]);
}

#[test]
fn clock_in_step_with_prometheus_says_nothing() {
    let s = Scratch::new();
    let (code, log, stderr) = watch_skewed(0, &s, "1s");
    assert_eq!(code, 0, "{stderr}");
    assert!(events(&log, "clock_skew").is_empty(), "{stderr}");
    assert!(events(&log, "clock_skew_unknown").is_empty(), "{stderr}");
}

#[test]
fn skew_longer_than_a_short_watch_refuses_it() {
    let s = Scratch::new();
    let (code, _, stderr) = watch_skewed(5, &s, "3s");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("more than the watch's whole duration (3s)"),
        "{stderr}"
    );
}

#[test]
fn failed_clock_measurement_is_logged_and_the_watch_goes_on() {
    use crate::harness::fake::{Fake, Reply};
    // The measurement fails; every poll succeeds.
    let fake = Fake::start_with_clock(
        vec![Reply::value(0.1)],
        Some(Reply::Http(503, "unavailable".into())),
    );
    let s = Scratch::new();
    let file = s.rules(&rules("2s"));
    let mut w = crate::harness::start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &fake.url,
    ]);
    assert_eq!(
        w.wait(std::time::Duration::from_secs(30)),
        0,
        "{}",
        w.dump()
    );
    let unknown = w.events("clock_skew_unknown");
    assert_eq!(unknown.len(), 1, "{}", w.dump());
    assert!(
        unknown[0]["error"].as_str().unwrap().contains("503"),
        "{}",
        unknown[0]
    );
    assert!(!w.events("poll").is_empty(), "{}", w.dump());
}
