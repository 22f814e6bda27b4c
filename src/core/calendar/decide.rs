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

    /// Rule `name` is breached now, by a breach already there through its `for`
    /// that its `pre_existing` mode (`ignore`, `improve`) lets a release go out into:
    /// said, not blocking.
    pub fn rule_pre_existing(name: &str, message: impl Into<String>) -> Reason {
        Reason::allows(ReasonKind::RuleBreached, Some(name.into()), message.into())
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
mod tests;
