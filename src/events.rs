//! What a watch reports as it goes: one typed event per decision, sent to every sink.
//!
//! The decision loop describes what happened once, as an `Event`; sinks decide how to
//! show it: the log (`LogSink`), the `--events` JSON-lines stream, the recorder behind
//! `--report`, the live terminal view and the notification channels. Adding a way to
//! show a watch never touches the loop.

use crate::eval::Labels;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Sample values as Prometheus writes them, wherever a value leaves the program.
///
/// serde_json writes a non-finite `f64` as `null`, and `null` reads as "no data": a
/// series at `+Inf` (an error ratio over zero requests, say) would look absent in the
/// very records a post-release review relies on. Prometheus's own API writes every
/// value as a string, with `+Inf`, `-Inf` and `NaN` for the special ones; rollwatch
/// keeps finite values as JSON numbers (as before) and writes the special ones the way
/// Prometheus does. An absent value (`None`) stays `null`. Every struct that carries a
/// sample value uses these (`#[serde(serialize_with = ...)]`), and `json!` payloads use
/// `json`, so there is one rule in one place.
pub mod float {
    use serde::Serializer;

    /// A value for text (logs, Markdown, notifications, environment variables):
    /// `+Inf`, `-Inf`, `NaN`, or the number as Rust prints it.
    pub fn text(v: f64) -> String {
        if v.is_nan() {
            "NaN".to_string()
        } else if v == f64::INFINITY {
            "+Inf".to_string()
        } else if v == f64::NEG_INFINITY {
            "-Inf".to_string()
        } else {
            v.to_string()
        }
    }

    /// `serialize_with` for an `f64`: a number, or the string `+Inf`/`-Inf`/`NaN`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_str(&text(*v))
        }
    }

    /// `serialize_with` for an `Option<f64>`: `null` when absent, else as `serialize`.
    pub fn option<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// The same as a `serde_json::Value`, for payloads built with `json!`.
    pub fn json(v: Option<f64>) -> serde_json::Value {
        match v {
            None => serde_json::Value::Null,
            Some(v) if v.is_finite() => serde_json::json!(v),
            Some(v) => serde_json::Value::String(text(v)),
        }
    }
}

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
    pub threshold: String,
    pub for_s: f64,
    pub interval_s: f64,
    pub no_data: &'static str,
    pub action: &'static str,
    /// Link to the query in Prometheus's graph UI, when known.
    pub graph_url: Option<String>,
}

/// A rule's state as shown after a poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RuleState {
    Ok,
    NoData,
    Pending { for_s: f64, of_s: f64 },
    Breached,
    QueryError,
}

impl std::fmt::Display for RuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleState::Ok => write!(f, "ok"),
            RuleState::NoData => write!(f, "no data"),
            RuleState::Pending { for_s, of_s } => {
                write!(f, "pending for {} of {}", secs(*for_s), secs(*of_s))
            }
            RuleState::Breached => write!(f, "breached"),
            RuleState::QueryError => write!(f, "query error"),
        }
    }
}

impl RuleState {
    /// A rule's state after `poll` at `at`: breached if any series fires, pending (for
    /// the longest-pending series) if any is pending, else what the poll itself showed.
    pub fn of(
        eval: &crate::eval::RuleEval,
        at: std::time::Duration,
        poll: &crate::eval::Poll,
    ) -> RuleState {
        use crate::eval::{Phase, Poll};
        let series = eval.series();
        if series.values().any(|s| s.phase == Phase::Firing) {
            return RuleState::Breached;
        }
        if let Some(since) = series.values().map(|s| s.since).min() {
            return RuleState::Pending {
                for_s: at.saturating_sub(since).as_secs_f64(),
                of_s: eval.params().for_.as_secs_f64(),
            };
        }
        match poll {
            Poll::Failed => RuleState::QueryError,
            Poll::Samples(s) if s.iter().all(|s| s.value.is_nan()) => RuleState::NoData,
            Poll::Samples(_) => RuleState::Ok,
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
    },
    Pending {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        for_s: f64,
    },
    Resolved {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        was: &'static str,
        breached_for_s: f64,
    },
    Fired {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        breached_for_s: f64,
        action: &'static str,
    },
    /// A rule with `action: notify` fired; the watch goes on.
    Notify {
        rule: String,
        labels: Labels,
        #[serde(serialize_with = "float::option")]
        value: Option<f64>,
        threshold: String,
        breached_for_s: f64,
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
    Signal {
        signal: String,
        during_action: bool,
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
            Event::ActionStarted { .. } => "action_started",
            Event::ActionFinished { .. } => "action_finished",
            Event::Signal { .. } => "signal",
            Event::WatchFinished { .. } => "watch_finished",
        }
    }
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

/// `--events FILE|-`: one JSON object per line for each state change, action and
/// outcome (polls are left out). Each line is flushed as written, so a consumer
/// tailing the file sees events as they happen.
pub struct JsonLines {
    out: Box<dyn Write + Send>,
}

impl JsonLines {
    pub fn open(target: &str) -> std::io::Result<JsonLines> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(target)?,
            )
        };
        Ok(JsonLines { out })
    }
}

#[derive(Serialize)]
struct Stamped<'a> {
    time: String,
    unix_ms: i64,
    #[serde(flatten)]
    event: &'a Event,
}

impl Sink for JsonLines {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        if matches!(event, Event::Poll { .. }) {
            return;
        }
        let line = Stamped {
            time: rfc3339_ms(at_ms),
            unix_ms: at_ms,
            event,
        };
        if let Ok(json) = serde_json::to_string(&line) {
            let _ = writeln!(self.out, "{json}");
            let _ = self.out.flush();
        }
    }
}

fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

fn value_text(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), float::text)
}

/// The log: every event as a structured `tracing` record with a readable message.
pub struct LogSink;

impl Sink for LogSink {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        use tracing::{error, info, warn};
        let ev = event.name();
        match event {
            Event::WatchStarted {
                rules_file,
                prometheus,
                duration_s,
                max_blind_s,
                dry_run,
                vars,
                rules,
            } => info!(
                event = ev, rules_file = %rules_file, prometheus = %prometheus, duration = %secs(*duration_s),
                max_blind = %secs(*max_blind_s), dry_run, vars = ?vars,
                "watch started: {} rule(s) for {}", rules.len(), secs(*duration_s)
            ),
            Event::Poll {
                rule,
                error: Some(e),
                ..
            } => warn!(
                event = "query_failed", rule = %rule, error = %e,
                "query failed; the rule keeps its state (errors never count as breaches)"
            ),
            Event::Poll {
                rule,
                samples,
                warnings,
                state,
                value,
                ..
            } => {
                for w in warnings {
                    warn!(event = "query_warning", rule = %rule, warning = %w, "Prometheus attached a warning to the result (it may be partial)");
                }
                info!(
                    event = ev, rule = %rule, series = samples.iter().filter(|s| s.value.is_some()).count(),
                    value = %value_text(*value), state = %state,
                    "{rule}: {} {state}", value_text(*value)
                )
            }
            Event::Pending {
                rule,
                labels,
                value,
                threshold,
                for_s,
            } => info!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_text(*value), threshold = %threshold,
                r#for = %secs(*for_s), unix_ms = at_ms,
                "breached ({} {threshold}): pending until it has lasted {}", value_text(*value), secs(*for_s)
            ),
            Event::Resolved {
                rule,
                labels,
                value,
                threshold,
                was,
                breached_for_s,
            } => info!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_text(*value), threshold = %threshold,
                was = %was, breached_for = %secs(*breached_for_s), unix_ms = at_ms,
                "no longer breached after {}", secs(*breached_for_s)
            ),
            Event::Fired {
                rule,
                labels,
                value,
                threshold,
                breached_for_s,
                action,
            } => warn!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_text(*value), threshold = %threshold,
                breached_for = %secs(*breached_for_s), action = %action, unix_ms = at_ms,
                "breached ({} {threshold}) at every poll for {}: {action}", value_text(*value), secs(*breached_for_s)
            ),
            Event::Notify {
                rule,
                labels,
                value,
                threshold,
                breached_for_s,
            } => warn!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_text(*value), threshold = %threshold,
                breached_for = %secs(*breached_for_s),
                "notification: {rule} is breached ({} {threshold}); the watch goes on", value_text(*value)
            ),
            Event::PauseSkipped { rule, paused_by } => info!(
                event = ev, rule = %rule, paused_by = %paused_by, "already paused; the pause command runs once per watch"
            ),
            Event::ActionStarted {
                action,
                rule,
                argv,
                timeout_s,
                dry_run: true,
            } => warn!(
                event = "action_skipped", action = %action, rule = %rule, argv = ?argv, timeout = %secs(*timeout_s),
                "dry run: would run the {action} command"
            ),
            Event::ActionStarted {
                action,
                rule,
                argv,
                timeout_s,
                ..
            } => warn!(
                event = ev, action = %action, rule = %rule, argv = ?argv, timeout = %secs(*timeout_s),
                "running the {action} command"
            ),
            Event::ActionFinished {
                action,
                rule,
                status,
                succeeded: true,
                duration_s,
                ..
            } => info!(
                event = ev, action = %action, rule = %rule, status = %status, duration = %secs(*duration_s),
                "{action} command {status}"
            ),
            Event::ActionFinished {
                action,
                rule,
                status,
                duration_s,
                output_tail,
                ..
            } => error!(
                event = ev, action = %action, rule = %rule, status = %status, duration = %secs(*duration_s),
                output_tail = ?output_tail, "{action} command {status}"
            ),
            Event::Signal {
                signal,
                during_action: true,
            } => warn!(
                event = ev, signal = %signal, "signal received while a command runs: letting it finish, then stopping"
            ),
            Event::Signal { signal, .. } => warn!(
                event = ev, signal = %signal, "signal received: stopping the watch; no command will run"
            ),
            Event::WatchFinished {
                outcome,
                exit_code,
                detail,
                ..
            } => {
                if matches!(*outcome, "healthy" | "rolled_back" | "paused") {
                    info!(event = ev, outcome = %outcome, exit_code, "{detail}")
                } else {
                    error!(event = ev, outcome = %outcome, exit_code, "{detail}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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

    #[test]
    fn events_with_infinite_values_do_not_read_as_no_data() {
        let fired = Event::Fired {
            rule: "r".into(),
            labels: Labels::new(),
            value: Some(f64::INFINITY),
            threshold: "> 0.5".into(),
            breached_for_s: 0.0,
            action: "rollback",
        };
        assert_eq!(serde_json::to_value(&fired).unwrap()["value"], "+Inf");
        let pending = Event::Pending {
            rule: "r".into(),
            labels: Labels::new(),
            value: Some(f64::NEG_INFINITY),
            threshold: "< 0".into(),
            for_s: 60.0,
        };
        assert_eq!(serde_json::to_value(&pending).unwrap()["value"], "-Inf");
        let poll = Event::Poll {
            rule: "r".into(),
            samples: vec![SeriesValue {
                labels: Labels::new(),
                value: Some(f64::INFINITY),
            }],
            error: None,
            warnings: vec![],
            state: RuleState::Ok,
            value: Some(f64::INFINITY),
        };
        let v = serde_json::to_value(&poll).unwrap();
        assert_eq!(v["value"], "+Inf");
        assert_eq!(v["samples"][0]["value"], "+Inf");
        // Through the --events line format too.
        let line = serde_json::to_string(&Stamped {
            time: rfc3339_ms(0),
            unix_ms: 0,
            event: &fired,
        })
        .unwrap();
        assert!(line.contains(r#""value":"+Inf""#), "{line}");
        assert_eq!(value_text(Some(f64::INFINITY)), "+Inf");
        assert_eq!(value_text(None), "no data");
    }
}
