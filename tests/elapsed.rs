//! `${watch.elapsed}` (issue 22) against a real Prometheus scraping a counter the test
//! controls: the counter rises before the deploy, the deploy resets it, and then the
//! real binary watches `increase(counter[${watch.elapsed}])`. The failures before the
//! deploy stay out of the window (a fixed window counts them and fires); failures
//! after the watch began are counted and roll back.

use crate::harness::rule_file::{logged_actions, rule_file, series};
use crate::harness::{prometheus, start, Running, Scratch};
use std::time::Duration;

/// The test's counter: it counts 50 failures of the old version, then the deploy
/// restarts the process and the counter starts again at 0. Returns once Prometheus
/// has scraped the reset, and a scrape more (so the watch begins after it).
fn counter_reset_by_the_deploy(name: &str) {
    let p = prometheus();
    let q = series(name);
    p.exporter.set(&q, 0.0);
    p.await_value(&q, |v| v == Some(0.0));
    p.exporter.set(&q, 50.0);
    p.await_value(&q, |v| v == Some(50.0));
    // The deploy.
    p.exporter.set(&q, 0.0);
    p.await_value(&q, |v| v == Some(0.0));
    // Over a fixed window, the old version's failures are there.
    p.await_value(&format!("increase({q}[1m])"), |v| {
        v.is_some_and(|v| v > 5.0)
    });
}

/// A watch of `since` (rollback: more than 5 failures since the watch began) and
/// `fixed` (notify only: more than 5 failures in the last minute), both `for: 2s`.
fn watch(s: &Scratch, name: &str, duration: &str) -> Running {
    let q = series(name);
    let file = s.rules(
        &rule_file()
            .watch(&format!("  duration: {duration}\n  interval: 1s"))
            .rollback(
                "echo rollback $ROLLWATCH_RULE $(date +%s%3N) >> @DIR@/actions.log",
                Some("30s"),
            )
            .rule(
                "since",
                Some(&format!("'increase({q}[${{watch.elapsed}}])'")),
                "    above: 5\n    for: 2s\n    interval: 1s\n    max_window: 1h",
            )
            .rule(
                "fixed",
                Some(&format!("'increase({q}[1m])'")),
                "    above: 5\n    for: 2s\n    interval: 1s\n    action: notify",
            )
            .build(),
    );
    start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ])
}

/// A poll's value, when it had one (the first polls have none: `increase` needs two
/// samples in its window, and a window of a second or two holds one).
fn value(poll: &serde_json::Value) -> Option<f64> {
    poll["value"].as_str()?.parse().ok()
}

/// The `poll` events of one rule.
fn polls(w: &Running, rule: &str) -> Vec<serde_json::Value> {
    w.events("poll")
        .into_iter()
        .filter(|e| e["rule"] == rule)
        .collect()
}

#[test]
fn failures_before_the_deploy_stay_out_of_the_elapsed_window() {
    let name = "elapsed-reset";
    counter_reset_by_the_deploy(name);
    let s = Scratch::new();
    let mut w = watch(&s, name, "8s");
    // The fixed window counts the old version's failures and fires (notify only).
    let fired = w.await_event_where("fired", Duration::from_secs(15), |e| e["rule"] == "fixed");
    assert_eq!(fired["rule"], "fixed", "{}", w.dump());
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    // The window since the watch began holds none of them: never pending, never fired,
    // nothing ran; and it was judged (its queries answered: a value at every poll).
    assert!(
        !w.events("pending").iter().any(|e| e["rule"] == "since"),
        "{}",
        w.dump()
    );
    assert!(
        !w.events("fired").iter().any(|e| e["rule"] == "since"),
        "{}",
        w.dump()
    );
    assert!(logged_actions(&s).is_empty(), "{:?}", logged_actions(&s));
    let since = polls(&w, "since");
    let values: Vec<f64> = since.iter().filter_map(value).collect();
    assert!(values.len() >= 4, "{}", w.dump());
    assert!(values.iter().all(|v| *v <= 5.0), "{values:?}\n{}", w.dump());
}

#[test]
fn failures_after_the_start_are_counted_and_roll_back() {
    let name = "elapsed-after";
    counter_reset_by_the_deploy(name);
    let s = Scratch::new();
    let mut w = watch(&s, name, "30s");
    // Judged healthy first: the old version's failures are not the release's.
    let first = w.await_event_where("poll", Duration::from_secs(10), |e| {
        e["rule"] == "since" && value(e).is_some()
    });
    assert!(
        value(&first).is_some_and(|v| v <= 5.0),
        "{first}\n{}",
        w.dump()
    );
    // The new version fails: 20 failures since the deploy.
    let failing = crate::harness::now_ms();
    prometheus().exporter.set(&series(name), 20.0);
    let fired = w.await_event_where("fired", Duration::from_secs(20), |e| e["rule"] == "since");
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    let actions = logged_actions(&s);
    assert_eq!(actions.len(), 1, "exactly one rollback: {actions:?}");
    assert_eq!(
        (actions[0].0.as_str(), actions[0].1.as_str()),
        ("rollback", "since")
    );
    // Never before `for` from the failures.
    assert!(
        fired["unix_ms"].as_u64().unwrap() >= failing + 2000,
        "{fired}\n{}",
        w.dump()
    );
}
