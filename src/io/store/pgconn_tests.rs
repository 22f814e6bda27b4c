use super::*;
use proptest::prelude::*;

/// What `parse` lets out of a string: what `shown` renders, or the error's sentence.
fn printed(text: &str) -> String {
    match parse(text) {
        Ok(t) => t.shown,
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_password_never_shows_whatever_its_characters() {
    for (url, pw, decoded) in [
        // Unencoded `/`, `+`, `?`, `#`, `:` in the password: tokio-postgres takes them.
        (
            "postgres://rw:ab/cd+ef@db:5432/rollwatch",
            "ab/cd+ef",
            "ab/cd+ef",
        ),
        (
            "postgres://rw:a?b#c:d=e@db/rollwatch",
            "a?b#c:d=e",
            "a?b#c:d=e",
        ),
        (
            "postgres://rw:p%40ss%2Fw0rd@db/rollwatch",
            "p%40ss%2Fw0rd",
            "p@ss/w0rd",
        ),
        (
            "postgresql://rw@db/rollwatch?sslmode=require&password=s3cret",
            "s3cret",
            "s3cret",
        ),
        (
            "postgres://rw@db/rollwatch?pass%77ord=s3cret",
            "s3cret",
            "s3cret",
        ),
        (
            "postgres://rw@db/rollwatch?password=s3%2Fcr%3Fet",
            "s3%2Fcr%3Fet",
            "s3/cr?et",
        ),
        (
            "host=db user=rw password='a b\\'c=d' dbname=rollwatch",
            "a b\\'c=d",
            "a b'c=d",
        ),
        (
            "host=db user=rw password=ab\\ cd dbname=rollwatch",
            "ab\\ cd",
            "ab cd",
        ),
    ] {
        let t = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(t.config.get_password(), Some(decoded.as_bytes()), "{url}");
        assert!(!t.shown.contains(pw), "{url} -> {}", t.shown);
        assert!(!t.shown.contains(decoded), "{url} -> {}", t.shown);
        assert!(t.shown.contains("rw:***@db:5432/rollwatch"), "{}", t.shown);
    }
}

#[test]
fn an_ambiguous_at_is_refused_without_quoting_anything() {
    for url in [
        // A raw `@` in the password: tokio-postgres would take "ss@db" as the host.
        "postgres://rw:p@zq@db/rollwatch",
        "postgres://rw:a@zq/c@db/rollwatch",
        // A raw `@` in a parameter with no user info: "db/x?password=p" as the user.
        "postgres://db/rollwatch?password=p@zq",
        "postgres://db:5432?password=p@zq",
        "postgres://db:5432?pass%77ord=p@zq",
    ] {
        let e = parse(url).unwrap_err();
        assert_eq!(e, ConnStringError::Ambiguous, "{url}");
        assert!(!e.to_string().contains("zq"), "{e}");
    }
    // With user info, a raw `@` in a parameter is unambiguous.
    let t = parse("postgres://rw@db/x?password=p@ss").unwrap();
    assert_eq!(t.config.get_password(), Some(&b"p@ss"[..]));
}

#[test]
fn errors_name_options_never_values() {
    assert_eq!(
        parse("postgres://db/x?sslmod=require").unwrap_err(),
        ConnStringError::UnknownOption(" (did you mean `sslmode`?)".into())
    );
    // A password whose unquoted tail looks like a pair: its key is not echoed.
    let e = parse("host=db password=abc zq9wxyv=1").unwrap_err();
    assert_eq!(e, ConnStringError::UnknownOption(String::new()));
    let e = parse("host=db password='s3cret").unwrap_err();
    assert_eq!(e, ConnStringError::Unclosed);
    let e = parse("postgres://db/x?sslmode=s3cret")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("s3cret"), "{e}");
    let e = parse("postgres://rw:s3cret@db:notaport/x")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("s3cret") && e.contains("port"), "{e}");
}

#[test]
fn ssl_options_as_libpq_names_them() {
    let t = parse("postgres://rw@db/x?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
    assert_eq!(t.tls.mode, SslMode::VerifyFull);
    assert_eq!(t.tls.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
    assert_eq!(t.config.get_ssl_mode(), PgSslMode::Require);
    assert_eq!(t.shown, "postgres://rw@db:5432/x?sslmode=verify-full");
    let t = parse("host=db dbname=x sslmode=verify-full sslrootcert=system sslcert=/c sslkey=/k")
        .unwrap();
    assert_eq!(t.tls.mode, SslMode::VerifyFull);
    assert_eq!(t.tls.root_cert, Some(RootCert::System));
    assert_eq!(t.tls.cert, Some("/c".into()));
    // libpq's default is prefer; disable is plain.
    assert_eq!(parse("postgres://db/x").unwrap().tls.mode, SslMode::Prefer);
    let t = parse("postgres://db/x?sslmode=disable&").unwrap();
    assert_eq!(t.config.get_ssl_mode(), PgSslMode::Disable);
    assert_eq!(
        parse("postgres://db/x?sslcert=/c").unwrap_err(),
        ConnStringError::HalfClientCert
    );
    assert_eq!(
        parse("postgres://db/x?sslmode=require&sslmode=disable").unwrap_err(),
        ConnStringError::Twice("sslmode")
    );
}

#[test]
fn public_roots_are_trusted_only_with_the_host_name_checked() {
    // libpq >= 16: verify-ca needs a CA file (the system's roots would accept any
    // public certificate for any name), and sslrootcert=system forces verify-full.
    for s in [
        "postgres://db/x?sslmode=verify-ca",
        "host=db dbname=x sslmode=verify-ca",
        "postgres://db/x?sslmode=verify-ca&sslrootcert=system",
    ] {
        assert_eq!(
            parse(s).unwrap_err(),
            ConnStringError::VerifyCaWithoutRoot,
            "{s}"
        );
    }
    for s in [
        "postgres://db/x?sslrootcert=system",
        "postgres://db/x?sslmode=require&sslrootcert=system",
        "host=db dbname=x sslmode=prefer sslrootcert=system",
        "host=db dbname=x sslmode=disable sslrootcert=system",
    ] {
        assert_eq!(parse(s).unwrap_err(), ConnStringError::SystemNotFull, "{s}");
    }
    let e = ConnStringError::VerifyCaWithoutRoot.to_string();
    assert!(
        e.contains("sslrootcert=FILE") && e.contains("verify-full"),
        "{e}"
    );
    let t = parse("postgres://db/x?sslmode=verify-ca&sslrootcert=/ca.pem").unwrap();
    assert_eq!(t.tls.root_cert, Some(RootCert::File("/ca.pem".into())));
    assert!(parse("postgres://db/x?sslmode=verify-full&sslrootcert=system").is_ok());
    assert!(parse("postgres://db/x?sslmode=verify-full").is_ok());
}

#[test]
fn direct_tls_negotiation_needs_require_or_stronger() {
    for s in [
        "postgres://db/x?sslnegotiation=direct",
        "postgres://db/x?sslnegotiation=direct&sslmode=prefer",
        "host=db dbname=x sslnegotiation=direct sslmode=disable",
    ] {
        assert_eq!(
            parse(s).unwrap_err(),
            ConnStringError::DirectNeedsTls,
            "{s}"
        );
    }
    for s in [
        "postgres://db/x?sslnegotiation=direct&sslmode=require",
        "host=db dbname=x sslnegotiation=direct sslmode=verify-full",
        "postgres://db/x?sslnegotiation=postgres",
    ] {
        assert!(parse(s).is_ok(), "{s}");
    }
}

#[test]
fn an_encoded_colon_in_the_user_is_refused_not_shown_as_a_password() {
    for url in [
        "postgres://rw%3As3cret@db/x",
        "postgres://rw%3as3cret:pw@db/x",
        "postgres://db/x?user=rw%3As3cret",
    ] {
        let e = parse(url).unwrap_err();
        assert_eq!(e, ConnStringError::ColonInUser, "{url}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    // key=value pairs have no user info to confuse it with.
    assert!(parse("host=db user='rw:x' dbname=x").is_ok());
}

#[test]
fn user_password_dbname_and_host_are_refused_twice_without_quoting_them() {
    for (s, key) in [
        (
            "host=db dbname=rw user=rw password=abc dbname=Zx9q",
            "dbname",
        ),
        ("host=db user=rw password=ab password=Zx9q", "password"),
        ("host=db user=rw user=Zx9q", "user"),
        ("host=db host=Zx9q", "host"),
        ("postgres://rw@db/x?password=ab&dbname=Zx9q", "dbname"),
        ("postgres://rw@db/x?password=ab&password=Zx9q", "password"),
        ("postgres://rw:ab@db/x?pass%77ord=Zx9q", "password"),
        ("postgres://rw@db/x?user=Zx9q", "user"),
        ("postgres://rw@db/x?host=Zx9q", "host"),
    ] {
        let e = parse(s).unwrap_err();
        assert_eq!(e, ConnStringError::Twice(key), "{s}");
        assert!(!e.to_string().contains("Zx9q"), "{e}");
    }
    // Once each, wherever: fine.
    let t = parse("postgres:///x?host=db&user=rw&password=p").unwrap();
    assert_eq!(t.shown, "postgres://rw:***@db:5432/x?sslmode=prefer");
    assert!(parse("postgres://rw@db?dbname=x").is_ok());
}

#[test]
fn a_store_url_file_may_have_a_bom_comments_and_blank_lines() {
    let text =
        "\u{feff}# the shared store (rotated by vault)\n\n  postgres://rw:pw@db/x  \r\n# end\n";
    assert_eq!(from_file(text), "postgres://rw:pw@db/x");
    let text = "host=db dbname=x\n# comment\nuser=rw password='a#b'\n";
    let t = parse(&from_file(text)).unwrap();
    assert_eq!(t.config.get_password(), Some(&b"a#b"[..]));
    assert_eq!(t.shown, "postgres://rw:***@db:5432/x?sslmode=prefer");
}

#[test]
fn tls_needs_a_host_name_and_a_unix_socket_ignores_sslmode() {
    for s in [
        "hostaddr=10.0.0.5 dbname=x sslmode=require",
        "postgres:///x?hostaddr=10.0.0.5&sslmode=verify-full",
    ] {
        assert_eq!(
            parse(s).unwrap_err(),
            ConnStringError::TlsWithoutHost,
            "{s}"
        );
    }
    let t = parse("host=db.internal hostaddr=10.0.0.5 dbname=x sslmode=verify-full").unwrap();
    assert_eq!(t.config.get_ssl_mode(), PgSslMode::Require);
    assert!(parse("hostaddr=10.0.0.5 dbname=x").is_ok());
    let t = parse("host=/var/run/postgresql dbname=x sslmode=verify-full").unwrap();
    assert_eq!(t.config.get_ssl_mode(), PgSslMode::Disable);
    let t = parse("host=/run/pg,db dbname=x sslmode=require").unwrap();
    assert_eq!(t.config.get_ssl_mode(), PgSslMode::Require);
}

#[test]
fn many_hosts_and_ipv6_render_with_their_ports() {
    let t = parse("postgres://rw@a:1,[::1]:2/x").unwrap();
    assert_eq!(t.shown, "postgres://rw@a:1,[::1]:2/x?sslmode=prefer");
}

/// `s` with each character percent-encoded when `must` says so or its bit in `mask`
/// is set.
fn encode(s: &str, mask: u64, must: impl Fn(char) -> bool) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if must(c) || mask >> (i % 64) & 1 == 1 {
            let mut b = [0; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every character class: letters, digits, all ASCII punctuation and space, non-ASCII.
fn secret() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof!["[a-zA-Z0-9]", "[ -/:-@\\[-`{-~]", "[éü€🚨ß]",],
        10..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// User info: the password's characters raw or percent-encoded (`@` and `%`
    /// always encoded, or else raw too: then a refusal, never a leak).
    #[test]
    fn no_url_prints_its_password(
        user in secret(),
        pw in secret(),
        umask in any::<u64>(),
        pmask in any::<u64>(),
        raw_at in any::<bool>(),
        query in prop_oneof![Just(""), Just("?sslmode=disable"), Just("?application_name=x&sslmode=require")],
    ) {
        prop_assume!(!user.contains(&pw));
        let u = encode(&user, umask, |c| matches!(c, '@' | ':' | '%' | '/' | '?' | '&' | '='));
        let p = encode(&pw, pmask, |c| c == '%' || (c == '@' && !raw_at));
        let url = format!("postgres://{u}:{p}@db.example:5432/rw{query}");
        let out = printed(&url);
        prop_assert!(!out.contains(&pw), "{url} -> {out}");
        prop_assert!(!out.contains(&p), "{url} -> {out}");
        if !raw_at || !pw.contains('@') {
            // Well-formed (every `@` encoded): parsed whole, unless a raw `?key=`
            // in the password makes it ambiguous.
            match parse(&url) {
                // An encoded `:` in the user: refused, never shown as a password.
                Err(ConnStringError::ColonInUser) => prop_assert!(user.contains(':')),
                Ok(t) => {
                    // Shown user info: one `:`, the password's `***`.
                    let info = t.shown["postgres://".len()..].rsplit_once("@db.example").map(|p| p.0);
                    prop_assert!(info.is_some_and(|i| i.matches(':').count() == 1 && i.ends_with(":***")), "{}", t.shown);
                    prop_assert_eq!(t.config.get_password(), Some(pw.as_bytes()));
                    prop_assert_eq!(t.config.get_user(), Some(user.as_str()));
                }
                Err(e) => prop_assert_eq!(e, ConnStringError::Ambiguous, "{}", url),
            }
        }
    }

    /// `?password=` with a percent-encoded key and value, and libpq's key=value form.
    #[test]
    fn no_parameter_prints_its_password(
        pw in secret(),
        kmask in any::<u64>(),
        vmask in any::<u64>(),
    ) {
        let key = encode("password", kmask, |_| false);
        let v = encode(&pw, vmask, |c| matches!(c, '%' | '&' | '#' | '@'));
        for url in [
            format!("postgres://rw@db/x?{key}={v}"),
            format!("postgres://rw@db/x?sslmode=disable&{key}={v}&application_name=a"),
        ] {
            let t = parse(&url).map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
            prop_assert_eq!(t.config.get_password(), Some(pw.as_bytes()));
            prop_assert!(!t.shown.contains(&pw) && !t.shown.contains(&v), "{}", t.shown);
        }
        let quoted = pw.replace('\\', "\\\\").replace('\'', "\\'");
        let kv = format!("host=db user=rw password='{quoted}' dbname=x");
        let t = parse(&kv).map_err(|e| TestCaseError::fail(format!("{kv}: {e}")))?;
        prop_assert_eq!(t.config.get_password(), Some(pw.as_bytes()));
        prop_assert!(!t.shown.contains(&pw), "{}", t.shown);
        // Unquoted (so broken by any space or quote): a refusal, never a leak.
        let out = printed(&format!("host=db user=rw password={pw} dbname=x"));
        prop_assert!(!out.contains(&pw), "{}", out);
    }
}
