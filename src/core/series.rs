//! The plain data of a query result: label sets, samples, polls and range series.
//!
//! Every floor speaks these types (the Prometheus client produces them, the evaluator
//! and the history grid consume them, the store and the reports keep them), so they sit
//! at the bottom, apart from the evaluator, and know nothing of where they came from.

use std::collections::BTreeMap;

/// Sample values as Prometheus writes them, wherever a value leaves the program.
///
/// serde_json writes a non-finite `f64` as `null`, and `null` reads as "no data": a
/// series at `+Inf` (an error ratio over zero requests, say) would look absent in the
/// very records a post-release review relies on. Prometheus's own API writes every
/// value as a string, with `+Inf`, `-Inf` and `NaN` for the special ones; rollwatch
/// keeps finite values as JSON numbers (as before) and writes the special ones the way
/// Prometheus does. An absent value (`None`) stays `null`. Every struct that carries a
/// sample value uses these (`#[serde(serialize_with = ...)]`), and `json!` payloads use
/// `json`, so there is one rule in one place.
pub mod float {
    use serde::Serializer;

    /// A value for text (logs, Markdown, notifications, environment variables):
    /// `+Inf`, `-Inf`, `NaN`, or the number as Rust prints it.
    pub fn text(v: f64) -> String {
        if v.is_nan() {
            "NaN".to_string()
        } else if v == f64::INFINITY {
            "+Inf".to_string()
        } else if v == f64::NEG_INFINITY {
            "-Inf".to_string()
        } else {
            v.to_string()
        }
    }

    /// `serialize_with` for an `f64`: a number, or the string `+Inf`/`-Inf`/`NaN`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_str(&text(*v))
        }
    }

    /// `serialize_with` for an `Option<f64>`: `null` when absent, else as `serialize`.
    pub fn option<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// The same as a `serde_json::Value`, for payloads built with `json!`.
    pub fn json(v: Option<f64>) -> serde_json::Value {
        match v {
            None => serde_json::Value::Null,
            Some(v) if v.is_finite() => serde_json::json!(v),
            Some(v) => serde_json::Value::String(text(v)),
        }
    }
}

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
