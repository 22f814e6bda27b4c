//! People's orders to `rollwatch watch` (no agent) through its control socket
//! (`--control-socket PATH`, issue 22), with the real binary, the real Prometheus and
//! `rollwatch ctl --socket`: the socket is private (0600) while the watch runs and
//! gone when it ends, a hold and its release are recorded as the person's, an end is
//! their verdict (`declared_healthy`, exit 0), a path that is not a stale socket is
//! never replaced, and a garbled or huge request is answered while the watch goes on.

use crate::harness::rule_file::{logging_actions as rules, series};
use crate::harness::{bin, prometheus, run, start, Prom, Running, Scratch};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// `rollwatch ctl ARGS`: (exit code, stdout, stderr).
fn ctl(args: &[&str]) -> (Option<i32>, String, String) {
    ctl_env(args, None)
}

/// `rollwatch ctl ARGS` with ROLLWATCH_SERVER set to `server`.
fn ctl_env(args: &[&str], server: Option<&str>) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("ctl")
        .args(args)
        .env_remove("ROLLWATCH_BY")
        .env_remove("ROLLWATCH_SERVER");
    if let Some(url) = server {
        cmd.env("ROLLWATCH_SERVER", url);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A 60s watch of a healthy series, taking orders on `sock`.
fn healthy_watch(prom: &Prom, s: &Scratch, name: &str, sock: &Path) -> Running {
    prom.exporter.set(&series(name), 0.1);
    prom.await_value(&series(name), |v| v == Some(0.1));
    let file = s.rules(&rules(
        name,
        "    above: 0.5\n    for: 3s\n    interval: 1s",
        "  duration: 60s\n  interval: 1s",
    ));
    let w = start(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--control-socket",
        sock.to_str().unwrap(),
    ]);
    w.await_event("watch_started", Duration::from_secs(10));
    w
}

#[test]
fn orders_reach_a_watch_through_its_control_socket_and_the_socket_goes_with_it() {
    let prom = prometheus();
    let s = Scratch::new();
    let sock = s.path("watch.sock");
    let sock_s = sock.to_str().unwrap();
    let mut w = healthy_watch(prom, &s, "ctl-socket", &sock);
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "private to its user"
    );

    // Who: the user at the other end of the socket, when no --by is given.
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let (code, out, err) = ctl(&[
        "hold", "--for", "10m", "--reason", "INC-9", "--socket", sock_s,
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        err.contains(&format!("{me} held automatic actions until")),
        "{err}"
    );
    let held = w.await_event("manual", Duration::from_secs(5));
    let said = held["message"].as_str().unwrap_or_default();
    assert!(
        said.starts_with(&format!("{me} held automatic actions until")) && said.contains("INC-9"),
        "{held}"
    );

    let (code, _, err) = ctl_env(
        &[
            "release", "--reason", "fixed", "--by", "bob", "--socket", sock_s,
        ],
        // (An agent's URL in the shell does not get in the way of --socket.)
        Some("http://127.0.0.1:1"),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("bob released the hold"), "{err}");
    // Refused by the watch (nothing held), or malformed (no duration): exit 2, said why.
    let (code, _, err) = ctl(&["release", "--reason", "again", "--socket", sock_s]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not held"), "{err}");
    let (code, _, err) = ctl(&["extend", "--reason", "slow", "--socket", sock_s]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs a duration"), "{err}");
    // One of --server and --socket, and no WATCH with --socket.
    let (code, _, err) = ctl(&["end", "w-1", "--reason", "x", "--socket", sock_s]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = ctl(&[
        "end",
        "--reason",
        "x",
        "--socket",
        sock_s,
        "--server",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(code, Some(2), "{err}");

    let (code, out, err) = ctl(&[
        "end",
        "--reason",
        "verified by hand",
        "--by",
        "alice",
        "--socket",
        sock_s,
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(w.wait(Duration::from_secs(20)), 0, "{}", w.dump());
    let fin = w.events("watch_finished");
    assert_eq!(fin[0]["outcome"], "declared_healthy", "{fin:?}");
    assert!(
        fin[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("alice"),
        "{fin:?}"
    );
    assert!(!sock.exists(), "the socket is removed when the watch ends");
    assert!(s.lines("actions.log").is_empty());
    // Nobody listens any more: unreachable, exit 4.
    let (code, _, err) = ctl(&["end", "--reason", "late", "--socket", sock_s]);
    assert_eq!(code, Some(4), "{err}");
}

#[test]
fn a_watch_refuses_a_control_socket_path_that_is_not_a_stale_socket() {
    let prom = prometheus();
    let s = Scratch::new();
    let file = s.rules(&rules(
        "ctl-socket-file",
        "    above: 0.5\n    for: 3s",
        "  duration: 5s\n  interval: 1s",
    ));
    let taken = s.path("notes.txt");
    std::fs::write(&taken, "not a socket").unwrap();
    let (code, _, err) = run(&[
        "watch",
        "--rules",
        file.to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--control-socket",
        taken.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&taken).unwrap(),
        "not a socket",
        "untouched"
    );
}

/// Sends `bytes` on a fresh connection and reads the answer line.
fn raw(sock: &Path, bytes: &[u8]) -> serde_json::Value {
    let mut c = std::os::unix::net::UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(bytes).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
}

#[test]
fn a_garbled_or_huge_request_is_answered_and_the_watch_goes_on_until_sigterm() {
    let prom = prometheus();
    let s = Scratch::new();
    let sock = s.path("w.sock");
    let mut w = healthy_watch(prom, &s, "ctl-socket-garbage", &sock);
    let huge = raw(&sock, &vec![b'{'; 256 * 1024]);
    assert_eq!(huge["ok"], false);
    assert!(
        huge["error"]
            .as_str()
            .unwrap()
            .contains("longer than 4096 bytes"),
        "{huge}"
    );
    let garbled = raw(&sock, b"\x00\xffrollback now!\n");
    assert_eq!(garbled["ok"], false);
    assert!(
        garbled["error"].as_str().unwrap().contains("invalid order"),
        "{garbled}"
    );
    // The watch goes on polling, and nothing ran.
    w.await_event("poll", Duration::from_secs(5));
    w.await_event("poll", Duration::from_secs(5));
    assert!(sock.exists());
    w.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(w.wait(Duration::from_secs(20)), 143, "{}", w.dump());
    assert!(!sock.exists(), "removed on SIGTERM too");
    assert!(s.lines("actions.log").is_empty());
}

#[test]
fn a_second_watch_on_a_live_socket_is_refused_and_a_killed_watchs_socket_is_taken_over() {
    let prom = prometheus();
    let s = Scratch::new();
    let sock = s.path("w.sock");
    let sock_s = sock.to_str().unwrap();
    let first = healthy_watch(prom, &s, "ctl-socket-stale", &sock);
    // Another watch on the same path while the first listens: refused, exit 2.
    let (code, _, err) = run(&[
        "watch",
        "--rules",
        s.path("rules.yaml").to_str().unwrap(),
        "--prometheus",
        &prom.url,
        "--control-socket",
        sock_s,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another process listens"), "{err}");
    // Killed (no chance to clean up): its socket stays, stale, and the next watch
    // replaces it.
    first.signal(nix::sys::signal::Signal::SIGKILL);
    drop(first);
    assert!(sock.exists(), "SIGKILL leaves the socket behind");
    let mut second = healthy_watch(prom, &s, "ctl-socket-stale", &sock);
    let (code, _, err) = ctl(&["end", "--reason", "done", "--socket", sock_s]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(second.wait(Duration::from_secs(20)), 0, "{}", second.dump());
    assert!(!sock.exists());
}
