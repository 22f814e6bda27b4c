//! Grafana annotation bodies (pure): the watch's start and end as points, each action
//! as a region from its start to its end, all tagged so that any dashboard can show
//! them (`POST {url}/api/annotations` with a service-account token).
//!
//! The documented body: `text` (required), `time` and `timeEnd` in epoch ms, `tags`
//! (strings); without a `dashboardUID` it is an organization annotation, shown by any
//! dashboard whose annotation query filters on its tags. The token is a secret:
//! `http::request_for` adds it as `Authorization: Bearer` when sending.

use super::text::truncate;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The longest tag: Grafana stores a `key:value` tag's parts in columns of 100.
const MAX_TAG: usize = 100;
/// The longest text this crate sends.
const MAX_TEXT: usize = 4000;

/// The tags of every annotation of watch `watch` with `vars`, plus `kind`:
/// `rollwatch`, `watch:<id>`, `<var>:<value>` per var, and `kind`.
pub fn tags(watch: &str, vars: &BTreeMap<String, String>, kind: &[&str]) -> Vec<String> {
    let mut t = vec!["rollwatch".to_string(), format!("watch:{watch}")];
    t.extend(vars.iter().map(|(k, v)| format!("{k}:{v}")));
    t.extend(kind.iter().map(|k| k.to_string()));
    t.into_iter().map(|s| truncate(&s, MAX_TAG)).collect()
}

/// An annotation at `time_ms` (a region to `end_ms` when given).
pub fn annotation(time_ms: i64, end_ms: Option<i64>, text: &str, tags: Vec<String>) -> Value {
    let mut a = json!({"time": time_ms, "tags": tags, "text": truncate(text, MAX_TEXT)});
    if let Some(end) = end_ms {
        a["timeEnd"] = json!(end.max(time_ms));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &Value) {
        assert!(!a["text"].as_str().unwrap().is_empty());
        let t = a["time"].as_i64().unwrap();
        assert!(t > 1_000_000_000_000, "milliseconds: {t}");
        if let Some(end) = a.get("timeEnd") {
            assert!(end.as_i64().unwrap() >= t);
        }
        let tags = a["tags"].as_array().unwrap();
        assert_eq!(tags[0], "rollwatch");
        for tag in tags {
            let s = tag.as_str().unwrap();
            assert!(!s.is_empty() && s.chars().count() <= MAX_TAG, "{s}");
        }
    }

    #[test]
    fn annotations_carry_ms_times_tags_and_capped_texts() {
        let vars = BTreeMap::from([
            ("service".to_string(), "checkout".to_string()),
            ("long".to_string(), "v".repeat(500)),
        ]);
        let start = annotation(
            1_765_000_000_000,
            None,
            "watch started",
            tags("w", &vars, &["start"]),
        );
        check(&start);
        assert!(start.get("timeEnd").is_none());
        assert_eq!(
            start["tags"],
            json!([
                "rollwatch",
                "watch:w",
                format!("long:{}…", "v".repeat(94)),
                "service:checkout",
                "start"
            ])
        );
        let region = annotation(
            1_765_000_000_000,
            Some(1_765_000_004_000),
            &"x".repeat(9000),
            tags("w", &vars, &["rollback"]),
        );
        check(&region);
        assert_eq!(region["timeEnd"], 1_765_000_004_000i64);
        assert_eq!(region["text"].as_str().unwrap().chars().count(), MAX_TEXT);
        // An end before the start (a clock step) is never sent as one.
        check(&annotation(
            1_765_000_000_000,
            Some(5),
            "x",
            tags("w", &vars, &[]),
        ));
    }
}
