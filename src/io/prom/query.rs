//! What a query gives: its samples (`QueryResult`) or why it gave none
//! (`QueryError`, never a breach). Apart from `mod.rs` so that the client and the
//! decoder, which the parent re-exports, take these from a sibling.

use crate::core::series::Sample;

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
