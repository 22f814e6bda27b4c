//! `rollwatch gate`: may a change go out now?
//!
//! A deploy pipeline asks before it ships. Careful teams decide *when* a change may go
//! out: inside scheduled maintenance windows, never during a change freeze, and not into
//! a system that is already burning. Emergency changes may bypass all of that, but are
//! recorded. The gate answers with an exit code the pipeline branches on (0 go, 6 no-go,
//! 2 bad input), says why, and says when the next window opens.
//!
//! - `core::calendar`: the calendar file (time zone, windows, freezes), loaded and
//!   validated with every error at once, the way rule files are.
//! - `core::calendar::decide`: the pure decision for one instant, where all the
//!   time-zone and DST reasoning lives.
//! - This module: the command line, the health check and the output.
//!
//! # The health check (`--rules`)
//!
//! With a rule file, every rule is queried once, *now* (not at `--at`: only the present
//! health is knowable). A rule whose threshold is crossed now blocks (`for:` is ignored:
//! the question is whether the system is burning, not whether a watch would act yet).
//! An empty result counts as breached only for `no_data: breach`. A query that fails
//! blocks too: a gate that cannot show the system is healthy must not say go.
//!
//! A breach that has held through its rule's `for` before now is named
//! *pre-existing* (`run::preflight::pre_existing`, as a watch starting now would read
//! it). It blocks as any under `pre_existing: judge`; under `ignore` or `improve` the
//! rule file says a release may go out into it (the release may be its fix), so it is
//! said and does not block.
//!
//! # Emergencies
//!
//! `--emergency REASON` goes out despite being outside every window, inside a freeze
//! (unless it says `emergency: false`), and despite the health check: an emergency fix
//! is often deployed *into* an incident, and refusing it there would defeat its purpose.
//! What was bypassed is part of the answer, logged (`event="emergency_change"`, at warn
//! level) and, with `--events FILE`, appended to that file as one JSON line. If that
//! record cannot be written the gate fails (exit 2): an emergency change must not go
//! out unrecorded.

use crate::cmd::args::{parse_set, prom_client, PromArgs};
use crate::cmd::rule_file::{load_reporting, print_diagnostics};
use crate::core::calendar::decide;
use crate::core::exit;
use decide::{rfc3339, show, Decision, Reason};
use jiff::Timestamp;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The deploy calendar: time zone, windows and freezes (see rules/calendar.yaml).
    #[arg(long, value_name = "FILE")]
    pub calendar: PathBuf,
    /// Decide for this instant instead of now: RFC 3339 (2026-03-12T03:00:00-04:00) or
    /// Unix seconds. The health check always looks at the present.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<Timestamp>,
    /// Also say no-go while any rule in this rule file is breached now.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    #[command(flatten)]
    pub prom: PromArgs,
    /// Set a rule-file variable, overriding its default (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set, requires = "rules")]
    pub sets: Vec<(String, String)>,
    /// Go even outside a window, inside a freeze or into an incident, for this reason
    /// (unless a freeze says `emergency: false`). Always recorded.
    #[arg(long, value_name = "REASON", value_parser = parse_reason)]
    pub emergency: Option<String>,
    /// How to print the answer on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Append emergency changes to this file, one JSON line each.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn parse_at(s: &str) -> Result<Timestamp, String> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .ok()
            .and_then(|secs| Timestamp::from_second(secs).ok())
            .ok_or_else(|| format!("`{t}` is out of range for a Unix time in seconds"));
    }
    t.parse::<Timestamp>().map_err(|_| {
        format!("`{t}` is not a time: give RFC 3339 with an offset (2026-03-12T03:00:00-04:00 or 2026-03-12T07:00:00Z) or Unix seconds")
    })
}

fn parse_reason(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err(
            "an emergency change needs a reason, e.g. --emergency \"CVE-2026-1234 patch\"".into(),
        ),
        r => Ok(r.to_string()),
    }
}

pub use crate::run::verdict::RuleStatus;

pub async fn run(args: GateArgs) -> u8 {
    let shown = args.calendar.display().to_string();
    let cal = match crate::io::host::load_calendar(&args.calendar) {
        Ok((cal, warnings)) => {
            if !warnings.is_empty() {
                let text = std::fs::read_to_string(&args.calendar).unwrap_or_default();
                print_diagnostics(&shown, &text, &warnings);
            }
            cal
        }
        Err(e) => {
            eprintln!("{e}");
            return exit::USAGE;
        }
    };
    let at = args.at.unwrap_or_else(Timestamp::now);
    let mut decision = decide::decide(&cal, at, args.emergency.as_deref());

    let mut rules = Vec::new();
    let mut channels = Vec::new();
    let mut before = Vec::new();
    if let Some(path) = &args.rules {
        match health(path, &args).await {
            Ok((statuses, notify, pre)) => (rules, channels, before) = (statuses, notify, pre),
            Err(code) => return code,
        }
        for (r, pre) in rules.iter().zip(&before) {
            if let (true, None, Some(p)) = (r.breached, &r.error, pre) {
                let value = r
                    .value
                    .map_or_else(|| "no data".to_string(), |v| v.to_string());
                let message = format!(
                    "rule `{}` is breached now ({value}; breached when {}), and was through its `for` before now: pre-existing; pre_existing: {}: {}",
                    r.name, r.threshold, p.mode.text(), p.mode.meaning()
                );
                if p.mode == crate::core::eval::PreExisting::Judge {
                    decision.block(Reason::rule_breached(
                        &r.name,
                        format!("{message}: don't deploy into an incident"),
                    ));
                } else {
                    decision.block(Reason::rule_pre_existing(
                        &r.name,
                        format!("{message}; a release may go out into it"),
                    ));
                }
                continue;
            }
            if let Some(e) = &r.error {
                decision.block(Reason::rule_failed(
                    &r.name,
                    format!(
                        "rule `{}` could not be queried ({e}), so the system cannot be shown to be healthy",
                        r.name
                    ),
                ));
            } else if r.breached {
                let value = r
                    .value
                    .map_or_else(|| "no data".to_string(), |v| v.to_string());
                decision.block(Reason::rule_breached(
                    &r.name,
                    format!(
                        "rule `{}` is breached now ({value}; breached when {}){}: don't deploy into an incident",
                        r.name, r.threshold,
                        if r.evidence.is_empty() { String::new() } else { format!(" ({})", r.evidence.text()) }
                    ),
                ));
            }
        }
        if rules.iter().all(|r| !r.breached && r.error.is_none()) {
            decision.block(Reason::healthy(format!(
                "all {} rule{} of {} are within their thresholds now",
                rules.len(),
                if rules.len() == 1 { "" } else { "s" },
                path.display()
            )));
        }
    }

    if let Some(e) = &decision.emergency {
        let record = emergency_record(&decision, &shown, args.rules.as_deref());
        warn!(
            event = "emergency_change",
            reason = %e.reason,
            at = %rfc3339(&decision.at),
            decision = if decision.go { "go" } else { "no-go" },
            bypassed = %e.bypassed.join(","),
            refused_by = %e.refused_by.join(","),
            "emergency change {}: {}",
            if decision.go { "allowed" } else { "refused" },
            e.reason
        );
        if let Some(path) = &args.events {
            if let Err(err) = append_line(path, &record) {
                eprintln!(
                    "error: cannot record the emergency change in {}: {err}\n  = help: an emergency change must not go out unrecorded; fix --events or leave it out",
                    path.display()
                );
                return exit::USAGE;
            }
        }
        // The rule file's channels (with `--rules`) hear of every emergency change.
        let summary = format!(
            "rollwatch gate: emergency change {} at {}: {}. Bypassed: {}.{}",
            if decision.go { "allowed" } else { "REFUSED" },
            rfc3339(&decision.at),
            e.reason,
            if e.bypassed.is_empty() {
                "nothing".to_string()
            } else {
                e.bypassed.join(", ")
            },
            if e.refused_by.is_empty() {
                String::new()
            } else {
                format!(" Refused by: {}.", e.refused_by.join(", "))
            }
        );
        crate::io::notify::send_now(&channels, "emergency_change", summary, record).await;
    }

    let summary = match decision.reasons.iter().find(|r| r.blocks && !r.bypassed) {
        Some(r) if !decision.go => format!("no-go: {}", r.message),
        _ if decision.go => "go".to_string(),
        _ => "no-go".to_string(),
    };
    info!(
        event = "gate_decision",
        decision = if decision.go { "go" } else { "no-go" },
        at = %rfc3339(&decision.at),
        "{summary}"
    );
    match args.format {
        Format::Text => print!("{}", render_text(&decision, &rules, &before)),
        Format::Json => println!("{}", render_json(&decision, &rules, &before)),
    }
    if decision.go {
        exit::HEALTHY
    } else {
        exit::NO_GO
    }
}

/// A rule breached now by a breach that held through its `for` before now.
#[derive(Debug, Clone, PartialEq)]
pub struct PreExistingNow {
    pub mode: crate::core::eval::PreExisting,
    /// Its `for`, the window read.
    pub for_s: f64,
    /// The series breaching through it.
    pub series: usize,
}

/// Each rule's breach now that was already there through its `for` (None: it is not
/// breached now, or not for that long, or its history could not be read: then it
/// counts as any breach).
async fn pre_existing_now(
    spec: &crate::core::rules::WatchSpec,
    client: &crate::io::prom::PromClient,
    statuses: &[RuleStatus],
) -> Vec<Option<PreExistingNow>> {
    use crate::run::preflight;
    if !statuses.iter().any(|r| r.breached) {
        return vec![None; statuses.len()];
    }
    let now = crate::core::events::now_ms();
    let baselines: Vec<_> = preflight::before_baselines(spec, client, now, &Default::default())
        .await
        .iter()
        .map(preflight::Baseline::samples)
        .collect();
    let scrape = match spec.step {
        Some(_) => None,
        None => client.scrape_interval().await,
    };
    let found =
        preflight::pre_existing(spec, client, now, scrape, &baselines, &Default::default()).await;
    spec.rules
        .iter()
        .zip(statuses)
        .zip(&found)
        .map(|((rule, status), p)| {
            let before = p.before().filter(|b| status.breached && !b.is_empty())?;
            Some(PreExistingNow {
                mode: rule.judging.pre_existing,
                for_s: rule.for_.as_secs_f64(),
                series: before.len(),
            })
        })
        .collect()
}

/// Loads the rule file and queries every rule once; Err(exit code) after printing why
/// when the file or the Prometheus settings are unusable.
/// Queries every rule once now; also returns the rule file's notification channels,
/// and which breaches now are pre-existing.
#[allow(clippy::type_complexity)]
async fn health(
    path: &Path,
    args: &GateArgs,
) -> Result<
    (
        Vec<RuleStatus>,
        Vec<crate::core::rules::Channel>,
        Vec<Option<PreExistingNow>>,
    ),
    u8,
> {
    let opts = crate::core::rules::LoadOptions {
        outside: Some(&crate::io::host::HOST),
        sets: &args.sets,
        check: false,
    };
    let spec = load_reporting(path, &opts).ok_or(exit::USAGE)?;
    let client =
        prom_client(&args.prom, spec.prometheus.as_deref(), spec.query_timeout).map_err(|e| {
            eprintln!("error: {e}");
            exit::USAGE
        })?;
    let out = crate::run::verdict::evaluate_once(&spec, &client, false).await;
    let before = pre_existing_now(&spec, &client, &out).await;
    Ok((out, spec.notify, before))
}

fn emergency_record(d: &Decision, calendar: &str, rules: Option<&Path>) -> Value {
    let e = d.emergency.as_ref();
    json!({
        "event": "emergency_change",
        "at": rfc3339(&d.at),
        "recorded_at": Timestamp::now().to_string(),
        "reason": e.map(|e| e.reason.clone()),
        "decision": if d.go { "go" } else { "no-go" },
        "bypassed": e.map(|e| e.bypassed.clone()).unwrap_or_default(),
        "refused_by": e.map(|e| e.refused_by.clone()).unwrap_or_default(),
        "calendar": calendar,
        "rules": rules.map(|p| p.display().to_string()),
    })
}

/// Appends one line in a single write, so concurrent gates never interleave records.
fn append_line(path: &Path, record: &Value) -> std::io::Result<()> {
    let mut line = record.to_string();
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

fn render_text(d: &Decision, rules: &[RuleStatus], before: &[Option<PreExistingNow>]) -> String {
    let mut out = format!("{} at {}\n", if d.go { "GO" } else { "NO-GO" }, show(&d.at));
    for r in &d.reasons {
        let mark = match (r.blocks, r.bypassed) {
            (false, _) => "ok",
            (true, true) => "bypassed",
            (true, false) => "blocks",
        };
        out.push_str(&format!("  [{mark}] {}\n", r.message));
    }
    for (i, r) in rules.iter().enumerate() {
        let state = match (&r.error, r.value, r.breached) {
            (Some(e), _, _) => format!("query failed: {e}"),
            (None, None, true) => "no data (no_data: breach) BREACHED".to_string(),
            (None, None, false) => "no data".to_string(),
            (None, Some(v), b) => format!(
                "{} (breached when {}) {}",
                crate::core::events::float::text(v),
                r.threshold,
                if b { "BREACHED" } else { "ok" }
            ),
        };
        let why = if r.evidence.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.evidence.text())
        };
        let pre = match before.get(i) {
            Some(Some(p)) => format!(
                ", pre-existing: breaching through its `for` ({}) before now (pre_existing: {})",
                crate::core::events::secs(p.for_s),
                p.mode.text()
            ),
            _ => String::new(),
        };
        out.push_str(&format!("  rule `{}`: {state}{why}{pre}\n", r.name));
    }
    if let Some(e) = &d.emergency {
        if d.go && e.bypassed.is_empty() {
            out.push_str(&format!(
                "emergency change \"{}\": nothing needed bypassing; recorded\n",
                e.reason
            ));
        } else if d.go {
            out.push_str(&format!(
                "emergency change \"{}\" bypassed: {}; recorded\n",
                e.reason,
                e.bypassed.join(", ")
            ));
        } else {
            out.push_str(&format!(
                "emergency change \"{}\" refused by: {} (it allows no emergency changes)\n",
                e.reason,
                e.refused_by.join(", ")
            ));
        }
    }
    match &d.next_window {
        Some(n) => {
            let name = n
                .name
                .as_ref()
                .map_or_else(|| "deploys".to_string(), |n| format!("window `{n}`"));
            let closes = n
                .closes
                .as_ref()
                .map_or_else(String::new, |c| format!(", closes {}", show(c)));
            out.push_str(&format!(
                "next window: {name} opens {}{closes}\n",
                show(&n.opens)
            ));
        }
        None if !d.go => out.push_str(&format!(
            "next window: none opens within {} days\n",
            decide::HORIZON_DAYS
        )),
        None => {}
    }
    out
}

fn render_json(d: &Decision, rules: &[RuleStatus], before: &[Option<PreExistingNow>]) -> Value {
    let period = |p: &decide::Period| {
        json!({
            "name": p.name,
            "opens_at": rfc3339(&p.opens),
            "closes_at": p.closes.as_ref().map(rfc3339),
        })
    };
    json!({
        "decision": if d.go { "go" } else { "no-go" },
        "at": rfc3339(&d.at),
        "timezone": d.at.time_zone().iana_name(),
        "reasons": d.reasons,
        "emergency": d.emergency,
        "window": d.window.as_ref().map(period),
        "next_window": d.next_window.as_ref().map(period),
        "rules": rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut j = r.to_json();
                if let Some(Some(p)) = before.get(i) {
                    j["pre_existing"] = json!({
                        "mode": p.mode.text(),
                        "for_s": p.for_s,
                        "series": p.series,
                    });
                }
                j
            })
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_rfc3339_and_unix_seconds() {
        assert_eq!(
            parse_at("2026-03-12T03:00:00-04:00").unwrap(),
            "2026-03-12T07:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(parse_at("0").unwrap(), Timestamp::UNIX_EPOCH);
        assert_eq!(parse_at("1773298800").unwrap().as_second(), 1773298800);
        assert_eq!(parse_at("-1").unwrap().as_second(), -1);
        for bad in [
            "",
            "tomorrow",
            "2026-03-12",
            "2026-03-12T03:00:00",
            "99999999999999999999",
            "-",
        ] {
            assert!(parse_at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_emergency_needs_a_reason() {
        assert!(parse_reason("  ").is_err());
        assert_eq!(parse_reason(" CVE fix ").unwrap(), "CVE fix");
    }

    #[test]
    fn text_and_json_say_why_and_when() {
        let (cal, _) = crate::core::calendar::load_str(
            "c",
            "timezone: America/New_York\nwindows:\n  - {name: thu, days: [thu], from: \"02:00\", to: \"06:00\"}\nfreezes:\n  - {name: month-end, last_days_of_month: 7}\n",
        )
        .unwrap();
        let at: Timestamp = "2026-03-26T07:00:00Z".parse().unwrap();
        let mut d = decide::decide(&cal, at, None);
        d.block(Reason::rule_breached(
            "errors",
            "rule `errors` is breached now",
        ));
        let rules = vec![RuleStatus {
            name: "errors".into(),
            value: Some(0.2),
            threshold: "> 0.05".into(),
            breached: true,
            error: None,
            evidence: Default::default(),
        }];
        let text = render_text(&d, &rules, &[]);
        assert_eq!(
            text,
            "\
NO-GO at Thu 2026-03-26 03:00 EDT (2026-03-26 07:00 UTC)
  [ok] inside window `thu` (thu 02:00-06:00), open until Thu 2026-03-26 06:00 EDT (2026-03-26 10:00 UTC)
  [blocks] inside freeze `month-end` (the last 7 days of every month: 2026-03-25 to 2026-03-31); an emergency change may bypass it
  [blocks] rule `errors` is breached now
  rule `errors`: 0.2 (breached when > 0.05) BREACHED
next window: window `thu` opens Thu 2026-04-02 02:00 EDT (2026-04-02 06:00 UTC), closes Thu 2026-04-02 06:00 EDT (2026-04-02 10:00 UTC)
"
        );
        let j = render_json(&d, &rules, &[]);
        assert_eq!(j["decision"], "no-go");
        assert_eq!(j["at"], "2026-03-26T03:00:00-04:00");
        assert_eq!(j["timezone"], "America/New_York");
        assert_eq!(j["emergency"], Value::Null);
        assert_eq!(j["reasons"][1]["kind"], "freeze");
        assert_eq!(j["reasons"][1]["name"], "month-end");
        assert_eq!(j["reasons"][2]["kind"], "rule_breached");
        assert_eq!(j["next_window"]["name"], "thu");
        assert_eq!(j["next_window"]["opens_at"], "2026-04-02T02:00:00-04:00");
        assert_eq!(j["next_window"]["closes_at"], "2026-04-02T06:00:00-04:00");
        assert_eq!(j["rules"][0]["breached"], true);
        assert_eq!(j["rules"][0]["value"], 0.2);

        let d = decide::decide(&cal, at, Some("CVE"));
        let text = render_text(&d, &[], &[]);
        assert!(text.starts_with("GO at"), "{text}");
        assert!(
            text.contains("  [bypassed] inside freeze `month-end`"),
            "{text}"
        );
        assert!(
            text.contains("emergency change \"CVE\" bypassed: freeze:month-end; recorded"),
            "{text}"
        );
        let j = render_json(&d, &[], &[]);
        assert_eq!(j["emergency"]["reason"], "CVE");
        assert_eq!(j["emergency"]["bypassed"][0], "freeze:month-end");
        let rec = emergency_record(&d, "c.yaml", None);
        assert_eq!(rec["event"], "emergency_change");
        assert_eq!(rec["decision"], "go");
        assert_eq!(rec["bypassed"][0], "freeze:month-end");
    }
}
