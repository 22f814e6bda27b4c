//! Alertmanager silences: a rollback's `silence:` quiets the service's own alerts while
//! it runs and for a set time after, through `POST /api/v2/silences`. The silence
//! carries its own end, so it expires by itself even if rollwatch dies.

use crate::core::events::rfc3339_ms;
use crate::core::rules::SilenceSpec;
use serde_json::{json, Value};
use std::time::Duration;

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

/// Creates the silence (3 attempts, 5s each, 0.5s then 1s apart, like notifications)
/// and returns its id. Errors never name the URL: it is a secret.
pub async fn create(spec: &SilenceSpec, comment: &str, now_ms: i64) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("rollwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.without_url().to_string())?;
    let url = format!("{}/api/v2/silences", spec.url.trim_end_matches('/'));
    let body = body(spec, comment, now_ms);
    let mut backoff = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=3 {
        match http
            .post(&url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.map_err(|e| e.without_url().to_string())?;
                return v["silenceID"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "Alertmanager answered without a silenceID".to_string());
            }
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                return Err(format!(
                    "Alertmanager rejected the silence (HTTP {})",
                    r.status().as_u16()
                ));
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.without_url().to_string(),
        }
        if attempt < 3 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Err(format!("no silence after 3 attempts: {last}"))
}
