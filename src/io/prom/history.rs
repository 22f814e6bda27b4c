//! Reading a rule's history: range queries over a long window, in chunks.
//!
//! Replay backtests a window and the agent catches up on the time it was down; both
//! read a rule's history at its interval, which can be more points than Prometheus
//! answers in one range query, so the window is fetched in chunks and merged by series.

use super::{HistorySource, QueryError};
use crate::core::rules::Rule;
use crate::core::series::{Labels, RangeSeries};
use std::collections::BTreeMap;

/// Prometheus refuses range queries of more than 11,000 points per series; chunks stay
/// well under that.
pub const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// Fetches a rule's history over `[from, to]` at its interval, in chunks.
pub async fn fetch<H: HistorySource>(
    source: &H,
    rule: &Rule,
    from: i64,
    to: i64,
) -> Result<Vec<RangeSeries>, QueryError> {
    let step = rule.interval.as_millis().max(1) as i64;
    let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut start = from;
    while start <= to {
        let end = (start + (MAX_POINTS_PER_QUERY - 1) * step).min(to);
        let result = source.query_range(&rule.query, start, end, step).await?;
        for w in &result.warnings {
            tracing::warn!(rule = %rule.name, warning = %w, "Prometheus attached a warning to the history (it may be partial)");
        }
        for s in result.series {
            merged.entry(s.labels).or_default().extend(s.points);
        }
        start = end + step;
    }
    Ok(merged
        .into_iter()
        .map(|(labels, points)| RangeSeries { labels, points })
        .collect())
}
