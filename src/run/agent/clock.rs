//! The one clock a watch is timed on, and the check that it agrees with Prometheus's.
//!
//! An agent never times a watch on its own wall clock: several agents share a store,
//! and an adopter whose clock is ten minutes fast would find a ten-minute watch long
//! over and end it healthy at once (issue 19, item 1). Watches are timed on the
//! *store's* clock (`Store::clock_ms`: PostgreSQL's, which every agent agrees on),
//! read once when the agent starts (and again after a check found it off) and carried
//! forward on the monotonic clock, so a step of the agent's wall clock moves nothing.
//! A watch's creation is stamped on it, and so are its elapsed time and the moment
//! each poll asks Prometheus about.
//!
//! That clock must agree with Prometheus's, or every poll judges the wrong moment. The
//! check (`watch_skew`, judged by `ClockSkew::judge` against the watch's `max_blind`,
//! capped by its duration) runs when a watch is created (a refusal is a 400), when it
//! is resumed at a restart or adopted, and every `CHECK_EVERY` while it runs. A
//! resumed or running watch whose clock is off by more than that is not judged here:
//! the agent says so (`clock_refused`, `rollwatch_agent_clock_refusals_total`), stops
//! its loop without writing an ending (never "healthy"), gives its lease back, adopts
//! nothing for `BACKOFF`, and reads the store's clock again.

use super::source::SharedSource;
use super::types::lock;
use super::Agent;
use crate::io::prom::{ClockSkew, PromClient, SkewVerdict};
use crate::io::store::StoreError;
use crate::run::preflight::{self, PreflightError, PreflightWarning, WatchClock};
use crate::run::watch::{ClockAnchor, Signal};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// One Prometheus and the running watches (id, clock limit) that use it.
type SourceWatches = (Arc<SharedSource<PromClient>>, Vec<(String, Duration)>);

/// How often a running watch's clock is compared with Prometheus's again.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

/// How often the periodic check runs: `CHECK_EVERY`, or in test builds
/// `ROLLWATCH_CLOCK_CHECK_MS` (so that a test need not wait half a minute).
pub fn check_every() -> Duration {
    #[cfg(feature = "crash-points")]
    if let Some(ms) = std::env::var("ROLLWATCH_CLOCK_CHECK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    CHECK_EVERY
}

/// How long an agent whose clock was found off adopts nothing.
pub const BACKOFF: Duration = Duration::from_secs(30);

/// Reads the store's clock once: the anchor is taken at the middle of the round trip.
pub fn read_store_clock(store: &dyn crate::io::store::Store) -> Result<ClockAnchor, StoreError> {
    let sent = Instant::now();
    let ms = store.clock_ms()?;
    let received = Instant::now();
    Ok(ClockAnchor {
        wall: UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
        mono: sent + received.duration_since(sent) / 2,
    })
}

/// The skew of the watch clock against Prometheus's, from the skew of this machine's
/// wall clock (`local`, Prometheus minus wall) and how far the watch clock is ahead of
/// the wall clock (`watch_minus_wall_ms`): Prometheus minus watch clock.
pub fn watch_skew(local: ClockSkew, watch_minus_wall_ms: i64) -> ClockSkew {
    ClockSkew {
        skew_ms: local.skew_ms - watch_minus_wall_ms,
        uncertainty_ms: local.uncertainty_ms,
    }
}

/// How a skew of the watch clock reads in a message (`run::preflight`).
pub fn describe(skew: &ClockSkew) -> String {
    WatchClock::Store.describe(skew)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Agent {
    /// The clock watches are timed on, now (Unix ms).
    pub fn clock_now_ms(&self) -> i64 {
        lock(&self.clock).now_ms()
    }

    /// The current reading of the clock watches are timed on.
    pub(super) fn clock_anchor(&self) -> ClockAnchor {
        *lock(&self.clock)
    }

    /// Reads the store's clock again.
    pub(super) async fn reread_clock(&self) {
        match self.store.call(read_store_clock).await {
            Ok(a) => {
                let off = a.now_ms() - wall_ms();
                *lock(&self.clock) = a;
                if off.unsigned_abs() > crate::io::prom::SKEW_WARN.as_millis() as u64 {
                    warn!(event = "agent_clock_off", store_minus_agent_s = off as f64 / 1000.0,
                        "this agent's clock is off the store's; watches are timed on the store's clock, so it does not change what they judge (sync it all the same: NTP)");
                }
            }
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!(event = "store_error", error = %e, "cannot read the store's clock; watches keep the last reading");
            }
        }
    }

    /// The one clock check: the watch clock against Prometheus's (see the module doc).
    pub(super) async fn watch_clock_skew(
        &self,
        source: &SharedSource<PromClient>,
    ) -> Result<ClockSkew, crate::io::prom::QueryError> {
        let local = source.clock_skew().await?;
        let ahead = self.clock_now_ms() - wall_ms();
        let skew = watch_skew(local, ahead);
        source.note_ahead(skew.ahead());
        Ok(skew)
    }

    /// The clock check before a watch is judged here (resumed or adopted): the
    /// creation's pre-flight (`run::preflight::judge_clock`). False: it must not be
    /// judged here now (said, counted, and the agent backs off).
    pub(super) async fn clock_allows(
        &self,
        id: &str,
        source: &SharedSource<PromClient>,
        max_blind: Duration,
        duration: Duration,
    ) -> bool {
        let measured = self
            .watch_clock_skew(source)
            .await
            .map_err(|e| e.to_string());
        match preflight::judge_clock(measured, WatchClock::Store, max_blind, duration) {
            Err(PreflightError::ClockRefused { skew, limit, .. }) => {
                self.clock_refused(id, &skew, limit);
                false
            }
            Err(e) => {
                // Not a clock finding (the judge returns none other): judged anyway.
                warn!(event = "clock_skew_unknown", watch = %id, error = %e, "cannot judge the watch clock; judging anyway");
                true
            }
            Ok(Some(w @ PreflightWarning::ClockSkew { skew, .. })) => {
                warn!(event = "clock_skew", watch = %id, skew_s = skew.seconds(), uncertainty_s = skew.uncertainty_ms as f64 / 1000.0,
                    "{w}");
                true
            }
            Ok(Some(PreflightWarning::ClockUnknown { reason, .. })) => {
                warn!(event = "clock_skew_unknown", watch = %id, error = %reason, "cannot compare the watch clock with Prometheus's; judging anyway (an unreachable Prometheus is judged by max_blind)");
                true
            }
            Ok(_) => true,
        }
    }

    /// Says that watch `id` is not judged here because of the clock, and backs off.
    fn clock_refused(&self, id: &str, skew: &ClockSkew, limit: Duration) {
        self.metrics.clock_refusals.inc();
        error!(event = "clock_refused", watch = %id, skew_s = skew.seconds(), limit_s = limit.as_secs_f64(),
            "{}, more than the watch's max_blind or duration ({}): this agent stops judging the watch; it is not ended, and its lease goes back to whoever's clock agrees",
            describe(skew), humantime::format_duration(limit));
        *lock(&self.clock_backoff) = Some(Instant::now() + BACKOFF);
    }

    /// Whether the agent is backing off adoptions after a clock refusal.
    pub(super) fn clock_backing_off(&self) -> bool {
        lock(&self.clock_backoff).is_some_and(|until| Instant::now() < until)
    }

    /// One periodic round: each Prometheus that running watches use is asked once; a
    /// watch whose clock is now off by more than its limit stops here.
    pub(super) async fn clock_round(self: &Arc<Self>) {
        let mut by_source: HashMap<usize, SourceWatches> = HashMap::new();
        for (id, h) in lock(&self.running).iter() {
            if let Some((source, limit)) = &h.clock {
                by_source
                    .entry(Arc::as_ptr(source) as usize)
                    .or_insert_with(|| (source.clone(), Vec::new()))
                    .1
                    .push((id.clone(), *limit));
            }
        }
        let mut refused = false;
        for (source, watches) in by_source.into_values() {
            let skew = match self.watch_clock_skew(&source).await {
                Ok(s) => s,
                Err(e) => {
                    info!(event = "clock_skew_unknown", error = %e, "cannot compare the watch clock with Prometheus's this round");
                    continue;
                }
            };
            for (id, limit) in watches {
                if skew.judge(limit) == SkewVerdict::Refuse {
                    refused = true;
                    self.clock_refused(&id, &skew, limit);
                    self.leases.mark_lost(&id);
                    if let Some(h) = lock(&self.running).get(&id) {
                        let _ = h.signal.try_send(Signal::Terminate);
                    }
                }
            }
        }
        if refused {
            self.reread_clock().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_skew_is_prometheus_minus_the_watch_clock() {
        // This machine is 600 s ahead of Prometheus; the store's clock (the watch
        // clock) is 600 s behind this machine: the watch clock agrees with Prometheus.
        let local = ClockSkew {
            skew_ms: -600_000,
            uncertainty_ms: 3,
        };
        let w = watch_skew(local, -600_000);
        assert_eq!((w.skew_ms, w.uncertainty_ms), (0, 3));
        assert_eq!(
            w.judge(preflight::clock_limit(
                Duration::from_secs(300),
                Duration::from_secs(600)
            )),
            SkewVerdict::Fine
        );
        // The machine agrees with Prometheus but the store's clock is 10 min fast.
        let w = watch_skew(
            ClockSkew {
                skew_ms: 0,
                uncertainty_ms: 3,
            },
            600_000,
        );
        assert_eq!(w.skew_ms, -600_000);
        assert_eq!(w.judge(Duration::from_secs(300)), SkewVerdict::Refuse);
        assert!(
            describe(&w).contains("600.000s ahead of Prometheus's"),
            "{}",
            describe(&w)
        );
        assert_eq!(
            preflight::clock_limit(Duration::from_secs(300), Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn an_anchor_moves_on_the_monotonic_clock() {
        let mono = Instant::now();
        let a = ClockAnchor {
            wall: UNIX_EPOCH + Duration::from_secs(1_000),
            mono,
        };
        assert_eq!(
            a.at(mono + Duration::from_millis(1_500)),
            UNIX_EPOCH + Duration::from_millis(1_001_500)
        );
        assert_eq!(
            a.at(mono - Duration::from_secs(1)),
            UNIX_EPOCH + Duration::from_secs(999)
        );
    }
}
