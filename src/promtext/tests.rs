//! Unit tests: one per line form and per error, family grouping, queries, deltas.

use super::*;

fn one_sample(text: &str) -> Sample {
    let exp = parse(text);
    assert!(exp.line_errors.is_empty(), "{text:?}: {:?}", exp.line_errors);
    let samples: Vec<&Sample> = exp.families.iter().flat_map(|f| &f.samples).collect();
    assert_eq!(samples.len(), 1, "{text:?}");
    samples[0].clone()
}

fn error_of(text: &str) -> String {
    let exp = parse(text);
    assert_eq!(exp.line_errors.len(), 1, "{text:?}: {:?}", exp.line_errors);
    assert_eq!(exp.sample_count(), 0, "{text:?} should drop the sample");
    exp.line_errors[0].message.clone()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn all() -> LabelFilter {
    LabelFilter::new()
}

// ---- line forms ----

#[test]
fn bare_sample() {
    let s = one_sample("foo 1");
    assert_eq!(&*s.name, "foo");
    assert!(s.labels.is_empty());
    assert_eq!(s.value, 1.0);
    assert_eq!(s.timestamp, None);
}

#[test]
fn colon_names() {
    let s = one_sample("vllm:num_requests_running{engine=\"0\",model_name=\"tiny\"} 3.0");
    assert_eq!(&*s.name, "vllm:num_requests_running");
    assert_eq!(s.labels, labels(&[("engine", "0"), ("model_name", "tiny")]));
    assert_eq!(&*one_sample(":leading_colon 1").name, ":leading_colon");
}

#[test]
fn labels_are_sorted_whatever_the_order() {
    let a = one_sample("m{z=\"1\",a=\"2\",m=\"3\"} 1");
    let b = one_sample("m{a=\"2\",m=\"3\",z=\"1\"} 1");
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.labels.iter().next(), Some(("a", "2")));
}

#[test]
fn label_escapes() {
    let s = one_sample(r#"m{path="C:\\DIR\\FILE.TXT",q="say \"hi\"",n="a\nb",odd="\t\x"} 1"#);
    assert_eq!(s.labels.get("path"), Some(r"C:\DIR\FILE.TXT"));
    assert_eq!(s.labels.get("q"), Some("say \"hi\""));
    assert_eq!(s.labels.get("n"), Some("a\nb"));
    assert_eq!(s.labels.get("odd"), Some(r"\t\x"), "unknown escapes kept as written");
}

#[test]
fn label_values_with_delimiters() {
    let s = one_sample(r#"m{a="x,y=z}",b="{}",c=""} 1"#);
    assert_eq!(s.labels.get("a"), Some("x,y=z}"));
    assert_eq!(s.labels.get("b"), Some("{}"));
    assert_eq!(s.labels.get("c"), Some(""));
}

#[test]
fn label_unicode() {
    let s = one_sample("m{a=\"ünïcødé ✓ 日本\"} 1");
    assert_eq!(s.labels.get("a"), Some("ünïcødé ✓ 日本"));
}

#[test]
fn trailing_comma_and_spaces() {
    let s = one_sample("m { a = \"1\" , b=\"2\", } 1");
    assert_eq!(s.labels, labels(&[("a", "1"), ("b", "2")]));
    assert_eq!(one_sample("m{} 1").labels.len(), 0);
    assert_eq!(one_sample("m{a=\"1\",}2").value, 2.0, "no blank needed after the closing brace");
}

#[test]
fn tabs_and_leading_blanks() {
    let s = one_sample("\t  m\t{a=\"1\"}\t5\t1000");
    assert_eq!(s.value, 5.0);
    assert_eq!(s.timestamp.map(|t| t.value), Some(1000.0));
}

#[test]
fn special_values() {
    assert!(one_sample("m NaN").value.is_nan());
    assert_eq!(one_sample("m +Inf").value, f64::INFINITY);
    assert_eq!(one_sample("m Inf").value, f64::INFINITY);
    assert_eq!(one_sample("m -Inf").value, f64::NEG_INFINITY);
    assert_eq!(one_sample("m 1.5e+09").value, 1.5e9);
    assert_eq!(one_sample("m -3982045").value, -3982045.0);
    assert_eq!(one_sample("m 9.75010481363281e-06").value, 9.75010481363281e-06);
    assert_eq!(one_sample("m 1E3").value, 1000.0);
}

#[test]
fn classic_timestamp_is_milliseconds() {
    let exp = parse("m 1 1395066363000\n");
    assert_eq!(exp.format, Format::Classic);
    let ts = exp.families[0].samples[0].timestamp.unwrap();
    assert_eq!(ts.value, 1395066363000.0);
    assert_eq!(ts.unit, TimestampUnit::Milliseconds);
    assert_eq!(ts.as_seconds(), 1395066363.0);
    assert_eq!(one_sample("m 1 -5").timestamp.unwrap().value, -5.0);
}

#[test]
fn openmetrics_timestamp_is_seconds() {
    let exp = parse("# TYPE m gauge\nm 1 1520879607.789\n# EOF\n");
    assert_eq!(exp.format, Format::OpenMetrics);
    let ts = exp.families[0].samples[0].timestamp.unwrap();
    assert_eq!(ts.value, 1520879607.789);
    assert_eq!(ts.unit, TimestampUnit::Seconds);
}

#[test]
fn exemplar_is_parsed() {
    let s = one_sample("foo_bucket{le=\"0.1\"} 8 # {trace_id=\"abc\"} 0.05 1520879607.789");
    let e = s.exemplar.unwrap();
    assert_eq!(e.labels.get("trace_id"), Some("abc"));
    assert_eq!(e.value, 0.05);
    assert_eq!(e.timestamp, Some(1520879607.789));
    let s = one_sample("foo_total 3 1520879607 # {a=\"b\"} 1");
    assert_eq!(s.exemplar.unwrap().timestamp, None);
    assert_eq!(s.timestamp.unwrap().value, 1520879607.0);
}

#[test]
fn bad_exemplar_keeps_the_sample() {
    for text in ["m 1 # garbage", "m 1 # {a=\"b\"", "m 1 # {a=\"b\"} x", "m 1 # {a=\"b\"} 1 2 3"] {
        let exp = parse(text);
        assert_eq!(exp.sample_count(), 1, "{text}");
        assert_eq!(exp.families[0].samples[0].value, 1.0);
        assert_eq!(exp.line_errors.len(), 1, "{text}");
        assert!(exp.line_errors[0].message.contains("exemplar ignored"), "{text}");
    }
}

#[test]
fn quoted_metric_name() {
    let s = one_sample(r#"{"my.metric", "label.x"="v", b="2"} 4"#);
    assert_eq!(&*s.name, "my.metric");
    assert_eq!(s.labels, labels(&[("b", "2"), ("label.x", "v")]));
    assert_eq!(&*one_sample(r#"{"only.name"} 1"#).name, "only.name");
    assert_eq!(&*one_sample(r#"{b="2","late.name"} 1"#).name, "late.name");
    let s = one_sample(r#"plain{"label with space"="v"} 1"#);
    assert_eq!(s.labels.get("label with space"), Some("v"));
}

#[test]
fn quoted_name_in_directives() {
    let exp = parse("# HELP \"my.metric\" dotted\n# TYPE \"my.metric\" counter\n{\"my.metric\"} 2\n");
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    let f = exp.family("my.metric").unwrap();
    assert_eq!(f.kind, MetricType::Counter);
    assert_eq!(f.help.as_deref(), Some("dotted"));
    assert_eq!(exp.counter_sum("my.metric", &all()), Some(2.0));
}

#[test]
fn crlf_and_blank_lines() {
    let exp = parse("# TYPE a gauge\r\n\r\na{x=\"1\"} 1\r\n   \r\n\ta 2\r\n");
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    assert_eq!(exp.gauge_values("a", &all()), vec![1.0, 2.0]);
    assert_eq!(exp.family("a").unwrap().samples[0].labels.get("x"), Some("1"), "no \\r in values");
}

#[test]
fn comments_with_and_without_space() {
    let exp = parse("#comment\n# another comment\n#\n# HELPER not help\nm 1\n");
    assert!(exp.line_errors.is_empty());
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.families[0].help, None);
}

#[test]
fn help_unescapes() {
    let exp = parse("# HELP m  A \\\\ backslash\\nand a newline \\\"q\\\" \\t. \n# TYPE m gauge\nm 1\n");
    assert!(exp.line_errors.is_empty());
    let f = exp.family("m").unwrap();
    assert_eq!(f.help.as_deref(), Some("A \\ backslash\nand a newline \"q\" \\t. "));
    let exp = parse("#HELP m\n");
    assert_eq!(exp.family("m").unwrap().help.as_deref(), Some(""));
}

#[test]
fn type_keywords() {
    let text = "# TYPE a counter\n# TYPE b GAUGE\n# TYPE c histogram\n# TYPE d summary\n# TYPE e untyped\n";
    let exp = parse(text);
    assert_eq!(exp.format, Format::Classic);
    let kinds: Vec<MetricType> = exp.families.iter().map(|f| f.kind).collect();
    use MetricType::*;
    assert_eq!(kinds, vec![Counter, Gauge, Histogram, Summary, Untyped]);
    for (word, kind) in
        [("unknown", Untyped), ("gaugehistogram", GaugeHistogram), ("info", Info), ("stateset", StateSet)]
    {
        let exp = parse(&format!("# TYPE x {word}\n"));
        assert_eq!(exp.families[0].kind, kind);
        assert_eq!(exp.format, Format::OpenMetrics, "{word} is OpenMetrics-only");
    }
}

#[test]
fn unit_line() {
    let exp = parse("# TYPE x_seconds gauge\n# UNIT x_seconds seconds\nx_seconds 1\n");
    assert_eq!(exp.family("x_seconds").unwrap().unit.as_deref(), Some("seconds"));
    assert_eq!(exp.format, Format::OpenMetrics);
}

#[test]
fn eof_ends_parsing() {
    let exp = parse("a 1\n# EOF\nb 2\ngarbage {{{\n");
    assert_eq!(exp.families.len(), 1);
    assert!(exp.line_errors.is_empty());
    assert_eq!(exp.format, Format::OpenMetrics);
    assert_eq!(parse("a 1\n#EOF\nb 2").families.len(), 1);
    assert_eq!(parse("a 1\n# EOF not really\nb 2").families.len(), 2, "a comment, not EOF");
}

#[test]
fn no_trailing_newline_and_empty_input() {
    assert_eq!(parse("a 1").sample_count(), 1);
    let empty = parse("");
    assert!(empty.families.is_empty() && empty.line_errors.is_empty());
    assert!(parse("\n\n\r\n").families.is_empty());
}

// ---- errors: one bad line never fails the document ----

#[test]
fn error_invalid_metric_name() {
    assert!(error_of("1abc 1").contains("invalid metric name"));
    assert!(error_of("foo-bar 1").contains("invalid character in metric name"));
    assert!(error_of("{\"\"} 1").contains("empty metric name"));
    assert!(error_of("{a=\"b\"} 1").contains("without a quoted metric name"));
}

#[test]
fn error_labels() {
    assert!(error_of("m{a=\"1\" 1").contains("expected `,` or `}`"));
    assert!(error_of("m{a=\"1\"").contains("unterminated label set"));
    assert!(error_of("m{a=\"1} 1").contains("unterminated quoted string"));
    assert!(error_of("m{a=1} 1").contains("not quoted"));
    assert!(error_of("m{a} 1").contains("expected `=`"));
    assert!(error_of("m{1a=\"x\"} 1").contains("invalid label name"));
    assert!(error_of("m{a=\"1\",a=\"2\"} 1").contains("repeated"));
    assert!(error_of("m{\"x\",\"y\"} 1").contains("expected `=`"), "a second bare quoted name");
}

#[test]
fn error_values() {
    assert!(error_of("m").contains("missing value"));
    assert!(error_of("m{a=\"1\"}").contains("missing value"));
    assert!(error_of("m abc").contains("invalid value"));
    assert!(error_of("m 1 x").contains("invalid timestamp"));
    assert!(error_of("m 1 NaN").contains("invalid timestamp"));
    assert!(error_of("m 1 2 3").contains("unexpected text"));
}

#[test]
fn error_directives() {
    let exp = parse("# TYPE\n# TYPE m\n# TYPE m bogus\n# HELP\n# TYPE 1m gauge\n# TYPE m- gauge\n# UNIT \"x\n");
    let messages: Vec<&str> = exp.line_errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(exp.line_errors.iter().map(|e| e.line_no).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6, 7]);
    assert!(messages[0].contains("without a metric name"));
    assert!(messages[1].contains("without a type"));
    assert!(messages[2].contains("unknown metric type `bogus`"));
    assert!(messages[3].contains("HELP line without a metric name"));
    assert!(messages[4].contains("invalid metric name"));
    assert!(messages[5].contains("invalid character after the metric name"));
    assert!(messages[6].contains("unterminated"));
}

#[test]
fn error_second_type_and_help_are_ignored() {
    let exp = parse("# HELP m one\n# HELP m two\n# TYPE m gauge\n# TYPE m counter\nm 1\n");
    assert_eq!(exp.line_errors.len(), 2);
    let f = exp.family("m").unwrap();
    assert_eq!(f.kind, MetricType::Gauge);
    assert_eq!(f.help.as_deref(), Some("one"));
}

#[test]
fn error_type_after_samples() {
    let exp = parse("m 1\n# TYPE m counter\n");
    assert_eq!(exp.line_errors.len(), 1);
    assert!(exp.line_errors[0].message.contains("after samples"));
    assert_eq!(exp.family("m").unwrap().kind, MetricType::Untyped);
}

#[test]
fn error_duplicate_series_keeps_first() {
    let exp = parse("m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\nm{a=\"1\"} 3\n");
    assert_eq!(exp.line_errors.len(), 1);
    assert_eq!(exp.line_errors[0].line_no, 2);
    assert!(exp.line_errors[0].message.contains("duplicate series"));
    assert_eq!(exp.gauge_values("m", &all()), vec![1.0, 3.0]);
    assert!(exp.flaw_of("m").unwrap().contains("duplicate series"), "{:?}", exp.flaw_of("m"));
}

#[test]
fn cumulative_buckets_that_go_down_flag_the_histogram() {
    let text = "# TYPE h histogram\n\
                h_bucket{le=\"0.1\",x=\"a\"} 5\nh_bucket{le=\"1\",x=\"a\"} 3\nh_bucket{le=\"+Inf\",x=\"a\"} 7\n\
                h_count{x=\"a\"} 7\nh_sum{x=\"a\"} 2\n";
    let exp = parse(text);
    assert_eq!(exp.line_errors.len(), 1, "{:?}", exp.line_errors);
    assert_eq!(exp.line_errors[0].line_no, 3);
    assert!(exp.line_errors[0].message.contains("bucket counts go down"), "{:?}", exp.line_errors);
    assert!(exp.flaw_of("h").unwrap().contains("le=0.1 has 5 but le=1 has 3"), "{:?}", exp.flaw_of("h"));
    // The samples are kept: only the judgement is withheld.
    assert_eq!(exp.histogram("h", &all()).unwrap().count, 7.0);

    // Monotonic buckets, two series printed one after the other, are not flagged: the first
    // bucket of the second series is lower than the last of the first, as it may be.
    let ok = parse(
        "# TYPE h histogram\nh_bucket{le=\"1\",x=\"a\"} 5\nh_bucket{le=\"+Inf\",x=\"a\"} 9\n\
         h_bucket{le=\"1\",x=\"b\"} 1\nh_bucket{le=\"+Inf\",x=\"b\"} 1\n",
    );
    assert!(ok.line_errors.is_empty(), "{:?}", ok.line_errors);
    assert_eq!(ok.flaw_of("h"), None);
    // A gauge that goes down between lines is no flaw.
    assert_eq!(parse("# TYPE g gauge\ng{le=\"1\"} 5\ng{le=\"2\"} 1\n").flaw_of("g"), None);
}

#[test]
fn bad_lines_do_not_affect_good_ones() {
    let text = "# TYPE c counter\nc_total 1\nc_total{ 5\n\u{0}\u{1}binary\nc_total{x=\"y\"} 2\n";
    let exp = parse(text);
    assert_eq!(exp.line_errors.iter().map(|e| e.line_no).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(exp.counter_sum("c", &all()), Some(3.0));
}

#[test]
fn error_message_quotes_a_bounded_excerpt() {
    let long = format!("m{{a=\"{}", "é".repeat(200));
    let exp = parse(&long);
    let message = &exp.line_errors[0].message;
    assert!(message.len() < 200, "{message}");
    assert!(message.ends_with("...`"));
    assert_eq!(exp.line_errors[0].to_string(), format!("line 1: {message}"));
}

// ---- family grouping ----

#[test]
fn histogram_owns_its_samples_in_any_order() {
    let text = "# TYPE h histogram\nh_sum 3\nh_count 2\nh_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"1\"} 1\nh_created 100\n";
    let exp = parse(text);
    assert_eq!(exp.families.len(), 1);
    let data = exp.histogram("h", &all()).unwrap();
    assert_eq!(data.buckets, vec![(1.0, 1.0), (f64::INFINITY, 2.0)]);
    assert_eq!((data.sum, data.count), (3.0, 2.0));
    assert_eq!(exp.created("h", &all()), vec![(Labels::new(), 100.0)]);
}

#[test]
fn summary_owns_quantiles_sum_count() {
    let text = "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.9\"} 2\ns_sum 10\ns_count 5\ns_created 7\n";
    let exp = parse(text);
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.families[0].samples.len(), 5);
    assert_eq!(exp.created("s", &all()), vec![(Labels::new(), 7.0)]);
}

#[test]
fn classic_counter_with_separate_created_gauge() {
    let text = "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n\
                # TYPE vllm:prompt_tokens_total counter\n\
                vllm:prompt_tokens_total{engine=\"0\",model_name=\"tiny\"} 472.0\n\
                # HELP vllm:prompt_tokens_created Number of prefill tokens processed.\n\
                # TYPE vllm:prompt_tokens_created gauge\n\
                vllm:prompt_tokens_created{engine=\"0\",model_name=\"tiny\"} 1.795415514970728e+09\n";
    let exp = parse(text);
    assert_eq!(exp.families.len(), 2);
    assert_eq!(exp.family("vllm:prompt_tokens_created").unwrap().kind, MetricType::Gauge);
    for name in ["vllm:prompt_tokens_total", "vllm:prompt_tokens"] {
        assert_eq!(exp.counter_sum(name, &all()), Some(472.0), "{name}");
        let created = exp.created(name, &all());
        assert_eq!(created, vec![(labels(&[("engine", "0"), ("model_name", "tiny")]), 1.795415514970728e9)]);
    }
    assert_eq!(exp.counter_sum("vllm:prompt_tokens_created", &all()), None, "a gauge is no counter");
}

#[test]
fn openmetrics_counter_with_total_and_created_inside() {
    let text =
        "# TYPE x counter\n# HELP x Things.\nx_total{a=\"1\"} 5\nx_created{a=\"1\"} 99\nx_total{a=\"2\"} 6\n# EOF\n";
    let exp = parse(text);
    assert_eq!(exp.families.len(), 1);
    assert_eq!(exp.format, Format::OpenMetrics);
    for name in ["x", "x_total"] {
        assert_eq!(exp.counter_sum(name, &all()), Some(11.0), "{name}");
        assert_eq!(exp.counter_sum(name, &LabelFilter::new().with("a", "2")), Some(6.0));
        assert_eq!(exp.created(name, &all()), vec![(labels(&[("a", "1")]), 99.0)]);
    }
}

#[test]
fn total_suffix_never_makes_a_counter() {
    let text = "# TYPE vllm:iteration_tokens_total histogram\n\
                vllm:iteration_tokens_total_bucket{le=\"1.0\"} 3\n\
                vllm:iteration_tokens_total_bucket{le=\"+Inf\"} 4\n\
                vllm:iteration_tokens_total_count 4\n\
                vllm:iteration_tokens_total_sum 9\n\
                # TYPE vllm:iteration_tokens_total_created gauge\n\
                vllm:iteration_tokens_total_created 12\n";
    let exp = parse(text);
    assert_eq!(exp.families.len(), 2);
    assert_eq!(exp.family("vllm:iteration_tokens_total").unwrap().kind, MetricType::Histogram);
    assert_eq!(exp.counter_sum("vllm:iteration_tokens_total", &all()), None);
    assert_eq!(exp.counter_sum("vllm:iteration_tokens", &all()), None);
    assert_eq!(exp.histogram("vllm:iteration_tokens_total", &all()).unwrap().count, 4.0);
    assert_eq!(exp.created("vllm:iteration_tokens_total", &all()), vec![(Labels::new(), 12.0)]);
}

#[test]
fn no_prefix_matching() {
    // `foo` is a gauge: `foo_bucket` and `foo_total` are not its samples.
    let exp = parse("# TYPE foo gauge\nfoo 1\nfoo_bucket{le=\"1\"} 2\nfoo_total 3\n");
    assert_eq!(exp.families.len(), 3);
    assert_eq!(exp.family("foo_bucket").unwrap().kind, MetricType::Untyped);
    assert_eq!(exp.gauge_values("foo", &all()), vec![1.0]);
    assert_eq!(exp.counter_sum("foo", &all()), Some(3.0), "untyped foo_total is the fallback");
}

#[test]
fn untyped_samples() {
    let exp = parse("a 1\nb{x=\"y\"} 2\na{z=\"1\"} 3\n");
    assert_eq!(exp.families.len(), 2);
    assert!(exp.families.iter().all(|f| f.kind == MetricType::Untyped));
    assert_eq!(exp.gauge_values("a", &all()), vec![1.0, 3.0]);
}

#[test]
fn declared_family_wins_over_earlier_untyped_sample() {
    let exp = parse("h_sum 1\n# TYPE h histogram\nh_sum 2\nh_count 1\n");
    assert_eq!(exp.family("h_sum").unwrap().samples.len(), 1);
    assert_eq!(exp.family("h").unwrap().samples.len(), 2);
}

#[test]
fn interleaved_family_samples_are_grouped() {
    let exp = parse("# TYPE a gauge\n# TYPE b gauge\na{x=\"1\"} 1\nb 2\na{x=\"2\"} 3\n");
    assert_eq!(exp.gauge_values("a", &all()), vec![1.0, 3.0]);
}

#[test]
fn openmetrics_only_families() {
    let text = "# TYPE i info\ni_info{version=\"1\"} 1\n# TYPE s stateset\ns{s=\"a\"} 1\ns{s=\"b\"} 0\n\
                # TYPE g gaugehistogram\ng_bucket{le=\"1\"} 1\ng_bucket{le=\"+Inf\"} 2\ng_gcount 2\ng_gsum 1.5\n# EOF\n";
    let exp = parse(text);
    assert!(exp.line_errors.is_empty());
    assert_eq!(exp.families.len(), 3);
    let g = exp.histogram("g", &all()).unwrap();
    assert_eq!((g.count, g.sum), (2.0, 1.5));
}

// ---- queries ----

fn vllm_like(prompt: f64, created: f64, start: f64) -> Exposition {
    parse(&format!(
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}\n\
         # TYPE p_total counter\np_total{{engine=\"0\",model_name=\"a\"}} {prompt}\np_total{{engine=\"1\",model_name=\"a\"}} 10\n\
         p_total{{engine=\"0\",model_name=\"b\"}} 100\n\
         # TYPE p_created gauge\np_created{{engine=\"0\",model_name=\"a\"}} {created}\np_created{{engine=\"1\",model_name=\"a\"}} 5\n\
         p_created{{engine=\"0\",model_name=\"b\"}} 5\n\
         # TYPE h histogram\nh_bucket{{engine=\"0\",le=\"1\"}} {prompt}\nh_bucket{{engine=\"0\",le=\"+Inf\"}} {prompt}\n\
         h_sum{{engine=\"0\"}} {prompt}\nh_count{{engine=\"0\"}} {prompt}\n\
         h_bucket{{engine=\"1\",le=\"1.0\"}} 1\nh_bucket{{engine=\"1\",le=\"+Inf\"}} 3\nh_sum{{engine=\"1\"}} 4\nh_count{{engine=\"1\"}} 3\n\
         # TYPE h_created gauge\nh_created{{engine=\"0\"}} {created}\nh_created{{engine=\"1\"}} 5\n"
    ))
}

#[test]
fn counter_sum_filters() {
    let exp = vllm_like(7.0, 5.0, 1.0);
    assert_eq!(exp.counter_sum("p", &all()), Some(117.0));
    assert_eq!(exp.counter_sum("p_total", &LabelFilter::new().with("model_name", "a")), Some(17.0));
    assert_eq!(exp.counter_sum("p", &LabelFilter::new().with("model_name", "zzz")), None);
    assert_eq!(exp.counter_sum("absent", &all()), None);
    assert_eq!(exp.counter_series("p", &LabelFilter::new().with("engine", "1")).len(), 1);
}

#[test]
fn histogram_merges_series_by_le() {
    let exp = vllm_like(2.0, 5.0, 1.0);
    let h = exp.histogram("h", &all()).unwrap();
    assert_eq!(h.buckets, vec![(1.0, 3.0), (f64::INFINITY, 5.0)]);
    assert_eq!((h.sum, h.count), (6.0, 5.0));
    let one = exp.histogram("h", &LabelFilter::new().with("engine", "1")).unwrap();
    assert_eq!(one.count, 3.0);
    assert_eq!(exp.histogram_series("h", &all()).len(), 2);
    assert_eq!(exp.histogram("h", &LabelFilter::new().with("engine", "9")), None);
    assert_eq!(exp.histogram("p_total", &all()), None, "not a histogram");
}

#[test]
fn histogram_count_falls_back_to_inf_bucket() {
    let exp = parse("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n");
    let h = exp.histogram("h", &all()).unwrap();
    assert_eq!(h.count, 2.0);
    assert!(h.sum.is_nan());
    assert_eq!(h.mean(), None);
}

#[test]
fn gauge_values_only_for_gauges() {
    let exp = vllm_like(1.0, 5.0, 42.0);
    assert_eq!(exp.gauge_values("process_start_time_seconds", &all()), vec![42.0]);
    assert_eq!(exp.process_start_time(), Some(42.0));
    assert!(exp.gauge_values("p_total", &all()).is_empty());
    assert!(exp.gauge_values("absent", &all()).is_empty());
}

// ---- deltas ----

#[test]
fn counter_delta_ok() {
    let before = vllm_like(7.0, 5.0, 1.0);
    let after = vllm_like(20.0, 5.0, 1.0);
    assert_eq!(counter_delta(&before, &after, "p", &all()), Ok(13.0));
    assert_eq!(counter_delta(&before, &after, "p_total", &LabelFilter::new().with("model_name", "b")), Ok(0.0));
}

#[test]
fn counter_delta_detects_decrease() {
    let before = vllm_like(20.0, 5.0, 1.0);
    let after = vllm_like(7.0, 5.0, 1.0);
    let err = counter_delta(&before, &after, "p", &all()).unwrap_err();
    assert_eq!(
        err,
        DeltaError::Reset {
            series: labels(&[("engine", "0"), ("model_name", "a")]),
            reason: ResetReason::Decreased { before: 20.0, after: 7.0 }
        }
    );
    assert_eq!(err.as_label(), "reset");
}

#[test]
fn counter_delta_detects_created_change_even_when_value_grew() {
    let before = vllm_like(7.0, 5.0, 1.0);
    let after = vllm_like(20.0, 6.0, 1.0);
    let err = counter_delta(&before, &after, "p_total", &all()).unwrap_err();
    assert!(matches!(err, DeltaError::Reset { reason: ResetReason::CreatedChanged { before: 5.0, after: 6.0 }, .. }));
    let err = histogram_delta(&before, &after, "h", &all()).unwrap_err();
    assert!(matches!(err, DeltaError::Reset { reason: ResetReason::CreatedChanged { .. }, .. }));
}

#[test]
fn counter_delta_detects_process_restart() {
    let before = vllm_like(7.0, 5.0, 1.0);
    let after = vllm_like(20.0, 5.0, 2.0);
    let err = counter_delta(&before, &after, "p", &all()).unwrap_err();
    assert!(matches!(err, DeltaError::Reset { reason: ResetReason::ProcessRestarted { .. }, .. }));
    assert!(err.to_string().contains("process_start_time_seconds changed"), "{err}");
}

#[test]
fn counter_delta_missing() {
    let full = vllm_like(7.0, 5.0, 1.0);
    let empty = parse("");
    assert_eq!(counter_delta(&empty, &full, "p", &all()), Err(DeltaError::Missing { which: Which::Before }));
    assert_eq!(counter_delta(&full, &empty, "p", &all()), Err(DeltaError::Missing { which: Which::After }));
    let err = counter_delta(&full, &empty, "p", &all()).unwrap_err();
    assert_eq!(err.as_label(), "missing");
    assert_eq!(err.to_string(), "metric absent from the after snapshot");
}

#[test]
fn counter_delta_new_and_vanished_series() {
    let before = parse("# TYPE c_total counter\nc_total{a=\"1\"} 5\n");
    let after = parse("# TYPE c_total counter\nc_total{a=\"1\"} 6\nc_total{a=\"2\"} 4\n");
    assert_eq!(counter_delta(&before, &after, "c", &all()), Ok(5.0), "new series counts from zero");
    let gone = parse("# TYPE c_total counter\nc_total{a=\"1\"} 7\n");
    let err = counter_delta(&after, &gone, "c", &all()).unwrap_err();
    assert_eq!(err, DeltaError::Reset { series: labels(&[("a", "2")]), reason: ResetReason::SeriesVanished });
}

#[test]
fn counter_delta_across_formats() {
    let before = parse("# TYPE c_total counter\nc_total{a=\"1\"} 5\n");
    let after = parse("# TYPE c counter\nc_total{a=\"1\"} 8\nc_created{a=\"1\"} 3\n# EOF\n");
    assert_eq!(counter_delta(&before, &after, "c", &all()), Ok(3.0));
}

#[test]
fn histogram_delta_ok() {
    let before = vllm_like(2.0, 5.0, 1.0);
    let after = vllm_like(6.0, 5.0, 1.0);
    let d = histogram_delta(&before, &after, "h", &all()).unwrap();
    assert_eq!(d.buckets, vec![(1.0, 4.0), (f64::INFINITY, 4.0)]);
    assert_eq!((d.sum, d.count), (4.0, 4.0));
    assert_eq!(d.mean(), Some(1.0));
    assert_eq!(d.quantile(0.5), Some(0.5));
}

#[test]
fn histogram_delta_resets() {
    let before = vllm_like(6.0, 5.0, 1.0);
    let after = vllm_like(2.0, 5.0, 1.0);
    assert!(matches!(
        histogram_delta(&before, &after, "h", &all()),
        Err(DeltaError::Reset { reason: ResetReason::Decreased { .. }, .. })
    ));
    let a = parse("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n");
    let b = parse("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n");
    assert!(matches!(
        histogram_delta(&a, &b, "h", &all()),
        Err(DeltaError::Reset { reason: ResetReason::BucketsChanged, .. })
    ));
    // A bucket going down while the count grows is still a reset.
    let c = parse("# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 1\n");
    assert!(matches!(
        histogram_delta(&a, &c, "h", &all()),
        Err(DeltaError::Reset { reason: ResetReason::Decreased { before: 1.0, after: 0.0 }, .. })
    ));
    assert_eq!(histogram_delta(&parse(""), &a, "h", &all()), Err(DeltaError::Missing { which: Which::Before }));
}

// ---- render ----

#[test]
fn render_round_trip_of_a_mixed_document() {
    let text = "# HELP a_total A \\\\ help\\nline two\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1.5 1000\n\
                # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum NaN\nh_count 2\n\
                # TYPE s summary\ns{quantile=\"0.5\"} -Inf\ns_sum 1e-7\ns_count 3\n\
                {\"dotted.name\",\"dotted.label\"=\"v\"} +Inf\nplain{z=\"1\"} 0\n";
    let exp = parse(text);
    assert!(exp.line_errors.is_empty(), "{:?}", exp.line_errors);
    let rendered = exp.render();
    let again = parse(&rendered);
    assert!(again.line_errors.is_empty(), "{rendered}\n{:?}", again.line_errors);
    assert_eq!(again.render(), rendered);
    assert_eq!(again.families.len(), exp.families.len());
    assert!(rendered.contains("{\"dotted.name\",\"dotted.label\"=\"v\"} +Inf\n"), "{rendered}");
    assert!(rendered.contains("# HELP a_total A \\\\ help\\nline two\n"), "{rendered}");
}

#[test]
fn render_converts_openmetrics_timestamps() {
    let exp = parse("# TYPE m gauge\nm 1 1520879607.789\n# EOF\n");
    assert_eq!(exp.render(), "# TYPE m gauge\nm 1.0 1520879607789\n");
}

#[test]
fn json_shape() {
    let exp = parse("# TYPE m gauge\nm{a=\"b\"} 1\n");
    let json = serde_json::to_value(&exp).unwrap();
    assert_eq!(json["format"], "classic");
    assert_eq!(json["families"][0]["type"], "gauge");
    assert_eq!(json["families"][0]["samples"][0]["labels"]["a"], "b");
}

#[test]
fn histograms_without_type_lines_are_read_by_their_suffixes() {
    // A federated or pasted copy: no # TYPE or # HELP at all.
    let text = "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.1\"} 3\n\
                vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 5\n\
                vllm:time_to_first_token_seconds_sum{model_name=\"m\"} 0.9\n\
                vllm:time_to_first_token_seconds_count{model_name=\"m\"} 5\n\
                vllm:request_success_total{model_name=\"m\",finished_reason=\"stop\"} 5\n";
    let e = parse(text);
    assert!(e.line_errors.is_empty(), "{:?}", e.line_errors);
    let h = e.histogram("vllm:time_to_first_token_seconds", &LabelFilter::new()).expect("a histogram");
    assert_eq!((h.count, h.sum), (5.0, 0.9));
    assert_eq!(h.buckets, vec![(0.1, 3.0), (f64::INFINITY, 5.0)]);
    assert!(e.family("vllm:time_to_first_token_seconds_sum").is_none(), "absorbed");
    assert_eq!(e.counter_sum("vllm:request_success_total", &LabelFilter::new()), Some(5.0));
    // A declared family keeps its type, and an untyped `_bucket` without `le` is left alone.
    let e = parse("# TYPE x gauge\nx 1\ny_bucket{a=\"1\"} 2\n");
    assert_eq!(e.family("x").unwrap().kind, MetricType::Gauge);
    assert_eq!(e.family("y_bucket").unwrap().kind, MetricType::Untyped);
}

#[test]
fn an_exposition_cut_mid_line_is_flagged() {
    let cut = parse("# TYPE a counter\na_total 12\nb_total 3");
    assert!(cut.looks_cut(), "{:?}", cut.line_errors);
    for whole in ["# TYPE a counter\na_total 12\n", "a_total 1\n# EOF", "a_total 1\n\n", ""] {
        assert!(!parse(whole).looks_cut(), "{whole:?}");
    }
}
