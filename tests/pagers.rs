//! The pagers on-call uses (issue 24, part 2): PagerDuty Events API v2, a Microsoft
//! Teams workflow webhook and Grafana annotations, each received by a local scripted
//! receiver standing in for the vendor, from the real binary on a watch that rolls
//! back against the harness's real Prometheus. Every request is checked against the
//! vendor's documented schema (field names, required fields, sizes); the secrets
//! (routing key, token, URLs), generated per run, appear in no log, event, report,
//! metric, API answer or stored row.

use crate::harness::agent::{http, set, Agent};
use crate::harness::receiver::{receiver, receiver_with, redirector, Request};
use crate::harness::rule_file::series;
use crate::harness::{now_ms, prometheus, start_env, Scratch};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// A secret of `len` characters from `alphabet`, different at every run (the tests
/// check that what they generate never shows, not one fixed string).
fn generated(prefix: &str, len: usize) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    let mut x = now_ms() ^ ((std::process::id() as u64) << 20) ^ (prefix.len() as u64 * 0x9e37);
    let mut s = prefix.to_string();
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
    }
    s
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A request against the Events API v2 schema: `routing_key`, `event_action`,
/// `dedup_key` (at most 255), and for a trigger `payload.summary` (at most 1024),
/// `payload.source`, `payload.severity`; `links` as `{href, text}`; at most 512 KB.
fn check_pagerduty(r: &Request, routing_key: &str) {
    let b = &r.body;
    assert!(r.body.to_string().len() <= 512 * 1024);
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let allowed: BTreeSet<&str> = [
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "links",
        "images",
        "client",
        "client_url",
    ]
    .into();
    assert!(keys(b).is_subset(&allowed), "unknown fields: {b:#}");
    assert_eq!(b["routing_key"], routing_key);
    let action = b["event_action"].as_str().unwrap();
    assert!(
        ["trigger", "acknowledge", "resolve"].contains(&action),
        "{b:#}"
    );
    let dedup = b["dedup_key"].as_str().unwrap();
    assert!(!dedup.is_empty() && dedup.chars().count() <= 255, "{b:#}");
    if action == "trigger" {
        let p = &b["payload"];
        let allowed: BTreeSet<&str> = [
            "summary",
            "source",
            "severity",
            "timestamp",
            "component",
            "group",
            "class",
            "custom_details",
        ]
        .into();
        assert!(keys(p).is_subset(&allowed), "unknown payload fields: {p:#}");
        let summary = p["summary"].as_str().unwrap();
        assert!(!summary.is_empty() && summary.chars().count() <= 1024);
        assert!(!p["source"].as_str().unwrap().is_empty());
        let sev = p["severity"].as_str().unwrap();
        assert!(["critical", "error", "warning", "info"].contains(&sev));
        assert!(p["timestamp"].as_str().unwrap().contains('T'), "ISO 8601");
        for l in b["links"].as_array().unwrap() {
            assert_eq!(keys(l), ["href", "text"].into(), "{l}");
            assert!(l["href"].as_str().unwrap().starts_with("http"), "{l}");
        }
    }
}

/// A workflow-webhook message: one adaptive card (version 1.4) with a text block, a
/// fact set and open-URL actions, under Teams' 28 KB.
fn check_teams(r: &Request) {
    let b = &r.body;
    assert!(b.to_string().len() <= 28 * 1024);
    assert_eq!(b["type"], "message", "{b:#}");
    let att = b["attachments"].as_array().unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(
        att[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let c = &att[0]["content"];
    assert_eq!(c["type"], "AdaptiveCard");
    assert_eq!(c["version"], "1.4");
    assert_eq!(
        c["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    let body = c["body"].as_array().unwrap();
    assert_eq!(body[0]["type"], "TextBlock");
    assert_eq!(body[1]["type"], "FactSet");
    for a in c["actions"].as_array().unwrap() {
        assert_eq!(a["type"], "Action.OpenUrl");
        assert!(a["url"].as_str().unwrap().starts_with("http"));
    }
}

/// An annotation: `POST .../api/annotations` with the bearer token, `text`, `time`
/// (and `timeEnd`) in ms, `tags` as strings.
fn check_grafana(r: &Request, token: &str, since_ms: u64) {
    assert!(r.path.ends_with("/api/annotations"), "{}", r.path);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    let b = &r.body;
    let allowed: BTreeSet<&str> =
        ["time", "timeEnd", "tags", "text", "dashboardUID", "panelId"].into();
    assert!(keys(b).is_subset(&allowed), "unknown fields: {b:#}");
    assert!(!b["text"].as_str().unwrap().is_empty());
    let t = b["time"].as_u64().unwrap();
    assert!(t >= since_ms && t <= now_ms(), "a time in ms: {t}");
    if let Some(end) = b.get("timeEnd") {
        assert!(end.as_u64().unwrap() >= t);
    }
    let tags = b["tags"].as_array().unwrap();
    assert!(tags.iter().all(|t| t.is_string()));
    assert_eq!(tags[0], "rollwatch");
}

fn tags(r: &Request) -> Vec<&str> {
    r.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// A watch on series `test` that rolls back after 1s, with `notify`.
fn rules(test: &str, notify: &str) -> String {
    format!(
        r#"vars:
  test: {test}
  service: checkout
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo rollback $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s
rules:
  - name: r
    query: rw_value{{test="${{test}}"}}
    above: 0.5
    for: 1s
notify:
{notify}"#
    )
}

#[test]
fn a_rollback_pages_pagerduty_posts_to_teams_and_annotates_grafana() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "pagers-watch";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let (pd, teams, grafana) = (
        receiver(vec![202]),
        receiver(vec![200]),
        receiver(vec![200]),
    );
    let key = generated("", 32);
    let token = generated("glsa_", 40);
    let notify = format!(
        "  - pagerduty: {{routing_key: {{env: RW_TEST_PD_KEY}}, url: {{env: RW_TEST_PD_URL}}}}\n  - teams: {{env: RW_TEST_TEAMS}}\n    on: [rollback]\n  - grafana: {{url: \"{}\", token: {{env: RW_TEST_GRAFANA_TOKEN}}}}\n",
        grafana.url
    );
    let file = s.rules(&rules(name, &notify));
    let events = s.path("events.jsonl");
    let report = s.path("report");
    let since = now_ms();
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
            "--events",
            events.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &[
            ("RW_TEST_PD_KEY", &key),
            ("RW_TEST_PD_URL", &pd.url),
            ("RW_TEST_TEAMS", &teams.url),
            ("RW_TEST_GRAFANA_TOKEN", &token),
        ],
    );
    assert_eq!(w.wait(Duration::from_secs(40)), 1, "{}", w.dump());
    // Deliveries are awaited before the watch exits: everything has arrived.
    let within = Duration::from_millis(500);

    let (pd_url, teams_url) = (pd.url.clone(), teams.url.clone());
    let pd = pd.all_within(within);
    for r in &pd {
        check_pagerduty(r, &key);
    }
    let actions: Vec<&str> = pd
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    // Fired, the rollback running, rolled back; resolved at the end.
    assert_eq!(
        actions,
        ["trigger", "trigger", "trigger", "resolve"],
        "{pd:#?}"
    );
    let dedup: BTreeSet<&str> = pd
        .iter()
        .map(|r| r.body["dedup_key"].as_str().unwrap())
        .collect();
    assert_eq!(dedup.len(), 1, "one alert per watch and rule: {dedup:?}");
    assert!(dedup.iter().next().unwrap().ends_with("/r"), "{dedup:?}");
    let fired = &pd[0].body["payload"];
    assert_eq!(fired["severity"], "critical", "a rollback rule");
    assert_eq!(fired["source"], "service=checkout test=pagers-watch");
    assert_eq!(fired["custom_details"]["rule"], "r");
    assert_eq!(fired["custom_details"]["value"], "0.9");
    assert_eq!(fired["custom_details"]["threshold"], "> 0.5");
    assert!(fired["custom_details"]["report"]
        .as_str()
        .unwrap()
        .ends_with("report/report.html"));
    assert!(pd[0].body["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr="));
    assert!(pd[2].body["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("rolled back"));

    let teams = teams.all_within(within);
    assert_eq!(teams.len(), 1, "the one kind it asked for: {teams:#?}");
    check_teams(&teams[0]);
    let card = &teams[0].body["attachments"][0]["content"];
    let facts: Vec<(String, String)> = card["body"][1]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["title"].as_str().unwrap().into(),
                f["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("Rule", "r"),
        ("Value", "0.9"),
        ("Threshold", "> 0.5"),
        ("Action", "rollback: succeeded"),
    ] {
        assert!(
            facts.iter().any(|(t, v)| t == want.0 && v == want.1),
            "{want:?} in {facts:?}"
        );
    }
    assert!(card["body"][0]["text"]
        .as_str()
        .unwrap()
        .contains("rolled back"));
    assert!(card["actions"][0]["url"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr="));

    let grafana = grafana.all_within(within);
    for r in &grafana {
        check_grafana(r, &token, since);
    }
    assert_eq!(
        grafana.len(),
        3,
        "start, the rollback, the end: {grafana:#?}"
    );
    let watch_tag = tags(&grafana[0])[1].to_string();
    assert!(watch_tag.starts_with("watch:"), "{watch_tag}");
    assert_eq!(
        tags(&grafana[0])[2..],
        ["service:checkout", "test:pagers-watch", "start"]
    );
    assert_eq!(tags(&grafana[1])[1], watch_tag);
    assert_eq!(tags(&grafana[1]).last(), Some(&"rollback"));
    assert!(
        grafana[1].body["timeEnd"].is_u64(),
        "the rollback is a region"
    );
    assert_eq!(tags(&grafana[2])[4..], ["end", "outcome:rolled_back"]);

    // No secret anywhere rollwatch writes.
    let mut written = w.dump();
    written.push_str(&std::fs::read_to_string(&events).unwrap());
    for f in std::fs::read_dir(&report).unwrap() {
        written.push_str(&String::from_utf8_lossy(
            &std::fs::read(f.unwrap().path()).unwrap(),
        ));
    }
    for secret in [&key, &token, &pd_url, &teams_url] {
        assert!(
            !written.contains(secret.as_str()),
            "{secret} leaked:\n{written}"
        );
    }
}

/// Under `serve`, the pagers' notes (and a Teams card) go through the outbox: a
/// PagerDuty receiver that fails first gets the same event again (same body, same
/// `Idempotency-Key`), then the rest in order; the dedup key is the watch's id and
/// rule; and neither the routing key nor the token is in the store, the log, the
/// metrics or the watch's API answer.
#[test]
fn on_the_agent_pagers_go_through_the_outbox_and_a_failed_delivery_is_retried() {
    let test = "pagers-agent";
    set(test, 0.9);
    let pd = receiver(vec![503, 202]);
    let grafana = receiver(vec![200]);
    let teams = receiver(vec![200]);
    let key = generated("", 32);
    let token = generated("glsa_", 40);
    let mut a = Agent::new(None);
    a.kill9();
    a.env = vec![
        ("RW_TEST_PD_KEY".into(), key.clone()),
        ("RW_TEST_GRAFANA_TOKEN".into(), token.clone()),
    ];
    a.start();
    let since = now_ms();
    let notify = format!(
        "  - pagerduty: {{routing_key: {{env: RW_TEST_PD_KEY}}, url: \"{}\"}}\n  - grafana: {{url: \"{}\", token: {{env: RW_TEST_GRAFANA_TOKEN}}}}\n  - teams: \"{}\"\n    on: [rollback]\n",
        pd.url, grafana.url, teams.url
    );
    a.rule_file(
        "checkout",
        &rules("", &notify).replace("  test: \n", "  test:\n"),
    );
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished("w", Duration::from_secs(40));
    assert_eq!(w["outcome"], "rolled_back", "{w}");

    let first = pd.next_request(Duration::from_secs(10));
    let again = pd.next_request(Duration::from_secs(10));
    assert_eq!(again.body, first.body, "the retry carries the same event");
    let idem = first.header("idempotency-key").unwrap_or_default();
    assert!(idem.starts_with("rollwatch-w-"), "{:?}", first.headers);
    assert_eq!(again.header("idempotency-key"), Some(idem));
    let mut all = vec![again];
    all.extend(pd.all_within(Duration::from_secs(6)));
    for r in &all {
        check_pagerduty(r, &key);
        assert_eq!(r.body["dedup_key"], "rollwatch/w/r", "{:#}", r.body);
    }
    let actions: Vec<&str> = all
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["trigger", "trigger", "trigger", "resolve"],
        "{}",
        a.dump()
    );
    assert_eq!(
        all[0].body["payload"]["custom_details"]["report"],
        "/api/v1/watches/w"
    );

    let g = grafana.all_within(Duration::from_secs(2));
    for r in &g {
        check_grafana(r, &token, since);
        assert_eq!(tags(r)[1], "watch:w");
    }
    // After rollwatch, the watch and the vars (service, test): the kind.
    let kinds: Vec<&str> = g.iter().map(|r| tags(r)[4]).collect();
    assert_eq!(kinds, ["start", "rollback", "end"], "{g:#?}");

    let cards = teams.all_within(Duration::from_secs(1));
    assert_eq!(cards.len(), 1, "{cards:#?}");
    check_teams(&cards[0]);
    assert!(cards[0].header("idempotency-key").is_some());

    let mut seen = a.dump();
    for path in ["/metrics", "/api/v1/watches/w", "/api/v1/watches"] {
        let (_, body) = http(&a.addr, "GET", path, None, None);
        seen.push_str(&body.to_string());
    }
    // The store (`--state`), whatever files it is made of.
    let mut dirs: Vec<_> = std::fs::read_dir(a.s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.db")
        })
        .collect();
    while let Some(d) = dirs.pop() {
        if d.is_dir() {
            dirs.extend(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&d) {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    // The rule snapshot names the variable, never its value.
    assert!(seen.contains("RW_TEST_PD_KEY"), "the store was read");
    for secret in [&key, &token] {
        assert!(
            !seen.contains(secret.as_str()),
            "{secret} leaked:\n{}",
            a.dump()
        );
    }
}

/// A PagerDuty that fails at first gets the trigger again (the same event: the same
/// dedup key), and a Grafana that hangs never delays the rollback.
#[test]
fn a_failing_pager_is_retried_and_a_hanging_one_never_delays_the_rollback() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "pagers-retry";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let pd = receiver(vec![503, 202]);
    let hang = receiver(vec![0]);
    let notify = format!(
        "  - pagerduty: {{routing_key: k, url: \"{}\"}}\n  - grafana: {{url: \"{}\", token: t}}\n    timeout: 2s\n    retries: 1\n",
        pd.url, hang.url
    );
    let file = s.rules(&rules(name, &notify));
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
        ],
        &[],
    );
    let fired = w.await_event_where("fired", Duration::from_secs(15), |e| e["rule"] == "r");
    assert_eq!(w.wait(Duration::from_secs(40)), 1, "{}", w.dump());
    let acted: u64 = s.lines("actions.log")[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let fired_ms = fired["unix_ms"].as_u64().unwrap();
    assert!(
        acted - fired_ms < 1000,
        "rollback ran {}ms after firing despite the hanging Grafana",
        acted - fired_ms
    );
    let first = pd.next_request(Duration::from_secs(5));
    let again = pd.next_request(Duration::from_secs(5));
    assert_eq!(
        again.body, first.body,
        "the same trigger, the same dedup key"
    );
    assert_eq!(first.body["event_action"], "trigger");
    let rest = pd.all_within(Duration::from_millis(500));
    let actions: Vec<&str> = rest
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"], "{}", w.dump());
    let log = w.dump();
    assert!(log.contains("notification_retry"), "{log}");
    assert!(
        log.contains("notification_failed"),
        "the hanging Grafana: {log}"
    );
}

/// examples/notify/pagers.yaml, added to a rule file, passes `rollwatch check` once its
/// secrets are in the environment (and names each one missing otherwise, never a value).
#[test]
fn the_pagers_example_checks_with_its_secrets_in_the_environment() {
    let s = Scratch::new();
    let example =
        std::fs::read_to_string(crate::harness::repo_path("examples/notify/pagers.yaml")).unwrap();
    let file = s.rules(&format!(
        "{}{example}",
        std::fs::read_to_string(crate::harness::repo_path("examples/rules/checkout.yaml")).unwrap()
    ));
    let check = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(crate::harness::bin())
            .args(["check", file.to_str().unwrap()])
            .env_remove("PAGERDUTY_ROUTING_KEY")
            .env_remove("TEAMS_WEBHOOK_URL")
            .env_remove("GRAFANA_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = check(&[
        ("PAGERDUTY_ROUTING_KEY", "R0UT1NG-s3cr3t"),
        ("TEAMS_WEBHOOK_URL", "https://teams.example/s3cr3t"),
        ("GRAFANA_TOKEN", "glsa_s3cr3t"),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    let (code, text) = check(&[("PAGERDUTY_ROUTING_KEY", "R0UT1NG-s3cr3t")]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("`TEAMS_WEBHOOK_URL`") && text.contains("`GRAFANA_TOKEN`"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");
}

/// A channel URL that answers with a redirect to another host: neither PagerDuty's
/// routing key (in the body a 307 re-sends) nor a Teams URL's signature (in a
/// `Referer`) may reach that host. The redirect is not followed; the delivery is
/// refused at once (not retried), and the rollback is not delayed.
#[test]
fn a_redirect_to_another_host_carries_no_secret_there() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "pagers-redirect";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    // The other host: the same receiver named `localhost`, not `127.0.0.1`.
    let elsewhere = receiver(vec![200]);
    let other = elsewhere.url.replace("127.0.0.1", "localhost");
    let key = generated("", 32);
    let sig = generated("sig", 43);
    let teams = format!("{}?sp=%2Ftriggers&sig={sig}", redirector(&other));
    let notify = "  - pagerduty: {routing_key: {env: RW_TEST_PD_KEY}, url: {env: RW_TEST_PD_URL}}\n  - teams: {env: RW_TEST_TEAMS}\n    on: [rollback]\n";
    let file = s.rules(&rules(name, notify));
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
        ],
        &[
            ("RW_TEST_PD_KEY", &key),
            ("RW_TEST_PD_URL", &redirector(&other)),
            ("RW_TEST_TEAMS", &teams),
        ],
    );
    assert_eq!(w.wait(Duration::from_secs(40)), 1, "{}", w.dump());
    let arrived = elsewhere.all_within(Duration::from_millis(500));
    for r in &arrived {
        let seen = format!("{} {:?} {}", r.path, r.headers, r.body);
        assert!(
            !seen.contains(&key),
            "the routing key went elsewhere: {r:#?}"
        );
        assert!(
            !seen.contains(&sig),
            "the Teams signature went elsewhere: {r:#?}"
        );
    }
    assert!(arrived.is_empty(), "no redirect is followed: {arrived:#?}");
    let log = w.dump();
    assert!(log.contains("HTTP 307"), "refused, said why: {log}");
    assert!(!log.contains("notification_retry"), "not retried: {log}");
    assert!(!log.contains(&key) && !log.contains(&sig), "{log}");
}

/// Under `serve`, a `notify` rule that paged before the agent restarted is resolved
/// at the watch's end all the same: the restarted agent's notifier learns from the
/// restored state which rules fired (same `dedup_key`: the watch's id and the rule),
/// or the PagerDuty alert would stay open for ever.
#[test]
fn a_page_opened_before_a_restart_is_resolved_at_the_end() {
    let test = "pagers-restart";
    set(test, 0.9);
    let pd = receiver(vec![202]);
    let key = generated("", 32);
    let mut a = Agent::new(None);
    a.kill9();
    a.env = vec![("RW_TEST_PD_KEY".into(), key.clone())];
    a.start();
    let notify = format!(
        "  - pagerduty: {{routing_key: {{env: RW_TEST_PD_KEY}}, url: \"{}\"}}\n",
        pd.url
    );
    let file = rules("", &notify)
        .replace("  test: \n", "  test:\n")
        .replace("  duration: 60s", "  duration: 14s")
        .replace("    for: 1s\n", "    for: 1s\n    action: notify\n");
    a.rule_file("checkout", &file);
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let fired = pd.next_request(Duration::from_secs(20));
    check_pagerduty(&fired, &key);
    assert_eq!(fired.body["event_action"], "trigger", "{:#}", fired.body);
    assert_eq!(fired.body["dedup_key"], "rollwatch/w/r");
    assert_eq!(fired.body["payload"]["severity"], "warning");
    a.kill9();
    a.start();
    let w = a.await_finished("w", Duration::from_secs(40));
    let after = pd.all_within(Duration::from_secs(6));
    for r in &after {
        check_pagerduty(r, &key);
    }
    let resolved: Vec<&Value> = after
        .iter()
        .filter(|r| r.body["event_action"] == "resolve")
        .map(|r| &r.body)
        .collect();
    assert_eq!(
        resolved,
        [&json!({"event_action": "resolve", "dedup_key": "rollwatch/w/r", "routing_key": key})],
        "the watch ended ({}); its alert is resolved: {after:#?}\n{}",
        w["outcome"],
        a.dump()
    );
}

/// A PagerDuty that answers 429 with `Retry-After: 3` (its rate limit) gets the
/// event again no sooner than it asked, not after the 0.5 s backoff, and all of the
/// watch's events still arrive, in order.
#[test]
fn a_pager_answering_429_is_retried_after_its_retry_after() {
    let prom = prometheus();
    let s = Scratch::new();
    let name = "pagers-429";
    prom.exporter.set(&series(name), 0.9);
    prom.await_value(&series(name), |v| v == Some(0.9));
    let pd = receiver_with(vec![429, 202], "Retry-After: 3");
    let key = generated("", 32);
    let notify = format!(
        "  - pagerduty: {{routing_key: {{env: RW_TEST_PD_KEY}}, url: \"{}\"}}\n",
        pd.url
    );
    let file = s.rules(&rules(name, &notify));
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &prom.url,
        ],
        &[("RW_TEST_PD_KEY", &key)],
    );
    assert_eq!(w.wait(Duration::from_secs(40)), 1, "{}", w.dump());
    let got = pd.all_within(Duration::from_millis(500));
    assert!(got.len() >= 2, "{got:#?}\n{}", w.dump());
    assert_eq!(got[1].body, got[0].body, "the same event again");
    let waited = got[1].at_ms - got[0].at_ms;
    assert!(waited >= 2900, "retried after {waited} ms, asked 3 s");
    let actions: Vec<&str> = got[1..]
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["trigger", "trigger", "trigger", "resolve"],
        "{}",
        w.dump()
    );
}

/// Under `serve`, the outbox too waits what a 429's `Retry-After` asked for before
/// it tries the note again (not its 0.5 s backoff).
#[test]
fn on_the_agent_a_429_is_retried_after_its_retry_after() {
    let test = "pagers-agent-429";
    set(test, 0.9);
    let pd = receiver_with(vec![429, 202], "Retry-After: 3");
    let key = generated("", 32);
    let mut a = Agent::new(None);
    a.kill9();
    a.env = vec![("RW_TEST_PD_KEY".into(), key.clone())];
    a.start();
    let notify = format!(
        "  - pagerduty: {{routing_key: {{env: RW_TEST_PD_KEY}}, url: \"{}\"}}\n",
        pd.url
    );
    a.rule_file(
        "checkout",
        &rules("", &notify).replace("  test: \n", "  test:\n"),
    );
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "w"}));
    assert_eq!(status, 201, "{w}");
    let first = pd.next_request(Duration::from_secs(20));
    let again = pd.next_request(Duration::from_secs(10));
    assert_eq!(again.body, first.body, "the same event again");
    let waited = again.at_ms - first.at_ms;
    assert!(
        waited >= 2900,
        "retried after {waited} ms, asked 3 s\n{}",
        a.dump()
    );
    check_pagerduty(&again, &key);
}
