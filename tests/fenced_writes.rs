//! A stale owner's writes are fenced (issue 19, item 5): owner A runs a 12 s rollback
//! and is stopped (SIGSTOP) past its lease's TTL; B takes the watch over and records
//! it; after SIGCONT, A's command ends and A's write of its result is refused by the
//! database (logged `write_fenced`, counted), so the record never contradicts itself.
//! The real binary, the real PostgreSQL, the real Prometheus.

use crate::harness::agent::{rules, set};
use crate::harness::postgres;
use crate::shared_store::{metric, stopped, Fleet};
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::{Duration, Instant};

/// Logs "start" and, 12 s later, "done".
const SLOW_ROLLBACK: &str = r#"  command: ["sh", "-c", "echo start >> @DIR@/cmd.log; sleep 12; echo done >> @DIR@/cmd.log"]
  timeout: 30s"#;

#[test]
fn a_stopped_owner_cannot_overwrite_the_record_of_the_agent_that_took_over() {
    let test = "fence-stop";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file("slow", &rules("    above: 0.5\n    for: 2s", SLOW_ROLLBACK));
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "slow", "vars": {"test": test}, "id": "f-1"})),
    );
    assert_eq!(status, 201, "{w}");
    assert_eq!(fleet.await_owner(pg, "f-1"), 0);
    set(test, 0.9);
    // Stopped once its command runs (its claim committed, its process started).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fleet.s.lines("cmd.log").iter().any(|l| l == "start") {
        assert!(
            Instant::now() < deadline,
            "no rollback started:\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = fleet.proc(0).pid;
    fleet.proc(0).signal(Signal::SIGSTOP);
    assert!(
        stopped(a) || {
            std::thread::sleep(Duration::from_millis(200));
            stopped(a)
        }
    );
    // B takes the watch over and records it, while A's command still runs.
    fleet.await_watch(1, "f-1", Duration::from_secs(30), |w| {
        w["state"] != "running"
    });
    fleet.proc(0).signal(Signal::SIGCONT);
    // A's command ends (at the latest 12 s after it started) and A tries to record it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fleet.s.lines("cmd.log").iter().any(|l| l == "done") {
        assert!(Instant::now() < deadline, "the command never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    // The record does not contradict itself: the watch's outcome is what its action
    // row says.
    let (_, w) = fleet.req(1, "GET", "/api/v1/watches/f-1", None);
    let actions = w["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{w}");
    let (outcome, state, ok) = (
        w["outcome"].as_str().unwrap_or(""),
        actions[0]["state"].as_str().unwrap_or(""),
        actions[0]["succeeded"].as_bool(),
    );
    let consistent = match outcome {
        "rollback_unknown" => state == "unknown",
        "rolled_back" => state == "finished" && ok == Some(true),
        "rollback_failed" => state == "finished" && ok == Some(false),
        _ => false,
    };
    assert!(
        consistent,
        "the record contradicts itself: outcome {outcome}, action {state} ({ok:?}): {w}\n{}",
        fleet.dump()
    );
    // A's write was refused by the database's fencing, logged and counted.
    let fenced = fleet
        .proc(0)
        .await_event_where("write_fenced", Duration::from_secs(10), |e| {
            e["error"]
                .as_str()
                .unwrap_or("")
                .contains("no longer holds")
        });
    assert_eq!(fenced["watch"], "f-1", "{fenced}");
    assert!(
        fenced["message"]
            .as_str()
            .unwrap_or("")
            .contains("the action's result"),
        "{fenced}"
    );
    assert!(
        metric(&fleet.metrics(0), "rollwatch_agent_writes_fenced_total") >= 1.0,
        "{}",
        fleet.metrics(0)
    );
    assert_eq!(
        fleet
            .s
            .lines("cmd.log")
            .iter()
            .filter(|l| *l == "start")
            .count(),
        1,
        "the rollback ran once"
    );
}
