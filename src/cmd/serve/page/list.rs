//! The list of watches (`/`): each watch with its vars in force (the rule file's
//! defaults overridden by its own) and each rule's state: live while it runs here,
//! else the last the board saw, else what the store keeps of an ended one (after a
//! restart, or one another agent ran). The rule snapshot of a watch the board does not have
//! is loaded once and kept (`snaps`): a snapshot never changes, and the list is drawn
//! again at every change of any watch.

use crate::core::events::now_ms;
use crate::io::store::{ActionRow, SeriesRow, StoreError, WatchRecord, WatchState};
use crate::run::agent::{load_snapshot, Agent, RuleLive};
use crate::show::board::{Board, Summary};
use crate::show::page;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Finished or cancelled watches listed on `/` after the running ones.
pub const RECENT: usize = 100;

/// The list's `Snap`s of watches the board does not have, by watch id.
pub type Snaps = Mutex<HashMap<String, Arc<Snap>>>;

/// What the list needs of a watch the board does not have, loaded once: its rule
/// snapshot's vars in force and rules (a snapshot never changes), and, for an ended
/// watch, its rules' states as the store keeps them (they no longer change either).
#[derive(Debug, Default)]
pub struct Snap {
    vars: Option<BTreeMap<String, String>>,
    rules: Vec<(String, Duration)>,
    ended: Option<Vec<page::RuleCell>>,
}

/// Snapshots kept for the list at most (then the cache starts again).
const SNAPS: usize = 4 * RECENT;

/// Each rule's actions and breaching series, as the store keeps them, of watches
/// `ids` (in one store call; a watch whose rows cannot be read has none).
async fn stored(
    agent: &Agent,
    ids: Vec<String>,
) -> HashMap<String, (Vec<ActionRow>, Vec<SeriesRow>)> {
    if ids.is_empty() {
        return HashMap::new();
    }
    agent
        .store
        .call(move |s| {
            ids.into_iter()
                .map(|id| {
                    let a = s.actions(&id).unwrap_or_default();
                    let se = s.series(&id).unwrap_or_default();
                    (id, (a, se))
                })
                .collect()
        })
        .await
}

/// The `Snap`s of `recs` (from the cache, else loaded off the runtime).
async fn snaps(
    agent: &Agent,
    cache: &Snaps,
    recs: &[&WatchRecord],
    now: i64,
) -> HashMap<String, Arc<Snap>> {
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    {
        let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        for rec in recs {
            // An ended watch's states are loaded once it ended.
            match cache.get(&rec.def.id) {
                Some(s) if rec.state == WatchState::Running || s.ended.is_some() => {
                    out.insert(rec.def.id.clone(), s.clone());
                }
                _ => missing.push((*rec).clone()),
            }
        }
    }
    if missing.is_empty() {
        return out;
    }
    let ended: Vec<String> = missing
        .iter()
        .filter(|r| r.state != WatchState::Running)
        .map(|r| r.def.id.clone())
        .collect();
    let mut rows = stored(agent, ended).await;
    let loaded = tokio::task::spawn_blocking(move || {
        missing
            .into_iter()
            .map(|rec| {
                let mut snap = match load_snapshot(&rec.def) {
                    Ok(spec) => Snap {
                        vars: Some(spec.vars),
                        rules: spec.rules.into_iter().map(|r| (r.name, r.for_)).collect(),
                        ended: None,
                    },
                    Err(_) => Snap::default(),
                };
                if let Some((a, se)) = rows.remove(&rec.def.id) {
                    let end = rec.finished_ms.unwrap_or(now);
                    snap.ended = Some(stored_rules(&snap, &a, &se, end));
                }
                (rec.def.id, Arc::new(snap))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() + loaded.len() > SNAPS {
        cache.clear();
    }
    for (id, snap) in loaded {
        cache.insert(id.clone(), snap.clone());
        out.insert(id, snap);
    }
    out
}

/// The rules of an ended watch this agent did not see start (it ran before this
/// agent started, or on another agent): what the store keeps once its polls are
/// gone, the actions taken (that rule fired) and the series still pending or firing
/// when it ended (at `end`).
fn stored_rules(
    snap: &Snap,
    actions: &[ActionRow],
    series: &[SeriesRow],
    end: i64,
) -> Vec<page::RuleCell> {
    use crate::core::eval::Phase;
    use crate::core::events::RuleState;
    snap.rules
        .iter()
        .map(|(name, for_)| {
            let fired = actions.iter().any(|a| a.rule == *name)
                || series
                    .iter()
                    .any(|s| s.rule == *name && s.phase == Phase::Firing);
            let pending = series
                .iter()
                .filter(|s| s.rule == *name && s.phase == Phase::Pending)
                .map(|s| s.since_ms)
                .min();
            let state = match (fired, pending) {
                (true, _) => Some(RuleState::Breached),
                (false, Some(since)) => Some(RuleState::Pending {
                    for_s: (end - since).max(0) as f64 / 1000.0,
                    of_s: for_.as_secs_f64(),
                    breaches: None,
                }),
                (false, None) => None,
            };
            page::RuleCell {
                name: name.clone(),
                live: RuleLive {
                    state,
                    ..Default::default()
                },
                fired,
                kept: false,
            }
        })
        .collect()
}

/// The list of watches, running first (newest first), then the most recent others,
/// each with its vars in force and each rule's state: live while it runs here, else
/// the last the board saw, else what the store keeps.
pub async fn list_html(agent: &Agent, board: &Board, cache: &Snaps) -> Result<String, StoreError> {
    let mut all = agent.store.call(|s| s.list(None)).await?;
    let now = now_ms();
    let (mut running, mut done): (Vec<_>, Vec<_>) =
        all.drain(..).partition(|r| r.state == WatchState::Running);
    running.sort_by_key(|r| std::cmp::Reverse(r.def.created_ms));
    done.sort_by_key(|r| std::cmp::Reverse(r.finished_ms.unwrap_or(r.def.created_ms)));
    let older = done.len().saturating_sub(RECENT);
    done.truncate(RECENT);
    let summaries: HashMap<String, Summary> = running
        .iter()
        .chain(&done)
        .filter_map(|r| Some((r.def.id.clone(), board.summary(&r.def.id)?)))
        .collect();
    let unseen: Vec<&WatchRecord> = running
        .iter()
        .chain(&done)
        .filter(|r| !summaries.contains_key(&r.def.id))
        .collect();
    let snaps = snaps(agent, cache, &unseen, now).await;
    let row = |rec: WatchRecord| -> page::ListRow {
        let id = &rec.def.id;
        let summary = summaries.get(id);
        let snap = snaps.get(id);
        let fired =
            |name: &str| summary.is_some_and(|s| s.rules.iter().any(|r| r.name == name && r.fired));
        let rules = match (agent.live(id), summary, snap) {
            (Some(live), _, _) => live
                .into_iter()
                .map(|(name, live)| page::RuleCell {
                    fired: fired(&name),
                    name,
                    live,
                    kept: true,
                })
                .collect(),
            (None, Some(s), _) => s
                .rules
                .iter()
                .map(|r| page::RuleCell {
                    name: r.name.clone(),
                    live: RuleLive {
                        state: r.state.clone(),
                        value: r.value,
                        ..Default::default()
                    },
                    fired: r.fired,
                    kept: true,
                })
                .collect(),
            // Ended before this agent started: what the store keeps.
            (None, None, Some(snap)) if snap.ended.is_some() => {
                snap.ended.clone().unwrap_or_default()
            }
            // Running on another agent (a shared store): its rules, their states
            // are on its own page.
            (None, None, Some(snap)) => snap
                .rules
                .iter()
                .map(|(name, _)| page::RuleCell {
                    name: name.clone(),
                    ..Default::default()
                })
                .collect(),
            (None, None, None) => Vec::new(),
        };
        let vars = summary
            .map(|s| s.vars.clone())
            .or_else(|| snap.and_then(|s| s.vars.clone()));
        page::ListRow { rec, vars, rules }
    };
    let running: Vec<_> = running.into_iter().map(row).collect();
    let done: Vec<_> = done.into_iter().map(row).collect();
    Ok(page::list_html(&running, &done, older, now))
}
