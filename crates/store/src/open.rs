//! Each peer's open deliveries (pending or leased), counted in memory by
//! the writer: the inbox cap reads it in O(1) and the daemon's counts sum
//! it. Nothing of it is written; it is counted from the file at every open
//! (by the deliveries' two partial indexes, which hold open rows only).
//!
//! The writes that open or close a delivery say so ([`Tx::opened`]) as they
//! change its row: a new pending or leased one (+1); an armed one that
//! becomes visible as pending or is leased (+1); one confirmed, settled or
//! dropped (−1). A change is applied at once (the rest of the transaction,
//! and the rest of its group, read it) and kept in a journal, so that
//! whatever SQLite rolls back is taken back here too: a part of a group
//! undone alone, a savepoint an attempt rolls back, a group that failed to
//! commit or was lost under a part. Debug builds recount after every commit
//! and stop at the first difference, so a write that forgets to say so
//! fails the test suite.
//!
//! (Before, TEMP triggers on `deliveries` kept these counts in a TEMP
//! table: a trigger program ran on every insert and state change, about a
//! thirteenth of an ask's instructions.)

use super::Tx;
use repowire_core::error::Result;
use repowire_core::ids::PeerId;
use rusqlite::Connection;
use std::collections::HashMap;

/// Open deliveries by recipient (peers with none have no entry).
#[derive(Default)]
pub(crate) struct OpenCounts {
    by_peer: HashMap<String, i64>,
    total: i64,
}

/// Changes applied to [`OpenCounts`], in order, to take back on a rollback.
pub(crate) type Journal = Vec<(PeerId, i64)>;

/// Every open delivery's recipient, one row each.
const OPEN_ROWS: &str = "SELECT to_peer FROM main.deliveries INDEXED BY deliveries_unpushed
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NULL
     UNION ALL
     SELECT to_peer FROM main.deliveries INDEXED BY deliveries_pushed
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NOT NULL";

impl OpenCounts {
    /// Count them from the file.
    pub(crate) fn recount(c: &Connection) -> Result<Self> {
        let mut counts = Self::default();
        let mut stmt = c.prepare(OPEN_ROWS)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let peer: String = r.get(0)?;
            *counts.by_peer.entry(peer).or_default() += 1;
            counts.total += 1;
        }
        Ok(counts)
    }

    /// Open deliveries to `peer`.
    pub(crate) fn of(&self, peer: &str) -> i64 {
        self.by_peer.get(peer).copied().unwrap_or(0)
    }

    /// Open deliveries to anyone.
    pub(crate) fn total(&self) -> i64 {
        self.total
    }

    pub(crate) fn add(&mut self, peer: &str, delta: i64) {
        self.total += delta;
        match self.by_peer.get_mut(peer) {
            Some(n) => {
                *n += delta;
                if *n == 0 {
                    self.by_peer.remove(peer);
                }
            }
            None => {
                self.by_peer.insert(peer.to_owned(), delta);
            }
        }
    }

    /// Take back what `journal` applied.
    pub(crate) fn undo(&mut self, journal: &[(PeerId, i64)]) {
        for (peer, delta) in journal.iter().rev() {
            self.add(peer, -delta);
        }
    }

    /// Debug builds: stop if the counts differ from a recount of `c`.
    pub(crate) fn check(&self, c: &Connection) {
        if cfg!(debug_assertions) {
            let real = Self::recount(c).expect("recount open deliveries");
            assert_eq!(
                (self.total, &self.by_peer),
                (real.total, &real.by_peer),
                "open-delivery counts (left) differ from the file (right): a write changed a delivery's state without Tx::opened"
            );
        }
    }
}

impl Tx<'_> {
    /// Open deliveries to `peer`, as this transaction leaves them so far.
    pub(crate) fn open_to(&self, peer: &str) -> i64 {
        self.open.of(peer)
    }

    /// `delta` deliveries to `peer` were opened (pending or leased: +) or
    /// closed (delivered or dropped: −) by this transaction.
    pub(crate) fn opened(&mut self, peer: &PeerId, delta: i64) {
        self.open.add(peer, delta);
        self.opened.push((peer.clone(), delta));
    }
}

#[cfg(test)]
impl super::Store {
    /// The open-delivery counts by recipient, sorted (for tests).
    pub(crate) fn open_counts(&self) -> Vec<(String, i64)> {
        let w = self.settled();
        let mut v: Vec<_> = w
            .open
            .by_peer
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use crate::peers::must;
    use crate::testing::{open, register};
    use repowire_core::error::Error;

    /// What an attempt rolled back inside a write had counted goes back
    /// with its rows; what the write kept stays counted.
    #[test]
    fn an_attempt_rolled_back_takes_its_counts_back() {
        let (_dir, s) = open();
        let (a, _) = register(&s, "a");
        let (b, _) = register(&s, "b");
        s.write(|t| {
            let (from, to) = (must(t, &a)?, must(t, &b)?);
            t.notify_as(&from, &to, "kept")?;
            let undone = t.attempt(|t| {
                t.notify_as(&from, &to, "undone")?;
                t.notify_as(&to, &from, "undone too")?;
                Err::<(), _>(Error::internal("and then it failed"))
            });
            assert!(undone.is_err());
            Ok(())
        })
        .unwrap();
        assert_eq!(s.open_counts(), vec![(b.to_string(), 1)]);
    }

    /// When SQLite rolls a whole transaction back by itself (a full disk,
    /// an I/O error; here a bare ROLLBACK), what runs after it commits on
    /// its own: the counts are read again from the file, not undone from
    /// the journal.
    #[test]
    fn a_transaction_sqlite_rolled_back_is_counted_from_the_file() {
        let (_dir, s) = open();
        let (a, _) = register(&s, "a");
        let (b, _) = register(&s, "b");
        let r = s.write(|t| {
            let (from, to) = (must(t, &a)?, must(t, &b)?);
            let _ = t.attempt(|t| {
                t.notify_as(&from, &to, "rolled back")?;
                t.conn().execute_batch("ROLLBACK")?;
                Err::<(), _>(Error::internal("an I/O error"))
            });
            t.notify_as(&from, &to, "committed on its own")?;
            Ok(())
        });
        let in_file: i64 = s
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending','leased')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        let kept: i64 = s.open_counts().iter().map(|(_, n)| n).sum();
        assert_eq!(kept, in_file, "{r:?}");
    }
}
