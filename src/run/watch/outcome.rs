//! How a watch ended (`Outcome`), and the signals that can end it. Each outcome maps to
//! exactly one exit code and one sentence, so a pipeline and a person read the same
//! verdict.

use crate::core::events::Event;
use crate::io::action::ActionStatus;

/// A signal asking the watch to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

/// How a watch ended. Each maps to one exit code (see `crate::core::exit`).
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
    /// `serve` only: the agent died while this command ran, so whether it took effect
    /// is unknown, and it is not idempotent, so it is not run again: act by hand.
    ActionUnknown { action: &'static str, rule: String },
    /// A person ended the watch early as healthy (`rollwatch ctl end`): their verdict,
    /// never rollwatch's.
    DeclaredHealthy { by: String, reason: String },
    /// A newer watch with the same `watch.key` took over (`serve` only).
    Superseded { reason: String },
}

/// The kind of a watch's ending without its details: what `Outcome::name` says, and
/// what a stored ending's `outcome` is read back as, plus the agent's own two endings
/// that are no `Outcome` (a watch cancelled through the API, or whose snapshot does
/// not load). Code that decides on an ending matches this, never its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Healthy,
    RolledBack,
    RollbackFailed,
    Paused,
    PauseFailed,
    Inconclusive,
    Interrupted,
    QueryRejected,
    RollbackUnknown,
    PauseUnknown,
    /// A person ended the watch as healthy before its end.
    DeclaredHealthy,
    /// A newer watch with the same `watch.key` took over.
    Superseded,
    /// `serve` only: cancelled through the API.
    Cancelled,
    /// `serve` only: the watch's rule snapshot did not load.
    Invalid,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 14] = [
        OutcomeKind::Healthy,
        OutcomeKind::RolledBack,
        OutcomeKind::RollbackFailed,
        OutcomeKind::Paused,
        OutcomeKind::PauseFailed,
        OutcomeKind::Inconclusive,
        OutcomeKind::Interrupted,
        OutcomeKind::QueryRejected,
        OutcomeKind::RollbackUnknown,
        OutcomeKind::PauseUnknown,
        OutcomeKind::DeclaredHealthy,
        OutcomeKind::Superseded,
        OutcomeKind::Cancelled,
        OutcomeKind::Invalid,
    ];

    /// Its name in logs, machine output and the store.
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Healthy => "healthy",
            OutcomeKind::RolledBack => "rolled_back",
            OutcomeKind::RollbackFailed => "rollback_failed",
            OutcomeKind::Paused => "paused",
            OutcomeKind::PauseFailed => "pause_failed",
            OutcomeKind::Inconclusive => "inconclusive",
            OutcomeKind::Interrupted => "interrupted",
            OutcomeKind::QueryRejected => "query_rejected",
            OutcomeKind::RollbackUnknown => "rollback_unknown",
            OutcomeKind::PauseUnknown => "pause_unknown",
            OutcomeKind::DeclaredHealthy => "declared_healthy",
            OutcomeKind::Superseded => "superseded",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::Invalid => "invalid",
        }
    }

    /// The kind a name stands for (a stored ending's `outcome`); None for a name no
    /// build wrote.
    pub fn parse(name: &str) -> Option<OutcomeKind> {
        OutcomeKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether a rollback or pause command was started for it (whatever came of it):
    /// such a watch failed its release.
    pub fn acted(self) -> bool {
        matches!(
            self,
            OutcomeKind::RolledBack
                | OutcomeKind::RollbackFailed
                | OutcomeKind::Paused
                | OutcomeKind::PauseFailed
                | OutcomeKind::RollbackUnknown
                | OutcomeKind::PauseUnknown
        )
    }
}

impl Outcome {
    /// Its kind, without the details.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Healthy => OutcomeKind::Healthy,
            Outcome::RolledBack { .. } => OutcomeKind::RolledBack,
            Outcome::RollbackFailed { .. } => OutcomeKind::RollbackFailed,
            Outcome::Paused { .. } => OutcomeKind::Paused,
            Outcome::PauseFailed { .. } => OutcomeKind::PauseFailed,
            Outcome::Inconclusive { .. } => OutcomeKind::Inconclusive,
            Outcome::Interrupted(_) => OutcomeKind::Interrupted,
            Outcome::QueryRejected { .. } => OutcomeKind::QueryRejected,
            Outcome::ActionUnknown {
                action: "pause", ..
            } => OutcomeKind::PauseUnknown,
            Outcome::ActionUnknown { .. } => OutcomeKind::RollbackUnknown,
            Outcome::DeclaredHealthy { .. } => OutcomeKind::DeclaredHealthy,
            Outcome::Superseded { .. } => OutcomeKind::Superseded,
        }
    }

    /// A short name for logs and machine output.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The rule whose action decided the outcome, if any.
    pub fn rule(&self) -> Option<&str> {
        match self {
            Outcome::RolledBack { rule, .. }
            | Outcome::RollbackFailed { rule, .. }
            | Outcome::Paused { rule }
            | Outcome::PauseFailed { rule, .. }
            | Outcome::QueryRejected { rule, .. }
            | Outcome::ActionUnknown { rule, .. } => Some(rule),
            _ => None,
        }
    }

    /// The `watch_finished` event that reports this outcome.
    pub fn finished_event(&self) -> Event {
        self.finished_event_with(&[])
    }

    /// The `watch_finished` event, with warnings a reader must not miss (a rule that
    /// never returned data) appended to its detail, so that every sink (log, events,
    /// report, notifications) shows them.
    pub fn finished_event_with(&self, warnings: &[String]) -> Event {
        let mut detail = self.describe();
        for w in warnings {
            detail.push_str("; WARNING: ");
            detail.push_str(w);
        }
        Event::WatchFinished {
            outcome: self.name(),
            exit_code: self.exit_code(),
            detail,
            rule: self.rule().map(str::to_string),
        }
    }

    /// One sentence a person (or a pipeline log) can read.
    pub fn describe(&self) -> String {
        use Outcome::*;
        if let Some(text) = self.rule().and_then(|r| self.by_hand(r)) {
            return text;
        }
        match self {
            Healthy => {
                "the watch ran its full duration; nothing breached long enough to act".to_string()
            }
            RolledBack {
                rule,
                dry_run: false,
            } => format!("rolled back: rule `{rule}` fired and the rollback command succeeded"),
            RolledBack {
                rule,
                dry_run: true,
            } => format!("dry run: rule `{rule}` fired; the rollback command would have run"),
            RollbackFailed { rule, status } => {
                format!("rule `{rule}` fired but the rollback command {status}: act by hand")
            }
            Paused { rule } => format!("paused by rule `{rule}`; no rollback followed"),
            PauseFailed { rule, status } => {
                format!("rule `{rule}` fired but the pause command {status}: act by hand")
            }
            Inconclusive { reason } => format!("inconclusive: {reason}"),
            Interrupted(sig) => format!("interrupted by {sig:?}; no command was run because of it"),
            QueryRejected { rule, message } => format!("rule `{rule}`: {message}"),
            DeclaredHealthy { by, reason } => format!(
                "declared healthy early by {by} ({reason:?}): a person's verdict; rollwatch's own was not reached"
            ),
            Superseded { reason } => {
                format!("{reason}: this watch's verdict was not reached; the newer watch judges the release")
            }
            ActionUnknown { action, rule } => format!(
                "rule `{rule}` fired and its {action} command was running when the agent stopped; \
                 whether it took effect is unknown and it is not marked idempotent, so it was not \
                 run again: act by hand"
            ),
        }
    }

    /// The sentence of an action a person ordered (`core::control::decider`).
    fn by_hand(&self, rule: &str) -> Option<String> {
        let who = crate::core::control::manual_by(rule)?;
        Some(match self {
            Outcome::RolledBack { dry_run: false, .. } => {
                format!("rolled back by hand: {who} ordered it and the rollback command succeeded")
            }
            Outcome::RolledBack { dry_run: true, .. } => {
                format!("dry run: {who} ordered a rollback; the rollback command would have run")
            }
            Outcome::RollbackFailed { status, .. } => {
                format!("{who} ordered a rollback but the rollback command {status}: act by hand")
            }
            Outcome::Paused { .. } => format!("paused by hand: {who} ordered it"),
            Outcome::PauseFailed { status, .. } => {
                format!("{who} ordered a pause but the pause command {status}: act by hand")
            }
            Outcome::ActionUnknown { action, .. } => format!(
                "{who} ordered a {action}; its command was running when the agent stopped and \
                 whether it took effect is unknown: act by hand"
            ),
            _ => return None,
        })
    }

    pub fn exit_code(&self) -> u8 {
        use crate::core::exit;
        match self {
            Outcome::Healthy | Outcome::DeclaredHealthy { .. } => exit::HEALTHY,
            Outcome::Superseded { .. } => exit::SUPERSEDED,
            Outcome::RolledBack { .. } => exit::ROLLED_BACK,
            Outcome::RollbackFailed { .. }
            | Outcome::PauseFailed { .. }
            | Outcome::ActionUnknown { .. } => exit::ACTION_FAILED,
            Outcome::Paused { .. } => exit::PAUSED,
            Outcome::Inconclusive { .. } => exit::INCONCLUSIVE,
            Outcome::Interrupted(Signal::Interrupt) => exit::SIGINT,
            Outcome::Interrupted(Signal::Terminate) => exit::SIGTERM,
            Outcome::QueryRejected { .. } => exit::USAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_name_reads_back_as_its_kind() {
        let failed = ActionStatus::TimedOut;
        let all = [
            Outcome::Healthy,
            Outcome::RolledBack {
                rule: "r".into(),
                dry_run: false,
            },
            Outcome::RollbackFailed {
                rule: "r".into(),
                status: failed.clone(),
            },
            Outcome::Paused { rule: "r".into() },
            Outcome::PauseFailed {
                rule: "r".into(),
                status: failed,
            },
            Outcome::Inconclusive { reason: "x".into() },
            Outcome::Interrupted(Signal::Terminate),
            Outcome::QueryRejected {
                rule: "r".into(),
                message: "m".into(),
            },
            Outcome::ActionUnknown {
                action: "rollback",
                rule: "r".into(),
            },
            Outcome::ActionUnknown {
                action: "pause",
                rule: "r".into(),
            },
            Outcome::DeclaredHealthy {
                by: "alice".into(),
                reason: "INC-1".into(),
            },
            Outcome::Superseded {
                reason: "superseded by watch w2".into(),
            },
        ];
        for o in &all {
            assert_eq!(OutcomeKind::parse(o.name()), Some(o.kind()), "{o:?}");
        }
        let names: std::collections::BTreeSet<_> =
            OutcomeKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names.len(),
            OutcomeKind::ALL.len(),
            "two kinds share a name"
        );
        assert_eq!(
            OutcomeKind::parse("cancelled"),
            Some(OutcomeKind::Cancelled)
        );
        assert_eq!(OutcomeKind::parse("no_such"), None);
    }
}
