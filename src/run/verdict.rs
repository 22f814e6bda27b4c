//! One verdict, now: every rule of a spec queried once, and what that says.
//!
//! `gate`'s health check and `serve`'s verdict endpoint (for Argo Rollouts' web metric
//! provider and Flagger's webhooks) ask the same question: is the system within the
//! rule file's thresholds *now*? They share this one answer so that they can never
//! disagree. `for:` is ignored (the question is whether the system is burning now, not
//! whether a watch would act yet); an empty result counts as breached only for
//! `no_data: breach`; a failed query makes the answer inconclusive, never a pass.

use crate::core::eval::NoData;
use crate::core::rules::WatchSpec;
use crate::io::prom::MetricsSource;
use std::time::SystemTime;

/// One rule, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStatus {
    pub name: String,
    /// The breaching series' value, else the first value; None without data.
    pub value: Option<f64>,
    pub threshold: String,
    pub breached: bool,
    /// Why the query failed, if it did.
    pub error: Option<String>,
}

impl RuleStatus {
    /// The JSON every answer that carries rule statuses uses (`gate --format json`, the
    /// agent's verdict routes), so they never disagree on a field.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "value": crate::core::events::float::json(self.value.filter(|v| !v.is_nan())),
            "threshold": self.threshold,
            "breached": self.breached,
            "error": self.error,
        })
    }
}

/// What the rules say together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every rule answered and none is breached.
    Pass,
    /// At least one rule is breached (or a watch acted on one).
    Fail,
    /// Nothing is breached, but something could not be judged (a failed query, a
    /// cancelled watch): the system cannot be shown healthy.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Queries every rule of `spec` once, at this instant.
pub async fn evaluate_once<S: MetricsSource>(spec: &WatchSpec, source: &S) -> Vec<RuleStatus> {
    let mut out = Vec::new();
    for rule in &spec.rules {
        let mut status = RuleStatus {
            name: rule.name.clone(),
            value: None,
            threshold: rule.threshold.to_string(),
            breached: false,
            error: None,
        };
        match source.query(&rule.query, SystemTime::now()).await {
            Ok(r) => {
                let values: Vec<f64> = r
                    .samples
                    .iter()
                    .map(|s| s.value)
                    .filter(|v| !v.is_nan())
                    .collect();
                let worst = values.iter().copied().find(|v| rule.threshold.breached(*v));
                status.breached = match worst {
                    Some(_) => true,
                    None => values.is_empty() && rule.no_data == NoData::Breach,
                };
                status.value = worst.or_else(|| values.first().copied());
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        out.push(status);
    }
    out
}

/// Any breach fails; otherwise any error is inconclusive; otherwise pass.
pub fn verdict_of(rules: &[RuleStatus]) -> Verdict {
    if rules.iter().any(|r| r.breached) {
        Verdict::Fail
    } else if rules.iter().any(|r| r.error.is_some()) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(breached: bool, error: bool) -> RuleStatus {
        RuleStatus {
            name: "r".into(),
            value: Some(1.0),
            threshold: "> 0.5".into(),
            breached,
            error: error.then(|| "down".to_string()),
        }
    }

    #[test]
    fn a_breach_fails_an_error_is_inconclusive_else_pass() {
        assert_eq!(verdict_of(&[]), Verdict::Pass);
        assert_eq!(verdict_of(&[st(false, false)]), Verdict::Pass);
        assert_eq!(
            verdict_of(&[st(false, false), st(false, true)]),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict_of(&[st(false, true), st(true, false)]),
            Verdict::Fail
        );
        assert_eq!(Verdict::Inconclusive.as_str(), "inconclusive");
    }
}
