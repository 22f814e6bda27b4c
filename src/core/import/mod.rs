//! Alerting rules to a rollwatch rule file, the pure part of `rollwatch import`: text
//! in, rules, diagnostics and the written file out (`cmd::import` reads the files and
//! prints).
//!
//! Every expression is parsed with promql-parser and only ever changed through its
//! tree: a strict comparison with a literal (`A > 0.05`) becomes `query: A` with
//! `above`/`below`, anything else (`>=`, `<=`, `==`, `!=`, `bool`, ...) the expression
//! as written with `breach_when: present`, so an import never changes what a rule
//! means; and `--match` adds a label matcher to every selector before the tree is
//! printed back. The YAML is written by serde-saphyr,
//! so no value is ever quoted by hand.

use crate::core::rules::structure;
use crate::core::yaml::Diagnostic;
use crate::core::yaml::{self, Node, Pos, Value};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{T_GTR, T_LSS};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, VectorSelector};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// `LABEL=VALUE` with a valid Prometheus label name.
pub fn parse_match(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not LABEL=VALUE"))?;
    let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{k}` is not a label name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The watch an imported file gets: long enough for the longest `for` to fire.
const WATCH_MIN: Duration = Duration::from_secs(30 * 60);
const WATCH_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize)]
struct OutFile {
    watch: OutWatch,
    rollback: OutCommand,
    rules: Vec<OutRule>,
}

#[derive(Debug, Serialize)]
struct OutWatch {
    duration: String,
    interval: String,
}

#[derive(Debug, Serialize)]
struct OutCommand {
    command: Vec<String>,
}

/// One imported rule, in the order a reader expects the keys.
#[derive(Debug, Serialize)]
pub struct OutRule {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An SLO's burn-rate rule (`slo.rs`), instead of `query` (then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<slo::OutSlo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_when: Option<&'static str>,
    #[serde(rename = "for")]
    pub for_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_data: Option<&'static str>,
    /// What the reader must know about this rule, for the file's header comment.
    #[serde(skip)]
    pub notes: Vec<String>,
    /// The alert it came from, its `labels` (as written), and what of it the rule
    /// does not carry (`keep_firing_for`): `rollwatch test` compares with promtool's
    /// expectations through these.
    #[serde(skip)]
    pub alert: String,
    #[serde(skip)]
    pub labels: Vec<(String, String)>,
    #[serde(skip)]
    pub not_carried: Vec<String>,
}

/// What an import found: rules, and diagnostics (errors stop the output).
#[derive(Debug, Default)]
pub struct Imported {
    pub rules: Vec<OutRule>,
    pub diagnostics: Vec<Diagnostic>,
    /// Notes about what was left out (recording rules).
    pub notes: Vec<(Pos, String)>,
    /// The longest `for` seen, to size the watch.
    pub longest_for: Duration,
    /// The names the skipped recording rules record (an alert reading one cannot be
    /// judged without them).
    pub recorded: Vec<String>,
    /// Alerts that did not become rules, with the error that stopped each.
    pub failed: Vec<(String, String)>,
}

impl Imported {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == crate::core::yaml::Severity::Error)
    }
}

/// Writes the rule file: a header that says what to fill in, then the YAML.
pub fn render(
    rules: Vec<OutRule>,
    longest_for: Duration,
    sources: &[String],
) -> Result<String, String> {
    let file = OutFile {
        watch: OutWatch {
            duration: fmt_duration(WATCH_MIN.max(longest_for + Duration::from_secs(15 * 60))),
            interval: fmt_duration(WATCH_INTERVAL),
        },
        rollback: OutCommand {
            command: vec!["false".to_string()],
        },
        rules,
    };
    let yaml = serde_saphyr::to_string(&file).map_err(|e| e.to_string())?;
    let mut out = String::new();
    out.push_str("# Written by `rollwatch import` from:\n");
    for s in sources {
        out.push_str(&format!("#   {}\n", one_line(s)));
    }
    out.push_str(
        "# Before use: replace the rollback command, a placeholder that only fails, with\n\
         # yours (argv, no shell); set the watch's duration and interval; then run\n\
         # `rollwatch check` on this file.\n",
    );
    for r in &file.rules {
        for note in &r.notes {
            out.push_str(&format!("# {}: {}\n", r.name, one_line(note)));
        }
    }
    out.push_str(&yaml);
    Ok(out)
}

/// A file name in a comment: one line, whatever it holds.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Imports one file's text. `names` holds the rule names already used (across files),
/// so every imported rule gets a unique one.
pub fn import_str(
    text: &str,
    matches: &[(String, String)],
    names: &mut BTreeSet<String>,
) -> Imported {
    let mut out = Imported::default();
    // Every document of the input: a `kubectl get prometheusrules -o yaml` dump or a
    // kustomize build holds several, separated by `---`.
    let docs = match yaml::parse_all(text) {
        Ok(d) => d,
        Err((msg, pos)) => {
            out.diagnostics.push(
                Diagnostic::error(format!("not a YAML rule file: {msg}"), pos)
                    .with_help("expected a Prometheus rule file (`groups:`) or a PrometheusRule manifest (`spec.groups`)"),
            );
            return out;
        }
    };
    // SLO specifications (Sloth, OpenSLO) become `slo:` rules (`slo.rs`).
    let mut found = docs.iter().any(slo::is_slo);
    let slos = slo::import(&docs);
    for r in slos.rules {
        out.rules.push(OutRule {
            name: unique_name(&r.name, names),
            description: r.description,
            slo: Some(r.slo),
            query: String::new(),
            above: None,
            below: None,
            breach_when: None,
            for_: "0s".into(),
            interval: None,
            no_data: None,
            notes: Vec::new(),
            // An SLO is no alerting rule: `rollwatch test` has nothing of promtool's
            // to compare it with.
            alert: String::new(),
            labels: Vec::new(),
            not_carried: Vec::new(),
        });
    }
    out.diagnostics.extend(slos.diagnostics);
    out.notes.extend(slos.notes);
    for root in &docs {
        let groups =
            get(root, "groups").or_else(|| get(root, "spec").and_then(|s| get(s, "groups")));
        match groups {
            Some(groups) => {
                found = true;
                import_groups(groups, matches, names, &mut out);
            }
            None if slo::is_slo(root) => {}
            // Another kind of object beside the rules (a Service, a ConfigMap).
            None if docs.len() > 1 => out.notes.push((
                root.pos,
                "this document has no `groups:` (not a rule file or PrometheusRule); skipped"
                    .into(),
            )),
            None => {}
        }
    }
    if !found {
        out.diagnostics.push(
            Diagnostic::error("no `groups:` found", docs.first().map(|d| d.pos)).with_help(
                "expected a Prometheus rule file (`groups:`) or a PrometheusRule manifest (`spec.groups`)",
            ),
        );
    }
    out
}

/// The `groups:` of one document.
fn import_groups(
    groups: &Node,
    matches: &[(String, String)],
    names: &mut BTreeSet<String>,
    out: &mut Imported,
) {
    let Value::Seq(groups) = &groups.value else {
        out.diagnostics.push(Diagnostic::error(
            format!("`groups` must be a list, found {}", groups.kind()),
            Some(groups.pos),
        ));
        return;
    };
    for group in groups {
        let interval = get(group, "interval").and_then(|n| prom_duration(n, "group interval", out));
        let Some(rules) = get(group, "rules") else {
            continue;
        };
        let Value::Seq(rules) = &rules.value else {
            out.diagnostics.push(Diagnostic::error(
                format!("`rules` must be a list, found {}", rules.kind()),
                Some(rules.pos),
            ));
            continue;
        };
        for rule in rules {
            let before = out.rules.len();
            import_rule(rule, interval, matches, names, out);
            if out.rules.len() == before {
                if let Some(alert) = get(rule, "alert").and_then(Node::scalar_text) {
                    let why = out.diagnostics.last().map(|d| d.message.clone());
                    out.failed.push((alert, why.unwrap_or_default()));
                }
            }
        }
    }
}

fn import_rule(
    rule: &Node,
    interval: Option<Duration>,
    matches: &[(String, String)],
    names: &mut BTreeSet<String>,
    out: &mut Imported,
) {
    if let Some(record) = get(rule, "record") {
        let name = record.scalar_text().unwrap_or_default();
        out.recorded.push(name.clone());
        out.notes.push((
            record.pos,
            format!(
                "recording rule `{}` skipped (only alerting rules become rules)",
                one_line(&name)
            ),
        ));
        return;
    }
    let Some(alert) = get(rule, "alert") else {
        out.diagnostics.push(Diagnostic::error(
            "a rule with neither `alert` nor `record`",
            Some(rule.pos),
        ));
        return;
    };
    let alert_name = alert.scalar_text().unwrap_or_default();
    let Some(expr_node) = get(rule, "expr") else {
        out.diagnostics.push(Diagnostic::error(
            format!("alert `{}` has no `expr`", one_line(&alert_name)),
            Some(rule.pos),
        ));
        return;
    };
    let Some(expr_text) = expr_node
        .scalar_text()
        .filter(|_| !matches!(expr_node.value, Value::Null))
    else {
        out.diagnostics.push(Diagnostic::error(
            format!(
                "the `expr` of alert `{}` must be a PromQL string, found {}",
                one_line(&alert_name),
                expr_node.kind()
            ),
            Some(expr_node.pos),
        ));
        return;
    };
    let mut expr = match structure::parse(&expr_text) {
        Ok(e) => e,
        Err(e) => {
            out.diagnostics.push(Diagnostic::error(
                format!(
                    "the `expr` of alert `{}` is not valid PromQL: {}",
                    one_line(&alert_name),
                    e.trim()
                ),
                Some(expr_node.pos),
            ));
            return;
        }
    };
    for (label, value) in matches {
        add_matcher(&mut expr, label, value);
    }
    let for_ = match get(rule, "for") {
        Some(n) => match prom_duration(n, "`for`", out) {
            Some(d) => d,
            None => return,
        },
        None => Duration::ZERO,
    };
    out.longest_for = out.longest_for.max(for_);
    if let Some(k) = get(rule, "keep_firing_for") {
        out.diagnostics.push(
            Diagnostic::warning(
                format!("alert `{}`: `keep_firing_for` is not imported", one_line(&alert_name)),
                Some(k.pos),
            )
            .with_help("rollwatch resolves a series at the first poll that no longer breaches; it acts once, so the rollback is not affected"),
        );
    }

    let notes = Vec::new();
    let (query, above, below, present) = match threshold_of(&expr) {
        Some(Split { vector, op, value }) => {
            let (a, b) = match op {
                Op::Above => (Some(value), None),
                Op::Below => (None, Some(value)),
            };
            (vector, a, b, false)
        }
        None => (expr.to_string(), None, None, true),
    };
    let description = describe(rule);
    let name = unique_name(&alert_name, names);
    let mut not_carried = Vec::new();
    if get(rule, "keep_firing_for").is_some() {
        not_carried.push(
            "`keep_firing_for` (rollwatch resolves at the first poll that no longer breaches)"
                .to_string(),
        );
    }
    let labels: Vec<(String, String)> = match get(rule, "labels").map(|l| &l.value) {
        Some(Value::Map(entries)) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.scalar_text()?, v.scalar_text()?)))
            .collect(),
        _ => Vec::new(),
    };
    if labels.iter().any(|(_, v)| v.contains("{{")) {
        not_carried
            .push("templated `labels` (rollwatch does not expand alert templates)".to_string());
    }
    out.rules.push(OutRule {
        name,
        description,
        // A literal `${` in PromQL (inside a string) must not read as a placeholder.
        slo: None,
        query: query.replace("${", "$${"),
        no_data: below.is_some().then_some("ok"),
        above,
        below,
        breach_when: present.then_some("present"),
        for_: fmt_duration(for_),
        interval: interval.map(fmt_duration),
        notes,
        alert: alert_name,
        labels,
        not_carried,
    });
}

/// Which way a strict comparison breaches: rollwatch's `above`/`below` are strict,
/// so only `>` and `<` become thresholds.
enum Op {
    Above,
    Below,
}

/// A comparison of a vector with a literal, taken apart.
struct Split {
    vector: String,
    op: Op,
    value: f64,
}

/// `A > s` or `A < s`, or the same with the literal on the left (flipped), where `A`
/// is an instant vector and the comparison filters (no `bool`). `>=`, `<=`, `==` and
/// `!=` are not thresholds: rollwatch's `above`/`below` compare strictly, so those
/// stay the expression as written (`breach_when: present`), which means exactly what
/// the alert meant, also for a value equal to the literal.
fn threshold_of(expr: &Expr) -> Option<Split> {
    let Expr::Binary(b) = expr else {
        return None;
    };
    if b.modifier.as_ref().is_some_and(|m| m.return_bool) {
        return None;
    }
    let id = b.op.id();
    let (vector, value, flipped) = match (literal(&b.lhs), literal(&b.rhs)) {
        (None, Some(v)) => (&b.lhs, v, false),
        (Some(v), None) => (&b.rhs, v, true),
        _ => return None,
    };
    if !value.is_finite() || vector.value_type() != ValueType::Vector {
        return None;
    }
    if !matches!(id, T_GTR | T_LSS) {
        return None;
    }
    // `A > s` is `s < A`: flipping swaps above and below.
    let op = if (id == T_GTR) != flipped {
        Op::Above
    } else {
        Op::Below
    };
    Some(Split {
        vector: vector.to_string(),
        op,
        value,
    })
}

/// A number literal, possibly in parentheses or negated.
fn literal(e: &Expr) -> Option<f64> {
    match e {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Paren(p) => literal(&p.expr),
        Expr::Unary(u) => literal(&u.expr).map(|v| -v),
        _ => None,
    }
}

/// Adds `label="value"` to every vector selector in the tree (each `or` group too),
/// unless the selector already has exactly that matcher.
pub fn add_matcher(e: &mut Expr, label: &str, value: &str) {
    fn selector(v: &mut VectorSelector, label: &str, value: &str) {
        let m = Matcher::new(MatchOp::Equal, label, value);
        if !v.matchers.matchers.contains(&m) {
            v.matchers.matchers.push(m.clone());
        }
        for group in &mut v.matchers.or_matchers {
            if !group.contains(&m) {
                group.push(m.clone());
            }
        }
    }
    match e {
        Expr::Aggregate(a) => {
            add_matcher(&mut a.expr, label, value);
            if let Some(p) = &mut a.param {
                add_matcher(p, label, value);
            }
        }
        Expr::Unary(u) => add_matcher(&mut u.expr, label, value),
        Expr::Binary(b) => {
            add_matcher(&mut b.lhs, label, value);
            add_matcher(&mut b.rhs, label, value);
        }
        Expr::Paren(p) => add_matcher(&mut p.expr, label, value),
        Expr::Subquery(s) => add_matcher(&mut s.expr, label, value),
        Expr::VectorSelector(v) => selector(v, label, value),
        Expr::MatrixSelector(m) => selector(&mut m.vs, label, value),
        Expr::Call(c) => {
            for a in &mut c.args.args {
                add_matcher(a, label, value);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// `annotations.summary`, `annotations.description` and the `labels`, as one text.
fn describe(rule: &Node) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(a) = get(rule, "annotations") {
        for key in ["summary", "description"] {
            if let Some(t) = get(a, key).and_then(Node::scalar_text) {
                let t = t.trim();
                if !t.is_empty() {
                    parts.push(t.to_string());
                }
            }
        }
    }
    if let Some(Value::Map(labels)) = get(rule, "labels").map(|n| &n.value) {
        let pairs: Vec<String> = labels
            .iter()
            .filter_map(|(k, v)| Some(format!("{}={}", k.scalar_text()?, v.scalar_text()?)))
            .collect();
        if !pairs.is_empty() {
            parts.push(format!("labels: {}", pairs.join(", ")));
        }
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// A rollwatch rule name from an alert name: letters and digits of any script, `-`,
/// `_`, `.`; every other run of characters (spaces, emoji) becomes one `-`. Unique:
/// a name already taken gets `-2`, `-3`, ..., so two alerts never share a rule.
fn unique_name(alert: &str, names: &mut BTreeSet<String>) -> String {
    let mut base = String::new();
    for c in alert.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '.') {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let base = base.trim_matches('-');
    let base = if base.is_empty() {
        "alert".to_string()
    } else {
        base.to_string()
    };
    let mut name = base.clone();
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    names.insert(name.clone());
    name
}

/// A Prometheus duration (`5m`, `1h30m`, `1d`, `0`), with an error at its position.
fn prom_duration(n: &Node, what: &str, out: &mut Imported) -> Option<Duration> {
    let text = match &n.value {
        Value::Str(s) => s.clone(),
        Value::Int(0) => return Some(Duration::ZERO),
        _ => {
            out.diagnostics.push(Diagnostic::error(
                format!("{what} must be a duration such as `5m`, found {}", n.kind()),
                Some(n.pos),
            ));
            return None;
        }
    };
    // Prometheus accepts `for: 0s` in rule files; its duration parser refuses zero.
    let zero = regex::Regex::new("^(0+(ms|s|m|h|d|w|y))+$|^0$").expect("a valid regex");
    if zero.is_match(text.trim()) {
        return Some(Duration::ZERO);
    }
    match promql_parser::util::parse_duration(text.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            out.diagnostics.push(Diagnostic::error(
                format!(
                    "{what} `{}` is not a Prometheus duration: {e}",
                    one_line(&text)
                ),
                Some(n.pos),
            ));
            None
        }
    }
}

/// A duration as rollwatch reads it: the largest whole unit (`90m` stays `90m`).
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A mapping's value by key.
fn get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

mod slo;
#[cfg(test)]
mod tests;
