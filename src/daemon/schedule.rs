//! When scheduled bursts fire. The tick arithmetic is pure; [`run`] is the
//! loop that sleeps to each tick and asks the daemon for a burst.
//!
//! Ticks are `interval` apart from the daemon's start, the first at start-up
//! (so `/metrics` has a run to show within seconds, as blackbox_exporter probes
//! at once). Each tick is delayed by a random `[0, jitter]`. A tick that finds
//! the target's own burst still running is skipped and counted; one that finds
//! another target's burst holding the daemon waits for it, until the next tick.
//! Ticks missed while a long burst ran are skipped, not queued, so a slow target
//! never gets a backlog of bursts.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use super::{Daemon, StartError, Trigger};
use crate::config::Schedule;

/// The first tick after `now` on the grid `first + k * interval` (k >= 1 past `prev`):
/// ticks that passed while a burst ran are skipped, not run late.
pub fn next_tick(prev: Instant, interval: Duration, now: Instant) -> Instant {
    let next = prev + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
    let skipped = u32::try_from(behind + 1).unwrap_or(u32::MAX);
    next + interval.saturating_mul(skipped)
}

/// Fire bursts on `target` by `schedule` until the daemon shuts down.
pub async fn run(daemon: Arc<Daemon>, target: String, schedule: Schedule) {
    let shutdown = daemon.shutdown.clone();
    let mut tick = Instant::now();
    loop {
        let jitter = if schedule.jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=schedule.jitter)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(tick + jitter) => {}
        }
        let next = next_tick(tick, schedule.interval, Instant::now());
        if !fire(&daemon, &target, next).await {
            return;
        }
        tick = next_tick(tick, schedule.interval, Instant::now());
    }
}

/// Start one scheduled burst. While another target's burst holds the daemon, wait for it
/// to end (until the next tick at the latest) instead of skipping: with two targets on the
/// same interval, skipping would let whichever ticks first starve the other for good.
/// Returns false when the daemon is shutting down.
async fn fire(daemon: &Arc<Daemon>, target: &str, give_up_at: Instant) -> bool {
    loop {
        // Registered before trying, so a burst that ends in between still wakes us.
        let freed = daemon.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        match daemon.start_run(target, None, Trigger::Schedule) {
            Ok(run_id) => tracing::info!(target_name = %target, run_id, "scheduled run started"),
            Err(StartError::OtherTargetBusy(other)) => {
                tokio::select! {
                    _ = daemon.shutdown.cancelled() => return false,
                    _ = &mut freed => continue,
                    _ = tokio::time::sleep_until(give_up_at) => {
                        daemon.exporter.record_skipped_tick(target);
                        tracing::info!(
                            target_name = %target,
                            "scheduled run skipped: target {other:?} ran a burst until the next tick"
                        );
                    }
                }
            }
            Err(StartError::Busy(why)) => {
                daemon.exporter.record_skipped_tick(target);
                tracing::info!(target_name = %target, "scheduled run skipped: {why}");
            }
            Err(StartError::ShuttingDown) => return false,
            Err(e) => tracing::warn!(target_name = %target, "scheduled run could not start: {e}"),
        }
        return true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_on_the_grid_and_skip_what_was_missed() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // On time: the next grid point.
        assert_eq!(next_tick(t0, s(30), t0 + s(1)), t0 + s(30));
        // A burst that ran 75 s missed the ticks at 30 s and 60 s: next is 90 s, not 30 s.
        assert_eq!(next_tick(t0, s(30), t0 + s(75)), t0 + s(90));
        // Exactly on a grid point counts as missed (it is now, not the future).
        assert_eq!(next_tick(t0, s(30), t0 + s(60)), t0 + s(90));
        // Hours behind: still one tick, on the grid.
        assert_eq!(next_tick(t0, s(30), t0 + s(3600 * 5 + 1)), t0 + s(3600 * 5 + 30));
    }
}
