//! Running a watch from a command (`watch`, `demo`): the sinks its output flags ask
//! for, the `baseline: before:` samples taken first, then `run::watch::run_session`.

use crate::cmd::args::OutputArgs;
use crate::core::events::Sinks;
use crate::core::exit;
use crate::core::rules::WatchSpec;
use crate::io::prom::PromClient;
use crate::run::channel;
use crate::run::watch::{self, Signal, WatchOptions, WatchSinks};
use std::sync::Arc;

/// them (waiting, bounded, for notifications in flight). Err(exit code) when an output
/// cannot be opened, before anything runs.
pub async fn run_watch(
    spec: &WatchSpec,
    client: PromClient,
    opts: &WatchOptions,
    outputs: &OutputArgs,
    signals: &mut channel::Receiver<Signal>,
    ahead: std::time::Duration,
    orders: Option<channel::Receiver<watch::OrderMsg>>,
) -> Result<watch::Outcome, u8> {
    let mut sinks = watch_sinks(outputs, spec).map_err(|e| {
        crate::say!("error: {e}");
        exit::USAGE
    })?;
    let start_ms = crate::core::events::now_ms();
    let baselines = before_baselines(spec, &client, start_ms).await;
    let scrape = match spec.step {
        Some(_) => None,
        None => client.scrape_interval().await,
    };
    let pre_existing = pre_existing(spec, &client, start_ms, scrape, &baselines).await;
    Ok(watch::run_session(
        spec,
        Arc::new(client),
        opts,
        Box::new(watch::Start {
            baselines,
            pre_existing,
            ahead,
            scrape,
            orders,
            ..Default::default()
        }),
        signals,
        &mut sinks,
    )
    .await)
}

/// The `baseline: before:` samples of every rule that has one, each from one range
/// query ending at `start_ms` (`run::preflight::before_baselines`), said in the log.
/// A failed query is a warning: that rule's series then have no baseline and follow
/// `no_baseline`.
pub async fn before_baselines<H: crate::io::prom::HistorySource>(
    spec: &WatchSpec,
    source: &H,
    start_ms: i64,
) -> Vec<Option<Vec<crate::core::series::Sample>>> {
    use crate::run::preflight::{self, Baseline};
    let found = preflight::before_baselines(spec, source, start_ms, &Default::default()).await;
    for (rule, b) in spec.rules.iter().zip(&found) {
        match b {
            Baseline::Taken { samples, window } => {
                tracing::info!(event = "baseline", rule = %rule.name, series = samples.len(), "baseline taken: the mean of the query over the {} before the watch", humantime::format_duration(*window))
            }
            Baseline::Failed(e) => {
                tracing::warn!(event = "baseline_failed", rule = %rule.name, error = %e, "the baseline could not be taken; every series of this rule follows `no_baseline`")
            }
            Baseline::NotWanted | Baseline::Known(_) => {}
        }
    }
    found.iter().map(Baseline::samples).collect()
}

/// Each rule's breaches that began before the watch (`run::preflight::pre_existing`),
/// read over the `for` before `start_ms`; a failed reading is a warning, and that
/// rule judges every breach as any (`pre_existing: judge`, the side that acts).
pub async fn pre_existing<H: crate::io::prom::HistorySource>(
    spec: &WatchSpec,
    source: &H,
    start_ms: i64,
    scrape: Option<std::time::Duration>,
    baselines: &[Option<Vec<crate::core::series::Sample>>],
) -> Vec<Option<crate::core::eval::Before>> {
    use crate::run::preflight::{self, PreDeploy};
    let found = preflight::pre_existing(
        spec,
        source,
        start_ms,
        scrape,
        baselines,
        &Default::default(),
    )
    .await;
    for (rule, p) in spec.rules.iter().zip(&found) {
        if let PreDeploy::Failed(e) = p {
            tracing::warn!(event = "pre_existing_failed", rule = %rule.name, error = %e, mode = %rule.judging.pre_existing.text(), "could not read whether this rule was already breaching before the watch; every breach of it is judged as any");
        }
    }
    found.iter().map(|p| p.before().cloned()).collect()
}

/// Builds the sinks a watch reports to.
pub fn watch_sinks(args: &OutputArgs, spec: &WatchSpec) -> Result<WatchSinks, String> {
    let mut sinks = Sinks::default();
    let live = crate::show::live::multi().is_some();
    if live {
        sinks.push(crate::show::live::LiveView::start(spec));
    } else {
        sinks.push(crate::show::event_lines::LogSink);
    }
    if let Some(target) = &args.events {
        let j = crate::show::event_lines::JsonLines::open(target)
            .map_err(|e| format!("cannot open --events {target}: {e}"))?;
        sinks.push(j);
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create --report directory {}: {e}", dir.display()))?;
        sinks.push(crate::show::report::Recorder::new(dir.clone()));
    }
    if let Some(summary) = crate::show::report::step_summary::StepSummary::from_env() {
        sinks.push(summary);
    }
    let mut deliveries = None;
    if !spec.notify.is_empty() {
        let (mut sink, d) = crate::io::notify::Notifier::new(spec.notify.clone());
        if let Some(dir) = &args.report {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            sink = sink.with_report(dir.join("report.html").display().to_string());
        }
        sinks.push(sink);
        deliveries = Some(d);
    }
    Ok(WatchSinks { sinks, deliveries })
}
