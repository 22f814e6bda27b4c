//! Loading a calendar file: the spanned YAML tree walked key by key, every mistake
//! collected with its file:line:column (the types and the keys are in `model.rs`).

use super::model::{
    Calendar, CalendarError, Freeze, FreezeDates, Loaded, Window, DAYS, FREEZE_KEYS, TOP_KEYS,
    WINDOW_KEYS,
};
use crate::core::yaml::diag::{did_you_mean, Diagnostic};
use crate::core::yaml::walk::{fields, string, Cx, Fields};
use crate::core::yaml::{self, Node, Pos, Value};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use std::collections::BTreeMap;

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
pub(super) fn parse_hh_mm(s: &str) -> Result<Time, String> {
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
