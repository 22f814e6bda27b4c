//! The metrics source: where polls get their samples.
//!
//! `MetricsSource` is the small trait the watch loop talks to; `PromClient` is the real
//! one (Prometheus's HTTP query API over reqwest) and tests can swap in a scripted one.
//! Decoding the response is separate and pure (`decode`), so it can be fuzzed and
//! tested without a network. `history` reads long windows of history in chunks;
//! `Connection` is how the operator said to reach Prometheus. The traits are in
//! `source.rs`, a query's result and error in `query.rs`.

mod client;
mod connection;
pub mod counted;
pub mod decode;
pub mod history;
mod query;
mod source;

pub use client::{graph_link, ClockSkew, PromClient, PromConfig, SkewVerdict, SKEW_WARN};
pub use connection::Connection;

pub use decode::{RangeResult, RangeSeries};
pub use query::{QueryError, QueryResult};
pub use source::{HistorySource, MetricsSource};
