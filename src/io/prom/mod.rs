//! The metrics source: where polls get their samples.
//!
//! `MetricsSource` is the small trait the watch loop talks to; `PromClient` is the real
//! one (Prometheus's HTTP query API over reqwest) and tests can swap in a scripted one.
//! Decoding the response is separate and pure (`decode`), so it can be fuzzed and
//! tested without a network. `history` reads long windows of history in chunks;
//! `Connection` is how the operator said to reach Prometheus.

mod client;
mod connection;
pub mod counted;
pub mod decode;
pub mod history;

pub use client::{graph_link, ClockSkew, PromClient, PromConfig, SkewVerdict, SKEW_WARN};
pub use connection::Connection;

use crate::core::series::Sample;
use std::future::Future;
use std::time::SystemTime;

/// A successful query: the samples, and any warnings Prometheus attached (e.g. Thanos
/// partial responses).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    pub samples: Vec<Sample>,
    pub warnings: Vec<String>,
}

/// Why a query produced no result. None of these is ever taken as a breach.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("cannot connect to Prometheus: {0}")]
    Connect(String),
    #[error("query timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("Prometheus rejected the query ({kind}): {message}")]
    BadQuery { kind: String, message: String },
    #[error("Prometheus returned an error ({kind}): {message}")]
    Prometheus { kind: String, message: String },
    #[error("unreadable response from Prometheus: {0}")]
    Decode(String),
    #[error("request failed: {0}")]
    Other(String),
}

impl QueryError {
    /// A short sentence of what went wrong that quotes nothing Prometheus or a proxy
    /// said (their bodies may name hosts, paths or tenants): for answers to callers
    /// who may be anyone (`--open-verdicts`); the full error goes to the log.
    pub fn class(&self) -> String {
        match self {
            QueryError::Connect(_) => "Prometheus is unreachable".into(),
            QueryError::Timeout(_) => "the query timed out".into(),
            QueryError::Http { status, .. } => format!("Prometheus answered HTTP {status}"),
            QueryError::BadQuery { .. } => "Prometheus rejected the query".into(),
            QueryError::Prometheus { .. } => "Prometheus returned an error".into(),
            QueryError::Decode(_) => "unreadable answer from Prometheus".into(),
            QueryError::Other(_) => "the request to Prometheus failed".into(),
        }
    }

    /// The query itself is wrong (HTTP 400 `bad_data`): retrying will not help.
    pub fn is_bad_query(&self) -> bool {
        matches!(self, QueryError::BadQuery { .. })
    }
}

pub use decode::{RangeResult, RangeSeries};

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
