//! The event log: reading, tracing one object, and retention.

use super::Store;
use repowire_core::error::Result;
use repowire_core::event::EventRecord;
use repowire_core::ids::IdKind;
use rusqlite::{Row, params};

macro_rules! cols {
    () => {
        "seq, ts_ms, kind, subject, related, circle, payload"
    };
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        seq: r.get(0)?,
        ts_ms: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        related: r.get(4)?,
        circle: r.get(5)?,
        payload: r.get(6)?,
        event: None,
    })
}

/// Counts for `doctor`.
pub struct Counts {
    pub peers: i64,
    pub open_asks: i64,
    pub pending_deliveries: i64,
    pub events: i64,
    pub schema_version: i64,
    pub check: String,
}

/// The next rows of deliveries after `?1`, in order, with whether each is
/// finished and older than `?2` (a cursor's page, read by primary key).
const DELIVERIES_PAGE: &str = "SELECT seq, created_ms,
       state IN ('delivered','dropped') AND COALESCE(delivered_ms, created_ms) < ?2
     FROM deliveries WHERE seq > ?1 ORDER BY seq LIMIT ?3";

const DELETE_DELIVERIES: &str = "DELETE FROM deliveries
     WHERE seq IN (SELECT value FROM json_each(?1))
       AND +state IN ('delivered','dropped') AND COALESCE(delivered_ms, created_ms) < ?2";

/// The same for asks (terminal and closed before `?2`), by rowid. The
/// newest ask stays, so that rowids are never reused: the reminder pass
/// walks asks by rowid (`Store::remind_due`).
const ASKS_PAGE: &str = "SELECT rowid, created_ms,
       state IN ('closed','expired','canceled','failed') AND closed_ms < ?2
     FROM asks WHERE rowid > ?1 ORDER BY rowid LIMIT ?3";

const DELETE_ASKS: &str = "DELETE FROM asks
     WHERE rowid IN (SELECT value FROM json_each(?1))
       AND +state IN ('closed','expired','canceled','failed') AND closed_ms < ?2
       AND rowid < (SELECT MAX(rowid) FROM asks)";

impl Store {
    /// Events after `since` (a seq), oldest first, optionally one circle's.
    pub fn events_since(
        &self,
        since: i64,
        limit: u32,
        circle: Option<&str>,
    ) -> Result<Vec<EventRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM events WHERE seq > ?1 AND (?2 IS NULL OR circle = ?2)
                 ORDER BY seq LIMIT ?3"
            ))?
            .query_map(params![since, circle, limit], from_row)?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The newest `n` events' starting seq (so `events` shows the tail).
    pub fn tail_start(&self, n: u32, circle: Option<&str>) -> Result<i64> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COALESCE((SELECT seq FROM events WHERE ?2 IS NULL OR circle = ?2
                                  ORDER BY seq DESC LIMIT 1 OFFSET ?1), 0)",
                rusqlite::params![n, circle],
                |r| r.get(0),
            )?)
        })
    }

    /// Every event about `id`: the object itself and what hangs off it (an
    /// ask's deliveries; an ask group's asks and their deliveries).
    /// It reads the retained log through (at most `event_max_count` rows,
    /// tens of milliseconds) rather than have every event pay for an index
    /// by subject, so it reads on the connection aside: requests and
    /// writes go on meanwhile. (Callers run it off the async thread.)
    pub fn trace(&self, id: &str) -> Result<Vec<EventRecord>> {
        self.read_aside(|c| {
            let mut ids = vec![id.to_string()];
            if IdKind::of(id) == Some(IdKind::AskGroup) {
                let mut st = c.prepare_cached("SELECT id FROM asks WHERE parent_id = ?1")?;
                let kids: Vec<String> = st
                    .query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids.extend(kids);
            }
            let list = serde_json::to_string(&ids)?;
            Ok(c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM events
                 WHERE subject IN (SELECT value FROM json_each(?1))
                    OR related IN (SELECT value FROM json_each(?1))
                    OR subject IN (SELECT subject FROM events
                                   WHERE related IN (SELECT value FROM json_each(?1))
                                     AND subject LIKE 'dlv-%')
                 ORDER BY seq"
            ))?
            .query_map([list], from_row)?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Delete events older than `max_age_ms` and beyond the newest
    /// `max_count`. Returns how many went.
    pub fn prune_events(&self, max_age_ms: i64, max_count: i64) -> Result<usize> {
        let now = self.clock.now_ms();
        let mut w = self.settled();
        let tx = w
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // seq and ts_ms grow together, so the cut is found by walking only
        // the rows about to go (no index on ts_ms to pay for on every insert).
        // The newest event always stays, so a seq is never handed out twice
        // (followers resume with `since=SEQ`).
        let by_age = tx.execute(
            "DELETE FROM events WHERE seq < COALESCE(
               (SELECT seq FROM events WHERE ts_ms >= ?1 ORDER BY seq LIMIT 1),
               (SELECT MAX(seq) FROM events))",
            [now - max_age_ms],
        )?;
        let by_count = tx.execute(
            "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1",
            [max_count],
        )?;
        tx.commit()?;
        Ok(by_age + by_count)
    }

    /// Delete what is finished and older than `max_age_ms`: delivered or
    /// dropped deliveries, terminal asks, and ask groups left empty. Open
    /// asks and undelivered deliveries are never touched. Returns rows deleted.
    ///
    /// Rows are appended as they are created and finish after that, so the
    /// old end of each table is walked, a page of 500 rows by key at a time,
    /// until the first row created since the cut (one stamped far in the
    /// future, by a clock that jumped, does not stop the walk); what is
    /// finished on each page is deleted by key with the condition checked
    /// again. Each page is one short hold of the store's connection and
    /// every row is read once: no scan of a table while requests wait.
    pub fn prune_finished(&self, max_age_ms: i64) -> Result<usize> {
        const PAGE: i64 = 500;
        let now = self.clock.now_ms();
        let cutoff = now - max_age_ms;
        // A row created after this is from a clock that jumped ahead.
        let future = now + 3_600_000;
        let mut gone = 0;
        for (page, delete) in [
            (DELIVERIES_PAGE, DELETE_DELIVERIES),
            (ASKS_PAGE, DELETE_ASKS),
        ] {
            let mut after = 0i64;
            loop {
                let rows: Vec<(i64, i64, bool)> = self.read(|c| {
                    Ok(c.prepare_cached(page)?
                        .query_map(params![after, cutoff, PAGE], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?
                        .collect::<rusqlite::Result<_>>()?)
                })?;
                let mut keys = Vec::new();
                let mut reached = false;
                for (key, created, finished) in &rows {
                    if *created >= cutoff && *created <= future {
                        reached = true;
                        break;
                    }
                    if *finished {
                        keys.push(*key);
                    }
                    after = *key;
                }
                if !keys.is_empty() {
                    let list = serde_json::to_string(&keys)?;
                    gone += self.write(|t| {
                        Ok(t.conn()
                            .prepare_cached(delete)?
                            .execute(params![list, cutoff])?)
                    })?;
                }
                if reached || (rows.len() as i64) < PAGE {
                    break;
                }
                // Let a request waiting for the connection in first.
                std::thread::yield_now();
            }
        }
        gone += self.write(|t| {
            Ok(t.conn()
                .prepare_cached(
                    "DELETE FROM ask_groups WHERE created_ms < ?1
                       AND NOT EXISTS (SELECT 1 FROM asks WHERE asks.parent_id = ask_groups.id)",
                )?
                .execute([cutoff])?)
        })?;
        Ok(gone)
    }

    pub fn counts(&self) -> Result<Counts> {
        let w = self.settled();
        let (c, open) = (&w.conn, &w.open);
        (|| {
            let one = |sql: &str| -> Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
            Ok(Counts {
                peers: one("SELECT COUNT(*) FROM peers")?,
                open_asks: one(concat!(
                    "SELECT COUNT(*) FROM asks WHERE ",
                    crate::asks::open!(),
                    " AND state != 'answered'"
                ))?,
                // Counted in memory (a recount would read every delivery).
                pending_deliveries: open.total(),
                events: one("SELECT COUNT(*) FROM events")?,
                schema_version: one("PRAGMA user_version")?,
                check: c.query_row("PRAGMA quick_check", [], |r| r.get(0))?,
            })
        })()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retention reads pages by key and deletes by key: never a scan of a
    /// table, never a sort.
    #[test]
    fn retention_reads_and_deletes_by_key() {
        crate::assert_planned_through(&[
            (DELIVERIES_PAGE, "INTEGER PRIMARY KEY (rowid>?)"),
            (DELETE_DELIVERIES, "INTEGER PRIMARY KEY (rowid=?)"),
            (ASKS_PAGE, "INTEGER PRIMARY KEY (rowid>?)"),
            (DELETE_ASKS, "INTEGER PRIMARY KEY (rowid=?)"),
        ]);
    }
}
