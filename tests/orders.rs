//! People's orders to running watches (issue 22), with the real binary, the real
//! Prometheus and a real PostgreSQL: a manual rollback runs once whoever presses and
//! whatever a rule does at the same moment, two people on two agents get one rollback
//! and the second is told whose it was, a hold keeps a breach from acting until it
//! ends, an extension and a person's end are recorded as theirs, and `rollwatch ctl`
//! speaks it all. Every rollback appends a line to a log, which is how they are counted.

use crate::harness::agent::{http, rules, set, Agent};
use crate::harness::bin;
use crate::harness::postgres;
use crate::shared_store::{Fleet, ROLLBACK as FLEET_ROLLBACK};
use serde_json::{json, Value};
use std::time::Duration;

/// Appends "rollback <unix ms>" to @DIR@/actions.log, after a second (so that an
/// order given while it runs finds it running).
const SLOW_ROLLBACK: &str = r#"  command: ["sh", "-c", "sleep 1; echo rollback $(date +%s%3N) $ROLLWATCH_RULE $ROLLWATCH_MANUAL_BY >> @DIR@/actions.log"]
  timeout: 30s"#;

fn order(a: &Agent, token: &str, id: &str, body: Value) -> (u16, Value) {
    http(
        &a.addr,
        "POST",
        &format!("/api/v1/watches/{id}/orders"),
        Some(token),
        Some(&body),
    )
}

fn agent_with_people() -> Agent {
    let mut a = Agent::new(Some("alice:alice-token\nbob:bob-token"));
    // (`Agent::new` wrote the two lines as the token; its own requests use alice's.)
    a.token = Some("alice-token".into());
    a
}

fn start_watch(a: &Agent, test: &str, id: &str, rule: &str) {
    a.rule_file("checkout", &rules(rule, SLOW_ROLLBACK));
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": id}));
    assert_eq!(status, 201, "{w}");
    a.await_watch(id, Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
}

#[test]
fn a_manual_rollback_runs_once_and_the_second_person_is_told_whose_it_was() {
    let test = "orders-manual";
    set(test, 0.1);
    let a = agent_with_people();
    start_watch(&a, test, "m-1", "    above: 0.5\n    for: 10s");
    // No reason: refused, nothing stored.
    let (status, e) = order(
        &a,
        "alice-token",
        "m-1",
        json!({"order": "rollback", "reason": " "}),
    );
    assert_eq!(status, 400, "{e}");
    // Alice's named token: recorded as alice's, whatever `by` would claim.
    let (status, e) = order(
        &a,
        "alice-token",
        "m-1",
        json!({"order": "rollback", "reason": "INC-9", "by": "mallory"}),
    );
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("alice's"), "{e}");
    let (status, first) = order(
        &a,
        "alice-token",
        "m-1",
        json!({"order": "rollback", "reason": "INC-9: payments failing"}),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["order"]["by"], "alice", "{first}");
    // Bob presses while the command runs: one rollback, and he is told it was alice's.
    let (status, second) = order(
        &a,
        "bob-token",
        "m-1",
        json!({"order": "rollback", "reason": "me too"}),
    );
    assert_eq!(status, 409, "{second}");
    let msg = second["error"].as_str().unwrap();
    assert!(
        msg.contains("alice already ordered a rollback") && msg.contains("INC-9"),
        "{msg}"
    );
    let w = a.await_finished("m-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert!(w["detail"].as_str().unwrap().contains("alice"), "{w}");
    let log = a.actions();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].ends_with("manual:alice alice"),
        "the command's environment says who: {log:?}"
    );
    let (_, list) = a.req("GET", "/api/v1/watches/m-1/orders", None);
    let orders = list["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{list}");
    assert_eq!(
        (orders[0]["state"].as_str(), orders[0]["reason"].as_str()),
        (Some("done"), Some("INC-9: payments failing"))
    );
}

#[test]
fn a_hold_keeps_a_breach_from_acting_and_it_acts_when_the_hold_ends() {
    let test = "orders-hold";
    set(test, 0.1);
    let a = agent_with_people();
    start_watch(&a, test, "h-1", "    above: 0.5\n    for: 1s");
    let (status, held) = order(
        &a,
        "bob-token",
        "h-1",
        json!({"order": "hold", "for": "8s", "reason": "DB failover in progress"}),
    );
    assert_eq!(status, 200, "{held}");
    let held_at = held["order"]["at_ms"].as_u64().unwrap();
    let (_, w) = a.req("GET", "/api/v1/watches/h-1", None);
    assert_eq!(w["held"]["by"], "bob", "the API shows the watch held: {w}");
    set(test, 0.9);
    // Fires during the hold: nothing runs until it ends (8s after it was given).
    let w = a.await_finished("h-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    let acted = &w["actions"][0];
    assert_eq!(
        acted["rule"], "r",
        "the rule acted, once the hold ended: {w}"
    );
    let started = acted["started_ms"].as_u64().unwrap();
    assert!(
        started >= held_at + 8_000,
        "acted {} ms after the hold began",
        started - held_at
    );
    assert!(
        started < held_at + 8_000 + 3_000,
        "acted long after the hold ended: {w}"
    );
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
    set(test, 0.1);
}

#[test]
fn extend_and_end_are_recorded_as_the_persons_and_ctl_says_so() {
    let test = "orders-end";
    set(test, 0.1);
    let a = agent_with_people();
    start_watch(&a, test, "e-1", "    above: 0.5\n    for: 10s");
    let token = a.s.path("bob-token-file");
    std::fs::write(&token, "bob-token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let server = format!("http://{}", a.addr);
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args([
                "ctl",
                "--server",
                &server,
                "--token-file",
                token.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = ctl(&["extend", "e-1", "--for", "10m", "--reason", "slow canary"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(err.contains("bob extended the watch"), "{err}");
    let (code, _, err) = ctl(&["hold", "e-1", "--reason", "no duration"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = ctl(&["end", "e-1", "--reason", "verified by hand"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let w = a.await_finished("e-1", Duration::from_secs(10));
    assert_eq!(
        (w["outcome"].as_str(), w["exit_code"].as_u64()),
        (Some("declared_healthy"), Some(0)),
        "{w}"
    );
    assert!(w["detail"].as_str().unwrap().contains("bob"), "{w}");
    assert!(a.actions().is_empty());
    // The watch ended: a late order is refused and says so.
    let (code, _, err) = ctl(&["rollback", "e-1", "--reason", "late"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn two_people_on_two_agents_get_one_rollback_on_a_shared_store() {
    let test = "orders-pg";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 30s", FLEET_ROLLBACK),
    );
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "pg-o-1"})),
    );
    assert_eq!(status, 201, "{w}");
    fleet.await_owner(pg, "pg-o-1");
    // Both press at once, one through each agent (whichever holds the watch).
    let press = |i: usize, who: &str| {
        let addr = fleet.nodes[i].addr.clone();
        let body = json!({"order": "rollback", "reason": format!("{who} saw errors"), "by": who});
        std::thread::spawn(move || {
            http(
                &addr,
                "POST",
                "/api/v1/watches/pg-o-1/orders",
                None,
                Some(&body),
            )
        })
    };
    let (a, b) = (press(0, "alice"), press(1, "bob"));
    let answers = [a.join().unwrap(), b.join().unwrap()];
    let won: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == 200 || *s == 202)
        .collect();
    let lost: Vec<_> = answers.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!((won.len(), lost.len()), (1, 1), "{answers:?}");
    let winner = won[0].1["order"]["by"].as_str().unwrap().to_string();
    let msg = lost[0].1["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{winner} already ordered a rollback")),
        "{msg}"
    );
    let w = fleet.await_watch(0, "pg-o-1", Duration::from_secs(20), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fleet.rollbacks().len(), 1, "{:?}", fleet.rollbacks());
}

#[test]
fn a_manual_rollback_racing_a_rules_runs_once() {
    let test = "orders-race";
    set(test, 0.1);
    let a = agent_with_people();
    start_watch(&a, test, "r-1", "    above: 0.5\n    for: 2s");
    set(test, 0.9);
    // From the moment the breach is pending, press until the watch ends: whoever
    // wins, the rule (2s later) or the person, one rollback runs.
    a.await_watch(
        "r-1",
        Duration::from_secs(10),
        crate::harness::agent::pending,
    );
    let mut answers = Vec::new();
    loop {
        let (status, body) = order(
            &a,
            "alice-token",
            "r-1",
            json!({"order": "rollback", "reason": "racing the rule"}),
        );
        let ended = status == 409
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("not running"));
        answers.push((status, body));
        if ended || answers.len() > 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        answers.iter().filter(|(s, _)| *s == 200).count() <= 1,
        "{answers:?}"
    );
    let w = a.await_finished("r-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.actions().len(), 1, "{:?}\n{answers:?}", a.actions());
    set(test, 0.1);
}

#[test]
fn a_hold_given_through_another_agent_survives_its_holders_death_and_the_adopter_keeps_it() {
    let test = "orders-pg-hold";
    set(test, 0.1);
    let pg = postgres::shared();
    let mut fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 1s", FLEET_ROLLBACK),
    );
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "pg-h-1"})),
    );
    assert_eq!(status, 201, "{w}");
    assert_eq!(fleet.await_owner(pg, "pg-h-1"), 0);
    // Given through agent 1, which does not hold the watch: agent 0 carries it out.
    let (status, held) = fleet.req(
        1,
        "POST",
        "/api/v1/watches/pg-h-1/orders",
        Some(&json!({"order": "hold", "for": "15s", "reason": "DB failover", "by": "alice"})),
    );
    assert_eq!(status, 200, "{held}\n{}", fleet.dump());
    let held_at = held["order"]["at_ms"].as_u64().unwrap();
    // Its holder dies; the breach begins; agent 1 adopts the watch and keeps the hold.
    let mut p = fleet.nodes[0].proc.take().unwrap();
    p.signal(nix::sys::signal::Signal::SIGKILL);
    assert_eq!(p.wait_any(Duration::from_secs(10)), None);
    set(test, 0.9);
    let w = fleet.await_watch(1, "pg-h-1", Duration::from_secs(40), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", fleet.dump());
    let rb = fleet.rollbacks();
    assert_eq!(rb.len(), 1, "{rb:?}");
    assert!(
        rb[0].2 >= held_at + 15_000,
        "the adopter acted {} ms into a 15s hold",
        rb[0].2 - held_at
    );
    set(test, 0.1);
}

#[test]
fn an_end_carried_out_before_a_crash_ends_the_watch_at_the_restart_never_judges_on() {
    let test = "orders-end-crash";
    set(test, 0.1);
    let mut a = agent_with_people();
    start_watch(&a, test, "ec-1", "    above: 0.5\n    for: 1s");
    a.kill9();
    // As if the agent had settled alice's `end` and died before writing the ending.
    let db = rusqlite::Connection::open(a.s.path("state.db")).unwrap();
    db.execute(
        "INSERT INTO orders (watch_id, kind, who, reason, at_ms, state, result, done_ms)
         VALUES ('ec-1', 'end', 'alice', 'verified by hand', ?1, 'done', 'ended', ?1)",
        [crate::harness::now_ms() as i64],
    )
    .unwrap();
    drop(db);
    // A breach that would roll back within a second if the watch judged on.
    set(test, 0.9);
    a.start();
    let w = a.await_finished("ec-1", Duration::from_secs(15));
    assert_eq!(w["outcome"], "declared_healthy", "{w}\n{}", a.dump());
    assert!(w["detail"].as_str().unwrap().contains("alice"), "{w}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.actions().is_empty(), "{:?}", a.actions());
    set(test, 0.1);
}

#[test]
fn on_a_shared_store_a_rollback_pressed_through_another_agent_races_the_rule_and_runs_once() {
    let test = "orders-pg-race";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 2s", FLEET_ROLLBACK),
    );
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "pg-r-1"})),
    );
    assert_eq!(status, 201, "{w}");
    let owner = fleet.await_owner(pg, "pg-r-1");
    let other = 1 - owner;
    set(test, 0.9);
    fleet.await_watch(
        other,
        "pg-r-1",
        Duration::from_secs(10),
        crate::harness::agent::pending,
    );
    // Pressed through the agent that does not hold the watch, until it ends.
    let mut answers = Vec::new();
    loop {
        let (status, body) = fleet.req(
            other,
            "POST",
            "/api/v1/watches/pg-r-1/orders",
            Some(&json!({"order": "rollback", "reason": "racing the rule", "by": "alice"})),
        );
        let ended = status == 409
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("not running"));
        answers.push((status, body));
        if ended || answers.len() > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let w = fleet.await_watch(other, "pg-r-1", Duration::from_secs(20), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fleet.rollbacks().len(),
        1,
        "{:?}\n{answers:?}",
        fleet.rollbacks()
    );
    set(test, 0.1);
}

#[test]
fn on_a_shared_store_extend_and_end_given_through_another_agent_are_the_persons() {
    let test = "orders-pg-end";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 10s", FLEET_ROLLBACK),
    );
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "pg-e-1"})),
    );
    assert_eq!(status, 201, "{w}");
    let other = 1 - fleet.await_owner(pg, "pg-e-1");
    let give = |body: Value| fleet.req(other, "POST", "/api/v1/watches/pg-e-1/orders", Some(&body));
    let (status, ext) =
        give(json!({"order": "extend", "for": "10m", "reason": "slow canary", "by": "bob"}));
    assert_eq!(status, 200, "{ext}");
    assert!(
        ext["order"]["result"]
            .as_str()
            .unwrap()
            .contains("bob extended the watch"),
        "{ext}"
    );
    let (status, end) = give(json!({"order": "end", "reason": "verified by hand", "by": "bob"}));
    assert_eq!(status, 200, "{end}");
    let w = fleet.await_watch(other, "pg-e-1", Duration::from_secs(10), |w| {
        w["state"] != "running"
    });
    assert_eq!(
        (w["outcome"].as_str(), w["exit_code"].as_u64()),
        (Some("declared_healthy"), Some(0)),
        "{w}"
    );
    assert!(w["detail"].as_str().unwrap().contains("bob"), "{w}");
    assert!(fleet.rollbacks().is_empty());
}
