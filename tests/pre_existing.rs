//! Breaches that began before the deploy (issue 22, `pre_existing:`), against the real
//! binary and a real Prometheus scraping a series the test controls: the series
//! breaches, Prometheus holds it breaching for longer than the rule's `for`, and only
//! then does the watch begin. Each mode against that breach: `judge` acts as before
//! (saying the breach was there first), `ignore` never acts on it (a new breach after
//! it resolved is the release's, and acts), `improve` does not act while the value
//! stays within its margin of before the deploy, and acts once it gets worse.

use crate::harness::rule_file::{logged_actions, logging_actions, series};
use crate::harness::{now_ms, prometheus, start, Running, Scratch};
use std::time::Duration;

/// Sets the test's series to `value` and returns once Prometheus has held it there
/// for 8s, more than the rules' `for` (at most 4s) and a step: the watch then begins
/// into a breach that began before it.
fn breaching_before_the_watch(name: &str, value: f64) {
    let p = prometheus();
    let q = series(name);
    p.exporter.set(&q, value);
    p.await_value(&q, |v| v == Some(value));
    let held = format!("min_over_time({q}[8s]) == max_over_time({q}[8s])");
    let since = format!("count_over_time({q}[8s])");
    p.await_value(&since, |v| v.is_some_and(|n| n >= 8.0));
    p.await_value(&held, |v| v == Some(value));
}

/// A watch of `r`: above 0.5 for 3s, polled every second, with `mode` (`""`: none).
fn watch(s: &Scratch, name: &str, mode: &str, duration: &str) -> Running {
    let rule = format!("    above: 0.5\n    for: 3s\n    interval: 1s\n{mode}");
    let file = s.rules(&logging_actions(
        name,
        &rule,
        &format!("  duration: {duration}\n  interval: 1s"),
    ));
    start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ])
}

fn set(name: &str, value: f64) -> u64 {
    let at = now_ms();
    prometheus().exporter.set(&series(name), value);
    at
}

/// The one `pre_existing` event of the watch: its mode and sentence.
fn pre_existing(w: &Running) -> (String, String) {
    let e = w.await_event("pre_existing", Duration::from_secs(10));
    assert_eq!(e["rule"], "r", "{e}");
    (
        e["mode"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn fired_at(e: &serde_json::Value) -> u64 {
    e["unix_ms"].as_u64().unwrap_or_default()
}

#[test]
fn judge_acts_on_a_breach_that_began_before_the_watch_and_says_so() {
    let name = "pre-judge";
    breaching_before_the_watch(name, 0.8);
    let s = Scratch::new();
    let started = now_ms();
    let mut w = watch(&s, name, "", "20s");
    let (mode, message) = pre_existing(&w);
    assert_eq!(mode, "judge", "{}", w.dump());
    assert!(
        message.contains("at worst 0.8") && message.contains("judged as any breach"),
        "{message}"
    );
    let fired = w.await_event("fired", Duration::from_secs(15));
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    // As before this key: `for` counts from the watch's start.
    assert!(fired_at(&fired) >= started + 3000, "{fired}");
    assert_eq!(logged_actions(&s).len(), 1, "{:?}", logged_actions(&s));
}

#[test]
fn ignore_never_acts_on_it_and_a_breach_after_it_resolved_is_the_releases() {
    let name = "pre-ignore";
    breaching_before_the_watch(name, 0.8);
    let s = Scratch::new();
    let mut w = watch(&s, name, "    pre_existing: ignore\n", "40s");
    let (mode, _) = pre_existing(&w);
    assert_eq!(mode, "ignore", "{}", w.dump());
    // Worse still, for well over `for`: never pending, never acted on.
    let worse = set(name, 5.0);
    w.await_event_where("poll", Duration::from_secs(10), |e| {
        e["rule"] == "r" && e["value"].as_str() == Some("5")
    });
    while now_ms() < worse + 5000 {
        w.await_event_where("poll", Duration::from_secs(5), |e| e["rule"] == "r");
    }
    assert!(w.events("pending").is_empty(), "{}", w.dump());
    assert!(w.events("fired").is_empty(), "{}", w.dump());
    assert!(logged_actions(&s).is_empty(), "{:?}", logged_actions(&s));
    // It resolves: the breach from before is over...
    set(name, 0.2);
    w.await_event("pre_existing_over", Duration::from_secs(10));
    // ...and a new one is the release's: it acts after `for`.
    let again = set(name, 0.8);
    let fired = w.await_event("fired", Duration::from_secs(15));
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert!(fired_at(&fired) >= again + 3000, "{fired}");
    assert_eq!(logged_actions(&s).len(), 1, "{:?}", logged_actions(&s));
}

#[test]
fn improve_acts_only_once_the_value_gets_worse_than_before_by_its_margin() {
    let name = "pre-improve";
    breaching_before_the_watch(name, 0.8);
    let s = Scratch::new();
    let mut w = watch(&s, name, "    pre_existing: {improve: 50%}\n", "40s");
    let (mode, message) = pre_existing(&w);
    assert_eq!(mode, "improve 50%", "{}", w.dump());
    assert!(message.contains("more than 50% worse"), "{message}");
    // Worse, but within 50% of 0.8 (up to 1.2), for well over `for`: nothing.
    let within = set(name, 1.1);
    w.await_event_where("poll", Duration::from_secs(10), |e| {
        e["rule"] == "r" && e["value"].as_str() == Some("1.1")
    });
    while now_ms() < within + 5000 {
        w.await_event_where("poll", Duration::from_secs(5), |e| e["rule"] == "r");
    }
    assert!(w.events("pending").is_empty(), "{}", w.dump());
    assert!(w.events("fired").is_empty(), "{}", w.dump());
    // Worse than before the deploy by more than the margin: acts, after `for`.
    let worse = set(name, 2.0);
    let fired = w.await_event("fired", Duration::from_secs(15));
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert!(fired_at(&fired) >= worse + 3000, "{fired}");
    assert!(
        fired["message"]
            .as_str()
            .is_some_and(|m| m.contains("before_deploy=0.8")),
        "{fired}"
    );
    assert_eq!(logged_actions(&s).len(), 1, "{:?}", logged_actions(&s));
}

/// `gate --rules`: a breach that held through its rule's `for` is named pre-existing;
/// it blocks under `judge`, and under `ignore` (or `improve`) the release may go out
/// into it (it may be its fix).
#[test]
fn gate_names_pre_existing_breaches_and_lets_a_fix_go_out_into_them() {
    let name = "pre-gate";
    breaching_before_the_watch(name, 0.8);
    let s = Scratch::new();
    let cal = s.path("open.yaml");
    std::fs::write(&cal, "timezone: UTC\nfreezes: []\n").unwrap();
    let gate = |mode: &str| {
        let file = s.rules(&logging_actions(
            name,
            &format!("    above: 0.5\n    for: 3s\n    interval: 1s\n{mode}"),
            "  duration: 1m\n  interval: 1s",
        ));
        crate::harness::run(&[
            "gate",
            "--calendar",
            cal.to_str().unwrap(),
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prometheus().url,
        ])
    };
    let (code, stdout, stderr) = gate("");
    assert_eq!(code, 6, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("[blocks] rule `r` is breached now (0.8; breached when > 0.5), and was through its `for` before now: pre-existing; pre_existing: judge"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule `r`: 0.8 (breached when > 0.5) BREACHED, pre-existing: breaching through its `for` (3s) before now (pre_existing: judge)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = gate("    pre_existing: ignore\n");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("[ok] rule `r` is breached now (0.8; breached when > 0.5), and was through its `for` before now: pre-existing; pre_existing: ignore: never acted on while it lasts; a release may go out into it"),
        "{stdout}"
    );
}

/// The agent reads a watch's breaches before it once, and a restart carries over only
/// those still running: through a kill -9 the pre-existing breach stays ignored; once
/// it resolved, a new breach is the release's, and a kill -9 while it is pending does
/// not carry it over again (it rolls back, once).
#[test]
fn the_agent_keeps_the_reading_across_restarts_and_never_carries_over_an_ended_breach() {
    use crate::harness::agent::{pending, rules, Agent, ROLLBACK};
    use serde_json::json;
    let name = "pre-agent";
    breaching_before_the_watch(name, 0.8);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules(
            "    above: 0.5\n    for: 4s\n    pre_existing: ignore",
            ROLLBACK,
        ),
    );
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": name}, "id": "pa-1"}));
    assert_eq!(status, 201, "{w}");
    let said = |a: &Agent| {
        a.proc
            .as_ref()
            .unwrap()
            .await_event("pre_existing", Duration::from_secs(10))
    };
    said(&a);
    a.kill9();
    a.start();
    // Carried over again from the store, and still never acted on.
    said(&a);
    let back = now_ms();
    while now_ms() < back + 6000 {
        let (_, w) = a.req("GET", "/api/v1/watches/pa-1", None);
        assert_eq!(w["state"], "running", "{w}\n{}", a.dump());
        assert!(!pending(&w), "{w}\n{}", a.dump());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(a.actions().is_empty(), "{:?}", a.actions());
    // It resolves; a new breach goes pending, and the agent dies meanwhile.
    set(name, 0.2);
    a.proc
        .as_ref()
        .unwrap()
        .await_event("pre_existing_over", Duration::from_secs(10));
    set(name, 0.9);
    a.await_watch("pa-1", Duration::from_secs(10), pending);
    a.kill9();
    a.start();
    let w = a.await_finished("pa-1", Duration::from_secs(40));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
    assert!(
        a.proc.as_ref().unwrap().events("pre_existing").is_empty(),
        "nothing is carried over after it ended:\n{}",
        a.dump()
    );
}
