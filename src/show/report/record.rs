//! The release report's data: `Record`, everything a watch saw and did (samples,
//! transitions, actions, its outcome), built from events (`Record::record`) and read
//! by each renderer (`html.rs`, `markdown.rs`) and by the faces that show a watch.
//! Apart from `mod.rs`, which writes the files, so that the renderers import the
//! record from a sibling and the parent that calls them defines nothing they need.

use crate::core::eval::Labels;
use crate::core::events::{
    rfc3339_ms, vars_text, Event, Evidence, RuleInfo, RuleState, SeriesValue,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One poll of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    pub t: i64,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub value: Option<f64>,
    pub state: RuleState,
    pub series: Vec<SeriesValue>,
    pub error: Option<String>,
    /// The value a judge compared `value` with at this poll, drawn on the chart as a
    /// second line: a baseline's value, or the stable side's median for `compare`.
    /// `None` for a fixed threshold.
    #[serde(
        serialize_with = "crate::core::events::float::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reference: Option<f64>,
}

/// A state change of one series.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionRecord {
    pub t: i64,
    pub kind: &'static str,
    pub labels: Labels,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub value: Option<f64>,
    pub breached_for_s: Option<f64>,
    /// The judges' evidence (baseline, ratio, p-value, effect, counts), when any.
    #[serde(skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleRecord {
    /// (Shared with every record of an equal rule: `run::interner`.)
    #[serde(flatten)]
    pub info: Arc<RuleInfo>,
    pub samples: Vec<SampleRecord>,
    pub transitions: Vec<TransitionRecord>,
}

impl RuleRecord {
    /// The worst value seen, the way the rule's value is worse (`info.worse`: highest
    /// for `above` and `above_baseline` rules, lowest for `below`); the first of equals.
    pub fn peak(&self) -> Option<(i64, f64)> {
        let vals = self
            .samples
            .iter()
            .filter_map(|s| s.value.map(|v| (s.t, v)));
        self.info.worse.worst(vals, |(_, v)| *v)
    }

    /// Time spent pending or breached (from one poll to the next, or to `end`).
    pub fn breached_ms(&self, end: i64) -> i64 {
        let mut total = 0;
        for (i, s) in self.samples.iter().enumerate() {
            if matches!(s.state, RuleState::Pending { .. } | RuleState::Breached) {
                let next = self.samples.get(i + 1).map_or(end, |n| n.t);
                total += (next - s.t).max(0);
            }
        }
        total
    }

    pub fn fired(&self) -> bool {
        self.transitions.iter().any(|t| t.kind == "fired")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub action: &'static str,
    pub rule: String,
    pub argv: Vec<String>,
    pub dry_run: bool,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: Option<String>,
    pub succeeded: Option<bool>,
    pub duration_s: Option<f64>,
    pub output_tail: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeRecord {
    pub outcome: &'static str,
    pub exit_code: u8,
    pub detail: String,
    pub rule: Option<String>,
}

/// Everything a report shows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Record {
    pub rollwatch_version: &'static str,
    /// `watch` or `replay`.
    pub kind: &'static str,
    pub rules_file: String,
    pub prometheus: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub planned_duration_s: f64,
    pub dry_run: bool,
    /// (Shared with every record of equal vars: `run::interner`.)
    pub vars: Arc<BTreeMap<String, String>>,
    pub rules: Vec<RuleRecord>,
    pub actions: Vec<ActionRecord>,
    pub notifications: Vec<String>,
    /// What people ordered (`core::control`): who, why, when, and holds that ended.
    pub people: Vec<String>,
    /// The hold in force: until when (Unix ms) and by whom.
    pub held: Option<(i64, String)>,
    /// Breaches that began before the watch (`pre_existing`), and when they ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before_deploy: Vec<String>,
    pub outcome: Option<OutcomeRecord>,
}

impl Record {
    /// What the report is about: the vars (`service=checkout version=1.4.2`), or the
    /// rules file when there are none.
    pub fn subject(&self) -> String {
        if self.vars.is_empty() {
            self.rules_file.clone()
        } else {
            vars_text(&self.vars)
        }
    }

    /// The outcome's name and sentence, or a placeholder if the watch did not finish.
    pub fn outcome_text(&self) -> (&str, &str) {
        self.outcome
            .as_ref()
            .map_or(("unknown", "the watch did not finish"), |o| {
                (o.outcome, o.detail.as_str())
            })
    }

    /// Where rule `name` is in `rules` (the page's board keeps its compact polls by
    /// the same index).
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.info.name == name)
    }

    fn rule_mut(&mut self, name: &str) -> Option<&mut RuleRecord> {
        let i = self.rule_index(name)?;
        self.rules.get_mut(i)
    }

    /// Records one event.
    pub fn record(&mut self, at: i64, event: &Event) {
        self.ended_at = self.ended_at.max(at);
        match event {
            Event::WatchStarted {
                rules_file,
                prometheus,
                duration_s,
                dry_run,
                vars,
                rules,
                ..
            } => {
                self.rollwatch_version = env!("CARGO_PKG_VERSION");
                if self.kind.is_empty() {
                    self.kind = "watch";
                }
                self.rules_file = rules_file.clone();
                self.prometheus = prometheus.clone();
                self.started_at = at;
                self.planned_duration_s = *duration_s;
                self.dry_run = *dry_run;
                self.vars = crate::run::interner::vars(vars);
                self.rules = rules
                    .iter()
                    .map(|info| RuleRecord {
                        info: crate::run::interner::rule_info(info),
                        samples: Vec::new(),
                        transitions: Vec::new(),
                    })
                    .collect();
            }
            Event::Poll {
                rule,
                samples,
                error,
                state,
                value,
                reference,
                ..
            } => {
                if let Some(r) = self.rule_mut(rule) {
                    r.samples.push(SampleRecord {
                        t: at,
                        value: *value,
                        state: state.clone(),
                        series: samples.clone(),
                        error: error.clone(),
                        reference: *reference,
                    });
                }
            }
            Event::Pending {
                rule,
                labels,
                value,
                evidence,
                ..
            } => self.transition(rule, at, "pending", labels, *value, None, evidence),
            Event::Resolved {
                rule,
                labels,
                value,
                breached_for_s,
                evidence,
                ..
            } => self.transition(
                rule,
                at,
                "resolved",
                labels,
                *value,
                Some(*breached_for_s),
                evidence,
            ),
            Event::Fired {
                rule,
                labels,
                value,
                breached_for_s,
                evidence,
                ..
            } => self.transition(
                rule,
                at,
                "fired",
                labels,
                *value,
                Some(*breached_for_s),
                evidence,
            ),
            Event::Notify { rule, .. } => self
                .notifications
                .push(format!("{} notify: rule `{rule}`", rfc3339_ms(at))),
            Event::ActionStarted {
                action,
                rule,
                argv,
                dry_run,
                ..
            } => self.actions.push(ActionRecord {
                action,
                rule: rule.clone(),
                argv: argv.clone(),
                dry_run: *dry_run,
                started_at: at,
                finished_at: None,
                status: dry_run.then(|| "not run (dry run)".to_string()),
                succeeded: None,
                duration_s: None,
                output_tail: Vec::new(),
            }),
            Event::ActionFinished {
                status,
                succeeded,
                duration_s,
                output_tail,
                ..
            } => {
                if let Some(a) = self.actions.last_mut() {
                    a.finished_at = Some(at);
                    a.status = Some(status.clone());
                    a.succeeded = Some(*succeeded);
                    a.duration_s = Some(*duration_s);
                    a.output_tail = output_tail.clone();
                }
            }
            Event::WatchFinished {
                outcome,
                exit_code,
                detail,
                rule,
            } => {
                self.held = None;
                self.outcome = Some(OutcomeRecord {
                    outcome,
                    exit_code: *exit_code,
                    detail: detail.clone(),
                    rule: rule.clone(),
                });
            }
            Event::Silenced {
                silence_id,
                matchers,
                ends_at,
                error,
                ..
            } => self.notifications.push(match (silence_id, error) {
                (Some(id), _) => format!(
                    "{} Alertmanager silence {id} on {} until {ends_at}",
                    rfc3339_ms(at),
                    crate::core::events::vars_text(matchers)
                ),
                (None, e) => format!(
                    "{} Alertmanager silence NOT created: {}",
                    rfc3339_ms(at),
                    e.as_deref().unwrap_or("unknown error")
                ),
            }),
            Event::Manual { .. }
            | Event::HeldBack { .. }
            | Event::HoldEnded { .. }
            | Event::Succeeds { .. } => {
                match event {
                    Event::Manual {
                        order: "hold",
                        by,
                        until_ms: Some(u),
                        ..
                    } => self.held = Some((*u, by.clone())),
                    Event::HoldEnded { .. } => self.held = None,
                    _ => {}
                }
                if let Some(t) = crate::core::events::manual_text(event) {
                    self.people.push(format!("{} {t}", rfc3339_ms(at)));
                }
            }
            Event::PreExisting { rule, series, .. } => {
                for sv in series {
                    self.transition(
                        rule,
                        at,
                        "pre_existing",
                        &sv.labels,
                        sv.value,
                        None,
                        &Evidence::default(),
                    );
                }
                if let Some(t) = crate::core::events::pre_existing_text(event) {
                    self.before_deploy.push(format!("{} {t}", rfc3339_ms(at)));
                }
            }
            Event::PreExistingOver {
                rule,
                labels,
                value,
            } => {
                self.transition(
                    rule,
                    at,
                    "pre_existing_over",
                    labels,
                    *value,
                    None,
                    &Evidence::default(),
                );
                if let Some(t) = crate::core::events::pre_existing_text(event) {
                    self.before_deploy.push(format!("{} {t}", rfc3339_ms(at)));
                }
            }
            Event::PauseSkipped { .. } | Event::Signal { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transition(
        &mut self,
        rule: &str,
        t: i64,
        kind: &'static str,
        labels: &Labels,
        value: Option<f64>,
        breached_for_s: Option<f64>,
        evidence: &Evidence,
    ) {
        if let Some(r) = self.rule_mut(rule) {
            r.transitions.push(TransitionRecord {
                t,
                kind,
                labels: labels.clone(),
                value,
                breached_for_s,
                evidence: evidence.clone(),
            });
        }
    }
}

/// A value for people where room is short (charts, the live view): 4 significant
/// digits, by the formatting every sink shares (`core::events::float`).
pub fn fmt_value(v: f64) -> String {
    crate::core::events::float::significant(v, 4)
}
