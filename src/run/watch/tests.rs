use super::poller::{aligned_first, poll_rules, Polled};
use crate::io::prom::{MetricsSource, QueryError, QueryResult};
use crate::run::channel;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Answers at once, except the second asking of `query` (of any query: None), which
/// takes `delay`.
struct SlowSecond {
    query: Option<&'static str>,
    calls: std::sync::atomic::AtomicUsize,
    delay: Duration,
}

impl SlowSecond {
    fn new(query: Option<&'static str>, delay: Duration) -> Arc<SlowSecond> {
        Arc::new(SlowSecond {
            query,
            calls: Default::default(),
            delay,
        })
    }
}

impl MetricsSource for SlowSecond {
    async fn query(&self, q: &str, _: SystemTime) -> Result<QueryResult, QueryError> {
        if self.query.is_none_or(|only| only == q) {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 1 {
                tokio::time::sleep(self.delay).await;
            }
        }
        Ok(QueryResult::default())
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_poll_keeps_the_next_ticks_on_the_grid() {
    let interval = Duration::from_secs(10);
    let source = SlowSecond::new(None, interval * 5 / 2);
    let (tx, mut rx) = channel::channel(16);
    let start = Instant::now();
    // (Leaked: the spawned poller needs its queries for ever; a watch's borrows them.)
    let rule = Polled {
        query: Box::leak(Box::new("q".into())),
        extras: Vec::new(),
        interval,
        first: start + Duration::from_secs(3),
    };
    let task = tokio::spawn(poll_rules(
        vec![rule],
        source,
        tx,
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

/// The rules of a watch share one poller, yet stay independent: a query that
/// hangs holds up only its own rule, which asks nothing more until it answers and
/// then skips the ticks it missed, on its grid.
#[tokio::test(start_paused = true)]
async fn a_slow_rule_never_holds_up_another_rules_polls() {
    let interval = Duration::from_secs(10);
    let source = SlowSecond::new(Some("slow"), Duration::from_secs(25));
    let (tx, mut rx) = channel::channel(16);
    let start = Instant::now();
    let rule = |q: &str, first: u64| Polled {
        query: Box::leak(Box::new(q.into())),
        extras: Vec::new(),
        interval,
        first: start + Duration::from_secs(first),
    };
    let task = tokio::spawn(poll_rules(
        vec![rule("slow", 1), rule("fast", 2)],
        source.clone(),
        tx,
        start,
        UNIX_EPOCH,
        Duration::ZERO,
    ));
    let mut got: Vec<(usize, u64, u64)> = Vec::new();
    while got.iter().filter(|g| g.0 == 0).count() < 4 {
        let done = rx.recv().await.unwrap();
        let received = (Instant::now() - start).as_secs();
        got.push((done.rule, done.at.as_secs(), received));
    }
    task.abort();
    let of = |r: usize| -> Vec<(u64, u64)> {
        got.iter()
            .filter(|g| g.0 == r)
            .map(|g| (g.1, g.2))
            .collect()
    };
    // The slow rule: 1s; the poll of 11s answers at 36s; the tick of 21s, missed
    // meanwhile, comes at once with its stamp; 31s is skipped; then 41s.
    assert_eq!(of(0), vec![(1, 1), (11, 36), (21, 36), (41, 41)]);
    // The fast rule polled on time throughout, each at its tick.
    let fast = of(1);
    assert!(fast.len() >= 4, "{fast:?}");
    for (k, (at, received)) in fast.iter().enumerate() {
        assert_eq!((*at, *received), (2 + 10 * k as u64, 2 + 10 * k as u64));
    }
    assert_eq!(
        source.calls.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "one query of the slow rule at a time"
    );
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
