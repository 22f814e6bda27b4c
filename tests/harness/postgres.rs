//! A throwaway PostgreSQL cluster for the tests: Debian's `postgresql` binaries
//! (`initdb`, `postgres`) on a temporary directory and a free loopback port, trust
//! authentication on loopback only. As root the server runs as the `postgres` user
//! (it refuses to run as root); the server is a child of the test process with a
//! parent-death signal, so it never outlives the tests, and `Drop` stops it and
//! removes its directory. One cluster is shared per test process (`shared()`), with a
//! database per test (`database()`); a test that restarts PostgreSQL owns its own.

use super::free_port;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Where Debian puts the server binaries (the newest version installed).
pub fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install -y postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb (apt-get install -y postgresql)")
}

/// The (uid, gid) the server runs as: `postgres` when the tests run as root.
fn server_user() -> Option<(nix::unistd::Uid, nix::unistd::Gid)> {
    if !nix::unistd::getuid().is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("running as root needs a `postgres` user (apt-get install -y postgresql)");
    Some((u.uid, u.gid))
}

/// A command run as the server's user, killed if the test process dies.
fn as_server_user(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    let user = server_user();
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = user {
                nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
                nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
                nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
            }
            // After the uid change, which clears it.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    cmd
}

/// One PostgreSQL cluster.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Mutex<Option<Child>>,
    /// Extra `-c` settings the server starts with (TLS).
    settings: Vec<String>,
}

impl PgCluster {
    /// `initdb` and start a new cluster.
    pub fn start() -> PgCluster {
        let c = PgCluster::init();
        c.start_server();
        c
    }

    /// `initdb` only.
    fn init() -> PgCluster {
        let dir = tempfile::tempdir().unwrap();
        // The server's user must reach its data directory inside the temp dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some((uid, gid)) = server_user() {
            nix::unistd::chown(&data, Some(uid), Some(gid)).unwrap();
        }
        let out = as_server_user(&bin_dir().join("initdb"))
            .args(["-D", data.to_str().unwrap()])
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PgCluster {
            dir,
            port: free_port(),
            child: Mutex::new(None),
            settings: Vec::new(),
        }
    }

    /// A cluster with TLS on, its certificates made with the `openssl` command line
    /// (see `Certs`), and pg_hba.conf lines: `postgres` trusted on loopback (the
    /// harness's psql), `rw` by password over TLS only, `certuser` by client
    /// certificate over TLS; anyone else refused.
    pub fn start_tls() -> (PgCluster, Certs) {
        let mut c = PgCluster::init();
        let certs = Certs::make(&c.dir.path().join("certs"));
        let file = |p: &Path| p.to_str().unwrap().to_string();
        for (k, v) in [
            ("ssl", "on".to_string()),
            ("ssl_cert_file", file(&certs.dir.join("server.crt"))),
            ("ssl_key_file", file(&certs.dir.join("server.key"))),
            ("ssl_ca_file", file(&certs.ca)),
        ] {
            c.settings.push(format!("{k}={v}"));
        }
        std::fs::write(
            c.data().join("pg_hba.conf"),
            "host all postgres 127.0.0.1/32 trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all rw 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        c.start_server();
        (c, certs)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn start_server(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        let mut cmd = as_server_user(&bin_dir().join("postgres"));
        cmd.args(["-D", self.data().to_str().unwrap()])
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "max_connections=300"])
            // No autovacuum: its workers commit transactions in a database each time
            // they visit it, vacuuming or not, and the tests that count a store's
            // commits in `pg_stat_database` (store_conformance) counted a visit as the
            // store's (7 commits on a renewal's 5, CI of 2026-12-07; at a 1 s naptime
            // every count failed even with every table's autovacuum off). Nothing in
            // rollwatch depends on it; a test's database lives seconds.
            .args(["-c", "autovacuum=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(log);
        // The parent-death signal follows the spawning *thread*: spawn from one that
        // lives as long as the test process.
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            if tx.send(cmd.spawn()).is_ok() {
                loop {
                    thread::park();
                }
            }
        });
        let child = rx.recv().unwrap().expect("start postgres");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.accepts() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; see {}",
                self.dir.path().join("postgres.log").display()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (SIGQUIT: no checkpoint, like a crash for clients).
    pub fn stop_server(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGQUIT,
            );
            let _ = child.wait();
        }
    }

    fn accepts(&self) -> bool {
        Command::new(bin_dir().join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        let name = self.database_owned_by("postgres");
        self.url(&name)
    }

    /// A new, empty database owned by `owner`; returns its name.
    pub fn database_owned_by(&self, owner: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"));
        name
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql and returns its unaligned output (fields split by `|`).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Certificates for a TLS cluster, made by the `openssl` command line: a CA, a server
/// certificate for IP 127.0.0.1 only (so `localhost` is a wrong host name) that it
/// signed, a client certificate for `certuser` it signed, and another CA that signed
/// nothing here.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl (apt-get install -y openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-subj",
                &format!("/CN=rollwatch test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        for (name, cn, ext) in [
            (
                "server",
                "127.0.0.1",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "certuser", "extendedKeyUsage=clientAuth\n"),
        ] {
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ]);
            std::fs::write(
                dir.join(format!("{name}.ext")),
                format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{ext}"),
            )
            .unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        // The server refuses a key others can read; it runs as `postgres` under root.
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = server_user() {
            nix::unistd::chown(&key, Some(uid), Some(gid)).unwrap();
        }
        // rollwatch, as libpq, refuses a client key others can read.
        std::fs::set_permissions(
            dir.join("client.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        for f in ["ca.crt", "server.crt"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        Certs {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }
}

/// The cluster shared by the tests of this process (started once).
pub fn shared() -> &'static PgCluster {
    static PG: OnceLock<PgCluster> = OnceLock::new();
    PG.get_or_init(PgCluster::start)
}

/// The name of the database in a URL made by `database()`.
pub fn db_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}
