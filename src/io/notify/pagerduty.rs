//! PagerDuty Events API v2 bodies (pure): a `trigger` per fired rule and its action,
//! a `resolve` at the watch's end, both under one `dedup_key` per watch and rule so
//! that every update lands on the same alert, at every retry and after a restart.
//!
//! The documented schema (`POST https://events.pagerduty.com/v2/enqueue`):
//! `routing_key`, `event_action` (`trigger`, `acknowledge`, `resolve`) and, for a
//! trigger, `payload.summary` (at most 1024 characters), `payload.source` and
//! `payload.severity` (`critical`, `error`, `warning`, `info`) are required;
//! `dedup_key` is at most 255 characters; `links` are `{href, text}`; a whole event
//! is at most 512 KB. The routing key is a secret: it is not in these bodies (which
//! `serve` stores in its outbox); `http::request_for` adds it when sending.

use super::text::truncate;
use serde_json::{json, Value};

/// The longest `payload.summary` PagerDuty takes.
pub const MAX_SUMMARY: usize = 1024;
/// The longest `dedup_key` PagerDuty takes.
pub const MAX_DEDUP_KEY: usize = 255;
/// The longest event PagerDuty takes (512 KB), with room for the routing key.
pub const MAX_EVENT_BYTES: usize = 512 * 1024 - 1024;
/// Our own cap on `payload.source` (PagerDuty states none; it is shown in a column).
pub const MAX_SOURCE: usize = 255;

/// The severity of a rule whose action is `action`: rollback is critical, pause an
/// error, notify a warning.
pub fn severity(action: &str) -> &'static str {
    match action {
        "rollback" => "critical",
        "pause" => "error",
        "notify" => "warning",
        _ => "info",
    }
}

/// The `dedup_key` of `rule` in watch `watch`: the same for every event of that rule
/// in that watch, whoever sends it. Kept within `MAX_DEDUP_KEY`: a longer one is cut
/// and ends with a hash of the whole, so that two long keys still differ.
pub fn dedup_key(watch: &str, rule: &str) -> String {
    let key = format!("rollwatch/{watch}/{rule}");
    if key.chars().count() <= MAX_DEDUP_KEY {
        return key;
    }
    let hash = format!("/{:016x}", fnv1a(key.as_bytes()));
    let keep = MAX_DEDUP_KEY - hash.len();
    let mut cut: String = key.chars().take(keep).collect();
    cut.push_str(&hash);
    cut
}

/// FNV-1a (64 bits): a stable hash, the same in every build and process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a trigger says.
pub struct Trigger<'a> {
    pub dedup_key: &'a str,
    pub summary: &'a str,
    pub source: &'a str,
    pub severity: &'a str,
    pub timestamp: &'a str,
    /// `custom_details`: rule, value, threshold and the rest.
    pub details: Value,
    /// `(href, text)` links (only absolute http(s) ones are kept).
    pub links: Vec<(String, String)>,
}

/// A `trigger` event (without the routing key), within PagerDuty's limits.
pub fn trigger(t: Trigger<'_>) -> Value {
    let links: Vec<Value> = t
        .links
        .iter()
        .filter(|(href, _)| href.starts_with("http://") || href.starts_with("https://"))
        .map(|(href, text)| json!({"href": href, "text": text}))
        .collect();
    let mut event = json!({
        "event_action": "trigger",
        "dedup_key": t.dedup_key,
        "client": "rollwatch",
        "payload": {
            "summary": truncate(t.summary, MAX_SUMMARY),
            "source": truncate(if t.source.is_empty() { "rollwatch" } else { t.source }, MAX_SOURCE),
            "severity": t.severity,
            "timestamp": t.timestamp,
            "component": "rollwatch",
            "custom_details": t.details,
        },
        "links": links,
    });
    // An event over the size limit loses its details but the rule, value, threshold.
    if event.to_string().len() > MAX_EVENT_BYTES {
        let d = &event["payload"]["custom_details"];
        let small = json!({
            "rule": d["rule"], "value": d["value"], "threshold": d["threshold"],
            "action": d["action"], "truncated": true,
        });
        event["payload"]["custom_details"] = small;
    }
    event
}

/// A `resolve` event (without the routing key).
pub fn resolve(dedup_key: &str) -> Value {
    json!({"event_action": "resolve", "dedup_key": dedup_key})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented schema of an event, as this crate sends it (routing key aside).
    fn check(event: &Value) {
        let action = event["event_action"].as_str().unwrap();
        assert!(["trigger", "acknowledge", "resolve"].contains(&action));
        let key = event["dedup_key"].as_str().unwrap();
        assert!(
            !key.is_empty() && key.chars().count() <= MAX_DEDUP_KEY,
            "{key}"
        );
        assert!(
            event.get("routing_key").is_none(),
            "never rendered: {event}"
        );
        assert!(event.to_string().len() <= MAX_EVENT_BYTES);
        if action == "trigger" {
            let p = &event["payload"];
            let summary = p["summary"].as_str().unwrap();
            assert!(!summary.is_empty() && summary.chars().count() <= MAX_SUMMARY);
            assert!(!p["source"].as_str().unwrap().is_empty());
            let sev = p["severity"].as_str().unwrap();
            assert!(
                ["critical", "error", "warning", "info"].contains(&sev),
                "{sev}"
            );
            assert!(p["custom_details"].is_object());
            for l in event["links"].as_array().unwrap() {
                assert!(l["href"].as_str().unwrap().starts_with("http"), "{l}");
                assert!(l["text"].is_string());
            }
        }
    }

    fn details() -> Value {
        json!({"rule": "errors", "value": "0.9", "threshold": "> 0.5", "action": "rollback"})
    }

    #[test]
    fn triggers_and_resolves_follow_the_documented_schema_and_limits() {
        let long = "é".repeat(5000);
        let huge = json!({"rule": "r", "value": "1", "threshold": "> 0", "action": "rollback", "output_tail": "x".repeat(600 * 1024)});
        let cases: Vec<(&str, &str, Value)> = vec![
            ("short", "checkout", details()),
            (long.as_str(), long.as_str(), details()),
            ("s", "", details()),
            ("s", "svc", huge),
        ];
        for (summary, source, details) in cases {
            let e = trigger(Trigger {
                dedup_key: &dedup_key("w", "errors"),
                summary,
                source,
                severity: severity("rollback"),
                timestamp: "2026-12-06T13:00:00.000Z",
                details,
                links: vec![
                    ("http://prom:9090/graph?g0.expr=up".into(), "query".into()),
                    ("/tmp/report/report.html".into(), "report".into()),
                ],
            });
            check(&e);
            assert_eq!(e["links"].as_array().unwrap().len(), 1, "{e}");
            assert!(e["payload"]["custom_details"]["rule"].is_string());
        }
        check(&resolve(&dedup_key("w", "errors")));
    }

    #[test]
    fn severity_follows_the_rules_action() {
        let got: Vec<_> = ["rollback", "pause", "notify", "other"]
            .iter()
            .map(|a| severity(a))
            .collect();
        assert_eq!(got, ["critical", "error", "warning", "info"]);
    }

    #[test]
    fn a_dedup_key_is_stable_distinct_and_capped() {
        assert_eq!(dedup_key("w-1", "errors"), "rollwatch/w-1/errors");
        assert_eq!(dedup_key("w-1", "errors"), dedup_key("w-1", "errors"));
        assert_ne!(dedup_key("w-1", "errors"), dedup_key("w-2", "errors"));
        let long = "x".repeat(400);
        let (a, b) = (dedup_key(&long, "a"), dedup_key(&long, "b"));
        assert_eq!(a.chars().count(), MAX_DEDUP_KEY);
        assert_ne!(a, b, "two long keys still differ");
        assert_eq!(a, dedup_key(&long, "a"), "and each stays the same");
        // The hash is fixed, not per process: a restarted agent resolves the same key.
        assert_eq!(fnv1a(b"rollwatch"), 0x8151_c21c_a13a_1d5d);
    }
}
