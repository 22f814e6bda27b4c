//! Decoding Prometheus's `/api/v1/query` response into samples.
//!
//! Pure and total: any bytes in, samples or an error out, never a panic. Handles the
//! `vector` and `scalar` result types (the ones an instant query can judge), the value
//! strings `NaN`, `+Inf`, `-Inf`, error bodies, and non-JSON bodies such as the plain
//! text 503 Prometheus sends before it is ready.
//!
//! A result that holds the same label set more than once (Prometheus refuses to build
//! one, but a proxy merging replicas, VictoriaMetrics or a federation overlap can send
//! it) keeps every sample, and gets a warning naming each duplicated label set: the
//! evaluator judges duplicates deterministically (see `eval`), and the warning travels
//! with the poll into the log and the report.
//!
//! Cost matters here: one poll may bring 10,000 series. The `data` object is read by
//! hand (`data.rs`) straight into samples, with no buffered copy of `result`
//! whatever the key order, and behaves exactly as the derived serde types it replaced
//! (`reference_tests.rs` keeps those and compares). The usual shape of an instant
//! answer is read faster still, without serde (`fast.rs`), and any other by serde.

mod data;
mod fast;
mod value;

use super::{QueryError, QueryResult};
pub use crate::core::series::RangeSeries;
use crate::core::series::{Labels, Sample};
use data::{Data, RangeData};
use serde::Deserialize;
pub use value::parse_value;

/// The response envelope shared by every endpoint; `D` is the endpoint's `data`.
#[derive(Deserialize)]
struct Envelope<D> {
    status: String,
    #[serde(default = "none")]
    data: Option<D>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    /// VictoriaMetrics cluster: some vmstorage nodes did not answer (unless vmselect
    /// runs with `-search.denyPartialResponse`).
    #[serde(default, rename = "isPartial")]
    is_partial: bool,
}

/// A successful range query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeResult {
    pub series: Vec<RangeSeries>,
    pub warnings: Vec<String>,
}

/// Decodes a `/api/v1/query_range` response.
pub fn decode_range(status: u16, body: &[u8]) -> Result<RangeResult, QueryError> {
    let (data, warnings) = open::<RangeData>(status, body)?;
    let series = match data {
        Some(RangeData::Matrix(m)) => {
            let mut series = Vec::with_capacity(m.len());
            for s in m {
                let mut points = Vec::with_capacity(s.values.len());
                for p in s.values {
                    points.push(((p.time * 1000.0).round() as i64, parse_value(&p.value)?));
                }
                series.push(RangeSeries {
                    labels: s.metric,
                    points,
                });
            }
            series
        }
        Some(RangeData::Other) => {
            return Err(QueryError::Decode(
                "a range query did not return a matrix".into(),
            ))
        }
        None => return Err(QueryError::Decode("success response without `data`".into())),
    };
    let mut warnings = warnings;
    warnings.extend(duplicate_warnings(series.iter().map(|s| &s.labels)));
    Ok(RangeResult { series, warnings })
}

/// At most this many duplicated label sets are named per result (then a count), so
/// a badly broken source cannot flood the log at every poll.
const MAX_DUPLICATE_WARNINGS: usize = 5;

/// One warning per label set that occurs more than once, in label order.
///
/// Counted in a hash map: each label set is hashed once, where a `BTreeMap` compared
/// it with about log2(n) others (label by label), a few milliseconds per poll at
/// 10,000 series. Only the duplicates are then sorted.
fn duplicate_warnings<'a>(labels: impl ExactSizeIterator<Item = &'a Labels>) -> Vec<String> {
    let mut counts = crate::core::series::label_map::<usize>(labels.len());
    for l in labels {
        *counts.entry(l).or_default() += 1;
    }
    let mut dups: Vec<_> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    dups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<String> = dups
        .iter()
        .take(MAX_DUPLICATE_WARNINGS)
        .map(|(l, n)| {
            format!(
                "the result holds {n} series with the same labels {}; rollwatch judges the value most in breach",
                serde_json::to_string(l).unwrap_or_default()
            )
        })
        .collect();
    if dups.len() > MAX_DUPLICATE_WARNINGS {
        out.push(format!(
            "and {} more label sets occur more than once in the result",
            dups.len() - MAX_DUPLICATE_WARNINGS
        ));
    }
    out
}

fn none<D>() -> Option<D> {
    None
}

/// Parses the envelope and turns every kind of failure into a classified error:
/// a non-JSON body (HTTP error or garbage), `status: error`, a non-2xx status.
/// Returns the `data` (if any) and the warnings.
fn open<'a, D: Deserialize<'a>>(
    status: u16,
    body: &'a [u8],
) -> Result<(Option<D>, Vec<String>), QueryError> {
    let parsed = match std::str::from_utf8(body) {
        // Every answer Prometheus writes: read as text, so that serde_json checks no
        // string's encoding again (a tenth of a 10,000-series decode). The grammar,
        // the values and the errors' text are the same either way.
        Ok(text) => serde_json::from_str(text),
        // Otherwise as bytes, so that such a body fails exactly as it always has.
        Err(_) => serde_json::from_slice(body),
    };
    let env: Envelope<D> = match parsed {
        Ok(env) => env,
        Err(e) => {
            return Err(if (200..300).contains(&status) {
                QueryError::Decode(format!("{e} (body: {:?})", excerpt(body)))
            } else {
                QueryError::Http {
                    status,
                    body: excerpt(body),
                }
            })
        }
    };
    if env.status != "success" {
        return Err(status_error(status, env.error_type, env.error));
    }
    if !(200..300).contains(&status) {
        return Err(QueryError::Http {
            status,
            body: excerpt(body),
        });
    }
    if env.is_partial {
        // The missing part may hold the breaching series (or the only sample of a
        // `no_data: breach` rule): judging it would call a breach healthy. A failed
        // poll instead, which counts towards `max_blind` like any other.
        return Err(QueryError::Prometheus {
            kind: "partial_response".into(),
            message: "VictoriaMetrics answered `isPartial: true` (some vmstorage nodes did not respond); the answer is not judged".into(),
        });
    }
    Ok((env.data, env.warnings.unwrap_or_default()))
}

fn status_error(status: u16, kind: Option<String>, message: Option<String>) -> QueryError {
    let kind = kind.unwrap_or_else(|| "unknown".into());
    let message = message.unwrap_or_else(|| "(no message)".into());
    if (status == 400 && kind == "bad_data") || vm_rejects_query(status, &kind, &message) {
        QueryError::BadQuery { kind, message }
    } else {
        QueryError::Prometheus { kind, message }
    }
}

/// VictoriaMetrics (as of 1.79) answers a query it cannot parse, or one naming a
/// function it does not know, with HTTP 422 and `errorType: "422"`, the status it
/// also uses for execution failures such as too many series (which a retry may get
/// past). Only the parse and unknown-function messages make the query itself wrong.
fn vm_rejects_query(status: u16, kind: &str, message: &str) -> bool {
    status == 422
        && kind == "422"
        && ["cannot parse", "unparsed data", "unknown func"]
            .iter()
            .any(|m| message.contains(m))
}

/// A short, printable excerpt of a body for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let trimmed = one_line.trim().to_string();
    if text.chars().count() > 200 {
        format!("{trimmed}…")
    } else {
        trimmed
    }
}

/// Decodes a response given its HTTP status and body.
pub fn decode(status: u16, body: &[u8]) -> Result<QueryResult, QueryError> {
    // The one shape nearly every answer has, read by hand; anything else (an error,
    // warnings, escapes, another key order) by the general reader below.
    if (200..300).contains(&status) {
        if let Some(samples) = fast::vector(body) {
            let warnings = duplicate_warnings(samples.iter().map(|s| &s.labels));
            return Ok(QueryResult { samples, warnings });
        }
    }
    decode_general(status, body)
}

/// `decode` by serde alone: every body, valid or not. `decode` gives the same for any
/// body (public for the fuzzer, which checks that).
#[doc(hidden)]
pub fn decode_general(status: u16, body: &[u8]) -> Result<QueryResult, QueryError> {
    let (data, warnings) = open::<Data>(status, body)?;
    let samples = match data {
        Some(Data::Vector(v)) => {
            let mut samples = Vec::with_capacity(v.len());
            for s in v {
                samples.push(Sample {
                    labels: s.metric,
                    value: parse_value(&s.value.value)?,
                });
            }
            samples
        }
        Some(Data::Scalar(p)) => vec![Sample {
            labels: Labels::new(),
            value: parse_value(&p.value)?,
        }],
        Some(Data::Matrix) => return Err(QueryError::Decode(
            "the query returned a range vector (matrix); rules need an instant vector or scalar"
                .into(),
        )),
        Some(Data::String) => {
            return Err(QueryError::Decode(
                "the query returned a string, not a number".into(),
            ))
        }
        None => return Err(QueryError::Decode("success response without `data`".into())),
    };
    let mut warnings = warnings;
    warnings.extend(duplicate_warnings(samples.iter().map(|s| &s.labels)));
    Ok(QueryResult { samples, warnings })
}

#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod reference_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vector_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000.5,"0.25"]},
            {"metric":{"pod":"b"},"value":[1700000000.5,"NaN"]},
            {"metric":{"pod":"c"},"value":[1700000000.5,"+Inf"]},
            {"metric":{},"value":[1700000000.5,"-Inf"]}]}}"#;
        let r = decode(200, body).unwrap();
        assert_eq!(r.samples.len(), 4);
        assert_eq!(&r.samples[0].labels["pod"], "a");
        assert_eq!(r.samples[0].value, 0.25);
        assert!(r.samples[1].value.is_nan());
        assert_eq!(r.samples[2].value, f64::INFINITY);
        assert_eq!(r.samples[3].value, f64::NEG_INFINITY);
    }

    #[test]
    fn decodes_scalar_and_warnings() {
        let body = br#"{"status":"success","warnings":["partial response"],"data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        let r = decode(200, body).unwrap();
        assert_eq!(
            r.samples,
            vec![Sample {
                labels: Labels::new(),
                value: 3.0
            }]
        );
        assert_eq!(r.warnings, vec!["partial response".to_string()]);
    }

    #[test]
    fn duplicate_label_sets_keep_every_sample_and_are_warned_about() {
        let body = br#"{"status":"success","warnings":["partial response"],"data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000,"0.1"]},
            {"metric":{"pod":"b"},"value":[1700000000,"0.2"]},
            {"metric":{"pod":"a"},"value":[1700000000,"0.9"]},
            {"metric":{"pod":"a"},"value":[1700000000,"0.3"]}]}}"#;
        let r = decode(200, body).unwrap();
        // Every sample reaches the evaluator, which judges duplicates deterministically.
        assert_eq!(r.samples.len(), 4);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert_eq!(r.warnings[0], "partial response");
        assert_eq!(
            r.warnings[1],
            r#"the result holds 3 series with the same labels {"pod":"a"}; rollwatch judges the value most in breach"#
        );
        let unique = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000,"0.1"]},
            {"metric":{"pod":"b"},"value":[1700000000,"0.2"]}]}}"#;
        assert!(decode(200, unique).unwrap().warnings.is_empty());
        let many: Vec<String> = (0..8)
            .flat_map(|i| [i, i])
            .map(|i| format!(r#"{{"metric":{{"pod":"{i}"}},"value":[1,"1"]}}"#))
            .collect();
        let many = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            many.join(",")
        );
        let w = decode(200, many.as_bytes()).unwrap().warnings;
        assert_eq!(w.len(), MAX_DUPLICATE_WARNINGS + 1, "{w:?}");
        assert_eq!(
            w[5],
            "and 3 more label sets occur more than once in the result"
        );
        let range = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1700000000,"1"]]},
            {"metric":{},"values":[[1700000000,"2"]]}]}}"#;
        assert_eq!(
            decode_range(200, range).unwrap().warnings,
            ["the result holds 2 series with the same labels {}; rollwatch judges the value most in breach"]
        );
    }

    /// JSON key order is free (a proxy may re-serialise the body): `result` may come
    /// before `resultType`, for every result type, with other keys around them.
    #[test]
    fn result_before_result_type_decodes_the_same() {
        let vector = br#"{"data":{"result":[{"value":[1700000000,"0.5"],"metric":{"pod":"a"}},{"metric":{},"value":[1700000000,"NaN"]}],"stats":{},"resultType":"vector"},"status":"success"}"#;
        let r = decode(200, vector).unwrap();
        assert_eq!(r.samples[0], Sample::new(&[("pod", "a")], 0.5));
        assert!(r.samples[1].labels.is_empty() && r.samples[1].value.is_nan());
        let scalar =
            br#"{"status":"success","data":{"result":[1700000000,"+Inf"],"resultType":"scalar"}}"#;
        assert_eq!(decode(200, scalar).unwrap().samples[0].value, f64::INFINITY);
        let matrix = br#"{"status":"success","data":{"result":[{"values":[[1700000000,"1"],[1700000015.25,"-Inf"]],"metric":{"pod":"a"}}],"resultType":"matrix"}}"#;
        let r = decode_range(200, matrix).unwrap();
        assert_eq!(&r.series[0].labels["pod"], "a");
        assert_eq!(
            r.series[0].points,
            [
                (1_700_000_000_000, 1.0),
                (1_700_000_015_250, f64::NEG_INFINITY)
            ]
        );
        assert!(matches!(decode(200, matrix), Err(QueryError::Decode(_))));
        assert!(matches!(
            decode_range(200, vector),
            Err(QueryError::Decode(_))
        ));
        let bad_value = br#"{"status":"success","data":{"result":[{"metric":{},"value":[1,"x"]}],"resultType":"vector"}}"#;
        let e = decode(200, bad_value).unwrap_err();
        assert_eq!(
            e,
            QueryError::Decode(r#"sample value "x" is not a number"#.into())
        );
        // A value string with an escape cannot be borrowed from the body; it still reads.
        let escaped = br#"{"status":"success","data":{"result":[{"metric":{},"value":[1,"\u0031.5"]}],"resultType":"vector"}}"#;
        assert_eq!(decode(200, escaped).unwrap().samples[0].value, 1.5);
    }

    /// Duplicated label sets are named in label order, whatever order they came in.
    #[test]
    fn duplicate_warnings_are_in_label_order() {
        let samples: Vec<String> = ["c", "b", "a", "c", "b", "a", "z"]
            .iter()
            .map(|p| format!(r#"{{"metric":{{"pod":"{p}"}},"value":[1,"1"]}}"#))
            .collect();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            samples.join(",")
        );
        let w = decode(200, body.as_bytes()).unwrap().warnings;
        let named: Vec<&str> = w
            .iter()
            .map(|w| &w[w.find('{').unwrap()..w.find('}').unwrap() + 1])
            .collect();
        assert_eq!(
            named,
            [r#"{"pod":"a"}"#, r#"{"pod":"b"}"#, r#"{"pod":"c"}"#]
        );
    }

    #[test]
    fn error_bodies_are_classified() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(decode(400, bad).unwrap_err().is_bad_query());
        let exec = br#"{"status":"error","errorType":"execution","error":"too many samples"}"#;
        assert!(matches!(
            decode(422, exec),
            Err(QueryError::Prometheus { .. })
        ));
        assert!(matches!(
            decode(503, b"Service Unavailable"),
            Err(QueryError::Http { status: 503, .. })
        ));
        assert!(matches!(
            decode(200, b"{\"status\":\"succ"),
            Err(QueryError::Decode(_))
        ));
        assert!(matches!(decode(200, b"<html>"), Err(QueryError::Decode(_))));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(decode(200, matrix), Err(QueryError::Decode(_))));
        let bad_value = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#;
        assert!(matches!(decode(200, bad_value), Err(QueryError::Decode(_))));
    }

    #[test]
    fn decodes_matrix_to_millisecond_points() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1700000000,"1"],[1700000010.5,"NaN"]]}]}}"#;
        let r = decode_range(200, body).unwrap();
        assert_eq!(&r.series[0].labels["pod"], "a");
        assert_eq!(r.series[0].points[0], (1_700_000_000_000, 1.0));
        assert_eq!(r.series[0].points[1].0, 1_700_000_010_500);
        assert!(r.series[0].points[1].1.is_nan());
        let too_many = br#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#;
        assert!(decode_range(400, too_many).unwrap_err().is_bad_query());
    }

    /// Bodies recorded from VictoriaMetrics 1.79.5 (Debian's `victoria-metrics`).
    #[test]
    fn victoria_metrics_parse_and_unknown_function_errors_are_bad_queries() {
        let unknown = br#"{"status":"error","errorType":"422","error":"error when executing query=\"mad_over_time(rw_x[1m])\" for (time=1795394229685, step=300000): unknown func \"mad_over_time\""}"#;
        let e = decode(422, unknown).unwrap_err();
        assert!(e.is_bad_query(), "{e:?}");
        assert!(e.to_string().contains("unknown func"), "{e}");
        let parse = br#"{"status":"error","errorType":"422","error":"error when executing query=\"rw_x{\" for (time=1795394175585, step=300000): labelFilterExpr: unexpected token \"\"; want \"ident\"; unparsed data: \"\""}"#;
        assert!(decode(422, parse).unwrap_err().is_bad_query());
        assert!(decode_range(422, parse).unwrap_err().is_bad_query());
        // Other 422s (too many series, timeouts) may pass on a retry: not the query's fault.
        let limit = br#"{"status":"error","errorType":"422","error":"error when executing query=\"rw_x\": cannot select more than -search.maxUniqueTimeseries=300000 time series"}"#;
        assert!(matches!(
            decode(422, limit),
            Err(QueryError::Prometheus { .. })
        ));
        // Prometheus's own execution errors (422 `execution`) stay retryable too.
        let prom =
            br#"{"status":"error","errorType":"execution","error":"unknown func in a message"}"#;
        assert!(!decode(422, prom).unwrap_err().is_bad_query());
    }

    /// Single-node VictoriaMetrics answers exactly like Prometheus (recorded from
    /// 1.79.5); newer releases add `stats`, which is not ours to judge and is ignored.
    #[test]
    fn victoria_metrics_success_bodies_decode_like_prometheus() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"rw_x","a":"b"},"value":[1795394205,"0.7"]}]}}"#;
        let r = decode(200, vector).unwrap();
        assert_eq!(r.samples[0].value, 0.7);
        assert!(r.warnings.is_empty());
        let with_stats = br#"{"status":"success","isPartial":false,"stats":{"seriesFetched":"1","executionTimeMsec":0},"data":{"resultType":"vector","result":[{"metric":{"__name__":"rw_x","a":"b"},"value":[1795394205,"0.7"]}]}}"#;
        assert_eq!(decode(200, with_stats).unwrap(), r);
        let range = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"rw_z"},"values":[[1795383439,"0"],[1795383449,"0"],[1795383459,"0.1"]]}]}}"#;
        let r = decode_range(200, range).unwrap();
        assert_eq!(r.series[0].points[2], (1_795_383_459_000, 0.1));
    }

    /// vmselect (cluster) sets `isPartial: true` when some vmstorage nodes did not
    /// answer; the body has the shape of its query response template.
    #[test]
    fn a_partial_victoria_metrics_answer_is_a_failed_poll_not_data() {
        let partial = br#"{"status":"success","isPartial":true,"data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1795394205,"0.1"]}]}}"#;
        let e = decode(200, partial).unwrap_err();
        assert!(
            matches!(&e, QueryError::Prometheus { kind, .. } if kind == "partial_response"),
            "{e:?}"
        );
        assert!(!e.is_bad_query());
        assert!(e.to_string().contains("isPartial"), "{e}");
        let empty =
            br#"{"status":"success","isPartial":true,"data":{"resultType":"vector","result":[]}}"#;
        assert!(
            decode(200, empty).is_err(),
            "an empty partial answer is no `no data`"
        );
        let range =
            br#"{"status":"success","isPartial":true,"data":{"resultType":"matrix","result":[]}}"#;
        assert!(decode_range(200, range).is_err());
    }

    /// CI replays the fuzzer's corpus and the crashes it found (fuzz/corpus and
    /// fuzz/regressions) without cargo-fuzz: no input may panic.
    #[test]
    fn replays_the_fuzz_corpus_without_panicking() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut inputs = 0;
        for dir in ["corpus/prom_response", "regressions/prom_response"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let body = std::fs::read(&path).unwrap();
                for status in [200, 400, 422, 500, 503] {
                    let _ = decode(status, &body);
                    let _ = decode_range(status, &body);
                }
                inputs += 1;
            }
        }
        assert!(
            inputs >= 10,
            "only {inputs} inputs found under {}",
            root.display()
        );
    }

    #[test]
    fn never_panics_on_prefixes_of_a_valid_body() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1.5,"2"]}]}}"#;
        for i in 0..body.len() {
            let _ = decode(200, &body[..i]);
        }
    }
}
