use super::*;

fn server_ok() -> ServerFigures {
    ServerFigures {
        finished_requests: Ok(100.0),
        finished_prompt_tokens: Ok(3200.0),
        finished_generation_tokens: Ok(6400.0),
        prompt_tokens_total: Ok(3200.0),
        generation_tokens_total: Ok(6400.0),
        ttft_mean_s: Ok(0.0438),
        e2e_mean_s: Ok(0.700),
    }
}

fn client_ok() -> ClientFigures {
    ClientFigures {
        completed: 100,
        aborted: 0,
        prompt_tokens: 3200,
        output_tokens: 6400,
        tokens_from_usage: true,
        ttft_mean: Some(45.2),
        e2e_mean_ms: Some(702.0),
        ttft_client_bound: false,
    }
}

fn by_check<'a>(cs: &'a [Comparison], name: &str) -> &'a Comparison {
    cs.iter().find(|c| c.check == name).unwrap()
}

#[test]
fn matching_figures_pass() {
    let cs = prometheus_checks(&client_ok(), &server_ok(), &Tolerances::default());
    assert_eq!(cs.len(), 5);
    assert!(cs.iter().all(|c| c.status == Status::Pass), "{cs:#?}");
    let ttft = by_check(&cs, "ttft_mean");
    // Net of the 2 ms E2E gap: 43.2 vs 43.8 ms.
    assert!((ttft.diff_pct.unwrap() + 1.370).abs() < 0.01, "{ttft:?}");
}

#[test]
fn drift_warns_only_on_the_drifting_check() {
    let mut s = server_ok();
    s.generation_tokens_total = Ok(5000.0);
    let cs = prometheus_checks(&client_ok(), &s, &Tolerances::default());
    assert_eq!(by_check(&cs, "generation_tokens").status, Status::Warn);
    assert_eq!(cs.iter().filter(|c| c.status == Status::Warn).count(), 1);
    assert_eq!(Section::from_comparisons(cs, None).status, Status::Warn);
}

#[test]
fn exactly_at_the_tolerance_passes_just_over_warns() {
    let c = compare("x", Some(105.0), &Ok(100.0), 0.05, 0.0);
    assert_eq!(c.status, Status::Pass);
    let c = compare("x", Some(105.1), &Ok(100.0), 0.05, 0.0);
    assert_eq!(c.status, Status::Warn);
    let c = compare("x", Some(0.0), &Ok(0.0), 0.05, 0.0);
    assert_eq!(c.status, Status::Pass);
    let c = compare("x", Some(3.0), &Ok(0.0), 0.05, 0.0);
    assert_eq!(c.status, Status::Warn);
    assert!(c.reason.unwrap().contains("nothing"));
}

#[test]
fn latency_floor_absorbs_small_gaps() {
    // 6 ms client vs 5 ms server is 20% but 1 ms: not drift.
    let c = latency_check("ttft_mean", Some(6.0), &Ok(5.0), 0.10, 5.0);
    assert_eq!(c.status, Status::Pass);
    let c = latency_check("ttft_mean", Some(60.0), &Ok(50.0), 0.10, 5.0);
    assert_eq!(c.status, Status::Warn);
    assert!(c.reason.unwrap().contains("client measured much more"));
    let c = latency_check("ttft_mean", Some(40.0), &Ok(50.0), 0.10, 5.0);
    assert!(c.reason.unwrap().contains("server reports more"));
}

#[test]
fn missing_server_figures_skip_with_the_reason() {
    let mut s = server_ok();
    s.ttft_mean_s = Err("vllm:time_to_first_token_seconds is absent".into());
    s.finished_requests = Err("counter reset: vllm:request_success_total went down".into());
    let cs = prometheus_checks(&client_ok(), &s, &Tolerances::default());
    let rc = by_check(&cs, "request_count");
    assert_eq!(rc.status, Status::Skip);
    assert!(rc.reason.as_deref().unwrap().contains("counter reset"));
    assert_eq!(by_check(&cs, "ttft_mean").status, Status::Skip);
    assert_eq!(Section::from_comparisons(cs, None).status, Status::Pass);
}

#[test]
fn aborted_requests_switch_token_checks_to_finished_requests() {
    // 90 completed, 10 timed out: vLLM counts 90 successes, but its token
    // counters also hold the aborted requests' tokens.
    let client = ClientFigures { completed: 90, aborted: 10, prompt_tokens: 2880, output_tokens: 5760, ..client_ok() };
    let server = ServerFigures {
        finished_requests: Ok(90.0),
        finished_prompt_tokens: Ok(2880.0),
        finished_generation_tokens: Ok(5760.0),
        prompt_tokens_total: Ok(3200.0),
        generation_tokens_total: Ok(6100.0),
        ..server_ok()
    };
    let cs = prometheus_checks(&client, &server, &Tolerances::default());
    for name in ["request_count", "prompt_tokens", "generation_tokens"] {
        assert_eq!(by_check(&cs, name).status, Status::Pass, "{name}: {cs:#?}");
    }
    assert!(by_check(&cs, "generation_tokens").reason.as_deref().unwrap().contains("aborted"));
}

#[test]
fn client_bound_ttft_is_not_blamed_on_the_server() {
    let client = ClientFigures { ttft_mean: Some(90.0), ttft_client_bound: true, ..client_ok() };
    let cs = prometheus_checks(&client, &server_ok(), &Tolerances::default());
    let c = by_check(&cs, "ttft_mean");
    assert_eq!(c.status, Status::Skip);
    assert!(c.reason.as_deref().unwrap().contains("client was the bottleneck"));
    // A client-bound run that still agrees keeps its PASS.
    let client = ClientFigures { ttft_client_bound: true, ..client_ok() };
    let cs = prometheus_checks(&client, &server_ok(), &Tolerances::default());
    assert_eq!(by_check(&cs, "ttft_mean").status, Status::Pass);
}

#[test]
fn ttft_is_compared_net_of_the_time_outside_the_engine() {
    // Measured on the real vLLM 0.32 CPU server: TTFT 36.6 vs 28.2 ms, E2E 212.5 vs 203.3 ms.
    let client = ClientFigures { ttft_mean: Some(36.6), e2e_mean_ms: Some(212.5), ..client_ok() };
    let server = ServerFigures { ttft_mean_s: Ok(0.0282), e2e_mean_s: Ok(0.2033), ..server_ok() };
    let cs = prometheus_checks(&client, &server, &Tolerances::default());
    let t = by_check(&cs, "ttft_mean");
    assert_eq!(t.status, Status::Pass, "{t:?}");
    assert!((t.client_compared.unwrap() - 27.4).abs() < 1e-9);
    assert_eq!(t.client, Some(36.6));
    assert!(t.reason.as_deref().unwrap().contains("9.2 ms"));
    // A server TTFT that drifts on its own (E2E agrees) still warns.
    let server = ServerFigures { ttft_mean_s: Ok(0.010), e2e_mean_s: Ok(0.2033), ..server_ok() };
    let t = prometheus_checks(&client, &server, &Tolerances::default())
        .into_iter()
        .find(|c| c.check == "ttft_mean")
        .unwrap();
    assert_eq!(t.status, Status::Warn);
}

#[test]
fn summaries() {
    assert_eq!(summarize([Status::Skip, Status::Skip]), Status::Skip);
    assert_eq!(summarize([Status::Skip, Status::Pass]), Status::Pass);
    assert_eq!(summarize([Status::Pass, Status::Warn, Status::Skip]), Status::Warn);
    assert_eq!(summarize([]), Status::Skip);
}

#[test]
fn tolerance_rules() {
    assert!(Tolerances::default().check().is_ok());
    assert!(Tolerances { ttft_mean: -0.1, ..Tolerances::default() }.check().unwrap_err().contains("ttft_mean"));
    assert!(Tolerances { latency_floor_ms: f64::NAN, ..Tolerances::default() }.check().is_err());
    let u = Tolerances::uniform(0.02);
    assert_eq!((u.request_count, u.ttft_mean), (0.02, 0.04));
}
