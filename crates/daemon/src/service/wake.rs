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
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

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
///
/// Every waiter hears every event on the bus, so the cost per event that
/// is not for it is what many waiters multiply: the deadline, the stop and
/// the clock are each registered once per call (not once per event), and
/// the events already on the bus are read without waiting. Events come
/// before the deadline, as a look at them is what the caller wants.
pub async fn next(
    h: &DaemonHandle,
    rx: &mut Receiver<Arc<EventRecord>>,
    until: tokio::time::Instant,
    wanted: impl Fn(&EventRecord) -> bool,
) -> Result<Wake, Error> {
    let stopping = h.stopping();
    tokio::pin!(stopping);
    let moved = h.clock_moved.notified();
    tokio::pin!(moved);
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    loop {
        // What is already on the bus, a bounded number at a time (then the
        // stop and the clock get their turn).
        for _ in 0..DRAIN {
            match rx.try_recv() {
                Ok(e) if wanted(&e) => return Ok(Wake::Event),
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => return Ok(Wake::Event),
                Err(TryRecvError::Closed) => return Err(closed()),
            }
        }
        let got = tokio::select! {
            biased;
            _ = &mut stopping => return Ok(Wake::Stopping),
            _ = &mut moved => return Ok(Wake::Event),
            r = rx.recv() => r,
            _ = &mut deadline => return Ok(Wake::Done),
        };
        match got {
            Ok(e) if wanted(&e) => return Ok(Wake::Event),
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => return Ok(Wake::Event),
            Err(RecvError::Closed) => return Err(closed()),
        }
    }
}

/// Events read without waiting before the stop and the clock are looked at.
const DRAIN: usize = 256;

fn closed() -> Error {
    Error::internal("event bus closed")
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
