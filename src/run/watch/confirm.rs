//! The confirming poll of a pending breach: made at the instant `for` has elapsed in
//! the data (`RuleEval::next_due`), not at the next tick, and read only after every
//! step of the pending span was checked (`core::eval::onset`).
//!
//! The decision loop sleeps until the earliest due instant plus the lag (`watch.lag`,
//! and how far this clock may be ahead of Prometheus's), then asks Prometheus about
//! the due instant itself: the samples of that instant are in by then, and no action
//! starts before the breach has lasted `for` in the data. A confirmation the timer
//! could not make is made before the rule's next poll (`Watch::handle`).

use super::handle::unless_signalled;
use super::outcome::Outcome;
use super::poller::query_at;
use super::state::Watch;
use crate::io::action::ActionRunner;
use crate::io::prom::{HistorySource, MetricsSource};
use std::time::Duration;
use tokio::time::Instant;

impl<R: ActionRunner, S: MetricsSource + HistorySource> Watch<'_, R, S> {
    /// The instant a watch time is reached on the loop's clock.
    pub(super) fn instant(&self, at: Duration) -> Instant {
        self.start + at.saturating_sub(self.elapsed)
    }

    /// When the timer must next wake for a confirmation, if any is due.
    pub(super) fn confirm_deadline(&self) -> Option<Instant> {
        self.evals
            .iter()
            .zip(&self.per_rule)
            .filter_map(|(e, r)| e.next_due().filter(|c| Some(*c) != r.tried))
            .map(|c| self.instant(c) + self.lag)
            .min()
    }

    /// Makes every confirmation whose time (plus the lag) has come.
    pub(super) async fn confirm_now(&mut self) -> Option<Outcome> {
        let now = Instant::now();
        for i in 0..self.evals.len() {
            let Some(c) = self.evals[i].next_due() else {
                continue;
            };
            if self.per_rule[i].tried == Some(c) || self.instant(c) + self.lag > now {
                continue;
            }
            self.per_rule[i].tried = Some(c);
            if let Some(o) = self.confirm_poll(i, c).await {
                return Some(o);
            }
        }
        None
    }

    /// The confirming poll of rule `i` at `c` (the watch's clock): its queries at that
    /// instant, handled as any poll (which checks the pending span first).
    pub(super) async fn confirm_poll(&mut self, i: usize, c: Duration) -> Option<Outcome> {
        let rule = &self.spec.rules[i];
        let wall = std::time::UNIX_EPOCH + Duration::from_millis(self.origin.ms(c).max(0) as u64);
        let extras = rule.extra_queries();
        let asked = query_at(i, &rule.query, &extras, &*self.source, c, wall);
        let done =
            unless_signalled(self.signals, self.sinks, &mut self.deferred_signal, asked).await?;
        self.handle_one(done).await
    }
}
