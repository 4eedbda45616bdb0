//! Peers by bearer token, remembered between requests.
//!
//! Every request with a peer token needs that token's peer: a SHA-256 of the
//! token and a read transaction (its file locks included) cost about a tenth
//! of a small request. The peers found are kept here, by token, for as long
//! as no row of `peers` changes: the writer connection's update hook counts
//! every inserted, updated or deleted `peers` row (a registration, a
//! heartbeat, a role, a token rotated or a peer removed) as it is written,
//! and a count that moved empties the cache before it is read again. A
//! cached peer is therefore the row as the database has it now; nothing an
//! authorization reads can be stale.
//!
//! The count moves inside the writing transaction, before its commit (and
//! also when it then rolls back): a look-up that sees the new count reads
//! the row after the write is done (reads share the writer's connection and
//! wait for it), and one that saw the old count stores its row under the old
//! count, which the next look-up finds outdated. Only tokens that belong to
//! a peer are kept (an unknown token costs the database each time, as
//! before); they are compared in constant time, keyed by a hash with a
//! per-process random key.

use repowire_core::ids::secrets_equal;
use repowire_core::peer::Peer;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct Tokens {
    /// `peers` rows written so far (by the update hook).
    changes: Arc<AtomicU64>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The count of changes the entries were read at.
    at: u64,
    keys: RandomState,
    by_token: HashMap<u64, (String, Peer)>,
}

impl Tokens {
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

    /// The peer of `token`, if it was read at count `at` and nothing changed since.
    pub(crate) fn get(&self, token: &str, at: u64) -> Option<Peer> {
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.at != at {
            return None;
        }
        let (known, peer) = c.by_token.get(&c.keys.hash_one(token))?;
        secrets_equal(known, token).then(|| peer.clone())
    }

    /// Remember `peer` for `token`, read from the database at count `at`.
    pub(crate) fn put(&self, token: &str, peer: &Peer, at: u64) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if at > c.at {
            c.by_token.clear();
            c.at = at;
        }
        if at == c.at {
            let key = c.keys.hash_one(token);
            c.by_token.insert(key, (token.to_string(), peer.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::testing::{note, register};
    use repowire_core::peer::Role;
    use repowire_core::policy::Policy;

    /// A token's peer is remembered across writes that leave `peers` alone,
    /// and read again, as it now is, after any write to a `peers` row: a
    /// role or status set by any statement, a rolled-back change, a removal.
    #[test]
    fn a_remembered_peer_is_never_staler_than_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db"), Policy::default()).unwrap();
        let (a, ta) = register(&s, "a");
        let (_b, tb) = register(&s, "b");
        let cached = |token: &str| s.tokens.get(token, s.tokens.now());
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
}
