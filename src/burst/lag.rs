//! The client's own lag, measured while a burst runs.
//!
//! Send side: every record carries its scheduled and actual send time.
//! Receive side: bytes that arrive while every runtime thread is busy wait
//! before the task that timestamps them runs. A probe measures exactly that
//! delay: a plain OS thread, outside the runtime, stamps a message every
//! `PROBE_PERIOD` and hands it to a channel; one task per runtime worker
//! thread receives it and records how long the wake-up took. That is the
//! same path a socket readiness event takes (an outside wake-up, then a poll).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::record::ReceiveLag;

const PROBE_PERIOD: Duration = Duration::from_millis(2);

pub struct LagProbe {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    receivers: Vec<tokio::task::JoinHandle<Histogram<u64>>>,
}

impl LagProbe {
    /// Start probing on the current runtime with `tasks` receiving tasks
    /// (use the number of runtime worker threads).
    pub fn start(tasks: usize) -> LagProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = tasks.max(1);
        let mut senders = Vec::with_capacity(tasks);
        let mut receivers = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
            senders.push(tx);
            receivers.push(tokio::spawn(async move {
                // 1 µs .. 60 s, 3 significant figures; fixed memory whatever the burst length.
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid");
                while let Some(stamped) = rx.recv().await {
                    let us = stamped.elapsed().as_micros().max(1) as u64;
                    hist.saturating_record(us);
                }
                hist
            }));
        }
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lag-probe".into())
            .spawn(move || {
                let mut i = 0usize;
                while !stop_flag.load(Ordering::Relaxed) {
                    std::thread::sleep(PROBE_PERIOD);
                    if senders[i % senders.len()].send(Instant::now()).is_err() {
                        break;
                    }
                    i += 1;
                }
            })
            .ok();
        LagProbe { stop, thread, receivers }
    }

    /// Stop probing and summarise.
    pub async fn finish(mut self) -> ReceiveLag {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The thread exits within one period; join off the runtime.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid");
        for r in self.receivers.drain(..) {
            if let Ok(h) = r.await {
                let _ = total.add(&h);
            }
        }
        if total.is_empty() {
            return ReceiveLag::default();
        }
        ReceiveLag {
            samples: total.len(),
            p50_us: total.value_at_quantile(0.5) as f64,
            p99_us: total.value_at_quantile(0.99) as f64,
            max_us: total.max() as f64,
        }
    }
}

impl Drop for LagProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_runtime_wakes_fast_and_busy_runtime_shows_lag() {
        let probe = LagProbe::start(2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let idle = probe.finish().await;
        assert!(idle.samples > 10, "{idle:?}");

        let probe = LagProbe::start(2);
        // Hog both worker threads with blocking work for 30 ms at a time.
        let hogs: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..5 {
                        std::thread::sleep(Duration::from_millis(30));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in hogs {
            h.await.unwrap();
        }
        let busy = probe.finish().await;
        assert!(busy.max_us >= 10_000.0, "a 30 ms hog must show: {busy:?}");
        assert!(busy.max_us > idle.p50_us);
    }
}
