//! Issue 10, item 1: a `${var}` from `--set` or the API can never change a query's
//! structure. Before the fix, an apostrophe in a `#` comment made the escaper escape the
//! next value for the wrong quote, and these values rewrote the query.

use crate::harness::{free_port, prometheus, run, start, Scratch};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::time::Duration;

/// The issue's rule file: a comment with an apostrophe above a label value.
const ISSUE_RULES: &str = r#"vars: {service: checkout}
watch:
  duration: 3s
  interval: 1s
rollback:
  command: ["true"]
rules:
  - name: errors
    query: |
      # don't page on canaries
      sum(rate(http_requests_total{service="${service}"}[1m]))
    above: 0.5
    for: 0s
    no_data: ok
    interval: 1s
"#;

/// The issue's value: it closed the label value and added `or vector(1)`.
const ISSUE_EXPLOIT: &str = r#"service=x"}[1m])) or vector(1) #"#;

/// The same hole with the placeholder outside a string (line 11, column 49).
const CODE_RULES: &str = r#"vars: {window: 5m}
watch:
  duration: 3s
  interval: 1s
rollback:
  command: ["true"]
rules:
  - name: errors
    query: |
      # it's the error ratio
      sum(rate(http_requests_total{code=~"5.."}[${window}]))
    above: 0.5
    for: 0s
"#;

const CODE_EXPLOIT: &str = "1m])) or vector(1) #";

fn assert_refused(code: i32, stderr: &str, file: &str) {
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`window`"), "names the variable: {stderr}");
    assert!(
        stderr.contains(&format!("{CODE_EXPLOIT:?}")),
        "shows the value: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:11:49")),
        "points at the placeholder: {stderr}"
    );
    assert!(
        stderr.contains("outside a string literal"),
        "says why: {stderr}"
    );
}

#[test]
fn check_refuses_a_value_that_would_rewrite_the_query() {
    let s = Scratch::new();
    let file = s.rules(CODE_RULES);
    let file = file.to_str().unwrap();
    let set = format!("window={CODE_EXPLOIT}");
    let (code, stdout, stderr) = run(&["check", file, "--set", &set]);
    assert_refused(code, &stderr, file);
    assert!(!stdout.contains("ok:"), "{stdout}");
    // The same file with a plain value passes.
    let (code, _, stderr) = run(&["check", file, "--set", "window=10m"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn watch_refuses_it_before_sending_any_query() {
    let s = Scratch::new();
    let file = s.rules(CODE_RULES);
    let file = file.to_str().unwrap();
    // A "Prometheus" that only records whether anyone connected.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let set = format!("window={CODE_EXPLOIT}");
    let (code, _, stderr) = run(&[
        "watch",
        "--rules",
        file,
        "--set",
        &set,
        "--prometheus",
        &url,
        "--dry-run",
    ]);
    assert_refused(code, &stderr, file);
    // A connection would be waiting in the backlog; none is.
    listener.set_nonblocking(true).unwrap();
    let err = listener
        .accept()
        .expect_err("rollwatch connected to Prometheus");
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
}

/// In a label value the issue's value is escaped: it stays one label value (which
/// matches nothing) instead of adding `or vector(1)`, which always breached.
#[test]
fn the_issue_value_stays_a_label_value_and_prometheus_agrees() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(ISSUE_RULES);
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--set",
        ISSUE_EXPLOIT,
        "--prometheus",
        &prom.url,
        "--dry-run",
    ]);
    let code = w.wait(Duration::from_secs(20));
    let polls = w.events("poll");
    assert!(!polls.is_empty(), "{}", w.dump());
    // Real Prometheus parsed the escaped query (no query_failed) and found no series.
    assert!(w.events("query_failed").is_empty(), "{}", w.dump());
    for p in &polls {
        assert_eq!(p["series"], json!(0), "{p}");
    }
    assert!(w.events("fired").is_empty(), "{}", w.dump());
    assert_eq!(code, 0, "{}", w.dump());
}

/// One HTTP/1.1 request to the agent, without a token.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    crate::harness::agent::http(addr, method, path, None, body)
}

#[test]
fn the_api_answers_400_and_stores_no_watch() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("rules")).unwrap();
    std::fs::write(s.path("rules/checkout.yaml"), CODE_RULES).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let rules_dir = s.path("rules");
    let state = s.path("state.db");
    let agent = start(&[
        "serve",
        "--rules-dir",
        rules_dir.to_str().unwrap(),
        "--listen",
        &addr,
        "--state",
        state.to_str().unwrap(),
        "--prometheus",
        // Nothing is ever queried: the request is refused first.
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    crate::harness::await_ready(&addr, "/readyz", Duration::from_secs(20), "agent", || {
        agent.dump()
    });
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"window": CODE_EXPLOIT}, "id": "q-1"})),
    );
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("`window`"), "{body}");
    assert!(error.contains("outside a string literal"), "{body}");
    let (status, list) = http(&addr, "GET", "/api/v1/watches", None);
    assert_eq!(status, 200);
    assert_eq!(list["watches"], json!([]), "{list}");
    let (status, _) = http(&addr, "GET", "/api/v1/watches/q-1", None);
    assert_eq!(status, 404);
}
