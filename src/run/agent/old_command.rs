//! Whether an interrupted command is still running, and waiting for it to end: the
//! process groups a `kill -9` of the agent can leave behind (recorded by pid and start
//! time, or found by their `ROLLWATCH_ACTION_ID`), on this boot's clock. Before an
//! interrupted idempotent command runs again, the restart makes sure the original has
//! ended (`wait_for_old_command`). Split from `exactly_once.rs` (the claim protocol
//! and the pure resume plan), which this reads nothing from.

use crate::io::store::{ActionRow, ProcessId};
use std::time::Duration;
use tracing::{error, warn};

impl ProcessId {
    /// The process `pid` as it is now (its start time and this boot's id).
    pub fn of(pid: u32) -> ProcessId {
        ProcessId {
            pgid: i64::from(pid),
            start_ticks: proc_stat(pid as i32).map(|s| s.start_ticks),
            boot_id: boot_id(),
        }
    }
}

/// The fields of /proc/PID/stat this module needs.
struct ProcStat {
    pgrp: i32,
    start_ticks: i64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is f[N - 3].
    Some(ProcStat {
        pgrp: f.get(2)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
    })
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

fn group_exists(pgid: i32) -> bool {
    pgid > 1 && nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok_or_eperm()
}

trait OkOrEperm {
    fn is_ok_or_eperm(&self) -> bool;
}

impl OkOrEperm for nix::Result<()> {
    fn is_ok_or_eperm(&self) -> bool {
        matches!(self, Ok(()) | Err(nix::errno::Errno::EPERM))
    }
}

/// Whether the interrupted action's command was recorded as started on this host in
/// its current boot: only then can this agent see (and stop) it.
pub fn started_here(a: &ActionRow) -> bool {
    a.process
        .as_ref()
        .is_some_and(|p| p.boot_id.is_some() && p.boot_id == boot_id())
}

/// Whether the recorded process group is still the command's: same boot, the group
/// exists, and its leader is either gone (the group holds the command's children; the
/// kernel never reuses a pid that is still a group id) or still the same process.
fn recorded_group_alive(p: &ProcessId) -> Option<i32> {
    let pgid = i32::try_from(p.pgid).ok()?;
    if p.boot_id.is_some() && p.boot_id != boot_id() {
        return None;
    }
    if !group_exists(pgid) {
        return None;
    }
    match proc_stat(pgid) {
        Some(s) if Some(s.start_ticks) != p.start_ticks || s.pgrp != pgid => None,
        _ => Some(pgid),
    }
}

/// Process groups of processes whose environment carries `ROLLWATCH_ACTION_ID=tag`.
fn groups_tagged(tag: &str) -> Vec<i32> {
    let want = format!("ROLLWATCH_ACTION_ID={tag}");
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
            if let Some(s) = proc_stat(pid) {
                if !out.contains(&s.pgrp) {
                    out.push(s.pgrp);
                }
            }
        }
    }
    out
}

/// The process groups of an interrupted action that are still running.
fn live_groups(a: &ActionRow, tag: &str) -> Vec<i32> {
    let mut groups = groups_tagged(tag);
    if let Some(g) = a.process.as_ref().and_then(recorded_group_alive) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups.retain(|g| group_exists(*g));
    groups
}

/// Whether a process group of the interrupted action `a` (tagged `tag`) still exists
/// on this host.
pub fn still_running(a: &ActionRow, tag: &str) -> bool {
    !live_groups(a, tag).is_empty()
}

/// When the interrupted action `a`'s own timeout would stop its command, on this
/// host's boot clock: the command's process started `start_ticks` after boot (from
/// /proc), so how long it has run is `/proc/uptime` minus that, whatever any wall
/// clock says. Neither the claiming agent's wall clock (which stamped `started_ms`)
/// nor this one's (either may be off, or stepped since) moves it. Without a recorded
/// process of this boot, the wall clocks are all there is.
pub fn old_command_deadline(a: &ActionRow, timeout: Duration) -> tokio::time::Instant {
    let ran = a
        .process
        .as_ref()
        .filter(|p| p.boot_id.is_some() && p.boot_id == boot_id())
        .and_then(|p| p.start_ticks)
        .and_then(ran_since_boot_ticks)
        .unwrap_or_else(|| {
            let ms = crate::core::events::now_ms() - a.started_ms;
            Duration::from_millis(ms.max(0) as u64)
        });
    tokio::time::Instant::now() + timeout.saturating_sub(ran)
}

/// How long ago a process that started `start_ticks` clock ticks after boot started.
fn ran_since_boot_ticks(start_ticks: i64) -> Option<Duration> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)?;
    let started = start_ticks as f64 / tck as f64;
    Some(Duration::from_secs_f64((uptime - started).max(0.0)))
}

/// Makes sure the command of an interrupted action has ended before it runs again:
/// waits for it until its own timeout would have stopped it, then stops its groups
/// (SIGTERM, then SIGKILL). Returns `(found, left)`: how many groups were running, and
/// how many still are after all that (not ours to signal, stuck in the kernel): a
/// re-run must not start while `left > 0`.
pub async fn wait_for_old_command(
    a: &ActionRow,
    tag: &str,
    timeout: Duration,
    watch: &str,
) -> (usize, usize) {
    let groups = live_groups(a, tag);
    if groups.is_empty() {
        return (0, 0);
    }
    warn!(event = "action_still_running", watch = %watch, action = %a.kind, groups = ?groups,
        "the interrupted {} command is still running: waiting for it to end before running it again (never two at once)", a.kind);
    let deadline = old_command_deadline(a, timeout);
    while !live_groups(a, tag).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (sig, grace) in [
        (nix::sys::signal::SIGTERM, 5_000),
        (nix::sys::signal::SIGKILL, 5_000),
    ] {
        let left = live_groups(a, tag);
        if left.is_empty() {
            break;
        }
        warn!(event = "action_stopped", watch = %watch, groups = ?left, signal = ?sig, "the interrupted command outlived its timeout: stopping its process group");
        for g in &left {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*g), sig);
        }
        let until = crate::core::events::now_ms() + grace;
        while !live_groups(a, tag).is_empty() && crate::core::events::now_ms() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let left = live_groups(a, tag);
    if !left.is_empty() {
        error!(event = "action_still_running", watch = %watch, groups = ?left,
            "the interrupted command's process groups could not be stopped; it is not run again");
    }
    (groups.len(), left.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::store::ActionState;

    fn row(
        id: i64,
        kind: &str,
        state: ActionState,
        ok: Option<bool>,
        rerun_of: Option<i64>,
    ) -> ActionRow {
        ActionRow::sample(id, kind, state, ok, rerun_of)
    }

    #[test]
    fn proc_stat_reads_this_process() {
        let me = std::process::id() as i32;
        let s = proc_stat(me).expect("/proc/self/stat");
        assert!(s.start_ticks > 0);
        assert_eq!(s.pgrp, nix::unistd::getpgrp().as_raw());
    }

    #[tokio::test]
    async fn an_interrupted_command_is_waited_for_then_stopped() {
        // A "command" in its own process group that outlives its timeout.
        let tag = format!("test/{}/1", std::process::id());
        let child = tokio::process::Command::new("sleep")
            .arg("30")
            .env("ROLLWATCH_ACTION_ID", &tag)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // Reaped as soon as it ends, as init reaps the orphans of a killed agent.
        let reaped = tokio::spawn(async move {
            let mut child = child;
            child.wait().await
        });
        let mut a = row(1, "rollback", ActionState::Started, None, None);
        a.started_ms = crate::core::events::now_ms();
        a.process = Some(ProcessId::of(pid));
        assert_eq!(live_groups(&a, &tag), vec![pid as i32]);
        let t = tokio::time::Instant::now();
        let n = wait_for_old_command(&a, &tag, Duration::from_millis(600), "w").await;
        assert_eq!(n, (1, 0));
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "waited for the timeout first"
        );
        let st = reaped.await.unwrap().unwrap();
        assert!(!st.success(), "stopped by a signal");
        assert!(live_groups(&a, &tag).is_empty());
        // Nothing running: returns at once.
        assert_eq!(
            wait_for_old_command(&a, &tag, Duration::from_secs(60), "w").await,
            (0, 0)
        );
    }

    #[test]
    fn only_a_command_recorded_on_this_boot_counts_as_started_here() {
        let mut a = row(1, "rollback", ActionState::Started, None, None);
        assert!(!started_here(&a), "no process recorded: not seen here");
        a.process = Some(ProcessId::of(std::process::id()));
        assert!(started_here(&a), "this process, this boot: {:?}", a.process);
        a.process = Some(ProcessId {
            boot_id: Some("another-host-or-boot".into()),
            ..ProcessId::of(std::process::id())
        });
        assert!(!started_here(&a), "another boot id is another host");
        a.process = Some(ProcessId {
            boot_id: None,
            ..ProcessId::of(std::process::id())
        });
        assert!(!started_here(&a), "an unknown boot cannot be checked");
    }

    /// Issue 19 (clock off on one host): how long an interrupted command has run is
    /// read on the boot clock, so an adopter whose wall clock is ten minutes ahead of
    /// the agent that stamped `started_ms` neither stops a running rollback at once nor
    /// (behind) waits ten minutes past its timeout.
    #[tokio::test]
    async fn an_old_commands_deadline_is_on_the_boot_clock_not_a_wall_clock() {
        let timeout = Duration::from_secs(120);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut a = row(1, "rollback", ActionState::Started, None, None);
        a.process = Some(ProcessId::of(child.id()));
        assert!(a.process.as_ref().unwrap().start_ticks.is_some());
        for skew_ms in [-600_000i64, 600_000] {
            // The claimer's clock was off by `skew_ms` when it stamped the start.
            a.started_ms = crate::core::events::now_ms() + skew_ms;
            let left = old_command_deadline(&a, timeout) - tokio::time::Instant::now();
            assert!(
                left > Duration::from_secs(100) && left <= timeout,
                "skew {skew_ms} ms: {left:?} left of a command that just started"
            );
        }
        // Without a process of this boot, the wall clocks are all there is.
        a.process = None;
        a.started_ms = crate::core::events::now_ms() - 100_000;
        let left = old_command_deadline(&a, timeout) - tokio::time::Instant::now();
        assert!(left <= Duration::from_secs(20), "{left:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
