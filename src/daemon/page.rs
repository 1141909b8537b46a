//! `GET /`: the status page. One self-contained HTML page, no script, no
//! external asset (it must work air-gapped and behind any proxy); it refreshes
//! itself every 10 s. Pure: data in, HTML out.
//!
//! Written with `format!` and one escape function rather than a template
//! engine: it is one small page, and a template crate would add a build-time
//! code generator for ~100 lines of markup.

use std::fmt::Write;

use super::history::RunSummary;
use crate::validate::Status;

/// One configured target as the page shows it.
pub struct TargetRow {
    pub name: String,
    pub model: String,
    pub url: String,
    /// "every 30s (+ up to 5s jitter)" or "on trigger only".
    pub schedule: String,
    pub running: bool,
    pub last: Option<RunSummary>,
}

pub struct Page<'a> {
    pub version: &'a str,
    pub uptime_s: u64,
    pub targets: Vec<TargetRow>,
    pub recent: Vec<RunSummary>,
    pub now: jiff::Timestamp,
}

/// `&`, `<`, `>`, `"` and `'` as entities: every configured or measured string goes through it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn badge(status: Option<Status>) -> String {
    match status {
        Some(Status::Pass) => r#"<span class="badge pass">PASS</span>"#.into(),
        Some(Status::Warn) => r#"<span class="badge warn">WARN</span>"#.into(),
        Some(Status::Skip) => r#"<span class="badge skip">SKIP</span>"#.into(),
        None => r#"<span class="badge none">none</span>"#.into(),
    }
}

fn result_badge(result: &str) -> String {
    let class = match result {
        "success" => "pass",
        "warn" => "warn",
        "failed" => "fail",
        _ => "skip",
    };
    format!(r#"<span class="badge {class}">{}</span>"#, escape(result))
}

fn ago(now: jiff::Timestamp, t: jiff::Timestamp) -> String {
    let s = now.duration_since(t).as_secs().max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:2em}th,td{border-bottom:1px solid #ddd;padding:.35em .7em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;font-size:.85em;font-weight:600;margin:.1em}\
.pass{background:#d4edda;color:#155724}.warn{background:#fff3cd;color:#856404}.fail{background:#f8d7da;color:#721c24}\
.skip,.none{background:#e2e3e5;color:#383d41}.check{white-space:nowrap}code{font-size:.9em}";

pub fn render(p: &Page<'_>) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>llm-loadtest</title><style>{STYLE}</style></head><body>
<h1>llm-loadtest</h1><p>version {} · up {} s · <a href="/metrics">/metrics</a> · <a href="/api/v1/runs">/api/v1/runs</a></p>
<h2>Targets</h2><table id="targets"><tr><th>Target</th><th>Model</th><th>Schedule</th><th>State</th><th>Last run</th><th>Verdict</th><th>Checks</th></tr>
"#,
        escape(p.version),
        p.uptime_s
    );
    for t in &p.targets {
        let state = if t.running { "running" } else { "idle" };
        let (last, verdict, checks) = match &t.last {
            None => ("never".to_owned(), badge(None), String::new()),
            Some(r) => {
                let last = format!(
                    r#"<a href="/api/v1/runs/{id}">{when}</a> {res}"#,
                    id = escape(&r.run_id),
                    when = ago(p.now, r.ended_at),
                    res = result_badge(r.result)
                );
                let checks = r
                    .checks
                    .iter()
                    .map(|(c, s)| format!(r#"<span class="check">{} {}</span>"#, escape(c), badge(Some(*s))))
                    .collect::<Vec<_>>()
                    .join(" ");
                let verdict = match (&r.error, r.verdict) {
                    (Some(e), _) => format!(r#"{} <small>{}</small>"#, badge(None), escape(e)),
                    (None, v) => badge(v),
                };
                (last, verdict, checks)
            }
        };
        let _ = writeln!(
            h,
            r#"<tr class="target" data-target="{name}"><td><b>{name}</b><br><code>{url}</code></td><td>{model}</td><td>{sched}</td><td>{state}</td><td>{last}</td><td class="verdict">{verdict}</td><td class="checks">{checks}</td></tr>"#,
            name = escape(&t.name),
            url = escape(&t.url),
            model = escape(&t.model),
            sched = escape(&t.schedule),
        );
    }
    h.push_str("</table>\n<h2>Recent runs</h2><table id=\"runs\"><tr><th>Run</th><th>Target</th><th>Trigger</th><th>Started (UTC)</th><th>Duration</th><th>Completed / failed</th><th>Result</th><th>Verdict</th></tr>\n");
    if p.recent.is_empty() {
        h.push_str("<tr><td colspan=\"8\">no run yet</td></tr>\n");
    }
    for r in &p.recent {
        let _ = writeln!(
            h,
            r#"<tr class="run"><td><a href="/api/v1/runs/{id}"><code>{id}</code></a></td><td>{target}</td><td>{trigger}</td><td>{started}</td><td>{dur:.1} s</td><td>{ok} / {failed}</td><td>{res}</td><td>{verdict}</td></tr>"#,
            id = escape(&r.run_id),
            target = escape(&r.target),
            trigger = escape(&r.trigger),
            started = r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            dur = r.duration_s,
            ok = r.completed,
            failed = r.failed,
            res = result_badge(r.result),
            verdict = badge(r.verdict),
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(target: &str, verdict: Option<Status>) -> RunSummary {
        RunSummary {
            run_id: "20261123T100000Z-abc123".into(),
            target: target.into(),
            trigger: "schedule".into(),
            started_at: jiff::Timestamp::from_second(1_790_000_000).unwrap(),
            ended_at: jiff::Timestamp::from_second(1_790_000_010).unwrap(),
            result: "warn",
            verdict,
            checks: vec![("request_count".into(), Status::Pass), ("ttft_mean".into(), Status::Warn)],
            completed: 40,
            failed: 0,
            duration_s: 9.5,
            error: None,
            persisted: true,
        }
    }

    #[test]
    fn shows_verdicts_and_escapes_names() {
        let page = Page {
            version: "0.1.0",
            uptime_s: 5,
            targets: vec![
                TargetRow {
                    name: "a<b>".into(),
                    model: "m\"x".into(),
                    url: "http://127.0.0.1:8000".into(),
                    schedule: "on trigger only".into(),
                    running: true,
                    last: Some(summary("a<b>", Some(Status::Warn))),
                },
                TargetRow {
                    name: "fresh".into(),
                    model: "m".into(),
                    url: "http://127.0.0.1:8001".into(),
                    schedule: "every 30s".into(),
                    running: false,
                    last: None,
                },
            ],
            recent: vec![summary("a<b>", Some(Status::Warn))],
            now: jiff::Timestamp::from_second(1_790_000_070).unwrap(),
        };
        let h = render(&page);
        assert!(h.contains("a&lt;b&gt;") && !h.contains("a<b>"), "{h}");
        assert!(h.contains("m&quot;x"));
        assert!(h.contains(r#"ttft_mean <span class="badge warn">WARN</span>"#));
        assert!(h.contains(r#"request_count <span class="badge pass">PASS</span>"#));
        assert!(h.contains("60 s ago"));
        assert!(h.contains("running") && h.contains("never"));
        assert!(h.contains(r#"href="/api/v1/runs/20261123T100000Z-abc123""#));
    }
}
