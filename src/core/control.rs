//! What a person may order a running watch to do, and what the orders so far add up
//! to (issue 22): roll back now, pause now, hold automatic actions for a while,
//! release a hold, extend the watch, end it as healthy.
//!
//! Why here, in the pure core: every face (the agent's API, `rollwatch ctl`, the page,
//! `watch`'s control socket) checks an order through `Order::parse` and `checked`, and
//! every runtime that resumes a watch (a restart, an adoption) folds the orders it has
//! stored through `ControlState::fold`, the same code the live loop applies one order
//! at a time (`ControlState::apply`). A hold therefore survives a restart because it is
//! recomputed from the record, never remembered apart from it.
//!
//! Every order names who gave it and why: the record an emergency change needs. A
//! manual action is decided by a person, never by a rule: its decider is written
//! `manual:NAME` (`decider`), which no rule name can be (rule names allow letters,
//! digits, `-`, `_` and `.`).

use std::fmt;
use std::time::Duration;

/// The longest reason kept (characters): a sentence or two, not a document.
pub const MAX_REASON: usize = 500;
/// The longest name of a person (characters).
pub const MAX_WHO: usize = 64;
/// The longest a watch may be extended to in all (its duration plus every extension).
pub const MAX_TOTAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the decider of a manual action starts with.
pub const MANUAL_PREFIX: &str = "manual:";

/// The decider of a manual action by `who`, where a rule's name stands otherwise.
pub fn decider(who: &str) -> String {
    format!("{MANUAL_PREFIX}{who}")
}

/// The person behind a decider, if a person decided (`decider`'s inverse).
pub fn manual_by(decider: &str) -> Option<&str> {
    decider.strip_prefix(MANUAL_PREFIX)
}

/// What a person orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Run the watch's rollback command now.
    Rollback,
    /// Run the watch's pause command now.
    Pause,
    /// Suspend automatic actions for this long (capped at the watch's end).
    Hold(Duration),
    /// End a hold now.
    Release,
    /// Add this much to the watch's duration.
    Extend(Duration),
    /// End the watch now as healthy: the person's verdict.
    End,
    /// A newer watch with the same `watch.key` was created: end this one as
    /// `superseded`. Given by the store with that creation, never by a person
    /// (`parse` refuses it; `stored` reads it back).
    Supersede,
}

impl Order {
    /// Its name in the API, the command line, events and the store.
    pub fn name(&self) -> &'static str {
        match self {
            Order::Rollback => "rollback",
            Order::Pause => "pause",
            Order::Hold(_) => "hold",
            Order::Release => "release",
            Order::Extend(_) => "extend",
            Order::End => "end",
            Order::Supersede => "supersede",
        }
    }

    /// An order as the store keeps it: what `parse` accepts, and `supersede`.
    pub fn stored(name: &str, duration: Option<Duration>) -> Result<Order, ControlError> {
        match (name, duration) {
            ("supersede", None) => Ok(Order::Supersede),
            _ => Order::parse(name, duration),
        }
    }

    /// Every name, for errors and `--help`.
    pub const NAMES: [&'static str; 6] = ["rollback", "pause", "hold", "release", "extend", "end"];

    /// The order `name` stands for, with its duration (`hold` and `extend` need one,
    /// the others take none).
    pub fn parse(name: &str, duration: Option<Duration>) -> Result<Order, ControlError> {
        let order = match (name, duration) {
            ("rollback", None) => Order::Rollback,
            ("pause", None) => Order::Pause,
            ("release", None) => Order::Release,
            ("end", None) => Order::End,
            ("hold", Some(d)) => Order::Hold(d),
            ("extend", Some(d)) => Order::Extend(d),
            ("hold" | "extend", None) => {
                return Err(ControlError::Invalid(format!(
                    "`{name}` needs a duration (`for`, e.g. 15m)"
                )))
            }
            ("rollback" | "pause" | "release" | "end", Some(_)) => {
                return Err(ControlError::Invalid(format!("`{name}` takes no duration")))
            }
            _ => {
                return Err(ControlError::Invalid(format!(
                    "unknown action {name:?}: use one of {}",
                    Order::NAMES.join(", ")
                )))
            }
        };
        if let Order::Hold(d) | Order::Extend(d) = order {
            if d.is_zero() {
                return Err(ControlError::Invalid(format!(
                    "`{name}` needs a duration above zero"
                )));
            }
            if d > MAX_TOTAL {
                return Err(ControlError::Invalid(format!(
                    "`{name}` for more than {} days is refused",
                    MAX_TOTAL.as_secs() / 86400
                )));
            }
        }
        Ok(order)
    }

    /// Its duration (`hold`, `extend`), if any.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Order::Hold(d) | Order::Extend(d) => Some(*d),
            _ => None,
        }
    }

    /// Whether it runs a command (at most once per watch and kind, as a rule's would).
    pub fn acts(&self) -> bool {
        matches!(self, Order::Rollback | Order::Pause)
    }
}

/// An order with who gave it, why, and when (Unix ms on the watch's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub order: Order,
    pub who: String,
    pub reason: String,
    pub at_ms: i64,
}

/// Why an order is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The order itself is malformed (400).
    #[error("{0}")]
    Invalid(String),
    /// The order cannot apply to the watch as it is (409).
    #[error("{0}")]
    Refused(String),
}

/// Characters that show as nothing or reorder text (zero-width, bidi overrides, line
/// and paragraph separators, the byte-order mark): a name or reason holding one could
/// read as something else in a log or on the page.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Who an order made by rollwatch itself (a `supersede`) is recorded as; no person
/// may give an order under this name.
pub const ROLLWATCH: &str = "rollwatch";

/// A name or reason as given: trimmed, not empty, no control characters (a newline
/// would forge a log line), at most `max` characters.
fn text(what: &str, s: &str, max: usize) -> Result<String, ControlError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ControlError::Invalid(format!(
            "a {what} is required (the record an emergency change needs)"
        )));
    }
    if t.chars().any(|c| c.is_control() || invisible(c)) {
        return Err(ControlError::Invalid(format!(
            "the {what} holds a control character (a newline or tab?); write it on one line"
        )));
    }
    if t.chars().count() > max {
        return Err(ControlError::Invalid(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(t.to_string())
}

impl Control {
    /// An order as a person gave it, checked: a reason and a name are required, and
    /// the name is never `rollwatch`'s own.
    pub fn new(order: Order, who: &str, reason: &str, at_ms: i64) -> Result<Control, ControlError> {
        let who = text("name", who, MAX_WHO)?;
        if who.eq_ignore_ascii_case(ROLLWATCH) || order == Order::Supersede {
            return Err(ControlError::Invalid(format!(
                "`{ROLLWATCH}` is rollwatch's own name: give yours"
            )));
        }
        Ok(Control {
            order,
            who,
            reason: text("reason", reason, MAX_REASON)?,
            at_ms,
        })
    }

    /// The `supersede` a newer watch of the same key gives (`reason` says which).
    pub fn supersede(reason: &str, at_ms: i64) -> Control {
        Control {
            order: Order::Supersede,
            who: ROLLWATCH.to_string(),
            reason: reason.to_string(),
            at_ms,
        }
    }

    /// One line for logs and notifications: `hold for 15m by alice: "reason"`.
    pub fn describe(&self) -> String {
        let what = match self.order.duration() {
            Some(d) => format!(
                "{} for {}",
                self.order.name(),
                humantime::format_duration(d)
            ),
            None => self.order.name().to_string(),
        };
        format!("{what} by {}: {:?}", self.who, self.reason)
    }
}

/// A hold in force: until when (Unix ms), by whom, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub until_ms: i64,
    pub who: String,
    pub reason: String,
}

/// What the orders applied so far add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlState {
    /// The hold in force, if any (it may have run out: `held_at`).
    pub hold: Option<Hold>,
    /// How much the watch was extended in all.
    pub extended: Duration,
    /// Who ended the watch (a person's `end`, or a `supersede`), and why.
    pub ended: Option<Ended>,
}

/// How an order ended the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// By a `supersede` (a newer watch of the same key), not a person's `end`.
    pub superseded: bool,
    pub who: String,
    pub reason: String,
}

impl ControlState {
    /// The state after `controls`, in order, on a watch of `duration` created at
    /// `created_ms`: what a restart recomputes from the stored record. Orders that
    /// were refused when given are not in the record.
    pub fn fold<'a>(
        controls: impl IntoIterator<Item = &'a Control>,
        created_ms: i64,
        duration: Duration,
    ) -> ControlState {
        let mut s = ControlState::default();
        for c in controls {
            // (Refusals cannot be in the record; an order that no longer applies, such
            // as a second end, changes nothing.)
            let _ = s.apply(c, created_ms, duration);
        }
        s
    }

    /// When the watch ends (Unix ms), with its extensions.
    pub fn end_ms(&self, created_ms: i64, duration: Duration) -> i64 {
        created_ms.saturating_add((duration + self.extended).as_millis() as i64)
    }

    /// The hold in force at `now_ms`, if any.
    pub fn held_at(&self, now_ms: i64) -> Option<&Hold> {
        self.hold.as_ref().filter(|h| now_ms < h.until_ms)
    }

    /// Checks `c` against this state (at `c.at_ms`) and applies it. A refused order
    /// changes nothing. `rollback` and `pause` change no state here: the command's
    /// claim is what records them, once.
    pub fn apply(
        &mut self,
        c: &Control,
        created_ms: i64,
        duration: Duration,
    ) -> Result<(), ControlError> {
        if let Some(e) = &self.ended {
            return Err(ControlError::Refused(format!(
                "the watch was already ended by {}",
                e.who
            )));
        }
        let end_ms = self.end_ms(created_ms, duration);
        if c.at_ms >= end_ms {
            return Err(ControlError::Refused("the watch has already ended".into()));
        }
        match c.order {
            Order::Rollback | Order::Pause => {}
            Order::Hold(d) => {
                // At most until the watch's end.
                let until = c.at_ms.saturating_add(d.as_millis() as i64).min(end_ms);
                self.hold = Some(Hold {
                    until_ms: until,
                    who: c.who.clone(),
                    reason: c.reason.clone(),
                });
            }
            Order::Release => {
                if self.held_at(c.at_ms).is_none() {
                    return Err(ControlError::Refused("the watch is not held".into()));
                }
                self.hold = None;
            }
            Order::Extend(d) => {
                let total = duration + self.extended + d;
                if total > MAX_TOTAL {
                    return Err(ControlError::Refused(format!(
                        "the watch would last more than {} days in all",
                        MAX_TOTAL.as_secs() / 86400
                    )));
                }
                self.extended += d;
            }
            Order::End | Order::Supersede => {
                self.ended = Some(Ended {
                    superseded: c.order == Order::Supersede,
                    who: c.who.clone(),
                    reason: c.reason.clone(),
                })
            }
        }
        Ok(())
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn c(order: Order, at_ms: i64) -> Control {
        Control::new(order, "alice", "INC-42", at_ms).unwrap()
    }

    #[test]
    fn orders_parse_with_exactly_the_durations_they_take() {
        let rows: &[(&str, Option<Duration>, Result<Order, &str>)] = &[
            ("rollback", None, Ok(Order::Rollback)),
            ("pause", None, Ok(Order::Pause)),
            ("release", None, Ok(Order::Release)),
            ("end", None, Ok(Order::End)),
            ("hold", Some(MIN), Ok(Order::Hold(MIN))),
            ("extend", Some(MIN), Ok(Order::Extend(MIN))),
            ("hold", None, Err("needs a duration")),
            ("extend", Some(Duration::ZERO), Err("above zero")),
            ("rollback", Some(MIN), Err("takes no duration")),
            ("hold", Some(MAX_TOTAL + MIN), Err("more than 7 days")),
            ("Rollback", None, Err("unknown action \"Rollback\"")),
            ("supersede", None, Err("unknown action \"supersede\"")),
            ("--rollback", None, Err("unknown action")),
        ];
        for (name, d, want) in rows {
            let got = Order::parse(name, *d);
            match want {
                Ok(o) => assert_eq!(got, Ok(*o), "{name}"),
                Err(e) => {
                    let msg = got.unwrap_err().to_string();
                    assert!(msg.contains(e), "{name}: {msg}");
                }
            }
        }
    }

    #[test]
    fn a_name_and_a_reason_are_required_on_one_line() {
        let rows = [
            ("alice", "INC-1", None),
            (" alice ", " INC-1 ", None),
            ("", "INC-1", Some("a name is required")),
            ("alice", "   ", Some("a reason is required")),
            ("alice", "a\nforged line", Some("control character")),
            ("al\u{1b}[31mice", "x", Some("control character")),
            ("alice", "ok\u{202E}gnp.exe", Some("control character")),
            ("ali\u{200B}ce", "x", Some("control character")),
            ("rollwatch", "x", Some("rollwatch's own name")),
            ("RollWatch", "x", Some("rollwatch's own name")),
        ];
        for (who, reason, err) in rows {
            let got = Control::new(Order::End, who, reason, 0);
            match err {
                None => {
                    let got = got.unwrap();
                    assert_eq!((got.who.as_str(), got.reason.as_str()), ("alice", "INC-1"));
                }
                Some(e) => assert!(
                    got.unwrap_err().to_string().contains(e),
                    "{who:?} {reason:?}"
                ),
            }
        }
        let long = "x".repeat(MAX_REASON + 1);
        assert!(Control::new(Order::End, "a", &long, 0).is_err());
        assert!(Control::new(Order::End, "a", &long[1..], 0).is_ok());
    }

    #[test]
    fn a_hold_is_capped_at_the_end_and_a_release_ends_it() {
        let d = 10 * MIN;
        let mut s = ControlState::default();
        s.apply(&c(Order::Hold(60 * MIN), 60_000), 0, d).unwrap();
        assert_eq!(
            s.hold.as_ref().unwrap().until_ms,
            600_000,
            "capped at the end"
        );
        assert!(s.held_at(599_999).is_some());
        assert!(s.held_at(600_000).is_none());
        s.apply(&c(Order::Release, 120_000), 0, d).unwrap();
        assert!(s.held_at(120_001).is_none());
        let again = s.apply(&c(Order::Release, 130_000), 0, d);
        assert!(matches!(again, Err(ControlError::Refused(_))));
    }

    #[test]
    fn an_extension_moves_the_end_and_a_hold_may_then_reach_it() {
        let d = 10 * MIN;
        let mut s = ControlState::default();
        s.apply(&c(Order::Extend(5 * MIN), 1000), 0, d).unwrap();
        assert_eq!(s.end_ms(0, d), 900_000);
        s.apply(&c(Order::Hold(60 * MIN), 700_000), 0, d).unwrap();
        assert_eq!(s.hold.unwrap().until_ms, 900_000);
        let late = ControlState::default().apply(&c(Order::Hold(MIN), 600_000), 0, d);
        assert!(
            matches!(late, Err(ControlError::Refused(_))),
            "after the end"
        );
        let mut s = ControlState::default();
        let too_long = s.apply(&c(Order::Extend(MAX_TOTAL), 0), 0, d);
        assert!(matches!(too_long, Err(ControlError::Refused(_))));
        assert_eq!(
            s.extended,
            Duration::ZERO,
            "a refused order changes nothing"
        );
    }

    #[test]
    fn nothing_applies_after_a_person_ended_the_watch() {
        let d = 10 * MIN;
        let mut s = ControlState::default();
        s.apply(&c(Order::End, 1000), 0, d).unwrap();
        for o in [
            Order::Hold(MIN),
            Order::Extend(MIN),
            Order::Rollback,
            Order::End,
        ] {
            assert!(s.apply(&c(o, 2000), 0, d).is_err(), "{o}");
        }
    }

    #[test]
    fn folding_the_record_gives_what_applying_each_order_gave() {
        let d = 10 * MIN;
        let record = [
            c(Order::Hold(5 * MIN), 10_000),
            c(Order::Extend(3 * MIN), 20_000),
            c(Order::Release, 30_000),
            c(Order::Hold(2 * MIN), 40_000),
        ];
        let mut live = ControlState::default();
        for o in &record {
            live.apply(o, 0, d).unwrap();
        }
        assert_eq!(ControlState::fold(&record, 0, d), live);
        assert_eq!(live.hold.unwrap().until_ms, 160_000);
        assert_eq!(live.extended, 3 * MIN);
    }

    #[test]
    fn a_persons_decider_is_no_rule_name() {
        assert_eq!(decider("alice"), "manual:alice");
        assert_eq!(manual_by("manual:alice"), Some("alice"));
        assert_eq!(manual_by("error-ratio"), None);
    }
}
