//! How a watch ends when no rollback decided it: the one pure judgement of what the
//! rules saw over the whole watch.
//!
//! A live watch (`run::watch`, at its end) and a replayed one (`core::history::conclude`)
//! both ask it, so a replay says "inconclusive" exactly where the watch would have:
//! a watch that ended blind, a rule never judged (every query failed, or its history
//! could not be read), a rule insufficient at every poll (`min_traffic`, `compare`),
//! or an `expect_data: true` rule that never returned a series. What the actions did
//! (a pause that ran or failed) is the caller's to add: only the watch loop knows it.

/// What one rule showed over a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleSeen<'a> {
    pub name: &'a str,
    /// Its last query succeeded.
    pub last_ok: bool,
    /// One of its queries succeeded.
    pub ever_ok: bool,
    /// Insufficient at every poll it was judged at (`RuleEval::never_judged`).
    pub insufficient: bool,
    /// One of its polls returned a usable sample.
    pub ever_data: bool,
    /// The rule says `expect_data: true`.
    pub expect_data: bool,
    /// It fired during a person's hold, the hold's end found its last poll failed,
    /// and no good poll came after: whether it still fires is unknown.
    pub held_unconfirmed: bool,
}

/// Why the rules cannot vouch for the release: the watch ends inconclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unjudged {
    /// The last query of every rule failed.
    Blind,
    /// These rules never had a query succeed.
    NeverJudged(Vec<String>),
    /// These rules were insufficient at every poll.
    Insufficient(Vec<String>),
    /// These `expect_data: true` rules never returned a series.
    NoData(Vec<String>),
    /// These rules fired during a hold and could not be confirmed after it.
    HeldUnconfirmed(Vec<String>),
}

impl Unjudged {
    /// The event name logs and metrics use for it.
    pub fn event(&self) -> &'static str {
        match self {
            Unjudged::Blind => "blind",
            Unjudged::NeverJudged(_) | Unjudged::Insufficient(_) => "never_judged",
            Unjudged::NoData(_) => "never_data",
            Unjudged::HeldUnconfirmed(_) => "held_unconfirmed",
        }
    }

    /// The rules it names (none for `Blind`).
    pub fn rules(&self) -> &[String] {
        match self {
            Unjudged::Blind => &[],
            Unjudged::NeverJudged(r)
            | Unjudged::Insufficient(r)
            | Unjudged::NoData(r)
            | Unjudged::HeldUnconfirmed(r) => r,
        }
    }

    /// The sentence a person reads after "inconclusive: ".
    pub fn reason(&self) -> String {
        let was = |n: usize| if n == 1 { "was" } else { "were" };
        match self {
            Unjudged::Blind => {
                "the watch ended while blind: the last query of every rule failed".to_string()
            }
            Unjudged::NeverJudged(r) => format!(
                "{} {} never judged: every query of {} failed",
                rule_list(r),
                was(r.len()),
                if r.len() == 1 { "it" } else { "each" }
            ),
            Unjudged::Insufficient(r) => format!(
                "{} {} not judged: insufficient at every poll (traffic under `min_traffic.min`, or fewer than `compare.min_samples` samples)",
                rule_list(r),
                was(r.len()),
            ),
            Unjudged::NoData(r) => format!(
                "{} returned no series at any poll and {} `expect_data: true`: a renamed metric or label?",
                rule_list(r),
                if r.len() == 1 { "has" } else { "have" }
            ),
            Unjudged::HeldUnconfirmed(r) => format!(
                "{} fired during a hold, and {} queries failed from its end to the watch's: whether {} still {} is unknown; act by hand",
                rule_list(r),
                if r.len() == 1 { "its" } else { "their" },
                if r.len() == 1 { "it" } else { "they" },
                if r.len() == 1 { "fires" } else { "fire" },
            ),
        }
    }
}

/// Whether the rules, as seen over the watch, can vouch for the release; `Some` says
/// why not. The first reason in this order wins: a breach held back and never
/// confirmed after the hold, blind, never judged, insufficient, no data where data
/// was expected.
pub fn unjudged(rules: &[RuleSeen]) -> Option<Unjudged> {
    let names = |f: &dyn Fn(&RuleSeen) -> bool| -> Vec<String> {
        rules
            .iter()
            .filter(|r| f(r))
            .map(|r| r.name.to_string())
            .collect()
    };
    let held = names(&|r| r.held_unconfirmed);
    if !held.is_empty() {
        return Some(Unjudged::HeldUnconfirmed(held));
    }
    if !rules.is_empty() && !rules.iter().any(|r| r.last_ok) {
        return Some(Unjudged::Blind);
    }
    let never = names(&|r| !r.ever_ok);
    if !never.is_empty() {
        return Some(Unjudged::NeverJudged(never));
    }
    let insufficient = names(&|r| r.insufficient);
    if !insufficient.is_empty() {
        return Some(Unjudged::Insufficient(insufficient));
    }
    let no_data = names(&|r| r.expect_data && !r.ever_data);
    if !no_data.is_empty() {
        return Some(Unjudged::NoData(no_data));
    }
    None
}

/// "rule `a`" or "rules `a`, `b`".
pub fn rule_list(names: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    if names.len() == 1 {
        format!("rule {}", quoted[0])
    } else {
        format!("rules {}", quoted.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str) -> RuleSeen<'_> {
        RuleSeen {
            name,
            last_ok: true,
            ever_ok: true,
            ever_data: true,
            ..Default::default()
        }
    }

    #[test]
    fn each_reason_and_its_order() {
        let ok = seen("a");
        let table: Vec<(&str, Vec<RuleSeen>, Option<Unjudged>)> = vec![
            ("all judged", vec![ok, seen("b")], None),
            ("no rules", vec![], None),
            (
                "blind beats never judged",
                vec![
                    RuleSeen {
                        last_ok: false,
                        ever_ok: false,
                        ..ok
                    },
                    RuleSeen {
                        last_ok: false,
                        ..seen("b")
                    },
                ],
                Some(Unjudged::Blind),
            ),
            (
                "never judged",
                vec![
                    ok,
                    RuleSeen {
                        last_ok: false,
                        ever_ok: false,
                        ..seen("b")
                    },
                ],
                Some(Unjudged::NeverJudged(vec!["b".into()])),
            ),
            (
                "never judged beats insufficient",
                vec![
                    RuleSeen {
                        insufficient: true,
                        ..ok
                    },
                    RuleSeen {
                        ever_ok: false,
                        ..seen("b")
                    },
                ],
                Some(Unjudged::NeverJudged(vec!["b".into()])),
            ),
            (
                "insufficient",
                vec![
                    RuleSeen {
                        insufficient: true,
                        ..ok
                    },
                    seen("b"),
                ],
                Some(Unjudged::Insufficient(vec!["a".into()])),
            ),
            (
                "no data where expected",
                vec![RuleSeen {
                    ever_data: false,
                    expect_data: true,
                    ..ok
                }],
                Some(Unjudged::NoData(vec!["a".into()])),
            ),
            (
                "a breach held back and unconfirmed beats blind",
                vec![RuleSeen {
                    last_ok: false,
                    held_unconfirmed: true,
                    ..ok
                }],
                Some(Unjudged::HeldUnconfirmed(vec!["a".into()])),
            ),
            (
                "no data, not expected",
                vec![RuleSeen {
                    ever_data: false,
                    ..ok
                }],
                None,
            ),
        ];
        for (name, rules, want) in table {
            assert_eq!(unjudged(&rules), want, "{name}");
        }
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            Unjudged::NeverJudged(vec!["a".into(), "b".into()]).reason(),
            "rules `a`, `b` were never judged: every query of each failed"
        );
        assert_eq!(
            Unjudged::NoData(vec!["a".into()]).reason(),
            "rule `a` returned no series at any poll and has `expect_data: true`: a renamed metric or label?"
        );
        assert_eq!(
            Unjudged::HeldUnconfirmed(vec!["a".into()]).reason(),
            "rule `a` fired during a hold, and its queries failed from its end to the watch's: whether it still fires is unknown; act by hand"
        );
        assert_eq!(
            Unjudged::Insufficient(vec!["a".into()]).event(),
            "never_judged"
        );
    }
}
