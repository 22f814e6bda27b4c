//! The shared store's password and TLS, against the real binary and a real PostgreSQL
//! started with TLS on (`PgCluster::start_tls`: a CA and a server certificate for
//! 127.0.0.1 made with `openssl`; pg_hba.conf lets `rw` in by password over TLS only
//! and `certuser` by client certificate).
//!
//! The password: whatever its characters and however the connection string is
//! written, it shows in no log line, error or metric, and a wrong one says
//! "password authentication failed for user". TLS: libpq's sslmodes mean what they
//! mean there, and a certificate error stops start-up (exit 2) instead of retrying.

use crate::harness::postgres::{Certs, PgCluster};
use crate::harness::{free_port, http_get, start_env, Running, Scratch};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;
use std::time::Duration;

/// `rw`'s password: `/`, `?`, `#`, `:`, `@`, `%`, `=`, `&`, `+` and a space.
const PASSWORD: &str = "ab/cd+ef?g#h:i@j%k=l&m~n o";
const WRONG: &str = "zz/yy+xx?ww#vv:uu@tt%ss=rr&qq";

/// One TLS cluster for this file's tests, with its roles made.
fn cluster() -> &'static (PgCluster, Certs) {
    static C: OnceLock<(PgCluster, Certs)> = OnceLock::new();
    C.get_or_init(|| {
        let (pg, certs) = PgCluster::start_tls();
        let quoted = PASSWORD.replace('\'', "''");
        pg.psql(
            "postgres",
            &format!("CREATE ROLE rw LOGIN PASSWORD '{quoted}'"),
        );
        pg.psql("postgres", "CREATE ROLE certuser LOGIN");
        (pg, certs)
    })
}

/// The password as a URL's user info must carry it: `%` and `@` encoded, the rest raw
/// (tokio-postgres takes `/`, `?`, `#` and `:` there unencoded).
fn userinfo(pw: &str) -> String {
    pw.replace('%', "%25").replace('@', "%40")
}

/// Every form the password may take in a string that could be printed.
fn forms(pw: &str) -> [String; 2] {
    [pw.to_string(), userinfo(pw)]
}

struct Serve {
    /// The rules directory and the store file, kept while the agent runs.
    _s: Scratch,
    addr: String,
    p: Running,
}

/// `rollwatch serve` on `conn`, from `--store` if `on_command_line`, else from
/// `--store-url-file`.
fn serve(conn: &str, on_command_line: bool) -> Serve {
    serve_env(conn, on_command_line, &[])
}

fn serve_env(conn: &str, on_command_line: bool, env: &[(&str, &str)]) -> Serve {
    serve_full(conn, on_command_line, env, 0o600)
}

/// `serve_env` with the store URL file at `mode`.
fn serve_full(conn: &str, on_command_line: bool, env: &[(&str, &str)], mode: u32) -> Serve {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("rules")).unwrap();
    let file = s.path("store-url");
    std::fs::write(&file, conn).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let rules = s.path("rules");
    let mut args = vec![
        "serve",
        "--rules-dir",
        rules.to_str().unwrap(),
        "--listen",
        &addr,
        "--prometheus",
        "http://127.0.0.1:9",
    ];
    if on_command_line {
        args.extend(["--store", conn]);
    } else {
        args.extend(["--store-url-file", file.to_str().unwrap()]);
    }
    let p = start_env(&args, env);
    Serve { _s: s, addr, p }
}

impl Serve {
    fn await_ready(&self) {
        crate::harness::await_ready(
            &self.addr,
            "/readyz",
            Duration::from_secs(30),
            "agent",
            || self.p.dump(),
        );
    }

    /// Stops the agent; returns its whole log.
    fn stop(mut self) -> String {
        self.p.signal(Signal::SIGTERM);
        assert_eq!(self.p.wait(Duration::from_secs(20)), 0, "{}", self.p.dump());
        self.p.dump()
    }

    /// Waits for a refusal at start-up: exit 2, no retry; returns the log.
    fn refused(mut self) -> String {
        let code = self.p.wait(Duration::from_secs(30));
        assert_eq!(code, 2, "{}", self.p.dump());
        assert!(
            self.p.events("store_unreachable").is_empty(),
            "a permanent error was retried:\n{}",
            self.p.dump()
        );
        self.p.dump()
    }
}

fn url(pw: &str, host: &str, db: &str, params: &str) -> String {
    let port = cluster().0.port;
    format!("postgres://rw:{}@{host}:{port}/{db}?{params}", userinfo(pw))
}

#[test]
fn a_wrong_password_says_so_and_no_password_shows_in_logs_errors_or_metrics() {
    let (pg, _) = cluster();
    let db = pg.database_owned_by("rw");
    // On the command line: the `ps` warning, then a refused login, at once.
    let log = serve(&url(WRONG, "127.0.0.1", &db, "sslmode=require"), true).refused();
    assert!(
        log.contains(r#"password authentication failed for user \"rw\""#),
        "{log}"
    );
    assert!(!log.contains("db error"), "{log}");
    assert!(log.contains("store_password_visible"), "{log}");
    assert!(log.contains("rw:***@127.0.0.1"), "{log}");
    for f in forms(WRONG) {
        assert!(!log.contains(&f), "{f:?} shows:\n{log}");
    }
    // A `?password=` parameter with an encoded key is a password on the command line too.
    let conn = format!(
        "postgres://rw@127.0.0.1:{}/{db}?sslmode=require&pass%77ord={}",
        pg.port,
        userinfo(WRONG).replace('&', "%26").replace('#', "%23")
    );
    let log = serve(&conn, true).refused();
    assert!(log.contains("store_password_visible"), "{log}");
    assert!(log.contains("password authentication failed"), "{log}");
    for f in forms(WRONG) {
        assert!(!log.contains(&f), "{f:?} shows:\n{log}");
    }
    // From a file, right: ready, no warning, and nowhere in the log or /metrics; the
    // same as a `?password=` parameter with an encoded key, and as key=value pairs.
    let encoded: String = PASSWORD.bytes().map(|b| format!("%{b:02X}")).collect();
    for conn in [
        url(PASSWORD, "127.0.0.1", &db, "sslmode=require"),
        format!(
            "postgres://rw@127.0.0.1:{}/{db}?sslmode=require&pass%77ord={encoded}",
            pg.port
        ),
        format!(
            "host=127.0.0.1 port={} user=rw dbname={db} sslmode=require password='{}'",
            pg.port,
            PASSWORD.replace('\\', "\\\\").replace('\'', "\\'")
        ),
    ] {
        let a = serve(&conn, false);
        a.await_ready();
        let metrics = http_get(&a.addr, "/metrics").unwrap().1;
        let started = a.p.await_event("serve_started", Duration::from_secs(10));
        assert_eq!(
            started["state"],
            format!(
                "postgres://rw:***@127.0.0.1:{}/{db}?sslmode=require",
                pg.port
            )
        );
        let log = a.stop();
        assert!(!log.contains("store_password_visible"), "{log}");
        for f in forms(PASSWORD).into_iter().chain([encoded.clone()]) {
            assert!(!log.contains(&f), "{f:?} shows:\n{log}");
            assert!(!metrics.contains(&f), "{f:?} shows:\n{metrics}");
        }
    }
}

#[test]
fn tls_verify_full_connects_and_a_wrong_ca_or_host_name_stops_start_up() {
    let (pg, certs) = cluster();
    let db = pg.database_owned_by("rw");
    let ca = certs.ca.display().to_string();
    let other = certs.other_ca.display().to_string();
    // verify-full: the chain to our CA and the host name 127.0.0.1.
    let conn = url(
        PASSWORD,
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let log = serve(&conn, false);
    log.await_ready();
    log.stop();
    // A CA that did not sign the server's certificate.
    let conn = url(
        PASSWORD,
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let log = serve(&conn, false).refused();
    assert!(log.contains("invalid peer certificate"), "{log}");
    assert!(log.contains("not signed by sslrootcert's CA"), "{log}");
    // The system's roots (the default) do not know our CA either.
    let log = serve(
        &url(PASSWORD, "127.0.0.1", &db, "sslmode=verify-full"),
        false,
    )
    .refused();
    // (A machine without any, e.g. no ca-certificates, is refused as clearly.)
    assert!(
        log.contains("invalid peer certificate") || log.contains("no root certificate"),
        "{log}"
    );
    // A host name the certificate does not name (it names IP 127.0.0.1 only) ...
    let conn = url(
        PASSWORD,
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let log = serve(&conn, false).refused();
    assert!(log.contains("not for this host name"), "{log}");
    // ... which verify-ca does not check.
    let conn = url(
        PASSWORD,
        "localhost",
        &db,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    let a = serve(&conn, false);
    a.await_ready();
    a.stop();
    for f in forms(PASSWORD) {
        assert!(!log.contains(&f), "{log}");
    }
}

#[test]
fn tls_require_encrypts_without_verifying_unless_given_a_root_and_disable_is_plain() {
    let (pg, certs) = cluster();
    let db = pg.database_owned_by("rw");
    // require: TLS (pg_hba.conf lets rw in over TLS only), the certificate unchecked.
    let a = serve(&url(PASSWORD, "localhost", &db, "sslmode=require"), false);
    a.await_ready();
    a.stop();
    // The default (prefer) takes TLS when the server offers it.
    let a = serve(
        &url(PASSWORD, "127.0.0.1", &db, "application_name=x"),
        false,
    );
    a.await_ready();
    a.stop();
    // require with sslrootcert is verify-ca, as in libpq.
    let other = certs.other_ca.display().to_string();
    let conn = url(
        PASSWORD,
        "127.0.0.1",
        &db,
        &format!("sslmode=require&sslrootcert={other}"),
    );
    let log = serve(&conn, false).refused();
    assert!(log.contains("invalid peer certificate"), "{log}");
    // prefer: a failed handshake is tried again without TLS, as libpq does (postgres
    // may log in without TLS; rw may not, so its refusal names that).
    let conn = format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=prefer&sslrootcert={other}",
        pg.port
    );
    let a = serve(&conn, false);
    a.await_ready();
    let log = a.stop();
    // The fallback to plain is a WARN, once (the pool connects several times).
    let warned = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "store_tls_fallback" && e["level"] == "WARN")
        .count();
    assert_eq!(warned, 1, "{log}");
    // sslnegotiation=direct with prefer could be plain: refused, not tried.
    let log = serve(&format!("{conn}&sslnegotiation=direct"), false).refused();
    assert!(
        log.contains("sslnegotiation=direct needs sslmode=require"),
        "{log}"
    );
    let conn = url(
        PASSWORD,
        "127.0.0.1",
        &db,
        &format!("sslmode=prefer&sslrootcert={other}"),
    );
    let log = serve(&conn, false).refused();
    assert!(log.contains("no encryption"), "{log}");
    // disable: plain, which pg_hba.conf refuses for rw: a refusal, not a retry.
    let log = serve(&url(PASSWORD, "127.0.0.1", &db, "sslmode=disable"), false).refused();
    assert!(log.contains("no encryption"), "{log}");
}

#[test]
fn tls_client_certificate_logs_in_without_a_password() {
    let (pg, certs) = cluster();
    let db = pg.database_owned_by("certuser");
    let conn = format!(
        "host=127.0.0.1 port={} user=certuser dbname={db} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        pg.port,
        certs.ca.display(),
        certs.client_cert.display(),
        certs.client_key.display()
    );
    let a = serve(&conn, false);
    a.await_ready();
    a.stop();
    // Without the certificate the server refuses: a permanent error.
    let conn = format!(
        "host=127.0.0.1 port={} user=certuser dbname={db} sslmode=verify-full sslrootcert={}",
        pg.port,
        certs.ca.display()
    );
    let log = serve(&conn, false).refused();
    assert!(log.contains("requires a valid client certificate"), "{log}");
}

#[test]
fn tls_with_an_address_and_no_host_name_stops_start_up_instead_of_retrying() {
    let (pg, certs) = cluster();
    let db = pg.database_owned_by("rw");
    let conn = format!(
        "hostaddr=127.0.0.1 port={} user=rw dbname={db} sslmode=verify-full sslrootcert={}",
        pg.port,
        certs.ca.display()
    );
    let log = serve(&conn, false).refused();
    assert!(log.contains("need `host`"), "{log}");
}

#[test]
fn postgres_notices_are_logged_at_debug_not_info() {
    let (pg, _) = cluster();
    let db = pg.database_owned_by("rw");
    let conn = url(PASSWORD, "127.0.0.1", &db, "sslmode=require");
    let a = serve(&conn, false);
    a.await_ready();
    a.stop();
    // At the second start the schema's table exists: the server says so in a NOTICE.
    let a = serve_env(&conn, false, &[("ROLLWATCH_LOG", "debug")]);
    a.await_ready();
    let log = a.stop();
    let notices: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("already exists, skipping"))
        .collect();
    assert!(!notices.is_empty(), "{log}");
    for n in notices {
        let v: serde_json::Value = serde_json::from_str(n).unwrap();
        assert_eq!(v["level"], "DEBUG", "{n}");
    }
}

/// `s` with `%` and `@` percent-encoded, and any other character too when its bit in
/// `mask` is set.
fn encode(s: &str, mask: u64) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if matches!(c, '%' | '@' | '&') || mask >> (i % 64) & 1 == 1 {
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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Generated wrong passwords (printable ASCII, space and non-ASCII, raw or
    /// percent-encoded, in the user info, in `?password=` or in key=value pairs)
    /// against the real server: the store's error says the login was refused and
    /// holds no form of the password.
    #[test]
    fn no_store_error_shows_a_generated_password(
        pw in "[ -~éü€🚨]{10,24}",
        mask in proptest::prelude::any::<u64>(),
        form in 0..3usize,
    ) {
        let (pg, _) = cluster();
        let enc = encode(&pw, mask);
        let conn = match form {
            0 => format!("postgres://rw:{enc}@127.0.0.1:{}/postgres?sslmode=require", pg.port),
            1 => format!("postgres://rw@127.0.0.1:{}/postgres?password={enc}&sslmode=require", pg.port),
            _ => format!(
                "host=127.0.0.1 port={} user=rw dbname=postgres sslmode=require password='{}'",
                pg.port,
                pw.replace('\\', "\\\\").replace('\'', "\\'")
            ),
        };
        let err = match rollwatch::io::store::PgStore::connect(&conn) {
            Ok(s) => s.migrate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        proptest::prop_assert!(
            err.contains(r#"password authentication failed for user "rw""#),
            "{}", err
        );
        proptest::prop_assert!(!err.contains(&pw) && !err.contains(&enc), "{}", err);
    }
}

#[test]
fn debug_logs_show_no_rule_file_text_sent_to_postgres() {
    let (pg, _) = cluster();
    let db = pg.database_owned_by("rw");
    let conn = url(PASSWORD, "127.0.0.1", &db, "sslmode=require");
    // Started once before, so that the second start logs the server's NOTICE at
    // DEBUG: the proof that DEBUG is on.
    let a = serve(&conn, false);
    a.await_ready();
    a.stop();
    let a = serve_env(&conn, false, &[("ROLLWATCH_LOG", "debug")]);
    // A rule file whose rollback command holds a secret: its text is stored with the
    // watch (a statement parameter tokio-postgres logs at DEBUG).
    let rollback = r#"  command: ["curl", "-H", "Authorization: Bearer DEPLOY-SECRET-M2x9", "http://127.0.0.1:9/rollback"]
  timeout: 30s"#;
    std::fs::write(
        a._s.path("rules/checkout.yaml"),
        crate::harness::agent::rules("    above: 0.5\n    for: 6s", rollback),
    )
    .unwrap();
    a.await_ready();
    let (status, body) = crate::harness::agent::http(
        &a.addr,
        "POST",
        "/api/v1/watches",
        None,
        Some(&serde_json::json!({"rules": "checkout", "vars": {"test": "m2"}, "id": "m2-1"})),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let log = a.stop();
    assert!(log.contains("already exists, skipping"), "{log}");
    assert!(!log.contains("DEPLOY-SECRET-M2x9"), "{log}");
}

#[test]
fn secret_files_others_can_read_stop_start_up() {
    let (pg, certs) = cluster();
    let db = pg.database_owned_by("certuser");
    let wide = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // --store-url-file at 0644 (what `echo ... > file` makes).
    let conn = url(PASSWORD, "127.0.0.1", &db, "sslmode=require");
    let log = serve_full(&conn, false, &[], 0o644).refused();
    assert!(
        log.contains("store URL file") && log.contains("0644"),
        "{log}"
    );
    assert!(log.contains("chmod 600"), "{log}");
    for f in forms(PASSWORD) {
        assert!(!log.contains(&f), "{log}");
    }
    // sslkey at 0644 (root-owned 0640 is allowed, as in libpq; 0644 never).
    let s = Scratch::new();
    let key = s.path("client.key");
    std::fs::copy(&certs.client_key, &key).unwrap();
    wide(&key, 0o644);
    let conn = format!(
        "host=127.0.0.1 port={} user=certuser dbname={db} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        pg.port,
        certs.ca.display(),
        certs.client_cert.display(),
        key.display()
    );
    let log = serve(&conn, false).refused();
    assert!(
        log.contains("client key (sslkey)") && log.contains("0644"),
        "{log}"
    );
    assert!(
        log.contains(&format!("chmod 600 {}", key.display())),
        "{log}"
    );
    // --token-file at 0640.
    let token = s.path("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    wide(&token, 0o640);
    let rules = s.path("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let (code, _, stderr) = crate::harness::run(&[
        "serve",
        "--rules-dir",
        rules.to_str().unwrap(),
        "--listen",
        &addr,
        "--state",
        s.path("state.db").to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("token file") && stderr.contains("0640"),
        "{stderr}"
    );
    assert!(
        stderr.contains("chmod 600") && !stderr.contains("t0ken"),
        "{stderr}"
    );
}
