//! Bearer tokens that rotate: `--bearer-token-file` and `--bearer-token-command`.
//!
//! Why re-read at all: a watch may outlive its token. Kubernetes projected service
//! account tokens are replaced about hourly, by a symlink swap (`..data` is pointed at
//! a new directory), and `gcloud auth print-access-token` tokens last an hour. A token
//! read once at start would turn every poll after that into a 401, and the watch blind.
//!
//! - The file is `stat`ed (through symlinks) before each request, and read again when
//!   its identity (device, inode), size, mtime or ctime changed, or after a 401. If it
//!   cannot be read for a moment (mid-swap), the last good token is used.
//! - The command (argv, no shell) is run when there is no token, when the token is
//!   near its expiry (JSON output may say when; a bare token is run again every
//!   `BARE_TOKEN_LIFETIME`), and after a 401. It has `COMMAND_TIMEOUT`; its stderr is
//!   discarded and its output is never logged or quoted in an error.
//!
//! All the I/O is off the runtime (`spawn_blocking` for the file, tokio's process for
//! the command), so the runtime never blocks.

use reqwest::header::HeaderValue;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long the token command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a token the command printed bare (no expiry) is used before it is run again.
pub const BARE_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// A token is renewed when this much of its life is left, or half of it if shorter.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// The most output a token command may print.
const MAX_OUTPUT: usize = 64 << 10;

/// Why no token could be had. Never carries the token, the command's output or stderr.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the bearer token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bearer token contains characters not allowed in a header")]
    NotHeader,
    #[error("the bearer token is empty")]
    Empty,
    #[error("the bearer token command `{program}` could not start: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("the bearer token command `{program}` did not finish within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
    #[error("the bearer token command `{program}` failed ({status}); its output is not shown, as it may hold secrets")]
    Failed { program: String, status: String },
    #[error("the bearer token command `{program}` printed neither a token nor JSON with a token (access_token, token, status.token or credential.access_token)")]
    Unreadable { program: String },
}

/// Where the bearer token comes from.
pub enum TokenSource {
    File(FileToken),
    Command(CommandToken),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::File(t) => f.debug_tuple("File").field(&t.path).finish(),
            TokenSource::Command(c) => f.debug_tuple("Command").field(&c.argv[0]).finish(),
        }
    }
}

impl TokenSource {
    /// The `Authorization` value to send now.
    pub async fn header(&self) -> Result<HeaderValue, TokenError> {
        match self {
            TokenSource::File(t) => t.header().await,
            TokenSource::Command(c) => c.header().await,
        }
    }

    /// After a 401: the next `header` reads the file or runs the command again.
    pub async fn invalidate(&self) {
        match self {
            TokenSource::File(t) => *t.state.lock().await = None,
            TokenSource::Command(c) => *c.state.lock().await = None,
        }
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

pub struct FileToken {
    path: PathBuf,
    state: Mutex<Option<(Stamp, HeaderValue)>>,
    /// The last token read, used while the file cannot be read (mid-swap).
    last: Mutex<Option<HeaderValue>>,
}

fn bearer(token: &str) -> Result<HeaderValue, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let mut v =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| TokenError::NotHeader)?;
    v.set_sensitive(true);
    Ok(v)
}

impl FileToken {
    /// Reads the file once now (a file that cannot be read at start is bad input).
    pub fn open(path: PathBuf) -> Result<FileToken, TokenError> {
        let read = |source| TokenError::Read {
            path: path.clone(),
            source,
        };
        let meta = std::fs::metadata(&path).map_err(read)?;
        let value = bearer(&std::fs::read_to_string(&path).map_err(read)?)?;
        Ok(FileToken {
            state: Mutex::new(Some((Stamp::of(&meta), value.clone()))),
            last: Mutex::new(Some(value)),
            path,
        })
    }

    async fn header(&self) -> Result<HeaderValue, TokenError> {
        let mut state = self.state.lock().await;
        let read = |source| TokenError::Read {
            path: self.path.clone(),
            source,
        };
        let fresh = async {
            let known = state.as_ref().map(|(s, _)| *s);
            let path = self.path.clone();
            // std's fs off the runtime (what tokio::fs does; its feature is not built).
            let read_new = tokio::task::spawn_blocking(move || {
                let stamp = Stamp::of(&std::fs::metadata(&path)?);
                if Some(stamp) == known {
                    return Ok((stamp, None));
                }
                Ok((stamp, Some(std::fs::read_to_string(&path)?)))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match read_new.map_err(read)? {
                (_, None) => Ok(state.as_ref().expect("known").1.clone()),
                (stamp, Some(text)) => {
                    let value = bearer(&text)?;
                    *state = Some((stamp, value.clone()));
                    Ok(value)
                }
            }
        }
        .await;
        let mut last = self.last.lock().await;
        match fresh {
            Ok(v) => {
                *last = Some(v.clone());
                Ok(v)
            }
            Err(e) => last.clone().ok_or(e),
        }
    }
}

pub struct CommandToken {
    argv: Vec<String>,
    timeout: Duration,
    /// The token and when to run the command again.
    state: Mutex<Option<(HeaderValue, Instant)>>,
}

impl CommandToken {
    pub fn new(argv: Vec<String>, timeout: Duration) -> CommandToken {
        CommandToken {
            argv,
            timeout,
            state: Mutex::new(None),
        }
    }

    async fn header(&self) -> Result<HeaderValue, TokenError> {
        let mut state = self.state.lock().await;
        if let Some((v, renew)) = state.as_ref() {
            if Instant::now() < *renew {
                return Ok(v.clone());
            }
        }
        let (token, lifetime) = self.run().await?;
        let value = bearer(&token)?;
        *state = Some((value.clone(), Instant::now() + renew_after(lifetime)));
        Ok(value)
    }

    /// Runs the command once: the token and how long it is valid from now.
    async fn run(&self) -> Result<(String, Duration), TokenError> {
        let program = self.argv[0].clone();
        let mut child = tokio::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| TokenError::Spawn {
                program: program.clone(),
                source,
            })?;
        let mut stdout = child.stdout.take().expect("piped");
        let work = async {
            use tokio::io::AsyncReadExt;
            let mut out = Vec::new();
            let _ = (&mut stdout)
                .take(MAX_OUTPUT as u64 + 1)
                .read_to_end(&mut out)
                .await;
            (child.wait().await, out)
        };
        let (status, out) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| TokenError::Timeout {
                program: program.clone(),
                timeout: self.timeout,
            })?;
        let status = status.map_err(|source| TokenError::Spawn {
            program: program.clone(),
            source,
        })?;
        if !status.success() {
            return Err(TokenError::Failed {
                program,
                status: status.to_string(),
            });
        }
        if out.len() > MAX_OUTPUT {
            return Err(TokenError::Unreadable { program });
        }
        let text = String::from_utf8(out).map_err(|_| TokenError::Unreadable {
            program: program.clone(),
        })?;
        parse_output(&text, SystemTime::now()).ok_or(TokenError::Unreadable { program })
    }
}

/// When to renew a token valid for `lifetime`: `RENEW_BEFORE` before its end, or at
/// half its life if that is shorter.
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2))
}

/// The token a command printed, and how long it is valid from `now`: a bare token
/// (one line), or JSON with `access_token`/`token`/`status.token` (Kubernetes
/// ExecCredential)/`credential.access_token` (`gcloud config config-helper`), and
/// `expires_in` (seconds) or an RFC 3339 `expires_at`/`expiry`/`expiration`/
/// `expirationTimestamp`/`token_expiry`.
pub fn parse_output(text: &str, now: SystemTime) -> Option<(String, Duration)> {
    let text = text.trim();
    if !text.starts_with('{') {
        return (!text.is_empty() && !text.contains(['\n', '\r']))
            .then(|| (text.to_string(), BARE_TOKEN_LIFETIME));
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let scopes = [&v, &v["status"], &v["credential"]];
    let token = scopes.iter().find_map(|s| {
        ["access_token", "token"]
            .iter()
            .find_map(|k| s[k].as_str().filter(|t| !t.is_empty()))
    })?;
    let mut lifetime = None;
    for s in scopes {
        if let Some(secs) = s["expires_in"].as_f64().filter(|s| *s > 0.0) {
            lifetime = Some(Duration::from_secs_f64(secs.min(1e9)));
            break;
        }
        let at = [
            "expires_at",
            "expiry",
            "expiration",
            "expirationTimestamp",
            "token_expiry",
        ]
        .iter()
        .find_map(|k| s[k].as_str()?.parse::<jiff::Timestamp>().ok());
        if let Some(at) = at {
            lifetime = Some(
                SystemTime::from(at)
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO),
            );
            break;
        }
    }
    Some((token.to_string(), lifetime.unwrap_or(BARE_TOKEN_LIFETIME)))
}

/// The words of a `--bearer-token-command` value, split as a shell splits words but
/// with no shell: `'…'` and `"…"` quote (`\` escapes in `"…"` and outside quotes);
/// nothing is expanded. None if a quote is left open or there is no word.
pub fn split_argv(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    (!words.is_empty()).then_some(words)
}

#[cfg(test)]
#[path = "auth_token_tests.rs"]
mod tests;
