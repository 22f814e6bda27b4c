//! Unit tests of the calendar loader: every key, every mistake, with its position.

use super::load::parse_hh_mm;
use super::*;
use crate::core::yaml::diag::Severity;
use jiff::civil::Weekday;
use jiff::civil::{date, time};
use jiff::tz::TimeZone;

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
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/calendar.yaml"))
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
