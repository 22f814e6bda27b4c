//! A re-run after a restart reports what a first run does (issue 20, item 4): the
//! same `watch_started` (with `max_blind` capped by the duration, as the loop caps
//! it) and the same `action_started`, because both go through `run::watch::act`.

use super::*;
use crate::core::events::Sink;
use crate::core::series::Sample;
use crate::io::prom::{MetricsSource, QueryError, QueryResult};
use crate::io::store::{NewAction, SqliteStore, Store};
use crate::run::agent::metrics::Metrics;
use crate::run::agent::AgentConfig;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::time::Instant;

/// A rule file whose `max_blind` (5m) is longer than its duration (1m), and whose
/// idempotent rollback fires at the first poll.
const RULES: &str = r#"watch:
  duration: 60s
  interval: 1s
  max_blind: 5m
rollback:
  command: ["true"]
  timeout: 7s
  idempotent: true
rules:
  - name: errors
    query: rw_value
    above: 0.5
    for: 0s
"#;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Event>>>);

impl Sink for Seen {
    fn emit(&mut self, _: i64, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Seen {
    fn named(&self, name: &str) -> Vec<Event> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|e| e.name() == name).cloned().collect()
    }
}

/// Breaches at every poll (and at every step of a range).
struct Breaching;

impl crate::io::prom::HistorySource for Breaching {
    async fn query_range(
        &self,
        _: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<crate::io::prom::RangeResult, QueryError> {
        let points = (0..)
            .map(|k| start_ms + k * step_ms.max(1))
            .take_while(|t| *t <= end_ms)
            .map(|t| (t, 1.0))
            .collect();
        Ok(crate::io::prom::RangeResult {
            series: vec![crate::io::prom::RangeSeries {
                labels: Default::default(),
                points,
            }],
            warnings: Vec::new(),
        })
    }
}

impl MetricsSource for Breaching {
    async fn query(&self, _: &str, _: SystemTime) -> Result<QueryResult, QueryError> {
        Ok(QueryResult {
            samples: vec![Sample {
                labels: Default::default(),
                value: 1.0,
            }],
            warnings: Vec::new(),
        })
    }
}

fn spec() -> WatchSpec {
    let (spec, _) = rules::load_str(
        "rules.yaml",
        RULES,
        &rules::LoadOptions {
            outside: None,
            sets: &[],
            check: false,
        },
    )
    .unwrap();
    spec
}

fn opts() -> WatchOptions {
    WatchOptions {
        duration: Duration::from_secs(60),
        dry_run: false,
        prometheus: "http://prometheus.invalid".into(),
    }
}

/// The events of a first run: the loop fires at its first poll and runs `true`.
async fn first_run() -> Seen {
    let seen = Seen::default();
    let mut sinks = Sinks(vec![Box::new(seen.clone())]);
    let (_tx, mut signals) = crate::run::channel::channel(1);
    let outcome = watch::run_from(
        &spec(),
        Arc::new(Breaching),
        &ProcessRunner::default(),
        &opts(),
        Box::<crate::run::watch::Start>::default(),
        &mut signals,
        &mut sinks,
    )
    .await;
    assert_eq!(outcome.name(), "rolled_back", "{outcome:?}");
    seen
}

/// An agent on a fresh SQLite store (in `dir`, kept by the caller) as "test-agent",
/// and watch `w` of `RULES` (not stored yet).
fn one_agent() -> (tempfile::TempDir, Arc<dyn Store>, Arc<Agent>, NewWatch) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let cfg = AgentConfig {
        rules_dir: dir.path().to_path_buf(),
        // (Never asked: a source is made for the watch, no query is sent.)
        prom: crate::io::prom::Connection {
            prometheus: Some("http://prometheus.invalid".into()),
            ..Default::default()
        },
        max_queries: 1,
        share_queries: false,
        holder: "test-agent".into(),
        lease_ttl: Duration::from_secs(30),
        action_dir: None,
    };
    let metrics = Metrics::new(prometheus::Registry::new()).unwrap();
    let agent = Agent::new(store.clone(), metrics, cfg);
    let def = NewWatch {
        id: "w".into(),
        rules: "rules".into(),
        rules_text: RULES.into(),
        vars: Default::default(),
        duration_ms: 60_000,
        created_ms: now_ms(),
        key: None,
    };
    (dir, store, agent, def)
}

/// Stores watch `def` and holds its lease, as the agent that resumes it would.
fn stored_and_held(
    store: &Arc<dyn Store>,
    agent: &Arc<Agent>,
    def: &NewWatch,
) -> crate::io::store::Lease {
    store.create(def).unwrap();
    let lease = store
        .acquire_lease("w", "test-agent", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    agent.leases.hold(&lease, Instant::now());
    lease
}

/// Watch `w`'s rows as a restart reads them with the other watches'.
fn read_with_others(store: &Arc<dyn Store>) -> Option<Box<crate::io::store::ResumeRead>> {
    store
        .resume_reads(&["w".to_string()])
        .unwrap()
        .remove("w")
        .map(Box::new)
}

/// The events of a re-run: an agent restarted with the rollback's row still
/// `started` (the agent died while it ran) re-runs the idempotent command once.
async fn rerun() -> Seen {
    let (_dir, store, agent, def) = one_agent();
    let lease = stored_and_held(&store, &agent, &def);
    let first = NewAction {
        kind: "rollback".into(),
        rule: "errors".into(),
        argv: vec!["true".into()],
        env: vec![("ROLLWATCH_ACTION".into(), "rollback".into())],
        at_ms: now_ms(),
    };
    store
        .claim_fenced("w", "test-agent", lease.token, &first, &[])
        .unwrap();
    let seen = Seen::default();
    let mut others = Sinks(vec![Box::new(seen.clone())]);
    // The rows as a restart reads them with the other watches': the re-run writes
    // the store, so what was read before it is dropped, never used after it.
    let mut read = read_with_others(&store);
    assert_eq!(read.as_ref().map(|r| r.actions.len()), Some(1));
    let r = agent
        .resolve_actions(&spec(), &def, &mut others, &opts(), None, &mut read)
        .await
        .unwrap();
    match r {
        Resolution::End { outcome, .. } => assert_eq!(outcome.name(), "rolled_back"),
        Resolution::Continue { .. } => panic!("the re-run did not end the watch"),
    }
    assert!(read.is_none(), "a read from before the re-run was kept");
    seen
}

/// A live watch's rows read with the others' at a restart are what its resume goes
/// on with: resolving its actions (none to settle) keeps them for the catch-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_watchs_read_is_kept_for_its_catch_up() {
    let (_dir, store, agent, def) = one_agent();
    stored_and_held(&store, &agent, &def);
    let mut read = read_with_others(&store);
    let mut others = Sinks(Vec::new());
    let r = agent
        .resolve_actions(&spec(), &def, &mut others, &opts(), None, &mut read)
        .await
        .unwrap();
    assert!(matches!(
        r,
        Resolution::Continue {
            paused_by: None,
            ..
        }
    ));
    assert!(read.is_some(), "a live watch's read was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_starts_and_acts_with_the_events_of_a_first_run() {
    let (first, again) = (first_run().await, rerun().await);
    let started = first.named("watch_started");
    assert_eq!(started.len(), 1);
    assert_eq!(again.named("watch_started"), started);
    // The loop's cap: max_blind is never longer than the watch.
    assert!(
        matches!(&started[0], Event::WatchStarted { max_blind_s, .. } if *max_blind_s == 60.0),
        "{:?}",
        started[0]
    );
    let acted = first.named("action_started");
    assert_eq!(acted.len(), 1);
    assert_eq!(again.named("action_started"), acted);
    let finished = |s: &Seen| -> Vec<(String, bool)> {
        s.named("action_finished")
            .into_iter()
            .map(|e| match e {
                Event::ActionFinished {
                    status, succeeded, ..
                } => (status, succeeded),
                _ => unreachable!(),
            })
            .collect()
    };
    assert_eq!(finished(&again), finished(&first));
    assert_eq!(finished(&first).len(), 1);
}

/// What each watch holds while it waits stays small (issue 21: 100,000 watches in one
/// agent): its task's future was 13.8 KB before the transient steps (resume, pre-flight,
/// the handling of one poll) were boxed, and a message slot of its orders' channel (32
/// are allocated at once) 88 bytes before the order was boxed. Its preparation is
/// apart from its run: the future that runs it owns what it runs on, and the task
/// holds neither the preparation's steps nor what it was started with (1.6 KB a
/// watch when the task ran the preparation's future to the end). The loop keeps one
/// list of what it needs of each rule, not six (2,688 bytes before).
#[tokio::test]
async fn a_waiting_watch_holds_little() {
    let (_dir, store, agent, def) = one_agent();
    let crate::io::store::Created::New(rec) = store.create(&def).unwrap() else {
        panic!("a new watch")
    };
    let prepared = agent.prepare(&rec.def).unwrap();
    let beginning = || {
        let (tx, rx) = crate::run::channel::channel(4);
        let (_, orders) = crate::run::channel::channel(4);
        Box::new(crate::run::agent::drive::Beginning {
            rec: rec.clone(),
            begin: crate::run::agent::drive::Begin::New(Box::new(prepared.clone())),
            signals: rx,
            orders,
            stop: tx,
            live: Default::default(),
        })
    };
    let task = agent.clone().watch_task("w".into(), beginning());
    let size = std::mem::size_of_val(&task);
    assert!(size <= 256, "a watch's task holds {size} bytes");
    drop(task);
    let beginning = beginning();
    let drive = agent.drive(beginning);
    let size = std::mem::size_of_val(&drive);
    assert!(size <= 4096, "a watch's preparation holds {size} bytes");
    let running = drive.await.expect("a new watch runs");
    let size = std::mem::size_of_val(&*running);
    assert!(size <= 2472, "a running watch's future is {size} bytes");
    let slot = std::mem::size_of::<crate::run::watch::OrderMsg>();
    assert!(slot <= 16, "an order's slot is {slot} bytes");
}
