//! `rollwatch import`: turn the alerting rules a team already has into a rule file.
//!
//! On-call teams have years of Prometheus alerting rules. This command reads Prometheus
//! rule files (`groups[].rules[]`) and Kubernetes `PrometheusRule` manifests
//! (`spec.groups`) and writes, on stdout, a rollwatch rule file that `check` accepts.
//! The conversion (thresholds from the parsed tree, `--match` through it, the written
//! YAML) is pure and lives in `core::import`; this face reads the files, reports and
//! prints.

use crate::core::exit;
use crate::core::import::{import_str, parse_match, render, OutRule};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Prometheus rule files, PrometheusRule manifests, or SLO specs (Sloth's
    /// `prometheus/v1`, OpenSLO `SLO`/`SLI`) to import.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Add the label matcher LABEL="VALUE" to every selector of every expression
    /// (repeatable), e.g. `--match service=checkout`.
    #[arg(long = "match", value_name = "LABEL=VALUE", value_parser = parse_match)]
    pub matches: Vec<(String, String)>,
}

pub async fn run(args: ImportArgs) -> u8 {
    let mut all: Vec<OutRule> = Vec::new();
    let mut names = BTreeSet::new();
    let mut failed = false;
    let mut longest = Duration::ZERO;
    for path in &args.files {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                crate::say!("error: cannot read {shown}: {e}");
                failed = true;
                continue;
            }
        };
        let got = import_str(&text, &args.matches, &mut names);
        for (pos, note) in &got.notes {
            crate::say!("note: {shown}:{}:{}: {note}", pos.line, pos.column);
        }
        for d in &got.diagnostics {
            crate::say!("{}", d.render(&shown, &text));
        }
        failed |= got.has_errors();
        longest = longest.max(got.longest_for);
        all.extend(got.rules);
    }
    if failed {
        return exit::USAGE;
    }
    if all.is_empty() {
        crate::say!("error: no alerting rules found, so there is nothing to watch");
        return exit::USAGE;
    }
    let sources: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
    match render(all, longest, &sources) {
        Ok(out) => {
            print!("{out}");
            exit::HEALTHY
        }
        Err(e) => {
            crate::say!("error: cannot write the rule file: {e}");
            exit::USAGE
        }
    }
}
