//! The release report of a replay: the same `Record` a watch's `Recorder` writes
//! (report.json, .md, .html), built from the judged history instead of from events.
//!
//! Why not by feeding `Record::record` the events a watch would emit: a replay has no
//! event stream, and the events carry what history does not, so the files would
//! change. `Fired`/`Resolved` carry `breached_for_s` (a replay's transitions have
//! none: `null` in its report.json); a dry-run `ActionStarted` records "not run (dry
//! run)" where a replay says "not run (replay)"; a `Poll` carries the series (a
//! replay keeps only the worst value per step); and a replay ends at the rollback's
//! step or the window's end, not at its last event. So the builder lives here, beside
//! the `Recorder`, filling the same types.

use crate::core::history::ReplayOutcome;
use crate::core::rules::WatchSpec;
use crate::core::time::rfc3339;
use crate::show::replay::Replayed;

/// The release report of a replay: the same files a watch writes, for a backtest.
/// Samples are the worst value and state at each step; no command ran.
pub fn record(
    spec: &WatchSpec,
    prometheus: &str,
    from: i64,
    to: i64,
    r: &Replayed,
) -> crate::show::report::Record {
    use crate::show::report::{
        ActionRecord, OutcomeRecord, Record, RuleRecord, SampleRecord, TransitionRecord,
    };
    let cut = r.decision.cut_at;
    let rules = spec
        .rules
        .iter()
        .zip(&r.histories)
        .map(|(rule, h)| {
            let mut rr = RuleRecord {
                info: std::sync::Arc::new(crate::run::watch::rule_info(rule, prometheus)),
                samples: Vec::new(),
                transitions: Vec::new(),
            };
            match h {
                Ok(h) => {
                    rr.samples = h
                        .states
                        .iter()
                        .zip(h.references.iter().map(|(_, r)| *r))
                        .filter(|((t, _, _), _)| *t <= cut)
                        .map(|((t, v, st), reference)| SampleRecord {
                            t: *t,
                            value: *v,
                            state: st.clone(),
                            series: Vec::new(),
                            error: None,
                            reference,
                        })
                        .collect();
                    rr.transitions = h
                        .entries
                        .iter()
                        .filter(|e| e.at <= cut)
                        .map(|e| TransitionRecord {
                            t: e.at,
                            kind: e.kind,
                            labels: e.labels.clone(),
                            value: e.value,
                            breached_for_s: None,
                            evidence: e.evidence.clone(),
                        })
                        .collect();
                }
                Err(e) => {
                    rr.samples.push(SampleRecord {
                        t: from,
                        value: None,
                        state: crate::core::events::RuleState::QueryError,
                        series: Vec::new(),
                        error: Some(e.to_string()),
                        reference: None,
                    });
                }
            }
            rr
        })
        .collect();
    let mut actions = Vec::new();
    if let Some(rule) = &r.decision.rule {
        let kind = if r.decision.verdict == ReplayOutcome::RolledBack {
            "rollback"
        } else {
            "pause"
        };
        let cmd = if kind == "rollback" {
            &spec.rollback
        } else {
            &spec.pause
        };
        actions.push(ActionRecord {
            action: kind,
            rule: rule.clone(),
            argv: cmd.as_ref().map(|c| c.argv.clone()).unwrap_or_default(),
            dry_run: true,
            started_at: r.decision.decided_at,
            finished_at: None,
            status: Some("not run (replay)".into()),
            succeeded: None,
            duration_s: None,
            output_tail: Vec::new(),
        });
    }
    let detail = match (r.decision.verdict, &r.decision.rule) {
        (ReplayOutcome::RolledBack, Some(rule)) => format!(
            "rule `{rule}` would have rolled back at {}",
            rfc3339(r.decision.decided_at)
        ),
        (ReplayOutcome::Paused, Some(rule)) => format!(
            "rule `{rule}` would have paused at {}",
            rfc3339(r.decision.decided_at)
        ),
        (ReplayOutcome::Inconclusive, _) => format!(
            "inconclusive: {}",
            r.decision
                .reason
                .as_deref()
                .unwrap_or("a rule was never judged")
        ),
        _ => "no rule would have acted".to_string(),
    };
    Record {
        rollwatch_version: env!("CARGO_PKG_VERSION"),
        kind: "replay",
        rules_file: spec.path.display().to_string(),
        prometheus: prometheus.to_string(),
        started_at: from,
        ended_at: if r.decision.verdict == ReplayOutcome::RolledBack {
            cut
        } else {
            to
        },
        planned_duration_s: (to - from) as f64 / 1000.0,
        dry_run: true,
        vars: std::sync::Arc::new(spec.vars.clone()),
        rules,
        actions,
        notifications: Vec::new(),
        people: Vec::new(),
        held: None,
        before_deploy: Vec::new(),
        outcome: Some(OutcomeRecord {
            outcome: r.decision.verdict.name(),
            exit_code: r.decision.verdict.exit_code(),
            detail,
            rule: r.decision.rule.clone(),
        }),
    }
}
