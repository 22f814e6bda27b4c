//! Microsoft Teams workflow-webhook bodies (pure): one adaptive card per
//! notification, with the rule, its value against the threshold, the action and the
//! links (the query in Prometheus, the report).
//!
//! The shape a workflow webhook takes: `{"type": "message", "attachments": [{
//! "contentType": "application/vnd.microsoft.card.adaptive", "content": {"$schema":
//! "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
//! "version": "1.4", "body": [...], "actions": [...]}}]}`. Teams refuses messages over
//! about 28 KB, so every text is capped and the whole card stays well below that.

use super::text::truncate;
use serde_json::{json, Value};

/// The longest card this crate sends (bytes of JSON): Teams' limit is about 28 KB.
pub const MAX_CARD_BYTES: usize = 24 * 1024;
/// The longest title, and the longest value of one fact.
const MAX_TITLE: usize = 2000;
const MAX_FACT: usize = 1000;
/// At most this many facts (rule, value, threshold, action, vars, ...).
const MAX_FACTS: usize = 12;

/// A card: its title (the notification's summary line), facts and links.
pub struct Card {
    pub title: String,
    pub facts: Vec<(String, String)>,
    /// `(url, title)`: shown as buttons when absolute http(s) URLs, else as facts.
    pub links: Vec<(String, String)>,
}

/// The workflow-webhook message of `card`, within Teams' limits.
pub fn message(card: Card) -> Value {
    let mut actions = Vec::new();
    let mut shown = Vec::new();
    for (url, title) in card.links {
        if url.starts_with("http://") || url.starts_with("https://") {
            actions.push(json!({"type": "Action.OpenUrl", "title": title, "url": url}));
        } else {
            shown.push((title, url));
        }
    }
    // Links shown as facts keep their place: the card's last facts make room.
    let room = MAX_FACTS.saturating_sub(shown.len());
    let facts: Vec<Value> = card
        .facts
        .into_iter()
        .take(room)
        .chain(shown)
        .take(MAX_FACTS)
        .map(|(t, v)| json!({"title": truncate(&t, 100), "value": truncate(&v, MAX_FACT)}))
        .collect();
    let mut msg = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": truncate(&card.title, MAX_TITLE), "wrap": true, "weight": "Bolder", "size": "Medium"},
                    {"type": "FactSet", "facts": facts},
                ],
                "actions": actions,
            },
        }],
    });
    // Links carry the query's text: a huge one goes, the card stays.
    if msg.to_string().len() > MAX_CARD_BYTES {
        msg["attachments"][0]["content"]["actions"] = json!([]);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(msg: &Value) {
        assert_eq!(msg["type"], "message");
        let att = &msg["attachments"].as_array().unwrap()[0];
        assert_eq!(
            att["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let c = &att["content"];
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["version"], "1.4");
        assert!(c["$schema"]
            .as_str()
            .unwrap()
            .starts_with("http://adaptivecards.io/"));
        let body = c["body"].as_array().unwrap();
        assert_eq!(body[0]["type"], "TextBlock");
        assert!(!body[0]["text"].as_str().unwrap().is_empty());
        assert_eq!(body[1]["type"], "FactSet");
        for f in body[1]["facts"].as_array().unwrap() {
            assert!(f["title"].is_string() && f["value"].is_string(), "{f}");
        }
        for a in c["actions"].as_array().unwrap() {
            assert_eq!(a["type"], "Action.OpenUrl");
            assert!(a["url"].as_str().unwrap().starts_with("http"), "{a}");
        }
        assert!(msg.to_string().len() <= MAX_CARD_BYTES);
    }

    fn facts() -> Vec<(String, String)> {
        [
            ("Rule", "errors"),
            ("Value", "0.9"),
            ("Threshold", "> 0.5"),
            ("Action", "rollback: succeeded"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn a_card_follows_the_adaptive_card_shape_and_teams_size_limit() {
        let huge = format!("http://prom:9090/graph?g0.expr={}", "x".repeat(40_000));
        let cases = vec![
            (
                "rolled back".to_string(),
                facts(),
                "http://prom:9090/graph?g0.expr=up".to_string(),
            ),
            (
                "é".repeat(30_000),
                vec![("v".to_string(), "y".repeat(30_000)); 40],
                huge,
            ),
        ];
        for (title, facts, graph) in cases {
            let msg = message(Card {
                title,
                facts,
                links: vec![
                    (graph, "Open the query in Prometheus".into()),
                    ("/api/v1/watches/w".into(), "Report".into()),
                ],
            });
            check(&msg);
        }
        let msg = message(Card {
            title: "rolled back".into(),
            facts: facts(),
            links: vec![("/tmp/r/report.html".into(), "Report".into())],
        });
        let f = &msg["attachments"][0]["content"]["body"][1]["facts"];
        assert_eq!(f[4]["title"], "Report", "a path is shown as a fact: {f}");
        assert_eq!(f[0]["value"], "errors");
    }
}
