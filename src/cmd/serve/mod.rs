//! `rollwatch serve`: one long-running agent that pipelines hand watches to.
//!
//! A watch per deploy inside a CI job dies with the job. The agent keeps them instead,
//! and must never lose one, miss a breach or run a rollback twice because it was
//! restarted. `serve` is two things: this command face (its flags, start-up and
//! shutdown, the HTTP API in `api`, and the page for people in `page`, drawn from the
//! live records `show::board` keeps) and the agent runtime below it:
//! - `run::agent`: runs each watch with the same loop as `watch`, persists its
//!   decisions, and resumes unfinished watches at start (the restart rule is
//!   documented there); its `source` shares one Prometheus client between watches, and
//!   `metrics` are the agent's own, on an injected registry;
//! - `io::store`: the durable state, behind the `Store` trait: SQLite (`--state`), in
//!   a state file readable by its owner only and locked so that a second agent on it
//!   refuses to start (exit 2) instead of running rollbacks twice; or PostgreSQL
//!   (`--store` / `--store-url-file`), shared by any number of agents, each owning
//!   its watches through leases (see `run::agent`). Such an agent is not ready until
//!   it has reached the database and migrated its schema.
//!
//! Rule files in `--rules-dir` are the only source of commands: a request names a
//! file and gives vars. The file's text is snapshotted when the watch is created, so
//! editing it later changes no running watch.
//!
//! SIGTERM (or SIGINT): stop accepting requests, let running commands finish, persist,
//! exit 0; the watches stay `running` in the store and resume at the next start.

pub mod api;
mod batch;
mod body;
mod orders;
pub mod page;
mod state;
mod tokens;

use crate::cmd::args::PromArgs;
use crate::core::exit;
use crate::io::store;
use crate::run::agent::{metrics, Agent, AgentConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory of rule files; a watch names one by its stem (`checkout` for checkout.yaml).
    #[arg(long, value_name = "DIR")]
    pub rules_dir: PathBuf,
    /// Address to listen on (IP:PORT). Without --token-file only a loopback address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7093")]
    pub listen: String,
    /// The state file (SQLite); created if missing. Watches in it resume at start.
    #[arg(long, value_name = "PATH", required_unless_present_any = ["store", "store_url_file"])]
    pub state: Option<PathBuf>,
    /// A shared PostgreSQL store (postgres://USER@HOST[:PORT]/DB[?sslmode=verify-full],
    /// or libpq's key=value pairs) for several agents. A password here shows in `ps`:
    /// prefer --store-url-file.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// A file holding the PostgreSQL store's URL (with its password, out of `ps`).
    #[arg(long, value_name = "FILE")]
    pub store_url_file: Option<PathBuf>,
    /// How long a watch's lease lasts unrenewed: an agent that dies has its watches
    /// adopted by the others after about this long. At least 500ms (it paces the
    /// renewal loop); under 1s is warned.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_ttl)]
    pub lease_ttl: Duration,
    #[command(flatten)]
    pub prom: PromArgs,
    /// File holding the bearer token every /api request must carry.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve the two verdict routes (`/api/v1/verdict`, `/api/v1/watches/{id}/verdict`)
    /// without the token, for Flagger's webhooks, which cannot send a header. They
    /// only read: no watch is stored and no command runs because of them.
    #[arg(long)]
    pub open_verdicts: bool,
    /// Bound on concurrent requests to Prometheus, across all watches.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_concurrent_queries: usize,
    /// Send every poll on its own instead of sharing identical in-flight queries
    /// between watches (for comparison and debugging).
    #[arg(long)]
    pub no_query_sharing: bool,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(500) {
        return Err("the lease TTL must be at least 500ms".into());
    }
    Ok(d)
}

/// Why the agent could not start (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Secret(#[from] crate::io::secret::SecretFileError),
    #[error("the token file {0} is empty")]
    EmptyToken(PathBuf),
    #[error("invalid --listen {0:?}: expected IP:PORT, e.g. 127.0.0.1:7093")]
    Listen(String),
    #[error("refusing to listen on {0} without --token-file: anyone who can reach it could start watches; use a loopback address or give a token")]
    Unprotected(SocketAddr),
    #[error("--rules-dir {0} is not a directory")]
    RulesDir(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("give one store: --state PATH (SQLite) or --store URL / --store-url-file FILE (PostgreSQL), not both")]
    TwoStores,
    #[error("cannot register the agent's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot read random bytes for the page's anti-CSRF token: {0}")]
    Random(std::io::Error),
}

/// `rollwatch serve`.
pub async fn run(args: ServeArgs) -> u8 {
    let mut signals = crate::cmd::signals::signal_channel();
    match serve(args, &mut signals).await {
        Ok(()) => exit::HEALTHY,
        Err(e) => {
            crate::say!("error: {e}");
            exit::USAGE
        }
    }
}

fn read_token(path: &std::path::Path) -> Result<tokens::Tokens, ServeError> {
    let t = crate::io::secret::read_text(path, "token file")?;
    tokens::Tokens::parse(&t).ok_or_else(|| ServeError::EmptyToken(path.to_path_buf()))
}

async fn serve(
    args: ServeArgs,
    signals: &mut crate::run::channel::Receiver<crate::run::watch::Signal>,
) -> Result<(), ServeError> {
    if crate::io::huge_pages::off_for_this_process() {
        tracing::debug!(
            event = "huge_pages_off",
            "transparent huge pages are off for the agent (its rollbacks and pauses get them as found)"
        );
    }
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    if let Some(t) = &token {
        for (n, name) in t.named_lines() {
            tracing::info!(event = "token_named", token = n, name = %name,
                "token {n} of --token-file is {name}'s (a `name:token` line): orders made with it are recorded as {name}'s; a token that merely holds a `:` is read so too");
        }
    }
    let addr: SocketAddr = args
        .listen
        .parse()
        .map_err(|_| ServeError::Listen(args.listen.clone()))?;
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::Unprotected(addr));
    }
    if !args.rules_dir.is_dir() {
        return Err(ServeError::RulesDir(args.rules_dir.clone()));
    }
    let url = match (&args.store, &args.store_url_file) {
        (Some(_), Some(_)) => return Err(ServeError::TwoStores),
        (Some(u), None) => Some(u.trim().to_string()),
        (None, Some(f)) => Some(store::pgconn::from_file(&crate::io::secret::read_text(
            f,
            "store URL file",
        )?)),
        (None, None) => None,
    };
    if url.is_some() && args.state.is_some() {
        return Err(ServeError::TwoStores);
    }
    let (store, pg, shown): (Arc<dyn store::Store>, _, String) = match (&url, &args.state) {
        (Some(url), _) => {
            // Warned before anything else can fail: the password is in `ps` already.
            let has_password =
                store::pgconn::parse(url).is_ok_and(|t| t.config.get_password().is_some());
            if args.store.is_some() && has_password {
                tracing::warn!(event = "store_password_visible", "the --store connection string has a password, which `ps` shows to every user of this machine; use --store-url-file");
            }
            let pg = Arc::new(store::PgStore::connect(url)?);
            let shown = pg.shown_url().to_string();
            (pg.clone(), Some(pg), shown)
        }
        (None, Some(path)) => (
            Arc::new(store::SqliteStore::open(path)?),
            None,
            path.display().to_string(),
        ),
        (None, None) => return Err(ServeError::TwoStores),
    };
    let metrics = metrics::Metrics::new(prometheus::Registry::new())?;
    let action_dir = action_dir(args.state.as_deref());
    let agent = Agent::new(
        store,
        metrics,
        AgentConfig {
            rules_dir: args.rules_dir.clone(),
            prom: args.prom.connection(),
            max_queries: args.max_concurrent_queries,
            share_queries: !args.no_query_sharing,
            holder: crate::run::agent::agent_id(),
            lease_ttl: args.lease_ttl,
            action_dir,
        },
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    // The page's live records: added before `start`, so resumed and adopted watches
    // have one too.
    let board = crate::show::board::Board::new();
    agent.add_watch_sink(board.factory());
    let csrf = page::csrf_secret().map_err(ServeError::Random)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let token_set = token.is_some();
    let app = api::router(agent.clone(), token.clone(), args.open_verdicts).merge(page::router(
        agent.clone(),
        token,
        board,
        csrf,
    ));
    // Listening before the store is reached: /readyz says 503 until it is.
    let server = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(e) = r {
            error!(event = "serve_error", error = %e, "the HTTP server failed");
        }
    });
    // Reach the store (PostgreSQL may not be up yet): migrate its schema, then adopt.
    let resumed = loop {
        let r = match &pg {
            Some(pg) => {
                // `migrate` is PgStore's own (not the `Store` trait's, so not through
                // the agent's `StoreHandle`): run off the runtime all the same.
                let pg = pg.clone();
                tokio::task::spawn_blocking(move || pg.migrate())
                    .await
                    .unwrap_or_else(|e| {
                        Err(store::StoreError::Pg {
                            url: String::new(),
                            what: "create or upgrade the schema",
                            reason: e.to_string(),
                        })
                    })
            }
            None => Ok(()),
        };
        let r = match r {
            Ok(()) => agent.start().await,
            Err(e) => Err(e),
        };
        match r {
            Ok(n) => break n,
            // No retry fixes these: a certificate, a TLS setting, a refused login, a
            // newer schema.
            Err(
                e @ (store::StoreError::NewerPgSchema { .. }
                | store::StoreError::PgRefused { .. }
                | store::StoreError::NewerSchema { .. }),
            ) => {
                let _ = stop_tx.send(());
                return Err(e.into());
            }
            Err(e) if pg.is_none() => {
                let _ = stop_tx.send(());
                return Err(e.into());
            }
            Err(e) => {
                agent.metrics.store_up.set(0);
                agent.metrics.store_errors.inc();
                error!(event = "store_unreachable", error = %e, "cannot reach the store; not ready, trying again in 2s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    sig = signals.recv() => {
                        info!(event = "serve_stopping", signal = ?sig, "stopping before the store was reached");
                        let _ = stop_tx.send(());
                        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
                        return Ok(());
                    }
                }
            }
        }
    };
    if args.lease_ttl < crate::core::rules::WARN_INTERVAL {
        tracing::warn!(event = "lease_ttl_short", lease_ttl_s = args.lease_ttl.as_secs_f64(), "--lease-ttl under 1s: leases are renewed several times a second, and a pause of the store that long hands every watch to another agent");
    }
    info!(event = "serve_started", listen = %addr, state = %shown, holder = %agent.leases.holder, lease_ttl_s = args.lease_ttl.as_secs_f64(), resumed, token = token_set, open_verdicts = args.open_verdicts, "agent listening");
    let sig = signals.recv().await;
    info!(event = "serve_stopping", signal = ?sig, "stopping: no new watches; running commands finish; watches resume at the next start");
    let _ = stop_tx.send(());
    agent.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    info!(event = "serve_stopped", "agent stopped; state persisted");
    Ok(())
}

/// Where commands' supervisors record their exits (`io::supervise`): next to the state
/// file with SQLite (`STATE.actions/`); with PostgreSQL, in this host's own directory
/// (`$XDG_RUNTIME_DIR/rollwatch/actions`, or `~/.local/state/rollwatch/actions`),
/// where an agent adopting on the same host finds it too. Owner-only. None (commands
/// unsupervised, as before) if it cannot be made.
fn action_dir(state: Option<&std::path::Path>) -> Option<PathBuf> {
    let dir = match state {
        Some(p) => {
            let mut name = p.file_name()?.to_os_string();
            name.push(".actions");
            p.with_file_name(name)
        }
        None => std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("rollwatch/actions"))
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|d| !d.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state/rollwatch/actions"))
            })?,
    };
    match crate::io::supervise::private_dir(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(event = "action_dir_unusable", path = %dir.display(), error = %e,
                "cannot make the directory where commands' exits are recorded: a command running when the agent dies will be reported unknown");
            None
        }
    }
}
