//! `llm-loadtest merge DIR...`: the shards of one burst (`run --shard I/N --save-artifacts`)
//! joined into one result. The statistics are computed from the union of the shards' records
//! (exact percentiles, never averages of percentiles); counts are sums. The merged result has
//! no server validation: each shard judged its server window alone, and their verdicts stay in
//! their own directories.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::artifacts::{self, RunResult};
use crate::stats;
use crate::workload::Shard;

/// Join `shards` (every shard of one plan, once) into one result. Pure.
pub fn merge(mut shards: Vec<RunResult>) -> Result<RunResult, String> {
    let first = shards.first().ok_or("no shard to merge")?;
    let count = first.plan.shard.map_or(1, |s| s.count);
    let want = first.workload_shape();
    let mut seen = vec![false; count as usize];
    for r in &shards {
        let Some(Shard { index, count: n }) = r.plan.shard else {
            return Err(format!("run {} is not a shard (run --shard I/N)", r.run_id));
        };
        if n != count {
            return Err(format!("run {} is shard {index}/{n}, the others are of {count}", r.run_id));
        }
        if r.workload_shape() != want {
            return Err(format!(
                "run {} ran another plan than run {} (model, endpoint, load or prompts)",
                r.run_id, first.run_id
            ));
        }
        if std::mem::replace(&mut seen[index as usize], true) {
            return Err(format!("shard {index}/{count} is given twice"));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !seen[*i as usize]).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        return Err(format!("missing shards: {}", missing.join(", ")));
    }

    let Joined { records, folded, duration_s, lag, cancelled, target_lost, mut notes, .. } = join(&mut shards)?;
    let mut merged = shards.swap_remove(0);
    let slo = merged.plan.goodput_slo;
    merged.client = stats::compute(&records, duration_s, &lag, &slo);
    stats::add_folded(&mut merged.client, &folded);
    merged.records = crate::spool::Records::held(records);
    merged.folded_failures = folded;
    merged.run_id = format!("{}-merged", merged.run_id);
    merged.plan.shard = None;
    merged.num_prompts = merged.client.num_requests;
    merged.started_at = std::iter::once(merged.started_at)
        .chain(shards.iter().map(|r| r.started_at))
        .min()
        .unwrap_or(merged.started_at);
    merged.ended_at =
        std::iter::once(merged.ended_at).chain(shards.iter().map(|r| r.ended_at)).max().unwrap_or(merged.ended_at);
    merged.cancelled = cancelled;
    merged.target_lost = target_lost;
    merged.validation = None;
    merged.server = None;
    merged.logs = None;
    merged.snapshots.clear();
    merged.start_instant = None;
    notes.insert(0, format!("{count} shards merged; each shard's server validation is in its own directory"));
    merged.notes = notes;
    Ok(merged)
}

/// The shards' records and figures on one clock, whichever shards there are.
pub struct Joined {
    /// Every shard's records, sorted by request index.
    pub records: Vec<crate::record::RequestRecord>,
    pub folded: Vec<crate::record::FoldedFailures>,
    /// From the earliest shard's measured start to the latest shard's end.
    pub duration_s: f64,
    pub begin: jiff::Timestamp,
    pub end: jiff::Timestamp,
    /// The worst shard's (the one with the highest receive-lag p99).
    pub lag: crate::record::ReceiveLag,
    pub cancelled: bool,
    pub target_lost: Option<String>,
    /// Each shard's notes, prefixed with the shard.
    pub notes: Vec<String>,
}

/// Join shards of one plan (any subset, each once): their records taken out of them.
pub fn join(shards: &mut [RunResult]) -> Result<Joined, String> {
    // The shards' measured phases on one wall clock: from the earliest start to the latest end.
    let start_of = |r: &RunResult| r.plan.start_at.unwrap_or(r.started_at);
    let span = |r: &RunResult| {
        let start = start_of(r).as_millisecond() as f64 / 1e3;
        (start, start + r.client.duration_s)
    };
    let begin = shards.iter().map(|r| span(r).0).fold(f64::INFINITY, f64::min);
    let end = shards.iter().map(|r| span(r).1).fold(f64::NEG_INFINITY, f64::max);
    let duration_s = if shards.is_empty() { 0.0 } else { (end - begin).max(0.0) };
    let at = |s: f64| jiff::Timestamp::from_millisecond((s * 1e3) as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);

    let mut records = Vec::new();
    let mut folded = Vec::new();
    let mut notes = Vec::new();
    for r in shards.iter_mut() {
        records.append(&mut std::mem::take(&mut r.records).to_vec());
        folded.append(&mut r.folded_failures);
        notes.extend(r.notes.iter().map(|n| format!("shard {}: {n}", r.plan.shard.unwrap_or_default())));
    }
    records.sort_by_key(|r| r.index);
    if let Some(w) = records.windows(2).find(|w| w[0].index == w[1].index) {
        return Err(format!("request {} is in two shards: not the shards of one plan", w[0].index));
    }
    let lag = shards.iter().map(|r| &r.client.receive_lag).max_by(|a, b| a.p99_us.total_cmp(&b.p99_us)).cloned();
    Ok(Joined {
        records,
        folded,
        duration_s,
        begin: if shards.is_empty() { jiff::Timestamp::now() } else { at(begin) },
        end: if shards.is_empty() { jiff::Timestamp::now() } else { at(end) },
        lag: lag.unwrap_or_default(),
        cancelled: shards.iter().any(|r| r.cancelled),
        target_lost: shards.iter().find_map(|r| r.target_lost.clone()),
        notes,
    })
}

/// Read and merge the shard directories.
pub fn merge_dirs(dirs: &[PathBuf]) -> Result<RunResult, String> {
    let shards = dirs
        .iter()
        .map(|d| artifacts::read_dir(d).map_err(|e| format!("{}: {e}", d.display())))
        .collect::<Result<Vec<_>, _>>()?;
    merge(shards)
}

pub fn command(args: &crate::cli::MergeArgs) -> ExitCode {
    let merged = match merge_dirs(&args.dirs) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(out) = &args.out
        && let Err(e) = save(out, &merged)
    {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&merged).unwrap_or_default());
    } else {
        print!("{}", crate::report::render(&merged));
    }
    ExitCode::SUCCESS
}

fn save(out: &Path, merged: &RunResult) -> Result<(), String> {
    artifacts::save(out, merged).map_err(|e| format!("{}: {e}", out.display()))
}
