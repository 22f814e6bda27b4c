//! The one pre-flight of a watch: what is checked before it starts, and what each
//! finding means, whoever starts it (`watch`, `check`, the agent at creation, restart
//! and adoption). The faces only render these: an error stops the watch (exit 2, or
//! a 400), a warning is said and the watch runs.
//!
//! - the rollback and pause programs exist and are executable (`programs`);
//! - no rule is one that can never fire within the watch (`never_fires`);
//! - the clock the watch is timed on agrees with Prometheus's (`judge_clock`): every
//!   poll asks Prometheus about "now" by that clock, so a skew larger than the
//!   watch's `max_blind` (capped by its duration, as the loop caps it) would judge
//!   the wrong moment every time.
//!
//! - each `baseline: before:` rule's samples, known or taken now
//!   (`before_baselines`): a failed one is a warning (its series follow
//!   `no_baseline`), never a refusal. The agent stores what was taken, so that a
//!   restart never shifts them.
//! - each rule's breaches that began before the watch (`pre_existing`): its history
//!   over the `for` before the start, at its step, read once
//!   (`core::eval::read_before`). A failed reading is a warning: the rule then judges
//!   every breach as any (`pre_existing: judge`, the side that acts). The agent
//!   stores the reading beside the baselines, so a restart never reads it again.

use crate::core::eval::{Before, Poll};
use crate::core::rules::lint::{self, NeverFires};
use crate::core::rules::{BaselineSource, WatchSpec};
use crate::core::series::{Labels, Sample};
use crate::io::prom::{ClockSkew, HistorySource, QueryError, SkewVerdict};
use std::collections::BTreeMap;
use std::time::Duration;

/// The clock a watch is timed on, against which Prometheus's is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchClock {
    /// `watch`: this machine's wall clock.
    ThisMachine,
    /// `serve`: the store's clock, carried by the agent (`run::agent::clock`).
    Store,
}

impl WatchClock {
    /// How a skew of this clock against Prometheus's reads.
    pub fn describe(self, skew: &ClockSkew) -> String {
        match self {
            WatchClock::ThisMachine => skew.to_string(),
            WatchClock::Store => {
                let how = if skew.skew_ms > 0 {
                    "behind"
                } else {
                    "ahead of"
                };
                format!(
                    "the clock this agent times watches on (the store's) is {:.3}s {how} Prometheus's (±{:.3}s)",
                    skew.skew_ms.unsigned_abs() as f64 / 1000.0,
                    skew.uncertainty_ms as f64 / 1000.0
                )
            }
        }
    }

    /// What to do about a skew of this clock.
    pub fn help(self) -> &'static str {
        match self {
            WatchClock::ThisMachine => "sync this machine's clock (NTP: `timedatectl`, `chronyc tracking`) or run the watch on a machine whose clock is right",
            WatchClock::Store => "sync the store's and Prometheus's clocks (NTP)",
        }
    }
}

/// What keeps a watch from starting.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PreflightError {
    #[error("the {section} command's program `{program}` is not found or not executable")]
    ProgramMissing {
        /// `rollback` or `pause`.
        section: &'static str,
        program: String,
    },
    #[error("{}, more than {} ({}): every poll would ask about {}", .clock.describe(.skew), limit_what(*.whole_duration), humantime::format_duration(*.limit), judged(.skew))]
    ClockRefused {
        skew: ClockSkew,
        clock: WatchClock,
        /// The watch's `max_blind`, capped by its duration.
        limit: Duration,
        /// Whether the cap is the watch's whole duration (shorter than `max_blind`).
        whole_duration: bool,
    },
}

/// What a watch starts with all the same, said to whoever starts it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PreflightWarning {
    /// A rule that can never fire within the watch (`NeverFires::help` says why).
    #[error("{0}")]
    NeverFires(NeverFires),
    #[error("{}: every poll asks Prometheus about a moment that far off", .clock.describe(.skew))]
    ClockSkew { skew: ClockSkew, clock: WatchClock },
    #[error("cannot compare {} with Prometheus's ({reason}); watching anyway", match .clock { WatchClock::ThisMachine => "this machine's clock", WatchClock::Store => "the agent's clock" })]
    ClockUnknown { clock: WatchClock, reason: String },
}

fn limit_what(whole_duration: bool) -> &'static str {
    if whole_duration {
        "the watch's whole duration"
    } else {
        "the watch's max_blind"
    }
}

fn judged(skew: &ClockSkew) -> &'static str {
    if skew.skew_ms < 0 {
        "a moment Prometheus has no samples for yet (an empty answer can pass as healthy)"
    } else {
        "a moment long past"
    }
}

/// Every rollback or pause program of `spec` that is not there (empty: all are).
pub fn programs(spec: &WatchSpec) -> Vec<PreflightError> {
    [("rollback", &spec.rollback), ("pause", &spec.pause)]
        .into_iter()
        .filter_map(|(section, cmd)| {
            let cmd = cmd.as_ref()?;
            crate::io::action::find_program(&cmd.argv[0])
                .is_none()
                .then(|| PreflightError::ProgramMissing {
                    section,
                    program: cmd.argv[0].clone(),
                })
        })
        .collect()
}

/// The rules of `spec` that can never fire in a watch of `duration`.
pub fn never_fires(spec: &WatchSpec, duration: Duration) -> Vec<NeverFires> {
    lint::never_fires(spec, duration)
}

/// The limit a watch's clock must stay within: its `max_blind`, capped by its
/// duration (as the watch loop caps it).
pub fn clock_limit(max_blind: Duration, duration: Duration) -> Duration {
    max_blind.min(duration)
}

/// Judges a measured skew (or why it could not be measured) of `clock` against the
/// limit of a watch with `max_blind` and `duration`: a refusal, a warning, or nothing.
/// A failed measurement never holds a watch back (its own blind handling judges an
/// unreachable Prometheus).
pub fn judge_clock(
    measured: Result<ClockSkew, String>,
    clock: WatchClock,
    max_blind: Duration,
    duration: Duration,
) -> Result<Option<PreflightWarning>, PreflightError> {
    let skew = match measured {
        Ok(s) => s,
        Err(reason) => return Ok(Some(PreflightWarning::ClockUnknown { clock, reason })),
    };
    let limit = clock_limit(max_blind, duration);
    match skew.judge(limit) {
        SkewVerdict::Fine => Ok(None),
        SkewVerdict::Warn => Ok(Some(PreflightWarning::ClockSkew { skew, clock })),
        SkewVerdict::Refuse => Err(PreflightError::ClockRefused {
            skew,
            clock,
            limit,
            whole_duration: duration < max_blind,
        }),
    }
}

/// What one rule's `baseline: before:` came to.
#[derive(Debug)]
pub enum Baseline {
    /// The rule has none.
    NotWanted,
    /// Known already (taken at the watch's first start, and stored): used as is.
    Known(Vec<Sample>),
    /// Taken now: the mean of the query over `window` before the watch.
    Taken {
        samples: Vec<Sample>,
        window: Duration,
    },
    /// Its query failed (a warning): the rule's series follow `no_baseline`.
    Failed(QueryError),
}

impl Baseline {
    /// What the watch loop is given (`Start::baselines`): a failed baseline is an
    /// empty one.
    pub fn samples(&self) -> Option<Vec<Sample>> {
        match self {
            Baseline::NotWanted => None,
            Baseline::Known(s) | Baseline::Taken { samples: s, .. } => Some(s.clone()),
            Baseline::Failed(_) => Some(Vec::new()),
        }
    }
}

/// Whether any rule of `spec` has a `baseline: before:`.
pub fn wants_before(spec: &WatchSpec) -> bool {
    spec.rules
        .iter()
        .any(|r| matches!(r.baseline, Some(BaselineSource::Before(_))))
}

/// Each rule's `baseline: before:`: the `known` one (by rule name), else one range
/// query through `source` over the window before `start_ms`.
pub async fn before_baselines<H: HistorySource>(
    spec: &WatchSpec,
    source: &H,
    start_ms: i64,
    known: &BTreeMap<String, Vec<(Labels, f64)>>,
) -> Vec<Baseline> {
    let mut out = Vec::with_capacity(spec.rules.len());
    for rule in &spec.rules {
        let Some(BaselineSource::Before(window)) = rule.baseline else {
            out.push(Baseline::NotWanted);
            continue;
        };
        if let Some(values) = known.get(&rule.name) {
            out.push(Baseline::Known(
                values
                    .iter()
                    .map(|(labels, value)| Sample {
                        labels: labels.clone(),
                        value: *value,
                    })
                    .collect(),
            ));
            continue;
        }
        out.push(
            match crate::io::prom::history::mean_before(source, rule, window, start_ms).await {
                Ok(samples) => Baseline::Taken { samples, window },
                Err(e) => Baseline::Failed(e),
            },
        );
    }
    out
}

/// What one rule's reading of the time before the watch came to.
#[derive(Debug)]
pub enum PreDeploy {
    /// Not read: the rule counts polls (`breaches`, `compare`), or its query reads the
    /// watch's clock, which has no meaning before the watch.
    NotRead,
    /// Known already (read at the watch's first start, and stored): used as is.
    Known(Before),
    /// Read now, over `window` before the start.
    Taken { before: Before, window: Duration },
    /// Its queries failed (a warning): every breach is judged as any.
    Failed(QueryError),
}

impl PreDeploy {
    /// The series already breaching before the watch, when they are known.
    pub fn before(&self) -> Option<&Before> {
        match self {
            PreDeploy::Known(b) | PreDeploy::Taken { before: b, .. } => Some(b),
            PreDeploy::NotRead | PreDeploy::Failed(_) => None,
        }
    }
}

pub use crate::run::steps::reads_before;

/// Where the agent stores a rule's reading, beside its `before:` baseline (rule names
/// hold no `:`, so no rule's baseline can have this key).
pub fn pre_existing_key(rule: &str) -> String {
    format!("pre_existing:{rule}")
}

/// Where the agent records that one carried-over breach of a rule ended (one key per
/// series: a stored reading is written once and never changes).
pub fn pre_existing_over_key(rule: &str, labels: &Labels) -> String {
    format!(
        "pre_existing_over:{rule}:{}",
        serde_json::to_string(labels).unwrap_or_default()
    )
}

/// The breaches still carried over of a rule, from what the agent stored: its reading
/// without the series whose breach ended.
pub fn still_carried(rule: &str, stored: &BTreeMap<String, Vec<(Labels, f64)>>) -> Option<Before> {
    let read = stored.get(&pre_existing_key(rule))?;
    Some(
        read.iter()
            .filter(|(l, _)| !stored.contains_key(&pre_existing_over_key(rule, l)))
            .cloned()
            .collect(),
    )
}

/// Each rule's breaches that began before the watch starting at `start_ms`: the
/// `known` reading (as the agent stored it), else the rule's queries over the `for`
/// before the start at its step (`WatchSpec::step_for`), one range query each,
/// judged with its `before:` baseline (`baselines`, indexed like the rules).
pub async fn pre_existing<H: HistorySource>(
    spec: &WatchSpec,
    source: &H,
    start_ms: i64,
    scrape: Option<Duration>,
    baselines: &[Option<Vec<Sample>>],
    known: &BTreeMap<String, Vec<(Labels, f64)>>,
) -> Vec<PreDeploy> {
    let mut out = Vec::with_capacity(spec.rules.len());
    for (i, rule) in spec.rules.iter().enumerate() {
        if !reads_before(rule) {
            out.push(PreDeploy::NotRead);
            continue;
        }
        if let Some(before) = still_carried(&rule.name, known) {
            out.push(PreDeploy::Known(before));
            continue;
        }
        let step = spec.step_for(rule, scrape);
        let fixed = baselines.get(i).cloned().flatten().map(Poll::Samples);
        let params = rule.params();
        let read =
            crate::run::steps::before_start(source, rule, &params, start_ms, step, fixed.as_ref());
        out.push(match read.await {
            Ok((before, window)) => PreDeploy::Taken { before, window },
            Err(e) => PreDeploy::Failed(e),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skew(ms: i64) -> Result<ClockSkew, String> {
        Ok(ClockSkew {
            skew_ms: ms,
            uncertainty_ms: 2,
        })
    }

    #[test]
    fn a_restart_carries_over_only_the_stored_breaches_still_running() {
        let a = crate::core::series::Sample::new(&[("s", "a")], 0.0).labels;
        let b = crate::core::series::Sample::new(&[("s", "b")], 0.0).labels;
        let mut stored: BTreeMap<String, Vec<(Labels, f64)>> = BTreeMap::new();
        assert_eq!(still_carried("r", &stored), None, "not read yet");
        stored.insert(
            pre_existing_key("r"),
            vec![(a.clone(), 0.9), (b.clone(), 0.8)],
        );
        // A `before:` baseline of the same rule is another key.
        stored.insert("r".into(), vec![(a.clone(), 0.1)]);
        assert_eq!(
            still_carried("r", &stored),
            Some([(a.clone(), 0.9), (b.clone(), 0.8)].into())
        );
        stored.insert(pre_existing_over_key("r", &a), Vec::new());
        assert_eq!(still_carried("r", &stored), Some([(b.clone(), 0.8)].into()));
        // Read, and nothing was breaching: known, and empty.
        stored.insert(pre_existing_key("q"), Vec::new());
        assert_eq!(still_carried("q", &stored), Some(Default::default()));
    }

    #[test]
    fn every_missing_program_is_an_error_naming_it() {
        let text = "watch:\n  duration: 1m\n  interval: 1s\nrollback:\n  command: [\"/nonexistent/kubectl\"]\npause:\n  command: [\"true\"]\nrules:\n  - name: r\n    query: up\n    above: 1\n    for: 0s\n";
        let (spec, _) = crate::core::rules::load_str(
            "r.yaml",
            text,
            &crate::core::rules::LoadOptions {
                outside: None,
                sets: &[],
                check: false,
            },
        )
        .unwrap();
        let missing: Vec<String> = programs(&spec).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            missing,
            ["the rollback command's program `/nonexistent/kubectl` is not found or not executable"]
        );
    }

    #[test]
    fn a_clock_is_refused_past_max_blind_capped_by_the_duration() {
        let (m5, m10) = (Duration::from_secs(300), Duration::from_secs(600));
        assert!(matches!(
            judge_clock(skew(100), WatchClock::ThisMachine, m5, m10),
            Ok(None)
        ));
        assert!(matches!(
            judge_clock(skew(-10_000), WatchClock::Store, m5, m10),
            Ok(Some(PreflightWarning::ClockSkew { .. }))
        ));
        let e = judge_clock(skew(-600_000), WatchClock::ThisMachine, m5, m10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this machine's clock is 600.000s ahead of Prometheus's (±0.002s), more than the watch's max_blind (5m): every poll would ask about a moment Prometheus has no samples for yet (an empty answer can pass as healthy)"
        );
        // A 3s watch: its whole duration is the limit.
        let e = judge_clock(skew(5_000), WatchClock::Store, m5, Duration::from_secs(3))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "the clock this agent times watches on (the store's) is 5.000s behind Prometheus's"
            ),
            "{e}"
        );
        assert!(e.contains("more than the watch's whole duration (3s): every poll would ask about a moment long past"), "{e}");
        assert!(matches!(
            judge_clock(Err("down".into()), WatchClock::Store, m5, m10),
            Ok(Some(PreflightWarning::ClockUnknown { .. }))
        ));
    }
}
