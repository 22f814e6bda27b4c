//! Transparent huge pages and the agent (issue 21).
//!
//! mimalloc asks the kernel for transparent huge pages for its arenas (`madvise`, so
//! even where THP is set to `madvise` only). An agent that grows into and frees the
//! memory of 100,000 watches then had the kernel zero whole 2 MB pages over and over:
//! at a restart, a third of its CPU went to `clear_page_erms`, and it was ready in 16 s
//! instead of 3; creating the watches took twice as long (BENCHMARKS.md). `serve`
//! turns them off for itself, as mimalloc's own `MIMALLOC_ALLOW_THP=0` does, and gives
//! the programs it starts (a rollback through `supervise`, a token command) the
//! setting it found, since a child inherits it.
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

/// Makes `cmd`'s program start with huge pages as this process found them.
pub fn as_found(cmd: &mut tokio::process::Command) {
    if OFF_HERE.load(Ordering::SeqCst) {
        // SAFETY: runs in the child between fork and exec; it makes one system call
        // (prctl), which is async-signal-safe, and allocates nothing. Its failure
        // leaves the program with huge pages off, which only makes it slower.
        unsafe {
            cmd.pre_exec(|| {
                let _ = nix::sys::prctl::set_thp_disable(false);
                Ok(())
            });
        }
    }
}
