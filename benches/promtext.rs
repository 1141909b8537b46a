//! Parser timings: `cargo bench --bench promtext`.
//! Prints figures; asserts only that parsing produced the expected families.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use llm_loadtest::promtext::{LabelFilter, parse};

const VLLM: &str = include_str!("../tests/golden/vllm-0.32-metrics.txt");

/// A vLLM-shaped exposition of at least `bytes` bytes and the number of families in it.
fn generated(bytes: usize) -> (String, usize) {
    let mut text = String::with_capacity(bytes + 64 * 1024);
    let mut families = 0;
    let bounds = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
    while text.len() < bytes {
        let f = families;
        let _ = writeln!(text, "# HELP vllm:latency_{f}_seconds Histogram of latency {f}.");
        let _ = writeln!(text, "# TYPE vllm:latency_{f}_seconds histogram");
        for engine in 0..8 {
            let mut cumulative = 0.0;
            for le in bounds {
                cumulative += 3.0;
                let _ = writeln!(
                    text,
                    "vllm:latency_{f}_seconds_bucket{{engine=\"{engine}\",le=\"{le:?}\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {cumulative:?}"
                );
            }
            let _ = writeln!(
                text,
                "vllm:latency_{f}_seconds_bucket{{engine=\"{engine}\",le=\"+Inf\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {cumulative:?}\n\
                 vllm:latency_{f}_seconds_count{{engine=\"{engine}\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {cumulative:?}\n\
                 vllm:latency_{f}_seconds_sum{{engine=\"{engine}\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} 1.2345678901234567e+02"
            );
        }
        let _ = writeln!(text, "# HELP vllm:tokens_{f}_total Tokens {f}.\n# TYPE vllm:tokens_{f}_total counter");
        for engine in 0..8 {
            let _ = writeln!(text, "vllm:tokens_{f}_total{{engine=\"{engine}\",model_name=\"tiny\"}} 4.72e+02");
        }
        families += 2;
    }
    (text, families)
}

/// On-CPU time of this thread (Linux `schedstat`), so figures stay meaningful on a busy machine.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// Wall time and on-CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Option<Duration>) {
    let cpu = cpu_time();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let cpu = cpu.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (out, wall, cpu)
}

fn stats(mut runs: Vec<Duration>) -> (Duration, Duration) {
    runs.sort();
    (runs[0], runs[runs.len() / 2])
}

fn bench_parse() {
    // The real vLLM scrape, 1000 times.
    let (families, total, cpu) = timed(|| {
        let mut families = 0;
        for _ in 0..1000 {
            families = black_box(parse(black_box(VLLM))).families.len();
        }
        families
    });
    assert_eq!(families, 92);
    println!(
        "vLLM 0.32 scrape ({} bytes) x1000: wall {:?} total, {:?} per parse ({:.0} MB/s); on-CPU {:?} per parse+drop",
        VLLM.len(),
        total,
        total / 1000,
        (VLLM.len() * 1000) as f64 / total.as_secs_f64() / 1e6,
        cpu.map(|c| c / 1000),
    );

    // A generated 5 MB exposition.
    let (text, expected) = generated(5 * 1024 * 1024);
    const RUNS: u32 = 21;
    let mut walls = Vec::new();
    let ((), _, cpu_total) = timed(|| {
        for _ in 0..RUNS {
            let (exp, wall, _) = timed(|| black_box(parse(black_box(&text))));
            walls.push(wall);
            assert_eq!(exp.families.len(), expected);
            assert!(exp.line_errors.is_empty());
        }
    });
    let (min, median) = stats(walls);
    // schedstat advances in scheduler ticks, so only the mean over all runs is meaningful.
    let cpu_mean = cpu_total.map(|c| c / RUNS);
    let exp = parse(&text);
    println!(
        "generated {:.1} MB, {} lines, {} families, {} samples: parse wall min {:?}, median {:?} ({:.0} MB/s); \
         on-CPU mean {:?} per parse+drop",
        text.len() as f64 / 1e6,
        text.lines().count(),
        exp.families.len(),
        exp.sample_count(),
        min,
        median,
        text.len() as f64 / median.as_secs_f64() / 1e6,
        cpu_mean,
    );

    let start = Instant::now();
    let rendered = black_box(exp.render());
    println!("render of the same: {:?} ({} bytes)", start.elapsed(), rendered.len());
    let start = Instant::now();
    let mut count = 0.0;
    for f in 0..expected / 2 {
        count += exp.histogram(&format!("vllm:latency_{f}_seconds"), &LabelFilter::new()).map_or(0.0, |h| h.count);
    }
    println!("histogram() over all {} histogram families: {:?}", expected / 2, start.elapsed());
    assert!(count > 0.0);
}

fn main() {
    bench_parse();
}
