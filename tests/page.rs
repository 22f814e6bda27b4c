//! The agent's page (`serve`'s `/`, `/watches/{id}`): the real binary against the real
//! Prometheus, looked at in headless Chromium (DOM and screenshot), and its access
//! rules over raw HTTP.

use crate::harness::agent::{pending, rules, set, Agent, ROLLBACK};
use crate::harness::rule_file::{rule_file, SERIES_OF_VAR};
use crate::harness::Scratch;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// One raw HTTP/1.1 request: (status, headers, body).
fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| rollwatch::io::action::find_program(c).is_some())
        .expect("chromium is required for this test (.ci/run installs Debian's `chromium`)")
}

/// Headless Chromium on `url` with a scratch profile, every host name but the agent's
/// unresolvable, and a net log of every request it made.
fn browse(s: &Scratch, name: &str, url: &str, args: &[&str]) -> Output {
    let profile = s.path(&format!("chromium-{name}"));
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-features=MediaRouter,OptimizationHints,Translate",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--log-net-log={}",
            s.path(&format!("{name}.netlog.json")).display()
        ))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium")
}

/// Every request a Chromium net log shows started: (URL's host, initiator). The
/// browser's own background requests (update checks, ...) have the initiator
/// `not an origin`; a page's requests (its style, script and fetches) have the page's
/// origin.
fn requests_in_netlog(path: &Path) -> Vec<(String, String)> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or_default();
    let Some(start) = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"].as_u64() == Some(start))
        .filter_map(|e| {
            let url = e["params"]["url"].as_str()?;
            let host = url.split("://").nth(1)?.split('/').next()?.to_string();
            let initiator = e["params"]["initiator"].as_str().unwrap_or("").to_string();
            Some((host, initiator))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_page_shows_a_pending_rule_then_the_rollback_without_a_reload_in_chromium() {
    let (test, live) = ("page-pending", "page-live");
    set(test, 0.1);
    set(live, 0.1);
    let a = Agent::new(None);
    let rollback = ROLLBACK.replace(
        "sh\", \"-c\", \"",
        "sh\", \"-c\", \"echo rolled back checkout; ",
    );
    // `page-1` stays pending (for: 10m) for the DOM and the screenshot; `page-2`
    // breaches when its page is opened and rolls back 15s later, time enough for the
    // browser to load the page first however busy the machine is.
    a.rule_file("slow", &rules("    above: 0.5\n    for: 10m", &rollback));
    a.rule_file(
        "checkout",
        &rules("    above: 0.5\n    for: 15s", &rollback),
    );
    let (status, w) =
        a.post(json!({"rules": "slow", "vars": {"test": test}, "id": "page-1", "duration": "10m"}));
    assert_eq!(status, 201, "{w}");
    let (status, w) = a.post(
        json!({"rules": "checkout", "vars": {"test": live}, "id": "page-2", "duration": "10m"}),
    );
    assert_eq!(status, 201, "{w}");
    a.await_watch("page-2", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    a.await_watch("page-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    set(test, 0.9);
    a.await_watch("page-1", Duration::from_secs(10), pending);
    let s = Scratch::new();
    let url = format!("http://{}/watches/page-1", a.addr);

    // The page of a running watch with a pending rule: DOM and a screenshot.
    let out = browse(&s, "pending", &url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("class=\"badge warn pending\"") && dom.contains("r: pending"),
        "a pending rule with its timer: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("class=\"badge info running\"") && dom.contains("left"));
    assert!(
        dom.contains("<svg") && dom.contains("class=\"values\""),
        "{dom}"
    );
    assert!(dom.contains("class=\"span-pending\""), "{dom}");
    assert!(!dom.contains("rolled_back"), "not yet: {dom}");
    let shot = s.path("pending.png");
    let out = browse(
        &s,
        "shot",
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1300",
        ],
    );
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("ROLLWATCH_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    // Loaded while pending, the page shows the rollback when it happens: the script
    // swaps in new fragments (virtual time runs its timers; it stops once the watch
    // is final, and each long poll holds real time until the agent has news).
    set(live, 0.9);
    a.await_watch("page-2", Duration::from_secs(10), pending);
    let url = format!("http://{}/watches/page-2", a.addr);
    let out = browse(
        &s,
        "live",
        &url,
        &["--virtual-time-budget=120000", "--dump-dom"],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let w = a.await_finished("page-2", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert!(
        dom.contains("rolled_back") && dom.contains("class=\"action-row\""),
        "the rollback without a reload: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-swaps=\""),
        "swapped in by the script: {dom}"
    );
    assert!(
        dom.contains("class=\"action\""),
        "the action marked on the chart"
    );
    assert!(
        dom.contains("ev-fired") && dom.contains("ev-action_finished"),
        "{dom}"
    );
    assert!(
        dom.contains("rolled back checkout"),
        "the command's output: {dom}"
    );

    // The page made requests to the agent only (its style, script and long polls);
    // the browser's own background requests (initiator `not an origin`) could not
    // resolve any host but 127.0.0.1 anyway.
    let origin = format!("http://{}", a.addr);
    for name in ["pending", "shot", "live"] {
        let reqs = requests_in_netlog(&s.path(&format!("{name}.netlog.json")));
        let from_page: Vec<_> = reqs.iter().filter(|(_, i)| *i == origin).collect();
        assert!(
            !from_page.is_empty(),
            "{name}: the page's own requests are in the net log: {reqs:?}"
        );
        assert!(
            reqs.iter()
                .all(|(h, i)| *h == a.addr || i == "not an origin"),
            "{name}: a request from the page to another host: {reqs:?}"
        );
    }
}

#[test]
fn the_page_needs_the_token_and_cancels_only_from_its_own_form() {
    let test = "page-auth";
    set(test, 0.1);
    let token = "page-s3cret";
    let a = Agent::new(Some(token));
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    assert_eq!(
        a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "auth-1"}))
            .0,
        201
    );
    let html = [("Accept", "text/html")];

    // No token: a browser goes to the login page; a script gets 401; no data either way.
    for path in ["/", "/watches/auth-1", "/watches/auth-1/report.html"] {
        let (status, head, body) = raw(&a.addr, "GET", path, &html, "");
        assert_eq!(status, 303, "{path}: {head}");
        assert!(
            header(&head, "location").is_some_and(|l| l.starts_with("/login?next=/")),
            "{head}"
        );
        assert!(!body.contains("auth-1"));
    }
    for path in [
        "/",
        "/live/watches",
        "/live/watches/auth-1",
        "/watches/auth-1",
    ] {
        let (status, _, body) = raw(&a.addr, "GET", path, &[], "");
        assert_eq!(status, 401, "{path}");
        assert!(!body.contains("auth-1") && !body.contains(test), "{body}");
    }
    let wrong = "Bearer nope".to_string();
    let (status, _, _) = raw(&a.addr, "GET", "/", &[("Authorization", &wrong)], "");
    assert_eq!(status, 401);
    // Scripts: the API's bearer token.
    let bearer = format!("Bearer {token}");
    let (status, head, body) = raw(&a.addr, "GET", "/", &[("Authorization", &bearer)], "");
    assert_eq!(status, 200);
    assert!(body.contains("auth-1"), "{body}");
    let csp = header(&head, "content-security-policy").unwrap_or("");
    assert!(csp.starts_with("default-src 'self'"), "{head}");

    // Log in: a wrong token or a form from another site is refused.
    let origin = format!("http://{}", a.addr);
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];
    let (status, head, _) = raw(&a.addr, "POST", "/login", &form, "token=nope&next=%2F");
    assert_eq!(status, 401);
    assert!(header(&head, "set-cookie").is_none());
    let evil = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", "http://evil.example"),
    ];
    let body = format!("token={token}&next=%2Fwatches%2Fauth-1");
    let (status, _, _) = raw(&a.addr, "POST", "/login", &evil, &body);
    assert_eq!(status, 403);
    let (status, head, _) = raw(&a.addr, "POST", "/login", &form, &body);
    assert_eq!(status, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/watches/auth-1"));
    let set_cookie = header(&head, "set-cookie").expect("a cookie").to_string();
    for attr in ["httponly", "samesite=strict", "path=/"] {
        assert!(
            set_cookie.to_ascii_lowercase().contains(attr),
            "{set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains(token),
        "the cookie is not the token in clear"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let with_cookie = [("Accept", "text/html"), ("Cookie", cookie.as_str())];
    let (status, _, body) = raw(&a.addr, "GET", "/watches/auth-1", &with_cookie, "");
    assert_eq!(status, 200);
    assert!(body.contains("cancel this watch"), "{body}");

    // Cancel: a confirmation page, then its form; without the form's token or from
    // another origin it is refused and the watch goes on.
    let (status, _, confirm) = raw(&a.addr, "GET", "/watches/auth-1/cancel", &with_cookie, "");
    assert_eq!(status, 200);
    assert!(confirm.contains("Yes, cancel the watch"), "{confirm}");
    let csrf = confirm
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .expect("the form's token")
        .to_string();
    let post = |origin: &str, body: &str| {
        raw(
            &a.addr,
            "POST",
            "/watches/auth-1/cancel",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", cookie.as_str()),
                ("Origin", origin),
            ],
            body,
        )
        .0
    };
    assert_eq!(post(&origin, "csrf=wrong"), 403);
    assert_eq!(post("http://evil.example", &format!("csrf={csrf}")), 403);
    let (_, w) = a.req("GET", "/api/v1/watches/auth-1", None);
    assert_eq!(w["state"], "running", "{w}");
    assert_eq!(post(&origin, &format!("csrf={csrf}")), 303);
    let w = a.await_finished("auth-1", Duration::from_secs(10));
    assert_eq!(w["state"], "cancelled", "{w}");
    assert_eq!(
        post(&origin, &format!("csrf={csrf}")),
        409,
        "the API's check"
    );

    // In a browser, no token means the login page.
    let s = Scratch::new();
    let out = browse(&s, "login", &format!("http://{}/", a.addr), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("name=\"token\"") && dom.contains("Log in"),
        "{dom}"
    );
    assert!(!dom.contains("auth-1"), "{dom}");
}

/// The list row of a watch in `dom` (Chromium's serialized DOM or the raw HTML).
fn list_row<'a>(dom: &'a str, id: &str) -> &'a str {
    dom.split("<tr ")
        .find(|r| r.contains(&format!(">{id}</a>")))
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row of {id} in the list: {dom}"))
}

#[test]
fn the_list_shows_an_ended_watchs_vars_in_force_rules_last_states_and_severity_in_chromium() {
    let (bad, good) = ("page-defaults", "page-defaults-ok");
    set(bad, 0.9);
    set(good, 0.1);
    let a = Agent::new(None);
    // Every var from the rule file's defaults unless the watch gives it; `note` has
    // what an HTML page must escape.
    a.rule_file(
        "defaults",
        &rule_file()
            .var("test", bad)
            .var("note", r#"'<script>alert(1)</script>"x'"#)
            .watch("  duration: 60s\n  interval: 1s")
            .rollback_raw(ROLLBACK)
            .rule("r", Some(SERIES_OF_VAR), "    above: 0.5\n    for: 2s")
            .rule("calm", Some(SERIES_OF_VAR), "    above: 100\n    for: 2s")
            .build(),
    );
    let (status, w) = a.post(json!({"rules": "defaults", "id": "def-rb"}));
    assert_eq!(status, 201, "{w}");
    let (status, w) = a.post(
        json!({"rules": "defaults", "vars": {"test": good}, "id": "def-ok", "duration": "3s"}),
    );
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished("def-rb", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    let w = a.await_finished("def-ok", Duration::from_secs(30));
    assert_eq!(w["outcome"], "healthy", "{w}\n{}", a.dump());

    // The HTML as sent: the default's value escaped, in the text and the title.
    let (status, _, html) = raw(&a.addr, "GET", "/", &[], "");
    assert_eq!(status, 200);
    let row = list_row(&html, "def-rb");
    assert!(
        row.contains("note=&lt;script&gt;alert(1)&lt;/script&gt;&quot;x"),
        "{row}"
    );
    assert!(!html.contains("<script>alert"), "{html}");

    // As Chromium shows it.
    let s = Scratch::new();
    let out = browse(&s, "list", &format!("http://{}/", a.addr), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    let rb = list_row(&dom, "def-rb");
    // The vars in force, those from the defaults marked so.
    assert!(
        rb.contains(&format!("test={bad}")) && rb.contains("class=\"var default\""),
        "the vars from the rule file's defaults: {rb}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rb.contains("note=&lt;script&gt;alert(1)&lt;/script&gt;\"x"),
        "{rb}"
    );
    assert!(!dom.contains("<script>alert"), "{dom}");
    // Each rule's last state once the watch ended.
    assert!(
        rb.contains("class=\"badge bad fired\"") && rb.contains("r: fired"),
        "{rb}"
    );
    assert!(
        rb.contains("class=\"badge good ok\"") && rb.contains("calm: ok"),
        "{rb}"
    );
    // rolled_back is red and says so without colour; healthy is green.
    assert!(
        rb.contains("class=\"badge bad outcome\"") && rb.contains("✖</span>rolled_back"),
        "{rb}"
    );
    let ok = list_row(&dom, "def-ok");
    assert!(
        ok.contains("class=\"badge good outcome\"") && ok.contains("✔</span>healthy"),
        "{ok}"
    );
    assert!(
        ok.contains(&format!("<span class=\"var\">test={good}</span>")),
        "{ok}"
    );

    if let Ok(keep) = std::env::var("ROLLWATCH_KEEP_LIST_SCREENSHOT") {
        let shot = s.path("list.png");
        browse(
            &s,
            "list-shot",
            &format!("http://{}/", a.addr),
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1100,500",
            ],
        );
        std::fs::copy(&shot, keep).unwrap();
    }

    // After a restart the board is empty: the vars come from the watch's rule
    // snapshot, and the rules' states from what the store keeps of an ended watch
    // (its actions and breaches; its polls are gone).
    let mut a = a;
    a.kill9();
    a.start();
    let (status, _, html) = raw(&a.addr, "GET", "/", &[], "");
    assert_eq!(status, 200);
    let rb = list_row(&html, "def-rb");
    assert!(
        rb.contains(&format!(
            r#"<i class="var default" title="the rule file's default">test={bad}</i>"#
        )) && rb.contains("note=&lt;script&gt;alert(1)&lt;/script&gt;&quot;x"),
        "{rb}"
    );
    assert!(
        rb.contains("r: fired") && rb.contains("calm: no breach recorded"),
        "{rb}"
    );
    assert!(rb.contains("class=\"badge bad outcome\""), "{rb}");
}

#[test]
fn orders_from_the_page_go_through_a_confirmation_and_are_recorded_as_the_logged_in_name() {
    let test = "page-orders";
    set(test, 0.1);
    let mut a = Agent::new(Some("alice:alice-page-token\nbob:bob-page-token"));
    a.token = Some("alice-page-token".into());
    a.rule_file("checkout", &rules("    above: 0.5\n    for: 30s", ROLLBACK));
    let (status, w) = a.post(json!({"rules": "checkout", "vars": {"test": test}, "id": "po-1"}));
    assert_eq!(status, 201, "{w}");
    let origin = format!("http://{}", a.addr);
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];
    let (status, head, _) = raw(
        &a.addr,
        "POST",
        "/login",
        &form,
        "token=alice-page-token&next=%2F",
    );
    assert_eq!(status, 303, "{head}");
    let cookie = header(&head, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let with_cookie = [("Accept", "text/html"), ("Cookie", cookie.as_str())];
    let (_, _, page) = raw(&a.addr, "GET", "/watches/po-1", &with_cookie, "");
    assert!(
        page.contains("/watches/po-1/order/rollback") && page.contains("hold…"),
        "{page}"
    );
    let (status, _, confirm) = raw(&a.addr, "GET", "/watches/po-1/order/hold", &with_cookie, "");
    assert_eq!(status, 200, "{confirm}");
    assert!(
        confirm.contains("Recorded as <strong>alice</strong>"),
        "{confirm}"
    );
    let csrf = confirm
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .expect("the form's token")
        .to_string();
    let post = |origin: &str, order: &str, body: &str| {
        raw(
            &a.addr,
            "POST",
            &format!("/watches/po-1/order/{order}"),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", cookie.as_str()),
                ("Origin", origin),
            ],
            body,
        )
    };
    let hold = format!(
        "csrf={csrf}&for=10m&reason=DB+failover+%3Cscript%3Ealert(1)%3C%2Fscript%3E&by=mallory"
    );
    assert_eq!(post("http://evil.example", "hold", &hold).0, 403);
    assert_eq!(post(&origin, "hold", "csrf=wrong&for=10m&reason=x").0, 403);
    let (status, _, body) = post(&origin, "hold", &format!("csrf={csrf}&for=10m&reason=+"));
    assert_eq!(status, 400, "a reason is required: {body}");
    assert!(
        a.req("GET", "/api/v1/watches/po-1/orders", None).1["orders"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, head, _) = post(&origin, "hold", &hold);
    assert_eq!(status, 303, "{head}");
    let (_, list) = a.req("GET", "/api/v1/watches/po-1/orders", None);
    let o = &list["orders"][0];
    assert_eq!(
        (o["order"].as_str(), o["by"].as_str(), o["state"].as_str()),
        (Some("hold"), Some("alice"), Some("done")),
        "{list}"
    );
    let (_, _, page) = raw(&a.addr, "GET", "/watches/po-1", &with_cookie, "");
    assert!(
        page.contains("alice held automatic actions until"),
        "the timeline: {page}"
    );
    let (status, _, _) = post(
        &origin,
        "end",
        &format!("csrf={csrf}&reason=checked+by+hand"),
    );
    assert_eq!(status, 303);
    let w = a.await_finished("po-1", Duration::from_secs(10));
    assert_eq!(w["outcome"], "declared_healthy", "{w}");
}
