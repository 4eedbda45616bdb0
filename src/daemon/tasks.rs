//! Background work, never inside request handlers: ghost detection, ask
//! reminders and expiry, event-log retention, and WAL checkpoints (so no
//! request pays for one).

use super::DaemonHandle;
use std::time::Duration;

/// Run every `tick` until the task is aborted.
pub async fn run(h: DaemonHandle, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        interval.tick().await;
        n += 1;
        let s = &h.store;
        log("ghost scan", s.mark_ghosts());
        log("ask expiry", s.expire_due());
        log("ask reminders", s.remind_due());
        let ck = h.clone();
        match tokio::task::spawn_blocking(move || ck.store.checkpoint(false)).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint task failed"),
            Ok(Ok(_)) => {}
        }
        // Retention is cheap but needs no sub-second precision.
        if n % 60 == 1 {
            log(
                "event retention",
                s.prune_events(s.policy.event_max_age_ms, s.policy.event_max_count),
            );
            log(
                "finished-row retention",
                s.prune_finished(s.policy.done_max_age_ms),
            );
        }
    }
}

fn log(what: &str, r: crate::core::error::Result<usize>) {
    match r {
        Ok(0) => {}
        Ok(n) => tracing::debug!(what, n, "background task acted"),
        Err(e) => tracing::error!(what, error = %e, "background task failed"),
    }
}
