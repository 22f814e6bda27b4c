//! report.html: one self-contained page (no scripts, no external assets) with an SVG
//! chart per rule: values over time, the threshold, pending and breached spans shaded,
//! and the action marked.

use super::{fmt_value, Record, RuleRecord};
use crate::core::events::{rfc3339_ms, secs, RuleState};
use std::fmt::Write as _;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const W: f64 = 760.0;
const H: f64 = 220.0;
const PAD_L: f64 = 70.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 14.0;
const PAD_B: f64 = 34.0;

fn chart(rule: &RuleRecord, r: &Record) -> String {
    let t0 = r.started_at;
    let t1 = r.ended_at.max(t0 + 1);
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in rule
        .samples
        .iter()
        .filter_map(|s| s.value)
        .filter(|v| v.is_finite())
        .chain(rule.info.above)
        .chain(rule.info.below)
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        hi = lo + lo.abs().max(1.0) * 0.1;
    }
    let span = hi - lo;
    let (lo, hi) = (
        (lo - span * 0.08).min(if lo >= 0.0 { 0.0 } else { lo }),
        hi + span * 0.12,
    );
    let x = |t: i64| PAD_L + (t - t0) as f64 / (t1 - t0) as f64 * (W - PAD_L - PAD_R);
    let y = |v: f64| PAD_T + (1.0 - (v - lo) / (hi - lo)) * (H - PAD_T - PAD_B);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(&format!("{} over time", rule.info.name))
    );
    let _ = write!(
        svg,
        r##"<rect x="{PAD_L}" y="{PAD_T}" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/>"##,
        W - PAD_L - PAD_R,
        H - PAD_T - PAD_B
    );
    // Shaded spans: pending (amber) and breached (red), from each poll to the next.
    for (i, s) in rule.samples.iter().enumerate() {
        let color = match s.state {
            RuleState::Pending { .. } => "#f5c542",
            RuleState::Breached => "#e5533d",
            RuleState::QueryError => "#b0b0b0",
            _ => continue,
        };
        let next = rule.samples.get(i + 1).map_or(r.ended_at, |n| n.t);
        let _ = write!(
            svg,
            r#"<rect class="span-{}" x="{:.1}" y="{PAD_T}" width="{:.1}" height="{}" fill="{color}" opacity="0.25"/>"#,
            match s.state {
                RuleState::Pending { .. } => "pending",
                RuleState::Breached => "breached",
                _ => "error",
            },
            x(s.t),
            (x(next) - x(s.t)).max(1.0),
            H - PAD_T - PAD_B
        );
    }
    // Thresholds.
    for (v, label) in [(rule.info.above, "above"), (rule.info.below, "below")] {
        if let Some(v) = v {
            let _ = write!(
                svg,
                r##"<line class="threshold" x1="{PAD_L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" font-size="11" fill="#c0392b" text-anchor="end">{label} {}</text>"##,
                W - PAD_R,
                W - PAD_R - 4.0,
                y(v) - 4.0,
                esc(&fmt_value(v)),
                y = y(v)
            );
        }
    }
    // Values: one polyline per run of consecutive samples with data.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for s in &rule.samples {
        match s.value.filter(|v| v.is_finite()) {
            Some(v) => runs.last_mut().expect("non-empty").push((x(s.t), y(v))),
            None => runs.push(Vec::new()),
        }
    }
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let pts: Vec<String> = run.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let _ = write!(
            svg,
            r##"<polyline class="values" points="{}" fill="none" stroke="#2c6fbb" stroke-width="2"/>"##,
            pts.join(" ")
        );
        if run.len() == 1 {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#2c6fbb"/>"##,
                run[0].0, run[0].1
            );
        }
    }
    // Actions taken because of this rule.
    for a in r.actions.iter().filter(|a| a.rule == rule.info.name) {
        let ax = x(a.started_at);
        // Near the right edge the label goes to the left of the line.
        let (tx, anchor) = if ax > W - 90.0 {
            (ax - 4.0, "end")
        } else {
            (ax + 4.0, "start")
        };
        let _ = write!(
            svg,
            r##"<line class="action" x1="{ax:.1}" x2="{ax:.1}" y1="{PAD_T}" y2="{}" stroke="#111" stroke-width="2"/><text x="{tx:.1}" y="{}" font-size="12" font-weight="bold" text-anchor="{anchor}">{}</text>"##,
            H - PAD_B,
            PAD_T + 14.0,
            esc(a.action)
        );
    }
    // Axes labels.
    let _ = write!(
        svg,
        r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
        PAD_L - 6.0,
        y(hi) + 10.0,
        esc(&fmt_value(hi))
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
        PAD_L - 6.0,
        y(lo),
        esc(&fmt_value(lo))
    );
    let _ = write!(
        svg,
        r##"<text x="{PAD_L}" y="{}" font-size="11" fill="#555">{}</text>"##,
        H - 12.0,
        esc(&rfc3339_ms(t0))
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="11" fill="#555" text-anchor="end">{}</text>"##,
        W - PAD_R,
        H - 12.0,
        esc(&format!("+{}", secs((t1 - t0) as f64 / 1000.0)))
    );
    svg.push_str("</svg>");
    svg
}

pub fn render(r: &Record) -> String {
    let (outcome, detail) = r.outcome_text();
    let subject = r.subject();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rollwatch {kind}: {subject} — {outcome}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:820px;color:#222;padding:0 1rem}}
.outcome{{font-size:1.3rem;padding:.6rem .9rem;border-radius:6px;background:#eef3fb}}
.outcome.bad{{background:#fdecea}} .outcome.good{{background:#eaf7ee}}
table{{border-collapse:collapse;width:100%;margin:.6rem 0}} td,th{{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.9rem}}
th{{background:#f3f3f3}} code,pre{{font-family:ui-monospace,monospace;font-size:.85rem}} pre{{background:#f6f6f6;padding:.5rem;overflow-x:auto}}
.legend span{{display:inline-block;margin-right:1rem;font-size:.8rem}} .sw{{display:inline-block;width:.9rem;height:.7rem;margin-right:.3rem;vertical-align:middle}}
</style></head><body>
<h1>rollwatch {kind}: {subject}</h1>
<p class="outcome {cls}"><strong>{outcome}</strong> — {detail}</p>
<p>{started} → {ended} ({ran} of {planned} planned) · rules <code>{file}</code> · Prometheus <code>{prom}</code>{dry}</p>
"#,
        kind = esc(r.kind),
        subject = esc(&subject),
        outcome = esc(outcome),
        cls = match outcome {
            "healthy" => "good",
            "rolled_back" | "paused" | "inconclusive" | "interrupted" => "",
            _ => "bad",
        },
        detail = esc(detail),
        started = esc(&rfc3339_ms(r.started_at)),
        ended = esc(&rfc3339_ms(r.ended_at)),
        ran = esc(&secs((r.ended_at - r.started_at).max(0) as f64 / 1000.0)),
        planned = esc(&secs(r.planned_duration_s)),
        file = esc(&r.rules_file),
        prom = esc(&r.prometheus),
        dry = if r.dry_run {
            " · <strong>dry run</strong>"
        } else {
            ""
        },
    );
    h.push_str(r##"<p class="legend"><span><i class="sw" style="background:#2c6fbb"></i>value</span><span><i class="sw" style="background:#c0392b"></i>threshold</span><span><i class="sw" style="background:#f5c542;opacity:.5"></i>pending</span><span><i class="sw" style="background:#e5533d;opacity:.5"></i>breached</span><span><i class="sw" style="background:#b0b0b0;opacity:.5"></i>query error</span><span><i class="sw" style="background:#111"></i>action</span></p>"##);
    for rule in &r.rules {
        let peak = rule
            .peak()
            .map_or("no data".to_string(), |(_, v)| fmt_value(v));
        let _ = write!(
            h,
            "<section class=\"rule\"><h2>{}</h2><p>{} · threshold <code>{}</code> for {} · peak {} · breached {} · action {}</p>",
            esc(&rule.info.name),
            esc(rule.info.description.as_deref().unwrap_or("")),
            esc(&rule.info.threshold),
            esc(&secs(rule.info.for_s)),
            esc(&peak),
            esc(&secs(rule.breached_ms(r.ended_at) as f64 / 1000.0)),
            esc(rule.info.action)
        );
        h.push_str(&chart(rule, r));
        let _ = write!(h, "<pre>{}</pre>", esc(&rule.info.query));
        if let Some(g) = &rule.info.graph_url {
            let _ = write!(h, "<p><a href=\"{}\">open in Prometheus</a></p>", esc(g));
        }
        h.push_str("</section>");
    }
    h.push_str("<h2>Actions</h2>");
    if r.actions.is_empty() {
        h.push_str("<p>None: no rollback or pause was needed.</p>");
    } else {
        h.push_str("<table><tr><th>time</th><th>action</th><th>rule</th><th>command</th><th>result</th><th>duration</th></tr>");
        for a in &r.actions {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&rfc3339_ms(a.started_at)),
                esc(a.action),
                esc(&a.rule),
                esc(&a.argv.join(" ")),
                esc(a.status.as_deref().unwrap_or("did not finish")),
                esc(&a.duration_s.map_or("-".to_string(), secs))
            );
        }
        h.push_str("</table>");
        for a in r.actions.iter().filter(|a| !a.output_tail.is_empty()) {
            let _ = write!(
                h,
                "<details><summary>output of the {} command</summary><pre>{}</pre></details>",
                esc(a.action),
                esc(&a.output_tail.join("\n"))
            );
        }
    }
    h.push_str("</body></html>\n");
    h
}
