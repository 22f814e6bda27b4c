//! `rollwatch test`: unit tests for rule files, in promtool's shape. The pure part:
//! the expanding notation of input series (`notation`), the test file (`file`), the
//! series written as OpenMetrics for promtool's backfill (`openmetrics`) or, with a
//! staleness marker, as remote-write requests (`remote_write`), the
//! expectations compared with what a replay decided (`expect`), a promtool file's
//! alerting rules imported (`imported`) and its `alert_rule_test`s judged (`alerts`),
//! and the JUnit report (`junit`).
//!
//! Queries are never evaluated here: a real Prometheus does that, and the replay is
//! `run::replay`'s, the same as `rollwatch replay`'s.

pub mod alerts;
pub mod expect;
pub mod file;
pub mod imported;
pub mod junit;
pub mod notation;
pub mod openmetrics;
pub mod remote_write;
