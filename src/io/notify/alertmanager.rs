//! The Alertmanager channel's side of the notifier: alerts for pending and fired
//! rules, the action and the outcome, posted to Alertmanager's v2 API (in order per
//! channel, `Notifier::post_ordered`) and resolved when the watch ends, so a team's
//! own routing, grouping and inhibition page as usual.

use super::Notifier;
use crate::core::events::rfc3339_ms;
use crate::core::rules::ChannelKind;
use serde_json::{json, Value};

/// How long open alerts stay active after the watch's planned end, and how long the
/// outcome alert stays active, unless re-posted or resolved.
const ALERT_GRACE_MS: i64 = 15 * 60 * 1000;

/// The Alertmanager `severity` for an action: rollback is critical, pause a warning.
fn severity(action: &str) -> &'static str {
    match action {
        "rollback" => "critical",
        "pause" => "warning",
        _ => "info",
    }
}

impl Notifier {
    fn has_alertmanager(&self) -> bool {
        !self.dry_run
            && self
                .channels
                .iter()
                .any(|c| c.kind == ChannelKind::Alertmanager)
    }

    /// An alert (without the channel's labels): `alertname`, the watch's vars,
    /// `severity`, plus `extra` labels; `annotations` as given.
    fn alert(
        &self,
        at_ms: i64,
        alertname: &str,
        severity: &str,
        extra: &[(&str, &str)],
        annotations: Value,
        generator: Option<&str>,
    ) -> Value {
        let mut labels = serde_json::Map::new();
        for (k, v) in &self.vars {
            labels.insert(k.clone(), json!(v));
        }
        labels.insert("alertname".into(), json!(alertname));
        labels.insert("severity".into(), json!(severity));
        for (k, v) in extra {
            labels.insert(k.to_string(), json!(v));
        }
        let mut annotations = annotations;
        if let (Some(link), Some(a)) = (&self.report, annotations.as_object_mut()) {
            a.insert("report".into(), json!(link));
        }
        let mut alert = json!({
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339_ms(at_ms),
            "endsAt": rfc3339_ms(self.ends_ms.max(at_ms) + ALERT_GRACE_MS),
        });
        if let Some(g) = generator {
            alert["generatorURL"] = json!(g);
        }
        alert
    }

    /// Opens (or updates) the alert `alertname` for `rule` and posts it.
    pub(super) fn open_rule_alert(
        &mut self,
        at_ms: i64,
        alertname: &str,
        rule: &str,
        annotations: Value,
    ) {
        if !self.has_alertmanager() {
            return;
        }
        let key = format!("{alertname}/{rule}");
        let info = self.rules.get(rule);
        let sev = severity(info.map_or("notify", |i| i.action));
        let generator = info.and_then(|i| i.graph_url.clone());
        let mut alert = self.alert(
            at_ms,
            alertname,
            sev,
            &[("rule", rule)],
            annotations,
            generator.as_deref(),
        );
        // An update keeps the alert's first start.
        if let Some(old) = self.alerts.get(&key) {
            alert["startsAt"] = old["startsAt"].clone();
        }
        self.alerts.insert(key, alert.clone());
        self.post_alerts(vec![alert]);
    }

    /// Posts `alerts` to every alertmanager channel, each its own delivery task,
    /// in order per channel.
    fn post_alerts(&mut self, alerts: Vec<Value>) {
        let mut batches = Vec::new();
        for (i, ch) in self
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == ChannelKind::Alertmanager)
        {
            let body: Vec<Value> = alerts
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    // The channel's labels never override rollwatch's own.
                    if let Value::Object(l) = &mut a["labels"] {
                        for (k, v) in &ch.labels {
                            l.entry(k.clone()).or_insert_with(|| json!(v));
                        }
                    }
                    a
                })
                .collect();
            batches.push((i, Value::Array(body)));
        }
        for (i, body) in batches {
            self.post_ordered(i, "alerts", body);
        }
    }

    /// The alert of the action taken for `rule` (`action` label: rollback or pause).
    pub(super) fn open_action_alert(
        &mut self,
        at_ms: i64,
        action: &str,
        rule: &str,
        annotations: Value,
    ) {
        if !self.has_alertmanager() {
            return;
        }
        let key = format!("RollwatchAction/{rule}");
        let mut alert = self.alert(
            at_ms,
            "RollwatchAction",
            severity(action),
            &[("rule", rule), ("action", action)],
            annotations,
            None,
        );
        if let Some(old) = self.alerts.get(&key) {
            alert["startsAt"] = old["startsAt"].clone();
        }
        self.alerts.insert(key, alert.clone());
        self.post_alerts(vec![alert]);
    }

    /// The watch ended: posts the outcome alert and resolves every open one.
    pub(super) fn finish_alerts(
        &mut self,
        at_ms: i64,
        outcome: &str,
        detail: &str,
        rule: Option<&str>,
    ) {
        if !self.has_alertmanager() {
            return;
        }
        let sev = match (outcome, rule.and_then(|r| self.rules.get(r))) {
            ("healthy", _) => "info",
            (_, Some(i)) => severity(i.action),
            _ => "warning",
        };
        let mut extra = vec![("outcome", outcome)];
        if let Some(r) = rule {
            extra.push(("rule", r));
        }
        let mut outcome_alert = self.alert(
            at_ms,
            "RollwatchOutcome",
            sev,
            &extra,
            json!({"summary": format!("rollwatch [{}]: {detail}", self.vars_text())}),
            None,
        );
        outcome_alert["endsAt"] = json!(rfc3339_ms(at_ms + ALERT_GRACE_MS));
        let mut batch = vec![outcome_alert];
        for (_, mut a) in std::mem::take(&mut self.alerts) {
            a["endsAt"] = json!(rfc3339_ms(at_ms));
            batch.push(a);
        }
        self.post_alerts(batch);
    }
}
