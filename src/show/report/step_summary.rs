//! The release report in a CI job's summary page.
//!
//! GitHub Actions shows the Markdown a step appends to the file named by
//! `GITHUB_STEP_SUMMARY` on the run's summary page. When that variable is set, `watch`
//! and `replay` append the same `report.md` they write for `--report`, so the verdict and
//! its evidence are on the page without a separate upload step. The file is shared by
//! every step of the job: it is only ever appended to. A write that fails is a warning:
//! the summary is a convenience, and it must never change a watch's exit code.

use super::{markdown, Record};
use crate::core::events::{Event, Sink};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The variable GitHub Actions sets to the step's summary file.
pub const ENV: &str = "GITHUB_STEP_SUMMARY";

/// The summary file from the environment, if one is set (an empty value is none).
pub fn path_from_env() -> Option<PathBuf> {
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Appends the report's Markdown to `path`, creating the file if needed; never truncates.
pub fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut text = markdown::render(record);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // A blank line first, so the report starts its own block after an earlier step's.
    file.write_all(b"\n")?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// Appends, and turns a failure into a warning.
pub fn append_or_warn(path: &Path, record: &Record) {
    match append(path, record) {
        Ok(()) => {
            tracing::info!(event = "step_summary_written", path = %path.display(), "report appended to the job summary")
        }
        Err(e) => {
            tracing::warn!(event = "step_summary_failed", path = %path.display(), error = %e, "cannot append the report to {ENV}; the verdict is unchanged")
        }
    }
}

/// The sink that appends a watch's report to the job summary when the watch ends.
pub struct StepSummary {
    path: PathBuf,
    record: Record,
}

impl StepSummary {
    /// A sink when `GITHUB_STEP_SUMMARY` is set.
    pub fn from_env() -> Option<StepSummary> {
        path_from_env().map(|path| StepSummary {
            path,
            record: Record::default(),
        })
    }
}

impl Sink for StepSummary {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        self.record.record(at_ms, event);
    }

    fn finish(&mut self) {
        append_or_warn(&self.path, &self.record);
    }
}
