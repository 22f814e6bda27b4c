//! Agents whose clocks are off (issue 19, item 1): three `rollwatch serve` on one real
//! PostgreSQL, one with a right clock, one ten minutes fast and one ten minutes slow
//! (libfaketime preloaded into the real binary, its monotonic clock left alone), on
//! the real Prometheus. A watch is timed on the store's clock, so whoever adopts it
//! ends it on time and judges the moments it should: never an early "healthy", and a
//! pending breach rolls back exactly once.

use crate::harness::agent::set;
use crate::harness::now_ms;
use crate::harness::postgres;
use crate::harness::rule_file::{rule_file, SERIES_OF_VAR};
use crate::shared_store::{pending_since, Fleet};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DURATION_S: u64 = 25;

/// The rollback logs its watch, its token and the *real* time (`date` without the
/// preloaded fake clock).
fn rules() -> String {
    rule_file()
        .var("test", "")
        .watch(&format!("  duration: {DURATION_S}s\n  interval: 1s"))
        .rollback(
            "echo rollback $ROLLWATCH_WATCH_ID $ROLLWATCH_FENCING_TOKEN $(env -u LD_PRELOAD date +%s%3N) >> @DIR@/actions.log",
            Some("30s"),
        )
        .rule("r", Some(SERIES_OF_VAR), "    above: 0.5\n    for: 6s")
        .build()
}

/// libfaketime, preloaded: the wall clock `offset` off, the monotonic clock real.
pub(crate) fn skewed(offset: &str) -> Vec<(String, String)> {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        std::path::Path::new(lib).exists(),
        "{lib} is missing (apt-get install -y faketime)"
    );
    vec![
        ("LD_PRELOAD".into(), lib.into()),
        ("FAKETIME".into(), offset.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

fn create(fleet: &Fleet, via: usize, id: &str, test: &str) -> i64 {
    let (status, w) = fleet.req(
        via,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "clk", "vars": {"test": test}, "id": id})),
    );
    assert_eq!(status, 201, "{w}\n{}", fleet.dump());
    w["created_ms"].as_i64().unwrap()
}

/// Kills agent `i` with -9.
fn kill(fleet: &mut Fleet, i: usize) {
    let mut p = fleet.nodes[i].proc.take().unwrap();
    p.signal(Signal::SIGKILL);
    assert_eq!(p.wait_any(Duration::from_secs(10)), None);
}

/// Watches `healthy` and `breach` (both owned by `owner`) through the kill of their
/// owner: `healthy` ends healthy on time, never early; `breach` rolls back once, after
/// its `for`.
fn through_the_owners_death(
    fleet: &mut Fleet,
    pg: &postgres::PgCluster,
    owner: usize,
    (healthy, h_created): (&str, i64),
    (breach, b_test): (&str, &str),
) {
    assert_eq!(fleet.await_owner(pg, healthy), owner);
    assert_eq!(fleet.await_owner(pg, breach), owner);
    set(b_test, 0.9);
    let w = fleet.await_watch(owner, breach, Duration::from_secs(15), |w| {
        pending_since(w).is_some()
    });
    let since = pending_since(&w).unwrap() as i64;
    while (now_ms() as i64) < since + 2_000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(fleet, owner);
    let alive = (0..fleet.nodes.len())
        .find(|&i| fleet.nodes[i].proc.is_some())
        .unwrap();
    // When each watch is seen ended, on the real clock.
    let mut ended: Vec<Option<(i64, Value)>> = vec![None, None];
    let deadline = Instant::now() + Duration::from_secs(DURATION_S + 30);
    while ended.iter().any(Option::is_none) {
        for (k, id) in [healthy, breach].iter().enumerate() {
            if ended[k].is_none() {
                let (status, w) = fleet.req(alive, "GET", &format!("/api/v1/watches/{id}"), None);
                if status == 200 && w["state"] != "running" {
                    ended[k] = Some((now_ms() as i64, w));
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "not ended: {ended:?}\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (seen, w) = ended[0].take().unwrap();
    let end = h_created + DURATION_S as i64 * 1000;
    assert!(
        seen >= end,
        "{healthy} ended {} ms early: {w}\n{}",
        end - seen,
        fleet.dump()
    );
    assert_eq!(w["outcome"], "healthy", "{w}\n{}", fleet.dump());
    assert!(
        seen <= end + 8_000,
        "{healthy} ended {} ms late (judged on the wrong clock?): {w}\n{}",
        seen - end,
        fleet.dump()
    );
    // The breach: rolled back once, by the adopter, after its `for` on the real clock.
    let (_, w) = ended[1].take().unwrap();
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", fleet.dump());
    let rb: Vec<_> = fleet
        .rollbacks()
        .into_iter()
        .filter(|r| r.0 == breach)
        .collect();
    assert_eq!(rb.len(), 1, "exactly one rollback of {breach}: {rb:?}");
    assert!(rb[0].1 >= 2, "by an adopter (a newer token): {rb:?}");
    assert!(
        rb[0].2 as i64 >= since + 6_000,
        "rolled back {} ms before `for` ended\n{}",
        since + 6_000 - rb[0].2 as i64,
        fleet.dump()
    );
}

#[test]
fn agents_ten_minutes_fast_and_slow_adopt_watches_on_the_stores_clock() {
    let pg = postgres::shared();
    let mut fleet = Fleet::with_env(
        &pg.database(),
        vec![Vec::new(), skewed("+10m"), skewed("-10m")],
    );
    fleet.rule_file("clk", &rules());
    // Round 1: created through the agent whose clock is right, which is killed.
    for t in ["clk-h1", "clk-b1"] {
        set(t, 0.1);
    }
    let h1 = create(&fleet, 0, "h1", "clk-h1");
    create(&fleet, 0, "b1", "clk-b1");
    through_the_owners_death(&mut fleet, pg, 0, ("h1", h1), ("b1", "clk-b1"));
    // Round 2: created through the skewed agent that adopted the breach, which is
    // killed in turn: the other skewed agent adopts (so both skews adopt).
    let via = (1..3)
        .find(|&i| {
            fleet
                .proc(i)
                .events("lease_adopted")
                .iter()
                .any(|e| e["watch"] == "b1")
        })
        .unwrap_or_else(|| panic!("nobody logged adopting b1:\n{}", fleet.dump()));
    for t in ["clk-h2", "clk-b2"] {
        set(t, 0.1);
    }
    let h2 = create(&fleet, via, "h2", "clk-h2");
    create(&fleet, via, "b2", "clk-b2");
    through_the_owners_death(&mut fleet, pg, via, ("h2", h2), ("b2", "clk-b2"));
    let rollbacks = fleet.rollbacks();
    for id in ["b1", "b2"] {
        assert_eq!(
            rollbacks.iter().filter(|r| r.0 == id).count(),
            1,
            "exactly one rollback of {id}: {rollbacks:?}"
        );
    }
    assert!(
        rollbacks.iter().all(|r| r.0 == "b1" || r.0 == "b2"),
        "{rollbacks:?}"
    );
}

#[test]
fn an_agent_restarted_with_its_clock_ten_minutes_fast_stops_judging_and_never_ends_the_watch() {
    use crate::harness::agent::Agent;
    let test = "clk-restart";
    set(test, 0.1);
    // SQLite: the store's clock is the agent's own, so a restart with a clock that
    // jumped makes the watch clock disagree with Prometheus's.
    let mut a = Agent::new(None);
    a.rule_file("clk", &rules().replace("duration: 25s", "duration: 10m"));
    let (status, w) = a.post(json!({"rules": "clk", "vars": {"test": test}, "id": "r1"}));
    assert_eq!(status, 201, "{w}");
    a.await_watch("r1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    a.kill9();
    a.env = skewed("+10m");
    a.start();
    let refused = a
        .proc
        .as_ref()
        .unwrap()
        .await_event("clock_refused", Duration::from_secs(20));
    assert_eq!(refused["watch"], "r1", "{refused}");
    assert!(
        refused["skew_s"]
            .as_f64()
            .is_some_and(|s| (s + 600.0).abs() < 5.0),
        "{refused}"
    );
    // Not judged here, and never ended (the old code ended it healthy at once).
    std::thread::sleep(Duration::from_secs(3));
    let (_, w) = a.req("GET", "/api/v1/watches/r1", None);
    assert_eq!(w["state"], "running", "{w}\n{}", a.dump());
    assert!(
        a.proc.as_ref().unwrap().events("watch_finished").is_empty(),
        "{}",
        a.dump()
    );
    let metrics = crate::harness::http_get(&a.addr, "/metrics").unwrap().1;
    assert!(
        crate::shared_store::metric(&metrics, "rollwatch_agent_clock_refusals_total") >= 1.0,
        "{metrics}"
    );
    // With its clock right again, it resumes the watch and judges it.
    a.kill9();
    a.env = Vec::new();
    a.start();
    let before = now_ms() as i64;
    a.await_watch("r1", Duration::from_secs(15), |w| {
        w["rule_states"][0]["last_poll_ms"]
            .as_i64()
            .is_some_and(|t| t >= before)
    });
    assert!(
        a.proc.as_ref().unwrap().events("clock_refused").is_empty(),
        "{}",
        a.dump()
    );
}

#[test]
fn a_running_watch_whose_clock_drifts_past_max_blind_stops_being_judged_and_is_not_ended() {
    use crate::harness::agent::Agent;
    use crate::harness::fake::{Fake, Reply};
    use std::sync::atomic::Ordering;
    // Every poll healthy; Prometheus's clock is moved while the watch runs.
    let (fake, offset) = Fake::start_with_shifting_clock(vec![Reply::value(0.1)]);
    let mut a = Agent::with_prometheus(None, &fake.url);
    a.kill9();
    a.env = vec![("ROLLWATCH_CLOCK_CHECK_MS".into(), "500".into())];
    a.start();
    a.rule_file("clk", &rules().replace("duration: 25s", "duration: 10m"));
    let (status, w) = a.post(json!({"rules": "clk", "vars": {"test": "drift"}, "id": "d1"}));
    assert_eq!(status, 201, "{w}");
    a.await_watch("d1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    std::thread::sleep(Duration::from_secs(2));
    let p = a.proc.as_ref().unwrap();
    assert!(p.events("clock_refused").is_empty(), "{}", a.dump());
    // Prometheus's clock jumps ten minutes ahead of the one the watch is timed on.
    offset.store(600_000, Ordering::SeqCst);
    let refused = p.await_event("clock_refused", Duration::from_secs(10));
    assert_eq!(refused["watch"], "d1", "{refused}");
    std::thread::sleep(Duration::from_secs(2));
    let (_, w) = a.req("GET", "/api/v1/watches/d1", None);
    assert_eq!(w["state"], "running", "stopped judging, never ended: {w}");
    assert!(
        p.events("watch_finished")
            .iter()
            .all(|e| e["outcome"] == "interrupted"),
        "{}",
        a.dump()
    );
    assert!(!p.events("watch_suspended").is_empty(), "{}", a.dump());
    let metrics = crate::harness::http_get(&a.addr, "/metrics").unwrap().1;
    assert!(
        crate::shared_store::metric(&metrics, "rollwatch_agent_clock_refusals_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        crate::shared_store::metric(&metrics, "rollwatch_agent_leases_held"),
        0.0,
        "its lease went back: {metrics}"
    );
}

/// A restart checks each watch's clock before it judges it, and the checks of the
/// watches it resumes together share one measurement of Prometheus's clock: each
/// asked its own `time()`, outside the query limit, and a restart of 100,000 watches
/// opened thousands of connections to Prometheus at once (BENCHMARKS.md, issue 21).
#[test]
fn a_restart_measures_prometheuss_clock_once_for_the_watches_it_resumes() {
    use crate::harness::agent::Agent;
    use crate::harness::fake::{Fake, Reply};
    use std::sync::atomic::Ordering;
    let n = 300;
    let fake = Fake::start(vec![Reply::value(0.1)]);
    let mut a = Agent::with_prometheus(None, &fake.url);
    a.rule_file("clk", &rules().replace("duration: 25s", "duration: 10m"));
    let batch: Vec<_> = (0..n)
        .map(|i| json!({"rules": "clk", "vars": {"test": format!("s{i}")}, "id": format!("w{i}")}))
        .collect();
    let (status, body) = a.post(json!(batch));
    assert_eq!(status, 201, "{body}");
    a.await_watch(&format!("w{}", n - 1), Duration::from_secs(20), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    a.kill9();
    let before = fake.clock_checks.load(Ordering::SeqCst);
    let restarted = now_ms() as i64;
    a.start();
    for i in [0, n / 2, n - 1] {
        a.await_watch(&format!("w{i}"), Duration::from_secs(20), |w| {
            w["rule_states"][0]["last_poll_ms"]
                .as_i64()
                .is_some_and(|t| t >= restarted)
        });
    }
    let checks = fake.clock_checks.load(Ordering::SeqCst) - before;
    assert!(
        (1..=20).contains(&checks),
        "{checks} clock checks reached Prometheus for {n} resumed watches"
    );
}

/// A rollback's Alertmanager silence is stamped on the watch's clock (the store's), not
/// on the agent's own: an agent ten minutes fast silenced the ten minutes to come
/// (a `pending` silence) and let the service's alerts page during the rollback.
#[test]
fn a_fast_agents_silence_starts_now_on_the_stores_clock() {
    let pg = postgres::shared();
    let scratch = crate::harness::Scratch::new();
    let am = crate::harness::alertmanager::alertmanager(scratch.dir.path());
    let mut fleet = Fleet::with_env(&pg.database(), vec![skewed("+10m")]);
    fleet.rule_file(
        "sil",
        &format!(
            r#"vars:
  test:
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "sleep 1"]
  timeout: 30s
  silence:
    alertmanager: "{url}"
    matchers: {{test: "${{test}}"}}
    for: 5m
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 0s
"#,
            url = am.url
        ),
    );
    set("clk-silence", 0.9);
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "sil", "vars": {"test": "clk-silence"}, "id": "sil"})),
    );
    assert_eq!(status, 201, "{w}\n{}", fleet.dump());
    let deadline = Instant::now() + Duration::from_secs(30);
    let silence = loop {
        let all = am.silences();
        if let Some(s) = all.iter().find(|s| s["createdBy"] == "rollwatch") {
            break s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no silence: {all:#?}\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        silence["status"]["state"], "active",
        "the silence must hold now, not ten minutes from now: {silence:#}"
    );
    kill(&mut fleet, 0);
}
