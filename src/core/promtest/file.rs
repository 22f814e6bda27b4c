//! A test file, loaded the way rule files are: a spanned YAML tree walked key by key,
//! every error collected with its file:line:column (`core::yaml`).
//!
//! The shape is promtool's (`rule_files`, `evaluation_interval`, `tests` with
//! `interval` and `input_series`), extended with a rollwatch `expect:` per test.
//! Times in a test (`at`, `pending_at`, `watch_start`) count from the input series'
//! first sample, as promtool's `eval_time` does.

use super::notation::{self, Point};
use crate::core::rules::parse_duration;
use crate::core::yaml::walk::{fields, required, string, Cx};
use crate::core::yaml::{self as yaml, Diagnostic, Node, Pos, Value};
use std::time::Duration;

/// promtool's default spacing of input samples and of evaluations.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The outcomes a test may expect (`ReplayOutcome::name`).
pub const OUTCOMES: &[&str] = &["healthy", "rolled_back", "paused", "inconclusive"];

#[derive(Debug, Clone, PartialEq)]
pub struct TestFile {
    /// As written (relative to the test file's directory), with where.
    pub rule_files: Vec<(String, Pos)>,
    /// `evaluation_interval`: the replayed watch's poll interval (every rule's).
    pub evaluation_interval: Option<Duration>,
    pub tests: Vec<TestCase>,
    /// A `promtool test rules` file as it is: its rule files are Prometheus alerting
    /// rules (imported), its tests `alert_rule_test`s.
    pub promtool: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub name: String,
    pub pos: Pos,
    /// Spacing of input samples.
    pub interval: Duration,
    /// The rule file's variables for this test (`--set`).
    pub vars: Vec<(String, String)>,
    /// When the replayed watch begins, after the first sample (default 0: earlier
    /// samples are the history a baseline reads).
    pub watch_start: Duration,
    /// How long the replayed watch runs (default: the rule file's `watch.duration`).
    pub duration: Option<Duration>,
    pub input: Vec<InputSeries>,
    pub expect: Expect,
    /// promtool's `alert_rule_test` (a promtool file's tests only).
    pub alerts: Vec<AlertTest>,
    /// A promtool test whose input rollwatch cannot read (native histograms): its
    /// alert tests are refused with this reason.
    pub refused: Option<String>,
}

/// One `alert_rule_test`: the alerts named `alertname` firing at `eval_time` are
/// exactly `exp` (each alert's labels, sorted; empty: none fires).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTest {
    pub eval_time: Duration,
    pub alertname: String,
    pub exp: Vec<Vec<(String, String)>>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputSeries {
    /// The metric name and labels, sorted by label name.
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub points: Vec<Point>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    pub outcome: Option<String>,
    /// None: not checked. Sorted by time, then rule.
    pub actions: Option<Vec<ExpectedAction>>,
    pub rules: Vec<ExpectedRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedAction {
    pub at: Duration,
    pub rule: String,
    pub action: String,
}

/// A rule's expected states: `Some(None)` means "never".
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRule {
    pub rule: String,
    pub pending_at: Option<Option<Duration>>,
    pub fired_at: Option<Option<Duration>>,
}

/// Every error of a test file, rendered against its text.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFileError {
    pub path: String,
    pub text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for TestFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.diagnostics {
            write!(f, "{}", d.render(&self.path, &self.text))?;
        }
        Ok(())
    }
}

impl std::error::Error for TestFileError {}

const TOP: &[&str] = &[
    "rule_files",
    "evaluation_interval",
    "tests",
    "group_eval_order",
    "fuzzy_compare",
];
const TEST: &[&str] = &[
    "name",
    "interval",
    "vars",
    "input_series",
    "expect",
    "watch_start",
    "duration",
    "external_labels",
    "external_url",
    "alert_rule_test",
    "promql_expr_test",
];

/// Loads a test file's text; `path` is what errors show.
pub fn load_str(path: &str, text: &str) -> Result<TestFile, TestFileError> {
    let fail = |diagnostics| TestFileError {
        path: path.to_string(),
        text: text.to_string(),
        diagnostics,
    };
    let root = yaml::parse(text).map_err(|(m, pos)| fail(vec![Diagnostic::error(m, pos)]))?;
    let mut cx = Cx {
        source: text,
        diags: Vec::new(),
    };
    let file = walk_file(&mut cx, &root);
    match file {
        Some(f) if !cx.has_errors() => Ok(f),
        _ => Err(fail(cx.diags)),
    }
}

fn walk_file(cx: &mut Cx, root: &Node) -> Option<TestFile> {
    let f = fields(cx, root, "a test file", TOP)?;
    let mut rule_files = Vec::new();
    if let Some(node) = required(
        cx,
        &f,
        "rule_files",
        "a test file",
        "name the rule file under test: `rule_files: [../rules/payments.yaml]`",
    ) {
        for n in list(cx, node, "rule_files") {
            if let Some(s) = string(cx, n, "a rule file") {
                rule_files.push((s, n.pos));
            }
        }
    }
    let evaluation_interval = f
        .get("evaluation_interval")
        .and_then(|n| duration(cx, n, "evaluation_interval", false));
    let mut tests = Vec::new();
    let mut promtool = false;
    if let Some(node) = required(cx, &f, "tests", "a test file", "add a list of `tests:`") {
        let items = list(cx, node, "tests");
        // A promtool file: its tests say `alert_rule_test` or `promql_expr_test`.
        promtool = items.iter().any(|t| {
            ["alert_rule_test", "promql_expr_test"]
                .iter()
                .any(|k| yaml_get(t, k).is_some())
        });
        for n in items {
            if let Some(t) = walk_test(cx, n, promtool) {
                tests.push(t);
            }
        }
    }
    Some(TestFile {
        rule_files,
        evaluation_interval,
        tests,
        promtool,
    })
}

fn list<'n>(cx: &mut Cx, node: &'n Node, what: &str) -> &'n [Node] {
    match &node.value {
        Value::Seq(items) => items,
        Value::Null => &[],
        _ => {
            cx.error(
                format!("`{what}` must be a list, found {}", node.kind()),
                node.pos,
            );
            &[]
        }
    }
}

fn duration(cx: &mut Cx, node: &Node, what: &str, allow_zero: bool) -> Option<Duration> {
    let parsed = match &node.value {
        Value::Str(s) => parse_duration(s),
        Value::Int(0) => Ok(Duration::ZERO),
        _ => Err(format!(
            "expected a duration such as `30s` or `5m15s`, found {}",
            node.kind()
        )),
    };
    match parsed {
        Ok(d) if d.is_zero() && !allow_zero => {
            cx.error(format!("`{what}` must be longer than 0s"), node.pos);
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(format!("invalid `{what}`: {e}"), node.pos);
            None
        }
    }
}

/// A time that may be `null` (never).
fn time_or_never(cx: &mut Cx, node: &Node, what: &str) -> Option<Option<Duration>> {
    match node.value {
        Value::Null => Some(None),
        _ => duration(cx, node, what, true).map(Some),
    }
}

fn yaml_get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn walk_test(cx: &mut Cx, node: &Node, promtool: bool) -> Option<TestCase> {
    let f = fields(cx, node, "a test", TEST)?;
    let name = match f.get("name") {
        Some(n) => string(cx, n, "a test's name")?,
        None => format!("test at line {}", node.pos.line),
    };
    let interval = match f.get("interval") {
        Some(n) => duration(cx, n, "interval", false)?,
        None => DEFAULT_INTERVAL,
    };
    let mut vars = Vec::new();
    if let Some(n) = f.get("vars") {
        match &n.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    match (k.scalar_text(), v.scalar_text()) {
                        (Some(k), Some(v)) => vars.push((k, v)),
                        _ => cx.error("a variable's value must be a plain value", v.pos),
                    }
                }
            }
            _ => cx.error(
                format!("`vars` must be a mapping, found {}", n.kind()),
                n.pos,
            ),
        }
    }
    let watch_start = f
        .get("watch_start")
        .and_then(|n| duration(cx, n, "watch_start", true))
        .unwrap_or_default();
    let duration_ = f
        .get("duration")
        .and_then(|n| duration(cx, n, "duration", false));
    let mut input = Vec::new();
    let mut refused = None;
    if let Some(n) = f.get("input_series") {
        for s in list(cx, n, "input_series") {
            match walk_series(cx, s, promtool) {
                Some(Ok(s)) => input.push(s),
                Some(Err(why)) => refused = refused.or(Some(why)),
                None => {}
            }
        }
    }
    let mut alerts = Vec::new();
    let expect = if promtool {
        if let Some(n) = f.get("expect") {
            cx.error_help(
                "`expect` in a promtool test file",
                f.key_pos("expect"),
                "a file is either promtool's (`alert_rule_test`) or rollwatch's (`expect`); put them in two files",
            );
            let _ = n;
        }
        if let Some(n) = f.get("alert_rule_test") {
            for a in list(cx, n, "alert_rule_test") {
                if let Some(a) = walk_alert_test(cx, a) {
                    alerts.push(a);
                }
            }
        }
        Expect::default()
    } else {
        match required(
            cx,
            &f,
            "expect",
            "a test",
            "say what the replayed watch must do: `expect: {outcome: healthy}`",
        ) {
            Some(n) => walk_expect(cx, n)?,
            None => return None,
        }
    };
    Some(TestCase {
        name,
        pos: node.pos,
        interval,
        vars,
        watch_start,
        duration: duration_,
        input,
        expect,
        alerts,
        refused,
    })
}

fn walk_alert_test(cx: &mut Cx, node: &Node) -> Option<AlertTest> {
    let f = fields(
        cx,
        node,
        "an alert_rule_test",
        &["eval_time", "alertname", "exp_alerts"],
    )?;
    let help = "write e.g. `{eval_time: 10m, alertname: InstanceDown, exp_alerts: [...]}`";
    let eval_time = required(cx, &f, "eval_time", "an alert_rule_test", help)
        .and_then(|n| duration(cx, n, "eval_time", true))?;
    let alertname = required(cx, &f, "alertname", "an alert_rule_test", help)
        .and_then(|n| string(cx, n, "`alertname`"))?;
    let mut exp = Vec::new();
    if let Some(n) = f.get("exp_alerts") {
        for a in list(cx, n, "exp_alerts") {
            let g = fields(
                cx,
                a,
                "an expected alert",
                &["exp_labels", "exp_annotations"],
            )?;
            let mut labels = Vec::new();
            if let Some(Value::Map(entries)) = g.get("exp_labels").map(|l| &l.value) {
                for (k, v) in entries {
                    if let (Some(k), Some(v)) = (k.scalar_text(), v.scalar_text()) {
                        labels.push((k, v));
                    }
                }
            }
            labels.sort();
            exp.push(labels);
        }
    }
    exp.sort();
    Some(AlertTest {
        eval_time,
        alertname,
        exp,
        pos: node.pos,
    })
}

/// An input series; in a promtool file, values rollwatch cannot read are a refusal
/// (`Err`), not an error of the file.
fn walk_series(cx: &mut Cx, node: &Node, promtool: bool) -> Option<Result<InputSeries, String>> {
    let f = fields(cx, node, "an input series", &["series", "values"])?;
    let help = "write e.g. `series: http_requests_total{code=\"500\"}`";
    let series_node = required(cx, &f, "series", "an input series", help)?;
    let values_node = required(
        cx,
        &f,
        "values",
        "an input series",
        "write e.g. `values: 0+1x10`",
    )?;
    let text = string(cx, series_node, "`series`")?;
    let (name, labels) = match selector(&text) {
        Ok(s) => s,
        Err(e) => {
            cx.error_help(
                format!("invalid series `{text}`: {e}"),
                series_node.pos,
                help,
            );
            return None;
        }
    };
    let values = values_node.scalar_text().unwrap_or_default();
    let points = match notation::parse(&values) {
        Ok(p) => p,
        Err(e) if promtool => {
            return Some(Err(format!(
                "input series `{text}`: values rollwatch cannot read ({e}; native histograms are not supported)"
            )))
        }
        Err(e) => {
            let pos = cx.locate(values_node.pos, &e.token);
            cx.error_help(
                format!("invalid values: {e}"),
                pos,
                "promtool's notation: `1 2 3`, `0x10`, `1+1x10`, `5-1x4`, `_`, `_x3`, `stale`",
            );
            return None;
        }
    };
    Some(Ok(InputSeries {
        name,
        labels,
        points,
        pos: series_node.pos,
    }))
}

/// A series as promtool writes it: `name{label="value",...}`, every matcher `=`.
pub fn selector(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::Expr;
    let expr = promql_parser::parser::parse(text)?;
    let Expr::VectorSelector(v) = expr else {
        return Err("expected a metric name with labels".into());
    };
    if v.offset.is_some() || v.at.is_some() || !v.matchers.or_matchers.is_empty() {
        return Err("expected a metric name with labels, nothing else".into());
    }
    let mut name = v.name.clone();
    let mut labels = Vec::new();
    for m in &v.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(format!("label `{}` must be given with `=`", m.name));
        }
        if m.name == "__name__" {
            name = Some(m.value.clone());
        } else {
            labels.push((m.name.clone(), m.value.clone()));
        }
    }
    let name = name.ok_or("the series has no metric name")?;
    // Written as it is into the OpenMetrics backfilled: a name outside Prometheus's
    // alphabet (a space, a brace, a line break from `__name__="..."`) would write
    // other samples than the test's.
    let named = |n: &str| {
        n.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        }) && !n.is_empty()
    };
    if !named(&name) {
        return Err(format!(
            "the metric name {name:?} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        ));
    }
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("label `{}` is given twice", w[0].0));
    }
    Ok((name, labels))
}

fn walk_expect(cx: &mut Cx, node: &Node) -> Option<Expect> {
    let f = fields(cx, node, "`expect`", &["outcome", "actions", "rules"])?;
    let mut out = Expect::default();
    if let Some(n) = f.get("outcome") {
        let s = string(cx, n, "`outcome`")?;
        if !OUTCOMES.contains(&s.as_str()) {
            cx.error_help(
                format!("unknown outcome `{s}`"),
                n.pos,
                format!("one of: {}", OUTCOMES.join(", ")),
            );
            return None;
        }
        out.outcome = Some(s);
    }
    if let Some(n) = f.get("actions") {
        let mut actions = Vec::new();
        for a in list(cx, n, "actions") {
            let Some(g) = fields(cx, a, "an expected action", &["action", "rule", "at"]) else {
                continue;
            };
            let help = "write e.g. `{action: rollback, rule: error-rate, at: 5m15s}`";
            let (Some(act), Some(rule), Some(at)) = (
                required(cx, &g, "action", "an expected action", help),
                required(cx, &g, "rule", "an expected action", help),
                required(cx, &g, "at", "an expected action", help),
            ) else {
                continue;
            };
            let action = string(cx, act, "`action`");
            if let Some(a) = &action {
                if !["rollback", "pause", "notify"].contains(&a.as_str()) {
                    cx.error_help(
                        format!("unknown action `{a}`"),
                        act.pos,
                        "one of: rollback, pause, notify",
                    );
                }
            }
            let rule = string(cx, rule, "`rule`");
            let at = duration(cx, at, "at", true);
            if let (Some(action), Some(rule), Some(at)) = (action, rule, at) {
                actions.push(ExpectedAction { at, rule, action });
            }
        }
        actions.sort();
        out.actions = Some(actions);
    }
    if let Some(n) = f.get("rules") {
        for r in list(cx, n, "rules") {
            let Some(g) = fields(
                cx,
                r,
                "an expected rule",
                &["rule", "pending_at", "fired_at"],
            ) else {
                continue;
            };
            let help = "write e.g. `{rule: error-rate, pending_at: 2m, fired_at: null}`";
            let Some(name) = required(cx, &g, "rule", "an expected rule", help)
                .and_then(|n| string(cx, n, "`rule`"))
            else {
                continue;
            };
            let pending_at = g
                .get("pending_at")
                .and_then(|n| time_or_never(cx, n, "pending_at"));
            let fired_at = g
                .get("fired_at")
                .and_then(|n| time_or_never(cx, n, "fired_at"));
            out.rules.push(ExpectedRule {
                rule: name,
                pending_at,
                fired_at,
            });
        }
    }
    if out.outcome.is_none() && out.actions.is_none() && out.rules.is_empty() {
        cx.error_help(
            "`expect` expects nothing",
            node.pos,
            "give an `outcome`, `actions` or `rules`",
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests;
