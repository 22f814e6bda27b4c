//! The agent's page: `/` lists watches (running first, then recent ones), and
//! `/watches/{id}` shows one live: each rule's chart (drawn by report.html's renderer,
//! so the page and the report never disagree), the actions with their output, the
//! events as a timeline, and the report.
//!
//! Plain HTML from the server, one stylesheet and one small script, all in the binary
//! (`assets/`): no build step, nothing from another host. The script keeps the page
//! live by long-polling an HTML fragment (`/live/...`): the request waits until the
//! board changes (or 20s), and the fragment replaces the page's `<main>`.
//! This file reads the store and the board and answers requests; the HTML itself is
//! rendered by `show::page` (data in, HTML out).
//!
//! Access: the API's token. A browser logs in at `/login`, which keeps the token in a
//! cookie (HttpOnly, SameSite=Strict, Path=/, Secure behind a TLS proxy that says
//! `X-Forwarded-Proto: https`); scripts may send `Authorization: Bearer` instead. Both
//! are compared in constant time (`api::constant_time_eq`). Without the token a page
//! redirects to the login page and a fragment or form answers 401; no watch data is
//! shown. Without `--token-file` (allowed on loopback only, as for the API) the pages
//! are open. Every page carries a strict Content-Security-Policy (`default-src
//! 'self'`).
//!
//! The page cannot start anything. It can cancel a running watch, after a confirmation
//! page, through `api::cancel_watch` (the API's own path and checks); the form is
//! protected against cross-site requests by SameSite=Strict, an Origin check and an
//! anti-CSRF token.

use super::tokens::Tokens;
use crate::core::events::now_ms;
use crate::io::store::{WatchRecord, WatchState};
use crate::run::agent::Agent;
use crate::show::board::{Board, Entry};
use crate::show::page::{self, encode_path};
use crate::show::report::html;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;

mod forms;
mod list;
mod login;
mod shared;
use forms::{cancel, cancel_confirm, order_confirm, order_give};
/// Finished or cancelled watches listed on `/` after the running ones.
pub use list::RECENT;
use login::{login, login_form, logout};
/// The cookie that holds the token.
pub use shared::COOKIE;
use shared::{caller, error_page, get_watch, html_response, shell, store_error, Fail, Page};
/// How long a long poll waits for a change.
const LONG_POLL: Duration = Duration::from_secs(20);

/// The Content-Security-Policy of every page: only this agent's own script, style and
/// forms; no frames.
pub const CSP: &str = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";
/// report.html has its style inline and no script at all.
const REPORT_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

const PAGE_CSS: &str = include_str!("assets/page.css");
const PAGE_JS: &str = include_str!("assets/page.js");

/// A random anti-CSRF token (from the kernel's random source).
pub fn csrf_secret() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The page's routes (`/`, `/watches/...`, `/live/...`, `/login`, `/assets/...`).
pub fn router(agent: Arc<Agent>, token: Option<Tokens>, board: Arc<Board>, csrf: String) -> Router {
    let p = Page {
        agent,
        token: token.map(Arc::new),
        board,
        csrf: Arc::new(csrf),
        snaps: Arc::default(),
    };
    let guarded = Router::new()
        .route("/", get(index))
        .route("/watches/{id}", get(watch_page))
        .route("/watches/{id}/report.html", get(report))
        .route("/watches/{id}/cancel", get(cancel_confirm).post(cancel))
        .route(
            "/watches/{id}/order/{order}",
            get(order_confirm).post(order_give),
        )
        .route("/live/watches", get(live_list))
        .route("/live/watches/{id}", get(live_watch))
        .route("/logout", axum::routing::post(logout))
        .route_layer(middleware::from_fn_with_state(p.clone(), auth));
    Router::new()
        .merge(guarded)
        .route("/login", get(login_form).post(login))
        .route(
            "/assets/page.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    format!("{}{}{PAGE_CSS}", html::PAGE_CSS, html::CHART_CSS),
                )
            }),
        )
        .route(
            "/assets/page.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    PAGE_JS,
                )
            }),
        )
        .layer(middleware::map_response(security_headers))
        .with_state(p)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn authorized(p: &Page, headers: &HeaderMap) -> bool {
    caller(p, headers).is_some()
}

async fn auth(State(p): State<Page>, req: Request, next: Next) -> Response {
    if authorized(&p, req.headers()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let browser = req.method() == Method::GET
        && !path.starts_with("/live/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if browser {
        let to = format!("/login?next={}", encode_path(&path));
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong token: log in at /login, or send Authorization: Bearer\n",
    )
        .into_response()
}

/// A fragment with the version it shows (and whether it can still change).
fn fragment(body: String, version: u64, fin: bool) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (
                header::HeaderName::from_static("x-rollwatch-version"),
                version.to_string(),
            ),
            (
                header::HeaderName::from_static("x-rollwatch-final"),
                fin.to_string(),
            ),
        ],
        body,
    )
        .into_response()
}

/// The list of watches (`list::list_html`).
async fn list_html(p: &Page) -> Result<String, Fail> {
    list::list_html(&p.agent, &p.board, &p.snaps)
        .await
        .map_err(store_error)
}

async fn watch_html(p: &Page, rec: &WatchRecord, entry: Option<&Entry>) -> Result<String, Fail> {
    let id = &rec.def.id;
    let now = now_ms();
    // Each rule's state: live while it runs here, else the last the board saw.
    let live = p.agent.live(id).or_else(|| {
        let s = p.board.summary(id)?;
        Some(
            s.rules
                .into_iter()
                .map(|r| {
                    let l = crate::run::agent::RuleLive {
                        state: r.state,
                        value: r.value,
                        ..Default::default()
                    };
                    (r.name, l)
                })
                .collect(),
        )
    });
    // Actions: the store's rows (what a restart knows), with the output the board saw.
    let idc = id.to_string();
    let actions = p
        .agent
        .store
        .call(move |s| s.actions(&idc))
        .await
        .map_err(store_error)?;
    Ok(page::watch_html(rec, entry, live, &actions, now))
}

async fn index(State(p): State<Page>) -> Response {
    let version = p.board.version();
    match list_html(&p).await {
        Ok(main) => html_response(
            StatusCode::OK,
            shell(
                &p,
                "rollwatch agent",
                &main,
                Some(("/live/watches", version, false)),
            ),
        ),
        Err(f) => error_page(&p, f.0, &f.1),
    }
}

async fn watch_page(State(p): State<Page>, Path(id): Path<String>) -> Response {
    let version = p.board.version();
    let rec = match get_watch(&p, &id).await {
        Ok(r) => r,
        Err(f) => return error_page(&p, f.0, &f.1),
    };
    let entry = p.board.get(&id);
    match watch_html(&p, &rec, entry.as_ref()).await {
        Ok(main) => {
            let fin = rec.state != WatchState::Running;
            let live = format!("/live/watches/{}", encode_path(&id));
            html_response(
                StatusCode::OK,
                shell(
                    &p,
                    &format!("rollwatch: {id}"),
                    &main,
                    Some((&live, version, fin)),
                ),
            )
        }
        Err(f) => error_page(&p, f.0, &f.1),
    }
}

#[derive(serde::Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn live_list(State(p): State<Page>, Query(q): Query<Since>) -> Response {
    let version = match q.since {
        Some(s) => p.board.wait_past(s, LONG_POLL).await,
        None => p.board.version(),
    };
    match list_html(&p).await {
        Ok(h) => fragment(h, version, false),
        Err(f) => error_page(&p, f.0, &f.1),
    }
}

async fn live_watch(
    State(p): State<Page>,
    Path(id): Path<String>,
    Query(q): Query<Since>,
) -> Response {
    let mut version = p.board.version();
    if let Some(since) = q.since {
        // Wait for a change of this watch (or the time limit).
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        let mut seen = since;
        loop {
            if p.board.version_of(&id).is_some_and(|v| v > since) {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            seen = p.board.wait_past(seen, left).await;
        }
        version = p.board.version();
    }
    let rec = match get_watch(&p, &id).await {
        Ok(r) => r,
        Err(f) => return error_page(&p, f.0, &f.1),
    };
    let entry = p.board.get(&id);
    match watch_html(&p, &rec, entry.as_ref()).await {
        Ok(h) => fragment(h, version, rec.state != WatchState::Running),
        Err(f) => error_page(&p, f.0, &f.1),
    }
}

async fn report(State(p): State<Page>, Path(id): Path<String>) -> Response {
    let Some(e) = p.board.get(&id) else {
        return error_page(
            &p,
            StatusCode::NOT_FOUND,
            &format!("no report of watch `{id}` on this agent since it started"),
        );
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, REPORT_CSP),
        ],
        html::render(&e.record),
    )
        .into_response()
}
