//! `${watch.elapsed}` through the real watch loop (issue 22): every query a watch sends
//! is rendered for its own instant (the poller's, the confirming poll's, each step of
//! the range reads), under tokio's paused clock so every instant is exact.

use super::*;
use crate::core::eval::Labels;
use crate::core::events::Sinks;
use crate::core::rules::{load_str, LoadOptions};
use crate::core::series::Sample;
use crate::io::action::{ActionReport, ActionRequest, ActionRunner, ActionStatus};
use crate::io::prom::{
    HistorySource, MetricsSource, QueryError, QueryResult, RangeResult, RangeSeries,
};
use crate::run::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const T0_SECS: u64 = 1_800_000_000;

/// Records every query with the second of the watch it asks about; answers `high`
/// from `breach_from` on, else 0.
#[derive(Default)]
struct Recording {
    breach_from: Option<u64>,
    /// (query, ms of the watch) of instant queries.
    instant: Mutex<Vec<(String, u64)>>,
    /// (query, start ms, end ms) of range queries, from the watch's start.
    ranges: Mutex<Vec<(String, u64, u64)>>,
}

impl Recording {
    fn value(&self, ms: u64) -> f64 {
        match self.breach_from {
            Some(b) if ms >= b * 1000 => 9.0,
            _ => 0.0,
        }
    }
}

fn ms_of(at: SystemTime) -> u64 {
    let t0 = UNIX_EPOCH + Duration::from_secs(T0_SECS);
    at.duration_since(t0).unwrap_or_default().as_millis() as u64
}

impl MetricsSource for Recording {
    async fn query(&self, query: &str, at: SystemTime) -> Result<QueryResult, QueryError> {
        let ms = ms_of(at);
        self.instant.lock().unwrap().push((query.to_string(), ms));
        Ok(QueryResult {
            samples: vec![Sample {
                labels: Labels::new(),
                value: self.value(ms),
            }],
            warnings: Vec::new(),
        })
    }
}

impl HistorySource for Recording {
    async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<RangeResult, QueryError> {
        let t0 = (T0_SECS * 1000) as i64;
        self.ranges.lock().unwrap().push((
            query.to_string(),
            (start_ms - t0) as u64,
            (end_ms - t0) as u64,
        ));
        let mut points = Vec::new();
        let mut t = start_ms;
        while t <= end_ms {
            points.push((t, self.value((t - t0) as u64)));
            t += step_ms.max(1);
        }
        Ok(RangeResult {
            series: vec![RangeSeries {
                labels: Labels::new(),
                points,
            }],
            warnings: Vec::new(),
        })
    }
}

struct Runs(Mutex<Vec<Duration>>, Instant);

impl ActionRunner for Runs {
    async fn run(&self, _req: &ActionRequest) -> ActionReport {
        self.0.lock().unwrap().push(Instant::now() - self.1);
        ActionReport {
            status: ActionStatus::Succeeded,
            duration: Duration::ZERO,
            output_tail: Vec::new(),
        }
    }
}

async fn watch(source: Arc<Recording>, duration: Duration) -> (Outcome, Vec<Duration>) {
    let text = "watch:\n  duration: 1m\n  interval: 10s\n  step: 5s\nrollback:\n  command: [\"undo\"]\nrules:\n  - name: since\n    query: 'increase(x[${watch.elapsed}]) + 0 * (time() - ${watch.start})'\n    interval: 10s\n    above: 5\n    for: 20s\n    max_window: 25s\n";
    let (spec, _) = load_str("clock.yaml", text, &LoadOptions::default()).expect("valid");
    let origin = Instant::now();
    let runs = Runs(Mutex::default(), origin);
    let opts = WatchOptions {
        duration,
        dry_run: false,
        prometheus: "http://prometheus.invalid".into(),
    };
    let from = Start {
        clock: Some(ClockAnchor {
            wall: UNIX_EPOCH + Duration::from_secs(T0_SECS),
            mono: origin,
        }),
        ..Start::default()
    };
    let (_tx, mut signals) = channel::channel(4);
    let outcome = run_from(
        &spec,
        source,
        &runs,
        &opts,
        Box::new(from),
        &mut signals,
        &mut Sinks(Vec::new()),
    )
    .await;
    let ran = runs.0.into_inner().unwrap();
    (outcome, ran)
}

/// The query a watch that began at T0 sends for its `ms`-th millisecond.
fn expected(ms: u64) -> String {
    let elapsed =
        crate::core::rules::query::duration_text(Duration::from_millis(ms.clamp(1, 25_000)));
    format!("increase(x[{elapsed}]) + 0 * (time() - {T0_SECS})")
}

#[tokio::test(start_paused = true)]
async fn each_poll_asks_for_the_time_since_the_start_capped() {
    let source = Arc::new(Recording::default());
    let (outcome, ran) = watch(source.clone(), Duration::from_secs(60)).await;
    assert_eq!(outcome, Outcome::Healthy);
    assert!(ran.is_empty());
    let asked = source.instant.lock().unwrap().clone();
    let want: Vec<(String, u64)> = (0..6).map(|k| (expected(k * 10_000), k * 10_000)).collect();
    assert_eq!(asked, want);
    // 0s asks `[1ms]` (never an empty range), 20s `[20s]`, 30s on the cap `[25s]`.
    assert_eq!(asked[0].0, "increase(x[1ms]) + 0 * (time() - 1800000000)");
    assert_eq!(asked[2].0, "increase(x[20s]) + 0 * (time() - 1800000000)");
    assert_eq!(asked[3].0, "increase(x[25s]) + 0 * (time() - 1800000000)");
}

#[tokio::test(start_paused = true)]
async fn every_step_of_a_range_read_is_asked_with_its_own_elapsed() {
    // Breached from 15s: seen at the poll of 20s, where the steps since the poll of
    // 10s are read (15s, 20s: one query each); `for: 20s` from 15s elapses at 35s.
    let source = Arc::new(Recording {
        breach_from: Some(15),
        ..Recording::default()
    });
    let (outcome, ran) = watch(source.clone(), Duration::from_secs(60)).await;
    assert_eq!(
        outcome,
        Outcome::RolledBack {
            rule: "since".into(),
            dry_run: false
        }
    );
    assert_eq!(ran.len(), 1);
    assert!(ran[0] >= Duration::from_secs(35), "{ran:?}");
    let ranges = source.ranges.lock().unwrap().clone();
    // Where the breach began (the steps 15s, 20s, read at the poll of 20s), then the
    // pending span checked when `for` elapses (15s to 30s): one query per step, its
    // text rendered for that step.
    let steps: Vec<u64> = ranges.iter().map(|(_, start, _)| *start).collect();
    assert_eq!(steps, [15_000, 20_000, 15_000, 20_000, 25_000, 30_000]);
    for (q, start, end) in &ranges {
        assert_eq!(start, end, "{ranges:?}");
        assert_eq!(*q, expected(*start), "{ranges:?}");
    }
    // The confirming poll at 35s, between two ticks, asks with its own elapsed (capped).
    let asked = source.instant.lock().unwrap().clone();
    assert_eq!(asked.last(), Some(&(expected(35_000), 35_000)), "{asked:?}");
}
