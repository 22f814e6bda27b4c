//! `alert: NAME` (with optional `labels:`): a rule that watches an alert Prometheus
//! already evaluates, by reading `ALERTS{alertname=NAME, alertstate="firing", ...}`.
//!
//! The query is built from promql-parser's own types (a `VectorSelector` with
//! `Matcher`s) and printed by its `Display`, so a name or label value, `${...}`
//! placeholders included, is only ever a label value: it is escaped by the printer and
//! can never change the query's structure.

use super::common::template_of;
use crate::core::rules::template::{self, is_name};
use crate::core::yaml::walk::Cx;
use crate::core::yaml::{Node, Value};
use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{Expr, VectorSelector};
use std::collections::BTreeMap;

/// The query of an `alert:` rule; None after reporting what is wrong.
pub(super) fn alert_query(
    cx: &mut Cx,
    alert: &Node,
    labels: Option<&Node>,
    vars: &BTreeMap<String, String>,
    what: &str,
) -> Option<String> {
    let value = |cx: &mut Cx, node: &Node, of: &str| -> Option<String> {
        let Value::Str(text) = &node.value else {
            cx.error(
                format!("{of} must be a string, found {}", node.kind()),
                node.pos,
            );
            return None;
        };
        let pieces = template_of(cx, text, node.pos, of, vars, false)?;
        Some(template::render_plain(&pieces, vars))
    };
    let name = value(cx, alert, &format!("the `alert` of {what}"));
    if name.as_deref() == Some("") {
        cx.error(format!("the `alert` of {what} is empty"), alert.pos);
    }
    let mut matchers = vec![
        Matcher::new(MatchOp::Equal, "alertname", name.as_deref().unwrap_or("")),
        Matcher::new(MatchOp::Equal, "alertstate", "firing"),
    ];
    let mut ok = name.is_some();
    match labels.map(|n| (n, &n.value)) {
        None => {}
        Some((_, Value::Map(entries))) => {
            for (k, v) in entries {
                let key = k.scalar_text().unwrap_or_default();
                if !is_name(&key) || matches!(key.as_str(), "alertname" | "alertstate") {
                    cx.error_help(
                        format!("`{key}` cannot be a label of {what}"),
                        k.pos,
                        "a label name (letters, digits, `_`); `alertname` and `alertstate` come from `alert:`",
                    );
                    ok = false;
                    continue;
                }
                match value(cx, v, &format!("label `{key}` of {what}")) {
                    Some(v) => matchers.push(Matcher::new(MatchOp::Equal, &key, &v)),
                    None => ok = false,
                }
            }
        }
        Some((n, _)) => {
            cx.error(
                format!(
                    "the `labels` of {what} must be a mapping, found {}",
                    n.kind()
                ),
                n.pos,
            );
            ok = false;
        }
    }
    let selector = VectorSelector::new(Some("ALERTS".to_string()), Matchers::new(matchers));
    ok.then(|| Expr::VectorSelector(selector).to_string())
}
