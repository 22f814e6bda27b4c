//! The pagers through the notifier (rendered, as `serve` stores them): which events
//! page, annotate and post cards, with a stable `dedup_key` and no secret in any body.

use super::http::request_for;
use super::Notifier;
use crate::core::eval::Labels;
use crate::core::events::{Event, RuleInfo, Sink};
use crate::core::rules::{Channel, ChannelKind, PAGERDUTY_URL};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const KEY: &str = "pd-routing-key-s3cr3t";
const TOKEN: &str = "glsa_grafana-token-s3cr3t";

fn channel(kind: ChannelKind, url: &str, secret: Option<&str>, on: &[&str]) -> Channel {
    Channel {
        kind,
        url: url.into(),
        label: "x #1".into(),
        on: on.iter().map(|k| k.to_string()).collect(),
        timeout: Duration::from_secs(1),
        retries: 0,
        labels: BTreeMap::new(),
        secret: secret.map(str::to_string),
    }
}

fn channels() -> Vec<Channel> {
    vec![
        channel(ChannelKind::PagerDuty, PAGERDUTY_URL, Some(KEY), &[]),
        channel(
            ChannelKind::Teams,
            "https://teams.example/hook",
            None,
            &["rollback", "rollback_failed"],
        ),
        channel(
            ChannelKind::Grafana,
            "https://grafana.example/",
            Some(TOKEN),
            &[],
        ),
    ]
}

fn info() -> RuleInfo {
    RuleInfo {
        name: "errors".into(),
        description: None,
        query: "rate(x[1m])".into(),
        above: Some(0.5),
        below: None,
        worse: crate::core::eval::Worse::Higher,
        threshold: "> 0.5".into(),
        for_s: 2.0,
        interval_s: 1.0,
        no_data: "ok",
        action: "rollback",
        graph_url: Some("http://prom:9090/graph?g0.expr=x".into()),
    }
}

/// A watch whose rule fires and whose rollback ends `succeeded`; the rendered notes
/// as (channel, body).
fn run(n: Notifier, succeeded: bool) -> Vec<(usize, Value)> {
    let vars = BTreeMap::from([("service".to_string(), "checkout".to_string())]);
    run_with(n, succeeded, vars)
}

/// `run` with the watch's `vars`.
fn run_with(n: Notifier, succeeded: bool, vars: BTreeMap<String, String>) -> Vec<(usize, Value)> {
    let (mut n, out) = (n, crate::io::notify::Collected::default());
    n.collect = Some(out.clone());
    n.emit(
        1_765_000_000_000,
        &Event::WatchStarted {
            rules_file: "checkout.yaml".into(),
            prometheus: "http://prom:9090".into(),
            duration_s: 60.0,
            max_blind_s: 60.0,
            dry_run: false,
            vars,
            rules: vec![info()],
        },
    );
    n.emit(
        1_765_000_002_000,
        &Event::Fired {
            rule: "errors".into(),
            labels: Labels::new(),
            value: Some(0.9),
            threshold: "> 0.5".into(),
            breached_for_s: 2.0,
            action: "rollback",
            evidence: Default::default(),
        },
    );
    n.emit(
        1_765_000_002_100,
        &Event::ActionStarted {
            action: "rollback",
            rule: "errors".into(),
            argv: vec!["true".into()],
            timeout_s: 30.0,
            dry_run: false,
        },
    );
    n.emit(
        1_765_000_005_000,
        &Event::ActionFinished {
            action: "rollback",
            rule: "errors".into(),
            status: if succeeded { "succeeded" } else { "exit 1" }.into(),
            succeeded,
            duration_s: 2.9,
            output_tail: vec![],
        },
    );
    n.emit(
        1_765_000_005_100,
        &Event::WatchFinished {
            outcome: if succeeded {
                "rolled_back"
            } else {
                "rollback_failed"
            },
            exit_code: 1,
            detail: "rolled back".into(),
            rule: Some("errors".into()),
        },
    );
    let got = out
        .lock()
        .unwrap()
        .iter()
        .map(|o| (o.channel, o.body.clone()))
        .collect();
    got
}

fn of(notes: &[(usize, Value)], channel: usize) -> Vec<Value> {
    notes
        .iter()
        .filter(|(c, _)| *c == channel)
        .map(|(_, b)| b.clone())
        .collect()
}

#[test]
fn a_rollback_pages_updates_and_resolves_one_pagerduty_alert() {
    let (n, _) = Notifier::new(channels());
    let notes = run(
        n.with_watch_id("w-1")
            .with_report("/api/v1/watches/w-1".into()),
        true,
    );
    let pd = of(&notes, 0);
    let actions: Vec<&str> = pd
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["trigger", "trigger", "trigger", "resolve"],
        "{pd:#?}"
    );
    for e in &pd {
        assert_eq!(e["dedup_key"], "rollwatch/w-1/errors", "{e}");
    }
    let fired = &pd[0]["payload"];
    assert_eq!(fired["severity"], "critical");
    assert_eq!(fired["source"], "service=checkout");
    assert_eq!(fired["custom_details"]["rule"], "errors");
    assert_eq!(fired["custom_details"]["value"], "0.9");
    assert_eq!(fired["custom_details"]["threshold"], "> 0.5");
    assert_eq!(fired["custom_details"]["report"], "/api/v1/watches/w-1");
    assert_eq!(
        pd[0]["links"][0]["href"],
        "http://prom:9090/graph?g0.expr=x"
    );
    assert!(
        pd[2]["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{}",
        pd[2]
    );
    // The same watch after a restart (a new notifier) uses the same key, and resolves
    // the rule that ended the watch though it no longer remembers paging it.
    let (again, _) = Notifier::new(channels());
    let mut again = again.with_watch_id("w-1");
    let out = crate::io::notify::Collected::default();
    again.collect = Some(out.clone());
    again.emit(
        1,
        &Event::WatchFinished {
            outcome: "rolled_back",
            exit_code: 1,
            detail: "rolled back".into(),
            rule: Some("errors".into()),
        },
    );
    let resolved = out
        .lock()
        .unwrap()
        .iter()
        .find(|o| o.channel == 0)
        .unwrap()
        .body
        .clone();
    assert_eq!(resolved["dedup_key"], "rollwatch/w-1/errors");
    assert_eq!(resolved["event_action"], "resolve");
}

#[test]
fn a_failed_rollback_stays_open_in_pagerduty() {
    let (n, _) = Notifier::new(channels());
    let pd = of(&run(n.with_watch_id("w-2"), false), 0);
    let actions: Vec<&str> = pd
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "trigger"], "{pd:#?}");
    assert_eq!(pd[2]["payload"]["severity"], "critical");
    assert!(pd[2]["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("act by hand"));
}

#[test]
fn grafana_gets_the_start_the_action_as_a_region_and_the_end() {
    let (n, _) = Notifier::new(channels());
    let g = of(&run(n.with_watch_id("w-3"), true), 2);
    assert_eq!(g.len(), 3, "{g:#?}");
    assert_eq!(g[0]["time"], 1_765_000_000_000i64);
    assert!(g[0].get("timeEnd").is_none());
    assert_eq!(
        g[1]["time"], 1_765_000_002_100i64,
        "from the action's start"
    );
    assert_eq!(g[1]["timeEnd"], 1_765_000_005_000i64, "to its result");
    assert_eq!(g[2]["time"], 1_765_000_005_100i64);
    let tags: Vec<Vec<&str>> = g
        .iter()
        .map(|a| {
            a["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        tags[0],
        ["rollwatch", "watch:w-3", "service:checkout", "start"]
    );
    assert_eq!(
        tags[1],
        ["rollwatch", "watch:w-3", "service:checkout", "rollback"]
    );
    assert_eq!(
        tags[2],
        [
            "rollwatch",
            "watch:w-3",
            "service:checkout",
            "end",
            "outcome:rolled_back"
        ]
    );
}

#[test]
fn teams_gets_a_card_with_the_rule_value_threshold_action_and_links() {
    let (n, _) = Notifier::new(channels());
    let t = of(
        &run(
            n.with_watch_id("w-4")
                .with_report("https://rw.example/w-4".into()),
            true,
        ),
        1,
    );
    assert_eq!(t.len(), 1, "only the kinds it asked for: {t:#?}");
    let card = &t[0]["attachments"][0]["content"];
    let facts: BTreeMap<&str, &str> = card["body"][1]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert_eq!(facts["Rule"], "errors");
    assert_eq!(facts["Value"], "0.9");
    assert_eq!(facts["Threshold"], "> 0.5");
    assert_eq!(facts["Action"], "rollback: succeeded");
    let urls: Vec<&str> = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        ["http://prom:9090/graph?g0.expr=x", "https://rw.example/w-4"]
    );
}

/// A release with many vars (service, version, region, cluster, ...): the card still
/// shows the rule, value, threshold, action and the report, whatever the vars crowd
/// out (they are in the title too).
#[test]
fn a_teams_card_keeps_the_rule_and_action_facts_with_many_vars() {
    let vars: BTreeMap<String, String> = (0..14)
        .map(|i| (format!("var{i:02}"), format!("value {i}")))
        .collect();
    let (n, _) = Notifier::new(channels());
    let notes = run_with(
        n.with_watch_id("w-5")
            .with_report("/tmp/r/report.html".into()),
        true,
        vars,
    );
    let t = of(&notes, 1);
    let facts: BTreeMap<&str, &str> = t[0]["attachments"][0]["content"]["body"][1]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert_eq!(facts.get("Rule"), Some(&"errors"), "{facts:?}");
    assert_eq!(facts.get("Value"), Some(&"0.9"), "{facts:?}");
    assert_eq!(facts.get("Threshold"), Some(&"> 0.5"), "{facts:?}");
    assert_eq!(
        facts.get("Action"),
        Some(&"rollback: succeeded"),
        "{facts:?}"
    );
    assert_eq!(
        facts.get("Report"),
        Some(&"/tmp/r/report.html"),
        "{facts:?}"
    );
    assert!(facts.len() <= 12, "{facts:?}");
    assert!(
        facts.contains_key("var00"),
        "vars fill the room left: {facts:?}"
    );
}

/// The secrets are never in a rendered body (which `serve` stores), and only in the
/// request that is sent: the routing key in PagerDuty's body, the token as a bearer.
#[test]
fn secrets_are_added_only_when_sending() {
    let (n, _) = Notifier::new(channels());
    let notes = run(n.with_watch_id("w-5"), true);
    assert!(!notes.is_empty());
    for (_, body) in &notes {
        let text = body.to_string();
        assert!(!text.contains(KEY) && !text.contains(TOKEN), "{text}");
    }
    let chs = channels();
    let pd = request_for(&chs[0], &of(&notes, 0)[0]);
    assert_eq!(pd.url, PAGERDUTY_URL);
    assert_eq!(pd.body["routing_key"], KEY);
    assert_eq!(pd.bearer, None);
    let g = request_for(&chs[2], &of(&notes, 2)[0]);
    assert_eq!(g.url, "https://grafana.example/api/annotations");
    assert_eq!(g.bearer.as_deref(), Some(TOKEN));
    assert!(!g.body.to_string().contains(TOKEN));
    assert!(!format!("{:?}", chs).contains(KEY) && !format!("{:?}", chs).contains(TOKEN));
}

#[test]
fn a_dry_run_pages_and_annotates_nothing() {
    let (mut n, out) = Notifier::collecting(channels());
    n.emit(
        1,
        &Event::WatchStarted {
            rules_file: "x.yaml".into(),
            prometheus: "http://prom".into(),
            duration_s: 1.0,
            max_blind_s: 1.0,
            dry_run: true,
            vars: BTreeMap::new(),
            rules: vec![info()],
        },
    );
    n.emit(
        2,
        &Event::WatchFinished {
            outcome: "rolled_back",
            exit_code: 1,
            detail: "x".into(),
            rule: Some("errors".into()),
        },
    );
    assert!(out.lock().unwrap().is_empty());
}

/// A person's rollback (its rule is `manual:<who>`, no rule of the file) pages as a
/// rollback: critical.
#[test]
fn a_persons_rollback_pages_as_critical() {
    let (mut n, out) = Notifier::collecting(channels());
    n.emit(
        1,
        &Event::ActionStarted {
            action: "rollback",
            rule: "manual:alice".into(),
            argv: vec!["true".into()],
            timeout_s: 30.0,
            dry_run: false,
        },
    );
    let out = out.lock().unwrap();
    let pd = &out.iter().find(|o| o.channel == 0).unwrap().body;
    assert_eq!(pd["payload"]["severity"], "critical", "{pd}");
    assert_eq!(pd["dedup_key"], "rollwatch/watch/manual:alice");
}
