//! How the shared store is named: a PostgreSQL connection string (a `postgres://` URL
//! or libpq's `key=value` pairs), parsed once into tokio-postgres's `Config` plus the
//! TLS options tokio-postgres does not know (libpq's `sslmode=verify-ca|verify-full`,
//! `sslrootcert`, `sslcert`, `sslkey`).
//!
//! Why a module: the password must never be printed. Redacting the *text* guessed
//! where a password ends and guessed wrong (`ab/cd`, `?pass%77ord=`). Here every
//! message names the store by `Target::shown`, rendered from the parsed config (user,
//! hosts, ports, database, sslmode), which has no place for a password; and a string
//! that does not parse is refused with a sentence that quotes none of it. The only
//! text-level checks are refusals: a URL with a second raw `@` is ambiguous (the
//! password's tail would become the host), so it is refused, never guessed.

use std::path::PathBuf;
use tokio_postgres::config::{Host, SslMode as PgSslMode};

/// libpq's `sslmode`, all five (tokio-postgres knows three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Option<SslMode> {
        Some(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the server certificate's chain is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// The system's roots (the default, and `sslrootcert=system`).
    System,
    File(PathBuf),
}

/// The TLS half of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// `sslrootcert`; `None` when not given.
    pub root_cert: Option<RootCert>,
    /// `sslcert` and `sslkey`: the client certificate, if the server asks for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A parsed connection string.
#[derive(Debug)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
    /// What every message shows: `postgres://USER[:***]@HOST:PORT/DB?sslmode=MODE`,
    /// rendered from `config`; never the password.
    pub shown: String,
}

/// Why a connection string was refused. No variant carries any of its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnStringError {
    #[error("an unknown connection option{0} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...] or key=value pairs: host=... user=... dbname=...)")]
    UnknownOption(String),
    #[error("a parameter without `=` (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...] or key=value pairs: host=... user=... dbname=...)")]
    NoEquals,
    #[error("a quoted value is not closed")]
    Unclosed,
    #[error("`sslmode` must be disable, prefer, require, verify-ca or verify-full")]
    SslMode,
    #[error("`{0}` is given twice")]
    Twice(&'static str),
    #[error("the URL has more than one `@` (or one inside its user name): percent-encode `@` in the password or a parameter as %40")]
    Ambiguous,
    #[error("the URL's user name holds an encoded `:` (%3A), which makes it ambiguous: was the part after it a password? Write USER:PASSWORD with a raw `:`")]
    ColonInUser,
    #[error("`sslcert` and `sslkey` go together: give both or neither")]
    HalfClientCert,
    #[error("sslmode=verify-ca needs sslrootcert=FILE, the CA that signed the server's certificate (with the system's roots any public certificate would do, whatever its name; use sslmode=verify-full for those)")]
    VerifyCaWithoutRoot,
    #[error("sslmode=require, verify-ca and verify-full need `host`, the server's name for TLS (`hostaddr` alone gives only its address): add host=NAME, keeping hostaddr to skip the name lookup")]
    TlsWithoutHost,
    #[error("sslnegotiation=direct needs sslmode=require, verify-ca or verify-full (as in libpq): with a weaker mode the connection could be plain")]
    DirectNeedsTls,
    #[error("sslrootcert=system needs sslmode=verify-full (as in libpq 16): the system's roots are trusted only with the host name checked")]
    SystemNotFull,
    #[error("{0}")]
    Invalid(String),
}

/// The options tokio-postgres parses itself.
const TOKIO_KEYS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// Options refused when given twice (tokio-postgres keeps the last, so what `shown`
/// prints could be a piece of a password that held `&dbname=` or ` dbname=`).
const ONCE_KEYS: &[&str] = &["password", "user", "dbname", "host"];

/// `key` as the `ONCE_KEYS` entry, if it is one, the second time it is seen.
fn once(seen: &mut Vec<&'static str>, key: &str) -> Result<(), ConnStringError> {
    if let Some(k) = ONCE_KEYS.iter().find(|k| **k == key) {
        if seen.contains(k) {
            return Err(ConnStringError::Twice(k));
        }
        seen.push(k);
    }
    Ok(())
}

/// The options read here (tokio-postgres would refuse the last three, and two modes).
const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The connection string in a `--store-url-file`'s text: without a UTF-8 byte-order
/// mark, `#` comment lines and blank lines; the other lines joined by a space (so
/// key=value pairs may take several lines).
pub fn from_file(text: &str) -> String {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a connection string: a `postgres://` or `postgresql://` URL, or key=value pairs.
pub fn parse(text: &str) -> Result<Target, ConnStringError> {
    let mut tls = TlsKeys::default();
    let url = split_url(text)?;
    let is_url = url.is_some();
    let mut seen = Vec::new();
    let rest = match url {
        Some((head, query)) => {
            // What the URL's head gives: user (and password), host, database.
            let authority = head.split_once("://").map_or("", |h| h.1);
            let (creds, hosts) = authority.rsplit_once('@').unwrap_or(("", authority));
            let (hosts, db) = hosts.split_once('/').unwrap_or((hosts, ""));
            for (given, key) in [
                (!creds.split(':').next().unwrap_or("").is_empty(), "user"),
                (creds.contains(':'), "password"),
                (!hosts.is_empty(), "host"),
                (!db.is_empty(), "dbname"),
            ] {
                if given {
                    once(&mut seen, key)?;
                }
            }
            let mut kept = Vec::new();
            // Empty parts (`?`, a trailing `&`) are nothing, as for tokio-postgres.
            for part in query.into_iter().flat_map(|q| q.split('&')) {
                if part.is_empty() {
                    continue;
                }
                let (k, v) = part.split_once('=').ok_or(ConnStringError::NoEquals)?;
                let key = String::from_utf8(percent_decode(k))
                    .map_err(|_| ConnStringError::UnknownOption(String::new()))?;
                check_key(&key)?;
                once(&mut seen, &key)?;
                if TLS_KEYS.contains(&key.as_str()) {
                    tls.set(&key, percent_decode(v))?;
                } else {
                    kept.push(part);
                }
            }
            if kept.is_empty() {
                head.to_string()
            } else {
                format!("{head}?{}", kept.join("&"))
            }
        }
        None => {
            let mut kept = String::new();
            for (key, value) in key_values(text)? {
                check_key(key)?;
                once(&mut seen, key)?;
                if TLS_KEYS.contains(&key) {
                    tls.set(key, value.into_bytes())?;
                } else {
                    let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                    kept.push_str(&format!("{key}='{quoted}' "));
                }
            }
            kept
        }
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| tokio_reason(&e))?;
    let tls = tls.finish()?;
    if config.get_hosts().iter().any(|h| match h {
        Host::Tcp(h) => h.contains('@'),
        Host::Unix(_) => false,
    }) {
        return Err(ConnStringError::Ambiguous);
    }
    // `postgres://rw%3As3cret@db/x`: user `rw:s3cret`, shown as if `s3cret` were a
    // password (and sent to the server as the user name).
    if is_url && config.get_user().is_some_and(|u| u.contains(':')) {
        return Err(ConnStringError::ColonInUser);
    }
    if config.get_ssl_negotiation() == tokio_postgres::config::SslNegotiation::Direct
        && matches!(tls.mode, SslMode::Disable | SslMode::Prefer)
    {
        return Err(ConnStringError::DirectNeedsTls);
    }
    let hosts = config.get_hosts();
    if hosts.is_empty()
        && !config.get_hostaddrs().is_empty()
        && !matches!(tls.mode, SslMode::Disable | SslMode::Prefer)
    {
        return Err(ConnStringError::TlsWithoutHost);
    }
    // libpq ignores sslmode on a Unix socket (the server would refuse TLS there).
    let unix = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
    config.ssl_mode(match tls.mode {
        _ if unix => PgSslMode::Disable,
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    let shown = render(&config, tls.mode);
    Ok(Target { config, tls, shown })
}

/// tokio-postgres's parse error, in its own words: after `check_key` and `key_values`
/// these name an option (a key tokio-postgres knows), never a value.
fn tokio_reason(e: &tokio_postgres::Error) -> ConnStringError {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    ConnStringError::Invalid(s)
}

/// `key`, if known; else an error naming only the known option it resembles.
fn check_key(key: &str) -> Result<(), ConnStringError> {
    if TOKIO_KEYS.contains(&key) || TLS_KEYS.contains(&key) {
        return Ok(());
    }
    let near = TOKIO_KEYS
        .iter()
        .chain(TLS_KEYS)
        .map(|k| (strsim::osa_distance(key, k), *k))
        .min()
        .filter(|(d, _)| *d <= 2)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    Err(ConnStringError::UnknownOption(near))
}

#[derive(Default)]
struct TlsKeys {
    mode: Option<SslMode>,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

impl TlsKeys {
    fn set(&mut self, key: &str, value: Vec<u8>) -> Result<(), ConnStringError> {
        let value = String::from_utf8(value)
            .map_err(|_| ConnStringError::Invalid(format!("`{key}` is not UTF-8")))?;
        let (slot, name) = match key {
            "sslmode" => {
                let m = SslMode::parse(&value).ok_or(ConnStringError::SslMode)?;
                if self.mode.replace(m).is_some() {
                    return Err(ConnStringError::Twice("sslmode"));
                }
                return Ok(());
            }
            "sslrootcert" => (&mut self.root, "sslrootcert"),
            "sslcert" => (&mut self.cert, "sslcert"),
            _ => (&mut self.key, "sslkey"),
        };
        if slot.replace(value).is_some() {
            return Err(ConnStringError::Twice(name));
        }
        Ok(())
    }

    fn finish(self) -> Result<Tls, ConnStringError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(ConnStringError::HalfClientCert);
        }
        let root_cert = self.root.map(|r| match r.as_str() {
            "system" => RootCert::System,
            _ => RootCert::File(PathBuf::from(r)),
        });
        let mode = self.mode.unwrap_or(SslMode::Prefer);
        // libpq 16's rules: the public web PKI only with the host name checked.
        match (mode, &root_cert) {
            (SslMode::VerifyCa, None | Some(RootCert::System)) => {
                return Err(ConnStringError::VerifyCaWithoutRoot)
            }
            (m, Some(RootCert::System)) if m != SslMode::VerifyFull => {
                return Err(ConnStringError::SystemNotFull)
            }
            _ => {}
        }
        Ok(Tls {
            mode,
            root_cert,
            cert: self.cert.map(PathBuf::from),
            key: self.key.map(PathBuf::from),
        })
    }
}

/// A URL split as tokio-postgres splits it: everything before the query, and the
/// query. `None` if `text` is not a URL. User info ends at the first `@`, as there;
/// a second raw `@` before the query, or a `/` or `?` in the user name, means an `@`
/// that belonged to a password or a value: refused, since the rest of the parse (and
/// so what `shown` would print as host or database) would be a piece of it.
fn split_url(text: &str) -> Result<Option<(&str, Option<&str>)>, ConnStringError> {
    let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| text.strip_prefix(p))
    else {
        return Ok(None);
    };
    let base = text.len() - rest.len();
    let after_creds = match rest.find('@') {
        Some(at) => {
            let creds = &rest[..at];
            let user = creds.split(':').next().unwrap_or("");
            // `postgres://host:5432?password=a@b`: tokio-postgres would take
            // `host:5432?password=a` as user and password, and `b` as the host. A raw
            // `?` or `&` followed by a known option and `=` is a parameter, not a
            // password (which would have to encode that `?` as %3F).
            let param = creds.match_indices(['?', '&']).any(|(i, _)| {
                creds[i + 1..].split_once('=').is_some_and(|(k, _)| {
                    let k = String::from_utf8_lossy(&percent_decode(k)).into_owned();
                    TOKIO_KEYS.contains(&k.as_str()) || TLS_KEYS.contains(&k.as_str())
                })
            });
            if user.contains(['/', '?']) || param {
                return Err(ConnStringError::Ambiguous);
            }
            at + 1
        }
        None => 0,
    };
    let q = rest[after_creds..].find('?').map(|i| after_creds + i);
    let before_query = &rest[after_creds..q.unwrap_or(rest.len())];
    if before_query.contains('@') {
        return Err(ConnStringError::Ambiguous);
    }
    Ok(Some(match q {
        Some(q) => (&text[..base + q], Some(&text[base + q + 1..])),
        None => (text, None),
    }))
}

/// `%XX` decoded (a `%` not followed by two hex digits stays), as tokio-postgres does.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// libpq's `key = value` pairs (values may be single-quoted; `\` escapes), parsed
/// as tokio-postgres does, with errors that quote nothing.
fn key_values(text: &str) -> Result<Vec<(&str, String)>, ConnStringError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    loop {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else {
            return Ok(out);
        };
        let mut end = text.len();
        while let Some(&(i, c)) = it.peek() {
            if c.is_whitespace() || c == '=' {
                end = i;
                break;
            }
            it.next();
        }
        let key = &text[start..end];
        if key.is_empty() {
            return Err(ConnStringError::NoEquals);
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if it.next().map(|(_, c)| c) != Some('=') {
            return Err(ConnStringError::NoEquals);
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match it.next() {
                    None => return Err(ConnStringError::Unclosed),
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(it.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(ConnStringError::NoEquals);
            }
        }
        out.push((key, value));
    }
}

/// The store as messages show it, from the parsed config alone: user (with `:***`
/// when a password is set), hosts and ports, database, sslmode.
pub fn render(config: &tokio_postgres::Config, mode: SslMode) -> String {
    let mut s = String::from("postgres://");
    if let Some(u) = config.get_user() {
        s.push_str(u);
        if config.get_password().is_some() {
            s.push_str(":***");
        }
        s.push('@');
    } else if config.get_password().is_some() {
        s.push_str(":***@");
    }
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", port(i)),
            Host::Tcp(h) => format!("{h}:{}", port(i)),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", port(i)),
                a => format!("{a}:{}", port(i)),
            })
            .collect();
    }
    s.push_str(&hosts.join(","));
    s.push('/');
    s.push_str(config.get_dbname().unwrap_or(""));
    s.push_str("?sslmode=");
    s.push_str(mode.as_str());
    s
}

#[cfg(test)]
#[path = "pgconn_tests.rs"]
mod tests;
