//! The row codecs both backends share: how a watch's vars, a series' labels and
//! phase, an action's argv, environment and state, and a rule's `breaches` windows are
//! written to their text columns and read back, and what a row that does not decode
//! is (`StoreError::Corrupt`, never a panic). SQLite and PostgreSQL read their columns
//! with their own clients into the `*Cols` structs here and decode them in one place,
//! so the two stores can never disagree on what a stored value means. Pure: no SQL,
//! no I/O.

use super::api::{
    ActionRow, ActionState, NewWatch, ProcessId, SeriesRow, StoreError, WatchRecord, WatchState,
    Windows,
};
use crate::core::eval::{Labels, Phase};
use std::collections::BTreeMap;

/// A SQLite error as a `StoreError`, saying what the store was doing.
pub(super) fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { what, source }
}

/// The columns of a watch, in the order `WatchCols` is read from.
pub(super) const WATCH_COLS: &str =
    "id, rules, rules_text, vars, duration_ms, created_ms, state, outcome, exit_code, detail, finished_ms, key, after_watch";

/// What an interrupted idempotent action's row says once it is run again.
pub(super) const RERUN_RESULT: &str = "was running when the agent stopped; run again (idempotent)";

/// A series' labels as stored (JSON; the key of its row).
pub(super) fn labels_text(l: &Labels) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "{}".into())
}

/// A watch's vars as stored (JSON).
pub(super) fn vars_text(v: &BTreeMap<String, String>) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// An action's argv as stored (JSON).
pub(super) fn argv_text(argv: &[String]) -> String {
    serde_json::to_string(argv).unwrap_or_else(|_| "[]".into())
}

/// An action's environment as stored (JSON pairs).
pub(super) fn env_text(env: &[(String, String)]) -> String {
    serde_json::to_string(env).unwrap_or_else(|_| "[]".into())
}

pub(super) fn phase_text(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "pending",
        Phase::Firing => "firing",
    }
}

fn phase_of(s: &str) -> Option<Phase> {
    match s {
        "pending" => Some(Phase::Pending),
        "firing" => Some(Phase::Firing),
        _ => None,
    }
}

/// `PollMark::windows` as stored (JSON), and back; an unreadable value is no window
/// (the series then restarts from one breach, as before windows were stored).
pub(super) fn windows_json(w: &Option<Windows>) -> Option<String> {
    w.as_ref().and_then(|w| serde_json::to_string(w).ok())
}

pub(super) fn windows_parse(text: &str) -> Option<Windows> {
    serde_json::from_str(text).ok()
}

/// One row of `baselines`: the marker row (no value) and an unreadable label set are
/// no series.
pub(super) fn baseline_of(labels: &str, value: Option<f64>) -> Option<(Labels, f64)> {
    match (value, serde_json::from_str::<Labels>(labels)) {
        (Some(v), Ok(l)) => Some((l, v)),
        _ => None,
    }
}

/// A watch just stored: running, no ending yet.
pub(super) fn new_record(def: NewWatch) -> WatchRecord {
    WatchRecord {
        def,
        after: None,
        state: WatchState::Running,
        outcome: None,
        exit_code: None,
        detail: None,
        finished_ms: None,
    }
}

/// A row of `watches` as read (`WATCH_COLS`), not decoded yet.
pub(super) struct WatchCols {
    pub id: String,
    pub rules: String,
    pub rules_text: String,
    pub vars: String,
    pub duration_ms: i64,
    pub created_ms: i64,
    pub state: String,
    pub outcome: Option<String>,
    pub exit_code: Option<i64>,
    pub detail: Option<String>,
    pub finished_ms: Option<i64>,
    pub key: Option<String>,
    pub after: Option<String>,
}

impl WatchCols {
    pub(super) fn decode(self) -> Result<WatchRecord, StoreError> {
        let corrupt = |what, reason: String| StoreError::Corrupt {
            what,
            id: self.id.clone(),
            reason,
        };
        let vars = serde_json::from_str(&self.vars).map_err(|e| corrupt("vars", e.to_string()))?;
        let state =
            WatchState::parse(&self.state).ok_or_else(|| corrupt("state", self.state.clone()))?;
        Ok(WatchRecord {
            def: NewWatch {
                id: self.id,
                rules: self.rules,
                rules_text: self.rules_text,
                vars,
                duration_ms: self.duration_ms,
                created_ms: self.created_ms,
                key: self.key,
            },
            after: self.after,
            state,
            outcome: self.outcome,
            exit_code: self.exit_code.map(|c| c.clamp(0, 255) as u8),
            detail: self.detail,
            finished_ms: self.finished_ms,
        })
    }
}

/// A row of `series` as read, not decoded yet.
pub(super) struct SeriesCols {
    pub rule: String,
    pub labels: String,
    pub phase: String,
    pub since_ms: i64,
    pub last_value: Option<f64>,
}

impl SeriesCols {
    /// The row of watch `id`.
    pub(super) fn decode(self, id: &str) -> Result<SeriesRow, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: "series",
            id: id.to_string(),
            reason,
        };
        let labels: Labels =
            serde_json::from_str(&self.labels).map_err(|e| corrupt(e.to_string()))?;
        let phase =
            phase_of(&self.phase).ok_or_else(|| corrupt(format!("phase {:?}", self.phase)))?;
        Ok(SeriesRow {
            rule: self.rule,
            labels,
            phase,
            since_ms: self.since_ms,
            last_value: self.last_value,
        })
    }
}

/// A row of `actions` as read, not decoded yet (the process columns are read by
/// each backend: they differ in how a missing one reads).
pub(super) struct ActionCols {
    pub id: i64,
    pub kind: String,
    pub rule: String,
    pub argv: String,
    pub state: String,
    pub result: Option<String>,
    pub succeeded: Option<bool>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub rerun_of: Option<i64>,
    pub env: String,
    pub process: Option<ProcessId>,
    pub token: Option<i64>,
}

impl ActionCols {
    /// The row of watch `id`.
    pub(super) fn decode(self, id: &str) -> Result<ActionRow, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: "action",
            id: id.to_string(),
            reason,
        };
        let argv = serde_json::from_str(&self.argv).map_err(|e| corrupt(e.to_string()))?;
        let env = serde_json::from_str(&self.env).map_err(|e| corrupt(e.to_string()))?;
        let state = ActionState::parse(&self.state).ok_or_else(|| corrupt(self.state.clone()))?;
        Ok(ActionRow {
            id: self.id,
            kind: self.kind,
            rule: self.rule,
            argv,
            state,
            result: self.result,
            succeeded: self.succeeded,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            rerun_of: self.rerun_of,
            env,
            process: self.process,
            token: self.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_cols() -> WatchCols {
        WatchCols {
            id: "w1".into(),
            rules: "api".into(),
            rules_text: "rules: []".into(),
            vars: r#"{"service":"api"}"#.into(),
            duration_ms: 60_000,
            created_ms: 1_000,
            state: "finished".into(),
            outcome: Some("rolled_back".into()),
            exit_code: Some(300),
            detail: None,
            finished_ms: Some(2_000),
            key: None,
            after: None,
        }
    }

    #[test]
    fn a_watch_row_decodes_and_its_exit_code_is_clamped_to_a_byte() {
        let w = watch_cols().decode().unwrap();
        assert_eq!(w.def.vars.get("service").map(String::as_str), Some("api"));
        assert_eq!(w.state, WatchState::Finished);
        assert_eq!(w.exit_code, Some(255));
        assert_eq!(vars_text(&w.def.vars), r#"{"service":"api"}"#);
    }

    #[test]
    fn a_watch_row_that_does_not_decode_is_corrupt_naming_the_column() {
        let bad_state = WatchCols {
            state: "sleeping".into(),
            ..watch_cols()
        };
        let e = bad_state.decode().unwrap_err().to_string();
        assert!(e.contains("corrupt state for watch w1: sleeping"), "{e}");
        let bad_vars = WatchCols {
            vars: "{".into(),
            ..watch_cols()
        };
        let e = bad_vars.decode().unwrap_err().to_string();
        assert!(e.contains("corrupt vars for watch w1"), "{e}");
    }

    #[test]
    fn a_series_row_round_trips_through_its_columns() {
        let labels: Labels = [("pod".to_string(), "a".to_string())].into_iter().collect();
        for phase in [Phase::Pending, Phase::Firing] {
            let row = SeriesCols {
                rule: "errors".into(),
                labels: labels_text(&labels),
                phase: phase_text(phase).into(),
                since_ms: 5,
                last_value: Some(0.5),
            }
            .decode("w1")
            .unwrap();
            assert_eq!(row.labels, labels);
            assert_eq!(row.phase, phase);
        }
        let e = SeriesCols {
            rule: "errors".into(),
            labels: "{}".into(),
            phase: "resolved".into(),
            since_ms: 5,
            last_value: None,
        }
        .decode("w1")
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(r#"corrupt series for watch w1: phase "resolved""#),
            "{e}"
        );
    }

    #[test]
    fn an_action_row_round_trips_argv_env_and_state() {
        let argv = vec!["kubectl".to_string(), "rollout undo".to_string()];
        let env = vec![("ROLLWATCH_RULE".to_string(), "errors".to_string())];
        let cols = |state: &str| ActionCols {
            id: 7,
            kind: "rollback".into(),
            rule: "errors".into(),
            argv: argv_text(&argv),
            state: state.into(),
            result: None,
            succeeded: None,
            started_ms: 1,
            finished_ms: None,
            rerun_of: None,
            env: env_text(&env),
            process: None,
            token: Some(1),
        };
        for state in [
            ActionState::Started,
            ActionState::Finished,
            ActionState::Unknown,
            ActionState::Rerun,
        ] {
            let a = cols(state.as_str()).decode("w1").unwrap();
            assert_eq!(
                (a.argv.clone(), a.env.clone(), a.state),
                (argv.clone(), env.clone(), state)
            );
        }
        let e = cols("lost").decode("w1").unwrap_err().to_string();
        assert!(e.contains("corrupt action for watch w1: lost"), "{e}");
    }

    #[test]
    fn unreadable_windows_and_baselines_are_absent_not_errors() {
        let w: Windows = vec![(Labels::new(), "1011".into())];
        let text = windows_json(&Some(w.clone())).unwrap();
        assert_eq!(windows_parse(&text), Some(w));
        assert_eq!(windows_json(&None), None);
        assert_eq!(windows_parse("not json"), None);
        assert_eq!(baseline_of("", None), None);
        assert_eq!(baseline_of("nope", Some(1.0)), None);
        assert_eq!(baseline_of("{}", Some(1.0)), Some((Labels::new(), 1.0)));
    }
}
