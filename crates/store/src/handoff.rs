//! Deliveries handed straight to a waiting consumer.
//!
//! A consumer that waits for deliveries (a delivery stream that has sent
//! all it could lease, a lease long-poll) opens its [`Handoff`] while it
//! waits. A delivery queued for that peer meanwhile is then leased to it,
//! for its route, in the transaction that queues it (its
//! `delivery_queued` and `delivery_leased` events in one commit; a route
//! that signals life revives the peer there, as its lease would have) and,
//! once that commits, handed to the consumer in memory: it sends the
//! delivery with no lease transaction of its own and no read. Nothing is
//! held only in memory: the row is `leased` as the consumer's own lease
//! would have left it, so one that goes away before sending it gives it
//! back when the lease runs out, as any lease does.

use repowire_core::delivery::{Delivery, DeliveryRoute, DeliveryState};
use repowire_core::ids::{DeliveryId, PeerId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One consumer's side of the handoff: how many it can take now, and what it
/// was handed.
pub struct Handoff {
    peer: PeerId,
    lease_ms: i64,
    route: DeliveryRoute,
    slot: Mutex<Slot>,
    /// Woken when the last place in flight lands (handed or given back).
    settled: tokio::sync::Notify,
    /// Woken by a committed delivery queued for the peer (`waits.rs`).
    woken: tokio::sync::Notify,
}

#[derive(Default)]
struct Slot {
    /// How many more may be handed (0: closed, the consumer is busy).
    room: usize,
    /// Committed and handed, not yet taken by the consumer.
    handed: Vec<Delivery>,
    /// Moves with every open and close: a place given back after either
    /// is not restored.
    epoch: u64,
    /// Places taken by transactions not yet ended.
    in_flight: usize,
    /// A delivery was queued for the peer and not handed here (no room,
    /// or an older one waited): it is for a lease to find.
    missed: bool,
}

impl Handoff {
    /// Open for up to `room` deliveries (the consumer waits, with that
    /// much room to send).
    pub fn open(&self, room: usize) {
        let mut s = self.lock();
        s.room = room;
        s.epoch += 1;
    }

    /// Close, and take what was handed since the last take.
    pub fn take(&self) -> Vec<Delivery> {
        let mut s = self.lock();
        s.room = 0;
        s.epoch += 1;
        std::mem::take(&mut s.handed)
    }

    /// Whether a delivery for the peer was queued without being handed
    /// here since the last call (then only a lease finds it); clears it.
    /// A consumer handed what it waited for, with nothing missed, has
    /// nothing else to lease but leases that ran out and armed deliveries
    /// come due, which no transaction announces (it naps for those).
    pub fn take_missed(&self) -> bool {
        std::mem::take(&mut self.lock().missed)
    }

    /// Close, wait for the places taken before that to land, and take
    /// all that was handed: for a consumer that answers once (a long-poll)
    /// and must not leave a delivery leased to it behind.
    pub async fn take_settled(&self) -> Vec<Delivery> {
        loop {
            let landed = self.settled.notified();
            {
                let mut s = self.lock();
                s.room = 0;
                s.epoch += 1;
                if s.in_flight == 0 {
                    return std::mem::take(&mut s.handed);
                }
            }
            landed.await;
        }
    }

    /// Woken by a committed `delivery_queued` for the peer (handed here or
    /// not): at once if one came since the last wake-up, or since the
    /// registration.
    pub fn woken(&self) -> &tokio::sync::Notify {
        &self.woken
    }

    /// The lease a delivery handed here gets.
    pub(crate) fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// The route it is leased for.
    pub(crate) fn route(&self) -> DeliveryRoute {
        self.route
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one place (inside a write transaction): the epoch it was
    /// taken in, or `None` when closed.
    fn reserve(&self) -> Option<u64> {
        let mut s = self.lock();
        if s.room == 0 {
            return None;
        }
        s.room -= 1;
        s.in_flight += 1;
        Some(s.epoch)
    }

    /// One place in flight landed.
    fn landed(&self, mut s: std::sync::MutexGuard<'_, Slot>) {
        s.in_flight -= 1;
        if s.in_flight == 0 {
            drop(s);
            self.settled.notify_waiters();
        }
    }

    /// The transaction that reserved a place committed `d` (leased to this
    /// consumer whether or not it closed meanwhile: its next take gets it).
    fn hand(&self, d: Delivery) {
        let mut s = self.lock();
        s.handed.push(d);
        self.landed(s);
    }

    /// The transaction that reserved a place in `epoch` rolled back: give
    /// the place back, unless the consumer closed or opened anew meanwhile.
    fn release(&self, epoch: u64) {
        let mut s = self.lock();
        if s.epoch == epoch {
            s.room += 1;
        }
        self.landed(s);
    }
}

/// The consumers waiting for deliveries, by peer.
#[derive(Default, Clone)]
pub struct Waiting {
    by_peer: Arc<Mutex<HashMap<PeerId, Vec<Arc<Handoff>>>>>,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Vec<Arc<Handoff>>>> {
        self.by_peer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place in one of `peer`'s open consumers, if one has room (if none
    /// has, each notes that it [missed](Handoff::take_missed) one).
    pub(crate) fn reserve(&self, peer: &PeerId) -> Option<(Arc<Handoff>, u64)> {
        let map = self.lock();
        let consumers = map.get(peer)?;
        let place = consumers
            .iter()
            .find_map(|h| Some((h.clone(), h.reserve()?)));
        if place.is_none() {
            consumers.iter().for_each(|h| h.lock().missed = true);
        }
        place
    }

    /// A delivery queued for `peer` committed: wake its consumers.
    pub(crate) fn wake(&self, peer: &str) {
        if let Some(consumers) = self.lock().get(peer) {
            consumers.iter().for_each(|h| h.woken.notify_one());
        }
    }

    /// A delivery for `peer` is queued for leases, not handed: its
    /// consumers note that they missed one.
    pub(crate) fn missed(&self, peer: &PeerId) {
        if let Some(consumers) = self.lock().get(peer) {
            consumers.iter().for_each(|h| h.lock().missed = true);
        }
    }
}

/// A consumer's registration: closed and forgotten when dropped.
pub struct Registration {
    waiting: Waiting,
    handoff: Arc<Handoff>,
}

impl Registration {
    pub fn handoff(&self) -> &Handoff {
        &self.handoff
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.handoff.take();
        let mut map = self.waiting.lock();
        if let Some(v) = map.get_mut(&self.handoff.peer) {
            v.retain(|h| !Arc::ptr_eq(h, &self.handoff));
            if v.is_empty() {
                map.remove(&self.handoff.peer);
            }
        }
    }
}

impl super::Store {
    /// Register a consumer of `peer`'s deliveries (leasing for `lease_ms`
    /// on `route`) for handoffs; it is closed until it
    /// [opens](Handoff::open).
    pub fn register_consumer(
        &self,
        peer: &PeerId,
        lease_ms: i64,
        route: DeliveryRoute,
    ) -> Registration {
        let handoff = Arc::new(Handoff {
            peer: peer.clone(),
            lease_ms,
            route,
            slot: Mutex::new(Slot::default()),
            settled: tokio::sync::Notify::new(),
            woken: tokio::sync::Notify::new(),
        });
        self.waiting
            .lock()
            .entry(peer.clone())
            .or_default()
            .push(handoff.clone());
        Registration {
            waiting: self.waiting.clone(),
            handoff,
        }
    }
}

/// Places reserved by one transaction, settled when it ends: handed,
/// or given back (a rollback, a delivery not leased after all, a place
/// never used; dropped unsettled, by an error or a panic, gives back too).
#[derive(Default)]
pub(crate) struct Reserved(Vec<Place>);

struct Place {
    handoff: Arc<Handoff>,
    epoch: u64,
    /// The delivery leased for it, once inserted.
    id: Option<DeliveryId>,
    got: Option<Delivery>,
}

impl Reserved {
    /// Hold the place reserved in `handoff`; returns its index.
    pub(crate) fn push(&mut self, (handoff, epoch): (Arc<Handoff>, u64)) -> usize {
        self.0.push(Place {
            handoff,
            epoch,
            id: None,
            got: None,
        });
        self.0.len() - 1
    }

    /// Delivery `id` takes place `i`.
    pub(crate) fn name(&mut self, i: usize, id: DeliveryId) {
        self.0[i].id = Some(id);
    }

    /// Just before the commit: read each delivery as the transaction
    /// leaves it (what it carries may have been completed after it was
    /// queued: an ask's job). One no longer leased (withdrawn, or undone
    /// by a savepoint) gives its place back.
    pub(crate) fn read(&mut self, c: &rusqlite::Connection) -> repowire_core::error::Result<()> {
        for p in &mut self.0 {
            let Some(id) = &p.id else { continue };
            p.got = super::deliveries::one(c, id)?
                .filter(|d| d.state == DeliveryState::Leased && d.attempts == 1);
        }
        Ok(())
    }

    /// After the commit: hand each delivery over.
    pub(crate) fn hand(mut self) {
        for p in std::mem::take(&mut self.0) {
            match p.got {
                Some(d) => p.handoff.hand(d),
                None => p.handoff.release(p.epoch),
            }
        }
    }

    /// After a rollback: give every place back.
    pub(crate) fn release(mut self) {
        for p in std::mem::take(&mut self.0) {
            p.handoff.release(p.epoch);
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        for p in std::mem::take(&mut self.0) {
            p.handoff.release(p.epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Store, deliveries};
    use crate::testing::register;
    use repowire_core::delivery::{DeliveryKind, DeliveryRoute, DeliveryState};
    use repowire_core::error::Error;
    use repowire_core::ids::PeerId;

    fn setup() -> (tempfile::TempDir, Store, PeerId, PeerId) {
        let (dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        (dir, s, a, b)
    }

    /// A note to b.
    fn note(s: &Store, from: &PeerId, text: &str) -> repowire_core::ids::DeliveryId {
        crate::testing::note(s, from, "b", text)
    }

    /// Wait (at most `within`) for the handoff to settle and take what
    /// it holds; `Err` while a place is still in flight.
    fn settle(
        reg: &super::Registration,
        within: std::time::Duration,
    ) -> Result<Vec<repowire_core::delivery::Delivery>, tokio::time::error::Elapsed> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { tokio::time::timeout(within, reg.handoff().take_settled()).await })
    }

    /// The kinds of the events about delivery `id`, with the route of each lease.
    fn trail(s: &Store, id: &str) -> Vec<(String, Option<String>)> {
        s.trace(id)
            .unwrap()
            .into_iter()
            .map(|e| {
                let route = e.payload_value()["route"].as_str().map(str::to_string);
                (e.kind, route)
            })
            .collect()
    }

    /// A consumer learns whether something queued for its peer was not
    /// handed to it (no room, closed, or an older one waiting): only then
    /// has a lease anything to find after what it was handed.
    #[test]
    fn a_consumer_knows_when_a_lease_has_something_to_find() {
        let (_dir, s, a, b) = setup();
        let reg = s.register_consumer(&b, 30_000, DeliveryRoute::Stream);
        let h = reg.handoff();
        h.open(2);
        note(&s, &a, "handed");
        assert_eq!(h.take().len(), 1);
        assert!(!h.take_missed(), "all that was queued was handed");
        h.open(1);
        note(&s, &a, "handed too");
        note(&s, &a, "no room left");
        assert_eq!(h.take().len(), 1);
        assert!(h.take_missed(), "one waits for a lease");
        assert!(!h.take_missed(), "noted once");
        note(&s, &a, "closed");
        assert!(h.take_missed());
        // Behind an older one (the lease of the first ran out): queued,
        // noted, and the lease finds both in order.
        assert_eq!(s.lease(&b, 10, 0, DeliveryRoute::Stream).unwrap().len(), 2);
        h.open(2);
        note(&s, &a, "behind");
        assert!(h.take().is_empty());
        assert!(h.take_missed());
        // Another peer's note is nothing to this consumer.
        h.open(2);
        crate::testing::note(&s, &b, "a", "to a");
        assert!(h.take().is_empty());
        assert!(!h.take_missed());
    }

    /// An open stream is handed what is queued for its peer, up to its
    /// room, each leased to it in the queuing commit (as a stream lease
    /// would have left it); the rest waits, pending, for a lease.
    #[test]
    fn a_waiting_stream_is_handed_what_is_queued_up_to_its_room() {
        let (_dir, s, a, b) = setup();
        let reg = s.register_consumer(&b, 30_000, DeliveryRoute::Stream);
        // Oldest first: while one queued before it opened waits, a newer
        // one is not handed over either; a lease takes both, in order.
        let before = note(&s, &a, "not open yet");
        reg.handoff().open(2);
        let after = note(&s, &a, "behind an older one");
        assert!(reg.handoff().take().is_empty());
        let leased = s.lease(&b, 10, 30_000, DeliveryRoute::Stream).unwrap();
        assert_eq!(
            leased.iter().map(|d| &d.delivery_id).collect::<Vec<_>>(),
            vec![&before, &after]
        );
        reg.handoff().open(2);
        let ids: Vec<_> = (0..3).map(|i| note(&s, &a, &format!("n{i}"))).collect();
        let got = reg.handoff().take();
        assert_eq!(
            got.iter().map(|d| &d.delivery_id).collect::<Vec<_>>(),
            vec![&ids[0], &ids[1]]
        );
        for d in &got {
            assert_eq!(d.state, DeliveryState::Leased);
            assert_eq!(d.attempts, 1);
            assert_eq!(d.kind, DeliveryKind::Notify);
            assert_eq!(d.from.as_deref(), Some("a"));
            let stored = s.delivery(&b, &d.delivery_id).unwrap().unwrap();
            assert_eq!(stored.state, DeliveryState::Leased);
            assert_eq!(stored.lease_until_ms, d.lease_until_ms);
            assert!(d.lease_until_ms.unwrap() >= d.created_at_ms + 30_000);
            assert_eq!(
                trail(&s, d.delivery_id.as_str()),
                vec![
                    ("delivery_queued".to_string(), None),
                    ("delivery_leased".to_string(), Some("stream".to_string())),
                ]
            );
        }
        // No room left: pending, for a lease.
        let d = s.delivery(&b, &ids[2]).unwrap().unwrap();
        assert_eq!(d.state, DeliveryState::Pending);
        let leased = s.lease(&b, 10, 30_000, DeliveryRoute::Stream).unwrap();
        assert_eq!(
            leased.iter().map(|d| &d.delivery_id).collect::<Vec<_>>(),
            vec![&ids[2]]
        );
        // Taking closed it.
        let closed = note(&s, &a, "closed");
        assert!(reg.handoff().take().is_empty());
        assert_eq!(
            s.delivery(&b, &closed).unwrap().unwrap().state,
            DeliveryState::Pending
        );
        // A stream gone is forgotten.
        reg.handoff().open(5);
        drop(reg);
        let gone = note(&s, &a, "gone");
        assert_eq!(
            s.delivery(&b, &gone).unwrap().unwrap().state,
            DeliveryState::Pending
        );
    }

    /// A transaction that queued a delivery and then failed hands nothing
    /// and gives its place back; one whose delivery was withdrawn before
    /// its commit, and one that panicked, too.
    #[test]
    fn an_undone_queue_gives_its_place_back() {
        let (_dir, s, a, b) = setup();
        let reg = s.register_consumer(&b, 30_000, DeliveryRoute::Stream);
        reg.handoff().open(1);
        let (from, to) = (
            s.peer_by_id(&a).unwrap().unwrap(),
            s.peer_by_id(&b).unwrap().unwrap(),
        );
        let queue = |t: &mut super::super::Tx<'_>| t.notify_as(&from, &to, "undone");
        let r: Result<(), Error> = s.write(|t| {
            queue(t)?;
            Err(Error::internal("and then it failed"))
        });
        assert!(r.is_err());
        let withdrawn = s
            .write(|t| {
                let id = queue(t)?;
                deliveries::drop_where(t, "seq = ?1", &[&id.seq()], "test")?;
                Ok(id)
            })
            .unwrap();
        assert_eq!(
            s.delivery(&b, &withdrawn).unwrap().unwrap().state,
            DeliveryState::Dropped
        );
        // A write that panics after taking the place gives it back too.
        let s = std::panic::AssertUnwindSafe(s);
        let panicked = std::panic::catch_unwind(|| {
            let _: Result<(), Error> = s.write(|t| {
                queue(t)?;
                panic!("mid-write");
            });
        });
        assert!(panicked.is_err());
        // Nothing handed, and nothing left in flight (a long-poll closing
        // now answers rather than waiting for a place that never lands).
        let settled = settle(&reg, std::time::Duration::from_secs(5));
        assert!(
            settled.expect("a place left in flight").is_empty(),
            "nothing handed"
        );
        reg.handoff().open(1);
        // Its one place is still there.
        let kept = note(&s, &a, "kept");
        let got = reg.handoff().take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].delivery_id, kept);
    }

    /// A long-poll's consumer (the pull route) is handed what is queued
    /// with the pull route's lease: recorded as pull, and the peer revived
    /// (its own lease would have). Closing to answer waits for a place
    /// taken by a transaction still in flight, so nothing leased to it is
    /// left behind.
    #[test]
    fn a_long_poll_is_handed_its_deliveries_and_waits_for_one_in_flight() {
        let (_dir, s, a, b) = setup();
        let s = std::sync::Arc::new(s);
        let reg = s.register_consumer(&b, 10_000, DeliveryRoute::Pull);
        reg.handoff().open(1);
        let (reserved_tx, reserved_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let s = s.clone();
            let (from, to) = (
                s.peer_by_id(&a).unwrap().unwrap(),
                s.peer_by_id(&b).unwrap().unwrap(),
            );
            std::thread::spawn(move || {
                s.write(|t| {
                    let id = t.notify_as(&from, &to, "in flight")?;
                    reserved_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    Ok(id)
                })
                .unwrap()
            })
        };
        reserved_rx.recv().unwrap();
        // Not while the transaction that took its place is open.
        let early = settle(&reg, std::time::Duration::from_millis(50));
        assert!(early.is_err(), "answered with a place still in flight");
        go_tx.send(()).unwrap();
        let id = writer.join().unwrap();
        let got = settle(&reg, std::time::Duration::from_secs(5)).expect("settled");
        assert_eq!(
            got.iter().map(|d| &d.delivery_id).collect::<Vec<_>>(),
            vec![&id]
        );
        assert_eq!(
            trail(&s, id.as_str()),
            vec![
                ("delivery_queued".to_string(), None),
                ("delivery_leased".to_string(), Some("pull".to_string())),
            ]
        );
        assert!(got[0].lease_until_ms.unwrap() >= got[0].created_at_ms + 10_000);
    }
}
