//! CI and shell conventions: `--version` names the commit, completions and the man page
//! come from the parser, `serve` keeps off Alertmanager's port, the examples are valid,
//! and `watch` appends its report to GitHub's job summary.

use crate::harness::{prometheus, repo_path, run, start_env, Scratch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[test]
fn version_names_the_git_commit() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, 0);
    let want_commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    assert_eq!(
        stdout.trim(),
        format!(
            "rollwatch {} (commit {want_commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

const SUBCOMMANDS: [&str; 12] = [
    "watch",
    "check",
    "replay",
    "gate",
    "demo",
    "serve",
    "launch",
    "ctl",
    "import",
    "test",
    "completions",
    "man",
];

#[test]
fn completion_scripts_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(script.len() > 500, "{shell}: {script}");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let (code, _, stderr) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {stderr}");
}

#[test]
fn bash_accepts_the_bash_completion_script() {
    let s = Scratch::new();
    let (_, script, _) = run(&["completions", "bash"]);
    let path = s.path("rollwatch.bash");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sourcing it defines the completion for `rollwatch`.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && complete -p rollwatch"#)
        .arg("bash")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rollwatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_page_renders() {
    let (code, page, stderr) = run(&["man"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(page.contains(".TH rollwatch 1"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    let has_man = Command::new("man").arg("--version").output().is_ok();
    if !has_man {
        return;
    }
    let s = Scratch::new();
    let path = s.path("rollwatch.1");
    std::fs::write(&path, &page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("NAME"), "{text}");
    assert!(text.contains("Guards production after a release"), "{text}");
}

#[test]
fn serve_listens_on_7093_by_default_not_alertmanagers_port() {
    let (code, help, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("[default: 127.0.0.1:7093]"), "{help}");
    // Every 9093 left in the code, docs, examples and benchmarks names Alertmanager.
    let alertmanager_port = ["90", "93"].concat();
    let mut offenders = Vec::new();
    for root in [
        "src",
        "tests",
        "examples",
        "bench",
        "rules",
        "README.md",
        "docs",
    ] {
        for file in files_under(&repo_path(root)) {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                if line.contains(&alertmanager_port) && !line.contains("Alertmanager") {
                    offenders.push(format!("{}:{}: {line}", file.display(), i + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

fn files_under(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(path) else {
        return out;
    };
    for e in entries {
        out.extend(files_under(&e.unwrap().path()));
    }
    out.sort();
    out
}

fn yaml_files(roots: &[&str]) -> Vec<PathBuf> {
    roots
        .iter()
        .flat_map(|r| files_under(&repo_path(r)))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect()
}

/// Every YAML file under examples/ parses (multi-document files too), so a copied
/// workflow or manifest never fails on syntax.
#[test]
fn every_example_yaml_file_parses() {
    let files = yaml_files(&["examples"]);
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    for want in [
        "github-actions.yml",
        "gitlab-ci.yml",
        "watch-job.yaml",
        "serve.yaml",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(want)),
            "{want} in {names:?}"
        );
    }
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!docs.is_empty(), "{}", file.display());
        for doc in &docs {
            assert!(doc.is_object(), "{}: {doc}", file.display());
        }
    }
}

/// Every rule file (a YAML file with a top-level `rules:` key; not a Kubernetes
/// manifest) under examples/ and rules/ passes plain `rollwatch check FILE`.
#[test]
fn every_rule_file_under_examples_and_rules_passes_check() {
    let mut checked = Vec::new();
    for file in yaml_files(&["examples", "rules"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        let Ok(docs) = serde_saphyr::from_multiple::<serde_json::Value>(&text) else {
            continue; // syntax is the test above's job
        };
        // A Kubernetes manifest (a Role has `rules:` too) is not a rule file.
        let is_rule_file = docs.len() == 1
            && docs[0].get("rules").is_some()
            && docs[0].get("apiVersion").is_none();
        if !is_rule_file {
            continue;
        }
        let (code, stdout, stderr) = run(&["check", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{}:\n{stdout}\n{stderr}", file.display());
        checked.push(file);
    }
    let under_examples = checked
        .iter()
        .filter(|p| p.starts_with(repo_path("examples")))
        .count();
    assert!(under_examples >= 2, "{checked:?}");
}

fn short_watch(s: &Scratch, test: &str) -> PathBuf {
    s.rules(&format!(
        r#"vars:
  test: {test}
watch:
  duration: 3s
  interval: 1s
rollback:
  command: ["true"]
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 10s
    interval: 1s
"#
    ))
}

#[test]
fn watch_appends_its_report_to_the_github_step_summary() {
    let prom = prometheus();
    let name = "step-summary";
    let series = format!("rw_value{{test=\"{name}\"}}");
    prom.exporter.set(&series, 0.1);
    prom.await_value(&series, |v| v == Some(0.1));
    let s = Scratch::new();
    let file = short_watch(&s, name);
    let summary = s.path("summary.md");
    std::fs::write(&summary, "## an earlier step\n").unwrap();
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
            "--no-live",
        ],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("## an earlier step\n"),
        "appended, not truncated:\n{text}"
    );
    assert!(text.contains("# rollwatch watch"), "{text}");
    assert!(text.contains("healthy"), "{text}");
    assert!(text.contains("| `r` | > 0.5 |"), "the rule's row:\n{text}");
}

#[test]
fn an_unwritable_step_summary_warns_and_keeps_the_exit_code() {
    let prom = prometheus();
    let name = "step-summary-broken";
    let series = format!("rw_value{{test=\"{name}\"}}");
    prom.exporter.set(&series, 0.1);
    prom.await_value(&series, |v| v == Some(0.1));
    let s = Scratch::new();
    let file = short_watch(&s, name);
    // A directory cannot be opened for appending.
    let summary = s.path("a-directory");
    std::fs::create_dir(&summary).unwrap();
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
            "--no-live",
        ],
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    let warned = w.events("step_summary_failed");
    assert_eq!(warned.len(), 1, "{}", w.dump());
    assert_eq!(warned[0]["level"], "WARN", "{}", w.dump());
}
