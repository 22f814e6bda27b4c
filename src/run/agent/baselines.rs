//! A `baseline: before:` rule's samples, taken once: from the store when a restart
//! finds them, else from Prometheus's history before the watch was created (stored
//! then, so a restart never shifts them).

use super::Agent;
use crate::core::rules::WatchSpec;
use crate::io::store::StoreError;
use tracing::{info, warn};

impl Agent {
    /// The `baseline: before:` samples of each rule: the stored ones (a restart never
    /// shifts them), else taken now over the `D` before the watch was created (one
    /// range query through the shared source) and stored. A failed query is a warning
    /// (that rule's series follow `no_baseline`) and is not stored, so a restart tries
    /// again over the same window.
    pub(super) async fn before_baselines<H: crate::io::prom::HistorySource>(
        &self,
        spec: &WatchSpec,
        def: &crate::io::store::NewWatch,
        source: &H,
    ) -> Vec<Option<Vec<crate::core::series::Sample>>> {
        use crate::core::rules::BaselineSource;
        if !spec
            .rules
            .iter()
            .any(|r| matches!(r.baseline, Some(BaselineSource::Before(_))))
        {
            return Vec::new();
        }
        let id = def.id.clone();
        let stored = match self.store.call(move |s| s.baselines(&id)).await {
            Ok(m) => m,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!(event = "store_error", watch = %def.id, error = %e, "cannot read the stored baselines; taking them again");
                Default::default()
            }
        };
        let mut out = Vec::with_capacity(spec.rules.len());
        for rule in &spec.rules {
            let Some(BaselineSource::Before(d)) = rule.baseline else {
                out.push(None);
                continue;
            };
            if let Some(values) = stored.get(&rule.name) {
                out.push(Some(
                    values
                        .iter()
                        .map(|(labels, value)| crate::core::series::Sample {
                            labels: labels.clone(),
                            value: *value,
                        })
                        .collect(),
                ));
                continue;
            }
            match crate::io::prom::history::mean_before(source, rule, d, def.created_ms).await {
                Ok(samples) => {
                    info!(event = "baseline", watch = %def.id, rule = %rule.name, series = samples.len(), "baseline taken over the {} before the watch", humantime::format_duration(d));
                    let values: Vec<(crate::core::series::Labels, f64)> = samples
                        .iter()
                        .map(|s| (s.labels.clone(), s.value))
                        .collect();
                    let (id, name) = (def.id.clone(), rule.name.clone());
                    let Some(fence) = self.leases.fence(&def.id) else {
                        self.write_fenced(
                            &def.id,
                            "the baseline",
                            "this agent no longer trusts its lease",
                        );
                        out.push(Some(samples));
                        continue;
                    };
                    let put = self
                        .store
                        .call(move |s| s.put_baselines(&id, &fence, &name, &values))
                        .await;
                    if let Err(e @ StoreError::Fenced { .. }) = &put {
                        self.write_fenced(&def.id, "the baseline", &e.to_string());
                    } else if put.is_err() {
                        self.metrics.store_errors.inc();
                        warn!(event = "store_error", watch = %def.id, rule = %rule.name, "cannot store the baseline; a restart takes it again over the same window");
                    }
                    out.push(Some(samples));
                }
                Err(e) => {
                    warn!(event = "baseline_failed", watch = %def.id, rule = %rule.name, error = %e, "the baseline could not be taken; this rule's series follow `no_baseline`");
                    out.push(Some(Vec::new()));
                }
            }
        }
        out
    }
}
