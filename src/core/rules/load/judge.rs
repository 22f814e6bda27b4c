//! The judges' keys of a rule (issue 12): `breaches: M of N`, `min_traffic`,
//! `baseline` with `above_baseline`/`below_baseline`/`no_baseline`, and `compare`.
//! Every query here (guard, canary, stable) goes through `compile_query`, the same
//! template, escaping and structure check as a rule's `query`.

use super::common::{choice, compile_query, duration, fmt_d, number};
use crate::core::eval::{
    BaselineParams, Breaches, CompareParams, Direction, EffectMeasure, Judging, NoData, OnLabels,
};
use crate::core::rules::{BaselineSource, Query};
use crate::core::yaml::walk::{fields, required, Cx, Fields};
use crate::core::yaml::{Node, Pos, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The largest N of `breaches: M of N`: each series keeps its last N polls.
pub const MAX_BREACH_WINDOW: u32 = 1000;

/// What the judges' keys compiled to (None where they were absent; `ok` false when one
/// of them was wrong, already reported).
#[derive(Default)]
pub(super) struct Judges {
    pub judging: Judging,
    pub guard: Option<Query>,
    /// Where `min_traffic.query` is written, and `min_traffic.on`'s labels and place.
    pub guard_pos: Option<Pos>,
    pub guard_on: Option<(Vec<String>, Pos)>,
    pub baseline: Option<BaselineSource>,
    /// (canary, stable) of `compare`.
    pub compare: Option<(Option<Query>, Option<Query>)>,
    /// A percentage baseline threshold was given (the rule has a threshold).
    pub baseline_threshold: bool,
    pub ok: bool,
}

/// `min_traffic.on: [label, ...]`: label names, at least one, at most `OnLabels::MAX`.
fn guard_on(cx: &mut Cx, n: &Node, what: &str) -> Option<Vec<String>> {
    let help = "e.g. `on: [service]`: a guard series applies to the rule series with the same values of these labels";
    let Value::Seq(items) = &n.value else {
        cx.error_help(
            format!(
                "{what}: `min_traffic.on` must be a list of label names, found {}",
                n.kind()
            ),
            n.pos,
            help,
        );
        return None;
    };
    let mut names = Vec::new();
    for item in items {
        let name = item.scalar_text().unwrap_or_default();
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || name == "__name__" {
            cx.error_help(
                format!(
                    "{what}: `min_traffic.on` holds {}, not a label name",
                    shown(item)
                ),
                item.pos,
                help,
            );
            return None;
        }
        names.push(name);
    }
    if names.is_empty() || names.len() > OnLabels::MAX {
        cx.error_help(
            format!(
                "{what}: `min_traffic.on` must name 1 to {} labels, found {}",
                OnLabels::MAX,
                names.len()
            ),
            n.pos,
            help,
        );
        return None;
    }
    Some(names)
}

/// `M of N`.
fn breaches(cx: &mut Cx, n: &Node, what: &str) -> Option<Breaches> {
    let help = "write `breaches: M of N`, e.g. `breaches: 3 of 5`: act when M of the last N judged polls breached";
    let Value::Str(text) = &n.value else {
        cx.error_help(
            format!("{what}: `breaches` must be `M of N`, found {}", n.kind()),
            n.pos,
            help,
        );
        return None;
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let parsed = match words.as_slice() {
        [m, "of", n] => m.parse::<u32>().ok().zip(n.parse::<u32>().ok()),
        _ => None,
    };
    let Some((m, total)) = parsed else {
        cx.error_help(format!("{what}: invalid `breaches` {text:?}"), n.pos, help);
        return None;
    };
    if m == 0 {
        cx.error_help(
            format!("{what}: `breaches: 0 of {total}` would act without any breach"),
            n.pos,
            "M must be at least 1",
        );
        return None;
    }
    if m > total {
        cx.error_help(
            format!("{what}: `breaches: {m} of {total}` can never be reached (M > N)"),
            n.pos,
            "M must be at most N",
        );
        return None;
    }
    if total > MAX_BREACH_WINDOW {
        cx.error_help(
            format!("{what}: `breaches: {m} of {total}`: N is too large"),
            n.pos,
            format!(
                "N is at most {MAX_BREACH_WINDOW} polls; use a longer `interval` for a longer span"
            ),
        );
        return None;
    }
    Some(Breaches { m, n: total })
}

/// A percentage such as `30%` (the `%` required), as a number of percent.
pub(super) fn percent(cx: &mut Cx, n: &Node, what: &str, max: Option<f64>) -> Option<f64> {
    let parsed = match &n.value {
        Value::Str(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite()),
        _ => None,
    };
    let Some(p) = parsed else {
        cx.error_help(
            format!(
                "{what} must be a percentage such as `30%`, found {}",
                shown(n)
            ),
            n.pos,
            "write the number followed by `%`, e.g. `30%`",
        );
        return None;
    };
    if p < 0.0 || max.is_some_and(|m| p > m) {
        cx.error_help(
            format!("{what} `{p}%` is out of range"),
            n.pos,
            match max {
                Some(m) => format!("between 0% and {m}%"),
                None => "at least 0%".to_string(),
            },
        );
        return None;
    }
    Some(p)
}

fn shown(n: &Node) -> String {
    match &n.value {
        Value::Str(s) => format!("{s:?}"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => n.kind().to_string(),
    }
}

pub(super) fn compile_judges(
    cx: &mut Cx,
    f: &Fields,
    what: &str,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
    interval: Option<Duration>,
) -> Judges {
    let errors_before = cx.diags.len();
    let mut j = Judges::default();

    if let Some(n) = f.get("breaches") {
        if let Some(fr) = f.get("for") {
            cx.error_help(
                format!("{what} has both `for` and `breaches`"),
                fr.pos,
                "`breaches: M of N` replaces `for`: keep one",
            );
        }
        j.judging.breaches = breaches(cx, n, what);
    }

    if let Some(n) = f.get("min_traffic") {
        if let Some(g) = fields(cx, n, "`min_traffic`", &["query", "min", "on"]) {
            let noun = format!("the guard query (`min_traffic.query`) of {what}");
            j.guard_pos = g.get("query").map(|q| q.pos);
            if let Some(on) = g.get("on") {
                j.guard_on = guard_on(cx, on, what).map(|names| (names, on.pos));
                j.judging.guard_on = j.guard_on.as_ref().and_then(|(n, _)| OnLabels::new(n));
            }
            j.guard = required(
                cx,
                &g,
                "query",
                "`min_traffic`",
                "add the query of the traffic, e.g. `sum by (service) (rate(http_requests_total[1m]))`",
            )
            .and_then(|q| compile_query(cx, q, &noun, vars, free));
            j.judging.min_traffic = required(cx, &g, "min", "`min_traffic`", "add e.g. `min: 0.5`")
                .and_then(|m| number(cx, m, "`min_traffic.min`"));
        }
    }

    let above_b = f.get("above_baseline");
    let below_b = f.get("below_baseline");
    let mut bp = BaselineParams {
        above_pct: above_b.and_then(|n| percent(cx, n, "`above_baseline`", None)),
        below_pct: below_b.and_then(|n| percent(cx, n, "`below_baseline`", Some(100.0))),
        no_baseline: NoData::Hold,
    };
    if let Some(n) = f.get("no_baseline") {
        if let Some(c) = choice(cx, n, "no_baseline", &["hold", "ok", "breach"]) {
            bp.no_baseline = match c {
                "ok" => NoData::Ok,
                "breach" => NoData::Breach,
                _ => NoData::Hold,
            };
        }
    }
    match f.get("baseline") {
        Some(n) => {
            if let Some(b) = fields(cx, n, "`baseline`", &["offset", "before"]) {
                match (b.get("offset"), b.get("before")) {
                    (Some(o), None) => {
                        j.baseline = duration(cx, o, "`baseline.offset`", false)
                            .map(BaselineSource::Offset)
                    }
                    (None, Some(o)) => {
                        j.baseline = duration(cx, o, "`baseline.before`", false)
                            .map(BaselineSource::Before)
                    }
                    (Some(_), Some(o)) => cx.error_help(
                        format!("{what}: `baseline` has both `offset` and `before`"),
                        o.pos,
                        "`offset: 1w` compares with the same time a week ago; `before: 30m` with the 30 minutes before the watch; keep one",
                    ),
                    (None, None) => cx.error_help(
                        format!("{what}: `baseline` has neither `offset` nor `before`"),
                        n.pos,
                        "add `offset: 1w` (the same query a week earlier) or `before: 30m` (its mean over the 30 minutes before the watch)",
                    ),
                }
            }
            if above_b.is_none() && below_b.is_none() {
                cx.error_help(
                    format!("{what} has a `baseline` but no `above_baseline` or `below_baseline`"),
                    n.pos,
                    "add e.g. `below_baseline: 30%` (breach when more than 30% below the baseline)",
                );
            }
            for key in ["breach_when", "alert"] {
                if let Some(k) = f.get(key) {
                    cx.error_help(
                        format!("{what} has both `baseline` and `{key}`"),
                        k.pos,
                        "a baseline compares a value with its past; a rule that breaches on presence has no value to compare",
                    );
                }
            }
            j.judging.baseline = Some(bp);
            j.baseline_threshold = true;
        }
        None => {
            for (key, node) in [
                ("above_baseline", above_b),
                ("below_baseline", below_b),
                ("no_baseline", f.get("no_baseline")),
            ] {
                if let Some(node) = node {
                    cx.error_help(
                        format!("{what} has `{key}` without `baseline`"),
                        node.pos,
                        "add `baseline:` with `offset: 1w` or `before: 30m`",
                    );
                }
            }
        }
    }

    if let Some(n) = f.get("compare") {
        for key in [
            "query",
            "alert",
            "above",
            "below",
            "breach_when",
            "baseline",
            "min_traffic",
        ] {
            if let Some(k) = f.get(key) {
                cx.error_help(
                    format!("{what} has both `compare` and `{key}`"),
                    k.pos,
                    "a `compare` rule judges its canary against its stable side: its queries are `compare.canary` and `compare.stable`, and it has no threshold",
                );
            }
        }
        if let Some(c) = fields(
            cx,
            n,
            "`compare`",
            &[
                "canary",
                "stable",
                "direction",
                "confidence",
                "min_effect",
                "window",
                "min_samples",
                "effect",
            ],
        ) {
            let side = |cx: &mut Cx, key: &str| {
                required(
                    cx,
                    &c,
                    key,
                    "`compare`",
                    "add both sides' queries, e.g. the p99 latency per pod of each track",
                )
                .and_then(|q| {
                    compile_query(cx, q, &format!("`compare.{key}` of {what}"), vars, free)
                })
            };
            let canary = side(cx, "canary");
            let stable = side(cx, "stable");
            j.compare = Some((canary, stable));
            let direction = required(
                cx,
                &c,
                "direction",
                "`compare`",
                "add `direction: increase` (bad = canary higher), `decrease` or `either`",
            )
            .and_then(|d| choice(cx, d, "direction", &["increase", "decrease", "either"]))
            .map(|d| match d {
                "increase" => Direction::Increase,
                "decrease" => Direction::Decrease,
                _ => Direction::Either,
            });
            let confidence = match c.get("confidence") {
                None => Some(CompareParams::CONFIDENCE),
                Some(n) => number(cx, n, "`compare.confidence`").and_then(|v| {
                    if v > 0.0 && v < 1.0 {
                        Some(v)
                    } else {
                        cx.error_help(
                            format!("{what}: `compare.confidence` must be between 0 and 1 (exclusive), found {v}"),
                            n.pos,
                            "e.g. `confidence: 0.98`: a healthy canary rolls back in at most 2 watches in 100",
                        );
                        None
                    }
                }),
            };
            let min_effect = match c.get("min_effect") {
                None => Some(0.0),
                Some(n) => percent(cx, n, "`compare.min_effect`", None).map(|p| p / 100.0),
            };
            let window = required(cx, &c, "window", "`compare`", "add e.g. `window: 10m`")
                .and_then(|w| duration(cx, w, "`compare.window`", false));
            if let (Some(w), Some(iv)) = (window, interval) {
                if w < iv {
                    cx.warn(
                        format!(
                            "{what}: `compare.window` ({}) is shorter than the poll interval ({})",
                            fmt_d(w),
                            fmt_d(iv)
                        ),
                        c.get("window").map_or(c.pos, |n| n.pos),
                        "each pool then holds one poll's samples only",
                    );
                }
            }
            let min_samples = match c.get("min_samples") {
                None => Some(10),
                Some(n) => match &n.value {
                    Value::Int(i) if *i >= 1 && *i <= 1_000_000 => Some(*i as usize),
                    _ => {
                        cx.error_help(
                            format!("{what}: `compare.min_samples` must be a whole number from 1 to 1000000, found {}", shown(n)),
                            n.pos,
                            "e.g. `min_samples: 20` (per side)",
                        );
                        None
                    }
                },
            };
            let effect = match c.get("effect") {
                None => Some(EffectMeasure::default()),
                Some(n) => choice(
                    cx,
                    n,
                    "`compare.effect`",
                    &["mean_ratio", "hodges_lehmann", "exceedance"],
                )
                .map(|e| match e {
                    "hodges_lehmann" => EffectMeasure::HodgesLehmann,
                    "exceedance" => EffectMeasure::Exceedance,
                    _ => EffectMeasure::MeanRatio,
                }),
            };
            // Exceedance runs from -100% to 100%: more could never breach.
            let min_effect = match (min_effect, effect, c.get("min_effect")) {
                (Some(m), Some(EffectMeasure::Exceedance), Some(n)) if m > 1.0 => {
                    cx.error_help(
                        format!(
                            "{what}: `compare.min_effect` `{}%` is out of range for `effect: exceedance`",
                            m * 100.0
                        ),
                        n.pos,
                        "between 0% and 100%: exceedance is P(canary > stable) - P(canary < stable), at most 100%",
                    );
                    None
                }
                (m, ..) => m,
            };
            if let (
                Some(direction),
                Some(confidence),
                Some(min_effect),
                Some(window),
                Some(min_samples),
                Some(effect),
            ) = (
                direction,
                confidence,
                min_effect,
                window,
                min_samples,
                effect,
            ) {
                j.judging.compare = Some(CompareParams {
                    direction,
                    confidence,
                    tests: 1,
                    min_effect,
                    window,
                    min_samples,
                    effect,
                });
            }
        }
    }
    j.ok = cx.diags[errors_before..]
        .iter()
        .all(|d| d.severity != crate::core::yaml::Severity::Error);
    j
}
