//! Actions: running the rollback or pause command the on-call engineers configured.
//!
//! Commands run from argv, never through a shell, in a process group of their own, so
//! that (a) a Ctrl-C on the terminal running rollwatch does not reach a rollback half way
//! and (b) at the timeout the whole group (the command and anything it spawned) is
//! stopped: SIGTERM, then SIGKILL after a grace period. Output is streamed to the log
//! line by line as it comes, and the last lines are kept for the report.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How many output lines are kept for the report.
const TAIL_LINES: usize = 20;
/// Longer output lines are cut (a command flooding one endless line cannot exhaust memory).
const MAX_LINE: usize = 4096;
/// Output lines logged one by one, per stream. Past this they are only counted (and the
/// last `TAIL_LINES` kept for the report): logging each line of a flood throttled the
/// command to the speed of the log, so a rollback printing 50 MB of short lines took
/// over a minute and was killed at its timeout though it would have succeeded.
const MAX_LOGGED_LINES: usize = 1000;

/// Called with a command's process id (= its process group id) once it has started.
pub type SpawnHook = Arc<dyn Fn(u32) + Send + Sync>;

/// A command to run.
#[derive(Clone)]
pub struct ActionRequest {
    /// `rollback` or `pause`: for the log.
    pub kind: &'static str,
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// Extra environment (`ROLLWATCH_*`); the rest is inherited.
    pub env: Vec<(String, String)>,
    /// Told the process id (which is also its process group id) right after the
    /// command started: `serve` records it, so that after a crash it can make sure the
    /// command has ended before it ever runs it again.
    pub on_spawn: Option<SpawnHook>,
    /// `serve`: run the command through `rollwatch supervise`, which records its exit
    /// in this file, so that a restarted agent knows it (`io::supervise`).
    pub status_file: Option<PathBuf>,
    /// With `status_file`: the claim's intent, which the supervisor takes before the
    /// command starts (`io::supervise::intent_path`).
    pub intent_file: Option<PathBuf>,
}

impl std::fmt::Debug for ActionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionRequest")
            .field("kind", &self.kind)
            .field("argv", &self.argv)
            .field("timeout", &self.timeout)
            .field("env", &self.env)
            .field("status_file", &self.status_file)
            .finish_non_exhaustive()
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionStatus {
    Succeeded,
    /// Exited non-zero, or was killed by a signal.
    Failed {
        code: Option<i32>,
        signal: Option<i32>,
    },
    TimedOut,
    /// It could not be started (not found, not executable).
    SpawnFailed(String),
    /// It was not started because it could not be claimed first (the agent's store
    /// could not record it): running it unrecorded could run it twice.
    NotClaimed(String),
    /// `serve`: it was running when the agent stopped; whether it took effect is
    /// unknown.
    Unknown,
}

impl ActionStatus {
    pub fn succeeded(&self) -> bool {
        *self == ActionStatus::Succeeded
    }
}

impl std::fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActionStatus::Succeeded => write!(f, "succeeded"),
            ActionStatus::Failed { code: Some(c), .. } => write!(f, "failed with exit code {c}"),
            ActionStatus::Failed {
                signal: Some(s), ..
            } => write!(f, "killed by signal {s}"),
            ActionStatus::Failed { .. } => write!(f, "failed"),
            ActionStatus::TimedOut => write!(f, "timed out and was killed"),
            ActionStatus::SpawnFailed(e) => write!(f, "could not be started: {e}"),
            ActionStatus::Unknown => write!(
                f,
                "was running when the agent stopped; whether it took effect is unknown"
            ),
            ActionStatus::NotClaimed(e) => {
                write!(
                    f,
                    "was not started because it could not be recorded first: {e}"
                )
            }
        }
    }
}

/// What happened when a command ran.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionReport {
    pub status: ActionStatus,
    pub duration: Duration,
    pub output_tail: Vec<String>,
}

/// Anything that can run an action.
pub trait ActionRunner: Send + Sync + 'static {
    fn run(&self, req: &ActionRequest) -> impl Future<Output = ActionReport> + Send;
}

/// Runs commands as child processes.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    /// Between SIGTERM and SIGKILL at the timeout.
    pub kill_grace: Duration,
}

impl Default for ProcessRunner {
    fn default() -> Self {
        ProcessRunner {
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// Finds a program the way `execvp` would: a path as is, a bare name on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

type Tail = Arc<Mutex<VecDeque<String>>>;

async fn pump(
    mut reader: impl AsyncRead + Unpin,
    stream: &'static str,
    kind: &'static str,
    tail: Tail,
) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut lines = 0usize;
    let mut emit = |line: &mut Vec<u8>, truncated: &mut bool| {
        let mut text = String::from_utf8_lossy(line).into_owned();
        if *truncated {
            text.push_str(" [line cut]");
        }
        lines += 1;
        if lines <= MAX_LOGGED_LINES {
            tracing::info!(target: "rollwatch::io::action", action = kind, stream, "{text}");
        }
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(text);
        line.clear();
        *truncated = false;
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                emit(&mut line, &mut truncated);
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else {
                truncated = true;
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut truncated);
    }
    if lines > MAX_LOGGED_LINES {
        tracing::warn!(
            target: "rollwatch::io::action",
            action = kind,
            stream,
            lines,
            "{stream}: {} more lines were not logged (the last {TAIL_LINES} are in the report)",
            lines - MAX_LOGGED_LINES
        );
    }
}

/// The supervisor to run commands through: this very binary, by `/proc/self/exe`,
/// which still runs it when its file was deleted or replaced (a package upgrade before
/// the agent's restart); by its path where there is no `/proc`. None: no supervisor.
fn supervisor_exe() -> Option<PathBuf> {
    let proc = Path::new("/proc/self/exe");
    if proc.is_file() {
        return Some(proc.to_path_buf());
    }
    std::env::current_exe().ok().filter(|e| e.is_file())
}

/// What is started for `argv`: the supervisor `exe` with its options and the command
/// after `--`, or (with no supervisor or no status file) the command itself. Options
/// are given as `--opt=value`, so that a path starting with `-` is never read as one.
fn launch_argv(
    exe: Option<&Path>,
    status_file: Option<&Path>,
    intent_file: Option<&Path>,
    huge_pages_off: bool,
    argv: &[String],
) -> (std::ffi::OsString, Vec<std::ffi::OsString>) {
    use std::ffi::OsString;
    let opt = |name: &str, value: &Path| {
        let mut o = OsString::from(format!("--{name}="));
        o.push(value);
        o
    };
    let rest = argv.iter().map(OsString::from);
    match (exe, status_file) {
        (Some(exe), Some(file)) => {
            let mut a = vec![OsString::from("supervise"), opt("status-file", file)];
            a.extend(intent_file.map(|i| opt("intent-file", i)));
            if huge_pages_off {
                // (The agent turned them off for itself: see `io::huge_pages`.)
                a.push(OsString::from("--huge-pages-as-found"));
            }
            a.push(OsString::from("--"));
            a.extend(rest);
            (exe.as_os_str().to_owned(), a)
        }
        _ => {
            let mut rest = rest;
            let program = rest.next().unwrap_or_default();
            (program, rest.collect())
        }
    }
}

fn kill_group(pid: u32, signal: nix::sys::signal::Signal) {
    let pgid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::killpg(pgid, signal);
}

impl ActionRunner for ProcessRunner {
    async fn run(&self, req: &ActionRequest) -> ActionReport {
        let started = tokio::time::Instant::now();
        let tail: Tail = Arc::default();
        let report = |status, tail: &Tail| ActionReport {
            status,
            duration: started.elapsed(),
            output_tail: tail
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        };
        let Some((program, _)) = req.argv.split_first() else {
            return report(ActionStatus::SpawnFailed("empty command".into()), &tail);
        };
        // Supervised: this very binary leads the group and runs the command (after
        // `--`: nothing in argv can become one of its options).
        let exe = req
            .status_file
            .as_ref()
            .and_then(|_| supervisor_exe())
            // A program that cannot run is a spawn failure, as unsupervised.
            .filter(|_| find_program(program).is_some());
        if exe.is_none() {
            // No supervisor takes the claim's intent: the agent takes it itself, before
            // the command starts, or a restart would read "never started" and run it again.
            if let Some(i) = &req.intent_file {
                use crate::io::supervise::{take, taken};
                match take(i, &taken(i)) {
                    Ok(true) => {}
                    Ok(false) => {
                        let why =
                            "its claim's intent was abandoned by a restarted agent; not started";
                        return report(
                            ActionStatus::SpawnFailed(format!("{program}: {why}")),
                            &tail,
                        );
                    }
                    Err(e) => {
                        let why = format!("cannot take its claim's intent ({e}); not started");
                        return report(
                            ActionStatus::SpawnFailed(format!("{program}: {why}")),
                            &tail,
                        );
                    }
                }
            }
        }
        let (launched, launch_args) = launch_argv(
            exe.as_deref(),
            req.status_file.as_deref(),
            req.intent_file.as_deref(),
            crate::io::huge_pages::turned_off(),
            &req.argv,
        );
        let mut cmd = Command::new(launched);
        cmd.args(launch_args)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return report(ActionStatus::SpawnFailed(format!("{program}: {e}")), &tail),
        };
        let pid = child.id().unwrap_or(0);
        if let Some(hook) = &req.on_spawn {
            hook(pid);
        }
        let readers = [
            child
                .stdout
                .take()
                .map(|o| tokio::spawn(pump(o, "stdout", req.kind, tail.clone()))),
            child
                .stderr
                .take()
                .map(|e| tokio::spawn(pump(e, "stderr", req.kind, tail.clone()))),
        ];
        let status = match tokio::time::timeout(req.timeout, child.wait()).await {
            Ok(Ok(st)) => {
                use std::os::unix::process::ExitStatusExt;
                if st.success() {
                    ActionStatus::Succeeded
                } else {
                    ActionStatus::Failed {
                        code: st.code(),
                        signal: st.signal(),
                    }
                }
            }
            Ok(Err(e)) => ActionStatus::SpawnFailed(format!("waiting for {program}: {e}")),
            Err(_) => {
                tracing::error!(action = req.kind, pid, timeout = ?req.timeout, "command timed out; stopping its process group (SIGTERM, then SIGKILL)");
                kill_group(pid, nix::sys::signal::Signal::SIGTERM);
                if tokio::time::timeout(self.kill_grace, child.wait())
                    .await
                    .is_err()
                {
                    kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.wait().await;
                }
                // Children that ignored SIGTERM go too.
                kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                ActionStatus::TimedOut
            }
        };
        // Output still buffered is drained briefly; a background child holding the pipe
        // open cannot hold the watch.
        for r in readers.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
        }
        report(status, &tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(argv: &[&str], timeout_ms: u64) -> ActionRequest {
        ActionRequest {
            kind: "test",
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(timeout_ms),
            env: vec![("ROLLWATCH_RULE".into(), "r1".into())],
            on_spawn: None,
            status_file: None,
            intent_file: None,
        }
    }

    #[tokio::test]
    async fn success_env_and_output_tail() {
        let r = ProcessRunner::default()
            .run(&req(
                &["sh", "-c", "echo rule=$ROLLWATCH_RULE; echo err >&2"],
                10_000,
            ))
            .await;
        assert_eq!(r.status, ActionStatus::Succeeded);
        assert!(
            r.output_tail.contains(&"rule=r1".to_string()),
            "{:?}",
            r.output_tail
        );
        assert!(r.output_tail.contains(&"err".to_string()));
    }

    #[tokio::test]
    async fn failure_reports_exit_code() {
        let r = ProcessRunner::default()
            .run(&req(&["sh", "-c", "exit 7"], 10_000))
            .await;
        assert_eq!(
            r.status,
            ActionStatus::Failed {
                code: Some(7),
                signal: None
            }
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_failure() {
        let r = ProcessRunner::default()
            .run(&req(&["/nonexistent/rollback"], 10_000))
            .await;
        assert!(matches!(r.status, ActionStatus::SpawnFailed(_)));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let runner = ProcessRunner {
            kill_grace: Duration::from_millis(200),
        };
        let r = runner.run(&req(&["sh", "-c", &script], 500)).await;
        assert_eq!(r.status, ActionStatus::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone (a zombie awaiting its reaper counts as gone). Death
        // is asynchronous, so give the kernel a bounded moment to finish it.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.contains(") Z"))
                .unwrap_or(false)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while running() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!running(), "grandchild {pid} survived the timeout");
    }

    /// Regression (issue 7's fault suite): a command flooding its output is not slowed
    /// to the speed of the log. Each stream logs at most `MAX_LOGGED_LINES` lines, then
    /// one line counting the rest; the report keeps the last lines.
    #[tokio::test]
    async fn flooding_output_is_logged_up_to_a_cap_then_counted() {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // The test runtime has one thread, so the output pumps log to this subscriber.
        let guard = tracing::subscriber::set_default(subscriber);
        let r = ProcessRunner::default()
            .run(&req(&["seq", "1", "100000"], 60_000))
            .await;
        drop(guard);
        assert_eq!(r.status, ActionStatus::Succeeded);
        assert_eq!(r.output_tail.len(), TAIL_LINES);
        assert_eq!(r.output_tail.last().map(String::as_str), Some("100000"));
        let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.lines().count(), MAX_LOGGED_LINES + 1, "{}", &log[..200]);
        assert!(
            log.contains("stdout: 99000 more lines were not logged"),
            "{}",
            log.lines().last().unwrap_or_default()
        );
    }

    #[test]
    fn the_supervisor_is_launched_through_proc_self_exe_with_options_that_are_never_values() {
        assert_eq!(
            supervisor_exe().as_deref(),
            Some(Path::new("/proc/self/exe"))
        );
        let argv = ["-rm".to_string(), "--x".to_string()];
        let (p, a) = launch_argv(
            Some(Path::new("/proc/self/exe")),
            Some(Path::new("-st.actions/a.exit")),
            Some(Path::new("-st.actions/a.intent")),
            false,
            &argv,
        );
        assert_eq!(p, "/proc/self/exe");
        assert_eq!(
            a,
            [
                "supervise",
                "--status-file=-st.actions/a.exit",
                "--intent-file=-st.actions/a.intent",
                "--",
                "-rm",
                "--x"
            ]
        );
        let (_, a) = launch_argv(
            Some(Path::new("/proc/self/exe")),
            Some(Path::new("s")),
            None,
            true,
            &argv,
        );
        assert_eq!(
            a,
            [
                "supervise",
                "--status-file=s",
                "--huge-pages-as-found",
                "--",
                "-rm",
                "--x"
            ]
        );
        let (p, a) = launch_argv(None, Some(Path::new("s")), None, true, &argv);
        assert_eq!((p.as_os_str(), a), ("-rm".as_ref(), vec!["--x".into()]));
    }

    #[tokio::test]
    async fn unsupervised_the_agent_takes_the_claims_intent_before_the_command_starts() {
        let dir = tempfile::tempdir().unwrap();
        let intent = dir.path().join("a.intent");
        let seen = dir.path().join("seen");
        let rec = crate::io::supervise::IntentRecord {
            holder: "me".into(),
            token: 1,
        };
        crate::io::supervise::write_intent(&intent, &rec).unwrap();
        let mut r = req(
            &[
                "sh",
                "-c",
                &format!("ls {} > {}", dir.path().display(), seen.display()),
            ],
            10_000,
        );
        r.intent_file = Some(intent.clone());
        let out = ProcessRunner::default().run(&r).await;
        assert_eq!(out.status, ActionStatus::Succeeded);
        let listed = std::fs::read_to_string(&seen).unwrap();
        assert!(
            listed.contains("a.taken") && !listed.contains("a.intent"),
            "{listed}"
        );
        // Another claim's intent at a fresh path, abandoned by a restart first: not
        // started. (A taken intent is never abandoned, so the first one's goes.)
        std::fs::remove_file(crate::io::supervise::taken(&intent)).unwrap();
        crate::io::supervise::write_intent(&intent, &rec).unwrap();
        assert!(crate::io::supervise::abandon(&intent, Some(1)));
        std::fs::remove_file(&seen).unwrap();
        let out = ProcessRunner::default().run(&r).await;
        assert!(
            matches!(out.status, ActionStatus::SpawnFailed(_)),
            "{:?}",
            out.status
        );
        assert!(!seen.exists(), "the command did not run");
    }

    #[test]
    fn find_program_searches_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-xyz").is_none());
        assert!(find_program("/bin/sh").is_some());
    }
}
