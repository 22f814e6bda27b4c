//! The poller: one task per rule that queries at the rule's interval, on a grid
//! (aligned to Unix time when many watches share a source), and sends each result,
//! stamped with its scheduled time, to the decision loop.

use super::start::PollDone;
use crate::core::rules::{Clock, ExtraKind, Query};
use crate::io::prom::MetricsSource;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// Polls one rule at its interval. Each poll is stamped with its *scheduled* time (the
/// tick), not the moment the task happened to run, so the time between two polls is
/// exactly a multiple of the interval and `for` is never missed by a scheduling jitter
/// of a few microseconds.
#[allow(clippy::too_many_arguments)]
pub(super) async fn poll_loop<S: MetricsSource>(
    rule: usize,
    query: Query,
    extras: Vec<(ExtraKind, Query, Duration)>,
    interval: Duration,
    source: Arc<S>,
    tx: mpsc::Sender<Box<PollDone>>,
    first: Instant,
    start: Instant,
    start_wall: SystemTime,
    elapsed: Duration,
) {
    let mut ticker = tokio::time::interval_at(first, interval);
    // A late poll (Prometheus slow, the runtime busy) skips the ticks it missed and
    // stays on the grid, so identical queries of many watches stay due together.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let tick = ticker.tick().await;
        let at = elapsed + tick.saturating_duration_since(start);
        let wall = start_wall + at;
        // (Boxed: the query's future lives only while it is asked, so a poller that
        // waits for its next tick holds a few hundred bytes, not the query's state.)
        let done = Box::pin(query_at(rule, &query, &extras, &*source, at, wall)).await;
        if tx.send(Box::new(done)).await.is_err() {
            return;
        }
    }
}

/// One poll of a rule: its query and its judges' at `wall` (an offset baseline at
/// `wall - D`), stamped `at` on the watch's clock. The poller's ticks and the
/// confirming poll of a pending breach (`for` elapsed between two ticks) both take it.
/// Each query is rendered for this instant (`Query::at`): the watch began at
/// `wall - at`, so `${watch.elapsed}` is `at` (to the millisecond, capped);
/// an offset baseline takes the same text, so its window has the same length.
pub(super) async fn query_at<S: MetricsSource>(
    rule: usize,
    query: &Query,
    extras: &[(ExtraKind, Query, Duration)],
    source: &S,
    at: Duration,
    wall: SystemTime,
) -> PollDone {
    let at_ms = unix_ms(wall);
    let clock = Clock {
        start_ms: at_ms - at.as_millis() as i64,
        at_ms,
    };
    let result = source.query(&query.at(clock), wall).await;
    let mut extra = Vec::with_capacity(extras.len());
    for (_, q, offset) in extras {
        let t = wall.checked_sub(*offset).unwrap_or(UNIX_EPOCH);
        extra.push(source.query(&q.at(clock), t).await);
    }
    PollDone {
        rule,
        at,
        wall,
        result,
        extra,
    }
}

/// The first tick at or after `now_wall` on the grid `k * interval + phase` (Unix time),
/// as an `Instant` relative to (`now`, `now_wall`).
pub(super) fn aligned_first(
    now: Instant,
    now_wall: SystemTime,
    interval: Duration,
    phase: Duration,
) -> Instant {
    let iv = interval.as_nanos().max(1);
    let t = now_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let phase = phase.as_nanos() % iv;
    let k = t.saturating_sub(phase).div_ceil(iv);
    let next = k * iv + phase;
    let next = if next < t { next + iv } else { next };
    now + Duration::from_nanos((next - t) as u64)
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}
