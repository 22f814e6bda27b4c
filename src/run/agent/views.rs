//! What the agent tells about watches without changing them: the live per-rule view
//! (`live`, or what another agent recorded: `live_or_stored`), a watch's verdict so
//! far or at its end (`watch_verdict`), and a one-off verdict of a rule file
//! (`verdict_once`). The API and the page read these; nothing here writes.

use super::snapshot::{load_snapshot, refused, valid_name};
use super::types::{lock, CreateError, RuleLive};
use super::Agent;
use crate::core::events::RuleState;
use crate::core::rules::{self};
use crate::io::store::{WatchRecord, WatchState};
use crate::run::verdict::{self, RuleStatus, Verdict};
use crate::run::watch::OutcomeKind;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use tracing::warn;

impl Agent {
    /// The live per-rule state of a running watch.
    pub fn live(&self, id: &str) -> Option<BTreeMap<String, RuleLive>> {
        lock(&self.running).get(id).map(|h| {
            lock(&h.live)
                .iter()
                .map(|(rule, l)| (rule.to_string(), l.clone()))
                .collect()
        })
    }

    /// `live` where the watch runs here; with a shared store, for a running watch
    /// another agent owns, the per-rule state its owner recorded (last polls, a few
    /// seconds old, and firing series; no values).
    pub async fn live_or_stored(&self, rec: &WatchRecord) -> BTreeMap<String, RuleLive> {
        if let Some(l) = self.live(&rec.def.id) {
            return l;
        }
        if !self.store.shared() || rec.state != WatchState::Running {
            return BTreeMap::new();
        }
        let id = rec.def.id.clone();
        let (Ok(polls), Ok(series)) = self
            .store
            .call(move |s| (s.polls(&id), s.series(&id)))
            .await
        else {
            return BTreeMap::new();
        };
        polls
            .into_iter()
            .map(|(rule, p)| {
                let firing = series
                    .iter()
                    .any(|s| s.rule == rule && s.phase == crate::core::eval::Phase::Firing);
                let (state, error) = if !p.last_ok {
                    (
                        RuleState::QueryError,
                        Some(
                            "the last query failed (as recorded by the agent running the watch)"
                                .into(),
                        ),
                    )
                } else if firing {
                    (RuleState::Breached, None)
                } else {
                    (RuleState::Ok, None)
                };
                let l = RuleLive {
                    state: Some(state),
                    value: None,
                    last_poll_ms: Some(p.last_ms),
                    error,
                };
                (rule, l)
            })
            .collect()
    }

    /// The rule file `rules` with `vars`, loaded by the same loader as a watch (so an
    /// unknown var or one its `pattern` refuses is a `BadRequest`), every rule queried
    /// once now. Nothing is stored and no command can run. `open`: the caller may be
    /// anyone (`--open-verdicts`), so a refusal names only the request's bad fields.
    pub async fn verdict_once(
        &self,
        rules: &str,
        vars: BTreeMap<String, String>,
        open: bool,
    ) -> Result<Vec<RuleStatus>, CreateError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(CreateError::ShuttingDown);
        }
        if !valid_name(rules, &[]) {
            return Err(CreateError::BadRequest(format!(
                "invalid rule file name {rules:?}: use the file's stem (letters, digits, `-`, `_`, `.`)"
            )));
        }
        let text = self.rule_file(rules)?;
        let sets: Vec<(String, String)> = vars.into_iter().collect();
        let (spec, _) = rules::load_str(
            &format!("{rules}.yaml"),
            &text,
            &rules::LoadOptions {
                outside: Some(&crate::io::host::HOST),
                sets: &sets,
                check: false,
            },
        )
        .map_err(|e| refused(rules, &e, open))?;
        let source = self.source_in(&spec, open).map_err(|e| {
            if open {
                warn!(event = "verdict_source_failed", rules = %rules, error = %e, "cannot query Prometheus for a verdict");
                CreateError::Unavailable(
                    "the agent cannot query Prometheus for this rule file".into(),
                )
            } else {
                CreateError::BadRequest(e)
            }
        })?;
        Ok(verdict::evaluate_once(&spec, &*source, open).await)
    }

    /// A watch's verdict so far (running) or at its end: `(verdict, final, rules)`.
    /// Running: a rule that fired (or any action taken) fails it, a rule whose last
    /// poll failed or that has not been polled yet makes it inconclusive, else it
    /// passes so far. Ended: from its outcome (healthy passes; any action or an
    /// action of unknown effect fails; cancelled, interrupted or inconclusive is
    /// inconclusive).
    ///
    /// `open`: the caller may be anyone: a failed query is said, not quoted.
    pub async fn watch_verdict(
        &self,
        rec: &WatchRecord,
        open: bool,
    ) -> Result<(Verdict, bool, Vec<RuleStatus>), crate::io::store::StoreError> {
        let live = self.live_or_stored(rec).await;
        let spec = load_snapshot(&rec.def).ok();
        let rules: Vec<RuleStatus> = spec
            .iter()
            .flat_map(|s| s.rules.iter())
            .map(|r| {
                let l = live.get(&r.name).cloned().unwrap_or_default();
                let error = match (&l.state, rec.state) {
                    (Some(RuleState::QueryError), _) if open => {
                        Some("the last query failed (the agent's log says why)".into())
                    }
                    (Some(RuleState::QueryError), _) => {
                        Some(l.error.clone().unwrap_or_else(|| "the query failed".into()))
                    }
                    (None, WatchState::Running) => Some("not polled yet".into()),
                    _ => None,
                };
                RuleStatus {
                    name: r.name.clone(),
                    value: l.value,
                    threshold: r.condition(),
                    breached: l.state == Some(RuleState::Breached),
                    error,
                    evidence: Default::default(),
                }
            })
            .collect();
        let (v, fin) = match rec.state {
            WatchState::Running => {
                let id = rec.def.id.clone();
                let acted = !self.store.call(move |s| s.actions(&id)).await?.is_empty();
                let v = if acted {
                    Verdict::Fail
                } else {
                    verdict::verdict_of(&rules)
                };
                (v, false)
            }
            WatchState::Cancelled => (Verdict::Inconclusive, true),
            WatchState::Finished => (
                ended_verdict(rec.outcome.as_deref().and_then(OutcomeKind::parse)),
                true,
            ),
        };
        Ok((v, fin, rules))
    }
}

/// The verdict of a watch that ended with `kind`: healthy passes (and so does a watch
/// a person declared healthy: the outcome keeps that it was their verdict); any action, or an
/// action of unknown effect, fails; anything else (cancelled, interrupted,
/// inconclusive, invalid, an outcome no build wrote) is inconclusive.
fn ended_verdict(kind: Option<OutcomeKind>) -> Verdict {
    match kind {
        Some(OutcomeKind::Healthy | OutcomeKind::DeclaredHealthy) => Verdict::Pass,
        Some(k) if k.acted() => Verdict::Fail,
        _ => Verdict::Inconclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_watch_passes_when_healthy_and_fails_when_it_acted() {
        let by_name = |n: &str| ended_verdict(OutcomeKind::parse(n));
        assert_eq!(by_name("healthy"), Verdict::Pass);
        assert_eq!(by_name("declared_healthy"), Verdict::Pass);
        for n in [
            "rolled_back",
            "rollback_failed",
            "paused",
            "pause_failed",
            "rollback_unknown",
            "pause_unknown",
        ] {
            assert_eq!(by_name(n), Verdict::Fail, "{n}");
        }
        for n in [
            "inconclusive",
            "interrupted",
            "query_rejected",
            "cancelled",
            "invalid",
            "from_a_newer_build",
        ] {
            assert_eq!(by_name(n), Verdict::Inconclusive, "{n}");
        }
    }
}
