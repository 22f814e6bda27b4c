//! `rollwatch gate`: the built binary deciding go / no-go over fixed `--at` times, the
//! emergency record, the health check against the real Prometheus, and bad calendars.

use crate::harness::{prometheus, repo_path, run, Scratch};
use serde_json::Value;

fn seed() -> String {
    repo_path("rules/calendar.yaml").display().to_string()
}

fn gate(extra: &[&str]) -> (i32, String, String) {
    let cal = seed();
    let mut args = vec!["gate", "--calendar", cal.as_str()];
    args.extend_from_slice(extra);
    run(&args)
}

/// An always-open calendar, so only the health check decides.
fn open_calendar(s: &Scratch) -> String {
    let p = s.path("open.yaml");
    std::fs::write(&p, "timezone: UTC\nfreezes: []\n").unwrap();
    p.display().to_string()
}

fn rule_file(s: &Scratch, name: &str, no_data: &str) -> String {
    let yaml = crate::harness::rule_file::rule_file()
        .watch("  duration: 1m\n  interval: 5s")
        .rule(
            name,
            Some(&crate::harness::rule_file::series(name)),
            &format!("    above: 1\n    for: 5m\n    no_data: {no_data}\n    action: notify"),
        )
        .build();
    s.rules(&yaml).display().to_string()
}

#[test]
fn go_inside_a_window() {
    // Thu 2026-03-12 03:00 New York time, inside thursday-maintenance.
    let (code, stdout, stderr) = gate(&["--at", "2026-03-12T03:00:00-04:00"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("GO at Thu 2026-03-12 03:00 EDT (2026-03-12 07:00 UTC)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[ok] inside window `thursday-maintenance`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("next window: window `sunday-maintenance` opens Sun 2026-03-15 02:00 EDT (2026-03-15 06:00 UTC)"),
        "{stdout}"
    );
}

#[test]
fn no_go_in_a_freeze_names_it_and_the_next_window() {
    // Thu 2026-03-26, inside a window but in the month-end freeze (Mar 25-31); Sun
    // Mar 29 is frozen too, so the next window is Thu Apr 2. Unix seconds work as --at.
    let at = "1774508400"; // 2026-03-26T07:00:00Z
    let (code, stdout, stderr) = gate(&["--at", at]);
    assert_eq!(code, 6, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("NO-GO at Thu 2026-03-26 03:00 EDT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[blocks] inside freeze `month-end` (the last 7 days of every month: 2026-03-25 to 2026-03-31)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("next window: window `thursday-maintenance` opens Thu 2026-04-02 02:00 EDT (2026-04-02 06:00 UTC), closes Thu 2026-04-02 06:00 EDT (2026-04-02 10:00 UTC)"),
        "{stdout}"
    );

    let (code, stdout, _) = gate(&["--at", at, "--format", "json"]);
    assert_eq!(code, 6);
    let j: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(j["decision"], "no-go");
    assert_eq!(j["at"], "2026-03-26T03:00:00-04:00");
    assert_eq!(j["emergency"], Value::Null);
    let freeze = j["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "freeze")
        .expect("a freeze reason");
    assert_eq!(freeze["name"], "month-end");
    assert_eq!(freeze["blocks"], true);
    assert_eq!(j["next_window"]["name"], "thursday-maintenance");
    assert_eq!(j["next_window"]["opens_at"], "2026-04-02T02:00:00-04:00");
    assert_eq!(j["next_window"]["closes_at"], "2026-04-02T06:00:00-04:00");
    assert_eq!(j["rules"], serde_json::json!([]));
}

#[test]
fn no_go_outside_windows_on_the_dst_day() {
    // Sun 2026-03-08 01:30 EST; 02:00 does not exist that day, so the window opens at
    // 03:00 EDT.
    let (code, stdout, _) = gate(&["--at", "2026-03-08T06:30:00Z"]);
    assert_eq!(code, 6, "{stdout}");
    assert!(
        stdout.contains("[blocks] outside every deploy window"),
        "{stdout}"
    );
    assert!(
        stdout.contains("next window: window `sunday-maintenance` opens Sun 2026-03-08 03:00 EDT (2026-03-08 07:00 UTC)"),
        "{stdout}"
    );
}

#[test]
fn an_emergency_goes_through_a_freeze_and_is_recorded() {
    let s = Scratch::new();
    let events = s.path("events.jsonl").display().to_string();
    let args = [
        "--at",
        "2026-12-28T15:00:00Z", // a Monday in both freezes, outside windows
        "--emergency",
        "CVE-2026-1234 patch",
        "--events",
        &events,
        "--log-format",
        "json",
    ];
    let (code, stdout, stderr) = gate(&args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("GO at"), "{stdout}");
    assert!(
        stdout.contains(
            "emergency change \"CVE-2026-1234 patch\" bypassed: outside-windows, freeze:month-end, freeze:holidays; recorded"
        ),
        "{stdout}"
    );
    let logged: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["event"] == "emergency_change")
        .collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    assert_eq!(logged[0]["level"], "WARN");
    assert_eq!(logged[0]["reason"], "CVE-2026-1234 patch");

    // A second emergency appends to the same file.
    let (code, _, _) = gate(&args);
    assert_eq!(code, 0);
    let lines = s.lines("events.jsonl");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let rec: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(rec["event"], "emergency_change");
    assert_eq!(rec["reason"], "CVE-2026-1234 patch");
    assert_eq!(rec["decision"], "go");
    assert_eq!(rec["at"], "2026-12-28T10:00:00-05:00");
    assert_eq!(
        rec["bypassed"],
        serde_json::json!(["outside-windows", "freeze:month-end", "freeze:holidays"])
    );
    assert!(rec["recorded_at"].is_string());
}

#[test]
fn a_freeze_with_emergency_false_refuses_even_an_emergency() {
    let s = Scratch::new();
    let cal = s.path("cal.yaml");
    std::fs::write(
        &cal,
        "timezone: Europe/Berlin\nfreezes:\n  - name: audit\n    from: 2026-06-01\n    to: 2026-06-05\n    emergency: false\n",
    )
    .unwrap();
    let events = s.path("events.jsonl").display().to_string();
    let (code, stdout, stderr) = run(&[
        "gate",
        "--calendar",
        &cal.display().to_string(),
        "--at",
        "2026-06-03T12:00:00+02:00",
        "--emergency",
        "hotfix",
        "--events",
        &events,
    ]);
    assert_eq!(code, 6, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("not even an emergency change may bypass it (`emergency: false`)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("emergency change \"hotfix\" refused by: freeze:audit"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "next window: deploys opens Sat 2026-06-06 00:00 CEST (2026-06-05 22:00 UTC)"
        ),
        "{stdout}"
    );
    // The refused attempt is on record too.
    let lines = s.lines("events.jsonl");
    assert_eq!(lines.len(), 1);
    let rec: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(rec["decision"], "no-go");
    assert_eq!(rec["refused_by"], serde_json::json!(["freeze:audit"]));
}

#[test]
fn an_emergency_that_cannot_be_recorded_does_not_go() {
    let (code, stdout, stderr) = gate(&[
        "--at",
        "2026-12-24T15:00:00Z",
        "--emergency",
        "fix",
        "--events",
        "/nonexistent-dir/events.jsonl",
    ]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("cannot record the emergency change in /nonexistent-dir/events.jsonl"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn a_breached_rule_is_no_go_and_a_healthy_one_go() {
    let prom = prometheus();
    prom.exporter.set("rw_value{test=\"gate-breach\"}", 5.0);
    prom.exporter.set("rw_value{test=\"gate-healthy\"}", 0.5);
    prom.await_value("rw_value{test=\"gate-breach\"}", |v| v == Some(5.0));
    prom.await_value("rw_value{test=\"gate-healthy\"}", |v| v == Some(0.5));
    let s = Scratch::new();
    let cal = open_calendar(&s);

    let rules = rule_file(&s, "gate-breach", "ok");
    let base = [
        "gate",
        "--calendar",
        &cal,
        "--rules",
        &rules,
        "--prometheus",
        &prom.url,
    ];
    let (code, stdout, stderr) = run(&base);
    assert_eq!(code, 6, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("[blocks] rule `gate-breach` is breached now (5; breached when > 1): don't deploy into an incident"),
        "{stdout}"
    );
    let mut json_args = base.to_vec();
    json_args.extend(["--format", "json"]);
    let (code, stdout, _) = run(&json_args);
    assert_eq!(code, 6);
    let j: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        j["rules"],
        serde_json::json!([{"name": "gate-breach", "value": 5.0, "threshold": "> 1", "breached": true, "error": null}])
    );

    // An emergency fix may go into the incident; the bypass is on record.
    let mut emergency = base.to_vec();
    emergency.extend(["--emergency", "the fix for this incident"]);
    let (code, stdout, _) = run(&emergency);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("bypassed: rule:gate-breach"), "{stdout}");

    let rules = rule_file(&s, "gate-healthy", "ok");
    let (code, stdout, stderr) = run(&[
        "gate",
        "--calendar",
        &cal,
        "--rules",
        &rules,
        "--prometheus",
        &prom.url,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("[ok] all 1 rule of") && stdout.contains("are within their thresholds now"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule `gate-healthy`: 0.5 (breached when > 1) ok"),
        "{stdout}"
    );
}

#[test]
fn no_data_counts_as_breached_only_when_the_rule_says_so() {
    let prom = prometheus();
    let s = Scratch::new();
    let cal = open_calendar(&s);
    for (no_data, want) in [("breach", 6), ("ok", 0), ("hold", 0)] {
        let rules = rule_file(&s, "gate-absent", no_data);
        let (code, stdout, stderr) = run(&[
            "gate",
            "--calendar",
            &cal,
            "--rules",
            &rules,
            "--prometheus",
            &prom.url,
        ]);
        assert_eq!(code, want, "no_data: {no_data}\n{stdout}\n{stderr}");
    }
}

#[test]
fn an_unreachable_prometheus_is_no_go() {
    let s = Scratch::new();
    let cal = open_calendar(&s);
    let rules = rule_file(&s, "gate-unreachable", "ok");
    let (code, stdout, stderr) = run(&[
        "gate",
        "--calendar",
        &cal,
        "--rules",
        &rules,
        "--prometheus",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, 6, "{stdout}\n{stderr}");
    assert!(
        stdout
            .contains("rule `gate-unreachable` could not be queried (cannot connect to Prometheus"),
        "{stdout}"
    );
    assert!(
        stdout.contains("so the system cannot be shown to be healthy"),
        "{stdout}"
    );
}

/// Each `tests/fixtures/calendars/NAME.yaml` fails `gate` and `check` with exit 2 and
/// exactly the stderr in `NAME.stderr` (run with `BLESS=1` to rewrite the snapshots;
/// refused where `CI` is set).
#[test]
fn bad_calendars_fail_with_their_snapshot() {
    let mode = crate::harness::SnapshotMode::from_env();
    let dir = repo_path("tests/fixtures/calendars");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "yaml")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 4);
    let mut failures = Vec::new();
    for name in names {
        let rel = format!("tests/fixtures/calendars/{name}.yaml");
        let snap = dir.join(format!("{name}.stderr"));
        for cmd in [vec!["gate", "--calendar", &rel], vec!["check", &rel]] {
            // Run from the repository root so the paths in messages are relative.
            let out = std::process::Command::new(crate::harness::bin())
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(&cmd)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.code() != Some(2) {
                failures.push(format!("{cmd:?}: exit {:?}, expected 2", out.status.code()));
            }
            if !stderr.contains(&format!("--> {rel}:")) {
                failures.push(format!("{cmd:?}: no file:line:column in\n{stderr}"));
            }
            if !out.stdout.is_empty() {
                failures.push(format!("{cmd:?}: printed a result for a broken calendar"));
            }
            if cmd[0] == "gate" {
                if let Err(e) = crate::harness::check_snapshot(&snap, &stderr, mode) {
                    failures.push(format!("{name}: stderr {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn check_validates_the_example_calendar() {
    let (code, stdout, stderr) = run(&["check", &seed()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        format!(
            "ok: {} (calendar in America/New_York: 2 windows, 2 freezes)\n",
            seed()
        )
    );
}

#[test]
fn bad_input_is_exit_2() {
    for (args, want) in [
        (vec!["--at", "next thursday"], "is not a time"),
        (
            vec!["--emergency", " "],
            "an emergency change needs a reason",
        ),
        (vec!["--set", "a=b"], "--rules"),
    ] {
        let (code, _, stderr) = gate(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = run(&["gate", "--calendar", "/nonexistent/calendar.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read the calendar file"), "{stderr}");
    // A rule file that does not load stops the gate before anything is decided.
    let s = Scratch::new();
    let rules = s.rules("rules: [\n").display().to_string();
    let (code, stdout, stderr) = gate(&["--rules", &rules, "--prometheus", "http://127.0.0.1:9"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn an_emergency_is_sent_to_the_rule_files_notification_channels() {
    let prom = prometheus();
    let s = Scratch::new();
    prom.exporter.set("rw_value{test=\"gate-notify\"}", 0.5);
    prom.await_value("rw_value{test=\"gate-notify\"}", |v| v == Some(0.5));
    let hook = crate::harness::receiver::receiver(vec![200]);
    let rules = s
        .rules(&format!(
            "watch:\n  duration: 1m\n  interval: 5s\nnotify:\n  - webhook: {}\n    on: [emergency_change]\nrules:\n  - name: gate-notify\n    query: rw_value{{test=\"gate-notify\"}}\n    above: 1\n    for: 5m\n    action: notify\n",
            hook.url
        ))
        .display()
        .to_string();
    let (code, stdout, stderr) = gate(&[
        "--at",
        "2026-12-28T15:00:00Z",
        "--emergency",
        "CVE-2026-1234 patch",
        "--rules",
        &rules,
        "--prometheus",
        &prom.url,
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (_, _, msg) = hook.next(std::time::Duration::from_secs(5));
    assert_eq!(msg["kind"], "emergency_change");
    assert_eq!(msg["reason"], "CVE-2026-1234 patch");
    assert_eq!(msg["decision"], "go");
    assert!(
        msg["summary"].as_str().unwrap().contains("freeze:holidays"),
        "{msg}"
    );
    assert!(
        !stderr.contains(&hook.url),
        "the channel URL is never logged"
    );
}
