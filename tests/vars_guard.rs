//! Guards at the agent's and the loader's edges: what a caller may put in a variable
//! (`check --set`, the serve API's `vars`), and the state file (owner-only modes, one
//! agent at a time). The real binary; the real Prometheus where an agent needs one.

use crate::harness::{free_port, prometheus, run, start, Running, Scratch};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const RULES: &str = r#"vars:
  namespace: {default: prod, pattern: "^[a-z0-9-]+$", description: the namespace}
  service: checkout
watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["kubectl", "rollout", "undo", "-n", "${namespace}", "deployment/${service}"]
  timeout: 30s
rules:
  - name: r
    query: rw_value{test="vars-guard", service="${service}"}
    above: 0.5
    for: 5s
"#;

#[test]
fn check_refuses_unsafe_set_values_with_exit_2() {
    let s = Scratch::new();
    let file = s.rules(RULES);
    let file = file.to_str().unwrap();
    let cases = [
        (
            "namespace=x\"} or vector(1) #",
            "the value \"x\\\"} or vector(1) #\" given for variable `namespace` does not match its pattern `^[a-z0-9-]+$`",
        ),
        (
            "service=a\u{1}b",
            "the value of variable `service`, \"a\\u{1}b\", contains a control character (U+0001) at byte 1",
        ),
        (
            "service=line\nbreak",
            "contains a control character (U+000A)",
        ),
    ];
    for (set, expected) in cases {
        let (code, stdout, stderr) = run(&["check", file, "--set", set]);
        assert_eq!(
            code, 2,
            "--set {set:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(stderr.contains(expected), "--set {set:?}:\n{stderr}");
        assert!(stderr.contains("nothing was run"), "{stderr}");
    }
    let long = format!("service={}", "x".repeat(2000));
    let (code, _, stderr) = run(&["check", file, "--set", &long]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the value of variable `service` is 2000 bytes long (at most 1024)"),
        "{stderr}"
    );

    // A value starting with `-` at the start of a command argument: refused (the
    // pattern allows `-`, so it is the option guard that speaks), unless allowed.
    let open = s.rules(&RULES.replace(r#"pattern: "^[a-z0-9-]+$", "#, ""));
    let open = open.to_str().unwrap();
    let (code, _, stderr) = run(&["check", open, "--set", "namespace=--all-namespaces"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("argument 5 of the rollback command would start with `-` from `${namespace}` = \"--all-namespaces\""),
        "{stderr}"
    );
    assert!(stderr.contains("rules.yaml:8:50"), "{stderr}");
    let allowed = s.rules(&RULES.replace(r#"pattern: "^[a-z0-9-]+$", "#, "allow_option: true, "));
    let (code, _, stderr) = run(&[
        "check",
        allowed.to_str().unwrap(),
        "--set",
        "namespace=--all-namespaces",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// One HTTP/1.1 request to the agent, without a token.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    crate::harness::agent::http(addr, method, path, None, body)
}

/// Starts `rollwatch serve` on `state`; returns it and its address once ready.
fn serve(s: &Scratch, state: &Path) -> (Running, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = start(&[
        "serve",
        "--rules-dir",
        s.path("rules").to_str().unwrap(),
        "--listen",
        &addr,
        "--state",
        state.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ]);
    crate::harness::await_ready(&addr, "/readyz", Duration::from_secs(20), "agent", || {
        p.dump()
    });
    (p, addr)
}

fn scratch_with_rules() -> Scratch {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("rules")).unwrap();
    // `true` stands in for kubectl: the program must exist for a watch to start.
    let text = RULES.replace(r#"["kubectl", "rollout", "undo","#, r#"["true","#);
    std::fs::write(s.path("rules/app.yaml"), text).unwrap();
    s
}

#[test]
fn the_api_refuses_unsafe_vars_with_400() {
    let s = scratch_with_rules();
    let (agent, addr) = serve(&s, &s.path("state.db"));
    let bad = [
        (
            json!({"namespace": "prod\u{0}x"}),
            "control character (U+0000)",
        ),
        (
            json!({"namespace": "x\"} or vector(1) #"}),
            "does not match its pattern `^[a-z0-9-]+$`",
        ),
        (
            json!({"namespace": "-rf"}),
            "would start with `-` from `${namespace}`",
        ),
        (
            json!({"service": "y".repeat(1025)}),
            "1025 bytes long (at most 1024)",
        ),
    ];
    for (vars, expected) in bad {
        let (status, body) = http(
            &addr,
            "POST",
            "/api/v1/watches",
            Some(&json!({"rules": "app", "vars": vars, "duration": "5s"})),
        );
        assert_eq!(status, 400, "{vars}: {body}\n{}", agent.dump());
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{vars}: {error}");
    }
    let (status, body) = http(&addr, "GET", "/api/v1/watches", None);
    assert_eq!(status, 200);
    assert_eq!(body["watches"], json!([]), "nothing was created: {body}");
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "app", "vars": {"namespace": "staging-2"}, "duration": "5s"})),
    );
    assert_eq!(status, 201, "{body}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_state_file_is_owner_only_and_a_second_agent_refuses_to_start() {
    let s = scratch_with_rules();
    let state = s.path("state.db");
    // A state file left readable by everyone (an old version, a careless copy).
    std::fs::write(&state, b"").unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (mut first, _) = serve(&s, &state);
    first.await_event("state_file_mode", Duration::from_secs(5));
    let mut files = vec![state.clone(), s.path("state.db.lock")];
    for sibling in ["state.db-wal", "state.db-shm"] {
        if s.path(sibling).exists() {
            files.push(s.path(sibling));
        }
    }
    assert!(files.len() == 4, "WAL mode makes -wal and -shm: {files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // A second agent on the same state file refuses to start: exit 2, naming the file
    // and the first agent's pid.
    let mut second = start(&[
        "serve",
        "--rules-dir",
        s.path("rules").to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--state",
        state.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ]);
    assert_eq!(second.wait(Duration::from_secs(20)), 2, "{}", second.dump());
    let log = second.dump();
    assert!(
        log.contains(&format!(
            "the state file {} is in use by another rollwatch agent (pid {})",
            state.display(),
            first.pid
        )),
        "{log}"
    );

    // kill -9 leaves no stale lock: the next agent starts.
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        first.wait(Duration::from_secs(10))
    }));
    let (third, _) = serve(&s, &state);
    assert!(third.events("state_file_mode").is_empty(), "already 0600");
}
