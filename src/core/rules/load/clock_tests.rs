//! `${watch.elapsed}` and `${watch.start}` (issue 22): reserved names, queries only,
//! proved at load to stand alone where a number or duration goes, so that each poll's
//! rendering is a substitution of digits; `max_window` caps the elapsed.

use super::*;
use crate::core::rules::query::Clock;
use std::time::Duration;

fn file(vars: &str, rule: &str) -> String {
    format!(
        "vars:\n  service: checkout\n{vars}watch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"kubectl\", \"rollout\", \"undo\", \"deployment/${{service}}\"]\nrules:\n  - name: r\n{rule}    above: 1\n    for: 1m\n"
    )
}

fn load(text: &str, sets: &[(&str, &str)]) -> Result<Loaded, LoadError> {
    let sets: Vec<(String, String)> = sets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_str(
        "t.yaml",
        text,
        &LoadOptions {
            sets: &sets,
            check: false,
            outside: None,
        },
    )
}

fn err(text: &str) -> String {
    load(text, &[]).unwrap_err().to_string()
}

const CLOCK: Clock = Clock {
    start_ms: 1_765_000_000_400,
    at_ms: 1_765_000_754_000,
};

#[test]
fn queries_render_the_watch_clock_at_each_instant() {
    // (query as written, rendered at CLOCK, rendered when the watch is 2h old)
    let cases: &[(&str, &str, &str)] = &[
        (
            "increase(payment_failures_total{service=\"${service}\"}[${watch.elapsed}])",
            "increase(payment_failures_total{service=\"checkout\"}[753s600ms])",
            "increase(payment_failures_total{service=\"checkout\"}[1800s])",
        ),
        (
            "sum(increase(x[${watch.elapsed}])) / sum(increase(y[${watch.elapsed}]))",
            "sum(increase(x[753s600ms])) / sum(increase(y[753s600ms]))",
            "sum(increase(x[1800s])) / sum(increase(y[1800s]))",
        ),
        (
            "time() - ${watch.start}",
            "time() - 1765000000",
            "time() - 1765000000",
        ),
        (
            "x @ ${watch.start} or x offset ${watch.elapsed}",
            "x @ 1765000000 or x offset 753s600ms",
            "x @ 1765000000 or x offset 1800s",
        ),
        // A mark's digits in the query's own text are not taken for a placeholder.
        (
            "x{a=\"3052817364s\"} + increase(y[${watch.elapsed}])",
            "x{a=\"3052817364s\"} + increase(y[753s600ms])",
            "x{a=\"3052817364s\"} + increase(y[1800s])",
        ),
    ];
    for (written, now, late) in cases {
        let (spec, _) = load(&file("", &format!("    query: '{written}'\n")), &[])
            .unwrap_or_else(|e| panic!("{written}: {e}"));
        let q = &spec.rules[0].query;
        assert!(q.uses_clock(), "{written}");
        assert_eq!(q.at(CLOCK), *now, "{written}");
        let two_hours = Clock {
            at_ms: CLOCK.start_ms + 7_200_000,
            ..CLOCK
        };
        // Capped by `max_window`, by default the watch's duration (30m).
        assert_eq!(q.at(two_hours), *late, "{written}");
        assert_eq!(spec.rules[0].max_window, Duration::from_secs(1800));
        // Shown as written, user variables substituted.
        assert!(q.text().contains("${watch."), "{written}: {}", q.text());
        assert!(!q.text().contains("${service}"), "{}", q.text());
    }
    // A query without the clock is sent as loaded.
    let (spec, _) = load(&file("", "    query: up\n"), &[]).unwrap();
    assert!(!spec.rules[0].query.uses_clock());
    assert_eq!(spec.rules[0].query.at(CLOCK), "up");
}

#[test]
fn max_window_caps_the_elapsed_and_is_checked() {
    let rule = "    query: 'increase(x[${watch.elapsed}])'\n    max_window: 20m\n";
    let (spec, _) = load(&file("", rule), &[]).unwrap();
    let q = &spec.rules[0].query;
    assert_eq!(spec.rules[0].max_window, Duration::from_secs(1200));
    let late = Clock {
        at_ms: CLOCK.start_ms + 3_600_000,
        ..CLOCK
    };
    assert_eq!(q.at(late), "increase(x[1200s])");
    assert_eq!(q.at(CLOCK), "increase(x[753s600ms])");
    // The guard carries the same cap.
    let guarded = "    query: 'increase(x[${watch.elapsed}])'\n    max_window: 5m\n    min_traffic:\n      query: 'sum(increase(y[${watch.elapsed}]))'\n      min: 1\n";
    let (spec, _) = load(&file("", guarded), &[]).unwrap();
    let g = spec.rules[0].guard.as_ref().unwrap();
    assert_eq!(g.at(late), "sum(increase(y[300s]))");

    let e = err(&file(
        "",
        "    query: 'increase(x[${watch.elapsed}])'\n    max_window: 5\n",
    ));
    assert!(e.contains("max_window") && e.contains("no unit"), "{e}");
    let e = err(&file(
        "",
        "    query: 'increase(x[${watch.elapsed}])'\n    max_window: 500ms\n",
    ));
    assert!(e.contains("under 1s"), "{e}");
    // Without the clock in any query, `max_window` is only a warning.
    let (_, warnings) = load(&file("", "    query: up\n    max_window: 5m\n"), &[]).unwrap();
    assert!(
        warnings
            .iter()
            .any(|d| d.message.contains("`max_window` has no effect")),
        "{warnings:?}"
    );
}

#[test]
fn the_clock_names_are_reserved() {
    // As a variable of the file: refused with its position.
    let e = err(&file("  watch.elapsed: 5m\n", "    query: up\n"));
    assert!(
        e.contains("`watch.elapsed` is a reserved name") && e.contains("t.yaml:3:3"),
        "{e}"
    );
    let e = err(&file("  watch.start: 0\n", "    query: up\n"));
    assert!(e.contains("`watch.start` is a reserved name"), "{e}");
    // It does not hide the file's other errors.
    let e = err(&file("  watch.start: 0\n", "    query: up(\n"));
    assert!(
        e.contains("reserved name") && e.contains("not valid PromQL") && e.contains("2 errors"),
        "{e}"
    );
    // From `--set`.
    let e = load(&file("", "    query: up\n"), &[("watch.elapsed", "1h")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`watch.elapsed` is reserved"), "{e}");
    // Other `watch.*` names are no placeholders at all.
    let e = err(&file("", "    query: 'increase(x[${watch.duration}])'\n"));
    assert!(e.contains("not a valid placeholder"), "{e}");
}

#[test]
fn the_clock_is_refused_outside_queries() {
    let cmd = "vars:\n  service: checkout\nwatch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"echo\", \"since ${watch.start}\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n";
    let e = err(cmd);
    assert!(
        e.contains("`${watch.start}` cannot be used in the rollback command")
            && e.contains("t.yaml:7:"),
        "{e}"
    );
    let silence = "vars:\n  service: checkout\nwatch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"true\"]\n  silence:\n    alertmanager: http://127.0.0.1:9093\n    matchers:\n      since: \"${watch.elapsed}\"\n    for: 10m\nrules:\n  - name: r\n    query: up\n    above: 1\n"; // (Alertmanager's port)
    let e = err(silence);
    assert!(
        e.contains("`${watch.elapsed}` cannot be used in the silence's matchers"),
        "{e}"
    );
}

#[test]
fn the_structure_proof_places_the_clock_where_a_number_goes() {
    // (query, what the error says)
    let cases: &[(&str, &str)] = &[
        // In a string literal: its value would be text, changing at every poll.
        (
            "up{since=\"${watch.start}\"}",
            "(the watch's clock) is a number that changes at every poll and cannot sit inside a string literal",
        ),
        // Part of a name: the metric would change at every poll.
        ("x_${watch.elapsed}", "does not stand alone"),
        // Glued to a number: another number.
        ("increase(x[1${watch.elapsed}])", "does not stand alone"),
        // Where a name goes.
        (
            "sum by (${watch.elapsed}) (x)",
            "a number or duration, but a name goes there",
        ),
        // Elapsed alone is a duration, not an instant value to judge.
        ("x[${watch.elapsed}]", "range vector"),
    ];
    for (q, why) in cases {
        let e = err(&file("", &format!("    query: '{q}'\n")));
        assert!(e.contains(why), "{q}: {e}");
        assert!(e.contains("t.yaml:"), "{q}: {e}");
    }
    // `baseline.before` is the mean before the watch, where it has no clock.
    let e = err(&file(
        "",
        "    query: 'increase(x[${watch.elapsed}])'\n    baseline:\n      before: 30m\n    above_baseline: 50%\n",
    ));
    assert!(e.contains("`baseline.before` cannot read"), "{e}");
}

/// `${watch.elapsed}` is written as a duration (`753s600ms`), which Prometheus reads
/// only as a range, a subquery's range or step, or an offset: where a number goes
/// (`x > 753s600ms`, `vector(753s600ms)`) it refuses the query at every poll. The
/// load says so (and how to get the number: `time() - ${watch.start}`).
#[test]
fn the_elapsed_is_refused_where_a_number_goes() {
    for q in [
        "x > ${watch.elapsed}",
        "vector(${watch.elapsed})",
        "topk(${watch.elapsed}, x)",
        "x * -${watch.elapsed}",
        "increase(x[${watch.elapsed}]) / ${watch.elapsed}",
    ] {
        let e = err(&file("", &format!("    query: '{q}'\n")));
        assert!(
            e.contains("`${watch.elapsed}` is a duration") && e.contains("time() - ${watch.start}"),
            "{q}: {e}"
        );
        assert!(e.contains("t.yaml:"), "{q}: {e}");
    }
    for q in [
        "x offset -${watch.elapsed}",
        "max_over_time(x[${watch.elapsed}:${watch.elapsed}])",
        "x > (time() - ${watch.start})",
    ] {
        load(&file("", &format!("    query: '{q}'\n")), &[]).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}
