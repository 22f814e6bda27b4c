//! Several `rollwatch serve` agents on one PostgreSQL (the real binary, the real
//! Prometheus, a real throwaway PostgreSQL cluster): watches are visible from every
//! agent, a dead or paused owner's watches are adopted and rolled back exactly once,
//! and a database outage runs nothing. Each test owns its series, its database and
//! its agents; the rollback appends its watch id and fencing token to a log shared by
//! the agents, which is how rollbacks are counted.

use crate::harness::agent::{http, rules, set};
use crate::harness::postgres::{self, PgCluster};
use crate::harness::{free_port, now_ms, prometheus, start_env, Running, Scratch};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) const TTL_S: u64 = 3;

/// Appends "rollback <watch> <fencing token> <unix ms>" to @DIR@/actions.log.
pub(crate) const ROLLBACK: &str = r#"  command: ["sh", "-c", "echo rollback $ROLLWATCH_WATCH_ID $ROLLWATCH_FENCING_TOKEN $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s"#;

/// One agent of a fleet.
pub(crate) struct Node {
    pub(crate) addr: String,
    pub(crate) proc: Option<Running>,
    pub(crate) env: Vec<(String, String)>,
}

/// Agents sharing one database, one rules directory and one actions log.
pub(crate) struct Fleet {
    pub(crate) s: Scratch,
    pub(crate) url: String,
    pub(crate) nodes: Vec<Node>,
}

impl Fleet {
    pub(crate) fn new(url: &str, n: usize) -> Fleet {
        Fleet::with_env(url, vec![Vec::new(); n])
    }

    /// A fleet of `env.len()` agents, agent `i` with the extra environment `env[i]`.
    pub(crate) fn with_env(url: &str, env: Vec<Vec<(String, String)>>) -> Fleet {
        let n = env.len();
        let s = Scratch::new();
        std::fs::create_dir_all(s.path("rules")).unwrap();
        let mut f = Fleet {
            s,
            url: url.to_string(),
            nodes: env
                .into_iter()
                .map(|env| Node {
                    addr: format!("127.0.0.1:{}", free_port()),
                    proc: None,
                    env,
                })
                .collect(),
        };
        for i in 0..n {
            f.start(i);
        }
        f
    }

    /// Starts agent `i` (again) and waits until it is ready.
    pub(crate) fn start(&mut self, i: usize) {
        let p = self.spawn(i);
        let what = format!("agent {i}");
        crate::harness::await_ready(
            &self.nodes[i].addr,
            "/readyz",
            Duration::from_secs(30),
            &what,
            || p.dump(),
        );
        self.nodes[i].proc = Some(p);
    }

    pub(crate) fn spawn(&self, i: usize) -> Running {
        let rules_dir = self.s.path("rules");
        let url_file = self.s.path("store-url");
        std::fs::write(&url_file, &self.url).unwrap();
        // The agent reads a secret file only if it is private to its owner.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&url_file, private).unwrap();
        let ttl = format!("{TTL_S}s");
        let args = [
            "serve",
            "--rules-dir",
            rules_dir.to_str().unwrap(),
            "--listen",
            &self.nodes[i].addr,
            "--store-url-file",
            url_file.to_str().unwrap(),
            "--lease-ttl",
            &ttl,
            "--prometheus",
            &prometheus().url,
        ];
        let env: Vec<(&str, &str)> = self.nodes[i]
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        start_env(&args, &env)
    }

    pub(crate) fn rule_file(&self, name: &str, yaml: &str) {
        let text = yaml.replace("@DIR@", &self.s.dir.path().display().to_string());
        std::fs::write(self.s.path(&format!("rules/{name}.yaml")), text).unwrap();
    }

    pub(crate) fn req(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        http(&self.nodes[i].addr, method, path, None, body)
    }

    pub(crate) fn proc(&self, i: usize) -> &Running {
        self.nodes[i].proc.as_ref().expect("running")
    }

    pub(crate) fn dump(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                n.proc
                    .as_ref()
                    .map(|p| format!("--- agent {i}:\n{}", p.dump()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The agent holding watch `id`'s lease, by its pid in the holder id.
    pub(crate) fn owner(&self, pg: &PgCluster, id: &str) -> Option<usize> {
        let holder = pg.psql(
            postgres::db_of(&self.url),
            &format!("SELECT holder FROM leases WHERE watch_id = '{id}' AND expires_at > now()"),
        );
        let pid: u32 = holder.split(':').nth(1)?.parse().ok()?;
        self.nodes
            .iter()
            .position(|n| n.proc.as_ref().is_some_and(|p| p.pid == pid))
    }

    pub(crate) fn await_owner(&self, pg: &PgCluster, id: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.owner(pg, id) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "nobody owns {id}:\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates watch `id` of the `checkout` rule file (vars `test`) through agent 0,
    /// and waits for its first poll there.
    pub(crate) fn create_polled(&self, test: &str, id: &str) {
        let (status, w) = self.req(
            0,
            "POST",
            "/api/v1/watches",
            Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": id})),
        );
        assert_eq!(status, 201, "{w}");
        self.await_watch(0, id, Duration::from_secs(10), |w| {
            w["rule_states"][0]["last_poll_ms"].is_number()
        });
    }

    /// Polls watch `id` through agent `i` until `pred` holds.
    pub(crate) fn await_watch(
        &self,
        i: usize,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, w) = self.req(i, "GET", &format!("/api/v1/watches/{id}"), None);
            if status == 200 && pred(&w) {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "watch {id} never reached the expected state through agent {i}; last: {w}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Rollbacks logged so far: (watch, fencing token, unix ms).
    pub(crate) fn rollbacks(&self) -> Vec<(String, i64, u64)> {
        self.s
            .lines("actions.log")
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect()
    }

    pub(crate) fn await_rollbacks(&self, n: usize, timeout: Duration) -> Vec<(String, i64, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.rollbacks();
            if r.len() >= n {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "only {} rollbacks:\n{}",
                r.len(),
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn metrics(&self, i: usize) -> String {
        crate::harness::http_get(&self.nodes[i].addr, "/metrics")
            .unwrap()
            .1
    }
}

pub(crate) fn pending_since(w: &Value) -> Option<u64> {
    w["series"]
        .as_array()?
        .iter()
        .find(|s| s["phase"] == "pending")?["since_ms"]
        .as_u64()
}

pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// Whether process `pid` is stopped (state `T` in /proc/PID/stat).
pub(crate) fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

#[test]
fn a_watch_is_visible_everywhere_and_adopted_after_its_owner_is_killed() {
    let test = "pg-kill";
    set(test, 0.1);
    let pg = postgres::shared();
    let fleet = Fleet::new(&pg.database(), 3);
    let mut fleet = fleet;
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 6s", ROLLBACK));
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "k-1"})),
    );
    assert_eq!(status, 201, "{w}");
    // Created through A, visible through B and C.
    let (status, w) = fleet.req(1, "GET", "/api/v1/watches/k-1", None);
    assert_eq!((status, w["state"].as_str()), (200, Some("running")), "{w}");
    let (_, list) = fleet.req(2, "GET", "/api/v1/watches?state=running", None);
    assert!(
        list["watches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == "k-1"),
        "{list}"
    );
    let owner = fleet.await_owner(pg, "k-1");
    assert_eq!(owner, 0, "the agent a watch was created through owns it");
    fleet.await_watch(0, "k-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"].is_number()
    });
    // A non-owner answers the verdict from what the owner recorded (Argo or Flagger
    // behind a load balancer may ask any agent): passing so far, not "not polled".
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = fleet.req(2, "GET", "/api/v1/watches/k-1/verdict", None);
        if status == 200 && v["verdict"] == "pass" {
            assert_eq!(v["final"], false, "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "verdict through a non-owner: {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    set(test, 0.9);
    let w = fleet.await_watch(1, "k-1", Duration::from_secs(10), |w| {
        pending_since(w).is_some()
    });
    let since = pending_since(&w).unwrap();
    while now_ms() < since + 2000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed_at = now_ms();
    let mut p = fleet.nodes[0].proc.take().unwrap();
    p.signal(Signal::SIGKILL);
    assert_eq!(p.wait_any(Duration::from_secs(10)), None);
    let rb = fleet.await_rollbacks(1, Duration::from_secs(30));
    let w = fleet.await_watch(1, "k-1", Duration::from_secs(20), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", fleet.dump());
    assert_eq!(fleet.rollbacks().len(), 1, "exactly one rollback: {rb:?}");
    let (watch, token, at) = rb[0].clone();
    assert_eq!(watch, "k-1");
    assert!(
        token >= 2,
        "rolled back by the adopter, with a newer token: {token}"
    );
    // On time: `for` + the TTL + one interval at most (plus a second for the scrape).
    let late_ms = at as i64 - (since as i64 + 6_000);
    eprintln!(
        "adopted rollback: {late_ms} ms after `for` ended; {} ms after the kill",
        at - killed_at
    );
    assert!(
        late_ms <= (TTL_S as i64 + 1 + 1) * 1000,
        "rolled back {late_ms} ms after `for` ended\n{}",
        fleet.dump()
    );
    let adopter = (1..3)
        .find(|&i| !fleet.proc(i).events("lease_adopted").is_empty())
        .unwrap_or_else(|| panic!("nobody logged an adoption:\n{}", fleet.dump()));
    assert!(
        metric(
            &fleet.metrics(adopter),
            "rollwatch_agent_lease_adoptions_total"
        ) >= 1.0
    );
    assert!(
        !fleet.proc(adopter).events("catch_up").is_empty(),
        "the adopter rebuilt the unowned time from Prometheus:\n{}",
        fleet.dump()
    );
}

#[test]
fn a_paused_owner_that_lost_its_lease_is_refused_and_runs_nothing() {
    let test = "pg-stop";
    set(test, 0.1);
    let pg = postgres::shared();
    let url = pg.database();
    // Agent 0 stops itself (SIGSTOP) once, right after its own trust check passed and
    // before its claim's transaction: only the database's fencing check is left.
    let mut fleet = Fleet {
        s: Scratch::new(),
        url,
        nodes: (0..3)
            .map(|i| Node {
                addr: format!("127.0.0.1:{}", free_port()),
                proc: None,
                env: if i == 0 {
                    vec![("ROLLWATCH_STOP_AT".into(), "claim_trusted".into())]
                } else {
                    Vec::new()
                },
            })
            .collect(),
    };
    std::fs::create_dir_all(fleet.s.path("rules")).unwrap();
    for i in 0..3 {
        fleet.start(i);
    }
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    fleet.create_polled(test, "s-1");
    assert_eq!(fleet.await_owner(pg, "s-1"), 0);
    set(test, 0.9);
    let pid = fleet.proc(0).pid;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stopped(pid) {
        assert!(
            Instant::now() < deadline,
            "agent 0 never reached its claim:\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it is stopped, another agent takes the watch over and rolls back.
    let rb = fleet.await_rollbacks(1, Duration::from_secs(30));
    assert!(rb[0].1 >= 2, "by the new holder: {rb:?}");
    fleet.proc(0).signal(Signal::SIGCONT);
    let refused = fleet
        .proc(0)
        .await_event("claim_refused", Duration::from_secs(20));
    assert_eq!(refused["watch"], "s-1", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("no longer holds"),
        "refused by the database's fencing check: {refused}"
    );
    let w = fleet.await_watch(1, "s-1", Duration::from_secs(20), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}");
    assert_eq!(fleet.rollbacks().len(), 1, "exactly one rollback");
    assert_eq!(
        metric(&fleet.metrics(0), "rollwatch_agent_claims_refused_total"),
        1.0
    );
    // The paused agent wrote nothing over the new owner's outcome.
    let w = fleet.await_watch(0, "s-1", Duration::from_secs(5), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}");
}

/// Review 2, hole 1: a leftover intent of a failed claim never reads as "never
/// started". Two hosts on one machine (each its own XDG_RUNTIME_DIR): B (agent 0, d1)
/// is paused right after its trust check; A (agent 1, d2) adopts the watch, claims,
/// starts the rollback and is killed -9 before recording its result; B resumes, writes
/// its intent and is refused; when A's lease expires B adopts the watch again. A's
/// command ran where B cannot see: its fate is unknown, and it never runs twice.
#[test]
fn a_refused_claims_leftover_intent_never_runs_the_rollback_again() {
    let test = "pg-leftover-intent";
    set(test, 0.1);
    let pg = postgres::shared();
    let s = Scratch::new();
    let xdg = |d: &str| {
        let dir = s.path(d);
        std::fs::create_dir_all(&dir).unwrap();
        ("XDG_RUNTIME_DIR".to_string(), dir.display().to_string())
    };
    let env = [
        vec![
            ("ROLLWATCH_STOP_AT".to_string(), "claim_trusted".to_string()),
            xdg("d1"),
        ],
        vec![
            (
                "ROLLWATCH_STOP_AT".to_string(),
                "command_spawned".to_string(),
            ),
            xdg("d2"),
        ],
    ];
    let mut fleet = Fleet {
        s,
        url: pg.database(),
        nodes: env
            .into_iter()
            .map(|env| Node {
                addr: format!("127.0.0.1:{}", free_port()),
                proc: None,
                env,
            })
            .collect(),
    };
    std::fs::create_dir_all(fleet.s.path("rules")).unwrap();
    for i in 0..2 {
        fleet.start(i);
    }
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 1s", ROLLBACK));
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "li-1"})),
    );
    assert_eq!(status, 201, "{w}");
    assert_eq!(fleet.await_owner(pg, "li-1"), 0);
    set(test, 0.9);
    let await_stopped = |fleet: &Fleet, i: usize| {
        let pid = fleet.proc(i).pid;
        let deadline = Instant::now() + Duration::from_secs(40);
        while !stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "agent {i} never stopped:\n{}",
                fleet.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    await_stopped(&fleet, 0);
    // A adopts, claims and starts the rollback, then dies before recording it.
    await_stopped(&fleet, 1);
    fleet.await_rollbacks(1, Duration::from_secs(20));
    fleet.proc(1).signal(Signal::SIGKILL);
    // B resumes: its claim is refused by the database (A's token is newer).
    fleet.proc(0).signal(Signal::SIGCONT);
    let refused = fleet
        .proc(0)
        .await_event("claim_refused", Duration::from_secs(20));
    assert_eq!(refused["watch"], "li-1", "{refused}");
    // A's lease expires; B adopts the watch and resolves the interrupted rollback.
    let w = fleet.await_watch(0, "li-1", Duration::from_secs(40), |w| {
        w["state"] != "running"
    });
    assert_eq!(
        fleet.rollbacks().len(),
        1,
        "the rollback ran once: {w}\n{}",
        fleet.dump()
    );
    assert_eq!(w["outcome"], "rollback_unknown", "{w}\n{}", fleet.dump());
}

/// Issue 19, item 5 (second bullet) and item 10: the owner is paused (SIGSTOP) while
/// its rollback runs; the agent that adopts the watch on the same host sees the
/// command's process group, waits for it, and decides from the exit its supervisor
/// recorded: `rolled_back`, not `rollback_unknown` (what it said before).
#[test]
fn an_adopter_on_the_same_host_waits_for_the_running_command_and_records_its_exit() {
    let test = "pg-same-host";
    set(test, 0.1);
    let pg = postgres::shared();
    let s = Scratch::new();
    let runtime = s.path("run");
    let xdg = ("XDG_RUNTIME_DIR".to_string(), runtime.display().to_string());
    let mut fleet = Fleet {
        s,
        url: pg.database(),
        nodes: (0..2)
            .map(|i| Node {
                addr: format!("127.0.0.1:{}", free_port()),
                proc: None,
                env: if i == 0 {
                    vec![
                        ("ROLLWATCH_STOP_AT".into(), "command_spawned".into()),
                        xdg.clone(),
                    ]
                } else {
                    vec![xdg.clone()]
                },
            })
            .collect(),
    };
    std::fs::create_dir_all(fleet.s.path("rules")).unwrap();
    for i in 0..2 {
        fleet.start(i);
    }
    let slow = r#"  command: ["sh", "-c", "echo rollback $ROLLWATCH_WATCH_ID $ROLLWATCH_FENCING_TOKEN $(date +%s%3N) >> @DIR@/actions.log; sleep 6; echo done >> @DIR@/done.log"]
  timeout: 30s"#;
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 1s", slow));
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "h-1"})),
    );
    assert_eq!(status, 201, "{w}");
    assert_eq!(fleet.await_owner(pg, "h-1"), 0);
    set(test, 0.9);
    let pid = fleet.proc(0).pid;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stopped(pid) {
        assert!(
            Instant::now() < deadline,
            "agent 0 never started its rollback:\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let w = fleet.await_watch(1, "h-1", Duration::from_secs(40), |w| {
        w["state"] != "running"
    });
    fleet.proc(0).signal(Signal::SIGCONT);
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", fleet.dump());
    assert_eq!(w["actions"][0]["state"], "finished", "{w}");
    assert_eq!(w["actions"][0]["result"], "succeeded", "{w}");
    assert_eq!(
        fleet.s.lines("done.log").len(),
        1,
        "decided once the command had ended"
    );
    assert_eq!(fleet.rollbacks().len(), 1, "exactly one rollback");
    assert_eq!(fleet.proc(1).events("action_recovered").len(), 1);
}

#[test]
fn a_database_outage_runs_nothing_and_judging_resumes_when_it_returns() {
    let test = "pg-outage";
    set(test, 0.1);
    let pg = PgCluster::start();
    let url = pg.database();
    let fleet = Fleet::new(&url, 1);
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 3s", ROLLBACK));
    fleet.create_polled(test, "o-1");
    pg.stop_server();
    set(test, 0.9);
    let breached_at = now_ms();
    // The agent notices (its renewals fail) and stops acting past its trust window.
    fleet
        .proc(0)
        .await_event_where("lease_lost", Duration::from_secs(20), |e| {
            e["watch"] == "o-1"
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&fleet.metrics(0), "rollwatch_agent_store_up") != 0.0 {
        assert!(Instant::now() < deadline, "store_up never went to 0");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The breach has lasted well past `for`: still nothing ran.
    while now_ms() < breached_at + 3_000 + 2_000 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fleet.rollbacks().is_empty(),
        "an action ran during the outage:\n{}",
        fleet.dump()
    );
    let restarted_at = now_ms();
    pg.start_server();
    let rb = fleet.await_rollbacks(1, Duration::from_secs(30));
    assert!(rb[0].2 >= restarted_at, "{rb:?}");
    let w = fleet.await_watch(0, "o-1", Duration::from_secs(20), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", fleet.dump());
    assert_eq!(fleet.rollbacks().len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&fleet.metrics(0), "rollwatch_agent_store_up") != 1.0 {
        assert!(Instant::now() < deadline, "store_up never went back to 1");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(fleet);
}

#[test]
fn an_agent_is_not_ready_until_it_reaches_the_database_and_refuses_a_newer_schema() {
    let pg = PgCluster::start();
    let url = pg.database();
    pg.stop_server();
    let fleet = Fleet {
        s: Scratch::new(),
        url: url.clone(),
        nodes: vec![Node {
            addr: format!("127.0.0.1:{}", free_port()),
            proc: None,
            env: Vec::new(),
        }],
    };
    std::fs::create_dir_all(fleet.s.path("rules")).unwrap();
    let p = fleet.spawn(0);
    p.await_event("store_unreachable", Duration::from_secs(20));
    assert_eq!(
        crate::harness::http_get(&fleet.nodes[0].addr, "/readyz").map(|r| r.0),
        Some(503)
    );
    pg.start_server();
    crate::harness::await_ready(
        &fleet.nodes[0].addr,
        "/readyz",
        Duration::from_secs(20),
        "agent 0",
        || p.dump(),
    );
    drop(p);
    pg.psql(
        postgres::db_of(&url),
        "UPDATE rollwatch_schema SET version = 99",
    );
    let mut p = fleet.spawn(0);
    assert_eq!(p.wait(Duration::from_secs(20)), 2, "{}", p.dump());
    assert!(
        p.dump().contains("newer than this rollwatch knows"),
        "{}",
        p.dump()
    );
}

/// A small xorshift generator: the chaos loop's choices, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn chaos_kill_9_and_sigstop_during_real_breaches_never_duplicate_or_miss_a_rollback() {
    let test = "pg-chaos";
    // Every watch breaches from its first poll: each must roll back exactly once.
    set(test, 0.9);
    let pg = postgres::shared();
    // CHAOS_SKEW=1: two of the three agents' clocks are ten minutes off (fast, slow).
    let env = if std::env::var("CHAOS_SKEW").is_ok_and(|v| v == "1") {
        use crate::clock_fleet::skewed;
        vec![Vec::new(), skewed("+10m"), skewed("-10m")]
    } else {
        vec![Vec::new(); 3]
    };
    let mut fleet = Fleet::with_env(&pg.database(), env);
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 2s", ROLLBACK));
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(now_ms)
        | 1;
    eprintln!("chaos seed {seed} (CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let rounds: u64 = std::env::var("CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut stopped: Vec<(usize, Instant)> = Vec::new();
    let (mut kills, mut stops) = (0u64, 0u64);
    let mut ids = Vec::new();
    let mut round = 0;
    // A round is one kill -9 or SIGSTOP (with a new watch breaching before it).
    while kills + stops < rounds {
        round += 1;
        // A new watch through an agent that answers.
        if stopped.len() == 3 {
            let (j, _) = stopped.remove(0);
            fleet.proc(j).signal(Signal::SIGCONT);
        }
        let live: Vec<usize> = (0..3)
            .filter(|i| !stopped.iter().any(|(j, _)| j == i))
            .collect();
        let via = live[rng.below(live.len() as u64) as usize];
        let id = format!("c-{round}");
        let (status, w) = fleet.req(
            via,
            "POST",
            "/api/v1/watches",
            Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": id})),
        );
        assert_eq!(status, 201, "{w}");
        ids.push(id);
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        // Paused agents whose time is up continue.
        let now = Instant::now();
        stopped.retain(|&(j, until)| {
            if now >= until {
                fleet.proc(j).signal(Signal::SIGCONT);
                false
            } else {
                true
            }
        });
        // One random agent is killed (and restarted) or paused for 0.5-6 s.
        let j = rng.below(3) as usize;
        if stopped.iter().any(|(k, _)| *k == j) {
            continue;
        }
        if rng.below(2) == 0 {
            let mut p = fleet.nodes[j].proc.take().unwrap();
            p.signal(Signal::SIGKILL);
            p.wait_any(Duration::from_secs(10));
            fleet.start(j);
            kills += 1;
        } else {
            fleet.proc(j).signal(Signal::SIGSTOP);
            stopped.push((
                j,
                Instant::now() + Duration::from_millis(500 + rng.below(5500)),
            ));
            stops += 1;
        }
    }
    for (j, _) in stopped.drain(..) {
        fleet.proc(j).signal(Signal::SIGCONT);
    }
    // Every watch ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, list) = fleet.req(0, "GET", "/api/v1/watches?state=running", None);
        if list["watches"].as_array().is_some_and(|w| w.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watches still running: {list}\n{}",
            fleet.dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rollbacks = fleet.rollbacks();
    let (mut duplicates, mut misses, mut unknown) = (0, 0, 0);
    let mut report = Vec::new();
    for id in &ids {
        let n = rollbacks.iter().filter(|r| &r.0 == id).count();
        let (_, w) = fleet.req(0, "GET", &format!("/api/v1/watches/{id}"), None);
        let outcome = w["outcome"].as_str().unwrap_or("?").to_string();
        match (outcome.as_str(), n) {
            ("rolled_back", 1) => {}
            // The agent died between the claim's commit and the command's start, or
            // while it ran: it is never run twice, and the outcome says so.
            ("rollback_unknown", 0 | 1) => unknown += 1,
            (_, 0) => misses += 1,
            _ => duplicates += 1,
        }
        if !(outcome == "rolled_back" && n == 1) {
            report.push(format!("{id}: {outcome}, {n} rollbacks"));
        }
    }
    eprintln!(
        "chaos: {rounds} rounds, {kills} kill -9, {stops} SIGSTOP, {} watches: {duplicates} duplicates, {misses} misses, {unknown} rollback_unknown",
        ids.len()
    );
    assert_eq!((duplicates, misses), (0, 0), "{report:?}\n{}", fleet.dump());
}

/// The rule's live `last_poll_ms` and value through an agent's API.
fn live_poll(w: &Value) -> (i64, f64) {
    let r = &w["rule_states"][0];
    (
        r["last_poll_ms"].as_i64().unwrap_or(0),
        r["value"].as_f64().unwrap_or(f64::NAN),
    )
}

#[test]
fn an_adopter_keeps_the_breaches_window_and_the_next_breach_rolls_back() {
    // Issue 19, item 6, adoption: `breaches: 3 of 5`, two breaches stored by the owner,
    // which is killed; the adopter reads the window from PostgreSQL, so the next breach
    // is the third (the old code counted one restored breach and needed two more).
    let test = "pg-breaches-window";
    let series = crate::harness::agent::series(test);
    set(test, 0.9);
    let pg = postgres::shared();
    let mut fleet = Fleet::new(&pg.database(), 2);
    fleet.rule_file(
        "checkout",
        &rules("    above: 0.5\n    breaches: 3 of 5", ROLLBACK)
            .replace("interval: 1s", "interval: 5s")
            .replace("duration: 60s", "duration: 50s"),
    );
    let (status, w) = fleet.req(
        0,
        "POST",
        "/api/v1/watches",
        Some(&json!({"rules": "checkout", "vars": {"test": test}, "id": "bw"})),
    );
    assert_eq!(status, 201, "{w}");
    assert_eq!(fleet.await_owner(pg, "bw"), 0);
    let db = postgres::db_of(&fleet.url).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let second: i64 = loop {
        let row = pg.psql(
            &db,
            "SELECT last_ms || ' ' || coalesce(windows, '') FROM polls WHERE watch_id = 'bw'",
        );
        if row.contains("\"11\"") {
            break row.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "two breaches never stored: {row}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    prometheus().exporter.set(&series, 0.1);
    let mut p = fleet.nodes[0].proc.take().unwrap();
    p.signal(Signal::SIGKILL);
    assert_eq!(p.wait_any(Duration::from_secs(10)), None);
    prometheus().await_value(&series, |x| x == Some(0.1));
    // Adopted by agent 1: the polls after the kill do not breach.
    let w = fleet.await_watch(1, "bw", Duration::from_secs(30), |w| {
        live_poll(w).0 >= second + 4_000
    });
    let (third, value) = live_poll(&w);
    assert!(value < 0.5 && third < second + 14_000, "{w}");
    assert_eq!(fleet.owner(pg, "bw"), Some(1));
    assert!(fleet.rollbacks().is_empty());
    set(test, 0.9);
    let w = fleet.await_watch(1, "bw", Duration::from_secs(20), |w| {
        w["state"] != "running" || live_poll(w).0 >= third + 4_000
    });
    prometheus().exporter.set(&series, 0.1);
    let w = if w["state"] == "running" {
        fleet.await_watch(1, "bw", Duration::from_secs(60), |w| {
            w["state"] != "running"
        })
    } else {
        w
    };
    assert_eq!(
        w["outcome"],
        "rolled_back",
        "the adopter did not act on the third breach: {w}\n{}",
        fleet.dump()
    );
    assert_eq!(fleet.rollbacks().len(), 1, "{:?}", fleet.rollbacks());
}

/// Review 2, hole 4: a watch whose claim failed (a store error) stops on its agent,
/// and the release of its lease fails too (injected); the agent must not renew that
/// lease for ever: it is released again from the lease loop (or expires), the watch is
/// adopted again and rolled back. Before, the agent's renewals kept it, and nobody
/// could adopt the watch until that agent restarted.
/// An adoption whose read of the watches it took waits longer than the trust window
/// (`ROLLWATCH_ADOPT_READ_DELAY_MS`, as a read queued behind thousands of store calls
/// waits): the leases are held, and renewed, from the adoption on, so the watch runs on
/// the adopter. Held only after the read, they lapsed at once ("lease lost"), and the
/// watch went from adoption to adoption without ever running.
#[test]
fn an_adoption_whose_read_is_slow_keeps_the_leases_it_took() {
    let test = "pg-slow-adopt";
    set(test, 0.1);
    let pg = postgres::shared();
    let slow = vec![(
        "ROLLWATCH_ADOPT_READ_DELAY_MS".to_string(),
        (3 * TTL_S * 1000).to_string(),
    )];
    let mut fleet = Fleet::with_env(&pg.database(), vec![vec![], slow]);
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 6s", ROLLBACK));
    fleet.create_polled(test, "s-1");
    assert_eq!(fleet.await_owner(pg, "s-1"), 0);
    let mut p = fleet.nodes[0].proc.take().unwrap();
    p.signal(Signal::SIGKILL);
    assert_eq!(p.wait_any(Duration::from_secs(10)), None);
    fleet
        .proc(1)
        .await_event_where("lease_adopted", Duration::from_secs(30), |e| {
            e["watch"] == "s-1"
        });
    // Adopted, and polled by the adopter after its slow read.
    fleet
        .proc(1)
        .await_event_where("watch_resumed", Duration::from_secs(6 * TTL_S), |e| {
            e["watch"] == "s-1"
        });
    let resumed = now_ms();
    fleet.await_watch(1, "s-1", Duration::from_secs(10), |w| {
        w["rule_states"][0]["last_poll_ms"]
            .as_i64()
            .is_some_and(|t| t > resumed as i64)
    });
    assert!(
        fleet.proc(1).events("lease_lost").is_empty(),
        "the adopter lost the lease it had just taken:\n{}",
        fleet.dump()
    );
    assert_eq!(fleet.await_owner(pg, "s-1"), 1);
}

#[test]
fn a_watch_given_up_with_a_failed_release_is_adopted_again_and_rolled_back() {
    let test = "pg-given-up";
    set(test, 0.1);
    let pg = postgres::shared();
    let env = vec![
        ("ROLLWATCH_FAIL_CLAIM_COMMITS".to_string(), "1".to_string()),
        ("ROLLWATCH_FAIL_RELEASES".to_string(), "1".to_string()),
    ];
    let fleet = Fleet::with_env(&pg.database(), vec![env]);
    fleet.rule_file("checkout", &rules("    above: 0.5\n    for: 0s", ROLLBACK));
    fleet.create_polled(test, "g-1");
    set(test, 0.9);
    fleet
        .proc(0)
        .await_event_where("claim_not_committed", Duration::from_secs(20), |e| {
            e["watch"] == "g-1"
        });
    let rb = fleet.await_rollbacks(1, Duration::from_secs(4 * TTL_S + 10));
    assert_eq!(rb[0].0, "g-1");
    let w = fleet.await_watch(0, "g-1", Duration::from_secs(20), |w| {
        w["state"] != "running"
    });
    assert_eq!(w["outcome"], "rolled_back", "{w}\n{}", fleet.dump());
    assert_eq!(fleet.rollbacks().len(), 1);
}
