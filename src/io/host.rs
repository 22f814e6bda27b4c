//! The machine rollwatch runs on, as the core's loaders may read it.
//!
//! The core is pure: it loads a rule file or a calendar from its text, and what a rule
//! file points at outside itself (a channel URL in an environment variable or a file)
//! it asks of an `Outside` it is handed. This is where those are read: the files
//! themselves (`load_rules`, `load_calendar`) and `Host`, the `Outside` every command
//! and the agent pass.

use crate::core::calendar::{self, CalendarError};
use crate::core::rules::{self, Diagnostic, LoadError, LoadOptions, Outside};
use std::path::Path;

/// This machine's environment and file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

/// The one `Host` (what `LoadOptions::outside` points at).
pub static HOST: Host = Host;

impl Outside for Host {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Reads and loads a rule file, applying `opts` (`--set` overrides); its `env:` and
/// `file:` sources are read on this machine unless `opts` names another `Outside`.
pub fn load_rules(path: &Path, opts: &LoadOptions) -> Result<rules::Loaded, LoadError> {
    let shown = path.display().to_string();
    let opts = LoadOptions {
        outside: opts.outside.or(Some(&HOST)),
        ..*opts
    };
    match std::fs::read_to_string(path) {
        Ok(text) => rules::load_str(&shown, &text, &opts).map(|(mut spec, w)| {
            spec.path = path.to_path_buf();
            (spec, w)
        }),
        Err(e) => Err(LoadError {
            path: shown,
            source_text: String::new(),
            diagnostics: vec![Diagnostic::error(
                format!("cannot read the rule file: {e}"),
                None,
            )],
        }),
    }
}

/// Reads and loads a calendar file.
pub fn load_calendar(path: &Path) -> Result<calendar::Loaded, CalendarError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => calendar::load_str(&shown, &text),
        Err(e) => Err(CalendarError {
            path: shown,
            source_text: String::new(),
            diagnostics: vec![Diagnostic::error(
                format!("cannot read the calendar file: {e}"),
                None,
            )],
        }),
    }
}
