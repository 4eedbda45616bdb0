//! Group commit: writes that queue behind one another share one
//! transaction and one WAL append.
//!
//! A write takes the writer connection, runs its part and, when another
//! write is already queued for the connection, leaves the transaction open
//! and waits instead of committing: the next write runs its part inside
//! the same transaction (in a savepoint of its own, so an error or a panic
//! undoes only its part), and the last write of the group — the one with
//! nobody queued behind it, or the one that fills the group — commits for
//! all. Nobody is answered before the commit that holds its part: a write
//! returns only once its group committed (or with the commit's error, when
//! nothing of the group was written). Anything else that takes the
//! connection (a read, retention) commits an open group first, so no
//! reader ever sees a part that is not committed.
//!
//! A request handler on the daemon's one async thread never blocks on
//! another write: it runs its writes inside [`deferring`], which leaves
//! each part in the open group and returns at once, and answers only once
//! the group [landed](Deferred::landed). The daemon commits the group from
//! a task that runs after every request already ready to run on that
//! thread (so those share the commit).

use super::handoff::Reserved;
use repowire_core::error::{Error, Result};
use repowire_core::event::EventRecord;
use rusqlite::Connection;
use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex};

/// At most this many writes share one commit (bounds how long the first
/// of a group waits for the others).
pub(crate) const MAX_GROUP: usize = 64;

/// The writer connection and the group left open on it, if any.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) group: Option<Group>,
}

/// Writes whose parts sit in the open transaction, not yet committed.
#[derive(Default)]
pub(crate) struct Group {
    pub(crate) members: usize,
    /// What the members appended, in order.
    pub(crate) events: Vec<EventRecord>,
    /// The places each member took in waiting consumers, in order.
    pub(crate) reserved: Vec<Reserved>,
    /// Where the members who left the connection wait for the commit.
    pub(crate) landing: Arc<Landing>,
}

/// The outcome of a group's commit, once known.
#[derive(Default)]
pub(crate) struct Landing {
    outcome: Mutex<Option<Result<()>>>,
    landed: Condvar,
    /// The same, for async waiters.
    landed_async: tokio::sync::Notify,
}

impl Landing {
    pub(crate) fn set(&self, r: Result<()>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        self.landed.notify_all();
        self.landed_async.notify_waiters();
    }

    fn known(&self) -> Option<Result<()>> {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait (without blocking the thread) until the commit is known.
    async fn landed(&self) -> Result<()> {
        loop {
            let notified = self.landed_async.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.known() {
                return r;
            }
            notified.await;
        }
    }

    /// Block until the group's commit is known.
    pub(crate) fn wait(&self) -> Result<()> {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = o.as_ref() {
                return r.clone();
            }
            o = self.landed.wait(o).unwrap_or_else(|p| p.into_inner());
        }
    }
}

thread_local! {
    /// The landings of writes this thread made inside [`deferring`].
    static DEFERRED: RefCell<Option<Vec<Arc<Landing>>>> = const { RefCell::new(None) };
}

/// Writes made without waiting for their commit: answer for them only
/// once they [landed](Self::landed).
#[derive(Default)]
#[must_use = "a deferred write is not committed until it landed"]
pub struct Deferred(Vec<Arc<Landing>>);

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Deferred) {
        self.0.extend(other.0);
    }

    /// Wait until every write's group committed: `Err` with the commit's
    /// error if one did not (those writes took no effect).
    pub async fn landed(self) -> Result<()> {
        for l in self.0 {
            l.landed().await?;
        }
        Ok(())
    }
}

/// Run `f` with this thread's writes deferred: each [`Store::write`]
/// inside it leaves its part in the open group and returns without waiting
/// for the commit; what it returns is then only true once the returned
/// [`Deferred`] landed. Whoever calls this must make sure the group gets
/// committed ([`Store::commit_open`], or any later write or read).
///
/// [`Store::write`]: super::Store::write
/// [`Store::commit_open`]: super::Store::commit_open
pub fn deferring<T>(f: impl FnOnce() -> T) -> (T, Deferred) {
    /// Puts back what was there (a panic included).
    struct Restore(Option<Vec<Arc<Landing>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            DEFERRED.with(|d| *d.borrow_mut() = outer);
        }
    }
    let outer = DEFERRED.with(|d| d.borrow_mut().replace(Vec::new()));
    let restore = Restore(outer);
    let out = f();
    let mine = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (out, Deferred(mine))
}

/// Inside [`deferring`]: keep `landing` to wait on later (true), instead
/// of waiting now (false).
pub(crate) fn defer(landing: &Arc<Landing>) -> bool {
    DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(v) => {
            v.push(landing.clone());
            true
        }
        None => false,
    })
}

/// A group that has been committed (or failed), to publish once the
/// connection is let go.
pub(crate) struct Landed {
    pub(crate) outcome: Result<()>,
    pub(crate) events: Vec<EventRecord>,
    pub(crate) landing: Arc<Landing>,
    pub(crate) members: usize,
}

pub(crate) fn exec(c: &Connection, sql: &str) -> Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

impl Writer {
    /// Commit the open group, if any: read what each member reserved as
    /// the transaction leaves it, commit, hand the reserved deliveries
    /// over (before anything is published: a consumer woken by an event
    /// finds its delivery). On failure everything is rolled back and every
    /// place given back.
    pub(crate) fn close(&mut self) -> Option<Landed> {
        let mut g = self.group.take()?;
        let conn = &self.conn;
        let committed = (|| {
            for r in &mut g.reserved {
                r.read(conn)?;
            }
            exec(conn, "COMMIT")
        })();
        let outcome = match committed {
            Ok(()) => {
                g.reserved.into_iter().for_each(Reserved::hand);
                Ok(())
            }
            Err(e) => {
                self.abandon();
                g.reserved.into_iter().for_each(Reserved::release);
                g.events.clear();
                Err(e)
            }
        };
        Some(Landed {
            outcome,
            events: g.events,
            landing: g.landing,
            members: g.members,
        })
    }

    /// Roll back whatever transaction is open (nothing to report to: the
    /// caller already has its error).
    pub(crate) fn abandon(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A part that failed inside a group: undo only it. If even that fails,
/// the whole transaction goes and so does every part in it.
pub(crate) fn undo_part(w: &mut Writer) -> Option<Landed> {
    if exec(&w.conn, "ROLLBACK TO part").is_ok() && exec(&w.conn, "RELEASE part").is_ok() {
        return None;
    }
    let g = w.group.take()?;
    w.abandon();
    g.reserved.into_iter().for_each(Reserved::release);
    Some(Landed {
        outcome: Err(Error::internal(
            "a write in the same group could not be undone alone",
        )),
        events: Vec::new(),
        landing: g.landing,
        members: g.members,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use crate::testing::register;
    use repowire_core::error::Error;
    use repowire_core::ids::DeliveryId;
    use repowire_core::peer::Peer;
    use repowire_core::policy::Policy;
    use std::sync::atomic::Ordering;

    fn setup() -> (tempfile::TempDir, Store, Peer, Peer) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db"), Policy::default()).unwrap();
        let a = register(&s, "a").0;
        let b = register(&s, "b").0;
        let (a, b) = (
            s.peer_by_id(&a).unwrap().unwrap(),
            s.peer_by_id(&b).unwrap().unwrap(),
        );
        (dir, s, a, b)
    }

    /// Block until `cond` holds (a synchronisation, not a timing check).
    fn until(cond: impl Fn() -> bool) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !cond() {
            assert!(std::time::Instant::now() < end, "never happened");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn exists(s: &Store, id: &DeliveryId) -> bool {
        crate::deliveries::one(&s.settled().conn, id)
            .unwrap()
            .is_some()
    }

    /// Two writes run while the first still holds the connection: the
    /// second runs `second` behind the first (which waited until the
    /// second queued), and both come back with one commit between them.
    fn behind<T: Send, U: Send>(
        s: &Store,
        first: impl FnOnce(&mut crate::Tx<'_>) -> crate::Result<T> + Send,
        second: impl FnOnce(&mut crate::Tx<'_>) -> crate::Result<U> + Send,
    ) -> (
        std::thread::Result<crate::Result<T>>,
        std::thread::Result<crate::Result<U>>,
    ) {
        let inside = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            let one = sc.spawn(|| {
                s.write(|t| {
                    inside.store(true, Ordering::SeqCst);
                    let out = first(t);
                    until(|| s.queued.load(Ordering::SeqCst) > 0);
                    out
                })
            });
            until(|| inside.load(Ordering::SeqCst));
            let two = sc.spawn(|| s.write(second));
            (one.join(), two.join())
        })
    }

    #[test]
    fn a_write_queued_behind_another_shares_its_commit() {
        let (_d, s, a, b) = setup();
        let mut bus = s.subscribe();
        let (c0, w0) = s.commits();
        let (one, two) = behind(
            &s,
            |t| t.notify_as(&a, &b, "first"),
            |t| t.notify_as(&b, &a, "second"),
        );
        let (one, two) = (one.unwrap().unwrap(), two.unwrap().unwrap());
        assert_eq!(s.commits(), (c0 + 1, w0 + 2), "one commit for both");
        assert!(exists(&s, &one) && exists(&s, &two));
        // Published in the order they were written.
        let mut seqs = Vec::new();
        while let Ok(e) = bus.try_recv() {
            seqs.push(e.seq);
        }
        assert!(seqs.len() >= 2 && seqs.is_sorted(), "{seqs:?}");
        // A commit the file holds: another connection reads both.
        let other = rusqlite::Connection::open(_d.path().join("t.db")).unwrap();
        let n: i64 = other
            .query_row(
                "SELECT COUNT(*) FROM deliveries WHERE id IN (?1, ?2)",
                [&one, &two],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn a_failing_write_in_a_group_is_undone_alone() {
        let (_d, s, a, b) = setup();
        let (c0, w0) = s.commits();
        let undone = std::sync::Mutex::new(None);
        let (one, two) = behind(
            &s,
            |t| t.notify_as(&a, &b, "kept"),
            |t| {
                *undone.lock().unwrap() = Some(t.notify_as(&b, &a, "undone")?);
                Err::<(), _>(Error::internal("and then it failed"))
            },
        );
        let kept = one.unwrap().unwrap();
        assert!(two.unwrap().is_err());
        assert_eq!(s.commits(), (c0 + 1, w0 + 1));
        assert!(exists(&s, &kept));
        assert!(!exists(&s, &undone.into_inner().unwrap().unwrap()));
    }

    #[test]
    fn a_panicking_write_in_a_group_is_undone_alone() {
        let (_d, s, a, b) = setup();
        let undone = std::sync::Mutex::new(None);
        let (one, two) = behind(
            &s,
            |t| t.notify_as(&a, &b, "kept"),
            |t| -> crate::Result<()> {
                *undone.lock().unwrap() = Some(t.notify_as(&b, &a, "undone")?);
                panic!("mid-write")
            },
        );
        let kept = one.unwrap().unwrap();
        assert!(two.is_err(), "the panic reaches its own caller");
        assert!(exists(&s, &kept));
        assert!(!exists(&s, &undone.into_inner().unwrap().unwrap()));
        let after = crate::testing::note(&s, &a.id, "b", "after");
        assert!(exists(&s, &after));
    }

    #[test]
    fn a_failing_first_write_leaves_nothing_for_the_one_behind() {
        let (_d, s, a, b) = setup();
        let undone = std::sync::Mutex::new(None);
        let (one, two) = behind(
            &s,
            |t| {
                *undone.lock().unwrap() = Some(t.notify_as(&a, &b, "undone")?);
                Err::<(), _>(Error::internal("and then it failed"))
            },
            |t| t.notify_as(&b, &a, "kept"),
        );
        assert!(one.unwrap().is_err());
        let kept = two.unwrap().unwrap();
        assert!(exists(&s, &kept));
        assert!(!exists(&s, &undone.into_inner().unwrap().unwrap()));
    }

    /// A group left open (its writer waiting) is committed by whatever
    /// takes the connection next, a read included: nothing reads a part
    /// that is not committed, and the writer is answered.
    #[test]
    fn a_read_commits_an_open_group_first() {
        let (d, s, a, b) = setup();
        let (id, landing) = {
            let mut w = s.writer.lock().unwrap();
            super::exec(&w.conn, "BEGIN IMMEDIATE").unwrap();
            w.group = Some(super::Group::default());
            let mut t = crate::Tx {
                tx: &w.conn,
                events: Vec::new(),
                now: s.clock.now_ms(),
                policy: &s.policy,
                armed_horizon: &s.armed_horizon,
                waiting: &s.waiting,
                reserved: Default::default(),
            };
            let id = t.notify_as(&a, &b, "in a group").unwrap();
            let g = w.group.as_mut().unwrap();
            g.members = 1;
            (id, g.landing.clone())
        };
        let other = rusqlite::Connection::open(d.path().join("t.db")).unwrap();
        let count = || -> i64 {
            other
                .query_row(
                    "SELECT COUNT(*) FROM deliveries WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(count(), 0, "not committed yet");
        assert!(s.peer_by_id(&a.id).unwrap().is_some());
        assert_eq!(count(), 1, "the read committed it");
        assert!(landing.wait().is_ok());
    }

    fn count_in_file(d: &tempfile::TempDir, ids: &[&DeliveryId]) -> usize {
        let other = rusqlite::Connection::open(d.path().join("t.db")).unwrap();
        ids.iter()
            .filter(|id| {
                other
                    .query_row("SELECT 1 FROM deliveries WHERE id = ?1", [id], |_| Ok(()))
                    .is_ok()
            })
            .count()
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Deferred writes return before their commit; they land together
    /// with the one commit of their group.
    #[test]
    fn deferred_writes_land_with_one_commit() {
        let (d, s, a, b) = setup();
        let (c0, w0) = s.commits();
        let (one, w1) = super::deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let (two, w2) = super::deferring(|| s.write(|t| t.notify_as(&b, &a, "two")));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(count_in_file(&d, &[&one, &two]), 0, "not committed yet");
        assert_eq!(s.commits(), (c0, w0));
        s.commit_open();
        let mut all = w1;
        all.extend(w2);
        assert!(block_on(all.landed()).is_ok());
        assert_eq!(s.commits(), (c0 + 1, w0 + 2));
        assert_eq!(count_in_file(&d, &[&one, &two]), 2);
    }

    /// A synchronous write on another thread joins the open group and,
    /// with nobody behind it, commits it: the deferred write lands.
    #[test]
    fn a_write_from_another_thread_commits_a_deferred_group() {
        let (d, s, a, b) = setup();
        let (one, w1) = super::deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let two = std::thread::scope(|sc| {
            sc.spawn(|| s.write(|t| t.notify_as(&b, &a, "two")))
                .join()
                .unwrap()
                .unwrap()
        });
        assert!(block_on(w1.landed()).is_ok());
        assert_eq!(count_in_file(&d, &[&one.unwrap(), &two]), 2);
    }

    /// A commit that fails (here a deferred foreign key) fails every write
    /// of its group: none of them took effect, each is told.
    #[test]
    fn a_failed_group_commit_fails_every_write_in_it() {
        let (d, s, a, b) = setup();
        s.write(|t| {
            t.conn().execute_batch(
                "CREATE TABLE late (p TEXT REFERENCES peers(id) DEFERRABLE INITIALLY DEFERRED)",
            )?;
            Ok(())
        })
        .unwrap();
        let (one, w1) = super::deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let (bad, w2) = super::deferring(|| {
            s.write(|t| {
                t.conn()
                    .execute("INSERT INTO late (p) VALUES ('peer-nobody')", [])?;
                Ok(())
            })
        });
        assert!(bad.is_ok(), "the part itself ran");
        let (c0, _) = s.commits();
        s.commit_open();
        assert!(block_on(w1.landed()).is_err());
        assert!(block_on(w2.landed()).is_err());
        assert_eq!(s.commits().0, c0);
        assert_eq!(count_in_file(&d, &[&one.unwrap()]), 0);
        // The connection is usable again.
        let after = crate::testing::note(&s, &a.id, "b", "after");
        assert_eq!(count_in_file(&d, &[&after]), 1);
    }
}
