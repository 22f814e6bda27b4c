use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn statics(s: AwsCredentialSource) -> AwsCredentials {
    match s {
        AwsCredentialSource::Static(c) => c,
        other => panic!("not static: {other:?}"),
    }
}

#[test]
fn the_environment_comes_first_with_its_session_token() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = f\n",
    )
    .unwrap();
    let env = env_of(&[
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "secret-env"),
        ("AWS_SESSION_TOKEN", "token-env"),
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
    ]);
    let c = statics(AwsCredentialSource::from_env(&env, "eu-west-1").unwrap());
    assert_eq!(c.access_key_id, "AKIDENV");
    assert_eq!(c.secret_access_key, "secret-env");
    assert_eq!(c.session_token.as_deref(), Some("token-env"));
    // Half a pair is an error naming the missing half.
    let e = AwsCredentialSource::from_env(&env_of(&[("AWS_ACCESS_KEY_ID", "A")]), "r")
        .unwrap_err()
        .to_string();
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    let e = AwsCredentialSource::from_env(&env_of(&[("AWS_SECRET_ACCESS_KEY", "S")]), "r")
        .unwrap_err()
        .to_string();
    assert!(e.contains("AWS_ACCESS_KEY_ID is not"), "{e}");
    assert!(!e.contains("S\n") && !e.contains("=S"), "{e}");
}

#[test]
fn a_profile_is_read_from_the_credentials_file_over_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &creds,
        "# comment\n[default]\naws_access_key_id=D\naws_secret_access_key=d\n\n[prod]\naws_access_key_id = PROD\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        "[profile prod]\nregion = eu-west-1\naws_access_key_id = IGNORED\naws_secret_access_key = prod-secret\naws_session_token = prod-token\n[profile web]\nrole_arn = arn:aws:iam::1:role/r\nweb_identity_token_file = /t\n",
    )
    .unwrap();
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
    ];
    let with = |profile: Option<&str>| {
        let mut pairs = files.to_vec();
        if let Some(p) = profile {
            pairs.push(("AWS_PROFILE", p));
        }
        AwsCredentialSource::from_env(&env_of(&pairs), "eu-west-1")
    };
    let c = statics(with(Some("prod")).unwrap());
    assert_eq!(
        (c.access_key_id.as_str(), c.secret_access_key.as_str()),
        ("PROD", "prod-secret")
    );
    assert_eq!(c.session_token.as_deref(), Some("prod-token"));
    assert_eq!(statics(with(None).unwrap()).access_key_id, "D");
    match with(Some("web")).unwrap() {
        AwsCredentialSource::WebIdentity(w) => {
            assert_eq!(w.role_arn, "arn:aws:iam::1:role/r");
            assert_eq!(w.endpoint, "https://sts.eu-west-1.amazonaws.com");
        }
        other => panic!("{other:?}"),
    }
    let e = with(Some("nope")).unwrap_err().to_string();
    assert!(e.contains("`nope`"), "{e}");
}

#[test]
fn web_identity_from_the_environment_with_an_sts_endpoint_override() {
    let env = env_of(&[
        ("HOME", "/nonexistent"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
    ]);
    match AwsCredentialSource::from_env(&env, "us-east-1").unwrap() {
        AwsCredentialSource::WebIdentity(w) => {
            assert_eq!(w.endpoint, "http://127.0.0.1:1");
            assert_eq!(w.session_name, "rollwatch");
        }
        other => panic!("{other:?}"),
    }
    let e = AwsCredentialSource::from_env(&env_of(&[("HOME", "/nonexistent")]), "r")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("AWS_ACCESS_KEY_ID") && e.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{e}"
    );
}

#[test]
fn sts_answers_are_parsed_and_refreshed_five_minutes_before_expiry() {
    let xml = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>FQoGZXIvYXdzE&amp;token</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
    let c = parse_sts(xml).unwrap();
    assert_eq!(c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE");
    assert_eq!(c.session_token.as_deref(), Some("FQoGZXIvYXdzE&token"));
    let exp = c.expires.unwrap();
    assert!(!needs_refresh(&c, exp - Duration::from_secs(301)));
    assert!(needs_refresh(&c, exp - Duration::from_secs(299)));
    assert!(needs_refresh(&c, exp + Duration::from_secs(1)));
    assert!(parse_sts("<ErrorResponse/>").is_none());
    let text = format!("{c:?}");
    assert!(!text.contains("wJalr") && !text.contains("FQoG"), "{text}");
}
