//! `serve`'s verdict routes, called exactly as Argo Rollouts' web metric provider and
//! Flagger's webhooks call them: the requests are built from the example manifests
//! under examples/argo and examples/flagger (which must also match the request files
//! beside them), and sent to a real agent on the real Prometheus, for a healthy and a
//! breaching series.

use crate::harness::agent::{http, set, Agent, ROLLBACK};
use crate::harness::repo_path;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The rule file the examples name (`checkout`), on `rw_value{test="${service}"}`.
const CHECKOUT: &str = r#"vars:
  service:
  namespace:
    default: default
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["true"]
rules:
  - name: errors
    query: rw_value{test="${service}"}
    above: 0.5
    for: 2m
"#;

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json_file(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_path(rel)).unwrap()).unwrap()
}

/// Argo's `{{args.NAME}}` substitution, on every string in `v`.
fn substitute(v: &Value, args: &BTreeMap<&str, &str>) -> Value {
    match v {
        Value::String(s) => {
            let mut s = s.clone();
            for (k, val) in args {
                s = s.replace(&format!("{{{{args.{k}}}}}"), val);
            }
            Value::String(s)
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, args)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, args)).collect()),
        other => other.clone(),
    }
}

/// What the AnalysisTemplate's web provider sends: (method, path and query, bearer
/// token, body), and the jsonPath and conditions it judges the answer with.
struct ArgoRequest {
    method: String,
    path: String,
    token: Option<String>,
    body: Value,
    json_path: String,
    success: String,
    failure: String,
}

fn argo_request(args: &BTreeMap<&str, &str>) -> ArgoRequest {
    let t = yaml("examples/argo/analysis-template.yaml");
    assert_eq!(t["kind"], "AnalysisTemplate");
    let m = &t["spec"]["metrics"][0];
    let web = substitute(&m["provider"]["web"], args);
    let url = web["url"].as_str().unwrap();
    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    let headers = web["headers"].as_array().unwrap();
    let header = |k: &str| {
        headers
            .iter()
            .find(|h| h["key"] == k)
            .and_then(|h| h["value"].as_str())
            .map(str::to_string)
    };
    assert_eq!(header("Content-Type").as_deref(), Some("application/json"));
    ArgoRequest {
        method: web["method"].as_str().unwrap().to_string(),
        path,
        token: header("Authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string)),
        body: web["jsonBody"].clone(),
        json_path: web["jsonPath"].as_str().unwrap().to_string(),
        success: m["successCondition"].as_str().unwrap().to_string(),
        failure: m["failureCondition"].as_str().unwrap().to_string(),
    }
}

/// The bodies Flagger POSTs for the Canary's webhooks: (url path, body) each.
fn flagger_requests(service: &str) -> Vec<(String, Value)> {
    let c = yaml("examples/flagger/canary.yaml");
    assert_eq!(c["kind"], "Canary");
    let hooks = c["spec"]["analysis"]["webhooks"].as_array().unwrap();
    let types: Vec<&str> = hooks.iter().filter_map(|h| h["type"].as_str()).collect();
    assert_eq!(types, ["pre-rollout", "rollout"]);
    hooks
        .iter()
        .map(|h| {
            let url = h["url"].as_str().unwrap();
            let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap());
            let mut metadata = h["metadata"].clone();
            metadata["service"] = json!(service);
            let body = json!({
                "name": c["metadata"]["name"],
                "namespace": c["metadata"]["namespace"],
                "phase": "Progressing",
                "checksum": "6b4f8c7d9",
                "metadata": metadata,
            });
            (path, body)
        })
        .collect()
}

#[test]
fn the_request_files_are_what_the_manifests_send() {
    let args = BTreeMap::from([
        ("service-name", "checkout"),
        ("namespace", "shop"),
        ("rollwatch-token", "t"),
    ]);
    let r = argo_request(&args);
    assert_eq!(r.body, json_file("examples/argo/verdict-request.json"));
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/v1/verdict?always_200=true");
    assert_eq!(r.json_path, "{$.verdict}");
    assert_eq!(r.success, r#"result == "pass""#);
    assert_eq!(r.failure, r#"result == "fail""#);
    for (_, body) in flagger_requests("checkout") {
        assert_eq!(body, json_file("examples/flagger/webhook-request.json"));
    }
}

#[test]
fn argo_web_provider_gets_pass_and_fail_in_its_json_path() {
    let test = "verdict-argo";
    let a = Agent::new(Some("argo-secret"));
    a.rule_file("checkout", CHECKOUT);
    let args = BTreeMap::from([
        ("service-name", test),
        ("namespace", "shop"),
        ("rollwatch-token", "argo-secret"),
    ]);
    let r = argo_request(&args);
    let send =
        |path: &str, token: Option<&str>| http(&a.addr, &r.method, path, token, Some(&r.body));

    set(test, 0.1);
    let (status, body) = send(&r.path, r.token.as_deref());
    assert_eq!(status, 200, "{body}\n{}", a.dump());
    // `{$.verdict}`, judged by `result == "pass"`.
    assert_eq!(body["verdict"], "pass", "{body}");
    assert_eq!(body["rules"][0]["name"], "errors");
    assert_eq!(body["rules"][0]["value"], 0.1);
    assert_eq!(body["rules"][0]["breached"], false);

    set(test, 0.9);
    let (status, body) = send(&r.path, r.token.as_deref());
    // 200 all the same: Argo would count a non-2xx answer as an error, not a failure.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "fail", "{body}");
    assert_eq!(body["rules"][0]["breached"], true);
    assert_eq!(body["rules"][0]["value"], 0.9);
    assert_eq!(body["rules"][0]["threshold"], "> 0.5");
    // Without `always_200` a failing verdict is a 412.
    let (status, body) = send("/api/v1/verdict", r.token.as_deref());
    assert_eq!((status, &body["verdict"]), (412, &json!("fail")), "{body}");
    // The API's token guards it.
    let (status, _) = send(&r.path, None);
    assert_eq!(status, 401);
    let (status, _) = send(&r.path, Some("wrong"));
    assert_eq!(status, 401);
    // No watch was stored, so nothing can ever run because of a verdict.
    let (_, all) = a.req("GET", "/api/v1/watches", None);
    assert_eq!(all["watches"], json!([]), "{all}");
}

#[test]
fn flagger_webhooks_pass_with_200_and_fail_with_412() {
    let test = "verdict-flagger";
    let a = Agent::with_args(Some("flagger-secret"), &["--open-verdicts"]);
    a.rule_file("checkout", CHECKOUT);
    let requests = flagger_requests(test);

    set(test, 0.2);
    for (path, body) in &requests {
        // Flagger sends no Authorization header.
        let (status, resp) = http(&a.addr, "POST", path, None, Some(body));
        assert_eq!(status, 200, "{resp}\n{}", a.dump());
        assert_eq!(resp["verdict"], "pass");
    }
    set(test, 0.8);
    for (path, body) in &requests {
        let (status, resp) = http(&a.addr, "POST", path, None, Some(body));
        assert_eq!(status, 412, "{resp}");
        assert_eq!(resp["verdict"], "fail");
        assert_eq!(resp["rules"][0]["breached"], true);
    }
    // The vars guard applies to the webhook's metadata.
    let (path, mut body) = requests[0].clone();
    body["metadata"]["sevrice"] = json!("x");
    let (status, resp) = http(&a.addr, "POST", &path, None, Some(&body));
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("sevrice"),
        "{resp}"
    );
    // Metadata that names no rule file, and a rule file that does not exist.
    body["metadata"] = json!({"service": test});
    let (status, resp) = http(&a.addr, "POST", &path, None, Some(&body));
    assert_eq!(status, 400, "{resp}");
    body["metadata"] = json!({"rules": "nope", "service": test});
    let (status, _) = http(&a.addr, "POST", &path, None, Some(&body));
    assert_eq!(status, 404);
    // `--open-verdicts` opens only the verdict routes.
    let (status, _) = http(&a.addr, "GET", "/api/v1/watches", None, None);
    assert_eq!(status, 401);
}

#[test]
fn a_query_that_fails_is_inconclusive_with_503() {
    // Nothing listens on this port: every query fails.
    let down = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let a = Agent::with_prometheus(None, &down);
    a.rule_file("checkout", CHECKOUT);
    let (status, resp) = http(
        &a.addr,
        "POST",
        "/api/v1/verdict",
        None,
        Some(&json_file("examples/argo/verdict-request.json")),
    );
    assert_eq!(
        (status, &resp["verdict"]),
        (503, &json!("inconclusive")),
        "{resp}"
    );
    assert!(resp["rules"][0]["error"].is_string(), "{resp}");
    assert_eq!(resp["rules"][0]["breached"], false);
}

#[test]
fn a_watchs_verdict_passes_while_healthy_and_fails_after_its_rollback() {
    let test = "verdict-watch";
    set(test, 0.1);
    let a = Agent::new(None);
    a.rule_file(
        "checkout",
        &crate::harness::agent::rules("    above: 0.5\n    for: 1s", ROLLBACK),
    );
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "v-1"}));
    assert_eq!(status, 201, "{w}");
    a.await_watch("v-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    let (status, v) = a.req("GET", "/api/v1/watches/v-1/verdict", None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["final"], false);
    assert_eq!(v["rules"][0]["value"], 0.1);

    set(test, 0.9);
    let w = a.await_finished("v-1", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    let (status, v) = a.req("GET", "/api/v1/watches/v-1/verdict", None);
    assert_eq!(status, 412, "{v}");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["final"], true);
    assert_eq!(v["outcome"], "rolled_back");
    let (status, v) = a.req("GET", "/api/v1/watches/v-1/verdict?always_200=true", None);
    assert_eq!((status, &v["verdict"]), (200, &json!("fail")));
    let (status, _) = a.req("GET", "/api/v1/watches/nope/verdict", None);
    assert_eq!(status, 404);
}

/// A rule file with a secret on its rollback command line, a pattern and a variable
/// the caller does not know about.
const SECRET_RULES: &str = r#"vars:
  service:
    pattern: '^[a-z]+-internal-[0-9]+$'
  target:
    default: prod
  hidden_knob:
rollback:
  command: ["curl", "-H", "Authorization: Bearer DEPLOY-SECRET-123", "${target}"]
watch:
  duration: 60s
  interval: 1s
rules:
  - name: errors
    query: rw_value{test="${service}", knob="${hidden_knob}"}
    above: 0.5
    for: 0s
"#;

#[test]
fn open_verdict_errors_name_the_bad_field_and_quote_nothing_of_the_file() {
    let a = Agent::with_args(Some("open-secret"), &["--open-verdicts"]);
    a.rule_file("secret", SECRET_RULES);
    a.rule_file("broken", &SECRET_RULES.replace("above: 0.5", "abvoe: 0.5"));
    let never = [
        "DEPLOY-SECRET-123",
        "Bearer",
        "curl",
        "internal-[0-9]",
        "hidden_knob",
        "--set",
        " | ",
        "secret.yaml:",
        "abvoe",
    ];
    let ask = |rules: &str, vars: Value| {
        let body = json!({"rules": rules, "vars": vars});
        let (status, resp) = http(&a.addr, "POST", "/api/v1/verdict", None, Some(&body));
        let text = resp.to_string();
        for s in never {
            assert!(!text.contains(s), "{s:?} in {text}");
        }
        (
            status,
            resp["error"].as_str().unwrap_or_default().to_string(),
        )
    };
    let full = json!({"service": "a-internal-1", "target": "prod", "hidden_knob": "k"});
    // The file and these vars load: no series, a pass.
    let body = json!({"rules": "secret", "vars": full});
    let (status, resp) = http(&a.addr, "POST", "/api/v1/verdict", None, Some(&body));
    assert_eq!((status, &resp["verdict"]), (200, &json!("pass")), "{resp}");
    // A value that would begin an argument of the command line with `-`.
    let mut v = full.clone();
    v["target"] = json!("-oops");
    let (status, e) = ask("secret", v);
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("`target`") && e.contains("`-`"), "{e}");
    // A value the pattern refuses.
    let mut v = full.clone();
    v["service"] = json!("nope");
    let (status, e) = ask("secret", v);
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("`service`") && e.contains("not one"), "{e}");
    // A var the file does not declare (no "did you mean", no list of the declared).
    let mut v = full.clone();
    v["hidden_knb"] = json!("x");
    let (status, e) = ask("secret", v);
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("`hidden_knb`"), "{e}");
    // A required var not given: said, not named.
    let (status, e) = ask("secret", json!({"service": "a-internal-1"}));
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("requires a variable"), "{e}");
    // A file broken on its own: only that.
    let (status, e) = ask("broken", full.clone());
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("does not load"), "{e}");
    // A caller with the token is told more (which pattern, which variable is
    // missing), but never a line of the file, nor to use `--set`.
    for (vars, expected) in [
        (
            json!({"service": "a-internal-1", "target": "-oops", "hidden_knob": "k"}),
            "would start with `-`",
        ),
        (
            json!({"service": "a-internal-1"}),
            "`hidden_knob` has no default",
        ),
    ] {
        let body = json!({"rules": "secret", "vars": vars});
        let (status, resp) = http(
            &a.addr,
            "POST",
            "/api/v1/watches",
            Some("open-secret"),
            Some(&body),
        );
        assert_eq!(status, 400, "{resp}");
        let e = resp["error"].as_str().unwrap();
        assert!(e.contains(expected), "{e}");
        for s in ["DEPLOY-SECRET-123", "--set", " | "] {
            assert!(!e.contains(s), "{s:?} in {e}");
        }
    }
}

/// What an unauthenticated verdict answer may never hold: a path, a flag to pass, a
/// store URL (nor Prometheus's or a proxy's words, which hold URLs).
fn says_nothing_internal(resp: &Value) {
    let text = resp.to_string();
    for s in ["/", "--", "postgres://"] {
        assert!(!text.contains(s), "{s:?} in {text}");
    }
}

#[test]
fn open_verdict_failures_of_the_agent_are_fixed_sentences() {
    // No Prometheus URL anywhere: the agent cannot query for this file.
    let a = Agent::build(None, "", &["--open-verdicts"]);
    a.rule_file("checkout", CHECKOUT);
    let body = json!({"rules": "checkout", "vars": {"service": "a"}});
    let (status, resp) = http(&a.addr, "POST", "/api/v1/verdict", None, Some(&body));
    assert_eq!(status, 503, "{resp}");
    assert_eq!(
        resp["error"],
        json!("the agent cannot query Prometheus for this rule file")
    );
    says_nothing_internal(&resp);
    // A rule file the agent cannot read (not UTF-8): named by its stem, no path.
    std::fs::write(a.s.path("rules/unreadable.yaml"), b"vars: \xff\xfe\n").unwrap();
    let body = json!({"rules": "unreadable", "vars": {}});
    let (status, resp) = http(&a.addr, "POST", "/api/v1/verdict", None, Some(&body));
    assert_eq!(status, 503, "{resp}");
    assert!(
        resp["error"].as_str().unwrap().contains("`unreadable`"),
        "{resp}"
    );
    says_nothing_internal(&resp);
    // The detail is logged (awaited: the log line may reach the file after the answer).
    let logged = a
        .proc
        .as_ref()
        .unwrap()
        .await_event("rule_file_unreadable", Duration::from_secs(10));
    assert!(
        logged["path"]
            .as_str()
            .unwrap_or_default()
            .ends_with("unreadable.yaml"),
        "the detail is logged: {logged}"
    );

    // Prometheus down: each rule's `error` is a class, not the client's words.
    let down = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let a = Agent::build(None, &down, &["--open-verdicts"]);
    a.rule_file("checkout", CHECKOUT);
    let body = json!({"rules": "checkout", "vars": {"service": "a"}});
    let (status, resp) = http(&a.addr, "POST", "/api/v1/verdict", None, Some(&body));
    assert_eq!(
        (status, &resp["verdict"]),
        (503, &json!("inconclusive")),
        "{resp}"
    );
    assert_eq!(
        resp["rules"][0]["error"],
        json!("the query failed: Prometheus is unreachable")
    );
    says_nothing_internal(&resp);
}

#[test]
fn a_flood_of_open_verdicts_does_not_take_the_watches_queries() {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    // Every verdict query hangs until its timeout; the agent allows the watches 2
    // queries at once.
    let hang = crate::harness::fake::Fake::start(vec![crate::harness::fake::Reply::Hang]);
    let a = Agent::build(
        Some("flood-secret"),
        "",
        &["--open-verdicts", "--max-concurrent-queries", "2"],
    );
    let file = |url: &str, timeout: &str| {
        format!("vars:\n  test:\nwatch:\n  duration: 60s\n  interval: 1s\n  prometheus: {url}\n  query_timeout: {timeout}\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: rw_value{{test=\"${{test}}\"}}\n    above: 0.5\n    for: 0s\n")
    };
    a.rule_file("slow", &file(&hang.url, "20s"));
    a.rule_file("fast", &file(&crate::harness::prometheus().url, "5s"));
    // Unauthenticated verdicts, more than either limit, left hanging.
    let flood: Vec<std::net::TcpStream> = (0..6)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&a.addr).unwrap();
            let body = json!({"rules": "slow", "vars": {"test": "flood"}}).to_string();
            write!(
                s,
                "POST /api/v1/verdict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            s
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hang.requests.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood never reached Prometheus"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A watch polls at once all the same.
    set("flood-fast", 0.1);
    let (status, w) = a.post(json!({"rules": "fast", "vars": {"test": "flood-fast"}, "id": "f-1"}));
    assert_eq!(status, 201, "{w}");
    a.await_watch("f-1", Duration::from_secs(8), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    assert!(
        hang.requests.load(Ordering::SeqCst) <= 4,
        "the open routes' own limit"
    );
    drop(flood);
}
