//! The scheduler: one task that sleeps until the next due fire (woken early
//! when schedules change — no polling), then fires everything due
//! concurrently on blocking threads, so one slow target never delays the
//! rest. What a fire does is [`crate::service::schedules::fire`].

use crate::DaemonHandle;
use crate::service::schedules::fire;
use repowire_core::ids::ScheduleId;
use std::time::Duration;

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let mut last_round = tokio::time::Instant::now() - Duration::from_secs(1);
    loop {
        let mut wait = match h.store.next_due_ms() {
            Ok(Some(at)) => {
                Duration::from_millis((at - h.clock.now_ms()).clamp(0, 3_600_000) as u64)
            }
            Ok(None) => Duration::from_secs(3600),
            Err(e) => {
                tracing::error!(error = %e, "scheduler could not read the next due time");
                Duration::from_secs(5)
            }
        };
        // A fire that keeps failing (its retry could not be recorded) must
        // not make this loop spin.
        if wait.is_zero() && last_round.elapsed() < Duration::from_millis(100) {
            wait = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = h.schedules_changed.notified() => continue,
            _ = h.stopping() => return,
        }
        let due = match h.store.due_schedules(h.clock.now_ms()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "scheduler could not list due schedules");
                continue;
            }
        };
        // Check-ins run scripts: each on its own thread, so a slow one never
        // delays the rest. Plain fires go in batches, one commit per batch.
        let (checkins, plain): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, c)| *c);
        let mut fires: Vec<_> = checkins
            .into_iter()
            .map(|(id, _)| {
                let hh = h.clone();
                tokio::task::spawn_blocking(move || fire(&hh, &id))
            })
            .collect();
        let plain: Vec<ScheduleId> = plain.into_iter().map(|(id, _)| id).collect();
        for chunk in plain.chunks(500) {
            let (hh, ids) = (h.clone(), chunk.to_vec());
            fires.push(tokio::task::spawn_blocking(move || {
                if let Err(e) = hh.store.fire_batch(&ids) {
                    tracing::error!(error = %e, "schedule batch failed; it is retried");
                }
            }));
        }
        for f in fires {
            let _ = f.await;
        }
        last_round = tokio::time::Instant::now();
    }
}
