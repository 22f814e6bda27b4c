//! `POST /api/v1/watches` with an array (issue 21): many watches in one request and
//! one store transaction, all or nothing, acknowledged only once that commit made
//! every one durable. The real binary over HTTP, against the real Prometheus.

use crate::harness::agent::{http, rules, set, Agent, ROLLBACK};
use serde_json::{json, Value};

fn batch(test: &str, prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(
            |i| json!({"rules": "checkout", "vars": {"test": test}, "id": format!("{prefix}-{i}")}),
        )
        .collect()
}

fn ids(a: &Agent) -> Vec<String> {
    let (status, all) = a.req("GET", "/api/v1/watches", None);
    assert_eq!(status, 200, "{all}");
    all["watches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_batch_is_all_or_nothing_and_durable_once_acknowledged() {
    let test = "batch-create";
    set(test, 0.1);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 30s", ROLLBACK));

    let first = batch(test, "b", 300);
    let (status, body) = a.req("POST", "/api/v1/watches", Some(&json!(first)));
    assert_eq!(status, 201, "{body}");
    let watches = body["watches"].as_array().unwrap();
    assert_eq!(watches.len(), 300);
    assert!(watches
        .iter()
        .all(|w| w["new"] == true && w["state"] == "running"));
    assert_eq!(watches[299]["id"], "b-299", "answered in the batch's order");
    // The watches run: the last one is polled.
    a.await_watch("b-299", std::time::Duration::from_secs(20), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });

    // The same batch again: idempotent, nothing new.
    let (status, body) = a.req("POST", "/api/v1/watches", Some(&json!(first)));
    assert_eq!(status, 200, "{body}");
    assert!(body["watches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["new"] == false));

    // A bad item in the middle (an undeclared var): refused with its index, and
    // none of the others is created.
    let mut bad = batch(test, "x", 100);
    bad[50] = json!({"rules": "checkout", "vars": {"tset": test}, "id": "x-50"});
    let (status, body) = a.req("POST", "/api/v1/watches", Some(&json!(bad)));
    assert_eq!(status, 400, "{body}");
    let refused = body["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{body}");
    assert_eq!(refused[0]["index"], 50, "{body}");
    assert!(
        refused[0]["error"].as_str().unwrap().contains("tset"),
        "{body}"
    );
    // An id that exists with other vars, and an id given twice: the same.
    let mut bad = batch(test, "y", 10);
    bad[3] = json!({"rules": "checkout", "vars": {"test": "other"}, "id": "b-7"});
    bad[8] = json!({"rules": "checkout", "vars": {"test": test}, "id": "y-1"});
    let (status, body) = a.req("POST", "/api/v1/watches", Some(&json!(bad)));
    assert_eq!(status, 400, "{body}");
    let idx: Vec<&Value> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["index"])
        .collect();
    assert_eq!(
        idx,
        [&json!(8)],
        "the repeated id first, before the store: {body}"
    );
    bad[8] = json!({"rules": "checkout", "vars": {"test": test}, "id": "y-8"});
    let (status, body) = a.req("POST", "/api/v1/watches", Some(&json!(bad)));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["refused"][0]["index"], 3, "{body}");
    assert_eq!(ids(&a).len(), 300, "no part of a refused batch was stored");

    // Over the bound: refused whole, with the bound in the error.
    let (status, body) = a.req(
        "POST",
        "/api/v1/watches",
        Some(&json!(batch(test, "z", 10_001))),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("10000"), "{body}");

    // kill -9 right after the 201: every acknowledged watch is there at the restart.
    let (status, body) = a.req(
        "POST",
        "/api/v1/watches",
        Some(&json!(batch(test, "k", 200))),
    );
    assert_eq!(status, 201, "{body}");
    a.kill9();
    a.start();
    let after = ids(&a);
    assert_eq!(after.len(), 500, "{after:?}");
    for i in 0..200 {
        assert!(after.contains(&format!("k-{i}")), "k-{i} lost");
    }
    let (_, running) = a.req("GET", "/api/v1/watches?state=running", None);
    assert_eq!(running["watches"].as_array().unwrap().len(), 500);
}

/// Two agents on one PostgreSQL given the same batch at once: each watch is stored
/// once (one transaction inserts it, the other finds it), every agent sees all of
/// them, and each runs on exactly one agent.
#[test]
fn postgres_the_same_batch_through_two_agents_at_once_creates_each_watch_once() {
    use crate::harness::postgres;
    use crate::shared_store::{Fleet, ROLLBACK as PG_ROLLBACK};
    let test = "batch-pg";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 30s", PG_ROLLBACK),
    );
    let body = json!(batch(test, "p", 200));
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let posts: Vec<_> = (0..2)
            .map(|i| {
                let (addr, body) = (fleet.nodes[i].addr.clone(), &body);
                s.spawn(move || http(&addr, "POST", "/api/v1/watches", None, Some(body)))
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let mut new = 0;
    for (status, body) in &answers {
        assert!(*status == 201 || *status == 200, "{status} {body}");
        let watches = body["watches"].as_array().unwrap();
        assert_eq!(watches.len(), 200, "{body}");
        new += watches.iter().filter(|w| w["new"] == true).count();
    }
    assert_eq!(new, 200, "each watch is new through exactly one agent");
    for i in 0..2 {
        let (_, list) = fleet.req(i, "GET", "/api/v1/watches?state=running", None);
        assert_eq!(list["watches"].as_array().unwrap().len(), 200, "agent {i}");
    }
    let held = pg.psql(
        postgres::db_of(&fleet.url),
        "SELECT count(DISTINCT watch_id) FROM leases WHERE expires_at > now()",
    );
    assert_eq!(held.trim(), "200", "every watch runs on one agent");
}
