//! Loading and validating a rule file: YAML tree in, `WatchSpec` or every error out.
//!
//! `vars` compiles the `vars:` section and checks every value a caller gives (`--set`,
//! the agent's API) against the file's restrictions; `command` compiles `rollback:` and
//! `pause:`; `notify` the notification channels; `rule` one entry of `rules:`.

mod alert;
mod command;
mod common;
mod guard;
mod judge;
mod notify;
mod pre_existing;
mod rule;
mod slo;
mod vars;

use super::spec::{defaults, Action, WatchSpec};
use crate::core::yaml::diag::{Diagnostic, Severity};
use crate::core::yaml::walk::{fields, required, string, Cx};
use crate::core::yaml::{self, Node, Pos, Value};
use command::compile_command;
use common::{duration, fmt_d, loop_interval};
pub use common::{parse_duration, LoadOptions, Outside, MIN_INTERVAL, WARN_INTERVAL};
use notify::compile_notify;
use rule::compile_rule;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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
                "step",
                "lag",
                "key",
            ],
        )
    });
    let mut duration_ = None;
    let mut interval = None;
    let mut max_blind = Some(defaults::MAX_BLIND);
    let mut query_timeout = Some(defaults::QUERY_TIMEOUT);
    let mut prometheus = None;
    let mut step = Some(None);
    let mut lag = Some(defaults::LAG);
    let mut key = Some(None);
    if let Some(w) = &watch {
        if let Some(n) = w.get("step") {
            step = duration(cx, n, "watch.step", false).map(Some);
            if let Some(d) = step
                .flatten()
                .filter(|d| *d < std::time::Duration::from_secs(1))
            {
                cx.error_help(
                    format!("watch.step ({}) is shorter than 1s", fmt_d(d)),
                    n.pos,
                    "it is the data's resolution, usually the scrape interval (e.g. `step: 15s`); leave it out to use the one Prometheus reports",
                );
                step = None;
            }
        }
        if let Some(n) = w.get("lag") {
            lag = duration(cx, n, "watch.lag", true);
        }
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
        if let Some(n) = w.get("key") {
            key = match (&n.value, vars.as_ref()) {
                (crate::core::yaml::Value::Str(text), Some(v)) => {
                    common::template_of(cx, text, n.pos, "watch.key", v, false)
                        .map(|p| Some(crate::core::rules::template::render_plain(&p, v)))
                }
                (crate::core::yaml::Value::Str(_), None) => None,
                _ => {
                    cx.error(
                        format!("watch.key must be a string, found {}", n.kind()),
                        n.pos,
                    );
                    None
                }
            };
            if let Some(Some(k)) = &key {
                if k.trim().is_empty() || k.chars().any(char::is_control) || k.chars().count() > 200
                {
                    cx.error_help(
                        format!("watch.key {k:?} is empty, too long or holds a control character"),
                        n.pos,
                        "a key names one release line, e.g. `key: \"${service}\"` (at most 200 characters)",
                    );
                    key = None;
                }
            }
        }
    }

    let rollback = top.get("rollback").map(|n| {
        (
            n.pos,
            compile_command(
                cx,
                n,
                "rollback",
                vars.as_ref(),
                &allow_option,
                opts.outside,
            ),
        )
    });
    let pause = top.get("pause").map(|n| {
        (
            n.pos,
            compile_command(cx, n, "pause", vars.as_ref(), &allow_option, opts.outside),
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
                    if let Some((rule, pos)) = compile_rule(
                        cx,
                        item,
                        interval,
                        duration_,
                        vars.as_ref(),
                        &free,
                        step.flatten().unwrap_or(defaults::STEP),
                    ) {
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
        Some(n) => compile_notify(cx, n, opts.outside),
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

    // Exactly as long as it is: an agent keeps one spec per watch.
    rules.shrink_to_fit();
    Some(WatchSpec {
        path: Default::default(),
        vars: vars?,
        duration: duration_?,
        interval: interval?,
        max_blind: max_blind?,
        query_timeout: query_timeout?,
        step: step?,
        lag: lag?,
        key: key?,
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

#[cfg(test)]
mod behaviour;
#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod judge_tests;
#[cfg(test)]
mod pre_existing_tests;
#[cfg(test)]
mod slo_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vars_tests;
