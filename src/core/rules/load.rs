//! Loading and validating a rule file: YAML tree in, `WatchSpec` or every error out.
//!
//! `vars` compiles the `vars:` section and checks every value a caller gives (`--set`,
//! the agent's API) against the file's restrictions; `command` compiles `rollback:` and
//! `pause:`; `notify` the notification channels.

mod alert;
mod command;
mod common;
mod guard;
mod judge;
mod notify;
mod vars;

use super::diag::{Diagnostic, Severity};
use super::spec::{defaults, Action, Rule, WatchSpec};
use super::walk::{fields, required, string, Cx};
use super::yaml::{self, Node, Pos, Value};
use crate::core::eval::{NoData, Threshold};
use command::compile_command;
use common::{choice, compile_query, duration, fmt_d, loop_interval, number};
pub use common::{parse_duration, LoadOptions, MIN_INTERVAL, WARN_INTERVAL};
use notify::compile_notify;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use vars::compile_vars;

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
    "above_baseline",
    "below_baseline",
    "no_baseline",
    "compare",
];

fn compile_rule(
    cx: &mut Cx,
    node: &Node,
    default_interval: Option<Duration>,
    vars: Option<&BTreeMap<String, String>>,
    free: &BTreeSet<String>,
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
    let query = if let Some((canary, _)) = &judges.compare {
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
        guard::check_guard(cx, &what, q, g, pos, on);
    }

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
    } else if !threshold_given && !judges.baseline_threshold && judges.compare.is_none() {
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
                "it acts on the second breaching poll; use `for: 0s` to act at once, or a shorter interval",
            );
        }
    }

    if !judges.ok {
        return None;
    }
    let threshold = match present {
        Some((_, true)) if !threshold_given => Threshold::present(),
        Some(_) => return None,
        None => Threshold::band(above, below),
    };
    if threshold_given && above.is_none() && below.is_none() {
        return None;
    }
    Some((
        Rule {
            name: name?,
            description,
            query: query?,
            threshold,
            for_: for_?,
            interval: interval?,
            no_data: no_data?,
            expect_data: expect_data?,
            action: action?,
            judging: judges.judging,
            guard: judges.guard,
            baseline: judges.baseline,
            stable: judges.compare.and_then(|(_, s)| s),
        },
        f.pos,
    ))
}

/// A query of a rule (`query`, `min_traffic.query`, `compare.canary`/`stable`): the
/// template parsed, every placeholder substituted and escaped, the structure proven
/// unchanged, and the result checked as PromQL. `noun` names it in messages ("the
/// query of rule `x`").
#[cfg(test)]
mod behaviour;
#[cfg(test)]
mod judge_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vars_tests;
