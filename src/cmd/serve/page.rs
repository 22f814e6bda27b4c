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

use super::api::cancel_watch;
use super::tokens::{constant_time_eq, Tokens};
use crate::core::events::now_ms;
use crate::io::store::{WatchRecord, WatchState};
use crate::run::agent::Agent;
use crate::show::board::{Board, Entry};
use crate::show::page::{self, encode_path, safe_next};
use crate::show::report::html;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

mod list;
use list::Snaps;
/// Finished or cancelled watches listed on `/` after the running ones.
pub use list::RECENT;

/// The cookie that holds the token (base64url, so any token is a valid cookie value).
pub const COOKIE: &str = "rollwatch_token";
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

#[derive(Clone)]
struct Page {
    agent: Arc<Agent>,
    /// The tokens of `--token-file` (`name:token` lines say whose): the cookie holds
    /// the one a person logged in with, so the page knows who gives an order.
    token: Option<Arc<Tokens>>,
    board: Arc<Board>,
    /// The anti-CSRF token of the page's forms (random, per agent process).
    csrf: Arc<String>,
    /// The list's snapshots of watches the board does not have (`snaps`).
    snaps: Arc<Snaps>,
}

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

/// Whose token a request carries, from `Authorization: Bearer` or the cookie: None
/// for no valid token; Some(None) for a token without a name, or an agent without
/// tokens (loopback only).
fn caller(p: &Page, headers: &HeaderMap) -> Option<Option<String>> {
    let Some(tokens) = &p.token else {
        return Some(None);
    };
    if let Some(b) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return tokens.who(b);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter_map(|v| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .ok()
        })
        .filter_map(|v| String::from_utf8(v).ok())
        .find_map(|t| tokens.who(&t))
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

/// A POST from one of this agent's own pages: its Origin (or, without one, its
/// Referer) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let ours = [format!("http://{host}"), format!("https://{host}")];
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return ours.iter().any(|x| x == o);
    }
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| ours.iter().any(|x| r.starts_with(&format!("{x}/"))))
}
/// A whole page around `main` (`show::page::shell`), with the log-out form when the
/// agent has a token.
fn shell(p: &Page, title: &str, main: &str, live: Option<(&str, u64, bool)>) -> String {
    page::shell(title, main, live, p.token.as_ref().map(|_| p.csrf.as_str()))
}

fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn error_page(p: &Page, status: StatusCode, msg: &str) -> Response {
    let main = page::error_main(status.as_u16(), msg);
    html_response(status, shell(p, "rollwatch agent", &main, None))
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

/// Why a page could not be made: its status and a sentence.
struct Fail(StatusCode, String);

fn store_error(e: impl std::fmt::Display) -> Fail {
    Fail(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cannot read the state store: {e}"),
    )
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

async fn get_watch(p: &Page, id: &str) -> Result<WatchRecord, Fail> {
    let idc = id.to_string();
    match p.agent.store.call(move |s| s.get(&idc)).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Fail(StatusCode::NOT_FOUND, format!("no watch `{id}`"))),
        Err(e) => Err(store_error(e)),
    }
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

/// The page of an error unless watch `id` is running (the cancel and order
/// confirmation steps ask it alike).
async fn running_watch(p: &Page, id: &str) -> Result<(), Response> {
    let rec = get_watch(p, id)
        .await
        .map_err(|f| error_page(p, f.0, &f.1))?;
    if rec.state != WatchState::Running {
        return Err(error_page(
            p,
            StatusCode::CONFLICT,
            &format!("watch `{id}` is not running (it is {})", rec.state.as_str()),
        ));
    }
    Ok(())
}

async fn cancel_confirm(State(p): State<Page>, Path(id): Path<String>) -> Response {
    if let Err(r) = running_watch(&p, &id).await {
        return r;
    }
    let main = page::cancel_main(&id, &p.csrf);
    html_response(StatusCode::OK, shell(&p, "cancel a watch", &main, None))
}

fn csrf_ok(p: &Page, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    same_origin(headers)
        && form
            .get("csrf")
            .is_some_and(|c| constant_time_eq(c.as_bytes(), p.csrf.as_bytes()))
}

async fn cancel(
    State(p): State<Page>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&p, &headers, &form) {
        return error_page(
            &p,
            StatusCode::FORBIDDEN,
            "this form did not come from this agent's page",
        );
    }
    match cancel_watch(&p.agent, &id).await {
        Ok(_) => {
            tracing::info!(event = "watch_cancel_requested", watch = %id, via = "page", "cancel requested from the page");
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/watches/{}", encode_path(&id)))],
            )
                .into_response()
        }
        Err((status, msg)) => error_page(&p, status, &msg),
    }
}

/// The confirmation step of a person's order (`/watches/{id}/order/{order}`): what it
/// does, a required reason, a duration for `hold` and `extend`, and the person's name
/// when their token has none.
async fn order_confirm(
    State(p): State<Page>,
    Path((id, order)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !crate::core::control::Order::NAMES.contains(&order.as_str()) {
        return error_page(&p, StatusCode::NOT_FOUND, &format!("no order {order:?}"));
    }
    if let Err(r) = running_watch(&p, &id).await {
        return r;
    }
    let named = caller(&p, &headers).flatten();
    let main = page::order_main(&id, &order, &p.csrf, named.as_deref());
    html_response(StatusCode::OK, shell(&p, "order a watch", &main, None))
}

/// A person's order from the page: the same checks as the API's (`core::control`),
/// after the page's CSRF and Origin checks; recorded as the logged-in token's name.
async fn order_give(
    State(p): State<Page>,
    Path((id, order)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&p, &headers, &form) {
        return error_page(
            &p,
            StatusCode::FORBIDDEN,
            "this form did not come from this agent's page",
        );
    }
    let who = match caller(&p, &headers).flatten() {
        Some(name) => name,
        None => form.get("by").cloned().unwrap_or_default(),
    };
    let d = match form.get("for").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => match crate::core::rules::parse_duration(t) {
            Ok(d) => Some(d),
            Err(e) => {
                return error_page(
                    &p,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid duration: {e}"),
                )
            }
        },
    };
    let reason = form.get("reason").map_or("", String::as_str);
    let control = crate::core::control::Order::parse(&order, d)
        .and_then(|o| crate::core::control::Control::new(o, &who, reason, p.agent.clock_now_ms()));
    let control = match control {
        Ok(c) => c,
        Err(e) => return error_page(&p, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    use crate::io::store::{OrderState, Ordered};
    let refused = |msg: String| error_page(&p, StatusCode::CONFLICT, &msg);
    match p.agent.order(&id, &control).await {
        Ok(Ordered::Queued(row)) if row.state == OrderState::Refused => {
            refused(format!("refused: {}", row.result.unwrap_or_default()))
        }
        Ok(Ordered::Queued(_)) => {
            tracing::info!(event = "order_given", watch = %id, order = %order, by = %control.who, via = "page", "order given from the page");
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/watches/{}", encode_path(&id)))],
            )
                .into_response()
        }
        Ok(Ordered::Taken(row)) => refused(format!(
            "{} already ordered a {} of this watch at {} ({:?}); it runs once",
            row.order.who,
            row.order.kind,
            crate::core::events::rfc3339_ms(row.order.at_ms),
            row.order.reason
        )),
        Ok(Ordered::Claimed { rule, at_ms }) => refused(format!(
            "{} already started the {order} command of this watch at {}; it runs once",
            match crate::core::control::manual_by(&rule) {
                Some(who) => format!("{who}'s order"),
                None => format!("rule `{rule}`"),
            },
            crate::core::events::rfc3339_ms(at_ms)
        )),
        Ok(Ordered::NoWatch) => error_page(&p, StatusCode::NOT_FOUND, &format!("no watch `{id}`")),
        Ok(Ordered::NotRunning(s)) => refused(format!(
            "watch `{id}` is not running (it is {})",
            s.as_str()
        )),
        Err(e) => error_page(&p, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn login_html(p: &Page, next: &str, error: Option<&str>) -> String {
    page::login_html(p.token.as_ref().map(|_| p.csrf.as_str()), next, error)
}

async fn login_form(State(p): State<Page>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let next = q.get("next").map_or("/", String::as_str);
    html_response(StatusCode::OK, login_html(&p, next, None))
}

async fn login(
    State(p): State<Page>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let next = safe_next(form.get("next").map_or("/", String::as_str)).to_string();
    let Some(tokens) = &p.token else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    };
    if !same_origin(&headers) {
        return html_response(
            StatusCode::FORBIDDEN,
            login_html(
                &p,
                &next,
                Some("this form did not come from this agent's page"),
            ),
        );
    }
    let given = form.get("token").map_or("", |t| t.trim());
    let Some(who) = tokens.who(given) else {
        tracing::warn!(event = "login_refused", "a page login with a wrong token");
        return html_response(
            StatusCode::UNAUTHORIZED,
            login_html(&p, &next, Some("wrong token")),
        );
    };
    // The cookie keeps the token given (so the name it carries), base64url-encoded.
    let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(given);
    tracing::info!(event = "login", who = %who.as_deref().unwrap_or("(a token without a name)"), "page login");
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let set = format!(
        "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    );
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, set), (header::LOCATION, next)],
    )
        .into_response()
}

async fn logout(
    State(p): State<Page>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&p, &headers, &form) {
        return error_page(
            &p,
            StatusCode::FORBIDDEN,
            "this form did not come from this agent's page",
        );
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_must_come_from_this_host() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:7093"),
            ("origin", "http://127.0.0.1:7093")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:7093"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:7093"),
            ("origin", "null")
        ])));
        assert!(same_origin(&h(&[
            ("host", "a:1"),
            ("referer", "http://a:1/watches/x")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "a:1"),
            ("referer", "http://a:1.evil/x")
        ])));
        assert!(
            !same_origin(&h(&[("host", "a:1")])),
            "neither header: refused"
        );
    }
}
