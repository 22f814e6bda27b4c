//! Faults a real Prometheus cannot be made to produce on demand, from a scripted fake.

use crate::harness::fake::{Fake, Reply};
use crate::harness::rule_file::rule_file;
use crate::harness::{start, Scratch};
use std::time::Duration;

fn rules(extra_watch: &str) -> String {
    rule_file()
        .watch("  duration: 30s\n  interval: 1s\n  query_timeout: 1s")
        .watch(extra_watch)
        .rollback("echo rollback >> @DIR@/actions.log", None)
        .rule(
            "r",
            Some("some_metric"),
            "    above: 0.5\n    for: 2s\n    no_data: breach",
        )
        .build()
}

#[test]
fn http_5xx_garbage_resets_and_hangs_never_count_as_breaches() {
    let s = Scratch::new();
    let fake = Fake::start(vec![
        Reply::value(0.1),
        Reply::Http(503, "Service Unavailable".into()),
        Reply::Http(500, "{}".into()),
        Reply::Http(200, "<html>garbage".into()),
        Reply::Http(200, r#"{"status":"succ"#.into()),
        Reply::Http(
            422,
            r#"{"status":"error","errorType":"execution","error":"boom"}"#.into(),
        ),
        Reply::Reset,
        Reply::Hang,
    ]);
    let file = s.rules(&rules("  max_blind: 12s"));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &fake.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(30)), 4, "{}", w.dump());
    assert!(s.lines("actions.log").is_empty());
    assert!(w.events("pending").is_empty(), "{}", w.dump());
    let failures = w.events("query_failed");
    assert!(failures.len() >= 5, "{}", w.dump());
    let text = w.dump();
    for needle in [
        "HTTP 503",
        "HTTP 500",
        "unreadable response",
        "execution",
        "timed out",
    ] {
        assert!(
            text.contains(needle),
            "no log line mentions {needle}:\n{text}"
        );
    }
}

#[test]
fn recovery_after_errors_resumes_judging() {
    let s = Scratch::new();
    let mut script = vec![Reply::Http(503, "down".into()); 3];
    script.push(Reply::value(0.9));
    let fake = Fake::start(script);
    let file = s.rules(&rules("  max_blind: 20s"));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &fake.url,
    ]);
    w.await_event("pending", Duration::from_secs(15));
    assert_eq!(w.wait(Duration::from_secs(15)), 1, "{}", w.dump());
    assert_eq!(s.lines("actions.log").len(), 1);
}

#[test]
fn query_rejected_as_invalid_is_a_usage_error() {
    let s = Scratch::new();
    let fake = Fake::start(vec![Reply::Http(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"unknown function"}"#.into(),
    )]);
    let file = s.rules(&rules(""));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &fake.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(15)), 2, "{}", w.dump());
    assert!(s.lines("actions.log").is_empty());
}

#[test]
fn partial_response_warnings_are_logged_and_data_is_used() {
    let s = Scratch::new();
    let fake = Fake::start(vec![Reply::Http(
        200,
        r#"{"status":"success","warnings":["partial response: store unavailable"],"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.1"]}]}}"#.into(),
    )]);
    let file = s.rules(&rules("").replace("duration: 30s", "duration: 3s"));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &fake.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(15)), 0, "{}", w.dump());
    assert!(!w.events("query_warning").is_empty());
}

#[test]
fn watch_ending_blind_is_inconclusive_not_healthy() {
    let s = Scratch::new();
    let mut script = vec![Reply::value(0.1); 2];
    script.push(Reply::Http(503, "down".into()));
    let fake = Fake::start(script);
    let file = s.rules(&rules("  max_blind: 1m").replace("duration: 30s", "duration: 5s"));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &fake.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(15)), 4, "{}", w.dump());
}

#[test]
fn secrets_never_appear_in_logs() {
    let s = Scratch::new();
    let token = s.path("token");
    std::fs::write(&token, "s3cr3t-token\n").unwrap();
    let fake = Fake::start(vec![Reply::Http(503, "down".into())]);
    let url = fake.url.replace("http://", "http://user:pa55word@");
    let file = s.rules(&rules("  max_blind: 2s"));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &url,
        "--bearer-token-file",
        token.to_str().unwrap(),
        "--header",
        "X-Scope-OrgID: tenant-secret",
    ]);
    assert_eq!(w.wait(Duration::from_secs(15)), 4);
    let text = w.dump();
    for secret in ["s3cr3t-token", "pa55word", "tenant-secret"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}
