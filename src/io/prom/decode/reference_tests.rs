//! The hand-written `data` reader (`data.rs`) against the derived serde types it
//! replaced (kept here, as they were, as the reference): every body of the fuzz
//! corpus, each also with `result` before `resultType`, and bodies made for the
//! corners of the derived code, decode to the same samples or the same error.
//! Error messages are compared without serde_json's "at line L column C".

use super::*;
use std::path::Path;

mod old {
    use super::super::{excerpt, parse_value, status_error, MAX_DUPLICATE_WARNINGS};
    use crate::core::series::{Labels, RangeSeries, Sample};
    use crate::io::prom::decode::RangeResult;
    use crate::io::prom::{QueryError, QueryResult};
    use serde::Deserialize;

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
        #[serde(default, rename = "isPartial")]
        is_partial: bool,
    }

    fn none<D>() -> Option<D> {
        None
    }

    #[derive(Deserialize)]
    #[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
    enum Data {
        Vector(Vec<VectorSample>),
        Scalar((f64, String)),
        Matrix(serde::de::IgnoredAny),
        String(serde::de::IgnoredAny),
    }

    #[derive(Deserialize)]
    #[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
    enum RangeData {
        Matrix(Vec<MatrixSeries>),
        Vector(serde::de::IgnoredAny),
        Scalar(serde::de::IgnoredAny),
        String(serde::de::IgnoredAny),
    }

    #[derive(Deserialize)]
    struct MatrixSeries {
        #[serde(default)]
        metric: Labels,
        #[serde(default)]
        values: Vec<(f64, String)>,
    }

    #[derive(Deserialize)]
    struct VectorSample {
        #[serde(default)]
        metric: Labels,
        value: (f64, String),
    }

    fn open<D: serde::de::DeserializeOwned>(
        status: u16,
        body: &[u8],
    ) -> Result<(Option<D>, Vec<String>), QueryError> {
        let env: Envelope<D> = match serde_json::from_slice(body) {
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
            return Err(QueryError::Prometheus {
                kind: "partial_response".into(),
                message: "VictoriaMetrics answered `isPartial: true` (some vmstorage nodes did not respond); the answer is not judged".into(),
            });
        }
        Ok((env.data, env.warnings.unwrap_or_default()))
    }

    fn duplicate_warnings<'a>(labels: impl Iterator<Item = &'a Labels>) -> Vec<String> {
        let mut counts: std::collections::BTreeMap<&Labels, usize> = Default::default();
        for l in labels {
            *counts.entry(l).or_default() += 1;
        }
        let dups: Vec<_> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
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

    pub fn decode(status: u16, body: &[u8]) -> Result<QueryResult, QueryError> {
        let (data, warnings) = open::<Data>(status, body)?;
        let samples = match data {
            Some(Data::Vector(v)) => v
                .into_iter()
                .map(|s| {
                    Ok(Sample {
                        labels: s.metric,
                        value: parse_value(&s.value.1)?,
                    })
                })
                .collect::<Result<Vec<_>, QueryError>>()?,
            Some(Data::Scalar((_, v))) => vec![Sample {
                labels: Labels::new(),
                value: parse_value(&v)?,
            }],
            Some(Data::Matrix(_)) => return Err(QueryError::Decode(
                "the query returned a range vector (matrix); rules need an instant vector or scalar"
                    .into(),
            )),
            Some(Data::String(_)) => {
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

    pub fn decode_range(status: u16, body: &[u8]) -> Result<RangeResult, QueryError> {
        let (data, warnings) = open::<RangeData>(status, body)?;
        let series = match data {
            Some(RangeData::Matrix(m)) => m
                .into_iter()
                .map(|s| {
                    let points = s
                        .values
                        .into_iter()
                        .map(|(t, v)| Ok(((t * 1000.0).round() as i64, parse_value(&v)?)))
                        .collect::<Result<Vec<_>, QueryError>>()?;
                    Ok(RangeSeries {
                        labels: s.metric,
                        points,
                    })
                })
                .collect::<Result<Vec<_>, QueryError>>()?,
            Some(_) => {
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
}

/// A result as text that compares NaN equal to NaN. When the body is no valid
/// answer, only that is compared, not serde's words for why: a `result` read before
/// its type was checked by serde's private `Content` (say "invalid length 3,
/// expected 2 elements in sequence") and is now read as JSON ("trailing characters").
fn shown<T: std::fmt::Debug>(r: &Result<T, QueryError>) -> String {
    match r {
        Err(QueryError::Decode(m)) if m.contains(" (body: ") => {
            format!("unreadable JSON{}", &m[m.find(" (body: ").unwrap()..])
        }
        r => format!("{r:?}"),
    }
}

/// Both decoders, every status, on one body; the differences found, as text.
fn differences(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for status in [200, 400, 422, 500, 503] {
        let (new, old) = (
            shown(&decode(status, body)),
            shown(&old::decode(status, body)),
        );
        if new != old {
            out.push(format!("decode {status}: new {new}\n  old {old}"));
        }
        let (new, old) = (
            shown(&decode_range(status, body)),
            shown(&old::decode_range(status, body)),
        );
        if new != old {
            out.push(format!("decode_range {status}: new {new}\n  old {old}"));
        }
    }
    out
}

/// The same body with every object's keys in sorted order (serde_json's `Value`
/// sorts them): `result` then comes before `resultType`.
fn keys_sorted(body: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    serde_json::to_vec(&v).ok()
}

#[test]
fn the_fuzz_corpus_decodes_as_with_the_derived_types_in_either_key_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/prom_response");
    let mut bodies = 0;
    let mut reordered = 0;
    let mut failed = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        bodies += 1;
        for d in differences(&body) {
            failed.push(format!("{}: {d}", path.display()));
        }
        if let Some(sorted) = keys_sorted(&body) {
            if sorted.windows(8).any(|w| w == b"\"result\"") {
                reordered += 1;
            }
            for d in differences(&sorted) {
                failed.push(format!("{} (keys sorted): {d}", path.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} differences:\n{}",
        failed.len(),
        failed[..failed.len().min(10)].join("\n")
    );
    assert!(bodies >= 1000, "only {bodies} bodies in {}", dir.display());
    assert!(
        reordered >= 50,
        "only {reordered} bodies with `result` first"
    );
}

/// Bodies made for the corners of the derived adjacently tagged enum.
#[test]
fn corner_cases_decode_as_with_the_derived_types() {
    let nested = |depth: usize| {
        format!(
            r#"{{"status":"success","data":{{"result":{}1{},"resultType":"matrix"}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let mut bodies: Vec<String> = [
        // Either key order, for each result type.
        r#"{"status":"success","data":{"result":[{"metric":{"a":"b"},"value":[1,"2"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[1,"2"],"resultType":"scalar"}}"#,
        r#"{"status":"success","data":{"result":[{"metric":{"a":"b"},"values":[[1,"2"],[2.5,"NaN"]]}],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":"x","resultType":"string"}}"#,
        // Other keys before, between and after.
        r#"{"status":"success","data":{"x":1e999,"result":[],"y":[1],"resultType":"vector","z":{}}}"#,
        r#"{"status":"success","data":{"x":1,"resultType":"vector","y":2,"result":[],"z":3}}"#,
        // Repeated, missing and misplaced keys.
        r#"{"status":"success","data":{"resultType":"vector","resultType":"vector","result":[]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[],"result":[]}}"#,
        r#"{"status":"success","data":{"result":[],"result":[],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[],"resultType":"vector","resultType":"vector"}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":[]}}"#,
        r#"{"status":"success","data":{}}"#,
        r#"{"status":"success","data":null}"#,
        r#"{"status":"success","data":7}"#,
        r#"{"status":"success","data":"vector"}"#,
        r#"{"status":"error","errorType":"bad_data","error":"e","data":{"result":[1e999],"resultType":"matrix"}}"#,
        r#"{"status":"error","errorType":"bad_data","error":"e","data":{"resultType":"matrix","result":[1e999]}}"#,
        // Unknown and odd result types.
        r#"{"status":"success","data":{"resultType":"histogram","result":[]}}"#,
        r#"{"status":"success","data":{"result":[],"resultType":"histogram"}}"#,
        r#"{"status":"success","data":{"resultType":{"vector":null},"result":[]}}"#,
        r#"{"status":"success","data":{"resultType":{"vector":1},"result":[]}}"#,
        r#"{"status":"success","data":{"resultType":1,"result":[]}}"#,
        r#"{"status":"success","data":{"resultType":"Vector","result":[]}}"#,
        r#"{"status":"success","data":{"result\u0054ype":"vector","r\u0065sult":[{"value":[1,"\u0032"]}]}}"#,
        // The array form of the enum.
        r#"{"status":"success","data":["vector",[{"metric":{},"value":[1,"2"]}]]}"#,
        r#"{"status":"success","data":["scalar",[1,"2"]]}"#,
        r#"{"status":"success","data":["matrix",[{"metric":{},"values":[[1,"2"]]}]]}"#,
        r#"{"status":"success","data":["vector"]}"#,
        r#"{"status":"success","data":[]}"#,
        r#"{"status":"success","data":["vector",[],1]}"#,
        // Numbers `Content` refused while buffering, where the value is then ignored.
        r#"{"status":"success","data":{"result":[{"metric":{},"value":[1,"2"],"x":1e999}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"],"x":1e999}]}}"#,
        r#"{"status":"success","data":{"result":[1e999],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":[-1e999],"resultType":"string"}}"#,
        r#"{"status":"success","data":{"result":[18446744073709551616,-9223372036854775809],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":{"\ud800":1},"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":["\ud800"],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"resultType":"matrix","result":["\ud800"]}}"#,
        // Samples and points in odd shapes.
        r#"{"status":"success","data":{"result":[[{"a":"b"},[1,"2"]]],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[[{"a":"b"},[1,"2"]]]}}"#,
        r#"{"status":"success","data":{"result":[{"value":[1,"2"],"value":[1,"3"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"metric":{"a":"b","a":"c"},"value":[1,"2"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"metric":{"a":"b"}}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"metric":{"a":null},"value":[1,"2"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"metric":null,"value":[1,"2"]}],"resultType":"vector"}}"#,
        // Label sets as the decoder now gathers them: unsorted, repeated (the last
        // wins), not a map, a value not a string, escaped; in either key order.
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"z":"1","a":"2","m":"3"},"value":[1,"2"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b","z":"y","a":"c"},"value":[1,"2"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":[],"value":[1,"2"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":null,"value":[1,"2"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"2"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a\u0000":"\"b\n"},"value":[1,"2"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"z":"1","a":"2","a":"0"},"values":[[1,"2"]]}]}}"#,
        r#"{"status":"success","data":{"result":[{"metric":{"z":"1","a":"2","m":"3"},"value":[1,"2"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"value":[1,"2",3]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"2",3]}]}}"#,
        r#"{"status":"success","data":{"result":[{"value":[1]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"value":["1","2"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"value":[1,2]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"value":{"0":1,"1":"2"}}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"value":[1,"x"]}],"resultType":"vector"}}"#,
        r#"{"status":"error","data":{"result":[{"value":[1,"x"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[{"value":[1,"\u004eaN"]}],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"\u002bInf"]}]}}"#,
        r#"{"status":"success","data":{"result":[{"values":[[1,"x"]]}],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":[{"values":null}],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":[{}],"resultType":"matrix"}}"#,
        r#"{"status":"success","data":{"result":{},"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[1,"2"],"resultType":"vector"}}"#,
        r#"{"status":"success","data":{"result":[-0,"-0"],"resultType":"scalar"}}"#,
        // The envelope in array form.
        r#"["success",{"result":[1,"5"],"resultType":"scalar"}]"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Nesting around serde_json's limit of 128, with `result` buffered first.
    for depth in 120..=130 {
        bodies.push(nested(depth));
    }
    let mut failed = Vec::new();
    for body in &bodies {
        for d in differences(body.as_bytes()) {
            failed.push(format!("{body}\n  {d}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Bodies that are not valid UTF-8 (the decoder reads a valid one as text, and any
/// other as bytes): an invalid byte in a label, a value, an ignored key, the
/// envelope, a lone continuation byte, a truncated sequence; each fails or decodes
/// as the derived types did.
#[test]
fn bodies_that_are_not_utf8_decode_as_with_the_derived_types() {
    let ok = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"2"]}]}}"#;
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for bad in [&b"\xff"[..], b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80"] {
        for at in ["\"b\"", "\"a\"", "\"2\"", "\"vector\"", "\"success\""] {
            let text = String::from_utf8_lossy(ok).to_string();
            let i = text.find(at).unwrap() + 1;
            let mut body = ok[..i].to_vec();
            body.extend_from_slice(bad);
            body.extend_from_slice(&ok[i..]);
            bodies.push(body);
        }
        let mut ignored = br#"{"status":"success","x":""#.to_vec();
        ignored.extend_from_slice(bad);
        ignored.extend_from_slice(br#"","data":{"resultType":"vector","result":[]}}"#);
        bodies.push(ignored);
        let mut outside = ok.to_vec();
        outside.extend_from_slice(bad);
        bodies.push(outside);
    }
    let mut failed = Vec::new();
    for body in &bodies {
        assert!(std::str::from_utf8(body).is_err());
        for d in differences(body) {
            failed.push(format!("{}\n  {d}", String::from_utf8_lossy(body)));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
