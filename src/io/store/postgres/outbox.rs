//! The outbox on PostgreSQL: notes are taken in order per (watch, channel) by one
//! agent at a time (`FOR UPDATE SKIP LOCKED`, then a lease on the database's clock),
//! and deleted once delivered. The notes themselves are written with the change they
//! report (`writes::write_noted`).

use super::errors::pg_err;
use crate::io::store::api::*;
use deadpool_postgres::Object;

/// The database's clock, in Unix ms.
pub(super) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

pub(super) async fn outbox_due(
    mut c: Object,
    url: String,
    holder: String,
    lease: i64,
    max: i64,
) -> Result<Vec<NoteRow>, StoreError> {
    let err = pg_err(&url, "take notifications");
    let tx = c.transaction().await.map_err(&err)?;
    // Per (watch, channel) in order: a note waits for every earlier one. Two
    // agents never take the same note (SKIP LOCKED, then the lease).
    let rows = tx
        .query(
            &format!(
                "SELECT o.id, o.watch_id, o.channel, o.kind, o.body, o.attempts FROM outbox o
                 WHERE o.done_ms IS NULL AND o.due_ms <= {DB_NOW_MS}
                   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.done_ms IS NULL
                       AND p.watch_id = o.watch_id AND p.channel = o.channel AND p.id < o.id)
                 ORDER BY o.id LIMIT $1 FOR UPDATE SKIP LOCKED"
            ),
            &[&max],
        )
        .await
        .map_err(&err)?;
    let notes: Vec<NoteRow> = rows
        .iter()
        .map(|r| NoteRow {
            id: r.get(0),
            watch: r.get(1),
            channel: r.get(2),
            kind: r.get(3),
            body: r.get(4),
            attempts: r.get(5),
        })
        .collect();
    let ids: Vec<i64> = notes.iter().map(|n| n.id).collect();
    tx.execute(
        &format!("UPDATE outbox SET holder = $2, due_ms = {DB_NOW_MS} + $3 WHERE id = ANY($1)"),
        &[&ids, &holder, &lease],
    )
    .await
    .map_err(&err)?;
    tx.commit().await.map_err(&err)?;
    Ok(notes)
}

pub(super) async fn outbox_mark(
    c: Object,
    url: String,
    note: i64,
    done: bool,
    attempts: i64,
    after: i64,
) -> Result<(), StoreError> {
    let r = match done {
        // Done: deleted, body and all (the outbox stays as small as what is
        // pending; the log says what became of it). Ids are never reused.
        true => {
            c.execute("DELETE FROM outbox WHERE id = $1", &[&note])
                .await
        }
        false => {
            c.execute(
                &format!(
                    "UPDATE outbox SET attempts = $2, due_ms = {DB_NOW_MS} + $3 WHERE id = $1"
                ),
                &[&note, &attempts, &after],
            )
            .await
        }
    };
    r.map(|_| ())
        .map_err(pg_err(&url, "record a notification's delivery"))
}
