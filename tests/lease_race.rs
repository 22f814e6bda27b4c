//! A renewal that races a creation (issue 19, item 9): a lease taken while a renewal
//! round is in flight is missing from that round's answer, and must not be taken for
//! lost. The agents run with `ROLLWATCH_RENEW_DELAY_MS` (test builds only), which holds
//! every renewal's answer for a while before it is compared, so that creations land in
//! that window on every round instead of a few times in 20,000; on SQLite and on the
//! real PostgreSQL, the real binary, the real Prometheus.

use crate::harness::agent::{http, rules, set, Agent, ROLLBACK};
use crate::harness::postgres;
use crate::harness::Running;
use crate::shared_store::{metric, Fleet};
use serde_json::{json, Value};
use std::time::Duration;

/// Renewals every second (TTL 3s), each answer held half a second.
fn env() -> Vec<(String, String)> {
    vec![("ROLLWATCH_RENEW_DELAY_MS".into(), "500".into())]
}

/// `threads` x `each` watches created through `addr`, spread over about three seconds
/// (several renewal rounds); returns their ids.
fn create_many(
    addr: &str,
    token: Option<&str>,
    test: &str,
    threads: usize,
    each: usize,
) -> Vec<String> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (addr, token, test) = (
                addr.to_string(),
                token.map(str::to_string),
                test.to_string(),
            );
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for k in 0..each {
                    let id = format!("race-{t}-{k}");
                    let body = json!({"rules": "race", "vars": {"test": test}, "id": id});
                    let (status, w): (u16, Value) = http(
                        &addr,
                        "POST",
                        "/api/v1/watches",
                        token.as_deref(),
                        Some(&body),
                    );
                    assert_eq!(status, 201, "{w}");
                    ids.push(id);
                    std::thread::sleep(Duration::from_millis(150 + 13 * t as u64));
                }
                ids
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// After two more renewal rounds: no watch was lost, every one is still held and runs.
fn assert_none_lost(proc: &Running, addr: &str, ids: &[String]) {
    std::thread::sleep(Duration::from_millis(2_500));
    let metrics = crate::harness::http_get(addr, "/metrics").unwrap().1;
    let lost = proc.events("lease_lost");
    assert!(
        lost.is_empty(),
        "{} of {} watches taken for lost by an agent that never lost its store: {:?}",
        lost.len(),
        ids.len(),
        lost.iter().map(|e| e["watch"].clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        metric(&metrics, "rollwatch_agent_leases_held"),
        ids.len() as f64,
        "{}",
        proc.dump()
    );
    let (_, list) = http(addr, "GET", "/api/v1/watches?state=running", None, None);
    assert_eq!(
        list["watches"].as_array().map(Vec::len),
        Some(ids.len()),
        "{list}"
    );
}

#[test]
fn sqlite_creations_racing_renewals_lose_no_watch() {
    let test = "race-sqlite";
    set(test, 0.1);
    let mut a = Agent::with_args(None, &["--lease-ttl", "3s"]);
    a.kill9();
    a.env = env();
    a.start();
    a.rule_file("race", &rules("    above: 0.5\n    for: 5s", ROLLBACK));
    let ids = create_many(&a.addr, None, test, 4, 20);
    assert_none_lost(a.proc.as_ref().unwrap(), &a.addr, &ids);
}

#[test]
fn postgres_creations_racing_renewals_lose_no_watch() {
    let test = "race-pg";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::with_env(&pg.database(), vec![env()]);
    fleet.rule_file("race", &rules("    above: 0.5\n    for: 5s", ROLLBACK));
    let addr = fleet.nodes[0].addr.clone();
    let ids = create_many(&addr, None, test, 4, 20);
    assert_none_lost(fleet.proc(0), &addr, &ids);
}
