//! The state file's guard: readable by its owner only, and one agent at a time.
//!
//! The state file holds every watch's vars and the argv of every command the agent ran,
//! so it is created (with its `-wal` and `-shm` siblings) mode 0600; a file found wider
//! (an older version, a careless copy) is tightened, with a warning.
//!
//! Exactly-once rests on a single writer: two agents on one state file would each
//! resume the same watches, and each could run the same rollback. SQLite's own locks
//! only serialise transactions, so the agent takes an exclusive advisory lock (`flock`)
//! on `<state>.lock` beside the file and holds it for the life of the process. The
//! kernel releases it when the process ends, however it ends: a `kill -9` leaves no
//! stale lock to clean up by hand. The lock file holds the holder's pid, so the second
//! agent's error can name it. The descriptor is close-on-exec, so a rollback command
//! that outlives the agent never holds the lock.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("the state file {path} is in use by another rollwatch agent ({holder}); run one agent per state file (the lock is {lock})")]
    Locked {
        path: PathBuf,
        lock: PathBuf,
        /// `pid N`, or `pid unknown` when the holder has not written it yet.
        holder: String,
    },
    #[error("cannot lock the state file {path} (with {lock}): {source}")]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make {path} readable by its owner only: {source}")]
    Mode {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The exclusive lock on a state file, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StateLock {
    lock: Option<Flock<File>>,
}

impl Drop for StateLock {
    /// Unlocks without `Flock`'s own drop, which panics if unlocking fails; if it ever
    /// did, the descriptor is kept open (and the lock held) until the process exits,
    /// which is what a lock "for the life of the process" means anyway.
    fn drop(&mut self) {
        if let Some(held) = self.lock.take() {
            if let Err((held, _)) = held.unlock() {
                std::mem::forget(held);
            }
        }
    }
}

/// `<state>.lock`, beside the state file.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The state file's real path: two agents reaching one file through a symlink or
/// another relative path must take the same lock.
fn real_path(state: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(state) {
        return p;
    }
    match (state.parent(), state.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| state.to_path_buf())
        }
        _ => state.to_path_buf(),
    }
}

/// Takes the exclusive lock on `state` (by its real path), or says who holds it.
pub fn lock(state: &Path) -> Result<StateLock, StateFileError> {
    let lock = lock_path(&real_path(state));
    let io_err = |source| StateFileError::Lock {
        path: state.to_path_buf(),
        lock: lock.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(io_err)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => {
            // Ours now: record our pid for the next agent's error message.
            let mut f: &File = &held;
            let _ = f.set_len(0);
            let _ = writeln!(f, "{}", std::process::id());
            let _ = f.sync_all();
            Ok(StateLock { lock: Some(held) })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_string(),
            };
            Err(StateFileError::Locked {
                path: state.to_path_buf(),
                lock,
                holder,
            })
        }
        Err((_, errno)) => Err(io_err(std::io::Error::from(errno))),
    }
}

/// Creates `state` if it is missing (mode 0600), and makes it and its `-wal`, `-shm`
/// and `-journal` siblings (those that exist) readable by the owner only. Returns each
/// file that had to be tightened, with the mode it had.
pub fn secure(state: &Path) -> Result<Vec<(PathBuf, u32)>, StateFileError> {
    let mode_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateFileError::Mode { path, source }
    };
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(state)
        .map_err(mode_err(state))?;
    let mut tightened = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut name = state.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(mode_err(&path)(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if !crate::io::secret::is_private(mode) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(mode_err(&path))?;
            tightened.push((path, mode));
        }
    }
    Ok(tightened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_state_file_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        assert!(secure(&state).unwrap().is_empty(), "nothing to tighten");
        assert_eq!(mode(&state), 0o600);
    }

    #[test]
    fn an_existing_wide_file_and_its_siblings_are_tightened_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        for (name, m) in [
            ("state.db", 0o644),
            ("state.db-wal", 0o664),
            ("state.db-shm", 0o600),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        let tightened = secure(&state).unwrap();
        assert_eq!(
            tightened,
            vec![
                (state.clone(), 0o644),
                (dir.path().join("state.db-wal"), 0o664)
            ]
        );
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
    }

    #[test]
    fn the_lock_is_exclusive_names_its_holder_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let held = lock(&state).unwrap();
        assert_eq!(mode(&lock_path(&state)), 0o600);
        // A second open file description: what a second agent would do.
        match lock(&state) {
            Err(StateFileError::Locked { holder, .. }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()))
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        assert!(lock(&state).is_ok(), "released when dropped");
    }

    #[test]
    fn a_symlink_to_the_state_file_takes_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        std::fs::write(&state, b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        let _held = lock(&state).unwrap();
        assert!(
            matches!(lock(&link), Err(StateFileError::Locked { .. })),
            "the same file through a symlink is locked"
        );
    }
}
