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
    let c = cal(
        "timezone: UTC\nwindows:\n  - {name: late, days: [fri], from: \"22:00\", to: \"02:00\"}\n",
    );
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
    let c = cal(
        "timezone: UTC\nwindows:\n  - {name: day, days: [mon], from: \"06:00\", to: \"06:00\"}\n",
    );
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
    let c = cal("timezone: UTC\nfreezes:\n  - {name: long, from: 2026-01-01, to: 2028-01-01}\n");
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
