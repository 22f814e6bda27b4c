//! A real VictoriaMetrics (Debian's `victoria-metrics`, single node) as a second
//! backend: started once per test binary on a free loopback port, scraping the same
//! exporter as the shared Prometheus every second, so the watch tests can run against
//! both. History for replay is written with `/api/v1/import/prometheus`.

use super::{await_value_of, free_port, http_get, prometheus, query_value, Exporter};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::Duration;

/// The shared VictoriaMetrics.
pub struct Victoria {
    pub url: String,
    pub addr: String,
    /// The exporter it scrapes (the shared Prometheus's).
    pub exporter: Exporter,
    _dir: tempfile::TempDir,
}

impl Victoria {
    /// Instant query value of `query` at VictoriaMetrics's exact now (`nocache=1`
    /// turns off its 30s latency offset), if it has exactly one sample.
    pub fn value(&self, query: &str) -> Option<f64> {
        query_value(&self.addr, "nocache=1&", query)
    }

    /// Waits until VictoriaMetrics has scraped `query` to a value that satisfies `pred`.
    pub fn await_value(&self, query: &str, pred: impl Fn(Option<f64>) -> bool) {
        await_value_of("VictoriaMetrics", query, || self.value(query), pred);
    }

    /// Imports Prometheus text lines with millisecond timestamps and flushes them, so
    /// they are searchable when this returns.
    pub fn import(&self, lines: &str) {
        let status = post(&self.addr, "/api/v1/import/prometheus", lines);
        assert_eq!(status, Some(204), "import into VictoriaMetrics");
        assert_eq!(
            http_get(&self.addr, "/internal/force_flush").map(|(s, _)| s),
            Some(200),
            "flush VictoriaMetrics"
        );
    }
}

fn post(addr: &str, path: &str, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split_whitespace().nth(1)?.parse().ok()
}

/// Starts (once) VictoriaMetrics scraping the test exporter every second.
pub fn victoria() -> &'static Victoria {
    static VM: OnceLock<Victoria> = OnceLock::new();
    VM.get_or_init(|| {
        let exporter = prometheus().exporter.clone();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("scrape.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{}']\n",
                exporter.addr
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let args = vec![
            format!("-promscrape.config={}", config.display()),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            format!("-httpListenAddr={addr}"),
            "-retentionPeriod=10y".to_string(),
            "-loggerLevel=ERROR".to_string(),
        ];
        let log = dir.path().join("victoria-metrics.log");
        let log_file = std::fs::File::create(&log).unwrap();
        // Spawned from a thread that lives as long as the test process, with a parent
        // death signal, so it never outlives the tests.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut cmd = Command::new("victoria-metrics");
            cmd.args(&args).stdout(Stdio::null()).stderr(log_file);
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                        .map_err(std::io::Error::from)
                });
            }
            let child = cmd.spawn();
            let ok = child.is_ok();
            tx.send(child.map(|_| ()).map_err(|e| e.to_string()))
                .unwrap();
            if ok {
                loop {
                    thread::park();
                }
            }
        });
        rx.recv()
            .unwrap()
            .expect("start victoria-metrics (apt-get install -y victoria-metrics)");
        super::await_ready(&addr, "/health", Duration::from_secs(60), "VictoriaMetrics", || {
            format!("see {}", log.display())
        });
        let vm = Victoria {
            url: format!("http://{addr}"),
            addr,
            exporter,
            _dir: dir,
        };
        vm.await_value("rw_value{test=\"canary\"}", |v| v == Some(1.0));
        vm
    })
}
