//! When requests start: the arrival plan as data (absolute offsets from the
//! burst start), so the intended start travels with every record and the
//! client's own lag is visible (coordinated omission is handled by design).

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};

/// How requests arrive.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArrivalPlan {
    /// Closed loop: exactly `concurrency` requests in flight; a request starts
    /// when the previous one of its slot ends.
    Concurrency { concurrency: u32 },
    /// Open loop: requests start at `rate` per second (evenly spaced, or with
    /// exponential gaps when `poisson`), optionally capped at `max_concurrency`
    /// in flight (a capped request waits, and its wait shows as scheduling lag).
    Rate { rate: f64, poisson: bool, seed: u64, max_concurrency: Option<u32> },
}

/// When a burst stops issuing new requests. Requests in flight at the end of
/// a duration still finish (bounded by the request timeout), as in
/// `vllm bench serve`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCondition {
    Requests(u64),
    #[serde(with = "duration_secs")]
    Duration(Duration),
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let secs = <f64 as serde::Deserialize>::deserialize(d)?;
        std::time::Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl ArrivalPlan {
    /// The most requests in flight at once, if bounded.
    pub fn max_in_flight(&self) -> Option<u32> {
        match self {
            ArrivalPlan::Concurrency { concurrency } => Some(*concurrency),
            ArrivalPlan::Rate { max_concurrency, .. } => *max_concurrency,
        }
    }

    /// How many connections to open before the measured start: the concurrency of a closed loop;
    /// for an open loop, what a second of arrivals keeps in flight at 1 s per request (the
    /// rate, rounded up), within its cap and at most 256 (the idle connections the load's client
    /// keeps per host when uncapped). More connections than that open as needed, in the run.
    pub fn expected_in_flight(&self) -> u32 {
        match self {
            ArrivalPlan::Concurrency { concurrency } => *concurrency,
            ArrivalPlan::Rate { rate, max_concurrency, .. } => {
                let per_second = if rate.is_finite() { rate.ceil().clamp(1.0, 256.0) as u32 } else { 256 };
                max_concurrency.map_or(per_second, |m| per_second.min(m))
            }
        }
    }

    /// Start offsets for an open-loop plan; `None` for a closed loop, whose
    /// starts depend on completions.
    pub fn offsets(&self) -> Option<ArrivalOffsets> {
        match self {
            ArrivalPlan::Concurrency { .. } => None,
            ArrivalPlan::Rate { rate, poisson, seed, .. } => Some(ArrivalOffsets {
                rate: *rate,
                exp: poisson.then(|| Exp::new(*rate).ok()).flatten(),
                rng: StdRng::seed_from_u64(*seed),
                next_index: 0,
                elapsed: 0.0,
            }),
        }
    }
}

/// An endless, reproducible sequence of start offsets (seconds from the burst
/// start). The first request starts at 0.
pub struct ArrivalOffsets {
    rate: f64,
    exp: Option<Exp<f64>>,
    rng: StdRng,
    next_index: u64,
    elapsed: f64,
}

impl Iterator for ArrivalOffsets {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let at = match &self.exp {
            // Constant rate: i / rate, computed from the index so it never drifts.
            None => self.next_index as f64 / self.rate,
            Some(exp) => {
                let at = self.elapsed;
                self.elapsed += exp.sample(&mut self.rng);
                at
            }
        };
        self.next_index += 1;
        Some(Duration::from_secs_f64(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(rate: f64, poisson: bool, seed: u64) -> ArrivalPlan {
        ArrivalPlan::Rate { rate, poisson, seed, max_concurrency: None }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let offs: Vec<f64> = rate(4.0, false, 0).offsets().unwrap().take(5).map(|d| d.as_secs_f64()).collect();
        assert_eq!(offs, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn poisson_is_reproducible_and_has_the_right_mean() {
        let a: Vec<Duration> = rate(100.0, true, 7).offsets().unwrap().take(20_000).collect();
        let b: Vec<Duration> = rate(100.0, true, 7).offsets().unwrap().take(20_000).collect();
        assert_eq!(a, b);
        let c: Vec<Duration> = rate(100.0, true, 8).offsets().unwrap().take(20_000).collect();
        assert_ne!(a, c);
        // 20,000 arrivals at 100/s should span about 200 s (sd of the sum ~1.4 s).
        let span = a.last().unwrap().as_secs_f64();
        assert!((190.0..210.0).contains(&span), "span {span}");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn closed_loop_has_no_offsets() {
        assert!(ArrivalPlan::Concurrency { concurrency: 2 }.offsets().is_none());
    }
}
