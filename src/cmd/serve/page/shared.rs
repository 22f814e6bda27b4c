//! What every handler of the page shares: its state, who a request's token names,
//! the checks a form must pass (Origin, anti-CSRF token), and how a page or an error
//! is answered. The handlers live beside it (`forms.rs`, `login.rs`) and in `page.rs`.

use super::list::Snaps;
use crate::cmd::serve::tokens::{constant_time_eq, Tokens};
use crate::io::store::WatchRecord;
use crate::run::agent::Agent;
use crate::show::board::Board;
use crate::show::page;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Arc;

/// The cookie that holds the token (base64url, so any token is a valid cookie value).
pub const COOKIE: &str = "rollwatch_token";

#[derive(Clone)]
pub(super) struct Page {
    pub(super) agent: Arc<Agent>,
    /// The tokens of `--token-file` (`name:token` lines say whose): the cookie holds
    /// the one a person logged in with, so the page knows who gives an order.
    pub(super) token: Option<Arc<Tokens>>,
    pub(super) board: Arc<Board>,
    /// The anti-CSRF token of the page's forms (random, per agent process).
    pub(super) csrf: Arc<String>,
    /// The list's snapshots of watches the board does not have (`snaps`).
    pub(super) snaps: Arc<Snaps>,
}

/// Whose token a request carries, from `Authorization: Bearer` or the cookie: None
/// for no valid token; Some(None) for a token without a name, or an agent without
/// tokens (loopback only).
pub(super) fn caller(p: &Page, headers: &HeaderMap) -> Option<Option<String>> {
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

/// A POST from one of this agent's own pages: its Origin (or, without one, its
/// Referer) is this host.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
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
/// A form from this agent's own page: its Origin, and the page's anti-CSRF token.
pub(super) fn csrf_ok(p: &Page, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    same_origin(headers)
        && form
            .get("csrf")
            .is_some_and(|c| constant_time_eq(c.as_bytes(), p.csrf.as_bytes()))
}

/// The answer to a form that did not come from this agent's page.
pub(super) fn foreign_form(p: &Page) -> Response {
    error_page(
        p,
        StatusCode::FORBIDDEN,
        "this form did not come from this agent's page",
    )
}

/// A whole page around `main` (`show::page::shell`), with the log-out form when the
/// agent has a token.
pub(super) fn shell(p: &Page, title: &str, main: &str, live: Option<(&str, u64, bool)>) -> String {
    page::shell(title, main, live, p.token.as_ref().map(|_| p.csrf.as_str()))
}

pub(super) fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(super) fn error_page(p: &Page, status: StatusCode, msg: &str) -> Response {
    let main = page::error_main(status.as_u16(), msg);
    html_response(status, shell(p, "rollwatch agent", &main, None))
}

/// Why a page could not be made: its status and a sentence.
pub(super) struct Fail(pub(super) StatusCode, pub(super) String);

pub(super) fn store_error(e: impl std::fmt::Display) -> Fail {
    Fail(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cannot read the state store: {e}"),
    )
}

pub(super) async fn get_watch(p: &Page, id: &str) -> Result<WatchRecord, Fail> {
    let idc = id.to_string();
    match p.agent.store.call(move |s| s.get(&idc)).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Fail(StatusCode::NOT_FOUND, format!("no watch `{id}`"))),
        Err(e) => Err(store_error(e)),
    }
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
