//! Golden-file tests of `promtext`: a real vLLM 0.32 scrape, the Prometheus docs' example, an
//! OpenMetrics sample, a v0-style (multiprocess) vLLM scrape and garbage.

use std::path::PathBuf;

use llm_loadtest::promtext::{
    DeltaError, Exposition, Format, LabelFilter, MetricType, ResetReason, Sample, TimestampUnit, counter_delta,
    histogram_delta, parse,
};

fn golden(name: &str) -> String {
    let bytes = std::fs::read(golden_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn all() -> LabelFilter {
    LabelFilter::new()
}

fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Structural equality with NaN equal to NaN.
fn assert_same(a: &Exposition, b: &Exposition) {
    assert_eq!(a.format, b.format);
    assert_eq!(a.families.len(), b.families.len());
    for (fa, fb) in a.families.iter().zip(&b.families) {
        assert_eq!((&fa.name, fa.kind, &fa.help), (&fb.name, fb.kind, &fb.help));
        assert_eq!(fa.samples.len(), fb.samples.len(), "{}", fa.name);
        for (sa, sb) in fa.samples.iter().zip(&fb.samples) {
            assert_eq!((&sa.name, &sa.labels, sa.timestamp), (&sb.name, &sb.labels, sb.timestamp));
            assert!(same_value(sa.value, sb.value), "{} {} vs {}", sa.name, sa.value, sb.value);
        }
    }
}

/// Sum of the last field of every line starting with `prefix` — an independent, naive reading.
fn hand_sum(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap()).sum()
}

// ---- real vLLM 0.32 scrape ----

#[test]
fn vllm_032_structure() {
    let text = golden("vllm-0.32-metrics.txt");
    let exp = parse(&text);
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    assert_eq!(exp.format, Format::Classic);
    assert_eq!(exp.families.len(), 92, "one family per # TYPE line");
    assert_eq!(exp.sample_count(), 459);
    assert!(exp.families.iter().all(|f| f.help.is_some()));
    let untyped: Vec<&str> =
        exp.families.iter().filter(|f| f.kind == MetricType::Untyped).map(|f| f.name.as_str()).collect();
    assert!(untyped.is_empty(), "{untyped:?}");
    let count = |kind| exp.families.iter().filter(|f| f.kind == kind).count();
    assert_eq!(count(MetricType::Counter), 22);
    assert_eq!(count(MetricType::Histogram), 18);
    assert_eq!(count(MetricType::Summary), 2);
    assert_eq!(count(MetricType::Gauge), 50);
}

#[test]
fn vllm_032_iteration_tokens_total_is_a_histogram() {
    let exp = parse(&golden("vllm-0.32-metrics.txt"));
    let family = exp.family("vllm:iteration_tokens_total").unwrap();
    assert_eq!(family.kind, MetricType::Histogram);
    assert_eq!(exp.counter_sum("vllm:iteration_tokens_total", &all()), None);
    assert_eq!(exp.counter_sum("vllm:iteration_tokens", &all()), None);
    let h = exp.histogram("vllm:iteration_tokens_total", &all()).unwrap();
    assert_eq!(h.buckets[0], (1.0, 3984.0));
    assert_eq!(h.buckets.last().unwrap().0, f64::INFINITY);
    assert_eq!(h.count, h.buckets.last().unwrap().1);
}

#[test]
fn vllm_032_counters_match_hand_sums() {
    let text = golden("vllm-0.32-metrics.txt");
    let exp = parse(&text);
    let prompt = hand_sum(&text, "vllm:prompt_tokens_total{");
    assert_eq!(prompt, 472.0);
    assert_eq!(exp.counter_sum("vllm:prompt_tokens_total", &all()), Some(prompt));
    assert_eq!(exp.counter_sum("vllm:prompt_tokens", &all()), Some(prompt));
    let tiny = LabelFilter::new().with("model_name", "tiny").with("engine", "0");
    assert_eq!(exp.counter_sum("vllm:prompt_tokens_total", &tiny), Some(prompt));
    assert_eq!(exp.counter_sum("vllm:prompt_tokens_total", &LabelFilter::new().with("model_name", "x")), None);

    let generation = hand_sum(&text, "vllm:generation_tokens_total{");
    assert_eq!(exp.counter_sum("vllm:generation_tokens", &all()), Some(generation));
    let success = hand_sum(&text, "vllm:request_success_total{");
    assert_eq!(exp.counter_sum("vllm:request_success_total", &all()), Some(success));
    assert_eq!(success, 30.0);
    let length = LabelFilter::new().with("finished_reason", "length");
    assert_eq!(exp.counter_sum("vllm:request_success", &length), Some(29.0));
    assert_eq!(exp.counter_series("vllm:request_success", &all()).len(), 5);
    let http = hand_sum(&text, "http_requests_total{");
    assert_eq!(exp.counter_sum("http_requests", &all()), Some(http));
}

#[test]
fn vllm_032_created_families_are_gauges_not_tokens() {
    let text = golden("vllm-0.32-metrics.txt");
    let exp = parse(&text);
    let created = exp.family("vllm:prompt_tokens_created").unwrap();
    assert_eq!(created.kind, MetricType::Gauge);
    assert_eq!(created.samples.len(), 1);
    // A `_created` family never answers as a counter and never inflates the token count.
    assert_eq!(exp.counter_sum("vllm:prompt_tokens_created", &all()), None);
    assert_eq!(exp.counter_sum("vllm:prompt_tokens", &all()), Some(472.0));
    let created_families: Vec<_> = exp.families.iter().filter(|f| f.name.ends_with("_created")).collect();
    assert_eq!(created_families.len(), 38);
    assert!(created_families.iter().all(|f| f.kind == MetricType::Gauge));
    assert_eq!(
        created_families.iter().map(|f| f.samples.len()).sum::<usize>(),
        text.lines().filter(|l| !l.starts_with('#') && l.contains("_created")).count()
    );
    let c = exp.created("vllm:prompt_tokens_total", &all());
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0.get("model_name"), Some("tiny"));
    assert_eq!(c[0].1, 1.795415514970728e9);
    assert_eq!(exp.created("vllm:prompt_tokens", &all()), c);
    let h = exp.created("vllm:iteration_tokens_total", &all());
    assert_eq!(h.len(), 1, "the histogram's own `_created` gauge family");
    assert_eq!(exp.created("vllm:request_success_total", &all()).len(), 5);
}

#[test]
fn vllm_032_histograms() {
    let exp = parse(&golden("vllm-0.32-metrics.txt"));
    let e2e = exp.histogram("vllm:e2e_request_latency_seconds", &all()).unwrap();
    assert_eq!(e2e.count, 30.0);
    assert_eq!(e2e.sum, 15.650095224380493);
    assert_eq!(e2e.buckets.len(), 22);
    assert_eq!(e2e.mean(), Some(15.650095224380493 / 30.0));
    // rank 15 of 30 falls in the first bucket (0, 0.3] holding 16.
    assert_eq!(e2e.quantile(0.5), Some(0.3 * 15.0 / 16.0));
    assert_eq!(e2e.quantile(1.0), Some(5.0));
    let http = exp.histogram("http_request_duration_seconds", &all()).unwrap();
    assert_eq!(http.count, 38.0);
    assert_eq!(exp.histogram_series("http_request_duration_seconds", &all()).len(), 3);
    let chat = LabelFilter::new().with("handler", "/v1/chat/completions");
    assert_eq!(exp.histogram("http_request_duration_seconds", &chat).unwrap().count, 22.0);
    assert_eq!(exp.family("http_request_size_bytes").unwrap().kind, MetricType::Summary);
    assert!(exp.process_start_time().is_some());
}

#[test]
fn vllm_032_render_round_trip_and_self_delta() {
    let exp = parse(&golden("vllm-0.32-metrics.txt"));
    let again = parse(&exp.render());
    assert!(again.line_errors.is_empty());
    assert_same(&exp, &again);
    assert_eq!(counter_delta(&exp, &again, "vllm:prompt_tokens_total", &all()), Ok(0.0));
    let d = histogram_delta(&exp, &again, "vllm:e2e_request_latency_seconds", &all()).unwrap();
    assert_eq!((d.count, d.sum), (0.0, 0.0));
    assert_eq!(d.quantile(0.5), None, "no observations in between");
}

#[test]
fn vllm_032_delta_between_snapshots() {
    let before_text = golden("vllm-0.32-metrics.txt");
    let after_text = before_text
        .replace(
            "vllm:prompt_tokens_total{engine=\"0\",model_name=\"tiny\"} 472.0",
            "vllm:prompt_tokens_total{engine=\"0\",model_name=\"tiny\"} 600.0",
        )
        .replace(
            "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"tiny\"} 30.0",
            "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"tiny\"} 32.0",
        )
        .replace(
            "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"tiny\"} 30.0",
            "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"tiny\"} 32.0",
        )
        .replace(
            "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"tiny\"} 15.650095224380493",
            "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"tiny\"} 115.650095224380493",
        );
    let (before, after) = (parse(&before_text), parse(&after_text));
    assert_eq!(counter_delta(&before, &after, "vllm:prompt_tokens", &all()), Ok(128.0));
    let d = histogram_delta(&before, &after, "vllm:e2e_request_latency_seconds", &all()).unwrap();
    assert_eq!(d.count, 2.0);
    assert!((d.mean().unwrap() - 50.0).abs() < 1e-9);
    assert_eq!(d.quantile(0.5), Some(7680.0), "both observations above the last finite bound");

    // The server restarted: the value went down and `_created` moved.
    let restarted_text = before_text.replace("} 472.0", "} 5.0").replace("1.795415514970728e+09", "1.8e+09");
    let restarted = parse(&restarted_text);
    let err = counter_delta(&before, &restarted, "vllm:prompt_tokens_total", &all()).unwrap_err();
    assert!(matches!(err, DeltaError::Reset { reason: ResetReason::CreatedChanged { .. }, .. }), "{err}");
}

#[test]
fn vllm_032_truncated_anywhere_never_panics() {
    let text = golden("vllm-0.32-metrics.txt");
    let mut cut = 0;
    while cut < text.len() {
        let exp = parse(&text[..cut]);
        assert!(exp.families.len() <= 92);
        assert!(exp.line_errors.len() <= 1, "cut at {cut}: {:?}", exp.line_errors);
        cut += 97;
    }
}

// ---- the Prometheus docs' own example ----

#[test]
fn prometheus_docs_example() {
    let exp = parse(&golden("promtext/prometheus-docs-example.txt"));
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    assert_eq!(exp.format, Format::Classic);
    let names: Vec<(&str, MetricType)> = exp.families.iter().map(|f| (f.name.as_str(), f.kind)).collect();
    assert_eq!(
        names,
        vec![
            ("http_requests_total", MetricType::Counter),
            ("msdos_file_access_time_seconds", MetricType::Untyped),
            ("metric_without_timestamp_and_labels", MetricType::Untyped),
            ("something_weird", MetricType::Untyped),
            ("http_request_duration_seconds", MetricType::Histogram),
            ("rpc_duration_seconds", MetricType::Summary),
        ]
    );

    assert_eq!(exp.counter_sum("http_requests_total", &all()), Some(1030.0));
    assert_eq!(exp.counter_sum("http_requests", &LabelFilter::new().with("code", "400")), Some(3.0));
    let first = &exp.family("http_requests_total").unwrap().samples[0];
    let ts = first.timestamp.unwrap();
    assert_eq!((ts.value, ts.unit), (1395066363000.0, TimestampUnit::Milliseconds));

    let msdos: &Sample = &exp.family("msdos_file_access_time_seconds").unwrap().samples[0];
    assert_eq!(msdos.labels.get("path"), Some(r"C:\DIR\FILE.TXT"));
    assert_eq!(msdos.labels.get("error"), Some("Cannot find file:\n\"FILE.TXT\""));
    assert_eq!(msdos.value, 1.458255915e9);

    let weird = &exp.family("something_weird").unwrap().samples[0];
    assert_eq!(weird.value, f64::INFINITY);
    assert_eq!(weird.timestamp.unwrap().value, -3982045.0);
    assert_eq!(weird.labels.get("problem"), Some("division by zero"));
    assert_eq!(exp.gauge_values("metric_without_timestamp_and_labels", &all()), vec![12.47]);

    let h = exp.histogram("http_request_duration_seconds", &all()).unwrap();
    assert_eq!(h.count, 144320.0);
    assert_eq!(h.mean(), Some(53423.0 / 144320.0));
    let expected = 0.1 + 0.1 * (72160.0 - 33444.0) / (100392.0 - 33444.0);
    assert!((h.quantile(0.5).unwrap() - expected).abs() < 1e-12);
    assert_eq!(h.quantile(0.99), Some(1.0), "the +Inf bucket answers the last finite bound");

    let rpc = exp.family("rpc_duration_seconds").unwrap();
    assert_eq!(rpc.samples.len(), 7);
    assert_eq!(rpc.samples[4].labels.get("quantile"), Some("0.99"));
    assert_eq!(rpc.help.as_deref(), Some("A summary of the RPC duration in seconds."));

    assert_same(&exp, &parse(&exp.render()));
}

// ---- OpenMetrics ----

#[test]
fn openmetrics_example() {
    let exp = parse(&golden("promtext/openmetrics-example.txt"));
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    assert_eq!(exp.format, Format::OpenMetrics);
    assert_eq!(exp.families.len(), 9);

    let acme = exp.family("acme_http_router_request_seconds").unwrap();
    assert_eq!(acme.kind, MetricType::Summary);
    assert_eq!(acme.unit.as_deref(), Some("seconds"));
    assert_eq!(acme.samples.len(), 6);
    assert_eq!(exp.created("acme_http_router_request_seconds", &all()).len(), 2);

    for name in ["x", "x_total"] {
        assert_eq!(exp.counter_sum(name, &all()), Some(42.0), "{name}");
        assert_eq!(exp.counter_sum(name, &LabelFilter::new().with("engine", "1")), Some(25.0));
        let created = exp.created(name, &LabelFilter::new().with("engine", "0"));
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].1, 1520872607.123);
    }
    let x = exp.family("x").unwrap();
    assert_eq!(x.help.as_deref(), Some("Requests handled, with a \"quoted\" word and a\\backslash."));
    let first = &x.samples[0];
    let ts = first.timestamp.unwrap();
    assert_eq!((ts.value, ts.unit), (1520879607.789, TimestampUnit::Seconds));
    let exemplar = first.exemplar.as_ref().unwrap();
    assert_eq!(exemplar.labels.get("trace_id"), Some("abc"));
    assert_eq!((exemplar.value, exemplar.timestamp), (1.0, Some(1520879607.789)));

    assert_eq!(exp.counter_sum("process_cpu_seconds", &all()), Some(4.20072246e6));
    assert_eq!(exp.counter_sum("process_cpu_seconds_total", &all()), Some(4.20072246e6));
    assert_eq!(exp.gauge_values("go_goroutines", &all()), vec![69.0]);

    let latency = exp.family("request_latency_seconds").unwrap();
    assert_eq!(latency.samples.iter().filter(|s| s.exemplar.is_some()).count(), 3);
    let h = exp.histogram("request_latency_seconds", &all()).unwrap();
    assert_eq!((h.count, h.sum, h.buckets.len()), (17.0, 43.5, 5));
    assert_eq!(exp.created("request_latency_seconds", &all())[0].1, 1520430000.123);

    let gauge_histogram = exp.histogram("queue_depth", &all()).unwrap();
    assert_eq!((gauge_histogram.count, gauge_histogram.sum), (5.0, 7.5));
    assert_eq!(exp.family("build").unwrap().kind, MetricType::Info);
    assert_eq!(&*exp.family("build").unwrap().samples[0].name, "build_info");
    assert_eq!(exp.family("feature").unwrap().kind, MetricType::StateSet);
    assert_eq!(exp.family("mystery").unwrap().kind, MetricType::Untyped);
    assert_eq!(exp.gauge_values("mystery", &all()), vec![42.0]);
}

#[test]
fn openmetrics_and_classic_counters_delta() {
    let classic = parse("# TYPE x_total counter\nx_total{engine=\"0\",model_name=\"tiny\"} 10\n");
    let om = parse(&golden("promtext/openmetrics-example.txt"));
    let engine0 = LabelFilter::new().with("engine", "0");
    assert_eq!(counter_delta(&classic, &om, "x", &engine0), Ok(7.0));
}

// ---- v0-style vLLM, multiprocess mode ----

#[test]
fn vllm_v0_multiprocess() {
    let text = golden("promtext/vllm-v0-multiprocess.txt");
    let exp = parse(&text);
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    assert_eq!(exp.families.len(), 12);
    assert!(exp.families.iter().all(|f| !f.name.ends_with("_created")));
    assert!(exp.created("vllm:prompt_tokens_total", &all()).is_empty());
    assert_eq!(exp.process_start_time(), None);

    let model = LabelFilter::new().with("model_name", "meta-llama/Llama-3.1-8B-Instruct");
    let ttft = exp.histogram("vllm:time_to_first_token_seconds", &model).unwrap();
    assert_eq!((ttft.count, ttft.sum), (50.0, 3.7510011196136475));
    assert_eq!(ttft.buckets.len(), 17, "`_sum` before the buckets is fine");
    let p50 = ttft.quantile(0.5).unwrap();
    assert!((0.06..=0.08).contains(&p50), "{p50}");

    let e2e = exp.histogram("vllm:e2e_request_latency_seconds", &all()).unwrap();
    assert_eq!(e2e.buckets.len(), 4, "label order varies between lines");
    assert_eq!(exp.histogram_series("vllm:e2e_request_latency_seconds", &all()).len(), 1);

    assert_eq!(exp.family("vllm:iteration_tokens_total").unwrap().kind, MetricType::Histogram);
    assert_eq!(exp.counter_sum("vllm:iteration_tokens_total", &all()), None);
    assert_eq!(exp.counter_sum("vllm:prompt_tokens", &model), Some(6400.0));
    assert_eq!(exp.counter_sum("vllm:request_success", &all()), Some(50.0));
    assert_eq!(exp.gauge_values("vllm:gpu_cache_usage_perc", &all()), vec![0.0421]);
    let info = &exp.family("vllm:cache_config_info").unwrap().samples[0];
    assert_eq!(info.labels.get("num_gpu_blocks"), Some("7455"));

    let after = parse(&text.replace(
        "vllm:prompt_tokens_total{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 6400.0",
        "vllm:prompt_tokens_total{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 6912.0",
    ));
    assert_eq!(counter_delta(&exp, &after, "vllm:prompt_tokens_total", &model), Ok(512.0));
    assert!(matches!(
        counter_delta(&after, &exp, "vllm:prompt_tokens_total", &model),
        Err(DeltaError::Reset { reason: ResetReason::Decreased { before: 6912.0, after: 6400.0 }, .. })
    ));
}

// ---- garbage ----

#[test]
fn garbage_and_truncation() {
    let exp = parse(&golden("promtext/garbage.txt"));
    let bad_lines: Vec<usize> = exp.line_errors.iter().map(|e| e.line_no).collect();
    assert_eq!(bad_lines, vec![4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 19]);
    assert_eq!(exp.families.len(), 2);
    assert_eq!(exp.family("good_total").unwrap().kind, MetricType::Counter, "the second TYPE is ignored");
    assert_eq!(exp.counter_sum("good", &all()), Some(12.0), "the sample with a broken exemplar is kept");
    assert_eq!(exp.gauge_values("also_good", &all()), vec![7.0]);
    assert!(exp.line_errors[0].message.contains("invalid metric name"), "{}", exp.line_errors[0]);
    assert!(exp.line_errors.last().unwrap().message.contains("unterminated"));
}
