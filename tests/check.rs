//! `rollwatch check`: the examples pass; each broken fixture fails with its snapshot.

use crate::harness::{check_snapshot, repo_path, run, SnapshotMode};

#[test]
fn every_example_rule_file_passes_check() {
    let mut files: Vec<String> = std::fs::read_dir(repo_path("rules"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "rules/ holds the examples");
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for f in &files {
        assert!(stdout.contains(&format!("ok: {f}")), "{stdout}");
    }
    assert!(!stderr.contains("error"), "{stderr}");
}

/// Each `tests/fixtures/bad/NAME.yaml` must fail `check` with exit 2 and exactly the
/// stderr in `NAME.stderr` (run with `BLESS=1` to rewrite the snapshots; refused
/// where `CI` is set).
#[test]
fn broken_fixtures_fail_with_their_snapshot() {
    let mode = SnapshotMode::from_env();
    let dir = repo_path("tests/fixtures/bad");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "yaml")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 5);
    let mut failures = Vec::new();
    for name in names {
        let rel = format!("tests/fixtures/bad/{name}.yaml");
        // Run from the repository root so the paths in messages are relative.
        let out = std::process::Command::new(crate::harness::bin())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["check", &rel])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let snap = dir.join(format!("{name}.stderr"));
        if out.status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}, expected 2", out.status.code()));
        }
        if let Err(e) = check_snapshot(&snap, &stderr, mode) {
            failures.push(format!("{name}: stderr {e}"));
        }
        if !stderr.contains(&format!("{rel}:")) {
            failures.push(format!("{name}: no file:line:column in\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn watch_refuses_a_bad_rule_file_and_runs_nothing() {
    let (code, _, stderr) = run(&[
        "watch",
        "--rules",
        &repo_path("tests/fixtures/bad/unknown-keys.yaml")
            .display()
            .to_string(),
        "--prometheus",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown key `for_duraton`"), "{stderr}");
    assert!(stderr.contains("did you mean `for`?"), "{stderr}");
}

#[test]
fn unknown_set_variable_is_a_usage_error_with_a_hint() {
    let (code, _, stderr) = run(&[
        "watch",
        "--rules",
        &repo_path("rules/checkout-http.yaml").display().to_string(),
        "--prometheus",
        "http://127.0.0.1:9",
        "--set",
        "servce=checkout",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `service`?"), "{stderr}");
}

#[test]
fn required_variable_must_be_set_for_watch() {
    let (code, _, stderr) = run(&[
        "watch",
        "--rules",
        &repo_path("rules/payments.yaml").display().to_string(),
        "--prometheus",
        "http://127.0.0.1:9",
        "--dry-run",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("variable `version` has no default"),
        "{stderr}"
    );
    assert!(stderr.contains("rules/payments.yaml:"), "{stderr}");
}

/// A rule file whose `slow` rule has a `for` as long as the watch.
const NEVER_FIRES: &str = r#"watch:
  duration: 5m
  interval: 1s
rollback:
  command: ["true"]
rules:
  - name: quick
    query: vector(0)
    above: 0.5
    for: 1m
  - name: slow
    query: vector(0)
    above: 0.5
    for: 5m
"#;

#[test]
fn check_warns_about_a_rule_that_can_never_fire() {
    let s = crate::harness::Scratch::new();
    let file = s.rules(NEVER_FIRES);
    let file = file.to_str().unwrap();
    let (code, stdout, stderr) = run(&["check", file]);
    assert_eq!(code, 0, "a warning, not an error:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("ok: {file}")), "{stdout}");
    assert!(
        stderr.contains(
            "warning: rule `slow` can never fire: its `for` (5m) is not shorter than the watch (5m)"
        ),
        "{stderr}"
    );
    // It points at the rule's `for`, line 14 column 10.
    assert!(stderr.contains(&format!("--> {file}:14:10")), "{stderr}");
    assert!(stderr.contains("= help: "), "{stderr}");
    assert!(!stderr.contains("`quick`"), "{stderr}");
}

#[test]
fn watch_warns_when_duration_leaves_a_rule_no_time_to_fire() {
    let prom = crate::harness::prometheus();
    let s = crate::harness::Scratch::new();
    let file = s.rules(NEVER_FIRES);
    let mut w = crate::harness::start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--duration",
        "2s",
        "--dry-run",
    ]);
    assert_eq!(
        w.wait(std::time::Duration::from_secs(30)),
        0,
        "{}",
        w.dump()
    );
    let warned = w.events("never_fires");
    let rules: Vec<&str> = warned.iter().map(|v| v["rule"].as_str().unwrap()).collect();
    // `--duration 2s` leaves neither rule time to fire, though the file's 5m did for one.
    assert_eq!(rules, ["quick", "slow"], "{}", w.dump());
    assert_eq!(warned[0]["level"], "WARN", "{}", warned[0]);
    assert!(
        warned[0]["message"]
            .as_str()
            .unwrap()
            .contains("its `for` (1m) is not shorter than the watch (2s)"),
        "{}",
        warned[0]
    );
}
