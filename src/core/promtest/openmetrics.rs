//! The input series of every test of a run, laid out on one time line and written as
//! OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
//!
//! One Prometheus serves all tests of a run, so each test gets its own stretch of time:
//! test `i` starts at `bases[i]`, from a fixed day in the past (2025-01-01 UTC), with
//! 30 days between one test's end and the next test's start, so no range or `offset`
//! of one test reads another's samples. Fixed and whole-day bases keep every run's
//! instants the same and aligned with every poll grid (`run::steps` reads on absolute
//! multiples of the step). Reports show times relative to the test's own start.

use super::file::InputSeries;
use super::notation::Point;
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

/// A staleness marker cannot be backfilled: OpenMetrics text has no way to write one
/// (its `NaN` is an ordinary NaN), so a test that needs one is refused, not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRefused;

impl std::fmt::Display for StaleRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`stale` cannot be backfilled (OpenMetrics has no staleness marker); leave a gap \
             of `_` longer than Prometheus's 5m lookback instead"
        )
    }
}

type Key = (String, Vec<(String, String)>);

/// Series of several tests, gathered before they are written.
#[derive(Debug, Default)]
pub struct Backfill {
    samples: BTreeMap<Key, BTreeMap<i64, f64>>,
}

impl Backfill {
    /// Adds a test's series, its first sample at `base_ms`, one every `interval`.
    pub fn add(
        &mut self,
        base_ms: i64,
        interval: Duration,
        series: &InputSeries,
    ) -> Result<(), StaleRefused> {
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
                Point::Stale => return Err(StaleRefused),
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.samples.values().all(|s| s.is_empty())
    }

    /// The OpenMetrics text: one family per metric name, each series' samples in time
    /// order, timestamps in seconds, ending with `# EOF`.
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
        b.add(1_000, Duration::from_secs(15), &s).unwrap();
        b.add(0, Duration::from_millis(1500), &series("a_total", &[], "2"))
            .unwrap();
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
    fn stale_is_refused() {
        let mut b = Backfill::default();
        let s = series("up", &[], "1 stale");
        assert_eq!(b.add(0, Duration::from_secs(1), &s), Err(StaleRefused));
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
