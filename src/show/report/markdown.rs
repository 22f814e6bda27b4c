//! report.md: the short post-release review. Outcome first, then the rules, then what
//! was done; it renders well as a GitHub job summary or a PR comment.

use super::{fmt_value, Record};
use crate::core::events::{rfc3339_ms, secs};
use std::fmt::Write as _;

fn headline(outcome: &str) -> &'static str {
    match outcome {
        "healthy" => "✅ healthy",
        "rolled_back" => "⏪ rolled back",
        "rollback_failed" => "❌ rollback FAILED",
        "paused" => "⏸️ paused",
        "pause_failed" => "❌ pause FAILED",
        "inconclusive" => "❔ inconclusive",
        "interrupted" => "⏹️ interrupted",
        _ => "❌ error",
    }
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(r: &Record) -> String {
    let mut out = String::new();
    let subject = r.subject();
    let (outcome, detail) = r.outcome_text();
    let _ = writeln!(out, "# rollwatch {}: {}", r.kind, cell(&subject));
    let _ = writeln!(out);
    let _ = writeln!(out, "**Outcome: {}** — {}", headline(outcome), detail);
    let _ = writeln!(out);
    let ran = (r.ended_at - r.started_at).max(0) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "Watched {} of {} planned ({} → {}), rules `{}`, Prometheus {}{}.",
        secs(ran),
        secs(r.planned_duration_s),
        rfc3339_ms(r.started_at),
        rfc3339_ms(r.ended_at),
        r.rules_file,
        r.prometheus,
        if r.dry_run {
            ", **dry run** (no command was run)"
        } else {
            ""
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "## Rules");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| rule | threshold | for | peak | time breached | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for rule in &r.rules {
        let peak = rule
            .peak()
            .map_or("no data".to_string(), |(_, v)| fmt_value(v));
        let breached = secs(rule.breached_ms(r.ended_at) as f64 / 1000.0);
        let errors = rule.samples.iter().filter(|s| s.error.is_some()).count();
        let verdict = if rule.fired() {
            format!("**fired → {}**", rule.info.action)
        } else if rule.transitions.last().is_some_and(|t| t.kind == "pending") {
            "pending at the end".to_string()
        } else if rule.samples.is_empty() {
            "never polled".to_string()
        } else {
            "ok".to_string()
        };
        let verdict = if errors > 0 {
            format!("{verdict} ({errors} failed queries)")
        } else {
            verdict
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            cell(&rule.info.name),
            cell(&rule.info.threshold),
            secs(rule.info.for_s),
            peak,
            breached,
            verdict
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Actions");
    let _ = writeln!(out);
    if r.actions.is_empty() {
        let _ = writeln!(out, "None: no rollback or pause was needed.");
    } else {
        let _ = writeln!(
            out,
            "| time | action | rule | command | result | duration |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for a in &r.actions {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | `{}` | {} | {} |",
                rfc3339_ms(a.started_at),
                a.action,
                cell(&a.rule),
                cell(&a.argv.join(" ")),
                cell(a.status.as_deref().unwrap_or("did not finish")),
                a.duration_s.map_or("-".to_string(), secs)
            );
        }
        for a in r.actions.iter().filter(|a| !a.output_tail.is_empty()) {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "<details><summary>last lines of the {} command's output</summary>\n",
                a.action
            );
            let _ = writeln!(out, "```");
            for line in &a.output_tail {
                let _ = writeln!(out, "{}", line.replace("```", "'''"));
            }
            let _ = writeln!(out, "```\n</details>");
        }
    }
    if !r.before_deploy.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "## Breaches before the deploy");
        let _ = writeln!(out);
        for n in &r.before_deploy {
            let _ = writeln!(out, "- {n}");
        }
    }
    if !r.people.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "## Orders from people");
        let _ = writeln!(out);
        for n in &r.people {
            let _ = writeln!(out, "- {}", cell(n));
        }
    }
    if !r.notifications.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "## Notifications");
        let _ = writeln!(out);
        for n in &r.notifications {
            let _ = writeln!(out, "- {n}");
        }
    }
    let transitions: Vec<_> = r
        .rules
        .iter()
        .flat_map(|rule| rule.transitions.iter().map(move |t| (t, &rule.info.name)))
        .collect();
    if !transitions.is_empty() {
        let mut transitions = transitions;
        transitions.sort_by_key(|(t, _)| t.t);
        let _ = writeln!(out);
        let _ = writeln!(out, "## Timeline");
        let _ = writeln!(out);
        for (t, name) in transitions.iter().take(50) {
            let labels = serde_json::to_string(&t.labels).unwrap_or_default();
            let value = t.value.map_or("no data".to_string(), fmt_value);
            let why = if t.evidence.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.evidence.text())
            };
            let _ = writeln!(
                out,
                "- {} `{}` {} {} {}{}",
                rfc3339_ms(t.t),
                name,
                t.kind,
                labels,
                value,
                why
            );
        }
        if transitions.len() > 50 {
            let _ = writeln!(out, "- … {} more in report.json", transitions.len() - 50);
        }
    }
    out
}
