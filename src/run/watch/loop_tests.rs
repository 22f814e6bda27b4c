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
use crate::io::prom::{
    HistorySource, MetricsSource, QueryError, QueryResult, RangeResult, RangeSeries,
};
use crate::run::channel;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The watch's origin on the clock the loop is given (`Start::clock`), so a poll's
/// instant maps back to the second of the watch it was taken at.
const T0_SECS: u64 = 1_800_000_000;
/// The same, in Unix ms (what events are stamped with).
pub(super) const T0_MS: i64 = T0_SECS as i64 * 1000;

/// What the source answers for one query at one second of the watch.
#[derive(Clone, Copy, Debug)]
pub(super) enum Reply {
    Value(f64),
    Fail,
}

/// Answers each query from its script: the reply at a second is the last one
/// scripted at or before it (so `[(0, Value(0.1)), (20, Value(0.9))]` is 0.1 until
/// 20s, then 0.9).
struct Scripted {
    script: BTreeMap<String, Vec<(u64, Reply)>>,
    /// Range queries take an hour (a Prometheus that hangs on them).
    slow_ranges: bool,
    /// The first instant query of this second answers this much later (a tick's
    /// answer that reaches the loop after a later ask of the same instant).
    slow_first: Mutex<Option<(u64, Duration)>>,
}

impl MetricsSource for Scripted {
    async fn query(&self, query: &str, at: SystemTime) -> Result<QueryResult, QueryError> {
        let t0 = UNIX_EPOCH + Duration::from_secs(T0_SECS);
        let second = at.duration_since(t0).unwrap_or_default().as_secs();
        let delay = {
            let mut slow = self.slow_first.lock().unwrap();
            match *slow {
                Some((s, d)) if s == second => {
                    *slow = None;
                    Some(d)
                }
                _ => None,
            }
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
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

/// Range queries (the steps of a pending breach) answer from the same script, at each
/// step's second (a failure anywhere fails the whole range, as one query).
impl HistorySource for Scripted {
    async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<RangeResult, QueryError> {
        if self.slow_ranges {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let mut points = Vec::new();
        let mut t = start_ms;
        while t <= end_ms {
            let at = UNIX_EPOCH + Duration::from_millis(t as u64);
            let r = self.query(query, at).await?;
            points.extend(r.samples.iter().map(|s| (t, s.value)));
            t += step_ms.max(1);
        }
        Ok(RangeResult {
            series: vec![RangeSeries {
                labels: Labels::new(),
                points,
            }],
            warnings: Vec::new(),
        })
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
pub(super) fn spec(watch: &str, rules: &[(&str, &str)]) -> WatchSpec {
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
#[derive(Debug)]
pub(super) struct Ran {
    pub(super) outcome: Outcome,
    /// When the watch ended, from its start.
    pub(super) ended: Duration,
    /// Each command run: kind, and when it started.
    pub(super) actions: Vec<(&'static str, Duration)>,
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
    watch_ordered(spec, duration, script, signal_at, takes, Vec::new())
        .await
        .0
}

/// Collects every event a watch emits.
#[derive(Clone, Default)]
pub(super) struct Events(pub(super) Arc<Mutex<Vec<(i64, crate::core::events::Event)>>>);

impl crate::core::events::Sink for Events {
    fn emit(&mut self, at_ms: i64, event: &crate::core::events::Event) {
        self.0.lock().unwrap().push((at_ms, event.clone()));
    }
}

/// What people's orders got back, in order.
pub(super) type Replies = Vec<Result<String, crate::core::control::ControlError>>;

/// `watch`, with people's `orders` given at their instants (from the watch's start);
/// returns what each order was answered, and every event.
pub(super) async fn watch_ordered(
    spec: WatchSpec,
    duration: Duration,
    script: &[(&str, &[(u64, Reply)])],
    signal_at: Option<Duration>,
    takes: Duration,
    orders: Vec<(Duration, crate::core::control::Control)>,
) -> (Ran, Replies, Vec<(i64, crate::core::events::Event)>) {
    let origin = Instant::now();
    let source = Arc::new(Scripted {
        script: script
            .iter()
            .map(|(rule, steps)| (format!("q_{rule}"), steps.to_vec()))
            .collect(),
        slow_ranges: SLOW_RANGES.with(|s| s.get()),
        slow_first: Mutex::new(SLOW_FIRST.with(|s| s.get())),
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
    let (mut order_tx, order_rx) = channel::channel(8);
    let replies: Arc<Mutex<Replies>> = Arc::default();
    let answered = replies.clone();
    // Ends once every order was answered (or refused because the watch had ended).
    let ordering =
        tokio::spawn(async move {
            for (at, mut control) in orders {
                tokio::time::sleep_until(origin + at).await;
                // Given now, on the watch's clock (unless the test says when).
                if control.at_ms == 0 {
                    control.at_ms = T0_MS + at.as_millis() as i64;
                }
                let (reply, answer) = tokio::sync::oneshot::channel();
                if order_tx
                    .send(OrderMsg {
                        control: Box::new(control),
                        reply,
                    })
                    .await
                    .is_err()
                {
                    answered.lock().unwrap().push(Err(
                        crate::core::control::ControlError::Refused("the watch had ended".into()),
                    ));
                    continue;
                }
                let got = answer.await.unwrap_or_else(|_| {
                    Err(crate::core::control::ControlError::Refused(
                        "the watch ended first".into(),
                    ))
                });
                answered.lock().unwrap().push(got);
            }
        });
    let pre_existing = if READ_BEFORE.with(|r| r.get()) {
        crate::run::preflight::pre_existing(&spec, &*source, T0_MS, None, &[], &BTreeMap::new())
            .await
            .iter()
            .map(|p| p.before().cloned())
            .collect()
    } else {
        Vec::new()
    };
    let from = Start {
        clock: Some(ClockAnchor {
            wall: UNIX_EPOCH + Duration::from_secs(T0_SECS),
            mono: origin,
        }),
        orders: Some(order_rx),
        journal: REFUSE_CLAIMS
            .with(|r| r.get())
            .then(|| Box::new(Refusing) as Box<dyn super::journal::Journal>),
        pre_existing,
        ..Start::default()
    };
    let (mut tx, mut signals) = channel::channel(4);
    tokio::spawn(async move {
        if let Some(at) = signal_at {
            tokio::time::sleep_until(origin + at).await;
            let _ = tx.send(Signal::Interrupt).await;
        }
        // Held open until the watch is over: a closed channel is no signal.
        std::future::pending::<()>().await;
        drop(tx);
    });
    let events = Events::default();
    let mut sinks = Sinks(Vec::new());
    sinks.push(events.clone());
    let outcome = run_from(
        &spec,
        source,
        &runner,
        &opts,
        Box::new(from),
        &mut signals,
        &mut sinks,
    )
    .await;
    let ended = Instant::now() - origin;
    let actions = runner.ran.into_inner().unwrap();
    ordering.await.expect("the orders' task");
    let replies = std::mem::take(&mut *replies.lock().unwrap());
    let events = std::mem::take(&mut *events.0.lock().unwrap());
    (
        Ran {
            outcome,
            ended,
            actions,
        },
        replies,
        events,
    )
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) const QUICK: Duration = Duration::from_secs(1);

thread_local! {
    /// Set by a test whose Prometheus hangs on range queries (`Scripted::slow_ranges`).
    static SLOW_RANGES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set by a test whose first instant query of one second answers late
    /// (`Scripted::slow_first`).
    static SLOW_FIRST: std::cell::Cell<Option<(u64, Duration)>> = const { std::cell::Cell::new(None) };
    /// Set by a test whose watch reads the breaches before its start from the script
    /// (`run::preflight::pre_existing`, as `watch` does), into `Start::pre_existing`.
    pub(super) static READ_BEFORE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set by a test whose store refuses every claim (`Refusing`).
    pub(super) static REFUSE_CLAIMS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A journal whose store cannot record a claim: no command may start.
struct Refusing;

impl super::journal::Journal for Refusing {
    fn claim(&mut self, _: &super::journal::Claim<'_>) -> Result<super::journal::Ticket, String> {
        Err("the store is read-only".into())
    }
    fn finished(&mut self, _: &ActionStatus, _: i64, _: &crate::core::events::Event) {}
}

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
async fn a_good_poll_between_failures_pushes_blindness_back() {
    // Good until 20s, failing 30–60s, good at 70s, failing from 80s: blind 60s after
    // the last good poll, at 130s. The loop's one timer was set for 60s (from the
    // start), then 80s (after the good poll at 20s): it rings at each, finds the
    // deadline moved, and is set again, never taking an early ring for blindness.
    let spec = spec(
        "  duration: 10m\n  max_blind: 60s",
        &[("errors", "    above: 0.5\n    for: 10s")],
    );
    let script: &[(u64, Reply)] = &[
        (0, Reply::Value(0.1)),
        (30, Reply::Fail),
        (70, Reply::Value(0.1)),
        (80, Reply::Fail),
    ];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    assert!(
        matches!(ran.outcome, Outcome::Inconclusive { .. }),
        "{:?}",
        ran.outcome
    );
    assert_eq!(ran.ended, secs(130));
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

/// The poller runs beside the loop in the watch's task: while a command holds the
/// loop, every rule is still asked at its ticks, and those polls are judged, each at
/// its own instant, once the command is done (none skipped, none judged twice).
#[tokio::test(start_paused = true)]
async fn the_rules_are_still_polled_on_their_ticks_while_a_command_runs() {
    // The pause starts at 30s and takes 60s (to 90s); `errors` never breaches.
    let spec = spec(
        "  duration: 2m",
        &[
            ("latency", "    above: 0.5\n    for: 0s\n    action: pause"),
            ("errors", "    above: 0.5\n    for: 20s"),
        ],
    );
    let latency: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (30, Reply::Value(0.9))];
    let errors: &[(u64, Reply)] = &[(0, Reply::Value(0.1))];
    let (ran, _, events) = watch_ordered(
        spec,
        secs(120),
        &[("latency", latency), ("errors", errors)],
        None,
        secs(60),
        Vec::new(),
    )
    .await;
    assert_eq!(ran.actions, vec![("pause", secs(30))]);
    let instants: Vec<i64> = events
        .iter()
        .filter(
            |(_, e)| matches!(e, crate::core::events::Event::Poll { rule, .. } if rule == "errors"),
        )
        .map(|(at, _)| (at - T0_MS) / 1000)
        .collect();
    assert_eq!(instants, (0..120).step_by(10).collect::<Vec<i64>>());
}

/// One rule `errors` (`above: 0.5`, `for: 30s`) polled every `interval` seconds, its data
/// read at a 5s step, for 10 minutes.
fn for_30s_every(interval: u64) -> WatchSpec {
    let text = format!("watch:\n  interval: {interval}s\n  duration: 10m\n  step: 5s\nrollback:\n  command: [\"undo\"]\n  timeout: 5m\nrules:\n  - name: errors\n    query: q_errors\n    above: 0.5\n    for: 30s\n");
    let (spec, _) = load_str("loop.yaml", &text, &LoadOptions::default()).expect("a valid file");
    spec
}

/// `for` is counted from where the data began to breach, not from the poll that saw it:
/// a breach from 15s (between the polls of 10s and 20s) has lasted `for: 30s` at 45s,
/// and the confirming poll is made then (plus `watch.lag`), not at the tick of 50s.
#[tokio::test(start_paused = true)]
async fn for_counts_from_the_breachs_start_in_the_data_and_acts_when_it_elapses() {
    let spec = spec(
        "  duration: 10m\n  step: 5s",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (15, Reply::Value(0.9))];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    assert_eq!(
        ran.outcome,
        Outcome::RolledBack {
            rule: "errors".into(),
            dry_run: false
        }
    );
    assert_eq!(
        ran.actions,
        vec![("rollback", secs(45) + crate::core::rules::defaults::LAG)]
    );
}

/// One healthy step in the pending span (25s, between the polls of 20s and 30s, which
/// both breach) restarts `for` at the next breaching step (30s), as Prometheus's `for`
/// would at that resolution: no action at 45s, the rollback at 60s.
#[tokio::test(start_paused = true)]
async fn a_healthy_step_between_polls_restarts_for() {
    let spec = spec(
        "  duration: 10m\n  step: 5s",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[
        (0, Reply::Value(0.1)),
        (15, Reply::Value(0.9)),
        (25, Reply::Value(0.1)),
        (26, Reply::Value(0.9)),
    ];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    assert_eq!(ran.actions, vec![("rollback", secs(60))]);
}

/// A rule polled less often than its `for` (60s against 30s) acts at the poll that
/// sees a breach which has already lasted `for` in the data (from 15s: 45s at 60s),
/// not one interval later.
#[tokio::test(start_paused = true)]
async fn a_breach_already_older_than_for_at_the_poll_that_sees_it_acts_there() {
    let spec = for_30s_every(60);
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (15, Reply::Value(0.9))];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    assert_eq!(ran.actions, vec![("rollback", secs(60))]);
}

/// When the steps cannot be read (the range query fails), `for` counts from the poll
/// and the watch acts at the first poll after it elapsed: later, never earlier.
#[tokio::test(start_paused = true)]
async fn without_the_steps_the_poll_alone_decides_never_earlier() {
    let spec = spec(
        "  duration: 10m\n  step: 5s",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    // Failing at 12s (a step inside the span) fails every range that covers it.
    let script: &[(u64, Reply)] = &[
        (0, Reply::Value(0.1)),
        (12, Reply::Fail),
        (13, Reply::Value(0.1)),
        (15, Reply::Value(0.9)),
    ];
    let ran = watch(spec, secs(600), &[("errors", script)], None, QUICK).await;
    let (_, at) = ran.actions[0];
    assert!(
        at >= secs(45),
        "acted at {at:?}, before the breach lasted 30s"
    );
}

/// Never early, for breaches starting at every second across the poll grid (10s and
/// 60s intervals) and the step grid (5s), some interrupted by a healthy gap at least
/// a step long: the rollback never starts before the breach has lasted `for: 30s` in
/// the data since its last healthy moment, and, where the polls allow, no later than
/// `for` plus the lag.
#[tokio::test(start_paused = true)]
async fn no_action_starts_before_the_breach_has_lasted_for_in_the_data() {
    let lag = crate::core::rules::defaults::LAG;
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for interval in [10u64, 60] {
        for b in 1..=60u64 {
            // Every third case: healthy again for `g` seconds, `h` into the breach.
            let gap = (b % 3 == 0).then(|| (1 + next(25), 5 + next(10)));
            let mut script: Vec<(u64, Reply)> =
                vec![(0, Reply::Value(0.1)), (b, Reply::Value(0.9))];
            let onset = match gap {
                Some((h, g)) => {
                    script.push((b + h, Reply::Value(0.1)));
                    script.push((b + h + g, Reply::Value(0.9)));
                    b + h + g
                }
                None => b,
            };
            let spec = for_30s_every(interval);
            let ran = watch(spec, secs(600), &[("errors", &script)], None, QUICK).await;
            let case = format!("interval {interval}s, breach from {b}s, gap {gap:?}");
            let (_, at) = *ran
                .actions
                .first()
                .unwrap_or_else(|| panic!("{case}: no action"));
            assert!(
                at >= secs(onset + 30),
                "{case}: acted at {at:?}, before the breach lasted 30s (from {onset}s)"
            );
            if gap.is_none() {
                // The first poll that sees it, or `for` + lag, whichever is later.
                let seen = b.div_ceil(interval) * interval;
                let latest = (secs(b + 30) + lag).max(secs(seen));
                assert!(
                    at <= latest,
                    "{case}: acted at {at:?}, later than {latest:?}"
                );
            }
        }
    }
}

/// The range queries of a breach's start are awaited in the decision loop; a signal
/// while Prometheus hangs on them ends the watch at once (at 25s), and nothing runs:
/// not an hour later, when the queries would have answered.
#[tokio::test(start_paused = true)]
async fn a_signal_while_the_steps_are_read_ends_the_watch_at_once() {
    SLOW_RANGES.with(|s| s.set(true));
    let spec = spec(
        "  duration: 10m\n  step: 5s",
        &[("errors", "    above: 0.5\n    for: 30s")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (15, Reply::Value(0.9))];
    let ran = watch(
        spec,
        secs(600),
        &[("errors", script)],
        Some(secs(25)),
        QUICK,
    )
    .await;
    SLOW_RANGES.with(|s| s.set(false));
    assert_eq!(ran.outcome, Outcome::Interrupted(Signal::Interrupt));
    assert_eq!(ran.ended, secs(25));
    assert!(ran.actions.is_empty(), "{:?}", ran.actions);
}

/// `for` elapses exactly on a tick (breached from the poll of 20s, `for: 30s`: due at
/// 50s), and that tick's answer reaches the loop only after the confirming poll of the
/// same instant (asked at 50s + `watch.lag`) was read. The instant is judged once: one
/// poll at 50s, one pause, as replay would record it.
#[tokio::test(start_paused = true)]
async fn a_ticks_late_answer_for_an_instant_already_confirmed_is_not_judged_twice() {
    let spec = spec(
        "  duration: 2m\n  step: 5s",
        &[("errors", "    above: 0.5\n    for: 30s\n    action: pause")],
    );
    let script: &[(u64, Reply)] = &[(0, Reply::Value(0.1)), (20, Reply::Value(0.9))];
    SLOW_FIRST.with(|s| s.set(Some((50, crate::core::rules::defaults::LAG + secs(2)))));
    let (ran, _, events) = watch_ordered(
        spec,
        secs(120),
        &[("errors", script)],
        None,
        QUICK,
        Vec::new(),
    )
    .await;
    SLOW_FIRST.with(|s| s.set(None));
    assert_eq!(
        ran.actions,
        vec![("pause", secs(50) + crate::core::rules::defaults::LAG)]
    );
    let at_50 = T0_MS + 50_000;
    let polls_at_50 = events
        .iter()
        .filter(|(at, e)| *at == at_50 && matches!(e, crate::core::events::Event::Poll { .. }))
        .count();
    assert_eq!(polls_at_50, 1, "the instant 50s is judged once");
    let mut instants: Vec<i64> = events
        .iter()
        .filter(|(_, e)| matches!(e, crate::core::events::Event::Poll { .. }))
        .map(|(at, _)| *at)
        .collect();
    let n = instants.len();
    instants.dedup();
    assert_eq!(
        instants.len(),
        n,
        "no instant is judged twice, and none out of order"
    );
}
