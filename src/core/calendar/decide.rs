//! The gate's decision: may a change go out at this instant, and if not, when?
//!
//! `decide` is pure: a calendar, an instant and an optional emergency reason go in, a
//! `Decision` comes out. No clock, no I/O, so table tests pin every edge to a fixed time.
//! The health check (`--rules`) runs elsewhere and adds its findings with
//! [`Decision::block`], which re-applies the same go/no-go rule.
//!
//! # How wall-clock windows become instants
//!
//! Windows are local wall-clock times ("Thursday 02:00-06:00 in New York"), freezes are
//! whole local days, and every conversion goes through jiff with the calendar's zone and
//! its *compatible* disambiguation (the behaviour of RFC 5545 and Temporal):
//!
//! - **Spring forward** (2026-03-08 in New York, 02:00 EST -> 03:00 EDT): a time in the
//!   skipped hour moves forward by the gap, so a window written `02:00-06:00` opens at
//!   03:00 EDT that day and lasts three real hours. A window lying entirely inside the
//!   skipped hour (`02:15-02:45`) does not happen that day at all, nor does one whose
//!   shifted opening falls after its end (`02:30-03:00` would open at 03:30 EDT).
//! - **Fall back** (2026-11-01, 02:00 EDT -> 01:00 EST): an ambiguous time means its
//!   first occurrence. A window spanning the repeated hour lasts one real hour longer
//!   (`00:30-02:30` is three real hours). The seed's `02:00-06:00` does not span it: 02:00
//!   happens once (EST), so that window is its usual four hours.
//! - A window whose `to` is not after its `from` closes the next day; a freeze day
//!   begins at that day's first instant (jiff's start of day, which need not be 00:00).
//!
//! # Freezes cut windows
//!
//! A window that crosses midnight into a frozen day is allowed only up to that midnight,
//! and one that opens on a frozen day becomes allowed at the next midnight if it is
//! still open. The next window reported is the earliest such *allowed* stretch,
//! searched over [`HORIZON_DAYS`]; a calendar frozen for longer than that has none.
//!
//! # Emergencies
//!
//! An emergency change goes out whatever blocks it, as long as every blocker may be
//! bypassed: being outside all windows, a freeze unless it says `emergency: false`, and
//! an unhealthy system (an emergency fix is often deployed *into* an incident). What was
//! bypassed, or what refused the emergency, is part of the decision so it can be recorded.

use super::{Calendar, Window};
use jiff::civil::Date;
use jiff::{Timestamp, Zoned};

/// How far ahead the next window is looked for.
pub const HORIZON_DAYS: i64 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// Inside a window (allows).
    InsideWindow,
    /// The calendar has no windows, so the time of day does not matter (allows).
    NoWindows,
    /// Outside every window (blocks; an emergency may bypass).
    OutsideWindows,
    /// Inside a freeze (blocks; an emergency may bypass unless `emergency: false`).
    Freeze,
    /// Every rule of the health check is within its threshold now (allows).
    Healthy,
    /// A rule is breached now (blocks; an emergency may bypass).
    RuleBreached,
    /// A rule could not be queried, so health cannot be shown (blocks; an emergency
    /// may bypass).
    RuleFailed,
}

/// One thing the decision took into account.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reason {
    pub kind: ReasonKind,
    /// The window, freeze or rule concerned.
    pub name: Option<String>,
    /// Whether it stands in the way of a deploy.
    pub blocks: bool,
    /// Whether an emergency change may go out despite it.
    pub emergency_may_bypass: bool,
    /// Whether an emergency change did go out despite it.
    pub bypassed: bool,
    pub message: String,
}

impl Reason {
    fn allows(kind: ReasonKind, name: Option<String>, message: String) -> Reason {
        Reason {
            kind,
            name,
            blocks: false,
            emergency_may_bypass: true,
            bypassed: false,
            message,
        }
    }

    fn blocks(kind: ReasonKind, name: Option<String>, bypass: bool, message: String) -> Reason {
        Reason {
            kind,
            name,
            blocks: true,
            emergency_may_bypass: bypass,
            bypassed: false,
            message,
        }
    }

    /// All rules of the health check are within their thresholds.
    pub fn healthy(message: impl Into<String>) -> Reason {
        Reason::allows(ReasonKind::Healthy, None, message.into())
    }

    /// Rule `name` is breached now.
    pub fn rule_breached(name: &str, message: impl Into<String>) -> Reason {
        Reason::blocks(
            ReasonKind::RuleBreached,
            Some(name.into()),
            true,
            message.into(),
        )
    }

    /// Rule `name` could not be queried.
    pub fn rule_failed(name: &str, message: impl Into<String>) -> Reason {
        Reason::blocks(
            ReasonKind::RuleFailed,
            Some(name.into()),
            true,
            message.into(),
        )
    }

    /// A short stable name for records: `outside-windows`, `freeze:NAME`, `rule:NAME`.
    pub fn id(&self) -> String {
        let name = self.name.as_deref().unwrap_or_default();
        match self.kind {
            ReasonKind::OutsideWindows => "outside-windows".into(),
            ReasonKind::NoWindows => "no-windows".into(),
            ReasonKind::Healthy => "healthy".into(),
            ReasonKind::InsideWindow => format!("window:{name}"),
            ReasonKind::Freeze => format!("freeze:{name}"),
            ReasonKind::RuleBreached | ReasonKind::RuleFailed => format!("rule:{name}"),
        }
    }
}

/// An emergency change: its reason, and what it bypassed or what refused it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Emergency {
    pub reason: String,
    /// `Reason::id`s of the blockers it went out despite (empty on no-go).
    pub bypassed: Vec<String>,
    /// `Reason::id`s of the blockers no emergency may bypass.
    pub refused_by: Vec<String>,
}

/// A stretch of time in which deploys are allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// The window; None for a calendar without windows.
    pub name: Option<String>,
    pub opens: Zoned,
    /// None when it is still open at the end of the search horizon.
    pub closes: Option<Zoned>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub go: bool,
    /// The instant decided for, in the calendar's zone.
    pub at: Zoned,
    pub reasons: Vec<Reason>,
    pub emergency: Option<Emergency>,
    /// The window open at `at`, if any; `closes` is when deploys stop being allowed
    /// (earlier than the window's end when a freeze begins inside it).
    pub window: Option<Period>,
    /// When deploys are next allowed (without an emergency): on no-go the earliest
    /// allowed time; on go the next window after the current one. None when nothing
    /// opens within the horizon, or when a calendar without windows is open now.
    pub next_window: Option<Period>,
}

impl Decision {
    /// Adds a reason (e.g. a breached rule) and decides again.
    pub fn block(&mut self, reason: Reason) {
        self.reasons.push(reason);
        self.settle();
    }

    /// Go when nothing blocks, or when an emergency may bypass everything that does.
    fn settle(&mut self) {
        let blocking: Vec<&Reason> = self.reasons.iter().filter(|r| r.blocks).collect();
        let refused_by: Vec<String> = blocking
            .iter()
            .filter(|r| !r.emergency_may_bypass)
            .map(|r| r.id())
            .collect();
        let bypass = self.emergency.is_some() && !blocking.is_empty() && refused_by.is_empty();
        let bypassed: Vec<String> = if bypass {
            blocking.iter().map(|r| r.id()).collect()
        } else {
            Vec::new()
        };
        self.go = blocking.is_empty() || bypass;
        for r in &mut self.reasons {
            r.bypassed = bypass && r.blocks;
        }
        if let Some(e) = &mut self.emergency {
            e.bypassed = bypassed;
            e.refused_by = refused_by;
        }
    }
}

/// Decides whether a change may go out at `at`.
pub fn decide(cal: &Calendar, at: Timestamp, emergency: Option<&str>) -> Decision {
    let now = at.to_zoned(cal.timezone.clone());
    let today = now.date();
    let mut reasons = Vec::new();
    let mut window = None;

    if cal.windows.is_empty() {
        reasons.push(Reason::allows(
            ReasonKind::NoWindows,
            None,
            "the calendar has no windows: any time outside a freeze is allowed".into(),
        ));
    } else if let Some(occ) = open_occurrence(cal, &now) {
        let w = &cal.windows[occ.window];
        let frozen_now = frozen(cal, today);
        // Deploys stop at the window's end, or earlier where a freeze begins.
        let allowed_until = if frozen_now {
            occ.closes.clone()
        } else {
            allowed_parts(cal, &occ)
                .into_iter()
                .find(|(s, e)| *s <= now && now < *e)
                .map_or_else(|| occ.closes.clone(), |(_, e)| e)
        };
        let mut message = format!(
            "inside window `{}` ({}), open until {}",
            w.name,
            w.describe(),
            show(&allowed_until)
        );
        if allowed_until < occ.closes {
            let day = allowed_until.date();
            let names: Vec<String> = cal
                .freezes
                .iter()
                .filter(|f| f.covering(day).is_some())
                .map(|f| format!("`{}`", f.name))
                .collect();
            message.push_str(&format!(" when freeze {} begins", names.join(", ")));
        }
        reasons.push(Reason::allows(
            ReasonKind::InsideWindow,
            Some(w.name.clone()),
            message,
        ));
        window = Some(Period {
            name: Some(w.name.clone()),
            opens: occ.opens,
            closes: Some(allowed_until),
        });
    } else {
        let names: Vec<String> = cal
            .windows
            .iter()
            .map(|w| format!("`{}` ({})", w.name, w.describe()))
            .collect();
        reasons.push(Reason::blocks(
            ReasonKind::OutsideWindows,
            None,
            true,
            format!(
                "outside every deploy window: {} in {}",
                names.join(", "),
                cal.timezone_name
            ),
        ));
    }

    for f in &cal.freezes {
        let Some((first, last)) = f.covering(today) else {
            continue;
        };
        let span = if first == last {
            format!("{first}")
        } else {
            format!("{first} to {last}")
        };
        let what = match f.dates {
            super::FreezeDates::LastDaysOfMonth(_) => {
                format!("{}: {span}", f.describe())
            }
            super::FreezeDates::Range { .. } => span,
        };
        let bypass = if f.emergency {
            "an emergency change may bypass it"
        } else {
            "not even an emergency change may bypass it (`emergency: false`)"
        };
        reasons.push(Reason::blocks(
            ReasonKind::Freeze,
            Some(f.name.clone()),
            f.emergency,
            format!("inside freeze `{}` ({what}); {bypass}", f.name),
        ));
    }

    let next_window = if cal.windows.is_empty() {
        next_unfrozen(cal, today)
    } else {
        next_window_opening(cal, &now)
    };

    let mut d = Decision {
        go: false,
        at: now,
        reasons,
        emergency: emergency.map(|r| Emergency {
            reason: r.to_string(),
            bypassed: Vec::new(),
            refused_by: Vec::new(),
        }),
        window,
        next_window,
    };
    d.settle();
    d
}

/// A local time with its zone abbreviation, and the same instant in UTC:
/// "Thu 2026-03-12 02:00 EDT (2026-03-12 06:00 UTC)".
pub fn show(z: &Zoned) -> String {
    let local = jiff::fmt::strtime::format("%a %Y-%m-%d %H:%M %Z", z)
        .or_else(|_| jiff::fmt::strtime::format("%a %Y-%m-%d %H:%M %:z", z))
        .unwrap_or_else(|_| z.to_string());
    let utc = jiff::fmt::strtime::format(
        "%Y-%m-%d %H:%M UTC",
        &z.with_time_zone(jiff::tz::TimeZone::UTC),
    )
    .unwrap_or_else(|_| z.timestamp().to_string());
    format!("{local} ({utc})")
}

/// RFC 3339 with the local offset, for machines: "2026-03-12T02:00:00-04:00".
pub fn rfc3339(z: &Zoned) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%:z", z)
        .unwrap_or_else(|_| z.timestamp().to_string())
}

/// One opening of one window.
#[derive(Debug, Clone)]
struct Occurrence {
    window: usize,
    opens: Zoned,
    closes: Zoned,
}

/// The windows opening on local `date`, earliest first. A window that does not exist
/// that day (it lies in the hour skipped by DST) is left out.
fn occurrences_on(cal: &Calendar, date: Date) -> Vec<Occurrence> {
    let mut out: Vec<Occurrence> = cal
        .windows
        .iter()
        .enumerate()
        .filter(|(_, w)| w.days.contains(&date.weekday()))
        .filter_map(|(i, w)| {
            let (opens, closes) = occurrence_bounds(cal, w, date)?;
            (opens < closes).then_some(Occurrence {
                window: i,
                opens,
                closes,
            })
        })
        .collect();
    out.sort_by(|a, b| a.opens.cmp(&b.opens));
    out
}

fn occurrence_bounds(cal: &Calendar, w: &Window, date: Date) -> Option<(Zoned, Zoned)> {
    let close_date = if w.crosses_midnight() {
        date.tomorrow().ok()?
    } else {
        date
    };
    let (from, to) = (date.to_datetime(w.from), close_date.to_datetime(w.to));
    let in_gap = |dt| {
        matches!(
            cal.timezone.to_ambiguous_timestamp(dt).offset(),
            jiff::tz::AmbiguousOffset::Gap { .. }
        )
    };
    if !w.crosses_midnight() && in_gap(from) && in_gap(to) {
        // The whole window lies in the hour DST skips: it does not happen that day.
        return None;
    }
    let opens = from.to_zoned(cal.timezone.clone()).ok()?;
    let closes = to.to_zoned(cal.timezone.clone()).ok()?;
    Some((opens, closes))
}

/// The window occurrence containing `now`, if any. An occurrence opening on day D
/// closes on D or D+1, so yesterday's and today's are all that can contain `now`.
fn open_occurrence(cal: &Calendar, now: &Zoned) -> Option<Occurrence> {
    let today = now.date();
    [today.yesterday().ok(), Some(today)]
        .into_iter()
        .flatten()
        .flat_map(|d| occurrences_on(cal, d))
        .find(|o| o.opens <= *now && *now < o.closes)
}

fn frozen(cal: &Calendar, date: Date) -> bool {
    cal.freezes.iter().any(|f| f.covering(date).is_some())
}

/// The first instant of a local day.
fn start_of(cal: &Calendar, date: Date) -> Option<Zoned> {
    date.to_zoned(cal.timezone.clone()).ok()
}

/// The parts of an occurrence that fall on unfrozen days, in order.
fn allowed_parts(cal: &Calendar, occ: &Occurrence) -> Vec<(Zoned, Zoned)> {
    let mut parts: Vec<(Zoned, Zoned)> = Vec::new();
    let mut cursor = occ.opens.clone();
    while cursor < occ.closes {
        let day = cursor.date();
        let end = match day.tomorrow().ok().and_then(|d| start_of(cal, d)) {
            Some(midnight) if midnight > cursor => midnight.min(occ.closes.clone()),
            _ => occ.closes.clone(),
        };
        if !frozen(cal, day) {
            match parts.last_mut() {
                Some(last) if last.1 == cursor => last.1 = end.clone(),
                _ => parts.push((cursor.clone(), end.clone())),
            }
        }
        cursor = end;
    }
    parts
}

/// The earliest allowed stretch of a window that begins after `now`.
fn next_window_opening(cal: &Calendar, now: &Zoned) -> Option<Period> {
    let mut best: Option<Period> = None;
    let mut date = now.date().yesterday().ok()?;
    for _ in 0..=HORIZON_DAYS + 1 {
        // Everything opening on `date` or later opens at or after its first instant.
        if let (Some(b), Some(start)) = (&best, start_of(cal, date)) {
            if start >= b.opens {
                break;
            }
        }
        for occ in occurrences_on(cal, date) {
            for (s, e) in allowed_parts(cal, &occ) {
                if s > *now && best.as_ref().is_none_or(|b| s < b.opens) {
                    best = Some(Period {
                        name: Some(cal.windows[occ.window].name.clone()),
                        opens: s,
                        closes: Some(e),
                    });
                }
            }
        }
        date = match date.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    best
}

/// For a calendar without windows that is frozen today: the first unfrozen day, and
/// the next frozen one after it. None when not frozen today (it is open now).
fn next_unfrozen(cal: &Calendar, today: Date) -> Option<Period> {
    if !frozen(cal, today) {
        return None;
    }
    let mut date = today;
    let mut opens = None;
    for _ in 0..HORIZON_DAYS {
        date = date.tomorrow().ok()?;
        match (&opens, frozen(cal, date)) {
            (None, false) => opens = Some(start_of(cal, date)?),
            (Some(o), true) => {
                return Some(Period {
                    name: None,
                    opens: o.clone(),
                    closes: start_of(cal, date),
                })
            }
            _ => {}
        }
    }
    opens.map(|opens| Period {
        name: None,
        opens,
        closes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::calendar::load_str;

    /// The seed's calendar: Thursday and Sunday 02:00-06:00 New York time, the last
    /// week of every month frozen, and a holiday freeze over new year.
    const SEED: &str = "\
timezone: America/New_York
windows:
  - {name: thursday-maintenance, days: [thu], from: \"02:00\", to: \"06:00\"}
  - {name: sunday-maintenance, days: [sun], from: \"02:00\", to: \"06:00\"}
freezes:
  - {name: month-end, last_days_of_month: 7}
  - {name: holidays, from: 2026-12-20, to: 2027-01-04}
";

    fn cal(text: &str) -> Calendar {
        load_str("test.yaml", text)
            .map_err(|e| e.to_string())
            .unwrap()
            .0
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn utc(z: &Zoned) -> String {
        z.timestamp().to_string()
    }

    fn names(d: &Decision, kind: ReasonKind) -> Vec<String> {
        d.reasons
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.name.clone().unwrap_or_default())
            .collect()
    }

    /// (when, go, window open then, freezes in force, next window's name and opening UTC)
    type Row = (
        &'static str,
        bool,
        Option<&'static str>,
        &'static [&'static str],
        Option<(&'static str, &'static str)>,
    );

    fn check_table(calendar: &str, rows: &[Row]) {
        let c = cal(calendar);
        let mut failures = Vec::new();
        for (at, go, window, freezes, next) in rows {
            let d = decide(&c, ts(at), None);
            let got_window = d.window.as_ref().and_then(|w| w.name.clone());
            let got_next = d
                .next_window
                .as_ref()
                .map(|n| (n.name.clone().unwrap_or_default(), utc(&n.opens)));
            let want_next = next.map(|(n, t)| (n.to_string(), t.to_string()));
            if d.go != *go
                || got_window.as_deref() != *window
                || names(&d, ReasonKind::Freeze) != *freezes
                || got_next != want_next
            {
                failures.push(format!(
                    "{at} ({}): got go={} window={got_window:?} freezes={:?} next={got_next:?}; want go={go} window={window:?} freezes={freezes:?} next={want_next:?}",
                    d.at,
                    d.go,
                    names(&d, ReasonKind::Freeze)
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn seed_calendar_windows_and_freezes() {
        check_table(
            SEED,
            &[
                // Thu 2026-03-12, an ordinary Thursday (EDT, UTC-4).
                (
                    "2026-03-12T05:59:00Z",
                    false,
                    None,
                    &[],
                    Some(("thursday-maintenance", "2026-03-12T06:00:00Z")),
                ),
                (
                    "2026-03-12T06:00:00Z",
                    true,
                    Some("thursday-maintenance"),
                    &[],
                    Some(("sunday-maintenance", "2026-03-15T06:00:00Z")),
                ),
                (
                    "2026-03-12T09:59:59Z",
                    true,
                    Some("thursday-maintenance"),
                    &[],
                    Some(("sunday-maintenance", "2026-03-15T06:00:00Z")),
                ),
                // 06:00 is the end: the window is half-open.
                (
                    "2026-03-12T10:00:00Z",
                    false,
                    None,
                    &[],
                    Some(("sunday-maintenance", "2026-03-15T06:00:00Z")),
                ),
                // Wednesday: outside all windows.
                (
                    "2026-03-11T07:00:00Z",
                    false,
                    None,
                    &[],
                    Some(("thursday-maintenance", "2026-03-12T06:00:00Z")),
                ),
                // Thu 2026-03-26 is in the month-end freeze (Mar 25-31); the next
                // unfrozen window skips Sun Mar 29 and is Thu Apr 2.
                (
                    "2026-03-26T07:00:00Z",
                    false,
                    Some("thursday-maintenance"),
                    &["month-end"],
                    Some(("thursday-maintenance", "2026-04-02T06:00:00Z")),
                ),
                (
                    "2026-03-24T12:00:00Z",
                    false,
                    None,
                    &[],
                    Some(("thursday-maintenance", "2026-04-02T06:00:00Z")),
                ),
                // A 30-day month: April's last 7 days are the 24th to the 30th.
                (
                    "2026-04-23T07:00:00Z",
                    true,
                    Some("thursday-maintenance"),
                    &[],
                    Some(("sunday-maintenance", "2026-05-03T06:00:00Z")),
                ),
                (
                    "2026-04-24T12:00:00Z",
                    false,
                    None,
                    &["month-end"],
                    Some(("sunday-maintenance", "2026-05-03T06:00:00Z")),
                ),
                (
                    "2026-04-30T07:00:00Z",
                    false,
                    Some("thursday-maintenance"),
                    &["month-end"],
                    Some(("sunday-maintenance", "2026-05-03T06:00:00Z")),
                ),
                // February of a leap year: 29 days, so Feb 23-29 are frozen (EST, UTC-5).
                (
                    "2028-02-17T08:00:00Z",
                    true,
                    Some("thursday-maintenance"),
                    &[],
                    Some(("sunday-maintenance", "2028-02-20T07:00:00Z")),
                ),
                (
                    "2028-02-22T12:00:00Z",
                    false,
                    None,
                    &[],
                    Some(("thursday-maintenance", "2028-03-02T07:00:00Z")),
                ),
                (
                    "2028-02-24T08:00:00Z",
                    false,
                    Some("thursday-maintenance"),
                    &["month-end"],
                    Some(("thursday-maintenance", "2028-03-02T07:00:00Z")),
                ),
                (
                    "2028-02-29T12:00:00Z",
                    false,
                    None,
                    &["month-end"],
                    Some(("thursday-maintenance", "2028-03-02T07:00:00Z")),
                ),
                // February of a common year: Feb 22-28.
                (
                    "2027-02-22T12:00:00Z",
                    false,
                    None,
                    &["month-end"],
                    Some(("thursday-maintenance", "2027-03-04T07:00:00Z")),
                ),
                (
                    "2027-02-21T08:00:00Z",
                    true,
                    Some("sunday-maintenance"),
                    &[],
                    Some(("thursday-maintenance", "2027-03-04T07:00:00Z")),
                ),
                // The holiday freeze spans new year; Dec 31 is in both freezes.
                (
                    "2026-12-20T08:00:00Z",
                    false,
                    Some("sunday-maintenance"),
                    &["holidays"],
                    Some(("thursday-maintenance", "2027-01-07T07:00:00Z")),
                ),
                (
                    "2026-12-31T08:00:00Z",
                    false,
                    Some("thursday-maintenance"),
                    &["month-end", "holidays"],
                    Some(("thursday-maintenance", "2027-01-07T07:00:00Z")),
                ),
                (
                    "2027-01-03T08:00:00Z",
                    false,
                    Some("sunday-maintenance"),
                    &["holidays"],
                    Some(("thursday-maintenance", "2027-01-07T07:00:00Z")),
                ),
                (
                    "2027-01-04T12:00:00Z",
                    false,
                    None,
                    &["holidays"],
                    Some(("thursday-maintenance", "2027-01-07T07:00:00Z")),
                ),
                (
                    "2027-01-07T08:00:00Z",
                    true,
                    Some("thursday-maintenance"),
                    &[],
                    Some(("sunday-maintenance", "2027-01-10T07:00:00Z")),
                ),
                // Freezes go by the local date: 04:30Z on the 20th is 23:30 EST on
                // the 19th (not frozen), 05:30Z is 00:30 EST on the 20th (frozen).
                (
                    "2026-12-20T04:30:00Z",
                    false,
                    None,
                    &[],
                    Some(("thursday-maintenance", "2027-01-07T07:00:00Z")),
                ),
                (
                    "2026-12-20T05:30:00Z",
                    false,
                    None,
                    &["holidays"],
                    Some(("thursday-maintenance", "2027-01-07T07:00:00Z")),
                ),
            ],
        );
    }

    #[test]
    fn dst_spring_forward_new_york() {
        // Sun 2026-03-08: 02:00 EST does not exist, clocks jump to 03:00 EDT. The
        // window written 02:00-06:00 opens at 03:00 EDT (07:00Z) and lasts 3 hours.
        let c = cal(SEED);
        let d = decide(&c, ts("2026-03-08T06:59:00Z"), None); // 01:59 EST
        assert!(!d.go);
        let next = d.next_window.unwrap();
        assert_eq!(next.name.as_deref(), Some("sunday-maintenance"));
        assert_eq!(utc(&next.opens), "2026-03-08T07:00:00Z");
        assert_eq!(rfc3339(&next.opens), "2026-03-08T03:00:00-04:00");
        assert_eq!(utc(next.closes.as_ref().unwrap()), "2026-03-08T10:00:00Z");

        let d = decide(&c, ts("2026-03-08T07:00:00Z"), None); // 03:00 EDT
        assert!(d.go);
        let w = d.window.unwrap();
        assert_eq!(utc(&w.opens), "2026-03-08T07:00:00Z");
        assert_eq!(utc(w.closes.as_ref().unwrap()), "2026-03-08T10:00:00Z");
        assert_eq!(
            w.closes
                .unwrap()
                .timestamp()
                .duration_since(w.opens.timestamp())
                .as_hours(),
            3
        );

        // The Sunday before (EST) and after (EDT) are 4 hours, at their own offsets.
        let d = decide(&c, ts("2026-03-01T07:00:00Z"), None);
        assert!(d.go, "02:00 EST is 07:00Z");
        let d = decide(&c, ts("2026-03-15T06:00:00Z"), None);
        assert!(d.go, "02:00 EDT is 06:00Z");
    }

    #[test]
    fn dst_window_inside_the_skipped_hour_does_not_happen() {
        let c = cal("timezone: America/New_York\nwindows:\n  - {name: gap, days: [sun], from: \"02:15\", to: \"02:45\"}\n");
        let d = decide(&c, ts("2026-03-08T06:00:00Z"), None); // 01:00 EST
        let next = d.next_window.unwrap();
        assert_eq!(
            rfc3339(&next.opens),
            "2026-03-15T02:15:00-04:00",
            "skips Mar 8"
        );
        for t in ["2026-03-08T07:15:00Z", "2026-03-08T07:30:00Z"] {
            assert!(!decide(&c, ts(t), None).go, "{t}");
        }
        // Opening in the gap and closing before the shifted opening: empty, skipped.
        let c = cal("timezone: America/New_York\nwindows:\n  - {name: gap, days: [sun], from: \"02:30\", to: \"03:00\"}\n");
        let d = decide(&c, ts("2026-03-08T06:00:00Z"), None);
        assert_eq!(
            rfc3339(&d.next_window.unwrap().opens),
            "2026-03-15T02:30:00-04:00"
        );
        // Opening in the gap and closing after it: opens when the clocks resume.
        let c = cal("timezone: America/New_York\nwindows:\n  - {name: gap, days: [sun], from: \"02:30\", to: \"04:00\"}\n");
        let d = decide(&c, ts("2026-03-08T06:00:00Z"), None);
        let next = d.next_window.unwrap();
        assert_eq!(rfc3339(&next.opens), "2026-03-08T03:30:00-04:00");
        assert_eq!(rfc3339(&next.closes.unwrap()), "2026-03-08T04:00:00-04:00");
    }

    #[test]
    fn dst_fall_back_new_york() {
        // Sun 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:00-02:00 happens twice.
        let c = cal(SEED);
        // The seed's window does not span the repeated hour: 02:00 EST to 06:00 EST.
        for (t, go) in [
            ("2026-11-01T05:30:00Z", false), // 01:30 EDT
            ("2026-11-01T06:30:00Z", false), // 01:30 EST
            ("2026-11-01T07:00:00Z", true),  // 02:00 EST
            ("2026-11-01T10:59:00Z", true),  // 05:59 EST
            ("2026-11-01T11:00:00Z", false), // 06:00 EST
        ] {
            assert_eq!(decide(&c, ts(t), None).go, go, "{t}");
        }
        let d = decide(&c, ts("2026-11-01T05:30:00Z"), None);
        assert_eq!(
            rfc3339(&d.next_window.unwrap().opens),
            "2026-11-01T02:00:00-05:00"
        );

        // A window spanning the repeated hour is one real hour longer.
        let c = cal("timezone: America/New_York\nwindows:\n  - {name: night, days: [sun], from: \"00:30\", to: \"02:30\"}\n");
        let d = decide(&c, ts("2026-11-01T04:30:00Z"), None); // 00:30 EDT
        assert!(d.go);
        let w = d.window.unwrap();
        let closes = w.closes.unwrap();
        assert_eq!(rfc3339(&closes), "2026-11-01T02:30:00-05:00");
        assert_eq!(
            closes
                .timestamp()
                .duration_since(w.opens.timestamp())
                .as_hours(),
            3
        );
        for t in [
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:29:00Z",
        ] {
            assert!(decide(&c, ts(t), None).go, "both 01:30s and 02:29 EST: {t}");
        }
        assert!(!decide(&c, ts("2026-11-01T07:30:00Z"), None).go);
        // A week earlier (EDT) the same window is 2 hours.
        let d = decide(&c, ts("2026-10-25T04:30:00Z"), None);
        let w = d.window.unwrap();
        assert_eq!(
            w.closes
                .unwrap()
                .timestamp()
                .duration_since(w.opens.timestamp())
                .as_hours(),
            2
        );
    }

    #[test]
    fn windows_crossing_midnight() {
        let c = cal("timezone: UTC\nwindows:\n  - {name: late, days: [fri], from: \"22:00\", to: \"02:00\"}\n");
        // Fri 2026-03-13.
        check_table_cal(
            &c,
            &[
                ("2026-03-13T21:59:00Z", false, None),
                ("2026-03-13T22:00:00Z", true, Some("late")),
                ("2026-03-14T01:59:00Z", true, Some("late")),
                ("2026-03-14T02:00:00Z", false, None),
                // Only Friday's opening: Saturday 22:00 is outside.
                ("2026-03-14T23:00:00Z", false, None),
            ],
        );
        let d = decide(&c, ts("2026-03-14T01:00:00Z"), None);
        assert_eq!(utc(&d.window.unwrap().opens), "2026-03-13T22:00:00Z");
        assert_eq!(utc(&d.next_window.unwrap().opens), "2026-03-20T22:00:00Z");

        // `from == to` is a whole day.
        let c = cal("timezone: UTC\nwindows:\n  - {name: day, days: [mon], from: \"06:00\", to: \"06:00\"}\n");
        check_table_cal(
            &c,
            &[
                ("2026-03-16T05:59:00Z", false, None),
                ("2026-03-16T06:00:00Z", true, Some("day")),
                ("2026-03-17T05:59:00Z", true, Some("day")),
                ("2026-03-17T06:00:00Z", false, None),
            ],
        );
    }

    fn check_table_cal(c: &Calendar, rows: &[(&str, bool, Option<&str>)]) {
        for (at, go, window) in rows {
            let d = decide(c, ts(at), None);
            assert_eq!(d.go, *go, "{at}");
            assert_eq!(d.window.and_then(|w| w.name).as_deref(), *window, "{at}");
        }
    }

    #[test]
    fn a_freeze_cuts_a_window_that_crosses_midnight() {
        // Every night 22:00-02:00; the last day of each month is frozen.
        let c = cal("\
timezone: UTC
windows:
  - {name: nightly, days: [mon, tue, wed, thu, fri, sat, sun], from: \"22:00\", to: \"02:00\"}
freezes:
  - {name: last-day, last_days_of_month: 1}
");
        // Mar 30 23:00: allowed, but only until Mar 31 00:00 when the freeze begins.
        let d = decide(&c, ts("2026-03-30T23:00:00Z"), None);
        assert!(d.go);
        assert_eq!(
            utc(d.window.as_ref().unwrap().closes.as_ref().unwrap()),
            "2026-03-31T00:00:00Z"
        );
        assert!(
            d.reasons[0]
                .message
                .contains("when freeze `last-day` begins"),
            "{}",
            d.reasons[0].message
        );
        // Mar 31 01:00: inside the window that opened on the 30th, but frozen. The
        // window opening on the 31st is frozen until Apr 1 00:00, then allowed to 02:00.
        let d = decide(&c, ts("2026-03-31T01:00:00Z"), None);
        assert!(!d.go);
        assert_eq!(names(&d, ReasonKind::Freeze), ["last-day"]);
        let next = d.next_window.unwrap();
        assert_eq!(utc(&next.opens), "2026-04-01T00:00:00Z");
        assert_eq!(utc(next.closes.as_ref().unwrap()), "2026-04-01T02:00:00Z");
        assert!(decide(&c, ts("2026-04-01T00:30:00Z"), None).go);
    }

    #[test]
    fn emergencies() {
        let c = cal(SEED);
        // Inside the month-end freeze and a window: the freeze is bypassed.
        let d = decide(&c, ts("2026-03-26T07:00:00Z"), Some("CVE-2026-0001"));
        assert!(d.go);
        let e = d.emergency.as_ref().unwrap();
        assert_eq!(e.reason, "CVE-2026-0001");
        assert_eq!(e.bypassed, ["freeze:month-end"]);
        assert!(e.refused_by.is_empty());
        assert!(d.reasons.iter().any(|r| r.bypassed));
        // Outside every window and in a freeze: both bypassed.
        let d = decide(&c, ts("2026-03-27T15:00:00Z"), Some("fix"));
        assert!(d.go);
        assert_eq!(
            d.emergency.unwrap().bypassed,
            ["outside-windows", "freeze:month-end"]
        );
        // Nothing to bypass: go, and the emergency is still recorded as such.
        let d = decide(&c, ts("2026-03-12T07:00:00Z"), Some("fix"));
        assert!(d.go);
        assert!(d.emergency.unwrap().bypassed.is_empty());
        // Without the emergency these are no-go.
        assert!(!decide(&c, ts("2026-03-27T15:00:00Z"), None).go);

        // A freeze with `emergency: false` refuses even emergencies.
        let c = cal("\
timezone: Europe/Berlin
freezes:
  - {name: audit, from: 2026-06-01, to: 2026-06-05, emergency: false}
  - {name: soft, from: 2026-06-05, to: 2026-06-10}
");
        let d = decide(&c, ts("2026-06-05T10:00:00Z"), Some("fix"));
        assert!(!d.go);
        let e = d.emergency.as_ref().unwrap();
        assert!(e.bypassed.is_empty(), "nothing was bypassed on no-go");
        assert_eq!(e.refused_by, ["freeze:audit"]);
        assert!(d.reasons.iter().all(|r| !r.bypassed));
        let freeze = d.reasons.iter().find(|r| r.id() == "freeze:audit").unwrap();
        assert!(
            freeze.message.contains("not even an emergency"),
            "{}",
            freeze.message
        );
        // The day after `audit` ends, only `soft` applies: an emergency may go.
        assert!(decide(&c, ts("2026-06-06T10:00:00Z"), Some("fix")).go);
        assert!(!decide(&c, ts("2026-06-06T10:00:00Z"), None).go);
    }

    #[test]
    fn health_blockers_are_bypassed_by_an_emergency() {
        let c = cal(SEED);
        let mut d = decide(&c, ts("2026-03-12T07:00:00Z"), None);
        assert!(d.go);
        d.block(Reason::rule_breached("error-ratio", "breached"));
        assert!(!d.go);
        let mut d = decide(&c, ts("2026-03-12T07:00:00Z"), Some("hotfix"));
        d.block(Reason::rule_failed("latency", "query failed"));
        assert!(d.go);
        assert_eq!(d.emergency.unwrap().bypassed, ["rule:latency"]);
    }

    #[test]
    fn fixed_offset_time_zone_has_no_dst() {
        let fixed = cal("timezone: \"-05:00\"\nwindows:\n  - {name: thu, days: [thu], from: \"02:00\", to: \"06:00\"}\n");
        let ny = cal("timezone: America/New_York\nwindows:\n  - {name: thu, days: [thu], from: \"02:00\", to: \"06:00\"}\n");
        // Thu 2026-07-09 06:30Z: 02:30 EDT in New York, 01:30 at -05:00.
        assert!(decide(&ny, ts("2026-07-09T06:30:00Z"), None).go);
        let d = decide(&fixed, ts("2026-07-09T06:30:00Z"), None);
        assert!(!d.go);
        assert_eq!(
            rfc3339(&d.next_window.unwrap().opens),
            "2026-07-09T02:00:00-05:00"
        );
        // In winter they agree.
        assert!(decide(&fixed, ts("2026-01-08T07:30:00Z"), None).go);
        assert!(decide(&ny, ts("2026-01-08T07:30:00Z"), None).go);
    }

    #[test]
    fn calendars_without_windows() {
        let c = cal("timezone: UTC\nfreezes:\n  - {name: month-end, last_days_of_month: 3}\n  - {name: h, from: 2026-06-01, to: 2026-06-02}\n");
        let d = decide(&c, ts("2026-05-10T12:00:00Z"), None);
        assert!(d.go);
        assert!(d.next_window.is_none());
        assert_eq!(d.reasons[0].kind, ReasonKind::NoWindows);
        // May 29-31 then Jun 1-2 are frozen back to back: open again Jun 3 00:00,
        // until Jun 28 (June's last 3 days).
        let d = decide(&c, ts("2026-05-30T12:00:00Z"), None);
        assert!(!d.go);
        let next = d.next_window.unwrap();
        assert_eq!(next.name, None);
        assert_eq!(utc(&next.opens), "2026-06-03T00:00:00Z");
        assert_eq!(utc(&next.closes.unwrap()), "2026-06-28T00:00:00Z");
    }

    #[test]
    fn no_next_window_within_the_horizon() {
        let c = cal("\
timezone: UTC
windows:
  - {name: w, days: [mon], from: \"01:00\", to: \"02:00\"}
freezes:
  - {name: long, from: 2026-01-01, to: 2028-01-01}
");
        let d = decide(&c, ts("2026-03-02T01:30:00Z"), None);
        assert!(!d.go);
        assert!(d.next_window.is_none());
        let c =
            cal("timezone: UTC\nfreezes:\n  - {name: long, from: 2026-01-01, to: 2028-01-01}\n");
        assert!(decide(&c, ts("2026-03-02T01:30:00Z"), None)
            .next_window
            .is_none());
    }

    #[test]
    fn the_ends_of_time_do_not_panic() {
        let c = cal(SEED);
        for t in [Timestamp::MIN, Timestamp::MAX, Timestamp::UNIX_EPOCH] {
            let d = decide(&c, t, Some("x"));
            let _ = show(&d.at);
            let _ = rfc3339(&d.at);
        }
        let c = cal("timezone: \"+14:00\"\nfreezes:\n  - {name: f, last_days_of_month: 28}\n");
        let _ = decide(&c, Timestamp::MAX, None);
        let _ = decide(&c, Timestamp::MIN, None);
    }

    #[test]
    fn messages_name_times_in_both_zones() {
        let c = cal(SEED);
        let d = decide(&c, ts("2026-03-12T07:00:00Z"), None);
        assert_eq!(
            d.reasons[0].message,
            "inside window `thursday-maintenance` (thu 02:00-06:00), open until Thu 2026-03-12 06:00 EDT (2026-03-12 10:00 UTC)"
        );
        let d = decide(&c, ts("2026-03-26T07:00:00Z"), None);
        assert_eq!(
            d.reasons[1].message,
            "inside freeze `month-end` (the last 7 days of every month: 2026-03-25 to 2026-03-31); an emergency change may bypass it"
        );
        let d = decide(&c, ts("2026-03-11T07:00:00Z"), None);
        assert_eq!(
            d.reasons[0].message,
            "outside every deploy window: `thursday-maintenance` (thu 02:00-06:00), `sunday-maintenance` (sun 02:00-06:00) in America/New_York"
        );
        let fixed = cal("timezone: \"-05:00\"\nfreezes: []\n");
        let d = decide(&fixed, ts("2026-03-11T07:00:00Z"), None);
        assert!(
            show(&d.at).starts_with("Wed 2026-03-11 02:00 "),
            "{}",
            show(&d.at)
        );
    }
}
