//! Rule files: the model of a watch, and loading it from YAML.
//!
//! One file describes one watch: how long it lasts, the rules it judges, and the
//! commands it may run. `load` turns a file (plus `--set` overrides) into a `WatchSpec`
//! whose every value has been validated and every `${name}` substituted, or into the
//! complete list of what is wrong with it. The model itself is in `spec.rs`.

pub mod lint;
mod load;
pub mod overrides;
pub mod query;
mod spec;
pub mod structure;
pub mod template;

// The loader reports in the YAML toolkit's diagnostics; named here too, beside it.
pub use crate::core::yaml::{Diagnostic, Severity};
pub use load::{
    load_str, parse_duration, LoadError, LoadOptions, Loaded, Outside, MIN_INTERVAL, WARN_INTERVAL,
};
pub use query::{Clock, Query};
pub use spec::*;
