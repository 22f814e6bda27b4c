//! Deploy calendars: when changes may go out, and when they must not.
//!
//! A calendar file names a time zone, the weekly windows inside which deploys are
//! allowed, and the freezes during which they are not (see `rules/calendar.yaml`).
//! Loading follows the rule files' two steps: `core::yaml` parses the text into a
//! spanned tree, and this module walks it, validating every key and value and
//! collecting *all* mistakes, each with its file:line:column. A misspelt key is an
//! error, never ignored: a freeze that silently does not apply is exactly the failure a
//! gate exists to prevent.
//!
//! Everything here is in the calendar's *local wall-clock time*: windows are "Thursday
//! 02:00 to 06:00 in New York", freezes are whole local days. Turning wall-clock times
//! into instants (and the DST questions that raises) is `decide`'s job, done with jiff.

pub mod decide;

use crate::core::yaml::diag::{did_you_mean, Diagnostic, Severity};
use crate::core::yaml::walk::{fields, string, Cx, Fields};
use crate::core::yaml::{self, Node, Pos, Value};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

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

/// Loads a calendar file.
pub fn load(path: &Path) -> Result<Loaded, CalendarError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&shown, &text),
        Err(e) => Err(CalendarError {
            path: shown,
            source_text: String::new(),
            diagnostics: vec![Diagnostic::error(
                format!("cannot read the calendar file: {e}"),
                None,
            )],
        }),
    }
}

/// Loads a calendar from its text; `path` is only used in messages.
pub fn load_str(path: &str, text: &str) -> Result<Loaded, CalendarError> {
    let mut cx = Cx {
        source: text,
        diags: Vec::new(),
    };
    let calendar = match yaml::parse(text) {
        Ok(root) => compile(&mut cx, &root),
        Err((msg, pos)) => {
            cx.diags
                .push(Diagnostic::error(format!("invalid YAML: {msg}"), pos));
            None
        }
    };
    match calendar {
        Some(c) if !cx.has_errors() => Ok((c, cx.diags)),
        _ => Err(CalendarError {
            path: path.into(),
            source_text: text.into(),
            diagnostics: cx.diags,
        }),
    }
}

fn compile(cx: &mut Cx<'_>, root: &Node) -> Option<Calendar> {
    if root.value == Value::Null {
        cx.diags.push(
            Diagnostic::error("the calendar file is empty", None).with_help(
                "a calendar has `timezone:`, and `windows:` and/or `freezes:`; see rules/calendar.yaml",
            ),
        );
        return None;
    }
    let top = fields(cx, root, "the calendar", TOP_KEYS)?;
    let timezone = match top.get("timezone") {
        Some(n) => compile_timezone(cx, n),
        None => {
            cx.error_help(
                "the calendar has no `timezone`",
                top.pos,
                "add e.g. `timezone: America/New_York` (an IANA name) or `timezone: \"-05:00\"`; windows and freezes are read in that zone",
            );
            None
        }
    };

    let mut names: BTreeMap<String, Pos> = BTreeMap::new();
    let windows = match top.get("windows") {
        None => Some(Vec::new()),
        Some(n) => match &n.value {
            Value::Seq(items) if items.is_empty() => {
                cx.error_help(
                    "`windows` is empty, so no deploy could ever go out",
                    n.pos,
                    "remove `windows:` to allow deploys at any time outside a freeze",
                );
                None
            }
            Value::Seq(items) => {
                let compiled: Vec<Option<Window>> = items
                    .iter()
                    .map(|item| compile_window(cx, item, &mut names))
                    .collect();
                compiled.into_iter().collect()
            }
            _ => {
                cx.error(
                    format!("`windows` must be a list of windows, found {}", n.kind()),
                    n.pos,
                );
                None
            }
        },
    };
    let freezes = match top.get("freezes") {
        None => Some(Vec::new()),
        Some(n) => match &n.value {
            Value::Null => Some(Vec::new()),
            Value::Seq(items) => {
                let compiled: Vec<Option<Freeze>> = items
                    .iter()
                    .map(|item| compile_freeze(cx, item, &mut names))
                    .collect();
                compiled.into_iter().collect()
            }
            _ => {
                cx.error(
                    format!("`freezes` must be a list of freezes, found {}", n.kind()),
                    n.pos,
                );
                None
            }
        },
    };
    if top.get("windows").is_none() && top.get("freezes").is_none() {
        cx.error_help(
            "the calendar has neither `windows` nor `freezes`, so it would allow every deploy",
            top.pos,
            "add `windows:` (deploys go only inside them) and/or `freezes:` (deploys never go inside them)",
        );
    }
    let (timezone_name, timezone) = timezone?;
    Some(Calendar {
        timezone,
        timezone_name,
        windows: windows?,
        freezes: freezes?,
    })
}

fn compile_timezone(cx: &mut Cx<'_>, node: &Node) -> Option<(String, TimeZone)> {
    let name = string(cx, node, "`timezone`")?;
    let name = name.trim().to_string();
    if name.starts_with(['+', '-']) {
        static PARSER: jiff::fmt::temporal::DateTimeParser =
            jiff::fmt::temporal::DateTimeParser::new();
        return match PARSER.parse_time_zone(&name) {
            Ok(tz) if in_use(&tz) => Some((name, tz)),
            Ok(_) => {
                cx.error_help(
                    format!("`{name}` is not an offset any place uses"),
                    node.pos,
                    "offsets in use run from -12:00 to +14:00",
                );
                None
            }
            Err(_) => {
                cx.error_help(
                    format!("invalid time zone offset `{name}`"),
                    node.pos,
                    "write a fixed offset as `-05:00` or `+05:30` (quote it in YAML), or better an IANA name such as `America/New_York`, which follows daylight saving time",
                );
                None
            }
        };
    }
    match TimeZone::get(&name) {
        Ok(tz) => Some((name, tz)),
        Err(_) => {
            let known: Vec<String> = jiff::tz::db()
                .available()
                .map(|n| n.as_str().to_string())
                .collect();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let help = match did_you_mean(&name, &known) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "use an IANA time zone name such as `America/New_York` or `Europe/Berlin`, or a fixed offset such as `-05:00`".to_string(),
            };
            cx.error_help(format!("unknown time zone `{name}`"), node.pos, help);
            None
        }
    }
}

/// Whether a fixed zone's offset is one the world uses (-12:00 to +14:00).
fn in_use(tz: &TimeZone) -> bool {
    let secs = tz.to_offset(jiff::Timestamp::UNIX_EPOCH).seconds();
    (-12 * 3600..=14 * 3600).contains(&secs)
}

/// The `name:` of a window or freeze: present, well-formed and unique in the file.
fn compile_name(
    cx: &mut Cx<'_>,
    f: &Fields,
    what: &str,
    names: &mut BTreeMap<String, Pos>,
) -> Option<String> {
    let Some(node) = f.get("name") else {
        cx.error_help(
            format!("a {what} has no `name`"),
            f.pos,
            format!("add e.g. `name: thursday-maintenance`; the gate's answer names the {what} it applied"),
        );
        return None;
    };
    let name = string(cx, node, &format!("a {what}'s name"))?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        cx.error(
            format!("invalid {what} name {name:?}: use letters, digits, `-`, `_` and `.`"),
            node.pos,
        );
        return None;
    }
    if let Some(first) = names.get(&name) {
        cx.error(
            format!(
                "duplicate name `{name}` (first used at line {}); windows and freezes need distinct names",
                first.line
            ),
            node.pos,
        );
        return None;
    }
    names.insert(name.clone(), node.pos);
    Some(name)
}

fn compile_window(
    cx: &mut Cx<'_>,
    node: &Node,
    names: &mut BTreeMap<String, Pos>,
) -> Option<Window> {
    let f = fields(cx, node, "a window", WINDOW_KEYS)?;
    let name = compile_name(cx, &f, "window", names);
    let label = name
        .clone()
        .map_or_else(|| format!("at line {}", f.pos.line), |n| format!("`{n}`"));
    let what = format!("window {label}");

    let days = match f.get("days") {
        None => {
            cx.error_help(
                format!("{what} has no `days`"),
                f.pos,
                "add the days it opens on, e.g. `days: [thu, sun]`",
            );
            None
        }
        Some(n) => compile_days(cx, n, &what),
    };
    let mut time = |key: &str, example: &str| match f.get(key) {
        None => {
            cx.error_help(
                format!("{what} has no `{key}`"),
                f.pos,
                format!("add e.g. `{key}: \"{example}\"` (local time in the calendar's zone)"),
            );
            None
        }
        Some(n) => compile_time(cx, n, &format!("the `{key}` of {what}")),
    };
    let from = time("from", "02:00");
    let to = time("to", "06:00");
    Some(Window {
        name: name?,
        days: days?,
        from: from?,
        to: to?,
    })
}

fn compile_days(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Vec<Weekday>> {
    let items = match &node.value {
        Value::Seq(items) if items.is_empty() => {
            cx.error(
                format!("the `days` of {what} are empty, so it never opens"),
                node.pos,
            );
            return None;
        }
        Value::Seq(items) => items,
        Value::Str(s) => {
            cx.error_help(
                format!("the `days` of {what} must be a list, found the string {s:?}"),
                node.pos,
                format!("write it as a list: `days: [{s}]`"),
            );
            return None;
        }
        _ => {
            cx.error(
                format!("the `days` of {what} must be a list, found {}", node.kind()),
                node.pos,
            );
            return None;
        }
    };
    let mut days: Vec<Weekday> = Vec::new();
    let mut ok = true;
    for item in items {
        let text = match &item.value {
            Value::Str(s) => s.clone(),
            _ => {
                cx.error_help(
                    format!("a day must be a string, found {}", item.kind()),
                    item.pos,
                    "days are written mon, tue, wed, thu, fri, sat, sun",
                );
                ok = false;
                continue;
            }
        };
        let Some(i) = DAYS.iter().position(|d| *d == text) else {
            let lower = text.to_ascii_lowercase();
            let help = match DAYS.iter().find(|d| lower.starts_with(*d)) {
                Some(d) => format!("write `{d}`"),
                None => match did_you_mean(&lower, DAYS) {
                    Some(d) => format!("did you mean `{d}`?"),
                    None => "days are written mon, tue, wed, thu, fri, sat, sun".to_string(),
                },
            };
            cx.error_help(format!("invalid day `{text}`"), item.pos, help);
            ok = false;
            continue;
        };
        let day = Weekday::from_monday_one_offset(i as i8 + 1).unwrap_or(Weekday::Monday);
        if days.contains(&day) {
            cx.warn(
                format!("`{text}` is listed twice in the `days` of {what}"),
                item.pos,
                "remove the repeat",
            );
        } else {
            days.push(day);
        }
    }
    days.sort_by_key(|d| d.to_monday_one_offset());
    ok.then_some(days)
}

fn compile_time(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Time> {
    let Value::Str(s) = &node.value else {
        cx.error_help(
            format!(
                "{what} must be a time such as \"02:00\", found {}",
                node.kind()
            ),
            node.pos,
            "write the time as HH:MM in quotes",
        );
        return None;
    };
    match parse_hh_mm(s) {
        Ok(t) => Some(t),
        Err(help) => {
            cx.error_help(format!("{what} is not a time: `{s}`"), node.pos, help);
            None
        }
    }
}

/// Parses `HH:MM` (24-hour clock, `H:MM` allowed).
fn parse_hh_mm(s: &str) -> Result<Time, String> {
    let t = s.trim();
    let parts = t.split_once(':').and_then(|(h, m)| {
        let digits =
            |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit());
        (digits(h) && m.len() == 2 && digits(m)).then(|| (h.parse::<i8>(), m.parse::<i8>()))
    });
    match parts {
        Some((Ok(24), Ok(0))) => Err(
            "write midnight as `00:00`: a window whose `to` is not after its `from` closes on the next day"
                .into(),
        ),
        Some((Ok(h), Ok(m))) if (0..24).contains(&h) && (0..60).contains(&m) => {
            Time::new(h, m, 0, 0).map_err(|e| e.to_string())
        }
        Some(_) => Err("hours run from 00 to 23 and minutes from 00 to 59".into()),
        None => Err("write the time as HH:MM on a 24-hour clock, e.g. \"02:00\" or \"22:30\"".into()),
    }
}

fn compile_date(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Date> {
    let text = match &node.value {
        Value::Str(s) => s.trim().to_string(),
        _ => {
            cx.error_help(
                format!(
                    "{what} must be a date such as 2026-12-20, found {}",
                    node.kind()
                ),
                node.pos,
                "write the date as YYYY-MM-DD",
            );
            return None;
        }
    };
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        cx.error_help(
            format!("{what} is not a date: `{text}`"),
            node.pos,
            "write the date as YYYY-MM-DD, e.g. 2026-12-20",
        );
        return None;
    }
    match text.parse::<Date>() {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(
                format!("{what} is not a date on the calendar: `{text}` ({e})"),
                node.pos,
            );
            None
        }
    }
}

fn compile_freeze(
    cx: &mut Cx<'_>,
    node: &Node,
    names: &mut BTreeMap<String, Pos>,
) -> Option<Freeze> {
    let f = fields(cx, node, "a freeze", FREEZE_KEYS)?;
    let name = compile_name(cx, &f, "freeze", names);
    let label = name
        .clone()
        .map_or_else(|| format!("at line {}", f.pos.line), |n| format!("`{n}`"));
    let what = format!("freeze {label}");

    let emergency = match f.get("emergency") {
        None => Some(true),
        Some(n) => match n.value {
            Value::Bool(b) => Some(b),
            _ => {
                cx.error_help(
                    format!("the `emergency` of {what} must be true or false, found {}", n.kind()),
                    n.pos,
                    "`emergency: true` (the default) lets an emergency change bypass the freeze; `false` stops even those",
                );
                None
            }
        },
    };

    let last = f.get("last_days_of_month");
    let (from, to) = (f.get("from"), f.get("to"));
    let dates = match (last, from, to) {
        (Some(n), None, None) => compile_last_days(cx, n, &what),
        (None, Some(a), Some(b)) => {
            let from = compile_date(cx, a, &format!("the `from` of {what}"));
            let to = compile_date(cx, b, &format!("the `to` of {what}"));
            match (from, to) {
                (Some(from), Some(to)) if to < from => {
                    cx.error_help(
                        format!("{what} ends ({to}) before it starts ({from})"),
                        b.pos,
                        "`from` and `to` are the first and last frozen days, both included",
                    );
                    None
                }
                (Some(from), Some(to)) => Some(FreezeDates::Range { from, to }),
                _ => None,
            }
        }
        (Some(n), _, _) => {
            cx.error_help(
                format!("{what} has both `last_days_of_month` and a `from`/`to` date range"),
                n.pos,
                "a freeze is one or the other; write two freezes for both",
            );
            None
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            let (has, missing) = if from.is_some() {
                ("from", "to")
            } else {
                ("to", "from")
            };
            cx.error_help(
                format!("{what} has `{has}` but no `{missing}`"),
                f.pos,
                "a date-range freeze needs both: `from: 2026-12-20` and `to: 2027-01-04` (both days included)",
            );
            None
        }
        (None, None, None) => {
            cx.error_help(
                format!("{what} says nothing about when it applies"),
                f.pos,
                "add `last_days_of_month: 7`, or `from: 2026-12-20` and `to: 2027-01-04`",
            );
            None
        }
    };
    Some(Freeze {
        name: name?,
        dates: dates?,
        emergency: emergency?,
    })
}

fn compile_last_days(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<FreezeDates> {
    match node.value {
        Value::Int(n) if (1..=28).contains(&n) => Some(FreezeDates::LastDaysOfMonth(n as i8)),
        Value::Int(n) => {
            cx.error_help(
                format!("the `last_days_of_month` of {what} must be from 1 to 28, found {n}"),
                node.pos,
                "every month has at least 28 days, so 28 is the most that means the same every month",
            );
            None
        }
        _ => {
            cx.error(
                format!(
                    "the `last_days_of_month` of {what} must be a whole number of days, found {}",
                    node.kind()
                ),
                node.pos,
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn errors(text: &str) -> Vec<String> {
        match load_str("cal.yaml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| {
                    let p = d.pos.unwrap_or_default();
                    format!("{}:{}: {}", p.line, p.column, d.message)
                })
                .collect(),
        }
    }

    #[test]
    fn the_example_calendar_loads() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/calendar.yaml"))
                .unwrap();
        let (cal, warnings) = load_str("rules/calendar.yaml", &text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cal.timezone_name, "America/New_York");
        assert_eq!(cal.windows.len(), 2);
        assert_eq!(cal.windows[0].days, vec![Weekday::Thursday]);
        assert_eq!(cal.windows[0].from, time(2, 0, 0, 0));
        assert_eq!(cal.windows[0].to, time(6, 0, 0, 0));
        assert_eq!(
            cal.freezes[0].dates,
            FreezeDates::LastDaysOfMonth(7),
            "month-end comes first"
        );
        assert!(looks_like_calendar(&text));
    }

    #[test]
    fn a_fixed_offset_is_a_time_zone() {
        let (cal, _) = load_str(
            "c",
            "timezone: \"-05:00\"\nwindows:\n  - {name: w, days: [mon], from: \"22:00\", to: \"02:00\"}\n",
        )
        .unwrap();
        assert_eq!(cal.timezone, TimeZone::fixed(jiff::tz::offset(-5)));
        assert!(cal.windows[0].crosses_midnight());
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let text = "\
timezone: America/New_Yrok
windows:
  - name: thu
    days: [thursday, sun, funday]
    from: \"25:00\"
    too: \"06:00\"
freezes:
  - name: thu
    last_days_of_month: 31
  - name: holidays
    from: 2026-12-20
    to: 2026-12-01
    emergency: maybe
  - name: bad-date
    from: 2026-02-30
    to: 2026-03-01
  - name: both
    last_days_of_month: 3
    from: 2026-01-01
    to: 2026-01-02
  - name: nothing
frezes: []
";
        let errs = errors(text);
        let expected = [
            "1:11: unknown time zone `America/New_Yrok`",
            "4:12: invalid day `thursday`",
            "4:27: invalid day `funday`",
            "6:5: unknown key `too` in a window",
            "5:11: the `from` of window `thu` is not a time: `25:00`",
            "3:5: window `thu` has no `to`",
            "8:11: duplicate name `thu` (first used at line 3); windows and freezes need distinct names",
            "9:25: the `last_days_of_month` of freeze at line 8 must be from 1 to 28, found 31",
            "13:16: the `emergency` of freeze `holidays` must be true or false, found a string",
            "12:9: freeze `holidays` ends (2026-12-01) before it starts (2026-12-20)",
            "15:11: the `from` of freeze `bad-date` is not a date on the calendar",
            "18:25: freeze `both` has both `last_days_of_month` and a `from`/`to` date range",
            "21:5: freeze `nothing` says nothing about when it applies",
            "22:1: unknown key `frezes` in the calendar",
        ];
        for want in expected {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expected.len(), "{}", errs.join("\n"));
    }

    #[test]
    fn did_you_mean_for_keys_days_and_zones() {
        let err = load_str(
            "c",
            "timezone: America/New York\nwindows:\n  - name: w\n    dayz: [Thu]\n    from: \"02:00\"\n    to: \"06:00\"\n",
        )
        .unwrap_err();
        let helps: Vec<String> = err
            .diagnostics
            .iter()
            .filter_map(|d| d.help.clone())
            .collect();
        assert!(
            helps.contains(&"did you mean `America/New_York`?".to_string()),
            "{helps:?}"
        );
        assert!(
            helps.contains(&"did you mean `days`?".to_string()),
            "{helps:?}"
        );
        let err = load_str(
            "c",
            "timezone: UTC\nwindows:\n  - {name: w, days: [Thursday], from: \"02:00\", to: \"06:00\"}\n",
        )
        .unwrap_err();
        assert_eq!(err.diagnostics[0].help.as_deref(), Some("write `thu`"));
    }

    #[test]
    fn structural_mistakes() {
        for (text, want) in [
            ("", "the calendar file is empty"),
            ("- a\n- b\n", "the calendar must be a mapping of keys, found a list"),
            ("timezone: UTC\n", "the calendar has neither `windows` nor `freezes`"),
            ("windows: []\n", "the calendar has no `timezone`"),
            ("timezone: UTC\nwindows: []\n", "`windows` is empty"),
            ("timezone: UTC\nwindows: {}\n", "`windows` must be a list of windows, found a mapping"),
            ("timezone: UTC\nfreezes: 7\n", "`freezes` must be a list of freezes, found a number"),
            ("timezone: 5\nfreezes: []\n", "`timezone` must be a string, found a number"),
            ("timezone: \"+25:00\"\nfreezes: []\n", "`+25:00` is not an offset any place uses"),
            ("timezone: \"+5\"\nfreezes: []\n", "invalid time zone offset `+5`"),
            ("timezone: \"05:00\"\nfreezes: []\n", "unknown time zone `05:00`"),
            ("timezone: UTC\nwindows: [{name: w, days: thu, from: \"1:00\", to: \"2:00\"}]\n", "the `days` of window `w` must be a list"),
            ("timezone: UTC\nwindows: [{name: w, days: [], from: \"1:00\", to: \"2:00\"}]\n", "the `days` of window `w` are empty"),
            ("timezone: UTC\nwindows: [{name: w, days: [mon], from: 200, to: \"2:00\"}]\n", "`from` of window `w` must be a time"),
            ("timezone: UTC\nwindows: [{name: w, days: [mon], from: \"1:00\", to: \"24:00\"}]\n", "`to` of window `w` is not a time"),
            ("timezone: UTC\nwindows: [{name: \"a b\", days: [mon], from: \"1:00\", to: \"2:00\"}]\n", "invalid window name"),
            ("timezone: UTC\nwindows: [{days: [mon], from: \"1:00\", to: \"2:00\"}]\n", "a window has no `name`"),
            ("timezone: UTC\nfreezes: [{name: f, from: 2026-01-01}]\n", "freeze `f` has `from` but no `to`"),
            ("timezone: UTC\nfreezes: [{name: f, from: 2026-01-01, to: 20260102}]\n", "the `to` of freeze `f` must be a date"),
            ("timezone: UTC\nfreezes: [{name: f, from: 2026-01-01, to: 2026-1-2}]\n", "the `to` of freeze `f` is not a date"),
            ("timezone: UTC\nfreezes: [{name: f, last_days_of_month: 0}]\n", "must be from 1 to 28, found 0"),
            ("timezone: UTC\nfreezes: [{name: f, last_days_of_month: \"7\"}]\n", "must be a whole number of days, found a string"),
            ("timezone: [UTC\n", "invalid YAML"),
        ] {
            let errs = errors(text);
            assert!(
                errs.iter().any(|e| e.contains(want)),
                "{text:?}: missing {want:?} in {errs:?}"
            );
        }
    }

    #[test]
    fn repeated_days_are_a_warning() {
        let (cal, warnings) = load_str(
            "c",
            "timezone: UTC\nwindows: [{name: w, days: [sun, thu, sun], from: \"1:00\", to: \"2:00\"}]\n",
        )
        .unwrap();
        assert_eq!(
            cal.windows[0].days,
            vec![Weekday::Thursday, Weekday::Sunday]
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn freeze_coverage() {
        let month_end = Freeze {
            name: "m".into(),
            dates: FreezeDates::LastDaysOfMonth(7),
            emergency: true,
        };
        // February of a leap year has 29 days: the last 7 are the 23rd to the 29th.
        assert_eq!(month_end.covering(date(2028, 2, 22)), None);
        assert_eq!(
            month_end.covering(date(2028, 2, 23)),
            Some((date(2028, 2, 23), date(2028, 2, 29)))
        );
        // A 30-day month: the 24th to the 30th.
        assert_eq!(month_end.covering(date(2026, 4, 23)), None);
        assert_eq!(
            month_end.covering(date(2026, 4, 30)),
            Some((date(2026, 4, 24), date(2026, 4, 30)))
        );
        let holidays = Freeze {
            name: "h".into(),
            dates: FreezeDates::Range {
                from: date(2026, 12, 20),
                to: date(2027, 1, 4),
            },
            emergency: true,
        };
        assert!(holidays.covering(date(2026, 12, 19)).is_none());
        assert!(holidays.covering(date(2027, 1, 1)).is_some());
        assert!(holidays.covering(date(2027, 1, 4)).is_some());
        assert!(holidays.covering(date(2027, 1, 5)).is_none());
        // Out-of-range counts (only possible when built in code) never panic.
        for n in [i8::MIN, -1, 0, 29, 31, i8::MAX] {
            let f = Freeze {
                dates: FreezeDates::LastDaysOfMonth(n),
                ..month_end.clone()
            };
            let _ = f.covering(date(2028, 2, 1));
            let _ = f.covering(date(2026, 12, 31));
        }
    }

    #[test]
    fn recognising_a_calendar() {
        assert!(looks_like_calendar("timezone: UTC\nfreezes: []\n"));
        assert!(looks_like_calendar("# c\nwindows:\n  - name: x\n"));
        assert!(looks_like_calendar("\"timezone\": [broken\n"));
        assert!(!looks_like_calendar("watch:\n  duration: 5m\nrules: []\n"));
        assert!(!looks_like_calendar("rules:\n  - name: timezone\n"));
        assert!(!looks_like_calendar(""));
    }

    #[test]
    fn hh_mm() {
        assert_eq!(parse_hh_mm("02:00"), Ok(time(2, 0, 0, 0)));
        assert_eq!(parse_hh_mm("2:05"), Ok(time(2, 5, 0, 0)));
        assert_eq!(parse_hh_mm("23:59"), Ok(time(23, 59, 0, 0)));
        for bad in [
            "24:00", "12:60", "12", "12:5", "-1:00", "1:00:00", "ab:cd", "", "123:00",
        ] {
            assert!(parse_hh_mm(bad).is_err(), "{bad}");
        }
    }
}
