//! SLO burn-rate rules (issue 24) with the real binary against the real Prometheus:
//! a release that burns its error budget fast rolls back; one within budget does not,
//! whatever a short burst of errors does to its short window alone.
//!
//! The exporter serves two counters the test drives (requests and errors, 100 per
//! second) from a thread; the rule's windows are seconds long so that a watch lasts
//! seconds: one pair, 20s and 5s, at a burn rate of 10 against an objective of 99%
//! (more than 10% of requests failing in both windows).

use crate::harness::rule_file::{logged_actions, rule_file};
use crate::harness::{prometheus, start, Running, Scratch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The two counters of one test, raised every 100ms: 10 requests, `ratio` of them
/// failed (in millionths, so that a test may change it), plus any burst added.
struct Traffic {
    ratio_ppm: Arc<AtomicU64>,
    burst: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

fn series(test: &str, kind: &str) -> String {
    format!("rw_value{{test=\"{test}\",kind=\"{kind}\"}}")
}

impl Traffic {
    fn start(test: &str, ratio: f64) -> Traffic {
        let t = Traffic {
            ratio_ppm: Arc::new(AtomicU64::new((ratio * 1e6) as u64)),
            burst: Arc::default(),
            stop: Arc::default(),
        };
        let (ratio_ppm, burst, stop) = (t.ratio_ppm.clone(), t.burst.clone(), t.stop.clone());
        let (errors, total) = (series(test, "errors"), series(test, "total"));
        std::thread::spawn(move || {
            let (mut e, mut n) = (0.0, 0.0);
            while !stop.load(Ordering::Relaxed) {
                n += 10.0;
                e += 10.0 * ratio_ppm.load(Ordering::Relaxed) as f64 / 1e6;
                e += burst.swap(0, Ordering::Relaxed) as f64;
                prometheus().exporter.set(&errors, e);
                prometheus().exporter.set(&total, n);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // Prometheus has the counters, rising.
        let q = format!("rate({}[3s])", series(test, "total"));
        prometheus().await_value(&q, |v| v.is_some_and(|v| v > 50.0));
        t
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn watch(s: &Scratch, test: &str, duration: &str) -> Running {
    let file = rules(s, test, duration);
    start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
        "--report",
        s.path("report").to_str().unwrap(),
    ])
}

fn rules(s: &Scratch, test: &str, duration: &str) -> std::path::PathBuf {
    let slo = format!(
        "    slo:\n      objective: 99%\n      errors: sum(rate({}[${{window}}]))\n      total: sum(rate({}[${{window}}]))\n      windows: [{{long: 20s, short: 5s, burn: 10}}]\n    for: 3s\n    interval: 1s",
        series(test, "errors"),
        series(test, "total")
    );
    s.rules(
        &rule_file()
            .watch(&format!(
                "  duration: {duration}\n  interval: 1s\n  step: 1s"
            ))
            .rollback(
                "echo rollback $ROLLWATCH_RULE $(date +%s%3N) >> @DIR@/actions.log",
                Some("30s"),
            )
            .rule("budget", None, &slo)
            .build(),
    )
}

/// `burn_<window>=` in an event's evidence.
fn burn(e: &serde_json::Value, window: &str) -> Option<f64> {
    let text = e["evidence"].as_str()?;
    let key = format!("burn_{window}=");
    let at = text.find(&key)? + key.len();
    text[at..].split_whitespace().next()?.parse().ok()
}

#[test]
fn a_release_burning_its_budget_rolls_back_once() {
    let test = "slo-burning";
    // Half the requests fail: a burn rate of 50 in every window.
    let _traffic = Traffic::start(test, 0.5);
    let s = Scratch::new();
    let began = crate::harness::now_ms() / 1000;
    let mut w = watch(&s, test, "40s");
    let fired = w.await_event_where("fired", Duration::from_secs(30), |e| e["rule"] == "budget");
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    let actions = logged_actions(&s);
    assert_eq!(actions.len(), 1, "exactly one rollback: {actions:?}");
    assert_eq!(actions[0].1, "budget");
    // The evidence is each window's burn rate (about 50), and the budget spent.
    for window in ["20s", "5s"] {
        let b = burn(&fired, window);
        assert!(b.is_some_and(|b| b > 30.0 && b < 70.0), "{window}: {fired}");
    }
    assert!(
        fired["evidence"]
            .as_str()
            .is_some_and(|t| t.contains("budget_spent=")),
        "{fired}"
    );
    // The report shows them as it shows any evidence.
    let md = std::fs::read_to_string(s.path("report").join("report.md")).unwrap();
    assert!(md.contains("burn_20s=") && md.contains("burn_5s="), "{md}");
    // So does a replay of the same time, which reads each poll the same way.
    let file = rules(&s, test, "40s");
    let (code, out, err) = crate::harness::run(&[
        "replay",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
        "--from",
        &began.to_string(),
        "--to",
        &(began + 20).to_string(),
    ]);
    assert_eq!(code, 1, "the replay rolls back too:\n{out}\n{err}");
    assert!(
        out.contains("burn_20s=") && out.contains("burn_5s="),
        "{out}\n{err}"
    );
    // And `gate`, asked while it still burns, blocks with the same reading.
    let cal = s.path("open.yaml");
    std::fs::write(&cal, "timezone: UTC\nfreezes: []\n").unwrap();
    let (code, out, err) = crate::harness::run(&[
        "gate",
        "--calendar",
        cal.to_str().unwrap(),
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prometheus().url,
    ]);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        out.contains("breached when burn > 10 over 20s and 5s") && out.contains("burn_5s="),
        "{out}\n{err}"
    );
}

#[test]
fn a_release_within_budget_does_not_roll_back_through_a_short_burst() {
    let test = "slo-steady";
    // 0.5% of requests fail: a burn rate of 0.5, half the budget's pace.
    let traffic = Traffic::start(test, 0.005);
    let s = Scratch::new();
    let mut w = watch(&s, test, "30s");
    // Once the long window is 15s long (elapsed), a burst of 80 errors: 16% of the
    // 5s window's 500 requests (a burn of 16 there), about 5% of the long window's.
    // Polls are at start + k × 1s: the 16th is 15s in.
    for _ in 0..16 {
        w.await_event_where("poll", Duration::from_secs(10), |e| e["rule"] == "budget");
    }
    traffic.burst.store(80, Ordering::Relaxed);
    assert_eq!(w.wait(Duration::from_secs(40)), 0, "{}", w.dump());
    assert!(logged_actions(&s).is_empty(), "{:?}", logged_actions(&s));
    assert!(w.events("fired").is_empty(), "{}", w.dump());
    let polls: Vec<serde_json::Value> = w
        .events("poll")
        .into_iter()
        .filter(|e| e["rule"] == "budget")
        .collect();
    // The short window alone saw the burst above its rate; the long one never did.
    let short = polls
        .iter()
        .filter_map(|e| burn(e, "5s"))
        .fold(0.0, f64::max);
    let long = polls
        .iter()
        .filter_map(|e| burn(e, "20s"))
        .fold(0.0, f64::max);
    assert!(short > 10.0, "the burst was seen: {short}\n{}", w.dump());
    assert!(long < 10.0, "{long}\n{}", w.dump());
}

/// Sloth's public examples (`tests/fixtures/sloth/`, source named there): what
/// `rollwatch import` makes of each spec selects, at every window, the same data as
/// Sloth's recording rule of that window, and judges as Sloth's page alert does, over
/// one backfilled history in a real Prometheus; its windows and burn rates are the
/// page alert's.
mod sloth {
    use crate::harness::{backfilled_prometheus, http_get, repo_path, run, urlencode};
    use rollwatch::core::eval::slo::{view, window_label, WINDOW_LABEL};
    use rollwatch::core::eval::{Labels, Poll, Sample};
    use rollwatch::core::rules::{load_str, Clock, LoadOptions, Rule};
    use rollwatch::core::yaml::{parse_all, Node, Value};
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    const EXAMPLES: &[&str] = &[
        "getting-started",
        "home-wifi",
        "kubernetes-apiserver",
        "multifile",
        "openslo-getting-started",
    ];
    const STEP: i64 = 30;
    const SPAN: i64 = 9 * 3600;

    /// Requests per second of one series at `t` seconds after the base: steady, with
    /// bursts of failures (the one at 6h breaches the page pairs, the one at 8h only
    /// the short windows).
    fn rates(t: i64) -> (f64, f64, f64) {
        let wave = 100.0 + 30.0 * (t as f64 / 1800.0).sin();
        let burst = |from: i64, to: i64, r: f64| if (from..to).contains(&t) { r } else { 0.0 };
        let errors =
            0.1 + burst(6 * 3600, 6 * 3600 + 1200, 20.0) + burst(8 * 3600, 8 * 3600 + 120, 30.0);
        let throttled = 0.05 + burst(7 * 3600, 7 * 3600 + 600, 4.0);
        (wave, errors, throttled)
    }

    /// The history every example's queries read: HTTP and apiserver counters, request
    /// latency buckets, and wifi clients' satisfaction.
    fn history(base: i64) -> String {
        let mut om = String::new();
        let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        let (mut ok, mut err, mut thr, mut slow, mut watch) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut t = 0;
        while t <= SPAN {
            let (total, e, th) = rates(t);
            let dt = STEP as f64;
            ok += (total - e - th) * dt;
            err += e * dt;
            thr += th * dt;
            slow += (0.02 * total + 3.0 * e) * dt;
            watch += 5.0 * dt;
            let mut put = |name: &str, v: f64| {
                series
                    .entry(name.to_string())
                    .or_default()
                    .push((base + t, v))
            };
            for job in [
                "http_request_duration_seconds_count{job=\"myservice\",",
                "apiserver_request_total{",
            ] {
                put(&format!("{job}code=\"200\"}}"), ok);
                put(&format!("{job}code=\"500\"}}"), err);
                put(&format!("{job}code=\"429\"}}"), thr);
            }
            let all = ok + err + thr;
            put(
                "apiserver_request_duration_seconds_count{verb=\"GET\"}",
                all,
            );
            put(
                "apiserver_request_duration_seconds_bucket{le=\"0.4\",verb=\"GET\"}",
                all - slow,
            );
            put(
                "apiserver_request_duration_seconds_count{verb=\"WATCH\"}",
                watch,
            );
            put(
                "apiserver_request_duration_seconds_bucket{le=\"0.4\",verb=\"WATCH\"}",
                0.0,
            );
            for c in 0..6 {
                let phase = (t as f64 / 900.0 + c as f64).sin();
                let v = if (6 * 3600..6 * 3600 + 1800).contains(&t) {
                    0.3 + 0.1 * phase
                } else {
                    0.8 + 0.2 * phase
                };
                put(
                    &format!("unifipoller_client_satisfaction_ratio{{client=\"c{c}\"}}"),
                    v,
                );
            }
            t += STEP;
        }
        let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, points) in &series {
            let family = name.split('{').next().unwrap().to_string();
            let lines = families.entry(family).or_default();
            for (ts, v) in points {
                lines.push(format!("{name} {v} {ts}"));
            }
        }
        for (family, lines) in families {
            writeln!(om, "# TYPE {family} gauge").unwrap();
            for l in lines {
                writeln!(om, "{l}").unwrap();
            }
        }
        om.push_str("# EOF\n");
        om
    }

    /// An instant query's result: each series' labels and value.
    fn query(addr: &str, q: &str, at: i64) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!("/api/v1/query?time={at}&query={}", urlencode(q));
        let (status, body) = http_get(addr, &path).expect("Prometheus answers");
        assert_eq!(status, 200, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = serde_json::from_value(s["metric"].clone()).unwrap();
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    fn get<'n>(n: &'n Node, key: &str) -> Option<&'n Node> {
        match &n.value {
            Value::Map(e) => e
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn items(n: Option<&Node>) -> &[Node] {
        match n.map(|n| &n.value) {
            Some(Value::Seq(v)) => v,
            _ => &[],
        }
    }

    /// Sloth's generated rules for one example: per SLO (in the spec's order), its
    /// recording expression of each window, and its page alert's pairs as
    /// (long, short, burn factor, error budget).
    struct Generated {
        recordings: BTreeMap<String, String>,
        page: Vec<(String, String, f64, f64)>,
    }

    fn generated(example: &str) -> Vec<Generated> {
        let text = std::fs::read_to_string(repo_path(&format!(
            "tests/fixtures/sloth/_gen/{example}.yml"
        )))
        .unwrap();
        let mut ids: Vec<String> = Vec::new();
        let mut out: BTreeMap<String, Generated> = BTreeMap::new();
        let pair =
            regex::Regex::new(r"ratio_rate(\w+)\{[^}]*\} > \(([0-9.eE+-]+) \* ([0-9.eE+-]+)\)")
                .unwrap();
        for doc in parse_all(&text).unwrap() {
            for group in items(get(&doc, "groups")) {
                for rule in items(get(group, "rules")) {
                    let text = |n: Option<&Node>| n.and_then(Node::scalar_text).unwrap_or_default();
                    let labels = get(rule, "labels");
                    let id = text(labels.and_then(|l| get(l, "sloth_id")));
                    let expr = text(get(rule, "expr"));
                    let record = text(get(rule, "record"));
                    if let Some(w) = record.strip_prefix("slo:sli_error:ratio_rate") {
                        if !ids.contains(&id) {
                            ids.push(id.clone());
                        }
                        let g = out.entry(id).or_insert(Generated {
                            recordings: BTreeMap::new(),
                            page: Vec::new(),
                        });
                        g.recordings.insert(w.to_string(), expr);
                    } else if text(labels.and_then(|l| get(l, "sloth_severity"))) == "page" {
                        let id = ids
                            .iter()
                            .find(|id| expr.contains(&format!("sloth_id=\"{id}\"")))
                            .unwrap()
                            .clone();
                        let found: Vec<(String, f64, f64)> = pair
                            .captures_iter(&expr)
                            .map(|c| {
                                (
                                    c[1].to_string(),
                                    c[2].parse().unwrap(),
                                    c[3].parse().unwrap(),
                                )
                            })
                            .collect();
                        // Sloth writes each pair short window first.
                        for p in found.chunks(2) {
                            out.get_mut(&id).unwrap().page.push((
                                p[1].0.clone(),
                                p[0].0.clone(),
                                p[0].1,
                                p[0].2,
                            ));
                        }
                    }
                }
            }
        }
        ids.into_iter().map(|id| out.remove(&id).unwrap()).collect()
    }

    fn imported(example: &str) -> Vec<Rule> {
        let path = repo_path(&format!("tests/fixtures/sloth/{example}.yml"));
        let (code, stdout, stderr) = run(&["import", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{example}: {stderr}");
        let opts = LoadOptions {
            sets: &[],
            check: false,
            outside: None,
        };
        load_str("imported.yaml", &stdout, &opts).unwrap().0.rules
    }

    #[test]
    fn imported_sloth_examples_select_the_same_data_and_judge_as_sloths_page_alerts() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let base = (now - SPAN - 600) / 60 * 60;
        let dir = tempfile::tempdir().unwrap();
        let url = backfilled_prometheus(dir.path(), &history(base));
        let addr = url.trim_start_matches("http://");
        // In the 6h burst, after it, in the 7h throttling, in the short 8h burst.
        let instants = [
            6 * 3600 + 600,
            6 * 3600 + 1500,
            7 * 3600 + 300,
            8 * 3600 + 60,
            8 * 3600 + 1800,
        ];
        let mut compared = 0;
        let mut breached = 0;
        let mut judged = 0;
        for example in EXAMPLES {
            let rules = imported(example);
            let sloth = generated(example);
            assert_eq!(rules.len(), sloth.len(), "{example}: one rule per SLO");
            for (rule, g) in rules.iter().zip(&sloth) {
                let slo = rule.judging.slo.expect("an slo rule");
                // Sloth writes no alerts for an OpenSLO spec; that example is
                // getting-started's SLO, whose page alert is the reference.
                let page = if g.page.is_empty() {
                    assert!(example.starts_with("openslo"), "{example}: no page alert");
                    generated("getting-started").remove(0).page
                } else {
                    g.page.clone()
                };
                // The windows and burn rates are the page alert's.
                let mine: Vec<(String, String, f64)> = slo
                    .pairs()
                    .iter()
                    .map(|p| (window_label(p.long), window_label(p.short), p.burn))
                    .collect();
                let theirs: Vec<(String, String, f64)> = page
                    .iter()
                    .map(|(l, s, b, _)| (l.clone(), s.clone(), *b))
                    .collect();
                assert_eq!(mine, theirs, "{example} {}", rule.name);
                for (_, _, _, budget) in &page {
                    assert!(
                        (slo.budget() - budget).abs() < 1e-12,
                        "{example}: budget {} vs {budget}",
                        slo.budget()
                    );
                }
                for offset in instants {
                    let at = base + offset;
                    let clock = Clock {
                        start_ms: (at - 7 * 86_400) * 1000,
                        at_ms: at * 1000,
                    };
                    let answer = query(addr, &rule.query.at(clock), at);
                    let mut samples = Vec::new();
                    let mut sloth_breach = false;
                    for w in slo.windows().into_iter().map(window_label) {
                        let theirs = query(addr, &g.recordings[&w], at);
                        let mine: Vec<f64> = answer
                            .iter()
                            .filter(|(l, _)| l.get(WINDOW_LABEL) == Some(&w))
                            .map(|(_, v)| *v)
                            .collect();
                        assert_eq!(theirs.len(), 1, "{example} {w}: {theirs:?}");
                        assert_eq!(mine.len(), 1, "{example} {w}: {answer:?}");
                        let (a, b) = (mine[0], theirs[0].1);
                        assert!(
                            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12),
                            "{example} {} {w} at +{offset}s: rollwatch {a}, Sloth {b}",
                            rule.name
                        );
                        compared += 1;
                        samples.push((w, b));
                    }
                    for (long, short, burn, budget) in &page {
                        let ratio = |w: &str| samples.iter().find(|(x, _)| x == w).unwrap().1;
                        sloth_breach |= ratio(long) > burn * budget && ratio(short) > burn * budget;
                    }
                    // rollwatch's judgement of its own answer is Sloth's page alert's.
                    let poll = Poll::Samples(
                        answer
                            .iter()
                            .map(|(l, v)| Sample {
                                labels: l.clone().into_iter().collect::<Labels>(),
                                value: *v,
                            })
                            .collect(),
                    );
                    let (seen, _) = view(Some(&slo), &poll);
                    let Poll::Samples(seen) = seen.as_ref() else {
                        panic!()
                    };
                    let mine = seen.iter().any(|s| rule.threshold.breached(s.value));
                    assert_eq!(
                        mine, sloth_breach,
                        "{example} {} at +{offset}s: {seen:?}",
                        rule.name
                    );
                    breached += usize::from(mine);
                    judged += 1;
                }
            }
        }
        assert!(compared >= 100, "{compared}");
        // Both verdicts are compared (160 values, 33 of 40 verdicts breached when written).
        assert!(
            breached >= 5 && judged - breached >= 5,
            "the history breaches some page alerts, not all: {breached} of {judged}"
        );
    }

    #[test]
    fn an_slo_whose_page_alert_is_disabled_is_skipped_with_a_note() {
        let path = repo_path("tests/fixtures/sloth/no-alerts.yml");
        let (code, _, stderr) = run(&["import", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("page alert is disabled"), "{stderr}");
    }
}

/// On the agent (`serve`), through its shared query source: a burning release rolls
/// back once, and the watch's API shows the rule's condition, not its inner `> 1`.
#[test]
fn on_the_agent_a_burning_release_rolls_back_once() {
    use crate::harness::agent::Agent;
    use serde_json::json;
    let test = "slo-agent";
    let _traffic = Traffic::start(test, 0.5);
    let a = Agent::new(None);
    let slo = format!(
        "    slo:\n      objective: 99%\n      errors: sum(rate({}[${{window}}]))\n      total: sum(rate({}[${{window}}]))\n      windows: [{{long: 20s, short: 5s, burn: 10}}]\n    for: 3s\n    interval: 1s",
        series(test, "errors"),
        series(test, "total")
    );
    a.rule_file(
        "slo",
        &rule_file()
            .watch("  duration: 60s\n  interval: 1s\n  step: 1s")
            .rollback_raw(crate::harness::agent::ROLLBACK)
            .rule("budget", None, &slo)
            .build(),
    );
    let (status, w) = a.post(json!({"rules": "slo", "duration": "40s", "id": "burn"}));
    assert_eq!(status, 201, "{w}");
    let w = a.await_finished("burn", Duration::from_secs(40));
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", a.dump());
    assert_eq!(a.actions().len(), 1, "{:?}", a.actions());
    assert_eq!(
        w["rule_states"][0]["threshold"], "burn > 10 over 20s and 5s",
        "{w}"
    );
    // The page's timeline shows the burn rates as any other evidence.
    let page = get_html(&a.addr, "/watches/burn");
    assert!(
        page.contains("burn_20s=") && page.contains("burn_5s="),
        "{page}"
    );
}

/// The body of a plain GET of one of the agent's pages (open: no token on loopback).
fn get_html(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp
}
