//! What a watch reports as it goes: one typed event per decision, sent to every sink.
//!
//! The decision loop describes what happened once, as an `Event`; sinks decide how to
//! show it: the log (`LogSink`), the `--events` JSON-lines stream, the recorder behind
//! `--report`, the live terminal view and the notification channels. Adding a way to
//! show a watch never touches the loop.
//!
//! This is the bus between the floors, so it sits in the core beside the series types:
//! the runtime emits on it, and each sink lives on the floor of what it does (the log,
//! `--events`, reports and the live view in `show`, notifications in `io`, the agent's
//! store sink in `run::agent`). The value and time formatting every sink shares is
//! here too.

pub use crate::core::eval::Evidence;
use crate::core::series::Labels;
use serde::Serialize;
use std::collections::BTreeMap;

/// How sample values leave the program (`+Inf`, `-Inf`, `NaN` as Prometheus writes
/// them); it lives with the series types so the evaluator's evidence can use it too.
pub use crate::core::series::float;

/// One series' value at a poll (None = no data / NaN).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesValue {
    pub labels: Labels,
    #[serde(serialize_with = "float::option")]
    pub value: Option<f64>,
}

/// A rule as shown in reports and events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    pub name: String,
    pub description: Option<String>,
    pub query: String,
    pub above: Option<f64>,
    pub below: Option<f64>,
    /// Which way the rule's value is worse (`core::eval::Worse::of`): its peak and
    /// its chart's thinning follow it.
    pub worse: crate::core::eval::Worse,
    pub threshold: String,
    pub for_s: f64,
    pub interval_s: f64,
    pub no_data: &'static str,
    pub action: &'static str,
    /// Link to the query in Prometheus's graph UI, when known.
    pub graph_url: Option<String>,
}

/// A rule's state as shown after a poll (decided with the rest of a poll's meaning, in
/// `core::eval::reading`).
pub use crate::core::eval::RuleState;

impl std::fmt::Display for RuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleState::Ok => write!(f, "ok"),
            RuleState::NoData => write!(f, "no data"),
            RuleState::Pending {
                breaches: Some([k, m, n]),
                ..
            } => write!(f, "pending: {k} of {m} breaches (last {n} polls)"),
            RuleState::Pending { for_s, of_s, .. } => {
                write!(f, "pending for {} of {}", secs(*for_s), secs(*of_s))
            }
            RuleState::Breached => write!(f, "breached"),
            RuleState::QueryError => write!(f, "query error"),
        }
    }
}

/// Seconds as a compact duration (`1m 30s`).
pub fn secs(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).round() as u64))
        .to_string()
}

/// Everything a watch reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    WatchStarted {
        rules_file: String,
        prometheus: String,
        duration_s: f64,
        max_blind_s: f64,
        dry_run: bool,
        vars: BTreeMap<String, String>,
        rules: Vec<RuleInfo>,
    },
    /// A poll's result (not written to the event stream: it is not a state change).
    Poll {
        rule: String,
        samples: Vec<SeriesValue>,
        error: Option<String>,
        warnings: Vec<String>,
        state: RuleState,
        /// The worst value (highest for `above`, lowest for `below`), if any.
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        /// What the worst series was compared with: its baseline, or the stable side's
        /// median (`compare`).
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "float::option"
        )]
        reference: Option<f64>,
        /// Series insufficient at this poll (`min_traffic`, `compare`).
        #[serde(skip_serializing_if = "is_zero")]
        insufficient: usize,
        /// Why (the judges' evidence: baseline, ratio, p-value, effect, counts).
        #[serde(skip_serializing_if = "Evidence::is_empty")]
        evidence: Evidence,
        /// `breaches: M of N`: each pending or firing series' window after this poll
        /// (`RuleEval::windows`), for the agent's store; not shown.
        #[serde(skip)]
        windows: Option<Vec<(Labels, String)>>,
    },
    Pending {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        for_s: f64,
        /// Where the breach began in the data (Unix ms), which `for` counts from: at or
        /// before this event's poll (`core::eval::onset`).
        #[serde(skip_serializing_if = "Option::is_none")]
        since_ms: Option<i64>,
        /// Why (the judges' evidence: baseline, ratio, p-value, effect, counts).
        #[serde(skip_serializing_if = "Evidence::is_empty")]
        evidence: Evidence,
    },
    Resolved {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        was: &'static str,
        breached_for_s: f64,
        /// Why (the judges' evidence: baseline, ratio, p-value, effect, counts).
        #[serde(skip_serializing_if = "Evidence::is_empty")]
        evidence: Evidence,
    },
    Fired {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        breached_for_s: f64,
        action: &'static str,
        /// Why (the judges' evidence: baseline, ratio, p-value, effect, counts).
        #[serde(skip_serializing_if = "Evidence::is_empty")]
        evidence: Evidence,
    },
    /// A rule with `action: notify` fired; the watch goes on.
    Notify {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        breached_for_s: f64,
        /// Why (the judges' evidence: baseline, ratio, p-value, effect, counts).
        #[serde(skip_serializing_if = "Evidence::is_empty")]
        evidence: Evidence,
    },
    PauseSkipped {
        rule: String,
        paused_by: String,
    },
    ActionStarted {
        action: &'static str,
        rule: String,
        argv: Vec<String>,
        timeout_s: f64,
        dry_run: bool,
    },
    ActionFinished {
        action: &'static str,
        rule: String,
        status: String,
        succeeded: bool,
        duration_s: f64,
        output_tail: Vec<String>,
    },
    /// The rollback's Alertmanager silence: its id, or why there is none.
    Silenced {
        rule: String,
        silence_id: Option<String>,
        matchers: BTreeMap<String, String>,
        ends_at: String,
        error: Option<String>,
    },
    Signal {
        signal: String,
        during_action: bool,
    },
    /// A person's order was accepted (`core::control`): who, why, and what it does.
    Manual {
        order: &'static str,
        by: String,
        reason: String,
        /// A hold: until when (Unix ms, capped at the watch's end).
        #[serde(skip_serializing_if = "Option::is_none")]
        until_ms: Option<i64>,
        /// An extension: when the watch now ends (Unix ms).
        #[serde(skip_serializing_if = "Option::is_none")]
        ends_ms: Option<i64>,
    },
    /// A rule fired while a person held automatic actions: nothing ran; it acts when
    /// the hold ends if it still fires then.
    HeldBack {
        rule: String,
        action: &'static str,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        until_ms: i64,
        held_by: String,
    },
    /// This watch superseded `watch` (the same `watch.key`) and judges from now on,
    /// that watch having ended with `outcome` (a rollback it had started finished first).
    Succeeds {
        watch: String,
        outcome: String,
    },
    /// At the start: a rule's series that were already breaching through the `for`
    /// before the watch began (`core::eval::pre_existing`), each with its worst value
    /// there, and what the rule's `pre_existing` mode does with them.
    PreExisting {
        rule: String,
        /// `judge`, `ignore` or `improve 10%`.
        mode: String,
        /// What the mode does, in words.
        meaning: String,
        /// The window read before the start.
        window_s: f64,
        series: Vec<SeriesValue>,
    },
    /// A breach carried over from before the watch ended (`pre_existing: ignore` or
    /// `improve`): from now on the series is judged as any.
    PreExistingOver {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
    },
    /// A hold ended: released by a person (`released_by`), or run out.
    HoldEnded {
        #[serde(skip_serializing_if = "Option::is_none")]
        released_by: Option<String>,
    },
    WatchFinished {
        outcome: &'static str,
        exit_code: u8,
        detail: String,
        rule: Option<String>,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::WatchStarted { .. } => "watch_started",
            Event::Poll { .. } => "poll",
            Event::Pending { .. } => "pending",
            Event::Resolved { .. } => "resolved",
            Event::Fired { .. } => "fired",
            Event::Notify { .. } => "notify",
            Event::PauseSkipped { .. } => "pause_skipped",
            Event::Silenced { .. } => "silenced",
            Event::ActionStarted { .. } => "action_started",
            Event::ActionFinished { .. } => "action_finished",
            Event::Signal { .. } => "signal",
            Event::Manual { .. } => "manual",
            Event::HeldBack { .. } => "held_back",
            Event::HoldEnded { .. } => "hold_ended",
            Event::Succeeds { .. } => "succeeds",
            Event::PreExisting { .. } => "pre_existing",
            Event::PreExistingOver { .. } => "pre_existing_over",
            Event::WatchFinished { .. } => "watch_finished",
        }
    }
}

/// The one line a person's order (and what came of a hold) reads as, in the log,
/// the terminal, the report and the page's timeline; None for other events.
pub fn manual_text(event: &Event) -> Option<String> {
    Some(match event {
        Event::Manual {
            order,
            by,
            reason,
            until_ms,
            ends_ms,
        } => {
            let what = match (*order, until_ms, ends_ms) {
                ("rollback", _, _) => "ordered a rollback now".to_string(),
                ("pause", _, _) => "ordered a pause now".to_string(),
                ("hold", Some(u), _) => format!("held automatic actions until {}", rfc3339_ms(*u)),
                ("release", _, _) => "released the hold".to_string(),
                ("extend", _, Some(e)) => format!("extended the watch to {}", rfc3339_ms(*e)),
                ("end", _, _) => "ended the watch as healthy (a person's verdict)".to_string(),
                ("supersede", _, _) => {
                    return Some(format!("this watch is superseded: {reason}"));
                }
                (o, _, _) => format!("ordered {o}"),
            };
            format!("{by} {what}: {reason:?}")
        }
        Event::HeldBack {
            rule,
            action,
            held_by,
            until_ms,
            ..
        } => format!(
            "rule `{rule}` fired during {held_by}'s hold: no {action} now; it acts at {} if it still fires then",
            rfc3339_ms(*until_ms)
        ),
        Event::HoldEnded {
            released_by: Some(by),
        } => format!("{by}'s release ended the hold; automatic actions resume"),
        Event::Succeeds { watch, outcome } => format!(
            "this watch superseded watch {watch} (the same watch.key), which ended {outcome}; it judges from now on"
        ),
        Event::HoldEnded { released_by: None } => {
            "the hold ran out; automatic actions resume".to_string()
        }
        _ => return None,
    })
}

/// The one line a breach carried over from before the watch reads as, in the log, the
/// terminal and the report; None for other events.
pub fn pre_existing_text(event: &Event) -> Option<String> {
    Some(match event {
        Event::PreExisting {
            rule,
            mode,
            meaning,
            window_s,
            series,
        } => {
            let which: Vec<String> = series
                .iter()
                .map(|s| {
                    format!(
                        "{} at worst {}",
                        serde_json::to_string(&s.labels).unwrap_or_default(),
                        s.value.map_or_else(|| "no value".into(), float::text)
                    )
                })
                .collect();
            format!(
                "rule `{rule}` was already breaching through the {} before the watch began: {}; pre_existing: {mode}: {meaning}",
                secs(*window_s),
                which.join(", ")
            )
        }
        Event::PreExistingOver {
            rule,
            labels,
            value,
        } => format!(
            "rule `{rule}`: the breach of {} that began before the watch is over ({}); from now on it is judged as any",
            serde_json::to_string(labels).unwrap_or_default(),
            value.map_or_else(|| "gone".into(), float::text)
        ),
        _ => return None,
    })
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Somewhere events go. `at_ms` is the Unix time the event refers to.
pub trait Sink: Send {
    fn emit(&mut self, at_ms: i64, event: &Event);
    /// Called once after the last event (flush files, wait for deliveries).
    fn finish(&mut self) {}
}

/// All the sinks of one watch.
#[derive(Default)]
pub struct Sinks(pub Vec<Box<dyn Sink>>);

impl Sinks {
    pub fn emit(&mut self, at_ms: i64, event: &Event) {
        for s in &mut self.0 {
            s.emit(at_ms, event);
        }
    }
    pub fn push(&mut self, sink: impl Sink + 'static) {
        self.0.push(Box::new(sink));
    }
    pub fn finish(&mut self) {
        for s in &mut self.0 {
            s.finish();
        }
    }
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// RFC 3339 (UTC, milliseconds) for a Unix-ms time.
pub fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| format!("{t:.3}"))
}

/// Variables as `name=value name=value`, the way a release is named in reports and
/// notifications (empty when there are none).
pub fn vars_text(vars: &BTreeMap<String, String>) -> String {
    vars.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn text_for_people_has_a_few_significant_digits_and_json_the_exact_value() {
        let v = 0.1 + 0.13; // 0.23000000000000001 in binary
        let noisy = 0.22999999999999998;
        for (v, want) in [
            (noisy, "0.23"),
            (v, "0.23"),
            (0.0500001, "0.0500001"),
            (1234567.0, "1234567"),
            (-2.5, "-2.5"),
            (1.0, "1"),
            (0.0, "0"),
            (123456.78, "123457"),
            (1.5e-9, "1.5e-9"),
            (2e20, "2e20"),
        ] {
            assert_eq!(float::text(v), want, "{v:?}");
        }
        assert_eq!(float::exact(noisy), "0.22999999999999998");
        assert_eq!(float::json(Some(noisy)), json!(noisy));
        let j = serde_json::to_value(SeriesValue {
            labels: Labels::new(),
            value: Some(noisy),
        })
        .unwrap();
        assert_eq!(j["value"].as_f64(), Some(noisy));
    }

    #[test]
    fn special_values_are_written_as_prometheus_writes_them() {
        assert_eq!(float::text(f64::INFINITY), "+Inf");
        assert_eq!(float::text(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float::text(f64::NAN), "NaN");
        assert_eq!(float::text(0.25), "0.25");
        assert_eq!(float::json(Some(f64::INFINITY)), json!("+Inf"));
        assert_eq!(float::json(Some(f64::NEG_INFINITY)), json!("-Inf"));
        assert_eq!(float::json(Some(f64::NAN)), json!("NaN"));
        assert_eq!(float::json(Some(1.5)), json!(1.5));
        assert_eq!(float::json(None), Value::Null);
        let sv = |v| {
            serde_json::to_value(SeriesValue {
                labels: Labels::new(),
                value: v,
            })
            .unwrap()["value"]
                .clone()
        };
        assert_eq!(sv(Some(f64::INFINITY)), json!("+Inf"));
        assert_eq!(sv(Some(f64::NAN)), json!("NaN"));
        assert_eq!(sv(Some(2.0)), json!(2.0));
        assert_eq!(sv(None), Value::Null, "an absent value stays null");
    }
}
