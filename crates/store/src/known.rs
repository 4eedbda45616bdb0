//! Peers remembered between requests: by bearer token, by id and by name.
//!
//! Every request with a peer token needs that token's peer: a SHA-256 of the
//! token and a read transaction (its file locks included) cost about a tenth
//! of a small request; a message or an ask then reads its recipient by name
//! and its parties by id (a statement and a row decoded each, a tenth of an
//! ask). The peers read are kept here for as long as no row of `peers`
//! changes: the writer connection's update hook counts every inserted,
//! updated or deleted `peers` row (a registration, a heartbeat, a role, a
//! token rotated or a peer removed) as it is written, and a count that moved
//! empties the cache before it is read again. A remembered peer is
//! therefore the row as the database has it, committed; nothing an
//! authorization reads can be stale.
//!
//! The count moves inside the writing transaction, before its commit (and
//! stays moved should it roll back): a look-up that sees the new count reads
//! the row after the write is done (reads share the writer's connection,
//! wait for it, and commit an open group first), and one that saw the old
//! count stores its row under the old count, which the next look-up finds
//! outdated. Inside a write ([`Tx`](crate::Tx)) a row read is kept only while
//! the count is still where it was when the transaction began: then no write
//! of that transaction (of its whole group) changed a peer, and what it read
//! is committed; otherwise it may be a change not yet committed, which may
//! never be, and is not kept. Only tokens that belong to a peer are kept (an
//! unknown token costs the database each time, as before); they are compared
//! in constant time, keyed by a hash with a per-process random key.

use repowire_core::ids::secrets_equal;
use repowire_core::peer::Peer;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(crate) struct Known {
    /// `peers` rows written so far (by the update hook).
    changes: Arc<AtomicU64>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The count of changes the entries were read at.
    at: u64,
    keys: RandomState,
    by_token: HashMap<u64, (String, Arc<Peer>)>,
    by_id: HashMap<String, Arc<Peer>>,
    /// Circle, then name, to id.
    by_name: HashMap<String, HashMap<String, String>>,
}

impl Cache {
    /// The entries, if they were read at `at`.
    fn at(&self, at: u64) -> Option<&Self> {
        (self.at == at).then_some(self)
    }

    /// Make room for entries read at `at`: false when they are outdated.
    fn start(&mut self, at: u64) -> bool {
        if at > self.at {
            self.by_token.clear();
            self.by_id.clear();
            self.by_name.clear();
            self.at = at;
        }
        at == self.at
    }

    fn keep(&mut self, peer: &Arc<Peer>) {
        self.by_id.insert(peer.id.to_string(), peer.clone());
        self.by_name
            .entry(peer.circle.clone())
            .or_default()
            .insert(peer.name.clone(), peer.id.to_string());
    }
}

impl Known {
    /// Count `peers` rows as the writer changes them.
    pub(crate) fn watch(&self, writer: &rusqlite::Connection) -> rusqlite::Result<()> {
        let changes = self.changes.clone();
        writer.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
                if table == "peers" {
                    changes.fetch_add(1, Ordering::AcqRel);
                }
            },
        ))
    }

    /// Where a look-up starts: the count to read (and store) at.
    pub(crate) fn now(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peer of `token`, if it was read at count `at` and nothing changed since.
    pub(crate) fn get(&self, token: &str, at: u64) -> Option<Arc<Peer>> {
        let c = self.lock();
        let c = c.at(at)?;
        let (known, peer) = c.by_token.get(&c.keys.hash_one(token))?;
        secrets_equal(known, token).then(|| peer.clone())
    }

    /// Remember `peer` for `token`, read from the database at count `at`.
    pub(crate) fn put(&self, token: &str, peer: &Arc<Peer>, at: u64) {
        let mut c = self.lock();
        if c.start(at) {
            let key = c.keys.hash_one(token);
            c.by_token.insert(key, (token.to_string(), peer.clone()));
            c.keep(peer);
        }
    }

    /// The peer `id`, if it was read at count `at`.
    pub(crate) fn by_id(&self, id: &str, at: u64) -> Option<Arc<Peer>> {
        self.lock().at(at)?.by_id.get(id).cloned()
    }

    /// The peer named `name` in `circle`, if it was read at count `at`.
    pub(crate) fn by_name(&self, circle: &str, name: &str, at: u64) -> Option<Arc<Peer>> {
        let c = self.lock();
        let c = c.at(at)?;
        let id = c.by_name.get(circle)?.get(name)?;
        c.by_id.get(id).cloned()
    }

    /// Remember `peer`, read from the database at count `at`.
    pub(crate) fn keep(&self, peer: &Arc<Peer>, at: u64) {
        let mut c = self.lock();
        if c.start(at) {
            c.keep(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::testing::{note, register};
    use repowire_core::peer::Role;

    /// A token's peer is remembered across writes that leave `peers` alone,
    /// and read again, as it now is, after any write to a `peers` row: a
    /// role or status set by any statement, a rolled-back change, a removal.
    #[test]
    fn a_remembered_peer_is_never_staler_than_its_row() {
        let (_dir, s) = crate::testing::open();
        let (a, ta) = register(&s, "a");
        let (_b, tb) = register(&s, "b");
        let cached = |token: &str| s.known.get(token, s.known.now());
        assert_eq!(s.peer_by_token(&ta).unwrap().unwrap().id, a);
        assert_eq!(cached(&ta).unwrap().id, a, "remembered");
        assert!(cached("not-a-token").is_none());
        assert!(s.peer_by_token("not-a-token").unwrap().is_none());
        // A note writes deliveries and events, no peer: still remembered.
        note(&s, &a, "b", "x");
        assert!(cached(&ta).is_some(), "a note changes no peer");
        // Any statement that writes a peers row, even one the store never
        // runs, makes the next look-up read the row again.
        s.write(|t| {
            t.conn()
                .execute("UPDATE peers SET role = 'orchestrator' WHERE id = ?1", [&a])?;
            Ok(())
        })
        .unwrap();
        assert!(cached(&ta).is_none());
        assert_eq!(
            s.peer_by_token(&ta).unwrap().unwrap().role,
            Role::Orchestrator
        );
        // A change that is rolled back also makes it read again (the same row).
        let undone: crate::Result<()> = s.write(|t| {
            t.conn()
                .execute("UPDATE peers SET role = 'agent' WHERE id = ?1", [&a])?;
            Err(repowire_core::Error::internal("undone"))
        });
        assert!(undone.is_err());
        assert!(cached(&ta).is_none());
        assert_eq!(
            s.peer_by_token(&ta).unwrap().unwrap().role,
            Role::Orchestrator
        );
        // Another peer's change counts too (the cache holds every token).
        assert!(s.peer_by_token(&tb).unwrap().is_some());
        s.unregister(&a).unwrap();
        assert!(
            s.peer_by_token(&ta).unwrap().is_none(),
            "a removed peer's token is refused"
        );
        assert!(s.peer_by_token(&tb).unwrap().is_some());
    }

    /// Peers read by id and by name inside writes are remembered, and
    /// never what a write changed itself: a write that changes a peer and
    /// reads it back, then fails, leaves the old row to every later
    /// look-up; a change that commits is read again.
    #[test]
    fn a_write_never_leaves_its_own_change_remembered() {
        let (_dir, s) = crate::testing::open();
        let (a, _) = register(&s, "a");
        let inside = |s: &Store| {
            s.write(|t| {
                let by_id = crate::peers::must(t, &a)?;
                let by_name = crate::peers::by_name(t, "default", "a")?.unwrap();
                assert_eq!(by_id, by_name);
                Ok(by_id.role)
            })
            .unwrap()
        };
        assert_eq!(inside(&s), Role::Agent);
        assert!(s.known.by_id(&a, s.known.now()).is_some(), "remembered");
        assert!(s.known.by_name("default", "a", s.known.now()).is_some());
        let undone: crate::Result<()> = s.write(|t| {
            t.conn()
                .execute("UPDATE peers SET role = 'orchestrator' WHERE id = ?1", [&a])?;
            assert_eq!(crate::peers::must(t, &a)?.role, Role::Orchestrator);
            assert_eq!(
                crate::peers::by_name(t, "default", "a")?.unwrap().role,
                Role::Orchestrator,
                "a write reads its own change"
            );
            Err(repowire_core::Error::internal("undone"))
        });
        assert!(undone.is_err());
        assert_eq!(inside(&s), Role::Agent, "the change was rolled back");
        assert_eq!(s.peer_by_id(&a).unwrap().unwrap().role, Role::Agent);
        s.write(|t| {
            t.conn()
                .execute("UPDATE peers SET role = 'service' WHERE id = ?1", [&a])?;
            crate::peers::must(t, &a)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(inside(&s), Role::Service);
        assert_eq!(s.peer_by_id(&a).unwrap().unwrap().role, Role::Service);
        s.unregister(&a).unwrap();
        assert!(s.peer_by_id(&a).unwrap().is_none());
        assert!(s.write(|t| crate::peers::by_id(t, &a)).unwrap().is_none());
    }
}
