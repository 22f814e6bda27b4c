//! What only VictoriaMetrics needs, as a second backend (see `harness::victoria`): a
//! query it rejects, and replay over history imported with timestamps. The watch
//! scenarios that run on both backends are in `scenarios.rs`.

use crate::harness::victoria::victoria;
use crate::harness::{now_ms, run, start, Scratch};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

/// VictoriaMetrics serves a query time within 30s of its now as if it were 30s ago
/// unless asked `nocache=1`: without that a breach would be seen half a minute late
/// and `time()` would put the clocks 30s apart.
/// `mad_over_time` is valid PromQL to rollwatch's parser (and `check`), but
/// VictoriaMetrics 1.79 does not know it and answers 422 `unknown func`: the query is
/// wrong, so the watch stops at once (exit 2) instead of retrying until it is blind.
#[test]
fn vm_rejected_query_exits_2_and_runs_nothing() {
    let vm = victoria();
    let s = Scratch::new();
    let file = s.rules(
        r#"watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo rollback >> @DIR@/actions.log"]
rules:
  - name: mad
    query: mad_over_time(rw_value{test="canary"}[1m])
    above: 0.5
    for: 0s
"#,
    );
    let (code, _, _) = run(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "the rule file itself is fine");
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &vm.url,
    ]);
    let rejected = w.await_event("query_rejected", Duration::from_secs(10));
    assert!(
        rejected["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown func"),
        "{rejected}"
    );
    assert_eq!(w.wait(Duration::from_secs(30)), 2, "{}", w.dump());
    assert!(s.lines("actions.log").is_empty());
}

/// History imported into VictoriaMetrics with timestamps: `rw_vmhist{test="long"}`
/// every 15s from `base - 10m` to `base + 30m`, breaching (0.9) from +600s to +1200s.
fn history_base() -> i64 {
    static BASE: OnceLock<i64> = OnceLock::new();
    *BASE.get_or_init(|| {
        let vm = victoria();
        let now = (now_ms() / 1000) as i64;
        let base = (now - 5 * 3600) / 60 * 60;
        let mut lines = String::new();
        let mut t = -600;
        while t <= 1800 {
            let v = if (600..1200).contains(&t) { 0.9 } else { 0.1 };
            writeln!(
                lines,
                "rw_vmhist{{test=\"long\"}} {v} {}",
                (base + t) * 1000
            )
            .unwrap();
            t += 15;
        }
        vm.import(&lines);
        base
    })
}

#[test]
fn vm_replay_fires_at_the_expected_step() {
    let vm = victoria();
    let base = history_base();
    let s = Scratch::new();
    let file = s.rules(
        r#"vars:
  test: long
watch:
  duration: 30m
  interval: 10s
rollback:
  command: ["true"]
rules:
  - name: r
    query: rw_vmhist{test="${test}"}
    above: 0.5
    for: 2m
"#,
    );
    let (code, stdout, stderr) = run(&[
        "replay",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &vm.url,
        "--from",
        &base.to_string(),
        "--to",
        &(base + 1800).to_string(),
        "--format",
        "json",
    ]);
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert_eq!(doc["outcome"], "rolled_back", "{doc:#}");
    let offset = |v: &Value| {
        let ts: jiff::Timestamp = v.as_str()?.parse().ok()?;
        Some(ts.as_second() - base)
    };
    // Polls every 10s from base; the first sample at or after +600 is at +600, seen
    // by the poll at +600; `for: 2m` then fires it at +720, exactly as on Prometheus.
    assert_eq!(offset(&doc["rules"][0]["pending_at"]), Some(600), "{doc:#}");
    assert_eq!(offset(&doc["rules"][0]["fired_at"]), Some(720), "{doc:#}");
    assert_eq!(doc["rules"][0]["peak"], 0.9);
}

/// `${watch.elapsed}` is written to the millisecond (`3s453ms`): VictoriaMetrics reads
/// that duration as Prometheus does, so a watch of it is judged at every poll and
/// ends healthy, never `query_rejected`.
#[test]
fn vm_reads_the_elapsed_window_to_the_millisecond() {
    let vm = victoria();
    let s = Scratch::new();
    let file = s.rules(
        r#"watch:
  duration: 4s
  interval: 1s
rollback:
  command: ["sh", "-c", "echo rollback >> @DIR@/actions.log"]
rules:
  - name: since
    query: 'increase(rw_value{test="vm-elapsed"}[${watch.elapsed}])'
    above: 5
    for: 1s
    max_window: 1h
"#,
    );
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &vm.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(30)), 0, "{}", w.dump());
    assert!(w.events("query_rejected").is_empty(), "{}", w.dump());
    assert!(w.events("query_failed").is_empty(), "{}", w.dump());
    assert!(w.events("poll").len() >= 3, "{}", w.dump());
    assert!(s.lines("actions.log").is_empty());
}
