//! The SQLite store: one file in WAL mode, written only by the daemon.
//!
//! Every state change runs in one `BEGIN IMMEDIATE` transaction through
//! [`Store::write`], and the events it appends are written in that same
//! transaction. Committed events are then published on the in-memory bus that
//! feeds long-polls and event streams. Migrations are append-only
//! (`migrations.rs`). One module per aggregate: peers, asks, deliveries, events.

mod asks;
mod deliveries;
mod events;
mod migrations;
mod peers;

pub use peers::PeerRow;

use crate::api::EventInfo;
use crate::core::error::{Error, Result};
use crate::core::policy::Policy;
use crate::core::time::now_ms;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::internal(format!("storage: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("stored json: {e}"))
    }
}

/// The store: a writer connection, a reader connection and the event bus.
pub struct Store {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    bus: broadcast::Sender<Arc<EventInfo>>,
    pub policy: Policy,
}

/// A write transaction in progress, collecting the events it appends.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    events: Vec<EventInfo>,
    pub now: i64,
    pub policy: &'a Policy,
}

/// An event to append: kind, subject id, related id, circle, JSON payload.
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub related: Option<&'a str>,
    pub circle: Option<&'a str>,
    pub payload: serde_json::Value,
}

impl Tx<'_> {
    /// Append an event row in this transaction.
    pub fn event(&mut self, e: NewEvent<'_>) -> Result<()> {
        let payload = e.payload.to_string();
        self.tx
            .prepare_cached(
                "INSERT INTO events (ts_ms, kind, subject, related, circle, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(rusqlite::params![
                self.now, e.kind, e.subject, e.related, e.circle, payload
            ])?;
        self.events.push(EventInfo {
            seq: self.tx.last_insert_rowid(),
            ts_ms: self.now,
            kind: e.kind.to_string(),
            subject: e.subject.to_string(),
            related: e.related.map(str::to_string),
            circle: e.circle.map(str::to_string),
            payload: e.payload,
        });
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.tx
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // WAL + NORMAL: a commit survives a process crash (kill -9); see docs/durability.md.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

impl Store {
    /// Open (creating and migrating) the database at `path`.
    pub fn open(path: &Path, policy: Policy) -> Result<Self> {
        let writer = Connection::open(path)
            .map_err(|e| Error::internal(format!("while opening {}: {e}", path.display())))?;
        let mode: String = writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::internal(format!(
                "could not switch {} to WAL (got {mode})",
                path.display()
            )));
        }
        configure(&writer)?;
        let mut writer = writer;
        migrations::migrate(&mut writer)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&reader)?;
        let (bus, _) = broadcast::channel(4096);
        Ok(Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            bus,
            policy,
        })
    }

    /// Subscribe to committed events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventInfo>> {
        self.bus.subscribe()
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction; commit, then publish the
    /// events it appended. An error rolls everything back.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let (out, events) = {
            let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut t = Tx {
                tx,
                events: Vec::new(),
                now: now_ms(),
                policy: &self.policy,
            };
            let out = f(&mut t)?;
            let Tx { tx, events, .. } = t;
            tx.commit()?;
            (out, events)
        };
        for e in events {
            let _ = self.bus.send(Arc::new(e));
        }
        Ok(out)
    }

    /// Run a read-only query on the reader connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }
}

/// Parse a stored enum column.
fn parse_col<T>(s: String, parse: fn(&str) -> Result<T>) -> rusqlite::Result<T> {
    parse(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}
