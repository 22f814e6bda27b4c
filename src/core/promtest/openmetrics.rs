//! The input series of every test of a run, laid out on one time line and written as
//! OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`, or, when a
//! series has a staleness marker (`stale`, which OpenMetrics text cannot carry), as
//! remote-write requests in global time order (`remote_write`).
//!
//! One Prometheus serves all tests of a run, so each test gets its own stretch of time:
//! test `i` starts at `bases[i]`, from a fixed day in the past (2025-01-01 UTC), with
//! 30 days between one test's end and the next test's start, so no range or `offset`
//! of one test reads another's samples. Fixed and whole-day bases keep every run's
//! instants the same and aligned with every poll grid (`run::steps` reads on absolute
//! multiples of the step). Reports show times relative to the test's own start.

use super::file::InputSeries;
use super::notation::Point;
use super::remote_write::{self, STALE_NAN_BITS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Where the first test starts: 2025-01-01T00:00:00Z, in Unix ms.
pub const BASE_MS: i64 = 1_735_689_600_000;
const DAY_MS: i64 = 86_400_000;
/// Between one test's last instant and the next test's start.
pub const GAP_MS: i64 = 30 * DAY_MS;

/// Each test's start, given how long each spans (ms, from its start to its last
/// sample or evaluation, whichever is later).
pub fn bases(spans: &[i64]) -> Vec<i64> {
    let mut out = Vec::with_capacity(spans.len());
    let mut at = BASE_MS;
    for span in spans {
        out.push(at);
        let end = at + span.max(&0);
        at = (end + DAY_MS - 1).div_euclid(DAY_MS) * DAY_MS + GAP_MS;
    }
    out
}

type Key = (String, Vec<(String, String)>);

/// Series of several tests, gathered before they are written.
#[derive(Debug, Default)]
pub struct Backfill {
    samples: BTreeMap<Key, BTreeMap<i64, f64>>,
}

impl Backfill {
    /// Adds a test's series, its first sample at `base_ms`, one every `interval`; a
    /// `stale` is Prometheus's staleness marker (`value.StaleNaN`).
    pub fn add(&mut self, base_ms: i64, interval: Duration, series: &InputSeries) {
        let step = interval.as_millis() as i64;
        let points = self
            .samples
            .entry((series.name.clone(), series.labels.clone()))
            .or_default();
        for (i, p) in series.points.iter().enumerate() {
            let at = base_ms + i as i64 * step;
            match *p {
                Point::Value(v) => {
                    points.insert(at, v);
                }
                Point::Missing => {}
                Point::Stale => {
                    points.insert(at, f64::from_bits(STALE_NAN_BITS));
                }
            }
        }
    }

    /// Whether a series has a staleness marker: then only remote write can load them.
    pub fn has_stale(&self) -> bool {
        self.samples
            .values()
            .any(|s| s.values().any(|v| v.to_bits() == STALE_NAN_BITS))
    }

    /// Every sample as remote-write request bodies, in global time order (all series
    /// interleaved by timestamp; one series' samples at an instant in the order of the
    /// series' names and labels).
    pub fn remote_write(&self) -> Result<Vec<Vec<u8>>, snap::Error> {
        let mut all: Vec<remote_write::Point> = self
            .samples
            .iter()
            .flat_map(|((name, labels), points)| {
                points
                    .iter()
                    .map(move |(at, v)| (name.as_str(), labels.as_slice(), *at, *v))
            })
            .collect();
        // Stable: at one instant, the series stay in the map's order.
        all.sort_by_key(|p| p.2);
        remote_write::requests(all, remote_write::PER_REQUEST)
    }

    pub fn is_empty(&self) -> bool {
        self.samples.values().all(|s| s.is_empty())
    }

    /// The OpenMetrics text: one family per metric name, each series' samples in time
    /// order, timestamps in seconds, ending with `# EOF` (a staleness marker would be an
    /// ordinary `NaN` here: `has_stale` runs go through `remote_write`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ((name, labels), points) in &self.samples {
            let mut head = name.clone();
            if !labels.is_empty() {
                head.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        head.push(',');
                    }
                    let _ = write!(head, "{k}=\"{}\"", escape(v));
                }
                head.push('}');
            }
            for (at, v) in points {
                let _ = writeln!(
                    out,
                    "{head} {} {}.{:03}",
                    value(*v),
                    at.div_euclid(1000),
                    at.rem_euclid(1000)
                );
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, labels: &[(&str, &str)], values: &str) -> InputSeries {
        InputSeries {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: crate::core::promtest::notation::parse(values).unwrap(),
            pos: Default::default(),
        }
    }

    #[test]
    fn series_are_written_in_time_order_with_escaped_labels() {
        let mut b = Backfill::default();
        let s = series("up", &[("job", "a\"b\\c\nd")], "1 _ NaN Inf -Inf 0.5");
        b.add(1_000, Duration::from_secs(15), &s);
        b.add(0, Duration::from_millis(1500), &series("a_total", &[], "2"));
        assert!(!b.has_stale());
        assert_eq!(
            b.render(),
            "a_total 2.0 0.000\n\
             up{job=\"a\\\"b\\\\c\\nd\"} 1.0 1.000\n\
             up{job=\"a\\\"b\\\\c\\nd\"} NaN 31.000\n\
             up{job=\"a\\\"b\\\\c\\nd\"} +Inf 46.000\n\
             up{job=\"a\\\"b\\\\c\\nd\"} -Inf 61.000\n\
             up{job=\"a\\\"b\\\\c\\nd\"} 0.5 76.000\n\
             # EOF\n"
        );
    }

    #[test]
    fn stale_is_a_staleness_marker_sent_in_global_time_order() {
        use crate::core::promtest::remote_write::WriteRequest;
        use prost::Message as _;
        let mut b = Backfill::default();
        b.add(
            30_000,
            Duration::from_secs(60),
            &series("a", &[], "5 _ NaN"),
        );
        assert!(!b.has_stale());
        b.add(0, Duration::from_secs(60), &series("z", &[], "1 stale 2"));
        b.add(
            BASE_MS,
            Duration::from_secs(60),
            &series("a", &[], "1 stale"),
        );
        assert!(b.has_stale());
        let bodies = b.remote_write().unwrap();
        assert_eq!(bodies.len(), 1);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&bodies[0])
            .unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        let got: Vec<(String, i64, u64)> = req
            .timeseries
            .iter()
            .flat_map(|ts| {
                ts.samples
                    .iter()
                    .map(|s| (ts.labels[0].value.clone(), s.timestamp, s.value.to_bits()))
            })
            .collect();
        let stale = STALE_NAN_BITS;
        let f = |v: f64| v.to_bits();
        assert_eq!(
            got,
            [
                ("z".to_string(), 0, f(1.0)),
                ("a".to_string(), 30_000, f(5.0)),
                ("z".to_string(), 60_000, stale),
                ("z".to_string(), 120_000, f(2.0)),
                ("a".to_string(), 150_000, f(f64::NAN)),
                ("a".to_string(), BASE_MS, f(1.0)),
                ("a".to_string(), BASE_MS + 60_000, stale),
            ]
        );
    }

    #[test]
    fn tests_are_whole_days_and_a_month_apart() {
        let b = bases(&[0, 3_600_000, DAY_MS + 1]);
        assert_eq!(b[0], BASE_MS);
        assert_eq!(b[1], BASE_MS + GAP_MS);
        assert_eq!(b[2], BASE_MS + DAY_MS + 2 * GAP_MS);
        assert!(b.iter().all(|x| x % DAY_MS == 0));
    }
}
