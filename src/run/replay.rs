//! Every rule of a watch replayed over a window, and what the watch would have decided:
//! the one driver that `rollwatch replay` and `rollwatch test` share, so a test judges
//! its synthetic series exactly as a backtest judges real history.
//!
//! Each rule's history (and its judges') is fetched once for the whole window, read
//! poll by poll through `steps::replay`, and the rules conclude through
//! `core::history::conclude`.

use crate::core::history::{conclude, Conclusion, RuleHistory, RuleReplay};
use crate::core::rules::WatchSpec;
use crate::io::prom::history::{fetch, fetch_judges};
use crate::io::prom::{HistorySource, QueryError};
use std::time::Duration;

/// Each rule's replay over `[from, to]` (Unix ms; `Err` when its history could not be
/// read) and the decision over all of them. `scrape`: the data's resolution when known.
pub async fn replay_rules<H: HistorySource>(
    spec: &WatchSpec,
    source: &H,
    from: i64,
    to: i64,
    scrape: Option<Duration>,
) -> (Vec<Result<RuleHistory, QueryError>>, Conclusion) {
    let mut histories: Vec<Result<RuleHistory, QueryError>> = Vec::new();
    for rule in &spec.rules {
        let step = rule.interval.as_millis().max(1) as i64;
        // The rule's history and its judges' (guard, stable side, baseline): each one
        // fetch for the whole window, never one per step.
        // The replayed watch begins at `from` (its `${watch.elapsed}` counts from there).
        let h = match fetch(source, rule, from, from, to).await {
            Ok(series) => match fetch_judges(source, rule, from, from, to).await {
                Ok(judges) => Ok(crate::run::steps::replay(
                    source,
                    rule,
                    rule.params_over(Duration::from_millis((to - from).max(0) as u64)),
                    from,
                    to,
                    step,
                    spec.step_for(rule, scrape),
                    &series,
                    &judges,
                )
                .await),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        histories.push(h);
    }
    let inputs: Vec<_> = spec
        .rules
        .iter()
        .zip(&histories)
        .map(|(r, h)| RuleReplay {
            name: &r.name,
            action: r.action,
            expect_data: r.expect_data,
            history: h.as_ref().ok(),
        })
        .collect();
    let decision = conclude(&inputs, to);
    (histories, decision)
}
