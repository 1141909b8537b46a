//! A target's performance against its own recent past: the baseline of each figure is the
//! median of the runs that ran with the same workload in the 24 h before a run (at least
//! [`MIN_RUNS`]), and a run regressed on a figure when it is worse than that by more than the
//! target's `tolerances.regression` (and, for latencies, by more than `latency_floor_ms`).
//!
//! Why a rolling median and not a pinned run: it needs nothing from the operator, survives a
//! restart (the history replays the last day), follows a deliberate change within a day, and one
//! odd run moves a median of three or more by nothing. Runs of another workload (a trigger that
//! asks for other concurrency or lengths) have their own baseline: comparing them would be noise.
//! Pure: fed by the exporter, tested with plain values.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use crate::artifacts::RunResult;

use super::metrics::PERFORMANCE_FIGURES;

/// How far back the baseline looks.
pub const WINDOW_S: f64 = 24.0 * 3600.0;
/// Runs of the same workload needed in the window before a baseline exists.
pub const MIN_RUNS: usize = 3;
/// Points kept per target (a 10 s schedule fills a day with 8,640).
const MAX_POINTS: usize = 10_000;

/// The figures of one run that ran: TTFT, ITL and TPOT p90 (seconds) and output throughput
/// (tokens/s), in the order of [`PERFORMANCE_FIGURES`].
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at_s: f64,
    pub workload: u64,
    pub figures: [Option<f64>; 4],
}

impl Point {
    /// `None` for a run that did not run (failed, cancelled): it says nothing of performance.
    pub fn of(result: &RunResult, ran: bool, at_s: f64) -> Option<Point> {
        if !ran {
            return None;
        }
        let c = &result.client;
        let s = |ms: Option<f64>| ms.map(|v| v / 1e3);
        let throughput = (c.duration_s > 0.0).then_some(c.output_throughput);
        Some(Point {
            at_s,
            workload: workload_key(result),
            figures: [s(c.ttft_ms.p90), s(c.itl_ms.p90), s(c.tpot_ms.p90), throughput],
        })
    }
}

/// A hash of [`RunResult::workload_shape`]: runs of another load are not compared.
fn workload_key(r: &RunResult) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.workload_shape().to_string().hash(&mut h);
    h.finish()
}

/// The regression policy of a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// 0.25: a figure 25% worse than its baseline regressed.
    pub tolerance: f64,
    /// A latency within this many seconds of its baseline never regressed.
    pub floor_s: f64,
}

/// One figure of one run against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub figure: &'static str,
    pub baseline: f64,
    /// How much worse than the baseline: latency / baseline - 1, baseline / throughput - 1.
    pub worse_ratio: f64,
    pub regressed: bool,
}

/// The recent runs of one target.
#[derive(Debug, Default)]
pub struct Baselines {
    points: VecDeque<Point>,
}

impl Baselines {
    /// Judge `run` against the runs before it, then remember it. Runs arrive in time order
    /// (live, or replayed from the history oldest first).
    pub fn judge_and_add(&mut self, run: Point, policy: Policy) -> Vec<Judged> {
        while self.points.front().is_some_and(|p| p.at_s < run.at_s - WINDOW_S) || self.points.len() >= MAX_POINTS {
            self.points.pop_front();
        }
        let judged = judge(self.points.iter().filter(|p| p.workload == run.workload), &run, policy);
        self.points.push_back(run);
        judged
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.len() < MIN_RUNS {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

fn judge<'a>(earlier: impl Iterator<Item = &'a Point> + Clone, run: &Point, policy: Policy) -> Vec<Judged> {
    let mut out = Vec::new();
    for (i, figure) in PERFORMANCE_FIGURES.into_iter().enumerate() {
        let Some(value) = run.figures[i].filter(|v| v.is_finite()) else { continue };
        let past: Vec<f64> = earlier.clone().filter_map(|p| p.figures[i]).filter(|v| v.is_finite()).collect();
        let Some(baseline) = median(past).filter(|b| *b > 0.0) else { continue };
        let is_throughput = figure == "output_throughput";
        let worse_ratio = if is_throughput {
            if value <= 0.0 {
                continue;
            }
            baseline / value - 1.0
        } else {
            value / baseline - 1.0
        };
        let beyond_floor = is_throughput || value - baseline > policy.floor_s;
        let regressed = worse_ratio > policy.tolerance && beyond_floor;
        out.push(Judged { figure, baseline, worse_ratio, regressed });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { tolerance: 0.25, floor_s: 0.005 };

    fn point(at_s: f64, workload: u64, ttft: f64, tps: f64) -> Point {
        Point { at_s, workload, figures: [Some(ttft), Some(0.01), None, Some(tps)] }
    }

    fn find<'a>(j: &'a [Judged], figure: &str) -> Option<&'a Judged> {
        j.iter().find(|x| x.figure == figure)
    }

    #[test]
    fn no_baseline_until_three_runs_of_the_same_workload() {
        let mut b = Baselines::default();
        assert!(b.judge_and_add(point(0.0, 1, 0.1, 100.0), POLICY).is_empty());
        assert!(b.judge_and_add(point(10.0, 1, 0.1, 100.0), POLICY).is_empty());
        assert!(b.judge_and_add(point(20.0, 2, 0.1, 100.0), POLICY).is_empty(), "another workload");
        assert!(b.judge_and_add(point(30.0, 1, 0.1, 100.0), POLICY).is_empty());
        let j = b.judge_and_add(point(40.0, 1, 0.1, 100.0), POLICY);
        let ttft = find(&j, "ttft_p90").unwrap();
        assert_eq!((ttft.baseline, ttft.worse_ratio, ttft.regressed), (0.1, 0.0, false));
        assert!(find(&j, "tpot_p90").is_none(), "no figure, no verdict");
    }

    #[test]
    fn slower_latency_and_lower_throughput_regress_beyond_the_tolerance_only() {
        let mut b = Baselines::default();
        for (i, ttft) in [0.10, 0.11, 0.09, 0.5].into_iter().enumerate() {
            b.judge_and_add(point(i as f64, 1, ttft, 100.0), POLICY);
        }
        // Median of 0.09, 0.10, 0.11, 0.5 = 0.105; 0.2 is 90% worse.
        let j = b.judge_and_add(point(10.0, 1, 0.2, 70.0), POLICY);
        let ttft = find(&j, "ttft_p90").unwrap();
        assert!((ttft.baseline - 0.105).abs() < 1e-12 && ttft.regressed, "{ttft:?}");
        let tps = find(&j, "output_throughput").unwrap();
        assert!((tps.worse_ratio - (100.0 / 70.0 - 1.0)).abs() < 1e-12 && tps.regressed, "{tps:?}");
        // 20% worse is within a 25% tolerance.
        let j = b.judge_and_add(point(11.0, 1, 0.126, 84.0), POLICY);
        assert!(!find(&j, "ttft_p90").unwrap().regressed);
        assert!(!find(&j, "output_throughput").unwrap().regressed);
    }

    #[test]
    fn a_latency_change_under_the_floor_never_regresses() {
        let mut b = Baselines::default();
        for i in 0..3 {
            b.judge_and_add(point(i as f64, 1, 0.002, 100.0), POLICY);
        }
        // 2 ms -> 4 ms is 100% worse but 2 ms, under the 5 ms floor.
        let j = b.judge_and_add(point(5.0, 1, 0.004, 100.0), POLICY);
        let ttft = find(&j, "ttft_p90").unwrap();
        assert!((ttft.worse_ratio - 1.0).abs() < 1e-12 && !ttft.regressed, "{ttft:?}");
    }

    #[test]
    fn runs_older_than_a_day_leave_the_baseline() {
        let mut b = Baselines::default();
        for i in 0..3 {
            b.judge_and_add(point(i as f64, 1, 0.1, 100.0), POLICY);
        }
        assert!(!b.judge_and_add(point(100.0, 1, 0.1, 100.0), POLICY).is_empty());
        assert!(b.judge_and_add(point(100.0 + WINDOW_S + 10.0, 1, 0.1, 100.0), POLICY).is_empty());
    }
}
