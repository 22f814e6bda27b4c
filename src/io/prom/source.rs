//! The two small traits the runtime talks to: `MetricsSource` (instant queries, the
//! watch loop's) and `HistorySource` (range queries, replay's and the agent's
//! catch-up). Apart from `mod.rs` so that the client, which implements them and which
//! the parent re-exports, takes them from a sibling.

use super::decode::RangeResult;
use super::query::{QueryError, QueryResult};
use std::future::Future;
use std::time::SystemTime;

/// Anything that answers range queries over history (for `replay`).
pub trait HistorySource: Send + Sync + 'static {
    /// Evaluates `query` at `start`, `start + step`, ... up to `end` (unix ms).
    fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> impl Future<Output = Result<RangeResult, QueryError>> + Send;
}

/// Anything that answers instant queries.
pub trait MetricsSource: Send + Sync + 'static {
    /// Evaluates `query` at instant `at`.
    fn query(
        &self,
        query: &str,
        at: SystemTime,
    ) -> impl Future<Output = Result<QueryResult, QueryError>> + Send;
}
