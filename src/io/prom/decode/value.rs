//! A sample's value string, as Prometheus writes it (`"0.25"`, `"NaN"`, `"+Inf"`):
//! read the same by the hand reader (`fast.rs`) and the serde one (`decode.rs`).

use crate::io::prom::QueryError;

/// Parses a Prometheus sample value string.
pub fn parse_value(s: &str) -> Result<f64, QueryError> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|_| QueryError::Decode(format!("sample value {s:?} is not a number"))),
    }
}
