//! promtool's `alert_rule_test`s judged on rollwatch's replay of the imported rules:
//! does rollwatch agree with Prometheus on which alerts fire at `eval_time`?
//!
//! An alert fires at `eval_time` with labels L when the imported rule's series with
//! those labels is firing in the replay at that instant (its last transition at or
//! before it was `fired`). Its labels are the series' without `__name__`, with the
//! alert's `labels` on top, as Prometheus makes them; annotations are not compared
//! (rollwatch does not render alert templates). An alert `import` cannot carry
//! (`keep_firing_for`, templated labels, a recording rule it reads, several alerts of
//! one name) is refused with the reason, never counted as agreed.

use super::expect::show;
use super::file::AlertTest;
use crate::core::history::RuleHistory;

/// One imported alert, as the judge needs it.
#[derive(Debug, Clone)]
pub struct AlertRun<'a> {
    pub alert: &'a str,
    pub labels: &'a [(String, String)],
    /// Why this alert cannot be compared (import could not carry it), if so.
    pub refused: Option<String>,
    /// Its replay (Err: why it could not be read).
    pub history: Result<&'a RuleHistory, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Agreed,
    /// The differences, as diff lines.
    Disagreed(Vec<String>),
    Refused(String),
}

type AlertLabels = Vec<(String, String)>;

fn show_labels(l: &AlertLabels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The alerts of `run` firing at `at_ms`, each as its labels, sorted.
fn firing(run: &AlertRun, history: &RuleHistory, at_ms: i64) -> Vec<AlertLabels> {
    let mut last: std::collections::BTreeMap<&crate::core::series::Labels, (i64, &str)> =
        Default::default();
    for e in history.entries.iter().filter(|e| e.at <= at_ms) {
        let seen = last.entry(&e.labels).or_insert((e.at, e.kind));
        if e.at >= seen.0 {
            *seen = (e.at, e.kind);
        }
    }
    let mut out: Vec<AlertLabels> = last
        .into_iter()
        .filter(|(_, (_, kind))| *kind == "fired")
        .map(|(labels, _)| {
            let mut l: std::collections::BTreeMap<String, String> = labels
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for (k, v) in run.labels {
                l.insert(k.clone(), v.clone());
            }
            l.into_iter().collect()
        })
        .collect();
    out.sort();
    out
}

/// Judges one `alert_rule_test` of a test starting at `base_ms`.
pub fn judge(test: &AlertTest, runs: &[AlertRun], base_ms: i64) -> Verdict {
    let mine: Vec<&AlertRun> = runs.iter().filter(|r| r.alert == test.alertname).collect();
    let run = match mine.as_slice() {
        [] if test.exp.is_empty() => return Verdict::Agreed,
        [] => {
            return Verdict::Disagreed(vec![format!(
                "no alert named {} in the rule files",
                test.alertname
            )])
        }
        [one] => *one,
        many => {
            return Verdict::Refused(format!(
                "{} alerts are named {}: rollwatch imports each as a rule of its own",
                many.len(),
                test.alertname
            ))
        }
    };
    if let Some(why) = &run.refused {
        return Verdict::Refused(why.clone());
    }
    let history = match &run.history {
        Ok(h) => *h,
        Err(e) => {
            return Verdict::Disagreed(vec![format!(
                "rollwatch could not read the rule's history: {e}"
            )])
        }
    };
    let at = base_ms + test.eval_time.as_millis() as i64;
    let got = firing(run, history, at);
    if got == test.exp {
        return Verdict::Agreed;
    }
    let mut lines = vec![format!(
        "alerts {} firing at {}:",
        test.alertname,
        show(test.eval_time)
    )];
    for l in test.exp.iter().filter(|l| !got.contains(l)) {
        lines.push(format!("  - {}", show_labels(l)));
    }
    for l in got.iter().filter(|l| !test.exp.contains(l)) {
        lines.push(format!("  + {}", show_labels(l)));
    }
    Verdict::Disagreed(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::history::Entry;
    use std::time::Duration;

    fn entry(at: i64, kind: &'static str, instance: &str) -> Entry {
        Entry {
            at,
            kind,
            labels: [
                ("__name__".to_string(), "up".to_string()),
                ("instance".to_string(), instance.to_string()),
            ]
            .into(),
            value: Some(0.0),
            evidence: Default::default(),
        }
    }

    fn test(eval_s: u64, exp: &[&[(&str, &str)]]) -> AlertTest {
        AlertTest {
            eval_time: Duration::from_secs(eval_s),
            alertname: "Down".into(),
            exp: exp
                .iter()
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .collect(),
            pos: Default::default(),
        }
    }

    #[test]
    fn an_alert_fires_from_its_firing_until_it_resolves_with_the_rules_labels() {
        let h = RuleHistory {
            entries: vec![
                entry(0, "pending", "a"),
                entry(300_000, "fired", "a"),
                entry(600_000, "resolved", "a"),
            ],
            ..Default::default()
        };
        let labels = vec![("severity".to_string(), "page".to_string())];
        let runs = [AlertRun {
            alert: "Down",
            labels: &labels,
            refused: None,
            history: Ok(&h),
        }];
        let a = &[("instance", "a"), ("severity", "page")][..];
        assert_eq!(judge(&test(299, &[]), &runs, 0), Verdict::Agreed);
        assert_eq!(judge(&test(300, &[a]), &runs, 0), Verdict::Agreed);
        assert_eq!(judge(&test(600, &[]), &runs, 0), Verdict::Agreed);
        assert_eq!(
            judge(&test(300, &[]), &runs, 0),
            Verdict::Disagreed(vec![
                "alerts Down firing at 5m:".into(),
                "  + {instance=\"a\", severity=\"page\"}".into()
            ])
        );
        let refused = [AlertRun {
            refused: Some("`keep_firing_for`".into()),
            ..runs[0].clone()
        }];
        assert_eq!(
            judge(&test(300, &[a]), &refused, 0),
            Verdict::Refused("`keep_firing_for`".into())
        );
    }
}
