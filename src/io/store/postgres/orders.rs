//! People's orders in PostgreSQL (`io::store::orders`): any agent may store an order
//! (the one a person reached); the holder of the watch's lease finds it
//! (`pending`, one statement per look, whatever the number of watches) and settles
//! it, fenced by its lease. Two agents storing a `rollback` at once: the unique index
//! lets one insert commit; the other's fails and it answers with the first (`Taken`).

use super::errors::{is_unique_violation, pg_err};
use super::leases::check_fence;
use crate::io::store::api::NewWatch;
use crate::io::store::api::{Fence, StoreError, WatchState};
use crate::io::store::orders::{
    supersede_reason, NewOrder, OrderRow, OrderState, Ordered, SUPERSEDER,
};
use deadpool_postgres::Object;

/// Version 4 (issue 22): people's orders.
pub(super) const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id BIGSERIAL PRIMARY KEY,
    watch_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    duration_ms BIGINT,
    who TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    done_ms BIGINT
);
CREATE INDEX IF NOT EXISTS orders_watch ON orders(watch_id, id);
CREATE INDEX IF NOT EXISTS orders_pending ON orders(id) WHERE state = 'pending';
CREATE UNIQUE INDEX IF NOT EXISTS orders_once ON orders(watch_id, kind)
    WHERE kind IN ('rollback', 'pause') AND state <> 'refused';
ALTER TABLE watches ADD COLUMN IF NOT EXISTS key TEXT;
ALTER TABLE watches ADD COLUMN IF NOT EXISTS after_watch TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS watches_key ON watches(key)
    WHERE key IS NOT NULL AND state = 'running';
";

/// `watch.key` (issue 22): as SQLite's `take_key`, in the caller's transaction. Two
/// agents creating watches of one key at once take the key's advisory lock first, so
/// the second sees the first's watch as the older one (never two running holders,
/// never a unique-index failure).
pub(super) async fn take_key(
    tx: &deadpool_postgres::Transaction<'_>,
    url: &str,
    w: &NewWatch,
) -> Result<Option<String>, StoreError> {
    let Some(key) = &w.key else {
        return Ok(None);
    };
    let err = pg_err(url, "move a watch's key");
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[key])
        .await
        .map_err(&err)?;
    let old: Option<String> = tx
        .query_opt(
            "SELECT id FROM watches WHERE key = $1 AND state = 'running' AND id <> $2 FOR UPDATE",
            &[key, &w.id],
        )
        .await
        .map_err(&err)?
        .map(|r| r.get(0));
    if let Some(old) = &old {
        tx.execute("UPDATE watches SET key = NULL WHERE id = $1", &[old])
            .await
            .map_err(&err)?;
        tx.execute(
            "INSERT INTO orders (watch_id, kind, duration_ms, who, reason, at_ms, state)
             VALUES ($1, 'supersede', NULL, $2, $3, $4, 'pending')",
            &[old, &SUPERSEDER, &supersede_reason(&w.id), &w.created_ms],
        )
        .await
        .map_err(&err)?;
    }
    tx.execute(
        "UPDATE watches SET key = $1, after_watch = $2 WHERE id = $3",
        &[key, &old, &w.id],
    )
    .await
    .map_err(&err)?;
    Ok(old)
}

const COLUMNS: &str =
    "o.id, o.watch_id, o.kind, o.duration_ms, o.who, o.reason, o.at_ms, o.state, o.result, o.done_ms";

fn row(r: &tokio_postgres::Row) -> OrderRow {
    let state: String = r.get(7);
    OrderRow {
        id: r.get(0),
        watch: r.get(1),
        order: NewOrder {
            kind: r.get(2),
            duration_ms: r.get(3),
            who: r.get(4),
            reason: r.get(5),
            at_ms: r.get(6),
        },
        // (An unknown state, from a newer build, reads as settled: never run again.)
        state: OrderState::parse(&state).unwrap_or(OrderState::Refused),
        result: r.get(8),
        done_ms: r.get(9),
    }
}

/// What stands in the way of a `rollback` or `pause` order: a person's, or a rule's claim.
async fn taken(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    id: &str,
    kind: &str,
) -> Result<Option<Ordered>, StoreError> {
    let err = pg_err(url, "read orders");
    let by_person = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM orders o WHERE o.watch_id = $1 AND o.kind = $2 AND o.state <> 'refused'"),
            &[&id, &kind],
        )
        .await
        .map_err(&err)?;
    if let Some(r) = by_person {
        return Ok(Some(Ordered::Taken(row(&r))));
    }
    let by_rule = c
        .query_opt(
            "SELECT rule, started_ms FROM actions WHERE watch_id = $1 AND kind = $2 ORDER BY id LIMIT 1",
            &[&id, &kind],
        )
        .await
        .map_err(&err)?;
    Ok(by_rule.map(|r| Ordered::Claimed {
        rule: r.get(0),
        at_ms: r.get(1),
    }))
}

pub(super) async fn order(
    mut c: Object,
    url: String,
    id: String,
    o: NewOrder,
) -> Result<Ordered, StoreError> {
    let err = pg_err(&url, "store an order");
    let tx = c.transaction().await.map_err(&err)?;
    let state = tx
        .query_opt("SELECT state FROM watches WHERE id = $1", &[&id])
        .await
        .map_err(&err)?;
    let Some(state) = state else {
        return Ok(Ordered::NoWatch);
    };
    let state: String = state.get(0);
    let state = WatchState::parse(&state).unwrap_or(WatchState::Finished);
    if state != WatchState::Running {
        return Ok(Ordered::NotRunning(state));
    }
    let once = matches!(o.kind.as_str(), "rollback" | "pause");
    if once {
        if let Some(t) = taken(&tx, &url, &id, &o.kind).await? {
            return Ok(t);
        }
    }
    let inserted = tx
        .query_one(
            "INSERT INTO orders (watch_id, kind, duration_ms, who, reason, at_ms, state)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending') RETURNING id",
            &[&id, &o.kind, &o.duration_ms, &o.who, &o.reason, &o.at_ms],
        )
        .await;
    let n: i64 = match inserted {
        Ok(r) => r.get(0),
        Err(e) if once && is_unique_violation(&e) => {
            // Another agent stored the same kind first: answer with it.
            drop(tx);
            return match taken(&c, &url, &id, &o.kind).await? {
                Some(t) => Ok(t),
                None => Err(StoreError::Pg {
                    url,
                    what: "store an order",
                    reason: "refused as a duplicate, yet no other order was found".into(),
                }),
            };
        }
        Err(e) => return Err(err(e)),
    };
    tx.commit().await.map_err(&err)?;
    Ok(Ordered::Queued(OrderRow {
        id: n,
        watch: id,
        order: o,
        state: OrderState::Pending,
        result: None,
        done_ms: None,
    }))
}

pub(super) async fn pending(
    c: Object,
    url: String,
    holder: String,
) -> Result<Vec<OrderRow>, StoreError> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM orders o JOIN leases l ON l.watch_id = o.watch_id
                 WHERE o.state = 'pending' AND l.holder = $1 ORDER BY o.id"
            ),
            &[&holder],
        )
        .await
        .map_err(pg_err(&url, "read pending orders"))?;
    Ok(rows.iter().map(row).collect())
}

pub(super) async fn of_watch(
    c: Object,
    url: String,
    id: String,
) -> Result<Vec<OrderRow>, StoreError> {
    // (Not `reads::one`: `reads` reads a resume's orders through this file.)
    let ids = [id];
    Ok(of_watches(&c, &url, &ids)
        .await?
        .remove(&ids[0])
        .unwrap_or_default())
}

/// Every order of each of `ids`, oldest first, in one query.
pub(super) async fn of_watches(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<OrderRow>>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {COLUMNS} FROM orders o WHERE o.watch_id = ANY($1) ORDER BY o.id"),
            &[&ids],
        )
        .await
        .map_err(pg_err(url, "read orders"))?;
    let mut out: std::collections::HashMap<String, Vec<OrderRow>> =
        std::collections::HashMap::new();
    for r in &rows {
        let o = row(r);
        out.entry(o.watch.clone()).or_default().push(o);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn done(
    mut c: Object,
    url: String,
    id: String,
    fence: Option<Fence>,
    order: i64,
    state: OrderState,
    result: String,
    at_ms: i64,
) -> Result<(), StoreError> {
    let err = pg_err(&url, "settle an order");
    let tx = c.transaction().await.map_err(&err)?;
    match &fence {
        Some(f) => {
            check_fence(
                &tx,
                &url,
                &id,
                &f.holder,
                f.token,
                format!("write of order {order}'s result"),
            )
            .await?
        }
        None => {
            let running = tx
                .query_opt(
                    "SELECT 1 FROM watches WHERE id = $1 AND state = 'running' FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(&err)?;
            if running.is_some() {
                return Err(StoreError::Fenced {
                    what: format!("settling of order {order} without the watch's lease"),
                    id,
                    token: 0,
                });
            }
        }
    }
    tx.execute(
        "UPDATE orders SET state = $1, result = $2, done_ms = $3
         WHERE id = $4 AND watch_id = $5 AND state = 'pending'",
        &[&state.as_str(), &result, &at_ms, &order, &id],
    )
    .await
    .map_err(&err)?;
    tx.commit().await.map_err(&err)
}
