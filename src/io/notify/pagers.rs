//! The pagers' side of the notifier: which watch events become PagerDuty events and
//! Grafana annotations, and what a Teams card shows (the bodies are built in
//! `pagerduty`, `grafana` and `teams`).
//!
//! PagerDuty: a fired rule triggers its alert (`dedup_key` per watch and rule), its
//! action's start and result update that alert (a trigger with the same key), and the
//! watch's end resolves every alert it opened, except one whose action failed: that
//! one is on-call's to act on and to resolve. Grafana: the watch's start and end as
//! points, each action as a region from its start to its result. Both are posted in
//! order per channel, each post its own task (`Notifier::post_ordered`), or rendered
//! for the outbox under `serve`.

use super::{grafana, pagerduty, teams, Notifier};
use crate::core::events::{rfc3339_ms, secs};
use crate::core::rules::ChannelKind;
use serde_json::{json, Value};

impl Notifier {
    fn has(&self, kind: ChannelKind) -> bool {
        !self.dry_run && self.channels.iter().any(|c| c.kind == kind)
    }

    /// This watch's id: the agent's, or (for `watch`) its start in ms.
    fn watch_id(&self) -> &str {
        self.watch_id.as_deref().unwrap_or("watch")
    }

    /// Sends `body` to every channel of `kind`, in order per channel.
    fn post_each(&mut self, kind: ChannelKind, note: &str, body: &Value) {
        let targets: Vec<usize> = (0..self.channels.len())
            .filter(|i| self.channels[*i].kind == kind)
            .collect();
        for i in targets {
            self.post_ordered(i, note, body.clone());
        }
    }

    /// The watch started: a Grafana point.
    pub(super) fn annotate_start(&mut self, at_ms: i64, duration_s: f64) {
        if self.watch_id.is_none() {
            self.watch_id = Some(at_ms.to_string());
        }
        if !self.has(ChannelKind::Grafana) {
            return;
        }
        let text = format!(
            "rollwatch [{}]: watching for {}",
            self.vars_text(),
            secs(duration_s)
        );
        let tags = grafana::tags(self.watch_id(), &self.vars, &["start"]);
        let body = grafana::annotation(at_ms, None, &text, tags);
        self.post_each(ChannelKind::Grafana, "annotation", &body);
    }

    /// An action ended: a Grafana region from its start to now.
    pub(super) fn annotate_action(&mut self, at_ms: i64, kind: &str, rule: &str, what: &str) {
        let started = self.action_started.remove(rule).unwrap_or(at_ms);
        if !self.has(ChannelKind::Grafana) {
            return;
        }
        let text = format!("rollwatch [{}]: {what} (rule `{rule}`)", self.vars_text());
        let tags = grafana::tags(self.watch_id(), &self.vars, &[kind]);
        let body = grafana::annotation(started, Some(at_ms), &text, tags);
        self.post_each(ChannelKind::Grafana, "annotation", &body);
    }

    /// The watch ended: a Grafana point.
    pub(super) fn annotate_end(&mut self, at_ms: i64, outcome: &str, detail: &str) {
        if !self.has(ChannelKind::Grafana) {
            return;
        }
        let text = format!("rollwatch [{}]: {detail}", self.vars_text());
        let outcome = format!("outcome:{outcome}");
        let tags = grafana::tags(self.watch_id(), &self.vars, &["end", &outcome]);
        let body = grafana::annotation(at_ms, None, &text, tags);
        self.post_each(ChannelKind::Grafana, "annotation", &body);
    }

    /// Triggers (or updates) `rule`'s PagerDuty alert: `what` happened; `severity`
    /// overrides the rule's own (a failed action is critical).
    pub(super) fn page(
        &mut self,
        at_ms: i64,
        rule: &str,
        what: &str,
        action: Value,
        severity: Option<&str>,
    ) {
        if !self.has(ChannelKind::PagerDuty) {
            return;
        }
        let info = self.rules.get(rule);
        let fired = self.fired.get(rule);
        let value = fired
            .and_then(|f| f.value)
            .map_or("no data".into(), crate::core::events::float::text);
        let threshold = fired.map(|f| f.threshold.clone());
        let summary = format!(
            "rollwatch [{}]: {what} (rule `{rule}`: {value}, threshold {})",
            self.vars_text(),
            threshold.as_deref().unwrap_or("?")
        );
        // The rule's action; for a person's order (no such rule), the order's.
        let acts = info.map(|i| i.action).or(action["kind"].as_str());
        let severity = severity.unwrap_or_else(|| pagerduty::severity(acts.unwrap_or("notify")));
        let details = json!({
            "rule": rule,
            "value": value,
            "threshold": threshold,
            "breached_for_s": fired.map(|f| f.breached_for_s),
            "evidence": fired.map(|f| f.evidence.text()).filter(|e| !e.is_empty()),
            "action": action,
            "vars": self.vars,
            "query": info.map(|i| &i.query),
            "report": self.report,
        });
        let mut links = Vec::new();
        if let Some(g) = info.and_then(|i| i.graph_url.clone()) {
            links.push((g, "The rule's query in Prometheus".to_string()));
        }
        if let Some(r) = &self.report {
            links.push((r.clone(), "The watch's report".to_string()));
        }
        let key = pagerduty::dedup_key(self.watch_id(), rule);
        let source = self.vars_text();
        let body = pagerduty::trigger(pagerduty::Trigger {
            dedup_key: &key,
            summary: &summary,
            source: &source,
            severity,
            timestamp: &rfc3339_ms(at_ms),
            details,
            links,
        });
        self.paged.insert(rule.to_string());
        self.post_each(ChannelKind::PagerDuty, "pagerduty", &body);
    }

    /// The watch ended (`outcome`): resolves every alert it opened (and the rule
    /// whose action ended it well, which an agent restarted since it fired no longer
    /// remembers), except those whose action failed.
    pub(super) fn resolve_pages(&mut self, outcome: &str, rule: Option<&str>) {
        if !self.has(ChannelKind::PagerDuty) {
            return;
        }
        let mut rules = std::mem::take(&mut self.paged);
        if matches!(outcome, "rolled_back" | "paused") {
            rules.extend(rule.map(str::to_string));
        }
        for r in rules.difference(&self.failed.clone()) {
            let body = pagerduty::resolve(&pagerduty::dedup_key(self.watch_id(), r));
            self.post_each(ChannelKind::PagerDuty, "pagerduty", &body);
        }
    }

    /// A watch resumed by a restarted (or adopting) agent, whose notifier remembers
    /// nothing: the `fired` rules had paged before (their alerts are resolved at the
    /// end like any other), the `failed` ones' actions failed (theirs stay open).
    pub fn resumed(&mut self, fired: Vec<String>, failed: Vec<String>) {
        self.paged.extend(fired);
        self.failed.extend(failed);
    }

    /// The Teams card of a notification: `what` happened; the rule, its value against
    /// the threshold, the action (`action`: its kind and status) and the links.
    pub(super) fn teams_card(
        &self,
        what: &str,
        rule: Option<&str>,
        action: &Value,
        graph: Option<&str>,
    ) -> Value {
        // The rule's facts first: the vars (also in the title) fill the room left.
        let mut facts: Vec<(String, String)> = Vec::new();
        if let Some(r) = rule {
            facts.push(("Rule".into(), r.to_string()));
            if let Some(f) = self.fired.get(r) {
                let value = f
                    .value
                    .map_or("no data".into(), crate::core::events::float::text);
                facts.push(("Value".into(), value));
                facts.push(("Threshold".into(), f.threshold.clone()));
                facts.push(("Breached for".into(), secs(f.breached_for_s)));
            }
        }
        let kind = action["kind"]
            .as_str()
            .or_else(|| rule.and_then(|r| self.rules.get(r)).map(|i| i.action));
        if let Some(k) = kind {
            let shown = match action["status"].as_str() {
                Some(st) => format!("{k}: {st}"),
                None => k.to_string(),
            };
            facts.push(("Action".into(), shown));
        }
        facts.extend(self.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut links = Vec::new();
        if let Some(g) = graph {
            links.push((g.to_string(), "Open the query in Prometheus".to_string()));
        }
        if let Some(r) = &self.report {
            links.push((r.clone(), "Report".to_string()));
        }
        teams::message(teams::Card {
            title: format!("rollwatch [{}]: {what}", self.vars_text()),
            facts,
            links,
        })
    }
}
