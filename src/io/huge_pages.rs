//! Transparent huge pages and the agent (issue 21).
//!
//! mimalloc asks the kernel for transparent huge pages for its arenas (`madvise`, so
//! even where THP is set to `madvise` only). An agent that grows into and frees the
//! memory of 100,000 watches then had the kernel zero whole 2 MB pages over and over:
//! at a restart, a third of its CPU went to `clear_page_erms`, and it was ready in 16 s
//! instead of 3; creating the watches took twice as long (BENCHMARKS.md). `serve`
//! turns them off for itself, as mimalloc's own `MIMALLOC_ALLOW_THP=0` does. A child
//! inherits the setting: a rollback or pause started through `supervise` turns them
//! back on before its command starts (`--huge-pages-as-found`), so the command runs
//! as it would anywhere. That is done there, not between fork and exec in the agent:
//! a `pre_exec` hook makes the standard library fork the agent (gigabytes of it)
//! instead of `posix_spawn`, and under strict overcommit a fork can fail. A command
//! started directly (no action directory, or a bearer token command) keeps them off:
//! it runs the same, perhaps a little slower if it is large.
//!
//! An operator who sets `MIMALLOC_ALLOW_THP` decides: then nothing here changes.

use std::sync::atomic::{AtomicBool, Ordering};

/// This process turned huge pages off (so its children get them back).
static OFF_HERE: AtomicBool = AtomicBool::new(false);

/// Turns transparent huge pages off for this process, unless they are off already or
/// `MIMALLOC_ALLOW_THP` says what to do. Returns whether it turned them off.
pub fn off_for_this_process() -> bool {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return false;
    }
    match nix::sys::prctl::get_thp_disable() {
        Ok(false) if nix::sys::prctl::set_thp_disable(true).is_ok() => {
            OFF_HERE.store(true, Ordering::SeqCst);
            true
        }
        _ => false,
    }
}

/// Whether this process turned huge pages off (its rollbacks then start through
/// `supervise --huge-pages-as-found`).
pub fn turned_off() -> bool {
    OFF_HERE.load(Ordering::SeqCst)
}

/// Turns transparent huge pages back on for this process and what it starts: what
/// `supervise` does, first, when the agent that started it had turned them off.
pub fn as_found() {
    let _ = nix::sys::prctl::set_thp_disable(false);
}
