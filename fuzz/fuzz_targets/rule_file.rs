//! Any bytes, read as a rule file, load to a runnable watch or to a list of errors;
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollwatch::core::rules::{load_str, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let sets = [("service".to_string(), "x\"} or vector(1)".to_string())];
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            sets: &sets,
            check: true,
            // The fuzzer never reads this machine: `env:`/`file:` sources are errors.
            outside: None,
        },
    ] {
        match load_str("fuzz.yaml", &text, &opts) {
            // Rendering the diagnostics (with the source line and caret) must not panic either.
            Err(e) => drop(e.to_string()),
            Ok((spec, warnings)) => {
                for w in &warnings {
                    drop(w.render("fuzz.yaml", &text));
                }
                // A loaded watch must be runnable: every duration in it can be added
                // to a clock reading, as the watch loop does.
                let now = std::time::Instant::now();
                let durations = [spec.duration, spec.max_blind, spec.query_timeout]
                    .into_iter()
                    .chain(spec.rules.iter().flat_map(|r| [r.interval, r.for_]))
                    .chain(spec.rollback.iter().chain(&spec.pause).map(|c| c.timeout));
                for d in durations {
                    assert!(now.checked_add(d).is_some(), "{d:?} overflows a clock");
                }
            }
        }
    }
});
