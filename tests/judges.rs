//! The judges beyond a fixed threshold (issue 12) end to end: `rollwatch watch` against
//! a real Prometheus whose data the test writes itself with promtool, both last week's
//! and the minutes around now (into the near future, so a live watch reads it): a
//! nightly dip, a real drop against last week, thin traffic under `min_traffic`,
//! single-scrape spikes under `for` and `breaches`, and a canary against its stable side.

use crate::harness::{backfilled_prometheus, start, Scratch};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

struct Data {
    url: String,
    _dir: tempfile::TempDir,
}

const WEEK: i64 = 7 * 86_400;
/// Samples every 5 s; a watch polls every 5 s too, so each poll reads the next sample.
const STEP: i64 = 5;

/// Every series at `t` (unix seconds) as (series text, value); `now` is when the data
/// was written.
fn samples(t: i64, now: i64) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let k = t / STEP;
    if t >= now - 600 {
        // Now: orders at night are 40/min, last week at this time 50 (a 20% dip, the
        // same dip as every night); a broken release makes 50 against last week's 100.
        out.push(("rw_orders{test=\"dip\"}".into(), 40.0));
        out.push(("rw_orders{test=\"drop\"}".into(), 50.0));
        // 1 error in 3 requests: a 33% error ratio, at 0.05 requests/s or at 10.
        for (test, rate) in [("thin", 0.05), ("busy", 10.0)] {
            out.push((
                format!("rw_err_ratio{{test=\"{test}\",service=\"shop\"}}"),
                1.0 / 3.0,
            ));
            out.push((
                format!("rw_req_rate{{test=\"{test}\",service=\"shop\"}}"),
                rate,
            ));
        }
        // Flapping: every other scrape breaches. A blip: one scrape in four.
        out.push((
            "rw_spiky{test=\"flap\"}".into(),
            if k % 2 == 0 { 0.9 } else { 0.1 },
        ));
        out.push((
            "rw_spiky{test=\"blip\"}".into(),
            if k % 4 == 0 { 0.9 } else { 0.1 },
        ));
        // p99 latency per pod: stable about 100 ms, a bad canary at double, a good
        // canary exactly like stable.
        for pod in 0..5 {
            let stable = 0.100 + 0.004 * pod as f64 + 0.002 * (k % 7) as f64;
            for (test, canary) in [("double", 2.0 * stable), ("same", stable)] {
                out.push((
                    format!("rw_p99{{test=\"{test}\",track=\"stable\",pod=\"s{pod}\"}}"),
                    stable,
                ));
                out.push((
                    format!("rw_p99{{test=\"{test}\",track=\"canary\",pod=\"c{pod}\"}}"),
                    canary,
                ));
            }
        }
    } else {
        // Last week.
        out.push(("rw_orders{test=\"dip\"}".into(), 50.0));
        out.push(("rw_orders{test=\"drop\"}".into(), 100.0));
    }
    out
}

fn data() -> &'static Data {
    static D: OnceLock<Data> = OnceLock::new();
    D.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let now = now / STEP * STEP;
        // OpenMetrics wants each metric family's samples together, in time order.
        let mut families: std::collections::BTreeMap<String, String> = Default::default();
        let windows = [
            (now - WEEK - 600, now - WEEK + 1200),
            (now - 600, now + 1200),
        ];
        for (from, to) in windows {
            let mut t = from;
            while t <= to {
                for (series, v) in samples(t, now) {
                    let family = series.split('{').next().unwrap().to_string();
                    writeln!(families.entry(family).or_default(), "{series} {v} {t}").unwrap();
                }
                t += STEP;
            }
        }
        let mut om = String::new();
        for (family, lines) in families {
            writeln!(om, "# TYPE {family} gauge\n{lines}").unwrap();
            om.pop();
        }
        om.push_str("# EOF\n");
        let dir = tempfile::tempdir().unwrap();
        Data {
            url: backfilled_prometheus(dir.path(), &om),
            _dir: dir,
        }
    })
}

/// A watch of `duration` polling every 5 s with one rule `r` (`rule`: its YAML body,
/// indented by four); returns its exit code and the `--events` stream.
fn watch(rule: &str, duration: &str) -> (i32, Vec<Value>, Scratch) {
    let d = data();
    let s = Scratch::new();
    let file = s.rules(&format!(
        "watch:\n  duration: {duration}\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n{rule}"
    ));
    let events = s.path("events.jsonl");
    let report = s.path("report");
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &d.url,
        "--events",
        events.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let code = w.wait(Duration::from_secs(120));
    let lines = s
        .lines("events.jsonl")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = w.dump();
    (code, lines, s)
}

fn of<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[test]
fn a_nightly_dip_a_fixed_below_rolls_back_and_below_baseline_does_not() {
    let fixed = "    query: rw_orders{test=\"dip\"}\n    below: 45\n    no_data: ok\n    for: 0s\n";
    let (code, _, _) = watch(fixed, "12s");
    assert_eq!(code, 1, "a fixed `below: 45` rolls back the nightly dip");
    let judged = "    query: rw_orders{test=\"dip\"}\n    baseline:\n      offset: 1w\n    below_baseline: 30%\n    for: 0s\n";
    let (code, events, s) = watch(judged, "12s");
    assert_eq!(code, 0, "{events:?}");
    // The baseline was there at every poll, and the report draws it.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("report/report.json")).unwrap())
            .unwrap();
    let samples = report["rules"][0]["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{report}");
    assert!(samples.iter().all(|p| p["reference"] == 50.0), "{report}");
}

#[test]
fn a_real_drop_against_last_week_rolls_back_with_its_evidence_never_before_for() {
    let rule = "    query: rw_orders{test=\"drop\"}\n    baseline:\n      offset: 1w\n    below_baseline: 30%\n    for: 10s\n";
    let (code, events, s) = watch(rule, "40s");
    assert_eq!(code, 1, "{events:?}");
    let pending = of(&events, "pending")[0];
    let fired = of(&events, "fired")[0];
    assert_eq!(fired["evidence"]["baseline"], 100.0, "{fired}");
    assert_eq!(fired["evidence"]["ratio"], 0.5, "{fired}");
    // `for: 10s` at a 5 s interval: never before 10 s, at the latest one interval after.
    let gap = fired["unix_ms"].as_i64().unwrap() - pending["unix_ms"].as_i64().unwrap();
    assert!(
        (10_000..15_000).contains(&gap),
        "fired {gap} ms after pending"
    );
    let md = std::fs::read_to_string(s.path("report/report.md")).unwrap();
    assert!(md.contains("baseline=100 ratio=0.5"), "{md}");
}

#[test]
fn one_error_in_three_requests_under_min_traffic_does_not_roll_back() {
    let rule = |test: &str| {
        format!("    query: rw_err_ratio{{test=\"{test}\"}}\n    above: 0.05\n    breaches: 2 of 3\n    min_traffic:\n      query: rw_req_rate{{test=\"{test}\"}}\n      min: 0.5\n")
    };
    // Thin traffic: insufficient at every poll, so never judged: inconclusive, not a
    // rollback.
    let (code, events, _) = watch(&rule("thin"), "12s");
    assert_eq!(code, 4, "{events:?}");
    assert!(of(&events, "fired").is_empty());
    let finished = of(&events, "watch_finished")[0];
    assert!(
        finished["detail"]
            .as_str()
            .unwrap()
            .contains("insufficient at every poll"),
        "{finished}"
    );
    // The same ratio with traffic is judged, and rolls back at the second breach.
    let (code, events, _) = watch(&rule("busy"), "30s");
    assert_eq!(code, 1, "{events:?}");
    assert_eq!(of(&events, "fired")[0]["evidence"]["traffic"], 10.0);
    assert_eq!(
        of(&events, "fired")[0]["evidence"]["breaches"],
        serde_json::json!([2, 3])
    );
}

#[test]
fn single_scrape_spikes_for_lets_flapping_through_3_of_5_holds_and_ignores_a_blip() {
    let flap_for = "    query: rw_spiky{test=\"flap\"}\n    above: 0.5\n    for: 5s\n";
    let flap_m_of_n = "    query: rw_spiky{test=\"flap\"}\n    above: 0.5\n    breaches: 3 of 5\n";
    let blip_for = "    query: rw_spiky{test=\"blip\"}\n    above: 0.5\n    for: 0s\n";
    let blip_m_of_n = "    query: rw_spiky{test=\"blip\"}\n    above: 0.5\n    breaches: 3 of 5\n";
    // Every other scrape breaches: `for` resets at each clean one and never fires.
    let (code, events, _) = watch(flap_for, "32s");
    assert_eq!(code, 0, "{events:?}");
    assert!(of(&events, "pending").len() >= 2, "{events:?}");
    // 3 of the last 5 polls breached: act.
    let (code, events, _) = watch(flap_m_of_n, "32s");
    assert_eq!(code, 1, "{events:?}");
    // One scrape in four: `for: 0s` trips on it, `3 of 5` does not.
    let (code, _, _) = watch(blip_for, "32s");
    assert_eq!(code, 1);
    let (code, events, _) = watch(blip_m_of_n, "32s");
    assert_eq!(code, 0, "{events:?}");
}

#[test]
fn a_canary_at_double_the_stable_p99_rolls_back_and_an_identical_one_does_not() {
    let rule = |test: &str| {
        format!("    compare:\n      canary: rw_p99{{test=\"{test}\",track=\"canary\"}}\n      stable: rw_p99{{test=\"{test}\",track=\"stable\"}}\n      direction: increase\n      confidence: 0.98\n      min_effect: 20%\n      window: 1m\n      min_samples: 20\n    for: 0s\n")
    };
    let (code, events, _) = watch(&rule("double"), "40s");
    assert_eq!(code, 1, "{events:?}");
    let e = &of(&events, "fired")[0]["evidence"];
    assert!(e["p_value"].as_f64().unwrap() < 0.02, "{e}");
    assert!(e["effect"].as_f64().unwrap() > 0.9, "{e}");
    assert!(e["n_canary"].as_u64().unwrap() >= 20, "{e}");
    let (code, events, _) = watch(&rule("same"), "40s");
    assert_eq!(code, 0, "{events:?}");
}

/// `gate`'s health check (one verdict, now) judges with the same evaluator: an offset
/// baseline, a `before:` baseline, a guard and a comparison.
#[test]
fn the_gate_health_check_judges_baselines_guards_and_canaries_now() {
    let d = data();
    let s = Scratch::new();
    let cal = s.path("open.yaml");
    std::fs::write(&cal, "timezone: UTC\nfreezes: []\n").unwrap();
    let gate = |rule: &str| {
        let file = s.rules(&format!(
            "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n{rule}"
        ));
        crate::harness::run(&[
            "gate",
            "--calendar",
            cal.to_str().unwrap(),
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &d.url,
        ])
    };
    let baseline = |test: &str| {
        format!("    query: rw_orders{{test=\"{test}\"}}\n    baseline:\n      offset: 1w\n    below_baseline: 30%\n    for: 10m\n")
    };
    let (code, out, err) = gate(&baseline("drop"));
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(out.contains("baseline=100 ratio=0.5"), "{out}");
    assert!(out.contains("< baseline -30%"), "{out}");
    let (code, out, err) = gate(&baseline("dip"));
    assert_eq!(code, 0, "{out}\n{err}");
    // `before: 5m`: the mean of the 5 minutes before now is now's level: no breach.
    let (code, out, err) = gate("    query: rw_orders{test=\"drop\"}\n    baseline:\n      before: 5m\n    below_baseline: 30%\n    for: 0s\n");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("baseline=50 ratio=1"), "{out}");
    // Thin traffic cannot vouch for the system.
    let (code, out, _) = gate("    query: rw_err_ratio{test=\"thin\"}\n    above: 0.05\n    for: 0s\n    min_traffic:\n      query: rw_req_rate{test=\"thin\"}\n      min: 0.5\n");
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("insufficient now"), "{out}");
    let compare = |test: &str| {
        format!("    compare:\n      canary: rw_p99{{test=\"{test}\",track=\"canary\"}}\n      stable: rw_p99{{test=\"{test}\",track=\"stable\"}}\n      direction: increase\n      confidence: 0.98\n      min_effect: 20%\n      window: 1m\n      min_samples: 20\n    for: 2m\n")
    };
    let (code, out, _) = gate(&compare("double"));
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("canary > stable"), "{out}");
    let (code, out, _) = gate(&compare("same"));
    assert_eq!(code, 0, "{out}");
}

/// `replay --deploys` with `--judge`: both verdicts side by side, the judges' history
/// fetched once per deploy window (counted).
#[test]
fn replay_compares_verdicts_side_by_side_with_judge_overrides() {
    let d = data();
    let s = Scratch::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Two deploys inside the data written around now, each replayed for 1m.
    let deploys = s.path("deploys.txt");
    std::fs::write(&deploys, format!("{}\n{}\n", now - 480, now - 300)).unwrap();
    let file = s.rules(
        "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: flap\n    query: rw_spiky{test=\"flap\"}\n    above: 0.5\n    for: 5s\n  - name: orders\n    query: rw_orders{test=\"drop\"}\n    below: 10\n    no_data: ok\n    for: 0s\n",
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "replay",
            "--rules",
            file.to_str().unwrap(),
            "--prometheus",
            &d.url,
            "--deploys",
            deploys.to_str().unwrap(),
            "--log-format=json",
        ];
        args.extend_from_slice(extra);
        crate::harness::run(&args)
    };
    let (code, out, err) = run(&[
        "--judge",
        "flap={breaches: 3 of 5}",
        "--judge",
        "orders={baseline: {offset: 1w}, below_baseline: 30%, below: null}",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "the first column is healthy: {out}\n{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    for row in doc["deploys"].as_array().unwrap() {
        assert_eq!(row["outcome"], "healthy", "{row}");
        assert_eq!(row["compared"]["outcome"], "rolled_back", "{row}");
    }
    assert_eq!(doc["compared"]["rollbacks_added"], 2, "{doc}");
    // Queries: per deploy and column, one per rule, plus the offset baseline's one;
    // and, since issue 21, a few around each breach of a `for` rule (where it began,
    // and its pending span), never one per step.
    let cost = |err: &str| {
        err.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "replay_cost")
            .unwrap_or_else(|| panic!("{err}"))["range_queries"]
            .as_u64()
            .unwrap()
    };
    let asked = cost(&err);
    assert!(
        (2 * (2 + 3)..2 * (2 + 3) + 60).contains(&asked),
        "{asked} range queries"
    );
    // A rule that never breaches costs one history query per deploy, as before.
    let q = Scratch::new();
    let quiet = q.rules(
        "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: flap\n    query: rw_spiky{test=\"flap\"}\n    above: 1000\n    for: 5s\n",
    );
    let (code, _, err) = crate::harness::run(&[
        "replay",
        "--rules",
        quiet.to_str().unwrap(),
        "--prometheus",
        &d.url,
        "--deploys",
        deploys.to_str().unwrap(),
        "--log-format=json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cost(&err), 2, "{err}");
    // The text table shows both columns.
    let (_, out, _) = run(&["--judge", "flap={breaches: 3 of 5}"]);
    assert!(
        out.contains("compared") && out.contains("<- differs"),
        "{out}"
    );
    assert!(
        out.contains("2 rollback(s) added") || out.contains("0 rollback(s) avoided, 2 added"),
        "{out}"
    );
    // The baseline rule's timeline carries its evidence.
    let (_, out, _) = run(&[
        "--judge",
        "orders={baseline: {offset: 1w}, below_baseline: 30%, below: null}",
    ]);
    assert!(out.contains("rolled_back"), "{out}");
}

/// `serve`: a watch's judges run through the agent (an offset baseline rolls back with
/// its evidence), and a `before:` baseline is taken once, stored, and not taken again
/// when the agent restarts.
#[test]
fn serve_judges_and_keeps_a_before_baseline_across_a_restart() {
    use crate::harness::agent::Agent;
    use serde_json::json;
    let d = data();
    let mut a = Agent::with_prometheus(None, &d.url);
    let file = |rule: &str| {
        format!("vars:\n  test:\nwatch:\n  duration: 60s\n  interval: 1s\nrollback:\n  command: [\"sh\", \"-c\", \"echo rollback >> @DIR@/actions.log\"]\nrules:\n  - name: orders\n    query: rw_orders{{test=\"${{test}}\"}}\n{rule}")
    };
    a.rule_file(
        "offset",
        &file("    baseline:\n      offset: 1w\n    below_baseline: 30%\n    for: 2s\n"),
    );
    a.rule_file(
        "before",
        &file("    baseline:\n      before: 5m\n    below_baseline: 30%\n    for: 0s\n"),
    );
    assert_eq!(
        a.post(json!({"rules": "offset", "vars": {"test": "drop"}, "id": "off"}))
            .0,
        201
    );
    assert_eq!(
        a.post(json!({"rules": "before", "vars": {"test": "dip"}, "id": "bef"}))
            .0,
        201
    );
    let w = a.await_finished("off", Duration::from_secs(30));
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(a.actions().len(), 1);
    // The before: baseline (the mean of the 5 minutes before: 40) is stored.
    a.await_watch("bef", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    let db = rusqlite::Connection::open(a.s.path("state.db")).unwrap();
    let stored: Vec<(String, Option<f64>)> = db
        // (The rule's own key: the watch's reading of the breaches before it is
        // stored beside it, under `pre_existing:orders`.)
        .prepare("SELECT labels, value FROM baselines WHERE watch_id = 'bef' AND rule = 'orders' ORDER BY labels")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 2, "a marker and one series: {stored:?}");
    assert_eq!(stored[1].1, Some(40.0), "{stored:?}");
    drop(db);
    let taken = |a: &Agent| a.dump().matches("\"event\":\"baseline\"").count();
    assert_eq!(taken(&a), 1, "{}", a.dump());
    let mut p = a.proc.take().unwrap();
    p.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(p.wait(Duration::from_secs(15)), 0, "{}", p.dump());
    let last = |w: &Value| w["rule_states"][0]["last_poll_ms"].as_i64().unwrap_or(0);
    let stopped_at = crate::harness::now_ms() as i64;
    a.start();
    // A poll after the restart: the live loop (and the baseline step before it) ran.
    a.await_watch("bef", Duration::from_secs(10), |w| {
        w["state"] == "running" && last(w) > stopped_at
    });
    assert_eq!(
        taken(&a),
        0,
        "the restart read the stored baseline: {}",
        a.dump()
    );
}

#[test]
fn notifications_carry_the_evidence_of_a_baseline_rollback() {
    let d = data();
    let s = Scratch::new();
    let hook = crate::harness::receiver::receiver(vec![200]);
    let slack = crate::harness::receiver::receiver(vec![200]);
    let file = s.rules(&format!(
        "watch:\n  duration: 30s\n  interval: 5s\nrollback:\n  command: [\"true\"]\nnotify:\n  - webhook: \"{}\"\n    on: [rollback]\n  - slack: \"{}\"\n    on: [rollback]\nrules:\n  - name: orders\n    query: rw_orders{{test=\"drop\"}}\n    baseline:\n      offset: 1w\n    below_baseline: 30%\n    for: 0s\n",
        hook.url, slack.url
    ));
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &d.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(60)), 1, "{}", w.dump());
    let (_, _, payload) = hook.next(Duration::from_secs(5));
    assert_eq!(payload["kind"], "rollback", "{payload}");
    assert_eq!(payload["evidence"]["baseline"], 100.0, "{payload}");
    assert_eq!(payload["evidence"]["ratio"], 0.5, "{payload}");
    let summary = payload["summary"].as_str().unwrap();
    assert!(
        summary.contains("Evidence: baseline=100 ratio=0.5"),
        "{summary}"
    );
    let (_, _, msg) = slack.next(Duration::from_secs(5));
    let text = msg["text"].as_str().unwrap();
    assert!(text.contains("baseline=100 ratio=0.5"), "{text}");
}

#[test]
fn a_guard_by_pod_on_a_rule_by_service_is_refused_not_summed() {
    // The rule: one series {service="shop"} at a 33% error ratio. The guard: five pods'
    // series (labels test, track, pod) of about 0.11 each; none shares a label with the
    // rule's. Summed they pass `min: 0.5`, and thin traffic would roll back.
    let rule = "    query: sum by (service) (rw_err_ratio{test=\"thin\"})\n    above: 0.05\n    for: 0s\n    min_traffic:\n      query: rw_p99{test=\"same\",track=\"stable\"}\n      min: 0.5\n";
    let (code, events, s) = watch(rule, "12s");
    assert!(of(&events, "fired").is_empty(), "{events:?}");
    assert_eq!(
        code, 4,
        "never judged: inconclusive, not healthy: {events:?}"
    );
    let finished = of(&events, "watch_finished")[0];
    assert_eq!(finished["outcome"], "inconclusive", "{finished}");
    // Each poll failed, saying why.
    let report = std::fs::read_to_string(s.path("report/report.json")).unwrap();
    assert!(
        report.contains("none sharing a label") && report.contains("min_traffic.on"),
        "{report}"
    );
}
