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
    let payload: String = r.get(6)?;
    Ok(EventRecord {
        seq: r.get(0)?,
        ts_ms: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        related: r.get(4)?,
        circle: r.get(5)?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
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

/// Finished deliveries older than `?1`, oldest first, at most `?2`: read
/// from the start of the table up to the first row created since `?1`.
const FINISHED_DELIVERIES: &str = "SELECT seq FROM deliveries
     WHERE seq < COALESCE((SELECT seq FROM deliveries WHERE created_ms >= ?1 ORDER BY seq LIMIT 1),
                          (SELECT MAX(seq) + 1 FROM deliveries))
       AND state IN ('delivered','dropped') AND COALESCE(delivered_ms, created_ms) < ?1
     ORDER BY seq LIMIT ?2";

const DELETE_DELIVERIES: &str = "DELETE FROM deliveries
     WHERE seq IN (SELECT value FROM json_each(?1))
       AND state IN ('delivered','dropped') AND COALESCE(delivered_ms, created_ms) < ?2";

/// Terminal asks closed before `?1`, the same way (by rowid).
const FINISHED_ASKS: &str = "SELECT rowid FROM asks
     WHERE rowid < COALESCE((SELECT rowid FROM asks WHERE created_ms >= ?1 ORDER BY rowid LIMIT 1),
                            (SELECT MAX(rowid) + 1 FROM asks))
       AND state IN ('closed','expired','canceled','failed') AND closed_ms < ?1
     ORDER BY rowid LIMIT ?2";

const DELETE_ASKS: &str = "DELETE FROM asks
     WHERE rowid IN (SELECT value FROM json_each(?1))
       AND state IN ('closed','expired','canceled','failed') AND closed_ms < ?2";

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
    pub fn trace(&self, id: &str) -> Result<Vec<EventRecord>> {
        self.read(|c| {
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
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
    /// The rows to go are looked for on a reader, and only at the old end
    /// of each table (rows are appended as they are created, and a row
    /// finishes after it is created), then deleted by key a few hundred to
    /// a transaction with the condition checked again: the writer, and with
    /// it every request, never waits on a scan of the table.
    pub fn prune_finished(&self, max_age_ms: i64) -> Result<usize> {
        const BATCH: i64 = 500;
        let cutoff = self.clock.now_ms() - max_age_ms;
        let mut gone = 0;
        for (find, delete) in [
            (FINISHED_DELIVERIES, DELETE_DELIVERIES),
            (FINISHED_ASKS, DELETE_ASKS),
        ] {
            loop {
                let keys: Vec<i64> = self.read(|c| {
                    Ok(c.prepare_cached(find)?
                        .query_map(params![cutoff, BATCH], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?)
                })?;
                if keys.is_empty() {
                    break;
                }
                let list = serde_json::to_string(&keys)?;
                gone += self.write(|t| {
                    Ok(t.conn()
                        .prepare_cached(delete)?
                        .execute(params![list, cutoff])?)
                })?;
                if (keys.len() as i64) < BATCH {
                    break;
                }
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
        self.read(|c| {
            let one = |sql: &str| -> Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
            Ok(Counts {
                peers: one("SELECT COUNT(*) FROM peers")?,
                open_asks: one(
                    "SELECT COUNT(*) FROM asks WHERE state IN ('queued','delivered','picked_up')",
                )?,
                pending_deliveries: one(
                    "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending','leased')",
                )?,
                events: one("SELECT COUNT(*) FROM events")?,
                schema_version: one("PRAGMA user_version")?,
                check: c.query_row("PRAGMA quick_check", [], |r| r.get(0))?,
            })
        })
    }
}
