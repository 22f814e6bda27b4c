//! A command's exit that outlives the agent: `rollwatch supervise`.
//!
//! `serve` runs a rollback or pause command through a small supervisor, the rollwatch
//! binary itself in a hidden mode (`rollwatch supervise --status-file F -- ARGV...`),
//! which leads the command's process group. It runs the command (from argv, never
//! through a shell; after `--`, so no value can become one of its options), waits for
//! it, and records how it exited in `F`: a small JSON file in a private directory next
//! to the state, written atomically (a temporary file, fsync, rename, fsync of the
//! directory) and readable by its owner only. Then it exits as the command did (the
//! same code, or the same signal), so the agent that ran it sees no difference.
//!
//! If the agent is killed while the command runs, the supervisor goes on, and the
//! restarted (or adopting, on the same host) agent reads the record instead of calling
//! the action's fate unknown. Only a dead host leaves no record.
//!
//! Signals for the group (the agent's SIGTERM at a timeout, a Ctrl-C) reach the
//! command directly; the supervisor notes them and keeps waiting, so the record still
//! says how the command ended. Only SIGKILL of the group ends it without a record.

use std::io::Write;
use std::path::{Path, PathBuf};

/// How a supervised command exited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitRecord {
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// When it ended (Unix ms).
    pub ended_ms: i64,
}

/// The file name stem of `key`: its SHA-256 in hex, so that any key (a watch id is up
/// to 128 characters) gives one safe name of a fixed length (64 + an extension, far
/// below the 255 bytes a name may have), and two keys never share one.
fn file_stem(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The record file of the action tagged `tag` (`ROLLWATCH_ACTION_ID`) in `dir`, named
/// by the tag's hash (`file_stem`).
pub fn record_path(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("{}.exit", file_stem(tag)))
}

/// The intent file of a claim, written (durably) *before* the claim commits, keyed by
/// what is known then: the watch, its creation and the action's kind (one first claim
/// per kind). The supervisor takes it (renames it `.taken`, durably) before the
/// command starts; a restart that finds it not taken abandons it (renames it
/// `.abandoned`): then the command never ran and never will, whoever renames first.
pub fn intent_path(dir: &Path, watch: &str, created_ms: i64, kind: &str) -> PathBuf {
    let key = format!("{watch}/{created_ms}/{kind}");
    dir.join(format!("{}.intent", file_stem(&key)))
}

/// `intent` once the supervisor took it.
pub fn taken(intent: &Path) -> PathBuf {
    intent.with_extension("taken")
}

/// What an intent file says: whose claim it is. A claim that failed may leave its
/// intent behind (a crash before it is removed), at the very path a later claim by
/// another agent (with a higher token) uses on this host: only an intent carrying the
/// token of the action row is that row's claim's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IntentRecord {
    /// The lease holder that claimed.
    pub holder: String,
    /// The fencing token it claimed with (stored on the action row).
    pub token: i64,
}

/// Writes the intent file `rec` durably, mode 0600.
pub fn write_intent(intent: &Path, rec: &IntentRecord) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let body = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(intent)?;
    f.write_all(&body)?;
    f.sync_all()?;
    sync_dir(intent)
}

/// The intent (or abandoned intent) at `path`, if there is a complete one.
pub fn read_intent(path: &Path) -> Option<IntentRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether the intent `found` is the claim of the action row claimed with
/// `row_token`: only then may its not being taken mean "never started". An intent
/// that is unreadable, empty (an older agent's) or of another token, or a row without
/// a token, is not: its fate is decided as if there were no intent.
pub fn intent_is_the_rows(found: Option<&IntentRecord>, row_token: Option<i64>) -> bool {
    matches!((found, row_token), (Some(i), Some(t)) if i.token == t)
}

/// Renames `from` to `to` durably; false if `from` was not there (someone else took it).
pub fn take(from: &Path, to: &Path) -> std::io::Result<bool> {
    match std::fs::rename(from, to) {
        Ok(()) => sync_dir(to).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Abandons the intent of the claim made with `row_token` if no supervisor took it:
/// true if the command never ran and no supervisor will run it now. True also when
/// that intent was abandoned already (by a restart that then failed to claim the
/// re-run, or died before it committed): the unique re-run claim still decides who
/// runs it. An intent of another claim (another token) is never abandoned.
pub fn abandon(intent: &Path, row_token: Option<i64>) -> bool {
    let abandoned = intent.with_extension("abandoned");
    if taken(intent).exists() {
        return false;
    }
    if intent_is_the_rows(read_intent(intent).as_ref(), row_token)
        && take(intent, &abandoned).unwrap_or(false)
    {
        return true;
    }
    // Not there (or just taken by its supervisor, or just abandoned by another
    // restart): an earlier abandonment of this very claim still means never started.
    !taken(intent).exists() && intent_is_the_rows(read_intent(&abandoned).as_ref(), row_token)
}

fn sync_dir(file: &Path) -> std::io::Result<()> {
    std::fs::File::open(file.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `rec` to `path` atomically and durably, mode 0600.
pub fn write_record(path: &Path, rec: &ExitRecord) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let body = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The record at `path`, if there is a complete one.
pub fn read_record(path: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Removes a record once the store holds what it says.
pub fn remove_record(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The supervisor's exit code when it did not start the command (its claim was
/// abandoned): as `env` and `timeout` say for a command that could not be run.
pub const NOT_STARTED: u8 = 125;

extern "C" fn note_signal(_: nix::libc::c_int) {}

/// The supervisor: runs `argv`, records its exit in `status`, and returns how to exit
/// (`Ok(code)`, or `Err(signal)` to be re-raised).
pub fn supervise(status: &Path, intent: Option<&Path>, argv: &[String]) -> Result<u8, i32> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    use std::os::unix::process::ExitStatusExt;
    let Some((program, args)) = argv.split_first() else {
        eprintln!("rollwatch supervise: no command after --");
        return Ok(crate::core::exit::USAGE);
    };
    // The claim's intent: taken before the command starts, or the command does not
    // start (a restarted agent abandoned it and runs the command itself).
    if let Some(i) = intent {
        match take(i, &taken(i)) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("rollwatch supervise: the claim was abandoned by a restarted agent; not started");
                return Ok(NOT_STARTED);
            }
            Err(e) => {
                eprintln!("rollwatch supervise: cannot take the claim's intent: {e}; not started");
                return Ok(NOT_STARTED);
            }
        }
    }
    // A handler, not "ignore": the command gets the default actions back at exec.
    let noted = SigAction::new(
        SigHandler::Handler(note_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        let _ = unsafe { sigaction(sig, &noted) };
    }
    // Losing the agent (our reader) must never stop the command: this process ignores
    // SIGPIPE (the command gets the default back at exec) and relays the command's
    // output from pipes it owns, dropping what nobody reads any more.
    // SAFETY: set before any thread exists; ignoring needs no handler code.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let spawned = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let status_now = spawned
        .and_then(|mut child| {
            let relays = [
                child.stdout.take().map(|o| relay(o, std::io::stdout())),
                child.stderr.take().map(|e| relay(e, std::io::stderr())),
            ];
            let st = child.wait();
            drain(relays);
            st
        })
        .map_err(|e| {
            eprintln!("rollwatch supervise: cannot start {program}: {e}");
        });
    let Ok(st) = status_now else {
        // As the shell does for a command it cannot run.
        let rec = ExitRecord {
            code: Some(127),
            signal: None,
            ended_ms: crate::core::events::now_ms(),
        };
        let _ = write_record(status, &rec);
        return Ok(127);
    };
    let rec = ExitRecord {
        code: st.code(),
        signal: st.signal(),
        ended_ms: crate::core::events::now_ms(),
    };
    if let Err(e) = write_record(status, &rec) {
        eprintln!("rollwatch supervise: cannot record the command's exit: {e}");
    }
    match (st.code(), st.signal()) {
        (Some(c), _) => Ok(c.clamp(0, 255) as u8),
        (None, Some(s)) => Err(s),
        (None, None) => Ok(1),
    }
}

/// Copies everything `from` gives to `to`, on a thread, until its end; a failed write
/// (the agent, our reader, is gone) drops that chunk and the copy goes on, so that the
/// command never blocks on, nor dies of, a pipe nobody reads. Ends with a message on
/// the returned channel.
fn relay(
    mut from: impl std::io::Read + Send + 'static,
    to: impl std::os::fd::AsFd + Send + 'static,
) -> std::sync::mpsc::Receiver<()> {
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut open = true;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let mut rest = &buf[..n];
            while open && !rest.is_empty() {
                match nix::unistd::write(&to, rest) {
                    Ok(w) => rest = &rest[w..],
                    Err(nix::errno::Errno::EINTR) => {}
                    // EPIPE and the like: nobody reads; keep draining the command.
                    Err(_) => open = false,
                }
            }
        }
        let _ = done.send(());
    });
    ended
}

/// Waits for the relays to pass on the command's last output: until their pipes end,
/// but at most 2 s, as a background child of the command may hold them open.
fn drain(relays: [Option<std::sync::mpsc::Receiver<()>>; 2]) {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    for r in relays.into_iter().flatten() {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let _ = r.recv_timeout(left);
    }
}

/// Ends this process as a command killed by `signal` would end.
pub fn die_by(signal: i32) -> ! {
    use nix::sys::signal::{signal as set, SigHandler, Signal};
    if let Ok(s) = Signal::try_from(signal) {
        // SAFETY: the default action needs no handler code.
        let _ = unsafe { set(s, SigHandler::SigDfl) };
        let _ = nix::sys::signal::raise(s);
    }
    std::process::exit(128 + (signal & 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_whole_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = record_path(dir.path(), "w/1/2");
        assert!(p.file_name().unwrap().to_str().unwrap().ends_with(".exit"));
        assert_ne!(p, record_path(dir.path(), "w/1/3"));
        assert_eq!(read_record(&p), None);
        let rec = ExitRecord {
            code: Some(3),
            signal: None,
            ended_ms: 5,
        };
        write_record(&p, &rec).unwrap();
        assert_eq!(read_record(&p), Some(rec));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
        remove_record(&p);
        assert_eq!(read_record(&p), None);
    }

    fn rec(token: i64) -> IntentRecord {
        IntentRecord {
            holder: format!("host-{token}"),
            token,
        }
    }

    #[test]
    fn the_longest_watch_id_gives_short_file_names_that_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let id: String = "Ab9._:-".chars().cycle().take(128).collect();
        let long_rules: String = "r".repeat(128);
        let generated = format!("{long_rules}-1796528151571-12");
        for watch in [id.as_str(), generated.as_str()] {
            let i = intent_path(dir.path(), watch, 1_796_528_151_571, "rollback");
            let r = record_path(dir.path(), &format!("{watch}/1796528151571/1"));
            for p in [&i, &taken(&i), &r] {
                assert!(p.file_name().unwrap().len() < 100, "{p:?}");
            }
            let rec = IntentRecord {
                holder: "me".into(),
                token: 1,
            };
            write_intent(&i, &rec).unwrap();
            assert!(take(&i, &taken(&i)).unwrap());
            write_record(
                &r,
                &ExitRecord {
                    code: Some(0),
                    signal: None,
                    ended_ms: 1,
                },
            )
            .unwrap();
            assert!(read_record(&r).is_some());
        }
        assert_ne!(
            intent_path(dir.path(), &id, 1, "rollback"),
            intent_path(dir.path(), &id[..127], 1, "rollback")
        );
    }

    #[test]
    fn an_intent_is_taken_or_abandoned_once() {
        let dir = tempfile::tempdir().unwrap();
        let i = intent_path(dir.path(), "w", 1, "rollback");
        assert_ne!(i, intent_path(dir.path(), "w", 1, "pause"));
        write_intent(&i, &rec(1)).unwrap();
        assert_eq!(read_intent(&i), Some(rec(1)));
        assert!(take(&i, &taken(&i)).unwrap(), "the supervisor takes it");
        assert!(!abandon(&i, Some(1)), "taken: a restart cannot abandon it");
        std::fs::remove_file(taken(&i)).unwrap();
        write_intent(&i, &rec(1)).unwrap();
        assert!(abandon(&i, Some(1)), "not taken: abandoned");
        assert!(
            !take(&i, &taken(&i)).unwrap(),
            "abandoned: the supervisor cannot take it"
        );
    }

    #[test]
    fn only_an_intent_with_the_rows_token_is_the_rows_claims() {
        assert!(intent_is_the_rows(Some(&rec(4)), Some(4)));
        assert!(
            !intent_is_the_rows(Some(&rec(3)), Some(4)),
            "another claim's"
        );
        assert!(!intent_is_the_rows(None, Some(4)), "unreadable or absent");
        assert!(
            !intent_is_the_rows(Some(&rec(4)), None),
            "a row without token"
        );
    }

    #[test]
    fn a_failed_claims_leftover_intent_is_never_abandoned_for_another_claims_row() {
        // Review 2, hole 1: B (token 3) wrote the intent and its claim failed; A
        // (token 4) claimed on another host and its command may have run.
        let dir = tempfile::tempdir().unwrap();
        let i = intent_path(dir.path(), "w", 1, "rollback");
        write_intent(&i, &rec(3)).unwrap();
        assert!(
            !abandon(&i, Some(4)),
            "not this row's claim: not 'never started'"
        );
        assert!(i.exists(), "left as it was");
        assert!(
            !abandon(&i, None),
            "a row without token: not 'never started'"
        );
        // An older agent's empty intent says nothing either.
        std::fs::write(&i, b"").unwrap();
        assert!(!abandon(&i, Some(4)));
    }

    #[test]
    fn an_intent_abandoned_before_still_means_never_started() {
        // Review 2, hole 6: a restart abandoned it, then its re-run claim failed (or it
        // died before that claim committed); the retry must find "never started".
        let dir = tempfile::tempdir().unwrap();
        let i = intent_path(dir.path(), "w", 1, "rollback");
        write_intent(&i, &rec(4)).unwrap();
        assert!(abandon(&i, Some(4)), "the first restart abandons it");
        assert!(abandon(&i, Some(4)), "the retry: still never started");
        assert!(!abandon(&i, Some(5)), "but only for the claim it was");
        assert!(
            !take(&i, &taken(&i)).unwrap(),
            "and its supervisor can never take it"
        );
    }
}
