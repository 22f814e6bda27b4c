//! Test series as Prometheus remote-write 1.0 requests, for the runs whose input has a
//! staleness marker (`stale`): OpenMetrics text cannot carry one (its `NaN` is an
//! ordinary NaN), remote write carries the exact float Prometheus writes itself
//! (`value.StaleNaN`, bits `0x7ff0000000000002`).
//!
//! The four messages are prometheus/prometheus `prompb/types.proto` and `remote.proto`
//! (`WriteRequest.timeseries = 1`; `TimeSeries.labels = 1`, `samples = 2`;
//! `Label.name = 1`, `value = 2`; `Sample.value = 1`, `timestamp = 2` in ms), derived
//! by hand with prost. Each body is snappy block-compressed, as the protocol requires.
//!
//! Order matters: Prometheus's head refuses a sample older than its newest minus an
//! hour, and the tests of a run lie days apart. So the samples go in global time order
//! (all series interleaved by timestamp), and the requests keep that order exactly: a
//! request holds consecutive samples, a `TimeSeries` a run of one series among them.

/// Prometheus's staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// Samples per request: small enough for any receiver's body limit.
pub const PER_REQUEST: usize = 2_000;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One sample of a series: its metric name, labels, Unix ms and value.
pub type Point<'a> = (&'a str, &'a [(String, String)], i64, f64);

/// The series' label set as Prometheus keeps it: `__name__` and the labels, sorted by
/// name.
fn label_set(name: &str, labels: &[(String, String)]) -> Vec<Label> {
    let mut out: Vec<Label> = std::iter::once(("__name__", name))
        .chain(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map(|(k, v)| Label {
            name: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The request bodies (protobuf, snappy-compressed), `per_request` samples each, for
/// `points` already in global time order; their order is kept.
pub fn requests<'a>(
    points: impl IntoIterator<Item = Point<'a>>,
    per_request: usize,
) -> Result<Vec<Vec<u8>>, snap::Error> {
    let mut bodies = Vec::new();
    let mut req = WriteRequest::default();
    let mut count = 0;
    let mut last: Option<(&str, &[(String, String)])> = None;
    let mut enc = snap::raw::Encoder::new();
    for (name, labels, at, value) in points {
        let sample = Sample {
            value,
            timestamp: at,
        };
        match req.timeseries.last_mut() {
            Some(ts) if last == Some((name, labels)) => ts.samples.push(sample),
            _ => req.timeseries.push(TimeSeries {
                labels: label_set(name, labels),
                samples: vec![sample],
            }),
        }
        last = Some((name, labels));
        count += 1;
        if count == per_request.max(1) {
            bodies.push(enc.compress_vec(&prost::Message::encode_to_vec(&req))?);
            req = WriteRequest::default();
            count = 0;
            last = None;
        }
    }
    if count > 0 {
        bodies.push(enc.compress_vec(&prost::Message::encode_to_vec(&req))?);
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn requests_keep_global_time_order_and_the_stale_marker_bit_for_bit() {
        let job = vec![("job".to_string(), "a".to_string())];
        let stale = f64::from_bits(STALE_NAN_BITS);
        let points: Vec<Point> = vec![
            ("up", &job, 0, 1.0),
            ("b", &[], 0, 2.0),
            ("up", &job, 60_000, stale),
            ("up", &job, 120_000, f64::NAN),
            ("b", &[], 120_000, 3.0),
        ];
        let bodies = requests(points, 4).unwrap();
        assert_eq!(bodies.len(), 2);
        let first = decode(&bodies[0]);
        let labels = |ts: &TimeSeries| -> Vec<(String, String)> {
            ts.labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect()
        };
        assert_eq!(first.timeseries.len(), 3);
        assert_eq!(
            labels(&first.timeseries[0]),
            [("__name__".into(), "up".into()), ("job".into(), "a".into())]
        );
        assert_eq!(
            labels(&first.timeseries[1]),
            [("__name__".to_string(), "b".to_string())]
        );
        // One run of `up`: the marker and the ordinary NaN after it, each kept as is.
        let run = &first.timeseries[2].samples;
        assert_eq!(run.len(), 2);
        assert_eq!(
            (run[0].timestamp, run[0].value.to_bits()),
            (60_000, STALE_NAN_BITS)
        );
        assert!(run[1].value.is_nan() && run[1].value.to_bits() != STALE_NAN_BITS);
        let second = decode(&bodies[1]);
        assert_eq!(second.timeseries.len(), 1);
        assert_eq!(
            second.timeseries[0].samples,
            [Sample {
                value: 3.0,
                timestamp: 120_000
            }]
        );
    }

    #[test]
    fn labels_sort_by_name_with_the_metric_name_among_them() {
        let labels = vec![
            ("zone".to_string(), "x".to_string()),
            ("Job".to_string(), "y".to_string()),
        ];
        let names: Vec<String> = label_set("m", &labels)
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["Job", "__name__", "zone"]);
    }
}
