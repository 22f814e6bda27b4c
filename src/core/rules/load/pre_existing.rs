//! A rule's `pre_existing:` key (issue 22): what a breach already there before the
//! watch began gets (`core::eval::pre_existing`). Written `pre_existing: judge`
//! (the default), `pre_existing: ignore`, or `pre_existing: {improve: 10%}` (the
//! margin is required: how much worse than before the deploy the value must get).

use super::common::choice;
use super::judge::percent;
use crate::core::eval::PreExisting;
use crate::core::yaml::walk::{fields, Cx, Fields};
use crate::core::yaml::Value;

/// What a rule is, as far as `pre_existing` cares.
pub(super) struct Shape {
    /// `breach_when: present` (or `alert:`): its values are not judged.
    pub present: bool,
    /// `breaches: M of N` or `compare`: judged by counts of polls, no `for` in the data.
    pub counted: Option<&'static str>,
    /// A query reads `${watch.elapsed}` or `${watch.start}`: no meaning before the watch.
    pub clock: bool,
}

pub(super) fn compile_pre_existing(
    cx: &mut Cx,
    f: &Fields,
    what: &str,
    shape: Shape,
) -> Option<PreExisting> {
    let Some(n) = f.get("pre_existing") else {
        return Some(PreExisting::Judge);
    };
    let help = "one of: `pre_existing: judge` (the default: judged as any breach), `pre_existing: ignore` (never acted on while it lasts), `pre_existing: {improve: 10%}` (acted on only if the value gets more than 10% worse than before the deploy)";
    let mode = match &n.value {
        Value::Str(s) if s == "improve" => {
            cx.error_help(
                format!("{what}: `pre_existing: improve` needs its margin"),
                n.pos,
                "write `pre_existing: {improve: 10%}`: the value must get more than 10% worse than before the deploy for the rule to act (`0%`: any worsening)",
            );
            return None;
        }
        Value::Map(_) => {
            let m = fields(cx, n, "`pre_existing`", &["improve"])?;
            let Some(p) = m.get("improve") else {
                cx.error_help(
                    format!("{what}: `pre_existing` as a mapping takes `improve`"),
                    n.pos,
                    help,
                );
                return None;
            };
            PreExisting::Improve {
                margin_pct: percent(cx, p, "`pre_existing.improve`", None)?,
            }
        }
        _ => match choice(cx, n, "pre_existing", &["judge", "ignore"])? {
            "ignore" => PreExisting::Ignore,
            _ => PreExisting::Judge,
        },
    };
    if mode == PreExisting::Judge {
        return Some(mode);
    }
    let refuse = |cx: &mut Cx, why: String, hint: &str| {
        cx.error_help(
            format!("{what}: `pre_existing: {}` {why}", mode.text()),
            n.pos,
            hint,
        );
    };
    if let Some(key) = shape.counted {
        refuse(
            cx,
            format!("does not apply with `{key}`"),
            "a breach before the deploy is read as `for` in the data; this rule counts polls. Remove `pre_existing`, or use `for`",
        );
        return None;
    }
    if shape.clock {
        refuse(
            cx,
            "cannot read a query with `${watch.elapsed}` or `${watch.start}`".into(),
            "such a query means nothing before the watch began; remove `pre_existing`, or use a fixed range in the query",
        );
        return None;
    }
    if shape.present && matches!(mode, PreExisting::Improve { .. }) {
        refuse(
            cx,
            "does not apply with `breach_when: present`".into(),
            "a present rule judges no value, so nothing can get worse; use `pre_existing: ignore`",
        );
        return None;
    }
    Some(mode)
}
