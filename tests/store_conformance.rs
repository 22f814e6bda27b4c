//! One conformance suite for the `Store` trait, run against both stores: SQLite (a
//! temporary file) and PostgreSQL (a fresh database in the harness's real cluster).
//! Then what only a shared store has: two agents, expiry on the database's clock,
//! takeovers, concurrent adoption and migration.

use crate::harness::postgres;
use rollwatch::core::eval::{Labels, Phase};
use rollwatch::io::store::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(30);

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

fn new_action(kind: &str, at_ms: i64) -> NewAction {
    NewAction {
        kind: kind.into(),
        rule: "r".into(),
        argv: vec!["true".into()],
        env: vec![("ROLLWATCH_RULE".into(), "r".into())],
        at_ms,
    }
}

fn firing(rule: &str, since_ms: i64) -> SeriesRow {
    SeriesRow {
        rule: rule.into(),
        labels: [("pod".to_string(), "p1".to_string())].into(),
        phase: Phase::Firing,
        since_ms,
        last_value: Some(0.9),
    }
}

fn ending(outcome: &str) -> Ending {
    Ending {
        state: WatchState::Finished,
        outcome: outcome.into(),
        exit_code: 1,
        detail: "x".into(),
        at_ms: 9,
    }
}

fn names(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|i| i.to_string()).collect()
}

/// Takes watch `id`'s lease for `holder`: the fence of its writes.
fn take(s: &dyn Store, id: &str, holder: &str) -> Fence {
    let l = s.acquire_lease(id, holder, TTL).unwrap().expect("free");
    Fence {
        holder: holder.into(),
        token: l.token,
    }
}

/// The contract every store keeps, on a fresh store from `make`.
fn conformance(make: &dyn Fn() -> Arc<dyn Store>) {
    // Create is idempotent by id.
    let s = make();
    assert!(matches!(
        s.create(&new_watch("a")).unwrap(),
        Created::New(_)
    ));
    match s.create(&new_watch("a")).unwrap() {
        Created::Existing(w) => assert_eq!(w.def, new_watch("a")),
        other => panic!("{other:?}"),
    }
    s.create(&new_watch("b")).unwrap();
    let ids: Vec<String> = s
        .list(None)
        .unwrap()
        .into_iter()
        .map(|w| w.def.id)
        .collect();
    assert_eq!(ids, ["a", "b"], "oldest first");
    assert_eq!(s.get("a").unwrap().unwrap().def, new_watch("a"));
    assert!(s.get("zz").unwrap().is_none());
    let (fa, fb) = (take(&*s, "a", "agent-a"), take(&*s, "b", "agent-a"));

    // Series keep `since` when they fire, and go when resolved.
    let labels: Labels = [("pod".to_string(), "p1".to_string())].into();
    let mut row = SeriesRow {
        rule: "r".into(),
        labels: labels.clone(),
        phase: Phase::Pending,
        since_ms: 5_000,
        last_value: Some(0.9),
    };
    s.put_series("a", &fa, &row).unwrap();
    row.phase = Phase::Firing;
    row.since_ms = 9_999;
    s.put_series("a", &fa, &row).unwrap();
    let got = s.series("a").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].phase, got[0].since_ms), (Phase::Firing, 5_000));
    s.clear_series("a", &fa, "r", &labels).unwrap();
    assert!(s.series("a").unwrap().is_empty());

    // The last poll never goes back; what was ever seen stays seen.
    let mark = |at_ms, ok, data| PollMark {
        id: "a".into(),
        token: fa.token,
        rule: "r".into(),
        at_ms,
        ok,
        data,
        windows: None,
    };
    s.save_polls("agent-a", &[mark(40, true, true)]).unwrap();
    s.save_polls("agent-a", &[mark(42, false, false)]).unwrap();
    s.save_polls("agent-a", &[mark(41, true, false)]).unwrap();
    assert_eq!(
        s.polls("a").unwrap().get("r"),
        Some(&PollState {
            last_ms: 42,
            last_ok: false,
            ever_ok: true,
            ever_data: true,
        })
    );

    // `breaches` windows go with the last poll: a newer one replaces them, an older
    // one never does, and a rule without `breaches` has none (issue 19, item 6).
    assert!(s.breach_windows("a").unwrap().is_empty());
    let pod = |p: &str| Labels::from([("pod".to_string(), p.to_string())]);
    let windowed = |rule: &str, at_ms, w: Vec<(Labels, String)>| PollMark {
        id: "a".into(),
        token: fa.token,
        rule: rule.into(),
        at_ms,
        ok: true,
        data: true,
        windows: Some(w),
    };
    s.save_polls(
        "agent-a",
        &[
            windowed("m", 50, vec![(pod("x"), "1".into())]),
            windowed("n", 50, vec![]),
        ],
    )
    .unwrap();
    s.save_polls(
        "agent-a",
        &[windowed(
            "m",
            60,
            vec![(pod("x"), "101".into()), (pod("y"), "1".into())],
        )],
    )
    .unwrap();
    s.save_polls(
        "agent-a",
        &[windowed("m", 55, vec![(pod("x"), "10".into())])],
    )
    .unwrap();
    let w = s.breach_windows("a").unwrap();
    assert_eq!(
        w.get("m"),
        Some(&vec![
            (pod("x"), "101".to_string()),
            (pod("y"), "1".to_string())
        ])
    );
    assert_eq!(w.get("n"), Some(&vec![]));
    assert_eq!(w.get("r"), None);
    assert!(s.breach_windows("b").unwrap().is_empty());

    // A claim records the firing series and the action together, once.
    let id = s
        .claim_action("a", &new_action("rollback", 7), &[firing("r", 5)])
        .unwrap();
    assert_eq!(s.series("a").unwrap(), vec![firing("r", 5)]);
    let actions = s.actions("a").unwrap();
    assert_eq!((actions.len(), actions[0].id), (1, id));
    assert_eq!(actions[0].state, ActionState::Started);
    assert_eq!(actions[0].env, new_action("rollback", 7).env);
    let err = s
        .claim_action("a", &new_action("rollback", 8), &[firing("other", 6)])
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyClaimed { .. }), "{err}");
    assert_eq!(s.actions("a").unwrap().len(), 1);
    assert_eq!(
        s.series("a").unwrap().len(),
        1,
        "the refused claim wrote nothing"
    );
    s.claim_action("a", &new_action("pause", 9), &[]).unwrap();

    // A re-run is claimed once and marks the original.
    let rerun = s.claim_rerun("a", id, &new_action("rollback", 10)).unwrap();
    let err = s
        .claim_rerun("a", id, &new_action("rollback", 11))
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyClaimed { .. }), "{err}");
    let rows = s.actions("a").unwrap();
    assert_eq!(rows.len(), 3, "the refused re-run wrote nothing");
    let old = rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(old.state, ActionState::Rerun);
    assert_eq!(
        rows.iter().find(|r| r.id == rerun).unwrap().rerun_of,
        Some(id)
    );
    s.action_spawned(
        rerun,
        &ProcessId {
            pgid: 42,
            start_ticks: Some(7),
            boot_id: Some("boot".into()),
        },
    )
    .unwrap();
    assert_eq!(
        s.actions("a")
            .unwrap()
            .iter()
            .find(|r| r.id == rerun)
            .unwrap()
            .process,
        Some(ProcessId {
            pgid: 42,
            start_ticks: Some(7),
            boot_id: Some("boot".into()),
        })
    );

    // Ending an action can end its watch in the same transaction.
    let end = ActionEnd {
        state: ActionState::Finished,
        result: "succeeded",
        succeeded: Some(true),
        at_ms: 12,
    };
    s.end_action("a", &fa, rerun, &end, Some(&ending("rolled_back")))
        .unwrap();
    let a = s.get("a").unwrap().unwrap();
    assert_eq!(
        (a.state, a.outcome.as_deref(), a.exit_code),
        (WatchState::Finished, Some("rolled_back"), Some(1))
    );
    assert!(
        s.polls("a").unwrap().is_empty(),
        "an ended watch keeps no polls"
    );
    let mut counts = s.count_by_state().unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(
        counts,
        [(WatchState::Finished, 1), (WatchState::Running, 1)]
    );
    s.finish("b", &fb, &ending("healthy")).unwrap();
    assert!(s.list(Some(WatchState::Running)).unwrap().is_empty());

    // Leases: whoever holds one may claim with its token, nobody else.
    let s = make();
    for id in ["w1", "w2", "w3"] {
        s.create(&new_watch(id)).unwrap();
    }
    assert!(s.heartbeat("agent-a", TTL).unwrap() >= 1);
    let l1 = s
        .acquire_lease("w1", "agent-a", TTL)
        .unwrap()
        .expect("free");
    let adopted = s.adopt_leases("agent-a", TTL, 10).unwrap();
    let adopted: BTreeSet<String> = adopted.into_iter().map(|l| l.watch).collect();
    if s.shared() {
        // Created with no lease: any agent may adopt them.
        assert_eq!(adopted, ["w2".to_string(), "w3".to_string()].into());
    } else {
        // The one agent holds what it created from the commit on: an adoption round
        // between a creation and its lease never starts the watch a second time.
        assert_eq!(adopted, BTreeSet::new());
    }
    assert!(
        s.adopt_leases("agent-a", TTL, 10).unwrap().is_empty(),
        "a held lease is not adopted again"
    );
    let renewed: BTreeSet<String> = s
        .renew_leases("agent-a", &names(&["w1", "w2", "w3"]), TTL)
        .unwrap()
        .into_iter()
        .map(|l| l.watch)
        .collect();
    assert_eq!(renewed.len(), 3, "{renewed:?}");
    // A renewal renews only the leases named (those the agent still holds).
    let renewed: Vec<String> = s
        .renew_leases("agent-a", &names(&["w1"]), TTL)
        .unwrap()
        .into_iter()
        .map(|l| l.watch)
        .collect();
    assert_eq!(renewed, ["w1"], "only the leases named are renewed");
    let wrong = s
        .claim_fenced(
            "w1",
            "agent-a",
            l1.token + 7,
            &new_action("rollback", 1),
            &[],
        )
        .unwrap_err();
    assert!(matches!(wrong, StoreError::Fenced { .. }), "{wrong}");
    assert!(
        s.actions("w1").unwrap().is_empty(),
        "a refused claim writes nothing"
    );
    let a1 = s
        .claim_fenced(
            "w1",
            "agent-a",
            l1.token,
            &new_action("rollback", 1),
            &[firing("r", 1)],
        )
        .unwrap();
    let again = s
        .claim_fenced("w1", "agent-a", l1.token, &new_action("rollback", 2), &[])
        .unwrap_err();
    assert!(
        matches!(again, StoreError::AlreadyClaimed { .. }),
        "{again}"
    );
    s.claim_rerun_fenced("w1", "agent-a", l1.token, a1, &new_action("rollback", 3))
        .unwrap();
    // A released lease is no longer held: claims with it are refused.
    s.release_lease("w2", "agent-a").unwrap();
    let released = s
        .claim_fenced("w2", "agent-a", 1, &new_action("rollback", 4), &[])
        .unwrap_err();
    assert!(matches!(released, StoreError::Fenced { .. }), "{released}");

    // Every write of an owner is fenced: with a token it does not hold, nothing is
    // written, and the record stays as it was.
    let bad = Fence {
        holder: "agent-a".into(),
        token: l1.token + 7,
    };
    let fenced = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Fenced { .. }));
    let labels: Labels = [("pod".to_string(), "p1".to_string())].into();
    let end = ActionEnd {
        state: ActionState::Finished,
        result: "succeeded",
        succeeded: Some(true),
        at_ms: 12,
    };
    let series = s.series("w1").unwrap();
    let actions = s.actions("w1").unwrap();
    assert!(fenced(s.put_series("w1", &bad, &firing("other", 3))));
    assert!(fenced(s.clear_series("w1", &bad, "r", &labels)));
    assert!(fenced(s.end_action(
        "w1",
        &bad,
        a1,
        &end,
        Some(&ending("rolled_back"))
    )));
    assert!(fenced(s.finish("w1", &bad, &ending("healthy"))));
    assert!(fenced(s.put_baselines("w1", &bad, "r", &[])));
    let mark = |token| PollMark {
        id: "w1".into(),
        token,
        rule: "r".into(),
        at_ms: 5,
        ok: true,
        data: true,
        windows: None,
    };
    assert_eq!(s.save_polls("agent-a", &[mark(bad.token)]).unwrap(), ["w1"]);
    assert_eq!(s.series("w1").unwrap(), series);
    assert_eq!(s.actions("w1").unwrap(), actions);
    assert!(s.polls("w1").unwrap().is_empty());
    assert!(s.baselines("w1").unwrap().is_empty());
    assert_eq!(s.get("w1").unwrap().unwrap().state, WatchState::Running);
    // With the lease's own fence they are written.
    let f1 = Fence {
        holder: "agent-a".into(),
        token: l1.token,
    };
    assert!(s
        .save_polls("agent-a", &[mark(l1.token)])
        .unwrap()
        .is_empty());
    s.put_baselines("w1", &f1, "r", &[]).unwrap();
    s.finish("w1", &f1, &ending("healthy")).unwrap();
    assert_eq!(s.get("w1").unwrap().unwrap().state, WatchState::Finished);
    outbox_conforms(make);
}

/// The outbox (issue 19, item 8): notes are written with their state change, taken in
/// order per (watch, channel), leased to one taker, retried, and done once.
fn outbox_conforms(make: &dyn Fn() -> Arc<dyn Store>) {
    let s = make();
    s.create(&new_watch("o")).unwrap();
    let l = s
        .acquire_lease("o", "agent-a", Duration::from_secs(60))
        .unwrap()
        .expect("a free lease");
    let f = Fence {
        holder: "agent-a".into(),
        token: l.token,
    };
    let note = |channel: i64, kind: &str| NewNote {
        channel,
        kind: kind.into(),
        body: format!("{{\"kind\":\"{kind}\"}}"),
    };
    let stale = Fence {
        holder: "agent-a".into(),
        token: l.token + 1,
    };
    assert!(
        matches!(
            s.write_noted("o", &stale, Noted::Nothing, &[note(0, "x")]),
            Err(StoreError::Fenced { .. })
        ),
        "notes are fenced like the writes they go with"
    );
    s.write_noted("o", &f, Noted::Nothing, &[note(0, "a1"), note(1, "b1")])
        .unwrap();
    s.write_noted(
        "o",
        &f,
        Noted::Finish(&ending("healthy")),
        &[note(0, "a2"), note(0, "healthy")],
    )
    .unwrap();
    let w = s.get("o").unwrap().unwrap();
    assert_eq!(
        w.outcome.as_deref(),
        Some("healthy"),
        "the change is written too"
    );
    let lease = Duration::from_secs(60);
    let kinds = |n: &[NoteRow]| n.iter().map(|n| n.kind.clone()).collect::<Vec<_>>();
    // One note per (watch, channel) at a time, oldest first.
    let first = s.outbox_due("agent-a", lease, 10).unwrap();
    assert_eq!(kinds(&first), ["a1", "b1"]);
    assert!(
        s.outbox_due("agent-a", lease, 10).unwrap().is_empty(),
        "taken notes are leased, and later ones wait for them"
    );
    if s.shared() {
        assert!(
            s.outbox_due("agent-b", lease, 10).unwrap().is_empty(),
            "nor does another agent get them"
        );
    }
    s.outbox_mark(
        first[0].id,
        NoteMark::Done {
            at_ms: 1,
            result: "delivered",
        },
    )
    .unwrap();
    s.outbox_mark(
        first[1].id,
        NoteMark::Retry {
            attempts: 1,
            after: Duration::ZERO,
        },
    )
    .unwrap();
    let next = s.outbox_due("agent-a", lease, 10).unwrap();
    assert_eq!(kinds(&next), ["b1", "a2"], "by id");
    assert_eq!(next[0].attempts, 1);
    for n in &next {
        s.outbox_mark(
            n.id,
            NoteMark::Done {
                at_ms: 2,
                result: "delivered",
            },
        )
        .unwrap();
    }
    let last = s.outbox_due("agent-a", Duration::ZERO, 10).unwrap();
    assert_eq!(kinds(&last), ["healthy"]);
    // Its lease ran out (zero) before it was marked: due again, for anyone.
    let again = s.outbox_due("agent-b", lease, 10).unwrap();
    assert_eq!(kinds(&again), ["healthy"]);
    assert_eq!(again[0].id, last[0].id);
    s.outbox_mark(
        again[0].id,
        NoteMark::Done {
            at_ms: 3,
            result: "delivered",
        },
    )
    .unwrap();
    assert!(s.outbox_due("agent-a", lease, 10).unwrap().is_empty());
}

/// Writes two notes of watch "d", delivers one (done) and leaves the other pending.
fn deliver_one_of_two_notes(s: &dyn Store) {
    s.create(&new_watch("d")).unwrap();
    let f = take(s, "d", "agent-a");
    let note = |kind: &str| NewNote {
        channel: 0,
        kind: kind.into(),
        body: format!("{{\"kind\":\"{kind}\",\"output\":\"SECRET-TAIL\"}}"),
    };
    s.write_noted("d", &f, Noted::Nothing, &[note("first"), note("second")])
        .unwrap();
    let due = s.outbox_due("agent-a", TTL, 10).unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    s.outbox_mark(
        due[0].id,
        NoteMark::Done {
            at_ms: 1,
            result: "delivered",
        },
    )
    .unwrap();
}

/// Hole 8 of review 2: the outbox holds only what is pending; a delivered note leaves
/// no body (a command's output tail) behind.
#[test]
fn sqlite_a_delivered_note_leaves_no_body_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s = SqliteStore::open(&path).unwrap();
    deliver_one_of_two_notes(&s);
    let db = rusqlite::Connection::open(&path).unwrap();
    let bodies: i64 = db
        .query_row(
            "SELECT count(*) FROM outbox WHERE body LIKE '%SECRET-TAIL%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bodies, 1, "only the pending note's body is left");
}

#[test]
fn postgres_a_delivered_note_leaves_no_body_behind() {
    let pg = postgres::shared();
    let url = pg.database();
    let s = PgStore::open(&url).unwrap();
    deliver_one_of_two_notes(&s);
    let bodies = pg.psql(
        postgres::db_of(&url),
        "SELECT count(*) FROM outbox WHERE body LIKE '%SECRET-TAIL%'",
    );
    assert_eq!(bodies, "1", "only the pending note's body is left");
}

/// `create_many`: one commit for the batch, all or nothing, in order.
fn create_many_conforms(make: &dyn Fn() -> Arc<dyn Store>) {
    let s = make();
    let other = |id: &str| NewWatch {
        vars: [("service".to_string(), "payments".to_string())].into(),
        ..new_watch(id)
    };
    let ids = |s: &dyn Store| -> Vec<String> {
        s.list(None)
            .unwrap()
            .into_iter()
            .map(|w| w.def.id)
            .collect()
    };
    s.create(&new_watch("a")).unwrap();
    let batch = [
        new_watch("b"),
        new_watch("a"),
        new_watch("c"),
        new_watch("b"),
    ];
    match s.create_many(&batch).unwrap() {
        CreatedMany::Stored(c) => {
            let kinds: Vec<(bool, String)> = c
                .iter()
                .map(|c| match c {
                    Created::New(w) => (true, w.def.id.clone()),
                    Created::Existing(w) => (false, w.def.id.clone()),
                })
                .collect();
            assert_eq!(
                kinds,
                [
                    (true, "b".to_string()),
                    (false, "a".to_string()),
                    (true, "c".to_string()),
                    (false, "b".to_string())
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ids(&*s), ["a", "b", "c"], "stored in the batch's order");
    assert_eq!(s.get("c").unwrap().unwrap().def, new_watch("c"));

    // An id stored with other vars: nothing of the batch is written.
    match s
        .create_many(&[new_watch("d"), other("a"), new_watch("e")])
        .unwrap()
    {
        CreatedMany::Conflicts(c) => {
            assert_eq!(c.len(), 1, "{c:?}");
            assert_eq!((c[0].0, &c[0].1.def), (1, &new_watch("a")));
        }
        other => panic!("{other:?}"),
    }
    // An id repeated within the batch with other vars: the same.
    match s.create_many(&[new_watch("f"), other("f")]).unwrap() {
        CreatedMany::Conflicts(c) => assert_eq!(c[0].0, 1, "{c:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ids(&*s), ["a", "b", "c"], "no part of a refused batch");

    // A large batch: every watch, in order.
    let many: Vec<NewWatch> = (0..2_000).map(|i| new_watch(&format!("m{i:04}"))).collect();
    match s.create_many(&many).unwrap() {
        CreatedMany::Stored(c) => assert!(c.iter().all(|c| matches!(c, Created::New(_)))),
        other => panic!("{other:?}"),
    }
    let all = ids(&*s);
    assert_eq!(all.len(), 2_003);
    assert_eq!(
        all[3..],
        many.iter().map(|w| w.id.clone()).collect::<Vec<_>>()[..]
    );
}

/// What an agent asks of a batch: the new watches' leases in one call
/// (`acquire_leases`), and the records of the watches an adoption took
/// (`running_among`), on both stores.
fn batch_leases_conform(make: &dyn Fn() -> Arc<dyn Store>) {
    let s = make();
    for id in ["n1", "n2", "n3", "done"] {
        s.create(&new_watch(id)).unwrap();
    }
    let f = take(&*s, "done", "agent-a");
    s.finish("done", &f, &ending("healthy")).unwrap();
    let got = s
        .acquire_leases(&names(&["n2", "n1", "n2"]), "agent-a", TTL)
        .unwrap();
    let ids: BTreeSet<String> = got.iter().map(|l| l.watch.clone()).collect();
    assert_eq!(got.len(), 2, "each id once: {got:?}");
    assert_eq!(ids, names(&["n1", "n2"]).into_iter().collect());
    // Held with the tokens returned: a claim with one is accepted.
    for l in &got {
        s.claim_fenced(
            &l.watch,
            "agent-a",
            l.token,
            &new_action("rollback", 1),
            &[],
        )
        .unwrap();
    }
    if s.shared() {
        // Another agent gets none of the held ones, and the free one.
        let other = s
            .acquire_leases(&names(&["n1", "n2", "n3"]), "agent-b", TTL)
            .unwrap();
        let other: Vec<&str> = other.iter().map(|l| l.watch.as_str()).collect();
        assert_eq!(other, ["n3"]);
    }
    assert!(s.acquire_leases(&[], "agent-a", TTL).unwrap().is_empty());
    // Only running watches, only those named, oldest first.
    let running: Vec<String> = s
        .running_among(&names(&["n2", "done", "nope", "n1"]))
        .unwrap()
        .into_iter()
        .map(|r| r.def.id)
        .collect();
    assert_eq!(running, ["n1", "n2"]);
    assert!(s.running_among(&[]).unwrap().is_empty());
}

/// What a restart or an adoption reads of many watches at once (`resume_reads`) is
/// exactly what each watch's own reads return, watch by watch: nothing of one watch
/// in another's, every row kept, an id not stored empty.
fn resume_reads_conform(make: &dyn Fn() -> Arc<dyn Store>) {
    let s = make();
    for id in ["full", "bare", "series-only"] {
        s.create(&new_watch(id)).unwrap();
    }
    let full = take(&*s, "full", "agent-a");
    let only = take(&*s, "series-only", "agent-a");
    s.claim_fenced(
        "full",
        "agent-a",
        full.token,
        &new_action("pause", 2_000),
        &[firing("r", 1_500)],
    )
    .unwrap();
    s.put_series("full", &full, &firing("q", 1_700)).unwrap();
    s.put_series("series-only", &only, &firing("r", 1_800))
        .unwrap();
    let mark = |rule: &str, windows| PollMark {
        id: "full".into(),
        token: full.token,
        rule: rule.into(),
        at_ms: 3_000,
        ok: true,
        data: true,
        windows,
    };
    let pod = Labels::from([("pod".to_string(), "p1".to_string())]);
    s.save_polls(
        "agent-a",
        &[mark("r", Some(vec![(pod, "101".into())])), mark("q", None)],
    )
    .unwrap();
    for (who, minutes) in [("ana", 10), ("bo", 20)] {
        s.order(
            "full",
            &NewOrder {
                kind: "extend".into(),
                duration_ms: Some(minutes * 60_000),
                who: who.into(),
                reason: "release review".into(),
                at_ms: 2_500,
            },
        )
        .unwrap();
    }
    let ids = names(&["bare", "full", "nope", "series-only"]);
    let mut got = s.resume_reads(&ids).unwrap();
    for id in &ids {
        let one = ResumeRead {
            actions: s.actions(id).unwrap(),
            windows: s.breach_windows(id).unwrap(),
            series: s.series(id).unwrap(),
            polls: s.polls(id).unwrap(),
            orders: s.orders(id).unwrap(),
        };
        assert_eq!(got.remove(id).unwrap_or_default(), one, "watch {id}");
    }
    assert!(got.is_empty(), "only the ids asked for: {got:?}");
    // Not vacuous: the full watch has a row of every kind.
    let r = &s.resume_reads(&names(&["full"])).unwrap()["full"];
    assert_eq!(
        (
            r.actions.len(),
            r.windows.len(),
            r.series.len(),
            r.polls.len(),
            r.orders.len()
        ),
        (1, 1, 2, 2, 2),
        "{r:?}"
    );
    assert!(s.resume_reads(&[]).unwrap().is_empty());
}

#[test]
fn sqlite_resume_reads_conform() {
    let dir = tempfile::tempdir().unwrap();
    resume_reads_conform(&sqlite_stores(dir.path()));
}

#[test]
fn postgres_resume_reads_conform() {
    let pg = postgres::shared();
    resume_reads_conform(&|| Arc::new(PgStore::open(&pg.database()).unwrap()));
}

/// A fresh SQLite store in `dir` at each call.
fn sqlite_stores(dir: &std::path::Path) -> impl Fn() -> Arc<dyn Store> + '_ {
    let n = std::sync::atomic::AtomicU32::new(0);
    move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Arc::new(SqliteStore::open(&dir.join(format!("s{i}.db"))).unwrap())
    }
}

#[test]
fn sqlite_batch_leases_conform() {
    let dir = tempfile::tempdir().unwrap();
    batch_leases_conform(&sqlite_stores(dir.path()));
}

#[test]
fn postgres_batch_leases_conform() {
    let pg = postgres::shared();
    batch_leases_conform(&|| Arc::new(PgStore::open(&pg.database()).unwrap()));
}

/// A batch's leases are one statement, whatever its size (they were one round trip
/// each: 10,000 took longer than the trust window all of them were given), and a
/// batch's expired leases are taken over with higher tokens.
#[test]
fn postgres_a_batchs_leases_are_one_statement() {
    let pg = postgres::shared();
    let url = pg.database();
    let s = PgStore::open(&url).unwrap();
    let all: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
    let mut ws: Vec<NewWatch> = all.iter().map(|id| new_watch(id)).collect();
    ws.push(new_watch("alone"));
    assert!(matches!(
        s.create_many(&ws).unwrap(),
        CreatedMany::Stored(_)
    ));
    let db = postgres::db_of(&url);
    let short = Duration::from_millis(400);
    // Taking 500 leases commits a few transactions (its statement, the pool's check
    // of the connection it hands out), as taking one does, never one a lease.
    // Counted on a store closed after it (see `commits_of_a_store`).
    let one = commits_of_a_store(pg, db, &url, |s| {
        let got = s.acquire_leases(&["alone".to_string()], "agent-a", TTL);
        assert_eq!(got.unwrap().len(), 1);
    });
    let mut first = Vec::new();
    let n = commits_of_a_store(pg, db, &url, |s| {
        first = s.acquire_leases(&all, "agent-a", short).unwrap();
    });
    assert_eq!(first.len(), 500);
    assert!(
        n <= one + 2,
        "taking 500 leases took {n} commits, one lease {one}"
    );
    // Expired on the database's clock: another agent takes them all, each with a
    // higher token than the one it had.
    let taken = await_some("the leases to expire", Duration::from_secs(10), || {
        let t = s.acquire_leases(&all, "agent-b", TTL).unwrap();
        (!t.is_empty()).then_some(t)
    });
    assert_eq!(taken.len(), 500);
    let was: std::collections::HashMap<&str, i64> =
        first.iter().map(|l| (l.watch.as_str(), l.token)).collect();
    assert!(taken.iter().all(|l| l.token > was[l.watch.as_str()]));
}

/// What an adoption reads of the watches it took is a few statements in one
/// transaction, whatever their number (it was five round trips a watch: thousands
/// after an owner's death, each queued behind the watches' own store calls).
#[test]
fn postgres_resume_reads_of_500_watches_are_one_transaction() {
    let pg = postgres::shared();
    let url = pg.database();
    let all: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
    let ws: Vec<NewWatch> = all.iter().map(|id| new_watch(id)).collect();
    let s = PgStore::open(&url).unwrap();
    assert!(matches!(
        s.create_many(&ws).unwrap(),
        CreatedMany::Stored(_)
    ));
    drop(s);
    let db = postgres::db_of(&url);
    let reading = |ids: &[String]| {
        commits_of_a_store(pg, db, &url, |s| {
            assert_eq!(s.resume_reads(ids).unwrap().len(), ids.len());
        })
    };
    let (one, n) = (reading(&all[..1]), reading(&all));
    assert!(
        n <= one + 2,
        "reading 500 watches to resume took {n} commits, one watch {one}"
    );
}

/// How many transactions a store opened on `url` commits in database `db` while it
/// does `f`, counted after it is closed: a connection that goes idle may report its
/// commits to the statistics only seconds later, but a closing one reports them all.
/// (Includes the store's own opening, the same for every call.)
fn commits_of_a_store(
    pg: &postgres::PgCluster,
    db: &str,
    url: &str,
    f: impl FnOnce(&PgStore),
) -> i64 {
    commits_during(pg, db, || {
        let s = PgStore::open(url).unwrap();
        f(&s);
        drop(s);
    })
}

/// Two agents on one database, their leases expiring and moving under them: each
/// renews its leases, flushes its last polls (locking its lease rows `FOR SHARE`)
/// and adopts expired ones, all at once, over and over. Each of those statements
/// locks many lease rows; each used to take them in its own plan's order, and at
/// 33,000 leases an agent they deadlocked (`deadlock detected`: a renewal lost, a
/// flush dropped). All now lock in `watch_id` order: never a deadlock.
#[test]
fn postgres_renewals_flushes_and_adoptions_of_thousands_of_leases_never_deadlock() {
    let pg = postgres::shared();
    let url = pg.database();
    let n = 3000;
    let all: Vec<String> = (0..n).map(|i| format!("w{:05}", (i * 7919) % n)).collect();
    let ws: Vec<NewWatch> = all.iter().map(|id| new_watch(id)).collect();
    let s = PgStore::open(&url).unwrap();
    assert!(matches!(
        s.create_many(&ws).unwrap(),
        CreatedMany::Stored(_)
    ));
    drop(s);
    let ttl = Duration::from_millis(150);
    let until = Instant::now() + Duration::from_secs(6);
    let start = Arc::new(Barrier::new(6));
    let adopted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut threads = Vec::new();
    for agent in ["agent-a", "agent-b"] {
        let store = Arc::new(PgStore::open(&url).unwrap());
        let held = Arc::new(std::sync::Mutex::new(Vec::<Lease>::new()));
        for job in 0..3 {
            let (store, held, start) = (store.clone(), held.clone(), start.clone());
            let adopted = adopted.clone();
            threads.push(std::thread::spawn(move || -> Vec<String> {
                start.wait();
                let mut errors = Vec::new();
                while Instant::now() < until {
                    let mine: Vec<Lease> = held.lock().unwrap().clone();
                    let r = match job {
                        0 => store.adopt_leases(agent, ttl, 1000).map(|got| {
                            adopted.fetch_add(got.len(), std::sync::atomic::Ordering::SeqCst);
                            held.lock().unwrap().extend(got);
                        }),
                        1 => {
                            let ids: Vec<String> = mine.iter().map(|l| l.watch.clone()).collect();
                            store.renew_leases(agent, &ids, ttl).map(|kept| {
                                *held.lock().unwrap() = kept;
                            })
                        }
                        _ => {
                            let marks: Vec<PollMark> = mine
                                .iter()
                                .rev()
                                .map(|l| PollMark {
                                    id: l.watch.as_str().into(),
                                    token: l.token,
                                    rule: "r".into(),
                                    at_ms: 1,
                                    ok: true,
                                    data: true,
                                    windows: None,
                                })
                                .collect();
                            store.save_polls(agent, &marks).map(|_| ())
                        }
                    };
                    if let Err(e) = r {
                        errors.push(e.to_string());
                    }
                }
                errors
            }));
        }
    }
    let errors: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    // The leases did move back and forth under the renewals and flushes.
    let adopted = adopted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(adopted > 3 * n, "only {adopted} adoptions of {n} leases");
}

/// The lease renewal has a connection of its own: with every connection of the
/// store's pool held by calls that wait (here on a table another session locked;
/// in production, a burst of the watches' writes), a renewal still answers at once,
/// where it waited for the pool until the trust window had passed.
#[test]
fn postgres_a_renewal_never_waits_for_the_busy_pool() {
    let pg = postgres::shared();
    let url = pg.database();
    let db = postgres::db_of(&url).to_string();
    let s = Arc::new(PgStore::open(&url).unwrap());
    s.create(&new_watch("w")).unwrap();
    let lease = s.acquire_lease("w", "agent-a", TTL).unwrap().unwrap();
    // Another session locks `polls` for a while.
    let (pg2, db2) = (pg, db.clone());
    let locker = std::thread::spawn(move || {
        pg2.psql(
            &db2,
            "BEGIN; LOCK TABLE polls IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;",
        )
    });
    await_some("the table lock", Duration::from_secs(10), || {
        let n: i64 = pg
            .psql(&db, "SELECT count(*) FROM pg_locks WHERE relation = 'polls'::regclass AND mode = 'AccessExclusiveLock' AND granted")
            .parse()
            .unwrap();
        (n == 1).then_some(())
    });
    // Twelve flushes (of a watch no one holds) take the pool's eight connections
    // and wait for the lock.
    let flushes: Vec<_> = (0..12)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mark = PollMark {
                    id: "other".into(),
                    token: 1,
                    rule: "r".into(),
                    at_ms: 1,
                    ok: true,
                    data: true,
                    windows: None,
                };
                let _ = s.save_polls("agent-x", &[mark]);
            })
        })
        .collect();
    await_some("the pool to be busy", Duration::from_secs(10), || {
        let n: i64 = pg
            .psql(&db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rollwatch' AND wait_event_type = 'Lock'")
            .parse()
            .unwrap();
        (n >= 8).then_some(())
    });
    let began = Instant::now();
    let renewed = s.renew_leases("agent-a", &names(&["w"]), TTL).unwrap();
    let took = began.elapsed();
    pg.psql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
    );
    let _ = locker.join();
    for f in flushes {
        f.join().unwrap();
    }
    assert_eq!(renewed, [lease]);
    assert!(took < Duration::from_secs(3), "the renewal took {took:?}");
}

#[test]
fn sqlite_create_many_conforms() {
    let dir = tempfile::tempdir().unwrap();
    create_many_conforms(&|| Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap()));
}

#[test]
fn postgres_create_many_conforms() {
    let pg = postgres::shared();
    create_many_conforms(&|| Arc::new(PgStore::open(&pg.database()).unwrap()));
}

#[test]
fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&sqlite_stores(dir.path()));
}

#[test]
fn postgres_store_conforms() {
    let pg = postgres::shared();
    conformance(&|| Arc::new(PgStore::open(&pg.database()).unwrap()));
}

/// The transactions committed so far on database `db` (statistics flushed first).
/// What one `commits` read itself commits in the database it reads (psql's session
/// and its statement).
const READ_COMMITS: i64 = 2;

/// How many transactions `f` commits in database `db`. A connection reports its
/// commits to the statistics when it next goes idle a second or more after its last
/// report, not at once, so the count is read until it holds still (but for the reads'
/// own commits) before `f` and after it: a commit made before `f` (the store's own,
/// as it was opened) is never counted as `f`'s, and none of `f`'s is missed.
/// Autovacuum's visits would be counted too: the harness's clusters run without it.
fn commits_during(pg: &postgres::PgCluster, db: &str, f: impl FnOnce()) -> i64 {
    // The count once still, and how many reads that took.
    let settled = || {
        let mut last = commits(pg, db);
        for reads in 2..=15 {
            std::thread::sleep(Duration::from_millis(1100));
            let now = commits(pg, db);
            if now - last == READ_COMMITS {
                return (now, reads);
            }
            last = now;
        }
        panic!("the commit count of {db} never held still");
    };
    let (before, _) = settled();
    f();
    let (after, reads) = settled();
    after - before - READ_COMMITS * reads
}

fn commits(pg: &postgres::PgCluster, db: &str) -> i64 {
    pg.psql(db, "SELECT pg_stat_force_next_flush()");
    pg.psql(
        "postgres",
        &format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"),
    )
    .parse()
    .unwrap()
}

/// Waits (polling the store) until `f` returns Some.
fn await_some<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn postgres_leases_expire_on_the_database_clock_and_fence_the_old_holder() {
    let pg = postgres::shared();
    let url = pg.database();
    let a = PgStore::open(&url).unwrap();
    let b = PgStore::open(&url).unwrap();
    a.create(&new_watch("w")).unwrap();
    let short = Duration::from_millis(400);
    let la = a.acquire_lease("w", "agent-a", short).unwrap().unwrap();
    assert_eq!(b.acquire_lease("w", "agent-b", TTL).unwrap(), None, "held");
    assert!(
        b.adopt_leases("agent-b", TTL, 10).unwrap().is_empty(),
        "not expired yet"
    );
    // Expiry is the database's: B adopts as soon as the database says it expired.
    let lb = await_some("the lease to expire", Duration::from_secs(10), || {
        b.adopt_leases("agent-b", TTL, 10).unwrap().pop()
    });
    assert_eq!(lb.watch, "w");
    assert!(
        lb.token > la.token,
        "the token increases at every change of holder"
    );
    let expires_in: f64 = pg
        .psql(
            postgres::db_of(&url),
            "SELECT extract(epoch FROM expires_at - now()) FROM leases WHERE watch_id = 'w'",
        )
        .parse()
        .unwrap();
    assert!(
        expires_in > 20.0,
        "B's lease runs on the database clock: {expires_in}"
    );
    // The old holder's renewal no longer returns it, and its claim is refused.
    assert!(a
        .renew_leases("agent-a", &names(&["w"]), TTL)
        .unwrap()
        .is_empty());
    let refused = a
        .claim_fenced("w", "agent-a", la.token, &new_action("rollback", 1), &[])
        .unwrap_err();
    assert!(matches!(refused, StoreError::Fenced { .. }), "{refused}");
    b.claim_fenced("w", "agent-b", lb.token, &new_action("rollback", 2), &[])
        .unwrap();
    assert_eq!(b.actions("w").unwrap().len(), 1);
    // The old holder's writes are refused by the database, whatever they say, and
    // leave the new owner's record and lease alone.
    let fa = Fence {
        holder: "agent-a".into(),
        token: la.token,
    };
    let fb = Fence {
        holder: "agent-b".into(),
        token: lb.token,
    };
    let action = b.actions("w").unwrap()[0].id;
    let end = ActionEnd {
        state: ActionState::Finished,
        result: "succeeded",
        succeeded: Some(true),
        at_ms: 12,
    };
    let unknown = ActionEnd {
        state: ActionState::Unknown,
        result: "unknown",
        succeeded: None,
        at_ms: 11,
    };
    b.end_action("w", &fb, action, &unknown, None).unwrap();
    for r in [
        a.end_action("w", &fa, action, &end, Some(&ending("rolled_back"))),
        a.finish("w", &fa, &ending("healthy")),
        a.put_series("w", &fa, &firing("r", 1)),
    ] {
        assert!(matches!(r, Err(StoreError::Fenced { .. })), "{r:?}");
    }
    assert_eq!(b.actions("w").unwrap()[0].state, ActionState::Unknown);
    assert_eq!(b.get("w").unwrap().unwrap().state, WatchState::Running);
    assert_eq!(
        pg.psql(
            postgres::db_of(&url),
            "SELECT holder FROM leases WHERE watch_id = 'w'"
        ),
        "agent-b",
        "the old holder's ending deleted no lease"
    );
    // A finished watch's lease goes with it, and it is never adopted.
    b.finish("w", &fb, &ending("rolled_back")).unwrap();
    assert!(a.adopt_leases("agent-a", TTL, 10).unwrap().is_empty());
}

#[test]
fn postgres_a_lease_not_named_in_a_renewal_is_not_extended_and_expires() {
    let pg = postgres::shared();
    let url = pg.database();
    let a = PgStore::open(&url).unwrap();
    let b = PgStore::open(&url).unwrap();
    a.create(&new_watch("kept")).unwrap();
    a.create(&new_watch("given-up")).unwrap();
    let short = Duration::from_millis(600);
    a.acquire_lease("kept", "agent-a", short).unwrap().unwrap();
    a.acquire_lease("given-up", "agent-a", short)
        .unwrap()
        .unwrap();
    // The agent gave up "given-up" (its release failed): its renewals name only "kept".
    let renewed = a.renew_leases("agent-a", &names(&["kept"]), TTL).unwrap();
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert_eq!(renewed[0].watch, "kept");
    let lb = await_some(
        "the given-up lease to expire",
        Duration::from_secs(10),
        || b.adopt_leases("agent-b", TTL, 10).unwrap().pop(),
    );
    assert_eq!(lb.watch, "given-up", "the renewed lease is not adoptable");
    assert!(b.adopt_leases("agent-b", TTL, 10).unwrap().is_empty());
}

#[test]
fn postgres_renewal_is_one_statement_for_all_leases() {
    let pg = postgres::shared();
    let url = pg.database();
    let s = PgStore::open(&url).unwrap();
    for i in 0..200 {
        s.create(&new_watch(&format!("w{i}"))).unwrap();
    }
    assert_eq!(s.adopt_leases("agent-a", TTL, 1000).unwrap().len(), 200);
    drop(s);
    let db = postgres::db_of(&url);
    let all: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
    // Counted on a store that is closed after it (see `commits_of_a_store`): the
    // statement and the renewal's own connection, as for one lease, never one a
    // lease.
    let renewing = |ids: &[String]| {
        commits_of_a_store(pg, db, &url, |s| {
            assert_eq!(
                s.renew_leases("agent-a", ids, TTL).unwrap().len(),
                ids.len()
            );
        })
    };
    let (one, n) = (renewing(&all[..1]), renewing(&all));
    assert_eq!(
        n, one,
        "renewing 200 leases took {n} commits, one lease {one}"
    );
}

/// Makes every row written to `polls` in database `db` take `secs` seconds (a row
/// trigger: it runs after the flush's statement has locked its lease rows), so that a
/// flush stays open while a test renews or takes its leases.
fn slow_poll_writes(pg: &postgres::PgCluster, db: &str, secs: u32) {
    pg.psql(
        db,
        &format!(
            "CREATE FUNCTION slow_poll() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({secs}); RETURN NEW; END $$; \
             CREATE TRIGGER slow_poll BEFORE INSERT ON polls \
             FOR EACH ROW EXECUTE FUNCTION slow_poll()"
        ),
    );
}

/// Starts `holder`'s flush of one mark of `id` on a thread; returns once the flush's
/// statement is inside its slow write (its lease rows locked).
fn flush_in_progress(
    pg: &'static postgres::PgCluster,
    url: &str,
    holder: &'static str,
    lease: &Lease,
) -> std::thread::JoinHandle<Vec<String>> {
    let s = PgStore::open(url).unwrap();
    let mark = PollMark {
        id: lease.watch.as_str().into(),
        token: lease.token,
        rule: "r".into(),
        at_ms: 1,
        ok: true,
        data: true,
        windows: None,
    };
    let flush = std::thread::spawn(move || s.save_polls(holder, &[mark]).unwrap());
    let db = postgres::db_of(url).to_string();
    await_some("the flush to be writing", Duration::from_secs(10), || {
        let sleeping = pg.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND wait_event = 'PgSleep'"
            ),
        );
        (sleeping == "1").then_some(())
    });
    flush
}

/// A holder's renewal goes through while its own flush of last polls is still open:
/// the flush's lease locks never hold a renewal back (they did, `FOR SHARE`: an
/// agent's renewal waited for a flush of all its marks, and its leases lapsed).
#[test]
fn postgres_a_renewal_never_waits_for_a_flush() {
    let pg = postgres::shared();
    let url = pg.database();
    let s = PgStore::open(&url).unwrap();
    s.create(&new_watch("w")).unwrap();
    let lease = s.acquire_lease("w", "agent-a", TTL).unwrap().unwrap();
    slow_poll_writes(pg, postgres::db_of(&url), 4);
    let flush = flush_in_progress(pg, &url, "agent-a", &lease);
    let renewed = s.renew_leases("agent-a", &["w".to_string()], TTL).unwrap();
    assert!(
        !flush.is_finished(),
        "the renewal returned only once the flush had ended"
    );
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert_eq!(renewed[0].token, lease.token);
    assert!(flush.join().unwrap().is_empty(), "the flush was refused");
}

/// A takeover of a lease that lapsed while its old holder's flush was open waits for
/// that flush (the new owner reads what it wrote, and nothing of the old holder's
/// lands after the new owner's token); an adoption skips it until the flush is done.
#[test]
fn postgres_a_takeover_waits_for_the_old_holders_open_flush() {
    let pg = postgres::shared();
    let url = pg.database();
    let db = postgres::db_of(&url);
    let s = PgStore::open(&url).unwrap();
    s.create(&new_watch("w")).unwrap();
    let ttl = Duration::from_secs(3);
    let lease = s.acquire_lease("w", "agent-a", ttl).unwrap().unwrap();
    slow_poll_writes(pg, db, 8);
    let flush = flush_in_progress(pg, &url, "agent-a", &lease);
    await_some("the lease to lapse", Duration::from_secs(10), || {
        let lapsed = pg.psql(
            db,
            "SELECT count(*) FROM leases WHERE watch_id = 'w' \
             AND expires_at <= clock_timestamp()",
        );
        (lapsed == "1").then_some(())
    });
    // An adoption passes it by, at once.
    assert!(s.adopt_leases("agent-b", TTL, 10).unwrap().is_empty());
    assert!(!flush.is_finished(), "the adoption waited for the flush");
    // A takeover by name waits for it, and comes after what it wrote.
    let taken = s.acquire_lease("w", "agent-c", TTL).unwrap();
    let polls = pg.psql(db, "SELECT count(*) FROM polls WHERE watch_id = 'w'");
    assert_eq!(
        polls, "1",
        "the lease was taken over before the flush committed"
    );
    assert_eq!(taken.map(|l| l.token), Some(lease.token + 1));
    assert!(flush.join().unwrap().is_empty(), "the flush was refused");
}

#[test]
fn postgres_concurrent_adoptions_never_share_a_watch() {
    let pg = postgres::shared();
    let url = pg.database();
    let s = PgStore::open(&url).unwrap();
    for i in 0..300 {
        s.create(&new_watch(&format!("w{i}"))).unwrap();
    }
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|n| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = PgStore::open(&url).unwrap();
                barrier.wait();
                let mut mine = Vec::new();
                for _ in 0..20 {
                    mine.extend(s.adopt_leases(&format!("agent-{n}"), TTL, 25).unwrap());
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap().into_iter().map(|l| l.watch));
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), unique.len(), "a watch was adopted twice");
    assert_eq!(unique.len(), 300, "every watch adopted");
}

#[test]
fn postgres_claims_racing_a_takeover_commit_at_most_once() {
    let pg = postgres::shared();
    let url = pg.database();
    let s = PgStore::open(&url).unwrap();
    for round in 0..20 {
        let id = format!("w{round}");
        s.create(&new_watch(&id)).unwrap();
        let old = s
            .acquire_lease(&id, "agent-a", Duration::from_millis(30))
            .unwrap()
            .unwrap();
        let barrier = Arc::new(Barrier::new(2));
        // A (whose lease is about to expire) claims while B takes the watch over and
        // claims with its new token: at most one rollback row, never A's after B's
        // takeover.
        let a = {
            let (url, id, barrier) = (url.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = PgStore::open(&url).unwrap();
                barrier.wait();
                std::thread::sleep(Duration::from_millis(25));
                s.claim_fenced(&id, "agent-a", old.token, &new_action("rollback", 1), &[])
            })
        };
        let b = {
            let (url, id) = (url.clone(), id.clone());
            std::thread::spawn(move || {
                let s = PgStore::open(&url).unwrap();
                barrier.wait();
                let lease = await_some("the takeover", Duration::from_secs(10), || {
                    s.adopt_leases("agent-b", TTL, 1).unwrap().pop()
                });
                s.claim_fenced(&id, "agent-b", lease.token, &new_action("rollback", 2), &[])
            })
        };
        let (ra, rb) = (a.join().unwrap(), b.join().unwrap());
        assert!(
            ra.is_ok() != rb.is_ok(),
            "exactly one claim commits: {ra:?} {rb:?}"
        );
        assert_eq!(s.actions(&id).unwrap().len(), 1);
        let holder = pg.psql(
            postgres::db_of(&url),
            &format!("SELECT holder || ' ' || token FROM leases WHERE watch_id = '{id}'"),
        );
        let (holder, token) = holder.split_once(' ').unwrap();
        let f = Fence {
            holder: holder.into(),
            token: token.parse().unwrap(),
        };
        s.finish(&id, &f, &ending("rolled_back")).unwrap();
    }
}

#[test]
fn postgres_migration_is_safe_to_race_and_a_newer_schema_is_refused() {
    let pg = postgres::shared();
    let url = pg.database();
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = PgStore::connect(&url).unwrap();
                barrier.wait();
                s.migrate()
            })
        })
        .collect();
    for h in handles {
        h.join()
            .unwrap()
            .expect("three agents migrating at once all start");
    }
    let db = postgres::db_of(&url);
    assert_eq!(
        pg.psql(db, "SELECT version FROM rollwatch_schema"),
        PG_SCHEMA_VERSION.to_string()
    );
    // A database before version 3 gains the `breaches` windows (at version 2, so that
    // another change's step 2 is not run again: only step 3 is).
    pg.psql(
        db,
        "ALTER TABLE polls DROP COLUMN windows; UPDATE rollwatch_schema SET version = 2",
    );
    let s = PgStore::open(&url).expect("a version 2 database is upgraded");
    let lease = s
        .acquire_lease("w", "agent-a", Duration::from_secs(15))
        .unwrap()
        .expect("a free lease");
    let refused = s
        .save_polls(
            "agent-a",
            &[PollMark {
                id: "w".into(),
                token: lease.token,
                rule: "r".into(),
                at_ms: 1,
                ok: true,
                data: true,
                windows: Some(vec![]),
            }],
        )
        .unwrap();
    assert!(refused.is_empty(), "the lease's holder writes its polls");
    assert_eq!(s.breach_windows("w").unwrap().get("r"), Some(&vec![]));
    assert_eq!(pg.psql(db, "SELECT version FROM rollwatch_schema"), "4");
    pg.psql(db, "UPDATE rollwatch_schema SET version = 99");
    let err = PgStore::open(&url)
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::NewerPgSchema { found: 99, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("newer than this rollwatch knows"),
        "{err}"
    );
}

#[test]
fn postgres_errors_never_show_the_password() {
    // Nothing listens on this port: the error names the URL, redacted.
    let port = crate::harness::free_port();
    let s = PgStore::connect(&format!("postgres://rw:hunter2@127.0.0.1:{port}/rw")).unwrap();
    let err = s.migrate().unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("rw:***@127.0.0.1"), "{err}");
}
