//! `slo:` rules (issue 24): the query written from `errors`, `total` and the windows,
//! each window capped by the watch's clock and floored at one step; bad input named
//! at its line and column with a hint.

use super::*;
use crate::core::rules::query::Clock;
use std::time::Duration;

fn file(slo: &str) -> String {
    format!(
        "vars:\n  service: checkout\nwatch:\n  duration: 30m\n  interval: 15s\n  step: 10s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: budget\n    slo:\n{slo}    for: 1m\n"
    )
}

const QUERIES: &str = "      errors: sum(rate(http_requests_total{service=\"${service}\",code=~\"5..\"}[${window}]))\n      total: sum(rate(http_requests_total{service=\"${service}\"}[${window}]))\n";

fn load(text: &str) -> Result<Loaded, LoadError> {
    load_str(
        "t.yaml",
        text,
        &LoadOptions {
            sets: &[],
            check: false,
            outside: None,
        },
    )
}

fn err(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

#[test]
fn an_slo_rule_asks_every_window_capped_by_the_elapsed_time_and_floored_at_a_step() {
    let l = load(&file(&format!("      objective: 99.9%\n{QUERIES}"))).unwrap();
    let r = &l.0.rules[0];
    let slo = r.judging.slo.expect("slo params");
    assert_eq!(slo.pairs().len(), 2, "the workbook's page pairs by default");
    assert!((slo.budget() - 0.001).abs() < 1e-12);
    assert_eq!(r.threshold.above, Some(1.0));
    assert_eq!(
        r.condition(),
        "burn > 14.4 over 1h and 5m, or > 6 over 6h and 30m"
    );
    // The longest window is asked whole where there is no watch (`gate`).
    assert_eq!(r.max_window, Duration::from_secs(6 * 3600));
    let at = |elapsed_s: i64| {
        r.query.at(Clock {
            start_ms: 1_000_000_000,
            at_ms: 1_000_000_000 + elapsed_s * 1000,
        })
    };
    let early = at(2);
    // Two seconds in: every window is the step (10s), the spent part the 2s elapsed.
    assert_eq!(early.matches("[10s]").count(), 8, "{early}");
    assert!(
        early.contains("[2s]") && early.contains(") * 2.000, \"slo_window\", \"spent\""),
        "{early}"
    );
    let mid = at(600);
    for w in ["[300s]", "[600s]"] {
        assert!(mid.contains(w), "{mid}");
    }
    assert!(mid.contains("\"slo_window\", \"1h\"") && mid.contains("\"slo_window\", \"30m\""));
    let late = at(8 * 3600);
    for w in ["[300s]", "[1800s]", "[3600s]", "[21600s]"] {
        assert!(late.contains(w), "{late}");
    }
}

#[test]
fn windows_and_period_as_written() {
    let l = load(&file(&format!(
        "      objective: 99.5%\n{QUERIES}      period: 28d\n      windows:\n        - {{long: 2h, short: 10m, burn: 3}}\n"
    )))
    .unwrap();
    let slo = l.0.rules[0].judging.slo.unwrap();
    assert_eq!(slo.pairs().len(), 1);
    assert_eq!(slo.pairs()[0].long, Duration::from_secs(7200));
    assert_eq!(slo.period, Duration::from_secs(28 * 86_400));
}

#[test]
fn bad_slo_input_is_named_at_its_line_and_column_with_a_hint() {
    let cases: &[(String, &str, &str)] = &[
        (file(&format!("      objective: 100%\n{QUERIES}")), "t.yaml:12:18", "not between 0% and 100%"),
        (file(&format!("      objective: 0%\n{QUERIES}")), "t.yaml:12:18", "not between 0% and 100%"),
        (file(&format!("      objective: 99.9\n{QUERIES}")), "t.yaml:12:18", "percentage"),
        (
            file(&format!("      objective: 99.9%\n{QUERIES}      windows: [{{long: 1h, short: 5m, burn: 0}}]\n")),
            "t.yaml:15:45",
            "`burn: 0` is not above 0",
        ),
        (
            file(&format!("      objective: 99.9%\n{QUERIES}      windows: [{{long: 5m, short: 5m, burn: 2}}]\n")),
            "t.yaml:15:35",
            "is not shorter than the long one",
        ),
        (
            file("      objective: 99.9%\n      total: sum(rate(x[${window}]))\n"),
            "t.yaml:12:7",
            "has no `errors`",
        ),
        (
            file("      objective: 99.9%\n      errors: sum(rate(y[5m]))\n      total: sum(rate(x[${window}]))\n"),
            "t.yaml:13:15",
            "has no `${window}`",
        ),
        (
            file("      objective: 99.9%\n      errors: sum(rate(y[${window}])) by\n      total: sum(rate(x[${window}]))\n"),
            "t.yaml:13:15",
            "errors",
        ),
        (
            file("      objective: 99.9%\n      errors: sum(rate(y{a=\"${window}\"}[${window}]))\n      total: sum(rate(x[${window}]))\n"),
            "t.yaml:13:15",
            "`${window}` (the SLO's window) is a number that changes",
        ),
        (
            format!("{}    query: up\n", file(&format!("      objective: 99.9%\n{QUERIES}"))),
            "t.yaml:16:12",
            "both `slo` and `query`",
        ),
    ];
    for (text, at, what) in cases {
        let e = err(text);
        assert!(
            e.contains(at) && e.contains(what),
            "want {at} {what:?} in:\n{e}\n--- file:\n{text}"
        );
        // Every refusal of the `slo:` form says what to write (PromQL's own say why).
        assert!(
            e.contains("help:") || e.contains("not valid PromQL"),
            "a hint in:\n{e}"
        );
    }
}
