//! The plain data of a query result: label sets, samples, polls and range series.
//!
//! Every floor speaks these types (the Prometheus client produces them, the evaluator
//! and the history grid consume them, the store and the reports keep them), so they sit
//! at the bottom, apart from the evaluator, and know nothing of where they came from.

use std::collections::BTreeMap;

/// A series' identity: its label set, sorted so the key is stable.
pub type Labels = BTreeMap<String, String>;

/// One series' value at a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn new(labels: &[(&str, &str)], value: f64) -> Self {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }
}

/// What a poll produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// The query succeeded; the result may be empty.
    Samples(Vec<Sample>),
    /// The query failed (connection, timeout, HTTP or Prometheus error).
    Failed,
}

/// One series of a range query: its labels and (unix milliseconds, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}
