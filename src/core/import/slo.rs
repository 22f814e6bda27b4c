//! SLO specifications to `slo:` rules (issue 24): Sloth's `prometheus/v1` specs and
//! OpenSLO `SLO` documents (v1, with an inline indicator or a reference to an `SLI`
//! document, and Sloth's `openslo/v1alpha`).
//!
//! A team that already states its objectives should not write them twice. Each SLO
//! becomes one rule: its objective, its error and total queries with Sloth's
//! `{{.window}}` written as rollwatch's `${window}` (an OpenSLO `good` query becomes
//! `errors: (total) - (good)`), and the windows and burn rates of Sloth's page alert
//! for a 30-day period (1h/5m at 14.4, 6h/30m at 6): the level that wakes someone is the
//! level that rolls back. Ticket alerts are left out. A Sloth SLO whose page alert is
//! disabled, and a raw or plugin SLI, are skipped with a note.
//!
//! Apart from `mod.rs` (which dispatches here and names the rules): this file takes
//! nothing from its parent, and gives it [`SloRule`]s.

use crate::core::eval::slo::{window_label, BurnPair};
use crate::core::yaml::{Diagnostic, Node, Pos, Value};
use serde::Serialize;

/// The `slo:` of an imported rule, in the order a reader expects the keys.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutSlo {
    pub objective: String,
    pub errors: String,
    pub total: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    pub windows: Vec<OutPair>,
}

/// One window pair as written (`{long: 1h, short: 5m, burn: 14.4}`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutPair {
    pub long: String,
    pub short: String,
    pub burn: f64,
}

/// One imported SLO: `mod.rs` makes it a rule (a unique name, `for: 0s`: Sloth's and
/// OpenSLO's alerts fire on the first evaluation that burns).
#[derive(Debug, Clone, PartialEq)]
pub struct SloRule {
    /// The SLO's id (`service-name` for Sloth), before it is made unique.
    pub name: String,
    pub description: Option<String>,
    pub slo: OutSlo,
}

/// What the SLO documents of one file gave.
#[derive(Debug, Default)]
pub struct SloImport {
    pub rules: Vec<SloRule>,
    pub diagnostics: Vec<Diagnostic>,
    pub notes: Vec<(Pos, String)>,
}

/// Whether a document is an SLO specification this module reads.
pub fn is_slo(doc: &Node) -> bool {
    let text = |k: &str| get(doc, k).and_then(Node::scalar_text).unwrap_or_default();
    text("version") == "prometheus/v1" || text("apiVersion").starts_with("openslo/")
}

/// Imports every SLO document of a file (`docs`: all of them, for an OpenSLO
/// `indicatorRef` to find its `SLI`).
pub fn import(docs: &[Node]) -> SloImport {
    let mut out = SloImport::default();
    for doc in docs.iter().filter(|d| is_slo(d)) {
        if get(doc, "version").is_some() {
            sloth(doc, &mut out);
        } else {
            openslo(doc, docs, &mut out);
        }
    }
    out
}

/// Sloth's page-level windows for its default 30-day period.
fn page_windows() -> Vec<OutPair> {
    BurnPair::PAGE
        .iter()
        .map(|p| OutPair {
            long: window_label(p.long),
            short: window_label(p.short),
            burn: p.burn,
        })
        .collect()
}

/// A query with `{{.window}}` as rollwatch writes it: `${window}`, and any `${` of the
/// query itself kept literal (`$${`).
fn windowed(query: &str) -> Option<String> {
    let q = query.trim().replace("${", "$${");
    let re = regex::Regex::new(r"\{\{\s*\.window\s*\}\}").expect("a valid regex");
    re.is_match(&q)
        .then(|| re.replace_all(&q, "$${window}").into_owned())
}

/// A percentage as written (`99.9%`): at most nine decimals, so `0.999 × 100` is `99.9`.
fn percent(p: f64) -> String {
    let r = (p * 1e9).round() / 1e9;
    format!("{r}%")
}

fn sloth(doc: &Node, out: &mut SloImport) {
    let service = get(doc, "service")
        .and_then(Node::scalar_text)
        .unwrap_or_default();
    let Some(Value::Seq(slos)) = get(doc, "slos").map(|n| &n.value) else {
        out.diagnostics.push(
            Diagnostic::error("a Sloth spec without a list of `slos`", Some(doc.pos))
                .with_help("`version: prometheus/v1` specs list their SLOs under `slos:`"),
        );
        return;
    };
    for slo in slos {
        let name = get(slo, "name")
            .and_then(Node::scalar_text)
            .unwrap_or_default();
        let id = format!("{service}-{name}");
        let page_disabled = get(slo, "alerting")
            .and_then(|a| get(a, "page_alert"))
            .and_then(|p| get(p, "disable"))
            .is_some_and(|d| matches!(d.value, Value::Bool(true)));
        if page_disabled {
            out.notes.push((
                slo.pos,
                format!("SLO `{id}` skipped: its page alert is disabled, and only a page-level burn rolls back"),
            ));
            continue;
        }
        let events = get(slo, "sli").and_then(|s| get(s, "events"));
        let query = |key: &str| events.and_then(|e| get(e, key)).and_then(Node::scalar_text);
        let (Some(errors), Some(total)) = (query("error_query"), query("total_query")) else {
            out.notes.push((
                slo.pos,
                format!("SLO `{id}` skipped: only `sli.events` (error_query and total_query) is imported, not a raw or plugin SLI"),
            ));
            continue;
        };
        let objective = match get(slo, "objective").map(|n| &n.value) {
            Some(Value::Int(i)) => *i as f64,
            Some(Value::Float(f)) => *f,
            _ => {
                out.diagnostics.push(Diagnostic::error(
                    format!("SLO `{id}` has no numeric `objective`"),
                    Some(slo.pos),
                ));
                continue;
            }
        };
        let (Some(errors), Some(total)) = (windowed(&errors), windowed(&total)) else {
            out.diagnostics.push(
                Diagnostic::error(format!("SLO `{id}`: a query without `{{{{.window}}}}`"), Some(slo.pos))
                    .with_help("Sloth fills each window in at `{{.window}}`; rollwatch does the same at `${window}`"),
            );
            continue;
        };
        out.rules.push(SloRule {
            name: id,
            description: get(slo, "description")
                .and_then(Node::scalar_text)
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            slo: OutSlo {
                objective: percent(objective),
                errors,
                total,
                period: Some("30d".into()),
                windows: page_windows(),
            },
        });
    }
}

/// The query of an OpenSLO metric: v1 `metricSource.spec.query`, or v1alpha's
/// `query` beside `source`.
fn metric_query(n: &Node) -> Option<String> {
    get(n, "query")
        .or_else(|| {
            get(n, "metricSource")
                .and_then(|m| get(m, "spec"))
                .and_then(|s| get(s, "query"))
        })
        .and_then(Node::scalar_text)
}

/// `good` or `bad`, and `total`, of a ratio metric, as errors and total.
fn ratio(ratio: &Node) -> Option<(String, String)> {
    let total = metric_query(get(ratio, "total")?)?;
    let (total, errors) = match (get(ratio, "bad"), get(ratio, "good")) {
        (Some(bad), _) => (windowed(&total)?, windowed(&metric_query(bad)?)?),
        (None, Some(good)) => {
            let t = windowed(&total)?;
            let g = windowed(&metric_query(good)?)?;
            (t.clone(), format!("({t}) - ({g})"))
        }
        (None, None) => return None,
    };
    Some((errors, total))
}

/// The budgeting period of an OpenSLO SLO: v1 `timeWindow[0].duration`, or v1alpha's
/// `timeWindows[0].count` and `unit`.
fn period(spec: &Node) -> Option<String> {
    let first = |k: &str| match get(spec, k).map(|n| &n.value) {
        Some(Value::Seq(items)) => items.first(),
        _ => None,
    };
    if let Some(w) = first("timeWindow") {
        return get(w, "duration").and_then(Node::scalar_text);
    }
    let w = first("timeWindows")?;
    let count = get(w, "count").and_then(Node::scalar_text)?;
    let unit = match get(w, "unit").and_then(Node::scalar_text)?.as_str() {
        "Day" => "d",
        "Week" => "w",
        "Hour" => "h",
        "Minute" => "m",
        _ => return None,
    };
    Some(format!("{count}{unit}"))
}

fn openslo(doc: &Node, docs: &[Node], out: &mut SloImport) {
    let kind = get(doc, "kind")
        .and_then(Node::scalar_text)
        .unwrap_or_default();
    if kind != "SLO" {
        // An `SLI` is read through the SLO that refers to it; other kinds say nothing
        // of a release's errors.
        if kind != "SLI" {
            out.notes
                .push((doc.pos, format!("OpenSLO `{kind}` skipped")));
        }
        return;
    }
    let meta = get(doc, "metadata");
    let name = meta
        .and_then(|m| get(m, "name"))
        .and_then(Node::scalar_text)
        .unwrap_or_default();
    let Some(spec) = get(doc, "spec") else {
        out.diagnostics.push(Diagnostic::error(
            format!("OpenSLO SLO `{name}` has no `spec`"),
            Some(doc.pos),
        ));
        return;
    };
    // v1: `indicator` inline, or `indicatorRef` naming an `SLI` document.
    let indicator = get(spec, "indicator").or_else(|| {
        let wanted = get(spec, "indicatorRef").and_then(Node::scalar_text)?;
        docs.iter().find(|d| {
            get(d, "kind").and_then(Node::scalar_text).as_deref() == Some("SLI")
                && get(d, "metadata")
                    .and_then(|m| get(m, "name"))
                    .and_then(Node::scalar_text)
                    .as_deref()
                    == Some(wanted.as_str())
        })
    });
    let sli_ratio = indicator
        .and_then(|i| get(i, "spec"))
        .and_then(|s| get(s, "ratioMetric"));
    let Some(Value::Seq(objectives)) = get(spec, "objectives").map(|n| &n.value) else {
        out.diagnostics.push(Diagnostic::error(
            format!("OpenSLO SLO `{name}` has no list of `objectives`"),
            Some(spec.pos),
        ));
        return;
    };
    let several = objectives.len() > 1;
    for (i, o) in objectives.iter().enumerate() {
        // v1alpha: each objective has its own `ratioMetrics`.
        let metric = get(o, "ratioMetrics").or(sli_ratio);
        let Some((errors, total)) = metric.and_then(ratio) else {
            out.notes.push((
                o.pos,
                format!("OpenSLO SLO `{name}` objective {}: skipped: only a ratio metric with `{{{{.window}}}}` in its queries is imported", i + 1),
            ));
            continue;
        };
        let target = match (get(o, "target"), get(o, "targetPercent")) {
            (Some(t), _) => t
                .scalar_text()
                .and_then(|t| t.parse::<f64>().ok())
                .map(|t| t * 100.0),
            (None, Some(p)) => p.scalar_text().and_then(|t| t.parse::<f64>().ok()),
            _ => None,
        };
        let Some(target) = target else {
            out.diagnostics.push(Diagnostic::error(
                format!("OpenSLO SLO `{name}`: an objective without `target` or `targetPercent`"),
                Some(o.pos),
            ));
            continue;
        };
        let id = if several {
            format!("{name}-{}", i + 1)
        } else {
            name.clone()
        };
        out.rules.push(SloRule {
            name: id,
            description: get(spec, "description")
                .and_then(Node::scalar_text)
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            slo: OutSlo {
                objective: percent(target),
                errors,
                total,
                period: period(spec),
                windows: page_windows(),
            },
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"
apiVersion: openslo/v1
kind: SLI
metadata:
  name: checkout-good
spec:
  ratioMetric:
    counter: true
    good:
      metricSource:
        type: Prometheus
        spec:
          query: sum(rate(http_requests_total{service="checkout",code!~"5.."}[{{.window}}]))
    total:
      metricSource:
        type: Prometheus
        spec:
          query: sum(rate(http_requests_total{service="checkout"}[{{ .window }}]))
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability
spec:
  service: checkout
  description: Checkout answers.
  indicatorRef: checkout-good
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - target: 0.999
"#;

    #[test]
    fn an_openslo_v1_slo_reads_its_referenced_sli_and_counts_errors_as_total_minus_good() {
        let docs = crate::core::yaml::parse_all(V1).unwrap();
        let got = import(&docs);
        assert!(got.diagnostics.is_empty(), "{:?}", got.diagnostics);
        assert_eq!(got.rules.len(), 1, "{:?}", got.notes);
        let r = &got.rules[0];
        assert_eq!(r.name, "checkout-availability");
        assert_eq!(r.slo.objective, "99.9%");
        assert_eq!(r.slo.period.as_deref(), Some("28d"));
        assert_eq!(
            r.slo.total,
            r#"sum(rate(http_requests_total{service="checkout"}[${window}]))"#
        );
        assert_eq!(
            r.slo.errors,
            r#"(sum(rate(http_requests_total{service="checkout"}[${window}]))) - (sum(rate(http_requests_total{service="checkout",code!~"5.."}[${window}])))"#
        );
        assert_eq!(r.slo.windows.len(), 2);
    }

    #[test]
    fn window_placeholders_are_translated_and_literal_dollars_kept() {
        assert_eq!(
            windowed(r#"sum(rate(x{a="${b}"}[{{.window}}]))"#).as_deref(),
            Some(r#"sum(rate(x{a="$${b}"}[${window}]))"#)
        );
        assert_eq!(windowed("sum(rate(x[5m]))"), None);
        assert_eq!(percent(0.999 * 100.0), "99.9%");
    }
}
