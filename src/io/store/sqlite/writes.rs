//! What the SQLite store writes: watches, breach state, last polls, claims, action
//! results and baselines, each in its own transaction; and the outbox, whose notes
//! are written in the transaction of the change they report. The values go to their
//! columns through the shared codec (`io::store::codec`). The fence of a write is
//! checked by the caller (`SqliteStore`, which holds the leases) before it gets here.

use super::reads;
use crate::core::eval::Labels;
use crate::io::store::api::*;
use crate::io::store::codec::{
    argv_text, env_text, labels_text, new_record, phase_text, sql, vars_text, windows_json,
    RERUN_RESULT,
};
use rusqlite::{params, Connection};
use std::time::Duration;

/// Records a watch's ending (inside the caller's transaction).
pub(super) fn finish_in(conn: &Connection, id: &str, e: &Ending) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE watches SET state = ?2, outcome = ?3, exit_code = ?4, detail = ?5, finished_ms = ?6 WHERE id = ?1",
        params![id, e.state.as_str(), e.outcome, e.exit_code as i64, e.detail, e.at_ms],
    )
    .map_err(sql("record how a watch ended"))?;
    conn.execute("DELETE FROM polls WHERE watch_id = ?1", [id])
        .map_err(sql("record how a watch ended"))?;
    Ok(())
}

/// Records a pending or firing series, keeping an existing `since`.
fn upsert_series(conn: &Connection, id: &str, r: &SeriesRow) -> Result<(), StoreError> {
    let labels = labels_text(&r.labels);
    conn.prepare_cached(
        "INSERT INTO series (watch_id, rule, labels, phase, since_ms, last_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (watch_id, rule, labels)
         DO UPDATE SET phase = excluded.phase, last_value = excluded.last_value",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            r.rule,
            labels,
            phase_text(r.phase),
            r.since_ms,
            r.last_value
        ])
    })
    .map_err(sql("record a series' breach state"))?;
    Ok(())
}

/// Inserts an action row as `started`; the unique indexes refuse a second claim.
fn insert_action(
    conn: &Connection,
    id: &str,
    a: &NewAction,
    rerun_of: Option<i64>,
) -> Result<i64, StoreError> {
    let argv = argv_text(&a.argv);
    let env = env_text(&a.env);
    let r = conn.execute(
        "INSERT INTO actions (watch_id, kind, rule, argv, env, state, started_ms, rerun_of)
         VALUES (?1, ?2, ?3, ?4, ?5, 'started', ?6, ?7)",
        params![id, a.kind, a.rule, argv, env, a.at_ms, rerun_of],
    );
    match r {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::AlreadyClaimed {
                what: format!("the {} action", a.kind),
                id: id.to_string(),
            })
        }
        Err(e) => Err(StoreError::Sql {
            what: "record an action before it starts",
            source: e,
        }),
    }
}

/// Inserts the notes of a state change (inside its transaction).
fn insert_notes(conn: &Connection, id: &str, notes: &[NewNote]) -> Result<(), StoreError> {
    let now = crate::core::events::now_ms();
    for n in notes {
        conn.prepare_cached(
            "INSERT INTO outbox (watch_id, channel, kind, body, created_ms, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )
        .and_then(|mut s| s.execute(params![id, n.channel, n.kind, n.body, now]))
        .map_err(sql("record a notification"))?;
    }
    Ok(())
}

pub(super) fn create(conn: &mut Connection, w: &NewWatch) -> Result<Created, StoreError> {
    let tx = conn.transaction().map_err(sql("begin a transaction"))?;
    if let Some(existing) = reads::get(&tx, &w.id)? {
        return Ok(Created::Existing(existing));
    }
    let vars = vars_text(&w.vars);
    tx.execute(
        "INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
        params![
            w.id,
            w.rules,
            w.rules_text,
            vars,
            w.duration_ms,
            w.created_ms
        ],
    )
    .map_err(sql("store a watch"))?;
    let after = super::orders::take_key(&tx, w)?;
    tx.commit().map_err(sql("commit a watch"))?;
    let mut rec = new_record(w.clone());
    rec.after = after;
    Ok(Created::New(rec))
}

/// `Store::create_many`: one transaction; rolled back (nothing written) on a conflict.
pub(super) fn create_many(
    conn: &mut Connection,
    ws: &[NewWatch],
) -> Result<CreatedMany, StoreError> {
    let tx = conn.transaction().map_err(sql("begin a transaction"))?;
    let mut out = Vec::with_capacity(ws.len());
    let mut conflicts = Vec::new();
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running') ON CONFLICT (id) DO NOTHING",
            )
            .map_err(sql("store a watch"))?;
        for (i, w) in ws.iter().enumerate() {
            let n = insert
                .execute(params![
                    w.id,
                    w.rules,
                    w.rules_text,
                    vars_text(&w.vars),
                    w.duration_ms,
                    w.created_ms
                ])
                .map_err(sql("store a watch"))?;
            if n == 1 {
                let mut rec = new_record(w.clone());
                rec.after = super::orders::take_key(&tx, w)?;
                out.push(Created::New(rec));
                continue;
            }
            let existing = reads::get(&tx, &w.id)?.ok_or_else(|| StoreError::Corrupt {
                what: "watch",
                id: w.id.clone(),
                reason: "its id is taken but no watch can be read with it".into(),
            })?;
            if w.same_request(&existing.def) {
                out.push(Created::Existing(existing));
            } else {
                conflicts.push((i, existing));
            }
        }
    }
    if !conflicts.is_empty() {
        // Dropping the transaction rolls it back: none of the batch is stored.
        return Ok(CreatedMany::Conflicts(conflicts));
    }
    tx.commit().map_err(sql("commit watches"))?;
    Ok(CreatedMany::Stored(out))
}

pub(super) fn clear_series(
    conn: &Connection,
    id: &str,
    rule: &str,
    labels: &Labels,
) -> Result<(), StoreError> {
    let labels = labels_text(labels);
    conn.prepare_cached("DELETE FROM series WHERE watch_id = ?1 AND rule = ?2 AND labels = ?3")
        .and_then(|mut s| s.execute(params![id, rule, labels]))
        .map_err(sql("clear a series' breach state"))?;
    Ok(())
}

/// `Store::save_polls`: `held[i]` says whether the writer of `polls[i]` holds the
/// watch's lease; the marks of the others are not written, and their watches are
/// returned.
pub(super) fn save_polls(
    conn: &mut Connection,
    polls: &[PollMark],
    held: &[bool],
) -> Result<Vec<String>, StoreError> {
    let mut refused = std::collections::BTreeSet::new();
    let tx = conn.transaction().map_err(sql("begin a transaction"))?;
    {
        // Every right-hand side reads the row as it was before this update.
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO polls (watch_id, rule, last_ms, last_ok, ever_ok, ever_data, windows)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
                 ON CONFLICT (watch_id, rule) DO UPDATE SET
                     last_ok = CASE WHEN excluded.last_ms >= last_ms
                                    THEN excluded.last_ok ELSE last_ok END,
                     windows = CASE WHEN excluded.last_ms >= last_ms
                                    THEN excluded.windows ELSE windows END,
                     last_ms = max(last_ms, excluded.last_ms),
                     ever_ok = max(ever_ok, excluded.ever_ok),
                     ever_data = max(ever_data, excluded.ever_data)",
            )
            .map_err(sql("record last polls"))?;
        for (p, &held) in polls.iter().zip(held) {
            if !held {
                refused.insert(p.id.to_string());
                continue;
            }
            let windows = windows_json(&p.windows);
            stmt.execute(params![&*p.id, &*p.rule, p.at_ms, p.ok, p.data, windows])
                .map_err(sql("record last polls"))?;
        }
    }
    tx.commit().map_err(sql("record last polls"))?;
    Ok(refused.into_iter().collect())
}

pub(super) fn claim_action(
    conn: &mut Connection,
    id: &str,
    a: &NewAction,
    fired: &[SeriesRow],
) -> Result<i64, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))?;
    for r in fired {
        upsert_series(&tx, id, r)?;
    }
    let action = insert_action(&tx, id, a, None)?;
    tx.commit().map_err(sql("commit an action's claim"))?;
    Ok(action)
}

pub(super) fn claim_rerun(
    conn: &mut Connection,
    id: &str,
    old: i64,
    a: &NewAction,
) -> Result<i64, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))?;
    let changed = tx
        .execute(
            "UPDATE actions SET state = 'rerun', result = ?2, finished_ms = ?3
             WHERE id = ?1 AND state = 'started'",
            params![old, RERUN_RESULT, a.at_ms],
        )
        .map_err(sql("mark an action re-run"))?;
    if changed != 1 {
        return Err(StoreError::AlreadyClaimed {
            what: format!("the re-run of action {old}"),
            id: id.to_string(),
        });
    }
    let action = insert_action(&tx, id, a, Some(old))?;
    tx.commit().map_err(sql("commit a re-run's claim"))?;
    Ok(action)
}

pub(super) fn action_spawned(
    conn: &Connection,
    action: i64,
    p: &ProcessId,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE actions SET pgid = ?2, start_ticks = ?3, boot_id = ?4 WHERE id = ?1",
        params![action, p.pgid, p.start_ticks, p.boot_id],
    )
    .map_err(sql("record an action's process"))?;
    Ok(())
}

/// `Store::write_noted` once its fence was checked.
pub(super) fn write_noted(
    conn: &mut Connection,
    id: &str,
    change: Noted<'_>,
    notes: &[NewNote],
) -> Result<(), StoreError> {
    let doing = change.doing();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))?;
    match change {
        Noted::Finish(e) => finish_in(&tx, id, e)?,
        Noted::PutSeries(r) => upsert_series(&tx, id, r)?,
        Noted::EndAction {
            action,
            end,
            ending,
        } => {
            tx.execute(
                "UPDATE actions SET state = ?3, result = ?4, succeeded = ?5, finished_ms = ?6 WHERE id = ?1 AND watch_id = ?2",
                params![action, id, end.state.as_str(), end.result, end.succeeded, end.at_ms],
            )
            .map_err(sql("record an action's result"))?;
            if let Some(e) = ending {
                finish_in(&tx, id, e)?;
            }
        }
        Noted::Nothing => {}
    }
    insert_notes(&tx, id, notes)?;
    tx.commit().map_err(sql(doing))
}

/// `Store::put_baselines`' writes of one rule, inside the caller's transaction, once
/// its fence was checked.
pub(super) fn put_baselines_in(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    rule: &str,
    values: &[(Labels, f64)],
) -> Result<(), StoreError> {
    let taken: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM baselines WHERE watch_id = ?1 AND rule = ?2)",
            params![id, rule],
            |r| r.get(0),
        )
        .map_err(sql("read a baseline"))?;
    if taken {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO baselines (watch_id, rule, labels, value) VALUES (?1, ?2, '', NULL)",
        params![id, rule],
    )
    .map_err(sql("store a baseline"))?;
    for (labels, value) in values {
        let labels = labels_text(labels);
        tx.execute(
            "INSERT OR REPLACE INTO baselines (watch_id, rule, labels, value) VALUES (?1, ?2, ?3, ?4)",
            params![id, rule, labels, value],
        )
        .map_err(sql("store a baseline"))?;
    }
    Ok(())
}

pub(super) fn outbox_due(
    conn: &mut Connection,
    holder: &str,
    lease: Duration,
    max: usize,
) -> Result<Vec<NoteRow>, StoreError> {
    let now = crate::core::events::now_ms();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))?;
    // Per (watch, channel) in order: a note waits for every earlier one. One agent
    // holds the file at a time: a note another holder took is a dead process's,
    // due at once (a restart does not wait for its lease to run out).
    let rows: Vec<NoteRow> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT o.id, o.watch_id, o.channel, o.kind, o.body, o.attempts FROM outbox o
                 WHERE o.done_ms IS NULL AND (o.due_ms <= ?1 OR o.holder IS NOT ?3)
                   AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.done_ms IS NULL
                       AND p.watch_id = o.watch_id AND p.channel = o.channel AND p.id < o.id)
                 ORDER BY o.id LIMIT ?2",
            )
            .map_err(sql("read the outbox"))?;
        let mapped = stmt
            .query_map(params![now, max as i64, holder], |r| {
                Ok(NoteRow {
                    id: r.get(0)?,
                    watch: r.get(1)?,
                    channel: r.get(2)?,
                    kind: r.get(3)?,
                    body: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })
            .map_err(sql("read the outbox"))?;
        mapped
            .collect::<Result<_, _>>()
            .map_err(sql("read the outbox"))?
    };
    for r in &rows {
        tx.execute(
            "UPDATE outbox SET holder = ?2, due_ms = ?3 WHERE id = ?1",
            params![r.id, holder, now + lease.as_millis() as i64],
        )
        .map_err(sql("take a notification"))?;
    }
    tx.commit().map_err(sql("take notifications"))?;
    Ok(rows)
}

pub(super) fn outbox_mark(
    conn: &Connection,
    note: i64,
    mark: NoteMark<'_>,
) -> Result<(), StoreError> {
    let now = crate::core::events::now_ms();
    match mark {
        // Done: deleted, body and all (the outbox stays as small as what is
        // pending; the log says what became of it). Ids are never reused.
        NoteMark::Done { .. } => conn.execute("DELETE FROM outbox WHERE id = ?1", params![note]),
        NoteMark::Retry { attempts, after } => conn.execute(
            "UPDATE outbox SET attempts = ?2, due_ms = ?3 WHERE id = ?1",
            params![note, attempts, now + after.as_millis() as i64],
        ),
    }
    .map_err(sql("record a notification's delivery"))?;
    Ok(())
}
