//! rollwatch: guards production after a release.
//!
//! A deploy pipeline starts a watch right after it ships; rollwatch polls Prometheus,
//! judges each rule, and when a rule stays breached for its duration it runs the
//! rollback command the on-call engineers configured, exactly once, and exits with a
//! code the pipeline branches on. See ARCHITECTURE.md for how the modules fit.

/// `eprintln!` that ignores a closed stderr instead of panicking: a watch or the agent
/// must never die because whoever read its log went away.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod action;
pub mod check;
pub mod cli;
pub mod demo;
pub mod eval;
pub mod events;
pub mod exit;
pub mod gate;
pub mod launch;
pub mod live;
pub mod logging;
pub mod notify;
pub mod prom;
pub mod replay;
pub mod report;
pub mod rules;
pub mod serve;
pub mod watch;
