//! The caller's inbox: peek, lease (the pull and hook routes, long-polling
//! for the first delivery), the delivery stream (the stream route, which
//! channel push rides), confirm, and recording what a channel push sent
//! live. What each route does with a lease follows its promises
//! (`repowire_core::delivery::Route`), not a flag of its own.

use super::wake::{self, Wake};
use crate::DaemonHandle;
use crate::auth::Caller;
use crate::streams::{self, Slot};
use repowire_core::delivery::{Delivery, DeliveryRoute};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::DeliveryId;
use std::time::Duration;
use tokio::sync::mpsc;

/// The caller's open deliveries, without leasing them.
pub fn peek(h: &DaemonHandle, c: &Caller, limit: Option<u32>) -> Result<Vec<Delivery>, Error> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    h.store.peek(&c.me()?.id, limit)
}

/// One of the caller's deliveries, whole and in any state (what a tmux pane
/// got as a summary: `repowire peer delivery ID`).
pub fn show(h: &DaemonHandle, c: &Caller, id: &DeliveryId) -> Result<Delivery, Error> {
    h.store.delivery(&c.me()?.id, id)?.ok_or_else(|| {
        Error::new(
            repowire_core::error::ErrorCode::NotFound,
            format!("no delivery {id} to you"),
        )
    })
}

/// Mark the caller's deliveries `ids` delivered: what put them in front of
/// the agent says so (its inbox, a hook after printing).
pub fn confirm(h: &DaemonHandle, c: &Caller, ids: &[DeliveryId]) -> Result<usize, Error> {
    h.store.confirm(c.me()?, ids)
}

/// A channel push sent the caller's deliveries `ids` into its session as
/// live hints: recorded, unconfirmed, their stream lease ended.
pub fn pushed(h: &DaemonHandle, c: &Caller, ids: &[DeliveryId]) -> Result<usize, Error> {
    h.store.pushed(&c.me()?.id, ids)
}

/// The lease a consumer asked for (1 s to 1 h), else the daemon's.
fn lease_for(h: &DaemonHandle, asked_ms: Option<u64>) -> i64 {
    asked_ms
        .map(|v| v.clamp(1_000, 3_600_000) as i64)
        .unwrap_or(h.store.policy.lease_ms)
}

/// What a lease asks for.
pub struct LeaseAsk {
    pub max: Option<u32>,
    pub wait_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    /// The route that carries what is leased (default pull; pull or hook).
    pub route: Option<DeliveryRoute>,
}

/// Lease the caller's pending deliveries for its route, long-polling up to
/// `wait_ms` for the first (one queued while it waits is handed to it by
/// the transaction that queues it). Deliveries already pushed live are handed out
/// too, marked (`pushed_at_ms`): pull and hook put them in front of the
/// agent.
pub async fn lease(h: &DaemonHandle, c: &Caller, ask: LeaseAsk) -> Result<Vec<Delivery>, Error> {
    let route = DeliveryRoute::for_lease(ask.route)?;
    let me = c.me()?.clone();
    let max = ask.max.unwrap_or(100).clamp(1, 1000);
    let lease_ms = lease_for(h, ask.lease_ms);
    let wait = Duration::from_millis(ask.wait_ms.unwrap_or(0).min(600_000));
    let deadline = tokio::time::Instant::now() + wait;
    // While it waits, what is queued for the peer is leased to it in the
    // queuing transaction and handed over (no second look); whatever is
    // queued for it after this wakes it.
    let reg = h.store.register_consumer(&me.id, lease_ms, route);
    loop {
        // Its first look reads: after the open group (not committing it).
        h.store.open_group_landed().await;
        let items = h.store.lease(&me.id, max, lease_ms, route)?;
        let now = tokio::time::Instant::now();
        if !items.is_empty() || now >= deadline {
            return Ok(items);
        }
        // Wake on a new delivery for this peer, or now and then for leases
        // that expired elsewhere (or were pushed live).
        let until = now + (deadline - now).min(wake::nap_for(h, &me.id, wake::nap(h)));
        reg.handoff().open(max as usize);
        let woke = wake::next(h, reg.handoff().woken(), until).await;
        // Whatever was handed meanwhile is leased to this call: it leaves
        // with it, whatever ended the wait.
        let handed = reg.handoff().take_settled().await;
        if !handed.is_empty() {
            return Ok(handed);
        }
        if matches!(woke, Wake::Stopping) || *h.shutdown_flag() {
            return Ok(Vec::new());
        }
    }
}

/// One item of the delivery stream.
pub enum StreamItem {
    Delivery(Box<Delivery>),
    /// A lease failed: the stream ends with it.
    Failed(Error),
}

/// The caller's delivery stream (the stream route): its deliveries, then
/// live ones as they come, each leased when there is room to send it (a few
/// ahead at most), never one a channel push already sent live. The
/// consumer confirms them, or records them pushed; one it does neither
/// with (the stream broke) comes back after its lease. An open stream is
/// not a sign of life. It ends on a failed lease, the daemon stopping or
/// the consumer leaving. The slot counts it against the caller's streams
/// until the response holding it ends.
pub fn stream(
    h: &DaemonHandle,
    c: &Caller,
    max: Option<u32>,
    lease_ms: Option<u64>,
) -> Result<(Slot, mpsc::Receiver<StreamItem>), Error> {
    let me = c.me()?.clone();
    let slot = streams::open_slot(h, c)?;
    let max = max.unwrap_or(50).clamp(1, 1000);
    let lease_ms = lease_for(h, lease_ms);
    // Small: deliveries are leased only as fast as the consumer reads.
    let (tx, rx) = mpsc::channel::<StreamItem>(8);
    let nap = wake::nap(h);
    let h = h.clone();
    tokio::spawn(async move {
        // While it waits, what is queued for the peer is leased to it in
        // the queuing transaction and handed over (no lease of its own).
        let reg = h
            .store
            .register_consumer(&me.id, lease_ms, DeliveryRoute::Stream);
        loop {
            // Lease only what the channel has room for now, so little is
            // leased but unsent when the consumer goes away.
            let Ok(permit) = tx.reserve().await else {
                return;
            };
            let room = (tx.capacity() as u32 + 1).min(max);
            // What was handed while it waited (as a rule no more than the
            // room it opened with, which only grew since; a place taken
            // just before it opened anew can add one: that waits for room
            // below); else a lease. Fewer leased than there was room for:
            // nothing else could be handed out at that instant, and
            // whatever comes later wakes the wait below (the consumer was
            // registered before the first look), so look again only after.
            // Handed, with nothing queued that was not: nothing else to
            // lease either (leases that ran out and armed deliveries come
            // due are what the wait's nap is for).
            let handed = reg.handoff().take();
            let (items, full) = if !handed.is_empty() {
                let missed = reg.handoff().take_missed();
                (handed, missed)
            } else {
                // A lease finds whatever was missed.
                reg.handoff().take_missed();
                match h.store.lease(&me.id, room, lease_ms, DeliveryRoute::Stream) {
                    Ok(items) => {
                        let full = items.len() as u32 >= room;
                        (items, full)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "inbox stream lease failed");
                        permit.send(StreamItem::Failed(e));
                        return;
                    }
                }
            };
            let mut permit = Some(permit);
            for d in items {
                let item = StreamItem::Delivery(Box::new(d));
                let sent = match permit.take() {
                    Some(p) => {
                        p.send(item);
                        true
                    }
                    None => tx.send(item).await.is_ok(),
                };
                if !sent {
                    return; // gone: what it did not confirm comes back after its lease
                }
            }
            if full {
                continue;
            }
            drop(permit);
            reg.handoff()
                .open((tx.capacity() as u32).clamp(1, max) as usize);
            // Wake on a new delivery for this peer (one handed over comes
            // with its `delivery_queued`), now and then for leases that
            // expired, or to end with the daemon or the consumer.
            let until = tokio::time::Instant::now() + wake::nap_for(&h, &me.id, nap);
            tokio::select! {
                w = wake::next(&h, reg.handoff().woken(), until) => {
                    if let Wake::Stopping = w {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok((slot, rx))
}

/// The error a long-poll ends with when the daemon stops under it.
pub fn shutting_down(what: &str) -> Error {
    Error::new(
        ErrorCode::ShuttingDown,
        format!("the daemon is shutting down; {what} again once it is back"),
    )
}
