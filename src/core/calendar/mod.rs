//! Deploy calendars: when changes may go out, and when they must not.
//!
//! A calendar file names a time zone, the weekly windows inside which deploys are
//! allowed, and the freezes during which they are not (see `rules/calendar.yaml`).
//! Loading follows the rule files' two steps: `core::yaml` parses the text into a
//! spanned tree, and `load` walks it, validating every key and value and
//! collecting *all* mistakes, each with its file:line:column. A misspelt key is an
//! error, never ignored: a freeze that silently does not apply is exactly the failure a
//! gate exists to prevent.
//!
//! Everything here is in the calendar's *local wall-clock time*: windows are "Thursday
//! 02:00 to 06:00 in New York", freezes are whole local days. Turning wall-clock times
//! into instants (and the DST questions that raises) is `decide`'s job, done with jiff.

pub mod decide;
mod load;

pub use load::{load, load_str};

use crate::core::yaml::diag::{Diagnostic, Severity};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use std::fmt;

/// A validated calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// The zone every time and date in the file is read in.
    pub timezone: TimeZone,
    /// The zone as written (`America/New_York`, `-05:00`), for messages.
    pub timezone_name: String,
    /// Deploys go only inside one of these. Empty when the file has no `windows:`,
    /// which means any time outside a freeze.
    pub windows: Vec<Window>,
    pub freezes: Vec<Freeze>,
}

/// A weekly deploy window in local wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub name: String,
    /// The days the window *opens* on, in week order, without repeats.
    pub days: Vec<Weekday>,
    pub from: Time,
    /// When `to <= from` the window closes on the next day (it crosses midnight);
    /// `from == to` is a whole day.
    pub to: Time,
}

impl Window {
    pub fn crosses_midnight(&self) -> bool {
        self.to <= self.from
    }

    /// "Thu, Sun 02:00-06:00", for messages.
    pub fn describe(&self) -> String {
        let days: Vec<&str> = self.days.iter().map(|d| day_name(*d)).collect();
        format!(
            "{} {}-{}{}",
            days.join(", "),
            self.from.strftime("%H:%M"),
            self.to.strftime("%H:%M"),
            if self.crosses_midnight() {
                " next day"
            } else {
                ""
            }
        )
    }
}

/// A change freeze: whole local days on which deploys must not go out.
#[derive(Debug, Clone, PartialEq)]
pub struct Freeze {
    pub name: String,
    pub dates: FreezeDates,
    /// Whether an emergency change may bypass it (the default).
    pub emergency: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreezeDates {
    /// The last N days of every month (1..=28, so every month has them).
    LastDaysOfMonth(i8),
    /// From one date to another, both included.
    Range { from: Date, to: Date },
}

impl Freeze {
    /// The stretch of this freeze that contains `date` (first and last day, both
    /// included), or None when `date` is not frozen by it.
    pub fn covering(&self, date: Date) -> Option<(Date, Date)> {
        match self.dates {
            FreezeDates::LastDaysOfMonth(n) => {
                let days = i16::from(date.days_in_month());
                let first_day = (days - i16::from(n) + 1).clamp(1, days + 1);
                if i16::from(date.day()) < first_day {
                    return None;
                }
                let first = Date::new(date.year(), date.month(), first_day as i8).ok()?;
                Some((first, date.last_of_month()))
            }
            FreezeDates::Range { from, to } => (from <= date && date <= to).then_some((from, to)),
        }
    }

    /// "the last 7 days of every month", "2026-12-20 to 2027-01-04", for messages.
    pub fn describe(&self) -> String {
        match self.dates {
            FreezeDates::LastDaysOfMonth(1) => "the last day of every month".to_string(),
            FreezeDates::LastDaysOfMonth(n) => format!("the last {n} days of every month"),
            FreezeDates::Range { from, to } => format!("{from} to {to}"),
        }
    }
}

/// The three-letter names a calendar file uses for days.
pub fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const TOP_KEYS: &[&str] = &["timezone", "windows", "freezes"];
const WINDOW_KEYS: &[&str] = &["name", "days", "from", "to"];
const FREEZE_KEYS: &[&str] = &["name", "last_days_of_month", "from", "to", "emergency"];

/// Whether a YAML file is meant as a calendar rather than a rule file: it has a
/// top-level `timezone:`, `windows:` or `freezes:` and neither `watch:` nor `rules:`.
/// Judged on the text, so a calendar with a YAML syntax error is still recognised
/// (and its error reported as a calendar's).
pub fn looks_like_calendar(text: &str) -> bool {
    let top_keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']))
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, _)| k.trim().trim_matches(['"', '\'']))
        })
        .collect();
    top_keys.iter().any(|k| TOP_KEYS.contains(k))
        && !top_keys.iter().any(|k| ["watch", "rules"].contains(k))
}

/// Everything wrong with a calendar file (errors, and the warnings found alongside).
#[derive(Debug, Clone)]
pub struct CalendarError {
    pub path: String,
    pub source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl CalendarError {
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{}", d.render(&self.path, &self.source_text))?;
        }
        let n = self.error_count();
        write!(
            f,
            "{}: {n} error{} found in the calendar; no decision was made",
            self.path,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for CalendarError {}

/// A loaded calendar and the warnings about it.
pub type Loaded = (Calendar, Vec<Diagnostic>);

#[cfg(test)]
mod tests;
