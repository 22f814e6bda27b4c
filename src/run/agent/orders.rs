//! People's orders in the agent (issue 22): `order` stores one (whichever agent a
//! person reached) and waits, bounded, for what became of it; `orders_loop` is how
//! the holder of a watch's lease finds the orders of its watches and hands each to
//! the watch's decision loop (`run::watch::OrderMsg`), then settles it in the store,
//! fenced by its lease.
//!
//! Why through the store, even on one agent: the record is what makes an order
//! count once. A `rollback` or `pause` order is stored at most once per watch (the
//! store's unique index: two people on two agents get one order, and the second is
//! told whose), its command is claimed as a rule's is (so a person's rollback and a
//! rule's never both run), and a hold or an extension survives a restart or an
//! adoption because a resumed watch folds the settled orders again
//! (`ControlState::fold`). An order handed to a watch is never handed again by this
//! process (`delivered`); one that a crash interrupted before it was settled was
//! lost with the watch's memory, so handing it again after the restart applies it once.
//!
//! The holder looks once a `LOOK_EVERY` (one statement, whatever the number of
//! watches) and at once when the order reached it directly.

use super::types::lock;
use super::Agent;
use crate::core::control::{Control, ControlState, Order};
use crate::io::store::{NewOrder, NewWatch, OrderRow, OrderState, Ordered, StoreError};
use crate::run::watch::OrderMsg;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How often the holder looks for orders given through other agents.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long `order` waits for the order to be carried out before it answers
/// "pending" (the holder is slow or gone: it is carried out when one takes the watch).
pub(super) const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The order a stored row holds; Err: a row no build of this version could have
/// written (refused, never guessed at).
pub(super) fn control_of(row: &OrderRow) -> Result<Control, String> {
    let d = row
        .order
        .duration_ms
        .map(|ms| Duration::from_millis(ms.max(0) as u64));
    let order = Order::stored(&row.order.kind, d).map_err(|e| e.to_string())?;
    if order == Order::Supersede {
        return Ok(Control::supersede(&row.order.reason, row.order.at_ms));
    }
    Control::new(order, &row.order.who, &row.order.reason, row.order.at_ms)
        .map_err(|e| e.to_string())
}

impl Agent {
    /// Stores `control` for watch `id` and waits (at most `ANSWER_WAIT`) until the
    /// holder carried it out: `Queued` then holds the row as it stands (settled, or
    /// still pending).
    pub async fn order(&self, id: &str, control: &Control) -> Result<Ordered, StoreError> {
        let o = NewOrder {
            kind: control.order.name().to_string(),
            duration_ms: control.order.duration().map(|d| d.as_millis() as i64),
            who: control.who.clone(),
            reason: control.reason.clone(),
            at_ms: self.clock_now_ms(),
        };
        let idc = id.to_string();
        let stored = self.store.call(move |s| s.order(&idc, &o)).await?;
        let Ordered::Queued(row) = stored else {
            return Ok(stored);
        };
        info!(event = "order_received", watch = %id, order = %row.order.kind, by = %row.order.who, reason = %row.order.reason, "order stored; the watch's holder carries it out");
        self.orders_wake.notify_one();
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
        let mut last = row;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let idc = id.to_string();
            let rows = self.store.call(move |s| s.orders(&idc)).await?;
            if let Some(r) = rows.into_iter().find(|r| r.id == last.id) {
                last = r;
            }
            if last.state != OrderState::Pending {
                break;
            }
        }
        if last.state == OrderState::Pending {
            // The watch may have ended meanwhile: then nobody will carry it out.
            let idc = id.to_string();
            if let Some(rec) = self.store.call(move |s| s.get(&idc)).await? {
                if rec.state != crate::io::store::WatchState::Running {
                    self.settle_order(
                        id,
                        last.id,
                        OrderState::Refused,
                        "the watch had ended before the order was carried out",
                    )
                    .await;
                    return Ok(Ordered::NotRunning(rec.state));
                }
            }
        }
        Ok(Ordered::Queued(last))
    }

    /// What the settled orders of a watch add up to (a restart or an adoption folds
    /// them again).
    pub async fn control_state(&self, def: &NewWatch) -> Result<ControlState, StoreError> {
        let id = def.id.clone();
        let rows = self.store.call(move |s| s.orders(&id)).await?;
        Ok(control_of_rows(def, &rows))
    }

    /// Waits until watch `old` (the one `id` superseded) has ended: its outcome; None
    /// when a signal came first (an interrupt cancels `id`).
    pub(super) async fn await_predecessor(
        &self,
        id: &str,
        old: &str,
        signals: &mut crate::run::channel::Receiver<crate::run::watch::Signal>,
    ) -> Option<String> {
        let mut told = false;
        // An older watch with no command running ends within a look once its holder
        // takes the order; one whose holder is gone waits for an adoption (a lease's
        // time). Past that, this watch judges anyway: the older one, whenever it runs
        // again, ends at once on its order. A command the older one started is always
        // waited for (its timeout bounds it).
        let grace = 2 * self.leases.ttl + LOOK_EVERY * 5;
        let began = tokio::time::Instant::now();
        loop {
            let oldc = old.to_string();
            let read = self
                .store
                .call(move |s| Ok::<_, StoreError>((s.get(&oldc)?, s.actions(&oldc)?)))
                .await;
            match read.map(|(rec, actions)| {
                let busy = actions
                    .iter()
                    .any(|a| a.state == crate::io::store::ActionState::Started);
                (rec, busy)
            }) {
                Ok((Some(rec), busy)) if rec.state == crate::io::store::WatchState::Running => {
                    if !busy && began.elapsed() >= grace {
                        warn!(event = "predecessor_stuck", watch = %id, predecessor = %old, waited_s = grace.as_secs(),
                            "watch {old} of the same key has not ended (its agent may be gone); this watch judges from now on, and {old} ends on its supersede order whenever it runs again");
                        return Some("still running (not ended in time)".to_string());
                    }
                }
                Ok((rec, _)) => {
                    let rec: Option<crate::io::store::WatchRecord> = rec;
                    let outcome = rec.and_then(|r| r.outcome).unwrap_or_default();
                    info!(event = "predecessor_ended", watch = %id, predecessor = %old, outcome = %outcome,
                        "watch {old} of the same key ended ({outcome}); this watch judges from now on");
                    return Some(outcome);
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    warn!(event = "store_error", watch = %id, error = %e, "cannot read the watch this one superseded; looking again");
                }
            }
            if !told {
                told = true;
                info!(event = "awaiting_predecessor", watch = %id, predecessor = %old,
                    "waiting for watch {old} of the same key to end (superseded; a command it already started finishes first)");
            }
            tokio::select! {
                sig = signals.recv() => {
                    if sig == Some(crate::run::watch::Signal::Interrupt) {
                        self.record_ending(id, &super::types::cancelled()).await;
                    }
                    return None;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Finds the pending orders of this agent's watches, forever.
    pub(super) async fn orders_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.orders_wake.notified() => {}
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
            self.look_for_orders().await;
        }
    }

    async fn look_for_orders(self: &Arc<Self>) {
        let holder = self.leases.holder.clone();
        let pending = match self.store.call(move |s| s.orders_pending(&holder)).await {
            Ok(p) => p,
            Err(e) => {
                self.metrics.store_errors.inc();
                warn!(event = "store_error", error = %e, "cannot read people's orders; looking again");
                return;
            }
        };
        for row in pending {
            if !lock(&self.delivered).insert(row.id) {
                continue;
            }
            let control = match control_of(&row) {
                Ok(c) => c,
                Err(why) => {
                    self.settle_order(&row.watch, row.id, OrderState::Refused, &why)
                        .await;
                    continue;
                }
            };
            let tx = lock(&self.running)
                .get(&row.watch)
                .map(|h| h.orders.clone());
            let Some(tx) = tx else {
                // Not running here (starting, or just ended): looked at again later.
                lock(&self.delivered).remove(&row.id);
                continue;
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            // Never awaited: one watch whose loop is busy (a command running, a watch
            // waiting for the one it superseded) must not hold up every other watch's
            // orders. A full or closed channel is tried again at the next look.
            if tx
                .try_send(OrderMsg {
                    control: Box::new(control),
                    reply,
                })
                .is_err()
            {
                lock(&self.delivered).remove(&row.id);
                continue;
            }
            let agent = self.clone();
            tokio::spawn(async move {
                let (state, result) = match answer.await {
                    Ok(Ok(done)) => (OrderState::Done, done),
                    Ok(Err(why)) => (OrderState::Refused, why.to_string()),
                    Err(_) => {
                        // The loop dropped it unanswered: the watch ended, or only
                        // stopped here (a shutdown, a lost lease) and will resume. Settled
                        // only if it ended (the store refuses that for a running watch);
                        // otherwise it stays pending and is handed over again.
                        let why = "the watch ended before the order was carried out";
                        let (id, n) = (row.watch.clone(), row.id);
                        let at = agent.clock_now_ms();
                        let r = agent
                            .store
                            .call(move |s| s.order_done(&id, None, n, OrderState::Refused, why, at))
                            .await;
                        if r.is_err() {
                            lock(&agent.delivered).remove(&row.id);
                        }
                        return;
                    }
                };
                info!(event = "order_settled", watch = %row.watch, order = %row.order.kind, by = %row.order.who, state = state.as_str(), "{result}");
                agent.settle_order(&row.watch, row.id, state, &result).await;
            });
        }
    }

    /// Records what became of an order: fenced by the watch's lease while this agent
    /// holds it, else only if the watch no longer runs (the store checks).
    async fn settle_order(&self, id: &str, order: i64, state: OrderState, result: &str) {
        let fence = self.leases.fence(id);
        let at = self.clock_now_ms();
        let (idc, resultc) = (id.to_string(), result.to_string());
        let r = self
            .store
            .call(move |s| {
                match s.order_done(&idc, fence.as_ref(), order, state, &resultc, at) {
                    // The watch ended and gave its lease back meanwhile (an `end`, a
                    // rollback): settled without one, which the store allows only
                    // for a watch that no longer runs.
                    Err(StoreError::Fenced { .. }) if fence.is_some() => {
                        s.order_done(&idc, None, order, state, &resultc, at)
                    }
                    r => r,
                }
            })
            .await;
        if let Err(e) = r {
            warn!(event = "order_not_settled", watch = %id, order, error = %e, "cannot record what became of an order");
        }
    }
}

/// What the settled orders among `rows` (a watch's orders) add up to.
pub(super) fn control_of_rows(def: &NewWatch, rows: &[OrderRow]) -> ControlState {
    let settled: Vec<Control> = rows
        .iter()
        .filter(|r| r.state == OrderState::Done)
        .filter_map(|r| control_of(r).ok())
        .collect();
    ControlState::fold(
        &settled,
        def.created_ms,
        Duration::from_millis(def.duration_ms.max(0) as u64),
    )
}
