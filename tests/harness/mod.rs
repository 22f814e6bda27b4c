//! Test harness: the built binary, an exporter the tests control, a real Prometheus,
//! and helpers to await events instead of sleeping.

pub mod agent;
pub mod alertmanager;
pub mod backend;
pub mod fake;
pub mod postgres;
pub mod proxy;
pub mod receiver;
pub mod rule_file;
pub mod victoria;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rollwatch")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP GET for talking to Prometheus from tests.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The one readiness wait of the harness: polls `GET path` on `addr` every 50 ms until
/// it answers 200, and fails the test after `within`, naming `what` and showing
/// `log()` (the server's log, or where to find it).
pub fn await_ready(addr: &str, path: &str, within: Duration, what: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while http_get(addr, path).map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{what} not ready within {within:?}:\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Series the exporter serves: `name{labels}` -> value.
#[derive(Clone, Default)]
pub struct Exporter {
    series: Arc<Mutex<BTreeMap<String, f64>>>,
    pub addr: String,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let ex = Exporter {
            series: Arc::default(),
            addr,
        };
        let series = ex.series.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let series = series.clone();
                thread::spawn(move || serve_metrics(stream, &series));
            }
        });
        ex
    }

    pub fn set(&self, series: &str, value: f64) {
        self.series
            .lock()
            .unwrap()
            .insert(series.to_string(), value);
    }
}

fn serve_metrics(mut stream: TcpStream, series: &Mutex<BTreeMap<String, f64>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    // Skip the request head.
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    let mut body = String::from("# TYPE rw_value gauge\n");
    for (k, v) in series.lock().unwrap().iter() {
        let v = if v.is_nan() {
            "NaN".to_string()
        } else {
            v.to_string()
        };
        body.push_str(&format!("{k} {v}\n"));
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The shared real Prometheus and its exporter.
pub struct Prom {
    pub url: String,
    pub addr: String,
    pub exporter: Exporter,
    _dir: tempfile::TempDir,
}

impl Prom {
    /// Instant query value of `query`, if it has exactly one sample.
    pub fn value(&self, query: &str) -> Option<f64> {
        query_value(&self.addr, "", query)
    }

    /// Waits until Prometheus has scraped `query` to a value that satisfies `pred`.
    pub fn await_value(&self, query: &str, pred: impl Fn(Option<f64>) -> bool) {
        await_value_of("Prometheus", query, || self.value(query), pred);
    }
}

/// The value of an instant query against a Prometheus query API at `addr`
/// (`/api/v1/query?{params}query=...`), if it has exactly one sample.
pub fn query_value(addr: &str, params: &str, query: &str) -> Option<f64> {
    let (status, body) = http_get(
        addr,
        &format!("/api/v1/query?{params}query={}", urlencode(query)),
    )?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// Polls `value` until `pred` holds (20 s at most), else panics naming the backend.
pub fn await_value_of(
    backend: &str,
    query: &str,
    value: impl Fn() -> Option<f64>,
    pred: impl Fn(Option<f64>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if pred(value()) {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("{backend} never showed the expected value for {query}");
}

/// A real Prometheus serving history the test wrote itself: `openmetrics` (text ending
/// in `# EOF`) is backfilled with `promtool tsdb create-blocks-from openmetrics` into a
/// fresh TSDB in `dir` before Prometheus starts on it. Returns its base URL.
pub fn backfilled_prometheus(dir: &Path, openmetrics: &str) -> String {
    let input = dir.join("history.om");
    std::fs::write(&input, openmetrics).unwrap();
    let data = dir.join("data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("run promtool (apt-get install -y prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = spawn_prometheus(dir, "global:\n  scrape_interval: 1m\n", &data);
    format!("http://{addr}")
}

/// Starts a real Prometheus with `config` over the TSDB at `data`; returns its address
/// once it answers `/-/ready`. It is killed when the test process exits.
pub fn spawn_prometheus(dir: &Path, config: &str, data: &Path) -> String {
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> = vec![
        format!("--config.file={}", config_path.display()),
        format!("--storage.tsdb.path={}", data.display()),
        "--storage.tsdb.retention.time=10y".into(),
        format!("--web.listen-address={addr}"),
        "--log.level=warn".into(),
    ];
    // Spawned from a thread that lives as long as the test process, with a parent
    // death signal, so Prometheus never outlives the tests.
    let (tx, rx) = mpsc::channel();
    let log = dir.join("prometheus.log");
    thread::spawn(move || {
        let mut cmd = Command::new("prometheus");
        cmd.args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
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
        .expect("start prometheus (apt-get install -y prometheus)");
    await_ready(
        &addr,
        "/-/ready",
        Duration::from_secs(60),
        "Prometheus",
        || format!("see {}", dir.join("prometheus.log").display()),
    );
    addr
}

/// A Prometheus a test owns, which it can stop and start again on the same port and
/// TSDB (a restart in the middle of a watch). Stopped when dropped.
pub struct PromProcess {
    pub addr: String,
    pub url: String,
    args: Vec<String>,
    log: PathBuf,
    /// Asks the thread that owns the process to stop it; then reports it stopped.
    running: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
}

/// Like `spawn_prometheus`, but returns a handle that can stop and restart it.
pub fn spawn_prometheus_process(dir: &Path, config: &str, data: &Path) -> PromProcess {
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut p = PromProcess {
        url: format!("http://{addr}"),
        args: vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.retention.time=10y".into(),
            format!("--web.listen-address={addr}"),
            "--log.level=warn".into(),
        ],
        addr,
        log: dir.join("prometheus.log"),
        running: None,
    };
    p.start();
    p
}

impl PromProcess {
    /// Starts it (again) and returns once it answers `/-/ready`.
    pub fn start(&mut self) {
        assert!(self.running.is_none(), "Prometheus is already running");
        let (started_tx, started_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let args = self.args.clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // The thread that spawns it outlives it (a parent death signal is tied to the
        // spawning thread), and stops it when asked or when the handle is dropped.
        thread::spawn(move || {
            let mut cmd = Command::new("prometheus");
            cmd.args(&args).stdout(Stdio::null()).stderr(log);
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                        .map_err(std::io::Error::from)
                });
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = started_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = started_tx.send(Ok(()));
            let _ = stop_rx.recv();
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = done_tx.send(());
        });
        started_rx
            .recv()
            .unwrap()
            .expect("start prometheus (apt-get install -y prometheus)");
        self.running = Some((stop_tx, done_rx));
        await_ready(
            &self.addr,
            "/-/ready",
            Duration::from_secs(60),
            "Prometheus",
            || format!("see {}", self.log.display()),
        );
    }

    /// Waits until it has scraped `query` to exactly one sample equal to `value`.
    pub fn await_value(&self, query: &str, value: f64) {
        await_value_of(
            &format!("Prometheus at {}", self.addr),
            query,
            || query_value(&self.addr, "", query),
            |v| v == Some(value),
        );
    }

    /// Stops it (SIGTERM, as a service manager would) and returns once it has exited.
    pub fn stop(&mut self) {
        if let Some((stop, done)) = self.running.take() {
            let _ = stop.send(());
            let _ = done.recv_timeout(Duration::from_secs(30));
        }
    }
}

impl Drop for PromProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts (once) a real Prometheus scraping the test exporter every second.
pub fn prometheus() -> &'static Prom {
    static PROM: OnceLock<Prom> = OnceLock::new();
    PROM.get_or_init(|| {
        let exporter = Exporter::start();
        exporter.set("rw_value{test=\"canary\"}", 1.0);
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr
        );
        let addr = spawn_prometheus(dir.path(), &config, &dir.path().join("data"));
        let prom = Prom {
            url: format!("http://{addr}"),
            addr,
            exporter,
            _dir: dir,
        };
        prom.await_value("rw_value{test=\"canary\"}", |v| v == Some(1.0));
        prom
    })
}

/// A scratch directory with a rule file written into it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Writes `rules.yaml`, replacing `@DIR@` with the scratch directory.
    pub fn rules(&self, yaml: &str) -> PathBuf {
        let p = self.path("rules.yaml");
        std::fs::write(
            &p,
            yaml.replace("@DIR@", &self.dir.path().display().to_string()),
        )
        .unwrap();
        p
    }
    /// Lines of a file the rollback/pause commands append to (empty if never written).
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A running `rollwatch` with its JSON log lines collected as they arrive.
pub struct Running {
    child: Option<Child>,
    pub pid: u32,
    events: mpsc::Receiver<Value>,
    pub log: Arc<Mutex<Vec<Value>>>,
    exit: mpsc::Receiver<Option<i32>>,
    waiter: Option<thread::JoinHandle<()>>,
    /// The thread reading stderr into `log`, and word that it has read the last line.
    /// The process can exit while its last lines still sit in the pipe, so `wait`
    /// joins it before anyone reads `log`.
    reader: Option<(thread::JoinHandle<()>, mpsc::Receiver<()>)>,
}

/// How long, after rollwatch exits, its stderr may stay open (only a process it left
/// behind could hold it) before `wait` gives up on reading the rest.
const STDERR_CLOSE: Duration = Duration::from_secs(10);

pub fn start(args: &[&str]) -> Running {
    start_env(args, &[])
}

/// Like `start`, with extra environment variables for the rollwatch process.
pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    start_exe_env(bin(), args, env)
}

/// Like `start_env`, running the binary at `exe` (e.g. a link to it, deleted later).
pub fn start_exe_env(
    exe: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let mut child = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .arg("--log-format=json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rollwatch");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, events) = mpsc::channel();
    let log: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log2 = log.clone();
    let (read_tx, read_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            log2.lock().unwrap().push(v.clone());
            let _ = tx.send(v);
        }
        let _ = read_tx.send(());
    });
    let (etx, exit) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait().ok().and_then(|s| s.code());
        let _ = etx.send(status);
    });
    Running {
        child: None,
        pid,
        events,
        log,
        exit,
        waiter: Some(waiter),
        reader: Some((reader, read_rx)),
    }
}

impl Running {
    /// Waits for a log event with `event == name` (and matching `pred`); returns it.
    pub fn await_event(&self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if v["event"] == name => return v,
                Ok(_) => continue,
                Err(_) => panic!(
                    "no `{name}` event within {timeout:?}; log:\n{}",
                    self.dump()
                ),
            }
        }
    }

    /// Waits for a log event with `event == name` for which `pred` holds; returns it.
    pub fn await_event_where(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if v["event"] == name && pred(&v) => return v,
                Ok(_) => continue,
                Err(_) => panic!(
                    "no matching `{name}` event within {timeout:?}; log:\n{}",
                    self.dump()
                ),
            }
        }
    }

    /// Waits for the process to exit and returns its exit code, once every line it
    /// wrote to stderr is in `log` (so `events` and `dump` miss none of the last ones).
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        match self.exit.recv_timeout(timeout) {
            Ok(code) => {
                if let Some(w) = self.waiter.take() {
                    let _ = w.join();
                }
                self.join_reader();
                code.expect("rollwatch exited by a signal")
            }
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!(
                    "rollwatch did not exit within {timeout:?}; log:\n{}",
                    self.dump()
                )
            }
        }
    }

    /// Waits for the process to exit: Some(code), or None if a signal ended it; like
    /// `wait`, once every line it wrote to stderr is in `log`.
    pub fn wait_any(&mut self, timeout: Duration) -> Option<i32> {
        match self.exit.recv_timeout(timeout) {
            Ok(code) => {
                if let Some(w) = self.waiter.take() {
                    let _ = w.join();
                }
                self.join_reader();
                code
            }
            Err(_) => panic!(
                "rollwatch did not exit within {timeout:?}; log:\n{}",
                self.dump()
            ),
        }
    }

    /// Joins the stderr reader: the pipe reaches its end once rollwatch and anything
    /// that inherited its stderr have exited.
    fn join_reader(&mut self) {
        let Some((reader, done)) = self.reader.take() else {
            return;
        };
        match done.recv_timeout(STDERR_CLOSE) {
            Ok(()) => {
                let _ = reader.join();
            }
            Err(_) => panic!(
                "rollwatch exited but its stderr stayed open for {STDERR_CLOSE:?} (a process it left behind holds it): its last log lines cannot be read; log so far:\n{}",
                self.dump()
            ),
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), sig).unwrap();
    }

    /// Events named `name` seen so far.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["event"] == name)
            .cloned()
            .collect()
    }

    pub fn dump(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Running {
    /// Kills the process and waits until it is gone, so that what it held (a state
    /// file's lock, a port) is free for whatever the test starts next: a restart right
    /// after a dropped `Running` found the state file "in use by another agent".
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            // SIGKILL ends even a stopped process; the waiter reaps it.
            if self.exit.recv_timeout(Duration::from_secs(10)).is_ok() {
                let _ = waiter.join();
            }
        }
        let _ = self.child.take();
    }
}

/// Runs rollwatch to completion; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run rollwatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What a snapshot test does with its `.stderr` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Compare, and fail on any difference or a missing snapshot.
    Compare,
    /// `BLESS=1`: rewrite the snapshots from what the binary prints now.
    Bless,
}

impl SnapshotMode {
    /// The mode this run asks for. Blessing makes every snapshot test pass whatever
    /// the binary prints, so it is refused where `CI` is set: there a difference must
    /// fail the build, not rewrite the file it is compared with.
    pub fn from_env() -> SnapshotMode {
        SnapshotMode::from_vars(std::env::var_os("BLESS"), std::env::var_os("CI"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `from_env` over explicit values (an empty value counts as unset).
    pub fn from_vars(
        bless: Option<std::ffi::OsString>,
        ci: Option<std::ffi::OsString>,
    ) -> Result<SnapshotMode, String> {
        let set = |v: &Option<std::ffi::OsString>| v.as_ref().is_some_and(|v| !v.is_empty());
        match (set(&bless), set(&ci)) {
            (false, _) => Ok(SnapshotMode::Compare),
            (true, false) => Ok(SnapshotMode::Bless),
            (true, true) => Err(
                "BLESS is set together with CI: rewriting snapshots in CI would make every snapshot test pass; unset BLESS (bless locally and commit the files)".into(),
            ),
        }
    }
}

/// Compares `actual` with the snapshot file `path` (after rewriting it in `Bless`
/// mode). Err describes the difference, or the missing file.
pub fn check_snapshot(path: &Path, actual: &str, mode: SnapshotMode) -> Result<(), String> {
    if mode == SnapshotMode::Bless {
        std::fs::write(path, actual)
            .map_err(|e| format!("cannot bless {}: {e}", path.display()))?;
    }
    let expected = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "no snapshot {} ({e}); run with BLESS=1 to write it, then review and commit it; got:\n{actual}",
            path.display()
        )
    })?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "differs from {}:\n--- expected\n{expected}\n--- got\n{actual}",
            path.display()
        ))
    }
}

#[test]
fn snapshot_blessing_is_refused_in_ci() {
    use std::ffi::OsString;
    let v = |s: &str| Some(OsString::from(s));
    assert_eq!(
        SnapshotMode::from_vars(None, None),
        Ok(SnapshotMode::Compare)
    );
    assert_eq!(
        SnapshotMode::from_vars(None, v("true")),
        Ok(SnapshotMode::Compare)
    );
    assert_eq!(
        SnapshotMode::from_vars(v("1"), None),
        Ok(SnapshotMode::Bless)
    );
    assert_eq!(
        SnapshotMode::from_vars(v("1"), v("")),
        Ok(SnapshotMode::Bless)
    );
    assert_eq!(
        SnapshotMode::from_vars(v(""), v("1")),
        Ok(SnapshotMode::Compare)
    );
    let refused = SnapshotMode::from_vars(v("1"), v("true")).unwrap_err();
    assert!(
        refused.contains("BLESS is set together with CI"),
        "{refused}"
    );
}

#[test]
fn snapshot_mismatch_or_missing_file_fails_unless_blessed() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("x.stderr");
    let missing = check_snapshot(&snap, "error: x\n", SnapshotMode::Compare).unwrap_err();
    assert!(missing.contains("no snapshot"), "{missing}");
    // An empty output must not match a missing snapshot either.
    assert!(check_snapshot(&snap, "", SnapshotMode::Compare).is_err());
    std::fs::write(&snap, "error: x\n").unwrap();
    assert_eq!(
        check_snapshot(&snap, "error: x\n", SnapshotMode::Compare),
        Ok(())
    );
    let differs = check_snapshot(&snap, "error: y\n", SnapshotMode::Compare).unwrap_err();
    assert!(differs.contains("error: y"), "{differs}");
    // Compare never writes.
    assert_eq!(std::fs::read_to_string(&snap).unwrap(), "error: x\n");
    assert_eq!(
        check_snapshot(&snap, "error: y\n", SnapshotMode::Bless),
        Ok(())
    );
    assert_eq!(std::fs::read_to_string(&snap).unwrap(), "error: y\n");
}

/// The last lines rollwatch logs before it exits are often still in the pipe when
/// the process is reaped; `wait` must not return before they are in `log`.
#[test]
fn wait_returns_after_the_last_log_line_is_read() {
    let prom = prometheus();
    let s = Scratch::new();
    // 2,000 output lines are logged one by one while the rollback runs, so the pipe is
    // full when rollwatch writes its last events and exits.
    let file = s.rules(
        r#"watch:
  duration: 60s
  interval: 1s
rollback:
  command: ["sh", "-c", "seq 1000; seq 1000 >&2"]
  timeout: 30s
rules:
  - name: always
    query: vector(1)
    above: 0.5
    for: 0s
"#,
    );
    let mut w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
    ]);
    assert_eq!(w.wait(Duration::from_secs(30)), 1, "{}", w.dump());
    let output = w
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["stream"] == "stdout" || v["stream"] == "stderr")
        .count();
    assert_eq!(output, 2000, "every output line logged");
    assert_eq!(w.events("action_finished").len(), 1, "{}", w.dump());
    let finished = w.events("watch_finished");
    assert_eq!(finished.len(), 1, "the last event is read: {}", w.dump());
    assert_eq!(finished[0]["outcome"], "rolled_back", "{}", finished[0]);
}
