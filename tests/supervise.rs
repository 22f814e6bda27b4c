//! `rollwatch supervise` (issue 19, item 10): the hidden mode `serve` runs commands
//! through, so that a command's exit outlives its agent. Run here as the agent runs it.

use crate::harness::{bin, run, Scratch};
use serde_json::Value;
use std::os::unix::process::{CommandExt, ExitStatusExt};

fn record(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("the exit is recorded")).unwrap()
}

#[test]
fn supervise_exits_as_the_command_and_records_its_exit_privately() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let f = s.path("a.exit");
    let (code, out, _) = run(&[
        "supervise",
        "--status-file",
        f.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo hello; exit 7",
    ]);
    assert_eq!(code, 7);
    assert_eq!(out.trim(), "hello", "the command's output is its own");
    let r = record(&f);
    assert_eq!(r["code"], 7, "{r}");
    assert!(r["signal"].is_null(), "{r}");
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn an_argument_after_the_double_dash_is_never_an_option_of_the_supervisor() {
    let s = Scratch::new();
    let f = s.path("b.exit");
    let (code, out, _) = run(&[
        "supervise",
        "--status-file",
        f.to_str().unwrap(),
        "--",
        "echo",
        "--status-file",
        "/etc/passwd",
        "--help",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "--status-file /etc/passwd --help");
    assert_eq!(record(&f)["code"], 0);
    // Without `--`, a command is refused rather than guessed.
    let (code, _, _) = run(&["supervise", "--status-file", f.to_str().unwrap(), "true"]);
    assert_eq!(code, 2);
}

#[test]
fn a_command_killed_by_a_signal_is_recorded_so_and_the_supervisor_dies_the_same_way() {
    let s = Scratch::new();
    let f = s.path("c.exit");
    // The group's SIGTERM (the agent's timeout) reaches the command; the supervisor
    // outlives it long enough to record it.
    let st = std::process::Command::new(bin())
        .args(["supervise", "--status-file", f.to_str().unwrap(), "--"])
        .args(["sh", "-c", "kill -TERM 0; sleep 5"])
        .process_group(0)
        .status()
        .unwrap();
    assert_eq!(st.signal(), Some(15), "{st:?}");
    let r = record(&f);
    assert_eq!(r["signal"], 15, "{r}");
}
