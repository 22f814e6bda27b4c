//! Loading and validating a rule file: YAML tree in, `WatchSpec` or every error out.
//!
//! `vars` compiles the `vars:` section and checks every value a caller gives (`--set`,
//! the agent's API) against the file's restrictions; `command` compiles `rollback:` and
//! `pause:`; `notify` the notification channels; `rule` one entry of `rules:`.

mod alert;
mod command;
mod guard;
mod judge;
mod notify;
mod rule;
mod vars;

use super::structure::{self, QueryError};
use super::template::{self, Piece};
use super::{defaults, Action, CommandSpec, Rule, WatchSpec};
use crate::core::eval::{NoData, Threshold};
use crate::core::yaml::diag::{did_you_mean, Diagnostic, Severity};
use crate::core::yaml::walk::{fields, required, string, Cx};
use crate::core::yaml::{self, Node, Pos, Value};
use command::compile_command;
use notify::compile_notify;
use rule::compile_rule;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use vars::{compile_vars, shown};

/// Everything wrong with a rule file (errors, and the warnings found alongside).
#[derive(Debug, Clone)]
pub struct LoadError {
    pub path: String,
    pub source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{}", d.render(&self.path, &self.source_text))?;
        }
        let n = self.errors().count();
        write!(
            f,
            "{}: {n} error{} found; nothing was run",
            self.path,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl LoadError {
    /// What a caller of the agent's API may be told (the API answers unauthenticated
    /// callers with `--open-verdicts`): the bad fields of the request, each in a short
    /// sentence, and never a line of the file, a pattern, another variable's name or a
    /// flag of the command line. A file that fails on its own says only that.
    /// What an authenticated caller of the agent's API is told: every error's
    /// message, without the file's lines or the hints meant for the command line
    /// (`--set`), which an API caller cannot use.
    pub fn api_message(&self) -> String {
        let out: Vec<&str> = self.errors().map(|d| d.message.as_str()).collect();
        out.join("; ")
    }

    pub fn public_message(&self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for d in self.errors() {
            if let Some(p) = d.public.as_deref() {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        if out.is_empty() {
            "the rule file does not load on the agent; its operator can run `rollwatch check` on it"
                .into()
        } else {
            out.join("; ")
        }
    }
}

impl std::error::Error for LoadError {}

/// How to load a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// `--set name=value` overrides.
    pub sets: &'a [(String, String)],
    /// For `check`: a variable without a default that was not set gets its own name as
    /// a stand-in value, and a `--set` of an undeclared variable is only a warning (one
    /// `--set` may be meant for another of the files checked).
    pub check: bool,
}

/// A loaded watch and the warnings about it.
pub type Loaded = (WatchSpec, Vec<Diagnostic>);

/// Loads a rule file, applying `--set` overrides.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&shown, &text, opts).map(|(mut spec, w)| {
            spec.path = path.to_path_buf();
            (spec, w)
        }),
        Err(e) => Err(LoadError {
            path: shown,
            source_text: String::new(),
            diagnostics: vec![Diagnostic::error(
                format!("cannot read the rule file: {e}"),
                None,
            )],
        }),
    }
}

/// Loads a rule file's text; `path` is only used in messages.
pub fn load_str(path: &str, text: &str, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut cx = Cx {
        source: text,
        diags: Vec::new(),
    };
    let spec = match yaml::parse(text) {
        Ok(root) => compile(&mut cx, &root, opts),
        Err((msg, pos)) => {
            cx.diags
                .push(Diagnostic::error(format!("invalid YAML: {msg}"), pos));
            None
        }
    };
    match spec {
        Some(mut spec) if !cx.has_errors() => {
            spec.path = path.into();
            Ok((spec, cx.diags))
        }
        _ => Err(LoadError {
            path: path.into(),
            source_text: text.into(),
            diagnostics: cx.diags,
        }),
    }
}

/// The longest duration accepted (100 years). Anything longer is a typo, and near
/// `u64::MAX` seconds a duration cannot be added to a clock reading: a watch given
/// `duration: 18446744073709551615s` panicked at start.
const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000); // 100y of 365.25 days, as humantime counts

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

fn duration(cx: &mut Cx, node: &Node, what: &str, allow_zero: bool) -> Option<Duration> {
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
fn loop_interval(cx: &mut Cx, node: &Node, what: &str) -> Option<Duration> {
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

fn number(cx: &mut Cx, node: &Node, what: &str) -> Option<f64> {
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

fn choice<'c>(cx: &mut Cx, node: &Node, what: &str, options: &[&'c str]) -> Option<&'c str> {
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

fn compile(cx: &mut Cx, root: &Node, opts: &LoadOptions) -> Option<WatchSpec> {
    if root.value == Value::Null {
        cx.diags
            .push(Diagnostic::error("the rule file is empty", None).with_help(
            "a rule file has `watch:`, `rules:` and a `rollback:` command; see rules/ for examples",
        ));
        return None;
    }
    let top = fields(
        cx,
        root,
        "the rule file",
        &["vars", "watch", "rollback", "pause", "rules", "notify"],
    )?;
    let (vars, allow_option, free) = match compile_vars(cx, top.get("vars"), opts) {
        Some((vars, allow, free)) => (Some(vars), allow, free),
        None => (None, BTreeSet::new(), BTreeSet::new()),
    };

    let watch = required(
        cx,
        &top,
        "watch",
        "the rule file",
        "add `watch:` with `duration:` and `interval:`",
    )
    .and_then(|n| {
        fields(
            cx,
            n,
            "`watch`",
            &[
                "duration",
                "interval",
                "max_blind",
                "query_timeout",
                "prometheus",
            ],
        )
    });
    let mut duration_ = None;
    let mut interval = None;
    let mut max_blind = Some(defaults::MAX_BLIND);
    let mut query_timeout = Some(defaults::QUERY_TIMEOUT);
    let mut prometheus = None;
    if let Some(w) = &watch {
        duration_ = required(cx, w, "duration", "`watch`", "add e.g. `duration: 30m`")
            .and_then(|n| duration(cx, n, "watch duration", false));
        interval = required(cx, w, "interval", "`watch`", "add e.g. `interval: 15s`")
            .and_then(|n| loop_interval(cx, n, "watch interval"));
        if let Some(n) = w.get("max_blind") {
            max_blind = duration(cx, n, "max_blind", false);
        }
        if let Some(n) = w.get("query_timeout") {
            query_timeout = duration(cx, n, "query_timeout", false);
        }
        if let Some(n) = w.get("prometheus") {
            prometheus = string(cx, n, "watch.prometheus");
        }
    }

    let rollback = top.get("rollback").map(|n| {
        (
            n.pos,
            compile_command(cx, n, "rollback", vars.as_ref(), &allow_option),
        )
    });
    let pause = top.get("pause").map(|n| {
        (
            n.pos,
            compile_command(cx, n, "pause", vars.as_ref(), &allow_option),
        )
    });

    let mut rules = Vec::new();
    let rules_node = required(
        cx,
        &top,
        "rules",
        "the rule file",
        "add `rules:` with at least one rule",
    );
    if let Some(n) = rules_node {
        match &n.value {
            Value::Seq(items) if items.is_empty() => {
                cx.error("`rules` is empty: a watch needs at least one rule", n.pos)
            }
            Value::Seq(items) => {
                let mut names: BTreeMap<String, Pos> = BTreeMap::new();
                for item in items {
                    if let Some((rule, pos)) =
                        compile_rule(cx, item, interval, vars.as_ref(), &free)
                    {
                        if let Some(first) = names.get(&rule.name) {
                            cx.error(
                                format!(
                                    "duplicate rule name `{}` (first defined at line {})",
                                    rule.name, first.line
                                ),
                                pos,
                            );
                        } else {
                            names.insert(rule.name.clone(), pos);
                        }
                        let action_pos = pos;
                        match rule.action {
                            Action::Rollback if rollback.is_none() => cx.error_help(
                                format!("rule `{}` rolls back, but the file has no `rollback:` command", rule.name),
                                action_pos,
                                "add `rollback:` with `command: [...]`, or give the rule another `action:`",
                            ),
                            Action::Pause if pause.is_none() => cx.error_help(
                                format!("rule `{}` pauses, but the file has no `pause:` command", rule.name),
                                action_pos,
                                "add `pause:` with `command: [...]`, or give the rule another `action:`",
                            ),
                            _ => {}
                        }
                        rules.push(rule);
                    }
                }
            }
            _ => cx.error(
                format!("`rules` must be a list of rules, found {}", n.kind()),
                n.pos,
            ),
        }
    }

    let notify = match top.get("notify") {
        Some(n) => compile_notify(cx, n),
        None => Some(Vec::new()),
    };

    // Likely mistakes that are not errors.
    for (section, action, spec) in [
        ("rollback", Action::Rollback, &rollback),
        ("pause", Action::Pause, &pause),
    ] {
        if let Some((pos, _)) = spec {
            if !rules.is_empty() && !rules.iter().any(|r| r.action == action) {
                cx.warn(
                    format!("`{section}:` is defined but no rule has `action: {section}`"),
                    *pos,
                    "it will never run",
                );
            }
        }
    }
    if let (Some(d), Some(mb)) = (duration_, max_blind) {
        if let Some(longest) = rules.iter().map(|r| r.interval).max() {
            if mb < longest {
                cx.warn(
                    format!(
                        "max_blind ({}) is shorter than the longest rule interval ({})",
                        fmt_d(mb),
                        fmt_d(longest)
                    ),
                    watch.as_ref().map_or(root.pos, |w| w.key_pos("max_blind")),
                    "a single slow poll cycle would end the watch inconclusive",
                );
            }
            if longest > d {
                cx.warn(
                    format!(
                        "a rule interval ({}) is longer than the watch ({})",
                        fmt_d(longest),
                        fmt_d(d)
                    ),
                    watch.as_ref().map_or(root.pos, |w| w.key_pos("duration")),
                    "that rule is polled only once",
                );
            }
        }
    }

    Some(WatchSpec {
        path: Default::default(),
        vars: vars?,
        duration: duration_?,
        interval: interval?,
        max_blind: max_blind?,
        query_timeout: query_timeout?,
        prometheus,
        rollback: match rollback {
            Some((_, c)) => Some(c?),
            None => None,
        },
        pause: match pause {
            Some((_, c)) => Some(c?),
            None => None,
        },
        rules,
        notify: notify?,
    })
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a template and reports unknown variables; None if anything is wrong.
fn template_of(
    cx: &mut Cx,
    text: &str,
    pos: Pos,
    what: &str,
    vars: &BTreeMap<String, String>,
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

/// A query of a rule (`query`, `min_traffic.query`, `compare.canary`/`stable`): the
/// template parsed, every placeholder substituted and escaped, the structure proven
/// unchanged, and the result checked as PromQL. `noun` names it in messages ("the
/// query of rule `x`").
pub(crate) fn compile_query(
    cx: &mut Cx,
    n: &Node,
    noun: &str,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
) -> Option<String> {
    let text = string(cx, n, noun)?;
    let vars = vars?;
    let pieces = template_of(cx, &text, n.pos, noun, vars)?;
    let q = match structure::render_query(&pieces, vars, free) {
        Ok(q) => q,
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
            return None;
        }
        Err(QueryError::Template(why)) => {
            cx.error(format!("{noun} {why}"), n.pos);
            return None;
        }
    };
    check_promql(cx, &q, n.pos, noun)?;
    Some(q)
}

/// Checks the substituted query offline: valid PromQL that yields an instant value.
fn check_promql(cx: &mut Cx, q: &str, pos: Pos, noun: &str) -> Option<()> {
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

#[cfg(test)]
mod behaviour;
#[cfg(test)]
mod judge_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vars_tests;
