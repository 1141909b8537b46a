//! One burst shared by 4 generator processes (`run --shard I/4 --start-at T`) against the
//! simulator, joined by `llm-loadtest merge`: the merged counts equal the server's own /metrics
//! deltas exactly, the request indices are the plan's once each, and the merged percentiles are
//! those of all the shards' records together.

use std::path::Path;
use std::process::Command;

use llm_loadtest::promtext::{LabelFilter, counter_delta, parse};
use llm_loadtest::sim::SimConfig;
use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_llm-loadtest");

async fn scrape(url: &str) -> String {
    reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
}

/// numpy's linear percentile of `v` (sorted here).
fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn sharded_burst(load: &[&str], total: u64) {
    let sim = common::sim_with(SimConfig::default()).await;
    let url = sim.base_url();
    let before = parse(&scrape(&url).await);
    let dir = tempfile::tempdir().unwrap();
    let start_at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let shards: Vec<_> = (0..4)
        .map(|i| {
            let out = dir.path().join(format!("shard-{i}"));
            let mut args = vec!["run", "--target", &url, "--model", "sim-model", "--quiet", "--skip-validation"];
            args.extend(load);
            let shard = format!("{i}/4");
            let at = start_at.to_string();
            let out_s = out.display().to_string();
            let mut c = Command::new(BIN);
            c.args(&args).args(["--shard", &shard, "--start-at", &at, "--save-artifacts", &out_s]);
            (out, c.spawn().unwrap())
        })
        .collect();
    let mut dirs = Vec::new();
    for (out, mut child) in shards {
        assert!(child.wait().unwrap().success());
        dirs.push(out);
    }
    let after = parse(&scrape(&url).await);
    let merged_dir = dir.path().join("merged");
    let out = Command::new(BIN)
        .arg("merge")
        .args(&dirs)
        .args(["--out", &merged_dir.display().to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Counts: the merged result is the server's own delta, exactly.
    let all = LabelFilter::new();
    let server = |name: &str| counter_delta(&before, &after, name, &all).unwrap();
    assert_eq!(merged["completed"], total, "{merged}");
    assert_eq!(merged["failed"], 0);
    assert_eq!(merged["completed"].as_f64().unwrap(), server("vllm:request_success_total"));
    assert_eq!(merged["total_input_tokens"].as_f64().unwrap(), server("vllm:prompt_tokens_total"));
    assert_eq!(merged["total_output_tokens"].as_f64().unwrap(), server("vllm:generation_tokens_total"));

    // Every index of the plan once, spread over the 4 shards.
    let per_shard: Vec<Vec<Value>> = dirs.iter().map(|d| records(d)).collect();
    assert!(
        per_shard.iter().all(|r| r.len() as u64 == total / 4),
        "{:?}",
        per_shard.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let mut indices: Vec<u64> = per_shard.iter().flatten().map(|r| r["index"].as_u64().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..total).collect::<Vec<u64>>());
    let merged_lines = records(&merged_dir);
    assert_eq!(merged_lines.len() as u64, total);

    // Percentiles of the union, computed here from the shards' files.
    let ttft: Vec<f64> = per_shard.iter().flatten().map(|r| r["ttft_s"].as_f64().unwrap() * 1e3).collect();
    for (key, p) in [("median_ttft_ms", 50.0), ("p99_ttft_ms", 99.0)] {
        let want = percentile(ttft.clone(), p);
        let got = merged[key].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{key}: merged {got}, all records {want}");
    }
    // A shard missing or given twice is refused, never merged into a smaller result.
    let refused = |dirs: &[&Path]| {
        let out = Command::new(BIN).arg("merge").args(dirs).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let d: Vec<&Path> = dirs.iter().map(|p| p.as_path()).collect();
    assert!(refused(&d[..3]).contains("missing shards: 3/4"));
    assert!(refused(&[d[0], d[1], d[2], d[2]]).contains("shard 2/4 is given twice"));
    // A request in two shards' files (shard 1's holding one of shard 0's lines as well): refused.
    let stolen = records(&dirs[0]).swap_remove(0);
    let jsonl = dirs[1].join("requests.jsonl");
    let mut text = std::fs::read_to_string(&jsonl).unwrap();
    text.push_str(&format!("{stolen}\n"));
    std::fs::write(&jsonl, text).unwrap();
    let e = refused(&d);
    assert!(e.contains(&format!("request {} is in two shards", stolen["index"])), "{e}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_shared_by_four_processes_merges_to_the_server_counts() {
    sharded_burst(&["--requests", "64", "--concurrency", "8", "--max-tokens", "8"], 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_shared_by_four_processes_merges_to_the_server_counts() {
    sharded_burst(&["--requests", "40", "--rate", "40", "--max-tokens", "8"], 40).await;
}

#[test]
fn merge_refuses_missing_or_repeated_shards() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("merge").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}
