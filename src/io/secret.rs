//! Files that hold secrets (the agent's API token, the store's URL with its password,
//! the store's TLS client key): read only if no one but their owner can read them.
//!
//! Why refuse rather than warn: a password readable by every user of the machine is
//! already leaked, and a warning in a log nobody reads fixes nothing; libpq refuses a
//! wide `sslkey` the same way. The one rule of what "private" means lives here
//! (`is_private`): the state file (`store::statefile`) uses it too, tightening its own
//! file instead of refusing it, since rollwatch created it.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a secret file was not read. Never carries the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {path} is readable by group or others (mode {mode:04o}), but it holds a secret: run `chmod 600 {path}`")]
    Open {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("the {what} {path} is not UTF-8 text")]
    NotText { what: &'static str, path: PathBuf },
}

/// Whether `mode` lets only its owner in: no bit for group or others.
pub fn is_private(mode: u32) -> bool {
    mode & 0o077 == 0
}

/// Who may read a secret file besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// No one (mode 0600 or narrower).
    OwnerOnly,
    /// libpq's rule for `sslkey`: also its group (0640 or narrower) when owned by root,
    /// so that a root-managed key can be shared with the service's group.
    GroupIfRootOwned,
}

fn allowed(mode: u32, uid: u32, allow: Allow) -> bool {
    match allow {
        Allow::GroupIfRootOwned if uid == 0 => mode & 0o037 == 0,
        _ => is_private(mode),
    }
}

/// The bytes of the secret file `path` (`what` names it in errors), if its mode lets
/// no one else read it. The mode is checked on the opened file, not on the name.
pub fn read_bytes(
    path: &Path,
    what: &'static str,
    allow: Allow,
) -> Result<Vec<u8>, SecretFileError> {
    let read = |source| SecretFileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    let mode = meta.mode() & 0o777;
    if !allowed(mode, meta.uid(), allow) {
        return Err(SecretFileError::Open {
            what,
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read)?;
    Ok(bytes)
}

/// The text of the secret file `path`, owner-only: without a UTF-8 byte-order mark.
pub fn read_text(path: &Path, what: &'static str) -> Result<String, SecretFileError> {
    let bytes = read_bytes(path, what, Allow::OwnerOnly)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
        what,
        path: path.to_path_buf(),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_owner_only_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "\u{feff}s3cret\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o620] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_text(&p, "token file").unwrap_err();
            let s = e.to_string();
            assert!(s.contains(&format!("{mode:04o}")), "{s}");
            assert!(s.contains(&format!("chmod 600 {}", p.display())), "{s}");
            assert!(s.contains("token file") && !s.contains("s3cret"), "{s}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_text(&p, "token file").unwrap(), "s3cret\n");
        }
    }

    #[test]
    fn a_root_owned_key_may_be_read_by_its_group_as_in_libpq() {
        assert!(allowed(0o640, 0, Allow::GroupIfRootOwned));
        assert!(!allowed(0o644, 0, Allow::GroupIfRootOwned));
        assert!(!allowed(0o660, 0, Allow::GroupIfRootOwned));
        assert!(!allowed(0o640, 1000, Allow::GroupIfRootOwned));
        assert!(!allowed(0o640, 0, Allow::OwnerOnly));
        assert!(allowed(0o600, 1000, Allow::GroupIfRootOwned));
    }
}
