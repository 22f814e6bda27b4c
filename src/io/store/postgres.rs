//! `PgStore`, the shared store: several agents on one PostgreSQL database.
//!
//! The schema is created and migrated by the agent under one advisory lock (three
//! agents starting at once do not race) and versioned in `rollwatch_schema`; a newer
//! version than this build knows is refused. Leases live in `leases` (holder, expiry on
//! the database's clock, fencing token); `agents` holds one heartbeat row per agent.
//!
//! The `Store` trait is synchronous (its callers are the watch loop's synchronous
//! sinks and journal), so the store runs the async client on its own small runtime and
//! each call waits for its answer, bounded by `CALL_TIMEOUT`: a database that does not
//! answer is an error, never a hang.

use super::pgconn::{self, Target};
use super::pgtls::{self, Connector};
use super::*;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::future::Future;

/// The schema version this build writes (`rollwatch_schema.version`).
pub const PG_SCHEMA_VERSION: i64 = 3;

/// Version 2 (outbox): notifications written in the transaction of the state change
/// they report; `due_ms` on the database's clock, as in SQLite's version 4.
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    watch_id TEXT NOT NULL,
    channel BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    due_ms BIGINT NOT NULL,
    holder TEXT,
    done_ms BIGINT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox(watch_id, channel, id) WHERE done_ms IS NULL;
";

/// The database's clock, in Unix ms.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Key of the advisory lock held while the schema is created or migrated.
const MIGRATION_LOCK: i64 = 0x726f_6c6c_7761_7463; // "rollwatc"

/// The longest one store call may take (pool wait, connect and statements).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS watches (
    seq BIGSERIAL NOT NULL,
    id TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    rules_text TEXT NOT NULL,
    vars TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    exit_code INTEGER,
    detail TEXT,
    finished_ms BIGINT
);
CREATE INDEX IF NOT EXISTS watches_state ON watches(state, seq);
CREATE TABLE IF NOT EXISTS series (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    phase TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    last_value DOUBLE PRECISION,
    PRIMARY KEY (watch_id, rule, labels)
);
CREATE TABLE IF NOT EXISTS polls (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    last_ms BIGINT NOT NULL,
    last_ok BOOLEAN NOT NULL,
    ever_ok BOOLEAN NOT NULL,
    ever_data BOOLEAN NOT NULL,
    PRIMARY KEY (watch_id, rule)
);
CREATE TABLE IF NOT EXISTS actions (
    id BIGSERIAL PRIMARY KEY,
    watch_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    argv TEXT NOT NULL,
    env TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    succeeded BOOLEAN,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    rerun_of BIGINT,
    pgid BIGINT,
    start_ticks BIGINT,
    boot_id TEXT,
    fencing_token BIGINT
);
CREATE INDEX IF NOT EXISTS actions_watch ON actions(watch_id);
CREATE UNIQUE INDEX IF NOT EXISTS actions_once ON actions(watch_id, kind) WHERE rerun_of IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS actions_rerun_once ON actions(rerun_of) WHERE rerun_of IS NOT NULL;
CREATE TABLE IF NOT EXISTS leases (
    watch_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    token BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_holder ON leases(holder);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS baselines (
    watch_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    value DOUBLE PRECISION,
    PRIMARY KEY (watch_id, rule, labels)
);
";

/// Version 3 (issue 19): the `breaches` windows of a rule's series, written with its
/// last poll (`PollMark::windows`, JSON). Version 2 is another change's.
const SCHEMA_V3: &str = "
ALTER TABLE polls ADD COLUMN IF NOT EXISTS windows TEXT;
";

/// The shared store: a pool of connections to one PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// The store as messages show it (`pgconn::render`: never the password).
    url: String,
    /// The runtime the client's connections run on (see the module's doc).
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime may block; this may run inside the agent's runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

type PgResult<T> = Result<T, tokio_postgres::Error>;

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl PgStore {
    /// A store on `url`: a `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?...]` URL or
    /// libpq's key=value pairs (see `pgconn`; TLS as `pgtls` says). Nothing is
    /// connected yet: `migrate` is the first round trip. The TLS files are read here,
    /// so a missing or bad one is an error before any connection.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let Target {
            config: mut cfg,
            tls,
            shown,
        } = pgconn::parse(url).map_err(StoreError::PgUrl)?;
        let bad = |reason: String| StoreError::PgRefused {
            url: shown.clone(),
            what: "set up the connection",
            reason,
        };
        let connector = pgtls::connector(&tls).map_err(|e| bad(e.to_string()))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        cfg.application_name("rollwatch");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rollwatch-pg")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the client's runtime: {e}")))?;
        let mgr = Manager::from_connect(
            cfg,
            Connector {
                tls: connector,
                fallback_warned: Default::default(),
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(8)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| bad(format!("{e}")))?;
        Ok(PgStore {
            pool,
            url: shown,
            rt: Some(rt),
        })
    }

    /// `connect` and `migrate`.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let s = PgStore::connect(url)?;
        s.migrate()?;
        Ok(s)
    }

    /// The store as messages show it: never the password.
    pub fn shown_url(&self) -> &str {
        &self.url
    }

    /// Runs `f` with a pooled client on the store's runtime and waits for it (never
    /// longer than `CALL_TIMEOUT`). Safe from any thread, async or not.
    fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let pool = self.pool.clone();
        let url = self.url.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self
            .rt
            .as_ref()
            .expect("the runtime lives as long as the store");
        rt.spawn(async move {
            let work = async {
                let client = pool.get().await.map_err(|e| pool_err(&url, what, e))?;
                f(client).await
            };
            let r = match tokio::time::timeout(CALL_TIMEOUT, work).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Pg {
                    url,
                    what,
                    reason: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
                }),
            };
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Pg {
                url: self.url.clone(),
                what,
                reason: "the call was dropped".into(),
            })
        })
    }

    /// Creates or upgrades the schema in one transaction, under an advisory lock;
    /// refuses a newer schema (`NewerPgSchema`).
    pub fn migrate(&self) -> Result<(), StoreError> {
        let url = self.url.clone();
        self.call("create or upgrade the schema", move |mut c| async move {
            let err = pg_err(&url, "create or upgrade the schema");
            let tx = c.transaction().await.map_err(&err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(&err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS rollwatch_schema (version BIGINT NOT NULL)",
            )
            .await
            .map_err(&err)?;
            let found: Option<i64> = tx
                .query_opt("SELECT max(version) FROM rollwatch_schema", &[])
                .await
                .map_err(&err)?
                .and_then(|r| r.get(0));
            let found = found.unwrap_or(0);
            if found > PG_SCHEMA_VERSION {
                return Err(StoreError::NewerPgSchema {
                    url: url.clone(),
                    found,
                    known: PG_SCHEMA_VERSION,
                });
            }
            if found < 1 {
                tx.batch_execute(SCHEMA_V1).await.map_err(&err)?;
            }
            if found < 2 {
                tx.batch_execute(SCHEMA_V2).await.map_err(&err)?;
            }
            if found < 3 {
                tx.batch_execute(SCHEMA_V3).await.map_err(&err)?;
            }
            if found < PG_SCHEMA_VERSION {
                tx.execute("DELETE FROM rollwatch_schema", &[])
                    .await
                    .map_err(&err)?;
                tx.execute(
                    "INSERT INTO rollwatch_schema (version) VALUES ($1)",
                    &[&PG_SCHEMA_VERSION],
                )
                .await
                .map_err(&err)?;
            }
            // Notes an older build marked done instead of deleting (no version step:
            // the statement is idempotent and finds nothing once they are gone).
            tx.execute("DELETE FROM outbox WHERE done_ms IS NOT NULL", &[])
                .await
                .map_err(&err)?;
            tx.commit().await.map_err(&err)
        })
    }

    /// A round trip to the database (`SELECT 1`).
    pub fn ping(&self) -> Result<(), StoreError> {
        let url = self.url.clone();
        self.call("reach the database", move |c| async move {
            c.simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(pg_err(&url, "reach the database"))
        })
    }
}

fn pg_err(url: &str, what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let url = url.to_string();
    move |e| StoreError::Pg {
        url: url.clone(),
        what,
        reason: pgtls::describe(&e).0,
    }
}

/// A connection that could not be had: `PgRefused` when no retry can fix it (a
/// certificate, TLS setting or login the server refuses), else `Pg`.
fn pool_err(url: &str, what: &'static str, e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    let (reason, permanent) = match &e {
        PoolError::Backend(e) => pgtls::describe(e),
        PoolError::Timeout(_) => ("no connection within the pool's timeout".to_string(), false),
        other => (other.to_string(), false),
    };
    let reason = format!("cannot connect: {reason}");
    let url = url.to_string();
    if permanent {
        StoreError::PgRefused { url, what, reason }
    } else {
        StoreError::Pg { url, what, reason }
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

const WATCH_COLS: &str =
    "id, rules, rules_text, vars, duration_ms, created_ms, state, outcome, exit_code, detail, finished_ms";

fn watch_of(r: &tokio_postgres::Row) -> Result<WatchRecord, StoreError> {
    let id: String = r.get(0);
    let corrupt = |what, reason: String| StoreError::Corrupt {
        what,
        id: id.clone(),
        reason,
    };
    let vars: String = r.get(3);
    let state: String = r.get(6);
    let exit_code: Option<i32> = r.get(8);
    Ok(WatchRecord {
        def: NewWatch {
            id: id.clone(),
            rules: r.get(1),
            rules_text: r.get(2),
            vars: serde_json::from_str(&vars).map_err(|e| corrupt("vars", e.to_string()))?,
            duration_ms: r.get(4),
            created_ms: r.get(5),
        },
        state: WatchState::parse(&state).ok_or_else(|| corrupt("state", state.clone()))?,
        outcome: r.get(7),
        exit_code: exit_code.map(|c| c.clamp(0, 255) as u8),
        detail: r.get(9),
        finished_ms: r.get(10),
    })
}

fn phase_str(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "pending",
        Phase::Firing => "firing",
    }
}

fn labels_json(l: &Labels) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "{}".into())
}

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
            &labels_json(&r.labels),
            &phase_str(r.phase),
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
enum NotedOwned {
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
    fn of(n: &Noted<'_>) -> NotedOwned {
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
    let argv = serde_json::to_string(&a.argv).unwrap_or_else(|_| "[]".into());
    let env = serde_json::to_string(&a.env).unwrap_or_else(|_| "[]".into());
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

/// Locks the lease row and checks that `holder` holds it with `token`, unexpired on
/// the database's clock at this moment (`clock_timestamp()`, not the transaction's
/// start). The row lock makes a takeover wait for this claim's commit, and a claim
/// that comes after a takeover see the new holder.
async fn check_fence(
    c: &impl deadpool_postgres::GenericClient,
    url: &str,
    id: &str,
    holder: &str,
    token: i64,
    what: String,
) -> Result<(), StoreError> {
    let held = c
        .query_opt(
            "SELECT 1 FROM leases WHERE watch_id = $1 AND holder = $2 AND token = $3
                 AND expires_at > clock_timestamp() FOR UPDATE",
            &[&id, &holder, &token],
        )
        .await
        .map_err(pg_err(url, "check the watch's lease"))?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced {
            what,
            id: id.to_string(),
            token,
        }),
    }
}

fn leases_of(rows: Vec<tokio_postgres::Row>) -> Vec<Lease> {
    rows.iter()
        .map(|r| Lease {
            watch: r.get(0),
            token: r.get(1),
        })
        .collect()
}

impl PgStore {
    async fn claim_in(
        mut c: deadpool_postgres::Object,
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

    async fn rerun_in(
        mut c: deadpool_postgres::Object,
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
                &[
                    &old,
                    &"was running when the agent stopped; run again (idempotent)",
                    &a.at_ms,
                ],
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
}

impl Store for PgStore {
    fn create(&self, w: &NewWatch) -> Result<Created, StoreError> {
        let (url, w) = (self.url.clone(), w.clone());
        self.call("store a watch", move |c| async move {
            let err = pg_err(&url, "store a watch");
            let vars = serde_json::to_string(&w.vars).unwrap_or_else(|_| "{}".into());
            // One statement: of two agents creating one id at once, one inserts and
            // the other finds it.
            let n = c
                .execute(
                    "INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
                     VALUES ($1, $2, $3, $4, $5, $6, 'running') ON CONFLICT (id) DO NOTHING",
                    &[&w.id, &w.rules, &w.rules_text, &vars, &w.duration_ms, &w.created_ms],
                )
                .await
                .map_err(&err)?;
            if n == 1 {
                return Ok(Created::New(WatchRecord {
                    def: w,
                    state: WatchState::Running,
                    outcome: None,
                    exit_code: None,
                    detail: None,
                    finished_ms: None,
                }));
            }
            let row = c
                .query_one(
                    &format!("SELECT {WATCH_COLS} FROM watches WHERE id = $1"),
                    &[&w.id],
                )
                .await
                .map_err(&err)?;
            Ok(Created::Existing(watch_of(&row)?))
        })
    }

    fn get(&self, id: &str) -> Result<Option<WatchRecord>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read a watch", move |c| async move {
            let row = c
                .query_opt(
                    &format!("SELECT {WATCH_COLS} FROM watches WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(pg_err(&url, "read a watch"))?;
            row.as_ref().map(watch_of).transpose()
        })
    }

    fn list(&self, state: Option<WatchState>) -> Result<Vec<WatchRecord>, StoreError> {
        let url = self.url.clone();
        let state = state.map(|s| s.as_str().to_string());
        self.call("list watches", move |c| async move {
            let rows = c
                .query(
                    &format!("SELECT {WATCH_COLS} FROM watches WHERE $1::text IS NULL OR state = $1 ORDER BY seq"),
                    &[&state],
                )
                .await
                .map_err(pg_err(&url, "list watches"))?;
            rows.iter().map(watch_of).collect()
        })
    }

    fn count_by_state(&self) -> Result<Vec<(WatchState, i64)>, StoreError> {
        let url = self.url.clone();
        self.call("count watches", move |c| async move {
            let rows = c
                .query("SELECT state, count(*) FROM watches GROUP BY state", &[])
                .await
                .map_err(pg_err(&url, "count watches"))?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let s: String = r.get(0);
                    WatchState::parse(&s).map(|s| (s, r.get::<_, i64>(1)))
                })
                .collect())
        })
    }

    fn clear_series(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        labels: &Labels,
    ) -> Result<(), StoreError> {
        let (url, id, fence, rule, labels) = (
            self.url.clone(),
            id.to_string(),
            fence.clone(),
            rule.to_string(),
            labels_json(labels),
        );
        self.call("clear a series' breach state", move |mut c| async move {
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
        })
    }

    fn series(&self, id: &str) -> Result<Vec<SeriesRow>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read breach state", move |c| async move {
            let rows = c
                .query(
                    "SELECT rule, labels, phase, since_ms, last_value FROM series WHERE watch_id = $1 ORDER BY rule, labels",
                    &[&id],
                )
                .await
                .map_err(pg_err(&url, "read breach state"))?;
            let corrupt = |reason: String| StoreError::Corrupt {
                what: "series",
                id: id.clone(),
                reason,
            };
            let mut out = Vec::new();
            for r in rows {
                let labels: String = r.get(1);
                let phase: String = r.get(2);
                out.push(SeriesRow {
                    rule: r.get(0),
                    labels: serde_json::from_str(&labels).map_err(|e| corrupt(e.to_string()))?,
                    phase: match phase.as_str() {
                        "pending" => Phase::Pending,
                        "firing" => Phase::Firing,
                        other => return Err(corrupt(format!("phase {other:?}"))),
                    },
                    since_ms: r.get(3),
                    last_value: r.get(4),
                });
            }
            Ok(out)
        })
    }

    fn save_polls(&self, holder: &str, polls: &[PollMark]) -> Result<Vec<String>, StoreError> {
        if polls.is_empty() {
            return Ok(Vec::new());
        }
        let (url, holder, polls) = (self.url.clone(), holder.to_string(), polls.to_vec());
        self.call("record last polls", move |c| async move {
            // One statement for the whole batch (arrays unnested), so that a flush of
            // thousands of rules is one round trip; fenced in it: only the marks of
            // watches whose lease `holder` holds (unexpired, with the mark's token,
            // the lease rows locked against a takeover until the commit) are written.
            let ids: Vec<&str> = polls.iter().map(|p| p.id.as_str()).collect();
            let rules: Vec<&str> = polls.iter().map(|p| p.rule.as_str()).collect();
            let at: Vec<i64> = polls.iter().map(|p| p.at_ms).collect();
            let ok: Vec<bool> = polls.iter().map(|p| p.ok).collect();
            let data: Vec<bool> = polls.iter().map(|p| p.data).collect();
            let tokens: Vec<i64> = polls.iter().map(|p| p.token).collect();
            let windows: Vec<Option<String>> =
                polls.iter().map(|p| super::windows_json(&p.windows)).collect();
            let rows = c
                .query(
                    "WITH held AS (
                         SELECT watch_id, token FROM leases
                         WHERE holder = $7 AND watch_id = ANY($1::text[]) AND expires_at > clock_timestamp()
                         FOR SHARE
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
            let written: std::collections::BTreeSet<String> =
                rows.iter().map(|r| r.get(0)).collect();
            let refused: std::collections::BTreeSet<String> = polls
                .iter()
                .filter(|p| !written.contains(&p.id))
                .map(|p| p.id.clone())
                .collect();
            Ok(refused.into_iter().collect())
        })
    }

    fn breach_windows(&self, id: &str) -> Result<BTreeMap<String, Windows>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read breach windows", move |c| async move {
            let rows = c
                .query(
                    "SELECT rule, windows FROM polls WHERE watch_id = $1 AND windows IS NOT NULL",
                    &[&id],
                )
                .await
                .map_err(pg_err(&url, "read breach windows"))?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let text: String = r.get(1);
                    Some((r.get(0), super::windows_parse(&text)?))
                })
                .collect())
        })
    }

    fn polls(&self, id: &str) -> Result<BTreeMap<String, PollState>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read last polls", move |c| async move {
            let rows = c
                .query(
                    "SELECT rule, last_ms, last_ok, ever_ok, ever_data FROM polls WHERE watch_id = $1",
                    &[&id],
                )
                .await
                .map_err(pg_err(&url, "read last polls"))?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        PollState {
                            last_ms: r.get(1),
                            last_ok: r.get(2),
                            ever_ok: r.get(3),
                            ever_data: r.get(4),
                        },
                    )
                })
                .collect())
        })
    }

    fn claim_action(
        &self,
        id: &str,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        let (url, id, a, fired) = (
            self.url.clone(),
            id.to_string(),
            action.clone(),
            fired.to_vec(),
        );
        self.call("claim an action", move |c| {
            PgStore::claim_in(c, url, id, None, a, fired)
        })
    }

    fn claim_rerun(&self, id: &str, old: i64, action: &NewAction) -> Result<i64, StoreError> {
        let (url, id, a) = (self.url.clone(), id.to_string(), action.clone());
        self.call("claim a re-run", move |c| {
            PgStore::rerun_in(c, url, id, None, old, a)
        })
    }

    fn action_spawned(&self, action: i64, p: &ProcessId) -> Result<(), StoreError> {
        let (url, p) = (self.url.clone(), p.clone());
        self.call("record an action's process", move |c| async move {
            c.execute(
                "UPDATE actions SET pgid = $2, start_ticks = $3, boot_id = $4 WHERE id = $1",
                &[&action, &p.pgid, &p.start_ticks, &p.boot_id],
            )
            .await
            .map(|_| ())
            .map_err(pg_err(&url, "record an action's process"))
        })
    }

    fn actions(&self, id: &str) -> Result<Vec<ActionRow>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read actions", move |c| async move {
            let rows = c
                .query(
                    "SELECT id, kind, rule, argv, state, result, succeeded, started_ms, finished_ms, rerun_of,
                            env, pgid, start_ticks, boot_id, fencing_token
                     FROM actions WHERE watch_id = $1 ORDER BY id",
                    &[&id],
                )
                .await
                .map_err(pg_err(&url, "read actions"))?;
            let corrupt = |reason: String| StoreError::Corrupt {
                what: "action",
                id: id.clone(),
                reason,
            };
            let mut out = Vec::new();
            for r in rows {
                let argv: String = r.get(3);
                let state: String = r.get(4);
                let env: String = r.get(10);
                out.push(ActionRow {
                    id: r.get(0),
                    kind: r.get(1),
                    rule: r.get(2),
                    argv: serde_json::from_str(&argv).map_err(|e| corrupt(e.to_string()))?,
                    state: ActionState::parse(&state).ok_or_else(|| corrupt(state.clone()))?,
                    result: r.get(5),
                    succeeded: r.get(6),
                    started_ms: r.get(7),
                    finished_ms: r.get(8),
                    rerun_of: r.get(9),
                    env: serde_json::from_str(&env).map_err(|e| corrupt(e.to_string()))?,
                    process: r.get::<_, Option<i64>>(11).map(|pgid| ProcessId {
                        pgid,
                        start_ticks: r.get(12),
                        boot_id: r.get(13),
                    }),
                    token: r.get(14),
                });
            }
            Ok(out)
        })
    }

    fn put_baselines(
        &self,
        id: &str,
        fence: &Fence,
        rule: &str,
        values: &[(Labels, f64)],
    ) -> Result<(), StoreError> {
        let (url, id, fence, rule) = (
            self.url.clone(),
            id.to_string(),
            fence.clone(),
            rule.to_string(),
        );
        let rows: Vec<(String, f64)> = values
            .iter()
            .map(|(l, v)| (serde_json::to_string(l).unwrap_or_else(|_| "{}".into()), *v))
            .collect();
        self.call("store a baseline", move |mut c| async move {
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
        })
    }

    fn baselines(&self, id: &str) -> Result<BTreeMap<String, Vec<(Labels, f64)>>, StoreError> {
        let (url, id) = (self.url.clone(), id.to_string());
        self.call("read baselines", move |c| async move {
            let rows = c
                .query(
                    "SELECT rule, labels, value FROM baselines WHERE watch_id = $1 ORDER BY rule, labels",
                    &[&id],
                )
                .await
                .map_err(pg_err(&url, "read baselines"))?;
            let mut out: BTreeMap<String, Vec<(Labels, f64)>> = BTreeMap::new();
            for r in &rows {
                let entry = out.entry(r.get::<_, String>(0)).or_default();
                let (labels, value): (String, Option<f64>) = (r.get(1), r.get(2));
                if let (Some(v), Ok(l)) = (value, serde_json::from_str::<Labels>(&labels)) {
                    entry.push((l, v));
                }
            }
            Ok(out)
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn clock_ms(&self) -> Result<i64, StoreError> {
        let url = self.url.clone();
        self.call("read the database's clock", move |c| async move {
            let r = c
                .query_one(
                    "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                    &[],
                )
                .await
                .map_err(pg_err(&url, "read the database's clock"))?;
            Ok(r.get(0))
        })
    }

    fn heartbeat(&self, agent: &str, ttl: Duration) -> Result<usize, StoreError> {
        let (url, agent) = (self.url.clone(), agent.to_string());
        self.call("record the agent's heartbeat", move |c| async move {
            let err = pg_err(&url, "record the agent's heartbeat");
            c.execute(
                "INSERT INTO agents (id, seen_at) VALUES ($1, clock_timestamp())
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                &[&agent],
            )
            .await
            .map_err(&err)?;
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM agents WHERE seen_at > clock_timestamp() - $1::bigint * interval '1 millisecond'",
                    &[&ms(ttl)],
                )
                .await
                .map_err(&err)?
                .get(0);
            Ok(n.max(1) as usize)
        })
    }

    fn acquire_lease(
        &self,
        id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let (url, id, holder) = (self.url.clone(), id.to_string(), holder.to_string());
        self.call("take a watch's lease", move |c| async move {
            let row = c
                .query_opt(
                    "INSERT INTO leases AS l (watch_id, holder, expires_at, token)
                     VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond', 1)
                     ON CONFLICT (watch_id) DO UPDATE SET holder = excluded.holder,
                         expires_at = excluded.expires_at, token = l.token + 1
                     WHERE l.expires_at <= clock_timestamp()
                     RETURNING watch_id, token",
                    &[&id, &holder, &ms(ttl)],
                )
                .await
                .map_err(pg_err(&url, "take a watch's lease"))?;
            Ok(row.map(|r| Lease {
                watch: r.get(0),
                token: r.get(1),
            }))
        })
    }

    fn renew_leases(
        &self,
        holder: &str,
        ids: &[String],
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (url, holder, ids) = (self.url.clone(), holder.to_string(), ids.to_vec());
        self.call("renew leases", move |c| async move {
            let rows = c
                .query(
                    "UPDATE leases SET expires_at = clock_timestamp() + $2::bigint * interval '1 millisecond'
                     WHERE holder = $1 AND watch_id = ANY($3) AND expires_at > clock_timestamp()
                     RETURNING watch_id, token",
                    &[&holder, &ms(ttl), &ids],
                )
                .await
                .map_err(pg_err(&url, "renew leases"))?;
            Ok(leases_of(rows))
        })
    }

    fn adopt_leases(
        &self,
        holder: &str,
        ttl: Duration,
        max: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (url, holder) = (self.url.clone(), holder.to_string());
        let max = max.min(i64::MAX as usize) as i64;
        self.call("adopt expired leases", move |c| async move {
            // The candidates' watch rows are locked (SKIP LOCKED: another agent's
            // adoption skips them); the upsert re-checks the expiry on the row as it
            // is at that moment, so a lease renewed or taken meanwhile is left alone.
            let rows = c
                .query(
                    "WITH cand AS (
                         SELECT w.id, w.seq FROM watches w LEFT JOIN leases l ON l.watch_id = w.id
                         WHERE w.state = 'running' AND (l.watch_id IS NULL OR l.expires_at <= clock_timestamp())
                         ORDER BY w.seq LIMIT $3
                         FOR UPDATE OF w SKIP LOCKED
                     )
                     INSERT INTO leases AS l (watch_id, holder, expires_at, token)
                     SELECT id, $1, clock_timestamp() + $2::bigint * interval '1 millisecond', 1 FROM cand ORDER BY seq
                     ON CONFLICT (watch_id) DO UPDATE SET holder = excluded.holder,
                         expires_at = excluded.expires_at, token = l.token + 1
                     WHERE l.expires_at <= clock_timestamp()
                     RETURNING watch_id, token",
                    &[&holder, &ms(ttl), &max],
                )
                .await
                .map_err(pg_err(&url, "adopt expired leases"))?;
            Ok(leases_of(rows))
        })
    }

    fn release_lease(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        let (url, id, holder) = (self.url.clone(), id.to_string(), holder.to_string());
        self.call("release a lease", move |c| async move {
            c.execute(
                "DELETE FROM leases WHERE watch_id = $1 AND holder = $2",
                &[&id, &holder],
            )
            .await
            .map(|_| ())
            .map_err(pg_err(&url, "release a lease"))
        })
    }

    fn claim_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        action: &NewAction,
        fired: &[SeriesRow],
    ) -> Result<i64, StoreError> {
        let (url, id, a, fired) = (
            self.url.clone(),
            id.to_string(),
            action.clone(),
            fired.to_vec(),
        );
        let fence = Some((holder.to_string(), token));
        self.call("claim an action", move |c| {
            PgStore::claim_in(c, url, id, fence, a, fired)
        })
    }

    fn claim_rerun_fenced(
        &self,
        id: &str,
        holder: &str,
        token: i64,
        old: i64,
        action: &NewAction,
    ) -> Result<i64, StoreError> {
        let (url, id, a) = (self.url.clone(), id.to_string(), action.clone());
        let fence = Some((holder.to_string(), token));
        self.call("claim a re-run", move |c| {
            PgStore::rerun_in(c, url, id, fence, old, a)
        })
    }

    fn write_noted(
        &self,
        id: &str,
        fence: &Fence,
        change: Noted<'_>,
        notes: &[NewNote],
    ) -> Result<(), StoreError> {
        let (what, doing) = (change.what(), change.doing());
        let (url, id, fence, change, notes) = (
            self.url.clone(),
            id.to_string(),
            fence.clone(),
            NotedOwned::of(&change),
            notes.to_vec(),
        );
        self.call(doing, move |mut c| async move {
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
        })
    }

    fn outbox_due(
        &self,
        holder: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<NoteRow>, StoreError> {
        let (url, holder, lease, max) =
            (self.url.clone(), holder.to_string(), ms(lease), max as i64);
        self.call("take notifications", move |mut c| async move {
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
        })
    }

    fn outbox_mark(&self, note: i64, mark: NoteMark<'_>) -> Result<(), StoreError> {
        let url = self.url.clone();
        let (done, attempts, after) = match mark {
            NoteMark::Done { .. } => (true, 0, 0),
            NoteMark::Retry { attempts, after } => (false, attempts, ms(after)),
        };
        self.call("record a notification's delivery", move |c| async move {
            let r = match done {
                // Done: deleted, body and all (the outbox stays as small as what is
                // pending; the log says what became of it). Ids are never reused.
                true => c.execute("DELETE FROM outbox WHERE id = $1", &[&note]).await,
                false => {
                    c.execute(
                        &format!("UPDATE outbox SET attempts = $2, due_ms = {DB_NOW_MS} + $3 WHERE id = $1"),
                        &[&note, &attempts, &after],
                    )
                    .await
                }
            };
            r.map(|_| ())
                .map_err(pg_err(&url, "record a notification's delivery"))
        })
    }
}
