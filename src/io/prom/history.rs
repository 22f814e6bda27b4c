//! Reading a rule's history: range queries over a long window, in chunks.
//!
//! Replay backtests a window and the agent catches up on the time it was down; both
//! read a rule's history at its interval, which can be more points than Prometheus
//! answers in one range query, so the window is fetched in chunks and merged by series.

use super::{HistorySource, QueryError};
use crate::core::rules::{Clock, Query, Rule};
use crate::core::series::{Labels, RangeSeries, Sample};
use std::collections::BTreeMap;

/// Prometheus refuses range queries of more than 11,000 points per series; chunks stay
/// well under that.
pub const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// Fetches a rule's history over `[from, to]` at its interval, in chunks, for a watch
/// that began at `origin` (Unix ms: what `${watch.elapsed}` counts from).
pub async fn fetch<H: HistorySource>(
    source: &H,
    rule: &Rule,
    origin: i64,
    from: i64,
    to: i64,
) -> Result<Vec<RangeSeries>, QueryError> {
    fetch_query(source, rule, &rule.query, origin, from, to).await
}

/// The history of a rule's judges over `[from, to]`: one fetch per judge for the whole
/// window (the guard, the stable side, and an `offset:` baseline as the rule's query
/// over the window moved back by the offset), and a `before:` baseline as the mean
/// over the `D` before `from` (one range query).
pub async fn fetch_judges<H: HistorySource>(
    source: &H,
    rule: &Rule,
    origin: i64,
    from: i64,
    to: i64,
) -> Result<crate::core::history::JudgeHistory, QueryError> {
    use crate::core::history::{shift_forward, BaselineHistory, JudgeHistory};
    use crate::core::rules::BaselineSource;
    let mut out = JudgeHistory::default();
    if let Some(q) = &rule.guard {
        out.guard = Some(fetch_query(source, rule, q, origin, from, to).await?);
    }
    if let Some(q) = &rule.stable {
        out.stable = Some(fetch_query(source, rule, q, origin, from, to).await?);
    }
    out.baseline = match rule.baseline {
        Some(BaselineSource::Offset(d)) => {
            let d = d.as_millis() as i64;
            // The poll's window length `d` earlier: the clock moves back with it.
            let back = fetch_query(source, rule, &rule.query, origin - d, from - d, to - d).await?;
            Some(BaselineHistory::Offset(shift_forward(back, d)))
        }
        Some(BaselineSource::Before(d)) => Some(BaselineHistory::Fixed(
            mean_before(source, rule, d, from).await?,
        )),
        None => None,
    };
    Ok(out)
}

/// `baseline: before: D`: the per-series mean of the rule's query over the `D` before
/// `start_ms`, from ONE range query (its step is the rule's interval, or coarser when
/// `D` would need more points than one query may return). Non-finite points are left
/// out; a series with none has no baseline.
pub async fn mean_before<H: HistorySource>(
    source: &H,
    rule: &Rule,
    before: std::time::Duration,
    start_ms: i64,
) -> Result<Vec<Sample>, QueryError> {
    let span = before.as_millis() as i64;
    let step = (rule.interval.as_millis().max(1) as i64)
        .max((span + MAX_POINTS_PER_QUERY - 2) / (MAX_POINTS_PER_QUERY - 1));
    let result = source
        // Never the watch's clock: the loader refuses it with `baseline.before`.
        .query_range(rule.query.text(), start_ms - span, start_ms, step)
        .await?;
    for w in &result.warnings {
        tracing::warn!(rule = %rule.name, warning = %w, "Prometheus attached a warning to the baseline (it may be partial)");
    }
    Ok(means(result.series))
}

/// The per-series mean of the finite points of each series (series without any left out).
pub fn means(series: Vec<RangeSeries>) -> Vec<Sample> {
    series
        .into_iter()
        .filter_map(|s| {
            let finite: Vec<f64> = s
                .points
                .iter()
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite())
                .collect();
            (!finite.is_empty()).then(|| Sample {
                labels: s.labels,
                value: finite.iter().sum::<f64>() / finite.len() as f64,
            })
        })
        .collect()
}

/// Fetches the history of `query` (one of `rule`'s queries) over `[from, to]` at the
/// rule's interval, in chunks.
pub async fn fetch_query<H: HistorySource>(
    source: &H,
    rule: &Rule,
    query: &Query,
    origin: i64,
    from: i64,
    to: i64,
) -> Result<Vec<RangeSeries>, QueryError> {
    let step = rule.interval.as_millis().max(1) as i64;
    fetch_at(source, rule, query, origin, from, to, step).await
}

/// `fetch_query` at `step` instead of the rule's interval (the steps of a pending
/// breach, `run::steps`).
pub async fn fetch_at<H: HistorySource>(
    source: &H,
    rule: &Rule,
    query: &Query,
    origin: i64,
    from: i64,
    to: i64,
    step: i64,
) -> Result<Vec<RangeSeries>, QueryError> {
    let step = step.max(1);
    let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut start = from;
    while start <= to {
        // With the watch's clock, each step is its own query.
        let (end, text) = if query.uses_clock() {
            let clock = Clock {
                start_ms: origin,
                at_ms: start,
            };
            (start, query.at(clock).into_owned())
        } else {
            (
                (start + (MAX_POINTS_PER_QUERY - 1) * step).min(to),
                query.text().to_string(),
            )
        };
        let result = source.query_range(&text, start, end, step).await?;
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
