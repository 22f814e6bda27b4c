//! No credential in any `Debug`, error or log text, whatever its characters.

use super::super::auth_aws::AwsCredentialSource;
use super::super::auth_token::{CommandToken, FileToken};
use super::super::sigv4::AwsCredentials;
use super::super::{PromClient, PromConfig, SigV4Config};
use super::*;
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// Secrets of 10 to 24 characters: letters, digits, punctuation, non-ASCII.
fn secret() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof!["[a-zA-Z0-9]", "[ -/:-@\\[-`{-~]", "[éü€🚨ß\n\t\u{1}]"],
        10..24,
    )
    .prop_map(|v| v.concat())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sigv4_auth(key: &str, token: &str) -> Auth {
    Auth::SigV4 {
        source: AwsCredentialSource::Static(AwsCredentials {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: key.into(),
            session_token: Some(token.into()),
            expires: None,
        }),
        scope: Scope {
            region: "eu-west-1".into(),
            service: "aps".into(),
            payload_header: false,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// SigV4: the secret key and session token are in no `Debug` and in no error
    /// (a token with characters a header cannot carry fails to sign, quietly).
    #[test]
    fn aws_credentials_never_show(key in secret(), token in secret()) {
        let auth = sigv4_auth(&key, &token);
        let shown = format!("{auth:?}");
        prop_assert!(!shown.contains(&key) && !shown.contains(&token), "{}", shown);
        let url = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/query";
        let out = runtime().block_on(auth.headers("POST", url, Some("application/x-www-form-urlencoded"), b"query=up"));
        match out {
            Ok(headers) => {
                for (_, v) in &headers {
                    prop_assert!(v.is_sensitive());
                }
                let shown = format!("{headers:?}");
                prop_assert!(!shown.contains(&key), "{}", shown);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains(&key) && !e.contains(&token), "{}", e);
            }
        }
    }

    /// A bearer token file's content is in no error, whatever it holds.
    #[test]
    fn a_token_file_never_shows(token in secret()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, &token).unwrap();
        match FileToken::open(p) {
            Ok(t) => {
                let src = TokenSource::File(t);
                let shown = format!("{src:?}");
                prop_assert!(!shown.contains(token.trim()), "{}", shown);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains(token.trim()), "{}", e);
            }
        }
    }
}

proptest! {
    // Each case runs a process: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A token command's output and stderr are in no error, whether it fails,
    /// prints something unreadable or prints a token a header cannot carry.
    #[test]
    fn a_token_commands_output_never_shows(out in secret(), code in 0..3i32) {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("cmd");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, &out).unwrap();
        std::fs::write(
            &script,
            format!("#!/bin/sh\ncat {s}; echo; cat {s} >&2; cat {s}; exit {code}\n", s = secret_file.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cmd = TokenSource::Command(CommandToken::new(
            vec![script.to_str().unwrap().into()],
            Duration::from_secs(10),
        ));
        let e = runtime().block_on(cmd.header()).unwrap_err().to_string();
        let first = out.trim().lines().next().unwrap_or("").trim().to_string();
        prop_assume!(first.len() >= 4);
        prop_assert!(!e.contains(&first), "{}", e);
        let shown = format!("{cmd:?}");
        prop_assert!(!shown.contains(&first), "{}", shown);
    }
}

#[test]
fn the_client_shows_no_credential_and_refuses_sigv4_with_other_auth() {
    let cfg = PromConfig {
        url: "https://user:pw-secret@aps.example/workspaces/ws".into(),
        sigv4: Some(SigV4Config {
            region: "eu-west-1".into(),
            service: "aps".into(),
        }),
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let e = PromClient::new(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("--sigv4-region") && !e.contains("pw-secret"),
        "{e}"
    );
}
