//! One live watch per release key (issue 22, `watch.key`), with the real binary, the
//! real Prometheus and a real PostgreSQL: creating a watch whose key belongs to a
//! running watch ends the older one as `superseded` (exit 7) before the new one
//! judges, on one agent and across agents, and at every instant the tests observe
//! exactly one running watch holds the key; a rollback the older watch already
//! started is not cancelled: the new watch waits for it.

use crate::harness::agent::{set, Agent};
use crate::harness::postgres;
use crate::harness::rule_file::{rule_file, SERIES_OF_VAR};
use crate::shared_store::Fleet;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn keyed(rule: &str, rollback: &str) -> String {
    rule_file()
        .var("test", "")
        .watch("  duration: 60s\n  interval: 1s\n  key: \"line-${test}\"")
        .rollback_raw(rollback)
        .rule("r", Some(SERIES_OF_VAR), rule)
        .build()
}

const ROLLBACK: &str = r#"  command: ["sh", "-c", "sleep 3; echo rollback $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s"#;

/// The running watches that hold `key`, as a list of the agent answers.
fn holders(list: &Value, key: &str) -> Vec<String> {
    list["watches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "running" && w["key"] == key)
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_new_watch_of_a_key_supersedes_the_old_one_on_one_agent() {
    let test = "sup-one";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &keyed("    above: 0.5\n    for: 30s", ROLLBACK));
    let key = format!("line-{test}");
    let (s, w1) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "s-1"}));
    assert_eq!(s, 201, "{w1}");
    assert_eq!(w1["key"], key.as_str(), "{w1}");
    a.await_watch("s-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    // An observer lists the key's holders throughout the second creation.
    let addr = a.addr.clone();
    let k = key.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let observer = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            let (status, list) = crate::harness::agent::http(
                &addr,
                "GET",
                "/api/v1/watches?state=running",
                None,
                None,
            );
            if status == 200 {
                seen.push(holders(&list, &k));
            }
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(200));
    let (s, w2) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "s-2"}));
    assert_eq!(s, 201, "{w2}");
    assert_eq!(w2["after"], "s-1", "{w2}");
    let old = a.await_finished("s-1", Duration::from_secs(10));
    assert_eq!(
        (old["outcome"].as_str(), old["exit_code"].as_u64()),
        (Some("superseded"), Some(7)),
        "{old}"
    );
    assert!(old["detail"].as_str().unwrap().contains("s-2"), "{old}");
    a.await_watch("s-2", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = observer.join().unwrap();
    assert!(seen.len() > 3, "{seen:?}");
    assert!(
        seen.iter().all(|h| h.len() == 1),
        "never none, never two: {seen:?}"
    );
    assert_eq!(seen.first().unwrap(), &["s-1".to_string()]);
    assert_eq!(seen.last().unwrap(), &["s-2".to_string()]);
    // The same id again is the same request: it supersedes nothing.
    let (s, again) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "s-2"}));
    assert_eq!(s, 200, "{again}");
    assert_eq!(
        a.req("GET", "/api/v1/watches/s-2", None).1["state"],
        "running"
    );
}

#[test]
fn a_rollback_the_old_watch_started_is_not_cancelled_and_the_new_one_waits_for_it() {
    let test = "sup-rollback";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &keyed("    above: 0.5\n    for: 1s", ROLLBACK));
    let (s, w1) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "sr-1"}));
    assert_eq!(s, 201, "{w1}");
    set(test, 0.9);
    // The old watch's rollback is running (it takes 3s) when the new one is created.
    a.await_watch("sr-1", Duration::from_secs(15), |w| {
        w["actions"].as_array().is_some_and(|a| !a.is_empty())
    });
    set(test, 0.1);
    let (s, w2) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "sr-2"}));
    assert_eq!(s, 201, "{w2}");
    let old = a.await_finished("sr-1", Duration::from_secs(15));
    assert_eq!(old["outcome"], "rolled_back", "not cancelled: {old}");
    assert_eq!(a.actions().len(), 1);
    // The new watch judged only after the old one ended.
    let new = a.await_watch("sr-2", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    let first_poll = new["rule_states"][0]["last_poll_ms"].as_u64().unwrap();
    assert!(
        first_poll >= old["finished_ms"].as_u64().unwrap(),
        "{new}\n{old}"
    );
    assert_eq!(new["state"], "running", "{new}");
    // It is told: its timeline says which watch it superseded and how that one ended.
    let (_, page) = crate::harness::http_get(&a.addr, "/watches/sr-2").unwrap();
    assert!(
        page.contains("superseded watch sr-1 (the same watch.key), which ended rolled_back"),
        "{page}"
    );
}

#[test]
fn a_watch_created_through_another_agent_supersedes_across_a_shared_store() {
    let test = "sup-pg";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file("checkout", &keyed("    above: 0.5\n    for: 30s", ROLLBACK));
    let key = format!("line-{test}");
    let create = |i: usize, id: &str| {
        fleet.req(
            i,
            "POST",
            "/api/v1/watches",
            Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": id})),
        )
    };
    let (s, w) = create(0, "sp-1");
    assert_eq!(s, 201, "{w}");
    fleet.await_owner(pg, "sp-1");
    let (s, w) = create(1, "sp-2");
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["after"], "sp-1");
    // Through either agent, at every look: exactly one running holder of the key.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for i in 0..2 {
            let (_, list) = fleet.req(i, "GET", "/api/v1/watches?state=running", None);
            assert_eq!(holders(&list, &key), ["sp-2"], "{list}");
        }
        let (_, old) = fleet.req(1, "GET", "/api/v1/watches/sp-1", None);
        if old["state"] != "running" {
            assert_eq!(old["outcome"], "superseded", "{old}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sp-1 never ended:\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Two creations of one key at once, one through each agent: one holder after.
    let at = |i: usize, id: &'static str| {
        let addr = fleet.nodes[i].addr.clone();
        let body = json!({"rules": "checkout", "vars": {"test": test}, "id": id});
        std::thread::spawn(move || {
            crate::harness::agent::http(&addr, "POST", "/api/v1/watches", None, Some(&body))
        })
    };
    let (a, b) = (at(0, "sp-3"), at(1, "sp-4"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
    let (_, list) = fleet.req(0, "GET", "/api/v1/watches?state=running", None);
    assert_eq!(holders(&list, &key).len(), 1, "{list}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list) = fleet.req(1, "GET", "/api/v1/watches?state=running", None);
        let running: Vec<_> = ["sp-2", "sp-3", "sp-4"]
            .iter()
            .filter(|id| {
                list["watches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["id"] == **id)
            })
            .collect();
        if running.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{list}\n{}", fleet.dump());
        std::thread::sleep(Duration::from_millis(100));
    }
}
