//! The release report: what the watch saw and did, for the post-release review.
//!
//! `Recorder` is a sink that keeps every sample, transition and action of a watch; when
//! the watch ends (however it ends) it writes `report.json` (everything, for tools),
//! `report.md` (a short review that reads well as a CI job summary or PR comment) and
//! `report.html` (one self-contained page with an SVG chart per rule). The record
//! itself is in `record.rs`.

pub mod html;
mod markdown;
mod record;
pub mod replay;
pub mod step_summary;

pub use record::*;

use crate::core::events::{Event, Sink};
use std::path::PathBuf;

impl Record {
    /// Writes report.json, report.md and report.html into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        std::fs::write(dir.join("report.md"), markdown::render(self))?;
        std::fs::write(dir.join("report.html"), html::render(self))?;
        Ok(())
    }
}

/// The sink behind `--report DIR`.
pub struct Recorder {
    dir: PathBuf,
    record: Record,
}

impl Recorder {
    pub fn new(dir: PathBuf) -> Recorder {
        Recorder {
            dir,
            record: Record::default(),
        }
    }
}

impl Sink for Recorder {
    fn emit(&mut self, at_ms: i64, event: &Event) {
        self.record.record(at_ms, event);
    }

    fn finish(&mut self) {
        match self.record.write(&self.dir) {
            Ok(()) => {
                tracing::info!(event = "report_written", dir = %self.dir.display(), "report written to {}", self.dir.display())
            }
            Err(e) => {
                tracing::error!(event = "report_failed", dir = %self.dir.display(), error = %e, "cannot write the report")
            }
        }
    }
}

#[cfg(test)]
mod tests;
