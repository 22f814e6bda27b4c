//! The fault suite: `rollwatch watch` against a real Prometheus behind a proxy that
//! injects one fault at a time while the watch runs, a Prometheus restarted in the
//! middle of a watch, and rollback commands that hang or flood their output.
//!
//! Every fault test shows both halves: while the fault lasts nothing happens that the
//! data did not call for (the rules use `no_data: breach`, so a failure mistaken for
//! missing data would roll back within `for`), each failed poll is logged naming the
//! fault, and once the fault ends a real breach still rolls back on time.

use crate::harness::proxy::{Mode, Proxy, STATUS_ERROR_MESSAGE, WARNING};
use crate::harness::rule_file::{rule_file, series, SERIES_OF_VAR};
use crate::harness::{now_ms, prometheus, spawn_prometheus_process, start, Running, Scratch};
use serde_json::Value;
use std::time::Duration;

const FOR_MS: u64 = 2000;
const INTERVAL_MS: u64 = 1000;

/// One rule on `rw_value{test="<test>"}`: above 0.5 for 2s, polled every second, a
/// missing series counts as a breach. `watch` is extra `watch:` keys.
fn rules(test: &str, watch: &str) -> String {
    rule_file()
        .var("test", test)
        .watch("  duration: 60s\n  interval: 1s\n  query_timeout: 1s")
        .watch(watch)
        .rollback(
            "echo rollback $(date +%s%3N) >> @DIR@/actions.log",
            Some("30s"),
        )
        .rule(
            "r",
            Some(SERIES_OF_VAR),
            "    above: 0.5\n    for: 2s\n    no_data: breach",
        )
        .build()
}

fn watch(file: &std::path::Path, url: &str) -> Running {
    start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        url,
    ])
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Nothing pending, fired or run so far.
fn assert_nothing_acted(w: &Running, s: &Scratch, while_: &str) {
    assert!(
        w.events("pending").is_empty() && w.events("fired").is_empty(),
        "{while_}: a rule went pending or fired on no real breach:\n{}",
        w.dump()
    );
    assert!(
        s.lines("actions.log").is_empty(),
        "{while_}: a command ran:\n{}",
        w.dump()
    );
}

/// Sets the series to breach and asserts the rollback follows on time: `fired` comes
/// no sooner than `for` after the breach and within one poll interval of `for` after
/// `pending`, and the watch exits 1 after exactly one rollback.
fn assert_breach_rolls_back_on_time(w: &mut Running, s: &Scratch, name: &str) {
    let set_at = now_ms();
    prometheus().exporter.set(&series(name), 0.9);
    let pending = w.await_event("pending", Duration::from_secs(10));
    let fired = w.await_event("fired", Duration::from_secs(10));
    assert_eq!(w.wait(Duration::from_secs(15)), 1, "{}", w.dump());
    let pending_ms = pending["unix_ms"].as_u64().unwrap();
    let fired_ms = fired["unix_ms"].as_u64().unwrap();
    // `for` counts from where the breach began in the data (issue 21), which may be
    // before the poll that saw it: never before `for` from the breach itself, and no
    // later than `for` plus a poll after the pending poll.
    assert!(
        fired_ms >= set_at + FOR_MS,
        "fired {}ms after the breach began (for: {FOR_MS}ms):\n{}",
        fired_ms - set_at,
        w.dump()
    );
    let waited = fired_ms - pending_ms;
    assert!(
        waited <= FOR_MS + INTERVAL_MS + 500,
        "fired {waited}ms after pending (for: {FOR_MS}ms, interval {INTERVAL_MS}ms):\n{}",
        w.dump()
    );
    // Scrape (1s) + poll (1s) + `for` + poll, with slack.
    assert!(
        fired_ms <= set_at + FOR_MS + 4 * INTERVAL_MS,
        "fired {}ms after the breach began:\n{}",
        fired_ms.saturating_sub(set_at),
        w.dump()
    );
    assert_eq!(s.lines("actions.log").len(), 1, "{}", w.dump());
}

/// The common shape of a fault test: healthy data, the fault from the first poll for
/// three polls, each failure logged naming the fault; then the fault ends, judging
/// resumes, and a breach rolls back on time.
fn fault_then_recovery(name: &str, mode: Mode, names_the_fault: &[&str]) {
    let prom = prometheus();
    let s = Scratch::new();
    prom.exporter.set(&series(name), 0.1);
    prom.await_value(&series(name), |v| v == Some(0.1));
    let proxy = Proxy::start(&prom.addr);
    proxy.set(mode.clone());
    let file = s.rules(&rules(name, "  max_blind: 30s"));
    let mut w = watch(&file, &proxy.url);
    for _ in 0..3 {
        let failed = w.await_event("query_failed", Duration::from_secs(10));
        let error = text(&failed, "error");
        assert!(
            names_the_fault.iter().all(|n| error.contains(n)),
            "{mode:?}: the log line does not name the fault ({names_the_fault:?}): {failed}"
        );
        assert_eq!(text(&failed, "rule"), "r");
    }
    assert!(
        w.events("poll").is_empty(),
        "{mode:?}: a poll succeeded during the fault:\n{}",
        w.dump()
    );
    assert_nothing_acted(&w, &s, &format!("{mode:?}"));

    proxy.set(Mode::Pass);
    let poll = w.await_event("poll", Duration::from_secs(10));
    assert_eq!(text(&poll, "state"), "ok", "{poll}");
    assert_nothing_acted(&w, &s, "after the fault");
    assert_breach_rolls_back_on_time(&mut w, &s, name);
}

#[test]
fn latency_beyond_the_query_timeout() {
    fault_then_recovery(
        "proxy-delay",
        Mode::Delay(Duration::from_secs(3)),
        &["timed out after 1s"],
    );
}

#[test]
fn plain_text_503_as_before_prometheus_is_ready() {
    fault_then_recovery(
        "proxy-503",
        Mode::Text(503, "Service Unavailable"),
        &["HTTP 503", "Service Unavailable"],
    );
}

#[test]
fn http_500() {
    fault_then_recovery(
        "proxy-500",
        Mode::Text(500, "Internal Server Error"),
        &["HTTP 500", "Internal Server Error"],
    );
}

#[test]
fn truncated_json() {
    fault_then_recovery(
        "proxy-truncated",
        Mode::Truncated,
        &["unreadable response", "EOF while parsing"],
    );
}

#[test]
fn malformed_json() {
    fault_then_recovery("proxy-malformed", Mode::Malformed, &["unreadable response"]);
}

#[test]
fn connection_reset() {
    fault_then_recovery("proxy-reset", Mode::Reset, &["request failed", "reset"]);
}

#[test]
fn status_error_body() {
    fault_then_recovery(
        "proxy-status-error",
        Mode::StatusError,
        &[
            "Prometheus returned an error (execution)",
            STATUS_ERROR_MESSAGE,
        ],
    );
}

#[test]
fn warnings_are_logged_and_the_data_is_still_judged() {
    let name = "proxy-warnings";
    let prom = prometheus();
    let s = Scratch::new();
    prom.exporter.set(&series(name), 0.1);
    prom.await_value(&series(name), |v| v == Some(0.1));
    let proxy = Proxy::start(&prom.addr);
    proxy.set(Mode::Warnings);
    let file = s.rules(&rules(name, "  max_blind: 30s"));
    let mut w = watch(&file, &proxy.url);
    for _ in 0..2 {
        let warned = w.await_event("query_warning", Duration::from_secs(10));
        assert_eq!(text(&warned, "warning"), WARNING, "{warned}");
        let poll = w.await_event("poll", Duration::from_secs(10));
        assert_eq!(text(&poll, "state"), "ok", "{poll}");
    }
    assert_nothing_acted(&w, &s, "with warnings");
    // A partial answer is still an answer: a breach in it is acted on.
    assert_breach_rolls_back_on_time(&mut w, &s, name);
    assert!(w.events("query_failed").is_empty(), "{}", w.dump());
    proxy.set(Mode::Pass);
}

#[test]
fn a_fault_outlasting_max_blind_is_inconclusive_even_over_a_real_breach() {
    let name = "proxy-blind";
    let prom = prometheus();
    let s = Scratch::new();
    // The data breaches, but rollwatch cannot see it: it must not guess.
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let proxy = Proxy::start(&prom.addr);
    proxy.set(Mode::Text(503, "Service Unavailable"));
    let file = s.rules(&rules(name, "  max_blind: 3s"));
    let mut w = watch(&file, &proxy.url);
    assert_eq!(w.wait(Duration::from_secs(15)), 4, "{}", w.dump());
    assert_nothing_acted(&w, &s, "blind");
    let blind = w.events("blind");
    assert_eq!(blind.len(), 1, "{}", w.dump());
    assert!(
        text(&blind[0], "message").contains("max_blind"),
        "{}",
        blind[0]
    );
    assert!(w.events("query_failed").len() >= 2, "{}", w.dump());
}

#[test]
fn prometheus_restart_in_the_middle_of_a_watch() {
    let name = "restart";
    let exporter = &prometheus().exporter;
    exporter.set(&series(name), 0.1);
    let s = Scratch::new();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr
    );
    let prom_dir = tempfile::tempdir().unwrap();
    let mut p = spawn_prometheus_process(prom_dir.path(), &config, &prom_dir.path().join("data"));
    p.await_value(&series(name), 0.1);
    let file = s.rules(&rules(name, "  max_blind: 30s"));
    let mut w = watch(&file, &p.url);
    let poll = w.await_event_where("poll", Duration::from_secs(15), |v| v["value"] == "0.1");
    assert_eq!(text(&poll, "state"), "ok", "{poll}");

    p.stop();
    for _ in 0..2 {
        let failed = w.await_event("query_failed", Duration::from_secs(10));
        assert!(
            text(&failed, "error").contains("cannot connect to Prometheus"),
            "{failed}"
        );
    }
    assert_nothing_acted(&w, &s, "while Prometheus was down");

    let restarted_s = now_ms() / 1000 + 1;
    p.start();
    // A restarted Prometheus serves the samples it had (the lookback window) before it
    // scrapes again, some seconds later: the breach is timed from its first new scrape.
    p.await_value(
        &format!("timestamp({}) > bool {restarted_s}", series(name)),
        1.0,
    );
    let poll = w.await_event_where("poll", Duration::from_secs(15), |v| v["value"] == "0.1");
    assert_eq!(text(&poll, "state"), "ok", "{poll}");
    assert_nothing_acted(&w, &s, "after the restart");
    assert_breach_rolls_back_on_time(&mut w, &s, name);
}

/// Whether a process is alive (a zombie awaiting its reaper counts as gone).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false)
}

#[test]
fn hanging_rollback_is_killed_with_its_children_and_exits_3() {
    let name = "hang";
    let prom = prometheus();
    let s = Scratch::new();
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    // The command and the child it spawns both ignore SIGTERM, so only the SIGKILL
    // after the grace period stops them.
    let yaml = rules(name, "").replace(
        r#"command: ["sh", "-c", "echo rollback $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s"#,
        r#"command: ["sh", "-c", "trap '' TERM; sleep 300 & echo $! > @DIR@/grandchild.pid; echo started; wait"]
  timeout: 1s"#,
    );
    let file = s.rules(&yaml.replace("for: 2s", "for: 0s"));
    let mut w = watch(&file, &prom.url);
    w.await_event("action_started", Duration::from_secs(10));
    let finished = w.await_event("action_finished", Duration::from_secs(20));
    assert_eq!(
        text(&finished, "status"),
        "timed out and was killed",
        "{finished}"
    );
    assert_eq!(w.wait(Duration::from_secs(10)), 3, "{}", w.dump());
    let pid: i32 = s.lines("grandchild.pid")[0].parse().unwrap();
    // Death is asynchronous: give the kernel a bounded moment to finish it.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(pid),
        "the rollback's child {pid} outlived the timeout"
    );
    assert_eq!(w.events("action_started").len(), 1, "no second attempt");
}

#[test]
fn rollback_flooding_its_output_does_not_stall_the_watch() {
    let name = "flood";
    let prom = prometheus();
    let s = Scratch::new();
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    // 50 MB in one line (cut at 4 KiB when logged), then 50 MB as 25,000,000 short
    // lines. Alone this takes well under a second; logging every line used to slow it
    // down past a minute, so it was killed at its timeout and reported as failed.
    let yaml = rules(name, "").replace(
        r#"command: ["sh", "-c", "echo rollback"#,
        r#"command: ["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' y; echo; yes | head -c 50000000; echo rollback"#,
    );
    let yaml = yaml.replace("timeout: 30s", "timeout: 20s");
    let file = s.rules(&yaml.replace("for: 2s", "for: 0s"));
    let mut w = watch(&file, &prom.url);
    let finished = w.await_event("action_finished", Duration::from_secs(30));
    assert_eq!(text(&finished, "status"), "succeeded", "{finished}");
    assert_eq!(w.wait(Duration::from_secs(10)), 1);
    assert_eq!(s.lines("actions.log").len(), 1);
    let log = w.log.lock().unwrap();
    let output: Vec<&Value> = log.iter().filter(|v| v["stream"] == "stdout").collect();
    let long = output[0]["message"].as_str().unwrap();
    assert!(
        long.ends_with("[line cut]") && long.len() < 5000,
        "{}",
        &long[..100]
    );
    // The first lines are logged one by one, the rest counted.
    let summary = output.last().unwrap();
    assert_eq!(summary["lines"], 25_000_001, "{summary}");
    assert!(
        text(summary, "message").contains("more lines were not logged"),
        "{summary}"
    );
    assert!(output.len() < 2000, "{} output lines logged", output.len());
}
