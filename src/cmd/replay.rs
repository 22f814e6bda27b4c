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

use crate::cmd::common::{prom_client, PromArgs};
use crate::core::history::{self, decide, replay_judged, Decision, RuleHistory, Verdict};
use crate::core::rules::{LoadOptions, Rule, WatchSpec};
use crate::io::prom::history::{fetch, fetch_judges};
use crate::io::prom::{HistorySource, PromClient, QueryError};
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
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = crate::cmd::common::parse_set)]
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

/// Parses a time: RFC 3339, Unix seconds, `now`, `-2h` or `now-2h`. Unix ms out.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let rel = t.strip_prefix("now").unwrap_or(t);
    if rel.is_empty() {
        return Ok(now_ms);
    }
    if let Some(d) = rel.strip_prefix('-') {
        let d = crate::core::rules::parse_duration(d)
            .map_err(|e| format!("invalid relative time {t:?}: {e}"))?;
        return Ok(now_ms - d.as_millis() as i64);
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let secs: f64 = t.parse().map_err(|_| format!("invalid Unix time {t:?}"))?;
        return Ok((secs * 1000.0).round() as i64);
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .map_err(|e| format!("invalid time {t:?} ({e}); use RFC 3339 (2026-11-20T14:00:00Z), Unix seconds, `now` or `-2h`"))
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.round(jiff::Unit::Second)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| t.to_string())
        })
        .unwrap_or_else(|_| ms.to_string())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// One rule's replay, as reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleReport {
    pub name: String,
    pub action: crate::core::rules::Action,
    pub threshold: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub pending_at: Option<String>,
    pub fired_at: Option<String>,
    /// Labels of the series that fired (or of the peak, if none fired).
    pub labels: Option<crate::core::eval::Labels>,
    #[serde(serialize_with = "crate::core::events::float::option")]
    pub peak: Option<f64>,
    pub peak_at: Option<String>,
    pub timeline: Vec<history::Entry>,
    pub error: Option<String>,
    /// Series × steps insufficient (`min_traffic`, `compare`), and whether that was
    /// every step (the rule was not judged).
    pub insufficient: u64,
    pub never_judged: bool,
}

/// A whole replay, as reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub outcome: Verdict,
    pub decided_at: String,
    pub decided_by: Option<String>,
    /// Why the replayed watch is inconclusive, in the words a live watch ends with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rules: Vec<RuleReport>,
}

/// A finished replay: the report, the decision, and each rule's full history.
pub struct Replayed {
    pub report: Report,
    pub decision: Decision,
    pub histories: Vec<Result<RuleHistory, QueryError>>,
}

/// Replays every rule of `spec` over `[from, to]`.
pub async fn replay<H: HistorySource>(
    spec: &WatchSpec,
    source: &H,
    from: i64,
    to: i64,
) -> Replayed {
    let mut histories: Vec<Result<RuleHistory, QueryError>> = Vec::new();
    for rule in &spec.rules {
        let step = rule.interval.as_millis().max(1) as i64;
        // The rule's history and its judges' (guard, stable side, baseline): each one
        // fetch for the whole window, never one per step.
        let h = match fetch(source, rule, from, to).await {
            Ok(series) => fetch_judges(source, rule, from, to).await.map(|judges| {
                replay_judged(
                    rule.params_over(Duration::from_millis((to - from).max(0) as u64)),
                    from,
                    to,
                    step,
                    &series,
                    &judges,
                )
            }),
            Err(e) => Err(e),
        };
        histories.push(h);
    }
    let inputs: Vec<_> = spec
        .rules
        .iter()
        .zip(&histories)
        .map(|(r, h)| crate::core::history::Replayed {
            name: &r.name,
            action: r.action,
            expect_data: r.expect_data,
            history: h.as_ref().ok(),
        })
        .collect();
    let decision = decide(&inputs, to);
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

/// The release report of a replay: the same files a watch writes, for a backtest.
/// Samples are the worst value and state at each step; no command ran.
pub fn record(
    spec: &WatchSpec,
    prometheus: &str,
    from: i64,
    to: i64,
    r: &Replayed,
) -> crate::show::report::Record {
    use crate::show::report::{
        ActionRecord, OutcomeRecord, Record, RuleRecord, SampleRecord, TransitionRecord,
    };
    let cut = r.decision.cut_at;
    let rules = spec
        .rules
        .iter()
        .zip(&r.histories)
        .map(|(rule, h)| {
            let mut rr = RuleRecord {
                info: crate::run::watch::rule_info(rule, prometheus),
                samples: Vec::new(),
                transitions: Vec::new(),
            };
            match h {
                Ok(h) => {
                    rr.samples = h
                        .states
                        .iter()
                        .zip(h.references.iter().map(|(_, r)| *r))
                        .filter(|((t, _, _), _)| *t <= cut)
                        .map(|((t, v, st), reference)| SampleRecord {
                            t: *t,
                            value: *v,
                            state: st.clone(),
                            series: Vec::new(),
                            error: None,
                            reference,
                        })
                        .collect();
                    rr.transitions = h
                        .entries
                        .iter()
                        .filter(|e| e.at <= cut)
                        .map(|e| TransitionRecord {
                            t: e.at,
                            kind: e.kind,
                            labels: e.labels.clone(),
                            value: e.value,
                            breached_for_s: None,
                            evidence: e.evidence.clone(),
                        })
                        .collect();
                }
                Err(e) => {
                    rr.samples.push(SampleRecord {
                        t: from,
                        value: None,
                        state: crate::core::events::RuleState::QueryError,
                        series: Vec::new(),
                        error: Some(e.to_string()),
                        reference: None,
                    });
                }
            }
            rr
        })
        .collect();
    let mut actions = Vec::new();
    if let Some(rule) = &r.decision.rule {
        let kind = if r.decision.verdict == Verdict::RolledBack {
            "rollback"
        } else {
            "pause"
        };
        let cmd = if kind == "rollback" {
            &spec.rollback
        } else {
            &spec.pause
        };
        actions.push(ActionRecord {
            action: kind,
            rule: rule.clone(),
            argv: cmd.as_ref().map(|c| c.argv.clone()).unwrap_or_default(),
            dry_run: true,
            started_at: r.decision.decided_at,
            finished_at: None,
            status: Some("not run (replay)".into()),
            succeeded: None,
            duration_s: None,
            output_tail: Vec::new(),
        });
    }
    let detail = match (r.decision.verdict, &r.decision.rule) {
        (Verdict::RolledBack, Some(rule)) => format!(
            "rule `{rule}` would have rolled back at {}",
            rfc3339(r.decision.decided_at)
        ),
        (Verdict::Paused, Some(rule)) => format!(
            "rule `{rule}` would have paused at {}",
            rfc3339(r.decision.decided_at)
        ),
        (Verdict::Inconclusive, _) => format!(
            "inconclusive: {}",
            r.decision
                .reason
                .as_deref()
                .unwrap_or("a rule was never judged")
        ),
        _ => "no rule would have acted".to_string(),
    };
    Record {
        rollwatch_version: env!("CARGO_PKG_VERSION"),
        kind: "replay",
        rules_file: spec.path.display().to_string(),
        prometheus: prometheus.to_string(),
        started_at: from,
        ended_at: if r.decision.verdict == Verdict::RolledBack {
            cut
        } else {
            to
        },
        planned_duration_s: (to - from) as f64 / 1000.0,
        dry_run: true,
        vars: spec.vars.clone(),
        rules,
        actions,
        notifications: Vec::new(),
        outcome: Some(OutcomeRecord {
            outcome: r.decision.verdict.name(),
            exit_code: r.decision.verdict.exit_code(),
            detail,
            rule: r.decision.rule.clone(),
        }),
    }
}

fn rule_report(rule: &Rule, h: &Result<RuleHistory, QueryError>, cut_at: i64) -> RuleReport {
    let mut r = RuleReport {
        name: rule.name.clone(),
        action: rule.action,
        threshold: rule.condition(),
        for_: humantime::format_duration(rule.for_).to_string(),
        pending_at: None,
        fired_at: None,
        labels: None,
        peak: None,
        peak_at: None,
        timeline: Vec::new(),
        error: None,
        insufficient: 0,
        never_judged: false,
    };
    let h = match h {
        Ok(h) => h,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.insufficient = h.insufficient;
    r.never_judged = h.never_judged;
    r.timeline = h
        .entries
        .iter()
        .filter(|e| e.at <= cut_at)
        .cloned()
        .collect();
    r.pending_at = r
        .timeline
        .iter()
        .find(|e| e.kind == "pending")
        .map(|e| rfc3339(e.at));
    if let Some(f) = r.timeline.iter().find(|e| e.kind == "fired") {
        r.fired_at = Some(rfc3339(f.at));
        r.labels = Some(f.labels.clone());
    }
    if let Some((t, v, labels)) = h.peak(cut_at) {
        r.peak = Some(*v);
        r.peak_at = Some(rfc3339(*t));
        if r.labels.is_none() {
            r.labels = Some(labels.clone());
        }
    }
    r
}

fn labels_text(l: &crate::core::eval::Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn print_text(report: &Report, from: i64) {
    println!("replay from {} to {}", report.from, report.to);
    for r in &report.rules {
        println!();
        println!(
            "{}  ({} for {}, action {})",
            r.name,
            r.threshold,
            r.for_,
            r.action.as_str()
        );
        if let Some(e) = &r.error {
            println!("  history could not be read: {e}");
            continue;
        }
        const SHOWN: usize = 20;
        for e in r.timeline.iter().take(SHOWN) {
            let value = e
                .value
                .map_or("no data".to_string(), crate::core::events::float::text);
            let why = if e.evidence.is_empty() {
                String::new()
            } else {
                format!("  ({})", e.evidence.text())
            };
            println!(
                "  {}  {:<8} {} {}{why}",
                rfc3339(e.at),
                e.kind,
                labels_text(&e.labels),
                value
            );
        }
        if r.timeline.len() > SHOWN {
            println!("  ... {} more transitions", r.timeline.len() - SHOWN);
        }
        if r.timeline.is_empty() {
            println!("  never breached");
        }
        if r.never_judged {
            println!(
                "  not judged: insufficient at every step ({} series-steps)",
                r.insufficient
            );
        } else if r.insufficient > 0 {
            println!(
                "  insufficient at {} series-steps (neither breach nor clear)",
                r.insufficient
            );
        }
        match (&r.peak, &r.peak_at) {
            (Some(p), Some(at)) => println!(
                "  peak {} at {at} (threshold {})",
                crate::core::events::float::text(*p),
                r.threshold
            ),
            _ => println!("  no data in the window"),
        }
    }
    println!();
    let decided = parse_time(&report.decided_at, 0).unwrap_or(from);
    let after =
        humantime::format_duration(Duration::from_secs(((decided - from).max(0) / 1000) as u64));
    match (report.outcome, &report.decided_by) {
        (Verdict::RolledBack, Some(rule)) => println!(
            "verdict: would have ROLLED BACK at {} ({after} in), rule `{rule}`",
            report.decided_at
        ),
        (Verdict::Paused, Some(rule)) => println!(
            "verdict: would have PAUSED at {} ({after} in), rule `{rule}`; no rollback followed",
            report.decided_at
        ),
        (Verdict::Inconclusive, _) => println!(
            "verdict: INCONCLUSIVE: {}",
            report
                .reason
                .as_deref()
                .unwrap_or("a rule was never judged")
        ),
        _ => println!("verdict: healthy: no rule would have acted"),
    }
}

fn load(args: &ReplayArgs) -> Option<(WatchSpec, PromClient)> {
    let opts = LoadOptions {
        sets: &args.sets,
        check: false,
    };
    let spec = crate::cmd::common::load_reporting(&args.rules, &opts)?;
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
                    sets: &args.sets,
                    check: false,
                };
                match crate::cmd::common::load_reporting(file, &opts) {
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
        let started = std::time::Instant::now();
        let code = deploys(&spec, second.as_ref(), &counted, path, now, args.format).await;
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
    let replayed = replay(&spec, &client, from, to).await;
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

/// Reads deploy times: one per line, `#` comments and blank lines skipped.
pub fn parse_deploys(text: &str, now: i64) -> Result<Vec<i64>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.split('#').next().unwrap_or("").trim();
        if t.is_empty() {
            continue;
        }
        out.push(parse_time(t, now).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    if out.is_empty() {
        return Err("no deploy times in the file".into());
    }
    Ok(out)
}

#[derive(serde::Serialize)]
struct DeployRow {
    deploy_at: String,
    outcome: Verdict,
    rule: Option<String>,
    decided_at: String,
    /// The window was cut short because it reaches past now.
    truncated: bool,
    /// The verdict of the second rule file (`--compare-rules`, `--judge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    compared: Option<ComparedRow>,
}

#[derive(serde::Serialize)]
struct ComparedRow {
    outcome: Verdict,
    rule: Option<String>,
    decided_at: String,
}

/// A `HistorySource` that counts the range queries it sends (`replay --deploys` says
/// how many it needed; BENCHMARKS.md records them).
pub struct Counted<H> {
    inner: H,
    sent: std::sync::atomic::AtomicU64,
}

impl<H> Counted<H> {
    pub fn new(inner: H) -> Self {
        Counted {
            inner,
            sent: Default::default(),
        }
    }
    pub fn count(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<H: HistorySource> HistorySource for Counted<H> {
    async fn query_range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<crate::io::prom::RangeResult, QueryError> {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .query_range(query, start_ms, end_ms, step_ms)
            .await
    }
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

/// Applies `--judge` overrides to a rule file's text; the new text out.
pub fn apply_judges(text: &str, judges: &[String]) -> Result<String, String> {
    use serde_json::Value;
    let mut doc: Value = serde_saphyr::from_str(text).map_err(|e| format!("the rule file: {e}"))?;
    for j in judges {
        let (name, keys) = j.split_once('=').ok_or_else(|| {
            format!(
                "{j:?}: write RULE={{KEY: VALUE, ...}}, e.g. 'error-ratio={{breaches: 3 of 5}}'"
            )
        })?;
        let keys: Value =
            serde_saphyr::from_str(keys).map_err(|e| format!("{j:?}: not a YAML mapping: {e}"))?;
        let Value::Object(keys) = keys else {
            return Err(format!(
                "{j:?}: the overrides must be a mapping such as {{breaches: 3 of 5}}"
            ));
        };
        let rules = doc
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .ok_or("the rule file has no list of `rules`")?;
        let names: Vec<String> = rules
            .iter()
            .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let rule = rules
            .iter_mut()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(name.trim()))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                format!(
                    "no rule named {:?} (rules: {})",
                    name.trim(),
                    names.join(", ")
                )
            })?;
        for (k, v) in keys {
            // Setting one of `for`/`breaches` replaces the other; removing one (null)
            // leaves the other alone, in whatever order the keys came.
            match k.as_str() {
                "breaches" if !v.is_null() => {
                    rule.remove("for");
                }
                "for" if !v.is_null() => {
                    rule.remove("breaches");
                }
                _ => {}
            }
            if v.is_null() {
                rule.remove(&k);
            } else {
                rule.insert(k, v);
            }
        }
    }
    serde_saphyr::to_string(&doc).map_err(|e| e.to_string())
}

async fn deploys<H: HistorySource>(
    spec: &WatchSpec,
    second: Option<&(String, WatchSpec)>,
    source: &H,
    path: &PathBuf,
    now: i64,
    format: Format,
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
    let mut worst = Verdict::Healthy;
    for d in times {
        let end = d + spec.duration.as_millis() as i64;
        let Replayed {
            report, decision, ..
        } = replay(spec, source, d, end.min(now)).await;
        if decision.verdict.severity() > worst.severity() {
            worst = decision.verdict;
        }
        let compared = match second {
            Some((_, other)) => {
                let end = d + other.duration.as_millis() as i64;
                let r = replay(other, source, d, end.min(now)).await;
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
    let count = |v: Verdict| rows.iter().filter(|r| r.outcome == v).count();
    let (rb, pa, he, inc) = (
        count(Verdict::RolledBack),
        count(Verdict::Paused),
        count(Verdict::Healthy),
        count(Verdict::Inconclusive),
    );
    let count2 = |v: Verdict| {
        rows.iter()
            .filter(|r| r.compared.as_ref().is_some_and(|c| c.outcome == v))
            .count()
    };
    let rolled = |o: Verdict| o == Verdict::RolledBack;
    // Rollbacks the second file avoids, and rollbacks it makes that the first did not.
    let avoided = rows
        .iter()
        .filter(|r| rolled(r.outcome) && r.compared.as_ref().is_some_and(|c| !rolled(c.outcome)))
        .count();
    let added = rows
        .iter()
        .filter(|r| !rolled(r.outcome) && r.compared.as_ref().is_some_and(|c| rolled(c.outcome)))
        .count();
    match (format, second) {
        (Format::Json, _) => {
            let mut doc = serde_json::json!({
                "deploys": rows,
                "totals": {"releases": rows.len(), "rolled_back": rb, "paused": pa, "healthy": he, "inconclusive": inc},
            });
            if let Some((name, _)) = second {
                doc["compared"] = serde_json::json!({
                    "rules": name,
                    "totals": {"rolled_back": count2(Verdict::RolledBack), "paused": count2(Verdict::Paused), "healthy": count2(Verdict::Healthy), "inconclusive": count2(Verdict::Inconclusive)},
                    "rollbacks_avoided": avoided,
                    "rollbacks_added": added,
                });
            }
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        (Format::Text, Some((name, _))) => {
            println!(
                "{:<22}  {:<13}  {:<20}  {:<13}  {:<20}",
                "deploy", "verdict", "rule", "compared", "rule"
            );
            for r in &rows {
                let c = r.compared.as_ref();
                let differs = c.is_some_and(|c| c.outcome != r.outcome);
                println!(
                    "{:<22}  {:<13}  {:<20}  {:<13}  {:<20}{}",
                    r.deploy_at,
                    r.outcome.name(),
                    r.rule.as_deref().unwrap_or("-"),
                    c.map_or("-", |c| c.outcome.name()),
                    c.and_then(|c| c.rule.as_deref()).unwrap_or("-"),
                    if differs { "  <- differs" } else { "" }
                );
            }
            println!();
            println!(
                "{} releases: {rb} would have been rolled back, {pa} paused, {he} healthy, {inc} inconclusive",
                rows.len()
            );
            println!(
                "compared ({name}): {} rolled back, {} paused, {} healthy, {} inconclusive; {avoided} rollback(s) avoided, {added} added",
                count2(Verdict::RolledBack),
                count2(Verdict::Paused),
                count2(Verdict::Healthy),
                count2(Verdict::Inconclusive),
            );
        }
        (Format::Text, None) => {
            println!(
                "{:<22}  {:<13}  {:<24}  decided at",
                "deploy", "verdict", "rule"
            );
            for r in &rows {
                println!(
                    "{:<22}  {:<13}  {:<24}  {}{}",
                    r.deploy_at,
                    r.outcome.name(),
                    r.rule.as_deref().unwrap_or("-"),
                    r.decided_at,
                    if r.truncated {
                        "  (window reaches now: cut short)"
                    } else {
                        ""
                    }
                );
            }
            println!();
            println!(
                "{} releases: {rb} would have been rolled back, {pa} paused, {he} healthy, {inc} inconclusive",
                rows.len()
            );
        }
    }
    worst.exit_code()
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn parses_every_time_form() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("-2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("now-30m", now), Ok(now - 1_800_000));
        assert_eq!(parse_time("1700000000", now), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.5", now), Ok(1_700_000_000_500));
        assert_eq!(
            parse_time("2026-11-20T14:00:00Z", now),
            Ok(1_795_183_200_000)
        );
        assert_eq!(
            parse_time("2026-11-20T09:00:00-05:00", now),
            Ok(1_795_183_200_000)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-2", now).is_err());
    }

    #[test]
    fn deploy_files_skip_comments_and_report_bad_lines() {
        let now = 1_800_000_000_000;
        assert_eq!(
            parse_deploys("# deploys\n1700000000\n\n1700003600 # v2\n", now),
            Ok(vec![1_700_000_000_000, 1_700_003_600_000])
        );
        assert!(parse_deploys("1700000000\nsoon\n", now)
            .unwrap_err()
            .starts_with("line 2"));
        assert!(parse_deploys("# none\n", now).is_err());
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;

    const FILE: &str = "watch:\n  duration: 1m\n  interval: 5s\nrollback:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 1m\n  - name: other\n    query: up\n    below: 1\n    no_data: ok\n    for: 0s\n";

    fn load(text: &str) -> WatchSpec {
        crate::core::rules::load_str("t.yaml", text, &LoadOptions::default())
            .unwrap()
            .0
    }

    #[test]
    fn judge_overrides_go_through_the_loader() {
        let text = apply_judges(FILE, &["r={breaches: 3 of 5}".to_string()]).unwrap();
        let spec = load(&text);
        let r = &spec.rules[0];
        assert_eq!(
            r.judging.breaches,
            Some(crate::core::eval::Breaches { m: 3, n: 5 })
        );
        assert_eq!(r.for_, Duration::ZERO, "breaches replaced for");
        assert_eq!(
            spec.rules[1],
            load(FILE).rules[1],
            "the other rule is untouched"
        );
        let text = apply_judges(
            FILE,
            &["r={baseline: {offset: 1w}, above_baseline: 50%, above: null, for: 0s}".to_string()],
        )
        .unwrap();
        let r = &load(&text).rules[0];
        assert_eq!(r.threshold.above, None);
        assert_eq!(r.judging.baseline.unwrap().above_pct, Some(50.0));
        for (bad, why) in [
            ("nope={for: 0s}", "no rule named \"nope\" (rules: r, other)"),
            ("r", "write RULE="),
            ("r=[1]", "must be a mapping"),
        ] {
            let e = apply_judges(FILE, &[bad.to_string()]).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A bad value is the loader's error, as for the file itself.
        let text = apply_judges(FILE, &["r={breaches: 6 of 5}".to_string()]).unwrap();
        let e = crate::core::rules::load_str("t.yaml", &text, &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("M > N"), "{e}");
    }

    #[test]
    fn removing_for_keeps_the_breaches_set_beside_it_in_either_order() {
        for judge in [
            "r={breaches: 3 of 5, for: null}",
            "r={for: null, breaches: 3 of 5}",
        ] {
            let spec = load(&apply_judges(FILE, &[judge.to_string()]).unwrap());
            assert_eq!(
                spec.rules[0].judging.breaches,
                Some(crate::core::eval::Breaches { m: 3, n: 5 }),
                "{judge}"
            );
        }
    }
}
