//! The HTTP side of notifications: one POST with retries (`post_json`), one attempt
//! for the outbox (`deliver_once`), and where each channel kind's body goes
//! (`request_for`). A channel's secrets (its URL, PagerDuty's routing key, Grafana's
//! token) are added here, at sending, and never rendered into a body that is stored,
//! logged or shown; errors never carry the URL. Redirects are never followed
//! (`client`): a 307 would re-send the body (PagerDuty's routing key) to wherever
//! it points, and any redirect would carry the channel's URL (a Teams `sig`) there
//! in a `Referer` header; a 3xx answer is final, like a 4xx.

use crate::core::rules::{Channel, ChannelKind};
use serde_json::{json, Value};
use std::time::Duration;

/// The HTTP client of every delivery (notifications, the outbox, silences): it
/// follows no redirect and sends no `Referer`, so a channel's secrets go to the
/// channel's own URL only.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("rollwatch/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .unwrap_or_default()
}

/// How deliveries retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub timeout: Duration,
    /// Before the second attempt; doubles after each failure.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(500),
        }
    }
}

/// What one POST to a channel is: its URL, its body with any secret it carries, and
/// a bearer token for the `Authorization` header.
pub(super) struct Request {
    pub url: String,
    pub body: Value,
    pub bearer: Option<String>,
}

/// The request that delivers `body` (as rendered, without secrets) to `ch`.
pub(super) fn request_for(ch: &Channel, body: &Value) -> Request {
    let base = ch.url.trim_end_matches('/');
    let mut body = body.clone();
    let (url, bearer) = match ch.kind {
        ChannelKind::Alertmanager => (format!("{base}/api/v2/alerts"), None),
        ChannelKind::Grafana => (format!("{base}/api/annotations"), ch.secret.clone()),
        ChannelKind::PagerDuty => {
            if let (Value::Object(m), Some(key)) = (&mut body, &ch.secret) {
                m.insert("routing_key".into(), json!(key));
            }
            (ch.url.clone(), None)
        }
        ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Teams => (ch.url.clone(), None),
    };
    Request { url, body, bearer }
}

/// Why a POST with retries gave up.
#[derive(Debug, Clone, PartialEq)]
pub enum PostFailure {
    /// A 4xx other than 429, or a redirect (never followed): the receiver refused
    /// the request; retrying cannot help.
    Rejected(u16),
    /// Every attempt failed; the last error (never with the URL: it is a secret).
    Exhausted(String),
}

/// POSTs `body` as JSON under `policy`: a 4xx other than 429 is final, and so is a
/// 3xx (`http` should be [`client`], which follows none); anything else
/// is retried with a doubling backoff, or after the receiver's `Retry-After` when
/// longer (at most a minute). `on_retry(attempt, error, backoff)` is told
/// before each wait. On success, the response and the attempt it took. Notifications
/// and Alertmanager silences both go through here.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    policy: RetryPolicy,
    on_retry: impl FnMut(u32, &str, Duration),
) -> Result<(reqwest::Response, u32), PostFailure> {
    post_keyed(http, url, body, (None, None), policy, on_retry)
        .await
        .map_err(|(f, _)| f)
}

/// `post_json` with an `Idempotency-Key` header and a bearer token when given; a
/// failure comes with the wait its last answer asked for (`Retry-After`; zero: none).
async fn post_keyed(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    (key, bearer): (Option<&str>, Option<&str>),
    policy: RetryPolicy,
    mut on_retry: impl FnMut(u32, &str, Duration),
) -> Result<(reqwest::Response, u32), (PostFailure, Duration)> {
    let mut backoff = policy.backoff;
    let mut last = String::new();
    // A receiver's `Retry-After` (429, 503): waited for when longer than the backoff.
    let mut asked = Duration::ZERO;
    for attempt in 1..=policy.attempts {
        asked = Duration::ZERO;
        let mut req = http.post(url).json(body).timeout(policy.timeout);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return Ok((r, attempt)),
            Ok(r)
                if r.status().is_redirection()
                    || (r.status().is_client_error() && r.status().as_u16() != 429) =>
            {
                return Err((PostFailure::Rejected(r.status().as_u16()), Duration::ZERO));
            }
            Ok(r) => {
                asked = retry_after(r.headers());
                last = format!("HTTP {}", r.status().as_u16());
            }
            // Without the URL: it is a secret.
            Err(e) => {
                last = if e.is_timeout() {
                    format!("no answer within {:?}", policy.timeout)
                } else {
                    e.without_url().to_string()
                }
            }
        }
        if attempt < policy.attempts {
            let wait = backoff.max(asked);
            on_retry(attempt, &last, wait);
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
    }
    Err((PostFailure::Exhausted(last), asked))
}

/// The longest `Retry-After` waited for: a receiver asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `Retry-After: SECONDS` header (zero when absent or an HTTP date), at most
/// `MAX_RETRY_AFTER`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, |s| {
            Duration::from_secs(s).min(MAX_RETRY_AFTER)
        })
}

/// One attempt to deliver a stored notification (`serve`'s outbox) to channel `ch`,
/// with `key` as its `Idempotency-Key` header (a receiver that saw the key already
/// may ignore the repeat; Alertmanager needs none: the same alert's labels make a
/// repeat an update of the same alert). The outbox retries, across restarts; a
/// failure comes with the wait the receiver asked for (`Retry-After`; zero: none).
pub async fn deliver_once(
    http: &reqwest::Client,
    ch: &Channel,
    body: &Value,
    key: &str,
) -> Result<(), (PostFailure, Duration)> {
    let r = request_for(ch, body);
    let policy = RetryPolicy {
        attempts: 1,
        timeout: ch.timeout,
        ..RetryPolicy::default()
    };
    let auth = (Some(key), r.bearer.as_deref());
    post_keyed(http, &r.url, &r.body, auth, policy, |_, _, _| {})
        .await
        .map(|_| ())
}

/// Delivers `body` to `ch` with its retries, and logs how it went (by the channel's
/// label only).
pub(super) async fn deliver(http: reqwest::Client, ch: Channel, kind: String, body: Value) {
    let policy = RetryPolicy {
        attempts: ch.retries + 1,
        timeout: ch.timeout,
        ..RetryPolicy::default()
    };
    let label = ch.label.clone();
    let r = request_for(&ch, &body);
    let retry = |attempt: u32, last: &str, backoff: Duration| {
        tracing::info!(event = "notification_retry", channel = %label, kind = %kind, attempt, error = %last, "retrying {label} in {backoff:?}");
    };
    let auth = (None, r.bearer.as_deref());
    match post_keyed(&http, &r.url, &r.body, auth, policy, retry).await {
        Ok((_, attempt)) => {
            tracing::info!(event = "notification_sent", channel = %label, kind = %kind, attempt, "notification sent to {label}");
        }
        Err((PostFailure::Rejected(status), _)) => {
            tracing::warn!(event = "notification_failed", channel = %label, kind = %kind, status, "{label} rejected the notification (HTTP {status}); not retried");
        }
        Err((PostFailure::Exhausted(last), _)) => {
            tracing::warn!(event = "notification_failed", channel = %label, kind = %kind, error = %last, "notification to {label} failed after {} attempts: {last}", policy.attempts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let of = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h)
        };
        assert_eq!(of("3"), Duration::from_secs(3));
        assert_eq!(of(" 7 "), Duration::from_secs(7));
        assert_eq!(of("86400"), MAX_RETRY_AFTER);
        assert_eq!(of("Wed, 21 Oct 2026 07:28:00 GMT"), Duration::ZERO);
        assert_eq!(of("-1"), Duration::ZERO);
        assert_eq!(retry_after(&HeaderMap::new()), Duration::ZERO);
    }
}
