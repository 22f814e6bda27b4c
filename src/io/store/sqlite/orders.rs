//! People's orders in SQLite (`io::store::orders`): one agent per file, so every
//! pending order is this agent's; each write is one IMMEDIATE transaction, so the
//! checks and the insert of `order` cannot interleave with another's.

use crate::io::store::api::NewWatch;
use crate::io::store::api::{StoreError, WatchState};
use crate::io::store::codec::sql;
use crate::io::store::orders::{
    supersede_reason, NewOrder, OrderRow, OrderState, Ordered, SUPERSEDER,
};
use rusqlite::{params, Connection, OptionalExtension};

/// Version 6 (issue 22): people's orders.
pub(super) const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    duration_ms INTEGER,
    who TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    done_ms INTEGER
);
CREATE INDEX IF NOT EXISTS orders_watch ON orders(watch_id, id);
CREATE INDEX IF NOT EXISTS orders_pending ON orders(id) WHERE state = 'pending';
CREATE UNIQUE INDEX IF NOT EXISTS orders_once ON orders(watch_id, kind)
    WHERE kind IN ('rollback', 'pause') AND state <> 'refused';
ALTER TABLE watches ADD COLUMN key TEXT;
ALTER TABLE watches ADD COLUMN after_watch TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS watches_key ON watches(key)
    WHERE key IS NOT NULL AND state = 'running';
";

/// `watch.key` (issue 22): the watch `w` just inserted takes its key from the running
/// watch that held it, if any, in the caller's transaction: the older one gives the
/// key up and gets a `supersede` order (its holder ends it as `superseded`), and `w`
/// records it as the one it starts after. At every commit exactly one running watch
/// holds the key (the unique index `watches_key`). Returns the older watch's id.
pub(super) fn take_key(
    tx: &rusqlite::Transaction<'_>,
    w: &NewWatch,
) -> Result<Option<String>, StoreError> {
    let Some(key) = &w.key else {
        return Ok(None);
    };
    let old: Option<String> = tx
        .query_row(
            "SELECT id FROM watches WHERE key = ?1 AND state = 'running' AND id <> ?2",
            params![key, w.id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql("read a watch's key"))?;
    if let Some(old) = &old {
        tx.execute("UPDATE watches SET key = NULL WHERE id = ?1", [old])
            .map_err(sql("move a watch's key"))?;
        tx.execute(
            "INSERT INTO orders (watch_id, kind, duration_ms, who, reason, at_ms, state)
             VALUES (?1, 'supersede', NULL, ?2, ?3, ?4, 'pending')",
            params![old, SUPERSEDER, supersede_reason(&w.id), w.created_ms],
        )
        .map_err(sql("store a supersede order"))?;
    }
    tx.execute(
        "UPDATE watches SET key = ?1, after_watch = ?2 WHERE id = ?3",
        params![key, old, w.id],
    )
    .map_err(sql("store a watch's key"))?;
    Ok(old)
}

const COLUMNS: &str = "id, watch_id, kind, duration_ms, who, reason, at_ms, state, result, done_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    let state: String = r.get(7)?;
    Ok(OrderRow {
        id: r.get(0)?,
        watch: r.get(1)?,
        order: NewOrder {
            kind: r.get(2)?,
            duration_ms: r.get(3)?,
            who: r.get(4)?,
            reason: r.get(5)?,
            at_ms: r.get(6)?,
        },
        // (An unknown state, from a newer build, reads as settled: never run again.)
        state: OrderState::parse(&state).unwrap_or(OrderState::Refused),
        result: r.get(8)?,
        done_ms: r.get(9)?,
    })
}

pub(super) fn order(conn: &mut Connection, id: &str, o: &NewOrder) -> Result<Ordered, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))?;
    let state: Option<String> = tx
        .query_row("SELECT state FROM watches WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql("read a watch"))?;
    let Some(state) = state else {
        return Ok(Ordered::NoWatch);
    };
    let state = WatchState::parse(&state).unwrap_or(WatchState::Finished);
    if state != WatchState::Running {
        return Ok(Ordered::NotRunning(state));
    }
    if matches!(o.kind.as_str(), "rollback" | "pause") {
        let taken = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM orders WHERE watch_id = ?1 AND kind = ?2 AND state <> 'refused'"),
                params![id, o.kind],
                row,
            )
            .optional()
            .map_err(sql("read orders"))?;
        if let Some(t) = taken {
            return Ok(Ordered::Taken(t));
        }
        let claimed: Option<(String, i64)> = tx
            .query_row(
                "SELECT rule, started_ms FROM actions WHERE watch_id = ?1 AND kind = ?2 ORDER BY id LIMIT 1",
                params![id, o.kind],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("read actions"))?;
        if let Some((rule, at_ms)) = claimed {
            return Ok(Ordered::Claimed { rule, at_ms });
        }
    }
    tx.execute(
        "INSERT INTO orders (watch_id, kind, duration_ms, who, reason, at_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
        params![id, o.kind, o.duration_ms, o.who, o.reason, o.at_ms],
    )
    .map_err(sql("store an order"))?;
    let n = tx.last_insert_rowid();
    tx.commit().map_err(sql("commit an order"))?;
    Ok(Ordered::Queued(OrderRow {
        id: n,
        watch: id.to_string(),
        order: o.clone(),
        state: OrderState::Pending,
        result: None,
        done_ms: None,
    }))
}

pub(super) fn pending(conn: &Connection) -> Result<Vec<OrderRow>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM orders WHERE state = 'pending' ORDER BY id"
        ))
        .map_err(sql("read pending orders"))?;
    let rows = st
        .query_map([], row)
        .map_err(sql("read pending orders"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("read pending orders"));
    rows
}

pub(super) fn of_watch(conn: &Connection, id: &str) -> Result<Vec<OrderRow>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM orders WHERE watch_id = ?1 ORDER BY id"
        ))
        .map_err(sql("read orders"))?;
    let rows = st
        .query_map([id], row)
        .map_err(sql("read orders"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("read orders"));
    rows
}

/// `Store::order_done` once the fence (if any) was checked; without one, only for a
/// watch that no longer runs.
pub(super) fn done(
    conn: &mut Connection,
    id: &str,
    fenced: bool,
    order: i64,
    state: OrderState,
    result: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))?;
    if !fenced {
        let running: Option<String> = tx
            .query_row("SELECT state FROM watches WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("read a watch"))?;
        if running.as_deref() == Some(WatchState::Running.as_str()) {
            return Err(StoreError::Fenced {
                what: format!("settling of order {order} without the watch's lease"),
                id: id.to_string(),
                token: 0,
            });
        }
    }
    tx.execute(
        "UPDATE orders SET state = ?1, result = ?2, done_ms = ?3
         WHERE id = ?4 AND watch_id = ?5 AND state = 'pending'",
        params![state.as_str(), result, at_ms, order, id],
    )
    .map_err(sql("settle an order"))?;
    tx.commit().map_err(sql("settle an order"))
}
