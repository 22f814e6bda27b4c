//! The `notify:` section: notification channels, whose URLs are secrets (given
//! literally, from the environment or from a file) and are never shown.

use super::*;

/// `notify:` — a list of channels, each `webhook:` or `slack:` with a URL given
/// literally, as `{env: NAME}` or as `{file: PATH}` (URLs are secrets), and `on:`.
pub(super) fn compile_notify(cx: &mut Cx, node: &Node) -> Option<Vec<crate::core::rules::Channel>> {
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
            &["webhook", "slack", "on", "timeout", "retries"],
        ) else {
            ok = false;
            continue;
        };
        let (kind, key) = match (f.get("webhook"), f.get("slack")) {
            (Some(_), None) => (ChannelKind::Webhook, "webhook"),
            (None, Some(_)) => (ChannelKind::Slack, "slack"),
            _ => {
                cx.error_help(
                    "a notify channel needs exactly one of `webhook:` or `slack:`",
                    f.pos,
                    "e.g. `- slack: {env: SLACK_WEBHOOK_URL}`",
                );
                ok = false;
                continue;
            }
        };
        let label = format!("{key} #{}", i + 1);
        let url_node = f.get(key).expect("checked above");
        let url = match &url_node.value {
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
                        string(cx, n, "env").and_then(|name| match std::env::var(&name) {
                            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                            _ => {
                                cx.error_help(
                                    format!(
                                        "the environment variable `{name}` for {label} is not set"
                                    ),
                                    n.pos,
                                    "export it before starting the watch",
                                );
                                None
                            }
                        })
                    }
                    Some((None, Some(n))) => string(cx, n, "file").and_then(|path| {
                        match std::fs::read_to_string(&path) {
                            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                            Ok(_) => {
                                cx.error(format!("the file `{path}` for {label} is empty"), n.pos);
                                None
                            }
                            Err(e) => {
                                cx.error(format!("cannot read `{path}` for {label}: {e}"), n.pos);
                                None
                            }
                        }
                    }),
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
                cx.error(format!("the {key} URL must be a string, `{{env: NAME}}` or `{{file: PATH}}`, found {}", url_node.kind()), url_node.pos);
                None
            }
        };
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
        match (url, on, timeout, retries) {
            (Some(url), Some(on), Some(timeout), Some(retries)) => out.push(Channel {
                kind,
                url,
                label,
                on,
                timeout,
                retries,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
