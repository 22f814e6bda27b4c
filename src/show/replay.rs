//! What `rollwatch replay` prints: the report of one backtest (`Report`, one
//! `RuleReport` per rule, with its peak), its text timeline, and the per-deploy table
//! of `--deploys` (text or JSON). Data in, lines on stdout out; `cmd::replay` fetches
//! and judges, this renders.

use crate::core::history::{self, Conclusion, ReplayOutcome, RuleHistory};
use crate::core::rules::Rule;
use crate::core::time::{parse_time, rfc3339};
use crate::io::prom::QueryError;
use std::time::Duration;

/// One rule's replay, as reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleReport {
    pub name: String,
    pub action: crate::core::rules::Action,
    pub threshold: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub pending_at: Option<String>,
    pub fired_at: Option<String>,
    /// Labels of the series that fired (or of the peak, if none fired).
    pub labels: Option<crate::core::eval::Labels>,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub peak: Option<f64>,
    pub peak_at: Option<String>,
    pub timeline: Vec<history::Entry>,
    pub error: Option<String>,
    /// Series × steps insufficient (`min_traffic`, `compare`), and whether that was
    /// every step (the rule was not judged).
    pub insufficient: u64,
    pub never_judged: bool,
}

/// A whole replay, as reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub outcome: ReplayOutcome,
    pub decided_at: String,
    pub decided_by: Option<String>,
    /// Why the replayed watch is inconclusive, in the words a live watch ends with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rules: Vec<RuleReport>,
}

/// A finished replay: the report, the decision, and each rule's full history.
pub struct Replayed {
    pub report: Report,
    pub decision: Conclusion,
    pub histories: Vec<Result<RuleHistory, QueryError>>,
}

pub fn rule_report(rule: &Rule, h: &Result<RuleHistory, QueryError>, cut_at: i64) -> RuleReport {
    let mut r = RuleReport {
        name: rule.name.clone(),
        action: rule.action,
        threshold: rule.condition(),
        for_: humantime::format_duration(rule.for_).to_string(),
        pending_at: None,
        fired_at: None,
        labels: None,
        peak: None,
        peak_at: None,
        timeline: Vec::new(),
        error: None,
        insufficient: 0,
        never_judged: false,
    };
    let h = match h {
        Ok(h) => h,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.insufficient = h.insufficient;
    r.never_judged = h.never_judged;
    r.timeline = h
        .entries
        .iter()
        .filter(|e| e.at <= cut_at)
        .cloned()
        .collect();
    r.pending_at = r
        .timeline
        .iter()
        .find(|e| e.kind == "pending")
        .map(|e| rfc3339(e.at));
    if let Some(f) = r.timeline.iter().find(|e| e.kind == "fired") {
        r.fired_at = Some(rfc3339(f.at));
        r.labels = Some(f.labels.clone());
    }
    if let Some((t, v, labels)) = h.peak(cut_at) {
        r.peak = Some(*v);
        r.peak_at = Some(rfc3339(*t));
        if r.labels.is_none() {
            r.labels = Some(labels.clone());
        }
    }
    r
}

fn labels_text(l: &crate::core::eval::Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

pub fn print_text(report: &Report, from: i64) {
    println!("replay from {} to {}", report.from, report.to);
    for r in &report.rules {
        println!();
        println!(
            "{}  ({} for {}, action {})",
            r.name,
            r.threshold,
            r.for_,
            r.action.as_str()
        );
        if let Some(e) = &r.error {
            println!("  history could not be read: {e}");
            continue;
        }
        const SHOWN: usize = 20;
        for e in r.timeline.iter().take(SHOWN) {
            let value = e
                .value
                .map_or("no data".to_string(), crate::core::events::float::text);
            let why = if e.evidence.is_empty() {
                String::new()
            } else {
                format!("  ({})", e.evidence.text())
            };
            println!(
                "  {}  {:<8} {} {}{why}",
                rfc3339(e.at),
                e.kind,
                labels_text(&e.labels),
                value
            );
        }
        if r.timeline.len() > SHOWN {
            println!("  ... {} more transitions", r.timeline.len() - SHOWN);
        }
        if r.timeline.is_empty() {
            println!("  never breached");
        }
        if r.never_judged {
            println!(
                "  not judged: insufficient at every step ({} series-steps)",
                r.insufficient
            );
        } else if r.insufficient > 0 {
            println!(
                "  insufficient at {} series-steps (neither breach nor clear)",
                r.insufficient
            );
        }
        match (&r.peak, &r.peak_at) {
            (Some(p), Some(at)) => println!(
                "  peak {} at {at} (threshold {})",
                crate::core::events::float::text(*p),
                r.threshold
            ),
            _ => println!("  no data in the window"),
        }
    }
    println!();
    let decided = parse_time(&report.decided_at, 0).unwrap_or(from);
    let after =
        humantime::format_duration(Duration::from_secs(((decided - from).max(0) / 1000) as u64));
    match (report.outcome, &report.decided_by) {
        (ReplayOutcome::RolledBack, Some(rule)) => println!(
            "verdict: would have ROLLED BACK at {} ({after} in), rule `{rule}`",
            report.decided_at
        ),
        (ReplayOutcome::Paused, Some(rule)) => println!(
            "verdict: would have PAUSED at {} ({after} in), rule `{rule}`; no rollback followed",
            report.decided_at
        ),
        (ReplayOutcome::Inconclusive, _) => println!(
            "verdict: INCONCLUSIVE: {}",
            report
                .reason
                .as_deref()
                .unwrap_or("a rule was never judged")
        ),
        _ => println!("verdict: healthy: no rule would have acted"),
    }
}

#[derive(serde::Serialize)]
pub struct DeployRow {
    pub deploy_at: String,
    pub outcome: ReplayOutcome,
    pub rule: Option<String>,
    pub decided_at: String,
    /// The window was cut short because it reaches past now.
    pub truncated: bool,
    /// The verdict of the second rule file (`--compare-rules`, `--judge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared: Option<ComparedRow>,
}

#[derive(serde::Serialize)]
pub struct ComparedRow {
    pub outcome: ReplayOutcome,
    pub rule: Option<String>,
    pub decided_at: String,
}

/// The `--deploys` table: one row per deploy, the totals, and with a second rule file
/// (`--compare-rules`, `--judge`, named `second`) its verdicts beside and the
/// rollbacks it avoids or adds. JSON when `json`.
pub fn print_deploys(rows: &[DeployRow], second: Option<&str>, json: bool) {
    let count = |v: ReplayOutcome| rows.iter().filter(|r| r.outcome == v).count();
    let (rb, pa, he, inc) = (
        count(ReplayOutcome::RolledBack),
        count(ReplayOutcome::Paused),
        count(ReplayOutcome::Healthy),
        count(ReplayOutcome::Inconclusive),
    );
    let count2 = |v: ReplayOutcome| {
        rows.iter()
            .filter(|r| r.compared.as_ref().is_some_and(|c| c.outcome == v))
            .count()
    };
    let rolled = |o: ReplayOutcome| o == ReplayOutcome::RolledBack;
    // Rollbacks the second file avoids, and rollbacks it makes that the first did not.
    let avoided = rows
        .iter()
        .filter(|r| rolled(r.outcome) && r.compared.as_ref().is_some_and(|c| !rolled(c.outcome)))
        .count();
    let added = rows
        .iter()
        .filter(|r| !rolled(r.outcome) && r.compared.as_ref().is_some_and(|c| rolled(c.outcome)))
        .count();
    match (json, second) {
        (true, _) => {
            let mut doc = serde_json::json!({
                "deploys": rows,
                "totals": {"releases": rows.len(), "rolled_back": rb, "paused": pa, "healthy": he, "inconclusive": inc},
            });
            if let Some(name) = second {
                doc["compared"] = serde_json::json!({
                    "rules": name,
                    "totals": {"rolled_back": count2(ReplayOutcome::RolledBack), "paused": count2(ReplayOutcome::Paused), "healthy": count2(ReplayOutcome::Healthy), "inconclusive": count2(ReplayOutcome::Inconclusive)},
                    "rollbacks_avoided": avoided,
                    "rollbacks_added": added,
                });
            }
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        (false, Some(name)) => {
            println!(
                "{:<22}  {:<13}  {:<20}  {:<13}  {:<20}",
                "deploy", "verdict", "rule", "compared", "rule"
            );
            for r in rows {
                let c = r.compared.as_ref();
                let differs = c.is_some_and(|c| c.outcome != r.outcome);
                println!(
                    "{:<22}  {:<13}  {:<20}  {:<13}  {:<20}{}",
                    r.deploy_at,
                    r.outcome.name(),
                    r.rule.as_deref().unwrap_or("-"),
                    c.map_or("-", |c| c.outcome.name()),
                    c.and_then(|c| c.rule.as_deref()).unwrap_or("-"),
                    if differs { "  <- differs" } else { "" }
                );
            }
            println!();
            println!(
                "{} releases: {rb} would have been rolled back, {pa} paused, {he} healthy, {inc} inconclusive",
                rows.len()
            );
            println!(
                "compared ({name}): {} rolled back, {} paused, {} healthy, {} inconclusive; {avoided} rollback(s) avoided, {added} added",
                count2(ReplayOutcome::RolledBack),
                count2(ReplayOutcome::Paused),
                count2(ReplayOutcome::Healthy),
                count2(ReplayOutcome::Inconclusive),
            );
        }
        (false, None) => {
            println!(
                "{:<22}  {:<13}  {:<24}  decided at",
                "deploy", "verdict", "rule"
            );
            for r in rows {
                println!(
                    "{:<22}  {:<13}  {:<24}  {}{}",
                    r.deploy_at,
                    r.outcome.name(),
                    r.rule.as_deref().unwrap_or("-"),
                    r.decided_at,
                    if r.truncated {
                        "  (window reaches now: cut short)"
                    } else {
                        ""
                    }
                );
            }
            println!();
            println!(
                "{} releases: {rb} would have been rolled back, {pa} paused, {he} healthy, {inc} inconclusive",
                rows.len()
            );
        }
    }
}
