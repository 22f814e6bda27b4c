use super::*;

#[test]
fn value_ticks_are_round() {
    // (lo, hi) of the data -> the tick labels.
    let table: &[(f64, f64, &[&str])] = &[
        (0.0, 0.1003, &["0.00", "0.05", "0.10", "0.15"]),
        (0.0, 0.1, &["0.00", "0.02", "0.04", "0.06", "0.08", "0.10"]),
        (0.0, 1.0, &["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        (0.2, 0.26, &["0.20", "0.22", "0.24", "0.26"]),
        (0.0, 950.0, &["0", "200", "400", "600", "800", "1000"]),
        (-3.0, 4.0, &["-4", "-2", "0", "2", "4"]),
        (0.0, 0.0, &["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        (5.0, 5.0, &["4.4", "4.6", "4.8", "5.0", "5.2", "5.4", "5.6"]),
        (
            0.0,
            1e-5,
            &[
                "0.000000", "0.000002", "0.000004", "0.000006", "0.000008", "0.000010",
            ],
        ),
    ];
    for (lo, hi, want) in table {
        let a = nice_ticks(*lo, *hi, 5);
        let got: Vec<String> = a.ticks.iter().map(|v| a.label(*v)).collect();
        assert_eq!(got, *want, "{lo}..{hi}");
        assert!(a.lo <= *lo && a.hi >= *hi, "{lo}..{hi} inside {a:?}");
    }
}

#[test]
fn never_negative_data_gets_no_negative_axis() {
    for (lo, hi) in [
        (0.0, 0.1003),
        (0.0, 1e-9),
        (0.001, 0.002),
        (0.0, 0.0),
        (3.0, 3.0),
    ] {
        let a = nice_ticks(lo, hi, 5);
        assert!(a.lo >= 0.0, "{lo}..{hi}: {a:?}");
    }
}

#[test]
fn time_ticks_are_round_minutes() {
    // 2026-11-23T01:02:37Z for 10 minutes -> every 2 minutes from 01:04.
    let t0 = 1_795_395_757_000;
    let (step, ticks) = time_ticks(t0, t0 + 600_000, 8);
    assert_eq!(step, 120);
    let labels: Vec<String> = ticks
        .iter()
        .map(|t| time_label(*t, step, &TimeZone::UTC))
        .collect();
    assert_eq!(labels, ["01:04", "01:06", "01:08", "01:10", "01:12"]);
    // The same ticks in Asia/Kolkata (+05:30) and New York (-05:00 in November).
    let ist = TimeZone::get("Asia/Kolkata").unwrap();
    assert_eq!(time_label(ticks[0], step, &ist), "06:34");
    let ny = TimeZone::get("America/New_York").unwrap();
    assert_eq!(time_label(ticks[0], step, &ny), "20:04");
    // Short watches: round seconds; long ones: round hours.
    let (step, ticks) = time_ticks(t0, t0 + 60_000, 8);
    assert_eq!(step, 10);
    let (step, _) = time_ticks(t0, t0 + 10_000, 8);
    assert_eq!(step, 2);
    assert_eq!(time_label(ticks[0], step, &TimeZone::UTC), "01:02:40");
    let (step, ticks) = time_ticks(t0, t0 + 6 * 3_600_000, 8);
    assert_eq!(step, 3600);
    assert_eq!(time_label(ticks[0], step, &TimeZone::UTC), "02:00");
    for (span, _) in [(1_000, 0), (90_000, 0), (3_600_000, 0), (86_400_000, 0)] {
        let (_, ticks) = time_ticks(t0, t0 + span, 8);
        assert!(ticks.len() <= 8 && ticks.iter().all(|t| *t >= t0 && *t <= t0 + span));
    }
}

#[test]
fn values_are_steps_with_gaps() {
    let x = |t: i64| t as f64;
    let y = |v: f64| v;
    let pts = [
        (0, Some(1.0)),
        (10, Some(2.0)),
        (20, None),
        (30, Some(3.0)),
        (40, None),
    ];
    let (d, dots) = step_path(&pts, 50, x, y);
    assert_eq!(d, "M0.0,1.0H10.0V2.0H20.0M30.0,3.0H40.0");
    assert!(dots.is_empty());
    // A lone value at the very end is a dot.
    let (d, dots) = step_path(&[(0, None), (50, Some(1.0))], 50, x, y);
    assert_eq!((d.as_str(), dots), ("M50.0,1.0H50.0", vec![(50.0, 1.0)]));
}
