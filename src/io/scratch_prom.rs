//! A throwaway Prometheus over backfilled series, for `rollwatch test`: the series are
//! written as OpenMetrics into a private temporary directory, turned into TSDB blocks
//! by `promtool tsdb create-blocks-from openmetrics`, and served by one `prometheus` on
//! a free loopback port for the whole run. Queries are thus answered by the real
//! PromQL engine, never by a look-alike.
//!
//! A run whose series hold a staleness marker cannot be backfilled (OpenMetrics text
//! has none): that Prometheus starts empty with `--web.enable-remote-write-receiver`
//! and the series are POSTed to it as remote-write requests, in their order (global
//! time order, see `core::promtest::remote_write`), before any query.
//!
//! `ScratchProm::stop` kills Prometheus and removes the directory; every exit path of
//! the command ends with it (and a drop without it still kills the process and removes
//! the directory, as a last resort).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long Prometheus may take to answer `/-/ready` over the backfilled blocks.
pub const READY_WITHIN: Duration = Duration::from_secs(60);
/// Ports tried before giving up (a port picked free may be taken before Prometheus
/// binds it).
const BIND_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("`{program}` was not found on PATH; install it (`apt install prometheus` ships both `prometheus` and `promtool`) or name it with `{flag} PATH`")]
    Missing { program: String, flag: &'static str },
    #[error("`{}` is not an executable file (given with `{flag}`)", .path.display())]
    NotExecutable { path: PathBuf, flag: &'static str },
    #[error("cannot prepare the scratch directory {}: {source}", .dir.display())]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {}: {source}", .program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("promtool could not backfill the test series: {0}")]
    Backfill(String),
    #[error("Prometheus refused the test series (remote write): {0}")]
    RemoteWrite(String),
    #[error("Prometheus did not become ready within {}s on {addr}: {log}", READY_WITHIN.as_secs())]
    NotReady { addr: String, log: String },
}

/// `given` (a flag's value) checked, else `name` found on `PATH`.
pub fn find_program(
    given: Option<&Path>,
    name: &str,
    flag: &'static str,
) -> Result<PathBuf, ScratchError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(p) = given {
        return if executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(ScratchError::NotExecutable {
                path: p.to_path_buf(),
                flag,
            })
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| executable(p))
        .ok_or_else(|| ScratchError::Missing {
            program: name.to_string(),
            flag,
        })
}

/// What the throwaway Prometheus serves.
#[derive(Debug, Clone, Copy)]
pub enum Series<'a> {
    /// No series at all.
    Empty,
    /// OpenMetrics text (ending with `# EOF`), backfilled with promtool.
    OpenMetrics(&'a str),
    /// Remote-write request bodies (snappy protobuf), POSTed in this order.
    RemoteWrite(&'a [Vec<u8>]),
}

/// A running throwaway Prometheus and its directory.
pub struct ScratchProm {
    pub url: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl ScratchProm {
    /// Loads `series` (backfilled before Prometheus starts, or written to it once
    /// ready) and returns once Prometheus is ready and holds them. On failure nothing
    /// is left behind.
    pub async fn start(
        promtool: &Path,
        prometheus: &Path,
        series: Series<'_>,
    ) -> Result<ScratchProm, ScratchError> {
        let dir = scratch_dir()?;
        let mut s = ScratchProm {
            url: String::new(),
            dir,
            child: None,
        };
        match s.boot(promtool, prometheus, series).await {
            Ok(()) => Ok(s),
            Err(e) => {
                s.stop().await;
                Err(e)
            }
        }
    }

    async fn boot(
        &mut self,
        promtool: &Path,
        prometheus: &Path,
        series: Series<'_>,
    ) -> Result<(), ScratchError> {
        let io = |source| ScratchError::Dir {
            dir: self.dir.clone(),
            source,
        };
        let data = self.dir.join("data");
        std::fs::create_dir(&data).map_err(io)?;
        if let Series::OpenMetrics(text) = series {
            let input = self.dir.join("series.om");
            let (path, text) = (input.clone(), text.to_string());
            // Off the runtime: the series of a large run are many megabytes.
            tokio::task::spawn_blocking(move || std::fs::write(path, text))
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)?;
            let out = Command::new(promtool)
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&input)
                .arg(&data)
                .stdin(Stdio::null())
                // A signal that drops this future must not leave promtool writing on.
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|source| ScratchError::Spawn {
                    program: promtool.to_path_buf(),
                    source,
                })?;
            if !out.status.success() {
                return Err(ScratchError::Backfill(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ));
            }
        }
        let config = self.dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n").map_err(io)?;
        let log_path = self.dir.join("prometheus.log");
        // The port is free when picked, not necessarily when Prometheus binds it: a
        // server that took it meanwhile (another Prometheus) could answer as ready. So
        // the one that answers must be ours (its data directory), else try another port.
        let writes = match series {
            Series::RemoteWrite(bodies) => Some(bodies),
            _ => None,
        };
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS {
            match self
                .spawn(prometheus, &config, &data, &log_path, writes.is_some())
                .await
            {
                Ok(()) => {
                    return match writes {
                        Some(bodies) => self.write(bodies).await,
                        None => Ok(()),
                    }
                }
                Err(e @ ScratchError::NotReady { .. }) => {
                    if let Some(mut c) = self.child.take() {
                        let _ = c.kill().await;
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Starts Prometheus on a free port and waits until it, and no other server on
    /// that port, is ready.
    async fn spawn(
        &mut self,
        prometheus: &Path,
        config: &Path,
        data: &Path,
        log_path: &Path,
        receiver: bool,
    ) -> Result<(), ScratchError> {
        let io = |source| ScratchError::Dir {
            dir: self.dir.clone(),
            source,
        };
        let log = std::fs::File::create(log_path).map_err(io)?;
        let addr = free_addr().map_err(io)?;
        let mut cmd = Command::new(prometheus);
        if receiver {
            cmd.arg("--web.enable-remote-write-receiver");
        }
        let child = cmd
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ScratchError::Spawn {
                program: prometheus.to_path_buf(),
                source,
            })?;
        self.child = Some(child);
        self.url = format!("http://{addr}");
        let http = reqwest::Client::new();
        let ready = format!("{}/-/ready", self.url);
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        let not_ready = |addr: String, why: &str| {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let mut tail: Vec<&str> = log.lines().rev().take(5).collect();
            tail.reverse();
            let mut log = tail.join("\n");
            if !why.is_empty() {
                log = format!("{why}\n{log}");
            }
            ScratchError::NotReady { addr, log }
        };
        loop {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                return Err(not_ready(addr, ""));
            }
            if let Ok(r) = http.get(&ready).send().await {
                if r.status().is_success() {
                    return match serves(&http, &self.url, data).await {
                        true => Ok(()),
                        false => Err(not_ready(
                            addr,
                            "another server answers on this port, not the Prometheus started here",
                        )),
                    };
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(not_ready(addr, ""));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs each remote-write body, in order, to the receiver of the Prometheus
    /// started here; the first refusal ends it with Prometheus's answer.
    async fn write(&self, bodies: &[Vec<u8>]) -> Result<(), ScratchError> {
        // Bounded: a Prometheus that stops answering ends the run, never hangs it.
        let http = reqwest::Client::builder()
            .timeout(READY_WITHIN)
            .build()
            .map_err(|e| ScratchError::RemoteWrite(e.to_string()))?;
        let url = format!("{}/api/v1/write", self.url);
        for body in bodies {
            let r = http
                .post(&url)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| ScratchError::RemoteWrite(e.to_string()))?;
            if !r.status().is_success() {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(ScratchError::RemoteWrite(format!(
                    "{status}: {}",
                    text.trim()
                )));
            }
        }
        Ok(())
    }

    /// Kills Prometheus, waits for it, and removes the directory.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ScratchProm {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory only its owner can read, under the system's temporary directory.
fn scratch_dir() -> Result<PathBuf, ScratchError> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = base.join(format!("rollwatch-test-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| ScratchError::Dir {
            dir: dir.clone(),
            source,
        })?;
    Ok(dir)
}

/// Whether the Prometheus at `url` is the one serving `data` (its
/// `storage.tsdb.path` flag).
async fn serves(http: &reqwest::Client, url: &str, data: &Path) -> bool {
    let Ok(r) = http.get(format!("{url}/api/v1/status/flags")).send().await else {
        return false;
    };
    let Ok(v) = r.json::<serde_json::Value>().await else {
        return false;
    };
    v["data"]["storage.tsdb.path"].as_str() == Some(&data.display().to_string())
}

/// A loopback address with a port free right now.
fn free_addr() -> std::io::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}
