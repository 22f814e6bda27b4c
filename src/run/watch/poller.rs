//! The poller: one future per watch, run beside its decision loop in the watch's
//! task, that queries each rule at the rule's interval, on a grid (aligned to Unix
//! time when many watches share a source), and sends each result, stamped with its
//! scheduled time, to the decision loop.

use super::start::PollDone;
use crate::core::rules::{Clock, ExtraKind, Query};
use crate::io::prom::MetricsSource;
use crate::run::channel;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::VecDeque;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{sleep_until, Instant, Sleep};

/// What the poller needs of one rule: its queries, interval and first tick (the
/// query borrowed from the watch's rules: the poller runs in the watch's task).
pub(super) struct Polled<'a> {
    pub query: &'a Query,
    pub extras: Vec<(ExtraKind, Query, Duration)>,
    pub interval: Duration,
    pub first: Instant,
}

/// Where one rule's poller stands.
enum Turn {
    /// Waiting for its next tick.
    Due(Instant),
    /// Its query is being asked, or its result waits for room in the channel; the
    /// next tick is taken after it is sent.
    Busy(Instant),
}

/// The tick after one taken at `now` that was due at `tick`: on the grid, skipping
/// the ticks missed while the rule was busy (as `MissedTickBehavior::Skip`, with its
/// 5 ms of slack for a tick taken just late).
fn next_tick(tick: Instant, now: Instant, interval: Duration) -> Instant {
    if now <= tick + Duration::from_millis(5) || interval.is_zero() {
        return tick + interval;
    }
    let late = (now - tick).as_nanos() % interval.as_nanos();
    now + interval - Duration::from_nanos(late as u64)
}

/// Polls every rule of a watch at its own interval, in one future beside the loop
/// (issue 21: a task per rule cost about 800 bytes each, 4 KB a watch of 5 rules,
/// and a task of its own beside the loop 800 more). Each poll is
/// stamped with its *scheduled* time (the tick), not the moment the task happened to
/// run, so the time between two polls is exactly a multiple of the interval and
/// `for` is never missed by a scheduling jitter of a few microseconds.
///
/// The rules stay independent, as if each had a task of its own: a slow query holds
/// up only its rule (the others' queries are asked meanwhile), a rule has at most one
/// poll in flight or waiting for room in the channel, and a late rule skips the ticks
/// it missed and stays on its grid, so identical queries of many watches stay due
/// together.
pub(super) async fn poll_rules<S: MetricsSource>(
    rules: Vec<Polled<'_>>,
    source: Arc<S>,
    mut tx: channel::Sender<Box<PollDone>>,
    start: Instant,
    start_wall: SystemTime,
    elapsed: Duration,
) {
    if rules.is_empty() {
        return;
    }
    let mut turns: Vec<Turn> = rules.iter().map(|r| Turn::Due(r.first)).collect();
    let mut asking = FuturesUnordered::new();
    let mut ready: VecDeque<Box<PollDone>> = VecDeque::new();
    // One timer for the whole watch, moved only when the next tick changes (issue 21:
    // a sleep made anew at each turn of this loop was put into tokio's timer wheel
    // and taken out again two or three times a poll, each under the wheel's lock).
    let mut timer = pin!(sleep_until(start));
    loop {
        let due = turns
            .iter()
            .filter_map(|t| match t {
                Turn::Due(at) => Some(*at),
                Turn::Busy(_) => None,
            })
            .min();
        aim(timer.as_mut(), due);
        tokio::select! {
            biased;
            room = tx.ready(), if !ready.is_empty() => {
                if room.is_err() {
                    return;
                }
                let Some(done) = ready.pop_front() else { continue };
                let rule = done.rule;
                match tx.try_send(done) {
                    Ok(()) => {}
                    // Ready said there was room; kept, never lost, if there was not.
                    Err(channel::SendError::Full(done)) => {
                        ready.push_front(done);
                        continue;
                    }
                    // The loop ended.
                    Err(channel::SendError::Closed(_)) => return,
                }
                if let Turn::Busy(next) = turns[rule] {
                    turns[rule] = Turn::Due(next);
                }
            }
            Some(done) = asking.next(), if !asking.is_empty() => ready.push_back(Box::new(done)),
            _ = &mut timer, if due.is_some() => {
                let now = Instant::now();
                for (i, (turn, rule)) in turns.iter_mut().zip(&rules).enumerate() {
                    let Turn::Due(tick) = *turn else { continue };
                    if tick > now {
                        continue;
                    }
                    *turn = Turn::Busy(next_tick(tick, now, rule.interval));
                    let at = elapsed + tick.saturating_duration_since(start);
                    let wall = start_wall + at;
                    // (Boxed: a query's future lives only while it is asked, so a
                    // watch that waits for its next tick holds a few hundred bytes.)
                    asking.push(Box::pin(query_at(
                        i,
                        rule.query,
                        &rule.extras,
                        &*source,
                        at,
                        wall,
                    )));
                }
            }
        }
    }
}

/// Moves a kept timer to `at` (None: leaves it), unless it is set for that time
/// already: a timer set for a time already past rings at once, as a new one would,
/// and one left as it is stays where it is in tokio's timer wheel (a sleep made anew
/// at each turn was put into the wheel and taken out again, issue 21). The poller's
/// ticks and the loop's confirming poll and hold's end each keep one.
pub(super) fn aim(timer: Pin<&mut Sleep>, at: Option<Instant>) {
    if let Some(at) = at.filter(|&at| at != timer.deadline()) {
        timer.reset(at);
    }
}

/// A kept timer (`aim`) made only the first time it is set: most watches never have
/// a pending breach nor a hold, and a `Sleep` is 112 bytes of every watch's future
/// (issue 21).
#[derive(Default)]
pub(super) struct LazyTimer(Option<Pin<Box<Sleep>>>);

impl LazyTimer {
    /// Moves the timer to `at` as `aim` does (None: leaves it), making it if it was
    /// never set.
    pub(super) fn aim(&mut self, at: Option<Instant>) {
        match (&mut self.0, at) {
            (Some(timer), at) => aim(timer.as_mut(), at),
            (None, Some(at)) => self.0 = Some(Box::pin(sleep_until(at))),
            (None, None) => {}
        }
    }

    /// Rings once the time it is set for has come; never, if it was never set.
    pub(super) async fn ring(&mut self) {
        match &mut self.0 {
            Some(timer) => timer.as_mut().await,
            None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Waker};

    fn rang(t: &mut LazyTimer) -> bool {
        let fut = std::pin::pin!(t.ring());
        fut.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    /// A lazy timer costs nothing until it is set, never rings unset, and rings as a
    /// kept one does: at its time, again while its time stays past, and not before a
    /// later time it was moved to.
    #[tokio::test(start_paused = true)]
    async fn a_lazy_timer_rings_as_a_kept_one_does() {
        let mut t = LazyTimer::default();
        assert!(t.0.is_none());
        t.aim(None);
        assert!(t.0.is_none(), "not made for nothing");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(!rang(&mut t), "never set: never rings");
        let now = Instant::now();
        t.aim(Some(now + Duration::from_secs(10)));
        assert!(!rang(&mut t));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(!rang(&mut t), "not a millisecond early");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(rang(&mut t));
        t.aim(None);
        assert!(rang(&mut t), "left set for a time past: it rings again");
        t.aim(Some(now + Duration::from_secs(20)));
        assert!(!rang(&mut t), "moved later");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(rang(&mut t));
    }
}
