//! Resuming a watch after a restart: what its action rows say (`resolve_actions`, the
//! exactly-once rule), and re-running an interrupted idempotent command once
//! (`rerun`, through the act path of a first run). Rebuilding its evaluators and the
//! polls missed while the agent was down (the restart rule) is `catch_up.rs`. The
//! rules themselves are in the agent's module doc.

use super::exactly_once::{self, resume_plan, ResumePlan, StoreJournal};
use super::old_command;
use super::outbox::Herald;
use super::types::ending_of;
use super::Agent;
use crate::core::events::{now_ms, Event, Sinks};
use crate::core::rules::{self, WatchSpec};
use crate::io::action::{ActionRequest, ActionStatus, ProcessRunner};
use crate::io::store::{ActionRow, ActionState, NewWatch, ResumeRead};
use crate::run::watch::{self, Outcome, WatchOptions};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How long a restart looks for a supervisor's record once the command's group is
/// gone (its last write and fsync may still be under way).
const RECORD_GRACE: Duration = Duration::from_secs(3);

/// Whether an interrupted first claim's command ever started.
enum Intent {
    /// It never did, and now never will (its intent was abandoned): it runs now.
    Abandoned,
    /// A supervisor took its intent, and recorded how it ended.
    Ran((crate::io::supervise::ExitRecord, std::path::PathBuf)),
    /// Cannot tell (no intent file: unsupervised, another host, or lost).
    Unknown,
}

pub(super) enum Resolution {
    /// The watch is decided; `recorded` if its ending is already in the store.
    End { outcome: Outcome, recorded: bool },
    Continue {
        paused_by: Option<String>,
        pause_failed: Option<(String, crate::io::action::ActionStatus)>,
    },
}

impl Agent {
    /// What the action rows say about a resumed watch (see `exactly_once`): from
    /// `read` (the watch's rows read with the others' at a start or an adoption) if
    /// there is one. Anything but a live watch (a command to settle, re-run or
    /// record) writes its rows, and `read` is then dropped: what was read before is
    /// no longer what the store holds.
    pub(super) async fn resolve_actions(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        others: &mut Sinks,
        opts: &WatchOptions,
        herald: Option<&Arc<Herald>>,
        read: &mut Option<Box<ResumeRead>>,
    ) -> Result<Resolution, crate::io::store::StoreError> {
        let actions = match read.as_ref() {
            Some(r) => r.actions.clone(),
            None => {
                let id = def.id.clone();
                self.store.call(move |s| s.actions(&id)).await?
            }
        };
        let idempotent = |c: &Option<rules::CommandSpec>| c.as_ref().is_some_and(|c| c.idempotent);
        let plan = resume_plan(
            &actions,
            idempotent(&spec.rollback),
            idempotent(&spec.pause),
        );
        if !matches!(plan, ResumePlan::Live { .. }) {
            *read = None;
        }
        // A command that outlived its agent may have told its supervisor how it ended.
        let recorded = match &plan {
            ResumePlan::Unknown(a) | ResumePlan::Rerun(a) => {
                self.supervised_exit(spec, def, a).await
            }
            _ => None,
        };
        // No record and nothing running: if the claim's intent was never taken by a
        // supervisor, the command never started, and taking the intent away makes sure
        // it never will: it runs now, for the first time.
        let never_started = match (&recorded, &plan) {
            (None, ResumePlan::Unknown(a) | ResumePlan::Rerun(a)) if a.rerun_of.is_none() => {
                self.abandon_intent(spec, def, a).await
            }
            _ => Intent::Unknown,
        };
        let (recorded, never_started) = match never_started {
            Intent::Abandoned => (recorded, true),
            Intent::Ran(r) => (Some(r), false),
            Intent::Unknown => (recorded, false),
        };
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
            ResumePlan::Rerun(a) if self.store.shared() && !old_command::started_here(&a) => {
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
                let (_, left) = old_command::wait_for_old_command(&a, &tag, timeout, &def.id).await;
                (a, left == 0, left > 0, false)
            }
        };
        let (rerun, stuck, elsewhere) = if never_started {
            (true, false, false)
        } else {
            (rerun, stuck, elsewhere)
        };
        let kind: &'static str = if a.kind == "pause" {
            "pause"
        } else {
            "rollback"
        };
        // The very event a first run starts with (`run::watch::act`).
        others.emit(now_ms(), &watch::watch_started(spec, opts));
        if let Some((rec, path)) = recorded {
            let status = match (rec.code, rec.signal) {
                (Some(0), _) => ActionStatus::Succeeded,
                (code, signal) => ActionStatus::Failed { code, signal },
            };
            let ok = status.succeeded();
            let rule = a.rule.clone();
            let outcome = match (kind, ok) {
                ("rollback", true) => Some(Outcome::RolledBack {
                    rule: rule.clone(),
                    dry_run: false,
                }),
                ("rollback", false) => Some(Outcome::RollbackFailed {
                    rule: rule.clone(),
                    status: status.clone(),
                }),
                _ => None,
            };
            let text = status.to_string();
            let end = crate::io::store::ActionEnd {
                state: ActionState::Finished,
                result: &text,
                succeeded: Some(ok),
                at_ms: rec.ended_ms,
            };
            let finished = Event::ActionFinished {
                action: kind,
                rule: rule.clone(),
                status: text.clone(),
                succeeded: ok,
                duration_s: (rec.ended_ms - a.started_ms).max(0) as f64 / 1000.0,
                output_tail: Vec::new(),
            };
            self.settle(def, a.id, &end, outcome.as_ref(), &finished, herald)
                .await?;
            crate::io::supervise::remove_record(&path);
            let result = if ok { "succeeded" } else { "failed" };
            self.metrics
                .actions
                .with_label_values(&[kind, result])
                .inc();
            info!(event = "action_recovered", watch = %def.id, action = kind, rule = %rule, status = %text,
                "the agent died while this command ran; its supervisor recorded how it ended: {text}");
            others.emit(now_ms(), &finished);
            return Ok(match outcome {
                Some(outcome) => Resolution::End {
                    outcome,
                    recorded: true,
                },
                None if ok => Resolution::Continue {
                    paused_by: Some(rule),
                    pause_failed: None,
                },
                None => Resolution::Continue {
                    paused_by: None,
                    pause_failed: Some((rule, status)),
                },
            });
        }
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
            let end = crate::io::store::ActionEnd {
                state: ActionState::Unknown,
                result: status,
                succeeded: None,
                at_ms: now_ms(),
            };
            let finished = Event::ActionFinished {
                action: kind,
                rule: a.rule.clone(),
                status: status.into(),
                succeeded: false,
                duration_s: 0.0,
                output_tail: Vec::new(),
            };
            let ending = (kind == "rollback").then_some(&outcome);
            self.settle(def, a.id, &end, ending, &finished, herald)
                .await?;
            self.metrics
                .actions
                .with_label_values(&[kind, "unknown"])
                .inc();
            warn!(event = "action_unknown", watch = %def.id, action = kind, rule = %a.rule, "the agent died while this command ran; not running it again");
            others.emit(now_ms(), &finished);
            return Ok(if kind == "rollback" {
                Resolution::End {
                    outcome,
                    recorded: true,
                }
            } else {
                Resolution::Continue {
                    paused_by: None,
                    pause_failed: Some((a.rule.clone(), ActionStatus::Unknown)),
                }
            });
        }
        let report = self
            .rerun(spec, def, &a, others, herald, never_started)
            .await?;
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

    /// Records how an interrupted action ended and, with `outcome`, how its watch
    /// ended: one transaction, with the notifications of both (rendered ahead of the
    /// events the caller emits next).
    async fn settle(
        &self,
        def: &NewWatch,
        action: i64,
        end: &crate::io::store::ActionEnd<'_>,
        outcome: Option<&Outcome>,
        finished: &Event,
        herald: Option<&Arc<Herald>>,
    ) -> Result<(), crate::io::store::StoreError> {
        let ending = outcome.map(ending_of);
        let fence =
            self.leases
                .fence(&def.id)
                .ok_or_else(|| crate::io::store::StoreError::Fenced {
                    what: format!("write of action {action}'s result"),
                    id: def.id.clone(),
                    token: 0,
                })?;
        let notes = herald.map(|h| {
            let mut notes = h.ahead(now_ms(), finished);
            if let Some(o) = outcome {
                notes.extend(h.ahead(now_ms(), &o.finished_event()));
            }
            notes
        });
        let ended = ending.is_some();
        let (id, state, result, succeeded, at_ms) = (
            def.id.clone(),
            end.state,
            end.result.to_string(),
            end.succeeded,
            end.at_ms,
        );
        let r = self
            .store
            .call(move |s| {
                let end = crate::io::store::ActionEnd {
                    state,
                    result: &result,
                    succeeded,
                    at_ms,
                };
                match notes {
                    Some(notes) => {
                        let change = crate::io::store::Noted::EndAction {
                            action,
                            end: &end,
                            ending: ending.as_ref(),
                        };
                        s.write_noted(&id, &fence, change, &notes)
                    }
                    None => s.end_action(&id, &fence, action, &end, ending.as_ref()),
                }
            })
            .await;
        if let Some(h) = herald {
            match r {
                Ok(()) => h.wake(),
                Err(_) => h.forget_ahead(),
            }
        }
        if let Err(e) = r {
            if matches!(e, crate::io::store::StoreError::Fenced { .. }) {
                self.write_fenced(&def.id, "the interrupted action's fate", &e.to_string());
            }
            return Err(e);
        }
        if ended {
            exactly_once::crash_point("ending_saved");
        }
        Ok(())
    }

    /// Whether the interrupted first claim `a` ever started (see `Intent`). A taken
    /// intent is looked for first; an intent (or an abandoned one, from an earlier
    /// restart) counts only if it carries `a`'s fencing token: a stale intent of
    /// another agent's failed claim must never be read as "never started".
    async fn abandon_intent(&self, spec: &WatchSpec, def: &NewWatch, a: &ActionRow) -> Intent {
        let Some(dir) = self.cfg.action_dir.as_ref() else {
            return Intent::Unknown;
        };
        let intent = crate::io::supervise::intent_path(dir, &def.id, def.created_ms, &a.kind);
        let taken = crate::io::supervise::taken(&intent);
        if crate::io::supervise::abandon(&intent, a.token) {
            exactly_once::crash_point("intent_abandoned");
            return Intent::Abandoned;
        }
        // A supervisor took it (maybe just now): the command runs or ran; its record
        // (or its group) tells.
        if taken.exists() {
            if let Some(r) = self.supervised_exit(spec, def, a).await {
                return Intent::Ran(r);
            }
        }
        Intent::Unknown
    }

    /// How the interrupted action `a` ended, as its supervisor recorded it (and the
    /// record's file). A command still running on this host is waited for first, as
    /// a restart waits before a re-run (stopped at its own timeout). None: no record
    /// (the agent died before the command started, commands run unsupervised, or it
    /// ran on another host).
    async fn supervised_exit(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        a: &ActionRow,
    ) -> Option<(crate::io::supervise::ExitRecord, std::path::PathBuf)> {
        let dir = self.cfg.action_dir.as_ref()?;
        let tag = exactly_once::action_tag(&def.id, def.created_ms, a.id);
        let path = crate::io::supervise::record_path(dir, &tag);
        if let Some(r) = crate::io::supervise::read_record(&path) {
            return Some((r, path));
        }
        let timeout = if a.kind == "pause" {
            spec.pause.as_ref().map(|c| c.timeout)
        } else {
            spec.rollback.as_ref().map(|c| c.timeout)
        }
        .unwrap_or(rules::defaults::COMMAND_TIMEOUT);
        // Until the record appears (its group may linger as a zombie whose parent,
        // the old agent, is paused), the group ends, or the command's timeout.
        let deadline = old_command::old_command_deadline(a, timeout);
        if old_command::still_running(a, &tag) {
            warn!(event = "action_still_running", watch = %def.id, action = %a.kind,
                "the interrupted {} command is still running on this host: waiting for it to end, to record how it ended", a.kind);
        }
        while old_command::still_running(a, &tag) && tokio::time::Instant::now() < deadline {
            if let Some(r) = crate::io::supervise::read_record(&path) {
                return Some((r, path));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Read again even if nothing ran: it may have ended since the first read, and
        // a supervisor whose command just ended may still be writing (fsync) its record.
        let grace_ms = now_ms() + RECORD_GRACE.as_millis() as i64;
        loop {
            if let Some(r) = crate::io::supervise::read_record(&path) {
                return Some((r, path));
            }
            if now_ms() >= grace_ms || old_command::still_running(a, &tag) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        old_command::wait_for_old_command(a, &tag, timeout, &def.id).await;
        crate::io::supervise::read_record(&path).map(|r| (r, path))
    }

    /// Runs an interrupted idempotent command again, once: only after the original
    /// has ended, and only if the re-run's claim commits. `first`: the original never
    /// started (its intent was abandoned), so this is its first run.
    async fn rerun(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        a: &ActionRow,
        others: &mut Sinks,
        herald: Option<&Arc<Herald>>,
        first: bool,
    ) -> Result<crate::io::action::ActionReport, crate::io::store::StoreError> {
        let kind: &'static str = if a.kind == "pause" {
            "pause"
        } else {
            "rollback"
        };
        let cmd = if kind == "pause" {
            &spec.pause
        } else {
            &spec.rollback
        };
        let (argv, timeout) = match cmd {
            Some(c) => (c.argv.clone(), c.timeout),
            None => (a.argv.clone(), rules::defaults::COMMAND_TIMEOUT),
        };
        if first {
            warn!(event = "action_first_run", watch = %def.id, action = kind, rule = %a.rule, "the agent died after claiming this command and before starting it: it never ran; running it now, once");
        } else {
            warn!(event = "action_rerun", watch = %def.id, action = kind, rule = %a.rule, "the agent died while this idempotent command ran; it has ended; running it again, once");
        }
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
        if !first {
            env.push(("ROLLWATCH_RERUN".into(), "1".into()));
        }
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
        let (id, holder, old) = (def.id.clone(), self.leases.holder.clone(), a.id);
        let started = self
            .store
            .call(move |s| s.claim_rerun_fenced(&id, &holder, token, old, &new))
            .await?;
        exactly_once::crash_point("rerun_claimed");
        let mut journal = StoreJournal {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            id: def.id.clone(),
            created_ms: def.created_ms,
            action: Some(started),
            leases: self.leases.clone(),
            token: Some(token),
            herald: herald.cloned(),
            status_dir: self.cfg.action_dir.clone(),
        };
        env.push(("ROLLWATCH_FENCING_TOKEN".into(), token.to_string()));
        env.push(("ROLLWATCH_WATCH_ID".into(), def.id.clone()));
        env.push((
            "ROLLWATCH_ACTION_ID".into(),
            exactly_once::action_tag(&def.id, def.created_ms, started),
        ));
        // From here, the path of a first run (`run::watch::act`): the same events,
        // the same run, the result recorded through the journal.
        others.emit(
            now_ms(),
            &watch::action_started(kind, &a.rule, &argv, timeout, false),
        );
        let req = ActionRequest {
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
            intent_file: None,
            status_file: self.cfg.action_dir.as_ref().map(|d| {
                crate::io::supervise::record_path(
                    d,
                    &exactly_once::action_tag(&def.id, def.created_ms, started),
                )
            }),
        };
        // No signal channel here: a signal waits for the loop, which starts after.
        let report = watch::run_claimed(
            &ProcessRunner::default(),
            &req,
            &a.rule,
            &mut journal,
            others,
            None,
            &mut None,
        )
        .await;
        let result = if report.status.succeeded() {
            "succeeded"
        } else {
            "failed"
        };
        self.metrics
            .actions
            .with_label_values(&[kind, result])
            .inc();
        others.emit(now_ms(), &watch::finished_event(kind, &a.rule, &report));
        Ok(report)
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
