//! A watch's rule snapshot and the names a request may use: the pure checks that
//! creation, the verdict routes, driving a watch and the outbox share (kept apart
//! from `create.rs` so that none of those imports creation).

use super::types::CreateError;
use crate::core::rules::{self, WatchSpec};
use crate::io::store::NewWatch;
use tracing::{info, warn};

/// A valid rule-file name or watch id: letters, digits, `-`, `_`, `.` (and `:` for ids).
pub(super) fn valid_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c)
        })
}

/// Loads a watch's snapshot (never the file as it is now).
pub fn load_snapshot(def: &NewWatch) -> Result<WatchSpec, String> {
    let sets: Vec<(String, String)> = def.vars.clone().into_iter().collect();
    let shown = format!("{}.yaml (snapshot of watch {})", def.rules, def.id);
    rules::load_str(
        &shown,
        &def.rules_text,
        &rules::LoadOptions {
            outside: Some(&crate::io::host::HOST),
            sets: &sets,
            check: false,
        },
    )
    .map(|(spec, _)| spec)
    .map_err(|e| e.to_string())
}

/// A rule file that does not load for an API request. A caller of a route that may be
/// open to anyone (`open`: the verdict routes) is told only the request's bad fields
/// (`LoadError::public_message`), never the file's patterns or its other variables;
/// a caller with the token gets every error's message (`api_message`). Neither gets
/// a line of the file (a command line may hold a secret) or a `--set` hint. The
/// agent's log says which rule file and what, without quoting the file.
pub(super) fn refused(rules: &str, e: &rules::LoadError, open: bool) -> CreateError {
    let why: Vec<&str> = e.errors().map(|d| d.message.as_str()).collect();
    let public = if open {
        e.public_message()
    } else {
        e.api_message()
    };
    if e.errors().all(|d| d.public.is_some()) {
        info!(event = "request_refused", rules = %rules, reasons = ?why, "a request's vars do not fit the rule file");
    } else {
        warn!(event = "rule_file_invalid", rules = %rules, errors = why.len(), "a rule file does not load; run `rollwatch check` on it");
    }
    CreateError::BadRequest(public)
}
