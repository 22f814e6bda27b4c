//! Resuming a watch after a restart: what its action rows say (`resolve_actions`, the
//! exactly-once rule), re-running an interrupted idempotent command once (`rerun`),
//! and rebuilding its evaluators and the polls missed while the agent was down from
//! Prometheus's history (`restore`, the restart rule). The rules themselves are in the
//! agent's module doc.

use super::exactly_once::{self, resume_plan, ResumePlan, StoreJournal};
use super::source::{phase, SharedSource};
use super::{ending_of, unix, Agent};
use crate::core::eval::{Labels, Phase, RuleEval, SeriesState};
use crate::core::events::{now_ms, Event, Sinks};
use crate::core::rules::{self, WatchSpec};
use crate::io::action::{ActionRequest, ActionRunner, ProcessRunner};
use crate::io::prom::{PromClient, QueryResult};
use crate::io::store::{ActionRow, ActionState, NewWatch};
use crate::run::watch::journal::Journal;
use crate::run::watch::Judged;
use crate::run::watch::{self, Outcome, PollDone, WatchOptions};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{info, warn};

pub(super) enum Resolution {
    /// The watch is decided; `recorded` if its ending is already in the store.
    End { outcome: Outcome, recorded: bool },
    Continue {
        paused_by: Option<String>,
        pause_failed: Option<(String, crate::io::action::ActionStatus)>,
    },
}

impl Agent {
    /// What the action rows say about a resumed watch (see `exactly_once`).
    pub(super) async fn resolve_actions(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        others: &mut Sinks,
        opts: &WatchOptions,
    ) -> Result<Resolution, crate::io::store::StoreError> {
        let actions = self.store.actions(&def.id)?;
        let idempotent = |c: &Option<rules::CommandSpec>| c.as_ref().is_some_and(|c| c.idempotent);
        let plan = resume_plan(
            &actions,
            idempotent(&spec.rollback),
            idempotent(&spec.pause),
        );
        let (a, rerun, stuck, elsewhere) = match plan {
            ResumePlan::Live {
                paused_by,
                pause_failed,
            } => {
                return Ok(Resolution::Continue {
                    paused_by,
                    pause_failed,
                })
            }
            ResumePlan::Decided(outcome) => {
                info!(event = "watch_already_decided", watch = %def.id, outcome = outcome.name(), "the agent stopped after this watch's action ended; recording its outcome");
                return Ok(Resolution::End {
                    outcome,
                    recorded: false,
                });
            }
            ResumePlan::Unknown(a) => (a, false, false, false),
            // With a shared store the command may have run on another host, where this
            // agent can neither see nor stop it: re-running it could make two at once.
            // Only a command recorded on this very boot is one it can check.
            ResumePlan::Rerun(a) if self.store.shared() && !exactly_once::started_here(&a) => {
                warn!(event = "action_elsewhere", watch = %def.id, action = %a.kind,
                    "the interrupted command was not started on this host (or not recorded): its process cannot be checked from here, so it is not run again");
                (a, false, false, true)
            }
            ResumePlan::Rerun(a) => {
                // Never two at once: the original must have ended first. If its process
                // groups outlive every signal, its fate stays unknown and it is not run
                // again.
                let timeout = if a.kind == "pause" {
                    spec.pause.as_ref().map(|c| c.timeout)
                } else {
                    spec.rollback.as_ref().map(|c| c.timeout)
                }
                .unwrap_or(rules::defaults::COMMAND_TIMEOUT);
                let tag = exactly_once::action_tag(&def.id, def.created_ms, a.id);
                let (_, left) =
                    exactly_once::wait_for_old_command(&a, &tag, timeout, &def.id).await;
                (a, left == 0, left > 0, false)
            }
        };
        let kind: &'static str = if a.kind == "pause" {
            "pause"
        } else {
            "rollback"
        };
        others.emit(
            now_ms(),
            &Event::WatchStarted {
                rules_file: spec.path.display().to_string(),
                prometheus: opts.prometheus.clone(),
                duration_s: opts.duration.as_secs_f64(),
                max_blind_s: spec.max_blind.as_secs_f64(),
                dry_run: false,
                vars: spec.vars.clone(),
                rules: spec
                    .rules
                    .iter()
                    .map(|r| watch::rule_info(r, &opts.prometheus))
                    .collect(),
            },
        );
        if !rerun {
            let status = if elsewhere {
                "was running when its agent went away, on a host this agent cannot see: it was not run again (never two at once); its result is unknown"
            } else if stuck {
                "was running when the agent stopped and is still running: it could not be stopped, so it was not run again; its result is unknown"
            } else {
                "was running when the agent stopped; its result is unknown and it is not marked idempotent, so it was not run again"
            };
            // A rollback's unknown fate ends the watch: both in one transaction, so
            // that no restart can find the row resolved and the watch still running.
            let outcome = Outcome::ActionUnknown {
                action: kind,
                rule: a.rule.clone(),
            };
            let ending = (kind == "rollback").then(|| ending_of(&outcome));
            let end = crate::io::store::ActionEnd {
                state: ActionState::Unknown,
                result: status,
                succeeded: None,
                at_ms: now_ms(),
            };
            self.store
                .end_action(&def.id, a.id, &end, ending.as_ref())?;
            if ending.is_some() {
                exactly_once::crash_point("ending_saved");
            }
            self.metrics
                .actions
                .with_label_values(&[kind, "unknown"])
                .inc();
            warn!(event = "action_unknown", watch = %def.id, action = kind, rule = %a.rule, "the agent died while this command ran; not running it again");
            others.emit(
                now_ms(),
                &Event::ActionFinished {
                    action: kind,
                    rule: a.rule.clone(),
                    status: status.into(),
                    succeeded: false,
                    duration_s: 0.0,
                    output_tail: Vec::new(),
                },
            );
            return Ok(if kind == "rollback" {
                Resolution::End {
                    outcome,
                    recorded: true,
                }
            } else {
                Resolution::Continue {
                    paused_by: None,
                    pause_failed: Some((a.rule.clone(), crate::io::action::ActionStatus::Unknown)),
                }
            });
        }
        let report = self.rerun(spec, def, &a, kind, others).await?;
        let rule = a.rule.clone();
        Ok(match (kind, report.status.succeeded()) {
            ("pause", true) => Resolution::Continue {
                paused_by: Some(rule),
                pause_failed: None,
            },
            ("pause", false) => Resolution::Continue {
                paused_by: None,
                pause_failed: Some((rule, report.status)),
            },
            (_, true) => Resolution::End {
                outcome: Outcome::RolledBack {
                    rule,
                    dry_run: false,
                },
                recorded: false,
            },
            (_, false) => Resolution::End {
                outcome: Outcome::RollbackFailed {
                    rule,
                    status: report.status,
                },
                recorded: false,
            },
        })
    }

    /// Runs an interrupted idempotent command again, once: only after the original
    /// has ended, and only if the re-run's claim commits.
    async fn rerun(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        a: &ActionRow,
        kind: &'static str,
        others: &mut Sinks,
    ) -> Result<crate::io::action::ActionReport, crate::io::store::StoreError> {
        let cmd = if kind == "pause" {
            &spec.pause
        } else {
            &spec.rollback
        };
        let (argv, timeout) = match cmd {
            Some(c) => (c.argv.clone(), c.timeout),
            None => (a.argv.clone(), rules::defaults::COMMAND_TIMEOUT),
        };
        warn!(event = "action_rerun", watch = %def.id, action = kind, rule = %a.rule, "the agent died while this idempotent command ran; it has ended; running it again, once");
        // The very environment the first run had (value, labels, breached for...).
        let mut env: Vec<(String, String)> = a
            .env
            .iter()
            .filter(|(k, _)| k != "ROLLWATCH_RERUN")
            .cloned()
            .collect();
        if env.is_empty() {
            env.push(("ROLLWATCH_ACTION".into(), kind.into()));
            env.push(("ROLLWATCH_RULE".into(), a.rule.clone()));
        }
        env.push(("ROLLWATCH_RERUN".into(), "1".into()));
        let new = crate::io::store::NewAction {
            kind: kind.to_string(),
            rule: a.rule.clone(),
            argv: argv.clone(),
            env: env.clone(),
            at_ms: now_ms(),
        };
        let token =
            self.leases
                .trusted(&def.id)
                .ok_or_else(|| crate::io::store::StoreError::Fenced {
                    what: format!("re-run of action {}", a.id),
                    id: def.id.clone(),
                    token: 0,
                })?;
        let started =
            self.store
                .claim_rerun_fenced(&def.id, &self.leases.holder, token, a.id, &new)?;
        exactly_once::crash_point("rerun_claimed");
        let mut journal = StoreJournal {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            id: def.id.clone(),
            created_ms: def.created_ms,
            action: Some(started),
            leases: self.leases.clone(),
        };
        env.push(("ROLLWATCH_FENCING_TOKEN".into(), token.to_string()));
        env.push(("ROLLWATCH_WATCH_ID".into(), def.id.clone()));
        env.push((
            "ROLLWATCH_ACTION_ID".into(),
            exactly_once::action_tag(&def.id, def.created_ms, started),
        ));
        let ev = Event::ActionStarted {
            action: kind,
            rule: a.rule.clone(),
            argv: argv.clone(),
            timeout_s: timeout.as_secs_f64(),
            dry_run: false,
        };
        others.emit(now_ms(), &ev);
        let report = ProcessRunner::default()
            .run(&ActionRequest {
                kind,
                argv,
                timeout,
                env,
                on_spawn: Some(exactly_once::spawn_hook(
                    self.store.clone(),
                    self.metrics.clone(),
                    def.id.clone(),
                    started,
                )),
            })
            .await;
        journal.finished(&report.status, now_ms());
        let result = if report.status.succeeded() {
            "succeeded"
        } else {
            "failed"
        };
        self.metrics
            .actions
            .with_label_values(&[kind, result])
            .inc();
        let ev = Event::ActionFinished {
            action: kind,
            rule: a.rule.clone(),
            status: report.status.to_string(),
            succeeded: report.status.succeeded(),
            duration_s: report.duration.as_secs_f64(),
            output_tail: report.output_tail.clone(),
        };
        others.emit(now_ms(), &ev);
        Ok(report)
    }

    /// Restored evaluators, and the polls missed while the agent was down (from
    /// history). See the module doc for the rule.
    pub(super) async fn restore(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        source: &SharedSource<PromClient>,
        now: i64,
    ) -> Result<Restored, crate::io::store::StoreError> {
        let mut series: Vec<BTreeMap<Labels, SeriesState>> =
            vec![BTreeMap::new(); spec.rules.len()];
        let actions = self.store.actions(&def.id)?;
        for row in self.store.series(&def.id)? {
            if let Some(i) = spec.rules.iter().position(|r| r.name == row.rule) {
                // A series is firing *because* its action was claimed: one firing for
                // a rollback or pause rule with no such action (a state file from
                // before claims and firing series were one transaction) has not acted
                // yet. It is restored pending with its `since`, so the next poll that
                // still breaches fires it, and the action runs.
                let kind = spec.rules[i].action.as_str();
                let acted = kind == "notify" || actions.iter().any(|a| a.kind == kind);
                let phase = if row.phase == Phase::Firing && !acted {
                    warn!(event = "firing_without_action", watch = %def.id, rule = %row.rule,
                        "a series was stored firing but its {kind} never started: it fires again at the next breaching poll");
                    Phase::Pending
                } else {
                    row.phase
                };
                series[i].insert(
                    row.labels,
                    SeriesState {
                        phase,
                        since: Duration::from_millis((row.since_ms - def.created_ms).max(0) as u64),
                        last_value: row.last_value,
                        window: Default::default(),
                    },
                );
            }
        }
        let last = self.store.polls(&def.id)?;
        let end_ms = now.min(def.created_ms + def.duration_ms);
        let mut backlog = Vec::new();
        for (i, rule) in spec.rules.iter().enumerate() {
            let iv = rule.interval.as_millis().max(1) as i64;
            let from = match last.get(&rule.name) {
                Some(t) => t.last_ms + iv,
                None => {
                    // The first tick of the aligned grid at or after creation.
                    let ph = phase(&rule.query, rule.interval).as_millis() as i64;
                    def.created_ms + (ph - def.created_ms).rem_euclid(iv)
                }
            };
            if from > end_ms {
                info!(event = "catch_up", watch = %def.id, rule = %rule.name, polls = 0, from, end_ms, "no poll was missed");
                continue;
            }
            let to = from + (end_ms - from) / iv * iv;
            match crate::io::prom::history::fetch(source, rule, from, to).await {
                Ok(history) => {
                    let (steps, mut polls) =
                        crate::core::history::polls_on_grid(from, to, iv, &history);
                    // The judges' history over the same time (guard, stable side,
                    // offset baseline), one fetch each; a failed one leaves those
                    // polls without it, which the loop takes as failed polls.
                    let mut extras = catch_up_extras(source, rule, from, to, iv).await;
                    info!(event = "catch_up", watch = %def.id, rule = %rule.name, polls = steps, "judging the time the agent was down from Prometheus's history");
                    for k in 0..steps {
                        let wall = from + k as i64 * iv;
                        backlog.push(PollDone {
                            rule: i,
                            at: Duration::from_millis((wall - def.created_ms).max(0) as u64),
                            wall: unix(wall),
                            result: Ok(QueryResult {
                                samples: polls.remove(&k).unwrap_or_default(),
                                warnings: Vec::new(),
                            }),
                            extra: extras
                                .iter_mut()
                                .map(|grid| {
                                    Ok(QueryResult {
                                        samples: grid.remove(&k).unwrap_or_default(),
                                        warnings: Vec::new(),
                                    })
                                })
                                .collect(),
                        });
                    }
                }
                Err(e) => {
                    let dropped = series[i]
                        .values()
                        .filter(|s| s.phase == Phase::Pending)
                        .count();
                    series[i].retain(|_, s| s.phase == Phase::Firing);
                    for (labels, _) in self
                        .store
                        .series(&def.id)?
                        .into_iter()
                        .filter(|r| r.rule == rule.name && r.phase == Phase::Pending)
                        .map(|r| (r.labels, ()))
                    {
                        self.store.clear_series(&def.id, &rule.name, &labels)?;
                    }
                    warn!(event = "catch_up_failed", watch = %def.id, rule = %rule.name, error = %e, dropped,
                        "the history of the time the agent was down cannot be read: pending series are dropped (a breach is never assumed to have continued) and must breach again for `for`");
                }
            }
        }
        backlog.sort_by_key(|p| (p.wall, p.rule));
        let evals = spec
            .rules
            .iter()
            .zip(series)
            .map(|(r, s)| {
                RuleEval::restore(
                    r.params_over(Duration::from_millis(def.duration_ms.max(0) as u64)),
                    s,
                )
            })
            .collect();
        // What the polls before the restart showed: a rule judged then stays judged,
        // even if the watch ends before it polls again.
        let judged = spec
            .rules
            .iter()
            .map(|r| {
                let p = last.get(&r.name).copied().unwrap_or_default();
                Judged {
                    last_ok: p.last_ok,
                    ever_ok: p.ever_ok,
                    ever_data: p.ever_data,
                }
            })
            .collect();
        Ok(Restored {
            evals,
            backlog,
            judged,
        })
    }
}

/// A resumed watch's restored state.
pub(super) struct Restored {
    pub evals: Vec<RuleEval>,
    pub backlog: Vec<PollDone>,
    pub judged: Vec<Judged>,
}

/// The judges' extra queries of `rule` over `[from, to]` on its grid, in the order of
/// `Rule::extra_queries` (empty when the rule has none, or when one fetch failed).
async fn catch_up_extras<H: crate::io::prom::HistorySource>(
    source: &H,
    rule: &crate::core::rules::Rule,
    from: i64,
    to: i64,
    iv: i64,
) -> Vec<std::collections::BTreeMap<usize, Vec<crate::core::series::Sample>>> {
    use crate::core::history::{polls_on_grid, BaselineHistory};
    use crate::core::rules::ExtraKind;
    let kinds = rule.extra_queries();
    if kinds.is_empty() {
        return Vec::new();
    }
    let judges = match crate::io::prom::history::fetch_judges(source, rule, from, to).await {
        Ok(j) => j,
        Err(e) => {
            warn!(event = "catch_up_failed", rule = %rule.name, error = %e, "cannot read the judges' history for the time the agent was down; those polls count as failed");
            return Vec::new();
        }
    };
    let grid = |s: &[crate::core::series::RangeSeries]| polls_on_grid(from, to, iv, s).1;
    kinds
        .iter()
        .map(|(kind, _, _)| match kind {
            ExtraKind::Stable => grid(judges.stable.as_deref().unwrap_or_default()),
            ExtraKind::Guard => grid(judges.guard.as_deref().unwrap_or_default()),
            ExtraKind::Baseline => match &judges.baseline {
                Some(BaselineHistory::Offset(s)) => grid(s),
                _ => Default::default(),
            },
        })
        .collect()
}
