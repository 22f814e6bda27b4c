//! What the PostgreSQL store writes: watches, breach state, last polls, claims,
//! action results, baselines and the notes written with a state change, each an
//! async function run on the store's runtime (`PgStore::call`). Every owner's write
//! checks its fence (`leases::check_fence`) in its own transaction; the values go to
//! their columns through the shared codec (`io::store::codec`).

use super::errors::{is_unique_violation, pg_err};
use super::leases::check_fence;
use super::outbox::DB_NOW_MS;
use super::reads::watch_of;
use crate::io::store::api::*;
use crate::io::store::codec::{
    argv_text, env_text, labels_text, new_record, phase_text, vars_text, windows_json,
    RERUN_RESULT, WATCH_COLS,
};
use deadpool_postgres::Object;

type PgResult<T> = Result<T, tokio_postgres::Error>;

async fn upsert_series(
    c: &impl deadpool_postgres::GenericClient,
    id: &str,
    r: &SeriesRow,
) -> PgResult<u64> {
    c.execute(
        "INSERT INTO series (watch_id, rule, labels, phase, since_ms, last_value)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (watch_id, rule, labels)
         DO UPDATE SET phase = excluded.phase, last_value = excluded.last_value",
        &[
            &id,
            &r.rule,
            &labels_text(&r.labels),
            &phase_text(r.phase),
            &r.since_ms,
            &r.last_value,
        ],
    )
    .await
}

/// Records a watch's ending and deletes its lease, `holder`'s only (inside the
/// caller's fenced transaction).
async fn finish_in(
    c: &impl deadpool_postgres::GenericClient,
    id: &str,
    holder: &str,
    e: &Ending,
) -> PgResult<()> {
    c.execute(
        "UPDATE watches SET state = $2, outcome = $3, exit_code = $4, detail = $5, finished_ms = $6 WHERE id = $1",
        &[&id, &e.state.as_str(), &e.outcome, &(e.exit_code as i32), &e.detail, &e.at_ms],
    )
    .await?;
    c.execute("DELETE FROM polls WHERE watch_id = $1", &[&id])
        .await?;
    c.execute(
        "DELETE FROM leases WHERE watch_id = $1 AND holder = $2",
        &[&id, &holder],
    )
    .await?;
    Ok(())
}

/// `Noted`, owned (a store call runs on the store's own runtime).
pub(super) enum NotedOwned {
    Finish(Ending),
    PutSeries(SeriesRow),
    Action {
        action: i64,
        state: &'static str,
        result: String,
        succeeded: Option<bool>,
        at_ms: i64,
        ending: Option<Ending>,
    },
    Nothing,
}

impl NotedOwned {
    pub(super) fn of(n: &Noted<'_>) -> NotedOwned {
        match n {
            Noted::Finish(e) => NotedOwned::Finish((*e).clone()),
            Noted::PutSeries(r) => NotedOwned::PutSeries((*r).clone()),
            Noted::EndAction {
                action,
                end,
                ending,
            } => NotedOwned::Action {
                action: *action,
                state: end.state.as_str(),
                result: end.result.to_string(),
                succeeded: end.succeeded,
                at_ms: end.at_ms,
                ending: ending.cloned(),
            },
            Noted::Nothing => NotedOwned::Nothing,
        }
    }
}

/// Inserts an action row as `started`; the unique indexes refuse a second claim.
async fn insert_action(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    id: &str,
    a: &NewAction,
    rerun_of: Option<i64>,
    token: Option<i64>,
) -> Result<i64, StoreError> {
    let argv = argv_text(&a.argv);
    let env = env_text(&a.env);
    let r = c
        .query_one(
            "INSERT INTO actions (watch_id, kind, rule, argv, env, state, started_ms, rerun_of, fencing_token)
             VALUES ($1, $2, $3, $4, $5, 'started', $6, $7, $8) RETURNING id",
            &[&id, &a.kind, &a.rule, &argv, &env, &a.at_ms, &rerun_of, &token],
        )
        .await;
    match r {
        Ok(row) => Ok(row.get(0)),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyClaimed {
            what: match rerun_of {
                Some(old) => format!("the re-run of action {old}"),
                None => format!("the {} action", a.kind),
            },
            id: id.to_string(),
        }),
        Err(e) => Err(pg_err(url, "record an action before it starts")(e)),
    }
}

pub(super) async fn claim_in(
    mut c: Object,
    url: String,
    id: String,
    fence: Option<(String, i64)>,
    a: NewAction,
    fired: Vec<SeriesRow>,
) -> Result<i64, StoreError> {
    let err = pg_err(&url, "claim an action");
    let tx = c.transaction().await.map_err(&err)?;
    if let Some((holder, token)) = &fence {
        check_fence(
            &tx,
            &url,
            &id,
            holder,
            *token,
            format!("claim of the {} action", a.kind),
        )
        .await?;
    }
    for r in &fired {
        upsert_series(&tx, &id, r).await.map_err(&err)?;
    }
    let action = insert_action(&tx, &url, &id, &a, None, fence.map(|f| f.1)).await?;
    tx.commit().await.map_err(&err)?;
    Ok(action)
}

pub(super) async fn rerun_in(
    mut c: Object,
    url: String,
    id: String,
    fence: Option<(String, i64)>,
    old: i64,
    a: NewAction,
) -> Result<i64, StoreError> {
    let err = pg_err(&url, "claim a re-run");
    let tx = c.transaction().await.map_err(&err)?;
    if let Some((holder, token)) = &fence {
        check_fence(
            &tx,
            &url,
            &id,
            holder,
            *token,
            format!("claim of the re-run of action {old}"),
        )
        .await?;
    }
    let changed = tx
        .execute(
            "UPDATE actions SET state = 'rerun', result = $2, finished_ms = $3
             WHERE id = $1 AND state = 'started'",
            &[&old, &RERUN_RESULT, &a.at_ms],
        )
        .await
        .map_err(&err)?;
    if changed != 1 {
        return Err(StoreError::AlreadyClaimed {
            what: format!("the re-run of action {old}"),
            id,
        });
    }
    let action = insert_action(&tx, &url, &id, &a, Some(old), fence.map(|f| f.1)).await?;
    tx.commit().await.map_err(&err)?;
    Ok(action)
}

pub(super) async fn create(mut c: Object, url: String, w: NewWatch) -> Result<Created, StoreError> {
    let err = pg_err(&url, "store a watch");
    let vars = vars_text(&w.vars);
    // One statement: of two agents creating one id at once, one inserts and the other
    // finds it. A keyed watch takes its key in the insert's own transaction.
    let tx = c.transaction().await.map_err(&err)?;
    let n = tx
        .execute(
            "INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
             VALUES ($1, $2, $3, $4, $5, $6, 'running') ON CONFLICT (id) DO NOTHING",
            &[
                &w.id,
                &w.rules,
                &w.rules_text,
                &vars,
                &w.duration_ms,
                &w.created_ms,
            ],
        )
        .await
        .map_err(&err)?;
    if n == 1 {
        let after = super::orders::take_key(&tx, &url, &w).await?;
        tx.commit().await.map_err(&err)?;
        let mut rec = new_record(w);
        rec.after = after;
        return Ok(Created::New(rec));
    }
    drop(tx);
    let row = c
        .query_one(
            &format!("SELECT {WATCH_COLS} FROM watches WHERE id = $1"),
            &[&w.id],
        )
        .await
        .map_err(&err)?;
    Ok(Created::Existing(watch_of(&row)?))
}

/// `Store::create_many`: one transaction of two statements (the new rows in one
/// multi-row insert, then the watches found with the other ids); rolled back
/// (nothing written) on a conflict. Of two agents creating one id at once, one
/// inserts it and the other waits for its commit and finds it.
pub(super) async fn create_many(
    mut c: Object,
    url: String,
    ws: Vec<NewWatch>,
) -> Result<CreatedMany, StoreError> {
    let err = pg_err(&url, "store watches");
    let col = |f: fn(&NewWatch) -> String| ws.iter().map(f).collect::<Vec<String>>();
    let ids = col(|w| w.id.clone());
    let rules = col(|w| w.rules.clone());
    let texts = col(|w| w.rules_text.clone());
    let vars = col(|w| vars_text(&w.vars));
    let durations: Vec<i64> = ws.iter().map(|w| w.duration_ms).collect();
    let created: Vec<i64> = ws.iter().map(|w| w.created_ms).collect();
    let tx = c.transaction().await.map_err(&err)?;
    // The keys' advisory locks first, in one order (sorted): two batches with the same
    // keys in another order never deadlock (`orders::take_key` takes them again: they
    // are re-entrant within a transaction).
    let mut keys: Vec<&String> = ws.iter().filter_map(|w| w.key.as_ref()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[k])
            .await
            .map_err(&err)?;
    }
    let inserted = tx
        .query(
            "INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
             SELECT id, rules, rules_text, vars, duration_ms, created_ms, 'running'
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
                  WITH ORDINALITY AS t(id, rules, rules_text, vars, duration_ms, created_ms, n)
             ORDER BY n
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
            &[&ids, &rules, &texts, &vars, &durations, &created],
        )
        .await
        .map_err(&err)?;
    let mut new: std::collections::HashSet<String> =
        inserted.iter().map(|r| r.get::<_, String>(0)).collect();
    let others: Vec<&String> = ids.iter().filter(|id| !new.contains(*id)).collect();
    let mut found = std::collections::HashMap::new();
    if !others.is_empty() {
        let rows = tx
            .query(
                &format!("SELECT {WATCH_COLS} FROM watches WHERE id = ANY($1)"),
                &[&others],
            )
            .await
            .map_err(&err)?;
        for r in &rows {
            let rec = watch_of(r)?;
            found.insert(rec.def.id.clone(), rec);
        }
    }
    let mut out = Vec::with_capacity(ws.len());
    let mut conflicts = Vec::new();
    for (i, w) in ws.into_iter().enumerate() {
        // The first of the batch with an inserted id is the new watch; a repeat of
        // it finds it.
        if new.remove(&w.id) {
            let mut rec = new_record(w.clone());
            rec.after = super::orders::take_key(&tx, &url, &w).await?;
            found.insert(w.id.clone(), rec.clone());
            out.push(Created::New(rec));
            continue;
        }
        let existing = found
            .get(&w.id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
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
    if !conflicts.is_empty() {
        tx.rollback().await.map_err(&err)?;
        return Ok(CreatedMany::Conflicts(conflicts));
    }
    tx.commit().await.map_err(&err)?;
    Ok(CreatedMany::Stored(out))
}

pub(super) async fn clear_series(
    mut c: Object,
    url: String,
    id: String,
    fence: Fence,
    rule: String,
    labels: String,
) -> Result<(), StoreError> {
    let err = pg_err(&url, "clear a series' breach state");
    let tx = c.transaction().await.map_err(&err)?;
    check_fence(
        &tx,
        &url,
        &id,
        &fence.holder,
        fence.token,
        "write of a resolved series".into(),
    )
    .await?;
    tx.execute(
        "DELETE FROM series WHERE watch_id = $1 AND rule = $2 AND labels = $3",
        &[&id, &rule, &labels],
    )
    .await
    .map_err(&err)?;
    tx.commit().await.map_err(&err)
}

pub(super) async fn save_polls(
    c: Object,
    url: String,
    holder: String,
    polls: Vec<PollMark>,
) -> Result<Vec<String>, StoreError> {
    // One statement for the whole batch (arrays unnested), so that a flush of
    // thousands of rules is one round trip; fenced in it: only the marks of
    // watches whose lease `holder` holds (unexpired, with the mark's token) are
    // written. The lease rows are locked `FOR KEY SHARE` until the commit: a
    // takeover locks them `FOR UPDATE` first (`leases.rs`) and so waits for this
    // flush, but the holder's own renewal (`FOR NO KEY UPDATE`) never does: a
    // renewal waiting behind a flush of a whole agent's marks let its leases lapse.
    let ids: Vec<&str> = polls.iter().map(|p| &*p.id).collect();
    let rules: Vec<&str> = polls.iter().map(|p| &*p.rule).collect();
    let at: Vec<i64> = polls.iter().map(|p| p.at_ms).collect();
    let ok: Vec<bool> = polls.iter().map(|p| p.ok).collect();
    let data: Vec<bool> = polls.iter().map(|p| p.data).collect();
    let tokens: Vec<i64> = polls.iter().map(|p| p.token).collect();
    let windows: Vec<Option<String>> = polls.iter().map(|p| windows_json(&p.windows)).collect();
    let rows = c
        .query(
            "WITH held AS MATERIALIZED (
                 SELECT watch_id, token FROM leases
                 WHERE holder = $7 AND watch_id = ANY($1::text[]) AND expires_at > clock_timestamp()
                 ORDER BY watch_id
                 FOR KEY SHARE
             )
             INSERT INTO polls AS p (watch_id, rule, last_ms, last_ok, ever_ok, ever_data, windows)
             SELECT DISTINCT ON (w, r) w, r, a, o, o, d, x
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[], $5::bool[], $6::bigint[], $8::text[]) AS t(w, r, a, o, d, k, x)
             JOIN held ON held.watch_id = t.w AND held.token = t.k
             ORDER BY w, r, a DESC
             ON CONFLICT (watch_id, rule) DO UPDATE SET
                 last_ok = CASE WHEN excluded.last_ms >= p.last_ms THEN excluded.last_ok ELSE p.last_ok END,
                 windows = CASE WHEN excluded.last_ms >= p.last_ms THEN excluded.windows ELSE p.windows END,
                 last_ms = greatest(p.last_ms, excluded.last_ms),
                 ever_ok = p.ever_ok OR excluded.ever_ok,
                 ever_data = p.ever_data OR excluded.ever_data
             RETURNING watch_id",
            &[&ids, &rules, &at, &ok, &data, &tokens, &holder, &windows],
        )
        .await
        .map_err(pg_err(&url, "record last polls"))?;
    let written: std::collections::BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let refused: std::collections::BTreeSet<String> = polls
        .iter()
        .filter(|p| !written.contains(&*p.id))
        .map(|p| p.id.to_string())
        .collect();
    Ok(refused.into_iter().collect())
}

pub(super) async fn action_spawned(
    c: Object,
    url: String,
    action: i64,
    p: ProcessId,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE actions SET pgid = $2, start_ticks = $3, boot_id = $4 WHERE id = $1",
        &[&action, &p.pgid, &p.start_ticks, &p.boot_id],
    )
    .await
    .map(|_| ())
    .map_err(pg_err(&url, "record an action's process"))
}

pub(super) async fn put_baselines(
    mut c: Object,
    url: String,
    id: String,
    fence: Fence,
    rule: String,
    rows: Vec<(String, f64)>,
) -> Result<(), StoreError> {
    let err = pg_err(&url, "store a baseline");
    let tx = c.transaction().await.map_err(&err)?;
    check_fence(
        &tx,
        &url,
        &id,
        &fence.holder,
        fence.token,
        "write of a baseline".into(),
    )
    .await?;
    // The marker row (labels '') says "taken": whoever inserts it first stores
    // the values; a baseline already taken never shifts.
    let taken = tx
        .execute(
            "INSERT INTO baselines (watch_id, rule, labels, value) VALUES ($1, $2, '', NULL)
             ON CONFLICT DO NOTHING",
            &[&id, &rule],
        )
        .await
        .map_err(&err)?;
    if taken == 0 {
        return Ok(());
    }
    let labels: Vec<&str> = rows.iter().map(|(l, _)| l.as_str()).collect();
    let vals: Vec<f64> = rows.iter().map(|(_, v)| *v).collect();
    tx.execute(
        "INSERT INTO baselines (watch_id, rule, labels, value)
         SELECT $1, $2, l, v FROM unnest($3::text[], $4::float8[]) AS t(l, v)
         ON CONFLICT (watch_id, rule, labels) DO UPDATE SET value = excluded.value",
        &[&id, &rule, &labels, &vals],
    )
    .await
    .map_err(&err)?;
    tx.commit().await.map_err(&err)
}

pub(super) async fn write_noted(
    mut c: Object,
    url: String,
    id: String,
    fence: Fence,
    change: NotedOwned,
    notes: Vec<NewNote>,
    (what, doing): (String, &'static str),
) -> Result<(), StoreError> {
    let err = pg_err(&url, doing);
    let tx = c.transaction().await.map_err(&err)?;
    check_fence(&tx, &url, &id, &fence.holder, fence.token, what).await?;
    match &change {
        NotedOwned::Finish(e) => finish_in(&tx, &id, &fence.holder, e).await.map_err(&err)?,
        NotedOwned::PutSeries(r) => {
            upsert_series(&tx, &id, r).await.map_err(&err)?;
        }
        NotedOwned::Action {
            action,
            state,
            result,
            succeeded,
            at_ms,
            ending,
        } => {
            tx.execute(
                "UPDATE actions SET state = $3, result = $4, succeeded = $5, finished_ms = $6 WHERE id = $1 AND watch_id = $2",
                &[action, &id, state, result, succeeded, at_ms],
            )
            .await
            .map_err(&err)?;
            if let Some(e) = ending {
                finish_in(&tx, &id, &fence.holder, e).await.map_err(&err)?;
            }
        }
        NotedOwned::Nothing => {}
    }
    for n in &notes {
        tx.execute(
            &format!(
                "INSERT INTO outbox (watch_id, channel, kind, body, created_ms, due_ms)
                 VALUES ($1, $2, $3, $4, {DB_NOW_MS}, {DB_NOW_MS})"
            ),
            &[&id, &n.channel, &n.kind, &n.body],
        )
        .await
        .map_err(&err)?;
    }
    tx.commit().await.map_err(&err)
}
