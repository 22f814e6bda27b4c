//! A promtool test file's rule files, imported for `rollwatch test`: each alerting
//! rule through `core::import` (the same translation as `rollwatch import`), loaded by
//! the rule loader one at a time, so one rule that cannot be carried is refused alone
//! with its reason while the others are judged.

use super::alerts::AlertRun;
use crate::core::history::RuleHistory;
use crate::core::import::{import_str, render};
use crate::core::rules::{load_str, LoadOptions, WatchSpec};
use std::collections::BTreeSet;
use std::time::Duration;

/// One alert of the rule files and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMeta {
    pub alert: String,
    pub labels: Vec<(String, String)>,
    /// Why it is not judged (import could not carry it), if so.
    pub refused: Option<String>,
    /// Its rule's index in the spec's rules, when it became one.
    pub rule: Option<usize>,
}

/// The rules of `files` ((shown path, text) of Prometheus rule files) as one watch
/// (None when no alert became a rule), each polled every `every` unless its group
/// says otherwise, and every alert's fate. Err: a file that is not a rule file at all.
pub fn import_alerts(
    files: &[(String, String)],
    every: Duration,
) -> Result<(Option<WatchSpec>, Vec<AlertMeta>), String> {
    let mut names = BTreeSet::new();
    let mut metas = Vec::new();
    let mut spec: Option<WatchSpec> = None;
    for (shown, text) in files {
        let imported = import_str(text, &[], &mut names);
        if imported.rules.is_empty() && imported.failed.is_empty() && imported.has_errors() {
            let why: Vec<String> = imported
                .diagnostics
                .iter()
                .map(|d| d.render(shown, text))
                .collect();
            return Err(why.concat());
        }
        for (alert, why) in imported.failed {
            metas.push(AlertMeta {
                alert,
                labels: Vec::new(),
                refused: Some(format!("import: {why}")),
                rule: None,
            });
        }
        let recorded = imported.recorded;
        for rule in imported.rules {
            let mut meta = AlertMeta {
                alert: rule.alert.clone(),
                labels: rule.labels.clone(),
                refused: None,
                rule: None,
            };
            if !rule.not_carried.is_empty() {
                meta.refused = Some(format!(
                    "not carried by import: {}",
                    rule.not_carried.join(", ")
                ));
            } else if let Some(r) = recorded.iter().find(|r| reads(&rule.query, r)) {
                meta.refused = Some(format!(
                    "reads `{r}`, a recording rule's series (import keeps alerting rules only)"
                ));
            }
            if meta.refused.is_none() {
                let own_interval = rule.interval.is_some();
                let yaml = render(vec![rule], Duration::ZERO, std::slice::from_ref(shown))
                    .map_err(|e| e.to_string());
                let opts = LoadOptions::default();
                match yaml.and_then(|y| load_str(shown, &y, &opts).map_err(|e| first_error(&e))) {
                    Ok((mut one, _)) => {
                        let mut r = one.rules.remove(0);
                        if !own_interval {
                            r.interval = every;
                        }
                        let s = spec.get_or_insert_with(|| WatchSpec {
                            rules: Vec::new(),
                            ..one
                        });
                        s.interval = every;
                        meta.rule = Some(s.rules.len());
                        s.rules.push(r);
                    }
                    Err(e) => meta.refused = Some(format!("the imported rule does not load: {e}")),
                }
            }
            metas.push(meta);
        }
    }
    Ok((spec, metas))
}

fn first_error(e: &crate::core::rules::LoadError) -> String {
    e.errors()
        .next()
        .map(|d| d.message.clone())
        .unwrap_or_else(|| e.to_string())
}

/// Whether `query` reads the series `name` (a whole metric name, not a part of one).
fn reads(query: &str, name: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    query.match_indices(name).any(|(i, _)| {
        let before = query[..i].chars().next_back();
        let after = query[i + name.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// The alerts with their replays, for `alerts::judge`.
pub fn runs<'a>(
    metas: &'a [AlertMeta],
    histories: &'a [Result<RuleHistory, String>],
) -> Vec<AlertRun<'a>> {
    metas
        .iter()
        .map(|m| AlertRun {
            alert: &m.alert,
            labels: &m.labels,
            refused: m.refused.clone(),
            history: match m.rule.and_then(|i| histories.get(i)) {
                Some(Ok(h)) => Ok(h),
                Some(Err(e)) => Err(e.clone()),
                None => Err("not replayed".into()),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_alert_is_imported_alone_and_what_cannot_be_carried_is_refused() {
        let text = r#"groups:
  - name: a
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 5m
        labels: {severity: page}
      - alert: Sticky
        expr: up == 0
        keep_firing_for: 5m
      - alert: FromRecording
        expr: job:up:sum < 1
      - alert: Broken
        expr: up ==
"#;
        let (spec, metas) =
            import_alerts(&[("r.yml".into(), text.into())], Duration::from_secs(60)).unwrap();
        let spec = spec.unwrap();
        assert_eq!(spec.rules.len(), 1);
        assert_eq!(spec.rules[0].interval, Duration::from_secs(60));
        let by = |a: &str| metas.iter().find(|m| m.alert == a).unwrap();
        assert_eq!(by("Down").rule, Some(0));
        assert_eq!(by("Down").labels, vec![("severity".into(), "page".into())]);
        assert!(by("Sticky")
            .refused
            .as_ref()
            .unwrap()
            .contains("keep_firing_for"));
        assert!(by("FromRecording")
            .refused
            .as_ref()
            .unwrap()
            .contains("job:up:sum"));
        assert!(by("Broken")
            .refused
            .as_ref()
            .unwrap()
            .contains("not valid PromQL"));
        assert!(reads("sum(job:up:sum)", "job:up:sum"));
        assert!(!reads("job:up:sum2", "job:up:sum"));
    }
}
