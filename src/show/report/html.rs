//! report.html: one self-contained page (no scripts, no external assets) with an SVG
//! chart per rule: values over time as steps (a value holds until the next poll; no
//! data and query errors are gaps), the threshold, a judge's reference value as a
//! dashed line, pending and breached spans shaded, and the action marked. Axes have
//! round ticks (`nice_ticks`, `time_ticks`), in UTC and in the local time zone when it
//! is not UTC. The agent's page (`show/page.rs`) draws its charts with the same
//! `chart` and `CHART_CSS`, so the page and the report never disagree. Colours are
//! CSS classes, with a `prefers-color-scheme: dark` variant.

use super::{fmt_value, Record, RuleRecord};
use crate::core::events::{rfc3339_ms, secs, RuleState};
use jiff::tz::TimeZone;
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
const H: f64 = 236.0;
const PAD_L: f64 = 62.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 14.0;
const PAD_B: f64 = 46.0;

/// The chart's colours, light and dark; shared by report.html and the agent's page.
pub const CHART_CSS: &str = r#".chart{max-width:100%;height:auto}
.chart .bg{fill:#fafafa;stroke:#ccc}
.chart .grid{stroke:#e4e4e4;stroke-width:1}
.chart text{fill:#555;font-size:11px;font-family:system-ui,sans-serif}
.chart .values{fill:none;stroke:#2c6fbb;stroke-width:2}
.chart .dot{fill:#2c6fbb}
.chart .reference{fill:none;stroke:#8e44ad;stroke-width:1.6;stroke-dasharray:5 3}
.chart .threshold{stroke:#c0392b;stroke-dasharray:6 4}
.chart text.threshold-label{fill:#c0392b}
.chart .span-pending{fill:#f5c542;opacity:.3}
.chart .span-breached{fill:#e5533d;opacity:.3}
.chart .span-error{fill:#9a9a9a;opacity:.3}
.chart .action{stroke:#111;stroke-width:2}
.chart text.action-label{fill:#111;font-size:12px;font-weight:bold}
.legend span{display:inline-block;margin-right:1rem;font-size:.8rem}
.sw{display:inline-block;width:.9rem;height:.7rem;margin-right:.3rem;vertical-align:middle}
.sw.values{background:#2c6fbb}.sw.reference{background:#8e44ad}.sw.threshold{background:#c0392b}
.sw.pending{background:#f5c542;opacity:.6}.sw.breached{background:#e5533d;opacity:.6}
.sw.error{background:#9a9a9a;opacity:.6}.sw.action{background:#111}
@media (prefers-color-scheme:dark){
.chart .bg{fill:#1c1f24;stroke:#444}
.chart .grid{stroke:#33373d}
.chart text{fill:#b8bcc2}
.chart .values{stroke:#5aa2f0}.chart .dot{fill:#5aa2f0}
.chart .reference{stroke:#c39bd3}
.chart .threshold{stroke:#ff6b5b}.chart text.threshold-label{fill:#ff6b5b}
.chart .action{stroke:#f0f0f0}.chart text.action-label{fill:#f0f0f0}
.sw.values{background:#5aa2f0}.sw.reference{background:#c39bd3}.sw.threshold{background:#ff6b5b}.sw.action{background:#f0f0f0}
}
"#;

/// Round ticks for a value axis: a step of 1, 2 or 5 × 10^k giving at most about
/// `max` intervals, and the axis bounds rounded out to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    /// The tick values, from `lo` to `hi`.
    pub ticks: Vec<f64>,
    /// Decimals that show every tick exactly (0.05 → 2).
    pub decimals: usize,
}

impl Axis {
    /// A tick's label: no float noise (`0.1`, not `0.30000000000000004`).
    pub fn label(&self, v: f64) -> String {
        let s = format!("{:.*}", self.decimals, v);
        if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
            s[1..].to_string()
        } else {
            s
        }
    }
}

/// Round ticks covering `lo..=hi` (which need not be ordered or distinct).
pub fn nice_ticks(lo: f64, hi: f64, max: usize) -> Axis {
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
        // A flat line: a span around it (above 0 when it is 0).
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
        if lo >= 0.0 && lo - pad < 0.0 {
            hi += pad;
        } else {
            lo -= pad;
            hi += pad;
        }
    }
    let raw = (hi - lo) / max.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let k0 = (lo / step + 1e-9).floor();
    let k1 = (hi / step - 1e-9).ceil();
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    let round = |v: f64| {
        let p = 10f64.powi(decimals as i32 + 1);
        (v * p).round() / p
    };
    let ticks: Vec<f64> = (0..=((k1 - k0) as i64).max(1))
        .map(|i| round((k0 + i as f64) * step))
        .collect();
    Axis {
        lo: ticks[0],
        hi: *ticks.last().expect("at least two ticks"),
        step,
        ticks,
        decimals,
    }
}

/// Steps for time ticks, in seconds: round seconds for a short watch, then round minutes and hours.
const TIME_STEPS_S: [i64; 19] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800,
];

/// Tick times (unix ms) at round multiples of a step chosen so that `t0..=t1` holds at
/// most `max` of them; the step is returned too. Multiples of a minute are round
/// minutes in UTC (and in every time zone whose offset is whole minutes).
pub fn time_ticks(t0: i64, t1: i64, max: usize) -> (i64, Vec<i64>) {
    let span_s = ((t1 - t0).max(1) as f64 / 1000.0).ceil() as i64;
    let step_s = TIME_STEPS_S
        .iter()
        .copied()
        .find(|s| span_s / s < max.max(1) as i64)
        .unwrap_or(*TIME_STEPS_S.last().expect("steps"));
    let step = step_s * 1000;
    let first = t0.div_euclid(step) * step + if t0.rem_euclid(step) == 0 { 0 } else { step };
    let ticks = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= t1)
        .collect();
    (step_s, ticks)
}

/// A tick's time in `tz`: `HH:MM`, or `HH:MM:SS` when the step is under a minute.
pub fn time_label(ms: i64, step_s: i64, tz: &TimeZone) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let z = t.to_zoned(tz.clone());
    if step_s < 60 {
        z.strftime("%H:%M:%S").to_string()
    } else {
        z.strftime("%H:%M").to_string()
    }
}

/// The local time zone to label time in besides UTC: the system's, unless it is UTC.
pub fn local_zone() -> Option<TimeZone> {
    let tz = TimeZone::system();
    let name = tz.iana_name().unwrap_or("");
    if tz == TimeZone::UTC || matches!(name, "UTC" | "Etc/UTC" | "Etc/Universal" | "Zulu") {
        return None;
    }
    // A zone at UTC now and always (a fixed +00:00) adds nothing either.
    let now = jiff::Timestamp::now();
    if name.is_empty() && tz.to_offset(now) == jiff::tz::Offset::UTC {
        return None;
    }
    Some(tz)
}

/// What the dashed line is called: a `compare` judge's stable side, or a baseline.
pub fn reference_label(rule: &RuleRecord) -> &'static str {
    let t = rule.info.threshold.to_ascii_lowercase();
    if t.contains("stable") || t.contains("compare") || t.contains("canary") {
        "stable"
    } else {
        "baseline"
    }
}

/// An SVG path of steps: each `(t, value)` holds from `t` to the next point's `t`
/// (the last to `end`); `None` (no data, a query error) is a gap. Points alone (a
/// step of no width) come back separately, to be drawn as dots.
fn step_path(
    points: &[(i64, Option<f64>)],
    end: i64,
    x: impl Fn(i64) -> f64,
    y: impl Fn(f64) -> f64,
) -> (String, Vec<(f64, f64)>) {
    let mut d = String::new();
    let mut dots = Vec::new();
    let mut pen = false;
    for (i, (t, v)) in points.iter().enumerate() {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            pen = false;
            continue;
        };
        let next = points.get(i + 1).map_or(end, |n| n.0).max(*t);
        let (xa, xb, yv) = (x(*t), x(next), y(v));
        if pen {
            let _ = write!(d, "V{yv:.1}H{xb:.1}");
        } else {
            let _ = write!(d, "M{xa:.1},{yv:.1}H{xb:.1}");
        }
        let alone = !pen && points.get(i + 1).is_none_or(|n| n.1.is_none());
        if alone && xb - xa < 2.0 {
            dots.push((xa, yv));
        }
        pen = true;
    }
    (d, dots)
}

/// The chart of one rule, from the watch's start to its end (or its planned end, while
/// it runs); `tz` adds a second row of time labels.
pub fn chart(rule: &RuleRecord, r: &Record, tz: Option<&TimeZone>) -> String {
    let t0 = r.started_at;
    let planned_end = t0 + (r.planned_duration_s * 1000.0) as i64;
    let last = r.ended_at.max(t0);
    let t1 = if r.outcome.is_none() {
        last.max(planned_end)
    } else {
        last
    }
    .max(t0 + 1);
    let values = rule
        .samples
        .iter()
        .flat_map(|s| [s.value, s.reference])
        .flatten()
        .filter(|v| v.is_finite())
        .chain(rule.info.above)
        .chain(rule.info.below);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let axis = nice_ticks(lo, hi, 5);
    let (lo, hi) = (axis.lo, axis.hi);
    let (pw, ph) = (W - PAD_L - PAD_R, H - PAD_T - PAD_B);
    let x = |t: i64| PAD_L + (t.clamp(t0, t1) - t0) as f64 / (t1 - t0) as f64 * pw;
    let y = |v: f64| PAD_T + (1.0 - (v - lo) / (hi - lo)) * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(&format!("{} over time", rule.info.name))
    );
    let _ = write!(
        svg,
        r#"<rect class="bg" x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}"/>"#
    );
    // Value grid and labels.
    for v in &axis.ticks {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{PAD_L}" x2="{}" y1="{yv:.1}" y2="{yv:.1}"/><text class="ytick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - PAD_R,
            PAD_L - 6.0,
            y(*v) + 4.0,
            esc(&axis.label(*v)),
            yv = y(*v)
        );
    }
    // Time grid and labels: UTC, then the local zone.
    let (step_s, ticks) = time_ticks(t0, t1, 8);
    for t in &ticks {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{xt:.1}" x2="{xt:.1}" y1="{PAD_T}" y2="{}"/><text class="xtick" x="{xt:.1}" y="{}" text-anchor="middle">{}</text>"#,
            H - PAD_B,
            H - PAD_B + 14.0,
            time_label(*t, step_s, &TimeZone::UTC),
            xt = x(*t)
        );
        if let Some(tz) = tz {
            let _ = write!(
                svg,
                r#"<text class="xtick-local" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(*t),
                H - PAD_B + 28.0,
                time_label(*t, step_s, tz)
            );
        }
    }
    let _ = write!(svg, r#"<text x="4" y="{}">UTC</text>"#, H - PAD_B + 14.0);
    if let Some(tz) = tz {
        let name = tz.iana_name().unwrap_or("local");
        let _ = write!(
            svg,
            r#"<text x="4" y="{}">{}</text>"#,
            H - PAD_B + 28.0,
            esc(name.rsplit('/').next().unwrap_or(name))
        );
    }
    // Shaded spans: pending, breached and query errors, from each poll to the next.
    for (i, s) in rule.samples.iter().enumerate() {
        let class = match s.state {
            RuleState::Pending { .. } => "span-pending",
            RuleState::Breached => "span-breached",
            RuleState::QueryError => "span-error",
            _ => continue,
        };
        let next = rule.samples.get(i + 1).map_or(last, |n| n.t);
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{:.1}" y="{PAD_T}" width="{:.1}" height="{ph}"/>"#,
            x(s.t),
            (x(next) - x(s.t)).max(1.0),
        );
    }
    // Thresholds.
    for (v, label) in [(rule.info.above, "above"), (rule.info.below, "below")] {
        if let Some(v) = v {
            let _ = write!(
                svg,
                r#"<line class="threshold" x1="{PAD_L}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="threshold-label" x="{}" y="{:.1}" text-anchor="end">{label} {}</text>"#,
                W - PAD_R,
                W - PAD_R - 4.0,
                y(v) - 4.0,
                esc(&fmt_value(v)),
                y = y(v)
            );
        }
    }
    // The reference (baseline or stable side), dashed, under the values.
    if rule.samples.iter().any(|s| s.reference.is_some()) {
        let pts: Vec<(i64, Option<f64>)> =
            rule.samples.iter().map(|s| (s.t, s.reference)).collect();
        let (d, _) = step_path(&pts, last, x, y);
        let _ = write!(
            svg,
            r#"<path class="reference" d="{d}"><title>{}</title></path>"#,
            reference_label(rule)
        );
    }
    // Values as steps; gaps where a poll had no value.
    let pts: Vec<(i64, Option<f64>)> = rule.samples.iter().map(|s| (s.t, s.value)).collect();
    let (d, dots) = step_path(&pts, last, x, y);
    if !d.is_empty() {
        let _ = write!(svg, r#"<path class="values" d="{d}"/>"#);
    }
    for (cx, cy) in dots {
        let _ = write!(
            svg,
            r#"<circle class="dot" cx="{cx:.1}" cy="{cy:.1}" r="2.5"/>"#
        );
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
            r#"<line class="action" x1="{ax:.1}" x2="{ax:.1}" y1="{PAD_T}" y2="{}"/><text class="action-label" x="{tx:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
            H - PAD_B,
            PAD_T + 14.0,
            esc(a.action)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The chart legend; the reference line's entry only when a rule has one.
pub fn legend(r: &Record) -> String {
    let mut h = String::from(r#"<p class="legend"><span><i class="sw values"></i>value</span>"#);
    if let Some(rule) = r
        .rules
        .iter()
        .find(|rule| rule.samples.iter().any(|s| s.reference.is_some()))
    {
        let _ = write!(
            h,
            r#"<span><i class="sw reference"></i>{}</span>"#,
            reference_label(rule)
        );
    }
    h.push_str(r#"<span><i class="sw threshold"></i>threshold</span><span><i class="sw pending"></i>pending</span><span><i class="sw breached"></i>breached</span><span><i class="sw error"></i>query error</span><span><i class="sw action"></i>action</span></p>"#);
    h
}

/// The page around the charts (body, tables, outcome), light and dark; shared by
/// report.html and the agent's page.
pub const PAGE_CSS: &str = r#"body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:820px;color:#222;background:#fff;padding:0 1rem}
.outcome{font-size:1.3rem;padding:.6rem .9rem;border-radius:6px;background:#eef3fb}
.outcome.bad{background:#fdecea} .outcome.good{background:#eaf7ee} .outcome.warn{background:#fdf3d7} .outcome.neutral{background:#f0f0f0}
.mark{margin-right:.3em}
table{border-collapse:collapse;width:100%;margin:.6rem 0} td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.9rem}
th{background:#f3f3f3} code,pre{font-family:ui-monospace,monospace;font-size:.85rem} pre{background:#f6f6f6;padding:.5rem;overflow-x:auto}
a{color:#1f5fa8}
@media (prefers-color-scheme:dark){
body{color:#e4e6ea;background:#121417}
.outcome{background:#1d2a3d} .outcome.bad{background:#3d1f1c} .outcome.good{background:#1c3424} .outcome.warn{background:#3d3316} .outcome.neutral{background:#2a2d31}
td,th{border-color:#3a3f46} th{background:#22262c} pre{background:#1c1f24}
a{color:#7fb6f5}
}
"#;

/// One section per rule: its line of facts, its chart, its query.
pub fn rule_sections(r: &Record, tz: Option<&TimeZone>) -> String {
    let mut h = String::new();
    for rule in &r.rules {
        let peak = rule
            .peak()
            .map_or("no data".to_string(), |(_, v)| fmt_value(v));
        let _ = write!(
            h,
            "<section class=\"rule\"><h2>{}</h2><p>{}threshold <code>{}</code> for {} · peak {} · breached {} · action {}</p>",
            esc(&rule.info.name),
            rule.info
                .description
                .as_deref()
                .map(|d| format!("{} · ", esc(d)))
                .unwrap_or_default(),
            esc(&rule.info.threshold),
            esc(&secs(rule.info.for_s)),
            esc(&peak),
            esc(&secs(rule.breached_ms(r.ended_at) as f64 / 1000.0)),
            esc(rule.info.action)
        );
        h.push_str(&chart(rule, r, tz));
        let _ = write!(h, "<pre>{}</pre>", esc(&rule.info.query));
        if let Some(g) = &rule.info.graph_url {
            let _ = write!(h, "<p><a href=\"{}\">open in Prometheus</a></p>", esc(g));
        }
        h.push_str("</section>");
    }
    h
}

/// The actions table and each command's output tail, after what people ordered.
pub fn actions_html(r: &Record) -> String {
    let mut h = String::new();
    if !r.before_deploy.is_empty() {
        h.push_str("<h2>Breaches before the deploy</h2><ul>");
        for p in &r.before_deploy {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul>");
    }
    if !r.people.is_empty() {
        h.push_str("<h2>Orders from people</h2><ul>");
        for p in &r.people {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Actions</h2>");
    if r.actions.is_empty() {
        h.push_str("<p>None: no rollback or pause was needed.</p>");
        return h;
    }
    h.push_str("<table><tr><th>time</th><th>action</th><th>rule</th><th>command</th><th>result</th><th>duration</th></tr>");
    for a in &r.actions {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&rfc3339_ms(a.started_at)),
            esc(a.action),
            esc(&a.rule),
            esc(&a.argv.join(" ")),
            esc(a.status.as_deref().unwrap_or("running")),
            esc(&a.duration_s.map_or("-".to_string(), secs))
        );
    }
    h.push_str("</table>");
    for a in r.actions.iter().filter(|a| !a.output_tail.is_empty()) {
        let _ = write!(
            h,
            "<details open><summary>output of the {} command</summary><pre>{}</pre></details>",
            esc(a.action),
            esc(&a.output_tail.join("\n"))
        );
    }
    h
}

pub fn render(r: &Record) -> String {
    let (outcome, detail) = r.outcome_text();
    let subject = r.subject();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark"><title>rollwatch {kind}: {subject} — {outcome}</title>
<style>
{page_css}{chart_css}</style></head><body>
<h1>rollwatch {kind}: {subject}</h1>
<p class="outcome {cls}">{mark}<strong>{outcome}</strong> — {detail}</p>
<p>{started} → {ended} ({ran} of {planned} planned) · rules <code>{file}</code> · Prometheus <code>{prom}</code>{dry}</p>
"#,
        page_css = PAGE_CSS,
        chart_css = CHART_CSS,
        kind = esc(r.kind),
        subject = esc(&subject),
        outcome = esc(outcome),
        cls = outcome_class(outcome),
        mark = outcome_severity(outcome).mark_html(),
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
    h.push_str(&legend(r));
    h.push_str(&rule_sections(r, local_zone().as_ref()));
    h.push_str(&actions_html(r));
    h.push_str("</body></html>\n");
    h
}

/// How a badge or an outcome box reads, by severity: its CSS class (the colour) and a
/// mark that says the same without colour (for people who do not see the colour, and
/// in print). Outcomes (`outcome_severity`) and the page's rule states
/// (`show::page::state_badge`) are both shown through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Healthy, ok.
    Good,
    /// Still going: running.
    Info,
    /// Nothing to judge: cancelled, no data, not polled.
    Neutral,
    /// Needs a look: paused, inconclusive, interrupted, pending.
    Warn,
    /// Failed: rolled back, an action that failed or whose effect is unknown, fired.
    Bad,
}

impl Severity {
    /// The CSS class: `good`, `info`, `neutral`, `warn` or `bad`.
    pub fn class(self) -> &'static str {
        match self {
            Severity::Good => "good",
            Severity::Info => "info",
            Severity::Neutral => "neutral",
            Severity::Warn => "warn",
            Severity::Bad => "bad",
        }
    }

    /// The mark shown before the text, so that the colour is never the only sign.
    pub fn mark(self) -> &'static str {
        match self {
            Severity::Good => "✔",
            Severity::Info => "▶",
            Severity::Neutral => "○",
            Severity::Warn => "⚠",
            Severity::Bad => "✖",
        }
    }

    /// The severity in words (a badge's title says it).
    pub fn word(self) -> &'static str {
        match self {
            Severity::Good => "good",
            Severity::Info => "in progress",
            Severity::Neutral => "nothing judged",
            Severity::Warn => "needs a look",
            Severity::Bad => "failed",
        }
    }

    /// `<span class="mark" aria-hidden="true">✖</span>`: the mark for the eye (the
    /// text beside it says it for a screen reader).
    pub fn mark_html(self) -> String {
        format!(
            r#"<span class="mark" aria-hidden="true">{}</span>"#,
            self.mark()
        )
    }
}

/// The severity of an outcome as stored (`OutcomeKind::name`), or `running`, or
/// `unknown` (a report whose watch did not finish): the one place it is decided, for
/// report.html's outcome box and the agent's page. An outcome no build wrote is bad.
pub fn outcome_severity(outcome: &str) -> Severity {
    use crate::run::watch::OutcomeKind as K;
    if outcome == "running" {
        return Severity::Info;
    }
    match K::parse(outcome) {
        Some(K::Healthy | K::DeclaredHealthy) => Severity::Good,
        Some(K::Cancelled | K::Superseded) => Severity::Neutral,
        Some(K::Paused | K::Inconclusive | K::Interrupted) => Severity::Warn,
        Some(
            K::RolledBack
            | K::RollbackFailed
            | K::PauseFailed
            | K::RollbackUnknown
            | K::PauseUnknown
            | K::QueryRejected
            | K::Invalid,
        )
        | None => Severity::Bad,
    }
}

/// The CSS class of an outcome (`outcome_severity`).
pub fn outcome_class(outcome: &str) -> &'static str {
    outcome_severity(outcome).class()
}

#[cfg(test)]
mod tests;
