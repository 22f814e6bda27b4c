//! rollwatch: guards production after a release.
//!
//! A deploy pipeline starts a watch right after it ships; rollwatch polls Prometheus,
//! judges each rule, and when a rule stays breached for its duration it runs the
//! rollback command the on-call engineers configured, exactly once, and exits with a
//! code the pipeline branches on.
//!
//! The modules are floors, and imports run one way, down (ARCHITECTURE.md has the map;
//! `tests/architecture.rs` keeps the shape):
//! 1. [`core`]: data and pure logic (series, evaluator, history on a grid, rules,
//!    calendars, the event bus); no I/O, no tokio.
//! 2. [`io`]: the edges behind small traits (Prometheus, actions, the store,
//!    notifications).
//! 3. [`run`]: the runtime (the watch loop, the agent).
//! 4. [`show`]: what renders a watch (log lines, `--events`, reports, the live view).
//! 5. [`cmd`]: one face per command, and the flag groups and helpers they share.
//! 6. [`cli`]: the top-level parser and dispatch, for `main` alone.

/// `eprintln!` that ignores a closed stderr instead of panicking: a watch or the agent
/// must never die because whoever read its log went away. (Exported at the crate root,
/// so every floor may use it as `crate::say!`.)
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod cli;
pub mod cmd;
pub mod core;
pub mod io;
pub mod run;
pub mod show;
