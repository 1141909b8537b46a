//! When scheduled bursts fire. The tick arithmetic is pure; [`run`] is the
//! loop that sleeps to each tick and asks the daemon for a burst.
//!
//! Ticks are `interval` apart from the daemon's start, the first at start-up
//! (so `/metrics` has a run to show within seconds, as blackbox_exporter probes
//! at once). Each tick is delayed by a random `[0, jitter]`. A tick that finds
//! the target busy is skipped and counted; ticks missed while a long burst ran
//! are skipped, not queued, so a slow target never gets a backlog of bursts.

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
        match daemon.start_run(&target, None, Trigger::Schedule) {
            Ok(run_id) => tracing::info!(target_name = %target, run_id, "scheduled run started"),
            Err(StartError::Busy(why)) => {
                daemon.exporter.record_skipped_tick(&target);
                tracing::info!(target_name = %target, "scheduled run skipped: {why}");
            }
            Err(StartError::ShuttingDown) => return,
            Err(e) => tracing::warn!(target_name = %target, "scheduled run could not start: {e}"),
        }
        tick = next_tick(tick, schedule.interval, Instant::now());
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
