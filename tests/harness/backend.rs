//! One harness backend trait, so that a watch scenario runs on each metrics backend
//! rollwatch supports: the shared Prometheus and the shared VictoriaMetrics, both
//! scraping the same exporter. A scenario is written once, generic over `Backend`
//! (`tests/scenarios.rs`), and instantiated on each.

use super::victoria::Victoria;
use super::{Exporter, Prom};

/// A running metrics backend the tests can point `rollwatch` at.
pub trait Backend: Sync {
    /// The URL given to `--prometheus`.
    fn url(&self) -> &str;
    /// The exporter it scrapes (set a series, then `await_value` until it shows).
    fn exporter(&self) -> &Exporter;
    /// The value of `query` now, if it has exactly one sample.
    fn value(&self, query: &str) -> Option<f64>;

    /// Sets `series` on the exporter and waits until the backend answers `value`.
    fn set(&self, series: &str, value: f64) {
        self.exporter().set(series, value);
        super::await_value_of(
            "the backend",
            series,
            || self.value(series),
            |v| v == Some(value),
        );
    }
}

impl Backend for Prom {
    fn url(&self) -> &str {
        &self.url
    }
    fn exporter(&self) -> &Exporter {
        &self.exporter
    }
    fn value(&self, query: &str) -> Option<f64> {
        Prom::value(self, query)
    }
}

impl Backend for Victoria {
    fn url(&self) -> &str {
        &self.url
    }
    fn exporter(&self) -> &Exporter {
        &self.exporter
    }
    fn value(&self, query: &str) -> Option<f64> {
        Victoria::value(self, query)
    }
}
