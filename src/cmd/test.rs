//! `rollwatch test FILE...`: unit tests for rule files. Each test gives synthetic
//! series in promtool's notation and says what the watch must do on them (outcome,
//! actions, when each rule goes pending or fires); a real Prometheus answers the
//! queries and the replay is `replay`'s own (`run::replay`), so a test proves what a
//! watch would do, not what a look-alike would.
//!
//! This face only orders the work: `core::promtest` reads the files, lays the series
//! out in time and compares; `io::scratch_prom` runs promtool and the throwaway
//! Prometheus, which every exit path (errors and signals too) stops and removes.
//! Exit 0 when every test passes, 1 when any fails, 2 for bad files or a missing
//! Prometheus.

use crate::cmd::signals::signal_channel;
use crate::core::exit;
use crate::core::promtest::alerts::{judge, Verdict};
use crate::core::promtest::expect::{actual, diff, show, RuleRun};
use crate::core::promtest::file::{load_str, TestCase, TestFile, DEFAULT_INTERVAL};
use crate::core::promtest::imported::{import_alerts, runs, AlertMeta};
use crate::core::promtest::junit::{render, TestResult};
use crate::core::promtest::openmetrics::{bases, Backfill};
use crate::core::rules::{Diagnostic, LoadOptions, WatchSpec};
use crate::io::prom::Connection;
use crate::io::scratch_prom::{find_program, ScratchProm, Series};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit code when a test failed (the same number as a rollback, by design of the
/// issue: CI treats both as "not good").
const FAILED: u8 = 1;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Test files (promtool's shape, with a rollwatch `expect:` per test).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The `promtool` to backfill with (default: found on PATH).
    #[arg(long, value_name = "PATH")]
    pub promtool: Option<PathBuf>,
    /// The `prometheus` to serve the series (default: found on PATH).
    #[arg(long, value_name = "PATH")]
    pub prometheus: Option<PathBuf>,
    /// Also write the results as JUnit XML to FILE (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// A test, ready to replay: its file, the rule file's spec with the test's variables,
/// and where it sits on the run's time line.
struct Planned {
    file: String,
    case: TestCase,
    /// None: a promtool test none of whose alerts became a rule.
    spec: Option<WatchSpec>,
    /// A promtool test: the imported alerts (its checks are `case.alerts`).
    alerts: Option<std::sync::Arc<Vec<AlertMeta>>>,
    /// Unix ms of the test's first sample.
    base: i64,
    duration: Duration,
}

pub async fn run(args: TestArgs) -> u8 {
    // Installed first: a Ctrl-C from here on ends the run through the cleanup below.
    let mut signals = signal_channel();
    let Some(planned) = plan(&args.files) else {
        return exit::USAGE;
    };
    let mut backfill = Backfill::default();
    for p in &planned {
        for s in &p.case.input {
            backfill.add(p.base, p.case.interval, s);
        }
    }
    let programs = find_program(args.promtool.as_deref(), "promtool", "--promtool").and_then(|t| {
        find_program(args.prometheus.as_deref(), "prometheus", "--prometheus").map(|p| (t, p))
    });
    let (promtool, prometheus) = match programs {
        Ok(p) => p,
        Err(e) => {
            crate::say!("error: {e}");
            return exit::USAGE;
        }
    };
    // A staleness marker has no OpenMetrics form: such a run is written through
    // Prometheus's remote-write receiver instead of promtool's backfill.
    let (text, bodies) = if backfill.is_empty() {
        (String::new(), Vec::new())
    } else if backfill.has_stale() {
        match backfill.remote_write() {
            Ok(b) => (String::new(), b),
            Err(e) => {
                crate::say!("error: cannot encode the test series for remote write: {e}");
                return exit::USAGE;
            }
        }
    } else {
        (backfill.render(), Vec::new())
    };
    let series = match (text.is_empty(), bodies.is_empty()) {
        (false, _) => Series::OpenMetrics(&text),
        (_, false) => Series::RemoteWrite(&bodies),
        _ => Series::Empty,
    };
    let started = tokio::select! {
        s = ScratchProm::start(&promtool, &prometheus, series) => s,
        _ = signals.recv() => return exit::SIGINT,
    };
    let mut scratch = match started {
        Ok(s) => s,
        Err(e) => {
            crate::say!("error: {e}");
            return exit::USAGE;
        }
    };
    let results = tokio::select! {
        r = replay_all(&planned, &scratch.url) => Some(r),
        _ = signals.recv() => None,
    };
    scratch.stop().await;
    let Some(results) = results else {
        crate::say!("interrupted: the throwaway Prometheus was stopped and removed");
        return exit::SIGINT;
    };
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let refused = results.iter().filter(|r| r.skipped.is_some()).count();
    println!(
        "{} tests, {} passed, {failed} failed, {refused} refused",
        results.len(),
        results.len() - failed - refused
    );
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, render(&results)) {
            crate::say!("error: cannot write {}: {e}", path.display());
            return exit::USAGE;
        }
    }
    if failed > 0 {
        FAILED
    } else {
        exit::HEALTHY
    }
}

/// Every test of every file, loaded with its rule file and placed on the time line;
/// None after printing every error (nothing runs when a file is bad).
fn plan(files: &[PathBuf]) -> Option<Vec<Planned>> {
    let mut out = Vec::new();
    let mut ok = true;
    for path in files {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                crate::say!("error: cannot read {shown}: {e}");
                ok = false;
                continue;
            }
        };
        let file = match load_str(&shown, &text) {
            Ok(f) => f,
            Err(e) => {
                crate::say!("{e}");
                ok = false;
                continue;
            }
        };
        if file.promtool {
            match plan_promtool(path, &shown, &text, file) {
                Some(mut p) => out.append(&mut p),
                None => ok = false,
            }
            continue;
        }
        let [(rules, pos)] = file.rule_files.as_slice() else {
            let d = Diagnostic::error(
                format!("`rule_files` names {} files; a rollwatch test replays one watch, so name exactly one", file.rule_files.len()),
                None,
            );
            crate::say!("{}", d.render(&shown, &text));
            ok = false;
            continue;
        };
        let rules_path = path.parent().unwrap_or(Path::new(".")).join(rules);
        if !rules_path.is_file() {
            let d = Diagnostic::error(
                format!("rule file {} not found", rules_path.display()),
                Some(*pos),
            )
            .with_help("rule files are named relative to the test file's directory");
            crate::say!("{}", d.render(&shown, &text));
            ok = false;
            continue;
        }
        for case in file.tests {
            let opts = LoadOptions {
                sets: &case.vars,
                outside: Some(&crate::io::host::HOST),
                check: false,
            };
            let mut spec = match crate::io::host::load_rules(&rules_path, &opts) {
                Ok((spec, _)) => spec,
                Err(e) => {
                    crate::say!("{e}(in test `{}` of {shown})", case.name);
                    ok = false;
                    break;
                }
            };
            if let Some(every) = file.evaluation_interval {
                spec.interval = every;
                for r in &mut spec.rules {
                    r.interval = every;
                }
            }
            let duration = case.duration.unwrap_or(spec.duration);
            out.push(Planned {
                file: shown.clone(),
                case,
                spec: Some(spec),
                alerts: None,
                base: 0,
                duration,
            });
        }
    }
    if !ok {
        return None;
    }
    let spans: Vec<i64> = out
        .iter()
        .map(|p| {
            let watch = (p.case.watch_start + p.duration).as_millis() as i64;
            let longest = p
                .case
                .input
                .iter()
                .map(|s| s.points.len())
                .max()
                .unwrap_or(0);
            watch.max(longest as i64 * p.case.interval.as_millis() as i64)
        })
        .collect();
    for (p, base) in out.iter_mut().zip(bases(&spans)) {
        p.base = base;
    }
    Some(out)
}

/// A `promtool test rules` file: its rule files imported (`core::promtest::imported`),
/// each test replayed until its last `eval_time`. None after printing why not.
fn plan_promtool(path: &Path, shown: &str, text: &str, file: TestFile) -> Option<Vec<Planned>> {
    let every = file.evaluation_interval.unwrap_or(DEFAULT_INTERVAL);
    let mut rule_texts = Vec::new();
    for (rules, pos) in &file.rule_files {
        let p = path.parent().unwrap_or(Path::new(".")).join(rules);
        match std::fs::read_to_string(&p) {
            Ok(t) => rule_texts.push((p.display().to_string(), t)),
            Err(e) => {
                let d = Diagnostic::error(format!("cannot read {}: {e}", p.display()), Some(*pos))
                    .with_help("rule files are named relative to the test file's directory");
                crate::say!("{}", d.render(shown, text));
                return None;
            }
        }
    }
    let (spec, metas) = match import_alerts(&rule_texts, every) {
        Ok(x) => x,
        Err(e) => {
            crate::say!("{e}");
            return None;
        }
    };
    let metas = std::sync::Arc::new(metas);
    let mut out = Vec::new();
    for case in file.tests {
        if case.alerts.is_empty() {
            continue; // `promql_expr_test` only: nothing rollwatch judges
        }
        let last = case
            .alerts
            .iter()
            .map(|a| a.eval_time)
            .max()
            .unwrap_or_default();
        let mut spec = spec.clone();
        if let Some(s) = &mut spec {
            s.duration = last + every;
        }
        out.push(Planned {
            file: shown.to_string(),
            case,
            spec,
            alerts: Some(metas.clone()),
            base: 0,
            duration: last + every,
        });
    }
    Some(out)
}

/// Replays each test against the throwaway Prometheus at `url`, printing a line per
/// test (and the diff of a failing one).
async fn replay_all(planned: &[Planned], url: &str) -> Vec<TestResult> {
    let mut results = Vec::new();
    for p in planned {
        let replayed = match (&p.spec, &p.case.refused) {
            (Some(spec), None) => Some(replay_one(p, spec, url).await),
            _ => None,
        };
        match &p.alerts {
            None => {
                let failure = match &replayed {
                    Some(Ok((histories, decision))) => {
                        let spec = p.spec.as_ref().expect("a rollwatch test has its spec");
                        let runs: Vec<RuleRun> = spec
                            .rules
                            .iter()
                            .zip(histories)
                            .map(|(r, h)| {
                                (r.name.as_str(), r.action, h.as_ref().map_err(|e| e.clone()))
                            })
                            .collect();
                        let d = diff(&p.case.expect, &actual(&runs, decision, p.base));
                        (!d.is_empty()).then_some(d)
                    }
                    Some(Err(e)) => Some(vec![e.clone()]),
                    None => Some(vec!["not replayed".into()]),
                };
                results.push(report(p, &p.case.name, failure, None));
            }
            Some(metas) => {
                let histories = match &replayed {
                    Some(Ok((h, _))) => h.clone(),
                    _ => Vec::new(),
                };
                let runs = runs(metas, &histories);
                for a in &p.case.alerts {
                    let name = format!("{}: {} at {}", p.case.name, a.alertname, show(a.eval_time));
                    let verdict = match (&p.case.refused, &replayed) {
                        (Some(why), _) => Verdict::Refused(why.clone()),
                        (None, Some(Err(e))) => Verdict::Disagreed(vec![e.clone()]),
                        _ => judge(a, &runs, p.base),
                    };
                    let (failure, skipped) = match verdict {
                        Verdict::Agreed => (None, None),
                        Verdict::Disagreed(d) => (Some(d), None),
                        Verdict::Refused(why) => (None, Some(why)),
                    };
                    results.push(report(p, &name, failure, skipped));
                }
            }
        }
    }
    results
}

type Histories = Vec<Result<crate::core::history::RuleHistory, String>>;

/// One test's replay through `run::replay` (the driver `rollwatch replay` uses).
async fn replay_one(
    p: &Planned,
    spec: &WatchSpec,
    url: &str,
) -> Result<(Histories, crate::core::history::Conclusion), String> {
    let conn = Connection {
        prometheus: Some(url.to_string()),
        ..Connection::default()
    };
    let client = conn
        .client(None, spec.query_timeout.max(Duration::from_secs(30)))
        .map_err(|e| format!("cannot query the throwaway Prometheus: {e}"))?;
    let from = p.base + p.case.watch_start.as_millis() as i64;
    let to = from + p.duration.as_millis() as i64;
    let (histories, decision) =
        crate::run::replay::replay_rules(spec, &client, from, to, Some(p.case.interval)).await;
    let histories = histories
        .into_iter()
        .map(|h| h.map_err(|e| e.to_string()))
        .collect();
    Ok((histories, decision))
}

/// Prints a test's line (and diff) and returns its result.
fn report(
    p: &Planned,
    name: &str,
    failure: Option<Vec<String>>,
    skipped: Option<String>,
) -> TestResult {
    match (&failure, &skipped) {
        (Some(lines), _) => {
            println!("FAIL {}: {name}", p.file);
            for l in lines {
                println!("     {l}");
            }
        }
        (None, Some(why)) => println!("REFUSED {}: {name}: {why}", p.file),
        (None, None) => println!("ok   {}: {name}", p.file),
    }
    TestResult {
        file: p.file.clone(),
        name: name.to_string(),
        failure,
        skipped,
    }
}
