//! Managed Prometheus auth, end to end with the real binary against local receivers
//! that answer like Prometheus only when a request is authorised:
//! - SigV4 (Amazon Managed Service for Prometheus): each request's signature is checked
//!   by an independent verifier (`verify.rs`, itself checked against the AWS test-suite
//!   vectors in tests/fixtures/sigv4), with keys from the environment and from web
//!   identity through a local STS stand-in;
//! - rotating bearer tokens: a token file swapped by symlink during a watch, and a token
//!   command whose token expires and is replaced, against a receiver that accepts only
//!   the current token.

#[path = "cloud_auth/verify.rs"]
mod verify;

use crate::harness::rule_file::rule_file;
use crate::harness::{start_env, Scratch};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use verify::Req;

/// A loopback HTTP server answering each request with `handler`'s (status, JSON body).
fn serve(handler: impl Fn(&Req) -> (u16, String) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let target = parts.next().unwrap_or("").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((n, v)) = h.trim_end().split_once(':') {
                        headers.push((n.to_string(), v.trim().to_string()));
                    }
                }
                let req = Req {
                    method,
                    target,
                    headers,
                    body: Vec::new(),
                };
                let len = req
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let req = Req { body, ..req };
                let (status, body) = handler(&req);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

/// What the Prometheus stand-in saw: the credential of each accepted request, and
/// why each rejected one was.
#[derive(Default, Debug)]
struct Seen {
    accepted: Vec<String>,
    rejected: Vec<String>,
    /// Method and path of each accepted request.
    requests: Vec<String>,
}

/// Prometheus's answer to an authorised request: `time()` from this machine's clock,
/// any other query `value`.
fn prometheus_answer(req: &Req, value: f64) -> (u16, String) {
    let body = String::from_utf8_lossy(&req.body);
    if !req.target.contains("/api/v1/query") {
        return (404, "{}".into());
    }
    if body.contains("query=time%28%29") {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        return (
            200,
            format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[{t:.3},"{t:.3}"]}}}}"#
            ),
        );
    }
    if req.target.ends_with("/query_range") {
        // One sample at each end of the range asked for.
        let param = |k: &str| {
            body.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or("0")
                .to_string()
        };
        let (start, end) = (param("start"), param("end"));
        return (
            200,
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[{start},"{value}"],[{end},"{value}"]]}}]}}}}"#
            ),
        );
    }
    (
        200,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#
        ),
    )
}

/// A Prometheus stand-in that answers `value` to requests `check` accepts (Ok: the
/// credential used) and `denied` (401 or 403) to the others.
fn guarded(
    value: f64,
    denied: u16,
    check: impl Fn(&Req) -> Result<String, String> + Send + Sync + 'static,
) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    let url = serve(move |req| match check(req) {
        Ok(who) => {
            let mut log = log.lock().unwrap();
            log.accepted.push(who);
            log.requests.push(format!("{} {}", req.method, req.target));
            prometheus_answer(req, value)
        }
        Err(why) => {
            log.lock().unwrap().rejected.push(why);
            (
                denied,
                r#"{"status":"error","errorType":"unauthorized","error":"denied"}"#.into(),
            )
        }
    });
    (url, seen)
}

fn rules(above: &str, duration: &str) -> String {
    rule_file()
        .watch(&format!(
            "  duration: {duration}\n  interval: 1s\n  query_timeout: 2s\n  max_blind: 20s"
        ))
        .rollback("echo rollback >> @DIR@/actions.log", None)
        .rule(
            "r",
            Some("some_metric"),
            &format!("    above: {above}\n    for: 2s"),
        )
        .build()
}

/// Waits until `pred` holds on what the receiver saw.
fn await_seen(seen: &Mutex<Seen>, within: Duration, what: &str, pred: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + within;
    while !pred(&seen.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}; seen: {:?}",
            seen.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

const SUITE_CASES: &[&str] = &[
    "get-vanilla",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved",
    "get-header-value-trim",
    "post-header-key-case",
    "post-vanilla-query",
    "post-x-www-form-urlencoded",
    "get-vanilla-with-session-token",
];

#[test]
fn the_verifier_rebuilds_the_aws_test_suite_steps() {
    let dir = crate::harness::repo_path("tests/fixtures/sigv4");
    let read = |case: &str, f: &str| std::fs::read_to_string(dir.join(case).join(f)).unwrap();
    for case in SUITE_CASES {
        let req = Req::parse(&read(case, "header-signed-request.txt"));
        let auth = verify::parse_auth(req.header("authorization").unwrap()).unwrap();
        let creq = verify::canonical_request(&req, &auth.signed_headers);
        assert_eq!(creq, read(case, "header-canonical-request.txt"), "{case}");
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let sts = verify::string_to_sign(req.header("x-amz-date").unwrap(), &scope, &creq);
        assert_eq!(sts, read(case, "header-string-to-sign.txt"), "{case}");
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        verify::verify(&req, |_| Some(secret.into()), &["host", "x-amz-date"])
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let wrong = verify::verify(&req, |_| Some("other".into()), &[]);
        assert!(wrong.is_err(), "{case}");
    }
}

/// The checks a SigV4 request to the stand-in must pass: a valid signature by a known
/// key, for `region`/aps, over host, date, content type and (with a session token)
/// the token, dated within five minutes.
fn sigv4_check(
    keys: Arc<Mutex<Vec<(String, String, String)>>>,
    region: &'static str,
) -> impl Fn(&Req) -> Result<String, String> + Send + Sync + 'static {
    move |req| {
        let keys = keys.lock().unwrap().clone();
        let secret_of = |id: &str| keys.iter().find(|k| k.0 == id).map(|k| k.1.clone());
        let mut must = vec!["host", "x-amz-date", "x-amz-security-token"];
        if req.method == "POST" {
            must.push("content-type");
        }
        let auth = verify::verify(req, secret_of, &must)?;
        if (auth.region.as_str(), auth.service.as_str()) != (region, "aps") {
            return Err(format!("scope {}/{}", auth.region, auth.service));
        }
        let token = keys
            .iter()
            .find(|k| k.0 == auth.access_key)
            .unwrap()
            .2
            .clone();
        if req.header("x-amz-security-token") != Some(token.as_str()) {
            return Err("wrong session token".into());
        }
        let date =
            jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", req.header("x-amz-date").unwrap())
                .map_err(|e| e.to_string())?;
        let at = date.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
        if (jiff::Timestamp::now() - at).get_seconds().abs() > 300 {
            return Err("stale X-Amz-Date".into());
        }
        Ok(auth.access_key)
    }
}

fn private_home(s: &Scratch) -> String {
    let home = s.path("home");
    std::fs::create_dir_all(&home).unwrap();
    home.to_str().unwrap().to_string()
}

#[test]
fn sigv4_signed_polls_from_environment_keys_reach_amazon_managed_prometheus() {
    let s = Scratch::new();
    let keys = Arc::new(Mutex::new(vec![(
        "AKIDROLLWATCH".to_string(),
        "env-secret-key-123".to_string(),
        "env-session-token-456".to_string(),
    )]));
    let (url, seen) = guarded(0.9, 403, sigv4_check(keys, "eu-west-1"));
    let file = s.rules(&rules("0.5", "30s"));
    let home = private_home(&s);
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &format!("{url}/workspaces/ws-1234"),
            "--sigv4-region",
            "eu-west-1",
        ],
        &[
            ("HOME", &home),
            ("AWS_ACCESS_KEY_ID", "AKIDROLLWATCH"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret-key-123"),
            ("AWS_SESSION_TOKEN", "env-session-token-456"),
        ],
    );
    // The breach is only seen through signed, answered polls: it rolls back.
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    assert_eq!(s.lines("actions.log"), ["rollback"]);
    let seen = seen.lock().unwrap();
    assert!(seen.rejected.is_empty(), "{seen:?}");
    assert!(seen.accepted.len() >= 3, "{seen:?}");
    // Form POSTs (queries) and a GET (the scrape interval), all under the workspace.
    let r = &seen.requests;
    assert!(
        r.contains(&"POST /workspaces/ws-1234/api/v1/query".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"GET /workspaces/ws-1234/api/v1/status/config".to_string()),
        "{r:?}"
    );
    let log = w.dump();
    for secret in ["env-secret-key-123", "env-session-token-456"] {
        assert!(!log.contains(secret), "{secret} leaked:\n{log}");
    }
}

/// An STS stand-in: AssumeRoleWithWebIdentity for `role` with the web identity token
/// now in `token_file`, issuing keys (recorded in `keys`) that expire `life` from now.
fn sts(
    role: &'static str,
    token_file: &Path,
    life: Duration,
    keys: Arc<Mutex<Vec<(String, String, String)>>>,
    tokens_seen: Arc<Mutex<Vec<String>>>,
) -> String {
    let token_file = token_file.to_path_buf();
    serve(move |req| {
        let form: Vec<(String, String)> = req
            .body
            .split(|&b| b == b'&')
            .map(|kv| {
                let kv = String::from_utf8_lossy(kv).replace('+', " ");
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                let v = v.replace("%3A", ":").replace("%2F", "/");
                (k.to_string(), v)
            })
            .collect();
        let get = |k: &str| form.iter().find(|p| p.0 == k).map(|p| p.1.clone());
        let current = std::fs::read_to_string(&token_file).unwrap();
        if get("Action").as_deref() != Some("AssumeRoleWithWebIdentity")
            || get("RoleArn").as_deref() != Some(role)
            || get("WebIdentityToken").as_deref() != Some(current.trim())
        {
            return (
                400,
                "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>"
                    .into(),
            );
        }
        tokens_seen.lock().unwrap().push(current.trim().to_string());
        let mut keys = keys.lock().unwrap();
        let n = keys.len();
        let (id, secret, token) = (
            format!("ASIASTS{n}"),
            format!("sts-secret-{n}"),
            format!("sts-session-{n}"),
        );
        keys.push((id.clone(), secret.clone(), token.clone()));
        let exp = jiff::Timestamp::now() + jiff::SignedDuration::try_from(life).unwrap();
        let exp = exp.strftime("%Y-%m-%dT%H:%M:%SZ");
        (
            200,
            format!(
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{exp}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            ),
        )
    })
}

#[test]
fn sigv4_with_web_identity_fetches_credentials_from_sts_again_before_they_expire() {
    let s = Scratch::new();
    let token_file = s.path("eks-token");
    std::fs::write(&token_file, "web-identity-jwt-1\n").unwrap();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let tokens_seen = Arc::new(Mutex::new(Vec::new()));
    const ROLE: &str = "arn:aws:iam::123456789012:role/rollwatch";
    // Credentials that have 5 minutes and 3 seconds left: within rollwatch's
    // 5-minute margin 3 seconds later, so a watch of 12s fetches several.
    let sts_url = sts(
        ROLE,
        &token_file,
        Duration::from_secs(303),
        keys.clone(),
        tokens_seen.clone(),
    );
    let (url, seen) = guarded(0.1, 403, sigv4_check(keys.clone(), "us-east-1"));
    let file = s.rules(&rules("0.5", "12s"));
    let home = private_home(&s);
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &format!("{url}/workspaces/ws-1"),
            "--sigv4-region",
            "us-east-1",
        ],
        &[
            ("HOME", &home),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_ENDPOINT_URL_STS", &sts_url),
        ],
    );
    await_seen(&seen, Duration::from_secs(10), "a signed poll", |s| {
        !s.accepted.is_empty()
    });
    // The kubelet rotates the projected token: the next STS call sends the new one.
    std::fs::write(&token_file, "web-identity-jwt-2\n").unwrap();
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    let seen = seen.lock().unwrap();
    assert!(seen.rejected.is_empty(), "{seen:?}");
    let used: std::collections::BTreeSet<&String> = seen.accepted.iter().collect();
    assert!(used.len() >= 2, "credentials were not renewed: {seen:?}");
    let tokens = tokens_seen.lock().unwrap();
    assert!(
        tokens.contains(&"web-identity-jwt-2".to_string()),
        "{tokens:?}"
    );
    let log = w.dump();
    for secret in ["sts-secret-", "sts-session-", "web-identity-jwt"] {
        assert!(!log.contains(secret), "{secret} leaked:\n{log}");
    }
}

/// A Prometheus stand-in that accepts only `Authorization: Bearer <current>`, 401
/// otherwise; the test changes `current`.
fn bearer_only(value: f64) -> (String, Arc<Mutex<String>>, Arc<Mutex<Seen>>) {
    let current = Arc::new(Mutex::new(String::new()));
    let cur = current.clone();
    let (url, seen) = guarded(value, 401, move |req| {
        let want = format!("Bearer {}", cur.lock().unwrap());
        match req.header("authorization") {
            Some(got) if got == want => Ok(got.trim_start_matches("Bearer ").to_string()),
            Some(got) => Err(format!("stale {}", got.trim_start_matches("Bearer "))),
            None => Err("no token".into()),
        }
    });
    (url, current, seen)
}

/// Points `dir/token` at a new `..<name>/token` holding `token`, as the kubelet does:
/// the `..data` link is swapped by a rename, the old directory removed.
fn kubelet_swap(dir: &Path, name: &str, token: &str, old: Option<&str>) {
    let data = dir.join(format!("..{name}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("token"), token).unwrap();
    std::os::unix::fs::symlink(format!("..{name}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(format!("..{old}"))).unwrap();
    } else {
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
    }
}

#[test]
fn a_projected_token_swapped_during_a_watch_is_used_from_the_next_poll() {
    let s = Scratch::new();
    let dir = s.path("serviceaccount");
    std::fs::create_dir(&dir).unwrap();
    let (url, current, seen) = bearer_only(0.1);
    *current.lock().unwrap() = "sa-token-one".into();
    kubelet_swap(&dir, "2026_12_06_01", "sa-token-one\n", None);
    let file = s.rules(&rules("0.5", "15s"));
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &url,
            "--bearer-token-file",
            dir.join("token").to_str().unwrap(),
        ],
        &[],
    );
    await_seen(
        &seen,
        Duration::from_secs(10),
        "two polls with the first token",
        |s| s.accepted.iter().filter(|t| *t == "sa-token-one").count() >= 2,
    );
    // The server moves to the new token and the kubelet swaps the file.
    *current.lock().unwrap() = "sa-token-two".into();
    kubelet_swap(
        &dir,
        "2026_12_06_02",
        "sa-token-two\n",
        Some("2026_12_06_01"),
    );
    await_seen(
        &seen,
        Duration::from_secs(10),
        "two polls with the new token",
        |s| s.accepted.iter().filter(|t| *t == "sa-token-two").count() >= 2,
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    let log = w.dump();
    assert!(!log.contains("sa-token"), "a token leaked:\n{log}");
}

#[test]
fn a_token_command_runs_again_before_expiry_and_after_a_401() {
    let s = Scratch::new();
    let (url, current, seen) = bearer_only(0.1);
    *current.lock().unwrap() = "cmd-token-a".into();
    let issued = s.path("issued");
    std::fs::write(&issued, "cmd-token-a").unwrap();
    let runs = s.path("runs");
    let life = s.path("life");
    std::fs::write(&life, "2").unwrap();
    // Prints the token in `issued`, said to expire in `life` seconds (renewed at half
    // life), and logs each run with that life and its arguments; its stderr carries
    // a secret never to be logged.
    let script = s.path("token-cmd");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nl=$(cat {life})\necho \"run $l $# $2\" >> {runs}\necho stderr-secret >&2\nprintf '{{\"access_token\":\"%s\",\"expires_in\":%s}}' \"$(cat {issued})\" \"$l\"\n",
            runs = runs.display(),
            issued = issued.display(),
            life = life.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let file = s.rules(&rules("0.5", "20s"));
    let mut w = start_env(
        &[
            "watch",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &url,
            "--bearer-token-command",
            &format!("{} --flag 'two words'", script.display()),
        ],
        &[],
    );
    let runs_with = |life: &str| {
        s.lines("runs")
            .iter()
            .filter(|l| l.starts_with(&format!("run {life} ")))
            .count()
    };
    let await_runs = |life: &str, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs_with(life) < n {
            assert!(Instant::now() < deadline, "runs: {:?}", s.lines("runs"));
            thread::sleep(Duration::from_millis(50));
        }
    };
    // Run again before expiry, with no 401 to prompt it; its words given as argv.
    await_runs("2", 3);
    assert_eq!(s.lines("runs")[0], "run 2 2 two words");
    assert!(
        seen.lock().unwrap().rejected.is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    // Now a token for an hour. Once polls carry it, the server revokes it early: only
    // a 401 can make rollwatch run the command again.
    std::fs::write(&life, "3600").unwrap();
    await_runs("3600", 1);
    let accepted = seen.lock().unwrap().accepted.len();
    await_seen(&seen, Duration::from_secs(10), "two polls with it", |s| {
        s.accepted.len() >= accepted + 2
    });
    std::fs::write(&issued, "cmd-token-b").unwrap();
    *current.lock().unwrap() = "cmd-token-b".into();
    await_seen(
        &seen,
        Duration::from_secs(10),
        "a poll with the new token",
        |s| s.accepted.iter().any(|t| t == "cmd-token-b"),
    );
    assert_eq!(
        seen.lock().unwrap().rejected,
        ["stale cmd-token-a"],
        "exactly one 401, and the request sent again at once"
    );
    assert_eq!(runs_with("3600"), 2, "{:?}", s.lines("runs"));
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    let log = w.dump();
    for secret in ["cmd-token", "stderr-secret"] {
        assert!(!log.contains(secret), "{secret} leaked:\n{log}");
    }
}

#[test]
fn sigv4_keys_from_an_aws_profile_in_the_shared_files() {
    let s = Scratch::new();
    let home = private_home(&s);
    let aws = Path::new(&home).join(".aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret-789\n",
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        "[profile ci]\nregion = ap-south-1\naws_session_token = profile-session-012\n",
    )
    .unwrap();
    let keys = Arc::new(Mutex::new(vec![(
        "AKIDPROFILE".to_string(),
        "profile-secret-789".to_string(),
        "profile-session-012".to_string(),
    )]));
    let (url, seen) = guarded(0.1, 403, sigv4_check(keys, "ap-south-1"));
    let file = s.rules(&rules("0.5", "3s"));
    let mut w = start_env(
        &[
            "replay",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &url,
            "--from",
            "-10m",
            "--sigv4-region",
            "ap-south-1",
        ],
        &[("HOME", &home), ("AWS_PROFILE", "ci")],
    );
    let code = w.wait(Duration::from_secs(30));
    let seen = seen.lock().unwrap();
    assert!(seen.rejected.is_empty(), "{seen:?}\n{}", w.dump());
    assert!(!seen.accepted.is_empty(), "{seen:?}\n{}", w.dump());
    assert!(seen.accepted.iter().all(|k| k == "AKIDPROFILE"), "{seen:?}");
    // The replay judged the answered history: nothing would have fired.
    assert_eq!(code, 0, "{}", w.dump());
    let log = w.dump();
    for secret in ["profile-secret-789", "profile-session-012"] {
        assert!(!log.contains(secret), "{secret} leaked:\n{log}");
    }
}
