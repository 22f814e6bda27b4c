//! The metrics source: where polls get their samples.
//!
//! `MetricsSource` is the small trait the watch loop talks to; `PromClient` is the real
//! one (Prometheus's HTTP query API over reqwest) and tests can swap in a scripted one.
//! Decoding the response is separate and pure (`decode`), so it can be fuzzed and
//! tested without a network. `history` reads long windows of history in chunks;
//! `Connection` is how the operator said to reach Prometheus; `auth` applies the
//! credentials that change under a running watch (rotating bearer tokens, `auth_token`;
//! SigV4 for Amazon Managed Prometheus, `sigv4` with `auth_aws`'s credential chain).
//! The traits are in `source.rs`, a query's result and error in `query.rs`, the clock
//! skew's judgement in `skew.rs`.

mod auth;
mod auth_aws;
mod auth_token;
mod client;
mod connection;
pub mod counted;
pub mod decode;
pub mod history;
mod query;
mod sigv4;
mod skew;
mod source;

pub use auth_token::split_argv;
pub use client::{graph_link, PromClient, PromConfig, SigV4Config};
pub use connection::Connection;
pub use skew::{ClockSkew, SkewVerdict, SKEW_WARN};

pub use decode::{RangeResult, RangeSeries};
pub use query::{QueryError, QueryResult};
pub use source::{HistorySource, MetricsSource};
