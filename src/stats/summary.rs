//! Exact summary statistics over a few thousand samples.

/// mean / median / std / p90 / p95 / p99, as `vllm bench serve` reports them
/// (numpy: linear-interpolated percentiles, population standard deviation).
/// `None` when there were no samples: no number is better than a made-up 0.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub std: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl LatencySummary {
    pub fn from_samples(mut v: Vec<f64>) -> Self {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return LatencySummary::default();
        }
        v.sort_unstable_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        LatencySummary {
            count: v.len() as u64,
            mean: Some(mean),
            median: Some(percentile(&v, 50.0)),
            std: Some(var.sqrt()),
            p90: Some(percentile(&v, 90.0)),
            p95: Some(percentile(&v, 95.0)),
            p99: Some(percentile(&v, 99.0)),
            max: v.last().copied(),
        }
    }

    /// (stat name, value) in `vllm bench serve` order, for flat JSON keys.
    pub fn named(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("mean", self.mean),
            ("median", self.median),
            ("std", self.std),
            ("p90", self.p90),
            ("p95", self.p95),
            ("p99", self.p99),
        ]
    }
}

/// numpy's default ("linear") percentile of sorted data.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}
