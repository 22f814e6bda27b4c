//! What makes a rollback run at most once across crashes, and never silently not at all.
//!
//! The rule: **the persisted state says exactly what has and has not happened.**
//! - A series that fired for a rollback or pause rule is recorded *with* the claim of
//!   its action, in one transaction (`StoreJournal::claim`). A crash before that commit
//!   leaves the series pending and no action row: the restart re-reads the breach from
//!   Prometheus and fires again. A crash after it leaves a `started` row.
//! - At most one claim per (watch, kind) and one re-run per action can commit: unique
//!   indexes in the store, not timing.
//! - The command starts only after its claim committed; its process group is recorded
//!   as soon as it started.
//! - An action row decides its watch forever: `resume_plan` is a pure function of the
//!   rows, and any rollback row means the watch never resumes live.
//! - Resolving a `started` rollback row as unknown and ending its watch is one
//!   transaction, written before any notification is sent.
//! - Before an interrupted idempotent command runs again, the agent makes sure the
//!   original has ended (`wait_for_old_command`): it may still be running in its own
//!   process group after a `kill -9` of the agent.
//!
//! Crash points (`crash_point`) name every persistence step; a build with the
//! `crash-points` feature aborts the agent at the one named by `ROLLWATCH_CRASH_AT`,
//! which is how the tests check each step (`tests/crash_points.rs`).
//!
//! Whether an interrupted command still runs is `old_command.rs`. What is left here
//! (about 420 lines and the table test of `resume_plan`) stays one file: the claim a
//! row records and the plan a restart reads from the rows are two sides of one rule,
//! what an action row means, and are read together.

use super::lease::LeaseBook;
use super::metrics::Metrics;
use crate::core::eval::Phase;
use crate::core::events::Event;
use crate::io::action::{ActionStatus, SpawnHook};
use crate::io::store::{
    ActionEnd, ActionRow, ActionState, Fence, NewAction, Noted, ProcessId, SeriesRow, StoreError,
    StoreHandle,
};
use crate::run::watch::journal::{Claim, Journal, Ticket};
use crate::run::watch::Outcome;
use std::sync::Arc;
use tracing::{error, warn};

/// Every persistence step of a watch's life in the agent, in order.
pub const CRASH_POINTS: &[&str] = &[
    // A series went pending (its row committed).
    "pending_saved",
    // The action's claim (firing series + `started` row) committed; the command has
    // not started.
    "claim_committed",
    // The command started and its process group is recorded.
    "command_spawned",
    // The command ended and its result is recorded; the watch's ending is not.
    "action_finished",
    // The watch's ending committed; notifications have not been sent.
    "ending_saved",
    // At a restart: a claim's intent that no supervisor took was abandoned (the
    // command never started); its first run is not claimed yet.
    "intent_abandoned",
    // At a restart: the re-run of an idempotent action was claimed.
    "rerun_claimed",
];

/// Aborts the process (SIGKILL, as `kill -9` would) at the named step when it is
/// built with the `crash-points` feature and `ROLLWATCH_CRASH_AT` names that step.
/// Release builds compile this to nothing.
#[cfg(feature = "crash-points")]
pub fn crash_point(name: &str) {
    if std::env::var("ROLLWATCH_CRASH_AT").is_ok_and(|v| v == name) {
        eprintln!("crash point {name}: killing the agent");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn crash_point(_name: &str) {}

/// Test builds only: `ROLLWATCH_STOP_AT=<step>` stops the agent (SIGSTOP, as a
/// debugger or a frozen VM would) the first time it reaches that step, so that a test
/// can let its lease be taken over and then continue it (SIGCONT) at exactly that
/// point. Release builds compile this to nothing.
#[cfg(feature = "crash-points")]
pub fn stop_point(name: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if std::env::var("ROLLWATCH_STOP_AT").is_ok_and(|v| v == name)
        && !DONE.swap(true, Ordering::SeqCst)
    {
        eprintln!("stop point {name}: stopping the agent");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGSTOP);
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn stop_point(_name: &str) {}

/// Test builds only: `ROLLWATCH_FAIL_CLAIMS=N` makes the first N claims fail as a
/// store error would, to show that an unrecorded claim runs nothing.
#[cfg(feature = "crash-points")]
fn claim_fault() -> Option<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FAILED: AtomicU64 = AtomicU64::new(0);
    let n: u64 = std::env::var("ROLLWATCH_FAIL_CLAIMS").ok()?.parse().ok()?;
    (FAILED.fetch_add(1, Ordering::SeqCst) < n).then(|| "injected store failure".to_string())
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
fn claim_fault() -> Option<String> {
    None
}

/// Test builds only: `ROLLWATCH_FAIL_CLAIM_COMMITS=N` makes the first N claims' own
/// transactions fail as a store error would (nothing committed): with a shared store
/// the agent then gives the watch up (review 2, hole 4).
#[cfg(feature = "crash-points")]
fn commit_fault() -> Option<StoreError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FAILED: AtomicU64 = AtomicU64::new(0);
    let n: u64 = std::env::var("ROLLWATCH_FAIL_CLAIM_COMMITS")
        .ok()?
        .parse()
        .ok()?;
    (FAILED.fetch_add(1, Ordering::SeqCst) < n).then(|| StoreError::Pg {
        url: "injected".into(),
        what: "claim an action",
        reason: "injected store failure".into(),
    })
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
fn commit_fault() -> Option<StoreError> {
    None
}

/// `ROLLWATCH_ACTION_ID`: names one action of one watch in a command's environment, so
/// that its processes can be found after a crash even if its pid was not recorded.
pub fn action_tag(watch: &str, created_ms: i64, action: i64) -> String {
    format!("{watch}/{created_ms}/{action}")
}

/// The watch loop's journal in `serve`: claims go to the store.
///
/// `Journal` is synchronous (the decision loop claims between two awaits, and the
/// claim must commit before the command starts), so its store calls go through
/// `StoreHandle::blocking`, which hands the runtime's other tasks to another thread
/// while the store answers.
pub struct StoreJournal {
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub id: String,
    pub created_ms: i64,
    /// The action claimed and running now.
    pub action: Option<i64>,
    /// The agent's leases: a claim carries the watch's fencing token.
    pub leases: Arc<LeaseBook>,
    /// The token the running action was claimed with: its result is written fenced
    /// by it (an agent paused past its lease cannot overwrite the new owner's record).
    pub token: Option<i64>,
    /// The watch's notifications: an action's go in the transaction of its result.
    pub herald: Option<Arc<super::outbox::Herald>>,
    /// Where commands' supervisors record their exits (`io::supervise`), if anywhere.
    pub status_dir: Option<std::path::PathBuf>,
}

/// A write refused because this agent no longer holds (or trusts) the watch's lease:
/// counted (`rollwatch_agent_writes_fenced_total`), logged (`write_fenced`), and the
/// watch is left to its new owner (this agent writes nothing more about it).
pub fn write_fenced(metrics: &Metrics, leases: &LeaseBook, id: &str, what: &str, why: &str) {
    metrics.writes_fenced.inc();
    leases.mark_lost(id);
    warn!(event = "write_fenced", watch = %id, holder = %leases.holder, error = %why,
        "{what} was NOT written: this agent no longer holds the watch's lease, and the store keeps what its owner recorded");
}

/// Whether a claim that failed leaves this agent out of the watch: with a shared
/// store, a claim that could not commit (refused, or the store unreachable) ends the
/// watch's loop here quietly; whoever holds its lease when the store answers again
/// resumes it from the store and Prometheus. (With SQLite the failure is the watch's.)
fn gives_up(leases: &LeaseBook) -> bool {
    leases.shared
}

impl StoreJournal {
    /// Writes the intent file of a claim of `kind`. None: commands run unsupervised, or
    /// it could not be written: then the claim goes on without one (a restart calls the
    /// action unknown rather than "never started"; a missed rollback is worse), after
    /// removing a stale intent at its path. (A stale one that cannot be removed is
    /// harmless: it carries another claim's token, and only the row's token counts.)
    fn intent(&self, kind: &str, token: i64) -> Option<std::path::PathBuf> {
        let dir = self.status_dir.as_ref()?;
        let i = crate::io::supervise::intent_path(dir, &self.id, self.created_ms, kind);
        let rec = crate::io::supervise::IntentRecord {
            holder: self.leases.holder.clone(),
            token,
        };
        let Err(e) = crate::io::supervise::write_intent(&i, &rec) else {
            return Some(i);
        };
        warn!(event = "intent_unwritten", watch = %self.id, error = %e, "cannot write the claim's intent file: if the agent dies before the command starts, a restart will call it unknown");
        match std::fs::remove_file(&i) {
            Ok(()) => {}
            Err(r) if r.kind() == std::io::ErrorKind::NotFound => {}
            Err(r) => {
                error!(event = "intent_unremoved", watch = %self.id, error = %r, "cannot remove an old intent file of this claim either")
            }
        }
        None
    }

    /// Removes the intent of a claim (with `token`) that surely did not commit, if the
    /// file is still this claim's: another agent on this host may have written its
    /// own claim's intent at the same path since. Best effort: one left behind
    /// carries a token that no committed row of another claim has.
    fn drop_intent(&self, intent: Option<&std::path::Path>, token: i64) {
        use crate::io::supervise::{read_intent, IntentRecord};
        let ours = IntentRecord {
            holder: self.leases.holder.clone(),
            token,
        };
        if let Some(i) = intent.filter(|i| read_intent(i).as_ref() == Some(&ours)) {
            let _ = std::fs::remove_file(i);
        }
    }

    /// A claim refused because this agent does not (or may no longer) hold the watch:
    /// counted, logged, and the watch's loop on this agent goes quiet.
    fn refused(&self, kind: &str, why: &str) -> String {
        self.metrics.claims_refused.inc();
        self.leases.mark_lost(&self.id);
        error!(event = "claim_refused", watch = %self.id, action = kind, holder = %self.leases.holder, error = %why,
            "the {kind} action was NOT claimed and nothing runs here: {why}");
        why.to_string()
    }
}

impl Journal for StoreJournal {
    fn claim(&mut self, c: &Claim<'_>) -> Result<Ticket, String> {
        let fired: Vec<SeriesRow> = c
            .fired
            .iter()
            .map(|f| SeriesRow {
                rule: c.rule.to_string(),
                labels: f.labels.clone(),
                phase: Phase::Firing,
                since_ms: self.created_ms + f.since.as_millis() as i64,
                last_value: f.value,
            })
            .collect();
        let new = NewAction {
            kind: c.kind.to_string(),
            rule: c.rule.to_string(),
            argv: c.argv.to_vec(),
            env: c.env.to_vec(),
            at_ms: c.at_ms,
        };
        if let Some(e) = claim_fault() {
            self.metrics.store_errors.inc();
            error!(event = "store_error", watch = %self.id, error = %e, "cannot claim the {} action", c.kind);
            return Err(e);
        }
        if self.leases.is_lost(&self.id) {
            return Err("this agent no longer owns the watch".into());
        }
        let Some(token) = self.leases.trusted(&self.id) else {
            return Err(self.refused(
                c.kind,
                "this agent's lease on the watch is lost or past its trust window (another agent may own it now)",
            ));
        };
        stop_point("claim_trusted");
        // The claim's intent, durably before the claim, with this claim's holder and
        // token: a restart that finds the claim (the row, with the same token) but an
        // intent no supervisor took knows the command never ran. An intent of another
        // token is another claim's (a failed one's, left behind) and says nothing.
        let intent = self.intent(c.kind, token);
        let claimed = match commit_fault() {
            Some(e) => Err(e),
            None => self
                .store
                .blocking(|s| s.claim_fenced(&self.id, &self.leases.holder, token, &new, &fired)),
        };
        let action = match claimed {
            Ok(a) => a,
            // Surely not committed: the intent goes (a crash before this leaves it, and
            // the token tells it apart from the claim that commits).
            Err(e @ StoreError::Fenced { .. }) => {
                self.drop_intent(intent.as_deref(), token);
                return Err(self.refused(c.kind, &e.to_string()));
            }
            // Refused as a second claim: surely not committed either. Any other error:
            // the commit may have happened (an answer lost), so the intent stays; it
            // is read as "never started" only if the row carries this claim's token,
            // which is true then (this agent does not start the command).
            Err(e) => {
                if matches!(e, StoreError::AlreadyClaimed { .. }) {
                    self.drop_intent(intent.as_deref(), token);
                }
                self.metrics.store_errors.inc();
                error!(event = "store_error", watch = %self.id, error = %e, "cannot claim the {} action", c.kind);
                if gives_up(&self.leases) {
                    self.leases.mark_lost(&self.id);
                    error!(event = "claim_not_committed", watch = %self.id, action = c.kind,
                        "the {} command was NOT started (its claim did not commit): the watch stops on this agent and is resumed by whoever holds its lease when the store answers again", c.kind);
                }
                return Err(e.to_string());
            }
        };
        self.action = Some(action);
        self.token = Some(token);
        crash_point("claim_committed");
        Ok(Ticket {
            env: vec![
                ("ROLLWATCH_WATCH_ID".into(), self.id.clone()),
                (
                    "ROLLWATCH_ACTION_ID".into(),
                    action_tag(&self.id, self.created_ms, action),
                ),
                ("ROLLWATCH_FENCING_TOKEN".into(), token.to_string()),
            ],
            on_spawn: Some(spawn_hook(
                self.store.clone(),
                self.metrics.clone(),
                self.id.clone(),
                action,
            )),
            intent_file: intent,
            status_file: self.status_dir.as_ref().map(|d| {
                crate::io::supervise::record_path(d, &action_tag(&self.id, self.created_ms, action))
            }),
        })
    }

    fn finished(&mut self, status: &ActionStatus, at_ms: i64, event: &Event) {
        if let Some(a) = self.action.take() {
            let fence = Fence {
                holder: self.leases.holder.clone(),
                token: self.token.unwrap_or(0),
            };
            let result = status.to_string();
            let end = ActionEnd {
                state: ActionState::Finished,
                result: &result,
                succeeded: Some(status.succeeded()),
                at_ms,
            };
            let r = match &self.herald {
                Some(h) => {
                    let notes = h.ahead(at_ms, event);
                    let change = Noted::EndAction {
                        action: a,
                        end: &end,
                        ending: None,
                    };
                    let r = self
                        .store
                        .blocking(|s| s.write_noted(&self.id, &fence, change, &notes));
                    match &r {
                        Ok(()) if !notes.is_empty() => h.wake(),
                        Ok(()) => {}
                        // Rendered again when it is emitted, and written then.
                        Err(_) => h.forget_ahead(),
                    }
                    r
                }
                None => self
                    .store
                    .blocking(|s| s.end_action(&self.id, &fence, a, &end, None)),
            };
            match r {
                Err(e @ StoreError::Fenced { .. }) => write_fenced(
                    &self.metrics,
                    &self.leases,
                    &self.id,
                    "the action's result",
                    &e.to_string(),
                ),
                Err(e) => {
                    self.metrics.store_errors.inc();
                    error!(event = "store_error", watch = %self.id, error = %e, "cannot record the action's result; a restart reads it from the supervisor's record, or finds it unknown");
                }
                // The store says it now: the supervisor's record has served.
                Ok(()) => {
                    if let Some(d) = &self.status_dir {
                        use crate::io::supervise::{
                            intent_path, record_path, remove_record, taken,
                        };
                        let tag = action_tag(&self.id, self.created_ms, a);
                        remove_record(&record_path(d, &tag));
                        if let Some(kind) = event_kind(event) {
                            remove_record(&taken(&intent_path(d, &self.id, self.created_ms, kind)));
                        }
                    }
                }
            }
            crash_point("action_finished");
        }
    }
}

/// The action kind of an `action_finished` event.
fn event_kind(event: &Event) -> Option<&'static str> {
    match event {
        Event::ActionFinished { action, .. } => Some(action),
        _ => None,
    }
}

/// Records the process group of action `action` as soon as its command started (a
/// synchronous callback of the runner, hence `StoreHandle::blocking`).
pub fn spawn_hook(store: StoreHandle, metrics: Metrics, id: String, action: i64) -> SpawnHook {
    Arc::new(move |pid| {
        if let Err(e) = store.blocking(|s| s.action_spawned(action, &ProcessId::of(pid))) {
            metrics.store_errors.inc();
            error!(event = "store_error", watch = %id, error = %e, "cannot record the command's process group; a restart will look for it by its ROLLWATCH_ACTION_ID");
        }
        crash_point("command_spawned");
        stop_point("command_spawned");
    })
}

/// What a restart does about a watch's actions: a pure function of its action rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ResumePlan {
    /// No action decided the watch: judge on, from the restored state.
    Live {
        paused_by: Option<String>,
        /// A pause that failed (or whose fate is unknown): not tried again.
        pause_failed: Option<(String, ActionStatus)>,
    },
    /// An action decided the watch; record this outcome, run nothing.
    Decided(Outcome),
    /// This command was running when the agent stopped and must not run again: its
    /// fate is unknown (a rollback ends the watch `rollback_unknown`; a pause counts
    /// as failed and the watch goes on).
    Unknown(ActionRow),
    /// This idempotent command was running when the agent stopped: once the original
    /// has ended, run it again, once.
    Rerun(ActionRow),
}

/// Decides a restart from the rows (oldest first). Any rollback row decides the watch.
pub fn resume_plan(
    actions: &[ActionRow],
    rollback_idempotent: bool,
    pause_idempotent: bool,
) -> ResumePlan {
    // The latest attempt of an action: follow its chain of re-runs.
    let last_of = |first: &ActionRow| -> ActionRow {
        let mut cur = first.clone();
        while let Some(next) = actions.iter().find(|a| a.rerun_of == Some(cur.id)) {
            cur = next.clone();
        }
        cur
    };
    let first = |kind: &str| {
        actions
            .iter()
            .find(|a| a.kind == kind && a.rerun_of.is_none())
    };
    let failed = ActionStatus::Failed {
        code: None,
        signal: None,
    };
    if let Some(r0) = first("rollback") {
        let a = last_of(r0);
        let rule = a.rule.clone();
        return match a.state {
            ActionState::Started if rollback_idempotent && a.rerun_of.is_none() => {
                ResumePlan::Rerun(a)
            }
            ActionState::Started => ResumePlan::Unknown(a),
            ActionState::Finished if a.succeeded == Some(true) => {
                ResumePlan::Decided(Outcome::RolledBack {
                    rule,
                    dry_run: false,
                })
            }
            ActionState::Finished => ResumePlan::Decided(Outcome::RollbackFailed {
                rule,
                status: failed,
            }),
            // `rerun` with no re-run row cannot be written (one transaction); read
            // as unknown all the same, never as "nothing happened".
            ActionState::Unknown | ActionState::Rerun => {
                ResumePlan::Decided(Outcome::ActionUnknown {
                    action: "rollback",
                    rule,
                })
            }
        };
    }
    if let Some(p0) = first("pause") {
        let a = last_of(p0);
        let rule = a.rule.clone();
        return match a.state {
            ActionState::Started if pause_idempotent && a.rerun_of.is_none() => {
                ResumePlan::Rerun(a)
            }
            ActionState::Started => ResumePlan::Unknown(a),
            ActionState::Finished if a.succeeded == Some(true) => ResumePlan::Live {
                paused_by: Some(rule),
                pause_failed: None,
            },
            ActionState::Finished => ResumePlan::Live {
                paused_by: None,
                pause_failed: Some((rule, failed)),
            },
            ActionState::Unknown | ActionState::Rerun => ResumePlan::Live {
                paused_by: None,
                pause_failed: Some((rule, ActionStatus::Unknown)),
            },
        };
    }
    ResumePlan::Live {
        paused_by: None,
        pause_failed: None,
    }
}

#[cfg(test)]
mod tests;
