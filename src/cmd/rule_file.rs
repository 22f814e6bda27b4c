//! Loading a rule file for a command: every diagnostic printed (file:line:column,
//! caret, hint), the spec or nothing.

use crate::core::rules::{self, Diagnostic, WatchSpec};

/// Prints a file's diagnostics to stderr.
pub fn print_diagnostics(path: &str, source: &str, diags: &[Diagnostic]) {
    for d in diags {
        crate::say!("{}", d.render(path, source));
    }
}

/// Loads a rule file, printing every diagnostic; None (after printing) on errors.
pub fn load_reporting(path: &std::path::Path, opts: &rules::LoadOptions) -> Option<WatchSpec> {
    match crate::io::host::load_rules(path, opts) {
        Ok((spec, warnings)) => {
            if !warnings.is_empty() {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                print_diagnostics(&path.display().to_string(), &text, &warnings);
            }
            Some(spec)
        }
        Err(e) => {
            crate::say!("{e}");
            None
        }
    }
}
