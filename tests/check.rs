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
