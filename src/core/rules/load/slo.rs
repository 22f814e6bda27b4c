//! `slo:` (issue 24): an objective, its errors and total, and pairs of windows with a
//! burn rate, compiled into the one query an SLO rule asks and the parameters
//! `core::eval::slo` judges its answer with.
//!
//! `errors:` and `total:` are PromQL with a `${window}` placeholder where the range
//! goes, as Sloth writes them (`sum(rate(http_requests_total{code=~"5.."}[${window}]))`).
//! Each is proved as any rule query is (`compile_query`), `${window}` standing where
//! `${watch.elapsed}` may stand: alone, as a duration. The rule's query is then, for
//! each distinct window, `(errors) / (total)` at that window labelled
//! `slo_window="<window>"`, and the same since the watch began times its seconds
//! labelled `slo_window="spent"`, joined with `or`. Each window is `${watch.elapsed}`
//! capped at the window (so early in a watch it covers the release alone), and at least
//! one step of the data (`watch.step`, else 15s).

use super::common::{compile_query, duration, fmt_d, number};
use super::judge::percent;
use crate::core::eval::slo::{self, BurnPair, SloParams};
use crate::core::rules::query::{Part, ELAPSED};
use crate::core::rules::Query;
use crate::core::yaml::walk::{fields, required, Cx};
use crate::core::yaml::{Node, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SLO_KEYS: &[&str] = &["objective", "errors", "total", "windows", "period"];
const PAIR_KEYS: &[&str] = &["long", "short", "burn"];
/// The placeholder of a window in `errors:` and `total:`.
const WINDOW: &str = "${window}";

/// A compiled `slo:`.
pub(super) struct Slo {
    pub query: Query,
    pub params: SloParams,
    /// The longest window (the default `max_window`, so that `gate` asks them whole).
    pub longest: Duration,
}

pub(super) fn compile_slo(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
    floor: Duration,
) -> Option<Slo> {
    let f = fields(cx, node, &format!("`slo` of {what}"), SLO_KEYS)?;
    let objective = required(cx, &f, "objective", &format!("`slo` of {what}"), "add `objective: 99.9%`, the share of requests that must succeed")
        .and_then(|n| percent(cx, n, "`slo.objective`", None))
        .and_then(|p| {
            if p > 0.0 && p < 100.0 {
                Some(p)
            } else {
                cx.error_help(
                    format!("{what}: `slo.objective` `{p}%` is not between 0% and 100%"),
                    f.get("objective").map_or(f.pos, |n| n.pos),
                    "the objective is the share of good requests, strictly between 0% and 100%, e.g. `99.9%`",
                );
                None
            }
        });
    let slo_of = format!("`slo` of {what}");
    let mut side = |key: &str| {
        let (counted, selector) = if key == "errors" {
            ("failed requests", "{code=~\"5..\"}")
        } else {
            ("all requests", "")
        };
        let n = required(
            cx,
            &f,
            key,
            &slo_of,
            &format!("add `{key}:`, PromQL counting {counted} per second over `${{window}}`, e.g. `sum(rate(http_requests_total{selector}[${{window}}]))`"),
        )?;
        window_query(cx, n, &format!("`slo.{key}` of {what}"), vars, free)
    };
    let errors = side("errors");
    let total = side("total");
    let pairs = match f.get("windows") {
        None => Some(BurnPair::PAGE.to_vec()),
        Some(n) => windows(cx, n, what),
    };
    let period = match f.get("period") {
        None => Some(slo::PERIOD),
        Some(n) => duration(cx, n, "`slo.period`", false),
    };
    let params = SloParams::new(objective? / 100.0, period?, &pairs?)?;
    let (errors, total) = (errors?, total?);
    let on = |q: &Query, window: Option<Duration>| -> Vec<Part> {
        q.parts()
            .into_iter()
            .map(|p| match (p, window) {
                (Part::Elapsed, Some(cap)) => Part::Window { cap, floor },
                (p, _) => p,
            })
            .collect()
    };
    let ratio = |window: Option<Duration>| {
        let mut parts = vec![Part::Text("label_replace((".into())];
        parts.extend(on(&errors, window));
        parts.push(Part::Text(") / (".into()));
        parts.extend(on(&total, window));
        parts
    };
    let mut parts = Vec::new();
    for w in params.windows() {
        parts.extend(ratio(Some(w)));
        parts.push(Part::Text(format!(
            "), \"{}\", \"{}\", \"\", \"\") or ",
            slo::WINDOW_LABEL,
            slo::window_label(w)
        )));
    }
    parts.extend(ratio(None));
    parts.push(Part::Text(") * ".into()));
    parts.push(Part::ElapsedSecs);
    parts.push(Part::Text(format!(
        ", \"{}\", \"{}\", \"\", \"\")",
        slo::WINDOW_LABEL,
        slo::SPENT
    )));
    let query = Query::with_clock(parts);
    let longest = params.windows().into_iter().max()?;
    super::common::check_promql(
        cx,
        &query.clone().capped(longest).sample(),
        node.pos,
        &format!("the query of {what}"),
    )?;
    Some(Slo {
        query,
        params,
        longest,
    })
}

/// `errors:` or `total:`: a query with `${window}`, proved as a query with
/// `${watch.elapsed}` is (the placeholder stands where a duration goes).
fn window_query(
    cx: &mut Cx,
    n: &Node,
    noun: &str,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
) -> Option<Query> {
    let Value::Str(text) = &n.value else {
        cx.error(
            format!("{noun} must be a string, found {}", n.kind()),
            n.pos,
        );
        return None;
    };
    let clock = format!("${{{ELAPSED}}}");
    if text.contains(&clock) {
        cx.error_help(
            format!("{noun} uses `{clock}`"),
            cx.locate(n.pos, &clock),
            "write `${window}` where the range goes: each window of the rule is filled in there, capped by the time since the watch began",
        );
        return None;
    }
    if !text.contains(WINDOW) {
        cx.error_help(
            format!("{noun} has no `{WINDOW}`"),
            n.pos,
            "write the range as `${window}`, e.g. `sum(rate(http_requests_total{code=~\"5..\"}[${window}]))`",
        );
        return None;
    }
    let renamed = Node {
        value: Value::Str(text.replace(WINDOW, &clock)),
        pos: n.pos,
    };
    let before = cx.diags.len();
    let q = compile_query(cx, &renamed, noun, vars, free);
    // What the proof says of `${watch.elapsed}` it says of the `${window}` written.
    let say = |t: &str| {
        t.replace("(the watch's clock)", "(the SLO's window)")
            .replace(&clock, WINDOW)
            .replace(" or `@ ${watch.start}`", "")
    };
    for d in &mut cx.diags[before..] {
        d.message = say(&d.message);
        d.help = d.help.as_deref().map(say);
    }
    q
}

/// `windows:`: a list of `{long, short, burn}`, 1 to `MAX_PAIRS`.
fn windows(cx: &mut Cx, n: &Node, what: &str) -> Option<Vec<BurnPair>> {
    let Value::Seq(items) = &n.value else {
        cx.error_help(
            format!("{what}: `slo.windows` must be a list, found {}", n.kind()),
            n.pos,
            "e.g. `windows: [{long: 1h, short: 5m, burn: 14.4}, {long: 6h, short: 30m, burn: 6}]`",
        );
        return None;
    };
    if items.is_empty() || items.len() > slo::MAX_PAIRS {
        cx.error_help(
            format!(
                "{what}: `slo.windows` has {} pairs; give 1 to {}",
                items.len(),
                slo::MAX_PAIRS
            ),
            n.pos,
            "leave `windows` out for the SRE workbook's page-level pairs (1h/5m at 14.4, 6h/30m at 6)",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(f) = fields(cx, item, "a window pair", PAIR_KEYS) else {
            ok = false;
            continue;
        };
        let mut window = |key: &str| {
            let n = required(
                cx,
                &f,
                key,
                "a window pair",
                "a pair is `{long: 1h, short: 5m, burn: 14.4}`",
            )?;
            let d = duration(cx, n, &format!("`{key}`"), false)?;
            if d.subsec_nanos() != 0 || d < Duration::from_secs(1) {
                cx.error_help(
                    format!(
                        "{what}: the window `{}` is not a whole number of seconds",
                        fmt_d(d)
                    ),
                    n.pos,
                    "windows are PromQL ranges written in whole seconds or more, e.g. `5m`",
                );
                return None;
            }
            Some(d)
        };
        let long = window("long");
        let short = window("short");
        let burn = required(cx, &f, "burn", "a window pair", "add the burn rate both windows must exceed, e.g. `burn: 14.4`")
            .and_then(|n| Some((n, number(cx, n, "`burn`")?)))
            .and_then(|(n, b)| {
                if b > 0.0 {
                    Some(b)
                } else {
                    cx.error_help(
                        format!("{what}: `burn: {b}` is not above 0"),
                        n.pos,
                        "the burn rate is how many times faster than the objective allows the budget is spent: 1 spends it exactly over the period, 14.4 spends 2% of 30 days in an hour",
                    );
                    None
                }
            });
        if let (Some(l), Some(s)) = (long, short) {
            if s >= l {
                cx.error_help(
                    format!(
                        "{what}: the short window `{}` is not shorter than the long one `{}`",
                        fmt_d(s),
                        fmt_d(l)
                    ),
                    f.get("short").map_or(f.pos, |n| n.pos),
                    "the short window says the burn is still going on; the workbook takes 1/12 of the long one (1h and 5m)",
                );
                ok = false;
                continue;
            }
        }
        match (long, short, burn) {
            (Some(long), Some(short), Some(burn)) => out.push(BurnPair { long, short, burn }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
