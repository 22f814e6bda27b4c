//! Notifications are not lost to a crash (issue 19, item 8): `serve` writes each one
//! into its store's outbox in the transaction of the state change it reports and
//! delivers it after the commit. The agent is killed (SIGKILL, from inside, by the test
//! build's `ROLLWATCH_CRASH_AT`) right after the change committed and before anything
//! was sent; after the restart the receiver gets the notification, once, with an
//! `Idempotency-Key` header.

use crate::harness::agent::{set, Agent};
use crate::harness::receiver::{receiver, Receiver, Request};
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::Duration;

/// A rule file: `rule`'s threshold on the test's series, a quick rollback, and one
/// webhook channel to `hook` for the notification kinds `on`.
fn rules(duration: &str, hook: &Receiver, on: &str) -> String {
    format!(
        r#"vars:
  test:
watch:
  duration: {duration}
  interval: 1s
rollback:
  command: ["sh", "-c", "echo start $ROLLWATCH_ACTION_ID >> @DIR@/actions.log"]
  timeout: 30s
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 1s
notify:
  - webhook: "{url}"
    on: [{on}]
    timeout: 2s
"#,
        url = hook.url
    )
}

/// Runs watch `w` on an agent that kills itself at `point`, checks it died there, and
/// restarts it plainly; returns the agent and the finished watch.
fn crash_then_restart(test: &str, point: &str, yaml: &str) -> (Agent, serde_json::Value) {
    let mut a = Agent::new(None);
    a.rule_file("checkout", yaml);
    a.proc.take().unwrap().signal(Signal::SIGKILL);
    a.env = vec![("ROLLWATCH_CRASH_AT".into(), point.into())];
    a.start();
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let mut p = a.proc.take().unwrap();
    assert_eq!(p.wait_any(Duration::from_secs(30)), None, "{}", p.dump());
    assert!(
        p.dump().contains(&format!("crash point {point}")),
        "died at `{point}`:\n{}",
        p.dump()
    );
    a.env.clear();
    a.start();
    let w = a.await_finished("w", Duration::from_secs(40));
    (a, w)
}

/// The requests of kind `kind` the receiver gets within `within`.
fn of_kind(hook: &Receiver, kind: &str, within: Duration) -> Vec<Request> {
    hook.all_within(within)
        .into_iter()
        .filter(|r| r.body["kind"] == kind)
        .collect()
}

fn assert_once_with_key(got: &[Request], kind: &str, a: &Agent) {
    assert_eq!(
        got.len(),
        1,
        "the `{kind}` notification arrives once after the restart: {got:#?}\n{}",
        a.dump()
    );
    let key = got[0].header("idempotency-key").unwrap_or_default();
    assert!(key.starts_with("rollwatch-w-"), "{:?}", got[0].headers);
}

#[test]
fn a_kill_after_the_ending_is_stored_still_delivers_its_notification() {
    let test = "outbox-ending";
    set(test, 0.1);
    let hook = receiver(vec![200]);
    let (a, w) = crash_then_restart(test, "ending_saved", &rules("3s", &hook, "healthy"));
    assert_eq!(w["outcome"], "healthy", "{w}");
    let got = of_kind(&hook, "healthy", Duration::from_secs(8));
    assert_once_with_key(&got, "healthy", &a);
}

#[test]
fn a_kill_after_the_rollback_ended_still_delivers_its_notification() {
    let test = "outbox-rollback";
    set(test, 0.9);
    let hook = receiver(vec![200]);
    let (a, w) = crash_then_restart(test, "action_finished", &rules("60s", &hook, "rollback"));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
    let got = of_kind(&hook, "rollback", Duration::from_secs(8));
    assert_once_with_key(&got, "rollback", &a);
}

/// A receiver that fails at first gets the notification on a later attempt, with the
/// same key (a repeat it can recognise).
#[test]
fn a_failed_delivery_is_retried_with_the_same_key() {
    let test = "outbox-retry";
    set(test, 0.1);
    let hook = receiver(vec![503, 200]);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("2s", &hook, "healthy"));
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let first = hook.next_request(Duration::from_secs(20));
    let second = hook.next_request(Duration::from_secs(10));
    assert_eq!(first.body["kind"], "healthy");
    assert_eq!(second.body, first.body);
    let key = first.header("idempotency-key").unwrap_or_default();
    assert!(key.starts_with("rollwatch-w-"), "{:?}", first.headers);
    assert_eq!(second.header("idempotency-key"), Some(key));
    assert!(
        hook.all_within(Duration::from_secs(3)).is_empty(),
        "delivered once"
    );
    a.proc.take().unwrap().signal(Signal::SIGKILL);
}

/// Alertmanager alerts go through the outbox too: killed right after the ending was
/// stored, the agent restarts and the outcome alert is posted, the rule's and action's
/// alerts resolved (before, they stayed open and no outcome was ever posted).
#[test]
fn a_kill_after_the_ending_still_resolves_alertmanager_alerts() {
    use crate::harness::alertmanager::alertmanager;
    let test = "outbox-am";
    set(test, 0.9);
    let s = crate::harness::Scratch::new();
    let am = alertmanager(s.dir.path());
    let yaml = format!(
        r#"vars:
  test:
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo start $ROLLWATCH_ACTION_ID >> @DIR@/actions.log"]
  timeout: 30s
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 1s
notify:
  - alertmanager: {{url: "{url}"}}
"#,
        url = am.url
    );
    let (a, w) = crash_then_restart(test, "ending_saved", &yaml);
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    let filter = format!("test=\"{test}\"");
    let names = |alerts: &[serde_json::Value]| {
        let mut n: Vec<String> = alerts
            .iter()
            .map(|x| x["labels"]["alertname"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let now = am.alerts(&filter);
        if names(&now) == ["RollwatchOutcome"] {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alerts never resolved: {now:#?}\n{}",
            a.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(after[0]["labels"]["outcome"], "rolled_back", "{after:#?}");
    assert!(a.dump().contains("notification_sent"), "{}", a.dump());
}

/// One slow channel does not hold the others' deliveries (review 2, hole 9): a note
/// to a receiver that never answers (timeout 20 s) is in flight when another watch's
/// note to a quick receiver is committed; that one is delivered at once, not when the
/// slow attempt times out (before: the delivery round waited for its slowest note).
#[test]
fn a_slow_channel_does_not_hold_another_watchs_notification() {
    let test = "outbox-slow";
    set(test, 0.1);
    let slow = receiver(vec![0]);
    let quick = receiver(vec![200]);
    let a = Agent::new(None);
    a.rule_file(
        "slow",
        &rules("1s", &slow, "healthy").replace("timeout: 2s\n", "timeout: 20s\n"),
    );
    a.rule_file("quick", &rules("5s", &quick, "healthy"));
    let (status, w) = a.post(json!({"rules": "slow", "vars": {"test": test}, "id": "s"}));
    assert_eq!(status, 201, "{w}");
    let (status, w) = a.post(json!({"rules": "quick", "vars": {"test": test}, "id": "q"}));
    assert_eq!(status, 201, "{w}");
    let hung = slow.next_request(Duration::from_secs(15));
    assert_eq!(hung.body["kind"], "healthy");
    a.await_finished("q", Duration::from_secs(20));
    let got = of_kind(&quick, "healthy", Duration::from_secs(6));
    assert_eq!(
        got.len(),
        1,
        "the quick channel's note is not held by the slow one's attempt\n{}",
        a.dump()
    );
}
