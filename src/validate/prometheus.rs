//! The Prometheus section of a validation: from two /metrics snapshots (and an
//! idle window before them) and the client's figures to verdicts. Pure: the
//! live burst and `validate DIR` both reach it through [`super::assess`].

use super::{ClientFigures, Figure, Section, ServerFigures, ServerInfo, Tolerances, prometheus_checks};
use crate::promtext::Exposition;
use crate::record::Outcome;
use crate::server::GaugePeaks;
use crate::server::catalogue::{self, background, model_filter, server_figures};
use crate::stats::ClientStats;

/// What the client saw, in the units the server checks compare.
pub fn client_figures(stats: &ClientStats) -> ClientFigures {
    // Requests the server may have started but never finished (vLLM counts
    // their tokens, not them): everything that failed after the connection.
    // The statistics count every measured failure by kind already.
    let aborted = [
        Outcome::Timeout,
        Outcome::FirstTokenTimeout,
        Outcome::StallTimeout,
        Outcome::LineTooLong,
        Outcome::StreamCut,
        Outcome::Cancelled,
    ]
    .iter()
    .filter_map(|o| stats.errors.get(o.as_label()))
    .sum();
    ClientFigures {
        completed: stats.completed,
        aborted,
        prompt_tokens: stats.total_input_tokens,
        output_tokens: stats.total_output_tokens,
        tokens_from_usage: stats.tokens_from_usage,
        ttft_mean: stats.ttft_ms.mean,
        e2e_mean_ms: stats.e2el_ms.mean,
        ttft_client_bound: stats.client_bound.ttft,
    }
}

/// The inputs of the Prometheus checks of one burst.
pub struct PrometheusInputs<'a> {
    pub before: Result<&'a Exposition, String>,
    pub after: Result<&'a Exposition, String>,
    pub idle_start: Option<&'a Exposition>,
    pub idle_window_s: f64,
    /// From the before to the after snapshot: background traffic is extrapolated over it.
    pub counted_window_s: f64,
    pub model: &'a str,
    pub peaks: GaugePeaks,
}

fn all_skipped(reason: &str) -> ServerFigures {
    let r = || Err(reason.to_owned());
    ServerFigures {
        finished_requests: r(),
        finished_prompt_tokens: r(),
        finished_generation_tokens: r(),
        prompt_tokens_total: r(),
        generation_tokens_total: r(),
        ttft_mean_s: r(),
        e2e_mean_s: r(),
    }
}

fn subtract(f: Figure, amount: f64) -> Figure {
    f.map(|v| (v - amount).max(0.0))
}

/// The Prometheus section and the server-only figures.
pub fn evaluate(inputs: &PrometheusInputs<'_>, client: &ClientFigures, tol: &Tolerances) -> (Section, ServerInfo) {
    let mut info = ServerInfo::default();
    let (before, after) = match (&inputs.before, &inputs.after) {
        (Err(e), _) => return (Section::skipped(format!("no /metrics snapshot before the burst: {e}")), info),
        (_, Err(e)) => return (Section::skipped(format!("no /metrics snapshot after the burst: {e}")), info),
        (Ok(b), Ok(a)) => (*b, *a),
    };
    info.version_hint = catalogue::implied_vllm_version(after);
    for (when, e) in [("before", before), ("after", after)] {
        if e.looks_cut() {
            let reason = format!(
                "the /metrics snapshot {when} the burst looks cut (its last line has no newline): its figures are not judged"
            );
            return (Section::skipped(reason), info);
        }
    }
    if !catalogue::has_vllm_metrics(before) || !catalogue::has_vllm_metrics(after) {
        let reason = "the server exports no vllm: metrics (not a vLLM server, or vLLM run with --disable-log-stats): nothing to cross-check";
        return (Section::skipped(reason), info);
    }
    let (filter, mut notes) = {
        let (f, note) = model_filter(after, inputs.model);
        (f, note.into_iter().collect::<Vec<_>>())
    };
    info.replicas = catalogue::replica_shares(before, after, &filter);
    if let Some(mut restart) = catalogue::restart_between(before, after, &filter) {
        let restarted: Vec<&str> =
            info.replicas.iter().filter(|r| r.restarted.is_some()).map(|r| r.replica.as_str()).collect();
        if restarted.len() > 1 {
            restart.push_str(&format!("; replicas that restarted: {}", restarted.join(", ")));
        }
        let mut section = Section::from_comparisons(prometheus_checks(client, &all_skipped(&restart), tol), None);
        section.reason = Some(restart);
        return (section, info);
    }
    let (mut figures, server_info) = server_figures(before, after, &filter);
    info = ServerInfo { version_hint: info.version_hint, replicas: info.replicas, ..server_info };
    let peaks = inputs.peaks;
    info.peak_running = peaks.running;
    info.peak_waiting = peaks.waiting;
    info.peak_kv_cache_usage_pct = peaks.kv_cache_usage.map(|f| f * 100.0);

    let bg = inputs.idle_start.and_then(|s| background(s, before, inputs.idle_window_s, &filter));
    info.background_request_rate = bg.map(|b| b.finished_requests_per_s);
    let mut bg_note = None;
    match bg {
        None if inputs.idle_start.is_some() => {
            notes.push("background traffic could not be measured (the idle-window snapshots do not compare)".into());
        }
        Some(b) if !b.is_quiet() => {
            // Assumes the other clients kept the same rate during the burst: an
            // estimate, so every count check says it was applied.
            let reqs = b.finished_requests_per_s * inputs.counted_window_s;
            figures.finished_requests = subtract(figures.finished_requests, reqs);
            figures.prompt_tokens_total =
                subtract(figures.prompt_tokens_total, b.prompt_tokens_per_s * inputs.counted_window_s);
            figures.generation_tokens_total =
                subtract(figures.generation_tokens_total, b.generation_tokens_per_s * inputs.counted_window_s);
            let note = format!(
                "other clients' traffic before the burst ({:.2} req/s over {:.1} s): ~{reqs:.0} requests and their tokens subtracted from the server's counts",
                b.finished_requests_per_s, b.window_s
            );
            notes.push(note.clone());
            bg_note = Some(note);
        }
        _ => {}
    }
    let mut comparisons = prometheus_checks(client, &figures, tol);
    if let Some(n) = bg_note {
        for c in comparisons.iter_mut().filter(|c| !super::is_latency_check(&c.check)) {
            c.reason = Some(match c.reason.take() {
                Some(r) => format!("{r}; background subtracted"),
                None => n.clone(),
            });
        }
    }
    let reason = (!notes.is_empty()).then(|| notes.join("; "));
    (Section::from_comparisons(comparisons, reason), info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promtext::parse;
    use crate::validate::Status;

    fn expo(success: f64, prompt: f64, generation: f64, ttft_sum: f64, ttft_count: f64) -> Exposition {
        parse(&format!(
            "# TYPE vllm:request_success_total counter\n\
             vllm:request_success_total{{finished_reason=\"length\",model_name=\"m\"}} {success}\n\
             vllm:request_success_total{{finished_reason=\"abort\",model_name=\"m\"}} 0\n\
             # TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{{model_name=\"m\"}} {prompt}\n\
             # TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{model_name=\"m\"}} {generation}\n\
             # TYPE vllm:request_generation_tokens histogram\n\
             vllm:request_generation_tokens_bucket{{le=\"+Inf\",model_name=\"m\"}} {success}\n\
             vllm:request_generation_tokens_sum{{model_name=\"m\"}} {generation}\n\
             vllm:request_generation_tokens_count{{model_name=\"m\"}} {success}\n\
             # TYPE vllm:time_to_first_token_seconds histogram\n\
             vllm:time_to_first_token_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} {ttft_count}\n\
             vllm:time_to_first_token_seconds_sum{{model_name=\"m\"}} {ttft_sum}\n\
             vllm:time_to_first_token_seconds_count{{model_name=\"m\"}} {ttft_count}\n"
        ))
    }

    fn client() -> ClientFigures {
        ClientFigures {
            completed: 10,
            prompt_tokens: 100,
            output_tokens: 200,
            tokens_from_usage: true,
            ttft_mean: Some(52.0),
            ..Default::default()
        }
    }

    fn inputs<'a>(b: &'a Exposition, a: &'a Exposition, idle: Option<&'a Exposition>) -> PrometheusInputs<'a> {
        PrometheusInputs {
            before: Ok(b),
            after: Ok(a),
            idle_start: idle,
            idle_window_s: 1.0,
            counted_window_s: 2.0,
            model: "m",
            peaks: GaugePeaks::default(),
        }
    }

    fn status(s: &Section, check: &str) -> Status {
        s.comparisons.iter().find(|c| c.check == check).unwrap().status
    }

    #[test]
    fn a_snapshot_cut_mid_line_is_not_judged() {
        let b = expo(5.0, 50.0, 100.0, 0.25, 5.0);
        let whole = expo(15.0, 150.0, 300.0, 0.77, 15.0);
        // The same text cut inside its last sample line (its last character lost).
        let text = whole.render();
        let text = text.trim_end();
        let cut = parse(&text[..text.len() - 1]);
        assert!(cut.looks_cut());
        let (s, _) = evaluate(&inputs(&b, &cut, None), &client(), &Tolerances::default());
        assert_eq!(s.status, Status::Skip, "{s:?}");
        assert!(s.reason.as_deref().unwrap().contains("looks cut"), "{s:?}");
        let (s, _) = evaluate(&inputs(&b, &whole, None), &client(), &Tolerances::default());
        assert_ne!(s.status, Status::Skip);
    }

    #[test]
    fn a_malformed_family_skips_its_checks_only() {
        let b = expo(5.0, 50.0, 100.0, 0.25, 5.0);
        let a = expo(15.0, 150.0, 300.0, 0.75, 15.0);
        // The after snapshot prints the success counter's series twice (the second value differs):
        // which one is true is unknown, so the request count is not judged; tokens still are.
        let text = a.render().replacen(
            "# TYPE vllm:prompt_tokens_total",
            "vllm:request_success_total{finished_reason=\"length\",model_name=\"m\"} 99\n# TYPE vllm:prompt_tokens_total",
            1,
        );
        let dup = parse(&text);
        assert!(dup.line_errors.iter().any(|e| e.message.contains("duplicate series")), "{:?}", dup.line_errors);
        let (s, _) = evaluate(&inputs(&b, &dup, None), &client(), &Tolerances::default());
        let rc = s.comparisons.iter().find(|c| c.check == "request_count").unwrap();
        assert_eq!(rc.status, Status::Skip, "{s:#?}");
        assert!(rc.reason.as_deref().unwrap().contains("duplicate series"), "{rc:?}");
        assert_eq!(status(&s, "prompt_tokens"), Status::Pass, "{s:#?}");
        // Without the duplicate the same figures pass.
        let (s, _) = evaluate(&inputs(&b, &a, None), &client(), &Tolerances::default());
        assert_eq!(status(&s, "request_count"), Status::Pass, "{s:#?}");
    }

    #[test]
    fn a_clean_burst_passes() {
        let b = expo(5.0, 50.0, 100.0, 0.25, 5.0);
        let a = expo(15.0, 150.0, 300.0, 0.75, 15.0);
        let (s, info) = evaluate(&inputs(&b, &a, Some(&b)), &client(), &Tolerances::default());
        assert_eq!(s.status, Status::Pass, "{s:#?}");
        assert_eq!(status(&s, "request_count"), Status::Pass);
        assert_eq!(status(&s, "ttft_mean"), Status::Pass);
        assert_eq!(info.background_request_rate, Some(0.0));
    }

    #[test]
    fn background_traffic_is_reported_and_subtracted() {
        // 2 req/s of other traffic in the idle window; the burst ran 2 s, so
        // the server counted 4 more requests than the client sent.
        let idle = expo(3.0, 30.0, 60.0, 0.1, 3.0);
        let b = expo(5.0, 50.0, 100.0, 0.25, 5.0);
        let a = expo(19.0, 170.0, 340.0, 0.95, 19.0);
        let (s, info) = evaluate(&inputs(&b, &a, Some(&idle)), &client(), &Tolerances::default());
        assert_eq!(info.background_request_rate, Some(2.0));
        assert_eq!(status(&s, "request_count"), Status::Pass, "{s:#?}");
        assert!(s.reason.as_deref().unwrap().contains("other clients"));
        let rc = s.comparisons.iter().find(|c| c.check == "request_count").unwrap();
        assert!(rc.reason.as_deref().unwrap().contains("subtracted"));
    }

    #[test]
    fn missing_snapshots_and_non_vllm_servers_skip() {
        let a = expo(1.0, 1.0, 1.0, 0.1, 1.0);
        let mut i = inputs(&a, &a, None);
        i.before = Err("connection refused".into());
        let (s, _) = evaluate(&i, &client(), &Tolerances::default());
        assert_eq!(s.status, Status::Skip);
        assert!(s.reason.unwrap().contains("connection refused"));
        let plain = parse("http_requests_total 3\n");
        let (s, _) = evaluate(&inputs(&plain, &plain, None), &client(), &Tolerances::default());
        assert_eq!(s.status, Status::Skip);
        assert!(s.reason.unwrap().contains("no vllm: metrics"));
    }

    #[test]
    fn a_restart_mid_burst_skips_instead_of_warning() {
        let b = expo(500.0, 5000.0, 10000.0, 25.0, 500.0);
        let a = expo(10.0, 100.0, 200.0, 0.5, 10.0);
        let (s, _) = evaluate(&inputs(&b, &a, None), &client(), &Tolerances::default());
        assert_eq!(s.status, Status::Skip, "{s:#?}");
        assert!(s.reason.as_deref().unwrap().contains("restarted"));
        assert_eq!(s.comparisons.len(), 5);
        assert!(
            s.comparisons.iter().all(|c| c.status == Status::Skip && c.reason.as_deref().unwrap().contains("reset"))
        );
    }
}
