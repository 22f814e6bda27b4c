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
    let started = w.await_event("watch_started", Duration::from_secs(10));
    let _ = started;
    std::thread::sleep(Duration::from_secs(15));
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
