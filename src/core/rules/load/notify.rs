//! The `notify:` section: notification channels, whose URLs are secrets (given
//! literally, from the environment or from a file) and are never shown.
//! `alertmanager:` channels also carry extra alert labels.

use super::common::{choice, duration, Outside};
use crate::core::yaml::walk::{fields, required, string, Cx};
use crate::core::yaml::{Node, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `notify:` — a list of channels, each `webhook:` or `slack:` with a URL given
/// literally, as `{env: NAME}` or as `{file: PATH}` (URLs are secrets), and `on:`.
pub(super) fn compile_notify(
    cx: &mut Cx,
    node: &Node,
    outside: Option<&dyn Outside>,
) -> Option<Vec<crate::core::rules::Channel>> {
    use crate::core::rules::{Channel, ChannelKind, NOTIFY_KINDS};
    let Value::Seq(items) = &node.value else {
        cx.error(
            format!("`notify` must be a list of channels, found {}", node.kind()),
            node.pos,
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(f) = fields(
            cx,
            item,
            "a notify channel",
            &[
                "webhook",
                "slack",
                "alertmanager",
                "on",
                "timeout",
                "retries",
            ],
        ) else {
            ok = false;
            continue;
        };
        let (kind, key) = match (f.get("webhook"), f.get("slack"), f.get("alertmanager")) {
            (Some(_), None, None) => (ChannelKind::Webhook, "webhook"),
            (None, Some(_), None) => (ChannelKind::Slack, "slack"),
            (None, None, Some(_)) => (ChannelKind::Alertmanager, "alertmanager"),
            _ => {
                cx.error_help(
                    "a notify channel needs exactly one of `webhook:`, `slack:` or `alertmanager:`",
                    f.pos,
                    "e.g. `- slack: {env: SLACK_WEBHOOK_URL}`",
                );
                ok = false;
                continue;
            }
        };
        let label = format!("{key} #{}", i + 1);
        let mut labels = Some(BTreeMap::new());
        let mut url_node = f.get(key).expect("checked above");
        if kind == ChannelKind::Alertmanager {
            let Some(am) = fields(cx, url_node, "an alertmanager channel", &["url", "labels"])
            else {
                ok = false;
                continue;
            };
            let Some(u) = required(
                cx,
                &am,
                "url",
                "the alertmanager channel",
                "e.g. `alertmanager: {url: http://alertmanager:9093}` (Alertmanager's base URL)",
            ) else {
                ok = false;
                continue;
            };
            url_node = u;
            labels = match am.get("labels") {
                Some(n) => alert_labels(cx, n),
                None => Some(BTreeMap::new()),
            };
            if let Some(n) = f.get("on") {
                cx.error_help(
                    "an alertmanager channel takes no `on:`",
                    n.pos,
                    "it receives every pending and fired rule, the action and the outcome as alerts",
                );
                ok = false;
            }
        }
        let url = secret_url(cx, url_node, key, &label, outside);
        // The URL is checked without ever echoing it: it may hold a token.
        let url = url.filter(|u| {
            let valid =
                reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
            if !valid {
                cx.error(
                    format!(
                        "the {label} URL is not an http(s) URL (not shown: it may be a secret)"
                    ),
                    url_node.pos,
                );
            }
            valid
        });
        let on = match f.get("on") {
            None if kind == ChannelKind::Alertmanager => Some(Vec::new()),
            None => Some(
                NOTIFY_KINDS
                    .iter()
                    .filter(|k| **k != "healthy")
                    .map(|k| k.to_string())
                    .collect(),
            ),
            Some(n) => match &n.value {
                Value::Seq(kinds) => {
                    let mut list = Vec::new();
                    for k in kinds {
                        if let Some(c) = choice(cx, k, "notification kind", NOTIFY_KINDS) {
                            list.push(c.to_string());
                        }
                    }
                    (list.len() == kinds.len()).then_some(list)
                }
                _ => {
                    cx.error(
                        format!(
                            "`on` must be a list such as [rollback, pause], found {}",
                            n.kind()
                        ),
                        n.pos,
                    );
                    None
                }
            },
        };
        let timeout = match f.get("timeout") {
            Some(n) => duration(cx, n, "notify timeout", false),
            None => Some(Duration::from_secs(5)),
        };
        let retries = match f.get("retries").map(|n| (n, &n.value)) {
            None => Some(2),
            Some((_, Value::Int(i))) if (0..=10).contains(i) => Some(*i as u32),
            Some((n, _)) => {
                cx.error("`retries` must be a whole number from 0 to 10", n.pos);
                None
            }
        };
        match (url, on, timeout, retries, labels) {
            (Some(url), Some(on), Some(timeout), Some(retries), Some(labels)) => {
                out.push(Channel {
                    kind,
                    url,
                    label,
                    on,
                    timeout,
                    retries,
                    labels,
                })
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A channel URL: a string, `{env: NAME}` or `{file: PATH}`, never echoed.
pub(super) fn secret_url(
    cx: &mut Cx,
    url_node: &Node,
    key: &str,
    label: &str,
    outside: Option<&dyn Outside>,
) -> Option<String> {
    match &url_node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Map(_) => {
            let src = fields(
                cx,
                url_node,
                &format!("the {key} URL source"),
                &["env", "file"],
            );
            match src.as_ref().map(|s| (s.get("env"), s.get("file"))) {
                Some((Some(n), None)) => {
                    string(cx, n, "env").and_then(|name| match outside.and_then(|o| o.var(&name)) {
                        Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                        _ => {
                            cx.error_help(
                                format!("the environment variable `{name}` for {label} is not set"),
                                n.pos,
                                "export it before starting the watch",
                            );
                            None
                        }
                    })
                }
                Some((None, Some(n))) => {
                    string(cx, n, "file").and_then(|path| match read(outside, &path) {
                        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                        Ok(_) => {
                            cx.error(format!("the file `{path}` for {label} is empty"), n.pos);
                            None
                        }
                        Err(e) => {
                            cx.error(format!("cannot read `{path}` for {label}: {e}"), n.pos);
                            None
                        }
                    })
                }
                Some(_) => {
                    cx.error_help(
                        format!("the {key} URL source needs exactly one of `env:` or `file:`"),
                        url_node.pos,
                        "e.g. `{env: SLACK_WEBHOOK_URL}`",
                    );
                    None
                }
                None => None,
            }
        }
        _ => {
            cx.error(
                format!(
                    "the {key} URL must be a string, `{{env: NAME}}` or `{{file: PATH}}`, found {}",
                    url_node.kind()
                ),
                url_node.pos,
            );
            None
        }
    }
}

/// `labels:` of an alertmanager channel: Prometheus label names to string values.
fn alert_labels(cx: &mut Cx, node: &Node) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &node.value else {
        cx.error(
            format!(
                "`labels` must be a mapping of label names to values, found {}",
                node.kind()
            ),
            node.pos,
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let name = k.scalar_text().unwrap_or_default();
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
            && !name.is_empty()
            && !name.starts_with("__");
        if !valid {
            cx.error_help(
                format!("`{name}` is not a valid alert label name"),
                k.pos,
                "label names are letters, digits and `_`, not starting with a digit or `__`",
            );
            ok = false;
            continue;
        }
        match v.scalar_text() {
            Some(text) => {
                out.insert(name, text);
            }
            None => {
                cx.error(
                    format!(
                        "the label `{name}` must have a scalar value, found {}",
                        v.kind()
                    ),
                    v.pos,
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A `file:` source's text, from `outside` (without one, nothing is read).
fn read(outside: Option<&dyn Outside>, path: &str) -> std::io::Result<String> {
    match outside {
        Some(o) => o.read(path),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "files are not read when loading without a host",
        )),
    }
}
