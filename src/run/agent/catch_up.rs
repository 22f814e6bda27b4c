//! The restart rule (see the agent's module doc): a resumed watch's evaluators are
//! restored from the store (its series, `breaches` windows and last polls), the polls
//! missed while no agent ran it are rebuilt from Prometheus's history on the live
//! grid (`restore`), and a `compare` rule's pools are refilled from history
//! (`refill_pools`), never stored. Split from `resume.rs`, which decides the action
//! rows (the exactly-once rule).

use super::source::{phase, SharedSource};
use super::types::unix;
use super::Agent;
use crate::core::eval::{parse_window, Labels, Phase, RuleEval, SeriesState};
use crate::core::rules::WatchSpec;
use crate::io::prom::{PromClient, QueryResult};
use crate::io::store::{NewWatch, ResumeRead};
use crate::run::watch::{Judged, PollDone};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{info, warn};

impl Agent {
    /// Restored evaluators, and the polls missed while the agent was down (from
    /// history). See the module doc for the rule. From `read` (the watch's rows read
    /// with the others' at a start or an adoption) if there is one.
    pub(super) async fn restore(
        &self,
        spec: &WatchSpec,
        def: &NewWatch,
        source: &SharedSource<PromClient>,
        now: i64,
        read: Option<Box<ResumeRead>>,
    ) -> Result<Restored, crate::io::store::StoreError> {
        let mut series: Vec<BTreeMap<Labels, SeriesState>> =
            vec![BTreeMap::new(); spec.rules.len()];
        // The action rows, the `breaches` windows stored with each rule's last poll
        // (the count goes on where it was: the catch-up below starts right after that
        // poll), the series, the last polls and people's orders, in one call.
        let read = match read {
            Some(r) => *r,
            None => {
                let ids = [def.id.clone()];
                self.store
                    .call(move |s| s.resume_reads(&ids))
                    .await?
                    .remove(&def.id)
                    .unwrap_or_default()
            }
        };
        let ResumeRead {
            actions,
            windows,
            series: rows,
            polls: last,
            orders,
        } = read;
        let control = super::orders::control_of_rows(def, &orders);
        for row in rows {
            if let Some(i) = spec.rules.iter().position(|r| r.name == row.rule) {
                // A series is firing *because* its action was claimed: one firing for
                // a rollback or pause rule with no such action (a state file from
                // before claims and firing series were one transaction) has not acted
                // yet. It is restored pending with its `since`, so the next poll that
                // still breaches fires it, and the action runs.
                let kind = spec.rules[i].action.as_str();
                let acted = kind == "notify" || actions.iter().any(|a| a.kind == kind);
                let phase = if row.phase == Phase::Firing && !acted {
                    warn!(event = "firing_without_action", watch = %def.id, rule = %row.rule,
                        "a series was stored firing but its {kind} never started: it fires again at the next breaching poll");
                    Phase::Pending
                } else {
                    row.phase
                };
                let window = match (
                    spec.rules[i].params().judge.breaches,
                    windows.get(&row.rule),
                ) {
                    (Some(b), Some(w)) => w
                        .iter()
                        .find(|(l, _)| *l == row.labels)
                        .and_then(|(_, text)| parse_window(text, b.n))
                        .unwrap_or_default(),
                    _ => Default::default(),
                };
                series[i].insert(
                    row.labels,
                    SeriesState {
                        phase,
                        since: Duration::from_millis((row.since_ms - def.created_ms).max(0) as u64),
                        last_value: row.last_value,
                        window,
                    },
                );
            }
        }
        // (With the extensions people gave it: the downtime after the original end of
        // an extended watch is caught up too.)
        let extended = control.extended.as_millis() as i64;
        let end_ms = now.min(def.created_ms + def.duration_ms + extended);
        let mut backlog = Vec::new();
        for (i, rule) in spec.rules.iter().enumerate() {
            let iv = rule.interval.as_millis().max(1) as i64;
            let from = match last.get(&rule.name) {
                Some(t) => t.last_ms + iv,
                None => {
                    // The first tick of the aligned grid at or after creation.
                    let ph = phase(&rule.query, rule.interval).as_millis() as i64;
                    def.created_ms + (ph - def.created_ms).rem_euclid(iv)
                }
            };
            if from > end_ms {
                info!(event = "catch_up", watch = %def.id, rule = %rule.name, polls = 0, from, end_ms, "no poll was missed");
                continue;
            }
            let to = from + (end_ms - from) / iv * iv;
            match crate::io::prom::history::fetch(source, rule, def.created_ms, from, to).await {
                Ok(history) => {
                    let (steps, mut polls) =
                        crate::core::history::polls_on_grid(from, to, iv, &history);
                    // The judges' history over the same time (guard, stable side,
                    // offset baseline), one fetch each; a failed one leaves those
                    // polls without it, which the loop takes as failed polls.
                    let mut extras =
                        catch_up_extras(source, rule, def.created_ms, from, to, iv).await;
                    info!(event = "catch_up", watch = %def.id, rule = %rule.name, polls = steps, "judging the time the agent was down from Prometheus's history");
                    for k in 0..steps {
                        let wall = from + k as i64 * iv;
                        backlog.push(PollDone {
                            rule: i,
                            at: Duration::from_millis((wall - def.created_ms).max(0) as u64),
                            wall: unix(wall),
                            result: Ok(QueryResult {
                                samples: polls.remove(&k).unwrap_or_default(),
                                warnings: Vec::new(),
                            }),
                            extra: extras
                                .iter_mut()
                                .map(|grid| {
                                    Ok(QueryResult {
                                        samples: grid.remove(&k).unwrap_or_default(),
                                        warnings: Vec::new(),
                                    })
                                })
                                .collect(),
                        });
                    }
                }
                Err(e) => {
                    let dropped = series[i]
                        .values()
                        .filter(|s| s.phase == Phase::Pending)
                        .count();
                    series[i].retain(|_, s| s.phase == Phase::Firing);
                    let (id, name, leases) =
                        (def.id.clone(), rule.name.clone(), self.leases.clone());
                    self.store
                        .call(move |s| {
                            for row in s.series(&id)? {
                                if row.rule != name || row.phase != Phase::Pending {
                                    continue;
                                }
                                let fence = leases.fence(&id).ok_or_else(|| {
                                    crate::io::store::StoreError::Fenced {
                                        what: "write of a dropped series".into(),
                                        id: id.clone(),
                                        token: 0,
                                    }
                                })?;
                                s.clear_series(&id, &fence, &name, &row.labels)?;
                            }
                            Ok::<_, crate::io::store::StoreError>(())
                        })
                        .await?;
                    warn!(event = "catch_up_failed", watch = %def.id, rule = %rule.name, error = %e, dropped,
                        "the history of the time the agent was down cannot be read: pending series are dropped (a breach is never assumed to have continued) and must breach again for `for`");
                }
            }
        }
        backlog.sort_by_key(|p| (p.wall, p.rule));
        let mut evals: Vec<RuleEval> = spec
            .rules
            .iter()
            .zip(series)
            .map(|(r, s)| {
                RuleEval::restore(
                    crate::run::interner::params_over(
                        r,
                        Duration::from_millis(def.duration_ms.max(0) as u64),
                    ),
                    s,
                )
            })
            .collect();
        // A `compare` rule's pools are not stored (thousands of samples): they are
        // refilled from history with the polls judged before the restart.
        for (i, rule) in spec.rules.iter().enumerate() {
            if let Some(t) = last.get(&rule.name) {
                refill_pools(&mut evals[i], source, rule, def, t.last_ms).await;
            }
        }
        // What the polls before the restart showed: a rule judged then stays judged,
        // even if the watch ends before it polls again.
        let judged = spec
            .rules
            .iter()
            .map(|r| {
                let p = last.get(&r.name).copied().unwrap_or_default();
                Judged {
                    last_ok: p.last_ok,
                    ever_ok: p.ever_ok,
                    ever_data: p.ever_data,
                }
            })
            .collect();
        Ok(Restored {
            evals,
            backlog,
            judged,
            control,
        })
    }
}

/// A resumed watch's restored state.
pub(super) struct Restored {
    pub evals: Vec<RuleEval>,
    pub backlog: Vec<PollDone>,
    pub judged: Vec<Judged>,
    /// People's orders as they were read with the rows above.
    pub control: crate::core::control::ControlState,
}

/// `compare`: refills `eval`'s pools with the polls of the last `window` up to the last
/// poll judged before the restart (`last_ms`), from Prometheus's history: the rule's
/// query (canary) and its stable side, on the rule's grid, never before the watch
/// began. A history that cannot be read leaves the pools empty (they fill again as the
/// watch polls: the rule is insufficient meanwhile, never judged on too few samples).
async fn refill_pools<H: crate::io::prom::HistorySource>(
    eval: &mut RuleEval,
    source: &H,
    rule: &crate::core::rules::Rule,
    def: &NewWatch,
    last_ms: i64,
) {
    use crate::core::series::Poll;
    let Some(c) = eval.params().judge.compare else {
        return;
    };
    let iv = rule.interval.as_millis().max(1) as i64;
    let window = c.window.as_millis() as i64;
    let mut from = last_ms - window / iv * iv;
    while from < def.created_ms && from < last_ms {
        from += iv;
    }
    let canary = crate::io::prom::history::fetch(source, rule, def.created_ms, from, last_ms).await;
    let judges =
        crate::io::prom::history::fetch_judges(source, rule, def.created_ms, from, last_ms).await;
    let (canary, stable) = match (canary, judges) {
        (Ok(c), Ok(j)) => (c, j.stable.unwrap_or_default()),
        (Err(e), _) | (_, Err(e)) => {
            warn!(event = "catch_up_failed", rule = %rule.name, error = %e, "cannot read the history that refills the compare pools: they fill again as the watch polls");
            return;
        }
    };
    let (steps, mut cs) = crate::core::history::polls_on_grid(from, last_ms, iv, &canary);
    let (_, mut ss) = crate::core::history::polls_on_grid(from, last_ms, iv, &stable);
    for k in 0..steps {
        let wall = from + k as i64 * iv;
        eval.refill(
            Duration::from_millis((wall - def.created_ms).max(0) as u64),
            &Poll::Samples(cs.remove(&k).unwrap_or_default()),
            &Poll::Samples(ss.remove(&k).unwrap_or_default()),
        );
    }
    info!(event = "compare_pools_refilled", rule = %rule.name, polls = steps, "the compare pools were refilled from Prometheus's history");
}

/// The judges' extra queries of `rule` over `[from, to]` on its grid, in the order of
/// `Rule::extra_queries` (empty when the rule has none, or when one fetch failed).
async fn catch_up_extras<H: crate::io::prom::HistorySource>(
    source: &H,
    rule: &crate::core::rules::Rule,
    origin: i64,
    from: i64,
    to: i64,
    iv: i64,
) -> Vec<std::collections::BTreeMap<usize, Vec<crate::core::series::Sample>>> {
    use crate::core::history::{polls_on_grid, BaselineHistory};
    use crate::core::rules::ExtraKind;
    let kinds = rule.extra_queries();
    if kinds.is_empty() {
        return Vec::new();
    }
    let judges = match crate::io::prom::history::fetch_judges(source, rule, origin, from, to).await
    {
        Ok(j) => j,
        Err(e) => {
            warn!(event = "catch_up_failed", rule = %rule.name, error = %e, "cannot read the judges' history for the time the agent was down; those polls count as failed");
            return Vec::new();
        }
    };
    let grid = |s: &[crate::core::series::RangeSeries]| polls_on_grid(from, to, iv, s).1;
    kinds
        .iter()
        .map(|(kind, _, _)| match kind {
            ExtraKind::Stable => grid(judges.stable.as_deref().unwrap_or_default()),
            ExtraKind::Guard => grid(judges.guard.as_deref().unwrap_or_default()),
            ExtraKind::Baseline => match &judges.baseline {
                Some(BaselineHistory::Offset(s)) => grid(s),
                _ => Default::default(),
            },
        })
        .collect()
}
