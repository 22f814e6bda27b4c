//! `rollwatch replay`: backtest rules against history before trusting them.
//!
//! Before a rule can roll back production at 3 a.m., its authors want to know whether
//! it would have caught last month's incident and whether it would have rolled back any
//! of last week's good releases. Replay answers with the same evaluator as `watch`
//! (`core::history` feeds it range-query history step by step), so what replay says is what a
//! watch would have done on that data.
//!
//! Where the two can differ: a live watch polls at wall-clock instants that fall
//! anywhere between scrapes, while replay evaluates on a grid starting at `--from`; both
//! see the same Prometheus lookback, so a breach is seen at most one interval apart.
//!
//! This file is the driver (flags, history fetched, judged, printed); `show::replay`
//! prints, `show::report::replay` builds the report files' record,
//! `core::rules::overrides` applies `--judge`, `core::time` parses times, and
//! `io::prom::counted` counts the range queries.

use crate::cmd::args::{prom_client, PromArgs};
use crate::cmd::rule_file::load_reporting;
use crate::core::history::ReplayOutcome;
use crate::core::rules::overrides::apply_judges;
use crate::core::rules::{LoadOptions, WatchSpec};
use crate::core::time::{parse_deploys, parse_time, rfc3339};
use crate::io::prom::counted::Counted;
use crate::io::prom::{HistorySource, PromClient};
use crate::show::replay::{
    print_deploys, print_text, rule_report, ComparedRow, DeployRow, Replayed, Report,
};
use crate::show::report::replay::record;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The rule file to backtest.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    #[command(flatten)]
    pub prom: PromArgs,
    /// Start of the window: RFC 3339, Unix seconds, `now`, or relative (`-2h`, `now-2h`).
    #[arg(
        long,
        value_name = "TIME",
        required_unless_present = "deploys",
        allow_hyphen_values = true
    )]
    pub from: Option<String>,
    /// End of the window (same forms); default `now`.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// A file of deploy times (one per line): replay a `watch.duration` watch after each.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to"])]
    pub deploys: Option<PathBuf>,
    /// Set a variable, overriding its default (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = crate::cmd::args::parse_set)]
    pub sets: Vec<(String, String)>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// With `--deploys`: replay a second rule file too (e.g. the same rules with
    /// `breaches: 3 of 5` or a baseline) and print both verdicts side by side.
    #[arg(long, value_name = "FILE", requires = "deploys")]
    pub compare_rules: Option<PathBuf>,
    /// With `--deploys`: judge a rule differently in a second column, e.g.
    /// `--judge 'error-ratio={breaches: 3 of 5}'`: a YAML mapping of the rule's keys
    /// to set (`null` removes a key; `breaches` removes `for`), checked by the same
    /// loader as the file (repeatable).
    #[arg(
        long = "judge",
        value_name = "RULE={KEY: VALUE, ...}",
        requires = "deploys",
        conflicts_with = "compare_rules"
    )]
    pub judges: Vec<String>,
    /// Write report.json, report.md and report.html for the backtest into DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "deploys")]
    pub report: Option<PathBuf>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Replays every rule of `spec` over `[from, to]`.
pub async fn replay<H: HistorySource>(
    spec: &WatchSpec,
    source: &H,
    from: i64,
    to: i64,
    scrape: Option<Duration>,
) -> Replayed {
    let (histories, decision) =
        crate::run::replay::replay_rules(spec, source, from, to, scrape).await;
    let rules = spec
        .rules
        .iter()
        .zip(&histories)
        .map(|(rule, h)| rule_report(rule, h, decision.cut_at))
        .collect();
    let report = Report {
        from: rfc3339(from),
        to: rfc3339(to),
        outcome: decision.verdict,
        decided_at: rfc3339(decision.decided_at),
        decided_by: decision.rule.clone(),
        reason: decision.reason.clone(),
        rules,
    };
    Replayed {
        report,
        decision,
        histories,
    }
}

fn load(args: &ReplayArgs) -> Option<(WatchSpec, PromClient)> {
    let opts = LoadOptions {
        outside: Some(&crate::io::host::HOST),
        sets: &args.sets,
        check: false,
    };
    let spec = load_reporting(&args.rules, &opts)?;
    match prom_client(
        &args.prom,
        spec.prometheus.as_deref(),
        spec.query_timeout.max(Duration::from_secs(30)),
    ) {
        Ok(c) => Some((spec, c)),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

pub async fn run(args: ReplayArgs) -> u8 {
    let Some((spec, client)) = load(&args) else {
        return crate::core::exit::USAGE;
    };
    let now = now_ms();
    if let Some(path) = &args.deploys {
        let second = match (&args.compare_rules, args.judges.is_empty()) {
            (Some(file), _) => {
                let opts = LoadOptions {
                    outside: Some(&crate::io::host::HOST),
                    sets: &args.sets,
                    check: false,
                };
                match load_reporting(file, &opts) {
                    Some(s) => Some((file.display().to_string(), s)),
                    None => return crate::core::exit::USAGE,
                }
            }
            (None, false) => match judged_spec(&args) {
                Some(s) => Some(("--judge".to_string(), s)),
                None => return crate::core::exit::USAGE,
            },
            (None, true) => None,
        };
        let counted = Counted::new(client);
        let scrape = counted.inner().scrape_interval().await;
        let started = tokio::time::Instant::now();
        let code = deploys(
            &spec,
            second.as_ref(),
            &counted,
            path,
            now,
            args.format,
            scrape,
        )
        .await;
        tracing::info!(
            event = "replay_cost",
            range_queries = counted.count(),
            seconds = started.elapsed().as_secs_f64(),
            "replay read history with {} range queries in {:.2}s",
            counted.count(),
            started.elapsed().as_secs_f64()
        );
        return code;
    }
    let parse = |s: &str| parse_time(s, now);
    let (from, to) = match (
        parse(args.from.as_deref().unwrap_or("now")),
        parse(args.to.as_deref().unwrap_or("now")),
    ) {
        (Ok(f), Ok(t)) if f < t => (f, t),
        (Ok(_), Ok(_)) => {
            eprintln!("error: --from must be before --to");
            return crate::core::exit::USAGE;
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return crate::core::exit::USAGE;
        }
    };
    // The data's resolution, as the watch reads it (`watch.step`, else the scrape
    // interval Prometheus reports): replay counts `for` as the watch did.
    let scrape = client.scrape_interval().await;
    let replayed = replay(&spec, &client, from, to, scrape).await;
    let summary = crate::show::report::step_summary::path_from_env();
    if args.report.is_some() || summary.is_some() {
        let record = record(&spec, client.shown_url(), from, to, &replayed);
        if let Some(path) = &summary {
            crate::show::report::step_summary::append_or_warn(path, &record);
        }
        if let Some(dir) = &args.report {
            if let Err(e) = record.write(dir) {
                eprintln!("error: cannot write the report to {}: {e}", dir.display());
                return crate::core::exit::USAGE;
            }
        }
    }
    let (report, decision) = (replayed.report, replayed.decision);
    for r in &report.rules {
        if let Some(e) = &r.error {
            tracing::error!(rule = %r.name, error = %e, "could not read this rule's history");
        }
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text => print_text(&report, from),
    }
    decision.verdict.exit_code()
}

/// The rule file with `--judge` overrides applied: each `RULE={KEY: VALUE, ...}` sets
/// (or with `null` removes) keys of that rule (`breaches` and `for` replace each
/// other); the result goes through the same loader. None after printing why not.
fn judged_spec(args: &ReplayArgs) -> Option<WatchSpec> {
    let text = match std::fs::read_to_string(&args.rules) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", args.rules.display());
            return None;
        }
    };
    match apply_judges(&text, &args.judges) {
        Ok(yaml) => {
            let shown = format!("{} (with --judge)", args.rules.display());
            let opts = LoadOptions {
                outside: Some(&crate::io::host::HOST),
                sets: &args.sets,
                check: false,
            };
            match crate::core::rules::load_str(&shown, &yaml, &opts) {
                Ok((mut spec, _)) => {
                    spec.path = args.rules.clone();
                    Some(spec)
                }
                Err(e) => {
                    eprintln!("{e}");
                    None
                }
            }
        }
        Err(e) => {
            eprintln!("error: --judge: {e}");
            None
        }
    }
}

async fn deploys<H: HistorySource>(
    spec: &WatchSpec,
    second: Option<&(String, WatchSpec)>,
    source: &H,
    path: &PathBuf,
    now: i64,
    format: Format,
    scrape: Option<Duration>,
) -> u8 {
    let times = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_deploys(&t, now))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return crate::core::exit::USAGE;
        }
    };
    let mut rows = Vec::new();
    let mut worst = ReplayOutcome::Healthy;
    for d in times {
        let end = d + spec.duration.as_millis() as i64;
        let Replayed {
            report, decision, ..
        } = replay(spec, source, d, end.min(now), scrape).await;
        if decision.verdict.severity() > worst.severity() {
            worst = decision.verdict;
        }
        let compared = match second {
            Some((_, other)) => {
                let end = d + other.duration.as_millis() as i64;
                let r = replay(other, source, d, end.min(now), scrape).await;
                Some(ComparedRow {
                    outcome: r.decision.verdict,
                    rule: r.decision.rule.clone(),
                    decided_at: r.report.decided_at,
                })
            }
            None => None,
        };
        rows.push(DeployRow {
            deploy_at: rfc3339(d),
            outcome: decision.verdict,
            rule: decision.rule.clone(),
            decided_at: report.decided_at,
            truncated: end > now,
            compared,
        });
    }
    let json = format == Format::Json;
    print_deploys(&rows, second.map(|(name, _)| name.as_str()), json);
    worst.exit_code()
}
