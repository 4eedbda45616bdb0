//! Waiting inside a long-poll or a stream: until a wake-up addressed to
//! the waiter (`repowire_store`'s `waits.rs`: a delivery queued for its
//! peer, an event ending its ask), a deadline, a move of a manual clock, or
//! the daemon stopping (so a graceful stop never waits on a long-poll).

use crate::DaemonHandle;
use repowire_core::ids::PeerId;
use std::time::Duration;
use tokio::sync::Notify;

/// Why a wait ended.
pub enum Wake {
    /// Woken (or a clock move): look again.
    Event,
    /// The deadline passed.
    Done,
    /// The daemon is stopping.
    Stopping,
}

/// Sleep until `woken` is notified, `until`, shutdown, or a move of a
/// manual clock (tests: a lease may have run out; callers look again).
/// A wake-up that came before the call (since the registration, or since
/// the last) ends it at once. Being woken comes before the deadline, as
/// a look is what the caller wants.
pub async fn next(h: &DaemonHandle, woken: &Notify, until: tokio::time::Instant) -> Wake {
    tokio::select! {
        biased;
        _ = h.stopping() => Wake::Stopping,
        _ = h.clock_moved.notified() => Wake::Event,
        _ = woken.notified() => Wake::Event,
        _ = tokio::time::sleep_until(until) => Wake::Done,
    }
}

/// How long a waiting inbox naps between looks for leases that expired
/// elsewhere: short enough for a lease long-poll to count as a heartbeat.
pub fn nap(h: &DaemonHandle) -> Duration {
    Duration::from_millis((h.store.policy.stale_after_ms / 4).clamp(50, 2_000) as u64)
}

/// At most `nap`, and no later than the instant the peer's next armed
/// delivery (a schedule fire written ahead) becomes visible: nothing
/// announces that instant, so a waiting consumer wakes for it itself.
pub fn nap_for(h: &DaemonHandle, peer_id: &PeerId, nap: Duration) -> Duration {
    match h.store.next_armed_ms(peer_id) {
        Ok(Some(at)) => nap.min(Duration::from_millis((at - h.clock.now_ms()).max(0) as u64)),
        _ => nap,
    }
}
