use super::*;
use std::os::unix::fs::PermissionsExt;

fn now() -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn command_output_is_a_bare_token_or_json_with_an_expiry() {
    assert_eq!(
        parse_output("ya29.abc\n", now()),
        Some(("ya29.abc".into(), BARE_TOKEN_LIFETIME))
    );
    assert_eq!(parse_output("two\nlines", now()), None);
    assert_eq!(parse_output("  \n", now()), None);
    assert_eq!(
        parse_output(r#"{"access_token":"t1","expires_in":3599}"#, now()),
        Some(("t1".into(), Duration::from_secs(3599)))
    );
    // Kubernetes ExecCredential.
    let exec = r#"{"kind":"ExecCredential","status":{"token":"t2","expirationTimestamp":"2027-01-15T08:00:00Z"}}"#;
    let (t, life) = parse_output(exec, now()).unwrap();
    assert_eq!(t, "t2");
    let at: jiff::Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
    assert_eq!(life, SystemTime::from(at).duration_since(now()).unwrap());
    // gcloud config config-helper --format=json.
    let gcloud = r#"{"credential":{"access_token":"t3","token_expiry":"2027-01-15T08:30:00Z"}}"#;
    assert_eq!(parse_output(gcloud, now()).unwrap().0, "t3");
    // Already expired: renew at once.
    let old = r#"{"token":"t4","expiration":"2020-01-01T00:00:00Z"}"#;
    assert_eq!(
        parse_output(old, now()),
        Some(("t4".into(), Duration::ZERO))
    );
    assert_eq!(parse_output(r#"{"nothing":1}"#, now()), None);
}

#[test]
fn tokens_are_renewed_five_minutes_before_expiry_or_at_half_life() {
    assert_eq!(
        renew_after(Duration::from_secs(3600)),
        Duration::from_secs(3300)
    );
    assert_eq!(
        renew_after(Duration::from_secs(120)),
        Duration::from_secs(60)
    );
    assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
}

#[test]
fn command_words_are_split_without_a_shell() {
    assert_eq!(
        split_argv("gcloud auth print-access-token").unwrap(),
        ["gcloud", "auth", "print-access-token"]
    );
    assert_eq!(
        split_argv(r#"sh -c 'echo $HOME; x' "a \"b\"" c\ d"#).unwrap(),
        ["sh", "-c", "echo $HOME; x", "a \"b\"", "c d"]
    );
    assert_eq!(split_argv("''").unwrap(), [""]);
    assert_eq!(split_argv("a 'open"), None);
    assert_eq!(split_argv("   "), None);
}

fn value(h: &HeaderValue) -> &str {
    h.to_str().unwrap()
}

#[tokio::test]
async fn a_token_file_swapped_by_symlink_is_read_again() {
    // The kubelet's layout: token -> ..data/token, ..data -> ..<timestamp>/.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(d.join("..v1/token"), "one\n").unwrap();
    std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", d.join("token")).unwrap();
    let t = TokenSource::File(FileToken::open(d.join("token")).unwrap());
    assert_eq!(value(&t.header().await.unwrap()), "Bearer one");
    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(d.join("..v2/token"), "two\n").unwrap();
    std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..v1")).unwrap();
    assert_eq!(value(&t.header().await.unwrap()), "Bearer two");
    // Mid-swap (the link dangles for a moment): the last good token.
    std::fs::remove_file(d.join("..data")).unwrap();
    assert_eq!(value(&t.header().await.unwrap()), "Bearer two");
    // Rewritten in place, same size.
    std::fs::remove_file(d.join("token")).unwrap();
    std::fs::write(d.join("token"), "six\n").unwrap();
    assert_eq!(value(&t.header().await.unwrap()), "Bearer six");
    assert!(value(&t.header().await.unwrap()).ends_with("six"));
    assert!(t.header().await.unwrap().is_sensitive());
}

fn script(dir: &std::path::Path, body: &str) -> String {
    let p = dir.join("cmd.sh");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_command_runs_again_only_when_the_token_nears_expiry_or_after_a_401() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    // Prints token-N (N = runs so far), valid for an hour.
    let cmd = script(
        dir.path(),
        &format!(
            "echo x >> {c}; n=$(wc -l < {c}); echo \"{{\\\"access_token\\\":\\\"token-$n\\\",\\\"expires_in\\\":3600}}\"",
            c = count.display()
        ),
    );
    let t = TokenSource::Command(CommandToken::new(vec![cmd], COMMAND_TIMEOUT));
    assert_eq!(value(&t.header().await.unwrap()), "Bearer token-1");
    assert_eq!(value(&t.header().await.unwrap()), "Bearer token-1");
    t.invalidate().await;
    assert_eq!(value(&t.header().await.unwrap()), "Bearer token-2");
}

#[tokio::test]
async fn a_failing_or_slow_command_says_so_without_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = script(
        dir.path(),
        "echo leaked-secret; echo err-secret >&2; exit 3",
    );
    let e = CommandToken::new(vec![cmd], COMMAND_TIMEOUT)
        .header()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(
        !e.contains("leaked-secret") && !e.contains("err-secret"),
        "{e}"
    );
    let cmd = script(dir.path(), "sleep 5; echo late");
    let e = CommandToken::new(vec![cmd], Duration::from_millis(300))
        .header()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not finish"), "{e}");
    let e = CommandToken::new(vec!["/nonexistent/x".into()], COMMAND_TIMEOUT)
        .header()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("could not start"), "{e}");
}
