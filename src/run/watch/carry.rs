//! Breaches already there when the watch began (`pre_existing`): said once at the
//! start (`Event::PreExisting`), and given to each rule's evaluator, whose mode
//! decides what they get (`core::eval::pre_existing`). Where one ends is said by
//! `handle.rs` (`Event::PreExistingOver`), from the poll that ended it.

use super::state::Watch;
use crate::core::eval::Before;
use crate::core::events::{now_ms, Event, SeriesValue};

impl<R, S> Watch<'_, R, S> {
    /// Says each rule's pre-existing breaches and carries them over into its
    /// evaluator (`before` indexed like the rules; None: not read).
    pub(super) fn carry_over(&mut self, before: Vec<Option<Before>>) {
        for ((rule, eval), before) in self.spec.rules.iter().zip(&mut self.evals).zip(before) {
            let Some(before) = before else {
                continue;
            };
            if !before.is_empty() {
                let mode = rule.judging.pre_existing;
                self.sinks.emit(
                    now_ms(),
                    &Event::PreExisting {
                        rule: rule.name.clone(),
                        mode: mode.text(),
                        meaning: mode.meaning(),
                        window_s: rule.for_.as_secs_f64(),
                        series: before
                            .iter()
                            .map(|(labels, v)| SeriesValue {
                                labels: labels.clone(),
                                value: (!v.is_nan()).then_some(*v),
                            })
                            .collect(),
                    },
                );
            }
            eval.excuse(before);
        }
    }
}
