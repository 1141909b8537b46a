//! Generation throughput over a burst window from the periodic stats lines.
//!
//! A stats line reports tokens generated since the engine's previous stats line divided by the
//! time since then, so the figures are interval averages that are not aligned to the burst:
//! each line is weighted by how much of its interval overlaps the window.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Series, TimedEngineStats};

/// Server generation throughput over a window, from the stats lines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowThroughput {
    /// Tokens/s, summed over engines.
    pub tokens_per_s: f64,
    /// How much of the evidence is about the window (0-1), for the least covered engine: the
    /// covered part of the window divided by the window plus the parts of the used lines'
    /// intervals that lie outside it. 1 when the intervals tile the window exactly.
    pub coverage: f64,
    /// Stats lines whose interval overlaps the window.
    pub lines_used: usize,
    /// Engines (or aggregated series) with an interval overlapping the window.
    pub engines: usize,
}

/// Generation throughput over `[start, end]` from the periodic stats lines.
///
/// Per engine, each line covers the interval since that engine's previous line (its first line:
/// `default_interval`, vLLM's 10 s); the engine's rate is the overlap-weighted mean of its lines,
/// and the rates are summed over engines. Two refinements follow vLLM's idle rule (after two
/// all-zero intervals the line is logged at DEBUG, i.e. silence):
/// - a gap longer than twice `default_interval` means lines were not printed, so the line after
///   it covers only `default_interval`;
/// - silence after an all-zero line is known idleness: it counts as covered at 0 tokens/s, up to
///   the next line of that engine or, after its last line, up to the latest line of any engine.
///
/// A line's figure is an average over its whole interval, so the parts of used intervals outside
/// the window dilute the result; [`WindowThroughput::coverage`] charges them. A burst shorter than
/// the log interval therefore cannot reach more than burst / interval. With 10 s intervals not
/// aligned to the burst, a 60 s burst typically gets about 0.85, a 30 s burst about 0.75.
///
/// Lines without a timestamp are ignored. Returns `Err` with the reason when nothing covers the
/// window or the least covered engine is below `min_coverage` (0-1): short bursts, no stats lines,
/// `--disable-log-stats`. Pass the lines from one interval before `start` to one after `end`.
pub fn generation_throughput_over(
    stats: &[TimedEngineStats],
    start: Timestamp,
    end: Timestamp,
    default_interval: Duration,
    min_coverage: f64,
) -> Result<WindowThroughput, String> {
    let window = seconds_between(start, end);
    if window <= 0.0 {
        return Err(format!("the window is empty ({start} to {end})"));
    }
    let interval = default_interval.as_secs_f64();
    if interval <= 0.0 {
        return Err("the stats interval must be positive".to_string());
    }
    let mut by_series: BTreeMap<Series, Vec<Point>> = BTreeMap::new();
    for line in stats {
        if let Some(ts) = line.ts {
            let point = Point {
                at: seconds_between(start, ts),
                generation: line.stats.generation_throughput,
                idle: line.stats.generation_throughput == 0.0 && line.stats.prompt_throughput == 0.0,
            };
            by_series.entry(line.stats.series()).or_default().push(point);
        }
    }
    if by_series.is_empty() {
        return Err("no engine stats lines with timestamps in the logs (none are printed with \
                    --disable-log-stats or --api-server-count > 1, nor while the server is idle)"
            .to_string());
    }
    let horizon = by_series.values().flatten().map(|p| p.at).fold(f64::NEG_INFINITY, f64::max);
    let overlap = |from: f64, to: f64| (to.min(window) - from.max(0.0)).max(0.0);

    let (mut tokens_per_s, mut coverage, mut lines_used, mut engines) = (0.0, f64::INFINITY, 0, 0);
    for points in by_series.values_mut() {
        points.sort_by(|a, b| a.at.total_cmp(&b.at));
        // Seconds of the window covered, tokens in them, seconds of used intervals outside it.
        let (mut covered, mut tokens, mut outside) = (0.0, 0.0, 0.0);
        let mut previous: Option<Point> = None;
        for point in points.iter() {
            let from = match previous {
                Some(p) if point.at - p.at <= 2.0 * interval => p.at,
                Some(p) => {
                    if p.idle {
                        covered += overlap(p.at, point.at - interval);
                    }
                    point.at - interval
                }
                None => point.at - interval,
            };
            let weight = overlap(from, point.at);
            if weight > 0.0 {
                covered += weight;
                outside += (point.at - from) - weight;
                tokens += point.generation * weight;
                lines_used += 1;
            }
            previous = Some(*point);
        }
        if let Some(last) = previous.filter(|p| p.idle) {
            covered += overlap(last.at, horizon);
        }
        if covered > 0.0 {
            engines += 1;
            tokens_per_s += tokens / covered;
            coverage = f64::min(coverage, covered / (window + outside));
        }
    }
    if engines == 0 {
        return Err(format!(
            "no engine stats line covers the {window:.1} s window ({} lines, all outside it)",
            stats.len()
        ));
    }
    let coverage = coverage.min(1.0);
    if coverage < min_coverage {
        return Err(format!(
            "engine stats lines cover {:.0}% of the {window:.1} s window (intervals sticking out of it \
             count against it), less than the {:.0}% needed: vLLM averages throughput over its \
             ~{interval:.0} s log interval, too coarse for this window",
            coverage * 100.0,
            min_coverage * 100.0
        ));
    }
    Ok(WindowThroughput { tokens_per_s, coverage, lines_used, engines })
}

#[derive(Debug, Clone, Copy)]
struct Point {
    /// Seconds after the window start.
    at: f64,
    generation: f64,
    idle: bool,
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_nanosecond() - from.as_nanosecond()) as f64 / 1e9
}
