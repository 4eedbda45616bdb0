//! Wake-ups addressed to the waiter an event concerns.
//!
//! A long-poll on an ask (`GET …/wait`, a blocking ask) waits for the event
//! that ends that ask; a waiting consumer of a peer's deliveries (a lease
//! long-poll, a delivery stream: `handoff.rs`) waits for a delivery queued
//! for that peer. Each is registered under what it waits for, and a commit
//! wakes only the waiters its events name ([`Store::wake_waiters`]), rather
//! than every waiter reading every event off the bus (a cost that grows as
//! waiters × events). A wake-up carries no event: the waiter looks again at
//! what it waits for. One that comes between the registration and the wait
//! is kept (a [`Notify`] permit), so none falls in between. The one thing
//! handed over with a wake-up: a write that ends an ask by an answer, an
//! ack or a cancel leaves the ask, as it committed, with the waits on that
//! ask registered by then ([`AskWatch::ended`]), which need not read it.
//!
//! A blocking ask's asker is registered as such: an answer's transaction
//! then writes the reply delivered, as the response that ends the wait
//! carries it (not left in the asker's inbox too, and no second write to
//! confirm it).
//!
//! Two of the daemon's own followers need no event either, only the news
//! that one of a few kinds committed ([`Followers`]): the spawn watcher and
//! the tmux carrier. What does not live here: the event bus, which event
//! streams and the persona observer read whole.

use super::Store;
use repowire_core::ask::Ask;
use repowire_core::event::{Event, EventKind, EventRecord};
use repowire_core::ids::AskId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The news the daemon's followers wait for: woken once for any number of
/// events since they last looked (a [`Notify`] permit), not once per event.
#[derive(Default)]
pub(crate) struct Followers {
    /// A peer resumed, moved status or was spawned (the spawn watcher).
    spawns: Notify,
    /// A tmux peer may have something to type, or may have become idle:
    /// a delivery queued (unless no peer is routed to tmux), a peer
    /// registered, resumed or moved status (the tmux carrier).
    tmux: Notify,
}

/// An ask a transaction ended, as it leaves it, for the ask's waiters once
/// the transaction committed (`Tx::ended`).
pub(crate) struct Ended {
    pub(crate) ask: Arc<Ask>,
    /// The transaction wrote the reply delivered to the asker, who waits in
    /// a blocking ask (told only once that commit landed: a transaction
    /// rolled back wrote nothing).
    pub(crate) settled: bool,
}

/// The waits on asks, by ask.
#[derive(Default)]
pub(crate) struct AskWaits(Mutex<HashMap<AskId, Vec<Arc<Waiter>>>>);

struct Waiter {
    woken: Notify,
    /// The asker's own blocking ask (its reply is written delivered).
    blocking: bool,
    /// An answer's transaction wrote the reply delivered while it waited,
    /// and committed (set when its group is published).
    settled: AtomicBool,
    /// The ask as the committed transaction that ended it left it.
    ended: Mutex<Option<Arc<Ask>>>,
}

impl AskWaits {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<AskId, Vec<Arc<Waiter>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `id`'s asker waits for it in a blocking ask (then an
    /// answer's transaction writes the reply delivered, and says so with
    /// the ask it ended: [`Ended::settled`]).
    pub(crate) fn blocking(&self, id: &AskId) -> bool {
        self.map()
            .get(id)
            .is_some_and(|ws| ws.iter().any(|w| w.blocking))
    }

    /// Whether anyone waits on ask `id`.
    pub(crate) fn watched(&self, id: &AskId) -> bool {
        self.map().contains_key(id)
    }

    /// An ask ended as it is now (committed): for whoever waits on it,
    /// before the event that ends it wakes them; a blocking ask's wait is
    /// told its reply was written delivered, if it was.
    pub(crate) fn ended(&self, e: Ended) {
        if let Some(ws) = self.map().get(&e.ask.correlation_id) {
            for w in ws {
                *w.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.ask.clone());
                if e.settled && w.blocking {
                    w.settled.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Wake whoever waits on ask `id`.
    fn wake(&self, id: &str) {
        if let Some(ws) = self.map().get(id) {
            ws.iter().for_each(|w| w.woken.notify_one());
        }
    }

    fn remove(&self, id: &AskId, w: &Arc<Waiter>) {
        let mut map = self.map();
        if let Some(ws) = map.get_mut(id) {
            ws.retain(|x| !Arc::ptr_eq(x, w));
            if ws.is_empty() {
                map.remove(id);
            }
        }
    }
}

/// A wait on one ask, registered until [`AskWatch::end`] (or drop: a
/// client that went away).
pub struct AskWatch<'a> {
    store: &'a Store,
    id: AskId,
    w: Arc<Waiter>,
}

impl AskWatch<'_> {
    fn new<'a>(store: &'a Store, id: &AskId, blocking: bool) -> AskWatch<'a> {
        let w = Arc::new(Waiter {
            woken: Notify::new(),
            blocking,
            settled: AtomicBool::new(false),
            ended: Mutex::new(None),
        });
        store
            .ask_waits
            .map()
            .entry(id.clone())
            .or_default()
            .push(w.clone());
        AskWatch {
            store,
            id: id.clone(),
            w,
        }
    }

    /// Woken by a committed event that ends the ask (at once if one came
    /// since the last wake-up, or since the registration).
    pub fn woken(&self) -> &Notify {
        &self.w.woken
    }

    /// The ask as the write that ended it left it, once that write
    /// committed, if that write said (an answer, an ack, a cancel: then
    /// no read is needed to learn how it ended). Taken.
    pub fn ended(&self) -> Option<Ask> {
        let a = self
            .w
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(Arc::unwrap_or_clone(a))
    }

    /// The wait is over: from here an answer leaves its reply in the
    /// inbox. Whether an answer that committed while it lasted wrote the
    /// reply delivered (a blocking ask's). One written but not yet
    /// committed says false: a read of the ask after this commits it and
    /// sees the answer, and the reply it finds is then confirmed already.
    pub fn end(self) -> bool {
        self.store.ask_waits.remove(&self.id, &self.w);
        self.w.settled.load(Ordering::Relaxed)
    }
}

impl Drop for AskWatch<'_> {
    fn drop(&mut self) {
        self.store.ask_waits.remove(&self.id, &self.w);
    }
}

impl Store {
    /// Wait on ask `id`: woken by what ends it.
    pub fn watch_ask(&self, id: &AskId) -> AskWatch<'_> {
        AskWatch::new(self, id, false)
    }

    /// The asker's wait on the ask it sends now, registered by the write
    /// that creates it (so before anything can end it), as a blocking
    /// ask's: an answer while it lasts writes its reply delivered.
    pub(crate) fn blocking_watch(&self, id: &AskId) -> AskWatch<'_> {
        AskWatch::new(self, id, true)
    }

    /// Woken after a commit with a peer resumed, moved status or spawned.
    pub fn spawn_news(&self) -> &Notify {
        &self.followers.spawns
    }

    /// Woken after a commit after which a tmux peer may have something to
    /// type or may have become idle (see [`Store::tmux_routed`]).
    pub fn tmux_news(&self) -> &Notify {
        &self.followers.tmux
    }

    /// After a commit, before its events go on the bus: wake the waiters
    /// they concern.
    pub(crate) fn wake_waiters(&self, e: &EventRecord) {
        let Some(ev) = &e.event else { return };
        let kind = ev.kind();
        match ev {
            Event::DeliveryQueued { to_peer_id, .. } => {
                self.waiting.wake(to_peer_id);
                if self.tmux_maybe_routed() {
                    self.followers.tmux.notify_one();
                }
            }
            _ if kind.ends_an_ask() => self.ask_waits.wake(&e.subject),
            _ => {}
        }
        if matches!(
            kind,
            EventKind::PeerResumed | EventKind::PeerStatus | EventKind::PeerSpawned
        ) {
            self.followers.spawns.notify_one();
        }
        if matches!(
            kind,
            EventKind::PeerRegistered | EventKind::PeerResumed | EventKind::PeerStatus
        ) {
            self.followers.tmux.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{note, register};
    use repowire_core::access::Caller;
    use repowire_core::ask::{AskAction, NewAsk};
    use repowire_core::delivery::{DeliveryKind, DeliveryRoute};
    use repowire_core::ids::{AskId, PeerId};
    use std::time::Duration;
    use tokio::sync::Notify;

    /// Whether `n` was woken since it was last seen woken (a wake-up that
    /// came with nobody waiting is kept for the next wait).
    fn woken(n: &Notify) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // A timeout polls what it times once before it looks at the clock.
        rt.block_on(async { tokio::time::timeout(Duration::ZERO, n.notified()).await })
            .is_ok()
    }

    fn question(to: &str) -> NewAsk {
        NewAsk {
            to: to.into(),
            text: "q".into(),
            ..Default::default()
        }
    }

    fn ask(s: &crate::Store, from: &PeerId, to: &str) -> AskId {
        s.ask(from, &question(to), false)
            .unwrap()
            .ask
            .correlation_id
    }

    /// A blocking ask's id and its asker's wait.
    fn ask_blocking<'a>(
        s: &'a crate::Store,
        from: &PeerId,
        to: &str,
    ) -> (AskId, crate::AskWatch<'a>) {
        let (sent, watch) = s.ask_blocking(from, &question(to), false).unwrap();
        (sent.ask.correlation_id, watch)
    }

    fn by(s: &crate::Store, p: &PeerId) -> Caller {
        Caller::Peer(s.peer_by_id(p).unwrap().unwrap().into())
    }

    /// A wait on an ask is woken by the commit that ends that ask, and by
    /// nothing else: not its pick-up, not another ask's end, not a note.
    #[test]
    fn a_wait_on_an_ask_is_woken_by_its_end_only() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        let (one, two) = (ask(&s, &a, "b"), ask(&s, &a, "b"));
        let watch = s.watch_ask(&one);
        assert!(!woken(watch.woken()), "nothing yet");
        s.act_on_ask(&by(&s, &b), &one, AskAction::Pickup, None)
            .unwrap();
        s.act_on_ask(&by(&s, &b), &two, AskAction::Answer, Some("no"))
            .unwrap();
        note(&s, &b, "a", "hi");
        assert!(!woken(watch.woken()), "a pick-up, another ask, a note");
        s.act_on_ask(&by(&s, &b), &one, AskAction::Answer, Some("yes"))
            .unwrap();
        assert!(woken(watch.woken()), "its answer closed it");
        assert!(!woken(watch.woken()), "one wake-up for one end");
        let three = ask(&s, &a, "b");
        let canceled = s.watch_ask(&three);
        s.act_on_ask(&by(&s, &a), &three, AskAction::Cancel, None)
            .unwrap();
        assert!(woken(canceled.woken()), "a cancel ends it too");
        assert!(!watch.end(), "a wait that is not a blocking ask's");
        drop(canceled);
        assert!(s.ask_waits.map().is_empty(), "ended and dropped: forgotten");
    }

    /// The write that ends an ask hands the ask, as committed, to whoever
    /// waits on it: what a read after the commit finds, for an answer (and
    /// a blocking ask's reply written delivered in the same write), an ack
    /// and a cancel; nothing for a move that does not end it, or for a
    /// refused one.
    #[test]
    fn a_wait_is_handed_the_ask_as_its_end_committed_it() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        let c = register(&s, "c").0;
        let read = |id: &AskId| s.get_ask(id, None).unwrap();
        let one = ask(&s, &a, "b");
        let watch = s.watch_ask(&one);
        s.act_on_ask(&by(&s, &b), &one, AskAction::Pickup, None)
            .unwrap();
        assert_eq!(watch.ended(), None, "picked up: not ended");
        assert!(
            s.act_on_ask(&by(&s, &c), &one, AskAction::Answer, Some("no"))
                .is_err()
        );
        assert_eq!(watch.ended(), None, "a refused answer ends nothing");
        s.act_on_ask(&by(&s, &b), &one, AskAction::Answer, Some("yes"))
            .unwrap();
        let ended = watch.ended().expect("its answer ended it");
        assert_eq!(ended.answer.as_deref(), Some("yes"));
        assert_eq!(ended, read(&one));
        assert_eq!(watch.ended(), None, "taken");

        let two = ask(&s, &a, "b");
        let acked = s.watch_ask(&two);
        s.act_on_ask(&by(&s, &b), &two, AskAction::Ack, Some("seen"))
            .unwrap();
        assert_eq!(acked.ended(), Some(read(&two)));

        let three = ask(&s, &a, "b");
        let canceled = s.watch_ask(&three);
        s.act_on_ask(&by(&s, &a), &three, AskAction::Cancel, None)
            .unwrap();
        assert_eq!(canceled.ended(), Some(read(&three)));

        let (four, blocking) = ask_blocking(&s, &a, "b");
        s.act_on_ask(&by(&s, &b), &four, AskAction::Answer, Some("now"))
            .unwrap();
        assert_eq!(blocking.ended(), Some(read(&four)));
        assert!(blocking.end(), "and its reply was written delivered");

        // Nobody waited when it ended: nothing kept for a later wait, whose
        // first look reads it.
        let five = ask(&s, &a, "b");
        s.act_on_ask(&by(&s, &b), &five, AskAction::Answer, Some("late"))
            .unwrap();
        let late = s.watch_ask(&five);
        assert_eq!(late.ended(), None);
        assert_eq!(s.ended_ask(&five, Some(&a)).unwrap(), Some(read(&five)));
        assert_eq!(watch.ended(), None, "handed only its own ask");

        // Two asks ended in one group: each wait is handed its own.
        let (six, seven) = (ask(&s, &a, "b"), ask(&s, &a, "b"));
        let (w6, w7) = (s.watch_ask(&six), s.watch_ask(&seven));
        let (answered, _) = crate::deferring(|| {
            let b = by(&s, &b);
            s.act_on_ask(&b, &six, AskAction::Answer, Some("6"))
                .and_then(|_| s.act_on_ask(&b, &seven, AskAction::Answer, Some("7")))
        });
        answered.unwrap();
        assert_eq!(w6.ended(), None, "not before the group committed");
        s.commit_open();
        assert_eq!(w6.ended(), Some(read(&six)));
        assert_eq!(w7.ended(), Some(read(&seven)));
    }

    /// A wait's first look: nothing while the ask is open, the whole ask
    /// once it ended, and the refusals of a read of it.
    #[test]
    fn a_first_look_reads_the_ask_once_it_ended() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        let c = register(&s, "c").0;
        let one = ask(&s, &a, "b");
        assert_eq!(s.ended_ask(&one, Some(&a)).unwrap(), None);
        s.act_on_ask(&by(&s, &b), &one, AskAction::Answer, Some("yes"))
            .unwrap();
        let whole = s.get_ask(&one, Some(&a)).unwrap();
        assert_eq!(s.ended_ask(&one, Some(&a)).unwrap(), Some(whole.clone()));
        assert_eq!(s.ended_ask(&one, None).unwrap(), Some(whole));
        let refused = |caller| s.ended_ask(&one, caller).unwrap_err().code;
        assert_eq!(
            refused(Some(&c)),
            s.get_ask(&one, Some(&c)).unwrap_err().code
        );
        let gone = AskId::trusted("ask-01M97G4TPR0000000000000000".into());
        assert_eq!(
            s.ended_ask(&gone, None).unwrap_err().code,
            repowire_core::error::ErrorCode::UnknownAsk
        );
    }

    /// An ask ended by a part that is undone, or by a group whose commit
    /// fails, is handed to nobody: the ask is not ended.
    #[test]
    fn an_end_that_did_not_commit_is_handed_to_nobody() {
        use repowire_core::error::Error;
        let (_dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        let one = ask(&s, &a, "b");
        let watch = s.watch_ask(&one);
        // A part that said it ended the ask, then failed, inside a group.
        let closed = {
            let mut x = s.get_ask(&one, None).unwrap();
            x.state = repowire_core::ask::AskState::Closed;
            x
        };
        let ((), _) = crate::deferring(|| {
            note(&s, &a, "b", "joined");
            let undone = s.write(|t| {
                t.ended(&closed, false);
                Err::<(), _>(Error::bad_request("undone"))
            });
            assert!(undone.is_err());
        });
        s.commit_open();
        assert!(!woken(watch.woken()) && watch.ended().is_none(), "undone");
        // An answer in a group that SQLite rolls back under a later part.
        let (answered, _) = crate::deferring(|| {
            let answered = s.act_on_ask(&by(&s, &b), &one, AskAction::Answer, Some("lost"));
            let lost = s.write(|t| Ok(t.conn().execute_batch("ROLLBACK")?));
            assert!(lost.is_err());
            answered
        });
        assert!(answered.is_ok(), "its part was written");
        s.commit_open();
        assert!(watch.ended().is_none(), "its group never committed");
        assert!(!s.get_ask(&one, None).unwrap().state.is_terminal());

        // Nor is a blocking ask told that such an answer wrote its reply
        // delivered: it did not (the reply of a later answer, once its wait
        // is over, is then confirmed by the blocking ask itself).
        let (two, blocking) = ask_blocking(&s, &a, "b");
        let (answered, _) = crate::deferring(|| {
            let answered = s.act_on_ask(&by(&s, &b), &two, AskAction::Answer, Some("lost"));
            assert!(
                s.write(|t| Ok(t.conn().execute_batch("ROLLBACK")?))
                    .is_err()
            );
            answered
        });
        assert!(answered.is_ok());
        s.commit_open();
        assert!(blocking.ended().is_none());
        assert!(!blocking.end(), "no reply was written delivered");
    }

    /// A waiting consumer of b's deliveries is woken by a delivery queued
    /// for b (handed to it or not), not by one for another peer.
    #[test]
    fn a_consumer_is_woken_by_a_delivery_for_its_peer_only() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        register(&s, "c");
        let reg = s.register_consumer(&b, 60_000, DeliveryRoute::Pull);
        note(&s, &a, "c", "not for b");
        assert!(!woken(reg.handoff().woken()), "c's note");
        note(&s, &a, "b", "closed: not handed");
        assert!(woken(reg.handoff().woken()), "b's note");
        assert!(!woken(reg.handoff().woken()), "one wake-up for one note");
        // Handed only once nothing older waits for a lease.
        assert_eq!(
            s.lease(&b, 10, 60_000, DeliveryRoute::Pull).unwrap().len(),
            1
        );
        reg.handoff().open(1);
        let handed = note(&s, &a, "b", "handed");
        assert!(woken(reg.handoff().woken()), "b's note, handed");
        let got = reg.handoff().take();
        assert_eq!(
            got.iter().map(|d| &d.delivery_id).collect::<Vec<_>>(),
            [&handed]
        );
    }

    /// A blocking ask's wait is registered by the write that makes the
    /// ask: an answer while it lasts wakes it and writes the reply
    /// delivered; once it ended, an answer leaves the reply in the inbox.
    #[test]
    fn a_blocking_ask_is_watched_from_its_own_write() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (register(&s, "a").0, register(&s, "b").0);
        let (id, watch) = ask_blocking(&s, &a, "b");
        let other = s.watch_ask(&id);
        s.act_on_ask(&by(&s, &b), &id, AskAction::Answer, Some("yes"))
            .unwrap();
        assert!(woken(watch.woken()) && woken(other.woken()), "both woken");
        assert!(watch.end(), "the answer wrote the reply delivered");
        assert!(
            !other.end(),
            "the other wait is not the asker's blocking ask"
        );
        let replies = |kind| {
            s.peek(&a, 10)
                .unwrap()
                .into_iter()
                .filter(|d| d.kind == kind)
                .count()
        };
        assert_eq!(replies(DeliveryKind::Reply), 0, "nothing left in a's inbox");

        let (late, watch) = ask_blocking(&s, &a, "b");
        assert!(!watch.end(), "over before any answer");
        s.act_on_ask(&by(&s, &b), &late, AskAction::Answer, Some("late"))
            .unwrap();
        assert_eq!(replies(DeliveryKind::Reply), 1, "an answer after the wait");
    }

    /// The spawn watcher and the tmux carrier hear of the kinds they act
    /// on, once however many came; a delivery queued wakes the carrier
    /// only while a peer may be routed to tmux.
    #[test]
    fn followers_hear_of_their_kinds_only() {
        use repowire_core::peer::Status;
        let (_dir, s) = crate::testing::open();
        let a = register(&s, "a").0;
        assert!(woken(s.tmux_news()), "a peer registered");
        assert!(
            !woken(s.spawn_news()),
            "a registration is not a spawn's news"
        );
        register(&s, "b");
        register(&s, "c");
        assert!(woken(s.tmux_news()), "two registrations");
        assert!(!woken(s.tmux_news()), "heard once");
        note(&s, &a, "b", "nobody knows yet whether a tmux peer exists");
        assert!(woken(s.tmux_news()), "not known: woken");
        assert!(!s.tmux_routed().unwrap());
        note(&s, &a, "b", "no tmux peer");
        assert!(!woken(s.tmux_news()), "known: no tmux peer");
        s.heartbeat(&a, Some(Status::Busy)).unwrap();
        assert!(
            woken(s.spawn_news()) && woken(s.tmux_news()),
            "a status moved"
        );
        note(&s, &a, "b", "a peer changed since it was known");
        assert!(woken(s.tmux_news()), "no longer known: woken");
    }
}
