//! What a replayed test did, in a test file's terms (times from the test's start), and
//! how it differs from what the test expected: the lines of a failing test's diff.

use super::file::{Expect, ExpectedAction};
use crate::core::history::{Conclusion, RuleHistory};
use crate::core::rules::Action;
use std::time::Duration;

/// One rule as the replay left it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleActual {
    pub rule: String,
    /// Its first pending and first firing, before the watch ended.
    pub pending_at: Option<Duration>,
    pub fired_at: Option<Duration>,
    /// Why its history could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    pub outcome: &'static str,
    /// Each rule's first firing before the watch ended, with its action.
    pub actions: Vec<ExpectedAction>,
    pub rules: Vec<RuleActual>,
}

/// A rule's replay, as `actual` needs it: name, action, history (Err: why unread).
pub type RuleRun<'a> = (&'a str, Action, Result<&'a RuleHistory, String>);

/// What the replay of a test starting at `base_ms` did.
pub fn actual(rules: &[RuleRun], decision: &Conclusion, base_ms: i64) -> Actual {
    let rel = |ms: i64| Duration::from_millis((ms - base_ms).max(0) as u64);
    let first = |h: &RuleHistory, kind: &str| {
        h.entries
            .iter()
            .filter(|e| e.kind == kind && e.at <= decision.cut_at)
            .map(|e| e.at)
            .min()
    };
    let mut actions = Vec::new();
    let mut out = Vec::new();
    for (name, action, h) in rules {
        let (pending_at, fired_at, error) = match h {
            Ok(h) => (first(h, "pending"), first(h, "fired"), None),
            Err(e) => (None, None, Some(e.clone())),
        };
        if let Some(at) = fired_at {
            actions.push(ExpectedAction {
                at: rel(at),
                rule: name.to_string(),
                action: action.as_str().to_string(),
            });
        }
        out.push(RuleActual {
            rule: name.to_string(),
            pending_at: pending_at.map(rel),
            fired_at: fired_at.map(rel),
            error,
        });
    }
    actions.sort();
    Actual {
        outcome: decision.verdict.name(),
        actions,
        rules: out,
    }
}

/// A time relative to a test's start, as a test file writes it (`5m15s`, `0s`).
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, r) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    if r > 0 {
        out.push_str(&format!("{r}ms"));
    }
    out
}

fn show_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".into(), show)
}

fn show_action(a: &ExpectedAction) -> String {
    format!("{} by {} at {}", a.action, a.rule, show(a.at))
}

/// The differences between what was expected and what happened: empty when the test
/// passes. Lines start with `-` (expected) and `+` (got) where both sides are lists.
pub fn diff(expect: &Expect, got: &Actual) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(o) = &expect.outcome {
        if o != got.outcome {
            out.push(format!("outcome: expected {o}, got {}", got.outcome));
        }
    }
    if let Some(want) = &expect.actions {
        if *want != got.actions {
            out.push("actions:".into());
            for a in want.iter().filter(|a| !got.actions.contains(a)) {
                out.push(format!("  - {}", show_action(a)));
            }
            for a in got.actions.iter().filter(|a| !want.contains(a)) {
                out.push(format!("  + {}", show_action(a)));
            }
        }
    }
    for r in &expect.rules {
        let Some(g) = got.rules.iter().find(|g| g.rule == r.rule) else {
            let names: Vec<&str> = got.rules.iter().map(|g| g.rule.as_str()).collect();
            out.push(format!(
                "rule {}: no such rule in the rule file (it has {})",
                r.rule,
                names.join(", ")
            ));
            continue;
        };
        if let Some(e) = &g.error {
            out.push(format!(
                "rule {}: its history could not be read: {e}",
                r.rule
            ));
        }
        for (what, want, have) in [
            ("pending_at", r.pending_at, g.pending_at),
            ("fired_at", r.fired_at, g.fired_at),
        ] {
            if let Some(want) = want {
                if want != have {
                    out.push(format!(
                        "rule {} {what}: expected {}, got {}",
                        r.rule,
                        show_opt(want),
                        show_opt(have)
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::promtest::file::ExpectedRule;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn times_show_as_a_test_file_writes_them() {
        assert_eq!(show(s(0)), "0s");
        assert_eq!(show(s(315)), "5m15s");
        assert_eq!(show(s(3600)), "1h");
        assert_eq!(show(Duration::from_millis(1500)), "1s500ms");
    }

    #[test]
    fn a_diff_names_each_difference_and_nothing_else() {
        let got = Actual {
            outcome: "healthy",
            actions: vec![ExpectedAction {
                at: s(60),
                rule: "a".into(),
                action: "notify".into(),
            }],
            rules: vec![RuleActual {
                rule: "a".into(),
                pending_at: Some(s(30)),
                fired_at: Some(s(60)),
                error: None,
            }],
        };
        let same = Expect {
            outcome: Some("healthy".into()),
            actions: Some(got.actions.clone()),
            rules: vec![ExpectedRule {
                rule: "a".into(),
                pending_at: Some(Some(s(30))),
                fired_at: None,
            }],
        };
        assert!(diff(&same, &got).is_empty());
        let other = Expect {
            outcome: Some("rolled_back".into()),
            actions: Some(vec![]),
            rules: vec![
                ExpectedRule {
                    rule: "a".into(),
                    pending_at: Some(None),
                    fired_at: None,
                },
                ExpectedRule {
                    rule: "b".into(),
                    pending_at: None,
                    fired_at: None,
                },
            ],
        };
        assert_eq!(
            diff(&other, &got),
            vec![
                "outcome: expected rolled_back, got healthy",
                "actions:",
                "  + notify by a at 1m",
                "rule a pending_at: expected never, got 30s",
                "rule b: no such rule in the rule file (it has a)",
            ]
        );
    }
}
