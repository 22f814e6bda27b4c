//! `min_traffic`'s guard against the rule's own series, decided at load where it can
//! be (issue 19): a guard series applies to a rule series when the labels both carry
//! agree, so a guard whose series share no label name with the rule's matches every
//! series and is summed — a `sum by (pod)` guard on a `sum by (service)` rule measures
//! all traffic, and protects nothing. The label names a query's series carry are known
//! before any poll when its outer aggregation says so (`sum by (service) (...)`, or
//! `sum(...)`: none); then such a pair is refused here, with `file:line:column` and the
//! ways out (`on:`, a label-less guard, or the rule's labels). When they are not known
//! (a bare selector, `without`), the evaluator refuses the poll at run time instead.

use super::Cx;
use crate::core::rules::structure;
use crate::core::yaml::Pos;
use promql_parser::parser::token::{T_BOTTOMK, T_COUNT_VALUES, T_LIMITK, T_LIMIT_RATIO, T_TOPK};
use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality};
use std::collections::BTreeSet;

/// The label names every series of `expr` carries, when the query says so without
/// running; None when they depend on the data.
pub(crate) fn static_labels(expr: &Expr) -> Option<BTreeSet<String>> {
    let set = |l: &[String]| l.iter().cloned().collect::<BTreeSet<_>>();
    match expr {
        Expr::NumberLiteral(_) => Some(BTreeSet::new()),
        Expr::Paren(p) => static_labels(&p.expr),
        Expr::Unary(u) => static_labels(&u.expr),
        Expr::Aggregate(a) => {
            let id = a.op.id();
            // These keep the labels of the series they pick.
            if matches!(id, T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO) {
                return static_labels(&a.expr);
            }
            let mut out = match &a.modifier {
                None => BTreeSet::new(),
                Some(LabelModifier::Include(l)) => set(&l.labels),
                Some(LabelModifier::Exclude(_)) => return None,
            };
            if id == T_COUNT_VALUES {
                match a.param.as_deref() {
                    Some(Expr::StringLiteral(s)) => {
                        out.insert(s.val.clone());
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        Expr::Call(c) => {
            let name = c.func.name;
            let vectors: Vec<&Expr> = c
                .args
                .args
                .iter()
                .map(|a| a.as_ref())
                .filter(|a| {
                    matches!(
                        a.value_type(),
                        promql_parser::parser::value::ValueType::Vector
                    )
                })
                .collect();
            match name {
                "vector" | "time" | "scalar" => Some(BTreeSet::new()),
                "histogram_quantile" | "histogram_fraction" => {
                    let mut inner = static_labels(vectors.first()?)?;
                    inner.remove("le");
                    Some(inner)
                }
                "label_replace" | "label_join" => {
                    let mut inner = static_labels(vectors.first()?)?;
                    match c.args.args.get(1).map(|a| a.as_ref()) {
                        Some(Expr::StringLiteral(s)) => {
                            inner.insert(s.val.clone());
                            Some(inner)
                        }
                        _ => None,
                    }
                }
                "absent" | "absent_over_time" | "sort_by_label" | "sort_by_label_desc" => None,
                _ if vectors.len() == 1 => static_labels(vectors[0]),
                _ => None,
            }
        }
        Expr::Binary(b) => {
            let (l, r) = (b.lhs.value_type(), b.rhs.value_type());
            use promql_parser::parser::value::ValueType::{Scalar, Vector};
            match (l, r) {
                (Vector, Scalar) => static_labels(&b.lhs),
                (Scalar, Vector) => static_labels(&b.rhs),
                (Scalar, Scalar) => Some(BTreeSet::new()),
                (Vector, Vector) => {
                    let m = b.modifier.as_ref();
                    let card = m.map(|m| &m.card);
                    match (card, m.and_then(|m| m.matching.as_ref())) {
                        // One-to-one: `on` keeps only its labels, `ignoring` drops its.
                        (None | Some(VectorMatchCardinality::OneToOne), None) => {
                            static_labels(&b.lhs).or_else(|| static_labels(&b.rhs))
                        }
                        (
                            Some(VectorMatchCardinality::OneToOne),
                            Some(LabelModifier::Include(on)),
                        ) => Some(set(&on.labels)),
                        (
                            Some(VectorMatchCardinality::OneToOne),
                            Some(LabelModifier::Exclude(ig)),
                        ) => {
                            let mut s = static_labels(&b.lhs)?;
                            for x in &ig.labels {
                                s.remove(x);
                            }
                            Some(s)
                        }
                        (Some(VectorMatchCardinality::ManyToOne(inc)), _) => {
                            let mut s = static_labels(&b.lhs)?;
                            s.extend(inc.labels.iter().cloned());
                            Some(s)
                        }
                        (Some(VectorMatchCardinality::OneToMany(inc)), _) => {
                            let mut s = static_labels(&b.rhs)?;
                            s.extend(inc.labels.iter().cloned());
                            Some(s)
                        }
                        // `and`/`unless` keep the left side's series; `or` both sides'.
                        _ => {
                            let lhs = static_labels(&b.lhs)?;
                            if b.op.to_string() == "or" {
                                (static_labels(&b.rhs)? == lhs).then_some(lhs)
                            } else {
                                Some(lhs)
                            }
                        }
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Refuses a guard whose series can share no label with the rule's (both known from
/// the queries), and `on:` labels that one of them cannot carry.
pub(super) fn check_guard(
    cx: &mut Cx,
    what: &str,
    rule_query: &str,
    guard_query: &str,
    guard_pos: Pos,
    on: Option<(&[String], Pos)>,
) {
    let labels = |q: &str| structure::parse(q).ok().and_then(|e| static_labels(&e));
    let (rule, guard) = (labels(rule_query), labels(guard_query));
    let shown = |s: &BTreeSet<String>| {
        if s.is_empty() {
            "no labels".to_string()
        } else {
            format!(
                "only {}",
                s.iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    match on {
        Some((on, pos)) => {
            for (side, set) in [("guard's", &guard), ("rule's", &rule)] {
                let Some(set) = set else { continue };
                if let Some(l) = on.iter().find(|l| !set.contains(*l)) {
                    cx.error_help(
                        format!(
                            "{what}: `min_traffic.on` names `{l}`, but the {side} series carry {}",
                            shown(set)
                        ),
                        pos,
                        "name labels both queries keep (their `by (...)`)",
                    );
                    return;
                }
            }
        }
        None => {
            let (Some(rule), Some(guard)) = (rule, guard) else {
                return;
            };
            if !guard.is_empty() && guard.is_disjoint(&rule) {
                let hint = match rule.iter().next() {
                    Some(l) => format!(
                        "aggregate the guard by the rule's labels (e.g. `sum by ({l}) (...)`), make it one label-less series (`sum(...)`), or say which labels match with `on: [...]`"
                    ),
                    None => "the rule has one series without labels: make the guard one too (`sum(...)`)".to_string(),
                };
                cx.error_help(
                    format!(
                        "{what}: the guard's series (`min_traffic.query`) carry {} and the rule's {}: they share no label, so every guard series would apply to every rule series and be summed",
                        shown(&guard),
                        shown(&rule)
                    ),
                    guard_pos,
                    hint,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(q: &str) -> Option<Vec<String>> {
        static_labels(&structure::parse(q).unwrap()).map(|s| s.into_iter().collect())
    }

    #[test]
    fn the_labels_a_query_keeps_when_it_says_so() {
        let v = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let cases = [
            ("sum by (service) (rate(x[5m]))", v(&["service"])),
            ("sum(rate(x[5m]))", v(&[])),
            ("sum without (pod) (rate(x[5m]))", None),
            ("rate(x[5m])", None),
            ("x", None),
            ("topk(3, sum by (pod) (x))", v(&["pod"])),
            ("count_values(\"v\", sum by (a) (x))", v(&["v"])),
            (
                "histogram_quantile(0.99, sum by (le, svc) (rate(b[5m])))",
                v(&["svc"]),
            ),
            ("sum by (a) (x) / sum by (a) (y)", v(&["a"])),
            (
                "sum by (a, b) (x) / on (a) group_left sum by (a) (y)",
                v(&["a", "b"]),
            ),
            ("sum by (a, b) (x) / on (a) sum by (a, c) (y)", v(&["a"])),
            ("sum by (a) (x) > 0.5", v(&["a"])),
            ("clamp_min(sum by (svc) (x), 1)", v(&["svc"])),
            (
                "label_replace(sum by (a) (x), \"b\", \"$1\", \"a\", \"(.*)\")",
                v(&["a", "b"]),
            ),
            ("vector(1)", v(&[])),
            ("(sum by (pod) (x))", v(&["pod"])),
        ];
        for (q, want) in cases {
            assert_eq!(labels(q), want, "{q}");
        }
    }
}
