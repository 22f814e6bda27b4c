//! `rollwatch test` with the real binary, the real `promtool` and a real throwaway
//! `prometheus`: passing, failing and bad test files, the JUnit report, a missing
//! Prometheus, and the cleanup on every exit path (Ctrl-C included). The examples'
//! test files run here too, so CI runs them.

use crate::harness::{bin, repo_path};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `rollwatch test ARGS` with `TMPDIR` set to `tmp` (so what it leaves behind can
/// be seen) and, when given, `PATH`.
fn rtest(args: &[&str], tmp: &Path, path: Option<&Path>) -> Output {
    let mut c = Command::new(bin());
    c.arg("test").args(args).env("TMPDIR", tmp);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().expect("run rollwatch")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Nothing of a run is left in its temporary directory.
fn assert_clean(tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("rollwatch-test-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

const RULES: &str = r#"watch:
  duration: 10m
  interval: 15s
rollback:
  command: ["true"]
rules:
  - name: errors
    query: sum(rate(rt_errors_total{service="${service}"}[1m]))
    above: 1
    for: 1m
    no_data: ok
vars:
  service: api
"#;

/// A test file over `RULES` expecting a rollback `at` (its errors start at 2m30s).
fn test_file(dir: &Path, at: &str) -> String {
    std::fs::write(dir.join("rules.yaml"), RULES).unwrap();
    let t = format!(
        r#"rule_files: [rules.yaml]
tests:
  - name: errors roll back
    interval: 15s
    input_series:
      - series: rt_errors_total{{service="api"}}
        values: "0x8 0+120x40"
    expect:
      outcome: rolled_back
      actions: [{{action: rollback, rule: errors, at: {at}}}]
  - name: another service is not ours
    interval: 15s
    input_series:
      - series: rt_errors_total{{service="web"}}
        values: "0+120x40"
    expect:
      outcome: healthy
      actions: []
"#
    );
    let p = dir.join("t.yaml");
    std::fs::write(&p, t).unwrap();
    p.display().to_string()
}

#[test]
fn a_passing_file_exits_0_with_a_line_per_test_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "3m30s");
    let o = rtest(&[&f], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("ok   ") && out.contains(": errors roll back\n"),
        "{out}"
    );
    assert!(out.contains(": another service is not ours\n"), "{out}");
    assert!(
        out.contains("2 tests, 2 passed, 0 failed, 0 refused"),
        "{out}"
    );
    assert_clean(dir.path());
}

#[test]
fn a_failing_test_exits_1_with_its_diff() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "2m");
    let o = rtest(&[&f], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("FAIL "), "{out}");
    assert!(out.contains("- rollback by errors at 2m\n"), "{out}");
    assert!(out.contains("+ rollback by errors at 3m30s\n"), "{out}");
    assert!(
        out.contains("2 tests, 1 passed, 1 failed, 0 refused"),
        "{out}"
    );
    assert_clean(dir.path());
}

#[test]
fn a_bad_file_exits_2_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "3m30s");
    let bad = std::fs::read_to_string(&f)
        .unwrap()
        .replace("0x8 0+120x40", "0x8 0+120")
        .replace("outcome: healthy", "outcome: fine");
    std::fs::write(&f, bad).unwrap();
    let o = rtest(&[&f], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains(&format!("{f}:7:22")), "{err}");
    assert!(err.contains("`0+120`"), "{err}");
    assert!(err.contains(&format!("{f}:17:16")), "{err}");
    assert!(err.contains("unknown outcome `fine`"), "{err}");
    assert!(out.is_empty(), "nothing runs: {out}");
    assert_clean(dir.path());
}

/// A well-formedness check enough for what `--junit` writes: one root, every tag
/// closed in order, attributes quoted, no raw `<` or `&` in text.
fn well_formed(xml: &str) -> Result<(), String> {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .ok_or("no XML declaration")?;
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let between = &rest[..open];
        if between.contains('&') && !between.contains(';') {
            return Err(format!("raw & in {between:?}"));
        }
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        if tag.contains('<') {
            return Err(format!("raw < in {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(format!("</{name}> closes nothing open"));
            }
        } else {
            if stack.is_empty() {
                roots += 1;
            }
            if tag.matches('"').count() % 2 != 0 {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        rest = &rest[close + 1..];
    }
    if !stack.is_empty() || roots != 1 || !rest.trim().is_empty() {
        return Err(format!("open: {stack:?}, roots: {roots}"));
    }
    Ok(())
}

#[test]
fn junit_is_well_formed_and_counts_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "2m");
    let junit = dir.path().join("out.xml");
    let o = rtest(&[&f, "--junit", junit.to_str().unwrap()], dir.path(), None);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    let xml = std::fs::read_to_string(&junit).unwrap();
    well_formed(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    assert!(
        xml.contains("<testsuites name=\"rollwatch test\" tests=\"2\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"another service is not ours\"/>"),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"actions:\">"), "{xml}");
    assert!(well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a><b></a>").is_err());
}

#[test]
fn without_prometheus_it_says_how_to_install_it_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "3m30s");
    let empty = dir.path().join("bin");
    std::fs::create_dir(&empty).unwrap();
    let o = rtest(&[&f], dir.path(), Some(&empty));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("was not found on PATH"), "{err}");
    assert!(err.contains("apt install prometheus"), "{err}");
    // promtool on PATH is not enough: Prometheus itself is missing.
    std::os::unix::fs::symlink(which("promtool"), empty.join("promtool")).unwrap();
    let o = rtest(&[&f], dir.path(), Some(&empty));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`prometheus` was not found on PATH"), "{err}");
    assert!(err.contains("--prometheus PATH"), "{err}");
    assert_clean(dir.path());
}

fn which(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

#[test]
fn ctrl_c_stops_prometheus_and_removes_the_scratch_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "3m30s");
    // A Prometheus that never becomes ready (a fault: the real one is ready at once),
    // so the run is surely waiting on it when the signal comes.
    let fake = dir.path().join("prometheus");
    let pid_file = dir.path().join("fake.pid");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 600\n",
            pid_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(bin())
        .args(["test", &f, "--prometheus", fake.to_str().unwrap()])
        .env("TMPDIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Some(p) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the fake Prometheus never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let scratch_seen = std::fs::read_dir(dir.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("rollwatch-test-")
    });
    assert!(
        scratch_seen,
        "the run's scratch directory exists while it runs"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err();
    assert!(gone, "the fake Prometheus {pid} still runs");
    assert_clean(dir.path());
}

#[test]
fn every_rule_file_in_rules_has_passing_example_tests() {
    let mut files = Vec::new();
    for e in std::fs::read_dir(repo_path("rules")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name == "calendar.yaml" {
            continue; // a deploy calendar, not a rule file
        }
        let t = repo_path(&format!("examples/tests/{name}"));
        assert!(t.is_file(), "rules/{name} has no examples/tests/{name}");
        files.push(t.display().to_string());
    }
    files.sort();
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let o = rtest(&args, dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(!out.contains("FAIL"), "{out}");
    assert_clean(dir.path());
}

#[test]
fn a_baseline_with_offset_reads_the_series_before_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        "watch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: orders\n    query: sum(rate(orders_total[5m]))\n    baseline:\n      offset: 1h\n    below_baseline: 30%\n    for: 2m\n",
    )
    .unwrap();
    // 4 orders a second for the hour before the watch and ten minutes into it, then 1:
    // the 5m rate is 30 % below last hour's from about 1h12m.
    let t = dir.path().join("t.yaml");
    std::fs::write(
        &t,
        r#"rule_files: [rules.yaml]
tests:
  - name: orders falling below last hour's roll back
    interval: 15s
    watch_start: 1h
    input_series:
      - series: orders_total
        values: "0+60x279 16800+15x200"
    expect:
      outcome: rolled_back
      rules: [{rule: orders, pending_at: 1h12m15s, fired_at: 1h14m30ms}]
  - name: orders as last hour's are healthy
    interval: 15s
    watch_start: 1h
    input_series:
      - series: orders_total
        values: "0+60x480"
    expect:
      outcome: healthy
      actions: []
"#,
    )
    .unwrap();
    let o = rtest(&[t.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("2 tests, 2 passed"), "{out}");
}

/// Runs a committed promtool fixture and returns its summary line.
fn fixture_summary(rel: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = repo_path(rel);
    let o = rtest(&[f.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_clean(dir.path());
    let last = out.lines().last().unwrap_or_default().to_string();
    (o.status.code(), format!("{last}\n{out}\n{err}"))
}

#[test]
fn prometheus_own_promtool_alert_tests_agree() {
    let (code, out) = fixture_summary("tests/fixtures/promtool/prometheus/unittest.yml");
    assert!(
        out.starts_with("4 tests, 4 passed, 0 failed, 0 refused\n"),
        "{out}"
    );
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn the_etcd_mixin_alert_tests_agree_leader_changes_at_exactly_4_included() {
    let (code, out) = fixture_summary("tests/fixtures/promtool/etcd-mixin/test.yaml");
    assert!(
        out.starts_with("13 tests, 13 passed, 0 failed, 0 refused\n"),
        "{out}"
    );
    // The test whose value is exactly the `>= 4` threshold (issue 23).
    assert!(
        out.contains("ok   ") && out.contains("etcdHighNumberOfLeaderChanges at 10m"),
        "{out}"
    );
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_promtool_file_reports_agreed_disagreed_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alerts.yml"),
        r#"groups:
  - name: g
    rules:
      - alert: Down
        expr: up == 0
        for: 5m
        labels: {severity: page}
      - alert: Sticky
        expr: up == 0
        keep_firing_for: 10m
"#,
    )
    .unwrap();
    let t = dir.path().join("t.yml");
    std::fs::write(
        &t,
        r#"rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - name: down
    interval: 1m
    input_series:
      - series: up{job="a"}
        values: "0x20"
    alert_rule_test:
      - eval_time: 4m
        alertname: Down
      - eval_time: 5m
        alertname: Down
        exp_alerts: [{exp_labels: {job: a, severity: page}}]
      - eval_time: 10m
        alertname: Down
        exp_alerts: [{exp_labels: {job: b, severity: page}}]
      - eval_time: 5m
        alertname: Sticky
        exp_alerts: [{exp_labels: {job: a}}]
"#,
    )
    .unwrap();
    let o = rtest(&[t.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("ok   ") && out.contains("down: Down at 4m\n"),
        "{out}"
    );
    assert!(out.contains("down: Down at 5m\n"), "{out}");
    assert!(
        out.contains("FAIL ") && out.contains("down: Down at 10m\n"),
        "{out}"
    );
    assert!(out.contains("- {job=\"b\", severity=\"page\"}"), "{out}");
    assert!(out.contains("+ {job=\"a\", severity=\"page\"}"), "{out}");
    assert!(
        out.contains("REFUSED ")
            && out.contains("Sticky at 5m: not carried by import: `keep_firing_for`"),
        "{out}"
    );
    assert!(
        out.contains("4 tests, 2 passed, 1 failed, 1 refused"),
        "{out}"
    );
    assert_clean(dir.path());
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
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

/// Random alerts and series as one promtool test file, whose expected alerts at every
/// minute come from a model of Prometheus's `for` (active from the first breaching
/// evaluation, firing once `for` has passed, resolved at the first evaluation that no
/// longer breaches). promtool passing on it proves the model is Prometheus's; rollwatch
/// passing on it then proves rollwatch fires and resolves at the same instants.
fn generated(seed: u64, tests: usize, minutes: usize) -> (String, String) {
    let mut rng = Rng(seed | 1);
    let mut rules = String::from("groups:\n  - name: generated\n    rules:\n");
    let mut file = String::from("rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n");
    for i in 0..tests {
        let above = rng.below(2) == 0;
        let for_m = [0, 1, 2, 3, 5][rng.below(5) as usize];
        let op = if above { ">" } else { "<" };
        rules.push_str(&format!(
            "      - alert: A{i}\n        expr: m{{job=\"t{i}\"}} {op} 0.5\n        for: {for_m}m\n"
        ));
        file.push_str(&format!(
            "  - name: case {i} ({op} 0.5 for {for_m}m)\n    interval: 1m\n    input_series:\n"
        ));
        let mut firing_at: Vec<Vec<&str>> = vec![Vec::new(); minutes];
        for inst in ["a", "b"] {
            // Runs of breaching and healthy minutes.
            let mut values = Vec::new();
            while values.len() < minutes {
                let v = rng.below(2);
                for _ in 0..=rng.below(6) {
                    values.push(v);
                }
            }
            values.truncate(minutes);
            let vs: Vec<String> = values.iter().map(u64::to_string).collect();
            file.push_str(&format!(
                "      - series: m{{job=\"t{i}\",inst=\"{inst}\"}}\n        values: \"{}\"\n",
                vs.join(" ")
            ));
            let mut active: Option<usize> = None;
            for (k, v) in values.iter().enumerate() {
                let breach = if above { *v == 1 } else { *v == 0 };
                active = if breach { active.or(Some(k)) } else { None };
                if active.is_some_and(|a| k - a >= for_m) {
                    firing_at[k].push(inst);
                }
            }
        }
        file.push_str("    alert_rule_test:\n");
        for (k, insts) in firing_at.iter().enumerate() {
            file.push_str(&format!(
                "      - eval_time: {k}m\n        alertname: A{i}\n        exp_alerts:"
            ));
            if insts.is_empty() {
                file.push_str(" []\n");
            } else {
                file.push('\n');
                for inst in insts {
                    file.push_str(&format!(
                        "          - exp_labels: {{job: t{i}, inst: {inst}}}\n"
                    ));
                }
            }
        }
    }
    (rules, file)
}

#[test]
fn random_alerts_fire_and_resolve_when_promtool_says() {
    let (tests, minutes) = (12, 24);
    for seed in [0x9e37_79b9_7f4a_7c15_u64, 23, 2026] {
        let dir = tempfile::tempdir().unwrap();
        let (rules, file) = generated(seed, tests, minutes);
        let firing = file.matches("exp_labels").count();
        assert!(
            firing > 50 && firing < 2 * tests * minutes,
            "seed {seed}: {firing} firing alerts"
        );
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        let t = dir.path().join("t.yml");
        std::fs::write(&t, &file).unwrap();
        let p = Command::new("promtool")
            .args(["test", "rules"])
            .arg(&t)
            .output()
            .expect("run promtool");
        assert!(
            p.status.success(),
            "seed {seed}: promtool disagrees with the model (a bug of this test):\n{}\n{file}",
            String::from_utf8_lossy(&p.stdout)
        );
        let o = rtest(&[t.to_str().unwrap()], dir.path(), None);
        let (out, err) = text(&o);
        let n = tests * minutes;
        assert!(
            out.contains(&format!("{n} tests, {n} passed, 0 failed, 0 refused")),
            "seed {seed}: rollwatch disagrees with promtool:\n{}\n{err}\n{file}",
            out.lines()
                .filter(|l| !l.starts_with("ok "))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(o.status.code(), Some(0));
    }
}

#[test]
fn a_failing_backfill_exits_2_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "3m30s");
    // A promtool that refuses the series (a fault: the real one accepts them).
    let fake = dir.path().join("promtool");
    std::fs::write(&fake, "#!/bin/sh\necho 'out of disk' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = rtest(
        &[&f, "--promtool", fake.to_str().unwrap()],
        dir.path(),
        None,
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(
        err.contains("promtool could not backfill the test series: out of disk"),
        "{err}"
    );
    assert_clean(dir.path());
}

const UP_RULES: &str = r#"watch:
  duration: 15m
  interval: 1m
rollback:
  command: ["true"]
rules:
  - name: up
    query: up_metric > 0
    below: 1
    no_data: breach
    for: 1m
"#;

/// A test of `UP_RULES` over `values` of `up_metric`, expecting the rule pending at
/// `pending` and the rollback a minute later, at `fired`.
fn up_test(name: &str, values: &str, pending: &str, fired: &str) -> String {
    format!(
        r#"  - name: {name}
    interval: 1m
    input_series:
      - series: up_metric{{job="api"}}
        values: "{values}"
      - series: noise_total{{job="api"}}
        values: "0+1x15"
    expect:
      outcome: rolled_back
      actions: [{{action: rollback, rule: up, at: {fired}}}]
      rules: [{{rule: up, pending_at: {pending}, fired_at: {fired}}}]
"#
    )
}

/// `stale` is Prometheus's staleness marker, written through the remote-write
/// receiver: the series vanishes at the marker (pending at 6m), where a `_` gap leaves
/// the last sample (5m) visible for the 5m lookback (pending at 11m). Both tests of the
/// first file go through remote write, a month apart on one time line; the second
/// file (no `stale`) goes through promtool's backfill and gives the later result.
#[test]
fn a_stale_series_vanishes_at_once_where_a_gap_lingers_for_the_lookback() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), UP_RULES).unwrap();
    let both = dir.path().join("both.yaml");
    std::fs::write(
        &both,
        format!(
            "rule_files: [rules.yaml]\ntests:\n{}{}",
            up_test("stale vanishes at once", "1x5 stale", "6m", "7m"),
            up_test("a gap lingers", "1x5 _", "11m", "12m"),
        ),
    )
    .unwrap();
    let o = rtest(&[both.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains(": stale vanishes at once\n"), "{out}");
    assert!(
        out.contains("2 tests, 2 passed, 0 failed, 0 refused"),
        "{out}"
    );
    assert_clean(dir.path());

    // The same data with `_` where `stale` was, expected as `stale` gives: later.
    let gap = dir.path().join("gap.yaml");
    std::fs::write(
        &gap,
        format!(
            "rule_files: [rules.yaml]\ntests:\n{}",
            up_test("stale vanishes at once", "1x5 _", "6m", "7m"),
        ),
    )
    .unwrap();
    let o = rtest(&[gap.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("+ rollback by up at 12m\n"), "{out}");
    assert!(
        out.contains("rule up pending_at: expected 6m, got 11m"),
        "{out}"
    );
    assert_clean(dir.path());
}

/// A `promtool test rules` file with `stale`: promtool passes it, and rollwatch agrees
/// at every `eval_time` (the alert stops at the marker, 5m, and fires again at 6m);
/// with `_` instead, both say the alert still fires at 5m.
#[test]
fn a_promtool_file_with_stale_agrees_with_promtool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alerts.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Up\n        expr: up_metric > 0\n",
    )
    .unwrap();
    let file = |values: &str| {
        format!(
            r#"rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - name: a stale series stops firing at once
    interval: 1m
    input_series:
      - series: up_metric{{job="a"}}
        values: "{values}"
    alert_rule_test:
      - eval_time: 4m
        alertname: Up
        exp_alerts: [{{exp_labels: {{job: a}}}}]
      - eval_time: 5m
        alertname: Up
      - eval_time: 6m
        alertname: Up
        exp_alerts: [{{exp_labels: {{job: a}}}}]
"#
        )
    };
    let promtool = |t: &Path| {
        Command::new("promtool")
            .args(["test", "rules"])
            .arg(t)
            .output()
            .expect("run promtool")
    };
    let t = dir.path().join("t.yml");
    std::fs::write(&t, file("1x4 stale 1x3")).unwrap();
    let p = promtool(&t);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stdout));
    let o = rtest(&[t.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("stops firing at once: Up at 5m\n"), "{out}");
    assert!(
        out.contains("3 tests, 3 passed, 0 failed, 0 refused"),
        "{out}"
    );
    assert_clean(dir.path());

    std::fs::write(&t, file("1x4 _ 1x3")).unwrap();
    assert!(
        !promtool(&t).status.success(),
        "promtool: a gap still fires at 5m"
    );
    let o = rtest(&[t.to_str().unwrap()], dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("FAIL ") && out.contains("stops firing at once: Up at 5m\n"),
        "{out}"
    );
    assert!(out.contains("+ {job=\"a\"}"), "{out}");
    assert!(
        out.contains("3 tests, 2 passed, 1 failed, 0 refused"),
        "{out}"
    );
}

/// The judges besides a threshold with `for` (`breaches: M of N` with `min_traffic`, and
/// `compare`) are judged by `rollwatch test` as by `replay`.
#[test]
fn breaches_min_traffic_and_compare_rules_are_judged_as_replay_judges_them() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("rules.yaml", RULES_BREACHES),
        ("compare.yaml", RULES_COMPARE),
        ("t.yaml", TEST_BREACHES),
        ("tc.yaml", TEST_COMPARE),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let files = [dir.path().join("t.yaml"), dir.path().join("tc.yaml")];
    let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let o = rtest(&args, dir.path(), None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("4 tests, 4 passed"), "{out}");
}

const RULES_BREACHES: &str = r#"watch:
  duration: 5m
  interval: 15s
rollback:
  command: ["true"]
rules:
  - name: errors
    query: err_ratio
    above: 0.05
    breaches: 3 of 5
    min_traffic:
      query: traffic
      min: 1
"#;

const RULES_COMPARE: &str = r#"watch:
  duration: 10m
  interval: 15s
rollback:
  command: ["true"]
rules:
  - name: canary-latency
    compare:
      canary: lat{track="canary"}
      stable: lat{track="stable"}
      direction: increase
      confidence: 0.99
      min_effect: 20%
      window: 5m
      min_samples: 5
    for: 0s
"#;

const TEST_BREACHES: &str = r#"rule_files: [rules.yaml]
tests:
  - name: three breaching polls of five roll back at the third
    interval: 15s
    input_series:
      - series: err_ratio
        values: "0x3 0.1x40"
      - series: traffic
        values: "10x43"
    expect:
      outcome: rolled_back
      actions: [{action: rollback, rule: errors, at: 1m30s}]
  - name: breaches under min_traffic are insufficient and never act
    interval: 15s
    input_series:
      - series: err_ratio
        values: "0x3 0.1x40"
      - series: traffic
        values: "10x3 0.5x40"
    expect:
      outcome: healthy
      actions: []
"#;

const TEST_COMPARE: &str = r#"rule_files: [compare.yaml]
tests:
  - name: a canary twice as slow as stable rolls back
    interval: 15s
    input_series:
      - series: lat{track="canary"}
        values: "2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2 1.8 2 2.2"
      - series: lat{track="stable"}
        values: "1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1"
    expect:
      outcome: rolled_back
      # One-sided Mann-Whitney, normal approximation: 9 polls a side is the first
      # pool with p < (1 - 0.99) / 40 polls (z 3.58; 8 a side give only z 3.36).
      actions: [{action: rollback, rule: canary-latency, at: 2m}]
  - name: a canary like stable is healthy
    interval: 15s
    input_series:
      - series: lat{track="canary"}
        values: "1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1"
      - series: lat{track="stable"}
        values: "1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9 1 1.1 0.9"
    expect:
      outcome: healthy
      actions: []
"#;

/// The port picked for the throwaway Prometheus is free when picked, not surely when
/// Prometheus binds it: a server that answers there as ready but is not the one
/// started over the test's series (here, a real Prometheus over another directory)
/// is never queried. Three ports are tried, then the run stops (exit 2).
#[test]
fn a_ready_server_that_is_not_the_one_started_is_never_queried() {
    let dir = tempfile::tempdir().unwrap();
    let f = test_file(dir.path(), "3m30s");
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let fake = dir.path().join("prometheus");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --web.listen-address=*) addr=\"$a\";; --config.file=*) cfg=\"$a\";; esac; done\nexec {} \"$cfg\" --storage.tsdb.path={} \"$addr\" --log.level=warn\n",
            which("prometheus").display(),
            other.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = rtest(
        &[&f, "--prometheus", fake.to_str().unwrap()],
        dir.path(),
        None,
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("another server answers on this port"), "{err}");
    assert!(!out.contains("ok "), "no test was judged: {out}");
    assert_clean(dir.path());
}
