//! Time to fetch and parse a server's /metrics (the PRD's budget for the
//! whole collection is 500 ms). Prints figures; asserts nothing about speed.
//!
//!     LLM_LOADTEST_BENCH_METRICS_URL=http://127.0.0.1:8011/metrics cargo bench --bench scrape
//!
//! Without the variable it scrapes the in-process simulator (vLLM 0.32
//! families). The 5 MB parse figure is in tests/promtext_bench.rs.

use std::time::{Duration, Instant};

use llm_loadtest::server::MetricsClient;
use llm_loadtest::sim::{self, LogSink, SimConfig};

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (url, _sim) = match std::env::var("LLM_LOADTEST_BENCH_METRICS_URL") {
        Ok(u) => (u, None),
        Err(_) => {
            let h = rt
                .block_on(sim::start(
                    SimConfig { log_sink: LogSink::Discard, ..SimConfig::default() },
                    ([127, 0, 0, 1], 0).into(),
                ))
                .unwrap();
            (format!("{}/metrics", h.base_url()), Some(h))
        }
    };
    let client = MetricsClient::new(url.clone(), Duration::from_secs(5)).unwrap();
    let n = 200;
    let (mut total_ms, mut parse_ms, mut bytes) = (Vec::new(), Vec::new(), 0);
    rt.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            let s = client.scrape().await.expect("scrape");
            total_ms.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = s.text.len();
            let t = Instant::now();
            let e = llm_loadtest::promtext::parse(&s.text);
            parse_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(!e.families.is_empty());
        }
    });
    println!("{url}: {bytes} bytes, {n} scrapes");
    println!(
        "fetch + parse: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut total_ms, 0.5),
        pct(&mut total_ms, 0.99),
        pct(&mut total_ms, 1.0)
    );
    println!("parse alone:   p50 {:.3} ms, p99 {:.3} ms", pct(&mut parse_ms, 0.5), pct(&mut parse_ms, 0.99));
}
