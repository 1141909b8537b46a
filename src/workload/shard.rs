//! One shard of a burst shared by N generators (k6's execution segments, simplified): shard
//! `I/N` runs exactly its share of the plan, and the N shards together run the plan once.
//! - closed loop: `share(concurrency)` slots and `share(requests)` requests; the shard's k-th
//!   request is the plan's request `k·N + I`;
//! - open loop: the arrivals `n` of the one seeded schedule with `n mod N = I`, at their own
//!   times, until the plan's request count; a cap on requests in flight is shared like slots.
//!
//! Request indices are the plan's, so the shards' records never collide and `merge` joins
//! them into the single burst. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most shards a burst may be split into.
pub const MAX_SHARDS: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// The whole plan (no sharding).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// This shard's part of `total` (slots, requests): the first `total mod N` shards take one
    /// more, so the shares add up to `total`.
    pub fn share(&self, total: u64) -> u64 {
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }

    /// The plan's index of this shard's `k`-th request of a closed loop.
    pub fn plan_index(&self, k: u64) -> u64 {
        k.saturating_mul(u64::from(self.count)).saturating_add(u64::from(self.index))
    }

    /// Whether the plan's arrival `n` of an open loop is this shard's.
    pub fn owns(&self, n: u64) -> bool {
        n % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N <= 1024` (I counts from 0, as Kubernetes' JOB_COMPLETION_INDEX).
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("a shard is I/N with 0 <= I < N <= {MAX_SHARDS}, e.g. 0/4; got `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn all(n: u32) -> Vec<Shard> {
        (0..n).map(|index| Shard { index, count: n }).collect()
    }

    #[test]
    fn shares_add_up_and_closed_loop_indices_cover_the_plan_once() {
        for n in [1, 2, 3, 4, 7] {
            for total in [0u64, 1, 5, 10, 64, 1001] {
                let shards = all(n);
                assert_eq!(shards.iter().map(|s| s.share(total)).sum::<u64>(), total, "{n} {total}");
                let indices: Vec<u64> =
                    shards.iter().flat_map(|s| (0..s.share(total)).map(move |k| s.plan_index(k))).collect();
                let unique: BTreeSet<u64> = indices.iter().copied().collect();
                assert_eq!(unique.len(), indices.len(), "no index twice");
                assert_eq!(unique, (0..total).collect::<BTreeSet<u64>>(), "{n} {total}");
            }
        }
    }

    #[test]
    fn open_loop_arrivals_are_dealt_round_robin() {
        let shards = all(3);
        for n in 0..30u64 {
            assert_eq!(shards.iter().filter(|s| s.owns(n)).count(), 1);
        }
        assert!(shards[1].owns(4) && !shards[0].owns(4));
    }

    #[test]
    fn parsing_accepts_i_of_n_only() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard::WHOLE));
        for bad in ["4/4", "1/0", "-1/2", "a/2", "2", "1/2000", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
    }
}
