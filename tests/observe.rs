//! What people see: the --events stream, --report files, notifications and the live
//! view, end to end against the real Prometheus.

use crate::harness::receiver::receiver;
use crate::harness::rule_file::{rule_file, series, SERIES_OF_VAR};
use crate::harness::{prometheus, start, Scratch};
use serde_json::Value;
use std::time::Duration;

/// A rule file: rollback rule `r` (for 2s) on the test's series, plus `extra`.
fn rules(test: &str, extra_rules: &str, notify: &str) -> String {
    rule_file()
        .var("test", test)
        .var("service", "checkout")
        .watch("  duration: 40s\n  interval: 1s")
        .rollback(
            "echo rolling back $ROLLWATCH_VAR_SERVICE; echo rollback $(date +%s%3N) >> @DIR@/actions.log",
            Some("30s"),
        )
        .rule(
            "r",
            None,
            &format!("    description: the test's <signal>\n    query: {SERIES_OF_VAR}\n    above: 0.5\n    for: 2s\n    interval: 1s"),
        )
        .tail(extra_rules)
        .tail(notify)
        .build()
}

#[test]
fn report_and_event_stream_show_the_whole_watch() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "report";
    prom.exporter.set(&series(name), 0.1);
    prom.await_value(&series(name), |v| v == Some(0.1));
    let file = s.rules(&rules(name, "", ""));
    let report = s.path("report");
    let events = s.path("events.jsonl");
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--report",
        report.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    w.await_event("poll", Duration::from_secs(10));
    w.await_event("poll", Duration::from_secs(10));
    prom.exporter.set(&series(name), 0.9);
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());

    // The event stream: state changes, actions and the outcome, in order, no polls.
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "watch_started",
            "pending",
            "fired",
            "action_started",
            "action_finished",
            "watch_finished"
        ]
    );
    assert!(lines
        .iter()
        .all(|v| v["unix_ms"].is_i64() && v["time"].is_string()));
    assert_eq!(lines[5]["outcome"], "rolled_back");

    // report.json: parameters, every sample, transitions, the action and the outcome.
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(doc["kind"], "watch");
    assert_eq!(doc["vars"]["service"], "checkout");
    let rule = &doc["rules"][0];
    assert_eq!(rule["name"], "r");
    let samples = rule["samples"].as_array().unwrap();
    assert!(samples.len() >= 4, "{doc:#}");
    assert!(samples.iter().any(|s| s["value"] == 0.1) && samples.iter().any(|s| s["value"] == 0.9));
    assert!(samples
        .iter()
        .all(|s| s["t"].is_i64() && s["state"]["kind"].is_string()));
    let kinds: Vec<&str> = rule["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pending", "fired"]);
    let action = &doc["actions"][0];
    assert_eq!(action["action"], "rollback");
    assert_eq!(action["status"], "succeeded");
    assert_eq!(action["succeeded"], true);
    assert!(action["duration_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(action["output_tail"][0], "rolling back checkout");
    assert_eq!(doc["outcome"]["outcome"], "rolled_back");
    assert_eq!(doc["outcome"]["exit_code"], 1);

    // report.md: outcome first, then the rules table, then actions.
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    let (o, r, a) = (
        md.find("**Outcome:").unwrap(),
        md.find("## Rules").unwrap(),
        md.find("## Actions").unwrap(),
    );
    assert!(o < r && r < a, "{md}");
    assert!(md.contains("| `r` | > 0.5 | 2s | 0.9 |"), "{md}");
    assert!(md.contains("**fired → rollback**"), "{md}");

    // report.html: self-contained, one chart with threshold, spans and the action.
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(!html.contains("<script") && html.contains("<svg"));
    for class in [
        "threshold",
        "values",
        "span-pending",
        "span-breached",
        "action",
    ] {
        assert!(
            html.contains(&format!("class=\"{class}\"")),
            "no {class} in the chart"
        );
    }
    assert!(
        html.contains("the test&#39;s &lt;signal&gt;"),
        "text is escaped"
    );
}

#[test]
fn report_is_written_when_the_watch_is_interrupted() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(&rules("report-sigterm", "", ""));
    let report = s.path("report");
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--report",
        report.to_str().unwrap(),
    ]);
    w.await_event("poll", Duration::from_secs(10));
    w.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(w.wait(Duration::from_secs(10)), 143);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(doc["outcome"]["outcome"], "interrupted");
    assert!(report.join("report.md").exists() && report.join("report.html").exists());
}

#[test]
fn webhook_and_slack_payloads_say_what_happened_and_retry_on_500() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "notify-payloads";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let hook = receiver(vec![500, 200]);
    let slack = receiver(vec![200]);
    let slack_file = s.path("slack-url");
    std::fs::write(&slack_file, format!("{}\n", slack.url)).unwrap();
    let notify = format!(
        "notify:\n  - webhook: {{env: RW_TEST_HOOK}}\n    on: [rollback]\n    timeout: 2s\n  - slack: {{file: {}}}\n    on: [rollback]\n",
        slack_file.display()
    );
    let file = s.rules(&rules(name, "", &notify));
    // The webhook URL comes from the environment, the Slack one from a file.
    let mut w = crate::harness::start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
        ],
        &[("RW_TEST_HOOK", &hook.url)],
    );
    assert_eq!(w.wait(Duration::from_secs(40)), 1, "{}", w.dump());

    // The webhook answered 500 first: the same payload came again.
    let (_, _, first) = hook.next(Duration::from_secs(5));
    let (_, _, second) = hook.next(Duration::from_secs(5));
    assert_eq!(first, second, "the retry carries the same payload");
    assert_eq!(first["kind"], "rollback");
    assert_eq!(first["vars"]["service"], "checkout");
    assert_eq!(first["rule"], "r");
    assert_eq!(first["value"], 0.9);
    assert_eq!(first["threshold"], "> 0.5");
    assert!(first["breached_for_s"].as_f64().unwrap() >= 2.0);
    assert_eq!(first["action"]["status"], "succeeded");
    assert!(first["graph_url"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr="));
    assert!(first["summary"].as_str().unwrap().contains("rolled back"));

    let (_, _, msg) = slack.next(Duration::from_secs(5));
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.contains("service=checkout") && text.contains("rolled back") && text.contains("> 0.5"),
        "{text}"
    );
    assert_eq!(msg["blocks"][0]["type"], "section");

    let log = w.dump();
    assert!(
        log.contains("notification_retry") && log.contains("notification_sent"),
        "{log}"
    );
    assert!(
        !log.contains(&hook.url) && !log.contains(&slack.url),
        "channel URLs are secrets:\n{log}"
    );
}

#[test]
fn a_hanging_receiver_never_delays_the_rollback() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "notify-hang";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let hook = receiver(vec![0]);
    // A notify rule fires at once (for 0s) and its delivery hangs; the rollback rule
    // fires 2s later and must act at once regardless.
    let extra = "  - name: heads-up\n    query: rw_value{test=\"${test}\"}\n    above: 0.5\n    for: 0s\n    action: notify\n";
    let notify = format!(
        "notify:\n  - webhook: {}\n    timeout: 1s\n    retries: 1\n",
        hook.url
    );
    let file = s.rules(&rules(name, extra, &notify));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    let notified = hook.next(Duration::from_secs(10));
    let fired = w.await_event("fired", Duration::from_secs(10));
    let fired = if fired["rule"] == "r" {
        fired
    } else {
        w.await_event("fired", Duration::from_secs(10))
    };
    assert_eq!(fired["rule"], "r");
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    let acted: u64 = s.lines("actions.log")[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let fired_ms = fired["unix_ms"].as_u64().unwrap();
    assert!(
        notified.0 <= fired_ms,
        "the notification was sent before the rollback fired"
    );
    assert!(
        acted - fired_ms < 1000,
        "rollback ran {}ms after firing despite the hanging receiver",
        acted - fired_ms
    );
    assert!(
        w.dump().contains("notification_failed"),
        "the failed delivery is logged"
    );
}

#[test]
fn live_view_on_a_terminal_shows_rules_and_states() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "live";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let file = s.rules(
        &rules(name, "", "")
            .replace("duration: 40s", "duration: 4s")
            .replace("for: 2s", "for: 1m"),
    );
    let cmd = format!(
        "{} watch --rules {} --prometheus {}",
        crate::harness::bin(),
        file.display(),
        prom.url
    );
    // `script` runs the watch on a pseudo-terminal and copies what it draws.
    let out = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .output()
        .expect("run script (util-linux)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("\u{1b}["),
        "drawn with terminal escapes: {screen}"
    );
    assert!(screen.contains("watch "), "the time bar: {screen}");
    assert!(screen.contains("PENDING"), "the rule's state: {screen}");
    assert!(
        screen.contains("vs > 0.5"),
        "value against threshold: {screen}"
    );
    assert!(screen.contains("watch finished"), "{screen}");
    assert!(
        !screen.contains("\"event\""),
        "no JSON log lines on a terminal: {screen}"
    );
}

#[test]
fn no_terminal_means_plain_json_lines_without_escape_codes() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(&rules("plain", "", "").replace("duration: 40s", "duration: 2s"));
    let (code, _, stderr) = crate::harness::run(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(stderr.lines().all(|l| l.starts_with('{')), "{stderr}");
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| rollwatch::io::action::find_program(c).is_some())
    else {
        panic!("chromium is required for this test (.ci/run installs Debian's `chromium`)");
    };
    let prom = prometheus();
    let s = Scratch::new();
    let name = "html";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let file = s.rules(&rules(name, "", ""));
    let report = s.path("report");
    let (code, _, stderr) = crate::harness::run(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let html = report.join("report.html");
    let profile = s.path("chromium-profile");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let dom = std::process::Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<svg") && dom.contains("class=\"values\""),
        "the browser parsed the chart: {dom}"
    );
    let shot = s.path("report.png");
    let out = std::process::Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=900,700")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real rendering, {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("ROLLWATCH_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
