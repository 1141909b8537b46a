//! The exporter against real run results (one burst against the in-process simulator, shared by
//! every test) and hand-edited copies of them; the encoding is read back with `promtext::parse`.

use std::sync::OnceLock;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::cli::{Cli, Command};
use crate::promtext::{self, Exposition, Labels};
use crate::record::Outcome;
use crate::sim::{LatencyDist, LogSink, SimConfig};
use crate::validate::{DockerLogsValidation, Section, Status, compare};

const VERSION: &str = "9.9.9-test";

/// One clean burst against the simulator (validation included), run once per test binary.
fn sim_result() -> &'static RunResult {
    static RESULT: OnceLock<RunResult> = OnceLock::new();
    RESULT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let config = SimConfig {
                ttft: LatencyDist::Fixed(std::time::Duration::from_millis(30)),
                itl: LatencyDist::Fixed(std::time::Duration::from_millis(3)),
                log_sink: LogSink::Discard,
                ..SimConfig::default()
            };
            let sim = crate::sim::start(config, ([127, 0, 0, 1], 0).into()).await.unwrap();
            let url = sim.base_url();
            let argv = [
                "llm-loadtest",
                "run",
                "--target",
                &url,
                "--model",
                "sim-model",
                "--quiet",
                "--requests",
                "24",
                "--concurrency",
                "4",
                "--max-tokens",
                "8",
                "--idle-window",
                "300ms",
                // The exporter is under test, not the verdict: a loose tolerance keeps a
                // loaded test machine from turning the TTFT check into a WARN.
                "--tolerance",
                "0.5",
            ];
            let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
            let p = crate::run::prepare(&args, &url::Url::parse(&url).unwrap(), "sim-model", "t", None).unwrap();
            let r = crate::burst::run(p, "t".into(), CancellationToken::new(), None).await;
            sim.shutdown().await;
            r
        })
    })
}

fn targets() -> Vec<(String, String)> {
    vec![("a".into(), "sim-model".into()), ("b".into(), "other/model".into())]
}

fn exporter() -> Exporter {
    Exporter::new(&targets(), VERSION)
}

fn parsed(e: &Exporter) -> Exposition {
    let text = e.encode();
    let x = promtext::parse(&text);
    assert!(x.line_errors.is_empty(), "{:?}\n{text}", x.line_errors);
    x
}

/// The value of the sample `name{labels}` (labels exactly), if present.
fn get(x: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want = Labels::from_pairs(labels.iter().copied());
    let mut found = x.families.iter().flat_map(|f| &f.samples).filter(|s| &*s.name == name && s.labels == want);
    let v = found.next().map(|s| s.value);
    assert!(found.next().is_none(), "duplicate series {name}{labels:?}");
    v
}

fn val(x: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    get(x, name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Every sample: name, labels, value.
fn samples_of(x: &Exposition) -> Vec<(String, Labels, f64)> {
    x.families.iter().flat_map(|f| &f.samples).map(|s| (s.name.to_string(), s.labels.clone(), s.value)).collect()
}

#[test]
fn exporter_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Exporter>();
}

#[test]
fn content_type_and_format() {
    assert_eq!(Exporter::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let e = exporter();
    let text = e.encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(promtext::parse(&text).format, promtext::Format::OpenMetrics);
    let prom_accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(e.encode_for_accept(Some(prom_accept)).0, Exporter::CONTENT_TYPE);
    let (ct, body) = e.encode_for_accept(None);
    assert_eq!(ct, Exporter::TEXT_CONTENT_TYPE);
    assert!(!body.contains("# EOF") && body.contains("# TYPE llm_loadtest_runs_total counter"), "{body}");
    assert_eq!(e.encode_for_accept(Some("text/plain")).0, Exporter::TEXT_CONTENT_TYPE);
}

#[test]
fn never_ran_targets_have_explicit_series() {
    let x = parsed(&exporter());
    assert_eq!(val(&x, "llm_loadtest_build_info", &[("version", VERSION)]), 1.0);
    for (t, model) in [("a", "sim-model"), ("b", "other/model")] {
        assert_eq!(val(&x, "llm_loadtest_target_info", &[("target", t), ("model", model)]), 1.0);
        assert_eq!(val(&x, "llm_loadtest_running", &[("target", t)]), 0.0);
        for result in RESULTS {
            assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", t), ("result", result)]), 0.0);
        }
        for reason in FAILURE_REASONS {
            assert_eq!(val(&x, "llm_loadtest_run_failures_total", &[("target", t), ("reason", reason)]), 0.0);
        }
        for o in Outcome::ALL {
            assert_eq!(val(&x, "llm_loadtest_requests_total", &[("target", t), ("outcome", o.as_label())]), 0.0);
        }
        for name in [
            "llm_loadtest_prompt_tokens_total",
            "llm_loadtest_output_tokens_total",
            "llm_loadtest_log_error_events_total",
            "llm_loadtest_log_warning_lines_total",
            "llm_loadtest_ttft_seconds_count",
            "llm_loadtest_itl_seconds_count",
            "llm_loadtest_tpot_seconds_count",
            "llm_loadtest_e2e_latency_seconds_count",
        ] {
            assert_eq!(val(&x, name, &[("target", t)]), 0.0, "{name}");
        }
        assert_eq!(val(&x, "llm_loadtest_ttft_seconds_bucket", &[("target", t), ("le", "+Inf")]), 0.0);
        // Never ran: no last-run figure at all.
        assert_eq!(get(&x, "llm_loadtest_last_run_timestamp_seconds", &[("target", t)]), None);
        assert_eq!(get(&x, "llm_loadtest_last_run_success", &[("target", t)]), None);
    }
    assert!(x.family("llm_loadtest_validation_status").is_none());
}

#[test]
fn a_run_is_exported_with_its_values() {
    let r = sim_result();
    let v = r.validation.as_ref().expect("validation ran");
    assert_eq!(v.overall, Status::Pass, "{v:#?}");
    let e = exporter();
    e.record_run("a", r);
    let x = parsed(&e);
    let a = [("target", "a")];
    let c = &r.client;
    assert_eq!(c.completed, 24);

    // Runs.
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "success")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "warn")]), 0.0);
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "b"), ("result", "success")]), 0.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_success", &a), 1.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_timestamp_seconds", &a), r.ended_at.as_millisecond() as f64 / 1e3);
    assert!(!r.phases.is_empty());
    for (phase, secs) in &r.phases {
        let got = val(&x, "llm_loadtest_last_run_phase_duration_seconds", &[("target", "a"), ("phase", phase)]);
        assert!(close(got, *secs), "{phase}: {got} vs {secs}");
    }

    // Counters.
    assert_eq!(val(&x, "llm_loadtest_requests_total", &[("target", "a"), ("outcome", "ok")]), 24.0);
    assert_eq!(val(&x, "llm_loadtest_requests_total", &[("target", "a"), ("outcome", "http_error")]), 0.0);
    assert_eq!(val(&x, "llm_loadtest_prompt_tokens_total", &a), c.total_input_tokens as f64);
    assert_eq!(val(&x, "llm_loadtest_output_tokens_total", &a), c.total_output_tokens as f64);
    assert!(c.total_output_tokens > 0);

    // Histograms: one observation per completed request (ITL: per gap), as the statistics.
    for (name, summary) in [
        ("llm_loadtest_ttft_seconds", &c.ttft_ms),
        ("llm_loadtest_itl_seconds", &c.itl_ms),
        ("llm_loadtest_tpot_seconds", &c.tpot_ms),
        ("llm_loadtest_e2e_latency_seconds", &c.e2el_ms),
    ] {
        let count = val(&x, &format!("{name}_count"), &a);
        assert_eq!(count, summary.count as f64, "{name}");
        assert_eq!(val(&x, &format!("{name}_bucket"), &[("target", "a"), ("le", "+Inf")]), count);
        let mean_s = val(&x, &format!("{name}_sum"), &a) / count;
        assert!((mean_s - summary.mean.unwrap() / 1e3).abs() < 1e-6, "{name} mean {mean_s}");
        let h = x.histogram(name, &promtext::LabelFilter::new().with("target", "a")).unwrap();
        let bounds = if name.contains("itl") || name.contains("tpot") {
            TOKEN_LATENCY_BUCKETS.len()
        } else {
            LATENCY_BUCKETS.len()
        };
        assert_eq!(h.buckets.len(), bounds + 1, "{name}");
    }
    // TTFT is 30 ms in the simulator: all in the (0.02, 0.05] buckets and above.
    assert_eq!(val(&x, "llm_loadtest_ttft_seconds_bucket", &[("target", "a"), ("le", "0.02")]), 0.0);

    // Last-run percentiles, seconds.
    for (name, summary) in [
        ("llm_loadtest_last_run_ttft_seconds", &c.ttft_ms),
        ("llm_loadtest_last_run_itl_seconds", &c.itl_ms),
        ("llm_loadtest_last_run_tpot_seconds", &c.tpot_ms),
        ("llm_loadtest_last_run_e2e_latency_seconds", &c.e2el_ms),
    ] {
        for (p, want) in [("p50", summary.median), ("p90", summary.p90), ("p99", summary.p99)] {
            let got = val(&x, name, &[("target", "a"), ("percentile", p)]);
            assert!(close(got, want.unwrap() / 1e3), "{name} {p}");
        }
    }
    assert!(close(val(&x, "llm_loadtest_last_run_requests_per_second", &a), c.request_throughput));
    let client = [("target", "a"), ("source", "client")];
    assert!(close(val(&x, "llm_loadtest_last_run_output_tokens_per_second", &client), c.output_throughput));
    assert_eq!(val(&x, "llm_loadtest_last_run_error_ratio", &a), 0.0);
    for figure in CLIENT_BOUND_FIGURES {
        let got = val(&x, "llm_loadtest_last_run_client_bound", &[("target", "a"), ("figure", figure)]);
        assert!(got == 0.0 || got == 1.0);
    }

    // Client vs server overlays equal the compared figures.
    for (name, check, scale) in [
        ("llm_loadtest_last_run_completed_requests", "request_count", 1.0),
        ("llm_loadtest_last_run_prompt_tokens", "prompt_tokens", 1.0),
        ("llm_loadtest_last_run_output_tokens", "generation_tokens", 1.0),
        ("llm_loadtest_last_run_ttft_mean_seconds", "ttft_mean", 1e-3),
        ("llm_loadtest_last_run_e2e_latency_mean_seconds", "e2e_latency_mean", 1e-3),
    ] {
        let cmp = v.prometheus.comparisons.iter().find(|c| c.check == check).unwrap();
        let client = val(&x, name, &[("target", "a"), ("source", "client")]);
        let server = val(&x, name, &[("target", "a"), ("source", "server")]);
        assert!(close(client, cmp.client.unwrap() * scale), "{name} client");
        assert!(close(server, cmp.server.unwrap() * scale), "{name} server");
    }
    assert_eq!(val(&x, "llm_loadtest_last_run_completed_requests", &[("target", "a"), ("source", "server")]), 24.0);

    // Verdicts: state sets, ok, drift, tolerance.
    for (status, want) in [("PASS", 1.0), ("WARN", 0.0), ("SKIP", 0.0)] {
        assert_eq!(val(&x, "llm_loadtest_validation_overall_status", &[("target", "a"), ("status", status)]), want);
        let s = [("target", "a"), ("section", "prometheus"), ("status", status)];
        assert_eq!(val(&x, "llm_loadtest_validation_section_status", &s), want);
    }
    for cmp in &v.prometheus.comparisons {
        let ch = cmp.check.as_str();
        for status in STATUSES {
            let want = if status == cmp.status.as_str() { 1.0 } else { 0.0 };
            let labels = [("target", "a"), ("section", "prometheus"), ("check", ch), ("status", status)];
            assert_eq!(val(&x, "llm_loadtest_validation_status", &labels), want, "{ch} {status}");
        }
        let tc = [("target", "a"), ("section", "prometheus"), ("check", ch)];
        assert_eq!(get(&x, "llm_loadtest_validation_ok", &tc), Some(1.0), "{ch}");
        assert_eq!(val(&x, "llm_loadtest_validation_tolerance_ratio", &tc), cmp.tolerance);
        let drift = get(&x, "llm_loadtest_validation_drift_ratio", &tc);
        assert_eq!(drift, cmp.diff_pct.map(|p| p / 100.0), "{ch}");
    }
    assert_eq!(
        val(
            &x,
            "llm_loadtest_validation_drift_ratio",
            &[("target", "a"), ("section", "prometheus"), ("check", "request_count")]
        ),
        0.0
    );

    // Server-only figures.
    let i = &v.server_info;
    let kv = val(&x, "llm_loadtest_last_run_kv_cache_usage_peak_ratio", &[("target", "a"), ("source", "server")]);
    assert!(close(kv, i.peak_kv_cache_usage_pct.unwrap() / 100.0) && (0.0..=1.0).contains(&kv));
    let running = val(&x, "llm_loadtest_last_run_running_requests_peak", &[("target", "a"), ("source", "server")]);
    assert_eq!(running, i.peak_running.unwrap());
    assert_eq!(val(&x, "llm_loadtest_last_run_background_requests_per_second", &a), 0.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_metrics_parse_errors", &a), 0.0);

    // The other target is untouched.
    assert_eq!(get(&x, "llm_loadtest_last_run_timestamp_seconds", &[("target", "b")]), None);
}

/// Every counter and histogram sample (buckets, sums, counts) of `x`, keyed by name and labels.
fn monotonic_samples(x: &Exposition) -> Vec<(String, Labels, f64)> {
    x.families
        .iter()
        .filter(|f| matches!(f.kind, promtext::MetricType::Counter | promtext::MetricType::Histogram))
        .flat_map(|f| &f.samples)
        .map(|s| (s.name.to_string(), s.labels.clone(), s.value))
        .collect()
}

#[test]
fn counters_only_increase() {
    let e = exporter();
    let mut snapshots = vec![monotonic_samples(&parsed(&e))];
    let mut warn = sim_result().clone();
    set_status(&mut warn, "ttft_mean", Status::Warn, Some(25.0));
    let mut unreachable = sim_result().clone();
    make_unreachable(&mut unreachable);
    for step in 0..4 {
        match step {
            0 => e.record_run("a", sim_result()),
            1 => e.record_run("a", &warn),
            2 => e.record_failure("a", "invalid_workload"),
            _ => e.record_run("a", &unreachable),
        }
        snapshots.push(monotonic_samples(&parsed(&e)));
    }
    for w in snapshots.windows(2) {
        for (name, labels, before) in &w[0] {
            let after = w[1].iter().find(|(n, l, _)| n == name && l == labels).map(|s| s.2);
            let after = after.unwrap_or_else(|| panic!("{name}{labels:?} disappeared"));
            assert!(after >= *before, "{name}{labels:?} went from {before} to {after}");
        }
    }
    let x = parsed(&e);
    let runs = |result| val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", result)]);
    assert_eq!((runs("success"), runs("warn"), runs("failed"), runs("cancelled")), (1.0, 1.0, 2.0, 0.0));
    let fail = |reason| val(&x, "llm_loadtest_run_failures_total", &[("target", "a"), ("reason", reason)]);
    assert_eq!((fail("invalid_workload"), fail("target_unreachable")), (1.0, 1.0));
    let c = &sim_result().client;
    assert_eq!(val(&x, "llm_loadtest_requests_total", &[("target", "a"), ("outcome", "ok")]), 48.0);
    assert_eq!(val(&x, "llm_loadtest_output_tokens_total", &[("target", "a")]), 2.0 * c.total_output_tokens as f64);
    let connect = val(&x, "llm_loadtest_requests_total", &[("target", "a"), ("outcome", "connect_error")]);
    assert_eq!(connect, unreachable.client.num_requests as f64);
    assert_eq!(val(&x, "llm_loadtest_ttft_seconds_count", &[("target", "a")]), 2.0 * c.ttft_ms.count as f64);
}

fn set_status(r: &mut RunResult, check: &str, status: Status, diff_pct: Option<f64>) {
    let v = r.validation.as_mut().unwrap();
    let c = v.prometheus.comparisons.iter_mut().find(|c| c.check == check).unwrap();
    c.status = status;
    c.diff_pct = diff_pct;
    v.prometheus.status = crate::validate::summarize(v.prometheus.comparisons.iter().map(|c| c.status));
    v.overall = v.prometheus.status;
}

/// Every measured request failed to connect.
fn make_unreachable(r: &mut RunResult) {
    let c = &mut r.client;
    c.errors = BTreeMap::from([("connect_error", c.num_requests)]);
    c.failed = c.num_requests;
    c.completed = 0;
    c.total_input_tokens = 0;
    c.total_output_tokens = 0;
    r.records = Default::default();
    r.validation = None;
    r.server = None;
    assert!(r.target_unreachable());
}

#[test]
fn warn_and_skip_verdicts() {
    let mut r = sim_result().clone();
    set_status(&mut r, "ttft_mean", Status::Warn, Some(-25.0));
    set_status(&mut r, "prompt_tokens", Status::Skip, None);
    let e = exporter();
    e.record_run("a", &r);
    let x = parsed(&e);
    let status = |check, status| {
        val(
            &x,
            "llm_loadtest_validation_status",
            &[("target", "a"), ("section", "prometheus"), ("check", check), ("status", status)],
        )
    };
    assert_eq!(
        (status("ttft_mean", "PASS"), status("ttft_mean", "WARN"), status("ttft_mean", "SKIP")),
        (0.0, 1.0, 0.0)
    );
    assert_eq!(
        (status("prompt_tokens", "PASS"), status("prompt_tokens", "WARN"), status("prompt_tokens", "SKIP")),
        (0.0, 0.0, 1.0)
    );
    let tc = |check| [("target", "a"), ("section", "prometheus"), ("check", check)];
    assert_eq!(get(&x, "llm_loadtest_validation_ok", &tc("ttft_mean")), Some(0.0));
    assert_eq!(get(&x, "llm_loadtest_validation_ok", &tc("prompt_tokens")), None);
    assert_eq!(get(&x, "llm_loadtest_validation_ok", &tc("request_count")), Some(1.0));
    assert_eq!(get(&x, "llm_loadtest_validation_drift_ratio", &tc("ttft_mean")), Some(-0.25));
    assert_eq!(get(&x, "llm_loadtest_validation_drift_ratio", &tc("prompt_tokens")), None);
    // A skipped check keeps its tolerance (the threshold line stays drawn).
    assert!(get(&x, "llm_loadtest_validation_tolerance_ratio", &tc("prompt_tokens")).is_some());
    let overall = |s| val(&x, "llm_loadtest_validation_overall_status", &[("target", "a"), ("status", s)]);
    assert_eq!((overall("PASS"), overall("WARN"), overall("SKIP")), (0.0, 1.0, 0.0));
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "warn")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "success")]), 0.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_success", &[("target", "a")]), 0.0);
}

#[test]
fn the_next_run_replaces_the_last_run_gauges() {
    let e = exporter();
    e.record_run("a", sim_result());
    let mut r = sim_result().clone();
    r.validation = None;
    r.server = None;
    e.record_run("a", &r);
    let x = parsed(&e);
    // Validation not asked for: overall SKIP, no per-check or server series left over.
    let overall = |s| val(&x, "llm_loadtest_validation_overall_status", &[("target", "a"), ("status", s)]);
    assert_eq!((overall("PASS"), overall("WARN"), overall("SKIP")), (0.0, 0.0, 1.0));
    for name in [
        "llm_loadtest_validation_status",
        "llm_loadtest_validation_ok",
        "llm_loadtest_validation_section_status",
        "llm_loadtest_last_run_kv_cache_usage_peak_ratio",
        "llm_loadtest_last_run_metrics_parse_errors",
    ] {
        assert!(x.family(name).is_none(), "{name} is stale");
    }
    let server = [("target", "a"), ("source", "server")];
    assert_eq!(get(&x, "llm_loadtest_last_run_completed_requests", &server), None);
    let client = [("target", "a"), ("source", "client")];
    assert_eq!(get(&x, "llm_loadtest_last_run_completed_requests", &client), Some(24.0));
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "success")]), 2.0);
}

#[test]
fn a_failure_counts_and_clears_the_last_run() {
    let e = exporter();
    e.record_run("a", sim_result());
    let before = jiff::Timestamp::now().as_millisecond() as f64 / 1e3;
    e.record_failure("a", "invalid_workload");
    let x = parsed(&e);
    let a = [("target", "a")];
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "failed")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_run_failures_total", &[("target", "a"), ("reason", "invalid_workload")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_success", &a), 0.0);
    let ts = val(&x, "llm_loadtest_last_run_timestamp_seconds", &a);
    assert!(ts >= before - 0.001 && ts < before + 60.0, "{ts} vs {before}");
    assert!(x.family("llm_loadtest_last_run_ttft_seconds").is_none());
    assert!(x.family("llm_loadtest_validation_overall_status").is_none());
    // Histograms keep what earlier runs observed.
    assert_eq!(val(&x, "llm_loadtest_ttft_seconds_count", &a), sim_result().client.ttft_ms.count as f64);
}

#[test]
fn cancelled_and_unreachable_runs() {
    let e = exporter();
    let mut cancelled = sim_result().clone();
    cancelled.cancelled = true;
    e.record_run("a", &cancelled);
    let mut unreachable = sim_result().clone();
    make_unreachable(&mut unreachable);
    e.record_run("b", &unreachable);
    let x = parsed(&e);
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "cancelled")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_success", &[("target", "a")]), 0.0);
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "b"), ("result", "failed")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_run_failures_total", &[("target", "b"), ("reason", "target_unreachable")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_error_ratio", &[("target", "b")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_success", &[("target", "b")]), 0.0);
}

#[test]
fn unknown_targets_are_ignored() {
    let e = exporter();
    e.record_run("intruder", sim_result());
    e.record_failure("intruder", "invalid_workload");
    e.set_running("intruder", true);
    let x = parsed(&e);
    assert!(samples_of(&x).iter().all(|(_, l, _)| l.get("target") != Some("intruder")));
    // The configured targets' zero series have every reason; none counts the intruder's failure.
    assert!(
        samples_of(&x).iter().all(|(n, l, v)| !(n.as_str() == "llm_loadtest_run_failures_total"
            && l.get("reason").is_some()
            && *v != 0.0))
    );
}

#[test]
fn running_and_restore() {
    let e = exporter();
    e.set_running("b", true);
    assert_eq!(val(&parsed(&e), "llm_loadtest_running", &[("target", "b")]), 1.0);
    e.set_running("b", false);
    assert_eq!(val(&parsed(&e), "llm_loadtest_running", &[("target", "b")]), 0.0);

    let mut older = sim_result().clone();
    older.ended_at -= jiff::SignedDuration::from_secs(600);
    e.restore_run("a", &older);
    e.restore_run("a", sim_result());
    e.restore_run("b", &older);
    e.restore_failure("b", sim_result().ended_at);
    let x = parsed(&e);
    let ts = |t| val(&x, "llm_loadtest_last_run_timestamp_seconds", &[("target", t)]);
    assert_eq!(ts("a"), sim_result().ended_at.as_millisecond() as f64 / 1e3);
    assert_eq!(ts("b"), ts("a"), "b's newest entry is the failure");
    let success = |t| val(&x, "llm_loadtest_last_success_timestamp_seconds", &[("target", t)]);
    assert_eq!(success("a"), ts("a"));
    assert_eq!(success("b"), ts("a") - 600.0, "the failure is no success");
    assert_eq!(val(&x, "llm_loadtest_consecutive_failed_runs", &[("target", "a")]), 0.0);
    assert_eq!(val(&x, "llm_loadtest_consecutive_failed_runs", &[("target", "b")]), 1.0);
    // Counters and histograms start from 0 at every start: restored runs are not counted again.
    for (name, labels) in [
        ("llm_loadtest_runs_total", vec![("target", "a"), ("result", "success")]),
        ("llm_loadtest_runs_total", vec![("target", "b"), ("result", "failed")]),
        ("llm_loadtest_requests_total", vec![("target", "a"), ("outcome", "ok")]),
        ("llm_loadtest_ttft_seconds_count", vec![("target", "a")]),
    ] {
        assert_eq!(val(&x, name, &labels), 0.0, "{name}");
    }
    assert!(val(&x, "process_start_time_seconds", &[]) > 1.7e9);
}

/// A restart with more history than `max_runs` keeps: whatever the retention dropped, every
/// counter after the restart is exactly the new runs' contribution (Prometheus reads the drop
/// to 0 as a reset, so `increase()` over the restart counts the new runs and nothing else).
#[test]
fn counters_after_a_restart_are_the_new_runs_only() {
    let before = exporter();
    for _ in 0..5 {
        before.record_run("a", sim_result());
    }
    let old = parsed(&before);
    assert_eq!(val(&old, "llm_loadtest_runs_total", &[("target", "a"), ("result", "success")]), 5.0);

    // The history kept 3 of the 5 (max_runs = 3); 2 new runs follow the restart.
    let after = exporter();
    for _ in 0..3 {
        after.restore_run("a", sim_result());
    }
    after.record_run("a", sim_result());
    after.record_run("a", sim_result());
    let new = parsed(&after);
    let one = parsed(&{
        let e = exporter();
        e.record_run("a", sim_result());
        e
    });
    for (name, labels) in [
        ("llm_loadtest_runs_total", vec![("target", "a"), ("result", "success")]),
        ("llm_loadtest_requests_total", vec![("target", "a"), ("outcome", "ok")]),
        ("llm_loadtest_output_tokens_total", vec![("target", "a")]),
        ("llm_loadtest_ttft_seconds_count", vec![("target", "a")]),
        (
            "llm_loadtest_validation_sections_total",
            vec![("target", "a"), ("section", "prometheus"), ("status", "PASS")],
        ),
    ] {
        let per_run = val(&one, name, &labels);
        assert!(per_run > 0.0, "{name}");
        assert_eq!(val(&new, name, &labels), 2.0 * per_run, "{name}");
    }
}

/// `r` with a docker-log section that read the logs: 24 HTTP 200 on both sides, the logged
/// throughput 5% under the client's, `errors` error events (WARN when not 0), 3 warning lines.
fn with_logs(mut r: RunResult, errors: u64) -> RunResult {
    let tps = r.client.output_throughput;
    let mut d = DockerLogsValidation::skipped("replaced below", Vec::new());
    let mut server_errors = compare("server_errors", None, &Ok(errors as f64), 0.0, 0.0);
    server_errors.status = if errors == 0 { Status::Pass } else { Status::Warn };
    d.section = Section::from_comparisons(
        vec![
            compare("http_200_count", Some(24.0), &Ok(24.0), 0.05, 0.0),
            compare("generation_throughput", Some(tps), &Ok(tps * 0.95), 0.10, 0.0),
            server_errors,
        ],
        None,
    );
    d.error_events = errors;
    d.warnings = 3;
    d.engine_stats = Some(serde_json::json!({
        "peak_kv_cache_usage_pct": 12.5,
        "last_prefix_cache_hit_rate_pct": 50.0,
        "peak_running": 4,
        "peak_waiting": 1,
        "mean_generation_throughput": null,
    }));
    let v = r.validation.as_mut().unwrap();
    v.docker_logs = Some(d);
    v.overall = crate::validate::summarize(sections_of(v));
    r
}

fn sections_of(v: &crate::validate::Validation) -> Vec<Status> {
    std::iter::once(v.prometheus.status).chain(v.docker_logs.as_ref().map(|d| d.section.status)).collect()
}

/// A run with every optional figure present (the simulator exports no queue time, preemptions
/// or prefix cache, and has no container logs), so every metric has a series.
fn full_result() -> RunResult {
    let mut r = with_logs(sim_result().clone(), 2);
    let i = &mut r.validation.as_mut().unwrap().server_info;
    i.queue_time_mean_ms = Some(1.5);
    i.preemptions = Some(0.0);
    i.prefix_cache_hit_rate_pct = Some(40.0);
    i.peak_waiting = i.peak_waiting.or(Some(0.0));
    r.validation.as_mut().unwrap().traces = Some(traces_section());
    r.shards = shards();
    r
}

/// A distributed run's shards: one ran, one was lost.
fn shards() -> Vec<crate::coordinator::remote::ShardReport> {
    use crate::coordinator::remote::ShardReport;
    use crate::workload::Shard;
    vec![
        ShardReport {
            shard: Shard { index: 0, count: 2 },
            worker: Some("w0".into()),
            completed: 12,
            failed: 0,
            request_throughput: 6.5,
            start_lag_s: 0.004,
            receive_lag_p99_s: 0.0002,
            lost: None,
        },
        ShardReport {
            shard: Shard { index: 1, count: 2 },
            worker: Some("w1".into()),
            completed: 0,
            failed: 0,
            request_throughput: 0.0,
            start_lag_s: 0.0,
            receive_lag_p99_s: 0.0,
            lost: Some("worker w1 stopped reporting shard 1/2".into()),
        },
    ]
}

#[test]
fn a_distributed_runs_shards_are_labelled_by_index_never_by_worker_name() {
    let e = exporter();
    let x = parsed(&e);
    assert_eq!(get(&x, "llm_loadtest_workers_connected", &[]), None, "absent without [workers]");
    e.set_workers_connected(2);
    e.record_run("a", &full_result());
    let x = parsed(&e);
    assert_eq!(get(&x, "llm_loadtest_workers_connected", &[]), Some(2.0));
    let shard = |name, i| get(&x, name, &[("target", "a"), ("shard", i)]);
    assert_eq!(shard("llm_loadtest_last_run_shard_lost", "0"), Some(0.0));
    assert_eq!(shard("llm_loadtest_last_run_shard_lost", "1"), Some(1.0));
    assert_eq!(shard("llm_loadtest_last_run_shard_requests_per_second", "0"), Some(6.5));
    assert_eq!(
        shard("llm_loadtest_last_run_shard_requests_per_second", "1"),
        None,
        "a lost shard delivered nothing known"
    );
    assert_eq!(shard("llm_loadtest_last_run_shard_start_lag_seconds", "0"), Some(0.004));
    assert!(!e.encode().contains("w0"), "worker names are never label values");
    // The next run without shards drops them.
    e.record_run("a", &sim_result().clone());
    assert_eq!(get(&parsed(&e), "llm_loadtest_last_run_shard_lost", &[("target", "a"), ("shard", "1")]), None);
}

/// A per-request section as vLLM's spans give it.
fn traces_section() -> crate::validate::TracesValidation {
    use crate::validate::{Spread, TracesValidation};
    let mut t = TracesValidation::skipped("replaced below");
    t.section = Section::from_comparisons(
        vec![
            compare("request_count", Some(24.0), &Ok(24.0), 0.0, 0.0),
            compare("ttft_mean", Some(31.0), &Ok(30.0), 0.10, 1.0),
        ],
        None,
    );
    let spread = |ms: f64| Some(Spread { mean: ms, p50: ms, p90: 2.0 * ms, p99: 4.0 * ms });
    t.ttft_diff_ms = spread(1.0);
    t.e2e_diff_ms = spread(2.0);
    t.server_breakdown.queue_ms = spread(0.5);
    t.server_breakdown.prefill_ms = spread(10.0);
    t.server_breakdown.decode_ms = spread(100.0);
    t.server_breakdown.inference_ms = spread(110.0);
    t
}

#[test]
fn per_request_checks_and_span_figures_are_exported_by_section() {
    let e = exporter();
    e.record_run("a", &full_result());
    let x = parsed(&e);
    let ok = |section| {
        get(&x, "llm_loadtest_validation_ok", &[("target", "a"), ("section", section), ("check", "request_count")])
    };
    assert_eq!(ok("prometheus"), Some(1.0));
    assert_eq!(ok("traces"), Some(1.0), "the same check of two sections is two series");
    let section = [("target", "a"), ("section", "traces"), ("status", "PASS")];
    assert_eq!(val(&x, "llm_loadtest_validation_section_status", &section), 1.0);
    let diff = |figure, p| {
        val(
            &x,
            "llm_loadtest_last_run_span_difference_seconds",
            &[("target", "a"), ("figure", figure), ("percentile", p)],
        )
    };
    assert!(close(diff("ttft", "p99"), 0.004));
    assert!(close(diff("e2e_latency", "p50"), 0.002));
    let phase = |phase, p| {
        val(&x, "llm_loadtest_last_run_server_phase_seconds", &[("target", "a"), ("phase", phase), ("percentile", p)])
    };
    assert!(close(phase("queue", "p50"), 0.0005));
    assert!(close(phase("decode", "p90"), 0.2));
    // The server overlay stays the /metrics figure, not the spans'.
    let server = [("target", "a"), ("source", "server")];
    let prometheus =
        full_result().validation.unwrap().prometheus.comparisons.into_iter().find(|c| c.check == "ttft_mean");
    // Within float rounding: the exposition prints the gauge's f64 in its shortest form.
    let want = prometheus.and_then(|c| c.server).map(|v| v / 1e3).unwrap();
    assert!(close(val(&x, "llm_loadtest_last_run_ttft_mean_seconds", &server), want));
}

#[test]
fn docker_log_findings_are_exported() {
    let e = exporter();
    let r = with_logs(sim_result().clone(), 2);
    e.record_run("a", &r);
    e.record_run("a", &r);
    let x = parsed(&e);
    let a = [("target", "a")];
    assert_eq!(val(&x, "llm_loadtest_log_error_events_total", &a), 4.0);
    assert_eq!(val(&x, "llm_loadtest_log_warning_lines_total", &a), 6.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_log_error_events", &a), 2.0);
    assert_eq!(val(&x, "llm_loadtest_last_run_log_warning_lines", &a), 3.0);
    let logs = |name| val(&x, name, &[("target", "a"), ("source", "logs")]);
    assert_eq!(logs("llm_loadtest_last_run_kv_cache_usage_peak_ratio"), 0.125);
    assert_eq!(logs("llm_loadtest_last_run_prefix_cache_hit_ratio"), 0.5);
    assert_eq!(logs("llm_loadtest_last_run_running_requests_peak"), 4.0);
    assert_eq!(logs("llm_loadtest_last_run_waiting_requests_peak"), 1.0);
    assert_eq!(logs("llm_loadtest_last_run_http_200_responses"), 24.0);
    let tps = sim_result().client.output_throughput;
    assert!(close(logs("llm_loadtest_last_run_output_tokens_per_second"), tps * 0.95));
    let client = [("target", "a"), ("source", "client")];
    assert!(close(val(&x, "llm_loadtest_last_run_output_tokens_per_second", &client), tps));
    assert_eq!(val(&x, "llm_loadtest_last_run_http_200_responses", &client), 24.0);
    // The docker-log checks are verdicts like the others; the section and the overall warn.
    let status = |check, status| {
        val(
            &x,
            "llm_loadtest_validation_status",
            &[("target", "a"), ("section", "docker_logs"), ("check", check), ("status", status)],
        )
    };
    assert_eq!(status("server_errors", "WARN"), 1.0);
    assert_eq!(status("http_200_count", "PASS"), 1.0);
    let drift = get(
        &x,
        "llm_loadtest_validation_drift_ratio",
        &[("target", "a"), ("section", "docker_logs"), ("check", "generation_throughput")],
    );
    assert!(close(drift.unwrap(), 1.0 / 0.95 - 1.0));
    assert_eq!(
        get(
            &x,
            "llm_loadtest_validation_drift_ratio",
            &[("target", "a"), ("section", "docker_logs"), ("check", "server_errors")]
        ),
        None
    );
    let section = [("target", "a"), ("section", "docker_logs"), ("status", "WARN")];
    assert_eq!(val(&x, "llm_loadtest_validation_section_status", &section), 1.0);
    assert_eq!(val(&x, "llm_loadtest_validation_overall_status", &[("target", "a"), ("status", "WARN")]), 1.0);
    assert_eq!(val(&x, "llm_loadtest_runs_total", &[("target", "a"), ("result", "warn")]), 2.0);

    // A section skipped as a whole (no container): its status shows, no findings are invented.
    let mut skipped = sim_result().clone();
    skipped.validation.as_mut().unwrap().docker_logs = Some(DockerLogsValidation::skipped("no container", Vec::new()));
    e.record_run("a", &skipped);
    let x = parsed(&e);
    assert_eq!(val(&x, "llm_loadtest_log_error_events_total", &a), 4.0);
    assert_eq!(get(&x, "llm_loadtest_last_run_log_error_events", &a), None);
    assert_eq!(get(&x, "llm_loadtest_last_run_http_200_responses", &[("target", "a"), ("source", "logs")]), None);
    let section = [("target", "a"), ("section", "docker_logs"), ("status", "SKIP")];
    assert_eq!(val(&x, "llm_loadtest_validation_section_status", &section), 1.0);
}

#[test]
fn every_metric_name_is_encoded_after_one_run() {
    let e = exporter();
    e.set_schedule_interval("a", std::time::Duration::from_secs(30));
    e.set_workers_connected(3);
    // Three runs make a baseline for the fourth; a zero tolerance makes any noise a regression.
    e.set_regression_policy("a", 0.0, 0.0);
    for i in (0..4).rev() {
        let mut r = full_result();
        r.ended_at -= jiff::SignedDuration::from_secs(60 * i);
        r.client.output_throughput *= 1.0 - 0.1 * (3 - i) as f64;
        e.record_run("a", &r);
    }
    let mut skipped = full_result();
    skipped.validation.as_mut().unwrap().docker_logs =
        Some(DockerLogsValidation::skipped("no container named vllm-0 (checked 2 hosts)", Vec::new()));
    e.record_run("b", &skipped);
    let x = parsed(&e);
    for def in &METRICS {
        let sample = match def.kind {
            Kind::Histogram => format!("{}_bucket", def.name),
            Kind::Counter | Kind::Gauge => def.name.to_string(),
        };
        assert!(samples_of(&x).iter().any(|(n, _, _)| *n == sample), "{} not encoded", def.name);
    }
    // ... and nothing else is.
    for f in &x.families {
        let name = match f.kind {
            promtext::MetricType::Counter => format!("{}_total", f.name),
            _ => f.name.clone(),
        };
        assert!(METRIC_NAMES.contains(&name.as_str()), "{name} is not in METRIC_NAMES");
    }
    assert_eq!(METRIC_NAMES.len(), METRICS.len());
    let x = promtext::parse(&e.encode());
    let prefix = val(&x, "llm_loadtest_last_run_prefix_cache_hit_ratio", &[("target", "a"), ("source", "server")]);
    assert_eq!(prefix, 0.4);
    assert_eq!(val(&x, "llm_loadtest_last_run_queue_time_mean_seconds", &[("target", "a")]), 0.0015);
}

#[test]
fn definitions_follow_the_conventions() {
    let allowed_labels = [
        "target",
        "model",
        "version",
        "result",
        "reason",
        "outcome",
        "phase",
        "percentile",
        "figure",
        "source",
        "check",
        "status",
        "section",
        "shard",
    ];
    for (i, def) in METRICS.iter().enumerate() {
        let n = def.name;
        assert!(n.starts_with("llm_loadtest_") || *def == PROCESS_START_TIME, "{n}");
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{n}");
        assert!(!def.help.ends_with('.') && !def.help.is_empty(), "{n}: help must not end with a period");
        assert_eq!(def.kind == Kind::Counter, n.ends_with("_total"), "{n}: only counters end in _total");
        if def.kind == Kind::Histogram {
            assert!(n.ends_with("_seconds"), "{n}");
        }
        for unit in ["_ms", "_milliseconds", "_percent", "_pct"] {
            assert!(!n.contains(unit), "{n}: base units only");
        }
        assert!(METRICS[..i].iter().all(|d| d.name != n), "{n} defined twice");
        assert!(def.labels.iter().all(|l| allowed_labels.contains(l)), "{n}: {:?}", def.labels);
        let target_first = def.labels.first() == Some(&"target");
        assert!(
            target_first || [BUILD_INFO, HISTORY_WRITE_ERRORS, PROCESS_START_TIME, WORKERS_CONNECTED].contains(def),
            "{n}: target is the first label (daemon-wide metrics have none)"
        );
    }
}

#[test]
fn label_values_stay_in_bounded_sets() {
    let e = exporter();
    let mut warn = full_result();
    set_status(&mut warn, "e2e_latency_mean", Status::Warn, Some(12.0));
    e.record_run("a", &full_result());
    e.record_run("b", &warn);
    e.record_failure("b", "invalid_workload");
    e.record_run("b", &warn);
    e.set_regression_policy("a", 0.0, 0.0);
    for _ in 0..3 {
        e.record_run("a", &full_result());
    }
    let mut skipped = full_result();
    skipped.validation.as_mut().unwrap().docker_logs =
        Some(DockerLogsValidation::skipped("no container named vllm-0 (checked 2 hosts in 1.5 s)", Vec::new()));
    e.record_run("a", &skipped);
    let x = parsed(&e);
    assert!(samples_of(&x).iter().any(|(n, _, _)| n == "llm_loadtest_last_run_regression_ratio"));
    let reasons: Vec<String> = samples_of(&x)
        .iter()
        .filter(|(n, _, _)| n == VALIDATION_SECTION_SKIP_REASON.name)
        .map(|(_, l, _)| l.get("reason").unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["no container named vllm-# (checked # hosts in # s)"]);
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_label()).collect();
    let phases: Vec<&str> = sim_result().phases.keys().copied().collect();
    let le: Vec<String> = LATENCY_BUCKETS.iter().chain(&TOKEN_LATENCY_BUCKETS).map(|b| b.to_string()).collect();
    for (name, labels, _) in samples_of(&x) {
        let def = METRICS
            .iter()
            .find(|d| {
                let base = d.name;
                name == base
                    || (d.kind == Kind::Histogram
                        && name.strip_prefix(base).is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)))
            })
            .unwrap_or_else(|| panic!("{name} has no definition"));
        let mut names: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        names.retain(|k| !(def.kind == Kind::Histogram && *k == "le"));
        let mut want: Vec<&str> = def.labels.to_vec();
        names.sort_unstable();
        want.sort_unstable();
        assert_eq!(names, want, "{name}: label names");
        for (k, v) in labels.iter() {
            let ok = match k {
                "target" => ["a", "b"].contains(&v),
                "model" => ["sim-model", "other/model"].contains(&v),
                "version" => v == VERSION,
                "result" => RESULTS.contains(&v),
                "reason" if name == VALIDATION_SECTION_SKIP_REASON.name => {
                    !v.is_empty() && v.len() <= 160 && !v.bytes().any(|b| b.is_ascii_digit())
                }
                "reason" => FAILURE_REASONS.contains(&v),
                "outcome" => outcomes.contains(&v),
                "phase" if name == LAST_RUN_SERVER_PHASE.name => SERVER_PHASES.contains(&v),
                "phase" => phases.contains(&v),
                "percentile" => PERCENTILES.contains(&v),
                "figure" if name == LAST_RUN_SPAN_DIFFERENCE.name => SPAN_DIFFERENCE_FIGURES.contains(&v),
                "figure" if name == LAST_RUN_CLIENT_BOUND.name => CLIENT_BOUND_FIGURES.contains(&v),
                "figure" => PERFORMANCE_FIGURES.contains(&v),
                "source" => SOURCES.contains(&v),
                "check" => CHECKS.contains(&v),
                "status" => STATUSES.contains(&v),
                "section" => SECTIONS.contains(&v),
                "shard" => v.parse::<u32>().is_ok_and(|i| i < crate::coordinator::MAX_WORKERS),
                "le" => v == "+Inf" || le.iter().any(|b| promtext_num(b) == promtext_num(v)),
                _ => false,
            };
            assert!(ok, "{name}: {k}={v:?} is outside its bounded set");
        }
    }
}

fn promtext_num(s: &str) -> Option<f64> {
    s.parse().ok()
}

#[test]
fn label_values_are_escaped() {
    let e = Exporter::new(&[("we\"ird\\name\n".into(), "m{x=\"1\"}".into())], VERSION);
    let x = parsed(&e);
    let labels = [("target", "we\"ird\\name\n"), ("model", "m{x=\"1\"}")];
    assert_eq!(val(&x, "llm_loadtest_target_info", &labels), 1.0);
}

#[test]
fn classic_text_has_the_same_samples() {
    let e = exporter();
    e.record_run("a", &full_result());
    let om = parsed(&e);
    let text = e.encode_text();
    let classic = promtext::parse(&text);
    assert!(classic.line_errors.is_empty(), "{:?}", classic.line_errors);
    assert_eq!(classic.format, promtext::Format::Classic);
    let mut a = samples_of(&om);
    let mut b = samples_of(&classic);
    a.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    b.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    assert_eq!(a, b);
    for def in METRICS.iter().filter(|d| d.kind == Kind::Counter) {
        assert!(text.contains(&format!("# TYPE {} counter\n", def.name)), "{}", def.name);
    }
    assert!(!text.contains("# UNIT") && !text.contains("# EOF"));
}
