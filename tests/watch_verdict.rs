//! What a watch's verdict means, against the real Prometheus: pause and rollback
//! together, a pause that fails or takes long, rules that were never judged or never
//! returned data, and two rules firing on one tick. Each test owns its series
//! `rw_value{test="verdict-<name>-<rule>"}`.

use crate::harness::rule_file::{rule_file, series};
use crate::harness::{now_ms, prometheus, start, Scratch};
use nix::sys::signal::Signal;
use std::time::Duration;

/// A rule file whose rules each watch their own series (`<test>-<rule name>`), unless
/// the rule's body gives its own `query:`. The commands append a line each to
/// @DIR@/actions.log.
fn file(test: &str, watch: &str, pause: &str, rules: &[(&str, &str)]) -> String {
    let mut f = rule_file()
        .watch(watch)
        .rollback(
            "echo rollback $ROLLWATCH_RULE >> @DIR@/actions.log",
            Some("30s"),
        )
        .pause(pause, Some("30s"));
    for (name, body) in rules {
        let query = (!body.contains("query:")).then(|| series(&format!("{test}-{name}")));
        f = f.rule(name, query.as_deref(), body);
    }
    f.build()
}

const PAUSE_OK: &str = "echo pause $ROLLWATCH_RULE >> @DIR@/actions.log";
const PAUSE_FAILS: &str = "echo pause $ROLLWATCH_RULE >> @DIR@/actions.log; exit 7";

fn set(test: &str, rule: &str, v: f64) {
    let prom = prometheus();
    let s = format!("rw_value{{test=\"{test}-{rule}\"}}");
    prom.exporter.set(&s, v);
    prom.await_value(&s, |x| x == Some(v));
}

fn watch(s: &Scratch, text: &str) -> crate::harness::Running {
    let file = s.rules(text);
    start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ])
}

#[test]
fn a_failed_pause_keeps_watching_and_a_rollback_still_acts() {
    let t = "verdict-pausefail";
    set(t, "p", 0.9);
    set(t, "r", 0.1);
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 60s\n  interval: 1s",
            PAUSE_FAILS,
            &[
                ("p", "    above: 0.5\n    for: 0s\n    action: pause"),
                ("r", "    above: 0.5\n    for: 2s"),
            ],
        ),
    );
    w.await_event_where("action_finished", Duration::from_secs(10), |e| {
        e["action"] == "pause"
    });
    // The failed pause did not end the watch: rollback protection remains.
    set(t, "r", 0.9);
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert_eq!(
        s.lines("actions.log"),
        vec!["pause p".to_string(), "rollback r".to_string()]
    );
    assert_eq!(w.events("pause_failed").len(), 1, "{}", w.dump());
}

#[test]
fn a_failed_pause_ends_pause_failed_after_the_full_window() {
    let t = "verdict-pausefail-end";
    set(t, "p", 0.9);
    let s = Scratch::new();
    let started = now_ms();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 5s\n  interval: 1s",
            PAUSE_FAILS,
            &[("p", "    above: 0.5\n    for: 0s\n    action: pause")],
        ),
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 3, "{}", w.dump());
    let finished = w.await_event("watch_finished", Duration::from_secs(1));
    assert_eq!(finished["outcome"], "pause_failed");
    assert!(
        now_ms() >= started + 5000,
        "watched the whole window after the pause failed"
    );
}

#[test]
fn pause_then_rollback() {
    let t = "verdict-pause-rollback";
    set(t, "p", 0.9);
    set(t, "r", 0.1);
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 60s\n  interval: 1s",
            PAUSE_OK,
            &[
                ("p", "    above: 0.5\n    for: 0s\n    action: pause"),
                ("r", "    above: 0.5\n    for: 1s"),
            ],
        ),
    );
    w.await_event_where("action_finished", Duration::from_secs(10), |e| {
        e["action"] == "pause"
    });
    set(t, "r", 0.9);
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert_eq!(
        s.lines("actions.log"),
        vec!["pause p".to_string(), "rollback r".to_string()]
    );
}

#[test]
fn a_second_pause_is_skipped() {
    let t = "verdict-pause-twice";
    set(t, "p1", 0.9);
    set(t, "p2", 0.1);
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 8s\n  interval: 1s",
            PAUSE_OK,
            &[
                ("p1", "    above: 0.5\n    for: 0s\n    action: pause"),
                ("p2", "    above: 0.5\n    for: 0s\n    action: pause"),
            ],
        ),
    );
    w.await_event_where("action_finished", Duration::from_secs(10), |e| {
        e["action"] == "pause"
    });
    set(t, "p2", 0.9);
    w.await_event("pause_skipped", Duration::from_secs(10));
    assert_eq!(w.wait(Duration::from_secs(30)), 5, "{}", w.dump());
    assert_eq!(s.lines("actions.log"), vec!["pause p1".to_string()]);
}

#[test]
fn a_signal_during_a_pause_lets_it_finish_then_stops() {
    let t = "verdict-pause-signal";
    set(t, "p", 0.9);
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 60s\n  interval: 1s",
            "echo pause start >> @DIR@/actions.log; sleep 2; echo pause end >> @DIR@/actions.log",
            &[("p", "    above: 0.5\n    for: 0s\n    action: pause")],
        ),
    );
    w.await_event("action_started", Duration::from_secs(10));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait(Duration::from_secs(30)), 143, "{}", w.dump());
    assert_eq!(
        s.lines("actions.log"),
        vec!["pause start".to_string(), "pause end".to_string()],
        "the pause ran to its end"
    );
    let sig = w.events("signal");
    assert_eq!(sig.len(), 1, "{}", w.dump());
}

#[test]
fn two_rules_firing_on_one_tick_roll_back_once() {
    let t = "verdict-two-rules";
    set(t, "shared", 0.9);
    let s = Scratch::new();
    let q = format!("    query: rw_value{{test=\"{t}-shared\"}}\n");
    let body = format!("{q}    above: 0.5\n    for: 0s");
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 60s\n  interval: 1s",
            PAUSE_OK,
            &[("r1", &body), ("r2", &body)],
        ),
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert_eq!(
        s.lines("actions.log").len(),
        1,
        "{:?}",
        s.lines("actions.log")
    );
    assert_eq!(w.events("action_started").len(), 1);
}

#[test]
fn a_rule_never_judged_makes_the_watch_inconclusive() {
    // `r` is healthy at every poll; `broken` fails at every poll (a many-to-many match
    // that Prometheus refuses to execute). The watch used to end healthy.
    let t = "verdict-never-judged";
    set(t, "r", 0.1);
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 4s\n  interval: 1s",
            PAUSE_OK,
            &[
                ("r", "    above: 0.5\n    for: 0s"),
                (
                    "broken",
                    "    query: rw_value + on(job) rw_value\n    above: 0.5\n    for: 0s",
                ),
            ],
        ),
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 4, "{}", w.dump());
    let f = w.await_event("watch_finished", Duration::from_secs(1));
    assert_eq!(f["outcome"], "inconclusive");
    let detail = f["message"].as_str().unwrap_or_default().to_string() + &f.to_string();
    assert!(detail.contains("`broken`"), "names the rule: {f}");
}

#[test]
fn a_rule_that_never_returned_data_is_warned_about() {
    let t = "verdict-no-data";
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 3s\n  interval: 1s",
            PAUSE_OK,
            &[("renamed", "    above: 0.5\n    for: 0s")],
        ),
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    assert_eq!(w.events("never_data").len(), 1, "{}", w.dump());
    let f = w.await_event("watch_finished", Duration::from_secs(1));
    assert!(f.to_string().contains("WARNING"), "{f}");
    assert!(f.to_string().contains("`renamed`"), "{f}");
}

#[test]
fn expect_data_makes_a_rule_without_data_inconclusive() {
    let t = "verdict-expect-data";
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 3s\n  interval: 1s",
            PAUSE_OK,
            &[(
                "renamed",
                "    above: 0.5\n    for: 0s\n    expect_data: true",
            )],
        ),
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 4, "{}", w.dump());
    let f = w.await_event("watch_finished", Duration::from_secs(1));
    assert_eq!(f["outcome"], "inconclusive", "{f}");
}

#[test]
fn a_slow_pause_does_not_make_the_watch_blind() {
    // The pause takes longer than max_blind; the polls taken meanwhile succeeded and
    // waited in the queue. The watch used to end inconclusive right after the pause.
    let t = "verdict-slow-pause";
    set(t, "p", 0.9);
    let s = Scratch::new();
    let mut w = watch(
        &s,
        &file(
            t,
            "  duration: 9s\n  interval: 1s\n  max_blind: 2s",
            "sleep 4; echo pause $ROLLWATCH_RULE >> @DIR@/actions.log",
            &[("p", "    above: 0.5\n    for: 0s\n    action: pause")],
        ),
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 5, "paused: {}", w.dump());
    assert!(w.events("blind").is_empty(), "{}", w.dump());
}
