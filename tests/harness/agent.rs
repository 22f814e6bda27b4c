//! The agent under test: `rollwatch serve` on a scratch rules directory and state file,
//! restartable in place, talked to over HTTP; plus rule files on the shared real
//! Prometheus's `rw_value{test="..."}` series.

use crate::harness::{free_port, prometheus, start_exe_env, Running, Scratch};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A rule file on `rw_value{test="${test}"}`; the rollback appends
/// "rollback <unix ms>" to @DIR@/actions.log.
pub fn rules(rule: &str, rollback: &str) -> String {
    crate::harness::rule_file::rule_file()
        .var("test", "")
        .watch("  duration: 60s\n  interval: 1s")
        .rollback_raw(rollback)
        .rule("r", Some(crate::harness::rule_file::SERIES_OF_VAR), rule)
        .build()
}

pub const ROLLBACK: &str = r#"  command: ["sh", "-c", "echo rollback $(date +%s%3N) >> @DIR@/actions.log"]
  timeout: 30s"#;

pub use crate::harness::rule_file::series;

/// One HTTP/1.1 request; returns the status and the JSON body (Null if not JSON).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// An agent on a scratch rules directory and state file, restartable in place.
pub struct Agent {
    pub s: Scratch,
    pub addr: String,
    pub token: Option<String>,
    pub prom_url: String,
    pub proc: Option<Running>,
    /// Extra environment for the agent process (e.g. `ROLLWATCH_CRASH_AT`).
    pub env: Vec<(String, String)>,
    /// Extra arguments for `serve`.
    pub args: Vec<String>,
}

impl Agent {
    pub fn new(token: Option<&str>) -> Agent {
        Agent::with_prometheus(token, &prometheus().url)
    }

    /// An agent started with extra `serve` arguments.
    pub fn with_args(token: Option<&str>, args: &[&str]) -> Agent {
        Agent::build(token, &prometheus().url, args)
    }

    pub fn with_prometheus(token: Option<&str>, prom_url: &str) -> Agent {
        Agent::build(token, prom_url, &[])
    }

    /// An agent on `prom_url` (empty: no `--prometheus` at all) with extra arguments.
    pub fn build(token: Option<&str>, prom_url: &str, args: &[&str]) -> Agent {
        let s = Scratch::new();
        std::fs::create_dir_all(s.path("rules")).unwrap();
        if let Some(t) = token {
            std::fs::write(s.path("token"), format!("{t}\n")).unwrap();
            // The agent reads a secret file only if it is private to its owner.
            let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
            std::fs::set_permissions(s.path("token"), private).unwrap();
        }
        let mut a = Agent {
            s,
            addr: format!("127.0.0.1:{}", free_port()),
            token: token.map(str::to_string),
            prom_url: prom_url.to_string(),
            proc: None,
            env: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        a.start();
        a
    }

    /// Starts the agent and waits until it is ready.
    pub fn start(&mut self) {
        self.start_with("/readyz");
    }

    /// Starts the agent and waits until it answers `path` with 200.
    pub fn start_with(&mut self, path: &str) {
        self.start_exe(crate::harness::bin(), path);
    }

    /// Starts the agent from the binary at `exe` and waits until it answers `path`.
    pub fn start_exe(&mut self, exe: impl AsRef<std::ffi::OsStr>, path: &str) {
        let rules_dir = self.s.path("rules");
        let state = self.s.path("state.db");
        let token = self.s.path("token");
        let mut args = vec![
            "serve",
            "--rules-dir",
            rules_dir.to_str().unwrap(),
            "--listen",
            &self.addr,
            "--state",
            state.to_str().unwrap(),
        ];
        if !self.prom_url.is_empty() {
            args.extend(["--prometheus", &self.prom_url]);
        }
        if self.token.is_some() {
            args.extend(["--token-file", token.to_str().unwrap()]);
        }
        args.extend(self.args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let p = start_exe_env(exe, &args, &env);
        crate::harness::await_ready(&self.addr, path, Duration::from_secs(20), "agent", || {
            p.dump()
        });
        self.proc = Some(p);
    }

    pub fn kill9(&mut self) {
        let mut p = self.proc.take().expect("running");
        p.signal(Signal::SIGKILL);
        assert_eq!(p.wait_any(Duration::from_secs(10)), None, "killed");
    }

    pub fn rule_file(&self, name: &str, yaml: &str) {
        let text = yaml.replace("@DIR@", &self.s.dir.path().display().to_string());
        std::fs::write(self.s.path(&format!("rules/{name}.yaml")), text).unwrap();
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        http(&self.addr, method, path, self.token.as_deref(), body)
    }

    pub fn post(&self, body: Value) -> (u16, Value) {
        self.req("POST", "/api/v1/watches", Some(&body))
    }

    pub fn dump(&self) -> String {
        self.proc.as_ref().map(|p| p.dump()).unwrap_or_default()
    }

    /// Polls the watch until `pred` holds; returns it.
    pub fn await_watch(&self, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, w) = self.req("GET", &format!("/api/v1/watches/{id}"), None);
            if status == 200 && pred(&w) {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "watch {id} never reached the expected state; last: {w}\nlog:\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn await_finished(&self, id: &str, timeout: Duration) -> Value {
        self.await_watch(id, timeout, |w| w["state"] != "running")
    }

    pub fn actions(&self) -> Vec<String> {
        self.s.lines("actions.log")
    }
}

pub fn set(test: &str, v: f64) {
    let prom = prometheus();
    prom.exporter.set(&series(test), v);
    prom.await_value(&series(test), |x| x == Some(v));
}

pub fn pending(w: &Value) -> bool {
    w["series"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["phase"] == "pending"))
}

/// Kills the process group of the process that wrote its pid into `file` (a command
/// the agent left running when it was killed), its supervisor included: as a host
/// that lost the command would, nothing records its exit.
pub fn kill_group_in(file: &std::path::Path) {
    if let Some(pid) = std::fs::read_to_string(file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
            .unwrap_or(nix::unistd::Pid::from_raw(pid));
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
    }
}
