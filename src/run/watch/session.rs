//! A watch session: one watch run with real processes, reporting to the sinks it was
//! handed, and those sinks flushed when it ends.
//!
//! The `watch` and `demo` commands and the agent all run watches this way; only the
//! sinks differ (a command picks them from its flags, the agent adds its store and its
//! log), and the runtime never needs to know which renderers exist.

use super::{run_from, Outcome, Signal, Start, WatchOptions};
use crate::core::events::Sinks;
use crate::core::rules::WatchSpec;
use crate::io::action::ProcessRunner;
use crate::io::notify::Deliveries;
use crate::io::prom::{HistorySource, MetricsSource};
use crate::run::channel;
use std::sync::Arc;
use std::time::Duration;

/// The sinks of a watch, and what must be awaited once it ends.
#[derive(Default)]
pub struct WatchSinks {
    pub sinks: Sinks,
    pub deliveries: Option<Deliveries>,
}

impl WatchSinks {
    /// Flushes every sink; waits (bounded) for notifications still being delivered.
    pub async fn finish(&mut self) {
        if let Some(d) = &self.deliveries {
            d.drain(Duration::from_secs(15)).await;
        }
        self.sinks.finish();
    }
}

/// Runs a watch from `from` with real processes, every decision going to `sinks`, then
/// flushes them (waiting, bounded, for notifications in flight).
pub async fn run_session<S: MetricsSource + HistorySource>(
    spec: &WatchSpec,
    source: Arc<S>,
    opts: &WatchOptions,
    from: Box<Start>,
    signals: &mut channel::Receiver<Signal>,
    sinks: &mut WatchSinks,
) -> Outcome {
    let outcome = run_from(
        spec,
        source,
        &ProcessRunner::default(),
        opts,
        from,
        signals,
        &mut sinks.sinks,
    )
    .await;
    sinks.finish().await;
    outcome
}
