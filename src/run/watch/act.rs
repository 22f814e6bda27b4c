//! Running an action from the watch loop: the command's environment, its claim in
//! the journal (it starts only once the claim is committed), the signals that arrive
//! while it runs, and the events that describe it.
//!
//! The agent's re-run of an interrupted command after a restart (`run::agent`'s
//! `resume`) claims differently (a re-run row, the first run's environment) but then
//! goes through the same path: `watch_started`, `action_started`, `run_claimed`,
//! `action_finished`, so a re-run reports exactly what a first run does.

use super::journal::Claim;
use super::journal::{FiredSeries, Journal};
use super::outcome::Signal;
use super::start::{labels_json, rule_info, WatchOptions};
use super::state::{Silencing, Watch};
use crate::core::control::Control;
use crate::core::events::{now_ms, Event, Sinks};
use crate::core::rules::{CommandSpec, Rule, WatchSpec};
use crate::io::action::{ActionReport, ActionRequest, ActionRunner, ActionStatus};
use crate::io::prom::{HistorySource, MetricsSource};
use crate::run::channel;
use std::time::Duration;
use tracing::error;

/// How long the end of a watch waits for silences still being made (each is already
/// bounded by its retry policy: 3 attempts of 5 s, 16.5 s in all).
const SILENCE_WAIT: Duration = Duration::from_secs(20);

/// The `watch_started` event of a watch: its duration, and its `max_blind` capped by
/// its duration (the limit the loop applies).
pub fn watch_started(spec: &WatchSpec, opts: &WatchOptions) -> Event {
    Event::WatchStarted {
        rules_file: spec.path.display().to_string(),
        prometheus: opts.prometheus.clone(),
        duration_s: opts.duration.as_secs_f64(),
        max_blind_s: spec.max_blind.min(opts.duration).as_secs_f64(),
        dry_run: opts.dry_run,
        vars: spec.vars.clone(),
        rules: spec
            .rules
            .iter()
            .map(|r| rule_info(r, &opts.prometheus))
            .collect(),
    }
}

/// The `action_started` event of a command about to run (or, in a dry run, not).
pub fn action_started(
    kind: &'static str,
    rule: &str,
    argv: &[String],
    timeout: Duration,
    dry_run: bool,
) -> Event {
    Event::ActionStarted {
        action: kind,
        rule: rule.to_string(),
        argv: argv.to_vec(),
        timeout_s: timeout.as_secs_f64(),
        dry_run,
    }
}

/// Runs a claimed command to its end and records its result in `journal`: the one
/// path from a committed claim to its `action_finished` (which the caller emits next,
/// `finished_event`). With `signals`, a signal that arrives meanwhile is reported
/// and kept in `deferred`, honoured once the command is done.
pub async fn run_claimed<R: ActionRunner>(
    runner: &R,
    req: &ActionRequest,
    rule: &str,
    journal: &mut dyn Journal,
    sinks: &mut Sinks,
    signals: Option<&mut channel::Receiver<Signal>>,
    deferred: &mut Option<Signal>,
) -> ActionReport {
    let fut = runner.run(req);
    tokio::pin!(fut);
    let report = match signals {
        None => fut.await,
        Some(signals) => loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(sig) = signals.recv() => {
                    sinks.emit(now_ms(), &Event::Signal { signal: format!("{sig:?}"), during_action: true });
                    deferred.get_or_insert(sig);
                }
            }
        },
    };
    let ev = finished_event(req.kind, rule, &report);
    journal.finished(&report.status, now_ms(), &ev);
    report
}

/// The `action_finished` event of a report.
pub fn finished_event(kind: &'static str, rule: &str, report: &ActionReport) -> Event {
    Event::ActionFinished {
        action: kind,
        rule: rule.to_string(),
        status: report.status.to_string(),
        succeeded: report.status.succeeded(),
        duration_s: report.duration.as_secs_f64(),
        output_tail: report.output_tail.clone(),
    }
}

impl<R: ActionRunner, S: MetricsSource + HistorySource> Watch<'_, R, S> {
    /// Emits `silenced` for each silence whose creation ended; with `wait`, first waits
    /// (at most `SILENCE_WAIT` in all) for those still being made. The watch's ending
    /// is never behind this: `run_from` waits only after `watch_finished`.
    pub(super) async fn report_silences(&mut self, wait: bool) {
        let deadline = tokio::time::Instant::now() + SILENCE_WAIT;
        for mut s in std::mem::take(&mut self.silences) {
            if !wait && !s.task.is_finished() {
                self.silences.push(s);
                continue;
            }
            let (silence_id, error) = match tokio::time::timeout_at(deadline, &mut s.task).await {
                Ok(Ok(Ok(id))) => (Some(id), None),
                Ok(Ok(Err(e))) => (None, Some(e)),
                Ok(Err(e)) => (None, Some(e.to_string())),
                Err(_) => {
                    s.task.abort();
                    (
                        None,
                        Some(format!(
                            "no answer from Alertmanager within {SILENCE_WAIT:?}"
                        )),
                    )
                }
            };
            self.sinks.emit(
                now_ms(),
                &Event::Silenced {
                    rule: s.rule,
                    silence_id,
                    matchers: s.matchers,
                    ends_at: s.ends_at,
                    error,
                },
            );
        }
    }
}

/// Who decided an action: a rule that fired, or a person's order (`core::control`).
#[derive(Clone, Copy)]
pub(super) enum By<'r> {
    Rule(&'r Rule),
    Person(&'r Control),
}

impl By<'_> {
    /// The name that stands where a rule's does (`core::control::decider` for a person).
    pub(super) fn name(&self) -> String {
        match self {
            By::Rule(r) => r.name.clone(),
            By::Person(c) => crate::core::control::decider(&c.who),
        }
    }
}

impl<R: ActionRunner, S: MetricsSource + HistorySource> Watch<'_, R, S> {
    /// Runs (or, in a dry run, describes) an action. None in a dry run.
    ///
    /// The command starts only once the journal has claimed it; a claim that cannot be
    /// recorded is reported as a failed action and nothing runs.
    pub(super) async fn act(
        &mut self,
        kind: &'static str,
        by: By<'_>,
        cmd: &CommandSpec,
        fired: &[FiredSeries],
        at: Duration,
    ) -> Option<ActionReport> {
        let at_ms = now_ms();
        let name = by.name();
        self.sinks.emit(
            at_ms,
            &action_started(kind, &name, &cmd.argv, cmd.timeout, self.opts.dry_run),
        );
        if self.opts.dry_run {
            if let Some((tx, text)) = self.answer.take() {
                let _ = tx.send(Ok(format!("{text} (dry run: nothing runs)")));
            }
            return None;
        }
        let first = fired.first();
        let mut env = vec![
            ("ROLLWATCH_ACTION".to_string(), kind.to_string()),
            ("ROLLWATCH_RULE".to_string(), name.clone()),
            (
                "ROLLWATCH_VALUE".to_string(),
                first
                    .and_then(|f| f.value)
                    .map(crate::core::events::float::exact)
                    .unwrap_or_default(),
            ),
            (
                "ROLLWATCH_THRESHOLD".to_string(),
                match by {
                    By::Rule(r) => r.condition(),
                    By::Person(_) => String::new(),
                },
            ),
            (
                "ROLLWATCH_LABELS".to_string(),
                first.map(|f| labels_json(&f.labels)).unwrap_or_default(),
            ),
            (
                "ROLLWATCH_BREACHED_FOR".to_string(),
                first
                    .map(|f| at.saturating_sub(f.since).as_secs())
                    .unwrap_or_default()
                    .to_string(),
            ),
        ];
        if let By::Person(c) = by {
            // Who ordered it and why: data in the environment, never an argument.
            env.push(("ROLLWATCH_MANUAL_BY".to_string(), c.who.clone()));
            env.push(("ROLLWATCH_REASON".to_string(), c.reason.clone()));
        }
        for (var, v) in &self.spec.vars {
            env.push((
                format!("ROLLWATCH_VAR_{}", var.to_ascii_uppercase()),
                v.clone(),
            ));
        }
        let claim = Claim {
            kind,
            rule: &name,
            argv: &cmd.argv,
            env: &env,
            fired,
            at_ms,
        };
        // A store that is briefly busy (a backup holding its lock) gets a few tries;
        // a claim that still cannot be recorded runs nothing.
        let mut claimed = self.journal.claim(&claim);
        for backoff in [500, 1500] {
            if claimed.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            claimed = self.journal.claim(&claim);
        }
        let (report, silence) = match claimed {
            Err(why) => {
                error!(event = "action_not_claimed", action = kind, rule = %name, error = %why, "the {kind} command was NOT started: it could not be recorded first, and running it unrecorded could run it twice");
                if let Some((tx, _)) = self.answer.take() {
                    let _ = tx.send(Err(crate::core::control::ControlError::Refused(format!(
                        "the {kind} command was NOT started: it could not be recorded first ({why})"
                    ))));
                }
                (
                    ActionReport {
                        status: ActionStatus::NotClaimed(why),
                        duration: Duration::ZERO,
                        output_tail: Vec::new(),
                    },
                    None,
                )
            }
            Ok(ticket) => {
                // A person who ordered it is told now: the claim is committed, so the
                // command runs (or, after a crash, is resolved from its row), once.
                if let Some((tx, text)) = self.answer.take() {
                    let _ = tx.send(Ok(text));
                }
                // The silence is created beside the command, never before it.
                let silence = cmd.silence.clone().map(|spec| {
                    let comment = format!(
                        "rollwatch rolled back [{}] ({}, rules file {})",
                        crate::core::events::vars_text(&self.spec.vars),
                        match by {
                            By::Rule(r) => format!("rule `{}`", r.name),
                            By::Person(c) => format!("ordered by {}: {:?}", c.who, c.reason),
                        },
                        self.spec.path.display()
                    );
                    // On the watch's clock, not this machine's (they differ in an agent
                    // whose clock is off: its silence would start in the future).
                    let now = self.clock.map_or(at_ms, |c| c.now_ms());
                    let ends_at =
                        crate::core::events::rfc3339_ms(now + spec.for_.as_millis() as i64);
                    let matchers = spec.matchers.clone();
                    let task = tokio::spawn(async move {
                        crate::io::silence::create(&spec, &comment, now).await
                    });
                    (task, matchers, ends_at)
                });
                env.extend(ticket.env);
                let req = ActionRequest {
                    kind,
                    argv: cmd.argv.clone(),
                    timeout: cmd.timeout,
                    env,
                    on_spawn: ticket.on_spawn,
                    status_file: ticket.status_file,
                    intent_file: ticket.intent_file,
                };
                let report = run_claimed(
                    self.runner,
                    &req,
                    &name,
                    &mut *self.journal,
                    self.sinks,
                    Some(&mut *self.signals),
                    &mut self.deferred_signal,
                )
                .await;
                (report, silence)
            }
        };
        self.sinks
            .emit(now_ms(), &finished_event(kind, &name, &report));
        // After the action's own events, so a slow Alertmanager delays neither; and a
        // silence still being made runs on beside the watch and its ending.
        if let Some((task, matchers, ends_at)) = silence {
            self.silences.push(Silencing {
                task,
                rule: name.clone(),
                matchers,
                ends_at,
            });
        }
        self.report_silences(false).await;
        Some(report)
    }
}
