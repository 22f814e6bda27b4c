//! `sign` against the AWS SigV4 test suite (awslabs/aws-c-auth,
//! tests/aws-signing-test-suite/v4; the cases used are copied to tests/fixtures/sigv4
//! with their source named in its README).

use super::*;
use std::path::PathBuf;
use std::time::Duration;

/// The cases of the suite this client's requests look like: GET and POST, query
/// strings, header trimming and case, form bodies, session tokens.
const CASES: &[&str] = &[
    "get-vanilla",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved",
    "get-header-value-trim",
    "post-header-key-case",
    "post-vanilla-query",
    "post-x-www-form-urlencoded",
    "get-vanilla-with-session-token",
];

fn fixture(case: &str, file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sigv4")
        .join(case)
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A suite `request.txt`: method, path with query, headers (name, raw value), body.
type Parsed = (String, String, Vec<(String, String)>, Vec<u8>);

fn parse_request(text: &str) -> Parsed {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_string();
    let path = first.next().unwrap().to_string();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect();
    (method, path, headers, body.as_bytes().to_vec())
}

fn signed_headers(case: &str) -> Vec<(String, String)> {
    let (_, _, headers, _) = parse_request(&fixture(case, "header-signed-request.txt"));
    headers
}

#[test]
fn the_aws_sigv4_test_suite_vectors_sign_alike() {
    for case in CASES {
        let ctx: serde_json::Value = serde_json::from_str(&fixture(case, "context.json")).unwrap();
        let (method, path, headers, body) = parse_request(&fixture(case, "request.txt"));
        let host = &headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .unwrap()
            .1;
        let url = format!("https://{host}{path}");
        let c = &ctx["credentials"];
        let creds = AwsCredentials {
            access_key_id: c["access_key_id"].as_str().unwrap().into(),
            secret_access_key: c["secret_access_key"].as_str().unwrap().into(),
            session_token: c["token"].as_str().map(str::to_string),
            expires: None,
        };
        let scope = Scope {
            region: ctx["region"].as_str().unwrap().into(),
            service: ctx["service"].as_str().unwrap().into(),
            payload_header: ctx["sign_body"].as_bool().unwrap(),
        };
        let time: jiff::Timestamp = ctx["timestamp"].as_str().unwrap().parse().unwrap();
        let time = SystemTime::from(time);
        let sent: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let added = sign(&method, &url, &sent, &body, &creds, &scope, time).unwrap();
        let added: Vec<(String, String)> = added
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        // Every header the suite's signed request has beyond the request's own.
        let expected: Vec<(String, String)> = signed_headers(case)
            .into_iter()
            .filter(|h| !headers.contains(h))
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        let mut got = added.clone();
        got.sort();
        let mut want = expected.clone();
        want.sort();
        // The suite's `Authorization` (its signature is over the suite's string to
        // sign, itself over the suite's canonical request) and `X-Amz-Date`.
        assert!(want.iter().any(|(n, _)| n == "authorization"), "{case}");
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn a_changed_body_changes_the_signature() {
    let creds = AwsCredentials {
        access_key_id: "AKID".into(),
        secret_access_key: "secret".into(),
        session_token: None,
        expires: None,
    };
    let scope = Scope {
        region: "eu-west-1".into(),
        service: "aps".into(),
        payload_header: false,
    };
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let url = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/query";
    let h = [("content-type", "application/x-www-form-urlencoded")];
    let a = sign("POST", url, &h, b"query=up", &creds, &scope, t).unwrap();
    let b = sign("POST", url, &h, b"query=up2", &creds, &scope, t).unwrap();
    assert_ne!(a, b);
    assert!(!format!("{creds:?}").contains("secret\""), "{creds:?}");
}
