//! Stamps the git commit into the binary for `rollwatch --version`.
//!
//! A release must say which commit it was built from, so an on-call engineer can tell
//! which rules and fixes a running agent has. Without git (a crate tarball, a build
//! container without `.git`), the commit is "unknown" and the build still succeeds.

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"])
        .filter(|s| s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ROLLWATCH_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a
    // commit). `--git-path` also finds them in a worktree, where `.git` is a file.
    let mut watched = vec!["HEAD".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// One git command's trimmed output, or None without git, outside a repository, or on
/// any failure: the build never depends on git.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
