//! `llm-loadtest merge DIR...`: the shards of one burst (`run --shard I/N --save-artifacts`)
//! joined into one result. The statistics are computed from the union of the shards' records
//! (exact percentiles, never averages of percentiles); counts are sums. The merged result has
//! no server validation: each shard judged its server window alone, and their verdicts stay in
//! their own directories.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::artifacts::{self, RunResult};
use crate::spool::{Records, SpoolWriter};
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

    // In shard order, whatever the order of the directories: the merged file, its first error
    // and its notes are then the same for the same shards.
    shards.sort_by_key(|r| r.plan.shard.map_or(0, |s| s.index));
    let Joined { records, stats: accumulated, folded, duration_s, lag, cancelled, target_lost, mut notes, .. } =
        join(&mut shards)?;
    let mut merged = shards.swap_remove(0);
    let slo = merged.plan.goodput_slo;
    merged.client = accumulated.finish(duration_s, &lag, &slo);
    stats::add_folded(&mut merged.client, &folded);
    merged.records = records;
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
    /// Every shard's records, one shard after the other (each in its own order), in a spool:
    /// read once, never all in memory.
    pub records: Records,
    /// Their statistics, accumulated as they were read.
    pub stats: stats::Accumulator,
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

/// Join shards of one plan (any subset, each once): their records taken out of them, read once
/// each (a saved shard's file is streamed), into one spool and one statistics accumulator.
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

    let total: usize = shards.iter().map(|r| r.records.len()).sum();
    let mut seen = SeenIndices::new(total);
    let mut spool = SpoolWriter::new();
    let mut accumulated = stats::Accumulator::default();
    let mut folded = Vec::new();
    let mut notes = Vec::new();
    for r in shards.iter_mut() {
        let shard = r.plan.shard.unwrap_or_default();
        let mut twice = None;
        std::mem::take(&mut r.records)
            .visit(|record| {
                if !seen.insert(record.index) {
                    twice = Some(record.index);
                    return ControlFlow::Break(());
                }
                accumulated.add(record);
                spool.push_ref(record);
                ControlFlow::Continue(())
            })
            .map_err(|e| format!("shard {shard}: {e}"))?;
        if let Some(index) = twice {
            return Err(format!("request {index} is in two shards: not the shards of one plan"));
        }
        folded.append(&mut r.folded_failures);
        notes.extend(r.notes.iter().map(|n| format!("shard {shard}: {n}")));
    }
    let lag = shards.iter().map(|r| &r.client.receive_lag).max_by(|a, b| a.p99_us.total_cmp(&b.p99_us)).cloned();
    Ok(Joined {
        records: spool.finish(),
        stats: accumulated,
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

/// The request indices read so far, to refuse one read twice. A bit per index below 4 × the
/// records' count (the indices of one plan's shards are below their count, or near it when
/// shards are lost), a set above it: a few bits per record, however large an index a damaged
/// file holds. (A bit set is all this needs; no crate of ours has one.)
struct SeenIndices {
    bits: Vec<u64>,
    above: BTreeSet<u64>,
}

impl SeenIndices {
    fn new(records: usize) -> Self {
        let bits = (records.saturating_mul(4) / 64).saturating_add(16);
        SeenIndices { bits: vec![0; bits], above: BTreeSet::new() }
    }

    /// False when `index` was seen before.
    fn insert(&mut self, index: u64) -> bool {
        let bit = 1u64 << (index % 64);
        match usize::try_from(index / 64).ok().and_then(|word| self.bits.get_mut(word)) {
            Some(w) => {
                let new = *w & bit == 0;
                *w |= bit;
                new
            }
            None => self.above.insert(index),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::SeenIndices;

    #[test]
    fn an_index_is_new_once_whatever_its_size() {
        let mut seen = SeenIndices::new(100);
        for i in (0..1000).chain([u64::MAX, 1 << 40]) {
            assert!(seen.insert(i), "{i} the first time");
        }
        for i in (0..1000).chain([u64::MAX, 1 << 40]) {
            assert!(!seen.insert(i), "{i} again");
        }
        // Beyond 4 bits a record, indices are kept in the set, not in a bit array grown to them.
        assert_eq!(seen.bits.len(), 100 * 4 / 64 + 16);
        assert_eq!(seen.above.iter().copied().collect::<Vec<_>>(), [1 << 40, u64::MAX]);
    }
}
