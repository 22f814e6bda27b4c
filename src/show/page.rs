//! The agent's page as HTML: data in (watch records, live rule states, the board's
//! report `Record` and timeline, action rows), HTML strings out. No store, no HTTP:
//! `cmd::serve::page` reads the store and the board, answers requests, and calls these.
//! Charts are drawn by report.html's renderer (`show::report::html`), so the page and
//! the report never disagree. Every value from a watch is escaped (`esc`).

use crate::core::events::{rfc3339_ms, secs, vars_text, RuleState};
use crate::io::store::{ActionRow, WatchRecord, WatchState};
use crate::run::agent::RuleLive;
use crate::show::board::Entry;
use crate::show::report::html::{self, esc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `next` for the login page: a path on this agent, never another host.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() < 512
        && next
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~/:%".contains(c));
    if ok {
        next
    } else {
        "/"
    }
}

/// A watch id (or any path) percent-encoded for a URL path.
pub fn encode_path(p: &str) -> String {
    p.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A whole page around `main`; `live` is the fragment that keeps it current.
/// `logout_csrf`: the anti-CSRF token of the log-out form, shown when the agent has a
/// token.
pub fn shell(
    title: &str,
    main: &str,
    live: Option<(&str, u64, bool)>,
    logout_csrf: Option<&str>,
) -> String {
    let mut h = String::with_capacity(main.len() + 1024);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="light dark"><title>{}</title><link rel="stylesheet" href="/assets/page.css"><script src="/assets/page.js" defer></script></head><body><header class="top"><a href="/">rollwatch agent</a>"#,
        esc(title)
    );
    if let Some(csrf) = logout_csrf {
        let _ = write!(
            h,
            r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button>log out</button></form>"#,
            esc(csrf)
        );
    }
    h.push_str("</header>");
    match live {
        Some((url, version, fin)) => {
            let _ = write!(
                h,
                r#"<main id="live" data-live="{}" data-version="{version}" data-final="{fin}">"#,
                esc(url)
            );
        }
        None => h.push_str("<main>"),
    }
    h.push_str(main);
    h.push_str("</main></body></html>\n");
    h
}

/// The main part of an error page: the status and a sentence.
pub fn error_main(status: u16, msg: &str) -> String {
    format!(
        "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">all watches</a></p>",
        status,
        esc(msg)
    )
}

/// A rule's state as a badge: ok, pending with its timer, fired, ...
pub fn state_badge(name: &str, l: &RuleLive) -> String {
    let (class, text) = match &l.state {
        Some(RuleState::Ok) => ("ok", "ok".to_string()),
        Some(RuleState::NoData) => ("nodata", "no data".to_string()),
        Some(RuleState::Pending {
            breaches: Some([k, m, _]),
            ..
        }) => ("pending", format!("pending {k} of {m} breaches")),
        Some(RuleState::Pending { for_s, of_s, .. }) => (
            "pending",
            format!("pending {} of {}", secs(*for_s), secs(*of_s)),
        ),
        Some(RuleState::Breached) => ("fired", "fired".to_string()),
        Some(RuleState::QueryError) => ("error", "query error".to_string()),
        None => ("nodata", "not polled yet".to_string()),
    };
    format!(
        r#"<span class="badge {class}" title="{}">{}: {}</span>"#,
        esc(&l.value.map(|v| format!("value {v}")).unwrap_or_default()),
        esc(name),
        esc(&text)
    )
}

pub fn outcome_cell(rec: &WatchRecord, now: i64) -> String {
    match rec.state {
        WatchState::Running => {
            let left = (rec.def.created_ms + rec.def.duration_ms - now).max(0);
            format!(
                r#"<span class="badge running">running</span> {} left"#,
                esc(&secs(left as f64 / 1000.0))
            )
        }
        _ => {
            let outcome = rec.outcome.as_deref().unwrap_or(rec.state.as_str());
            format!(
                r#"<span class="badge outcome {}">{}</span> exit {}"#,
                html::outcome_class(outcome),
                esc(outcome),
                rec.exit_code.map_or("-".to_string(), |c| c.to_string())
            )
        }
    }
}

/// The list of watches, running first (newest first), then the most recent others.
/// `running` and `done` are shown in the order given, each watch with its rules' live
/// states; `older` finished watches are not shown.
pub fn list_html(
    running: &[(WatchRecord, BTreeMap<String, RuleLive>)],
    done: &[(WatchRecord, BTreeMap<String, RuleLive>)],
    older: usize,
    now: i64,
) -> String {
    let mut h = String::with_capacity(512 * (running.len() + done.len()) + 512);
    let _ = write!(
        h,
        "<h1>Watches</h1><p>{} running · {} recent shown{}</p>",
        running.len(),
        done.len(),
        if older > 0 {
            format!(" · {older} older in the API")
        } else {
            String::new()
        }
    );
    if running.is_empty() && done.is_empty() {
        h.push_str("<p>No watches yet.</p>");
        return h;
    }
    h.push_str(r#"<table class="watches"><tr><th>watch</th><th>vars</th><th>rule file</th><th>state</th><th>rules</th></tr>"#);
    for (rec, live) in running.iter().chain(done.iter()) {
        let rules: String = live.iter().map(|(n, l)| state_badge(n, l)).collect();
        let _ = write!(
            h,
            r#"<tr class="w-{}"><td><a href="/watches/{}">{}</a></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>"#,
            rec.state.as_str(),
            esc(&encode_path(&rec.def.id)),
            esc(&rec.def.id),
            esc(&vars_text(&rec.def.vars)),
            esc(&rec.def.rules),
            outcome_cell(rec, now),
            rules
        );
    }
    h.push_str("</table>");
    h
}

/// One watch: its outcome, its rules' live states (`live`), the board's charts and
/// timeline (`entry`, when the board has it), and the store's action rows.
pub fn watch_html(
    rec: &WatchRecord,
    entry: Option<&Entry>,
    live: Option<BTreeMap<String, RuleLive>>,
    actions: &[ActionRow],
    now: i64,
) -> String {
    let id = &rec.def.id;
    let mut h = String::new();
    let subject = if rec.def.vars.is_empty() {
        rec.def.rules.clone()
    } else {
        vars_text(&rec.def.vars)
    };
    let _ = write!(
        h,
        r#"<h1>{}</h1><p class="outcome {}">{}{}</p><p>watch <code>{}</code> · rule file <code>{}</code> · created {} · duration {}"#,
        esc(&subject),
        if rec.state == WatchState::Running {
            ""
        } else {
            html::outcome_class(rec.outcome.as_deref().unwrap_or("unknown"))
        },
        outcome_cell(rec, now),
        rec.detail
            .as_deref()
            .map(|d| format!(" — {}", esc(d)))
            .unwrap_or_default(),
        esc(id),
        esc(&rec.def.rules),
        esc(&rfc3339_ms(rec.def.created_ms)),
        esc(&secs(rec.def.duration_ms as f64 / 1000.0)),
    );
    let link = encode_path(id);
    if entry.is_some() {
        let _ = write!(
            h,
            r#" · <a href="/watches/{}/report.html">{}</a>"#,
            esc(&link),
            if rec.state == WatchState::Running {
                "report so far"
            } else {
                "report"
            }
        );
    }
    if rec.state == WatchState::Running {
        let _ = write!(
            h,
            r#" · <a class="cancel" href="/watches/{}/cancel">cancel this watch…</a>"#,
            esc(&link)
        );
    }
    h.push_str("</p>");
    if let Some(live) = live.filter(|l| !l.is_empty()) {
        h.push_str(r#"<p class="rules">"#);
        for (n, l) in &live {
            h.push_str(&state_badge(n, l));
        }
        h.push_str("</p>");
    }
    match entry {
        Some(e) => {
            if !e.from_start {
                let _ = write!(
                    h,
                    r#"<p class="note">The agent restarted during this watch: the charts show the polls since {}.</p>"#,
                    esc(&rfc3339_ms(
                        e.record.rules.iter().filter_map(|r| r.samples.first()).map(|s| s.t).min().unwrap_or(now)
                    ))
                );
            }
            h.push_str(&html::legend(&e.record));
            h.push_str(&html::rule_sections(
                &e.record,
                html::local_zone().as_ref(),
            ));
        }
        None => h.push_str(r#"<p class="note">No charts: this watch ran before the agent last started. Its state and actions below are from the store.</p>"#),
    }
    // Actions: the store's rows (what a restart knows), with the output the board saw.
    h.push_str("<h2>Actions</h2>");
    if actions.is_empty() {
        h.push_str("<p>None so far.</p>");
    } else {
        h.push_str(r#"<table class="actions"><tr><th>started</th><th>action</th><th>rule</th><th>command</th><th>state</th><th>result</th></tr>"#);
        for a in actions {
            let _ = write!(
                h,
                r#"<tr class="action-row"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>"#,
                esc(&rfc3339_ms(a.started_ms)),
                esc(&a.kind),
                esc(&a.rule),
                esc(&a.argv.join(" ")),
                esc(&format!("{:?}", a.state).to_lowercase()),
                esc(a.result.as_deref().unwrap_or("running"))
            );
        }
        h.push_str("</table>");
    }
    if let Some(e) = entry {
        for a in e
            .record
            .actions
            .iter()
            .filter(|a| !a.output_tail.is_empty())
        {
            let _ = write!(
                h,
                "<details open><summary>output of the {} command (last lines)</summary><pre>{}</pre></details>",
                esc(a.action),
                esc(&a.output_tail.join("\n"))
            );
        }
        h.push_str(r#"<h2>Events</h2><ol class="timeline">"#);
        for ev in &e.events {
            let _ = write!(
                h,
                r#"<li class="ev ev-{}"><time>{}</time> <b>{}</b> {}</li>"#,
                ev.kind,
                esc(&rfc3339_ms(ev.at_ms)),
                ev.kind,
                esc(&ev.text)
            );
        }
        h.push_str("</ol>");
    }
    h
}

/// The confirmation before a cancel: the form posts back with the anti-CSRF token.
pub fn cancel_main(id: &str, csrf: &str) -> String {
    format!(
        r#"<h1>Cancel watch <code>{id}</code>?</h1><p>The watch stops now and no command runs because of it (a command already running finishes first). This cannot be undone.</p><form method="post" action="/watches/{link}/cancel"><input type="hidden" name="csrf" value="{csrf}"><button class="danger">Yes, cancel the watch</button> <a href="/watches/{link}">no, back to the watch</a></form>"#,
        id = esc(id),
        link = esc(&encode_path(id)),
        csrf = esc(csrf)
    )
}

/// The login page; `csrf` is the log-out form's token, given when the agent has a token.
pub fn login_html(csrf: Option<&str>, next: &str, error: Option<&str>) -> String {
    let main = if csrf.is_none() {
        "<h1>Log in</h1><p>This agent has no token (it listens on loopback only): <a href=\"/\">go to the watches</a>.</p>".to_string()
    } else {
        format!(
            r#"<h1>Log in</h1>{}<form method="post" action="/login" class="login"><input type="hidden" name="next" value="{}"><label>API token <input type="password" name="token" autocomplete="current-password" required autofocus></label> <button>log in</button></form><p>The token is the content of the agent's <code>--token-file</code>. It is kept in a cookie for this site only.</p>"#,
            error
                .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
                .unwrap_or_default(),
            esc(safe_next(next))
        )
    };
    let mut h = shell("rollwatch: log in", &main, None, csrf);
    if csrf.is_some() {
        // No log-out button before logging in.
        if let (Some(a), Some(b)) = (
            h.find("<form method=\"post\" action=\"/logout\""),
            h.find("</header>"),
        ) {
            h.replace_range(a..b, "");
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_agent() {
        for (given, want) in [
            ("/watches/a-1", "/watches/a-1"),
            ("/", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example/", "/"),
            ("/x\"><script>", "/"),
            ("", "/"),
        ] {
            assert_eq!(safe_next(given), want, "{given}");
        }
        assert_eq!(encode_path("/watches/a b\"<"), "/watches/a%20b%22%3C");
    }
}
