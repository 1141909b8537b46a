//! A latency summary of more samples than are worth keeping: every inter-chunk gap of a long
//! burst (64 per request) and every request's scheduling lag. Count, mean, standard deviation
//! and max are exact (running sums); the percentiles come from an HdrHistogram with three
//! significant digits, so each is within 0.1% of the sample at that rank.

use hdrhistogram::Histogram;

use super::LatencySummary;

/// Samples are milliseconds, recorded in nanoseconds: below 2,048 ns every value is its own
/// bucket, above it the relative error is at most 0.1% (three significant digits).
const NS_PER_MS: f64 = 1e6;
/// The largest gap recorded as itself (one hour); a longer one counts as one hour in the
/// percentiles (never in the max, mean or std, which are exact).
const HIGHEST_NS: u64 = 3_600_000_000_000;

/// The relative error of [`Gaps`]' percentiles, as documented in the README.
pub const PERCENTILE_RELATIVE_ERROR: f64 = 0.001;

#[derive(Debug, Clone)]
pub struct Gaps {
    hist: Histogram<u64>,
    count: u64,
    // Welford's running mean and sum of squared deviations: exact to rounding, one pass.
    mean: f64,
    m2: f64,
    max: f64,
}

impl Default for Gaps {
    fn default() -> Self {
        Gaps {
            hist: Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("static bounds are valid"),
            count: 0,
            mean: 0.0,
            m2: 0.0,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Gaps {
    /// One sample, milliseconds; a non-finite one is ignored (as `LatencySummary` does), a
    /// negative one is recorded as 0 in the histogram (a clock cannot run backwards, but
    /// `f64` arithmetic on chunk times can give -0.0).
    pub fn record(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        self.count += 1;
        let delta = ms - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (ms - self.mean);
        self.max = self.max.max(ms);
        let ns = (ms.max(0.0) * NS_PER_MS).round() as u64;
        self.hist.saturating_record(ns.min(HIGHEST_NS));
    }

    pub fn summary(&self) -> LatencySummary {
        if self.count == 0 {
            return LatencySummary::default();
        }
        let at = |q: f64| self.hist.value_at_quantile(q) as f64 / NS_PER_MS;
        LatencySummary {
            count: self.count,
            mean: Some(self.mean),
            median: Some(at(0.50)),
            std: Some((self.m2 / self.count as f64).max(0.0).sqrt()),
            p90: Some(at(0.90)),
            p95: Some(at(0.95)),
            p99: Some(at(0.99)),
            max: Some(self.max),
        }
    }
}
