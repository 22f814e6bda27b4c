//! `watch`'s local control socket (issue 22): people's orders to a watch that runs
//! without an agent, on a Unix socket the watch creates (`--control-socket PATH`),
//! and the client `rollwatch ctl ... --socket PATH` speaks.
//!
//! Why a socket and not signals: a signal cannot say who gives an order or why, and
//! the record an emergency change needs is both. Why here: an order is parsed and
//! checked by the same code as the agent's API (`core::control`: `Order::parse`,
//! `Control::new`; `core::rules::parse_duration` for `for`), and carried out by the
//! same decision loop (`run::watch`'s `OrderMsg`); this file is only the transport.
//!
//! The protocol: one JSON line in, `{"order": "hold", "for": "15m", "reason": "...",
//! "by": "alice"}` (`by` optional: the connecting process's user, from `SO_PEERCRED`,
//! otherwise), one JSON line out, `{"ok": true, "result": "..."}` or `{"ok": false,
//! "error": "..."}`, then the connection closes. A request is at most `MAX_REQUEST`
//! bytes and must arrive within `READ_TIMEOUT`, so a client that never writes holds
//! nothing; each connection is its own task, at most `MAX_CONNECTIONS` at once.
//!
//! Safety of the file: the socket is bound inside a fresh private directory (0700)
//! next to PATH, set to 0600 there, and only then linked to PATH (a hard link, which
//! never replaces anything), so no other user can ever connect through a
//! window between bind and chmod, and the process-wide umask is never touched. PATH's
//! directory must not be world-writable unless sticky; an existing PATH is removed
//! only when it is a socket nobody listens on (a stale one), and refused otherwise.
//! The socket is removed when the watch ends (`Drop`), if it is still the one made.

use crate::core::control::{Control, Order};
use crate::run::channel;
use crate::run::watch::OrderMsg;
use serde_json::json;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch, Semaphore};

/// The longest request line (bytes).
pub const MAX_REQUEST: usize = 4096;
/// How long a client has to send its request line (and to take the answer).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections handled at once; more are answered "busy" and closed.
pub const MAX_CONNECTIONS: usize = 8;
/// The longest answer line a client reads (bytes).
const MAX_ANSWER: u64 = 64 * 1024;

/// Why the control socket cannot be opened: the watch does not start (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("--control-socket {path}: {why}")]
pub struct OpenError {
    path: String,
    why: String,
}

fn refuse(path: &Path, why: impl Into<String>) -> OpenError {
    OpenError {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// An order as one request line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub order: String,
    pub reason: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The checked order of one request line: `by` if given, else `peer` (the connecting
/// user's name); stamped `now_ms`. Err: what to answer.
pub fn control_of(line: &[u8], peer: Option<&str>, now_ms: i64) -> Result<Control, String> {
    let r: Request = serde_json::from_slice(line).map_err(|e| format!("invalid order: {e}"))?;
    let d = r
        .for_
        .as_deref()
        .map(crate::core::rules::parse_duration)
        .transpose()
        .map_err(|e| format!("invalid `for`: {e}"))?;
    let order = Order::parse(&r.order, d).map_err(|e| e.to_string())?;
    let who = match (r.by.as_deref(), peer) {
        (Some(by), _) => by,
        (None, Some(peer)) => peer,
        (None, None) => {
            return Err("say who gives this order: `by` (the connecting user is unknown)".into())
        }
    };
    Control::new(order, who, &r.reason, now_ms).map_err(|e| e.to_string())
}

/// A user's name, or `uid:N` when the system has none for `uid` (blocking: it may
/// ask NSS).
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("uid:{uid}"),
    }
}

/// The name of the user at the other end of `stream` (`SO_PEERCRED`).
async fn peer_name(stream: &UnixStream) -> Option<String> {
    let uid = stream.peer_cred().ok()?.uid();
    let name = tokio::task::spawn_blocking(move || user_name(uid)).await;
    Some(name.unwrap_or_else(|_| format!("uid:{uid}")))
}

/// The control socket of a running watch; removed when dropped (`close` also lets
/// the answers being written reach their clients).
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    /// (device, inode) of the socket made, so that only it is ever removed.
    made: (u64, u64),
    accept: tokio::task::JoinHandle<()>,
    /// One permit per connection being handled.
    slots: Arc<Semaphore>,
    /// Set when the watch is over: connections still reading a request stop.
    closing: watch::Sender<bool>,
}

impl ControlSocket {
    /// Creates the socket at `path` (see the module doc for the checks) and serves it:
    /// every checked order goes to `orders`, and its answer back to its client.
    pub async fn open(
        path: &Path,
        orders: channel::Sender<OrderMsg>,
    ) -> Result<ControlSocket, OpenError> {
        path.file_name()
            .ok_or_else(|| refuse(path, "names no file"))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir =
            std::fs::metadata(&parent).map_err(|e| refuse(path, format!("its directory: {e}")))?;
        if !dir.is_dir() {
            return Err(refuse(path, "its parent is not a directory"));
        }
        let mode = dir.mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(refuse(
                path,
                format!(
                    "its directory {} is writable by everyone and not sticky: anyone could replace the socket\n  = help: use a private directory, e.g. $XDG_RUNTIME_DIR",
                    parent.display()
                ),
            ));
        }
        clear_stale(path).await?;
        let tmp = parent.join(format!(".rw{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| refuse(path, format!("cannot create {}: {e}", tmp.display())))?;
        let bound = bind_private(&tmp.join("s"), path);
        let _ = std::fs::remove_file(tmp.join("s"));
        let _ = std::fs::remove_dir(&tmp);
        let listener = bound?;
        let made = std::fs::symlink_metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| refuse(path, e.to_string()))?;
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
            .map_err(|e| {
                let _ = std::fs::remove_file(path);
                refuse(path, e.to_string())
            })?;
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let (closing, closed) = watch::channel(false);
        Ok(ControlSocket {
            path: path.to_path_buf(),
            made,
            accept: tokio::spawn(serve(listener, orders, slots.clone(), closed)),
            slots,
            closing,
        })
    }

    /// Removes the socket once the watch is over, and waits (at most `READ_TIMEOUT`)
    /// for the connections still open to answer, so that the order that ended the
    /// watch is answered before the process exits. A connection still reading its
    /// request is told the watch has ended.
    pub async fn close(self) {
        let _ = self.closing.send(true);
        self.accept.abort();
        self.remove();
        let all = MAX_CONNECTIONS as u32;
        let _ = tokio::time::timeout(READ_TIMEOUT, self.slots.acquire_many(all)).await;
    }

    fn remove(&self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.made);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds at `tmp` (inside a private directory), sets 0600, then links it to `path`
/// (failing if anything is there: a link never replaces).
fn bind_private(tmp: &Path, path: &Path) -> Result<std::os::unix::net::UnixListener, OpenError> {
    let listener = std::os::unix::net::UnixListener::bind(tmp)
        .map_err(|e| refuse(path, format!("cannot bind: {e}")))?;
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| refuse(path, format!("cannot set its mode: {e}")))?;
    std::fs::hard_link(tmp, path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            refuse(path, "it appeared while the socket was made; not replaced")
        }
        _ => refuse(path, format!("cannot create it: {e}")),
    })?;
    Ok(listener)
}

/// Removes a stale socket at `path` (nobody listens); refuses anything else there.
async fn clear_stale(path: &Path) -> Result<(), OpenError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(path, e.to_string())),
    };
    if !meta.file_type().is_socket() {
        return Err(refuse(
            path,
            "it exists and is not a socket; it is left alone\n  = help: choose another path, or remove it if it is yours",
        ));
    }
    let probe = tokio::time::timeout(Duration::from_secs(1), UnixStream::connect(path)).await;
    match probe {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)
                .map_err(|e| refuse(path, format!("cannot remove the stale socket: {e}")))
        }
        Ok(Err(e)) => Err(refuse(
            path,
            format!("a socket is there and cannot be probed: {e}"),
        )),
        Ok(Ok(_)) | Err(_) => Err(refuse(
            path,
            "another process listens on it (a watch still running?); it is left alone",
        )),
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.accept.abort();
        self.remove();
    }
}

/// Accepts connections until the socket is dropped, each in its own task.
async fn serve(
    listener: UnixListener,
    orders: channel::Sender<OrderMsg>,
    slots: Arc<Semaphore>,
    closed: watch::Receiver<bool>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(event = "control_socket_error", error = %e, "cannot accept a connection on the control socket");
                // (Out of file descriptors, say: do not spin.)
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let _ = stream.try_write(&answer_line(&Err(
                "busy: too many connections at once; try again".into(),
            )));
            continue;
        };
        // (A sender of its own: a send waits for room with one waiting task a sender.)
        let mut orders = orders.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            connection(stream, &mut orders, closed).await;
            drop(slot);
        });
    }
}

fn answer_line(result: &Result<String, String>) -> Vec<u8> {
    let v = match result {
        Ok(r) => json!({"ok": true, "result": r}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    format!("{v}\n").into_bytes()
}

/// One connection: a request line in, an answer line out.
async fn connection(
    mut stream: UnixStream,
    orders: &mut channel::Sender<OrderMsg>,
    mut closed: watch::Receiver<bool>,
) {
    let read = tokio::select! {
        r = tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)) => Some(r),
        // (Err: the socket was dropped; the watch is over all the same.)
        _ = closed.wait_for(|c| *c) => None,
    };
    let (result, overlong) = match read {
        None => (Err("the watch has ended".to_string()), false),
        Some(Err(_)) => (
            Err(format!(
                "no request line within {}s",
                READ_TIMEOUT.as_secs()
            )),
            false,
        ),
        Some(Ok(Err(e))) => {
            let overlong = e.starts_with("the request is longer");
            (Err(e), overlong)
        }
        Some(Ok(Ok(line))) => (order(&stream, &line, orders).await, false),
    };
    if let Err(e) = &result {
        // (Quoted: a parse error may repeat a key the client sent, newlines and all.)
        tracing::info!(event = "control_socket_refused", error = ?e, "an order on the control socket was not carried out: {e:?}");
    }
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        stream.write_all(&answer_line(&result)).await?;
        stream.shutdown().await?;
        if overlong {
            // Read (and drop) what the client is still sending, bounded, so that it
            // can finish writing and read the answer.
            let mut rest = (&mut stream).take(1 << 20);
            tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// The request line (at most `MAX_REQUEST` bytes; the newline may be missing at the end).
async fn read_request(stream: &mut UnixStream) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut r = BufReader::new((&mut *stream).take(MAX_REQUEST as u64 + 1));
    r.read_until(b'\n', &mut buf)
        .await
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if buf.len() > MAX_REQUEST {
        return Err(format!(
            "the request is longer than {MAX_REQUEST} bytes: one JSON line is expected"
        ));
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Err("empty request: one JSON line is expected".into());
    }
    Ok(buf)
}

/// Checks the order in `line` and hands it to the watch; its answer.
async fn order(
    stream: &UnixStream,
    line: &[u8],
    orders: &mut channel::Sender<OrderMsg>,
) -> Result<String, String> {
    let peer = peer_name(stream).await;
    let control = control_of(line, peer.as_deref(), crate::core::events::now_ms())?;
    let (reply, answer) = oneshot::channel();
    orders
        .send(OrderMsg {
            control: Box::new(control),
            reply,
        })
        .await
        .map_err(|_| "the watch has ended".to_string())?;
    match answer.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(format!("refused: {e}")),
        Err(_) => Err("the watch ended before it took this order".into()),
    }
}

/// Why `ask` got no answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the watch at {path}: {why}")]
pub struct Unreachable {
    path: String,
    why: String,
}

/// Sends `request` to the control socket at `path` and reads its answer, waiting at
/// most `wait` (a rollback is answered when its command starts). Ok(Ok(what was
/// done)) or Ok(Err(why not)); Err when there is no answer.
pub async fn ask(
    path: &Path,
    request: &Request,
    wait: Duration,
) -> Result<Result<String, String>, Unreachable> {
    let gone = |why: String| Unreachable {
        path: path.display().to_string(),
        why,
    };
    let talk = async {
        let mut s = UnixStream::connect(path)
            .await
            .map_err(|e| gone(e.to_string()))?;
        let mut line = serde_json::to_vec(request).map_err(|e| gone(e.to_string()))?;
        line.push(b'\n');
        s.write_all(&line).await.map_err(|e| gone(e.to_string()))?;
        let mut answer = Vec::new();
        BufReader::new((&mut s).take(MAX_ANSWER))
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| gone(e.to_string()))?;
        Ok(answer)
    };
    let answer = tokio::time::timeout(wait, talk).await.map_err(|_| {
        gone(format!(
            "no answer within {}s (the order may still be carried out: look at the watch's log)",
            wait.as_secs()
        ))
    })??;
    let v: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|_| gone("it closed the connection without an answer".into()))?;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok(match v["ok"].as_bool() {
        Some(true) => Ok(text("result")),
        _ => Err(text("error")),
    })
}

#[cfg(test)]
#[path = "control_socket_tests.rs"]
mod tests;
