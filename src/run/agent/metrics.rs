//! The agent's own metrics, on a `prometheus::Registry` it is given.
//!
//! The registry is injected (never the crate's global default) so that tests, and a
//! process embedding the agent, own exactly the metrics they see. What is measured is
//! what an operator needs to trust the agent: are watches on schedule (scheduling lag),
//! is Prometheus answering (query latency and errors), how much is shared, and what the
//! agent did (evaluations, actions by kind and result, watches by state).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Buckets (seconds) fine enough at the low end to read a p50 of a few milliseconds.
const LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label values of `kind` on the query metrics.
pub const QUERY_KINDS: [&str; 2] = ["instant", "range"];
/// The label values of `rollwatch_agent_actions_total`: `kind` (the commands a rule
/// can run) and `result`.
pub const ACTION_KINDS: [&str; 2] = ["rollback", "pause"];
/// See `ACTION_KINDS`.
pub const ACTION_RESULTS: [&str; 3] = ["succeeded", "failed", "unknown"];
/// The label values of `rollwatch_agent_watches`.
const WATCH_STATES: [&str; 3] = ["running", "finished", "cancelled"];

/// Every metric the agent updates. A clone shares them, in one pointer: each
/// watch's store sink keeps one, and the metrics' own handles are 152 bytes (issue 21).
#[derive(Clone)]
pub struct Metrics(std::sync::Arc<AllMetrics>);

impl std::ops::Deref for Metrics {
    type Target = AllMetrics;
    fn deref(&self) -> &AllMetrics {
        &self.0
    }
}

/// The metrics themselves (`Metrics`).
pub struct AllMetrics {
    pub registry: Registry,
    /// Watches by state (`running`, `finished`, `cancelled`), set at each scrape.
    pub watches: IntGaugeVec,
    /// Polls judged by an evaluator (live and caught-up).
    pub evaluations: IntCounter,
    /// Queries sent to Prometheus, by `kind` (`instant`, `range`).
    pub queries_sent: IntCounterVec,
    /// Polls answered by another watch's identical in-flight query.
    pub queries_shared: IntCounter,
    /// Failed queries, by `kind`.
    pub query_errors: IntCounterVec,
    /// Time Prometheus took to answer (after waiting for a slot).
    pub query_latency: HistogramVec,
    /// Time from a poll's scheduled tick to its query being issued (before the
    /// concurrency limit): how far behind schedule the agent runs.
    pub schedule_lag: Histogram,
    /// Actions by `kind` (rollback, pause) and `result` (succeeded, failed, unknown).
    pub actions: IntCounterVec,
    /// Writes to the state store that failed (a claim that failed ran nothing).
    pub store_errors: IntCounter,
    /// Watches that could not be resumed yet (a token or CA file not there yet): the
    /// agent is not ready while this is above 0.
    pub resume_waiting: IntGauge,
    /// Watches whose lease this agent holds now (with SQLite: every running watch).
    pub leases_held: IntGauge,
    /// Lease renewal rounds (one statement each), by `result` (`ok`, `failed`).
    pub lease_renewals: IntCounterVec,
    /// Time a renewal round took to be answered (answered rounds: one past the trust
    /// window is a failed round). Its leases lapse when it nears the trust window.
    pub lease_renewal_duration: Histogram,
    /// Watches adopted from a dead or expired owner (or none) and resumed here.
    pub lease_adoptions: IntCounter,
    /// Action claims refused because this agent no longer held (or trusted) the lease.
    pub claims_refused: IntCounter,
    /// 1 if the last round trip to the store succeeded, else 0.
    pub store_up: IntGauge,
    /// Writes to a watch's state refused because this agent no longer held (or
    /// trusted) the watch's lease: the store kept what the new owner wrote.
    pub writes_fenced: IntCounter,
    /// Times this agent stopped judging a watch (or would not start one) because the
    /// clock its watches are timed on was off Prometheus's by more than `max_blind`.
    pub clock_refusals: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: Registry) -> Result<Metrics, prometheus::Error> {
        let watches = IntGaugeVec::new(
            Opts::new("rollwatch_agent_watches", "Watches by state."),
            &["state"],
        )?;
        let evaluations = IntCounter::new(
            "rollwatch_agent_evaluations_total",
            "Polls judged by a rule evaluator.",
        )?;
        let queries_sent = IntCounterVec::new(
            Opts::new(
                "rollwatch_agent_queries_sent_total",
                "Queries sent to Prometheus.",
            ),
            &["kind"],
        )?;
        let queries_shared = IntCounter::new(
            "rollwatch_agent_queries_shared_total",
            "Polls answered by an identical in-flight query of another watch.",
        )?;
        let query_errors = IntCounterVec::new(
            Opts::new("rollwatch_agent_query_errors_total", "Queries that failed."),
            &["kind"],
        )?;
        let query_latency = HistogramVec::new(
            HistogramOpts::new(
                "rollwatch_agent_query_duration_seconds",
                "Time Prometheus took to answer a query.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let schedule_lag = Histogram::with_opts(
            HistogramOpts::new(
                "rollwatch_agent_schedule_lag_seconds",
                "Time from a poll's scheduled tick to its query being issued.",
            )
            .buckets(LAG_BUCKETS.to_vec()),
        )?;
        let actions = IntCounterVec::new(
            Opts::new(
                "rollwatch_agent_actions_total",
                "Rollback and pause commands, by result.",
            ),
            &["kind", "result"],
        )?;
        registry.register(Box::new(watches.clone()))?;
        registry.register(Box::new(evaluations.clone()))?;
        registry.register(Box::new(queries_sent.clone()))?;
        registry.register(Box::new(queries_shared.clone()))?;
        registry.register(Box::new(query_errors.clone()))?;
        registry.register(Box::new(query_latency.clone()))?;
        registry.register(Box::new(schedule_lag.clone()))?;
        let store_errors = IntCounter::new(
            "rollwatch_agent_store_errors_total",
            "Writes to the state store that failed.",
        )?;
        let resume_waiting = IntGauge::new(
            "rollwatch_agent_resume_waiting",
            "Unfinished watches that cannot be resumed yet; the agent is not ready meanwhile.",
        )?;
        registry.register(Box::new(actions.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(resume_waiting.clone()))?;
        let leases_held = IntGauge::new(
            "rollwatch_agent_leases_held",
            "Watches whose lease this agent holds now.",
        )?;
        let lease_renewals = IntCounterVec::new(
            Opts::new(
                "rollwatch_agent_lease_renewals_total",
                "Lease renewal rounds (one statement for all of the agent's leases), by result.",
            ),
            &["result"],
        )?;
        let lease_renewal_duration = Histogram::with_opts(
            HistogramOpts::new(
                "rollwatch_agent_lease_renewal_duration_seconds",
                "Time a lease renewal round (one statement for all of the agent's leases) took to be answered.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let lease_adoptions = IntCounter::new(
            "rollwatch_agent_lease_adoptions_total",
            "Watches adopted from a dead or expired owner and resumed here.",
        )?;
        let claims_refused = IntCounter::new(
            "rollwatch_agent_claims_refused_total",
            "Action claims refused because this agent no longer held the watch's lease; nothing ran.",
        )?;
        let store_up = IntGauge::new(
            "rollwatch_agent_store_up",
            "1 if the last round trip to the state store succeeded, else 0.",
        )?;
        let writes_fenced = IntCounter::new(
            "rollwatch_agent_writes_fenced_total",
            "Writes to a watch's state refused because this agent no longer held its lease.",
        )?;
        let clock_refusals = IntCounter::new(
            "rollwatch_agent_clock_refusals_total",
            "Watches not judged here because the agent's watch clock was off Prometheus's by more than max_blind.",
        )?;
        registry.register(Box::new(writes_fenced.clone()))?;
        registry.register(Box::new(clock_refusals.clone()))?;
        for r in ["ok", "failed"] {
            lease_renewals.with_label_values(&[r]);
        }
        // Every known label value starts at 0 (Prometheus's instrumentation guide): a
        // quiet agent's dashboard shows 0, the truth, not "no data", and `rate()` and
        // `increase()` see the first action or error as a change from 0.
        for kind in QUERY_KINDS {
            queries_sent.with_label_values(&[kind]);
            query_errors.with_label_values(&[kind]);
            query_latency.with_label_values(&[kind]);
        }
        for kind in ACTION_KINDS {
            for result in ACTION_RESULTS {
                actions.with_label_values(&[kind, result]);
            }
        }
        for state in WATCH_STATES {
            watches.with_label_values(&[state]);
        }
        registry.register(Box::new(leases_held.clone()))?;
        registry.register(Box::new(lease_renewals.clone()))?;
        registry.register(Box::new(lease_renewal_duration.clone()))?;
        registry.register(Box::new(lease_adoptions.clone()))?;
        registry.register(Box::new(claims_refused.clone()))?;
        registry.register(Box::new(store_up.clone()))?;
        Ok(Metrics(std::sync::Arc::new(AllMetrics {
            writes_fenced,
            clock_refusals,
            leases_held,
            lease_renewals,
            lease_renewal_duration,
            lease_adoptions,
            claims_refused,
            store_up,
            store_errors,
            resume_waiting,
            registry,
            watches,
            evaluations,
            queries_sent,
            queries_shared,
            query_errors,
            query_latency,
            schedule_lag,
            actions,
        })))
    }

    /// The text exposition of everything registered.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode the agent's metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_label_values_start_at_zero() {
        let text = Metrics::new(Registry::new()).unwrap().render();
        for line in [
            "rollwatch_agent_actions_total{kind=\"rollback\",result=\"succeeded\"} 0",
            "rollwatch_agent_actions_total{kind=\"pause\",result=\"unknown\"} 0",
            "rollwatch_agent_query_errors_total{kind=\"instant\"} 0",
            "rollwatch_agent_query_errors_total{kind=\"range\"} 0",
            "rollwatch_agent_queries_sent_total{kind=\"range\"} 0",
            "rollwatch_agent_watches{state=\"running\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn registers_on_the_given_registry_only() {
        let r = Registry::new();
        let m = Metrics::new(r.clone()).unwrap();
        m.evaluations.inc();
        m.actions
            .with_label_values(&["rollback", "succeeded"])
            .inc();
        let text = m.render();
        assert!(
            text.contains("rollwatch_agent_evaluations_total 1"),
            "{text}"
        );
        assert!(text
            .contains("rollwatch_agent_actions_total{kind=\"rollback\",result=\"succeeded\"} 1"));
        // A second set on another registry does not clash: nothing is global.
        assert!(Metrics::new(Registry::new()).is_ok());
        assert!(prometheus::gather()
            .iter()
            .all(|f| !f.name().starts_with("rollwatch_")));
    }
}
