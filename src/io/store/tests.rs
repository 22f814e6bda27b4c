use super::*;
use crate::core::eval::{Labels, Phase};
use rusqlite::Connection;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, s)
}

fn new_action(kind: &str, at_ms: i64) -> NewAction {
    NewAction {
        kind: kind.into(),
        rule: "r".into(),
        argv: vec!["true".into()],
        env: vec![("ROLLWATCH_RULE".into(), "r".into())],
        at_ms,
    }
}

/// The one agent takes watch `id`'s lease: the fence of its writes.
fn held(s: &SqliteStore, id: &str) -> Fence {
    let l = s
        .acquire_lease(id, "me", std::time::Duration::from_secs(15))
        .unwrap()
        .unwrap();
    Fence {
        holder: "me".into(),
        token: l.token,
    }
}

fn new_watch(id: &str) -> NewWatch {
    NewWatch {
        id: id.into(),
        rules: "checkout".into(),
        rules_text: "watch: {}".into(),
        vars: [("service".to_string(), "checkout".to_string())].into(),
        duration_ms: 60_000,
        created_ms: 1_000,
        key: None,
    }
}

#[test]
fn create_is_idempotent_by_id() {
    let (_d, s) = store();
    assert!(matches!(
        s.create(&new_watch("a")).unwrap(),
        Created::New(_)
    ));
    match s.create(&new_watch("a")).unwrap() {
        Created::Existing(w) => assert_eq!(w.def, new_watch("a")),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.list(None).unwrap().len(), 1);
}

#[test]
fn a_batch_is_stored_by_one_commit_that_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let batch: Vec<NewWatch> = (0..300).map(|i| new_watch(&format!("w{i}"))).collect();
    {
        let s = SqliteStore::open(&path).unwrap();
        let wal = || std::fs::metadata(dir.path().join("state.db-wal")).map_or(0, |m| m.len());
        let wal_before = wal();
        match s.create_many(&batch).unwrap() {
            CreatedMany::Stored(c) => assert_eq!(c.len(), 300),
            other => panic!("{other:?}"),
        }
        // One commit: the WAL grew by the pages the rows fill, each written once (300
        // transactions would write the table's last page ~300 times: over 1 MB).
        let grew = wal() - wal_before;
        assert!(grew < 256 * 1024, "the WAL grew by {grew} bytes");
    }
    let s = SqliteStore::open(&path).unwrap();
    let ids: Vec<String> = s
        .list(None)
        .unwrap()
        .into_iter()
        .map(|w| w.def.id)
        .collect();
    assert_eq!(ids, batch.iter().map(|w| w.id.clone()).collect::<Vec<_>>());
}

#[test]
fn a_conflict_anywhere_in_a_batch_stores_none_of_it() {
    let (_d, s) = store();
    s.create(&new_watch("a")).unwrap();
    let mut other = new_watch("a");
    other.vars.insert("service".into(), "payments".into());
    let batch = [new_watch("b"), other, new_watch("c")];
    match s.create_many(&batch).unwrap() {
        CreatedMany::Conflicts(c) => assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), [1]),
        other => panic!("{other:?}"),
    }
    assert!(s.get("b").unwrap().is_none());
    assert_eq!(s.list(None).unwrap().len(), 1);
}

#[test]
fn series_keep_since_when_they_fire_and_go_when_resolved() {
    let (_d, s) = store();
    s.create(&new_watch("a")).unwrap();
    let f = held(&s, "a");
    let labels: Labels = [("pod".to_string(), "p1".to_string())].into();
    let mut row = SeriesRow {
        rule: "r".into(),
        labels: labels.clone(),
        phase: Phase::Pending,
        since_ms: 5_000,
        last_value: Some(0.9),
    };
    s.put_series("a", &f, &row).unwrap();
    row.phase = Phase::Firing;
    row.since_ms = 9_999;
    s.put_series("a", &f, &row).unwrap();
    let got = s.series("a").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].phase, Phase::Firing);
    assert_eq!(got[0].since_ms, 5_000, "firing keeps the original since");
    s.clear_series("a", &f, "r", &labels).unwrap();
    assert!(s.series("a").unwrap().is_empty());
}

#[test]
fn actions_and_endings_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create(&new_watch("a")).unwrap();
        held(&s, "a");
        s.claim_action("a", &new_action("rollback", 7), &[])
            .unwrap();
        let mark = |at_ms, ok, data| PollMark {
            id: "a".into(),
            rule: "r".into(),
            token: 1,
            at_ms,
            ok,
            data,
            windows: None,
        };
        s.save_polls("me", &[mark(40, true, true)]).unwrap();
        s.save_polls("me", &[mark(42, false, false)]).unwrap();
        s.save_polls("me", &[mark(41, true, false)]).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let actions = s.actions("a").unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].state, ActionState::Started);
    assert_eq!(actions[0].argv, vec!["true".to_string()]);
    assert_eq!(
        s.polls("a").unwrap().get("r"),
        Some(&PollState {
            last_ms: 42,
            last_ok: false,
            ever_ok: true,
            ever_data: true,
        }),
        "the last poll never goes back; what was ever seen stays seen"
    );
    let f = held(&s, "a");
    s.finish(
        "a",
        &f,
        &Ending {
            state: WatchState::Finished,
            outcome: "rolled_back".into(),
            exit_code: 1,
            detail: "x".into(),
            at_ms: 9,
        },
    )
    .unwrap();
    assert!(s.list(Some(WatchState::Running)).unwrap().is_empty());
    assert_eq!(s.get("a").unwrap().unwrap().exit_code, Some(1));
}

#[test]
fn ending_an_action_can_end_its_watch_in_the_same_transaction() {
    let (_d, s) = store();
    s.create(&new_watch("a")).unwrap();
    let f = held(&s, "a");
    let id = s
        .claim_action("a", &new_action("rollback", 7), &[])
        .unwrap();
    s.action_spawned(
        id,
        &ProcessId {
            pgid: 4242,
            start_ticks: Some(99),
            boot_id: Some("b".into()),
        },
    )
    .unwrap();
    let ending = Ending {
        state: WatchState::Finished,
        outcome: "rollback_unknown".into(),
        exit_code: 3,
        detail: "x".into(),
        at_ms: 9,
    };
    let end = ActionEnd {
        state: ActionState::Unknown,
        result: "unknown",
        succeeded: None,
        at_ms: 9,
    };
    s.end_action("a", &f, id, &end, Some(&ending)).unwrap();
    let w = s.get("a").unwrap().unwrap();
    assert_eq!(w.state, WatchState::Finished);
    assert_eq!(w.outcome.as_deref(), Some("rollback_unknown"));
    let a = &s.actions("a").unwrap()[0];
    assert_eq!(a.state, ActionState::Unknown);
    assert_eq!(a.process.as_ref().map(|p| p.pgid), Some(4242));
}

/// The first release's schema, with a watch in it, as an agent left it.
const V0: &str = "
    CREATE TABLE watches (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        rules TEXT NOT NULL, rules_text TEXT NOT NULL, vars TEXT NOT NULL,
        duration_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, state TEXT NOT NULL,
        outcome TEXT, exit_code INTEGER, detail TEXT, finished_ms INTEGER);
    CREATE TABLE actions (id INTEGER PRIMARY KEY AUTOINCREMENT, watch_id TEXT NOT NULL,
        kind TEXT NOT NULL, rule TEXT NOT NULL, argv TEXT NOT NULL, state TEXT NOT NULL,
        result TEXT, succeeded INTEGER, started_ms INTEGER NOT NULL, finished_ms INTEGER,
        rerun_of INTEGER);
    INSERT INTO watches (id, rules, rules_text, vars, duration_ms, created_ms, state)
        VALUES ('old', 'checkout', 'watch: {}', '{}', 60000, 1, 'running');
    INSERT INTO actions (watch_id, kind, rule, argv, state, started_ms)
        VALUES ('old', 'rollback', 'r', '[\"true\"]', 'started', 5);
";

#[test]
fn an_unversioned_state_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Connection::open(&path).unwrap().execute_batch(V0).unwrap();
    let s = SqliteStore::open(&path).unwrap();
    let a = s.actions("old").unwrap();
    assert_eq!(a.len(), 1, "the old rows are kept");
    assert_eq!(a[0].state, ActionState::Started);
    assert!(a[0].env.is_empty());
    assert!(matches!(
        s.claim_action("old", &new_action("rollback", 9), &[]),
        Err(StoreError::AlreadyClaimed { .. })
    ));
    drop(s);
    let v: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    SqliteStore::open(&path).expect("opens again at the current version");
}

#[test]
fn an_old_state_file_with_the_old_double_rollback_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(V0).unwrap();
    conn.execute_batch(
        "UPDATE actions SET state = 'finished', succeeded = 1;
         INSERT INTO actions (watch_id, kind, rule, argv, state, succeeded, started_ms)
             VALUES ('old', 'rollback', 'r', '[]', 'finished', 1, 9);",
    )
    .unwrap();
    drop(conn);
    let s = SqliteStore::open(&path).expect("the upgrade keeps both rows");
    let a = s.actions("old").unwrap();
    assert_eq!(a.len(), 2);
    assert!(matches!(
        s.claim_action("old", &new_action("rollback", 10), &[]),
        Err(StoreError::AlreadyClaimed { .. })
    ));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn a_before_baseline_is_stored_once_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let l = |pod: &str| -> Labels { [("pod".to_string(), pod.to_string())].into() };
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create(&new_watch("a")).unwrap();
        let f = held(&s, "a");
        assert!(s.baselines("a").unwrap().is_empty(), "not taken yet");
        s.put_baselines("a", &f, "orders", &[(l("p1"), 120.5), (l("p2"), 0.0)])
            .unwrap();
        s.put_baselines("a", &f, "empty", &[]).unwrap();
        // A second put (a restart that took it again) never shifts the stored one.
        s.put_baselines("a", &f, "orders", &[(l("p1"), 999.0)])
            .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let b = s.baselines("a").unwrap();
    assert_eq!(b["orders"], vec![(l("p1"), 120.5), (l("p2"), 0.0)]);
    assert_eq!(
        b["empty"],
        vec![],
        "taken without series is not `not taken`"
    );
    assert!(s.baselines("other").unwrap().is_empty());
}

#[test]
fn a_version_5_state_file_gains_orders_and_keys_and_keeps_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create(&new_watch("a")).unwrap();
    }
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE orders; DROP INDEX watches_key; ALTER TABLE watches DROP COLUMN key; ALTER TABLE watches DROP COLUMN after_watch; PRAGMA user_version = 5;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get("a").unwrap().unwrap().def.key, None);
    let o = crate::io::store::NewOrder {
        kind: "hold".into(),
        duration_ms: Some(60_000),
        who: "alice".into(),
        reason: "INC-1".into(),
        at_ms: 5,
    };
    assert!(matches!(
        s.order("a", &o).unwrap(),
        crate::io::store::Ordered::Queued(_)
    ));
    assert_eq!(s.orders("a").unwrap().len(), 1);
}

#[test]
fn a_version_2_state_file_gains_the_baselines_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE orders; DROP INDEX watches_key; ALTER TABLE watches DROP COLUMN key; ALTER TABLE watches DROP COLUMN after_watch; DROP TABLE baselines; ALTER TABLE polls DROP COLUMN windows; PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    s.create(&new_watch("a")).unwrap();
    let f = held(&s, "a");
    s.put_baselines("a", &f, "r", &[]).unwrap();
    assert!(s.baselines("a").unwrap().contains_key("r"));
}

#[test]
fn every_write_of_an_owner_is_fenced() {
    let (_d, s) = store();
    s.create(&new_watch("a")).unwrap();
    // Its creator gave it up (a creation holds it from its commit).
    s.release_lease("a", "me").unwrap();
    let stale = Fence {
        holder: "me".into(),
        token: 1,
    };
    let fenced = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Fenced { .. }));
    let labels = Labels::new();
    let row = SeriesRow {
        rule: "r".into(),
        labels: labels.clone(),
        phase: Phase::Pending,
        since_ms: 1,
        last_value: None,
    };
    let ending = Ending {
        state: WatchState::Finished,
        outcome: "healthy".into(),
        exit_code: 0,
        detail: "x".into(),
        at_ms: 9,
    };
    let end = ActionEnd {
        state: ActionState::Finished,
        result: "succeeded",
        succeeded: Some(true),
        at_ms: 9,
    };
    // Nobody holds the lease: every write is refused, and nothing is written.
    assert!(fenced(s.put_series("a", &stale, &row)));
    assert!(fenced(s.clear_series("a", &stale, "r", &labels)));
    assert!(fenced(s.finish("a", &stale, &ending)));
    assert!(fenced(s.end_action("a", &stale, 1, &end, Some(&ending))));
    assert!(fenced(s.put_baselines("a", &stale, "r", &[])));
    let mark = PollMark {
        id: "a".into(),
        token: 1,
        rule: "r".into(),
        at_ms: 5,
        ok: true,
        data: true,
        windows: None,
    };
    assert_eq!(
        s.save_polls("me", std::slice::from_ref(&mark)).unwrap(),
        ["a"]
    );
    assert!(s.series("a").unwrap().is_empty());
    assert!(s.polls("a").unwrap().is_empty());
    assert!(s.baselines("a").unwrap().is_empty());
    assert_eq!(s.get("a").unwrap().unwrap().state, WatchState::Running);
    // Held: the same writes go through.
    let f = held(&s, "a");
    assert_eq!(f, stale);
    s.put_series("a", &f, &row).unwrap();
    assert!(s.save_polls("me", &[mark]).unwrap().is_empty());
    s.finish("a", &f, &ending).unwrap();
}

#[test]
fn a_state_file_before_version_5_gains_the_breach_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let mark = |windows| PollMark {
        id: "a".into(),
        token: 1,
        rule: "r".into(),
        at_ms: 40,
        ok: true,
        data: true,
        windows,
    };
    {
        let c = Connection::open(&path).unwrap();
        // Version 4 (another change's steps are then not run again): only step 5 is.
        c.execute_batch("DROP TABLE orders; DROP INDEX watches_key; ALTER TABLE watches DROP COLUMN key; ALTER TABLE watches DROP COLUMN after_watch; ALTER TABLE polls DROP COLUMN windows; PRAGMA user_version = 4;")
            .unwrap();
        c.execute(
            "INSERT INTO polls (watch_id, rule, last_ms, last_ok, ever_ok, ever_data) VALUES ('a', 'r', 30, 1, 1, 1)",
            [],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert!(s.breach_windows("a").unwrap().is_empty(), "none stored yet");
    let f = held(&s, "a");
    assert_eq!(f.token, 1);
    assert!(s
        .save_polls("me", &[mark(Some(vec![(Labels::new(), "11".into())]))])
        .unwrap()
        .is_empty());
    assert_eq!(
        s.breach_windows("a").unwrap()["r"],
        vec![(Labels::new(), "11".to_string())]
    );
    assert_eq!(s.polls("a").unwrap()["r"].last_ms, 40);
}

#[test]
fn a_version_6_state_file_keeps_its_last_polls_in_the_clustered_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        // Version 6's table: a rowid, and the key as an index beside it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE polls;
             CREATE TABLE polls (watch_id TEXT NOT NULL, rule TEXT NOT NULL,
                 last_ms INTEGER NOT NULL, last_ok INTEGER NOT NULL DEFAULT 0,
                 ever_ok INTEGER NOT NULL DEFAULT 0, ever_data INTEGER NOT NULL DEFAULT 0,
                 windows TEXT, PRIMARY KEY (watch_id, rule));
             INSERT INTO polls VALUES ('a', 'r', 30, 0, 1, 1, '[[{}, \"1\"]]');
             INSERT INTO polls VALUES ('a', 's', 31, 1, 1, 0, NULL);
             PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let polls = s.polls("a").unwrap();
    assert_eq!(polls.len(), 2, "{polls:?}");
    assert_eq!(
        (
            polls["r"].last_ms,
            polls["r"].last_ok,
            polls["r"].ever_ok,
            polls["r"].ever_data
        ),
        (30, false, true, true)
    );
    assert_eq!(
        (
            polls["s"].last_ms,
            polls["s"].last_ok,
            polls["s"].ever_ok,
            polls["s"].ever_data
        ),
        (31, true, true, false)
    );
    assert_eq!(
        s.breach_windows("a").unwrap()["r"],
        vec![(Labels::new(), "1".to_string())]
    );
    let f = held(&s, "a");
    let mark = PollMark {
        id: "a".into(),
        token: f.token,
        rule: "r".into(),
        at_ms: 45,
        ok: true,
        data: false,
        windows: None,
    };
    assert!(s.save_polls("me", &[mark]).unwrap().is_empty());
    let r = &s.polls("a").unwrap()["r"];
    assert_eq!(
        (r.last_ms, r.last_ok, r.ever_ok, r.ever_data),
        (45, true, true, true)
    );
    drop(s);
    let sql: String = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'polls'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
}

#[test]
fn notes_an_older_build_marked_done_are_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "INSERT INTO outbox (watch_id, channel, kind, body, created_ms, due_ms, done_ms, result)
                 VALUES ('w', 0, 'healthy', 'old output', 1, 1, 2, 'delivered');
             INSERT INTO outbox (watch_id, channel, kind, body, created_ms, due_ms)
                 VALUES ('w', 0, 'healthy', 'pending', 1, 1);",
        )
        .unwrap();
    }
    drop(SqliteStore::open(&path).unwrap());
    let c = Connection::open(&path).unwrap();
    let bodies: Vec<String> = c
        .prepare("SELECT body FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bodies, ["pending"]);
}

/// A watch created through the one agent is its own from the commit on: an adoption
/// round that runs before the creator takes the lease (a batch of 10,000 leaves a long
/// gap) finds nothing to adopt, so the watch is never started twice. Before, the
/// round adopted the new watches and the creator started them again.
#[test]
fn a_new_watch_is_never_adopted_between_its_commit_and_its_lease() {
    let (_d, s) = store();
    let ttl = std::time::Duration::from_secs(15);
    s.create(&new_watch("one")).unwrap();
    let batch: Vec<NewWatch> = (0..3).map(|i| new_watch(&format!("b{i}"))).collect();
    assert!(matches!(
        s.create_many(&batch).unwrap(),
        CreatedMany::Stored(_)
    ));
    assert_eq!(s.adopt_leases("me", ttl, 100).unwrap(), Vec::new());
    // The creator's lease is still granted, and its writes pass the fence.
    for id in ["one", "b0", "b1", "b2"] {
        let f = held(&s, id);
        assert_eq!(f.token, 1);
    }
    let ids = ["one", "b2"].map(String::from);
    assert_eq!(s.renew_leases("me", &ids, ttl).unwrap().len(), 2);
}

/// After a restart the one agent adopts every running watch (nothing is held in a new
/// process), including those created just before it stopped.
#[test]
fn a_restarted_agent_adopts_every_running_watch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        let batch: Vec<NewWatch> = (0..3).map(|i| new_watch(&format!("b{i}"))).collect();
        s.create_many(&batch).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let adopted = s
        .adopt_leases("me", std::time::Duration::from_secs(15), 100)
        .unwrap();
    assert_eq!(adopted.len(), 3);
}
