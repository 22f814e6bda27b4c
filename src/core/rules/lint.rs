//! Lints over a loaded watch: rules that are valid but cannot do what their author meant.
//!
//! The loader judges a file on its own; some mistakes only show once the watch's
//! duration is known, and `watch --duration` or the agent's API can shorten that after
//! the file was checked. A rule whose `for` outlasts the watch passes every poll in
//! silence and the watch ends "healthy" without the rule ever having been able to fire.
//! `check`, `watch` and `serve` call the same pure function here, so all three say the
//! same thing about the same watch.

use super::WatchSpec;
use crate::core::yaml::diag::Diagnostic;
use crate::core::yaml::{self, Pos, Value};
use std::fmt;
use std::time::Duration;

/// A rule that cannot fire within the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeverFires {
    /// The rule's name.
    pub rule: String,
    /// The rule's index in `WatchSpec::rules` (to point at it in the file).
    pub index: usize,
    pub for_: Duration,
    /// `breaches: M of N`'s M (instead of `for`): M polls must breach, so the
    /// earliest fire is the M-th poll.
    pub breaches: Option<u32>,
    pub interval: Duration,
    /// The earliest poll, counted from the watch's start, at which the rule could fire:
    /// the first poll at or after `for` (polls run at 0, interval, 2 × interval, ...).
    pub earliest: Duration,
    /// The watch's duration it was judged against.
    pub duration: Duration,
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

impl fmt::Display for NeverFires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.breaches {
            write!(
                f,
                "rule `{}` can never fire: `breaches` needs {m} breaching polls, and with a poll every {} the earliest that could fire is at {}, when the watch ({}) has ended",
                self.rule,
                fmt_d(self.interval),
                fmt_d(self.earliest),
                fmt_d(self.duration)
            )
        } else if self.for_ >= self.duration {
            write!(
                f,
                "rule `{}` can never fire: its `for` ({}) is not shorter than the watch ({})",
                self.rule,
                fmt_d(self.for_),
                fmt_d(self.duration)
            )
        } else {
            write!(
                f,
                "rule `{}` can never fire: with `for` {} and a poll every {}, the earliest poll that could fire is at {}, when the watch ({}) has ended",
                self.rule,
                fmt_d(self.for_),
                fmt_d(self.interval),
                fmt_d(self.earliest),
                fmt_d(self.duration)
            )
        }
    }
}

impl NeverFires {
    /// What to do about it.
    pub fn help(&self) -> String {
        format!(
            "a breach this rule is meant to catch would pass unnoticed and the watch would end healthy; shorten its `{}` (or its interval), or make the watch longer than {} (`watch.duration`, `--duration`)",
            if self.breaches.is_some() { "breaches" } else { "for" },
            fmt_d(self.earliest)
        )
    }

    /// A warning pointing at the rule's `for` in `source` (the rule file's text).
    pub fn diagnostic(&self, source: &str) -> Diagnostic {
        Diagnostic::warning(
            self.to_string(),
            key_pos(
                source,
                self.index,
                if self.breaches.is_some() {
                    "breaches"
                } else {
                    "for"
                },
            ),
        )
        .with_help(self.help())
    }
}

/// Every rule of `spec` that cannot fire in a watch lasting `duration`: its first
/// chance to fire (the first poll at or after its `for`) is not before the watch ends.
/// Polls are counted from the watch's start; a breach already there at the first
/// poll is the earliest any rule can go pending, so this never warns about a rule that
/// could fire.
pub fn never_fires(spec: &WatchSpec, duration: Duration) -> Vec<NeverFires> {
    spec.rules
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| {
            let breaches = rule.judging.breaches.map(|b| b.m);
            let earliest = match breaches {
                // Polls at 0, interval, ...: the M-th breaching poll is the first that
                // can fire.
                Some(m) => rule.interval.saturating_mul(m.saturating_sub(1)),
                None => earliest_fire(rule.for_, rule.interval),
            };
            (earliest >= duration).then(|| NeverFires {
                rule: rule.name.clone(),
                index,
                for_: rule.for_,
                breaches,
                interval: rule.interval,
                earliest,
                duration,
            })
        })
        .collect()
}

/// The first poll time (a multiple of `interval`) at or after `for_`.
fn earliest_fire(for_: Duration, interval: Duration) -> Duration {
    let iv = interval.as_nanos();
    if iv == 0 {
        return for_;
    }
    let polls = for_.as_nanos().div_ceil(iv);
    Duration::from_nanos(u64::try_from(polls.saturating_mul(iv)).unwrap_or(u64::MAX))
}

/// Where `rules[index].<key>` (its `for` or `breaches`) sits in a rule file's text, if
/// it can be found.
fn key_pos(source: &str, index: usize, key: &str) -> Option<Pos> {
    let root = yaml::parse(source).ok()?;
    fn get<'n>(node: &'n yaml::Node, key: &str) -> Option<&'n yaml::Node> {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    let Value::Seq(items) = &get(&root, "rules")?.value else {
        return None;
    };
    let rule = items.get(index)?;
    Some(get(rule, key).map_or(rule.pos, |v| v.pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::{load_str, LoadOptions};

    fn spec(rules: &str) -> (WatchSpec, String) {
        let text = format!(
            "watch:\n  duration: 10m\n  interval: 30s\nrollback:\n  command: [\"true\"]\nrules:\n{rules}"
        );
        let (spec, _) = load_str("t.yaml", &text, &LoadOptions::default()).unwrap();
        (spec, text)
    }

    fn rule(name: &str, for_: &str, extra: &str) -> String {
        format!("  - name: {name}\n    query: up\n    above: 1\n    for: {for_}\n{extra}")
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn earliest_fire_is_the_first_poll_at_or_after_for() {
        assert_eq!(earliest_fire(S(0), S(30)), S(0));
        assert_eq!(earliest_fire(S(60), S(30)), S(60));
        assert_eq!(earliest_fire(S(61), S(30)), S(90));
        assert_eq!(earliest_fire(S(1), S(30)), S(30));
        assert_eq!(earliest_fire(S(5), Duration::ZERO), S(5));
        assert_eq!(
            earliest_fire(Duration::MAX, S(7)),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn for_not_shorter_than_the_watch_never_fires() {
        let (spec, _) = spec(
            &[
                rule("equal", "10m", ""),
                rule("longer", "1h", ""),
                rule("shorter", "9m", ""),
                rule("instant", "0s", ""),
            ]
            .concat(),
        );
        let found = never_fires(&spec, spec.duration);
        let names: Vec<&str> = found.iter().map(|n| n.rule.as_str()).collect();
        assert_eq!(names, ["equal", "longer"]);
        assert_eq!(found[0].index, 0);
        assert_eq!(found[1].index, 1);
        assert_eq!(
            found[0].to_string(),
            "rule `equal` can never fire: its `for` (10m) is not shorter than the watch (10m)"
        );
        assert!(
            found[0].help().contains("--duration"),
            "{}",
            found[0].help()
        );
    }

    #[test]
    fn m_of_n_needs_m_polls_within_the_watch() {
        // A poll every 30s: `3 of 5` can fire at the third poll, 60s in.
        let text = "  - name: flappy\n    query: up\n    above: 1\n    breaches: 3 of 5\n";
        let (spec, source) = spec(text);
        assert!(never_fires(&spec, S(61)).is_empty());
        let found = never_fires(&spec, S(60));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].breaches, found[0].earliest), (Some(3), S(60)));
        assert!(
            found[0]
                .to_string()
                .contains("`breaches` needs 3 breaching polls"),
            "{}",
            found[0]
        );
        assert!(found[0].help().contains("shorten its `breaches`"));
        let pos = found[0].diagnostic(&source).pos.expect("a position");
        let line = source.lines().nth(pos.line as usize - 1).unwrap();
        assert_eq!((line, pos.column), ("    breaches: 3 of 5", 15));
    }

    #[test]
    fn a_shorter_duration_makes_a_rule_unable_to_fire() {
        let (spec, _) = spec(&rule("r", "2m", ""));
        assert!(never_fires(&spec, spec.duration).is_empty());
        assert!(never_fires(&spec, S(121)).is_empty());
        let found = never_fires(&spec, S(120));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].duration, S(120));
        assert!(
            found[0].to_string().contains("the watch (2m)"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn the_poll_grid_can_make_a_shorter_for_unable_to_fire() {
        // Polls at 0, 4m, 8m: `for: 5m` is first judged fired at 8m, the watch's end.
        let (spec, _) = spec(&rule("coarse", "5m", "    interval: 4m\n"));
        let found = never_fires(&spec, S(480));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].earliest, S(480));
        assert_eq!(
            found[0].to_string(),
            "rule `coarse` can never fire: with `for` 5m and a poll every 4m, the earliest poll that could fire is at 8m, when the watch (8m) has ended"
        );
        // One poll later there is a chance.
        assert!(never_fires(&spec, S(481)).is_empty());
    }

    #[test]
    fn the_warning_points_at_the_rules_for() {
        let (spec, text) = spec(&[rule("ok", "1m", ""), rule("slow", "10m", "")].concat());
        let found = never_fires(&spec, spec.duration);
        assert_eq!(found.len(), 1);
        let d = found[0].diagnostic(&text);
        assert_eq!(d.severity, crate::core::yaml::Severity::Warning);
        let pos = d.pos.expect("a position");
        let line = text.lines().nth(pos.line as usize - 1).unwrap();
        assert_eq!(line, "    for: 10m");
        assert_eq!(pos.column, 10);
        let shown = d.render("t.yaml", &text);
        assert!(
            shown.starts_with("warning: rule `slow` can never fire"),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("--> t.yaml:{}:10", pos.line)),
            "{shown}"
        );
    }
}
