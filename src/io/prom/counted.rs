//! A `HistorySource` that counts what it sends, so a backtest can say what it cost.

use super::{HistorySource, QueryError};

/// A `HistorySource` that counts the range queries it sends (`replay --deploys` says
/// how many it needed; BENCHMARKS.md records them).
pub struct Counted<H> {
    inner: H,
    sent: std::sync::atomic::AtomicU64,
}

impl<H> Counted<H> {
    pub fn new(inner: H) -> Self {
        Counted {
            inner,
            sent: Default::default(),
        }
    }
    /// The source it counts for.
    pub fn inner(&self) -> &H {
        &self.inner
    }
    pub fn count(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<H: HistorySource> HistorySource for Counted<H> {
    async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<crate::io::prom::RangeResult, QueryError> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .query_range(query, start_ms, end_ms, step_ms)
            .await
    }
}
