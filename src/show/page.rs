//! The agent's page as HTML: data in (watch records, live rule states, the board's
//! report `Record` and timeline, action rows), HTML strings out. No store, no HTTP:
//! `cmd::serve::page` reads the store and the board, answers requests, and calls these.
//! Charts are drawn by report.html's renderer (`show::report::html`), so the page and
//! the report never disagree. Every value from a watch is escaped (`esc`).

use crate::core::events::{rfc3339_ms, secs, vars_text, RuleState};
use crate::io::store::{ActionRow, WatchRecord, WatchState};
use crate::run::agent::RuleLive;
use crate::show::board::Entry;
use crate::show::report::html::{self, esc, outcome_severity, Severity};
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

/// The severity of a rule's state (None: not polled): the one place it is decided for
/// the page's badges.
pub fn state_severity(state: Option<&RuleState>) -> Severity {
    match state {
        Some(RuleState::Ok) => Severity::Good,
        Some(RuleState::Pending { .. }) | Some(RuleState::QueryError) => Severity::Warn,
        Some(RuleState::Breached) => Severity::Bad,
        Some(RuleState::NoData) | None => Severity::Neutral,
    }
}

/// A badge: its severity's colour and mark, then its text (already escaped).
fn badge(sev: Severity, extra: &str, title: &str, text_html: &str) -> String {
    format!(
        r#"<span class="badge {}{}{extra}" title="{}">{}{text_html}</span>"#,
        sev.class(),
        if extra.is_empty() { "" } else { " " },
        esc(title),
        sev.mark_html(),
    )
}

/// What a rule without a state is called: not polled yet while its watch runs, not
/// judged once it ended. `kept` false: its polls are not known here: of an ended
/// watch the store keeps only breaches and actions, so no breach was recorded; a
/// watch running on another agent shows its states on that agent's page.
pub fn no_state_text(ended: bool, kept: bool) -> &'static str {
    match (kept, ended) {
        (false, true) => "no breach recorded",
        (false, false) => "on its agent's page",
        (true, true) => "not judged",
        (true, false) => "not polled yet",
    }
}

/// A rule's state as a badge: ok, pending with its timer, fired, ... (`none`: the
/// text without a state, `no_state_text`). `fired`: it fired during the watch, which
/// a later state (a notify rule that resolved) says too.
pub fn state_badge(name: &str, l: &RuleLive, fired: bool, none: &str) -> String {
    let (class, mut text) = match &l.state {
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
        None => ("nodata", none.to_string()),
    };
    if fired && l.state != Some(RuleState::Breached) {
        text.push_str(", fired earlier");
    }
    badge(
        state_severity(l.state.as_ref()),
        class,
        &l.value.map(|v| format!("value {v}")).unwrap_or_default(),
        &format!("{}: {}", esc(name), esc(&text)),
    )
}

pub fn outcome_cell(rec: &WatchRecord, now: i64) -> String {
    match rec.state {
        WatchState::Running => {
            let left = (rec.def.created_ms + rec.def.duration_ms - now).max(0);
            format!(
                "{} {} left",
                badge(outcome_severity("running"), "running", "running", "running"),
                esc(&secs(left as f64 / 1000.0))
            )
        }
        _ => {
            let outcome = rec.outcome.as_deref().unwrap_or(rec.state.as_str());
            let sev = outcome_severity(outcome);
            format!(
                "{} exit {}",
                badge(
                    sev,
                    "outcome",
                    &format!("{outcome}: {}", sev.word()),
                    &esc(outcome)
                ),
                rec.exit_code.map_or("-".to_string(), |c| c.to_string())
            )
        }
    }
}

/// A rule's cell in the list: its state, and whether it fired during the watch.
#[derive(Debug, Clone, Default)]
pub struct RuleCell {
    pub name: String,
    pub live: RuleLive,
    pub fired: bool,
    /// Its polls are known (live, or the board saw them); false: only what the store
    /// keeps of an ended watch (`no_state_text`).
    pub kept: bool,
}

/// A watch in the list: its record, the vars in force, each rule's state.
#[derive(Debug, Clone)]
pub struct ListRow {
    pub rec: WatchRecord,
    /// The vars in force: the rule file's defaults overridden by the watch's own (None
    /// when not known: the watch's own are shown).
    pub vars: Option<BTreeMap<String, String>>,
    /// Each rule: live while the watch runs, else its last known state.
    pub rules: Vec<RuleCell>,
}

/// The vars in force, each `name=value` escaped; one the watch did not give (the rule
/// file's default) in italics, with a title saying so.
pub fn vars_cell(
    own: &BTreeMap<String, String>,
    in_force: Option<&BTreeMap<String, String>>,
) -> String {
    let vars = in_force.unwrap_or(own);
    vars.iter()
        .map(|(k, v)| {
            let text = esc(&format!("{k}={v}"));
            if own.contains_key(k) {
                format!(r#"<span class="var">{text}</span>"#)
            } else {
                format!(r#"<i class="var default" title="the rule file's default">{text}</i>"#)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The list of watches, running first (newest first), then the most recent others.
/// `running` and `done` are shown in the order given, each watch with its vars in force
/// and its rules' states; `older` finished watches are not shown.
pub fn list_html(running: &[ListRow], done: &[ListRow], older: usize, now: i64) -> String {
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
    h.push_str(r#"<table class="watches"><tr><th>watch</th><th>vars <i>(italic: the rule file's default)</i></th><th>rule file</th><th>state</th><th>rules</th></tr>"#);
    for row in running.iter().chain(done.iter()) {
        let rec = &row.rec;
        let ended = rec.state != WatchState::Running;
        let rules: String = row
            .rules
            .iter()
            .map(|r| state_badge(&r.name, &r.live, r.fired, no_state_text(ended, r.kept)))
            .collect();
        let _ = write!(
            h,
            r#"<tr class="w-{}"><td><a href="/watches/{}">{}</a></td><td class="vars">{}</td><td><code>{}</code></td><td>{}</td><td class="rules">{}</td></tr>"#,
            rec.state.as_str(),
            esc(&encode_path(&rec.def.id)),
            esc(&rec.def.id),
            vars_cell(&rec.def.vars, row.vars.as_ref()),
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
        r#"<h1>{}</h1><p class="outcome {}">{}{}</p>{}<p>watch <code>{}</code> · rule file <code>{}</code> · created {} · duration {}"#,
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
        held_html(rec, entry),
        esc(id),
        esc(&rec.def.rules),
        esc(&rfc3339_ms(rec.def.created_ms)),
        esc(&secs(rec.def.duration_ms as f64 / 1000.0)),
    );
    let in_force = entry.map(|e| &*e.record.vars);
    if !in_force.unwrap_or(&rec.def.vars).is_empty() {
        let _ = write!(
            h,
            r#" · vars <span class="vars">{}</span>"#,
            vars_cell(&rec.def.vars, in_force)
        );
    }
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
        // People's orders, each behind its confirmation step (`order_main`).
        h.push_str(r#"</p><p class="orders">on-call:"#);
        for (order, text) in [
            ("rollback", "roll back now…"),
            ("pause", "pause now…"),
            ("hold", "hold…"),
            ("release", "release the hold…"),
            ("extend", "extend…"),
            ("end", "end as healthy…"),
        ] {
            let _ = write!(
                h,
                r#" <a class="order" href="/watches/{}/order/{order}">{text}</a>"#,
                esc(&link)
            );
        }
    }
    h.push_str("</p>");
    if let Some(live) = live.filter(|l| !l.is_empty()) {
        h.push_str(r#"<p class="rules">"#);
        for (n, l) in &live {
            h.push_str(&state_badge(
                n,
                l,
                false,
                no_state_text(rec.state != WatchState::Running, true),
            ));
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

/// "held" while a person's hold is in force on a running watch: by whom, until when.
fn held_html(rec: &WatchRecord, entry: Option<&Entry>) -> String {
    match entry.and_then(|e| e.record.held.as_ref()) {
        Some((until, by)) if rec.state == WatchState::Running => format!(
            r#"<p class="held"><span class="badge warn held">⏸ held</span> by {} until {}: no automatic pause or rollback runs meanwhile; the watch keeps judging</p>"#,
            esc(by),
            esc(&rfc3339_ms(*until))
        ),
        _ => String::new(),
    }
}

/// The confirmation step of a person's order of watch `id` (`core::control::Order`
/// names): what it does, a required reason, a duration for `hold` and `extend`, and a
/// name field when the logged-in token has none (`named`).
pub fn order_main(id: &str, order: &str, csrf: &str, named: Option<&str>) -> String {
    let (title, what, button) = match order {
        "rollback" => ("Roll back", "The watch's rollback command runs now, once (if a rule or another person already started it, you are told who and when), and the watch ends.", "Yes, roll back now"),
        "pause" => ("Pause", "The watch's pause command runs now, once; the watch goes on judging.", "Yes, pause now"),
        "hold" => ("Hold", "No automatic pause or rollback runs until the hold ends (at most the watch's end); the watch keeps judging, and a rule that fires meanwhile is notified at once and acts when the hold ends if it still fires.", "Hold"),
        "release" => ("Release the hold of", "Automatic actions resume now: a rule that still fires acts at once.", "Release"),
        "extend" => ("Extend", "The watch lasts this much longer.", "Extend"),
        _ => ("End", "The watch ends now as healthy: your verdict, recorded as yours, not rollwatch's.", "End as healthy"),
    };
    let duration = if matches!(order, "hold" | "extend") {
        r#"<p><label>for <input name="for" required placeholder="15m"></label></p>"#
    } else {
        ""
    };
    let who = match named {
        Some(n) => format!("<p>Recorded as <strong>{}</strong>.</p>", esc(n)),
        None => r#"<p><label>your name <input name="by" required maxlength="64"></label></p>"#
            .to_string(),
    };
    format!(
        r#"<h1>{title} watch <code>{id}</code>?</h1><p>{what}</p><form method="post" action="/watches/{link}/order/{order}"><input type="hidden" name="csrf" value="{csrf}">{duration}<p><label>reason (required) <input name="reason" required maxlength="500" size="60"></label></p>{who}<button class="danger">{button}</button> <a href="/watches/{link}">no, back to the watch</a></form>"#,
        id = esc(id),
        link = esc(&encode_path(id)),
        order = esc(order),
        csrf = esc(csrf),
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

    fn ended(id: &str, outcome: &str, own: &[(&str, &str)]) -> WatchRecord {
        WatchRecord {
            def: crate::io::store::NewWatch {
                id: id.into(),
                rules: "checkout".into(),
                rules_text: String::new(),
                vars: own
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                duration_ms: 60_000,
                created_ms: 0,
                key: None,
            },
            after: None,
            state: WatchState::Finished,
            outcome: Some(outcome.into()),
            exit_code: Some(if outcome == "healthy" { 0 } else { 1 }),
            detail: None,
            finished_ms: Some(1),
        }
    }

    fn cell(name: &str, state: Option<RuleState>, fired: bool) -> RuleCell {
        RuleCell {
            name: name.into(),
            live: RuleLive {
                state,
                ..Default::default()
            },
            fired,
            kept: true,
        }
    }

    #[test]
    fn an_ended_watch_shows_its_vars_in_force_its_rules_last_states_and_its_severity() {
        let in_force: BTreeMap<String, String> = [
            ("service", "checkout"),
            ("note", "<script>alert(1)</script>\"x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rolled = ListRow {
            rec: ended("w-rb", "rolled_back", &[("service", "checkout")]),
            vars: Some(in_force),
            rules: vec![
                cell("errors", Some(RuleState::Breached), true),
                cell("latency", Some(RuleState::Ok), false),
                cell("notify", Some(RuleState::Ok), true),
                cell("slow", None, false),
            ],
        };
        let healthy = ListRow {
            rec: ended("w-ok", "healthy", &[]),
            vars: Some(BTreeMap::new()),
            rules: vec![cell("errors", Some(RuleState::Ok), false)],
        };
        let h = list_html(&[], &[rolled, healthy], 0, 0);
        let row = |id: &str| {
            h.split("<tr ")
                .find(|r| r.contains(&format!(">{id}</a>")))
                .unwrap_or_else(|| panic!("no row {id}: {h}"))
                .to_string()
        };
        let rb = row("w-rb");
        // The vars in force: the watch's own, and the rule file's default, marked and
        // escaped.
        assert!(
            rb.contains(r#"<span class="var">service=checkout</span>"#),
            "{rb}"
        );
        assert!(
            rb.contains(r#"<i class="var default" title="the rule file's default">note=&lt;script&gt;alert(1)&lt;/script&gt;&quot;x</i>"#),
            "{rb}"
        );
        assert!(!h.contains("<script"), "{h}");
        // Each rule's last state, by severity, with a mark beside the colour.
        for (class, text) in [
            ("bad fired", "errors: fired"),
            ("good ok", "latency: ok"),
            ("good ok", "notify: ok, fired earlier"),
            ("neutral nodata", "slow: not judged"),
        ] {
            assert!(
                rb.contains(&format!(r#"class="badge {class}""#)) && rb.contains(text),
                "{class} {text}: {rb}"
            );
        }
        // rolled_back and healthy do not wear the same badge, and neither relies on
        // colour alone.
        assert!(
            rb.contains(r#"<span class="badge bad outcome" title="rolled_back: failed"><span class="mark" aria-hidden="true">✖</span>rolled_back</span>"#),
            "{rb}"
        );
        let ok = row("w-ok");
        assert!(
            ok.contains(r#"<span class="badge good outcome" title="healthy: good"><span class="mark" aria-hidden="true">✔</span>healthy</span>"#),
            "{ok}"
        );
    }

    #[test]
    fn a_rule_the_store_kept_no_polls_of_is_not_called_unjudged() {
        let mut c = cell("r", None, false);
        c.kept = false;
        let b = state_badge(&c.name, &c.live, false, no_state_text(true, c.kept));
        assert!(b.contains("r: no breach recorded"), "{b}");
        let b = state_badge("r", &RuleLive::default(), false, no_state_text(false, true));
        assert!(b.contains("r: not polled yet"), "{b}");
    }

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
