//! Where received spans go: each burst in flight registers the prefix of its
//! request ids and gets a [`Collector`]; a span is kept by the burst whose id
//! it carries, and everything else is counted and dropped at once. Memory is
//! bounded by each burst's capacity (its planned requests); nothing is
//! buffered for a burst that is not registered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ids::request_index;
use super::span::{Decoded, LlmSpan};

/// Spans kept per burst at most, whatever it planned (about 300 bytes each).
pub const MAX_SPANS_PER_BURST: usize = 200_000;

/// Everything the receiver saw since it started, by outcome.
#[derive(Debug, Default)]
pub struct ReceiverCounters {
    pub exports_ok: AtomicU64,
    /// Bodies that did not decode as OTLP (protobuf or JSON), or the wrong content type.
    pub exports_malformed: AtomicU64,
    /// Bodies over the size limit.
    pub exports_too_large: AtomicU64,
    /// `llm_request` spans kept by a burst.
    pub spans_kept: AtomicU64,
    /// `llm_request` spans of no burst in flight (other clients, or too late).
    pub spans_not_ours: AtomicU64,
    /// Spans of other names.
    pub spans_other_name: AtomicU64,
    /// `llm_request` spans without a usable `gen_ai.request.id`.
    pub spans_without_id: AtomicU64,
    /// Ours, but the burst already held its capacity.
    pub spans_over_capacity: AtomicU64,
    /// Attributes of an unexpected type (the figure is left missing).
    pub attribute_wrong_types: AtomicU64,
}

impl ReceiverCounters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

struct Slot {
    key: u64,
    prefix: String,
    capacity: usize,
    /// The first span for each request index.
    spans: BTreeMap<u64, LlmSpan>,
    duplicates: u64,
    over_capacity: u64,
    /// `llm_request` spans of other clients seen while this burst was registered.
    foreign: u64,
}

#[derive(Default)]
struct Slots {
    next_key: u64,
    slots: Vec<Slot>,
}

/// The routing table shared by the receiver and the bursts.
#[derive(Default)]
pub struct Hub {
    slots: Mutex<Slots>,
    arrived: Notify,
    pub counters: ReceiverCounters,
}

/// What one burst collected (saved as `spans.json`, so `validate DIR` sees the same).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Collected {
    /// By request index.
    pub spans: BTreeMap<u64, LlmSpan>,
    /// Further spans for an index already held (vLLM sends one per request).
    pub duplicates: u64,
    pub over_capacity: u64,
    /// Other clients' `llm_request` spans seen during the burst.
    pub foreign: u64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("bursts", &self.lock().slots.len()).finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic elsewhere while holding the lock leaves plain data: keep going.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start keeping the spans whose ids begin with `prefix` (at most `capacity`).
    pub fn register(self: &Arc<Hub>, prefix: String, capacity: usize) -> Collector {
        let mut s = self.lock();
        let key = s.next_key;
        s.next_key += 1;
        let capacity = capacity.min(MAX_SPANS_PER_BURST);
        s.slots.push(Slot {
            key,
            prefix,
            capacity,
            spans: BTreeMap::new(),
            duplicates: 0,
            over_capacity: 0,
            foreign: 0,
        });
        Collector { hub: Arc::clone(self), key }
    }

    /// Route one decoded export.
    pub fn accept(&self, decoded: Decoded) {
        let c = &self.counters;
        ReceiverCounters::add(&c.exports_ok, 1);
        ReceiverCounters::add(&c.spans_other_name, decoded.other_spans);
        ReceiverCounters::add(&c.spans_without_id, decoded.without_id);
        ReceiverCounters::add(&c.attribute_wrong_types, decoded.wrong_types);
        let (mut kept, mut not_ours, mut over) = (0, 0, 0);
        {
            let mut s = self.lock();
            for span in decoded.spans {
                let owner = s
                    .slots
                    .iter_mut()
                    .find_map(|slot| request_index(&span.request_id, &slot.prefix).map(|i| (slot, i)));
                match owner {
                    None => {
                        not_ours += 1;
                        s.slots.iter_mut().for_each(|slot| slot.foreign += 1);
                    }
                    Some((slot, index)) => {
                        if slot.spans.contains_key(&index) {
                            slot.duplicates += 1;
                        } else if slot.spans.len() >= slot.capacity {
                            slot.over_capacity += 1;
                            over += 1;
                        } else {
                            slot.spans.insert(index, span);
                            kept += 1;
                        }
                    }
                }
            }
        }
        ReceiverCounters::add(&c.spans_kept, kept);
        ReceiverCounters::add(&c.spans_not_ours, not_ours);
        ReceiverCounters::add(&c.spans_over_capacity, over);
        if kept > 0 {
            self.arrived.notify_waiters();
        }
    }

    fn collected(&self, key: u64) -> Collected {
        let s = self.lock();
        s.slots
            .iter()
            .find(|slot| slot.key == key)
            .map(|slot| Collected {
                spans: slot.spans.clone(),
                duplicates: slot.duplicates,
                over_capacity: slot.over_capacity,
                foreign: slot.foreign,
            })
            .unwrap_or_default()
    }

    fn holds_all(&self, key: u64, wanted: &BTreeSet<u64>) -> bool {
        let s = self.lock();
        s.slots
            .iter()
            .find(|slot| slot.key == key)
            .is_some_and(|slot| wanted.iter().all(|i| slot.spans.contains_key(i)))
    }
}

/// One burst's registration; dropping it stops keeping its spans.
pub struct Collector {
    hub: Arc<Hub>,
    key: u64,
}

impl Collector {
    pub fn collected(&self) -> Collected {
        self.hub.collected(self.key)
    }

    /// Wait until a span arrived for each of `wanted`, at most `max` (or until cancelled).
    /// Returns how long it waited.
    pub async fn wait_for(&self, wanted: &BTreeSet<u64>, max: Duration, cancel: &CancellationToken) -> Duration {
        let start = Instant::now();
        let deadline = start + max;
        loop {
            // Register interest before checking, so an export between the two is not missed.
            let arrived = self.hub.arrived.notified();
            if self.hub.holds_all(self.key, wanted) {
                break;
            }
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = cancel.cancelled() => break,
            }
        }
        start.elapsed()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.hub.lock().slots.retain(|slot| slot.key != self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::span::{llm_spans, tests as span_tests};

    fn decoded(ids: &[&str]) -> Decoded {
        llm_spans(&span_tests::export(ids.iter().map(|id| span_tests::vllm_span(id, 3, 4, 0.01, 0.1)).collect()))
    }

    #[test]
    fn spans_go_to_the_burst_whose_ids_they_carry() {
        let hub = Hub::new();
        let a = hub.register("runA-".into(), 10);
        let b = hub.register("runB-".into(), 10);
        hub.accept(decoded(&["chatcmpl-runA-0", "cmpl-runB-1-0", "chatcmpl-other", "chatcmpl-runA-0"]));
        let (ca, cb) = (a.collected(), b.collected());
        assert_eq!(ca.spans.keys().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(cb.spans.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!((ca.duplicates, ca.foreign, cb.foreign), (1, 1, 1));
        assert_eq!(ReceiverCounters::get(&hub.counters.spans_not_ours), 1);
        assert_eq!(ReceiverCounters::get(&hub.counters.spans_kept), 2);
    }

    #[test]
    fn a_burst_keeps_at_most_its_capacity_and_nothing_after_it_ends() {
        let hub = Hub::new();
        let a = hub.register("r-".into(), 2);
        hub.accept(decoded(&["chatcmpl-r-0", "chatcmpl-r-1", "chatcmpl-r-2"]));
        assert_eq!(a.collected().spans.len(), 2);
        assert_eq!(a.collected().over_capacity, 1);
        drop(a);
        hub.accept(decoded(&["chatcmpl-r-3"]));
        assert_eq!(ReceiverCounters::get(&hub.counters.spans_not_ours), 1, "a span after its burst is not kept");
        assert!(hub.lock().slots.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_when_every_span_arrived_or_at_the_deadline() {
        let hub = Hub::new();
        let c = hub.register("r-".into(), 10);
        let wanted: BTreeSet<u64> = [0, 1].into();
        let cancel = CancellationToken::new();
        let h2 = Arc::clone(&hub);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            h2.accept(decoded(&["chatcmpl-r-0"]));
            tokio::time::sleep(Duration::from_secs(3)).await;
            h2.accept(decoded(&["chatcmpl-r-1"]));
        });
        let waited = c.wait_for(&wanted, Duration::from_secs(30), &cancel).await;
        assert_eq!(waited.as_secs(), 5);
        let missing: BTreeSet<u64> = [7].into();
        let waited = c.wait_for(&missing, Duration::from_secs(10), &cancel).await;
        assert_eq!(waited.as_secs(), 10);
    }
}
