//! The plain data of a query result: label sets, samples, polls and range series.
//!
//! Every floor speaks these types (the Prometheus client produces them, the evaluator
//! and the history grid consume them, the store and the reports keep them), so they sit
//! at the bottom, apart from the evaluator, and know nothing of where they came from.

mod labels;

pub use labels::{CowStr, Labels};

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

    /// Significant digits of a value in text for people.
    pub const TEXT_DIGITS: usize = 6;

    /// A value for people (log lines, Markdown, notifications, the terminal):
    /// `+Inf`, `-Inf`, `NaN`, or the number to `TEXT_DIGITS` significant digits without
    /// float noise (`0.23`, not `0.22999999999999998`). JSON fields keep the exact
    /// value (`serialize`, `json`); a program reads `exact`.
    pub fn text(v: f64) -> String {
        significant(v, TEXT_DIGITS)
    }

    /// The value as Rust prints it, exactly (round-trips): for programs
    /// (`ROLLWATCH_VALUE`), never for people.
    pub fn exact(v: f64) -> String {
        match special(v) {
            Some(s) => s.to_string(),
            None => v.to_string(),
        }
    }

    fn special(v: f64) -> Option<&'static str> {
        if v.is_nan() {
            Some("NaN")
        } else if v == f64::INFINITY {
            Some("+Inf")
        } else if v == f64::NEG_INFINITY {
            Some("-Inf")
        } else {
            None
        }
    }

    /// `v` to `digits` significant digits, trailing zeros dropped; plain notation from
    /// 1e-5 to 1e15, scientific outside.
    pub fn significant(v: f64, digits: usize) -> String {
        if let Some(s) = special(v) {
            return s.to_string();
        }
        if v == 0.0 {
            return "0".to_string();
        }
        let digits = digits.max(1);
        let magnitude = v.abs().log10().floor() as i32;
        if !(-5..15).contains(&magnitude) {
            let s = format!("{v:.prec$e}", prec = digits - 1);
            let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
            return format!("{}e{exp}", trim_zeros(mantissa));
        }
        let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }

    fn trim_zeros(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
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

/// A hash map keyed by label sets, for the maps built afresh at every poll (a poll's
/// series, a result's duplicate count): a label set hashes as the one number it
/// computed when built, which foldhash (seeded at random per process) mixes in a few
/// instructions, where std's SipHash spent about a sixth of a 10,000-series poll
/// hashing label strings.
/// Walk order is arbitrary: a caller that reports in order sorts (by label set).
pub type LabelMap<'a, V> = std::collections::HashMap<&'a Labels, V, foldhash::fast::RandomState>;

/// An empty `LabelMap` with room for `n` label sets.
pub fn label_map<'a, V>(n: usize) -> LabelMap<'a, V> {
    LabelMap::with_capacity_and_hasher(n, Default::default())
}

/// One series' value at a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn new(labels: &[(&str, &str)], value: f64) -> Self {
        Sample {
            labels: labels.iter().copied().collect(),
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
