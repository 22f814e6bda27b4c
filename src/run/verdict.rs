//! One verdict, now: every rule of a spec queried once, and what that says.
//!
//! `gate`'s health check and `serve`'s verdict endpoint (for Argo Rollouts' web metric
//! provider and Flagger's webhooks) ask the same question: is the system within the
//! rule file's thresholds *now*? They share this one answer so that they can never
//! disagree. `for:` and `breaches:` are ignored (the question is whether the system is
//! burning now, not whether a watch would act yet); an empty result counts as breached
//! only for `no_data: breach`; a failed query makes the answer inconclusive, never a pass.
//!
//! The judges apply as in a watch, through the same evaluator: the guard and an offset
//! baseline are queried at the same instant, a `before:` baseline is the mean over the
//! `D` before now (one range query), and a `compare` rule pools its sides over its
//! `window` up to now (one range query per side). A rule insufficient now (thin
//! traffic, too few samples) cannot vouch for the system: inconclusive.
//!
//! There is no watch here, so `${watch.elapsed}` is as of a watch that began a rule's
//! `max_window` ago (the longest window it allows), `${watch.start}` that instant.

use crate::core::eval::{Evidence, Extra, Phase, Poll, Reading, RuleEval};
use crate::core::rules::{BaselineSource, Clock, Rule, WatchSpec};
use crate::io::prom::{HistorySource, MetricsSource, QueryError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One rule, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStatus {
    pub name: String,
    /// The breaching series' value, else the first value; None without data.
    pub value: Option<f64>,
    pub threshold: String,
    pub breached: bool,
    /// Why the query failed, if it did (or why the rule could not be judged now).
    pub error: Option<String>,
    /// The judges' evidence for the judged series (baseline, ratio, p-value, effect).
    pub evidence: Evidence,
}

impl RuleStatus {
    /// The JSON every answer that carries rule statuses uses (`gate --format json`, the
    /// agent's verdict routes), so they never disagree on a field.
    pub fn to_json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({
            "name": self.name,
            "value": crate::core::events::float::json(self.value.filter(|v| !v.is_nan())),
            "threshold": self.threshold,
            "breached": self.breached,
            "error": self.error,
        });
        // Only a rule with judges has evidence; the shape of the others is unchanged.
        if !self.evidence.is_empty() {
            j["evidence"] = serde_json::to_value(&self.evidence).unwrap_or_default();
        }
        j
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
///
/// `open`: the caller may be anyone (`serve --open-verdicts`): a failed query's
/// `error` is its class only (never Prometheus's or a proxy's words), the detail is
/// logged.
pub async fn evaluate_once<S: MetricsSource + HistorySource>(
    spec: &WatchSpec,
    source: &S,
    open: bool,
) -> Vec<RuleStatus> {
    let mut out = Vec::new();
    let now = SystemTime::now();
    for rule in &spec.rules {
        let mut status = RuleStatus {
            name: rule.name.clone(),
            value: None,
            threshold: rule.condition(),
            breached: false,
            error: None,
            evidence: Evidence::default(),
        };
        match judge_now(rule, source, now).await {
            Ok((eval, reading)) => {
                let notes = eval.notes();
                // What the poll means is read as a watch reads it (`RuleEval::read`);
                // a breach is shown by its worst firing series.
                let firing = eval
                    .series()
                    .iter()
                    .filter(|(_, s)| s.phase == Phase::Firing);
                let worst_firing = eval
                    .worse()
                    .worst(firing.clone(), |(_, s)| s.last_value.unwrap_or(f64::NAN))
                    .or_else(|| firing.clone().next());
                status.breached = worst_firing.is_some();
                if let Some((labels, state)) = worst_firing {
                    status.value = state.last_value;
                    status.evidence = notes.evidence.get(labels).cloned().unwrap_or_default();
                } else {
                    status.value = reading.as_ref().and_then(|r| r.value);
                    status.evidence = reading.map(|r| r.evidence).unwrap_or_default();
                }
                if let Some(why) = notes.guard_refused() {
                    status.error = Some(why.to_owned());
                } else if !status.breached && notes.series_judged == 0 && notes.insufficient > 0 {
                    status.error = Some(
                        "insufficient now (traffic under `min_traffic.min`, or fewer than `compare.min_samples` samples): it cannot vouch for the system".into(),
                    );
                }
            }
            Err(e) if open => {
                tracing::warn!(event = "verdict_query_failed", rule = %rule.name, error = %e.full, "a verdict's query failed; the caller is told only its class");
                status.error = Some(e.short);
            }
            Err(e) => status.error = Some(e.full),
        }
        out.push(status);
    }
    out
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

/// A failed query: the full error (for the log and authenticated callers) and its
/// class (for anyone).
struct Failed {
    full: String,
    short: String,
}

fn failed(what: &str, e: QueryError) -> Failed {
    Failed {
        full: format!("{what}: {e}"),
        short: format!("{what}: {}", e.class()),
    }
}

/// One rule judged at `now` by a fresh evaluator (without `for`/`breaches`), and what
/// its last poll means (None: a `compare` window shorter than one step, no poll).
async fn judge_now<S: MetricsSource + HistorySource>(
    rule: &Rule,
    source: &S,
    now: SystemTime,
) -> Result<(RuleEval, Option<Reading>), Failed> {
    let mut params = rule.params();
    params.for_ = Duration::ZERO;
    params.judge.breaches = None;
    let mut eval = RuleEval::new(params);
    // No watch here: `${watch.elapsed}` is as of a watch that began `max_window` ago.
    let clock = Clock::began_before(unix_ms(now), rule.max_window);
    if let (Some(c), Some(stable)) = (params.judge.compare, &rule.stable) {
        // The pools a watch would hold now: both sides over the window, on its grid.
        let step = rule.interval.as_millis().max(1) as i64;
        let to = unix_ms(now);
        let from = to - (c.window.as_millis() as i64 / step) * step;
        let origin = clock.start_ms;
        let canary =
            crate::io::prom::history::fetch_query(source, rule, &rule.query, origin, from, to)
                .await
                .map_err(|e| failed("the canary query failed", e))?;
        let stable = crate::io::prom::history::fetch_query(source, rule, stable, origin, from, to)
            .await
            .map_err(|e| failed("the stable query failed", e))?;
        let (steps, mut c_polls) = crate::core::history::polls_on_grid(from, to, step, &canary);
        let (_, mut s_polls) = crate::core::history::polls_on_grid(from, to, step, &stable);
        let mut reading = None;
        for k in 0..steps {
            let c = Poll::Samples(c_polls.remove(&k).unwrap_or_default());
            let s = Poll::Samples(s_polls.remove(&k).unwrap_or_default());
            let extra = Extra {
                stable: Some(&s),
                ..Default::default()
            };
            let at = Duration::from_millis(k as u64 * step as u64);
            reading = Some(eval.read(at, &c, extra));
        }
        return Ok((eval, reading));
    }
    let main = source
        .query(&rule.query.at(clock), now)
        .await
        .map_err(|e| Failed {
            full: e.to_string(),
            short: format!("the query failed: {}", e.class()),
        })?;
    let guard = match &rule.guard {
        Some(q) => Some(Poll::Samples(
            source
                .query(&q.at(clock), now)
                .await
                .map_err(|e| failed("the guard (`min_traffic.query`) query failed", e))?
                .samples,
        )),
        None => None,
    };
    let baseline = match rule.baseline {
        Some(BaselineSource::Offset(d)) => Some(Poll::Samples(
            source
                .query(
                    &rule.query.at(clock),
                    now.checked_sub(d).unwrap_or(UNIX_EPOCH),
                )
                .await
                .map_err(|e| failed("the baseline (`baseline.offset`) query failed", e))?
                .samples,
        )),
        Some(BaselineSource::Before(d)) => Some(Poll::Samples(
            crate::io::prom::history::mean_before(source, rule, d, unix_ms(now))
                .await
                .map_err(|e| failed("the baseline (`baseline.before`) query failed", e))?,
        )),
        None => None,
    };
    let extra = Extra {
        guard: guard.as_ref(),
        baseline: baseline.as_ref(),
        stable: None,
    };
    let reading = Some(eval.read(Duration::ZERO, &Poll::Samples(main.samples), extra));
    Ok((eval, reading))
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
            evidence: Evidence::default(),
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

    /// Records the instant queries; answers one series of 1.
    #[derive(Default)]
    struct Asked(std::sync::Mutex<Vec<String>>);

    impl MetricsSource for Asked {
        async fn query(
            &self,
            query: &str,
            _at: SystemTime,
        ) -> Result<crate::io::prom::QueryResult, QueryError> {
            self.0.lock().unwrap().push(query.to_string());
            Ok(crate::io::prom::QueryResult {
                samples: vec![crate::core::series::Sample {
                    labels: Default::default(),
                    value: 1.0,
                }],
                warnings: Vec::new(),
            })
        }
    }

    impl HistorySource for Asked {
        async fn query_range(
            &self,
            _q: &str,
            _s: i64,
            _e: i64,
            _st: i64,
        ) -> Result<crate::io::prom::RangeResult, QueryError> {
            unreachable!("no range query here")
        }
    }

    #[tokio::test]
    async fn with_no_watch_the_elapsed_is_max_window() {
        let text = "watch:\n  duration: 30m\n  interval: 15s\nrollback:\n  command: [\"undo\"]\nrules:\n  - name: since\n    query: 'increase(x[${watch.elapsed}])'\n    above: 5\n    for: 1m\n    max_window: 10m\n    min_traffic:\n      query: 'sum(increase(y[${watch.elapsed}]))'\n      min: 0.5\n";
        let (spec, _) = crate::core::rules::load_str("v.yaml", text, &Default::default()).unwrap();
        let source = Asked::default();
        let status = evaluate_once(&spec, &source, false).await;
        assert_eq!(status[0].error, None);
        assert_eq!(
            *source.0.lock().unwrap(),
            ["increase(x[600s])", "sum(increase(y[600s]))"]
        );
    }
}
