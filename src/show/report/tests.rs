use super::*;
use crate::core::eval::Labels;
use crate::core::events::{Event, RuleInfo, RuleState, SeriesValue};

fn info() -> RuleInfo {
    RuleInfo {
        name: "error-ratio".into(),
        description: Some("5xx <share>".into()),
        query: "sum(rate(x[1m]))".into(),
        above: Some(0.05),
        below: None,
        worse: crate::core::eval::Worse::Higher,
        threshold: "> 0.05".into(),
        for_s: 20.0,
        interval_s: 10.0,
        no_data: "ok",
        action: "rollback",
        graph_url: Some("http://prom/graph?g0.expr=x".into()),
    }
}

fn poll(v: f64, state: RuleState) -> Event {
    Event::Poll {
        rule: "error-ratio".into(),
        samples: vec![SeriesValue {
            labels: Labels::new(),
            value: Some(v),
        }],
        error: None,
        warnings: vec![],
        state,
        value: Some(v),
        reference: None,
        insufficient: 0,
        evidence: Default::default(),
        windows: None,
    }
}

fn record() -> Record {
    let mut r = Record::default();
    let events = [
        (
            0,
            Event::WatchStarted {
                rules_file: "rules/x.yaml".into(),
                prometheus: "http://prom/".into(),
                duration_s: 300.0,
                max_blind_s: 300.0,
                dry_run: false,
                vars: [("service".to_string(), "checkout".to_string())]
                    .into_iter()
                    .collect(),
                rules: vec![info()],
            },
        ),
        (0, poll(0.01, RuleState::Ok)),
        (
            10_000,
            poll(
                0.09,
                RuleState::Pending {
                    for_s: 0.0,
                    of_s: 20.0,
                    breaches: None,
                },
            ),
        ),
        (
            10_000,
            Event::Pending {
                rule: "error-ratio".into(),
                labels: Labels::new(),
                value: Some(0.09),
                threshold: "> 0.05".into(),
                for_s: 20.0,
                since_ms: None,
                evidence: Default::default(),
            },
        ),
        (
            20_000,
            poll(
                0.12,
                RuleState::Pending {
                    for_s: 10.0,
                    of_s: 20.0,
                    breaches: None,
                },
            ),
        ),
        (30_000, poll(0.1, RuleState::Breached)),
        (
            30_000,
            Event::Fired {
                rule: "error-ratio".into(),
                labels: Labels::new(),
                value: Some(0.1),
                threshold: "> 0.05".into(),
                breached_for_s: 20.0,
                action: "rollback",
                evidence: Default::default(),
            },
        ),
        (
            30_000,
            Event::ActionStarted {
                action: "rollback",
                rule: "error-ratio".into(),
                argv: vec!["kubectl".into(), "rollout".into()],
                timeout_s: 60.0,
                dry_run: false,
            },
        ),
        (
            31_000,
            Event::ActionFinished {
                action: "rollback",
                rule: "error-ratio".into(),
                status: "succeeded".into(),
                succeeded: true,
                duration_s: 1.0,
                output_tail: vec!["deployment rolled back".into()],
            },
        ),
        (
            31_000,
            Event::WatchFinished {
                outcome: "rolled_back",
                exit_code: 1,
                detail: "rolled back: rule `error-ratio` fired".into(),
                rule: Some("error-ratio".into()),
            },
        ),
    ];
    for (t, e) in &events {
        r.record(1_800_000_000_000 + t, e);
    }
    r
}

#[test]
fn record_keeps_samples_transitions_actions_and_outcome() {
    let r = record();
    assert_eq!(r.rules[0].samples.len(), 4);
    assert_eq!(
        r.rules[0]
            .transitions
            .iter()
            .map(|t| t.kind)
            .collect::<Vec<_>>(),
        ["pending", "fired"]
    );
    assert_eq!(r.rules[0].peak().map(|p| p.1), Some(0.12));
    assert_eq!(r.rules[0].breached_ms(r.ended_at), 21_000);
    assert_eq!(r.actions[0].succeeded, Some(true));
    assert_eq!(r.outcome.as_ref().unwrap().exit_code, 1);
}

#[test]
fn markdown_puts_the_outcome_first_then_rules_then_actions() {
    let md = markdown::render(&record());
    let outcome = md.find("**Outcome: ⏪ rolled back**").expect(&md);
    let rules = md
        .find("| `error-ratio` | > 0.05 | 20s | 0.12 | 21s | **fired → rollback** |")
        .expect(&md);
    let actions = md
        .find("| rollback | `error-ratio` | `kubectl rollout` | succeeded | 1s |")
        .expect(&md);
    assert!(outcome < rules && rules < actions, "{md}");
    assert!(md.contains("deployment rolled back"));
}

#[test]
fn html_is_self_contained_escaped_and_charts_every_rule() {
    let html = html::render(&record());
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("<script"), "no scripts");
    assert!(!html.contains("src=\"http"), "no external assets");
    assert_eq!(html.matches("<svg").count(), 1);
    assert!(html.contains("class=\"threshold\""));
    assert!(html.contains("class=\"span-pending\""));
    assert!(html.contains("class=\"span-breached\""));
    assert!(html.contains("class=\"action\""));
    assert!(
        html.contains("5xx &lt;share&gt;"),
        "descriptions are escaped"
    );
}

#[test]
fn values_are_shown_without_float_noise() {
    assert_eq!(fmt_value(0.22999999999999998), "0.23");
    assert_eq!(fmt_value(0.05), "0.05");
    assert_eq!(fmt_value(1234.5678), "1235");
    assert_eq!(fmt_value(0.000123456), "0.0001235");
    assert_eq!(fmt_value(0.0), "0");
}

#[test]
fn infinite_values_show_as_prometheus_writes_them_in_every_report_file() {
    assert_eq!(fmt_value(f64::INFINITY), "+Inf");
    assert_eq!(fmt_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(fmt_value(f64::NAN), "NaN");
    let mut r = Record::default();
    r.record(
        0,
        &Event::WatchStarted {
            rules_file: "rules/x.yaml".into(),
            prometheus: "http://prom/".into(),
            duration_s: 300.0,
            max_blind_s: 300.0,
            dry_run: false,
            vars: Default::default(),
            rules: vec![info()],
        },
    );
    r.record(0, &poll(f64::INFINITY, RuleState::Breached));
    r.record(
        0,
        &Event::Fired {
            rule: "error-ratio".into(),
            labels: Labels::new(),
            value: Some(f64::INFINITY),
            threshold: "> 0.05".into(),
            breached_for_s: 0.0,
            action: "rollback",
            evidence: Default::default(),
        },
    );
    let json = serde_json::to_value(&r).unwrap();
    let rule = &json["rules"][0];
    assert_eq!(rule["samples"][0]["value"], "+Inf");
    assert_eq!(rule["samples"][0]["series"][0]["value"], "+Inf");
    assert_eq!(rule["transitions"][0]["value"], "+Inf");
    let md = markdown::render(&r);
    assert!(md.contains("| +Inf |"), "{md}");
    assert!(md.contains("fired {} +Inf"), "{md}");
}

#[test]
fn the_chart_has_round_ticks_steps_dark_mode_and_the_reference_when_there_is_one() {
    let mut r = record();
    let svg = html::chart(&r.rules[0], &r, None);
    // Values 0.01..0.12 and the threshold 0.05: round ticks from 0, none negative.
    let ticks: Vec<&str> = svg
        .split("class=\"ytick\"")
        .skip(1)
        .filter_map(|s| s.split('>').nth(1)?.split('<').next())
        .collect();
    assert_eq!(ticks, ["0.00", "0.05", "0.10", "0.15"]);
    assert!(svg.contains("<path class=\"values\" d=\"M"), "{svg}");
    assert!(!svg.contains("polyline"), "steps, not slopes");
    assert!(
        !svg.contains("class=\"reference\""),
        "no reference line without one"
    );
    assert!(!html::legend(&r).contains("baseline"));
    assert!(html::render(&r).contains("prefers-color-scheme:dark"));
    for s in &mut r.rules[0].samples {
        s.reference = Some(0.02);
    }
    let svg = html::chart(&r.rules[0], &r, None);
    assert!(svg.contains("<path class=\"reference\" d=\"M"), "{svg}");
    assert!(html::legend(&r).contains("baseline"));
    // A known local zone adds a second row of time labels.
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let svg = html::chart(&r.rules[0], &r, Some(&tz));
    assert!(
        svg.contains("class=\"xtick-local\"") && svg.contains(">Berlin<"),
        "{svg}"
    );
}

/// The report's peak of a rule judged by `above_baseline:` alone (no `above:`) is its
/// highest value, in the record, the Markdown and the HTML: the direction comes from
/// `rule_info` (`Worse::of` the rule), not from whether `above:` is set.
#[test]
fn an_above_baseline_rule_peaks_at_its_highest_value() {
    let yaml = "watch:\n  duration: 5m\n  interval: 10s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: orders\n    query: rw_orders\n    baseline:\n      offset: 1w\n    above_baseline: 50%\n    for: 1m\n";
    let (spec, _) = crate::core::rules::load_str("r.yaml", yaml, &Default::default()).unwrap();
    let info = crate::run::watch::rule_info(&spec.rules[0], "");
    assert_eq!(info.above, None);
    let mut r = Record::default();
    let started = Event::WatchStarted {
        rules_file: "r.yaml".into(),
        prometheus: String::new(),
        duration_s: 300.0,
        max_blind_s: 300.0,
        dry_run: false,
        vars: Default::default(),
        rules: vec![info],
    };
    r.record(1_800_000_000_000, &started);
    let polls = [
        (1.0, RuleState::Ok),
        (7.5, RuleState::Ok),
        (2.0, RuleState::Ok),
    ];
    for (k, (v, state)) in polls.into_iter().enumerate() {
        let mut e = poll(v, state);
        if let Event::Poll { rule, .. } = &mut e {
            *rule = "orders".into();
        }
        r.record(1_800_000_000_000 + 10_000 * k as i64, &e);
    }
    assert_eq!(r.rules[0].peak(), Some((1_800_000_010_000, 7.5)));
    let md = markdown::render(&r);
    let row = md
        .lines()
        .find(|l| l.contains("orders") && l.starts_with('|'))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains("| 7.5 |"), "{row}");
    assert!(html::render(&r).contains("7.5"));
}

#[test]
fn outcomes_are_coloured_by_severity_with_a_mark_besides_the_colour() {
    use html::{outcome_severity, Severity};
    let of = |o: &str| outcome_severity(o);
    assert_eq!(of("healthy"), Severity::Good);
    assert_eq!(of("running"), Severity::Info);
    assert_eq!(of("cancelled"), Severity::Neutral);
    for o in ["paused", "inconclusive", "interrupted"] {
        assert_eq!(of(o), Severity::Warn, "{o}");
    }
    for o in [
        "rolled_back",
        "rollback_failed",
        "pause_failed",
        "rollback_unknown",
        "pause_unknown",
        "query_rejected",
        "invalid",
        "unknown",
        "from_a_newer_build",
    ] {
        assert_eq!(of(o), Severity::Bad, "{o}");
    }
    // No two severities share a class or a mark (every kind is decided: the match
    // in `outcome_severity` is exhaustive).
    let all = [
        Severity::Good,
        Severity::Info,
        Severity::Neutral,
        Severity::Warn,
        Severity::Bad,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a.class(), b.class());
            assert_ne!(a.mark(), b.mark());
        }
    }
    // report.html: a rollback is not shown as a healthy watch is.
    let page = html::render(&record());
    assert!(
        page.contains(r#"<p class="outcome bad"><span class="mark" aria-hidden="true">✖</span><strong>rolled_back</strong>"#),
        "{page}"
    );
}
