//! The `notify:` section: notification channels, whose URLs are secrets (given
//! literally, from the environment or from a file) and are never shown.
//! `alertmanager:` channels also carry extra alert labels; `pagerduty:` a routing key
//! and `grafana:` a token, secrets read the same way.

use super::common::{choice, duration, Outside};
use crate::core::yaml::walk::{fields, required, string, Cx};
use crate::core::yaml::{Node, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `notify:` — a list of channels, each `webhook:`, `slack:` or `teams:` with a URL
/// given literally, as `{env: NAME}` or as `{file: PATH}` (URLs are secrets), and
/// `on:`; or `alertmanager:`, `pagerduty:`, `grafana:` with their own fields.
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
                "pagerduty",
                "teams",
                "grafana",
                "on",
                "timeout",
                "retries",
            ],
        ) else {
            ok = false;
            continue;
        };
        const KINDS: &[(&str, ChannelKind)] = &[
            ("webhook", ChannelKind::Webhook),
            ("slack", ChannelKind::Slack),
            ("alertmanager", ChannelKind::Alertmanager),
            ("pagerduty", ChannelKind::PagerDuty),
            ("teams", ChannelKind::Teams),
            ("grafana", ChannelKind::Grafana),
        ];
        let given: Vec<_> = KINDS.iter().filter(|(k, _)| f.get(k).is_some()).collect();
        let &[&(key, kind)] = given.as_slice() else {
            cx.error_help(
                "a notify channel needs exactly one of `webhook:`, `slack:`, `teams:`, `alertmanager:`, `pagerduty:` or `grafana:`",
                f.pos,
                "e.g. `- slack: {env: SLACK_WEBHOOK_URL}`",
            );
            ok = false;
            continue;
        };
        let label = format!("{key} #{}", i + 1);
        let mut labels = Some(BTreeMap::new());
        let mut secret = Some(None);
        let node = f.get(key).expect("checked above");
        // (the URL, or None for PagerDuty's default endpoint)
        let mut url_node = Some(node);
        match kind {
            ChannelKind::Alertmanager => {
                let Some(am) = fields(cx, node, "an alertmanager channel", &["url", "labels"])
                else {
                    ok = false;
                    continue;
                };
                url_node = required(
                    cx,
                    &am,
                    "url",
                    "the alertmanager channel",
                    "e.g. `alertmanager: {url: http://alertmanager:9093}` (Alertmanager's base URL)",
                );
                labels = match am.get("labels") {
                    Some(n) => alert_labels(cx, n),
                    None => Some(BTreeMap::new()),
                };
            }
            ChannelKind::PagerDuty => {
                let help = "e.g. `pagerduty: {routing_key: {env: PAGERDUTY_ROUTING_KEY}}`";
                let Some(pd) = fields(cx, node, "a pagerduty channel", &["routing_key", "url"])
                else {
                    ok = false;
                    continue;
                };
                secret = required(cx, &pd, "routing_key", "the pagerduty channel", help)
                    .and_then(|n| secret_value(cx, n, "pagerduty routing_key", &label, outside))
                    .map(Some);
                url_node = pd.get("url");
            }
            ChannelKind::Grafana => {
                let help = "e.g. `grafana: {url: https://grafana.example.com, token: {env: GRAFANA_TOKEN}}`";
                let Some(g) = fields(cx, node, "a grafana channel", &["url", "token"]) else {
                    ok = false;
                    continue;
                };
                url_node = required(cx, &g, "url", "the grafana channel", help);
                secret = required(cx, &g, "token", "the grafana channel", help)
                    .and_then(|n| {
                        let t = secret_value(cx, n, "grafana token", &label, outside)?;
                        // Checked without echoing it: it goes into a header.
                        let ok = t.bytes().all(|b| b.is_ascii_graphic());
                        if !ok {
                            cx.error(
                                "the grafana token has spaces or characters a header cannot carry (not shown: it is a secret)",
                                n.pos,
                            );
                        }
                        ok.then_some(t)
                    })
                    .map(Some);
            }
            _ => {}
        }
        let no_on = matches!(
            kind,
            ChannelKind::Alertmanager | ChannelKind::PagerDuty | ChannelKind::Grafana
        );
        if let (true, Some(n)) = (no_on, f.get("on")) {
            cx.error_help(
                format!(
                    "{} {key} channel takes no `on:`",
                    if key == "alertmanager" { "an" } else { "a" }
                ),
                n.pos,
                match kind {
                    ChannelKind::Grafana => "it annotates the watch's start, each action and its end",
                    ChannelKind::PagerDuty => "it triggers on every fired rule and its action, and resolves at the watch's end",
                    _ => "it receives every pending and fired rule, the action and the outcome as alerts",
                },
            );
            ok = false;
        }
        let url = match url_node {
            Some(n) => secret_url(cx, n, key, &label, outside),
            None if kind == ChannelKind::PagerDuty => {
                Some(crate::core::rules::spec::PAGERDUTY_URL.to_string())
            }
            None => None,
        };
        let pos = url_node.map_or(node.pos, |n| n.pos);
        // The URL is checked without ever echoing it: it may hold a token.
        let url = url.filter(|u| {
            let valid =
                reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
            if !valid {
                cx.error(
                    format!(
                        "the {label} URL is not an http(s) URL (not shown: it may be a secret)"
                    ),
                    pos,
                );
            }
            valid
        });
        let on = match f.get("on") {
            None if no_on => Some(Vec::new()),
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
        match (url, on, timeout, retries, labels, secret) {
            (Some(url), Some(on), Some(timeout), Some(retries), Some(labels), Some(secret)) => out
                .push(Channel {
                    kind,
                    url,
                    label,
                    on,
                    timeout,
                    retries,
                    labels,
                    secret,
                }),
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
    secret_value(cx, url_node, &format!("{key} URL"), label, outside)
}

/// A secret (`what`, e.g. `pagerduty routing_key`): a string, `{env: NAME}` or
/// `{file: PATH}`, never echoed.
fn secret_value(
    cx: &mut Cx,
    url_node: &Node,
    what: &str,
    label: &str,
    outside: Option<&dyn Outside>,
) -> Option<String> {
    match &url_node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Map(_) => {
            let src = fields(
                cx,
                url_node,
                &format!("the {what} source"),
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
                        format!("the {what} source needs exactly one of `env:` or `file:`"),
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
                    "the {what} must be a string, `{{env: NAME}}` or `{{file: PATH}}`, found {}",
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

#[cfg(test)]
mod tests {
    use crate::core::rules::{load_str, ChannelKind, LoadOptions, Outside, PAGERDUTY_URL};

    const BASE: &str = "watch:\n  duration: 10m\n  interval: 15s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 1m\n";
    const KEY: &str = "R0UT1NGKEYs3cr3t";
    const TOKEN: &str = "glsa_T0KENs3cr3t";

    #[derive(Debug)]
    struct Env;
    impl Outside for Env {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "PD_KEY" => Some(format!("{KEY}\n")),
                "GRAFANA_TOKEN" => Some(TOKEN.to_string()),
                "BAD_TOKEN" => Some(format!("{TOKEN} with spaces")),
                "TEAMS_URL" => Some("https://teams.example/workflows/s3cr3t".into()),
                _ => None,
            }
        }
        fn read(&self, _: &str) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }

    fn load(notify: &str) -> Result<crate::core::rules::Loaded, String> {
        let opts = LoadOptions {
            outside: Some(&Env),
            ..Default::default()
        };
        load_str("t.yaml", &format!("{BASE}notify:\n{notify}"), &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn pager_channels_load_with_their_secrets_and_defaults() {
        let (spec, _) = load(
            "  - pagerduty: {routing_key: {env: PD_KEY}}\n  - pagerduty: {routing_key: literal, url: http://127.0.0.1:9/enqueue}\n    retries: 4\n  - teams: {env: TEAMS_URL}\n    on: [rollback]\n  - grafana: {url: http://127.0.0.1:3000, token: {env: GRAFANA_TOKEN}}\n",
        )
        .unwrap();
        let n = &spec.notify;
        assert_eq!(n[0].kind, ChannelKind::PagerDuty);
        assert_eq!(n[0].url, PAGERDUTY_URL, "the default endpoint");
        assert_eq!(n[0].secret.as_deref(), Some(KEY), "trimmed");
        assert!(n[0].on.is_empty());
        assert_eq!(n[1].url, "http://127.0.0.1:9/enqueue");
        assert_eq!(n[1].retries, 4);
        assert_eq!(
            (n[2].kind, n[2].on.as_slice()),
            (ChannelKind::Teams, &["rollback".to_string()][..])
        );
        assert_eq!(n[2].secret, None);
        assert_eq!(n[3].kind, ChannelKind::Grafana);
        assert_eq!(n[3].secret.as_deref(), Some(TOKEN));
        assert_eq!(n[3].label, "grafana #4");
        let shown = format!("{n:?}");
        assert!(
            !shown.contains(KEY) && !shown.contains(TOKEN) && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn pager_channel_mistakes_are_errors_that_never_show_a_secret() {
        let e = load(
            "  - pagerduty: {url: http://127.0.0.1:9/x}\n  - pagerduty: {routing_key: {env: PD_KEY}}\n    on: [rollback]\n  - grafana: {url: not-a-url-s3cr3t, token: {env: BAD_TOKEN}}\n  - grafana: {url: http://g}\n  - teams: {env: NOPE}\n  - pagerduty: {routing_key: x}\n    teams: http://t\n",
        )
        .unwrap_err();
        for want in [
            "the pagerduty channel has no `routing_key`",
            "a pagerduty channel takes no `on:`",
            "the grafana #3 URL is not an http(s) URL",
            "the grafana token has spaces",
            "the grafana channel has no `token`",
            "`NOPE` for teams #5 is not set",
            "needs exactly one of",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(!e.contains(KEY) && !e.contains(TOKEN), "{e}");
    }
}
