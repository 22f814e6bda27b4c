//! `examples/grafana/rollwatch-agent.json`: every expression of the dashboard parses as
//! PromQL, and every metric it queries is on a running agent's `/metrics`.

use crate::harness::agent::{rules, set, Agent, ROLLBACK};
use promql_parser::parser::Expr;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// The lease and store health metrics: the dashboard must show each of them.
const LEASE_AND_STORE_METRICS: &[&str] = &[
    "rollwatch_agent_leases_held",
    "rollwatch_agent_lease_renewals_total",
    "rollwatch_agent_lease_renewal_duration_seconds_bucket",
    "rollwatch_agent_lease_adoptions_total",
    "rollwatch_agent_claims_refused_total",
    "rollwatch_agent_store_up",
];

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/rollwatch-agent.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every panel's expressions, rows' panels included.
fn expressions(panels: &Value, out: &mut Vec<(String, String)>) {
    for p in panels.as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
            }
        }
        expressions(&p["panels"], out);
    }
}

/// Grafana's variables, as values PromQL accepts.
fn substitute(e: &str) -> String {
    e.replace("$__rate_interval", "5m")
        .replace("$__range", "6h")
        .replace("$__interval", "1m")
        .replace("$job", ".*")
}

fn metric_names(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Aggregate(a) => {
            metric_names(&a.expr, out);
            if let Some(p) = &a.param {
                metric_names(p, out);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, out),
        Expr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        Expr::Paren(p) => metric_names(&p.expr, out),
        Expr::Subquery(s) => metric_names(&s.expr, out),
        Expr::VectorSelector(v) => {
            out.insert(v.name.clone().expect("every selector names its metric"));
        }
        Expr::MatrixSelector(m) => {
            out.insert(m.vs.name.clone().expect("every selector names its metric"));
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every metric name the dashboard queries (panels and template variables).
fn queried_metrics() -> BTreeSet<String> {
    let d = dashboard();
    let mut exprs = Vec::new();
    expressions(&d["panels"], &mut exprs);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let mut names = BTreeSet::new();
    for (title, e) in &exprs {
        let ast = promql_parser::parser::parse(&substitute(e))
            .unwrap_or_else(|err| panic!("panel {title:?}: {e}: {err}"));
        metric_names(&ast, &mut names);
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("label_values("))
        {
            names.insert(q.split(',').next().unwrap().trim().to_string());
        }
    }
    names
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_a_running_agent_has() {
    let names = queried_metrics();
    for m in LEASE_AND_STORE_METRICS {
        assert!(names.contains(*m), "the dashboard shows {m}");
    }
    // An agent that has polled, rolled back once and seen a query fail, so that
    // every labelled metric has a child.
    set("grafana-a", 0.9);
    set("grafana-b", 0.1);
    let a = Agent::new(None);
    a.rule_file("breach", &rules("    above: 0.5\n    for: 0s", ROLLBACK));
    let broken = rules("    above: 0.5\n    for: 1m", ROLLBACK).replace(
        "rw_value{test=\"${test}\"}",
        "label_replace(rw_value{test=~\"grafana-[ab]\"}, \"test\", \"same\", \"\", \"\")",
    );
    a.rule_file("broken", &broken.replace("vars:\n  test:\n", ""));
    assert_eq!(
        a.post(json!({"rules": "breach", "vars": {"test": "grafana-a"}, "id": "g-1"}))
            .0,
        201
    );
    let (status, w) = a.post(json!({"rules": "broken", "id": "g-2"}));
    assert_eq!(status, 201, "{w}");
    assert_eq!(
        a.await_finished("g-1", Duration::from_secs(20))["outcome"],
        "rolled_back"
    );
    a.await_watch("g-2", Duration::from_secs(20), |w| {
        w["rule_states"][0]["error"].is_string()
    });
    let (status, metrics) = crate::harness::http_get(&a.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let exposed = |name: &str| {
        metrics.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
        })
    };
    let missing: Vec<&String> = names.iter().filter(|n| !exposed(n)).collect();
    assert!(
        missing.is_empty(),
        "queried but not on /metrics: {missing:?}\n{metrics}"
    );
}

#[test]
fn a_fresh_agents_metrics_have_every_dashboard_counter_at_zero() {
    // No watch, no action, no query: a quiet agent's dashboard shows 0, not "no data".
    let a = Agent::new(None);
    let (status, metrics) = crate::harness::http_get(&a.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    for line in [
        "rollwatch_agent_actions_total{kind=\"rollback\",result=\"succeeded\"} 0",
        "rollwatch_agent_actions_total{kind=\"rollback\",result=\"failed\"} 0",
        "rollwatch_agent_actions_total{kind=\"pause\",result=\"unknown\"} 0",
        "rollwatch_agent_query_errors_total{kind=\"instant\"} 0",
        "rollwatch_agent_query_errors_total{kind=\"range\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    let missing: Vec<String> = queried_metrics()
        .into_iter()
        .filter(|n| {
            !metrics.lines().any(|l| {
                l.strip_prefix(n.as_str())
                    .is_some_and(|r| r.starts_with(['{', ' ']))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not on a fresh agent's /metrics: {missing:?}\n{metrics}"
    );
}
