//! Group commit: writes deferred by request handlers share one
//! transaction and one WAL append.
//!
//! The daemon's request handlers all run on one async thread and call the
//! store synchronously, so two of them never wait for the connection at
//! once: grouping has to be asked for. A handler of the frequent routes
//! (the daemon's `edge::GROUPED`) runs with its writes deferred
//! ([`deferring`]): each write takes the connection, runs its
//! part in the open transaction (in a savepoint of its own when it joins
//! one, so an error or a panic undoes only its part) and returns at once,
//! leaving the group open. Whoever takes the connection next without
//! deferring — the daemon's commit task, queued behind every request
//! ready to run, a write from a background thread, a read, retention —
//! commits the group first (a write, with its own part in it). A handler
//! answers only once its writes [landed](Deferred::landed); when the
//! commit fails, or SQLite rolled the whole transaction back under a part
//! (a full disk, an I/O error), or a failed part cannot be undone alone,
//! every write of the group is told so and none took effect.

use super::handoff::Reserved;
use super::open::{Journal, OpenCounts};
use repowire_core::error::{Error, Result};
use repowire_core::event::EventRecord;
use rusqlite::Connection;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// At most this many writes share one commit (bounds how long the first
/// of a group waits for the others).
pub(crate) const MAX_GROUP: usize = 64;

/// The writer connection and the group left open on it, if any.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) group: Option<Group>,
    /// Open deliveries by recipient, as the open group leaves them.
    pub(crate) open: OpenCounts,
    /// The next row keys ([`crate::Keys`]).
    pub(crate) keys: crate::Keys,
}

/// Writes whose parts sit in the open transaction, not yet committed.
#[derive(Default)]
pub(crate) struct Group {
    pub(crate) members: usize,
    /// What the members appended, in order.
    pub(crate) events: Vec<EventRecord>,
    /// The places each member took in waiting consumers, in order.
    pub(crate) reserved: Vec<Reserved>,
    /// The asks the members ended, as they ended (`Tx::ended`).
    pub(crate) ended: Vec<super::waits::Ended>,
    /// What the members changed of the open-delivery counts.
    pub(crate) opened: Journal,
    /// Where the members who left the connection wait for the commit.
    pub(crate) landing: Pending,
    /// The count of `peers` changes when its transaction began
    /// ([`known`](super::known)).
    pub(crate) known_at: u64,
}

/// A group's landing, failed if it is dropped before its outcome is set
/// (a panic between taking a group and publishing it): nobody waits for
/// it forever.
#[derive(Default)]
pub(crate) struct Pending(pub(crate) Arc<Landing>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.set(Err(Error::internal(
            "a write's group was dropped before it landed",
        )));
    }
}

/// The outcome of a group's commit, once known.
#[derive(Default)]
pub(crate) struct Landing {
    outcome: Mutex<Option<Result<()>>>,
    landed: tokio::sync::Notify,
}

impl Landing {
    /// The first outcome set stands.
    pub(crate) fn set(&self, r: Result<()>) {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(r);
        self.landed.notify_waiters();
    }

    fn known(&self) -> Option<Result<()>> {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait (without blocking the thread) until the commit is known.
    pub(crate) async fn landed(&self) -> Result<()> {
        loop {
            let notified = self.landed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.known() {
                return r;
            }
            notified.await;
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

/// Inside [`deferring`]: the writes this thread deferred so far in this
/// poll, for a handler that goes on after its write and must know it
/// landed first (a blocking ask, before it waits for the answer); outside,
/// none: every write already committed before it returned.
pub fn deferred_so_far() -> Deferred {
    DEFERRED.with(|d| Deferred(d.borrow().iter().flatten().cloned().collect()))
}

/// Inside [`deferring`]: keep `landing` to wait on later (true); outside,
/// false (the write commits before it returns).
pub(crate) fn defer(landing: &Arc<Landing>) -> bool {
    DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(v) => {
            v.push(landing.clone());
            true
        }
        None => false,
    })
}

/// Whether every write this thread deferred so far took effect (each
/// must have landed already).
pub(crate) fn deferred_outcome() -> Result<()> {
    DEFERRED.with(|d| {
        d.borrow().iter().flatten().try_for_each(|l| {
            l.known()
                .unwrap_or_else(|| Err(Error::internal("a deferred write has not landed")))
        })
    })
}

/// A group that has been committed (or failed), to publish: its events
/// sent, its landing set.
pub(crate) struct Landed {
    pub(crate) outcome: Result<()>,
    pub(crate) events: Vec<EventRecord>,
    /// The asks its members ended (for their waiters, once committed).
    pub(crate) ended: Vec<super::waits::Ended>,
    pub(crate) landing: Pending,
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
                self.open.check(conn);
                Ok(())
            }
            Err(e) => {
                self.abandon();
                return Some(self.failed(g, e));
            }
        };
        Some(Landed {
            outcome,
            events: g.events,
            ended: g.ended,
            landing: g.landing,
            members: g.members,
        })
    }

    /// A group whose transaction SQLite rolled back by itself (a full
    /// disk, an I/O error, under a part that went on): fail it, to be
    /// published like a failed commit.
    pub(crate) fn lost(&mut self) -> Option<Landed> {
        if self.group.is_none() || !self.conn.is_autocommit() {
            return None;
        }
        let g = self.group.take()?;
        Some(self.failed(
            g,
            Error::internal(
                "SQLite rolled the transaction back (a full disk or an I/O error): none of its writes took effect",
            ),
        ))
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
/// the whole transaction goes and so does every part in it. The others
/// are told what failed, not the part's own refusal (another caller's
/// business), unless that was SQLite's own (a full disk).
pub(crate) fn undo_part(w: &mut Writer, cause: &Error) -> Option<Landed> {
    let undone = exec(&w.conn, "ROLLBACK TO part").and_then(|()| exec(&w.conn, "RELEASE part"));
    let Err(undo) = undone else {
        return None;
    };
    let g = w.group.take()?;
    w.abandon();
    let told = match cause.code {
        repowire_core::error::ErrorCode::StorageFull => cause.clone(),
        _ => Error::internal(format!(
            "a write sharing this commit failed and could not be undone alone: {}",
            undo.message
        )),
    };
    Some(w.failed(g, told))
}

impl Writer {
    /// The transaction is gone: count the open deliveries again from the
    /// file (SQLite may have rolled it back by itself, and statements run
    /// after that committed on their own, so undoing `journal` alone could
    /// take back rows that are there). Undone by the journal only if the
    /// file cannot be read.
    pub(crate) fn recount_open(&mut self, journal: &[(repowire_core::ids::PeerId, i64)]) {
        match OpenCounts::recount(&self.conn) {
            Ok(counts) => self.open = counts,
            Err(_) => self.open.undo(journal),
        }
    }

    /// A group whose transaction is gone: its places given back, the
    /// open-delivery counts read again, nothing to publish, every member
    /// told `e`.
    fn failed(&mut self, g: Group, e: Error) -> Landed {
        g.reserved.into_iter().for_each(Reserved::release);
        self.recount_open(&g.opened);
        Landed {
            outcome: Err(e),
            events: Vec::new(),
            ended: Vec::new(),
            landing: g.landing,
            members: g.members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::deferring;
    use crate::testing::register;
    use repowire_core::error::Error;
    use repowire_core::ids::DeliveryId;
    use repowire_core::peer::{Peer, Role};

    fn setup() -> (tempfile::TempDir, Store, Peer, Peer) {
        let (dir, s) = crate::testing::open();
        let a = register(&s, "a").0;
        let b = register(&s, "b").0;
        let (a, b) = (
            s.peer_by_id(&a).unwrap().unwrap(),
            s.peer_by_id(&b).unwrap().unwrap(),
        );
        (dir, s, a, b)
    }

    /// How many of `ids` another connection reads from the file (what is
    /// committed).
    fn in_file(d: &tempfile::TempDir, ids: &[&DeliveryId]) -> usize {
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
    /// with the one commit of their group, their events published in order.
    #[test]
    fn deferred_writes_land_with_one_commit() {
        let (d, s, a, b) = setup();
        let mut bus = s.subscribe();
        let (c0, w0) = s.commits();
        let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let (two, mut all) = deferring(|| s.write(|t| t.notify_as(&b, &a, "two")));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(in_file(&d, &[&one, &two]), 0, "not committed yet");
        assert_eq!(s.commits(), (c0, w0));
        assert!(bus.try_recv().is_err(), "nothing published yet");
        s.commit_open();
        all.extend(w1);
        assert!(block_on(all.landed()).is_ok());
        assert_eq!(s.commits(), (c0 + 1, w0 + 2));
        assert_eq!(in_file(&d, &[&one, &two]), 2);
        let mut seqs = Vec::new();
        while let Ok(e) = bus.try_recv() {
            seqs.push(e.seq);
        }
        assert!(seqs.len() >= 2 && seqs.is_sorted(), "{seqs:?}");
    }

    /// A write that does not defer (a background thread's) commits the
    /// open group with its own part: the deferred write lands.
    #[test]
    fn a_write_that_does_not_defer_commits_the_open_group() {
        let (d, s, a, b) = setup();
        let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let (c0, w0) = s.commits();
        let two = std::thread::scope(|sc| {
            sc.spawn(|| s.write(|t| t.notify_as(&b, &a, "two")))
                .join()
                .unwrap()
                .unwrap()
        });
        assert_eq!(s.commits(), (c0 + 1, w0 + 2));
        assert!(block_on(w1.landed()).is_ok());
        assert_eq!(in_file(&d, &[&one.unwrap(), &two]), 2);
    }

    /// A read commits an open group first: nothing reads a part that is
    /// not committed.
    #[test]
    fn a_read_commits_an_open_group_first() {
        let (d, s, a, b) = setup();
        let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let one = one.unwrap();
        assert_eq!(in_file(&d, &[&one]), 0);
        assert_eq!(s.peek(&b.id, 10).unwrap().len(), 1);
        assert_eq!(in_file(&d, &[&one]), 1, "the read committed it");
        assert!(block_on(w1.landed()).is_ok());
    }

    /// A reader that first waits for the open group's landing leaves the
    /// group open for the writes still to come: they share its commit,
    /// and the read that follows finds all of them committed.
    #[test]
    fn a_reader_waits_for_the_open_group_instead_of_committing_it() {
        let (d, s, a, b) = setup();
        let s = std::sync::Arc::new(s);
        let (c0, w0) = s.commits();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
                let one = one.unwrap();
                let reader = {
                    let (s, b) = (s.clone(), b.id.clone());
                    tokio::spawn(async move {
                        s.open_group_landed().await;
                        s.peek(&b, 10).unwrap().len()
                    })
                };
                // The reader runs first: it waits, committing nothing.
                tokio::task::yield_now().await;
                assert!(!reader.is_finished());
                assert_eq!(in_file(&d, &[&one]), 0, "the reader committed nothing");
                // A write that comes later still joins the group.
                let (two, w2) = deferring(|| s.write(|t| t.notify_as(&a, &b, "two")));
                let two = two.unwrap();
                s.commit_open();
                assert_eq!(s.commits(), (c0 + 1, w0 + 2), "one commit for both");
                assert_eq!(reader.await.unwrap(), 2, "the read saw both");
                assert!(w1.landed().await.is_ok() && w2.landed().await.is_ok());
                assert_eq!(in_file(&d, &[&one, &two]), 2);
            });
        // With no group open it does not wait at all.
        block_on(s.open_group_landed());
    }

    /// While another thread holds the writer (a background write), a
    /// reader does not wait for it on the async thread: whatever group was
    /// open, that write commits it.
    #[test]
    fn a_reader_never_waits_on_a_writer_held_elsewhere() {
        let (_d, s) = crate::testing::open();
        let s = std::sync::Arc::new(s);
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                s.write(|_| {
                    held_tx.send(()).unwrap();
                    release.recv().unwrap();
                    Ok(())
                })
                .unwrap()
            })
        };
        held.recv().unwrap();
        let (done_tx, done) = std::sync::mpsc::channel();
        let reader = {
            let s = s.clone();
            std::thread::spawn(move || {
                block_on(s.open_group_landed());
                done_tx.send(()).unwrap();
            })
        };
        // A hang detector, not a speed claim: it returns at once, or only
        // once the writer lets go (never, without the release below).
        let waited = done.recv_timeout(std::time::Duration::from_secs(30));
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(
            waited.is_ok(),
            "the reader waited on the writer held elsewhere"
        );
    }

    #[test]
    fn a_failing_write_in_a_group_is_undone_alone() {
        let (d, s, a, b) = setup();
        let (kept, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "kept")));
        let undone = std::cell::Cell::new(None);
        let (failed, w2) = deferring(|| {
            s.write(|t| {
                undone.set(Some(t.notify_as(&b, &a, "undone")?));
                Err::<(), _>(Error::internal("and then it failed"))
            })
        });
        assert!(failed.is_err());
        assert!(w2.is_empty(), "nothing to wait for");
        s.commit_open();
        assert!(block_on(w1.landed()).is_ok());
        assert_eq!(in_file(&d, &[&kept.unwrap()]), 1);
        assert_eq!(in_file(&d, &[&undone.take().unwrap()]), 0);
    }

    #[test]
    fn a_panicking_write_in_a_group_is_undone_alone() {
        let (d, s, a, b) = setup();
        let (kept, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "kept")));
        let undone = std::cell::Cell::new(None);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            deferring(|| {
                s.write(|t| -> crate::Result<()> {
                    undone.set(Some(t.notify_as(&b, &a, "undone")?));
                    panic!("mid-write")
                })
            })
        }));
        assert!(panicked.is_err(), "the panic reaches its own caller");
        s.commit_open();
        assert!(block_on(w1.landed()).is_ok());
        assert_eq!(in_file(&d, &[&kept.unwrap()]), 1);
        assert_eq!(in_file(&d, &[&undone.take().unwrap()]), 0);
        let after = crate::testing::note(&s, &a.id, "b", "after");
        assert_eq!(in_file(&d, &[&after]), 1);
    }

    #[test]
    fn a_failing_first_write_leaves_nothing_for_the_next() {
        let (d, s, a, b) = setup();
        let undone = std::cell::Cell::new(None);
        let (failed, _) = deferring(|| {
            s.write(|t| {
                undone.set(Some(t.notify_as(&a, &b, "undone")?));
                Err::<(), _>(Error::internal("and then it failed"))
            })
        });
        assert!(failed.is_err());
        let (kept, w) = deferring(|| s.write(|t| t.notify_as(&b, &a, "kept")));
        s.commit_open();
        assert!(block_on(w.landed()).is_ok());
        assert_eq!(in_file(&d, &[&kept.unwrap()]), 1);
        assert_eq!(in_file(&d, &[&undone.take().unwrap()]), 0);
    }

    /// A table whose foreign key is checked at commit ([`doom_commit`]).
    fn deferred_fk(s: &Store) {
        s.write(|t| {
            t.conn().execute_batch(
                "CREATE TABLE late (p TEXT REFERENCES peers(id) DEFERRABLE INITIALLY DEFERRED)",
            )?;
            Ok(())
        })
        .unwrap();
    }

    /// A write that runs, and makes its transaction's commit fail (after
    /// [`deferred_fk`]).
    fn doom_commit(t: &mut crate::Tx<'_>) -> repowire_core::error::Result<()> {
        t.conn()
            .execute("INSERT INTO late (p) VALUES ('peer-nobody')", [])?;
        Ok(())
    }

    /// A commit that fails (here a deferred foreign key) fails every write
    /// of its group: none of them took effect, each is told.
    #[test]
    fn a_failed_group_commit_fails_every_write_in_it() {
        let (d, s, a, b) = setup();
        deferred_fk(&s);
        let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let (bad, w2) = deferring(|| s.write(doom_commit));
        assert!(bad.is_ok(), "the part itself ran");
        let (c0, _) = s.commits();
        s.commit_open();
        assert!(block_on(w1.landed()).is_err());
        assert!(block_on(w2.landed()).is_err());
        assert_eq!(s.commits().0, c0);
        assert_eq!(in_file(&d, &[&one.unwrap()]), 0);
        let after = crate::testing::note(&s, &a.id, "b", "after");
        assert_eq!(in_file(&d, &[&after]), 1, "the connection works again");
    }

    /// A peer a later part of a group reads after an earlier part changed
    /// it is not remembered (the change is not committed): a reader outside
    /// the group reads the row, committing the group first, and when that
    /// commit fails it finds the peer as it was.
    #[test]
    fn a_failed_group_leaves_no_peer_it_read_remembered() {
        let (_d, s, a, _b) = setup();
        deferred_fk(&s);
        let (changed, w1) = deferring(|| {
            s.write(|t| {
                t.conn()
                    .execute("UPDATE peers SET role = 'service' WHERE id = ?1", [&a.id])?;
                doom_commit(t)
            })
        });
        assert!(changed.is_ok());
        let (seen, w2) = deferring(|| s.write(|t| crate::peers::must(t, &a.id)));
        assert_eq!(seen.unwrap().role, Role::Service, "read uncommitted");
        assert_eq!(s.peer_by_id(&a.id).unwrap().unwrap().role, Role::Agent);
        assert!(block_on(w1.landed()).is_err());
        assert!(block_on(w2.landed()).is_err());
        assert_eq!(s.peer_by_id(&a.id).unwrap().unwrap().role, Role::Agent);
        let inside = s.write(|t| crate::peers::must(t, &a.id)).unwrap();
        assert_eq!(inside.role, Role::Agent);
    }

    /// A part undone alone (its savepoint rolled back, the group goes on)
    /// leaves nothing it changed and read back remembered.
    #[test]
    fn a_part_undone_alone_leaves_no_peer_it_changed_remembered() {
        let (_d, s, a, b) = setup();
        let (kept, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "kept")));
        assert!(kept.is_ok());
        let (undone, w2) = deferring(|| {
            s.write(|t| {
                t.conn()
                    .execute("UPDATE peers SET role = 'service' WHERE id = ?1", [&a.id])?;
                assert_eq!(crate::peers::must(t, &a.id)?.role, Role::Service);
                Err::<(), _>(Error::internal("and then it failed"))
            })
        });
        assert!(undone.is_err());
        assert!(w2.is_empty());
        let inside = s.write(|t| crate::peers::must(t, &a.id)).unwrap();
        assert_eq!(inside.role, Role::Agent, "in the group still open");
        s.commit_open();
        assert!(block_on(w1.landed()).is_ok());
        assert_eq!(s.peer_by_id(&a.id).unwrap().unwrap().role, Role::Agent);
    }

    /// SQLite may roll the whole transaction back under a part that goes
    /// on (a full disk, an I/O error; here a part's own ROLLBACK): every
    /// write of the group is failed, and the next write is not taken into
    /// a transaction that no longer exists (its savepoint would begin and
    /// commit one of its own).
    #[test]
    fn a_group_that_sqlite_rolled_back_fails_and_is_not_joined() {
        let (d, s, a, b) = setup();
        let rolled_back = |t: &mut crate::Tx<'_>, from: &Peer, to: &Peer| {
            let id = t.notify_as(from, to, "rolled back")?;
            t.conn().execute_batch("ROLLBACK")?;
            Ok(id)
        };
        // The first part of a group.
        let (zero, w0) = deferring(|| s.write(|t| rolled_back(t, &a, &b)));
        assert!(zero.is_err(), "told at once: its part is gone");
        assert!(w0.is_empty());
        // A part that joined a group.
        let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        let (two, w2) = deferring(|| s.write(|t| rolled_back(t, &b, &a)));
        assert!(two.is_err(), "its part is gone with the transaction");
        assert!(w2.is_empty());
        assert!(block_on(w1.landed()).is_err(), "so is every other part");
        let (three, w3) = deferring(|| s.write(|t| t.notify_as(&a, &b, "three")));
        let (c0, w0) = s.commits();
        s.commit_open();
        assert!(block_on(w3.landed()).is_ok());
        assert_eq!(s.commits(), (c0 + 1, w0 + 1));
        assert_eq!(in_file(&d, &[&one.unwrap()]), 0);
        assert_eq!(in_file(&d, &[&three.unwrap()]), 1);
        // Nor did the rolled-back parts' events commit on their own.
        let other = rusqlite::Connection::open(d.path().join("t.db")).unwrap();
        let queued: i64 = other
            .query_row(
                "SELECT COUNT(*) FROM events WHERE kind = 'delivery_queued'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(queued, 1, "only the third note's");
    }

    /// Before acting outside the database, a handler lands its writes.
    #[test]
    fn land_deferred_commits_and_tells() {
        let (d, s, a, b) = setup();
        let ((one, landed), w) = deferring(|| {
            let one = s.write(|t| t.notify_as(&a, &b, "one")).unwrap();
            (one, s.land_deferred())
        });
        assert!(landed.is_ok());
        assert_eq!(in_file(&d, &[&one]), 1);
        assert!(block_on(w.landed()).is_ok());
    }

    /// A group dropped before it landed (a panic between taking it and
    /// publishing it) fails its writes instead of leaving them waiting.
    #[test]
    fn a_group_dropped_before_it_landed_fails_its_writes() {
        let (_d, s, a, b) = setup();
        let (one, w1) = deferring(|| s.write(|t| t.notify_as(&a, &b, "one")));
        assert!(one.is_ok());
        let mut w = s.writer.lock().unwrap();
        drop(w.group.take());
        w.abandon();
        drop(w);
        assert!(block_on(w1.landed()).is_err());
    }
}
