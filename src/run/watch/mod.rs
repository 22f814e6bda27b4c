//! The watch loop: polls every rule on its interval, feeds the evaluator, runs actions.
//!
//! Each rule has a poller task that queries at its interval and sends the result,
//! stamped with the time the query was issued, to one decision loop. The decision loop
//! owns all state (evaluators, what has run) and is the only place that starts a
//! command, which is how "exactly once" stays simple: a rollback ends the loop, and the
//! pause command is guarded by a flag that only this loop touches.
//!
//! `session` runs a watch with real processes and the sinks it is handed; `journal`
//! is where the loop records what it claims before a command runs (the agent's store).
//!
//! Over 600 lines for now: the loop's state and its one `select` stay together here,
//! and issue 20 moves what a poll means (`handle`'s interpretation) into the core.

mod act;
pub mod journal;
mod outcome;
pub mod session;

pub use act::{action_started, finished_event, run_claimed, watch_started};
pub use outcome::{Outcome, OutcomeKind, Signal};

pub use session::{run_session, WatchSinks};

use crate::core::ending::{unjudged, RuleSeen};
use crate::core::eval::{Evidence, Extra, Labels, Phase, Poll, RuleEval, Transition};
use crate::core::events::{now_ms, Event, RuleInfo, SeriesValue, Sinks};
use crate::core::rules::{Action, CommandSpec, ExtraKind, Rule, WatchSpec};
use crate::core::series::Sample;
use crate::io::action::{ActionReport, ActionRequest, ActionRunner, ActionStatus};
use crate::io::prom::{MetricsSource, QueryError, QueryResult};
use journal::{FiredSeries, Journal, NoJournal};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tracing::{error, warn};

/// What a rule's polls have shown so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judged {
    /// Its last query succeeded.
    pub last_ok: bool,
    /// One of its queries succeeded.
    pub ever_ok: bool,
    /// One of its queries returned a usable sample.
    pub ever_data: bool,
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long the watch lasts (the file's `watch.duration` unless overridden).
    pub duration: Duration,
    /// Decide and log everything, run no command.
    pub dry_run: bool,
    /// The Prometheus base URL as it may be shown (no credentials): for reports and
    /// links to each query in Prometheus's graph UI.
    pub prometheus: String,
}

/// One poll's result, stamped with its scheduled time.
#[derive(Debug, Clone)]
pub struct PollDone {
    /// Index of the rule in `WatchSpec::rules`.
    pub rule: usize,
    /// When the query was issued, from the watch's start.
    pub at: Duration,
    pub wall: SystemTime,
    pub result: Result<QueryResult, QueryError>,
    /// The results of the rule's extra queries at the same instant, in the order of
    /// `Rule::extra_queries` (stable side, guard, offset baseline).
    pub extra: Vec<Result<QueryResult, QueryError>>,
}

/// Where a watch starts from. `Default` is a fresh watch, which is all `watch` uses;
/// `serve` resumes a watch it persisted, after a restart, with the rest.
///
/// The evaluator's clock is "time since the watch was created", so restored series
/// keep their `since` and `for` counts across the restart exactly as if the agent had
/// never stopped; what happened while it was down is given as `backlog` (polls
/// reconstructed from Prometheus history), never assumed.
#[derive(Default)]
pub struct Start {
    /// Where actions are claimed before they run (`serve`'s store); None: `NoJournal`.
    pub journal: Option<Box<dyn Journal>>,
    /// What each rule's polls before this start showed (`serve` resumes it), so a rule
    /// judged before a restart is not called "never judged" at the end.
    pub judged: Option<Vec<Judged>>,
    /// The rule whose pause command failed (or ended unknown) before this start: no
    /// pause is tried again, rollback rules still act, and the watch ends
    /// `pause_failed` unless a rollback decides it.
    pub pause_failed: Option<(String, ActionStatus)>,
    /// How much of the watch had elapsed before this start (0 for a fresh watch).
    /// Ignored when `origin` is given (then it is measured on `clock`).
    pub elapsed: Duration,
    /// When the watch was created, on the clock it is timed on (`serve`: the store's,
    /// which every agent sharing it agrees on). With it, the watch's elapsed time and
    /// the moment each poll asks Prometheus about are read on `clock`, never on this
    /// machine's wall clock, so an agent whose clock is off neither ends a watch early
    /// nor judges the wrong moments.
    pub origin: Option<SystemTime>,
    /// A reading of the clock the watch is timed on (None: this machine's wall clock).
    pub clock: Option<ClockAnchor>,
    /// Restored evaluators, one per rule in order; None for fresh ones.
    pub evals: Option<Vec<RuleEval>>,
    /// The rule whose pause command already ran.
    pub paused_by: Option<String>,
    /// Polls the watch missed, in time order, handled before any live poll (and
    /// before the end of the watch is considered, so a breach seen there still acts).
    pub backlog: Vec<PollDone>,
    /// Align each rule's polls to multiples of its interval in Unix time, shifted by
    /// `phase(query, interval)`, instead of starting them at the watch's start: the
    /// same query in many watches is then due at the same instant and can be shared,
    /// while different queries spread over the interval.
    pub aligned: Option<fn(&str, Duration) -> Duration>,
    /// The `baseline: before:` samples of each rule (indexed like `WatchSpec::rules`),
    /// taken once before the watch started (`io::prom::history::mean_before`); a rule
    /// with such a baseline but no entry here judges every series by `no_baseline`.
    pub baselines: Vec<Option<Vec<Sample>>>,
}

/// One reading of a clock other than this machine's wall clock (the store's): at the
/// monotonic instant `mono` it read `wall`. Time read from it afterwards advances on
/// the monotonic clock, so a step of this machine's wall clock never moves it.
#[derive(Debug, Clone, Copy)]
pub struct ClockAnchor {
    pub wall: SystemTime,
    pub mono: std::time::Instant,
}

impl ClockAnchor {
    /// The clock's time at the monotonic instant `at`.
    pub fn at(&self, at: std::time::Instant) -> SystemTime {
        match at.checked_duration_since(self.mono) {
            Some(d) => self.wall + d,
            None => self.wall - self.mono.duration_since(at),
        }
    }

    /// The clock's time now.
    pub fn now(&self) -> SystemTime {
        self.at(std::time::Instant::now())
    }

    /// The clock's time now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// Polls one rule at its interval. Each poll is stamped with its *scheduled* time (the
/// tick), not the moment the task happened to run, so the time between two polls is
/// exactly a multiple of the interval and `for` is never missed by a scheduling jitter
/// of a few microseconds.
#[allow(clippy::too_many_arguments)]
async fn poll_loop<S: MetricsSource>(
    rule: usize,
    query: String,
    extras: Vec<(ExtraKind, String, Duration)>,
    interval: Duration,
    source: Arc<S>,
    tx: mpsc::Sender<PollDone>,
    first: Instant,
    start: Instant,
    start_wall: SystemTime,
    elapsed: Duration,
) {
    let mut ticker = tokio::time::interval_at(first, interval);
    // A late poll (Prometheus slow, the runtime busy) skips the ticks it missed and
    // stays on the grid, so identical queries of many watches stay due together.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let tick = ticker.tick().await;
        let at = elapsed + tick.saturating_duration_since(start);
        let wall = start_wall + at;
        let result = source.query(&query, wall).await;
        // The judges' queries at the same instant (an offset baseline at `wall - D`).
        let mut extra = Vec::with_capacity(extras.len());
        for (_, q, offset) in &extras {
            let t = wall.checked_sub(*offset).unwrap_or(UNIX_EPOCH);
            extra.push(source.query(q, t).await);
        }
        if tx
            .send(PollDone {
                rule,
                at,
                wall,
                result,
                extra,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// How a rule is described in reports, events and notifications.
pub fn rule_info(rule: &Rule, prometheus: &str) -> RuleInfo {
    RuleInfo {
        name: rule.name.clone(),
        description: rule.description.clone(),
        query: rule.query.clone(),
        above: rule.threshold.above,
        below: rule.threshold.below,
        worse: crate::core::eval::Worse::of(&rule.params()),
        threshold: rule.condition(),
        for_s: rule.for_.as_secs_f64(),
        interval_s: rule.interval.as_secs_f64(),
        no_data: rule.no_data.as_str(),
        action: rule.action.as_str(),
        graph_url: (!prometheus.is_empty())
            .then(|| crate::io::prom::graph_link(prometheus, &rule.query)),
    }
}

/// The state of one running watch.
struct Watch<'a, R> {
    spec: &'a WatchSpec,
    /// The clock the watch is timed on (`Start::clock`; None: this machine's wall
    /// clock): what the watch stamps outside itself (a silence's start and end) is
    /// read on it, so an agent whose own clock is off never silences the wrong hour.
    clock: Option<ClockAnchor>,
    runner: &'a R,
    opts: &'a WatchOptions,
    signals: &'a mut mpsc::Receiver<Signal>,
    sinks: &'a mut Sinks,
    evals: Vec<RuleEval>,
    last_poll_ok: Vec<bool>,
    ever_ok: Vec<bool>,
    /// Whether the rule ever returned a usable sample.
    ever_data: Vec<bool>,
    paused_by: Option<String>,
    /// The rule whose pause failed, and how.
    pause_failed: Option<(String, ActionStatus)>,
    journal: Box<dyn Journal>,
    /// A signal that arrived while a command ran; honoured once it is done.
    deferred_signal: Option<Signal>,
    /// Each rule's `baseline: before:` samples, as the poll the evaluator is given.
    before: Vec<Option<Poll>>,
    /// Series already warned about having no baseline (rule index, labels).
    warned_no_baseline: BTreeSet<(usize, Labels)>,
    /// Rules whose unmatched guard was logged (once per rule).
    warned_guard: BTreeSet<usize>,
    /// Silences still being created: they run beside the watch and its ending, never
    /// in front of them (`act::Silencing`).
    silences: Vec<act::Silencing>,
}

/// The first tick at or after `now_wall` on the grid `k * interval + phase` (Unix time),
/// as an `Instant` relative to (`now`, `now_wall`).
fn aligned_first(
    now: Instant,
    now_wall: SystemTime,
    interval: Duration,
    phase: Duration,
) -> Instant {
    let iv = interval.as_nanos().max(1);
    let t = now_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let phase = phase.as_nanos() % iv;
    let k = t.saturating_sub(phase).div_ceil(iv);
    let next = k * iv + phase;
    let next = if next < t { next + iv } else { next };
    now + Duration::from_nanos((next - t) as u64)
}

/// Runs a watch to its end from a given `Start` (see there; the default for a new
/// watch, what `serve` restores to resume one). `signals` delivers SIGINT/SIGTERM (or
/// a test's stand-in); every decision goes to `sinks`.
pub async fn run_from<S: MetricsSource, R: ActionRunner>(
    spec: &WatchSpec,
    source: Arc<S>,
    runner: &R,
    opts: &WatchOptions,
    from: Start,
    signals: &mut mpsc::Receiver<Signal>,
    sinks: &mut Sinks,
) -> Outcome {
    let start = Instant::now();
    let now_wall = match &from.clock {
        Some(c) => c.at(start.into_std()),
        None => SystemTime::now(),
    };
    let elapsed = match from.origin {
        Some(origin) => now_wall.duration_since(origin).unwrap_or_default(),
        None => from.elapsed,
    };
    // The watch's own origin: when it was created, `elapsed` ago.
    let start_wall = now_wall.checked_sub(elapsed).unwrap_or(now_wall);
    let end = start + opts.duration.saturating_sub(elapsed);
    let max_blind = spec.max_blind.min(opts.duration);
    let (tx, mut rx) = mpsc::channel::<PollDone>(64);
    let mut pollers = JoinSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let first = match from.aligned {
            Some(phase) => aligned_first(
                start,
                now_wall,
                rule.interval,
                phase(&rule.query, rule.interval),
            ),
            None => start,
        };
        pollers.spawn(poll_loop(
            i,
            rule.query.clone(),
            rule.extra_queries(),
            rule.interval,
            source.clone(),
            tx.clone(),
            first,
            start,
            start_wall,
            elapsed,
        ));
    }
    drop(tx);
    sinks.emit(now_ms(), &act::watch_started(spec, opts));
    let judged = match from.judged {
        Some(j) if j.len() == spec.rules.len() => j,
        _ => vec![Judged::default(); spec.rules.len()],
    };
    let mut w = Watch {
        spec,
        clock: from.clock,
        runner,
        opts,
        signals,
        sinks,
        evals: match from.evals {
            Some(evals) if evals.len() == spec.rules.len() => evals,
            _ => spec
                .rules
                .iter()
                .map(|r| RuleEval::new(r.params_over(opts.duration)))
                .collect(),
        },
        last_poll_ok: judged.iter().map(|j| j.last_ok).collect(),
        ever_ok: judged.iter().map(|j| j.ever_ok).collect(),
        ever_data: judged.iter().map(|j| j.ever_data).collect(),
        paused_by: from.paused_by,
        pause_failed: from.pause_failed,
        journal: from.journal.unwrap_or_else(|| Box::new(NoJournal)),
        deferred_signal: None,
        before: spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| match r.baseline {
                Some(crate::core::rules::BaselineSource::Before(_)) => Some(Poll::Samples(
                    from.baselines.get(i).cloned().flatten().unwrap_or_default(),
                )),
                _ => None,
            })
            .collect(),
        warned_no_baseline: BTreeSet::new(),
        warned_guard: BTreeSet::new(),
        silences: Vec::new(),
    };
    // `max_blind` counts on the watch's clock from the last successful query, or from
    // this start (a resumed watch gets a full `max_blind` from its resumption, never
    // the time it was down).
    let mut blind = Blind {
        start,
        elapsed,
        last_ok: elapsed,
        max_blind,
    };
    let mut backlog_outcome = None;
    for done in from.backlog {
        if let Some(outcome) = w.handle(done).await {
            backlog_outcome = Some(outcome);
            break;
        }
    }
    let outcome = 'watch: loop {
        if let Some(outcome) = backlog_outcome.take() {
            break outcome;
        }
        if let Some(sig) = w.deferred_signal {
            break Outcome::Interrupted(sig);
        }
        tokio::select! {
            biased;
            Some(sig) = w.signals.recv() => {
                w.sinks.emit(now_ms(), &Event::Signal { signal: format!("{sig:?}"), during_action: false });
                break Outcome::Interrupted(sig);
            }
            _ = sleep_until(end) => {
                // Polls taken before the end that queued while a command ran are
                // judged first: a breach they show still acts.
                if let Some(o) = w.drain(&mut rx, &mut blind, Some(opts.duration)).await {
                    break 'watch o;
                }
                break w.finish();
            }
            _ = sleep_until(blind.deadline()) => {
                // Good polls may be waiting in the queue (a slow pause command held the
                // loop): they count before the watch is called blind.
                if let Some(o) = w.drain(&mut rx, &mut blind, Some(opts.duration)).await {
                    break 'watch o;
                }
                if Instant::now() < blind.deadline() {
                    continue;
                }
                let reason = format!(
                    "no query has succeeded for {} (max_blind); the release cannot be judged",
                    fmt_d(max_blind)
                );
                error!(event = "blind", "{reason}");
                break Outcome::Inconclusive { reason };
            }
            Some(done) = rx.recv() => {
                blind.saw(&done);
                if let Some(outcome) = w.handle(done).await {
                    break outcome;
                }
            }
        }
    };
    pollers.abort_all();
    let warnings = w.warnings();
    // Silences already made are told before the ending; one still being made (a slow
    // Alertmanager) never holds the ending back: it is awaited, bounded, after it.
    w.report_silences(false).await;
    w.sinks
        .emit(now_ms(), &outcome.finished_event_with(&warnings));
    w.report_silences(true).await;
    outcome
}

/// When the watch goes blind: `max_blind` after the last successful query, on the
/// watch's clock (time since it was created).
struct Blind {
    start: Instant,
    /// The watch's clock at `start`.
    elapsed: Duration,
    /// The watch's clock at the last successful query (or at `start`).
    last_ok: Duration,
    max_blind: Duration,
}

impl Blind {
    fn saw(&mut self, done: &PollDone) {
        if done.result.is_ok() {
            self.last_ok = self.last_ok.max(done.at);
        }
    }
    fn deadline(&self) -> Instant {
        self.start + (self.last_ok + self.max_blind).saturating_sub(self.elapsed)
    }
}

impl<R: ActionRunner> Watch<'_, R> {
    fn finish(&self) -> Outcome {
        for (rule, eval) in self.spec.rules.iter().zip(&self.evals) {
            for (labels, s) in eval.series() {
                if s.phase == Phase::Pending {
                    warn!(event = "ended_pending", rule = %rule.name, labels = %labels_json(labels), "watch ended while this series was still pending (breached, but not for `for`)");
                }
            }
        }
        // What the rules saw decides first (`core::ending`, as replay decides it).
        let seen: Vec<RuleSeen> = self
            .spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleSeen {
                name: &r.name,
                last_ok: self.last_poll_ok[i],
                ever_ok: self.ever_ok[i],
                insufficient: self.evals[i].never_judged(),
                ever_data: self.ever_data[i],
                expect_data: r.expect_data,
            })
            .collect();
        if let Some(why) = unjudged(&seen) {
            let reason = why.reason();
            error!(event = why.event(), rules = ?why.rules(), "{reason}");
            return Outcome::Inconclusive { reason };
        }
        match &self.pause_failed {
            Some((rule, ActionStatus::Unknown)) => {
                return Outcome::ActionUnknown {
                    action: "pause",
                    rule: rule.clone(),
                }
            }
            Some((rule, status)) => {
                return Outcome::PauseFailed {
                    rule: rule.clone(),
                    status: status.clone(),
                }
            }
            None => {}
        }
        match &self.paused_by {
            Some(rule) => Outcome::Paused { rule: rule.clone() },
            None => Outcome::Healthy,
        }
    }

    /// What the end of the watch must say besides its outcome: rules that were judged
    /// but never returned a series (they passed on `no_data` alone).
    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((rule, ok), data) in self
            .spec
            .rules
            .iter()
            .zip(&self.ever_ok)
            .zip(&self.ever_data)
        {
            if *ok && !*data && !rule.expect_data {
                let w = format!(
                    "rule `{}` returned no series at any poll of the watch (a renamed metric or label?); it was judged by `no_data: {}` alone",
                    rule.name,
                    rule.no_data.as_str()
                );
                warn!(event = "never_data", rule = %rule.name, "{w}");
                out.push(w);
            }
        }
        out
    }

    /// Handles the polls already waiting in the queue (up to `until` on the watch's
    /// clock, if given); Some(outcome) if one of them ends the watch.
    async fn drain(
        &mut self,
        rx: &mut mpsc::Receiver<PollDone>,
        blind: &mut Blind,
        until: Option<Duration>,
    ) -> Option<Outcome> {
        while let Ok(done) = rx.try_recv() {
            if until.is_some_and(|u| done.at >= u) {
                continue;
            }
            blind.saw(&done);
            if let Some(o) = self.handle(done).await {
                return Some(o);
            }
        }
        None
    }

    /// Handles one poll; Some(outcome) ends the watch.
    async fn handle(&mut self, done: PollDone) -> Option<Outcome> {
        let i = done.rule;
        let spec = self.spec;
        let rule = &spec.rules[i];
        let at_ms = unix_ms(done.wall);
        // The judges' queries of the same instant; a missing one (a poll rebuilt from
        // history without them) counts as failed, so it is never taken as evidence.
        let kinds = rule.extra_queries();
        let mut extra_results = done.extra.into_iter();
        let mut extra_polls: Vec<(ExtraKind, Poll)> = Vec::with_capacity(kinds.len());
        let mut extra_error = None;
        for (kind, q, _) in &kinds {
            let what = match kind {
                ExtraKind::Stable => "stable (`compare.stable`)",
                ExtraKind::Guard => "guard (`min_traffic.query`)",
                ExtraKind::Baseline => "baseline (`baseline.offset`)",
            };
            match extra_results.next() {
                Some(Ok(r)) => extra_polls.push((*kind, Poll::Samples(r.samples))),
                Some(Err(e)) => {
                    if e.is_bad_query() && !self.ever_ok[i] {
                        error!(event = "query_rejected", rule = %rule.name, error = %e, query = %q, "Prometheus rejects this rule's {what} query; fix the rule");
                        return Some(Outcome::QueryRejected {
                            rule: rule.name.clone(),
                            message: format!("the {what} query: {e}"),
                        });
                    }
                    extra_error.get_or_insert(format!("the {what} query failed: {e}"));
                    extra_polls.push((*kind, Poll::Failed));
                }
                None => {
                    extra_error.get_or_insert(format!("the {what} query was not run"));
                    extra_polls.push((*kind, Poll::Failed));
                }
            }
        }
        let (poll, error, warnings) = match done.result {
            Ok(r) => {
                // (`ever_ok` once the evaluator took the poll: a guard it cannot match
                // fails the poll as a failed guard query would.)
                let ok = extra_error.is_none();
                self.last_poll_ok[i] = ok;
                if r.samples.iter().any(|s| !s.value.is_nan()) {
                    self.ever_data[i] = true;
                }
                (Poll::Samples(r.samples), extra_error, r.warnings)
            }
            Err(e) => {
                self.last_poll_ok[i] = false;
                if e.is_bad_query() && !self.ever_ok[i] {
                    error!(event = "query_rejected", rule = %rule.name, error = %e, query = %rule.query, "Prometheus rejects this rule's query; fix the rule");
                    return Some(Outcome::QueryRejected {
                        rule: rule.name.clone(),
                        message: e.to_string(),
                    });
                }
                (Poll::Failed, Some(e.to_string()), Vec::new())
            }
        };
        let pick = |k: ExtraKind| {
            extra_polls
                .iter()
                .find(|(kind, _)| *kind == k)
                .map(|(_, p)| p)
        };
        let extra = Extra {
            guard: pick(ExtraKind::Guard),
            baseline: pick(ExtraKind::Baseline).or(self.before[i].as_ref()),
            stable: pick(ExtraKind::Stable),
        };
        let reading = self.evals[i].read(done.at, &poll, extra);
        let notes = self.evals[i].notes().clone();
        // A guard that cannot be matched is a failed poll, never a silent sum.
        let error = match &notes.guard_refused {
            Some(why) => {
                self.last_poll_ok[i] = false;
                if self.warned_guard.insert(i) {
                    warn!(event = "guard_unmatched", rule = %rule.name, "{why}");
                }
                error.or_else(|| Some(why.clone()))
            }
            None => error,
        };
        self.ever_ok[i] |= self.last_poll_ok[i];
        for labels in &notes.no_baseline {
            if self.warned_no_baseline.insert((i, labels.clone())) {
                let nb = rule.judging.baseline.map(|b| b.no_baseline);
                warn!(event = "no_baseline", rule = %rule.name, labels = %labels_json(labels),
                    "this series has no baseline (no value at the baseline's time); judged by `no_baseline: {}`",
                    nb.map_or("hold", |n| n.as_str()));
            }
        }
        let samples: Vec<SeriesValue> = match &poll {
            Poll::Samples(s) => s
                .iter()
                .map(|s| SeriesValue {
                    labels: s.labels.clone(),
                    value: (!s.value.is_nan()).then_some(s.value),
                })
                .collect(),
            Poll::Failed => Vec::new(),
        };
        self.sinks.emit(
            at_ms,
            &Event::Poll {
                rule: rule.name.clone(),
                samples,
                error,
                warnings,
                state: reading.state,
                value: reading.value,
                reference: reading.reference,
                insufficient: notes.insufficient,
                evidence: reading.evidence,
                windows: self.evals[i].windows(),
            },
        );

        let threshold = rule.condition();
        let mut fired: Vec<FiredSeries> = Vec::new();
        let mut fired_evidence: Vec<Evidence> = Vec::new();
        for t in reading.transitions {
            let event = match t {
                Transition::Pending {
                    labels,
                    value,
                    evidence,
                } => Event::Pending {
                    rule: rule.name.clone(),
                    labels,
                    value,
                    threshold: threshold.clone(),
                    for_s: rule.for_.as_secs_f64(),
                    evidence,
                },
                Transition::Resolved {
                    labels,
                    from,
                    value,
                    breached_for,
                    evidence,
                } => Event::Resolved {
                    rule: rule.name.clone(),
                    labels,
                    value,
                    threshold: threshold.clone(),
                    was: if from == Phase::Firing {
                        "firing"
                    } else {
                        "pending"
                    },
                    breached_for_s: breached_for.as_secs_f64(),
                    evidence,
                },
                Transition::Fired {
                    labels,
                    value,
                    breached_for,
                    evidence,
                } => {
                    fired.push(FiredSeries {
                        labels: labels.clone(),
                        value,
                        since: done.at.saturating_sub(breached_for),
                    });
                    fired_evidence.push(evidence.clone());
                    Event::Fired {
                        rule: rule.name.clone(),
                        labels,
                        value,
                        threshold: threshold.clone(),
                        breached_for_s: breached_for.as_secs_f64(),
                        action: rule.action.as_str(),
                        evidence,
                    }
                }
            };
            self.sinks.emit(at_ms, &event);
        }
        if fired.is_empty() {
            return None;
        }
        match rule.action {
            Action::Notify => {
                for (f, evidence) in fired.into_iter().zip(fired_evidence) {
                    self.sinks.emit(
                        at_ms,
                        &Event::Notify {
                            rule: rule.name.clone(),
                            value: f.value,
                            threshold: threshold.clone(),
                            breached_for_s: done.at.saturating_sub(f.since).as_secs_f64(),
                            labels: f.labels,
                            evidence,
                        },
                    )
                }
            }
            Action::Pause => {
                // One pause per watch: after it ran (or failed), later firings are noted.
                let by = self
                    .paused_by
                    .clone()
                    .or_else(|| self.pause_failed.as_ref().map(|(r, _)| r.clone()));
                if let Some(by) = by {
                    let ev = Event::PauseSkipped {
                        rule: rule.name.clone(),
                        paused_by: by,
                    };
                    self.sinks.emit(at_ms, &ev);
                    return None;
                }
                let cmd = spec
                    .pause
                    .as_ref()
                    .expect("validated: pause rules have a pause command");
                let report = self.act("pause", rule, cmd, &fired, done.at).await;
                match report {
                    Some(r) if !r.status.succeeded() => {
                        // The agreed pause could not be carried out: say so (the
                        // `pause_failed` notification went out with the result), and
                        // keep watching, so that the rollback rules still protect the
                        // rest of the window.
                        error!(event = "pause_failed", rule = %rule.name, status = %r.status, "the pause command {}: act by hand; the watch goes on and its rollback rules still act", r.status);
                        self.pause_failed = Some((rule.name.clone(), r.status));
                    }
                    _ => self.paused_by = Some(rule.name.clone()),
                }
            }
            Action::Rollback => {
                let cmd = spec
                    .rollback
                    .as_ref()
                    .expect("validated: rollback rules have a rollback command");
                let report = self.act("rollback", rule, cmd, &fired, done.at).await;
                return Some(match report {
                    None => Outcome::RolledBack {
                        rule: rule.name.clone(),
                        dry_run: true,
                    },
                    Some(r) if r.status.succeeded() => Outcome::RolledBack {
                        rule: rule.name.clone(),
                        dry_run: false,
                    },
                    Some(r) => Outcome::RollbackFailed {
                        rule: rule.name.clone(),
                        status: r.status,
                    },
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod tests;
