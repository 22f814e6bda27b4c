//! What a calendar is: windows, freezes and the error a calendar file can raise.
//!
//! The model lives apart from `mod.rs` so that the loader (`load.rs`) and the decision
//! (`decide.rs`) take it from a sibling, not from the module that re-exports them.

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

pub(super) const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
pub(super) const TOP_KEYS: &[&str] = &["timezone", "windows", "freezes"];
pub(super) const WINDOW_KEYS: &[&str] = &["name", "days", "from", "to"];
pub(super) const FREEZE_KEYS: &[&str] = &["name", "last_days_of_month", "from", "to", "emergency"];

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
