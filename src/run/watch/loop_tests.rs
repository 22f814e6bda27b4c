//! The real watch loop (`run_from`: pollers, decision loop, actions, signals) driven by
//! a scripted `MetricsSource` and a fake `ActionRunner` under tokio's paused clock
//! (`start_paused`: time advances only when every task waits, so a 10-minute watch
//! runs in milliseconds and every instant is exact). Each case says what the source
//! answers at each second of the watch, and checks what ran, when, and how the watch
//! ended. Times are read on tokio's clock, from the watch's start.

use super::*;
use crate::core::eval::Labels;
use crate::core::events::Sinks;
use crate::core::rules::WatchSpec;
use crate::core::rules::{load_str, LoadOptions};
use crate::core::series::Sample;
use crate::io::action::{ActionReport, ActionRequest, ActionRunner, ActionStatus};
use crate::io::prom::{MetricsSource, QueryError, QueryResult};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The watch's origin on the clock the loop is given (`Start::clock`), so a poll's
/// instant maps back to the second of the watch it was taken at.
const T0_SECS: u64 = 1_800_000_000;

/// What the source answers for one query at one second of the watch.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Value(f64),
    Fail,
}

/// Answers each query from its script: the reply at a second is the last one
/// scripted at or before it (so `[(0, Value(0.1)), (20, Value(0.9))]` is 0.1 until
/// 20s, then 0.9).
struct Scripted {
    script: BTreeMap<String, Vec<(u64, Reply)>>,
}

impl MetricsSource for Scripted {
    async fn query(&self, query: &str, at: SystemTime) -> Result<QueryResult, QueryError> {
        let t0 = UNIX_EPOCH + Duration::from_secs(T0_SECS);
        let second = at.duration_since(t0).unwrap_or_default().as_secs();
        let steps = self.script.get(query).expect("a query the script knows");
        let reply = steps
            .iter()
            .rev()
            .find(|(from, _)| *from <= second)
            .map_or(Reply::Fail, |(_, r)| *r);
        match reply {
            Reply::Value(v) => Ok(QueryResult {
                samples: vec![Sample {
                    labels: Labels::new(),
                    value: v,
                }],
                warnings: Vec::new(),
            }),
            Reply::Fail => Err(QueryError::Connect("scripted failure".into())),
        }
    }
}

/// Records each request (its kind and when it started, from the watch's start) and
/// answers after `takes`, succeeding.
struct FakeRunner {
    origin: Instant,
    takes: Duration,
    ran: Mutex<Vec<(&'static str, Duration)>>,
}

impl ActionRunner for FakeRunner {
    async fn run(&self, req: &ActionRequest) -> ActionReport {
        let at = Instant::now() - self.origin;
        self.ran.lock().unwrap().push((req.kind, at));
        tokio::time::sleep(self.takes).await;
        ActionReport {
            status: ActionStatus::Succeeded,
            duration: self.takes,
            output_tail: Vec::new(),
        }
    }
}

/// A rule file: one rule per (name, query, keys) on a 10s interval.
fn spec(watch: &str, rules: &[(&str, &str)]) -> WatchSpec {
    let mut text = format!(
        "watch:\n  interval: 10s\n{watch}\nrollback:\n  command: [\"undo\"]\n  timeout: 5m\npause:\n  command: [\"hold\"]\n  timeout: 5m\nrules:\n"
    );
    for (name, keys) in rules {
        text.push_str(&format!(
            "  - name: {name}\n    query: q_{name}\n    interval: 10s\n{keys}\n"
        ));
    }
    let (spec, _) = load_str("loop.yaml", &text, &LoadOptions::default()).expect("a valid file");
    spec
}

/// What a scripted watch did.
struct Ran {
    outcome: Outcome,
    /// When the watch ended, from its start.
    ended: Duration,
    /// Each command run: kind, and when it started.
    actions: Vec<(&'static str, Duration)>,
}

/// Runs `spec` for `duration` against `script`; `signal_at` sends SIGINT's stand-in
/// at that moment; each command takes `takes`.
async fn watch(
    spec: WatchSpec,
    duration: Duration,
    script: &[(&str, &[(u64, Reply)])],
    signal_at: Option<Duration>,
    takes: Duration,
) -> Ran {
    let origin = Instant::now();
    let source = Arc::new(Scripted {
        script: script
            .iter()
            .map(|(rule, steps)| (format!("q_{rule}"), steps.to_vec()))
            .collect(),
    });
    let runner = FakeRunner {
        origin,
        takes,
        ran: Mutex::default(),
    };
    let opts = WatchOptions {
        duration,
        dry_run: false,
        prometheus: "http://prometheus.invalid".into(),
    };
    let from = Start {
        clock: Some(ClockAnchor {
            wall: UNIX_EPOCH + Duration::from_secs(T0_SECS),
            mono: origin,
        }),
        ..Start::default()
    };
    let (tx, mut signals) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Some(at) = signal_at {
            tokio::time::sleep_until(origin + at).await;
            let _ = tx.send(Signal::Interrupt).await;
        }
        // Held open until the watch is over: a closed channel is no signal.
        std::future::pending::<()>().await;
        drop(tx);
    });
    let mut sinks = Sinks(Vec::new());
    let outcome = run_from(
        &spec,
        source,
        &runner,
        &opts,
        from,
        &mut signals,
        &mut sinks,
    )
    .await;
    let ended = Instant::now() - origin;
    let actions = runner.ran.into_inner().unwrap();
    Ran {
        outcome,
        ended,
        actions,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const QUICK: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_breach_fires_exactly_at_for_never_a_tick_early() {
    // Breached from 20s on, `for: 30s` on a 10s interval: pending at 20, 30, 40; the
    // poll of 50s has been breached for 30s, and the rollback starts then, not at 40.
    let spec = spec(
        "  duration: 10m",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (20, Reply::Value(0.9))];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    assert_eq!(
        ran.outcome,
        Outcome::RolledBack {
            rule: "errors".into(),
            dry_run: false
        }
    );
    assert_eq!(ran.actions, vec![("rollback", secs(50))]);
    assert_eq!(
        ran.ended,
        secs(51),
        "the rollback ends the watch when it is done"
    );
}

#[tokio::test(start_paused = true)]
async fn a_breach_that_resolves_before_for_never_acts() {
    // Breached at 20s and 30s (pending for 10s of the 30s it needs), fine from 40s.
    let spec = spec(
        "  duration: 2m",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[
        (0, Reply::Value(0.1)),
        (20, Reply::Value(0.9)),
        (40, Reply::Value(0.1)),
    ];
    let ran = watch(spec, secs(120), &[("errors", script)], None, QUICK).await;
    assert_eq!(ran.outcome, Outcome::Healthy);
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    assert_eq!(ran.ended, secs(120));
}

#[tokio::test(start_paused = true)]
async fn failed_polls_past_max_blind_end_the_watch_inconclusive_and_nothing_runs() {
    // Good until 20s, then every query fails: 60s after the last good poll (20s) the
    // watch is blind, at 80s, long before its end; a failure is never a breach.
    let spec = spec(
        "  duration: 10m\n  max_blind: 60s",
        &[("errors", "    above: 0.5\n    for: 10s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (30, Reply::Fail)];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    assert!(
        matches!(ran.outcome, Outcome::Inconclusive { .. }),
        "{:?}",
        ran.outcome
    );
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    assert_eq!(ran.ended, secs(80));
}

#[tokio::test(start_paused = true)]
async fn the_watch_ends_healthy_at_its_duration() {
    let spec = spec(
        "  duration: 5m",
        &[("errors", "    above: 0.5\n    for: 10s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1))];
    let ran = watch(spec, secs(300), &[("errors", script)], None, QUICK).await;
    assert_eq!(ran.outcome, Outcome::Healthy);
    assert!(ran.actions.is_empty());
    assert_eq!(ran.ended, secs(300));
}

#[tokio::test(start_paused = true)]
async fn a_pause_then_a_rollback_each_run_once() {
    // `latency` pauses at once (for 0s) when breached from 30s; `errors` rolls back
    // after 20s of a breach from 60s, at 80s. The pause runs once, though `latency`
    // stays breached.
    let spec = spec(
        "  duration: 10m",
        &[
            ("latency", "    above: 0.5\n    for: 0s\n    action: pause"),
            ("errors", "    above: 0.5\n    for: 20s"),
        ],
    );
    let latency: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (30, Reply::Value(0.9))];
    let errors: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (60, Reply::Value(0.9))];
    let ran = watch(
        spec,
        secs(600),
        &[("latency", latency), ("errors", errors)],
        None,
        QUICK,
    )
    .await;
    assert_eq!(
        ran.actions,
        vec![("pause", secs(30)), ("rollback", secs(80))]
    );
    assert_eq!(
        ran.outcome,
        Outcome::RolledBack {
            rule: "errors".into(),
            dry_run: false
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_between_polls_ends_the_watch_and_runs_nothing() {
    // Pending from 20s (it would fire at 50s); the signal at 35s ends the watch then.
    let spec = spec(
        "  duration: 10m",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (20, Reply::Value(0.9))];
    let ran = watch(
        spec,
        secs(600),
        &[("errors", script)],
        Some(secs(35)),
        QUICK,
    )
    .await;
    assert_eq!(ran.outcome, Outcome::Interrupted(Signal::Interrupt));
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
    assert_eq!(ran.ended, secs(35));
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_a_command_waits_for_it_then_ends_the_watch() {
    // The pause starts at 30s and takes 60s; the signal at 45s is deferred until it
    // finished (90s), and the watch then ends interrupted: the rollback rule, breached
    // from 40s (it would fire at 60s), never runs.
    let spec = spec(
        "  duration: 10m",
        &[
            ("latency", "    above: 0.5\n    for: 0s\n    action: pause"),
            ("errors", "    above: 0.5\n    for: 20s"),
        ],
    );
    let latency: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (30, Reply::Value(0.9))];
    let errors: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (40, Reply::Value(0.9))];
    let ran = watch(
        spec,
        secs(600),
        &[("latency", latency), ("errors", errors)],
        Some(secs(45)),
        secs(60),
    )
    .await;
    assert_eq!(ran.actions, vec![("pause", secs(30))]);
    assert_eq!(ran.outcome, Outcome::Interrupted(Signal::Interrupt));
    assert_eq!(ran.ended, secs(90));
}
