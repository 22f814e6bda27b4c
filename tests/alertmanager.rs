//! The alertmanager notification channel against a real Alertmanager: alerts read
//! back from its v2 API while the watch runs and after it ends, and an Alertmanager
//! that hangs never delays the rollback.

use crate::harness::alertmanager::alertmanager;
use crate::harness::receiver::receiver;
use crate::harness::rule_file::series;
use crate::harness::{prometheus, start, start_env, Scratch};
use serde_json::Value;
use std::time::Duration;

fn names(alerts: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn alerts_fire_in_alertmanager_during_the_watch_and_resolve_at_the_end_with_a_silence() {
    let prom = prometheus();
    let s = Scratch::new();
    let am = alertmanager(s.dir.path());
    let name = "am-alerts";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    // The rollback waits on a FIFO, so the test can read Alertmanager while it runs.
    let fifo = s.path("go");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let file = s.rules(&format!(
        r#"vars:
  test: {name}
  service: checkout
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "read line < {fifo}"]
  timeout: 30s
  silence:
    alertmanager: {{env: RW_TEST_AM}}
    matchers: {{service: "${{service}}", test: "${{test}}"}}
    for: 8s
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 2s
    interval: 1s
notify:
  - alertmanager:
      url: {{env: RW_TEST_AM}}
      labels: {{team: payments, alertname: NotMine}}
"#,
        fifo = fifo.display()
    ));
    let events = s.path("events.jsonl");
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
            "--events",
            events.to_str().unwrap(),
            "--report",
            s.path("report").to_str().unwrap(),
        ],
        &[("RW_TEST_AM", &am.url)],
    );
    w.await_event("action_started", Duration::from_secs(20));
    // While the rollback runs, the service's alerts are silenced...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let silence = loop {
        let all = am.silences();
        if let Some(s) = all.iter().find(|s| s["createdBy"] == "rollwatch") {
            break s.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no silence: {all:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(silence["status"]["state"], "active", "{silence:#}");
    let comment = silence["comment"].as_str().unwrap();
    assert!(
        comment.contains("service=checkout") && comment.contains("`r`"),
        "{comment}"
    );
    let matchers = &silence["matchers"];
    assert!(
        matchers
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "service" && m["value"] == "checkout" && m["isRegex"] == false),
        "{matchers:#}"
    );
    let filter = format!("test=\"{name}\"");
    let want = ["RollwatchAction", "RollwatchFired", "RollwatchPending"];
    let during = am.await_alerts(&filter, |a| names(a) == want, Duration::from_secs(10));
    for a in &during {
        let l = &a["labels"];
        // Active, not silenced: the silence spares rollwatch's own alerts.
        assert_eq!(a["status"]["state"], "active", "{a:#}");
        assert_eq!(l["rule"], "r", "{a:#}");
        assert_eq!(l["service"], "checkout", "{a:#}");
        assert_eq!(l["severity"], "critical", "{a:#}");
        assert_eq!(
            l["team"], "payments",
            "the channel's labels are added: {a:#}"
        );
        match l["alertname"].as_str().unwrap() {
            "RollwatchFired" | "RollwatchPending" => {
                assert_eq!(a["annotations"]["value"], "0.9", "{a:#}");
                assert_eq!(a["annotations"]["threshold"], "> 0.5", "{a:#}");
                assert!(
                    a["annotations"]["report"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("report/report.html")),
                    "the report link: {a:#}"
                );
                assert!(a["generatorURL"]
                    .as_str()
                    .unwrap()
                    .contains("/graph?g0.expr="));
            }
            _ => {
                assert_eq!(l["action"], "rollback", "{a:#}");
                assert_eq!(a["annotations"]["status"], "running", "{a:#}");
            }
        }
    }

    std::fs::write(&fifo, "go\n").unwrap();
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    // Deliveries are awaited before the watch exits: the rule and action alerts are
    // resolved (Alertmanager no longer lists them); the outcome alert is active.
    // The silence id is in the event stream; the silence expires by itself.
    let silenced: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "silenced")
        .collect();
    assert_eq!(silenced.len(), 1, "{silenced:?}");
    assert_eq!(silenced[0]["silence_id"], silence["id"]);
    am.await_silence(
        silence["id"].as_str().unwrap(),
        "expired",
        Duration::from_secs(20),
    );
    let after = am.alerts(&filter);
    assert_eq!(names(&after), ["RollwatchOutcome"], "{after:#?}");
    let outcome = &after[0]["labels"];
    assert_eq!(outcome["outcome"], "rolled_back");
    assert_eq!(outcome["rule"], "r");
    assert_eq!(outcome["severity"], "critical");
    assert!(
        !w.dump().contains(&am.url),
        "the Alertmanager URL is a secret:\n{}",
        w.dump()
    );
}

#[test]
fn a_hanging_alertmanager_never_delays_the_rollback() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "am-hang";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let hook = receiver(vec![0]);
    // A notify rule fires at once and its alert's delivery hangs; the rollback rule
    // fires 2s later and must act at once regardless, and so must its silence's hang.
    let file = s.rules(&format!(
        r#"vars:
  test: {name}
watch:
  duration: 40s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo rollback $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s
  silence: {{alertmanager: "{url}", matchers: {{test: "${{test}}"}}, for: 1m}}
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 2s
    interval: 1s
  - name: heads-up
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 0s
    action: notify
notify:
  - alertmanager: {{url: "{url}"}}
    timeout: 1s
    retries: 1
"#,
        url = hook.url
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    let (notified, path, body) = hook.next(Duration::from_secs(10));
    assert!(path.ends_with("/api/v2/alerts"), "{path}");
    assert!(body[0]["labels"]["alertname"].is_string(), "{body:#}");
    let fired = w.await_event_where("fired", Duration::from_secs(10), |e| e["rule"] == "r");
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    let acted: u64 = s.lines("actions.log")[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let fired_ms = fired["unix_ms"].as_u64().unwrap();
    assert!(
        notified <= fired_ms,
        "the alert was posted before the rollback fired"
    );
    assert!(
        acted - fired_ms < 1000,
        "rollback ran {}ms after firing despite the hanging Alertmanager",
        acted - fired_ms
    );
    assert!(w.dump().contains("notification_failed"), "{}", w.dump());
    let silenced = w.events("silenced");
    assert!(
        silenced.len() == 1 && silenced[0]["error"].is_string(),
        "the silence that could not be made is logged: {silenced:?}"
    );
}

/// Issue 19, item 7: an Alertmanager that hangs on silence creation held the watch's
/// end for 16.5 s after a rollback that took milliseconds. The silence now runs beside
/// the ending: `watch_finished` follows the rollback at once, and the silence's failure
/// is still told (after it).
#[test]
fn a_hanging_silence_never_holds_the_watch_end() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "am-silence-hang";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let hang = receiver(vec![0]);
    let file = s.rules(&format!(
        r#"vars:
  test: {name}
watch:
  duration: 40s
  interval: 1s
rollback:
  command: ["true"]
  timeout: 30s
  silence: {{alertmanager: "{url}", matchers: {{test: "${{test}}"}}, for: 1m}}
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 1s
"#,
        url = hang.url
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    w.await_event("action_finished", Duration::from_secs(15));
    let acted = std::time::Instant::now();
    // Before the fix this came 16.5 s later (3 attempts of 5 s at the hanging silence).
    w.await_event("watch_finished", Duration::from_secs(3));
    let gap = acted.elapsed();
    let (_, path, _) = hang.next(Duration::from_secs(5));
    assert!(path.ends_with("/api/v2/silences"), "{path}");
    assert!(
        gap < Duration::from_secs(3),
        "watch_finished came {gap:?} after the rollback"
    );
    assert_eq!(w.wait(Duration::from_secs(40)), 1, "{}", w.dump());
    let silenced = w.events("silenced");
    assert!(
        silenced.len() == 1 && silenced[0]["error"].is_string(),
        "the silence that could not be made is still told: {silenced:?}"
    );
}
