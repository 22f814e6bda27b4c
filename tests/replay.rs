//! `rollwatch replay` against a real Prometheus whose history the test writes itself:
//! OpenMetrics text backfilled with `promtool tsdb create-blocks-from openmetrics`
//! before Prometheus starts.

use crate::harness::rule_file::rule_file;
use crate::harness::{backfilled_prometheus, run, Scratch};
use serde_json::Value;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::OnceLock;

/// History every test shares: `rw_hist{test=...}` series sampled every 15s from
/// `base - 10m` to `base + 4h30m`, with `base` five hours ago.
struct History {
    url: String,
    /// Unix seconds, minute-aligned.
    base: i64,
    _dir: tempfile::TempDir,
}

const STEP: i64 = 15;
const SPAN: i64 = 4 * 3600 + 1800;

/// The value of series `test` at `t` seconds after base (None = no sample).
fn value(test: &str, t: i64) -> Option<f64> {
    let breach = |ranges: &[(i64, i64)]| {
        if ranges.iter().any(|(a, b)| (*a..*b).contains(&t)) {
            0.9
        } else {
            0.1
        }
    };
    match test {
        "long" => Some(breach(&[(600, 1200)])),
        "short" => Some(breach(&[(600, 660)])),
        // Breach from 600; no samples between 660 and 1020 (longer than the 5m
        // lookback, so the series is absent from 960 to 1020); breach again until 2400.
        "gap" if (675..1020).contains(&t) => None,
        "gap" => Some(breach(&[(600, 2400)])),
        "nan" if (660..720).contains(&t) => Some(f64::NAN),
        "nan" => Some(breach(&[(600, 1800)])),
        "wide" => Some(breach(&[(13_800, 14_400)])),
        "deploys" => Some(breach(&[(600, 1200), (7_800, 8_400)])),
        _ => None,
    }
}

fn history() -> &'static History {
    static H: OnceLock<History> = OnceLock::new();
    H.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let base = (now - 5 * 3600) / 60 * 60;
        let mut om = String::from("# HELP rw_hist Test history.\n# TYPE rw_hist gauge\n");
        for test in ["long", "short", "gap", "nan", "wide", "deploys"] {
            let mut t = -600;
            while t <= SPAN {
                if let Some(v) = value(test, t) {
                    let v = if v.is_nan() {
                        "NaN".to_string()
                    } else {
                        v.to_string()
                    };
                    writeln!(om, "rw_hist{{test=\"{test}\"}} {v} {}", base + t).unwrap();
                }
                t += STEP;
            }
        }
        om.push_str("# EOF\n");
        let dir = tempfile::tempdir().unwrap();
        History {
            url: backfilled_prometheus(dir.path(), &om),
            base,
            _dir: dir,
        }
    })
}

fn rules_file(s: &Scratch, rule: &str, duration: &str) -> String {
    let yaml = rule_file()
        .var("test", "long")
        .watch(&format!("  duration: {duration}\n  interval: 10s"))
        .rollback_raw("  command: [\"true\"]")
        .pause_raw("  command: [\"true\"]")
        .rule("r", Some("rw_hist{test=\"${test}\"}"), rule)
        .build();
    s.rules(&yaml).display().to_string()
}

fn replay(test: &str, rule: &str, from: i64, to: i64) -> (i32, Value) {
    let h = history();
    let s = Scratch::new();
    let file = rules_file(&s, rule, "30m");
    let (code, stdout, stderr) = run(&[
        "replay",
        "--rules",
        &file,
        "--prometheus",
        &h.url,
        "--from",
        &(h.base + from).to_string(),
        "--to",
        &(h.base + to).to_string(),
        "--set",
        &format!("test={test}"),
        "--format",
        "json",
    ]);
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (code, doc)
}

/// Seconds after base of an RFC 3339 time in the report.
fn offset(v: &Value) -> Option<i64> {
    let ts: jiff::Timestamp = v.as_str()?.parse().ok()?;
    Some(ts.as_second() - history().base)
}

/// The polls a replay makes: at `from`, `from + step`, ... (seconds after base).
#[derive(Clone, Copy)]
struct Grid {
    from: i64,
    step: i64,
}

/// The grid of `replay()`: from base, at the rule file's 10s interval.
const GRID: Grid = Grid { from: 0, step: 10 };

impl Grid {
    /// The first poll at or after `t`.
    fn at_or_after(self, t: i64) -> i64 {
        self.from + (t - self.from + self.step - 1).div_euclid(self.step) * self.step
    }

    /// The poll at which a rule first sees the history sample written at or after `t`
    /// (samples are every `STEP` seconds; a poll sees the latest sample before it).
    fn sees(self, t: i64) -> i64 {
        self.at_or_after(t + (STEP - t.rem_euclid(STEP)) % STEP)
    }

    /// The poll at which a rule with `for_` fires when its breach is first seen at `onset`.
    fn fires(self, onset: i64, for_: i64) -> i64 {
        assert_eq!(
            (onset - self.from) % self.step,
            0,
            "+{onset}s is not a poll"
        );
        self.at_or_after(onset + for_)
    }
}

/// Asserts the rule fired exactly at poll `want`: a step early or late is a failure.
fn assert_fired_at(got: Option<i64>, want: i64, grid: Grid, doc: &Value) {
    assert_eq!((want - grid.from) % grid.step, 0, "+{want}s is not a poll");
    let got = got.unwrap_or_else(|| panic!("nothing fired; expected +{want}s: {doc:#}"));
    assert!(
        got == want,
        "fired at +{got}s, expected exactly +{want}s ({} step(s) of {}s off): {doc:#}",
        (got - want) / grid.step,
        grid.step
    );
}

#[test]
fn breach_longer_than_for_fires_at_the_right_step() {
    let (code, doc) = replay("long", "    above: 0.5\n    for: 2m", 0, 1800);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["outcome"], "rolled_back");
    let onset = GRID.sees(600);
    assert_eq!(
        offset(&doc["rules"][0]["pending_at"]),
        Some(onset),
        "{doc:#}"
    );
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        GRID.fires(onset, 120),
        GRID,
        &doc,
    );
    assert_eq!(doc["rules"][0]["labels"]["test"], "long");
    assert_eq!(doc["rules"][0]["peak"], 0.9);
    assert_eq!(doc["decided_at"], doc["rules"][0]["fired_at"]);
}

#[test]
fn breach_shorter_than_for_does_not_fire() {
    let (code, doc) = replay("short", "    above: 0.5\n    for: 2m", 0, 1800);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["outcome"], "healthy");
    assert!(doc["rules"][0]["fired_at"].is_null());
    assert!(
        !doc["rules"][0]["pending_at"].is_null(),
        "it did go pending"
    );
}

#[test]
fn gap_in_history_resets_a_pending_breach() {
    let (code, doc) = replay(
        "gap",
        "    above: 0.5\n    for: 10m\n    no_data: ok",
        0,
        3000,
    );
    assert_eq!(code, 1, "{doc:#}");
    // Without the reset it would fire at +1200; the gap restarts it at +1020.
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        GRID.fires(GRID.sees(1020), 600),
        GRID,
        &doc,
    );
}

#[test]
fn gap_with_no_data_hold_does_not_reset() {
    let (_, doc) = replay(
        "gap",
        "    above: 0.5\n    for: 10m\n    no_data: hold",
        0,
        3000,
    );
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        GRID.fires(GRID.sees(600), 600),
        GRID,
        &doc,
    );
}

#[test]
fn nan_follows_no_data() {
    let (_, ok) = replay(
        "nan",
        "    above: 0.5\n    for: 2m\n    no_data: ok",
        0,
        1800,
    );
    // NaN (samples at +660..+705) resets the breach; it is seen again at +720.
    assert_fired_at(
        offset(&ok["rules"][0]["fired_at"]),
        GRID.fires(GRID.sees(720), 120),
        GRID,
        &ok,
    );
    let (_, breach) = replay(
        "nan",
        "    above: 0.5\n    for: 2m\n    no_data: breach",
        0,
        1800,
    );
    assert_fired_at(
        offset(&breach["rules"][0]["fired_at"]),
        GRID.fires(GRID.sees(600), 120),
        GRID,
        &breach,
    );
}

#[test]
fn missing_series_follows_no_data() {
    let (code, doc) = replay(
        "missing",
        "    above: 0.5\n    for: 1m\n    no_data: breach",
        0,
        600,
    );
    assert_eq!(code, 1, "{doc:#}");
    // Absent from the first poll.
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        GRID.fires(GRID.from, 60),
        GRID,
        &doc,
    );
    let (code, doc) = replay(
        "missing",
        "    above: 0.5\n    for: 1m\n    no_data: ok",
        0,
        600,
    );
    assert_eq!(code, 0, "{doc:#}");
}

#[test]
fn pause_rule_replays_as_paused() {
    let (code, doc) = replay(
        "long",
        "    above: 0.5\n    for: 2m\n    action: pause",
        0,
        1800,
    );
    assert_eq!(code, 5, "{doc:#}");
    assert_eq!(doc["outcome"], "paused");
}

#[test]
fn window_longer_than_11000_steps_is_split_and_works() {
    // 4h at a 1s interval: 14,401 steps, more than Prometheus's 11,000-point limit.
    let (code, doc) = replay(
        "wide",
        "    above: 0.5\n    for: 1m\n    interval: 1s",
        0,
        4 * 3600,
    );
    assert_eq!(code, 1, "{doc:#}");
    let grid = Grid { from: 0, step: 1 };
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        grid.fires(grid.sees(13_800), 60),
        grid,
        &doc,
    );
}

#[test]
fn deploys_table_totals_are_right() {
    let h = history();
    let s = Scratch::new();
    let file = rules_file(&s, "    above: 0.5\n    for: 2m", "30m");
    let deploys = s.path("deploys.txt");
    std::fs::write(
        &deploys,
        format!(
            "# three releases\n{}\n{}\n{}\n",
            h.base,
            h.base + 3600,
            h.base + 7200
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&[
        "replay",
        "--rules",
        &file,
        "--prometheus",
        &h.url,
        "--deploys",
        deploys.to_str().unwrap(),
        "--set",
        "test=deploys",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "3 releases: 2 would have been rolled back, 0 paused, 1 healthy, 0 inconclusive"
        ),
        "{stdout}"
    );
    let (_, json, _) = run(&[
        "replay",
        "--rules",
        &file,
        "--prometheus",
        &h.url,
        "--deploys",
        deploys.to_str().unwrap(),
        "--set",
        "test=deploys",
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&json).unwrap();
    let outcomes: Vec<&str> = doc["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["rolled_back", "healthy", "rolled_back"]);
    assert_eq!(doc["totals"]["rolled_back"], 2);
}

#[test]
fn text_output_shows_timeline_and_verdict() {
    let h = history();
    let s = Scratch::new();
    let file = rules_file(&s, "    above: 0.5\n    for: 2m", "30m");
    let (code, stdout, _) = run(&[
        "replay",
        "--rules",
        &file,
        "--prometheus",
        &h.url,
        "--from",
        &h.base.to_string(),
        "--to",
        &(h.base + 1800).to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(stdout.contains("pending"), "{stdout}");
    assert!(stdout.contains("fired"), "{stdout}");
    assert!(stdout.contains("peak 0.9"), "{stdout}");
    assert!(
        stdout.contains("verdict: would have ROLLED BACK"),
        "{stdout}"
    );
}

#[test]
fn unreachable_history_is_inconclusive() {
    let s = Scratch::new();
    let file = rules_file(&s, "    above: 0.5\n    for: 2m", "30m");
    let url = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let (code, stdout, stderr) = run(&[
        "replay",
        "--rules",
        &file,
        "--prometheus",
        &url,
        "--from",
        "-1h",
    ]);
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(stdout.contains("INCONCLUSIVE"), "{stdout}");
}

#[test]
fn replay_appends_its_report_to_the_github_step_summary() {
    let h = history();
    let s = Scratch::new();
    let file = rules_file(&s, "    above: 0.5\n    for: 2m", "30m");
    let summary = s.path("summary.md");
    std::fs::write(&summary, "## an earlier step\n").unwrap();
    let out = Command::new(crate::harness::bin())
        .args(["replay", "--rules", &file, "--prometheus", &h.url])
        .args([
            "--from",
            &h.base.to_string(),
            "--to",
            &(h.base + 1800).to_string(),
        ])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("## an earlier step\n"),
        "appended:\n{text}"
    );
    assert!(text.contains("# rollwatch replay"), "{text}");
    assert!(text.contains("rolled back"), "{text}");

    // A summary that cannot be written is a warning; the verdict's exit code stands.
    let out = Command::new(crate::harness::bin())
        .args(["replay", "--rules", &file, "--prometheus", &h.url])
        .args([
            "--from",
            &h.base.to_string(),
            "--to",
            &(h.base + 1800).to_string(),
        ])
        .env("GITHUB_STEP_SUMMARY", s.path("no-such-dir/summary.md"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("step_summary_failed"),
        "{out:?}"
    );
}

/// A breach already there when the window begins is what a watch begun then would
/// make of it (`pre_existing`): `deploys` breaches from +600s to +1200s and from
/// +7800s; a window from +900s begins inside the first. `judge` acts on it `for`
/// after the window's start; `ignore` never does, and acts on the second.
#[test]
fn a_breach_already_there_when_the_window_begins_follows_pre_existing() {
    let grid = Grid {
        from: 900,
        step: 10,
    };
    let (code, doc) = replay("deploys", "    above: 0.5\n    for: 2m", 900, 9000);
    assert_eq!(code, 1, "{doc:#}");
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        grid.fires(900, 120),
        grid,
        &doc,
    );
    let (code, doc) = replay(
        "deploys",
        "    above: 0.5\n    for: 2m\n    pre_existing: ignore",
        900,
        9000,
    );
    assert_eq!(code, 1, "{doc:#}");
    let onset = grid.sees(7800);
    assert_fired_at(
        offset(&doc["rules"][0]["fired_at"]),
        grid.fires(onset, 120),
        grid,
        &doc,
    );
}
