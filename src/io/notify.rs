//! Notification channels: tell people what the watch did, without ever slowing it.
//!
//! A rule with `action: notify` posts and the watch goes on; rollbacks, pauses, their
//! failures and inconclusive endings post too. Each delivery runs in its own task with a
//! per-attempt timeout and retries with backoff, so a slow or dead receiver can never
//! delay a rollback; a delivery that fails in the end is logged, not fatal. Channel URLs
//! are secrets: logs name a channel only by its label (`slack #2`).
//!
//! `serve` delivers through its store's outbox instead (`Notifier::collecting`): the
//! notifier only renders each notification (`Outgoing`), the agent writes it in the
//! transaction of the state change it reports, and delivers it after the commit with
//! `deliver_once` and an idempotency key, retrying after a restart or an adoption.
//!
//! An `alertmanager` channel instead posts alerts to Alertmanager's v2 API (pending and
//! fired rules, the action, the outcome) and resolves them when the watch ends, so a
//! team's own routing, grouping and inhibition page as usual.
//!
//! `pagerduty`, `teams` and `grafana` channels speak those vendors' APIs: the bodies
//! are built (pure) in `notify/pagerduty.rs`, `teams.rs`, `grafana.rs`; which events
//! page or annotate is in `pagers.rs`; the HTTP side, where secrets are added, in
//! `http.rs`; Alertmanager's alerts in `alertmanager.rs`. This file keeps the sink and
//! the generic channels (webhook, Slack, Teams).

mod alertmanager;
mod grafana;
mod http;
mod pagerduty;
mod pagers;
mod teams;
mod text;

pub use http::{client, deliver_once, post_json, PostFailure, RetryPolicy};

use crate::core::eval::Labels;
use crate::core::events::{rfc3339_ms, secs, Event, RuleInfo, Sink};
use crate::core::rules::{Channel, ChannelKind};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Deliveries still in flight; awaited (bounded) when the watch ends.
#[derive(Clone, Default)]
pub struct Deliveries(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Deliveries {
    fn add(&self, h: JoinHandle<()>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    /// Waits for pending deliveries, at most `limit` in all.
    pub async fn drain(&self, limit: Duration) {
        let handles: Vec<_> =
            std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures_join(handles);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                event = "notification_abandoned",
                "notifications still being delivered after {limit:?} were abandoned"
            );
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// A rendered notification, not sent: what a collecting notifier hands its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Index of the channel in the watch's `notify:` list.
    pub channel: usize,
    pub kind: String,
    pub body: Value,
}

/// Where a collecting notifier puts what it rendered.
pub type Collected = Arc<Mutex<Vec<Outgoing>>>;

#[derive(Clone)]
struct Fired {
    labels: Labels,
    value: Option<f64>,
    threshold: String,
    breached_for_s: f64,
    evidence: crate::core::events::Evidence,
}

/// The sink that turns watch events into notifications.
pub struct Notifier {
    channels: Vec<Channel>,
    http: reqwest::Client,
    deliveries: Deliveries,
    vars: BTreeMap<String, String>,
    rules: BTreeMap<String, RuleInfo>,
    fired: BTreeMap<String, Fired>,
    dry_run: bool,
    /// When the watch is due to end (ms), so open alerts outlive it a little and
    /// expire by themselves if rollwatch dies.
    ends_ms: i64,
    /// Alerts posted to Alertmanager and not yet resolved, by `alertname/rule`.
    alerts: BTreeMap<String, Value>,
    /// Per ordered channel (alertmanager, pagerduty, grafana; by index), the end of
    /// its latest delivery: each post waits for the one before, so a late update never
    /// reopens a resolved alert.
    tails: BTreeMap<usize, tokio::sync::oneshot::Receiver<()>>,
    /// The watch's id (`with_watch_id`; for `watch`, its start in ms): PagerDuty's
    /// `dedup_key` and Grafana's `watch:` tag.
    watch_id: Option<String>,
    /// Rules whose PagerDuty alert was triggered and not resolved.
    paged: BTreeSet<String>,
    /// Rules whose action failed: their PagerDuty alert stays open.
    failed: BTreeSet<String>,
    /// When each rule's action started (ms): the start of its Grafana region.
    action_started: BTreeMap<String, i64>,
    /// The `report` annotation of Alertmanager alerts (`with_report`).
    report: Option<String>,
    /// `collecting`: notifications are rendered here, never sent.
    collect: Option<Collected>,
}

impl Notifier {
    pub fn new(channels: Vec<Channel>) -> (Notifier, Deliveries) {
        let deliveries = Deliveries::default();
        let http = http::client();
        let n = Notifier {
            channels,
            http,
            deliveries: deliveries.clone(),
            vars: BTreeMap::new(),
            rules: BTreeMap::new(),
            fired: BTreeMap::new(),
            dry_run: false,
            ends_ms: 0,
            alerts: BTreeMap::new(),
            tails: BTreeMap::new(),
            watch_id: None,
            paged: BTreeSet::new(),
            failed: BTreeSet::new(),
            action_started: BTreeMap::new(),
            report: None,
            collect: None,
        };
        (n, deliveries)
    }

    /// A notifier that only renders: each notification goes to the returned list,
    /// for its owner to store and deliver (`deliver_once`).
    pub fn collecting(channels: Vec<Channel>) -> (Notifier, Collected) {
        let (mut n, _) = Notifier::new(channels);
        let out = Collected::default();
        n.collect = Some(out.clone());
        (n, out)
    }

    /// Hands a rendered notification to the collector; false if this notifier sends.
    fn collected(&self, channel: usize, kind: &str, body: &Value) -> bool {
        match &self.collect {
            Some(c) => {
                c.lock().unwrap_or_else(|e| e.into_inner()).push(Outgoing {
                    channel,
                    kind: kind.to_string(),
                    body: body.clone(),
                });
                true
            }
            None => false,
        }
    }

    /// Where the watch's report is (`--report`'s `report.html`, or the agent's API path
    /// of the watch): Alertmanager alerts carry it as the `report` annotation.
    pub fn with_report(mut self, link: String) -> Notifier {
        self.report = Some(link);
        self
    }

    /// The watch's id (the agent's): PagerDuty's `dedup_key` and Grafana's tag use
    /// it, so that they stay the same after a restart.
    pub fn with_watch_id(mut self, id: &str) -> Notifier {
        self.watch_id = Some(id.to_string());
        self
    }

    fn vars_text(&self) -> String {
        if self.vars.is_empty() {
            return "watch".to_string();
        }
        crate::core::events::vars_text(&self.vars)
    }

    /// Posts `body` (a note of `kind`) to channel `i` after its previous post ended,
    /// in a task of its own (or hands it to the collector).
    fn post_ordered(&mut self, i: usize, kind: &str, body: Value) {
        if self.collected(i, kind, &body) {
            return;
        }
        let (done, tail) = tokio::sync::oneshot::channel();
        let before = self.tails.insert(i, tail);
        let send = http::deliver(
            self.http.clone(),
            self.channels[i].clone(),
            kind.to_string(),
            body,
        );
        let h = tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            send.await;
            let _ = done.send(());
        });
        self.deliveries.add(h);
    }

    /// Builds and sends one notification of `kind`.
    fn send(&self, at_ms: i64, kind: &str, rule: Option<&str>, what: String, action: Value) {
        if self.dry_run {
            tracing::info!(event = "notification_skipped", kind = %kind, "dry run: the {kind} notification is not sent");
            return;
        }
        let info = rule.and_then(|r| self.rules.get(r));
        let fired = rule.and_then(|r| self.fired.get(r));
        let mut summary = format!("rollwatch [{}]: {what}", self.vars_text());
        if let (Some(r), Some(f)) = (rule, fired) {
            summary.push_str(&format!(
                "\nRule `{r}`: {} (threshold {}), breached for {}.",
                f.value
                    .map_or("no data".into(), crate::core::events::float::text),
                f.threshold,
                secs(f.breached_for_s)
            ));
            if !f.evidence.is_empty() {
                summary.push_str(&format!("\nEvidence: {}.", f.evidence.text()));
            }
        }
        let graph = info.and_then(|i| i.graph_url.clone());
        if let Some(g) = &graph {
            summary.push_str(&format!("\nQuery: {g}"));
        }
        let payload = json!({
            "kind": kind,
            "time": rfc3339_ms(at_ms),
            "summary": summary,
            "vars": self.vars,
            "rule": rule,
            "labels": fired.map(|f| &f.labels),
            "value": crate::core::events::float::json(fired.and_then(|f| f.value)),
            "threshold": fired.map(|f| &f.threshold),
            "breached_for_s": fired.map(|f| f.breached_for_s),
            "evidence": fired.map(|f| &f.evidence).filter(|e| !e.is_empty()),
            "action": action,
            "query": info.map(|i| &i.query),
            "graph_url": graph,
        });
        for (i, ch) in self
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.on.iter().any(|k| k == kind))
        {
            let body = match ch.kind {
                ChannelKind::Webhook => payload.clone(),
                ChannelKind::Slack => slack_message(&summary, graph.as_deref()),
                ChannelKind::Teams => self.teams_card(&what, rule, &action, graph.as_deref()),
                ChannelKind::Alertmanager | ChannelKind::PagerDuty | ChannelKind::Grafana => {
                    continue
                }
            };
            if self.collected(i, kind, &body) {
                continue;
            }
            let h = tokio::spawn(http::deliver(
                self.http.clone(),
                ch.clone(),
                kind.to_string(),
                body,
            ));
            self.deliveries.add(h);
        }
    }
}

/// Sends one notification outside a watch (e.g. `gate`'s emergency change) to the
/// channels subscribed to `kind`, and waits for the deliveries (bounded by their
/// timeouts and retries). `payload` goes to webhooks with `kind` and `summary` added.
pub async fn send_now(channels: &[Channel], kind: &str, summary: String, mut payload: Value) {
    if let Value::Object(m) = &mut payload {
        m.insert("kind".into(), json!(kind));
        m.insert("summary".into(), json!(summary));
    }
    let http = http::client();
    let mut tasks = Vec::new();
    for ch in channels.iter().filter(|c| c.on.iter().any(|k| k == kind)) {
        let body = match ch.kind {
            ChannelKind::Webhook => payload.clone(),
            ChannelKind::Slack => slack_message(&summary, None),
            ChannelKind::Teams => teams::message(teams::Card {
                title: summary.clone(),
                facts: Vec::new(),
                links: Vec::new(),
            }),
            ChannelKind::Alertmanager | ChannelKind::PagerDuty | ChannelKind::Grafana => continue,
        };
        tasks.push(tokio::spawn(http::deliver(
            http.clone(),
            ch.clone(),
            kind.to_string(),
            body,
        )));
    }
    futures_join(tasks).await;
}

/// A Slack incoming-webhook message: `text` (the fallback) plus one section block.
fn slack_message(summary: &str, graph: Option<&str>) -> Value {
    let mut text = summary.to_string();
    if let Some(g) = graph {
        text = text.replace(
            &format!("Query: {g}"),
            &format!("<{g}|Open the query in Prometheus>"),
        );
    }
    json!({
        "text": summary,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    })
}

impl Sink for Notifier {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        match event {
            Event::WatchStarted {
                vars,
                rules,
                dry_run,
                duration_s,
                ..
            } => {
                self.vars = vars.clone();
                self.rules = rules.iter().map(|r| (r.name.clone(), r.clone())).collect();
                self.dry_run = *dry_run;
                self.ends_ms = at_ms + (*duration_s * 1000.0) as i64;
                self.annotate_start(at_ms, *duration_s);
            }
            // One pending alert per rule, whatever its series do.
            Event::Pending {
                rule,
                value,
                threshold,
                ..
            } if !self
                .alerts
                .contains_key(&format!("RollwatchPending/{rule}")) =>
            {
                let of = self.rules.get(rule).map_or(0.0, |i| i.for_s);
                let annotations = json!({
                    "summary": format!("rollwatch [{}]: `{rule}` is breached; it fires once breached for {}", self.vars_text(), secs(of)),
                    "value": value.map_or("no data".into(), crate::core::events::float::text),
                    "threshold": threshold,
                });
                self.open_rule_alert(at_ms, "RollwatchPending", rule, annotations);
            }
            Event::Fired {
                rule,
                labels,
                value,
                threshold,
                breached_for_s,
                action,
                evidence,
            } => {
                self.fired.insert(
                    rule.clone(),
                    Fired {
                        labels: labels.clone(),
                        value: *value,
                        threshold: threshold.clone(),
                        breached_for_s: *breached_for_s,
                        evidence: evidence.clone(),
                    },
                );
                let annotations = json!({
                    "summary": format!("rollwatch [{}]: `{rule}` fired after {} breached", self.vars_text(), secs(*breached_for_s)),
                    "value": value.map_or("no data".into(), crate::core::events::float::text),
                    "threshold": threshold,
                    "action": action,
                    "evidence": evidence.text(),
                });
                self.open_rule_alert(at_ms, "RollwatchFired", rule, annotations);
                let what = format!("`{rule}` fired after {} breached", secs(*breached_for_s));
                self.page(at_ms, rule, &what, json!({"kind": action}), None);
            }
            Event::ActionStarted { action, rule, .. } => {
                let annotations = json!({
                    "summary": format!("rollwatch [{}]: running the {action} command for `{rule}`", self.vars_text()),
                    "status": "running",
                });
                self.open_action_alert(at_ms, action, rule, annotations);
                self.action_started.insert(rule.clone(), at_ms);
                let what = format!("running the {action} command");
                let detail = json!({"kind": action, "status": "running"});
                self.page(at_ms, rule, &what, detail, None);
            }
            // A person's order (who, why), and a rule held back by a hold: the record
            // an emergency change needs, where on-call reads.
            Event::Manual {
                order,
                by,
                reason,
                until_ms,
                ends_ms,
            } => {
                let what = crate::core::events::manual_text(event).unwrap_or_default();
                let detail = json!({"order": order, "by": by, "reason": reason, "until_ms": until_ms, "ends_ms": ends_ms});
                self.send(at_ms, "manual", None, what, detail);
            }
            Event::HeldBack {
                rule,
                action,
                held_by,
                until_ms,
                ..
            } => {
                let what = crate::core::events::manual_text(event).unwrap_or_default();
                let detail = json!({"kind": action, "held_by": held_by, "until_ms": until_ms});
                self.send(at_ms, "held", Some(rule), what, detail);
            }
            Event::Notify { rule, .. } => {
                self.send(
                    at_ms,
                    "notify",
                    Some(rule),
                    format!("`{rule}` is breached; the watch goes on"),
                    Value::Null,
                );
            }
            Event::ActionFinished {
                action,
                rule,
                status,
                succeeded,
                duration_s,
                output_tail,
            } => {
                let kind = if *succeeded {
                    action.to_string()
                } else {
                    format!("{action}_failed")
                };
                let what = match (*action, *succeeded) {
                    ("rollback", true) => "rolled back".to_string(),
                    ("pause", true) => "the release was paused".to_string(),
                    (a, _) => format!("the {a} command {status}: act by hand"),
                };
                let annotations = json!({
                    "summary": format!("rollwatch [{}]: {what}", self.vars_text()),
                    "status": status,
                });
                self.open_action_alert(at_ms, action, rule, annotations);
                self.annotate_action(at_ms, &kind, rule, &what);
                let action = json!({"kind": action, "status": status, "succeeded": succeeded, "duration_s": duration_s, "output_tail": output_tail});
                let severity = (!*succeeded).then_some("critical");
                if !*succeeded {
                    self.failed.insert(rule.clone());
                }
                self.page(at_ms, rule, &what, action.clone(), severity);
                self.send(at_ms, &kind, Some(rule), what, action);
            }
            Event::WatchFinished {
                outcome,
                detail,
                rule,
                ..
            } => {
                self.finish_alerts(at_ms, outcome, detail, rule.as_deref());
                self.resolve_pages(outcome, rule.as_deref());
                self.annotate_end(at_ms, outcome, detail);
                if matches!(
                    *outcome,
                    "inconclusive" | "healthy" | "interrupted" | "superseded"
                ) {
                    self.send(at_ms, outcome, None, detail.clone(), Value::Null);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "notify/pagers_tests.rs"]
mod pagers_tests;
