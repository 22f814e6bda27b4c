//! One entry of `rules:`: its keys checked, its query (or `alert:`) compiled, its
//! threshold, `for`/`breaches`, `no_data`, action and judges read, into a `Rule`.

use super::common::{choice, compile_query, duration, fmt_d, loop_interval, number};
use super::{alert, guard, judge};
use crate::core::eval::{NoData, Threshold};
use crate::core::rules::spec::{Action, BaselineSource, Rule};
use crate::core::rules::Query;
use crate::core::yaml::walk::{fields, required, string, Cx};
use crate::core::yaml::{Node, Pos, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "query",
    "alert",
    "labels",
    "above",
    "below",
    "breach_when",
    "for",
    "interval",
    "no_data",
    "expect_data",
    "action",
    "breaches",
    "min_traffic",
    "baseline",
    "max_window",
    "above_baseline",
    "below_baseline",
    "no_baseline",
    "compare",
    "pre_existing",
    "slo",
];

pub(super) fn compile_rule(
    cx: &mut Cx,
    node: &Node,
    default_interval: Option<Duration>,
    watch_duration: Option<Duration>,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
    step: Duration,
) -> Option<(Rule, Pos)> {
    let f = fields(cx, node, "rule", RULE_KEYS)?;
    let name = required(
        cx,
        &f,
        "name",
        "a rule",
        "add `name: error-ratio` (letters, digits, `-`, `_`, `.`)",
    )
    .and_then(|n| string(cx, n, "rule name"));
    let label = name
        .clone()
        .unwrap_or_else(|| format!("at line {}", f.pos.line));
    let what = format!("rule `{label}`");
    let name = name.filter(|n| {
        // Letters and digits of any script (an imported alert `Ошибки` keeps its
        // name), never spaces, symbols or invisible characters.
        let valid = !n.is_empty()
            && n.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            cx.error(
                format!("invalid rule name {n:?}: use letters, digits, `-`, `_` and `.`"),
                f.get("name").map_or(f.pos, |n| n.pos),
            );
        }
        valid
    });
    let description = f
        .get("description")
        .and_then(|n| string(cx, n, "description"));

    let interval = match f.get("interval") {
        Some(n) => loop_interval(cx, n, "rule interval"),
        None => default_interval,
    };
    let judges = judge::compile_judges(cx, &f, &what, vars, free, interval);

    // `alert: NAME`: the query reads Prometheus's own `ALERTS` series (`load/alert.rs`).
    let alert = f.get("alert");
    if let (Some(l), None) = (f.get("labels"), alert) {
        cx.error_help(
            format!("{what} has `labels` without `alert`"),
            l.pos,
            "`labels:` narrows the `ALERTS` series of an `alert:` rule; put label matchers in the query instead",
        );
    }
    // `slo:`: the query is written from the objective's errors and total (`load/slo.rs`).
    let slo_node = f.get("slo");
    let slo = slo_node.and_then(|n| super::slo::compile_slo(cx, n, &what, vars, free, step));
    if slo_node.is_some() {
        for key in [
            "query",
            "alert",
            "above",
            "below",
            "breach_when",
            "compare",
            "baseline",
        ] {
            if let Some(k) = f.get(key) {
                cx.error_help(
                    format!("{what} has both `slo` and `{key}`"),
                    k.pos,
                    "an `slo:` rule is judged by its burn rates: drop the key, or write a separate rule",
                );
            }
        }
    }
    let query = if slo_node.is_some() {
        slo.as_ref().map(|s| s.query.clone())
    } else if let Some((canary, _)) = &judges.compare {
        // A compare rule's own query is its canary side.
        canary.clone()
    } else if let Some(a) = alert {
        if let Some(q) = f.get("query") {
            cx.error_help(
                format!("{what} has both `query` and `alert`"),
                q.pos,
                "an `alert:` rule reads ALERTS{alertname=...}; drop `query`, or drop `alert`",
            );
        }
        vars.and_then(|vars| alert::alert_query(cx, a, f.get("labels"), vars, &what))
            .map(Query::fixed)
    } else {
        required(
        cx,
        &f,
        "query",
        &what,
        "add the PromQL query whose value is judged, or `alert: NAME` to act while a Prometheus alert fires",
    )
    .and_then(|n| compile_query(cx, n, &format!("the query of {what}"), vars, free))
    };
    if let (Some(q), Some(g), Some(pos)) = (&query, &judges.guard, judges.guard_pos) {
        let on = judges.guard_on.as_ref().map(|(n, p)| (n.as_slice(), *p));
        guard::check_guard(cx, &what, &q.sample(), &g.sample(), pos, on);
    }
    let max_window = max_window(cx, &f, &what, &query, &judges, watch_duration);
    // An SLO rule's windows are asked whole where there is no watch (`gate`, a
    // verdict): its `max_window` is at least its longest window.
    let max_window = match (&slo, f.get("max_window")) {
        (Some(s), None) => max_window.map(|m| m.max(s.longest)),
        _ => max_window,
    };

    let above = f.get("above").and_then(|n| number(cx, n, "`above`"));
    let below = f.get("below").and_then(|n| number(cx, n, "`below`"));
    let threshold_given = f.get("above").is_some() || f.get("below").is_some();
    // `breach_when: present`: the query breaches while it returns any series.
    // An `alert:` rule breaches while the alert fires: `breach_when: present` implied.
    let present = match (f.get("breach_when"), alert) {
        (Some(n), _) => Some((n, choice(cx, n, "breach_when", &["present"]).is_some())),
        (None, Some(a)) => Some((a, true)),
        (None, None) => None,
    };
    if let Some((n, _)) = present {
        if threshold_given {
            cx.error_help(
                format!(
                    "{what} has both `{}` and a threshold",
                    if f.get("breach_when").is_some() { "breach_when" } else { "alert" }
                ),
                n.pos,
                "`breach_when: present` breaches on any returned series; drop `above`/`below`, or drop `breach_when`",
            );
        }
        for (key, healthy) in [("no_data", "ok"), ("expect_data", "false")] {
            if let Some(v) = f.get(key) {
                let fine = match &v.value {
                    Value::Str(t) => t == healthy,
                    Value::Bool(b) => b.to_string() == healthy,
                    _ => false,
                };
                if !fine {
                    cx.error_help(
                        format!(
                            "{what}: `{key}` does not apply with `{}`",
                            if f.get("breach_when").is_some() { "breach_when: present" } else { "alert" }
                        ),
                        v.pos,
                        "an empty result is the healthy state of a `breach_when: present` rule; remove the key",
                    );
                }
            }
        }
    } else if !threshold_given
        && !judges.baseline_threshold
        && judges.compare.is_none()
        && slo_node.is_none()
    {
        cx.error_help(
            format!("{what} has no threshold"),
            f.pos,
            "add `above: X` (breached when value > X), `below: Y`, or both for a band; or `breach_when: present` to breach while the query returns any series",
        );
    }
    if let (Some(a), Some(b)) = (above, below) {
        if b >= a {
            cx.error_help(
                format!(
                    "{what}: `below: {b}` is not under `above: {a}`, so no value would be healthy"
                ),
                f.get("below").map_or(f.pos, |n| n.pos),
                "with both, the rule breaches outside the band: below < value-is-ok < above",
            );
        }
    }
    let for_ = if f.get("breaches").is_some() {
        // `breaches: M of N` replaces `for` (both is an error, reported with the judges).
        Some(Duration::ZERO)
    } else {
        required(cx, &f, "for", &what, "add how long it must stay breached, e.g. `for: 2m` (`for: 0s` acts on the first breaching poll)")
            .and_then(|n| duration(cx, n, "`for`", true))
    };
    let no_data = match f.get("no_data") {
        Some(n) => choice(cx, n, "no_data", &["ok", "breach", "hold"]).map(|c| match c {
            "breach" => NoData::Breach,
            "hold" => NoData::Hold,
            _ => NoData::Ok,
        }),
        None => Some(NoData::Ok),
    };
    let expect_data = match f.get("expect_data").map(|n| (n, &n.value)) {
        None => Some(false),
        Some((_, Value::Bool(b))) => Some(*b),
        Some((n, _)) => {
            cx.error_help(
                format!("{what}: `expect_data` must be true or false, found {}", n.kind()),
                n.pos,
                "`expect_data: true` makes the watch inconclusive if the query never returns a series",
            );
            None
        }
    };
    let action = match f.get("action") {
        Some(n) => choice(cx, n, "action", &["rollback", "pause", "notify"]).map(|c| match c {
            "pause" => Action::Pause,
            "notify" => Action::Notify,
            _ => Action::Rollback,
        }),
        None => Some(Action::Rollback),
    };

    if below.is_some() && f.get("no_data").is_none() {
        cx.warn(
            format!("{what} uses `below:` without an explicit `no_data`"),
            f.get("below").map_or(f.pos, |n| n.pos),
            "if the signal disappears (e.g. the service stops reporting), the default `no_data: ok` treats that as healthy; say `no_data: breach` or `no_data: ok` explicitly",
        );
    }
    if let (Some(fr), Some(iv)) = (for_, interval) {
        if !fr.is_zero() && fr < iv {
            cx.warn(
                format!("{what}: `for` ({}) is shorter than its poll interval ({})", fmt_d(fr), fmt_d(iv)),
                f.get("for").map_or(f.pos, |n| n.pos),
                "a breach shorter than the gap between two polls is only seen at the next one, so it may act up to `interval − for` after `for`; use a shorter interval to act sooner",
            );
        }
    }

    let clock = [query.as_ref(), judges.guard.as_ref()]
        .into_iter()
        .flatten()
        .any(Query::uses_clock);
    let shape = super::pre_existing::Shape {
        present: present.is_some(),
        counted: if judges.compare.is_some() {
            Some("compare")
        } else if f.get("breaches").is_some() {
            Some("breaches")
        } else {
            None
        },
        clock,
    };
    let pre_existing = super::pre_existing::compile_pre_existing(cx, &f, &what, shape);

    if !judges.ok {
        return None;
    }
    if slo_node.is_some() && slo.is_none() {
        return None;
    }
    let threshold = match present {
        // The burn score: above 1 when both windows of a pair burn above its rate.
        _ if slo.is_some() => Threshold::band(Some(1.0), None),
        Some((_, true)) if !threshold_given => Threshold::present(),
        Some(_) => return None,
        None => Threshold::band(above, below),
    };
    if threshold_given && above.is_none() && below.is_none() {
        return None;
    }
    let max_window = max_window?;
    Some((
        Rule {
            name: name?,
            description,
            query: query?.capped(max_window),
            threshold,
            for_: for_?,
            interval: interval?,
            no_data: no_data?,
            expect_data: expect_data?,
            action: action?,
            judging: crate::core::rules::Judges::new(crate::core::eval::Judging {
                pre_existing: pre_existing?,
                slo: slo.map(|s| s.params),
                ..judges.judging
            }),
            guard: judges.guard.map(|g| g.capped(max_window)),
            baseline: judges.baseline,
            stable: judges
                .compare
                .and_then(|(_, s)| s)
                .map(|s| s.capped(max_window)),
            max_window,
        },
        f.pos,
    ))
}

/// `max_window`: the longest `${watch.elapsed}` is ever written (default: the watch's
/// duration, which a watch never outlives unless extended). A rule whose queries do
/// not read the watch's clock has no use for it (a warning); a `baseline.before`
/// (the mean over the time before the watch) cannot read it (an error).
fn max_window(
    cx: &mut Cx,
    f: &crate::core::yaml::walk::Fields,
    what: &str,
    query: &Option<Query>,
    judges: &judge::Judges,
    watch_duration: Option<Duration>,
) -> Option<Duration> {
    let guard = judges.guard.as_ref();
    let stable = judges.compare.as_ref().and_then(|(_, s)| s.as_ref());
    let clock = [query.as_ref(), guard, stable]
        .into_iter()
        .flatten()
        .any(Query::uses_clock);
    if query.as_ref().is_some_and(Query::uses_clock) {
        if let Some(BaselineSource::Before(_)) = judges.baseline {
            cx.error_help(
                format!("{what}: `baseline.before` cannot read a query with `${{watch.elapsed}}` or `${{watch.start}}`"),
                f.get("baseline").map_or(f.pos, |n| n.pos),
                "the `before` baseline is the query's mean before the watch began, where the watch has no clock; use `baseline.offset`, or a fixed range in the query",
            );
        }
    }
    match f.get("max_window") {
        Some(n) => {
            let d = duration(cx, n, "max_window", false)?;
            if d < Duration::from_secs(1) {
                cx.error_help(
                    format!("{what}: `max_window` `{}` is under 1s", fmt_d(d)),
                    n.pos,
                    "a window under a second holds at most one sample at any usual scrape interval; give at least `1s`",
                );
                return None;
            }
            if !clock {
                cx.warn(
                    format!("{what}: `max_window` has no effect: none of its queries uses `${{watch.elapsed}}`"),
                    n.pos,
                    "`max_window` caps `${watch.elapsed}`; remove it, or use `${watch.elapsed}` in the query",
                );
            }
            Some(d)
        }
        None => watch_duration,
    }
}
