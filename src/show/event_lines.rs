//! A watch as lines: the log (`LogSink`, one structured `tracing` record per event)
//! and `--events` (`JsonLines`, one JSON object per line for tools).
//!
//! Both are sinks on the event bus (`core::events`): the loop describes each decision
//! once, and these decide how it reads. The agent has its own log sink (it tags every
//! line with the watch's id); a watch on a terminal may show the live view instead of
//! `LogSink`.

use crate::core::events::{float, rfc3339_ms, secs, Event, Sink};
use crate::core::series::Labels;
use serde::Serialize;
use std::io::Write;

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

/// ` (baseline=120 ratio=0.5)`, or nothing when there is no evidence.
fn evidence_suffix(e: &crate::core::events::Evidence) -> String {
    if e.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.text())
    }
}

fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

/// A value in a structured field of a log record: exact, as in JSON (the message
/// beside it shows `value_text`).
fn value_exact(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), float::exact)
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
                evidence,
                insufficient,
                ..
            } => {
                for w in warnings {
                    warn!(event = "query_warning", rule = %rule, warning = %w, "Prometheus attached a warning to the result (it may be partial)");
                }
                let why = evidence_suffix(evidence);
                info!(
                    event = ev, rule = %rule, series = samples.iter().filter(|s| s.value.is_some()).count(),
                    value = %value_exact(*value), state = %state, insufficient = *insufficient, evidence = %evidence.text(),
                    "{rule}: {} {state}{why}", value_text(*value)
                )
            }
            Event::Pending {
                rule,
                labels,
                value,
                threshold,
                for_s,
                since_ms,
                evidence,
            } => {
                let since = since_ms.unwrap_or(at_ms).min(at_ms);
                // Where the breach began in the data, when before this poll.
                let began = if since < at_ms {
                    format!(
                        " from {:.3}s before this poll",
                        (at_ms - since) as f64 / 1000.0
                    )
                } else {
                    String::new()
                };
                info!(
                    event = ev, rule = %rule, labels = %labels_json(labels), value = %value_exact(*value), threshold = %threshold,
                    r#for = %secs(*for_s), unix_ms = at_ms, since_ms = since, evidence = %evidence.text(),
                    "breached ({} {threshold}){began}: pending until it has lasted {}{}", value_text(*value), secs(*for_s), evidence_suffix(evidence)
                )
            }
            Event::Resolved {
                rule,
                labels,
                value,
                threshold,
                was,
                breached_for_s,
                evidence,
            } => info!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_exact(*value), threshold = %threshold,
                was = %was, breached_for = %secs(*breached_for_s), unix_ms = at_ms, evidence = %evidence.text(),
                "no longer breached after {}{}", secs(*breached_for_s), evidence_suffix(evidence)
            ),
            Event::Fired {
                rule,
                labels,
                value,
                threshold,
                breached_for_s,
                action,
                evidence,
            } => warn!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_exact(*value), threshold = %threshold,
                breached_for = %secs(*breached_for_s), action = %action, unix_ms = at_ms, evidence = %evidence.text(),
                "breached ({} {threshold}) for {}: {action}{}", value_text(*value), secs(*breached_for_s), evidence_suffix(evidence)
            ),
            Event::Notify {
                rule,
                labels,
                value,
                threshold,
                breached_for_s,
                evidence,
            } => warn!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_exact(*value), threshold = %threshold,
                breached_for = %secs(*breached_for_s), evidence = %evidence.text(),
                "notification: {rule} is breached ({} {threshold}); the watch goes on", value_text(*value)
            ),
            Event::Silenced {
                rule,
                silence_id: Some(id),
                ends_at,
                ..
            } => info!(
                event = ev, rule = %rule, silence_id = %id, ends_at = %ends_at,
                "Alertmanager silence {id} created until {ends_at}"
            ),
            Event::Silenced { rule, error, .. } => warn!(
                event = ev, rule = %rule, error = %error.as_deref().unwrap_or(""),
                "the Alertmanager silence was not created: {}", error.as_deref().unwrap_or("")
            ),
            Event::PauseSkipped { rule, paused_by } => info!(
                event = ev, rule = %rule, paused_by = %paused_by, "already paused; the pause command runs once per watch"
            ),
            Event::Manual { .. } => warn!(
                event = ev,
                "{}",
                crate::core::events::manual_text(event).unwrap_or_default()
            ),
            Event::HeldBack {
                rule,
                action,
                held_by,
                until_ms,
                ..
            } => warn!(
                event = ev, rule = %rule, action = %action, held_by = %held_by,
                "rule `{rule}` fired during {held_by}'s hold: no {action} now; it acts at {} if it still fires then",
                crate::core::events::rfc3339_ms(*until_ms)
            ),
            Event::Succeeds { .. } => info!(
                event = ev,
                "{}",
                crate::core::events::manual_text(event).unwrap_or_default()
            ),
            Event::PreExisting { rule, mode, .. } => warn!(
                event = ev, rule = %rule, mode = %mode,
                "{}",
                crate::core::events::pre_existing_text(event).unwrap_or_default()
            ),
            Event::PreExistingOver {
                rule,
                labels,
                value,
            } => info!(
                event = ev, rule = %rule, labels = %labels_json(labels), value = %value_exact(*value),
                "{}",
                crate::core::events::pre_existing_text(event).unwrap_or_default()
            ),
            Event::HoldEnded { released_by } => match released_by {
                Some(by) => {
                    info!(event = ev, released_by = %by, "hold released by {by}; automatic actions resume")
                }
                None => info!(event = ev, "the hold ran out; automatic actions resume"),
            },
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
                if matches!(
                    *outcome,
                    "healthy" | "rolled_back" | "paused" | "declared_healthy" | "superseded"
                ) {
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
    use crate::core::events::{RuleState, SeriesValue};

    #[test]
    fn events_with_infinite_values_do_not_read_as_no_data() {
        let fired = Event::Fired {
            rule: "r".into(),
            labels: Labels::new(),
            value: Some(f64::INFINITY),
            threshold: "> 0.5".into(),
            breached_for_s: 0.0,
            action: "rollback",
            evidence: Default::default(),
        };
        assert_eq!(serde_json::to_value(&fired).unwrap()["value"], "+Inf");
        let pending = Event::Pending {
            rule: "r".into(),
            labels: Labels::new(),
            value: Some(f64::NEG_INFINITY),
            threshold: "< 0".into(),
            for_s: 60.0,
            since_ms: None,
            evidence: Default::default(),
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
            reference: None,
            insufficient: 0,
            evidence: Default::default(),
            windows: None,
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

    #[test]
    fn a_log_message_shows_a_few_digits_and_its_field_and_events_the_exact_value() {
        let noisy = 0.22999999999999998;
        assert_eq!(value_text(Some(noisy)), "0.23");
        assert_eq!(value_exact(Some(noisy)), "0.22999999999999998");
        let fired = Event::Fired {
            rule: "r".into(),
            labels: Labels::new(),
            value: Some(noisy),
            threshold: "> 0.2".into(),
            breached_for_s: 0.0,
            action: "rollback",
            evidence: Default::default(),
        };
        assert_eq!(serde_json::to_value(&fired).unwrap()["value"], noisy);
    }
}
