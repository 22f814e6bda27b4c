//! `rollwatch check`: validate rule files before they guard production.
//!
//! Offline it runs the same loader as `watch` (so "check passes" means "watch will
//! load it"), plus warnings that only make sense ahead of time (a command's program
//! missing on this machine, a rule whose `for` leaves it no time to fire in the watch).
//! With `--prometheus` it also runs each query once and shows where each rule stands
//! now. A calendar file (for `gate`) is recognised and checked with the calendar's own
//! loader (`check_calendar`).

use crate::cmd::args::{parse_set, prom_client, PromArgs};
use crate::cmd::rule_file::{load_reporting, print_diagnostics};
use crate::core::calendar;
use crate::core::exit;
use crate::io::prom::MetricsSource;
use crate::run::preflight;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rule files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set a variable, overriding its default (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub sets: Vec<(String, String)>,
    #[command(flatten)]
    pub prom: PromArgs,
}

pub async fn run(args: CheckArgs) -> u8 {
    let mut failed = false;
    for path in &args.files {
        // Calendar files (for `gate`) are checked by their own loader.
        if let Some(ok) = check_calendar(path) {
            failed |= !ok;
            continue;
        }
        let opts = crate::core::rules::LoadOptions {
            outside: Some(&crate::io::host::HOST),
            sets: &args.sets,
            check: true,
        };
        let Some(spec) = load_reporting(path, &opts) else {
            failed = true;
            continue;
        };
        for e in preflight::programs(&spec) {
            eprintln!(
                "warning: {}: {e} on this machine\n  = help: `watch` refuses to start where it cannot run it",
                path.display(),
            );
        }
        let never = preflight::never_fires(&spec, spec.duration);
        if !never.is_empty() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let diags: Vec<_> = never.iter().map(|n| n.diagnostic(&text)).collect();
            print_diagnostics(&path.display().to_string(), &text, &diags);
        }
        let names: Vec<&str> = spec.rules.iter().map(|r| r.name.as_str()).collect();
        println!(
            "ok: {} ({} rule{}: {})",
            path.display(),
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        if args.prom.prometheus.is_none() {
            continue;
        }
        let client = match prom_client(&args.prom, spec.prometheus.as_deref(), spec.query_timeout) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        for rule in &spec.rules {
            // As a watch would ask it after `max_window` (`${watch.elapsed}` at its cap).
            let now = SystemTime::now();
            let clock = crate::core::rules::Clock::began_before(
                now.duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as i64,
                rule.max_window,
            );
            match client.query(&rule.query.at(clock), now).await {
                Ok(r) => {
                    let values: Vec<f64> = r
                        .samples
                        .iter()
                        .map(|s| s.value)
                        .filter(|v| !v.is_nan())
                        .collect();
                    if values.is_empty() {
                        println!(
                            "  {}: no data now (no_data: {})",
                            rule.name,
                            rule.no_data.as_str()
                        );
                    }
                    for s in r.samples.iter().filter(|s| !s.value.is_nan()) {
                        let state = if rule.threshold.breached(s.value) {
                            "BREACHED"
                        } else {
                            "ok"
                        };
                        let labels = serde_json::to_string(&s.labels).unwrap_or_default();
                        println!(
                            "  {}: {} {} (threshold {}) {state}",
                            rule.name,
                            labels,
                            crate::core::events::float::text(s.value),
                            rule.threshold
                        );
                    }
                    for w in &r.warnings {
                        println!("  {}: warning from Prometheus: {w}", rule.name);
                    }
                }
                Err(e) => {
                    println!("  {}: query failed: {e}", rule.name);
                    failed = true;
                }
            }
        }
    }
    if failed {
        exit::USAGE
    } else {
        exit::HEALTHY
    }
}

/// For `rollwatch check`: validates `path` if it is a calendar and prints the result
/// like a rule file's. None when it is not a calendar (check it as a rule file);
/// Some(true) when it is a valid one.
pub fn check_calendar(path: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(path).ok()?;
    if !calendar::looks_like_calendar(&text) {
        return None;
    }
    let shown = path.display().to_string();
    match calendar::load_str(&shown, &text) {
        Ok((cal, warnings)) => {
            print_diagnostics(&shown, &text, &warnings);
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            println!(
                "ok: {shown} (calendar in {}: {} window{}, {} freeze{})",
                cal.timezone_name,
                cal.windows.len(),
                plural(cal.windows.len()),
                cal.freezes.len(),
                plural(cal.freezes.len()),
            );
            Some(true)
        }
        Err(e) => {
            eprintln!("{e}");
            Some(false)
        }
    }
}
