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
        // Retention needs no sub-second precision: every 60th tick.
        let full = n % 60 == 1;
        let h = h.clone();
        // On a blocking thread, so the request loop never waits on this I/O.
        if let Err(e) = tokio::task::spawn_blocking(move || maintain(&h, full)).await {
            tracing::error!(error = %e, "background task panicked");
        }
    }
}

/// One pass of the background work (the full pass adds retention).
pub(crate) fn maintain(h: &DaemonHandle, full: bool) {
    let _one_at_a_time = h.maintenance.lock().unwrap_or_else(|p| p.into_inner());
    let s = &h.store;
    log("ghost scan", s.mark_ghosts());
    log("ask expiry", s.expire_due());
    log("ask reminders", s.remind_due());
    log("job repair", s.repair_jobs());
    crate::service::reviews::route_pending(h);
    let n = crate::service::jobs::retry_queued(h);
    if n > 0 {
        tracing::debug!(n, "queued jobs dispatched");
    }
    if let Err(e) = s.checkpoint(false) {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
    if full {
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

fn log(what: &str, r: repowire_core::error::Result<usize>) {
    match r {
        Ok(0) => {}
        Ok(n) => tracing::debug!(what, n, "background task acted"),
        Err(e) => tracing::error!(what, error = %e, "background task failed"),
    }
}
