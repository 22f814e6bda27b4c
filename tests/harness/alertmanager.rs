//! A real Alertmanager (Debian's `prometheus-alertmanager`) for the alertmanager
//! channel tests: one per test, on a free loopback port, with no clustering and a
//! single receiver that sends nothing; its v2 API is read back to check what arrived.

use super::{free_port, urlencode};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Alertmanager {
    pub addr: String,
    pub url: String,
    child: Child,
}

/// Starts Alertmanager with its storage and config under `dir`; returns once it
/// answers `/-/ready`.
pub fn alertmanager(dir: &Path) -> Alertmanager {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg("--cluster.listen-address=")
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus-alertmanager is installed (see .ci/run)");
    let am = Alertmanager {
        url: format!("http://{addr}"),
        addr,
        child,
    };
    crate::harness::await_ready(
        &am.addr,
        "/-/ready",
        Duration::from_secs(30),
        "Alertmanager",
        String::new,
    );
    am
}

impl Alertmanager {
    /// `GET /api/v2/alerts` (active ones only, as Alertmanager serves them) whose
    /// labels match `filter` (e.g. `test="x"`).
    pub fn alerts(&self, filter: &str) -> Vec<Value> {
        self.get(&format!("/api/v2/alerts?filter={}", urlencode(filter)))
    }

    /// `GET /api/v2/silences`.
    pub fn silences(&self) -> Vec<Value> {
        self.get("/api/v2/silences")
    }

    /// Awaits (by reading the API back) the silence `id` in `state`.
    pub fn await_silence(&self, id: &str, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let all = self.silences();
            if let Some(s) = all
                .iter()
                .find(|s| s["id"] == id && s["status"]["state"] == state)
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "silence {id} never {state}: {all:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> Vec<Value> {
        // HTTP/1.0, so that the answer is never chunked.
        let mut s = TcpStream::connect(&self.addr).expect("Alertmanager answers");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{resp}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Awaits (by reading the API back) alerts matching `filter` until `pred` holds.
    pub fn await_alerts(
        &self,
        filter: &str,
        pred: impl Fn(&[Value]) -> bool,
        within: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let a = self.alerts(filter);
            if pred(&a) {
                return a;
            }
            assert!(Instant::now() < deadline, "alerts never matched: {a:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
