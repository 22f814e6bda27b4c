//! People's orders and held-back rules reach the channels (issue 22): who, why, and
//! what it does, in the body a webhook receives.

use crate::core::eval::Labels;
use crate::core::events::{Event, Sink};
use crate::core::rules::{Channel, ChannelKind, NOTIFY_KINDS};
use crate::io::notify::Notifier;
use std::collections::BTreeMap;
use std::time::Duration;

fn webhook(on: &[&str]) -> Channel {
    Channel {
        kind: ChannelKind::Webhook,
        url: "http://127.0.0.1:9/hook".into(),
        label: "webhook #1".into(),
        on: on.iter().map(|k| k.to_string()).collect(),
        timeout: Duration::from_secs(1),
        retries: 0,
        labels: BTreeMap::new(),
        secret: None,
    }
}

#[test]
fn an_order_and_a_held_back_rule_are_notified_with_who_and_why() {
    assert!(NOTIFY_KINDS.contains(&"manual") && NOTIFY_KINDS.contains(&"held"));
    let (mut n, out) = Notifier::collecting(vec![webhook(&["manual", "held"])]);
    n.emit(
        1_000,
        &Event::Manual {
            order: "hold",
            by: "alice".into(),
            reason: "INC-12: DB failover".into(),
            until_ms: Some(901_000),
            ends_ms: None,
        },
    );
    n.emit(
        2_000,
        &Event::HeldBack {
            rule: "errors".into(),
            action: "rollback",
            labels: Labels::new(),
            value: Some(0.9),
            threshold: "> 0.5".into(),
            until_ms: 901_000,
            held_by: "alice".into(),
        },
    );
    let out = out.lock().unwrap();
    let kinds: Vec<&str> = out.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, ["manual", "held"]);
    let manual = &out[0].body;
    assert_eq!(manual["action"]["by"], "alice", "{manual}");
    assert_eq!(
        manual["action"]["reason"], "INC-12: DB failover",
        "{manual}"
    );
    let summary = manual["summary"].as_str().unwrap();
    assert!(
        summary.contains("alice held automatic actions until"),
        "{summary}"
    );
    let held = out[1].body["summary"].as_str().unwrap();
    assert!(
        held.contains("fired during alice's hold: no rollback now"),
        "{held}"
    );
}

#[test]
fn a_channel_that_did_not_ask_for_orders_gets_none() {
    let (mut n, out) = Notifier::collecting(vec![webhook(&["rollback"])]);
    n.emit(
        1_000,
        &Event::Manual {
            order: "end",
            by: "bob".into(),
            reason: "verified".into(),
            until_ms: None,
            ends_ms: None,
        },
    );
    assert!(out.lock().unwrap().is_empty());
}
