//! The watch loop: polls every rule on its interval, feeds the evaluator, runs actions.
//!
//! Each rule has a poller task that queries at its interval and sends the result,
//! stamped with the time the query was issued, to one decision loop. The decision loop
//! owns all state (evaluators, what has run) and is the only place that starts a
//! command, which is how "exactly once" stays simple: a rollback ends the loop, and the
//! pause command is guarded by a flag that only this loop touches.

use crate::action::{ActionReport, ActionRequest, ActionRunner, ActionStatus};
use crate::eval::{Labels, Poll, RuleEval, Transition};
use crate::prom::{MetricsSource, QueryError, QueryResult};
use crate::rules::{Action, CommandSpec, Rule, WatchSpec};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

/// A signal asking the watch to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

/// How a watch ended. Each maps to one exit code (see `crate::exit`).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The watch ran its full duration and nothing fired that needed acting on.
    Healthy,
    /// The rollback command succeeded (or, with `--dry-run`, would have run).
    RolledBack { rule: String, dry_run: bool },
    /// The rollback command failed, timed out or could not start.
    RollbackFailed { rule: String, status: ActionStatus },
    /// A pause ran and no rollback followed.
    Paused { rule: String },
    /// The pause command failed: the agreed action could not be carried out.
    PauseFailed { rule: String, status: ActionStatus },
    /// Prometheus could not be used long enough to judge the release.
    Inconclusive { reason: String },
    /// A signal stopped the watch; no command was started because of it.
    Interrupted(Signal),
    /// Prometheus rejected a rule's query as invalid before it ever succeeded.
    QueryRejected { rule: String, message: String },
}

impl Outcome {
    /// A short name for logs and machine output.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Healthy => "healthy",
            Outcome::RolledBack { .. } => "rolled_back",
            Outcome::RollbackFailed { .. } => "rollback_failed",
            Outcome::Paused { .. } => "paused",
            Outcome::PauseFailed { .. } => "pause_failed",
            Outcome::Inconclusive { .. } => "inconclusive",
            Outcome::Interrupted(_) => "interrupted",
            Outcome::QueryRejected { .. } => "query_rejected",
        }
    }

    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            Outcome::Healthy => exit::HEALTHY,
            Outcome::RolledBack { .. } => exit::ROLLED_BACK,
            Outcome::RollbackFailed { .. } | Outcome::PauseFailed { .. } => exit::ACTION_FAILED,
            Outcome::Paused { .. } => exit::PAUSED,
            Outcome::Inconclusive { .. } => exit::INCONCLUSIVE,
            Outcome::Interrupted(Signal::Interrupt) => exit::SIGINT,
            Outcome::Interrupted(Signal::Terminate) => exit::SIGTERM,
            Outcome::QueryRejected { .. } => exit::USAGE,
        }
    }
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long the watch lasts (the file's `watch.duration` unless overridden).
    pub duration: Duration,
    /// Decide and log everything, run no command.
    pub dry_run: bool,
}

struct PollDone {
    rule: usize,
    /// When the query was issued, from the watch's start.
    at: Duration,
    wall: SystemTime,
    result: Result<QueryResult, QueryError>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), |v| v.to_string())
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

async fn poll_loop<S: MetricsSource>(
    rule: usize,
    query: String,
    interval: Duration,
    source: Arc<S>,
    tx: mpsc::Sender<PollDone>,
    start: Instant,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let issued = Instant::now();
        let wall = SystemTime::now();
        let result = source.query(&query, wall).await;
        let done = PollDone {
            rule,
            at: issued - start,
            wall,
            result,
        };
        if tx.send(done).await.is_err() {
            return;
        }
    }
}

/// The state of one running watch.
struct Watch<'a, R> {
    spec: &'a WatchSpec,
    runner: &'a R,
    opts: &'a WatchOptions,
    signals: &'a mut mpsc::Receiver<Signal>,
    evals: Vec<RuleEval>,
    last_poll_ok: Vec<bool>,
    ever_ok: Vec<bool>,
    paused_by: Option<String>,
    /// A signal that arrived while a command ran; honoured once it is done.
    deferred_signal: Option<Signal>,
}

/// Runs a watch to its end. `signals` delivers SIGINT/SIGTERM (or a test's stand-in).
pub async fn run<S: MetricsSource, R: ActionRunner>(
    spec: &WatchSpec,
    source: Arc<S>,
    runner: &R,
    opts: &WatchOptions,
    signals: &mut mpsc::Receiver<Signal>,
) -> Outcome {
    let start = Instant::now();
    let end = start + opts.duration;
    let max_blind = spec.max_blind.min(opts.duration);
    let (tx, mut rx) = mpsc::channel::<PollDone>(64);
    let mut pollers = JoinSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        pollers.spawn(poll_loop(
            i,
            rule.query.clone(),
            rule.interval,
            source.clone(),
            tx.clone(),
            start,
        ));
    }
    drop(tx);
    info!(
        event = "watch_started",
        rules = spec.rules.len(),
        duration = %fmt_d(opts.duration),
        max_blind = %fmt_d(max_blind),
        dry_run = opts.dry_run,
        "watch started: {} rule(s) for {}",
        spec.rules.len(),
        fmt_d(opts.duration)
    );
    let mut w = Watch {
        spec,
        runner,
        opts,
        signals,
        evals: spec
            .rules
            .iter()
            .map(|r| RuleEval::new(r.params()))
            .collect(),
        last_poll_ok: vec![false; spec.rules.len()],
        ever_ok: vec![false; spec.rules.len()],
        paused_by: None,
        deferred_signal: None,
    };
    let mut last_success = start;
    let outcome = loop {
        if let Some(sig) = w.deferred_signal {
            break Outcome::Interrupted(sig);
        }
        let blind_deadline = last_success + max_blind;
        tokio::select! {
            biased;
            Some(sig) = w.signals.recv() => {
                warn!(event = "signal", signal = ?sig, "signal received: stopping the watch; no command will run");
                break Outcome::Interrupted(sig);
            }
            _ = sleep_until(end) => break w.finish(),
            _ = sleep_until(blind_deadline) => {
                let reason = format!(
                    "no query has succeeded for {} (max_blind); the release cannot be judged",
                    fmt_d(max_blind)
                );
                error!(event = "blind", "{reason}");
                break Outcome::Inconclusive { reason };
            }
            Some(done) = rx.recv() => {
                if done.result.is_ok() {
                    last_success = last_success.max(start + done.at);
                }
                if let Some(outcome) = w.handle(done).await {
                    break outcome;
                }
            }
        }
    };
    pollers.abort_all();
    outcome
}

impl<R: ActionRunner> Watch<'_, R> {
    fn finish(&self) -> Outcome {
        for (rule, eval) in self.spec.rules.iter().zip(&self.evals) {
            for (labels, s) in eval.series() {
                if s.phase == crate::eval::Phase::Pending {
                    warn!(event = "ended_pending", rule = %rule.name, labels = %labels_json(labels), "watch ended while this series was still pending (breached, but not for `for`)");
                }
            }
        }
        if !self.last_poll_ok.iter().any(|ok| *ok) {
            let reason =
                "the watch ended while blind: the last query of every rule failed".to_string();
            error!(event = "blind", "{reason}");
            return Outcome::Inconclusive { reason };
        }
        match &self.paused_by {
            Some(rule) => Outcome::Paused { rule: rule.clone() },
            None => Outcome::Healthy,
        }
    }

    /// Handles one poll; Some(outcome) ends the watch.
    async fn handle(&mut self, done: PollDone) -> Option<Outcome> {
        let i = done.rule;
        let rule = &self.spec.rules[i];
        let poll = match &done.result {
            Ok(r) => {
                for warning in &r.warnings {
                    warn!(event = "query_warning", rule = %rule.name, warning = %warning, "Prometheus attached a warning to the result (it may be partial)");
                }
                self.last_poll_ok[i] = true;
                self.ever_ok[i] = true;
                Poll::Samples(r.samples.clone())
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
                warn!(event = "query_failed", rule = %rule.name, error = %e, "query failed; the rule keeps its state (errors never count as breaches)");
                Poll::Failed
            }
        };
        let transitions = self.evals[i].observe(done.at, &poll);
        if let Poll::Samples(samples) = &poll {
            self.log_poll(i, done.at, samples);
        }
        let mut fired: Vec<(Labels, Option<f64>, Duration)> = Vec::new();
        for t in transitions {
            match t {
                Transition::Pending { labels, value } => info!(
                    event = "pending",
                    rule = %rule.name,
                    labels = %labels_json(&labels),
                    value = %fmt_value(value),
                    threshold = %rule.threshold,
                    r#for = %fmt_d(rule.for_),
                    unix_ms = unix_ms(done.wall),
                    "breached: pending until it has lasted {}",
                    fmt_d(rule.for_)
                ),
                Transition::Resolved {
                    labels,
                    from,
                    value,
                    breached_for,
                } => info!(
                    event = "resolved",
                    rule = %rule.name,
                    labels = %labels_json(&labels),
                    value = %fmt_value(value),
                    threshold = %rule.threshold,
                    was = ?from,
                    breached_for = %fmt_d(breached_for),
                    unix_ms = unix_ms(done.wall),
                    "no longer breached after {}",
                    fmt_d(breached_for)
                ),
                Transition::Fired {
                    labels,
                    value,
                    breached_for,
                } => {
                    warn!(
                        event = "fired",
                        rule = %rule.name,
                        labels = %labels_json(&labels),
                        value = %fmt_value(value),
                        threshold = %rule.threshold,
                        breached_for = %fmt_d(breached_for),
                        action = rule.action.as_str(),
                        unix_ms = unix_ms(done.wall),
                        "breached at every poll for {} (for: {}): {}",
                        fmt_d(breached_for),
                        fmt_d(rule.for_),
                        rule.action.as_str()
                    );
                    fired.push((labels, value, breached_for));
                }
            }
        }
        for (labels, value, breached_for) in fired {
            match rule.action {
                Action::Notify => info!(
                    event = "notify",
                    rule = %rule.name,
                    labels = %labels_json(&labels),
                    value = %fmt_value(value),
                    threshold = %rule.threshold,
                    breached_for = %fmt_d(breached_for),
                    "notification: {} is breached ({} {}); the watch goes on",
                    rule.name,
                    fmt_value(value),
                    rule.threshold
                ),
                Action::Pause => {
                    if let Some(by) = &self.paused_by {
                        info!(event = "pause_skipped", rule = %rule.name, paused_by = %by, "already paused; the pause command runs once per watch");
                        continue;
                    }
                    let cmd = self
                        .spec
                        .pause
                        .as_ref()
                        .expect("validated: pause rules have a pause command");
                    let report = self
                        .act("pause", rule, cmd, &labels, value, breached_for)
                        .await;
                    match report {
                        Some(r) if !r.status.succeeded() => {
                            return Some(Outcome::PauseFailed {
                                rule: rule.name.clone(),
                                status: r.status,
                            });
                        }
                        _ => self.paused_by = Some(rule.name.clone()),
                    }
                }
                Action::Rollback => {
                    let cmd = self
                        .spec
                        .rollback
                        .as_ref()
                        .expect("validated: rollback rules have a rollback command");
                    let report = self
                        .act("rollback", rule, cmd, &labels, value, breached_for)
                        .await;
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
        }
        None
    }

    /// One line per poll: the value(s) against the threshold and the state.
    fn log_poll(&self, i: usize, at: Duration, samples: &[crate::eval::Sample]) {
        let rule = &self.spec.rules[i];
        let eval = &self.evals[i];
        let valid: Vec<f64> = samples
            .iter()
            .map(|s| s.value)
            .filter(|v| !v.is_nan())
            .collect();
        let worst = if rule.threshold.above.is_some() {
            valid
                .iter()
                .copied()
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        } else {
            valid
                .iter()
                .copied()
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))
        };
        let state = match eval
            .series()
            .values()
            .map(|s| s.phase)
            .max_by_key(|p| *p == crate::eval::Phase::Firing)
        {
            Some(crate::eval::Phase::Firing) => "breached".to_string(),
            Some(crate::eval::Phase::Pending) => {
                let since = eval
                    .series()
                    .values()
                    .map(|s| s.since)
                    .min()
                    .unwrap_or_default();
                format!(
                    "pending for {} of {}",
                    fmt_d(at.saturating_sub(since)),
                    fmt_d(rule.for_)
                )
            }
            None if valid.is_empty() => "no data".to_string(),
            None => "ok".to_string(),
        };
        info!(
            event = "poll",
            rule = %rule.name,
            series = valid.len(),
            value = %fmt_value(worst),
            threshold = %rule.threshold,
            state = %state,
            "{}: {} (threshold {}) {}",
            rule.name,
            fmt_value(worst),
            rule.threshold,
            state
        );
        debug!(rule = %rule.name, samples = ?samples, "samples");
    }

    /// Runs (or, in a dry run, describes) an action. None in a dry run.
    async fn act(
        &mut self,
        kind: &'static str,
        rule: &Rule,
        cmd: &CommandSpec,
        labels: &Labels,
        value: Option<f64>,
        breached_for: Duration,
    ) -> Option<ActionReport> {
        if self.opts.dry_run {
            warn!(event = "action_skipped", action = kind, rule = %rule.name, argv = ?cmd.argv, "dry run: would run the {kind} command");
            return None;
        }
        let mut env = vec![
            ("ROLLWATCH_ACTION".to_string(), kind.to_string()),
            ("ROLLWATCH_RULE".to_string(), rule.name.clone()),
            (
                "ROLLWATCH_VALUE".to_string(),
                value.map(|v| v.to_string()).unwrap_or_default(),
            ),
            (
                "ROLLWATCH_THRESHOLD".to_string(),
                rule.threshold.to_string(),
            ),
            ("ROLLWATCH_LABELS".to_string(), labels_json(labels)),
            (
                "ROLLWATCH_BREACHED_FOR".to_string(),
                breached_for.as_secs().to_string(),
            ),
        ];
        for (name, v) in &self.spec.vars {
            env.push((
                format!("ROLLWATCH_VAR_{}", name.to_ascii_uppercase()),
                v.clone(),
            ));
        }
        let req = ActionRequest {
            kind,
            argv: cmd.argv.clone(),
            timeout: cmd.timeout,
            env,
        };
        warn!(event = "action_started", action = kind, rule = %rule.name, argv = ?cmd.argv, timeout = %fmt_d(cmd.timeout), "running the {kind} command");
        let fut = self.runner.run(&req);
        tokio::pin!(fut);
        let report = loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(sig) = self.signals.recv() => {
                    warn!(event = "signal", signal = ?sig, action = kind, "signal received while the {kind} command runs: letting it finish, then stopping");
                    self.deferred_signal.get_or_insert(sig);
                }
            }
        };
        let level_ok = report.status.succeeded();
        if level_ok {
            info!(event = "action_finished", action = kind, rule = %rule.name, status = %report.status, duration = %fmt_d(report.duration), "{kind} command {}", report.status);
        } else {
            error!(event = "action_finished", action = kind, rule = %rule.name, status = %report.status, duration = %fmt_d(report.duration), output_tail = ?report.output_tail, "{kind} command {}", report.status);
        }
        Some(report)
    }
}
