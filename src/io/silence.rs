//! Alertmanager silences: a rollback's `silence:` quiets the service's own alerts while
//! it runs and for a set time after, through `POST /api/v2/silences`. The silence
//! carries its own end, so it expires by itself even if rollwatch dies.

use crate::core::events::rfc3339_ms;
use crate::core::rules::SilenceSpec;
use crate::io::notify::{post_json, PostFailure, RetryPolicy};
use serde_json::{json, Value};

/// The JSON body of the silence: exact, non-regex matchers, `createdBy: rollwatch`, and
/// `alertname!~"Rollwatch.*"`, so rollwatch's own alerts about the rollback still page.
pub fn body(spec: &SilenceSpec, comment: &str, now_ms: i64) -> Value {
    let mut matchers: Vec<Value> = spec
        .matchers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value, "isRegex": false, "isEqual": true}))
        .collect();
    matchers.push(
        json!({"name": "alertname", "value": "Rollwatch.*", "isRegex": true, "isEqual": false}),
    );
    json!({
        "matchers": matchers,
        "startsAt": rfc3339_ms(now_ms),
        "endsAt": rfc3339_ms(now_ms + spec.for_.as_millis() as i64),
        "createdBy": "rollwatch",
        "comment": comment,
    })
}

/// Creates the silence (with the notifications' retry policy: 3 attempts, 5s each,
/// 0.5s then 1s apart) and returns its id. Errors never name the URL: it is a secret.
pub async fn create(spec: &SilenceSpec, comment: &str, now_ms: i64) -> Result<String, String> {
    let http = crate::io::notify::client();
    let url = format!("{}/api/v2/silences", spec.url.trim_end_matches('/'));
    let policy = RetryPolicy::default();
    match post_json(
        &http,
        &url,
        &body(spec, comment, now_ms),
        policy,
        |_, _, _| {},
    )
    .await
    {
        Ok((r, _)) => {
            let v: Value = r.json().await.map_err(|e| e.without_url().to_string())?;
            v["silenceID"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "Alertmanager answered without a silenceID".to_string())
        }
        Err(PostFailure::Rejected(status)) => {
            Err(format!("Alertmanager rejected the silence (HTTP {status})"))
        }
        Err(PostFailure::Exhausted(last)) => Err(format!(
            "no silence after {} attempts: {last}",
            policy.attempts
        )),
    }
}
