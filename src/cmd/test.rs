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
use crate::core::promtest::expect::{actual, diff, RuleRun};
use crate::core::promtest::file::{load_str, TestCase};
use crate::core::promtest::junit::{render, TestResult};
use crate::core::promtest::openmetrics::{bases, Backfill};
use crate::core::rules::{Diagnostic, LoadOptions, WatchSpec};
use crate::io::prom::Connection;
use crate::io::scratch_prom::{find_program, ScratchProm};
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
    spec: WatchSpec,
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
            if let Err(e) = backfill.add(p.base, p.case.interval, s) {
                let text = std::fs::read_to_string(&p.file).unwrap_or_default();
                crate::say!(
                    "{}",
                    Diagnostic::error(e.to_string(), Some(s.pos)).render(&p.file, &text)
                );
                return exit::USAGE;
            }
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
    let text = (!backfill.is_empty()).then(|| backfill.render());
    let started = tokio::select! {
        s = ScratchProm::start(&promtool, &prometheus, text.as_deref()) => s,
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
    println!(
        "{} tests, {} passed, {failed} failed",
        results.len(),
        results.len() - failed
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
                spec,
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

/// Replays each test against the throwaway Prometheus at `url`, printing a line per
/// test (and the diff of a failing one).
async fn replay_all(planned: &[Planned], url: &str) -> Vec<TestResult> {
    let mut results = Vec::new();
    for p in planned {
        let conn = Connection {
            prometheus: Some(url.to_string()),
            ..Connection::default()
        };
        let failure = match conn.client(None, p.spec.query_timeout.max(Duration::from_secs(30))) {
            Err(e) => Some(vec![format!("cannot query the throwaway Prometheus: {e}")]),
            Ok(client) => {
                let from = p.base + p.case.watch_start.as_millis() as i64;
                let to = from + p.duration.as_millis() as i64;
                let (histories, decision) = crate::run::replay::replay_rules(
                    &p.spec,
                    &client,
                    from,
                    to,
                    Some(p.case.interval),
                )
                .await;
                let runs: Vec<RuleRun> = p
                    .spec
                    .rules
                    .iter()
                    .zip(&histories)
                    .map(|(r, h)| {
                        (
                            r.name.as_str(),
                            r.action,
                            h.as_ref().map_err(|e| e.to_string()),
                        )
                    })
                    .collect();
                let got = actual(&runs, &decision, p.base);
                let d = diff(&p.case.expect, &got);
                (!d.is_empty()).then_some(d)
            }
        };
        match &failure {
            None => println!("ok   {}: {}", p.file, p.case.name),
            Some(lines) => {
                println!("FAIL {}: {}", p.file, p.case.name);
                for l in lines {
                    println!("     {l}");
                }
            }
        }
        results.push(TestResult {
            file: p.file.clone(),
            name: p.case.name.clone(),
            failure,
            skipped: None,
        });
    }
    results
}
