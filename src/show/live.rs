//! The live view: while a watch runs on a terminal, a compact redrawn view of time left
//! and every rule's value, threshold, state and recent trend, instead of scrolling logs.
//!
//! indicatif does the drawing. Decisions and command output still appear, printed above
//! the bars; log records from elsewhere are routed through the same `MultiProgress`
//! (see `logging`) so they never tear the view. Off a terminal (CI), with `--quiet`,
//! `--log-format json` or `--no-live`, there is no live view: plain log lines only.

use crate::core::events::{secs, Event, RuleState, Sink};
use crate::core::rules::WatchSpec;
use crate::show::report::fmt_value;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Whether a live view can be drawn: stderr is a terminal that is not `dumb`.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// The shared drawing surface, once the live view is on.
pub fn multi() -> Option<&'static MultiProgress> {
    MULTI.get()
}

/// Turns the live view on for this process (before logging starts).
pub fn enable() {
    let _ = MULTI.set(MultiProgress::with_draw_target(
        ProgressDrawTarget::stderr_with_hz(4),
    ));
}

/// Renders recent values as a sparkline. The scale spans the values and the
/// thresholds, so noise far below a threshold stays flat and a value near it stands out.
pub fn sparkline(values: &VecDeque<f64>, thresholds: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .chain(thresholds.iter().copied())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                ' '
            } else if hi - lo < 1e-12 {
                BARS[3]
            } else {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            }
        })
        .collect()
}

struct RuleLine {
    bar: ProgressBar,
    threshold: String,
    limits: Vec<f64>,
    recent: VecDeque<f64>,
}

/// The live view sink.
pub struct LiveView {
    multi: MultiProgress,
    overall: ProgressBar,
    rules: BTreeMap<String, RuleLine>,
    width: usize,
}

const RECENT: usize = 24;

impl LiveView {
    pub fn start(spec: &WatchSpec) -> LiveView {
        let multi = MULTI.get().cloned().unwrap_or_else(|| {
            enable();
            MULTI.get().cloned().expect("just set")
        });
        let total = spec.duration.as_secs().max(1);
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(
            ProgressStyle::with_template("watch {bar:30.cyan/blue} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        overall.set_message(format!("{} left", secs(total as f64)));
        let ticker = overall.clone();
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                while !ticker.is_finished() {
                    tick.tick().await;
                    let done = start.elapsed().as_secs().min(total);
                    ticker.set_position(done);
                    ticker.set_message(format!("{} left", secs((total - done) as f64)));
                }
            });
        }
        let width = spec.rules.iter().map(|r| r.name.len()).max().unwrap_or(4);
        let mut rules = BTreeMap::new();
        for r in &spec.rules {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("{:<width$}  waiting for the first poll", r.name));
            rules.insert(
                r.name.clone(),
                RuleLine {
                    bar,
                    threshold: r.condition(),
                    limits: r
                        .threshold
                        .above
                        .into_iter()
                        .chain(r.threshold.below)
                        .collect(),
                    recent: VecDeque::new(),
                },
            );
        }
        LiveView {
            multi,
            overall,
            rules,
            width,
        }
    }

    fn say(&self, line: String) {
        let _ = self.multi.println(line);
    }
}

fn value_text(v: Option<f64>) -> String {
    v.map_or("no data".to_string(), fmt_value)
}

impl Sink for LiveView {
    fn emit(&mut self, _at_ms: i64, event: &Event) {
        let width = self.width;
        match event {
            Event::Poll {
                rule,
                state,
                value,
                error,
                ..
            } => {
                if let Some(line) = self.rules.get_mut(rule) {
                    if error.is_none() {
                        line.recent.push_back(value.unwrap_or(f64::NAN));
                        if line.recent.len() > RECENT {
                            line.recent.pop_front();
                        }
                    }
                    let marker = match state {
                        RuleState::Ok => "ok",
                        RuleState::NoData => "no data",
                        RuleState::Pending { .. } => "PENDING",
                        RuleState::Breached => "BREACHED",
                        RuleState::QueryError => "query error",
                    };
                    let detail = match state {
                        RuleState::Pending { .. } => format!(" ({state})"),
                        RuleState::QueryError => error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    line.bar.set_message(format!(
                        "{rule:<width$}  {:>10} vs {:<12} {}  {marker}{detail}",
                        value_text(*value),
                        line.threshold,
                        sparkline(&line.recent, &line.limits)
                    ));
                }
            }
            Event::Pending {
                rule,
                value,
                threshold,
                for_s,
                ..
            } => self.say(format!(
                "▲ {rule}: breached ({} {threshold}); pending for {}",
                value_text(*value),
                secs(*for_s)
            )),
            Event::Resolved {
                rule,
                breached_for_s,
                ..
            } => self.say(format!(
                "▼ {rule}: no longer breached after {}",
                secs(*breached_for_s)
            )),
            Event::Fired {
                rule,
                value,
                threshold,
                breached_for_s,
                action,
                ..
            } => self.say(format!(
                "■ {rule}: breached ({} {threshold}) at every poll for {} → {action}",
                value_text(*value),
                secs(*breached_for_s)
            )),
            Event::Notify { rule, .. } => {
                self.say(format!("✉ {rule}: notification; the watch goes on"))
            }
            Event::ActionStarted {
                action,
                argv,
                dry_run,
                ..
            } => {
                if *dry_run {
                    self.say(format!(
                        "dry run: would run the {action} command: {}",
                        argv.join(" ")
                    ))
                } else {
                    self.say(format!("running the {action} command: {}", argv.join(" ")))
                }
            }
            Event::ActionFinished { action, status, .. } => {
                self.say(format!("{action} command {status}"))
            }
            Event::Signal {
                signal,
                during_action,
            } => self.say(if *during_action {
                format!("{signal}: letting the running command finish, then stopping")
            } else {
                format!("{signal}: stopping the watch; no command will run")
            }),
            Event::WatchFinished {
                outcome,
                exit_code,
                detail,
                ..
            } => {
                self.overall
                    .finish_with_message(format!("{outcome} (exit {exit_code})"));
                for l in self.rules.values() {
                    l.bar.finish();
                }
                self.say(format!("watch finished: {detail} (exit {exit_code})"));
            }
            Event::Manual { .. }
            | Event::HeldBack { .. }
            | Event::HoldEnded { .. }
            | Event::Succeeds { .. } => {
                if let Some(t) = crate::core::events::manual_text(event) {
                    self.say(t);
                }
            }
            Event::PreExisting { .. } | Event::PreExistingOver { .. } => {
                if let Some(t) = crate::core::events::pre_existing_text(event) {
                    self.say(t);
                }
            }
            Event::WatchStarted { .. } | Event::PauseSkipped { .. } | Event::Silenced { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_between_min_and_max() {
        let v: VecDeque<f64> = [0.0, 0.5, 1.0, f64::NAN].into_iter().collect();
        assert_eq!(sparkline(&v, &[]), "▁▅█ ");
        let flat: VecDeque<f64> = [2.0, 2.0].into_iter().collect();
        assert_eq!(sparkline(&flat, &[]), "▄▄");
        // Noise far below the threshold stays low.
        let noise: VecDeque<f64> = [0.21, 0.23, 0.22].into_iter().collect();
        assert_eq!(sparkline(&noise, &[0.5]), "▁▁▁");
    }
}
