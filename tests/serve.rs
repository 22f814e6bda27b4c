//! `rollwatch serve` and `rollwatch launch`: the real binary over HTTP, against the
//! real Prometheus. Each test owns its series `rw_value{test="serve-<name>"}`, its rules
//! directory and state file, and awaits states through the API instead of sleeping.

use crate::harness::agent::{http, kill_group_in, pending, rules, series, set, Agent, ROLLBACK};
use crate::harness::receiver::receiver;
use crate::harness::{free_port, now_ms, prometheus, run, spawn_prometheus_process, Scratch};
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn launch_over_http_breach_rolls_back_exactly_once() {
    let test = "serve-breach";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    let (status, w) = a
        .post(json!({"rules": "checkout", "vars": {"test": test}, "duration": "60s", "id": "b-1"}));
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["state"], "running");
    a.await_watch("b-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    set(test, 0.9);
    let w = a.await_finished("b-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(w["exit_code"], 1);
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
    let actions = w["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{w}");
    assert_eq!(actions[0]["succeeded"], true);
    assert_eq!(actions[0]["state"], "finished");
    let (_, running) = a.req("GET", "/api/v1/watches?state=running", None);
    assert!(
        running["watches"].as_array().unwrap().is_empty(),
        "{running}"
    );
    let (status, metrics) = crate::harness::http_get(&a.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("rollwatch_agent_actions_total{kind=\"rollback\",result=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rollwatch_agent_watches{state=\"finished\"} 1"));
    assert!(metrics.contains("rollwatch_agent_schedule_lag_seconds_bucket"));
}

#[test]
fn kill_9_while_pending_then_restart_rolls_back_once_on_time() {
    let test = "serve-pending-kill";
    set(test, 0.1);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 8s", ROLLBACK));
    let (status, _) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "p-1"}));
    assert_eq!(status, 201);
    a.await_watch("p-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    set(test, 0.9);
    let w = a.await_watch("p-1", Duration::from_secs(10), pending);
    let since = w["series"][0]["since_ms"].as_u64().unwrap();
    // Killed two seconds into the breach, back a moment later: at least a poll
    // interval and a half later, so that a poll was missed and the downtime must be
    // judged from history (a restart within one interval would miss none).
    while now_ms() < since + 2000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill9();
    let killed = now_ms();
    while now_ms() < killed + 1500 {
        std::thread::sleep(Duration::from_millis(50));
    }
    a.start();
    let w = a.await_finished("p-1", Duration::from_secs(30));
    let caught_up = a.proc.as_ref().unwrap().events("catch_up");
    assert!(
        caught_up.iter().any(|e| e["polls"].as_u64() > Some(0)),
        "the downtime was judged from history:\n{}",
        a.dump()
    );
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    let actions = a.actions();
    assert_eq!(actions.len(), 1, "exactly one rollback: {actions:?}");
    let at: u64 = actions[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        at >= since + 8000,
        "rolled back {}ms after the breach began",
        at as i64 - since as i64
    );
    assert!(
        at <= since + 8000 + 1000 + 1500,
        "late: rolled back {}ms after the breach began (for is 8s, interval 1s)",
        at - since
    );
}

#[test]
fn kill_9_during_the_rollback_does_not_run_it_again() {
    let test = "serve-action-kill";
    set(test, 0.9);
    let mut a = Agent::new(None);
    let rollback = r#"  command: ["sh", "-c", "echo $$ > @DIR@/pid; echo start >> @DIR@/actions.log; sleep 20; echo done >> @DIR@/actions.log"]
  timeout: 60s"#;
    let hook = receiver(vec![200]);
    let notify = format!(
        "notify:\n  - webhook: {}\n    on: [rollback_failed]\n",
        hook.url
    );
    a.rule_file(
        "checkout",
        &(rules("    above: 0.5\n    for: 0s", rollback) + &notify),
    );
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "k-1"}))
            .0,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.actions().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the rollback never started:\n{}",
            a.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill9();
    kill_group_in(&a.s.path("pid"));
    a.start();
    let w = a.await_finished("k-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rollback_unknown", "{w}");
    assert_eq!(w["exit_code"], 3);
    assert_eq!(
        a.actions(),
        vec!["start".to_string()],
        "not run a second time"
    );
    assert_eq!(w["actions"][0]["state"], "unknown", "{w}");
    // People are told: the rollback's effect is unknown, act by hand.
    let (_, _, body) = hook.next(Duration::from_secs(10));
    assert_eq!(body["kind"], "rollback_failed", "{body}");
    assert!(
        body["summary"].as_str().unwrap().contains("unknown"),
        "{body}"
    );
}

#[test]
fn kill_9_during_an_idempotent_rollback_reruns_it_once() {
    let test = "serve-action-idem";
    set(test, 0.9);
    let mut a = Agent::new(None);
    let rollback = r#"  command: ["sh", "-c", "if [ -e @DIR@/ran ]; then echo rerun=$ROLLWATCH_RERUN >> @DIR@/actions.log; else touch @DIR@/ran; echo $$ > @DIR@/pid; echo start >> @DIR@/actions.log; sleep 20; fi"]
  timeout: 60s
  idempotent: true"#;
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 0s", rollback));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "i-1"}))
            .0,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.actions().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the rollback never started:\n{}",
            a.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill9();
    kill_group_in(&a.s.path("pid"));
    a.start();
    let w = a.await_finished("i-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(
        a.actions(),
        vec!["start".to_string(), "rerun=1".to_string()]
    );
    let actions = w["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{w}");
    assert_eq!(actions[0]["state"], "rerun");
    assert_eq!(actions[1]["rerun_of"], actions[0]["id"]);
    assert_eq!(actions[1]["succeeded"], true);
}

#[test]
fn repeated_post_with_an_id_returns_the_existing_watch() {
    let test = "serve-idem-post";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    let body = json!({"rules": "checkout", "vars": {"test": test}, "id": "same"});
    let (s1, w1) = a.post(body.clone());
    let (s2, w2) = a.post(body);
    assert_eq!((s1, s2), (201, 200), "{w1} {w2}");
    assert_eq!(w1["created_ms"], w2["created_ms"]);
    let (_, all) = a.req("GET", "/api/v1/watches", None);
    assert_eq!(all["watches"].as_array().unwrap().len(), 1, "{all}");
    let (s3, w3) = a.post(json!({"rules": "checkout", "vars": {"test": "other"}, "id": "same"}));
    assert_eq!(s3, 409, "same id, other vars: {w3}");
}

#[test]
fn token_is_required_and_a_command_field_is_rejected() {
    let a = Agent::new(Some("s3cret"));
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    assert_eq!(http(&a.addr, "GET", "/api/v1/watches", None, None).0, 401);
    assert_eq!(
        http(&a.addr, "GET", "/api/v1/watches", Some("wrong"), None).0,
        401
    );
    assert_eq!(
        http(&a.addr, "GET", "/api/v1/watches", Some("s3cret"), None).0,
        200
    );
    let (status, body) =
        a.post(json!({"rules": "checkout", "vars": {"test": "x"}, "command": ["rm", "-rf", "/"]}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("command"),
        "{body}"
    );
    let (status, body) = a.post(json!({"rules": "checkout", "vars": {"tset": "x"}}));
    assert_eq!(status, 400, "undeclared var: {body}");
    let (status, _) = a.post(json!({"rules": "../etc/passwd"}));
    assert_eq!(status, 400);
    // Health and metrics stay open.
    assert_eq!(
        crate::harness::http_get(&a.addr, "/healthz").unwrap().0,
        200
    );
    // No token: only loopback.
    let s = Scratch::new();
    let (code, _, stderr) = run(&[
        "serve",
        "--rules-dir",
        s.dir.path().to_str().unwrap(),
        "--listen",
        &format!("0.0.0.0:{}", free_port()),
        "--state",
        s.path("state.db").to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("without --token-file"), "{stderr}");
}

#[test]
fn cancel_runs_no_command() {
    let test = "serve-cancel";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "c-1"}))
            .0,
        201
    );
    set(test, 0.9);
    a.await_watch("c-1", Duration::from_secs(10), pending);
    let (status, w) = a.req("DELETE", "/api/v1/watches/c-1", None);
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["state"], "cancelled");
    // Past the point where it would have fired.
    std::thread::sleep(Duration::from_secs(5));
    assert!(a.actions().is_empty(), "{:?}", a.actions());
    let (_, w) = a.req("GET", "/api/v1/watches/c-1", None);
    assert_eq!(w["outcome"], "cancelled");
    assert_eq!(a.req("DELETE", "/api/v1/watches/c-1", None).0, 409);
    assert_eq!(a.req("DELETE", "/api/v1/watches/nope", None).0, 404);
}

#[test]
fn launch_wait_exits_with_the_codes_of_watch() {
    let test = "serve-launch";
    set(test, 0.9);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", ROLLBACK));
    let server = format!("http://{}", a.addr);
    let set_test = format!("test={test}");
    let (code, out, err) = run(&[
        "launch", "--server", &server, "--rules", "checkout", "--set", &set_test, "--wait",
    ]);
    assert_eq!(code, 1, "rolled back: {out}\n{err}");
    assert_eq!(a.actions().len(), 1);
    let healthy = "serve-launch-ok";
    set(healthy, 0.1);
    let set_ok = format!("test={healthy}");
    let (code, out, err) = run(&[
        "launch",
        "--server",
        &server,
        "--rules",
        "checkout",
        "--set",
        &set_ok,
        "--duration",
        "3s",
        "--wait",
    ]);
    assert_eq!(code, 0, "healthy: {out}\n{err}");
    let (code, _, err) = run(&["launch", "--server", &server, "--rules", "nope", "--wait"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no rule file named `nope`"), "{err}");
}

#[test]
fn editing_the_rule_file_does_not_change_a_running_watch() {
    let test = "serve-edit";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "e-1"}))
            .0,
        201
    );
    let edited = r#"  command: ["sh", "-c", "echo edited >> @DIR@/actions.log"]"#;
    a.rule_file("checkout", &rules("    above: 100\n    for: 2s", edited));
    set(test, 0.9);
    let w = a.await_finished("e-1", Duration::from_secs(30));
    assert_eq!(
        w["outcome"], "rolled_back",
        "the snapshot's threshold still applies: {w}"
    );
    let actions = a.actions();
    assert_eq!(actions.len(), 1);
    assert!(
        actions[0].starts_with("rollback "),
        "the snapshot's command ran: {actions:?}"
    );
}

#[test]
fn sigterm_suspends_watches_and_the_next_start_resumes_them() {
    let test = "serve-sigterm";
    set(test, 0.1);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "t-1"}))
            .0,
        201
    );
    a.await_watch("t-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    let mut p = a.proc.take().unwrap();
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait(Duration::from_secs(15)), 0, "{}", p.dump());
    a.start();
    let w = a.await_watch("t-1", Duration::from_secs(5), |w| w["state"] == "running");
    assert!(w["outcome"].is_null(), "{w}");
    set(test, 0.9);
    let w = a.await_finished("t-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(a.actions().len(), 1);
}

fn action_times(a: &Agent) -> Vec<u64> {
    a.actions()
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_breach_that_lasted_for_during_the_downtime_fires_at_once_on_restart() {
    let test = "serve-down-breach";
    set(test, 0.1);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 5s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "d-1"}))
            .0,
        201
    );
    a.await_watch("d-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    a.kill9();
    set(test, 0.9);
    let breached = now_ms();
    // Breached in Prometheus for longer than `for` while the agent was down.
    while now_ms() < breached + 7000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarted = now_ms();
    a.start();
    let w = a.await_finished("d-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    let caught_up = a.proc.as_ref().unwrap().events("catch_up");
    assert!(
        caught_up.iter().any(|e| e["polls"].as_u64() >= Some(5)),
        "the downtime was judged from history:\n{}",
        a.dump()
    );
    let times = action_times(&a);
    assert_eq!(times.len(), 1);
    // From the history, not after a fresh `for` (5s) of live polls.
    assert!(
        times[0] < restarted + 3000,
        "rolled back {}ms after the restart",
        times[0] - restarted
    );
}

#[test]
fn a_breach_that_ended_during_the_downtime_resolves_on_restart() {
    let test = "serve-down-resolve";
    set(test, 0.1);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 8s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "r-1"}))
            .0,
        201
    );
    a.await_watch("r-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    set(test, 0.9);
    let w = a.await_watch("r-1", Duration::from_secs(10), pending);
    let since = w["series"][0]["since_ms"].as_u64().unwrap();
    a.kill9();
    set(test, 0.1);
    std::thread::sleep(Duration::from_secs(2));
    a.start();
    a.await_watch("r-1", Duration::from_secs(10), |w| {
        w["series"].as_array().is_some_and(|s| s.is_empty())
    });
    assert!(
        a.proc
            .as_ref()
            .unwrap()
            .events("catch_up")
            .iter()
            .any(|e| e["polls"].as_u64() > Some(0)),
        "the downtime was judged from history:\n{}",
        a.dump()
    );
    // Past the moment it would have fired had the breach been assumed to continue.
    while now_ms() < since + 8000 + 2000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, w) = a.req("GET", "/api/v1/watches/r-1", None);
    assert_eq!(w["state"], "running", "{w}");
    assert!(a.actions().is_empty(), "{:?}", a.actions());
}

#[test]
fn unreadable_history_at_restart_drops_pending_state() {
    let test = "serve-down-blind";
    set(test, 0.9);
    let exporter = &prometheus().exporter;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr
    );
    let mut p = spawn_prometheus_process(dir.path(), &config, &dir.path().join("data"));
    p.await_value(&series(test), 0.9);
    let mut a = Agent::with_prometheus(None, &p.url);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 6s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "u-1"}))
            .0,
        201
    );
    let w = a.await_watch("u-1", Duration::from_secs(20), pending);
    let since = w["series"][0]["since_ms"].as_u64().unwrap();
    a.kill9();
    p.stop();
    // Down for a few polls, so there is an outage to judge.
    while now_ms() < since + 3500 {
        std::thread::sleep(Duration::from_millis(100));
    }
    a.start();
    // The outage can't be judged: the pending breach is not assumed to have continued.
    a.await_watch("u-1", Duration::from_secs(10), |w| {
        w["series"].as_array().is_some_and(|s| s.is_empty())
    });
    a.proc
        .as_ref()
        .unwrap()
        .await_event("catch_up_failed", Duration::from_secs(5));
    p.start();
    let w = a.await_watch("u-1", Duration::from_secs(20), pending);
    let since2 = w["series"][0]["since_ms"].as_u64().unwrap();
    assert!(
        since2 > since,
        "a new breach, not the old one: {since2} vs {since}"
    );
    let w = a.await_finished("u-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    let times = action_times(&a);
    assert_eq!(times.len(), 1);
    assert!(
        times[0] >= since2 + 6000,
        "a full `for` after it was seen again"
    );
}

#[test]
fn a_rollback_that_ended_before_the_watch_was_recorded_is_not_run_again() {
    let test = "serve-ended-unrecorded";
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 0s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "x-1"}))
            .0,
        201
    );
    let w = a.await_finished("x-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back");
    let mut p = a.proc.take().unwrap();
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait(Duration::from_secs(15)), 0);
    // As if the agent had died after the rollback's row was written, before the
    // watch's ending was.
    let db = rusqlite::Connection::open(a.s.path("state.db")).unwrap();
    db.execute(
        "UPDATE watches SET state = 'running', outcome = NULL, exit_code = NULL WHERE id = 'x-1'",
        [],
    )
    .unwrap();
    drop(db);
    a.start();
    let w = a.await_finished("x-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
}

#[test]
fn a_watch_that_cannot_be_resumed_yet_stays_unfinished_and_the_agent_not_ready() {
    // A credential file that is not mounted yet when the agent restarts must not end
    // its watches as invalid: they wait, the agent is not ready, and they resume.
    let test = "serve-transient";
    set(test, 0.1);
    let mut a = Agent::new(None);
    let cred = a.s.path("prom-token");
    std::fs::write(&cred, "t0k3n\n").unwrap();
    a.args = vec!["--bearer-token-file".into(), cred.to_str().unwrap().into()];
    a.kill9();
    a.start();
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "t-1"}))
            .0,
        201
    );
    a.await_watch("t-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    a.kill9();
    std::fs::remove_file(&cred).unwrap();
    a.start_with("/healthz");
    a.proc
        .as_ref()
        .unwrap()
        .await_event("resume_waiting", Duration::from_secs(10));
    assert_eq!(
        crate::harness::http_get(&a.addr, "/readyz").unwrap().0,
        503,
        "not ready while a watch waits"
    );
    let (_, w) = a.req("GET", "/api/v1/watches/t-1", None);
    assert_eq!(w["state"], "running", "not ended as invalid: {w}");
    let (_, metrics) = crate::harness::http_get(&a.addr, "/metrics").unwrap();
    assert!(
        metrics.contains("rollwatch_agent_resume_waiting 1"),
        "{metrics}"
    );
    // The file arrives: the watch resumes, the agent becomes ready, and it still acts.
    std::fs::write(&cred, "t0k3n\n").unwrap();
    crate::harness::await_ready(&a.addr, "/readyz", Duration::from_secs(15), "agent", || {
        a.dump()
    });
    set(test, 0.9);
    let w = a.await_finished("t-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(a.actions().len(), 1);
}

#[test]
fn max_blind_after_a_restart_counts_from_the_restart() {
    // It used to count from the watch's creation shifted by the time already elapsed,
    // so a watch resumed after 8s stayed "not blind" 8s too long.
    let test = "serve-blind-origin";
    set(test, 0.1);
    let exporter = &prometheus().exporter;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr
    );
    let mut p = spawn_prometheus_process(dir.path(), &config, &dir.path().join("data"));
    p.await_value(&series(test), 0.1);
    let mut a = Agent::with_prometheus(None, &p.url);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 2s", ROLLBACK)
            .replace("  interval: 1s\n", "  interval: 1s\n  max_blind: 4s\n"),
    );
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "mb-1"}))
            .0,
        201
    );
    let w = a.await_watch("mb-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    let created = w["created_ms"].as_u64().unwrap();
    while now_ms() < created + 8000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    a.kill9();
    let resumed = now_ms();
    a.start();
    // One good poll after the restart, then Prometheus goes away.
    a.await_watch("mb-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"]
            .as_u64()
            .is_some_and(|t| t > resumed)
    });
    p.stop();
    let stopped = now_ms();
    let w = a.await_finished("mb-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "inconclusive", "{w}");
    let finished = w["finished_ms"].as_u64().unwrap();
    // The last good poll was at most one interval before the stop.
    assert!(
        finished + 1000 >= stopped + 4000,
        "blind only after a full max_blind: {}ms",
        finished as i64 - stopped as i64
    );
    assert!(
        finished <= stopped + 4000 + 2500,
        "blind {}ms after Prometheus went away; max_blind is 4s",
        finished - stopped
    );
}

#[test]
fn the_api_warns_when_a_shortened_watch_leaves_a_rule_no_time_to_fire() {
    let test = "serve-never-fires";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 10s", ROLLBACK));
    let (status, w) = a
        .post(json!({"rules": "checkout", "vars": {"test": test}, "duration": "5s", "id": "nf-1"}));
    assert_eq!(status, 201, "{w}");
    let warnings = w["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{w}");
    assert!(
        warnings[0].as_str().unwrap().contains("`r`"),
        "names the rule: {w}"
    );
    // The full 60s of the file leaves it time: no warning.
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "nf-2"}));
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["warnings"], json!([]), "{w}");
}

#[test]
fn a_healthy_watch_resumed_after_its_end_stays_healthy() {
    // Its rules were judged before the agent stopped; the restart comes after the
    // watch's end, so there is no poll left to make. It used to end "blind"
    // (inconclusive), as if nothing had ever been judged.
    let test = "serve-resume-after-end";
    set(test, 0.1);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 2s", ROLLBACK).replace("duration: 60s", "duration: 6s"),
    );
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "ae-1"}))
            .0,
        201
    );
    let w = a.await_watch("ae-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    let created = w["created_ms"].as_u64().unwrap();
    while now_ms() < created + 4500 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut p = a.proc.take().unwrap();
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait(Duration::from_secs(15)), 0, "{}", p.dump());
    // As if the agent had died right after its last poll before the end was written:
    // no poll is left to catch up.
    let db = rusqlite::Connection::open(a.s.path("state.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE polls SET last_ms = ?1 WHERE watch_id = 'ae-1'",
            [created as i64 + 5999],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    while now_ms() < created + 8000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    a.start();
    let w = a.await_finished("ae-1", Duration::from_secs(20));
    assert_eq!(w["outcome"], "healthy", "{w}\n{}", a.dump());
}

/// Review 2, hole 3: a watch id of 128 characters (the longest the API takes) made the
/// claim's intent file name longer than 255 bytes (ENAMETOOLONG): every claim failed and
/// the rollback never ran. Its files are now named by a fixed-length hash.
#[test]
fn a_watch_with_a_128_character_id_rolls_back() {
    let test = "serve-long-id";
    set(test, 0.9);
    let a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", ROLLBACK));
    let id: String = "Ab9._:-".chars().cycle().take(128).collect();
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": id}));
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished(&id, Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
}

/// The agent runs with transparent huge pages off (mimalloc asked for them, and the
/// kernel zeroing 2 MB pages took a third of a 100,000-watch restart: BENCHMARKS.md,
/// issue 21), and the rollback it starts gets the setting the agent found: a child
/// inherits it, and a command must not run differently under an agent.
#[test]
fn the_agent_runs_without_huge_pages_and_its_rollback_as_found() {
    let found = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
    };
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let Some(as_found) = found(&ours) else {
        eprintln!("this kernel does not say THP_enabled in /proc/PID/status: nothing to check");
        return;
    };
    assert_eq!(
        as_found, "1",
        "the test itself runs with huge pages allowed"
    );
    let test = "serve-huge-pages";
    set(test, 0.9);
    let a = Agent::new(None);
    let rollback = r#"  command: ["sh", "-c", "grep THP_enabled /proc/self/status >> @DIR@/actions.log"]
  timeout: 30s"#;
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", rollback));
    let pid = a.proc.as_ref().unwrap().pid;
    let agent = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(found(&agent).as_deref(), Some("0"), "the agent's own");
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "thp"}));
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished("thp", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    let lines = a.actions();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        found(&lines[0]).as_deref(),
        Some("1"),
        "the rollback's: {lines:?}"
    );
}
