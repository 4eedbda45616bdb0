//! Waiting inside a long-poll or a stream: until an event of interest, a
//! deadline, a move of a manual clock, or the daemon stopping (so a
//! graceful stop never waits on a long-poll).

use crate::DaemonHandle;
use repowire_core::error::Error;
use repowire_core::event::{Event, EventRecord};
use repowire_core::ids::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

/// Why a wait ended.
pub enum Wake {
    /// An event of interest (or a lag, or a clock move: look again).
    Event,
    /// The deadline passed.
    Done,
    /// The daemon is stopping.
    Stopping,
}

/// Sleep until an event matching `wanted`, `until`, shutdown, or a move of a
/// manual clock (tests: a lease may have run out; callers look again).
pub async fn next(
    h: &DaemonHandle,
    rx: &mut Receiver<Arc<EventRecord>>,
    until: tokio::time::Instant,
    wanted: impl Fn(&EventRecord) -> bool,
) -> Result<Wake, Error> {
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
    loop {
        let got = tokio::select! {
            r = tokio::time::timeout_at(until, rx.recv()) => r,
            _ = &mut stopping => return Ok(Wake::Stopping),
            _ = h.clock_moved.notified() => return Ok(Wake::Event),
        };
        match got {
            Err(_) => return Ok(Wake::Done),
            Ok(Ok(e)) if wanted(&e) => return Ok(Wake::Event),
            Ok(Ok(_)) => continue,
            Ok(Err(RecvError::Lagged(_))) => return Ok(Wake::Event),
            Ok(Err(RecvError::Closed)) => return Err(Error::internal("event bus closed")),
        }
    }
}

/// Does `e` say a delivery was queued for `peer_id`?
pub fn queued_for(e: &EventRecord, peer_id: &str) -> bool {
    matches!(&e.event, Some(Event::DeliveryQueued { to_peer_id, .. }) if to_peer_id == peer_id)
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
