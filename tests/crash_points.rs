//! Exactly once across crashes, tested the way databases are: the agent is killed
//! (SIGKILL, from inside, by the test build's `ROLLWATCH_CRASH_AT`) at every
//! persistence step of a watch whose rule fires, then restarted; and it is killed at
//! random moments of real watches, 50 times. After each restart: the rollback ran at
//! most once, a watch whose rule fired never ends healthy, and its outcome is one of
//! rolled_back, rollback_failed or rollback_unknown (never the last when only the agent
//! was killed: a command's supervisor records its exit, and a claim's intent file
//! says whether its command ever started).
//!
//! Two more tests write the half-done states of the old two-commit code into a state
//! file and check a restart reads them right (they failed before the fix).

use crate::harness::agent::{pending, rules, set, Agent, ROLLBACK};
use crate::harness::now_ms;
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::{Duration, Instant};

/// Appends "start <action id>" and, a moment later, "end <action id>".
const SLOW_ROLLBACK: &str = r#"  command: ["sh", "-c", "echo start $ROLLWATCH_ACTION_ID rerun=$ROLLWATCH_RERUN >> @DIR@/actions.log; sleep 0.3; echo end $ROLLWATCH_ACTION_ID >> @DIR@/actions.log"]
  timeout: 30s"#;

const DECIDED: &[&str] = &["rolled_back", "rollback_failed", "rollback_unknown"];

fn starts(a: &Agent) -> usize {
    a.actions()
        .iter()
        .filter(|l| l.starts_with("start"))
        .count()
}

/// Starts a watch whose rule breaches from the start (`for: 2s`) on an agent that
/// kills itself at `point`; waits for that; restarts it plainly; returns the agent and
/// the finished watch.
fn crash_at(point: &str, rollback: &str) -> (Agent, serde_json::Value) {
    let test = format!("crash-{point}");
    set(&test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", rollback));
    a.proc.take().unwrap().signal(Signal::SIGKILL);
    a.env = vec![("ROLLWATCH_CRASH_AT".into(), point.into())];
    a.start();
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let mut p = a.proc.take().unwrap();
    let code = p.wait_any(Duration::from_secs(30));
    assert_eq!(
        code,
        None,
        "the agent was to die at `{point}`; log:\n{}",
        p.dump()
    );
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

fn assert_decided(point: &str, a: &Agent, w: &serde_json::Value) {
    let outcome = w["outcome"].as_str().unwrap_or_default();
    assert!(
        DECIDED.contains(&outcome),
        "after a crash at `{point}` the fired rule ended `{outcome}`: {w}\n{}",
        a.dump()
    );
    assert!(
        starts(a) <= 1,
        "after a crash at `{point}` the rollback ran {} times: {:?}",
        starts(a),
        a.actions()
    );
}

#[test]
fn crash_when_a_series_went_pending() {
    let (a, w) = crash_at("pending_saved", SLOW_ROLLBACK);
    assert_decided("pending_saved", &a, &w);
    // Nothing had been claimed: the breach is read again and acted on, once.
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(starts(&a), 1);
}

/// Issue 19, item 10: the claim's intent file was never taken by a supervisor, so the
/// command never started; the restart takes the intent away (no supervisor can start
/// it now) and runs it, once (it ended `rollback_unknown` with no run before).
#[test]
fn crash_after_the_claim_before_the_command() {
    let (a, w) = crash_at("claim_committed", SLOW_ROLLBACK);
    assert_decided("claim_committed", &a, &w);
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(starts(&a), 1, "{:?}", a.actions());
    assert!(
        a.actions()[0].ends_with("rerun="),
        "a first run, not a re-run: {:?}",
        a.actions()
    );
    assert!(a.dump().contains("action_first_run"), "{}", a.dump());
}

/// Issue 19, item 10: the command outlives the agent, and its supervisor records how
/// it ended; the restart reads that instead of calling it unknown (it was
/// `rollback_unknown` before).
#[test]
fn crash_while_the_command_runs() {
    let (a, w) = crash_at("command_spawned", SLOW_ROLLBACK);
    assert_decided("command_spawned", &a, &w);
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(w["actions"][0]["state"], "finished", "{w}");
    assert_eq!(w["actions"][0]["result"], "succeeded", "{w}");
    assert_eq!(starts(&a), 1, "{:?}", a.actions());
    assert!(a.dump().contains("action_recovered"), "{}", a.dump());
}

/// Review 2, hole 5: a rollback that prints after the agent died is not killed by
/// SIGPIPE (its supervisor owns its pipes and relays them, dropping what nobody reads
/// any more); it ran to its end and rolled back (it was `rollback_failed`, signal 13).
#[test]
fn a_command_printing_after_the_agent_died_runs_to_its_end() {
    const PRINTS_LATE: &str = r#"  command: ["sh", "-c", "echo start >> @DIR@/actions.log; sleep 1; for i in 1 2 3 4 5; do echo line $i; echo warn $i >&2; done; echo marker >> @DIR@/actions.log"]
  timeout: 30s"#;
    let (a, w) = crash_at("command_spawned", PRINTS_LATE);
    assert_decided("command_spawned", &a, &w);
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(w["actions"][0]["result"], "succeeded", "{w}");
    assert!(
        a.actions().iter().any(|l| l == "marker"),
        "the command ran past its output: {:?}",
        a.actions()
    );
}

/// Review 2, hole 2: an agent whose binary was deleted (a package upgrade before its
/// restart) ran commands without the supervisor, and nobody took the claim's intent: a
/// restart after kill -9 read "never started" and ran the rollback a second time. The
/// supervisor is now started through `/proc/self/exe`.
#[test]
fn an_agent_whose_binary_was_deleted_still_supervises_its_command() {
    const SLOW: &str = r#"  command: ["sh", "-c", "echo start >> @DIR@/actions.log; sleep 2; echo end >> @DIR@/actions.log"]
  timeout: 30s"#;
    let test = "crash-deleted-binary";
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", SLOW));
    a.kill9();
    // A second name of the binary (a hard link: no copy), removed once it runs.
    let old = a.s.path("rollwatch-old");
    std::fs::hard_link(crate::harness::bin(), &old).unwrap();
    a.start_exe(&old, "/readyz");
    std::fs::remove_file(&old).unwrap();
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while starts(&a) == 0 {
        assert!(Instant::now() < deadline, "never started:\n{}", a.dump());
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill9();
    a.start();
    let w = a.await_finished("w", Duration::from_secs(40));
    assert_eq!(starts(&a), 1, "{:?}\n{}", a.actions(), a.dump());
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
}

/// A rollback still running when the restarted agent looks is waited for (as before a
/// re-run), and its recorded exit decides the watch: here it failed with code 3.
#[test]
fn a_command_still_running_at_restart_is_waited_for_and_its_exit_decides() {
    const FAILS_LATE: &str = r#"  command: ["sh", "-c", "echo start $ROLLWATCH_ACTION_ID >> @DIR@/actions.log; sleep 4; echo end >> @DIR@/actions.log; exit 3"]
  timeout: 30s"#;
    let (a, w) = crash_at("command_spawned", FAILS_LATE);
    assert_decided("command_spawned", &a, &w);
    assert_eq!(w["outcome"], "rollback_failed", "{w}\n{}", a.dump());
    assert_eq!(w["actions"][0]["result"], "failed with exit code 3", "{w}");
    assert_eq!(starts(&a), 1, "{:?}", a.actions());
    assert!(
        a.actions().iter().any(|l| l == "end"),
        "decided after the command ended: {:?}",
        a.actions()
    );
}

#[test]
fn crash_after_the_command_ended() {
    let (a, w) = crash_at("action_finished", SLOW_ROLLBACK);
    assert_decided("action_finished", &a, &w);
    assert_eq!(w["outcome"], "rolled_back", "decided by the row: {w}");
    assert_eq!(starts(&a), 1);
}

#[test]
fn crash_after_the_ending_was_saved() {
    let (a, w) = crash_at("ending_saved", SLOW_ROLLBACK);
    assert_decided("ending_saved", &a, &w);
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(starts(&a), 1);
}

/// An idempotent rollback that takes 2 s, still running when the agent restarts.
const IDEMPOTENT_SLOW: &str = r#"  command: ["sh", "-c", "echo start $(date +%s%3N) rerun=$ROLLWATCH_RERUN >> @DIR@/actions.log; sleep 2; echo end $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s
  idempotent: true"#;

/// The restart waits for the original (never two at once); its supervisor recorded
/// that it succeeded, so it is not run again (before issue 19's item 10, it was).
#[test]
fn an_idempotent_rerun_waits_for_the_original_command() {
    let (a, w) = crash_at("command_spawned", IDEMPOTENT_SLOW);
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    let lines = a.actions();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(kinds, vec!["start", "end"], "ran once: {lines:?}");
    let p = a.proc.as_ref().unwrap();
    assert!(
        !p.events("action_still_running").is_empty(),
        "the agent saw the original still running:\n{}",
        a.dump()
    );
    assert_eq!(p.events("action_recovered").len(), 1, "{}", a.dump());
}

/// Deletes the supervisors' records (once the one expected is there): what a command
/// whose supervisor was killed with it leaves, so that a restart must re-run it.
fn lose_exit_records(a: &Agent) {
    let dir = a.s.path("state.db.actions");
    let records = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|f| f.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "exit"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while records().is_empty() {
        assert!(Instant::now() < deadline, "no exit record in {dir:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for f in records() {
        std::fs::remove_file(f).unwrap();
    }
}

#[test]
fn crash_after_a_rerun_was_claimed_never_runs_a_third_time() {
    let test = "crash-rerun";
    set(test, 0.9);
    let mut a = Agent::new(None);
    let quick = r#"  command: ["sh", "-c", "echo start rerun=$ROLLWATCH_RERUN >> @DIR@/actions.log"]
  timeout: 30s
  idempotent: true"#;
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 0s", quick));
    a.proc.take().unwrap().signal(Signal::SIGKILL);
    for point in ["command_spawned", "rerun_claimed"] {
        a.env = vec![("ROLLWATCH_CRASH_AT".into(), point.into())];
        a.start();
        if point == "command_spawned" {
            let (status, w) =
                a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
            assert_eq!(status, 201, "{w}");
        }
        let mut p = a.proc.take().unwrap();
        assert_eq!(p.wait_any(Duration::from_secs(30)), None, "{}", p.dump());
        if point == "command_spawned" {
            lose_exit_records(&a);
        }
    }
    a.env.clear();
    a.start();
    let w = a.await_finished("w", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rollback_unknown", "{w}");
    assert_eq!(a.actions(), vec!["start rerun=".to_string()]);
    let actions = w["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{w}");
    assert_eq!(actions[0]["state"], "rerun");
    assert_eq!(actions[1]["state"], "unknown");
}

/// Review 2, hole 6: the agent dies after the claim (the command never started), and
/// the restart dies right after abandoning the intent, before the first run's claim:
/// the next restart still knows the command never ran, and runs it, once (it ended
/// `rollback_unknown` with no run before).
#[test]
fn crash_after_the_intent_was_abandoned_still_runs_the_rollback_once() {
    let test = "crash-abandoned";
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 0s", SLOW_ROLLBACK),
    );
    a.proc.take().unwrap().signal(Signal::SIGKILL);
    for point in ["claim_committed", "intent_abandoned"] {
        a.env = vec![("ROLLWATCH_CRASH_AT".into(), point.into())];
        a.start();
        if point == "claim_committed" {
            let (status, w) =
                a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
            assert_eq!(status, 201, "{w}");
        }
        let mut p = a.proc.take().unwrap();
        assert_eq!(p.wait_any(Duration::from_secs(30)), None, "{}", p.dump());
        assert!(
            p.dump().contains(&format!("crash point {point}")),
            "died at `{point}`:\n{}",
            p.dump()
        );
    }
    a.env.clear();
    a.start();
    let w = a.await_finished("w", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(starts(&a), 1, "{:?}", a.actions());
    assert!(
        a.actions()[0].ends_with("rerun="),
        "a first run, not a re-run: {:?}",
        a.actions()
    );
}

/// Stops the agent cleanly (SIGTERM suspends its watches) and opens its state file.
fn stop_and_open(a: &mut Agent) -> rusqlite::Connection {
    let mut p = a.proc.take().unwrap();
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait(Duration::from_secs(15)), 0, "{}", p.dump());
    rusqlite::Connection::open(a.s.path("state.db")).unwrap()
}

#[test]
fn a_series_stored_firing_without_its_rollback_rolls_back_at_restart() {
    // The old code stored `fired` (one commit) before the action row (another): a kill
    // between them left a firing series and no action, and the watch ended healthy.
    let test = "crash-lost-rollback";
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 4s", SLOW_ROLLBACK).replace("60s", "20s"),
    );
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}))
            .0,
        201
    );
    a.await_watch("w", Duration::from_secs(10), pending);
    let db = stop_and_open(&mut a);
    db.execute(
        "UPDATE series SET phase = 'firing' WHERE watch_id = 'w'",
        [],
    )
    .unwrap();
    drop(db);
    a.start();
    let w = a.await_finished("w", Duration::from_secs(40));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(starts(&a), 1, "{:?}", a.actions());
}

#[test]
fn a_rollback_resolved_unknown_before_the_ending_never_runs_again() {
    // The old code rewrote a `started` row as unknown at restart but stored the
    // watch's ending only after notifications drained: a kill in between left neither
    // a started row nor an ending, and the next start judged the watch live again.
    let test = "crash-double-rollback";
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 0s", SLOW_ROLLBACK),
    );
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}))
            .0,
        201
    );
    let w = a.await_finished("w", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rolled_back");
    let db = stop_and_open(&mut a);
    db.execute(
        "UPDATE watches SET state = 'running', outcome = NULL, exit_code = NULL WHERE id = 'w'",
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE actions SET state = 'unknown', succeeded = NULL WHERE watch_id = 'w'",
        [],
    )
    .unwrap();
    drop(db);
    a.start();
    let w = a.await_finished("w", Duration::from_secs(20));
    assert_eq!(w["outcome"], "rollback_unknown", "{w}");
    // Past the moment a live resume would have rolled back again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(starts(&a), 1, "{:?}", a.actions());
}

/// Rounds of the kill loop (`ROLLWATCH_KILL_ROUNDS`, default 50).
fn rounds() -> usize {
    std::env::var("ROLLWATCH_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// A small deterministic generator, seeded from the clock and printed, so that a
/// failing run can be repeated with `ROLLWATCH_KILL_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn kill_9_at_random_moments_never_duplicates_or_misses_a_rollback() {
    let test = "crash-kill-loop";
    set(test, 0.9);
    let seed = std::env::var("ROLLWATCH_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| now_ms() | 1);
    eprintln!("kill loop: seed {seed} (ROLLWATCH_KILL_SEED to repeat)");
    let mut rng = Rng(seed);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 2s", SLOW_ROLLBACK).replace("60s", "30s"),
    );
    let n = rounds();
    let started = Instant::now();
    for round in 0..n {
        let id = format!("k{round}");
        let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": id}));
        assert_eq!(status, 201, "{w}");
        // A random moment of the watches in flight: while pending, at the claim,
        // during the command, around the ending.
        std::thread::sleep(Duration::from_millis(rng.below(3500)));
        a.kill9();
        a.start();
    }
    let killed_for = started.elapsed();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let (mut duplicates, mut misses) = (0, 0);
    for round in 0..n {
        let id = format!("k{round}");
        let w = a.await_finished(&id, Duration::from_secs(60));
        let outcome = w["outcome"].as_str().unwrap_or_default().to_string();
        let tag_starts = a
            .actions()
            .iter()
            .filter(|l| l.starts_with(&format!("start {id}/")))
            .count();
        if tag_starts > 1 {
            duplicates += 1;
        }
        if !DECIDED.contains(&outcome.as_str()) || (outcome == "rolled_back" && tag_starts != 1) {
            misses += 1;
            eprintln!("miss: {id} ended {outcome} with {tag_starts} starts: {w}");
        }
        *outcomes.entry(outcome).or_default() += 1;
    }
    eprintln!(
        "kill loop: {n} kill -9s in {:.0?}; duplicates {duplicates}, misses {misses}; outcomes {outcomes:?}",
        killed_for
    );
    assert_eq!(duplicates, 0, "{:?}", a.actions());
    assert_eq!(misses, 0, "outcomes {outcomes:?}");
    // Issue 19, item 10: the agent alone was killed, never the host, so every
    // command's fate is known (its supervisor's record, or its intent never taken).
    assert_eq!(
        outcomes.get("rollback_unknown"),
        None,
        "outcomes {outcomes:?}\n{}",
        a.dump()
    );
}

/// A watch on an agent whose first `fail` claims fail as a store error would.
fn with_failing_claims(test: &str, fail: u32) -> (Agent, serde_json::Value) {
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 0s", SLOW_ROLLBACK),
    );
    a.kill9();
    a.env = vec![("ROLLWATCH_FAIL_CLAIMS".into(), fail.to_string())];
    a.start();
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished("w", Duration::from_secs(30));
    (a, w)
}

#[test]
fn a_store_briefly_failing_the_claim_is_retried() {
    let (a, w) = with_failing_claims("crash-claim-retry", 2);
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(starts(&a), 1);
}

#[test]
fn a_claim_that_cannot_be_recorded_runs_nothing() {
    let (a, w) = with_failing_claims("crash-claim-fails", 100);
    assert_eq!(w["outcome"], "rollback_failed", "{w}");
    assert!(
        w["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be recorded"),
        "{w}"
    );
    assert_eq!(starts(&a), 0, "nothing ran: {:?}", a.actions());
    let (_, metrics) = crate::harness::http_get(&a.addr, "/metrics").unwrap();
    assert!(
        metrics.contains("rollwatch_agent_store_errors_total 3"),
        "{metrics}"
    );
}

#[test]
fn every_crash_point_is_exercised_by_a_test() {
    let text = std::fs::read_to_string(crate::harness::repo_path("tests/crash_points.rs")).unwrap();
    for point in rollwatch::run::agent::exactly_once::CRASH_POINTS {
        assert!(
            text.contains(&format!("\"{point}\"")),
            "crash point `{point}` has no test here"
        );
    }
}

/// The pause path: the agent dies at each step of a pause; after the restart the pause
/// has run at most once, is never tried again, and the rollback rule still acts once.
#[test]
fn crash_during_a_pause_never_repeats_it_and_keeps_rollback_protection() {
    for point in ["claim_committed", "command_spawned", "action_finished"] {
        let test = format!("crash-pause-{point}");
        let (p, r) = (format!("{test}-p"), format!("{test}-r"));
        set(&p, 0.9);
        set(&r, 0.1);
        let mut a = Agent::new(None);
        let text = r#"vars:
  p:
  r:
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo rollback >> @DIR@/actions.log"]
pause:
  command: ["sh", "-c", "echo pause >> @DIR@/actions.log"]
rules:
  - name: p
    query: rw_value{test="${p}"}
    above: 0.5
    for: 0s
    action: pause
  - name: r
    query: rw_value{test="${r}"}
    above: 0.5
    for: 1s
"#;
        a.rule_file("checkout", text);
        a.kill9();
        a.env = vec![("ROLLWATCH_CRASH_AT".into(), point.into())];
        a.start();
        let (status, w) = a.post(json!({"rules": "checkout", "vars": {"p": p, "r": r}, "id": "w"}));
        assert_eq!(status, 201, "{w}");
        let mut proc = a.proc.take().unwrap();
        assert_eq!(
            proc.wait_any(Duration::from_secs(30)),
            None,
            "died at {point}: {}",
            proc.dump()
        );
        a.env.clear();
        a.start();
        a.await_watch("w", Duration::from_secs(10), |w| {
            w["rule_states"][1]["last_poll_ms"].is_number()
        });
        set(&r, 0.9);
        let w = a.await_finished("w", Duration::from_secs(30));
        assert_eq!(w["outcome"], "rolled_back", "{point}: {w}\n{}", a.dump());
        let lines = a.actions();
        let pauses = lines.iter().filter(|l| *l == "pause").count();
        let rollbacks = lines.iter().filter(|l| *l == "rollback").count();
        assert!(pauses <= 1, "{point}: {lines:?}");
        assert_eq!(rollbacks, 1, "{point}: {lines:?}");
    }
}

/// The last stored poll of rule `r` of watch `w` and its `breaches` windows, read from
/// the running agent's state file (WAL: a reader never blocks the agent).
fn stored_poll(a: &Agent) -> Option<(i64, String)> {
    let db = rusqlite::Connection::open_with_flags(
        a.s.path("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    db.query_row(
        "SELECT last_ms, coalesce(windows, '') FROM polls WHERE watch_id = 'w' AND rule = 'r'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

/// The rule's live `last_poll_ms` and value, as the agent's API shows them.
fn live_poll(w: &serde_json::Value) -> (i64, f64) {
    let r = &w["rule_states"][0];
    (
        r["last_poll_ms"].as_i64().unwrap_or(0),
        r["value"].as_f64().unwrap_or(f64::NAN),
    )
}

#[test]
fn a_breaches_window_survives_kill_9_and_the_next_breach_rolls_back() {
    // Issue 19, item 6: `breaches: 3 of 5`, two breaches, then kill -9. The old code
    // restored the pending series with one breach, so after the restart it needed two
    // more: here it saw one (then the value went back), and the watch ended healthy.
    let test = "crash-breaches-window";
    let series = crate::harness::agent::series(test);
    let prom = crate::harness::prometheus();
    set(test, 0.9);
    let mut a = Agent::new(None);
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    breaches: 3 of 5", ROLLBACK)
            .replace("interval: 1s", "interval: 5s")
            .replace("duration: 60s", "duration: 45s"),
    );
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    // Two breaching polls, stored with their window ("11"): then the value goes back
    // and the agent dies, before the third poll (5 s after the second).
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        match stored_poll(&a) {
            Some((at, windows)) if windows.contains("\"11\"") => break at,
            other => assert!(
                Instant::now() < deadline,
                "two breaches never stored: {other:?}\n{}",
                a.dump()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    prom.exporter.set(&series, 0.1);
    a.kill9();
    assert!(a.actions().is_empty(), "{:?}", a.actions());
    prom.await_value(&series, |x| x == Some(0.1));
    a.start();
    // The third poll (from history or live) did not breach: 2 of the last 3.
    let w = a.await_watch("w", Duration::from_secs(20), |w| {
        live_poll(w).0 >= second + 4_000
    });
    let (at, value) = live_poll(&w);
    assert!(
        at < second + 9_000 && value < 0.5,
        "the poll after the kill was to see 0.1 (the machine was too slow?): {w}"
    );
    assert_eq!(w["state"], "running", "{w}");
    // The fourth breaches: with the stored window it is the third of the last five.
    set(test, 0.9);
    let w = a.await_watch("w", Duration::from_secs(20), |w| {
        w["state"] != "running" || live_poll(w).0 >= second + 9_000
    });
    // The old code counted one breach here; the value goes back so it never fires.
    prom.exporter.set(&series, 0.1);
    let w = if w["state"] == "running" {
        a.await_finished("w", Duration::from_secs(60))
    } else {
        w
    };
    assert_eq!(
        w["outcome"],
        "rolled_back",
        "the third breach of 3 of 5 did not roll back after a restart: {w}\n{}",
        a.dump()
    );
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
}

#[test]
fn compare_pools_are_refilled_from_history_after_kill_9() {
    // Issue 19, item 6: a `compare` rule needs 10 samples a side (one a poll). Killed
    // after about 5 polls, the old agent restarted with empty pools and needed 10 more
    // polls: the 30 s watch ended before it could judge. Refilled from Prometheus's
    // history, the pools reach 10 at the poll an uninterrupted watch would.
    let test = "crash-compare-pools";
    let prom = crate::harness::prometheus();
    let side = |track: &str| format!("rw_value{{test=\"{test}\",track=\"{track}\"}}");
    for (track, v) in [("canary", 0.9), ("stable", 0.1)] {
        prom.exporter.set(&side(track), v);
        prom.await_value(&side(track), |x| x == Some(v));
    }
    let mut a = Agent::new(None);
    let rule = "    compare:\n      canary: rw_value{test=\"${test}\",track=\"canary\"}\n      stable: rw_value{test=\"${test}\",track=\"stable\"}\n      direction: increase\n      confidence: 0.98\n      min_effect: 20%\n      window: 1m\n      min_samples: 10\n    for: 0s";
    let yaml = rules(rule, ROLLBACK)
        .replace("    query: rw_value{test=\"${test}\"}\n", "")
        .replace("interval: 1s", "interval: 2s")
        .replace("duration: 60s", "duration: 30s");
    a.rule_file("checkout", &yaml);
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let created = w["created_ms"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_poll(&a).is_none_or(|(at, _)| at < created + 9_000) {
        assert!(Instant::now() < deadline, "no polls stored\n{}", a.dump());
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill9();
    assert!(a.actions().is_empty(), "{:?}", a.actions());
    a.start();
    let w = a.await_finished("w", Duration::from_secs(60));
    assert_eq!(
        w["outcome"],
        "rolled_back",
        "the compare rule was not judged after a restart: {w}\n{}",
        a.dump()
    );
    assert!(a.dump().contains("compare_pools_refilled"), "{}", a.dump());
}
