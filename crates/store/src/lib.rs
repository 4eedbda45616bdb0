//! The SQLite store: one file in WAL mode, written only by the daemon.
//!
//! Every state change runs in one `BEGIN IMMEDIATE` transaction through
//! [`Store::write`] (writes that request handlers defer may share one: see
//! `group.rs`), and the events it appends are written in that same
//! transaction. Committed events then wake the long-polls they concern
//! (`waits.rs`) and are published on the in-memory bus that feeds event
//! streams and the daemon's followers. Migrations are append-only
//! (`migrations.rs`). One module per aggregate: peers, asks, deliveries, jobs,
//! reviews, schedules, personas, events. Domain types in and out (the records,
//! commands and typed ids of `repowire_core`); the wire types are the
//! client crate's, and never reach the SQL.
#![forbid(unsafe_code)]

mod acts;
mod asks;
mod circles;
mod deliveries;
mod events;
mod group;
mod handoff;
mod jobs;
mod known;
mod migrations;
mod open;
mod peers;
mod personas;
mod reviews;
mod schedules;
mod spawns;
mod tmux;
mod waits;

pub use group::{Deferred, deferred_so_far, deferring};
pub use handoff::{Handoff, Registration};
pub use schedules::{Checkin, Due, SchedRow};
pub use spawns::{NewSpawn, SpawnRow, SpawnState};
pub use waits::AskWatch;

use repowire_core::error::{Error, Result};
use repowire_core::event::{Event, EventRecord};
use repowire_core::policy::Policy;
use repowire_core::time::Clock;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The store: one connection for requests (reads and writes: one writer,
/// and its page cache stays warm), one aside for work that must not hold
/// the writer (checkpoints, the trace's read of the whole log), and the
/// event bus.
pub struct Store {
    /// The writer connection and the group commit left open on it.
    writer: Mutex<group::Writer>,
    /// Commits, and the writes they held (for the benchmarks).
    commits: std::sync::atomic::AtomicU64,
    grouped: std::sync::atomic::AtomicU64,
    /// Off the request path: checkpoints the WAL, and reads what would
    /// hold the writer too long (it sees committed writes only).
    aside: Mutex<Connection>,
    bus: broadcast::Sender<Arc<EventRecord>>,
    /// Bumped by every commit: lets readers cache derived views.
    version: std::sync::atomic::AtomicU64,
    /// What committed events changed of each circle's mesh snapshot.
    mesh_gens: Mutex<MeshGens>,
    pub policy: Policy,
    /// Where every transaction's `now` comes from.
    clock: Clock,
    /// No armed delivery becomes visible after this instant (the latest
    /// `not_before_ms` ever armed): a waiting consumer past it asks nothing.
    armed_horizon: AtomicI64,
    /// Consumers waiting (delivery streams, lease long-polls), to hand new
    /// deliveries to.
    waiting: handoff::Waiting,
    /// Waits on asks, woken by what ends them (`waits.rs`).
    ask_waits: waits::AskWaits,
    /// The news the spawn watcher and the tmux carrier wait for.
    followers: waits::Followers,
    /// Peers by bearer token, id and name, while no `peers` row changes.
    known: known::Known,
    /// Whether any peer is routed to a tmux pane, and the count of `peers`
    /// changes it was read at ([`Store::tmux_routed`]).
    tmux_routed: Mutex<Option<(u64, bool)>>,
    /// Where the reminder pass stands ([`Store::remind_due`]).
    remind_from: Mutex<asks::RemindWalk>,
}

/// Counts of committed events that changed a circle's mesh snapshot: its
/// peers part and its job list (`EventKind::mesh_parts`). An event without
/// a circle counts for every circle.
#[derive(Default)]
struct MeshGens {
    all: MeshGen,
    circles: std::collections::HashMap<String, MeshGen>,
}

/// A circle's mesh generation: (peers, jobs). Either moves when that part of
/// the circle's mesh may have changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshGen {
    pub peers: u64,
    pub jobs: u64,
}

/// A write transaction in progress, collecting the events it appends.
pub struct Tx<'a> {
    tx: &'a Connection,
    events: Vec<EventRecord>,
    pub now: i64,
    pub policy: &'a Policy,
    armed_horizon: &'a AtomicI64,
    waiting: &'a handoff::Waiting,
    /// Places this transaction took in waiting streams.
    reserved: handoff::Reserved,
    /// The peers remembered, and their count of changes when this write's
    /// transaction began (a row read while it still holds is committed, and
    /// may be remembered).
    known: &'a known::Known,
    known_at: u64,
    /// Open deliveries by recipient, as this transaction (and its group)
    /// leaves them, and the changes it made to them ([`open`]).
    open: &'a mut open::OpenCounts,
    opened: open::Journal,
    /// The writer's next row keys.
    keys: &'a mut Keys,
    /// Asks this transaction ended, as they are when it commits: handed to
    /// whoever waits on them (`waits.rs`), who then need not read them.
    ended: Vec<waits::Ended>,
}

/// The keys the next delivery and ask rows take: their ids carry them
/// ([`repowire_core::ids::key_of`]), so those tables need no index on
/// their ids. Read at open (past every row's), then counted by the writer;
/// they only grow: a write rolled back leaves a gap, never a key used
/// twice. The newest ask is never pruned, so ask keys are never used
/// again; a delivery key can be, after its row was pruned and the daemon
/// restarted, so whatever holds one checks the row is still its own: an
/// id's random bits differ (`deliveries::at_id!`), an ask's copy names its
/// ask (`deliveries::copy_keys`).
pub(crate) struct Keys {
    pub(crate) delivery: i64,
    pub(crate) ask: i64,
}

impl Keys {
    fn read(c: &Connection) -> Result<Self> {
        Ok(c.query_row(
            "SELECT (SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries),
                    (SELECT COALESCE(MAX(seq), 0) + 1 FROM asks)",
            [],
            |r| {
                Ok(Self {
                    delivery: r.get(0)?,
                    ask: r.get(1)?,
                })
            },
        )?)
    }

    /// The next delivery key, taken.
    pub(crate) fn take_delivery(&mut self) -> Result<i64> {
        take(&mut self.delivery, "delivery")
    }

    /// The next ask key, taken.
    pub(crate) fn take_ask(&mut self) -> Result<i64> {
        take(&mut self.ask, "ask")
    }
}

fn take(next: &mut i64, what: &str) -> Result<i64> {
    let key = *next;
    if key > repowire_core::ids::MAX_KEY {
        return Err(Error::internal(format!("{what} keys are used up")));
    }
    *next += 1;
    Ok(key)
}

/// Most event rows one statement writes.
const EVENT_ROWS: usize = 8;

/// `INSERT INTO events` of 1 to [`EVENT_ROWS`] rows, six parameters a row.
static INSERT_EVENTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (1..=EVENT_ROWS)
        .map(|n| {
            let rows = vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ");
            format!(
                "INSERT INTO events (ts_ms, kind, subject, related, circle, payload) VALUES {rows}"
            )
        })
        .collect()
});

/// An event to append: subject id, related id, circle, and the typed event
/// (which names the kind and renders the JSON payload).
pub struct NewEvent<'a> {
    pub subject: &'a str,
    pub related: Option<&'a str>,
    pub circle: Option<&'a str>,
    pub event: Event,
}

impl Tx<'_> {
    /// Ask `a` ends in this transaction, and is as it will be once
    /// committed: handed then to whoever waits on it (nothing later in the
    /// transaction may change its row), with whether this transaction wrote
    /// its reply delivered to an asker waiting in a blocking ask.
    pub(crate) fn ended(&mut self, a: &repowire_core::ask::Ask, settled: bool) {
        debug_assert!(a.state.is_terminal());
        self.ended.push(waits::Ended {
            ask: Arc::new(a.clone()),
            settled,
        });
    }

    /// Append an event row in this transaction. The row is written with the
    /// part's other events when the part's work is done ([`Tx::write_events`]):
    /// one statement for them all, not one each.
    pub fn event(&mut self, e: NewEvent<'_>) -> Result<()> {
        let payload = e.event.payload_json()?;
        self.events.push(EventRecord {
            // Known once written.
            seq: 0,
            ts_ms: self.now,
            kind: e.event.kind().as_str().to_string(),
            subject: e.subject.to_string(),
            related: e.related.map(str::to_string),
            circle: e.circle.map(str::to_string),
            payload,
            event: Some(e.event),
        });
        Ok(())
    }

    /// Write the events appended since `from` (the ones already written
    /// come before it), in as few statements as [`EVENT_ROWS`] allows, and
    /// give each its `seq`. Nothing of the part reads the event log, so
    /// the rows can wait for its end.
    fn write_events(&mut self, from: usize) -> Result<()> {
        for chunk in self.events[from..].chunks_mut(EVENT_ROWS) {
            let mut st = self.tx.prepare_cached(&INSERT_EVENTS[chunk.len() - 1])?;
            for (i, e) in chunk.iter().enumerate() {
                let at = i * 6;
                st.raw_bind_parameter(at + 1, e.ts_ms)?;
                st.raw_bind_parameter(at + 2, &e.kind)?;
                st.raw_bind_parameter(at + 3, &e.subject)?;
                st.raw_bind_parameter(at + 4, &e.related)?;
                st.raw_bind_parameter(at + 5, &e.circle)?;
                st.raw_bind_parameter(at + 6, &e.payload)?;
            }
            st.raw_execute()?;
            // One statement's rows take consecutive keys (`seq` is the
            // rowid, the next one past the largest), the last one this.
            let last = self.tx.last_insert_rowid();
            let n = chunk.len() as i64;
            for (i, e) in chunk.iter_mut().enumerate() {
                e.seq = last - n + 1 + i as i64;
            }
        }
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        self.tx
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // One plan per statement whatever its bound values: otherwise SQLite
    // reads a bound `LIMIT ?` when it plans a statement, and binding it
    // again (every execution) makes it parse and plan the statement anew.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // Room for every statement the store prepares (about 120 call sites;
    // rusqlite keeps 16 by default, so a background tick could push a
    // request's statements out and make them parsed again).
    conn.set_prepared_statement_cache_capacity(256);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // WAL + NORMAL: a commit survives a process crash (kill -9); see docs/durability.md.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The row key an ask or delivery id carries, for statements that find
    // a row by an id held in another row (`asks::at_ask!`).
    conn.create_scalar_function(
        "rw_key",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) => {
                    std::str::from_utf8(t).ok().map(repowire_core::ids::key_of)
                }
                _ => None,
            })
        },
    )?;
    Ok(())
}

impl Store {
    /// Open (creating and migrating) the database at `path`.
    pub fn open(path: &Path, policy: Policy) -> Result<Self> {
        private_db_files(path)?;
        let writer = Connection::open(path)
            .map_err(|e| Error::internal(format!("while opening {}: {e}", path.display())))?;
        // Small pages: a commit appends fewer bytes to the WAL. Measured on
        // notify/ask latency: 1 KiB pages ~8% faster than the 4 KiB default.
        // (Takes effect only when the file is created.)
        writer.pragma_update(None, "page_size", 1024)?;
        let mode: String = writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::internal(format!(
                "could not switch {} to WAL (got {mode})",
                path.display()
            )));
        }
        configure(&writer)?;
        // Checkpoints run in the background (Store::checkpoint); this is only
        // a backstop should that stop (10,000 pages, about 40 MiB of WAL).
        writer.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        let mut writer = writer;
        migrations::migrate(&mut writer)?;
        let open = open::OpenCounts::recount(&writer)?;
        let known = known::Known::default();
        known.watch(&writer)?;
        let aside = Connection::open(path)?;
        configure(&aside)?;
        let (bus, _) = broadcast::channel(4096);
        let armed_horizon = deliveries::armed_horizon(&writer)?;
        let remind_from = asks::remind_start(&writer)?;
        let keys = Keys::read(&writer)?;
        Ok(Self {
            writer: Mutex::new(group::Writer {
                conn: writer,
                group: None,
                open,
                keys,
            }),
            commits: Default::default(),
            grouped: Default::default(),
            aside: Mutex::new(aside),
            bus,
            version: std::sync::atomic::AtomicU64::new(0),
            mesh_gens: Mutex::new(MeshGens::default()),
            policy,
            clock: Clock::system(),
            armed_horizon: AtomicI64::new(armed_horizon),
            waiting: handoff::Waiting::default(),
            ask_waits: waits::AskWaits::default(),
            followers: waits::Followers::default(),
            known,
            tmux_routed: Mutex::new(None),
            remind_from: Mutex::new(asks::RemindWalk {
                from: remind_from,
                ahead: Vec::new(),
            }),
        })
    }

    /// Measure every deadline against `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock transactions read `now` from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Subscribe to committed events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.bus.subscribe()
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction; commit, then publish the
    /// events it appended. An error (or a panic) undoes everything `f` wrote.
    ///
    /// Inside [`deferring`], `f` may run in a savepoint of a transaction
    /// that already holds other deferred writes, and this returns before
    /// that group commits ([`group`]). Outside it, the write commits the
    /// open group with its own part before returning.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let mut done = Vec::new();
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let out = self.write_locked(&mut w, f, &mut done);
        // Published before the connection is let go: whoever takes it
        // next finds every group it closed landed.
        for l in done {
            self.publish(l);
        }
        drop(w);
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The part of [`Store::write`] on the connection: the groups it
    /// closed go to `done`. A panic in `f` comes back as `Err`, to resume
    /// once they are published.
    ///
    /// Generic only in the value `f` returns: the work around `f` is one
    /// function ([`Store::write_part`]) for every kind of write, so that a
    /// request's writes run the same code instead of a copy each (a request
    /// arriving at an idle daemon pays for every code line it touches:
    /// docs/benchmarks.md, "Cold requests").
    fn write_locked<T>(
        &self,
        w: &mut group::Writer,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
        done: &mut Vec<group::Landed>,
    ) -> std::thread::Result<Result<T>> {
        let mut f = Some(f);
        let mut out = None;
        let ran = self.write_part(
            w,
            &mut |t| {
                let f = f.take().expect("a write runs its part once");
                out = Some(f(t)?);
                Ok(())
            },
            done,
        );
        ran.map(|r| r.map(|()| out.expect("a part that succeeded left its value")))
    }

    /// [`Store::write_locked`] with the value kept by the caller.
    fn write_part(
        &self,
        w: &mut group::Writer,
        f: &mut dyn FnMut(&mut Tx<'_>) -> Result<()>,
        done: &mut Vec<group::Landed>,
    ) -> std::thread::Result<Result<()>> {
        done.extend(w.lost());
        let joined = w.group.is_some();
        if joined {
            if let Err(e) = group::exec(&w.conn, "SAVEPOINT part") {
                done.extend(w.close());
                return Ok(Err(e));
            }
        } else {
            if let Err(e) = group::exec(&w.conn, "BEGIN IMMEDIATE") {
                w.abandon();
                return Ok(Err(e));
            }
            w.group = Some(group::Group {
                known_at: self.known.now(),
                ..Default::default()
            });
        }
        let known_at = w.group.as_ref().map_or(0, |g| g.known_at);
        let mut t = Tx {
            tx: &w.conn,
            events: Vec::new(),
            now: self.clock.now_ms(),
            policy: &self.policy,
            armed_horizon: &self.armed_horizon,
            waiting: &self.waiting,
            reserved: handoff::Reserved::default(),
            known: &self.known,
            known_at,
            open: &mut w.open,
            opened: Vec::new(),
            keys: &mut w.keys,
            ended: Vec::new(),
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(&mut t)?;
            // SQLite rolled the whole transaction back under a part that
            // went on (a full disk, an I/O error): its events would commit
            // on their own, naming rows that are gone.
            if t.tx.is_autocommit() {
                return Err(Error::internal(
                    "the transaction was rolled back under this write",
                ));
            }
            t.write_events(0)?;
            Ok(())
        }));
        let Tx {
            events,
            reserved,
            opened,
            ended,
            ..
        } = t;
        let ran = match ran {
            Ok(Ok(out)) if joined => match group::exec(&w.conn, "RELEASE part") {
                Ok(()) => Ok(Ok(out)),
                Err(e) => Ok(Err(e)),
            },
            other => other,
        };
        let mine = match &ran {
            Ok(Ok(_)) => {
                let g = w.group.as_mut().expect("a write's group is open");
                g.members += 1;
                g.events.extend(events);
                g.reserved.push(reserved);
                g.opened.extend(opened);
                g.ended.extend(ended);
                Some(g.landing.0.clone())
            }
            failed => {
                reserved.release();
                // SQLite may have rolled the whole transaction back under
                // this part (statements after that commit on their own):
                // then the file is counted again, below.
                let gone = w.conn.is_autocommit();
                if !gone {
                    w.open.undo(&opened);
                }
                if joined {
                    let cause = match failed {
                        Ok(Err(e)) => e.clone(),
                        _ => Error::internal("a write in the same group panicked"),
                    };
                    done.extend(group::undo_part(w, &cause));
                } else {
                    w.abandon();
                    w.group = None;
                }
                if gone {
                    w.recount_open(&opened);
                }
                None
            }
        };
        // SQLite itself may have rolled the whole transaction back under a
        // part that went on (a full disk, an I/O error).
        done.extend(w.lost());
        // Deferred only while its part waits in the open group (not when
        // that group was just lost: its outcome is known).
        let waits = mine.as_ref().is_some_and(|m| {
            w.group
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(&g.landing.0, m))
        });
        let deferred = waits && mine.as_ref().is_some_and(group::defer);
        if !deferred
            || w.group
                .as_ref()
                .is_some_and(|g| g.members >= group::MAX_GROUP)
        {
            done.extend(w.close());
        }
        Ok(match ran {
            Err(panic) => return Err(panic),
            Ok(Err(e)) => Err(e),
            Ok(Ok(out)) if deferred => Ok(out),
            Ok(Ok(out)) => {
                // Closed above, by this write: its outcome is known.
                let landing = mine.expect("a part that ran is in a group");
                let known = done
                    .iter()
                    .find(|l| Arc::ptr_eq(&l.landing.0, &landing))
                    .map(|l| l.outcome.clone())
                    .unwrap_or_else(|| Err(Error::internal("a write's group was not committed")));
                known.map(|()| out)
            }
        })
    }

    /// Commit the group left open by [deferred](deferring) writes, if any.
    pub fn commit_open(&self) {
        drop(self.settled());
    }

    /// Inside [`deferring`]: commit the open group now, and tell whether
    /// every write deferred so far in this `deferring` call (for a request
    /// handler: in this poll) took effect, before acting outside the
    /// database on what they wrote.
    pub fn land_deferred(&self) -> Result<()> {
        self.commit_open();
        group::deferred_outcome()
    }

    /// After a group's commit (the connection let go): publish its events
    /// and answer the writes waiting for it.
    fn publish(&self, l: group::Landed) {
        use std::sync::atomic::Ordering;
        if l.outcome.is_ok() {
            self.version.fetch_add(1, Ordering::Release);
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.grouped.fetch_add(l.members as u64, Ordering::Relaxed);
            self.count_mesh_changes(&l.events);
            // Before the events wake their waiters: a waiter woken by an
            // ask's end finds the ask as it ended.
            for e in l.ended {
                self.ask_waits.ended(e);
            }
            for e in l.events {
                self.wake_waiters(&e);
                let _ = self.bus.send(Arc::new(e));
            }
        }
        l.landing.0.set(l.outcome);
    }

    /// Commits so far, and the writes they held.
    pub fn commits(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.commits.load(Ordering::Relaxed),
            self.grouped.load(Ordering::Relaxed),
        )
    }

    /// The writer connection with no group left open on it (one open is
    /// committed first: nothing reads a part not yet committed).
    fn settled(&self) -> std::sync::MutexGuard<'_, group::Writer> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for l in w.lost().into_iter().chain(w.close()) {
            self.publish(l);
        }
        w
    }

    /// Changes with every committed write.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Count what committed `events` changed of each circle's mesh.
    fn count_mesh_changes(&self, events: &[EventRecord]) {
        let mut gens = None;
        for e in events {
            let Ok(kind) = repowire_core::event::EventKind::parse(&e.kind) else {
                continue;
            };
            let parts = kind.mesh_parts();
            if !parts.peers && !parts.jobs {
                continue;
            }
            let g: &mut MeshGens = gens
                .get_or_insert_with(|| self.mesh_gens.lock().unwrap_or_else(|p| p.into_inner()));
            let slot = match &e.circle {
                Some(c) => g.circles.entry(c.clone()).or_default(),
                None => &mut g.all,
            };
            slot.peers += parts.peers as u64;
            slot.jobs += parts.jobs as u64;
        }
    }

    /// What has changed of `circle`'s mesh so far: compare two readings to
    /// know whether a snapshot taken at the first still holds.
    pub fn mesh_generation(&self, circle: &str) -> MeshGen {
        let g = self.mesh_gens.lock().unwrap_or_else(|p| p.into_inner());
        let c = g.circles.get(circle).copied().unwrap_or_default();
        MeshGen {
            peers: g.all.peers + c.peers,
            jobs: g.all.jobs + c.jobs,
        }
    }

    /// Copy committed WAL frames into the database file without blocking
    /// writers (`PASSIVE`), or fully and then truncate the WAL (`truncate`,
    /// at shutdown). Returns the number of WAL frames left uncopied.
    pub fn checkpoint(&self, truncate: bool) -> Result<i64> {
        if truncate {
            self.commit_open();
        }
        let conn = self.aside.lock().unwrap_or_else(|p| p.into_inner());
        let mode = if truncate { "TRUNCATE" } else { "PASSIVE" };
        let (busy, log, done): (i64, i64, i64) =
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        let _ = busy;
        Ok((log - done).max(0))
    }

    /// Wait (without blocking the thread) until the group open now, if
    /// any, has landed: an async reader calls this first, so that its read
    /// finds nothing to commit and leaves the open group to gather the
    /// writes of the requests ready now (a read commits an open group
    /// itself: nothing reads a part not yet committed). The group's commit
    /// is queued by whoever deferred a write into it, once the poll that
    /// wrote returns (`daemon::commit::deferred`): also when the caller
    /// is that handler itself, awaiting here in a later step. Waits for one
    /// group only (per call), so a steady stream of writes cannot keep a
    /// reader waiting. Never blocks on the writer: while another thread
    /// holds it (a background write, which commits any open group with its
    /// own part, or a read, which commits it first), there is nothing to
    /// wait for.
    pub async fn open_group_landed(&self) {
        let writer = match self.writer.try_lock() {
            Ok(w) => Some(w),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let open = writer.and_then(|w| w.group.as_ref().map(|g| g.landing.0.clone()));
        if let Some(landing) = open {
            // Its outcome is the writers' to report; the read comes after.
            let _ = landing.landed().await;
        }
    }

    /// Run a read-only query.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.settled().conn)
    }

    /// Run a long read-only query on the connection aside, so that it
    /// holds no request or write up. It sees what is committed, so every
    /// write already answered: a group still open holds only writes whose
    /// callers are still waiting for it.
    pub(crate) fn read_aside<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.aside.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Make the database file its owner's only (0600) before SQLite opens it:
/// SQLite gives the `-wal` and `-shm` files it creates the main file's mode,
/// so creating the main file 0600 first keeps all three private. Existing
/// files (an older home) are tightened.
fn private_db_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    /// The database and its companions are their owner's only.
    const FILE_MODE: u32 = 0o600;
    let io = |e: std::io::Error| Error::internal(format!("while securing {}: {e}", path.display()));
    std::fs::OpenOptions::new()
        .mode(FILE_MODE)
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.permissions().mode() & 0o777 != FILE_MODE {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(FILE_MODE)).map_err(io)?;
        }
    }
    Ok(())
}

/// `states` as `N` values to bind to `(state = ? OR …)`, padded with the
/// empty text (no row's state). `IN (SELECT value FROM json_each(?))`, and
/// `IN` with more than two values, build and free a temporary table on
/// every execution (a fifth of a compare-and-swap).
fn states_in<const N: usize>(states: &[&'static str]) -> Result<[&'static str; N]> {
    if states.len() > N {
        return Err(Error::internal(format!(
            "{} states where at most {N} are bound",
            states.len()
        )));
    }
    let mut out = [""; N];
    out[..states.len()].copy_from_slice(states);
    Ok(out)
}

/// Parse a stored enum column.
fn parse_col<T>(s: String, parse: fn(&str) -> Result<T>) -> rusqlite::Result<T> {
    parse(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Assert that each statement is planned through its index, with no sort
/// (a temp B-tree): the plan tests of each module. Parameters are bound to 0.
#[cfg(test)]
pub(crate) fn assert_planned_through(cases: &[(&str, &str)]) {
    let (_dir, s) = crate::testing::open();
    for (sql, index) in cases {
        let plan = plan_of(&s, sql);
        assert!(plan.contains(index), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

/// Column `col` of `explain` (`EXPLAIN` or `EXPLAIN QUERY PLAN`) run on
/// `sql` on `s`, row by row, with every parameter bound to 0.
#[cfg(test)]
fn explained(s: &Store, explain: &str, sql: &str, col: usize) -> Vec<String> {
    s.read(|c| {
        let mut st = c.prepare(&format!("{explain} {sql}"))?;
        let zeros = vec![0; st.parameter_count()];
        let rows = st
            .query_map(rusqlite::params_from_iter(zeros), |r| {
                r.get::<_, String>(col)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    })
    .unwrap()
}

/// How SQLite plans `sql` on `s` (its steps joined by "; ").
#[cfg(test)]
pub(crate) fn plan_of(s: &Store, sql: &str) -> String {
    explained(s, "EXPLAIN QUERY PLAN", sql, 3).join("; ")
}

/// Fail if SQLite's program for `sql` on `s` builds a temporary table
/// (`OpenEphemeral`: an `IN (…)` list, a `RETURNING`) on every execution.
#[cfg(test)]
pub(crate) fn assert_no_temp_table(s: &Store, sql: &str) {
    let ops = explained(s, "EXPLAIN", sql, 1);
    assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: {ops:?}");
}

/// What the store's own tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::Store;
    use repowire_core::delivery::NewNotify;
    use repowire_core::ids::{DeliveryId, PeerId};
    use repowire_core::peer::Registration;

    /// A store in a fresh directory (dropped with the returned guard).
    pub fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db"), super::Policy::default()).unwrap();
        (dir, s)
    }

    /// The same, on `clock`.
    pub fn open_on(clock: &super::Clock) -> (tempfile::TempDir, Store) {
        let (dir, s) = open();
        (dir, s.with_clock(clock.clone()))
    }

    /// Register `name` in the default circle: its id and its token.
    pub fn register(s: &Store, name: &str) -> (PeerId, String) {
        let req = Registration {
            name: name.into(),
            ..Default::default()
        };
        let (p, token, _) = s.register(req, None).unwrap();
        (p.id, token.unwrap())
    }

    /// A note from the peer `from` to the peer named `to`.
    pub fn note(s: &Store, from: &PeerId, to: &str, text: &str) -> DeliveryId {
        let n = NewNotify {
            to: to.into(),
            text: text.into(),
            ..Default::default()
        };
        s.notify(&s.peer_by_id(from).unwrap().unwrap(), &n, false)
            .unwrap()
            .delivery_id
    }
}

#[cfg(test)]
mod tests {
    use super::testing::note;
    use super::*;
    use repowire_core::ask::AskAction;
    use repowire_core::ask::NewAsk;
    use repowire_core::delivery::{DeliveryRoute, NewBroadcast};

    fn reg(s: &Store, name: &str) -> repowire_core::ids::PeerId {
        super::testing::register(s, name).0
    }

    /// The bus carries each committed event typed, with the payload text
    /// the log holds (byte for byte); a row read back has the same text
    /// and no typed event.
    #[test]
    fn the_bus_carries_the_typed_event_and_the_stored_payload() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (reg(&s, "a"), reg(&s, "b"));
        let mut bus = s.subscribe();
        let id = note(&s, &a, "b", "hello");
        let e = bus.try_recv().expect("the note's event was published");
        match &e.event {
            Some(Event::DeliveryQueued { to_peer_id, .. }) => assert_eq!(to_peer_id, &b),
            other => panic!("expected delivery_queued, got {other:?}"),
        }
        assert_eq!(e.kind, "delivery_queued");
        assert_eq!(e.subject, id.as_str());
        let typed = e.event.as_ref().unwrap();
        assert_eq!(e.payload, typed.payload_json().unwrap());
        assert_eq!(e.payload_value(), typed.payload().unwrap());
        assert!(e.payload_value().is_object(), "{}", e.payload);
        let stored: String = s
            .read(|c| {
                Ok(
                    c.query_row("SELECT payload FROM events WHERE seq = ?1", [e.seq], |r| {
                        r.get(0)
                    })?,
                )
            })
            .unwrap();
        assert_eq!(stored, e.payload);
        let back = s.events_since(e.seq - 1, 1, None).unwrap();
        assert_eq!(back[0].payload, e.payload);
        assert_eq!(back[0].event, None);
    }

    /// A write's events are written at the end of its part, several rows a
    /// statement: each published record names its own row (seq, kind,
    /// subject, payload), in the order appended, past a statement's worth
    /// of rows too; the events of an `attempt` that failed are in neither
    /// the log nor the bus; and the next write's rows come after.
    #[test]
    fn a_parts_events_are_written_together_each_under_its_own_seq() {
        let (_dir, s) = crate::testing::open();
        let a = reg(&s, "a");
        let mut bus = s.subscribe();
        let dropped = |t: &mut Tx<'_>, i: usize| {
            t.event(NewEvent {
                subject: &format!("dlv-{i}"),
                related: i.is_multiple_of(2).then_some("ask-x"),
                circle: Some("default"),
                event: Event::DeliveryDropped {
                    why: format!("number {i}"),
                },
            })
        };
        let n = EVENT_ROWS * 2 + 3;
        s.write(|t| {
            for i in 0..n {
                dropped(t, i)?;
                if i == 4 {
                    let failed: Result<()> = t.attempt(|t| {
                        dropped(t, 1000)?;
                        Err(Error::internal("undo me"))
                    });
                    assert!(failed.is_err());
                }
            }
            Ok(())
        })
        .unwrap();
        note(&s, &a, "a", "after");
        let mut got = Vec::new();
        while let Ok(e) = bus.try_recv() {
            got.push(e);
        }
        assert_eq!(
            got.len(),
            n + 1,
            "every event once, none of the failed attempt"
        );
        for (i, e) in got[..n].iter().enumerate() {
            assert_eq!(e.subject, format!("dlv-{i}"));
            let row: (String, String, Option<String>, String) = s
                .read(|c| {
                    Ok(c.query_row(
                        "SELECT kind, subject, related, payload FROM events WHERE seq = ?1",
                        [e.seq],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )?)
                })
                .unwrap();
            assert_eq!(
                row,
                (
                    e.kind.clone(),
                    e.subject.clone(),
                    e.related.clone(),
                    e.payload.clone()
                )
            );
        }
        let seqs: Vec<i64> = got.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let rows: i64 = s
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM events WHERE subject LIKE 'dlv-%'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(
            rows,
            n as i64 + 1,
            "n drops and the note; no row of the failed attempt"
        );
    }

    /// A trace reads the whole log on the connection aside: it runs while
    /// the writer is held (by a write, or by requests queued for it), so
    /// its scan holds none of them up.
    #[test]
    fn a_trace_does_not_wait_for_the_writer() {
        let (_dir, s) = crate::testing::open();
        let (a, _b) = (reg(&s, "a"), reg(&s, "b"));
        let id = note(&s, &a, "b", "hello");
        let held = s.writer.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| tx.send(s.trace(id.as_str()).map(|e| e.len())).unwrap());
            let got = rx.recv_timeout(std::time::Duration::from_secs(20));
            drop(held);
            assert_eq!(got.expect("the trace waited for the writer").unwrap(), 1);
        });
    }

    /// A write that fails, or panics, leaves nothing behind and the next
    /// write works (its transaction was rolled back, not left open).
    #[test]
    fn a_failed_or_panicking_write_is_rolled_back() {
        let (_dir, s) = crate::testing::open();
        let (a, _b) = (reg(&s, "a"), reg(&s, "b"));
        let count = |s: &Store| -> i64 {
            s.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))?))
                .unwrap()
        };
        let insert = |t: &mut Tx<'_>| {
            t.conn().execute(
                "INSERT INTO deliveries (id, to_peer, kind, text, state, created_ms)
                 VALUES ('dlv-x', 'peer-x', 'notify', 'x', 'pending', 0)",
                [],
            )
        };
        let r: Result<()> = s.write(|t| {
            insert(t)?;
            Err(Error::internal("and then it failed"))
        });
        assert!(r.is_err());
        assert_eq!(count(&s), 0);
        let s = std::panic::AssertUnwindSafe(s);
        let panicked = std::panic::catch_unwind(|| {
            let _: Result<()> = s.write(|t| {
                insert(t)?;
                panic!("mid-write");
            });
        });
        assert!(panicked.is_err());
        assert_eq!(count(&s), 0);
        note(&s, &a, "b", "after");
        assert_eq!(count(&s), 1);
    }

    /// The inbox counters (kept in memory, `open.rs`) always equal a
    /// recount: after every kind of change, after a write that failed, and
    /// after the store is opened again (counted from the file: pushed and
    /// unpushed deliveries alike).
    #[test]
    fn inbox_counts_match_a_recount() {
        let (dir, s) = crate::testing::open();
        let (a, b, c) = (reg(&s, "a"), reg(&s, "b"), reg(&s, "c"));
        for _ in 0..5 {
            note(&s, &a, "b", "x");
            note(&s, &b, "c", "x");
        }
        let all = NewBroadcast {
            text: "all".into(),
            ..Default::default()
        };
        s.broadcast(&c, &all, false).unwrap();
        let ask = |to: &str| NewAsk {
            to: to.into(),
            text: "q".into(),
            ..Default::default()
        };
        let q1 = s.ask(&a, &ask("b"), false).unwrap().ask.correlation_id;
        let q2 = s.ask(&a, &ask("c"), false).unwrap().ask.correlation_id;
        let leased = s.lease(&b, 3, 30_000, DeliveryRoute::Pull).unwrap();
        let ids: Vec<_> = leased.iter().map(|d| d.delivery_id.clone()).collect();
        s.confirm(&s.peer_by_id(&b).unwrap().unwrap(), &ids)
            .unwrap();
        let as_peer =
            |p| repowire_core::access::Caller::Peer(s.peer_by_id(p).unwrap().unwrap().into());
        s.act_on_ask(&as_peer(&b), &q1, AskAction::Answer, Some("done"))
            .unwrap();
        s.act_on_ask(&as_peer(&a), &q2, AskAction::Cancel, None)
            .unwrap();
        s.unregister(&c).unwrap();
        let pushed = s.lease(&b, 1, 30_000, DeliveryRoute::Pull).unwrap();
        assert_eq!(s.pushed(&b, &[pushed[0].delivery_id.clone()]).unwrap(), 1);
        let failed: Result<()> = s.write(|t| {
            let (from, to) = (peers::must(t, &a)?, peers::must(t, &b)?);
            t.notify_as(&from, &to, "undone")?;
            Err(Error::internal("undone"))
        });
        assert!(failed.is_err());
        type Counts = Vec<(String, i64)>;
        let counts = |s: &Store| -> (Counts, Counts) {
            let counted = s
                .read(|conn| {
                    Ok(conn
                        .prepare(
                            "SELECT to_peer, COUNT(*) FROM deliveries
                             WHERE state IN ('pending','leased') GROUP BY to_peer ORDER BY to_peer",
                        )?
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?)
                })
                .unwrap();
            (counted, s.open_counts())
        };
        let (counted, kept) = counts(&s);
        assert_eq!(counted, kept);
        assert!(!counted.is_empty());
        assert!(
            counted.iter().all(|(p, _)| p != &c),
            "a removed peer has nothing pending"
        );
        drop(s);
        let s = Store::open(&dir.path().join("t.db"), Policy::default()).unwrap();
        assert_eq!(counts(&s), (counted.clone(), counted));
    }

    /// A lease that takes something is a sign of life written at most
    /// once a second (an eighth of `stale_after`), and at once for a
    /// ghost: polling all the time does not write the peer's row each time.
    #[test]
    fn a_poll_is_a_sign_of_life_written_at_most_once_a_second() {
        let clock = Clock::fixed(1_700_000_000_000);
        let (_dir, s) = super::testing::open_on(&clock);
        let (a, b) = (reg(&s, "a"), reg(&s, "b"));
        let t0 = clock.now_ms();
        let seen = |s: &Store| s.peer_by_id(&b).unwrap().unwrap().last_seen_ms;
        // A poll that finds a note (an idle one is `touch`, every quarter
        // of stale_after).
        let poll = |s: &Store| {
            note(s, &a, "b", "x");
            assert_eq!(
                s.lease(&b, 10, 30_000, DeliveryRoute::Pull).unwrap().len(),
                1
            );
        };
        clock.advance(999);
        poll(&s);
        assert_eq!(seen(&s), t0, "within the second: not written");
        clock.advance(1);
        poll(&s);
        assert_eq!(seen(&s), t0 + 1_000);
        s.write(|t| {
            t.conn().execute(
                "UPDATE peers SET ghost_since_ms = ?2 WHERE id = ?1",
                rusqlite::params![b, t.now],
            )?;
            Ok(())
        })
        .unwrap();
        poll(&s);
        let ghost: Option<i64> = s
            .read(|c| {
                Ok(c.query_row(
                    "SELECT ghost_since_ms FROM peers WHERE id = ?1",
                    [&b],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(ghost, None, "a ghost that polls is alive at once");
    }

    /// A party reads its ask even after it was removed (its wait reads the
    /// ask its removal failed); a stranger is refused.
    #[test]
    fn a_removed_party_still_reads_its_ask() {
        let (_dir, s) = crate::testing::open();
        let (a, _b, c) = (reg(&s, "a"), reg(&s, "b"), reg(&s, "c"));
        let ask = NewAsk {
            to: "b".into(),
            text: "q".into(),
            ..Default::default()
        };
        let q = s.ask(&a, &ask, false).unwrap().ask.correlation_id;
        assert_eq!(
            s.get_ask(&q, Some(&c)).unwrap_err().code,
            repowire_core::ErrorCode::Forbidden
        );
        s.unregister(&a).unwrap();
        let got = s.get_ask(&q, Some(&a)).unwrap();
        assert!(got.state.is_terminal(), "{:?}", got.state);
    }

    /// Leases and ask timeouts are measured against the store's clock: a
    /// test moves it past them instead of waiting.
    #[test]
    fn deadlines_follow_the_store_clock() {
        let clock = Clock::fixed(1_700_000_000_000);
        let (_dir, s) = super::testing::open_on(&clock);
        let (a, b) = (reg(&s, "a"), reg(&s, "b"));
        let ask = NewAsk {
            to: "b".into(),
            text: "q".into(),
            timeout_ms: Some(60_000),
            ..Default::default()
        };
        let q = s.ask(&a, &ask, false).unwrap().ask;
        assert_eq!(q.expires_at_ms, clock.now_ms() + 60_000);
        assert_eq!(
            s.lease(&b, 10, 30_000, DeliveryRoute::Pull).unwrap().len(),
            1
        );
        assert!(
            s.lease(&b, 10, 30_000, DeliveryRoute::Pull)
                .unwrap()
                .is_empty(),
            "held"
        );
        clock.advance(30_001);
        assert_eq!(
            s.lease(&b, 10, 30_000, DeliveryRoute::Pull).unwrap().len(),
            1,
            "lease ran out"
        );
        assert_eq!(s.expire_due().unwrap(), 0, "not yet");
        clock.advance(30_000);
        assert_eq!(s.expire_due().unwrap(), 1);
        let e = s.events_since(0, 100, None).unwrap();
        assert_eq!(
            e.last().map(|e| (e.kind.as_str(), e.ts_ms)),
            Some(("ask_expired", clock.now_ms()))
        );
    }

    #[test]
    fn event_retention_by_age_and_count() {
        let (_dir, s) = crate::testing::open();
        for i in 0..10 {
            reg(&s, &format!("p{i}"));
        }
        // Age the first six events by a day.
        s.write(|t| {
            t.conn().execute(
                "UPDATE events SET ts_ms = ts_ms - 86400000 WHERE seq <= 6",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        assert_eq!(s.prune_events(3_600_000, 1_000).unwrap(), 6);
        let left: Vec<i64> = s
            .events_since(0, 100, None)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(left, [7, 8, 9, 10]);
        assert_eq!(
            s.prune_events(3_600_000, 1_000).unwrap(),
            0,
            "nothing more is old"
        );
        assert_eq!(s.prune_events(3_600_000, 2).unwrap(), 2);
        let left: Vec<i64> = s
            .events_since(0, 100, None)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(left, [9, 10]);
    }

    #[test]
    fn finished_rows_are_pruned_open_ones_kept() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (reg(&s, "a"), reg(&s, "b"));
        let ask = |text: &str| NewAsk {
            to: "b".into(),
            text: text.into(),
            ..Default::default()
        };
        let done = s.ask(&a, &ask("done"), false).unwrap().ask.correlation_id;
        let open = s.ask(&a, &ask("open"), false).unwrap().ask.correlation_id;
        let got = s.lease(&b, 10, 30_000, DeliveryRoute::Pull).unwrap();
        s.confirm(
            &s.peer_by_id(&b).unwrap().unwrap(),
            &[got[0].delivery_id.clone()],
        )
        .unwrap();
        let caller = repowire_core::access::Caller::Peer(s.peer_by_id(&b).unwrap().unwrap().into());
        s.act_on_ask(&caller, &done, AskAction::Answer, Some("yes"))
            .unwrap();
        assert_eq!(
            s.prune_finished(3_600_000).unwrap(),
            0,
            "nothing is old yet"
        );
        // Everything ages a day; only finished rows go.
        s.write(|t| {
            t.conn().execute_batch(
                "UPDATE asks SET created_ms = created_ms - 86400000,
                   closed_ms = closed_ms - 86400000;
                 UPDATE deliveries SET created_ms = created_ms - 86400000,
                   delivered_ms = delivered_ms - 86400000;",
            )?;
            Ok(())
        })
        .unwrap();
        assert!(s.prune_finished(3_600_000).unwrap() >= 2);
        assert!(s.get_ask(&done, None).is_err(), "the closed ask is gone");
        assert_eq!(s.get_ask(&open, None).unwrap().text, "open");
        let left: Vec<String> = s
            .peek(&b, 10)
            .unwrap()
            .into_iter()
            .map(|d| d.text)
            .collect();
        assert_eq!(left, ["open"], "undelivered deliveries stay");
        let replies = s.peek(&a, 10).unwrap();
        assert_eq!(replies.len(), 1, "the pending reply stays");
    }

    /// More finished rows than one batch: all go in one pass, a batch per
    /// transaction, and the rows created since the cut stay.
    #[test]
    fn pruning_goes_batch_by_batch_through_every_old_row() {
        let (_dir, s) = crate::testing::open();
        let (a, b) = (reg(&s, "a"), reg(&s, "b"));
        for i in 0..1_234 {
            note(&s, &a, "b", &format!("old {i}"));
        }
        loop {
            let got = s.lease(&b, 1000, 30_000, DeliveryRoute::Pull).unwrap();
            if got.is_empty() {
                break;
            }
            let ids: Vec<_> = got.into_iter().map(|d| d.delivery_id).collect();
            s.confirm(&s.peer_by_id(&b).unwrap().unwrap(), &ids)
                .unwrap();
        }
        s.write(|t| {
            t.conn().execute(
                "UPDATE deliveries SET created_ms = created_ms - 86400000,
                   delivered_ms = delivered_ms - 86400000",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        note(&s, &a, "b", "new");
        let newest = s.lease(&b, 10, 30_000, DeliveryRoute::Pull).unwrap();
        s.confirm(
            &s.peer_by_id(&b).unwrap().unwrap(),
            &[newest[0].delivery_id.clone()],
        )
        .unwrap();
        assert_eq!(s.prune_finished(3_600_000).unwrap(), 1_234);
        let left: i64 = s
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(left, 1, "the one delivered since the cut stays");
    }
}
