//! The scheduler: one task that sleeps until it has work (woken early when
//! schedules change — no polling). Its work, in order: arm the plain fires
//! due within `schedule_arm_ahead_ms` (written ahead, invisible until their
//! instant: see `repowire_store::schedules`), then fire or book everything
//! due, concurrently on blocking threads, so one slow target never delays
//! the rest. What a fire does is [`crate::service::schedules::fire`].

use crate::DaemonHandle;
use crate::service::schedules::fire;
use repowire_core::error::Error;
use repowire_core::ids::ScheduleId;
use repowire_store::Due;
use std::collections::HashSet;
use std::time::Duration;

/// Fires armed, booked or fired in one transaction: few enough that a
/// request waiting for the writer meanwhile (a consumer taking the fire
/// that just became visible) waits a few milliseconds at most.
const BATCH: usize = 50;

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let ahead = h.store.policy.schedule_arm_ahead_ms.max(0);
    // The wake time the last round ran for.
    let mut last_at = None;
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
    loop {
        let next = h.store.next_wake_ms(ahead);
        let mut wait = match next {
            Ok(Some(at)) => {
                Duration::from_millis((at - h.clock.now_ms()).clamp(0, 3_600_000) as u64)
            }
            Ok(None) => Duration::from_secs(3600),
            Err(ref e) => {
                tracing::error!(error = %e, "scheduler could not read the next due time");
                Duration::from_secs(5)
            }
        };
        let at = next.ok().flatten();
        // A round that changed nothing (a fire whose failure could not even
        // be recorded) must not make this loop spin.
        if wait.is_zero() && at.is_some() && at == last_at {
            wait = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = h.schedules_changed.notified() => continue,
            _ = &mut stopping => return,
        }
        last_at = at;
        fire_due(&h).await;
        if ahead > 0 {
            arm(&h, ahead).await;
        }
    }
}

/// Fire (or book, when armed) every schedule due now.
async fn fire_due(h: &DaemonHandle) {
    // A burst is thousands of rows: read off the async workers, which
    // serve the consumers taking what just became visible.
    let hh = h.clone();
    let due = match blocking(move || hh.store.due_schedules(hh.clock.now_ms())).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "scheduler could not list due schedules");
            return;
        }
    };
    // Check-ins run scripts: each on its own thread, so a slow one never
    // delays the rest. Plain fires go in batches, one commit per batch.
    let (checkins, plain): (Vec<Due>, Vec<Due>) = due.into_iter().partition(|d| d.checkin);
    let mut fires: Vec<_> = checkins
        .into_iter()
        .map(|d| {
            let hh = h.clone();
            tokio::task::spawn_blocking(move || fire(&hh, &d.id))
        })
        .collect();
    // The first fire of each recipient comes first (BATCH fires a commit),
    // so every waiting consumer is woken (by its `delivery_queued`) early,
    // however many fires are due together.
    let mut seen = HashSet::new();
    let (first, rest): (Vec<Due>, Vec<Due>) = plain
        .into_iter()
        .partition(|d| seen.insert(d.target.clone()));
    let ordered: Vec<ScheduleId> = first.into_iter().chain(rest).map(|d| d.id).collect();
    let chunks: Vec<Vec<ScheduleId>> = ordered.chunks(BATCH).map(<[_]>::to_vec).collect();
    // One after another: they share the one writer; the first commit is not
    // held up by the others.
    let hh = h.clone();
    fires.push(tokio::task::spawn_blocking(move || {
        for ids in chunks {
            if let Err(e) = hh.store.fire_batch(&ids) {
                tracing::error!(error = %e, "schedule batch failed; it is retried");
            }
            // Let a request waiting for the store's connection in first.
            std::thread::yield_now();
        }
    }));
    for f in fires {
        let _ = f.await;
    }
}

/// Arm the plain fires due within `ahead` ms, earliest first, a batch per
/// commit; stop as soon as anything is due (its fire comes first; the next
/// round goes on arming).
async fn arm(h: &DaemonHandle, ahead: i64) {
    let now = h.clock.now_ms();
    let hh = h.clone();
    let todo = match blocking(move || hh.store.schedules_to_arm(now, now + ahead)).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "scheduler could not list schedules to arm");
            return;
        }
    };
    for chunk in todo.chunks(BATCH) {
        match h.store.next_due_ms() {
            Ok(Some(due)) if due <= h.clock.now_ms() => return,
            Err(_) => return,
            _ => {}
        }
        let (hh, ids): (_, Vec<ScheduleId>) =
            (h.clone(), chunk.iter().map(|(id, _)| id.clone()).collect());
        match tokio::task::spawn_blocking(move || hh.store.arm_schedules(&ids)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "arming schedules failed; they fire when due");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A store call on a blocking thread (a burst reads thousands of rows).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("scheduler thread: {e}")))?
}
