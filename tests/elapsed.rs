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
/// has scraped the reset (so the watch begins after it: its windows reach back exactly
/// to its start, and hold none of the old version's samples).
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

/// History written for replay: `rw_failures`, a counter sampled every 15s, that counts
/// 3 failures a minute for the 20 minutes before `base` (the deploy), restarts at 0
/// there, stays at 0 for 20 minutes, then counts 8 a minute. `base` is minute-aligned,
/// three hours ago. Returns (Prometheus URL, base, the directory it lives in).
fn replay_history() -> &'static (String, i64, tempfile::TempDir) {
    static H: std::sync::OnceLock<(String, i64, tempfile::TempDir)> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let base = (now - 3 * 3600) / 60 * 60;
        let mut om = String::from("# HELP rw_failures Test counter.\n# TYPE rw_failures counter\n");
        let mut t = -1200;
        while t <= 3600 {
            let v = if t < 0 {
                (t + 1200) / 20
            } else if t < 1200 {
                0
            } else {
                (t - 1200) * 8 / 60
            };
            om.push_str(&format!("rw_failures_total {v} {}\n", base + t));
            t += 15;
        }
        om.push_str("# EOF\n");
        let dir = tempfile::tempdir().unwrap();
        let url = crate::harness::backfilled_prometheus(dir.path(), &om);
        (url, base, dir)
    })
}

/// Replays one rule `r` over `[base + from, base + to]` (seconds); returns the exit
/// code and the JSON report.
fn replay(query: &str, from: i64, to: i64) -> (i32, serde_json::Value) {
    let (url, base, _) = replay_history();
    let s = Scratch::new();
    let file = s.rules(
        &rule_file()
            .watch("  duration: 1h\n  interval: 1m")
            .rollback_raw("  command: [\"true\"]")
            .rule(
                "r",
                Some(&format!("'{query}'")),
                "    above: 5\n    for: 1m\n    max_window: 1h",
            )
            .build(),
    );
    let (code, stdout, stderr) = crate::harness::run(&[
        "replay",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        url,
        "--from",
        &(base + from).to_string(),
        "--to",
        &(base + to).to_string(),
        "--format",
        "json",
    ]);
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (code, doc)
}

/// Seconds after the deploy of an RFC 3339 time in a replay report.
fn after_deploy(v: &serde_json::Value) -> Option<i64> {
    let ts: jiff::Timestamp = v.as_str()?.parse().ok()?;
    Some(ts.as_second() - replay_history().1)
}

#[test]
fn replay_counts_from_the_window_start_like_a_watch() {
    // A watch that began at the deploy: the old version's failures are not counted.
    let (code, doc) = replay("increase(rw_failures_total[${watch.elapsed}])", 0, 900);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["outcome"], "healthy", "{doc:#}");
    assert!(doc["rules"][0]["pending_at"].is_null(), "{doc:#}");
    // A fixed window counts them (the reset in between notwithstanding).
    let (code, doc) = replay("increase(rw_failures_total[10m])", 0, 900);
    assert_eq!(code, 1, "{doc:#}");
    // Failures 20 minutes after the deploy are counted: the poll of 20m (the window of
    // 1200s, the counter still at 0) is healthy, the poll of 21m sees 8 and goes
    // pending, and `for: 1m` fires at the poll of 22m (Prometheus's scrape interval
    // here is the poll's, so there is no step between polls to read).
    let (code, doc) = replay("increase(rw_failures_total[${watch.elapsed}])", 0, 2100);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["outcome"], "rolled_back", "{doc:#}");
    assert_eq!(
        after_deploy(&doc["rules"][0]["pending_at"]),
        Some(1260),
        "{doc:#}"
    );
    assert_eq!(
        after_deploy(&doc["rules"][0]["fired_at"]),
        Some(1320),
        "{doc:#}"
    );
}

/// The agent's rule file: `increase` of the test's counter since each watch began.
fn agent_rules() -> String {
    rule_file()
        .var("test", "")
        .watch("  duration: 60s\n  interval: 1s")
        .rollback_raw(crate::harness::agent::ROLLBACK)
        .rule(
            "since",
            Some("'increase(rw_value{test=\"${test}\"}[${watch.elapsed}])'"),
            "    above: 5\n    for: 2s\n    interval: 1s\n    max_window: 1h",
        )
        .build()
}

#[test]
fn on_the_agent_each_watch_counts_from_its_own_start() {
    use crate::harness::agent::Agent;
    use serde_json::json;
    let name = "elapsed-agent";
    counter_reset_by_the_deploy(name);
    let a = Agent::new(None);
    a.rule_file("since", &agent_rules());
    let (status, w) =
        a.post(json!({"rules": "since", "vars": {"test": name}, "duration": "40s", "id": "first"}));
    assert_eq!(status, 201, "{w}");
    a.await_watch("first", Duration::from_secs(10), |w| {
        // A value: two samples since the start (at 0), so that the failures to come
        // are an increase within the window, not its first sample.
        w["rule_states"][0]["value"].is_number()
    });
    // 20 failures since the first watch began: it rolls back.
    crate::harness::agent::set(name, 20.0);
    let w = a.await_finished("first", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    // A watch of the same rule and series begun after them asks its own window, where
    // there are none (the agent shares a query only between identical texts).
    let (status, w) =
        a.post(json!({"rules": "since", "vars": {"test": name}, "duration": "6s", "id": "second"}));
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished("second", Duration::from_secs(30));
    assert_eq!(w["outcome"], "healthy", "{w}\n{}", a.dump());
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
}

#[test]
fn the_agents_catch_up_reads_the_downtime_with_each_steps_elapsed() {
    use crate::harness::agent::Agent;
    use serde_json::json;
    let name = "elapsed-catch-up";
    counter_reset_by_the_deploy(name);
    let mut a = Agent::new(None);
    a.rule_file("since", &agent_rules());
    let (status, w) =
        a.post(json!({"rules": "since", "vars": {"test": name}, "duration": "60s", "id": "down"}));
    assert_eq!(status, 201, "{w}");
    a.await_watch("down", Duration::from_secs(10), |w| {
        // A value: two samples since the start (at 0), so that the failures to come
        // are an increase within the window, not its first sample.
        w["rule_states"][0]["value"].is_number()
    });
    a.kill9();
    // The release fails while the agent is down, for longer than `for`.
    crate::harness::agent::set(name, 20.0);
    let failing = crate::harness::now_ms();
    while crate::harness::now_ms() < failing + 5000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarted = crate::harness::now_ms();
    a.start();
    let w = a.await_finished("down", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    let caught_up = a.proc.as_ref().unwrap().events("catch_up");
    assert!(
        caught_up.iter().any(|e| e["polls"].as_u64() >= Some(4)),
        "the downtime was judged from history:\n{}",
        a.dump()
    );
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
    let at: u64 = a.actions()[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // From the history, not after a fresh `for` of live polls.
    assert!(
        at < restarted + 2000,
        "rolled back {}ms after the restart",
        at - restarted
    );
}
