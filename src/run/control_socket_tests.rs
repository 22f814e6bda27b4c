//! The control socket's requests (parsed and checked by the API's code) and the file
//! it makes: private, never replacing what is not a stale socket, gone when dropped;
//! bounded requests and a client that never writes answered, never waited on.

use super::*;
use crate::core::control::Order;
use std::os::unix::fs::PermissionsExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIN: Duration = Duration::from_secs(60);

/// A request line, the connecting user, and the order and who it is recorded as (or
/// what the error says).
type Row<'a> = (&'a str, Option<&'a str>, Result<(Order, &'a str), &'a str>);

#[test]
fn a_request_line_is_checked_as_the_api_checks_an_order() {
    let rows: &[Row] = &[
        (
            r#"{"order":"hold","for":"15m","reason":"INC-1","by":"alice"}"#,
            Some("bob"),
            Ok((Order::Hold(15 * MIN), "alice")),
        ),
        (
            r#"{"order":"end","reason":"looks fine"}"#,
            Some("bob"),
            Ok((Order::End, "bob")),
        ),
        (
            "{\"order\":\"release\",\"reason\":\"x\"}\n",
            Some("uid:1234"),
            Ok((Order::Release, "uid:1234")),
        ),
        (
            r#"{"order":"end","reason":"x"}"#,
            None,
            Err("say who gives this order"),
        ),
        (
            r#"{"order":"hold","reason":"x","by":"a"}"#,
            None,
            Err("needs a duration"),
        ),
        (
            r#"{"order":"hold","for":"soon","reason":"x","by":"a"}"#,
            None,
            Err("invalid `for`"),
        ),
        (
            r#"{"order":"end","reason":"  ","by":"a"}"#,
            None,
            Err("a reason is required"),
        ),
        (
            r#"{"order":"end","by":"a"}"#,
            None,
            Err("missing field `reason`"),
        ),
        (
            r#"{"order":"end","reason":"x","by":"a","watch":"w"}"#,
            None,
            Err("unknown field `watch`"),
        ),
        (
            r#"{"order":"end","reason":"x","by":"a\nforged"}"#,
            None,
            Err("control character"),
        ),
        (
            r#"{"order":"reboot","reason":"x","by":"a"}"#,
            None,
            Err("unknown action"),
        ),
        ("\u{0}\u{1}garbage", Some("bob"), Err("invalid order")),
    ];
    for (line, peer, want) in rows {
        let got = control_of(line.as_bytes(), *peer, 42);
        match want {
            Ok((order, who)) => {
                let c = got.unwrap_or_else(|e| panic!("{line}: {e}"));
                assert_eq!(
                    (c.order, c.who.as_str(), c.at_ms),
                    (*order, *who, 42),
                    "{line}"
                );
            }
            Err(e) => {
                let msg = got.unwrap_err();
                assert!(msg.contains(e), "{line}: {msg}");
            }
        }
    }
}

/// A watch's side: answers every order with "done by WHO: REASON".
fn fake_watch() -> (
    channel::Sender<OrderMsg>,
    tokio::task::JoinHandle<Vec<Control>>,
) {
    let (tx, mut rx) = channel::channel::<OrderMsg>(8);
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(OrderMsg { control, reply }) = rx.recv().await {
            let _ = reply.send(Ok(format!("done by {}: {}", control.who, control.reason)));
            seen.push(*control);
        }
        seen
    });
    (tx, task)
}

fn request(order: &str, by: Option<&str>) -> Request {
    Request {
        order: order.into(),
        reason: "INC-7".into(),
        for_: None,
        by: by.map(str::to_string),
    }
}

#[tokio::test]
async fn the_socket_is_private_carries_orders_and_is_gone_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sock");
    let (tx, seen) = fake_watch();
    let socket = ControlSocket::open(&path, tx).await.unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Nothing else left next to it (the private directory it was made in is gone).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let got = ask(&path, &request("end", None), MIN).await.unwrap();
    let me = user_name(nix::unistd::getuid().as_raw());
    assert_eq!(
        got,
        Ok(format!("done by {me}: INC-7")),
        "SO_PEERCRED's user"
    );
    let got = ask(&path, &request("end", Some("alice")), MIN)
        .await
        .unwrap();
    assert_eq!(got, Ok("done by alice: INC-7".into()));
    let got = ask(&path, &request("hold", Some("alice")), MIN)
        .await
        .unwrap();
    assert!(got.unwrap_err().contains("needs a duration"));

    drop(socket);
    assert!(!path.exists(), "removed when the watch ends");
    let seen = seen.await.unwrap();
    assert_eq!(seen.len(), 2, "the refused order never reached the watch");
}

#[tokio::test]
async fn an_order_after_the_watch_ended_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sock");
    let (tx, rx) = channel::channel::<OrderMsg>(1);
    drop(rx);
    let _socket = ControlSocket::open(&path, tx).await.unwrap();
    let got = ask(&path, &request("end", Some("a")), MIN).await.unwrap();
    assert_eq!(got, Err("the watch has ended".into()));
}

#[tokio::test]
async fn what_is_not_a_stale_socket_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // A file: refused, untouched.
    let file = dir.path().join("file");
    std::fs::write(&file, "mine").unwrap();
    let e = ControlSocket::open(&file, fake_watch().0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    // A socket somebody listens on: refused, still there.
    let live = dir.path().join("live.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
    let e = ControlSocket::open(&live, fake_watch().0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("another process listens"), "{e}");
    assert!(live.exists());
    // A stale socket (its listener gone): replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let socket = ControlSocket::open(&stale, fake_watch().0).await.unwrap();
    let got = ask(&stale, &request("end", Some("a")), MIN).await.unwrap();
    assert!(got.is_ok(), "{got:?}");
    drop(socket);
    // A world-writable directory without the sticky bit: refused.
    let open_dir = dir.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = ControlSocket::open(&open_dir.join("w.sock"), fake_watch().0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("writable by everyone"), "{e}");
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let sticky = ControlSocket::open(&open_dir.join("w.sock"), fake_watch().0).await;
    assert!(sticky.is_ok(), "{sticky:?}");
}

async fn raw(path: &Path, send: &[u8]) -> serde_json::Value {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(send).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
}

#[tokio::test]
async fn a_huge_or_garbled_request_gets_an_error_and_the_socket_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sock");
    let (tx, _seen) = fake_watch();
    let _socket = ControlSocket::open(&path, tx).await.unwrap();
    let huge = raw(&path, &vec![b'x'; 64 * 1024]).await;
    assert_eq!(huge["ok"], false);
    assert!(
        huge["error"].as_str().unwrap().contains("longer than 4096"),
        "{huge}"
    );
    let garbled = raw(&path, b"\xff\xfe not json\n").await;
    assert!(
        garbled["error"].as_str().unwrap().contains("invalid order"),
        "{garbled}"
    );
    let good = raw(
        &path,
        b"{\"order\":\"end\",\"reason\":\"x\",\"by\":\"a\"}\n",
    )
    .await;
    assert_eq!(good, json!({"ok": true, "result": "done by a: x"}));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_writes_is_answered_after_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sock");
    let (tx, _seen) = fake_watch();
    let _socket = ControlSocket::open(&path, tx).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut s = UnixStream::connect(&path).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("no request line within 5s"), "{answer}");
    assert_eq!(started.elapsed(), READ_TIMEOUT);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_told_busy_not_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sock");
    let (tx, _seen) = fake_watch();
    let _socket = ControlSocket::open(&path, tx).await.unwrap();
    // Silent clients hold every slot (each until its read timeout).
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        silent.push(UnixStream::connect(&path).await.unwrap());
    }
    let mut one_more = UnixStream::connect(&path).await.unwrap();
    let mut answer = String::new();
    one_more.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("busy"), "{answer}");
}
