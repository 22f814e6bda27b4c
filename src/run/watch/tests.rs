use super::poller::{aligned_first, poll_loop};
use crate::io::prom::{MetricsSource, QueryError, QueryResult};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Answers at once, except the second query, which takes 2.5 intervals.
struct SlowOnce {
    calls: std::sync::atomic::AtomicUsize,
    interval: Duration,
}

impl MetricsSource for SlowOnce {
    async fn query(&self, _: &str, _: SystemTime) -> Result<QueryResult, QueryError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 1 {
            tokio::time::sleep(self.interval * 5 / 2).await;
        }
        Ok(QueryResult::default())
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_poll_keeps_the_next_ticks_on_the_grid() {
    let interval = Duration::from_secs(10);
    let source = Arc::new(SlowOnce {
        calls: Default::default(),
        interval,
    });
    let (tx, mut rx) = mpsc::channel(16);
    let start = Instant::now();
    let task = tokio::spawn(poll_loop(
        0,
        "q".into(),
        Vec::new(),
        interval,
        source,
        tx,
        start + Duration::from_secs(3),
        start,
        UNIX_EPOCH,
        Duration::ZERO,
    ));
    let mut ats = Vec::new();
    for _ in 0..4 {
        ats.push(rx.recv().await.unwrap().at);
    }
    task.abort();
    // Ticks at 3s + k*10s. The poll of 13s took 25s: the tick of 23s (missed while
    // it ran) comes late but keeps its stamp, the ones missed after it are
    // skipped, and the next is 43s, on the grid; re-anchoring on the late poll
    // gave 3, 13, 38, 48.
    let secs: Vec<u64> = ats.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, vec![3, 13, 23, 43]);
}

#[test]
fn aligned_first_tick_is_the_next_grid_point_after_now() {
    let now = Instant::now();
    let iv = Duration::from_secs(15);
    let at =
        |secs: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms);
    // Grid of 15s with a 4s phase: ..., 1_000_009, 1_000_024, ... (1_000_005 % 15 == 0).
    let first = aligned_first(now, at(1_000_005, 0), iv, Duration::from_secs(4));
    assert_eq!(first - now, Duration::from_secs(4));
    // Exactly on a grid point: that point.
    let first = aligned_first(now, at(1_000_009, 0), iv, Duration::from_secs(4));
    assert_eq!(first, now);
    // Just after one: the next.
    let first = aligned_first(now, at(1_000_009, 1), iv, Duration::from_secs(4));
    assert_eq!(first - now, Duration::from_millis(14_999));
    // Two watches started at different moments land on the same wall-clock tick.
    let a = aligned_first(now, at(2_000_000, 123), iv, Duration::from_millis(7_250));
    let b = aligned_first(now, at(2_000_001, 999), iv, Duration::from_millis(7_250));
    let wall_a = at(2_000_000, 123) + (a - now);
    let wall_b = at(2_000_001, 999) + (b - now);
    assert_eq!(wall_a, wall_b);
    assert_eq!(wall_a, at(2_000_002, 250));
}
