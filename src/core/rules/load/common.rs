//! What the loader's section compilers share: the load options, the value readers
//! (durations, numbers, choices), templates with their variables checked, and a
//! query compiled from its template and checked offline. Apart from `load.rs` so that
//! the section files (`vars.rs`, `command.rs`, `notify.rs`, `judge.rs`, `alert.rs`)
//! import these from a sibling, never from the parent that calls them.

use crate::core::rules::query::{self, Query};
use crate::core::rules::structure::{self, QueryError};
use crate::core::rules::template::{self, Piece};
use crate::core::yaml::diag::did_you_mean;
use crate::core::yaml::walk::{string, Cx};
use crate::core::yaml::{Node, Pos, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What a rule file may point at outside itself: the environment variable (`env:`) or
/// the file (`file:`) a channel's URL is read from. The core reads neither: a command
/// passes the host's (`io::host::Host`), a test its own, and without one such a
/// source is an error, so loading stays a function of its inputs (and the fuzzer
/// never reads the machine).
pub trait Outside: std::fmt::Debug + Sync {
    /// The variable's value, if it is set.
    fn var(&self, name: &str) -> Option<String>;
    /// The file's text.
    fn read(&self, path: &str) -> std::io::Result<String>;
}

/// How to load a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// `--set name=value` overrides.
    pub sets: &'a [(String, String)],
    /// Where `env:` and `file:` sources are read (None: nowhere; such a source is an
    /// error).
    pub outside: Option<&'a dyn Outside>,
    /// For `check`: a variable without a default that was not set gets its own name as
    /// a stand-in value, and a `--set` of an undeclared variable is only a warning (one
    /// `--set` may be meant for another of the files checked).
    pub check: bool,
}

/// The longest duration accepted (100 years). Anything longer is a typo, and near
/// `u64::MAX` seconds a duration cannot be added to a clock reading: a watch given
/// `duration: 18446744073709551615s` panicked at start.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000); // 100y of 365.25 days, as humantime counts

/// Parses a duration written as `30s`, `5m`, `1h30m` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{t}` has no unit; write e.g. `{t}s` or `{t}m`"));
    }
    match humantime::parse_duration(t) {
        Ok(d) if d > MAX_DURATION => Err(format!("`{t}` is too long (at most 100 years)")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "`{t}` is not a duration ({e}); write e.g. `30s`, `5m` or `1h30m`"
        )),
    }
}

pub(super) fn duration(cx: &mut Cx, node: &Node, what: &str, allow_zero: bool) -> Option<Duration> {
    let parsed = match &node.value {
        Value::Str(s) => parse_duration(s),
        Value::Int(0) => Ok(Duration::ZERO),
        Value::Int(i) => Err(format!("`{i}` has no unit; write e.g. `{i}s` or `{i}m`")),
        Value::Float(f) => Err(format!("`{f}` has no unit; write e.g. `30s` or `5m`")),
        _ => Err(format!(
            "expected a duration such as `30s`, found {}",
            node.kind()
        )),
    };
    match parsed {
        Ok(d) if d.is_zero() && !allow_zero => {
            cx.error(format!("{what} must be longer than 0s"), node.pos);
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(format!("invalid {what}: {e}"), node.pos);
            None
        }
    }
}

/// The shortest interval a loop may run at: `interval: 1ns` sent 12,922 queries in a
/// 3 s watch. Below `MIN_INTERVAL` is refused; below `WARN_INTERVAL` is a warning
/// (Prometheus itself scrapes every 15 s or so: a faster poll sees the same value).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// See `MIN_INTERVAL`.
pub const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// A duration that paces a loop (a watch's or a rule's `interval`).
pub(super) fn loop_interval(cx: &mut Cx, node: &Node, what: &str) -> Option<Duration> {
    let d = duration(cx, node, what, false)?;
    if d < MIN_INTERVAL {
        cx.error_help(
            format!(
                "{what} `{}` is too short: every rule would query Prometheus that often",
                fmt_d(d)
            ),
            node.pos,
            format!(
                "use at least {}; `15s` or Prometheus's scrape interval is usual",
                fmt_d(MIN_INTERVAL)
            ),
        );
        return None;
    }
    if d < WARN_INTERVAL {
        cx.warn(
            format!("{what} `{}` is under 1s: Prometheus's samples change at its scrape interval, so most polls repeat the last value", fmt_d(d)),
            node.pos,
            "use the scrape interval (often `15s`) unless you test",
        );
    }
    Some(d)
}

pub(super) fn number(cx: &mut Cx, node: &Node, what: &str) -> Option<f64> {
    let v = match &node.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Str(s) => {
            let help = if s.trim_end().ends_with('%') {
                "write a ratio as a plain number: 5% is `0.05`".to_string()
            } else if s.trim().parse::<f64>().is_ok() {
                format!("remove the quotes: `{}`", s.trim())
            } else {
                "thresholds are plain numbers such as `0.05` or `250`".to_string()
            };
            cx.error_help(
                format!("{what} must be a number, found the string {s:?}"),
                node.pos,
                help,
            );
            return None;
        }
        _ => {
            cx.error(
                format!("{what} must be a number, found {}", node.kind()),
                node.pos,
            );
            return None;
        }
    };
    if !v.is_finite() {
        cx.error(
            format!("{what} must be a finite number, found {v}"),
            node.pos,
        );
        return None;
    }
    Some(v)
}

pub(super) fn choice<'c>(
    cx: &mut Cx,
    node: &Node,
    what: &str,
    options: &[&'c str],
) -> Option<&'c str> {
    let text = match &node.value {
        Value::Str(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => {
            cx.error(
                format!(
                    "{what} must be one of {}, found {}",
                    options.join(" | "),
                    node.kind()
                ),
                node.pos,
            );
            return None;
        }
    };
    if let Some(o) = options.iter().find(|o| **o == text) {
        return Some(o);
    }
    let help = match did_you_mean(&text, options) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("one of: {}", options.join(", ")),
    };
    cx.error_help(format!("invalid {what} `{text}`"), node.pos, help);
    None
}

pub(super) fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a template and reports unknown variables; None if anything is wrong.
pub(super) fn template_of(
    cx: &mut Cx,
    text: &str,
    pos: Pos,
    what: &str,
    vars: &BTreeMap<String, String>,
    clock: bool,
) -> Option<Vec<Piece>> {
    let pieces = match template::parse(text) {
        Ok(p) => p,
        Err(e) => {
            let at = cx.locate(pos, &e.token);
            cx.error(format!("in {what}: {}", e.message), at);
            return None;
        }
    };
    let names: Vec<&str> = vars.keys().map(String::as_str).collect();
    let mut ok = true;
    for (name, _) in template::names(&pieces) {
        if query::is_clock(name) {
            if !clock {
                let at = cx.locate(pos, &format!("${{{name}}}"));
                cx.error_help(
                    format!("`${{{name}}}` cannot be used in {what}: it is the watch's clock, filled at each poll, and exists only in queries"),
                    at,
                    "use it in a rule's `query` (or `min_traffic.query`, `compare.canary`, `compare.stable`), e.g. `increase(x[${watch.elapsed}])`",
                );
                ok = false;
            }
            continue;
        }
        if !vars.contains_key(name) {
            let at = cx.locate(pos, &format!("${{{name}}}"));
            let help = match did_you_mean(name, &names) {
                Some(near) => format!("did you mean `${{{near}}}`?"),
                None => "declare it under `vars:` (with a default, or empty and given with --set)"
                    .into(),
            };
            cx.error_help(
                format!("unknown variable `${{{name}}}` in {what}"),
                at,
                help,
            );
            ok = false;
        }
    }
    ok.then_some(pieces)
}

pub(crate) fn compile_query(
    cx: &mut Cx,
    n: &Node,
    noun: &str,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
) -> Option<Query> {
    let text = string(cx, n, noun)?;
    let vars = vars?;
    let pieces = template_of(cx, &text, n.pos, noun, vars, true)?;
    let clock: BTreeSet<String> = template::names(&pieces)
        .filter(|(name, _)| query::is_clock(name))
        .map(|(name, _)| name.to_string())
        .collect();
    if clock.is_empty() {
        let q = render_checked(cx, n, &text, noun, &pieces, vars, free, &clock)?;
        check_promql(cx, &q, n.pos, noun)?;
        return Some(Query::fixed(q));
    }
    // The watch's clock: proved with values of every form it takes (the shortest and
    // longest elapsed, the earliest and a far start), each a number standing alone
    // where a number or duration goes; then rendered with distinctive values that
    // mark where each instant's digits go.
    let with = |elapsed: &str, start: &str| {
        let mut v = vars.clone();
        v.insert(query::ELAPSED.into(), elapsed.into());
        v.insert(query::START.into(), start.into());
        v
    };
    for (e, s) in [
        ("1ms", "0"),
        ("1s", "0"),
        ("3155760000s999ms", "9999999999"),
    ] {
        render_checked(cx, n, &text, noun, &pieces, &with(e, s), free, &clock)?;
    }
    let count = |name: &str| template::names(&pieces).filter(|(n, _)| *n == name).count();
    let (n_elapsed, n_start) = (count(query::ELAPSED), count(query::START));
    let mut parts = None;
    for (e, s) in MARKS {
        let q = render_checked(cx, n, &text, noun, &pieces, &with(e, s), free, &clock)?;
        if q.matches(e).count() == n_elapsed && q.matches(s).count() == n_start {
            if n_elapsed > 0 && elapsed_as_number(&q, e) {
                cx.error_help(
                    format!("in {noun}: `${{{}}}` is a duration (`753s600ms`), and Prometheus reads a duration only as a range, a subquery's range or step, or an offset, not where a number goes", query::ELAPSED),
                    n.pos,
                    "for the watch's age in seconds as a number, write `(time() - ${watch.start})`",
                );
                return None;
            }
            parts = Some(split_marks(&q, e, s));
            break;
        }
    }
    let Some(parts) = parts else {
        cx.error(
            format!("{noun} contains every number rollwatch uses to mark the watch's clock"),
            n.pos,
        );
        return None;
    };
    let q = Query::with_clock(parts);
    check_promql(cx, &q.sample(), n.pos, noun)?;
    Some(q)
}

/// Distinctive values of (`${watch.elapsed}`, `${watch.start}`) that mark where each
/// instant's value goes; the first pair the rendering holds exactly once per
/// placeholder is used. (promql-parser refuses a range of 2^32 seconds or more.)
const MARKS: &[(&str, &str)] = &[
    ("3052817364s", "5092817364"),
    ("2946101859s", "4669201609"),
    ("2871093465s", "8314462618"),
];

/// Whether `q`, rendered with `mark` (`3052817364s`) for `${watch.elapsed}`, has it
/// where a number goes: promql-parser reads a duration there as its seconds,
/// Prometheus refuses it.
fn elapsed_as_number(q: &str, mark: &str) -> bool {
    use promql_parser::parser::Expr;
    fn has(e: &Expr, secs: f64) -> bool {
        match e {
            Expr::NumberLiteral(l) => l.val.abs() == secs,
            Expr::Aggregate(a) => {
                has(&a.expr, secs) || a.param.as_ref().is_some_and(|p| has(p, secs))
            }
            Expr::Unary(u) => has(&u.expr, secs),
            Expr::Binary(b) => has(&b.lhs, secs) || has(&b.rhs, secs),
            Expr::Paren(p) => has(&p.expr, secs),
            Expr::Subquery(s) => has(&s.expr, secs),
            Expr::Call(c) => c.args.args.iter().any(|a| has(a, secs)),
            _ => false,
        }
    }
    let secs: f64 = mark.trim_end_matches('s').parse().unwrap_or(f64::NAN);
    structure::parse(q).is_ok_and(|e| has(&e, secs))
}

/// The rendering split at the marks.
fn split_marks(q: &str, e: &str, s: &str) -> Vec<query::Part> {
    let mut parts = Vec::new();
    let mut rest = q;
    loop {
        let next = [
            (rest.find(e), e, query::Part::Elapsed),
            (rest.find(s), s, query::Part::Start),
        ]
        .into_iter()
        .filter_map(|(i, m, p)| i.map(|i| (i, m, p)))
        .min_by_key(|(i, _, _)| *i);
        let Some((i, mark, part)) = next else {
            break;
        };
        if i > 0 {
            parts.push(query::Part::Text(rest[..i].to_string()));
        }
        parts.push(part);
        rest = &rest[i + mark.len()..];
    }
    if !rest.is_empty() {
        parts.push(query::Part::Text(rest.to_string()));
    }
    parts
}

/// A query template rendered through the structure proof, its errors reported.
#[allow(clippy::too_many_arguments)]
fn render_checked(
    cx: &mut Cx,
    n: &Node,
    text: &str,
    noun: &str,
    pieces: &[Piece],
    vars: &BTreeMap<String, String>,
    free: &BTreeSet<String>,
    numeric: &BTreeSet<String>,
) -> Option<String> {
    match structure::render_query_numeric(pieces, vars, free, numeric) {
        Ok(q) => Some(q),
        Err(QueryError::Placeholder(e)) => {
            // The same placeholder may appear more than once: point at this one.
            let nth = text[..e.offset].matches(e.token.as_str()).count();
            let mut at = cx.locate(n.pos, &e.token);
            for _ in 0..nth {
                let next = Pos {
                    offset: at.offset.map(|o| o + 1),
                    ..at
                };
                at = cx.locate(next, &e.token);
            }
            cx.error_help(
                format!("in {noun}: {}", e.message),
                at,
                "a value can only be the literal its placeholder stands for (a label value, a string, a number, a duration or a name); see \"Placeholders\" in docs/rules.md",
            );
            let name = e.token.trim_start_matches("${").trim_end_matches('}');
            cx.public(format!(
                "var `{name}`: the value does not fit where the rule file uses it"
            ));
            None
        }
        Err(QueryError::Template(why)) => {
            cx.error(format!("{noun} {why}"), n.pos);
            None
        }
    }
}

/// Checks the substituted query offline: valid PromQL that yields an instant value.
pub(super) fn check_promql(cx: &mut Cx, q: &str, pos: Pos, noun: &str) -> Option<()> {
    use promql_parser::parser::value::ValueType;
    match structure::parse(q) {
        Ok(expr) => match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => Some(()),
            ValueType::Matrix => {
                cx.error_help(
                    format!("{noun} returns a range vector, which has no single value to judge"),
                    pos,
                    "wrap the range in a function, e.g. `rate(x[5m])` or `max_over_time(x[5m])`",
                );
                None
            }
            ValueType::String => {
                cx.error(format!("{noun} returns a string, not a number"), pos);
                None
            }
        },
        Err(e) => {
            cx.error(format!("{noun} is not valid PromQL: {}", e.trim()), pos);
            None
        }
    }
}
