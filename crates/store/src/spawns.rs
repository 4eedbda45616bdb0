//! Spawned agent sessions: the bookkeeping behind `peer spawn` (a tmux
//! window started for a new peer). A spawn registers its peer offline before
//! the window starts (`starting`), records the window once tmux answered
//! (`pending`), and follows the session until it registers with its token
//! (`registered`: a job it was started for is assigned to it then), never
//! does (`failed`), or is killed (`ended`).
//!
//! Starting and stopping windows is the daemon's (`tmux::spawn`), and so is
//! who may; here are the rows, the per-circle cap and the transactions.

use super::deliveries::{NewDelivery, enqueue};
use super::peers::{by_id, by_name, must, remove_in};
use super::{NewEvent, Store, Tx};
use repowire_core::delivery::{DeliveryKind, DeliveryRoute};
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::Event;
use repowire_core::ids::{JobId, PeerId, new_token, token_hash};
use repowire_core::job::JobState;
use repowire_core::peer::{MAX_NAME_LEN, Peer, Role, Status, validate_name};
use repowire_core::tmux::PaneAddr;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// Where a spawn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnState {
    /// Its peer is registered (offline); the window is being started.
    Starting,
    /// The window runs; its session has not registered yet.
    Pending,
    /// Its session registered.
    Registered,
    /// The window could not start, or its session never registered.
    Failed,
    /// It was killed.
    Ended,
}

impl SpawnState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Pending => "pending",
            Self::Registered => "registered",
            Self::Failed => "failed",
            Self::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        [
            Self::Starting,
            Self::Pending,
            Self::Registered,
            Self::Failed,
            Self::Ended,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| Error::internal(format!("stored spawn state {s:?}")))
    }
}

/// A spawn to begin.
#[derive(Debug, Clone)]
pub struct NewSpawn<'a> {
    /// The name asked for: it must be free in the circle.
    pub name: Option<&'a str>,
    /// Without a name: the base of one (the directory's name), made unique
    /// in the circle (`app`, `app-2`, …).
    pub base: &'a str,
    pub circle: &'a str,
    pub backend: &'a str,
    /// The project directory (the peer's `project_path`).
    pub path: &'a str,
    /// The tmux server as asked (a socket name or path).
    pub server: &'a str,
    /// The tmux session the window goes in.
    pub session: &'a str,
    /// Who asked (a peer name, `admin`, a persona).
    pub by: &'a str,
    /// The job the session is started for.
    pub job: Option<&'a JobId>,
    /// Most live spawns the circle may have (this one included).
    pub max_live: usize,
}

/// A spawn as stored, with its peer's status now (`None`: the peer is gone).
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnRow {
    pub id: i64,
    pub peer_id: PeerId,
    pub name: String,
    pub circle: String,
    pub backend: String,
    pub path: String,
    pub server: String,
    pub session: String,
    pub pane: Option<String>,
    pub job: Option<JobId>,
    pub by: String,
    pub state: SpawnState,
    pub created_ms: i64,
    pub peer_status: Option<Status>,
}

const COLS: &str = "s.id, s.peer_id, s.name, s.circle, s.backend, s.path, s.server, s.session, \
                    s.pane, s.job_id, s.by_name, s.state, s.created_ms, p.status";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SpawnRow> {
    let conv = |i: usize, e: Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let state: String = r.get(11)?;
    let status: Option<String> = r.get(13)?;
    Ok(SpawnRow {
        id: r.get(0)?,
        peer_id: r.get(1)?,
        name: r.get(2)?,
        circle: r.get(3)?,
        backend: r.get(4)?,
        path: r.get(5)?,
        server: r.get(6)?,
        session: r.get(7)?,
        pane: r.get(8)?,
        job: r.get(9)?,
        by: r.get(10)?,
        state: SpawnState::parse(&state).map_err(|e| conv(11, e))?,
        created_ms: r.get(12)?,
        peer_status: status
            .map(|s| Status::parse(&s))
            .transpose()
            .map_err(|e| conv(13, e))?,
    })
}

fn get(c: &Connection, id: i64) -> Result<SpawnRow> {
    let sql = format!(
        "SELECT {COLS} FROM spawns s LEFT JOIN peers p ON p.id = s.peer_id WHERE s.id = ?1"
    );
    c.prepare_cached(&sql)?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("no spawn {id}")))
}

fn set_state(t: &Tx<'_>, id: i64, state: SpawnState, why: Option<&str>) -> Result<()> {
    t.conn()
        .prepare_cached(
            "UPDATE spawns SET state = ?2, why = COALESCE(?3, why), updated_ms = ?4 WHERE id = ?1",
        )?
        .execute(params![id, state.as_str(), why, t.now])?;
    Ok(())
}

/// Spawns of `circle` alive now: starting or pending, or registered with
/// their peer not offline.
fn live_in(c: &Connection, circle: &str) -> Result<usize> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM spawns s JOIN peers p ON p.id = s.peer_id
             WHERE s.circle = ?1 AND (s.state IN ('starting', 'pending')
               OR (s.state = 'registered' AND p.status != 'offline'))",
        )?
        .query_row([circle], |r| r.get(0))?;
    Ok(n as usize)
}

/// The first free name of `base`, `base-2`, `base-3`, … in `circle`.
fn unique_name(c: &Connection, circle: &str, base: &str) -> Result<String> {
    for n in 1..10_000 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let keep = MAX_NAME_LEN - suffix.len();
        let stem: String = base.chars().take(keep).collect();
        let name = format!("{stem}{suffix}");
        if by_name(c, circle, &name)?.is_none() {
            return Ok(name);
        }
    }
    Err(Error::new(
        ErrorCode::NameTaken,
        format!("no free name for {base:?} in circle {circle:?}: give one"),
    ))
}

/// A queued job held back for a spawn gets routed again.
fn release_job(t: &Tx<'_>, job: Option<&JobId>) -> Result<()> {
    if let Some(id) = job {
        t.conn()
            .prepare_cached(
                "UPDATE jobs SET not_before_ms = NULL WHERE id = ?1 AND state = 'queued'",
            )?
            .execute([id])?;
    }
    Ok(())
}

fn failed_event(t: &mut Tx<'_>, s: &SpawnRow, why: &str) -> Result<()> {
    t.event(NewEvent {
        subject: &s.peer_id,
        related: s.job.as_ref().map(|j| j.as_str()),
        circle: Some(&s.circle),
        event: Event::PeerSpawnFailed {
            name: s.name.clone(),
            why: why.to_string(),
            job: s.job.as_ref().map(|j| j.to_string()),
        },
    })
}

impl Store {
    /// Begin a spawn: within the circle's cap (`spawn_limit`), register its
    /// peer (role agent, **offline** until its session registers) and the
    /// spawn (`starting`). Returns the peer, its token (for the window's
    /// environment only) and the spawn.
    pub fn begin_spawn(&self, s: &NewSpawn<'_>) -> Result<(Peer, String, SpawnRow)> {
        validate_name("circle", s.circle)?;
        if let Some(n) = s.name {
            validate_name("peer name", n)?;
        }
        self.write(|t| {
            let live = live_in(t.conn(), s.circle)?;
            if live >= s.max_live {
                return Err(Error::new(
                    ErrorCode::SpawnLimit,
                    format!(
                        "circle {:?} has {live} spawned sessions alive, its limit (--max-spawns-per-circle {}): kill one first (repowire peer kill NAME)",
                        s.circle, s.max_live
                    ),
                ));
            }
            let name = match s.name {
                Some(n) if by_name(t, s.circle, n)?.is_some() => {
                    return Err(Error::new(
                        ErrorCode::NameTaken,
                        format!(
                            "a peer named {n:?} already exists in circle {:?}: choose another name, or leave it out to get a free one",
                            s.circle
                        ),
                    ));
                }
                Some(n) => n.to_string(),
                None => unique_name(t.conn(), s.circle, s.base)?,
            };
            let id = PeerId::generate(t.now);
            let token = new_token();
            t.conn()
                .prepare_cached(
                    "INSERT INTO peers (id, name, circle, role, backend, project_path, tags,
                       description, status, route, token_hash, created_ms, last_seen_ms)
                     VALUES (?1, ?2, ?3, 'agent', ?4, ?5, '[]', '', 'offline', ?6, ?7, ?8, ?8)",
                )?
                .execute(params![
                    id,
                    name,
                    s.circle,
                    s.backend,
                    s.path,
                    DeliveryRoute::Pull.as_str(),
                    token_hash(&token),
                    t.now
                ])?;
            t.event(NewEvent {
                subject: &id,
                related: None,
                circle: Some(s.circle),
                event: Event::PeerRegistered {
                    name: name.clone(),
                    role: Role::Agent,
                    backend: Some(s.backend.to_string()),
                },
            })?;
            t.conn()
                .prepare_cached(
                    "INSERT INTO spawns (peer_id, circle, name, backend, path, server, session,
                       job_id, by_name, state, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'starting', ?10, ?10)",
                )?
                .execute(params![
                    id, s.circle, name, s.backend, s.path, s.server, s.session, s.job, s.by,
                    t.now
                ])?;
            let spawn = get(t.conn(), t.conn().last_insert_rowid())?;
            Ok((must(t, &id)?, token, spawn))
        })
    }

    /// The window started: record its pane as the peer's route
    /// (`tmux:<socket>:<pane>`), a `peer_spawned` event, and queue
    /// `message` to the new peer as a note from `by` (when `by` is a peer
    /// of the circle; else from the daemon).
    pub fn spawn_started(&self, id: i64, pane: &PaneAddr, message: Option<&str>) -> Result<Peer> {
        if let Some(m) = message {
            self.policy.check_text("message", m)?;
        }
        self.write(|t| {
            let s = get(t.conn(), id)?;
            if s.state != SpawnState::Starting {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    format!("the spawn of {} is {} already", s.name, s.state.as_str()),
                ));
            }
            t.conn()
                .prepare_cached("UPDATE peers SET route = ?2 WHERE id = ?1")?
                .execute(params![s.peer_id, pane.route()])?;
            t.conn()
                .prepare_cached(
                    "UPDATE spawns SET state = 'pending', server = ?2, pane = ?3, updated_ms = ?4
                     WHERE id = ?1",
                )?
                .execute(params![id, pane.server, pane.pane, t.now])?;
            t.event(NewEvent {
                subject: &s.peer_id,
                related: s.job.as_ref().map(|j| j.as_str()),
                circle: Some(&s.circle),
                event: Event::PeerSpawned {
                    name: s.name.clone(),
                    backend: s.backend.clone(),
                    path: s.path.clone(),
                    by: s.by.clone(),
                    job: s.job.as_ref().map(|j| j.to_string()),
                },
            })?;
            let peer = must(t, &s.peer_id)?;
            if let Some(text) = message {
                let from = by_name(t, &s.circle, &s.by)?.filter(|f| f.id != peer.id);
                enqueue(
                    t,
                    NewDelivery {
                        to: &peer,
                        from: from.as_ref(),
                        kind: DeliveryKind::Notify,
                        ask_id: None,
                        job_id: s.job.as_ref(),
                        text,
                    },
                )?;
            }
            Ok(peer)
        })
    }

    /// The window could not start: the spawn failed (`peer_spawn_failed`)
    /// and its peer, which never ran, is removed again.
    pub fn spawn_aborted(&self, id: i64, why: &str) -> Result<()> {
        self.write(|t| {
            let s = get(t.conn(), id)?;
            set_state(t, id, SpawnState::Failed, Some(why))?;
            failed_event(t, &s, why)?;
            release_job(t, s.job.as_ref())?;
            if let Some(p) = by_id(t, &s.peer_id)? {
                remove_in(t, &p, "never started (its tmux window could not start)")?;
            }
            Ok(())
        })
    }

    /// Spawns still waiting for their session (starting or pending).
    pub fn open_spawns(&self) -> Result<Vec<SpawnRow>> {
        let sql = format!(
            "SELECT {COLS} FROM spawns s LEFT JOIN peers p ON p.id = s.peer_id
             WHERE s.state IN ('starting', 'pending') ORDER BY s.id"
        );
        self.read(|c| {
            Ok(c.prepare_cached(&sql)?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The spawn's session registered (its peer is not offline; the spawn
    /// is pending, or starting and cut short): the spawn is `registered`,
    /// and the job it was started for, if still queued, is assigned to it
    /// as any dispatch is (`job_dispatched`, an ask to the peer), from the
    /// circle's orchestrator, else the job's owner. `None` when the spawn
    /// was not open with a live peer; else whether a job was assigned.
    pub fn spawn_registered(&self, id: i64) -> Result<Option<bool>> {
        self.write(|t| {
            let s = get(t.conn(), id)?;
            let live = s.peer_status.is_some_and(|st| st != Status::Offline);
            let open = matches!(s.state, SpawnState::Starting | SpawnState::Pending);
            if !open || !live {
                return Ok(None);
            }
            set_state(t, id, SpawnState::Registered, None)?;
            let Some(job) = &s.job else {
                return Ok(Some(false));
            };
            let assigned = t.attempt(|t| {
                if t.job(job)?.state != JobState::Queued {
                    return Ok(false);
                }
                let orch = t.orchestrator(&s.circle)?.map(|o| o.id);
                t.dispatch_job(
                    job,
                    &s.name,
                    orch.as_ref(),
                    Some("you were started for this job"),
                )?;
                Ok(true)
            });
            Ok(Some(assigned.unwrap_or(false)))
        })
    }

    /// The spawn's session never registered (`why`): the spawn failed
    /// (`peer_spawn_failed`), and a job held back for it is released to be
    /// routed again. `None` when it was no longer open or its peer came
    /// online meanwhile (it registered after all).
    pub fn spawn_failed(&self, id: i64, why: &str) -> Result<Option<SpawnRow>> {
        self.write(|t| {
            let s = get(t.conn(), id)?;
            let open = matches!(s.state, SpawnState::Starting | SpawnState::Pending);
            if !open || s.peer_status.is_some_and(|st| st != Status::Offline) {
                return Ok(None);
            }
            set_state(t, id, SpawnState::Failed, Some(why))?;
            failed_event(t, &s, why)?;
            release_job(t, s.job.as_ref())?;
            Ok(Some(get(t.conn(), id)?))
        })
    }

    /// The peer was killed: its open or registered spawns end. One that had
    /// not registered yet records `peer_spawn_failed` (`why`) and releases
    /// the job it was started for. Returns those jobs.
    pub fn spawns_ended(&self, peer_id: &PeerId, why: &str) -> Result<Vec<JobId>> {
        self.write(|t| {
            let sql = format!(
                "SELECT {COLS} FROM spawns s LEFT JOIN peers p ON p.id = s.peer_id
                 WHERE s.peer_id = ?1 AND s.state IN ('starting', 'pending', 'registered')"
            );
            let rows: Vec<SpawnRow> = t
                .conn()
                .prepare_cached(&sql)?
                .query_map([peer_id], from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut jobs = Vec::new();
            for s in &rows {
                set_state(t, s.id, SpawnState::Ended, Some(why))?;
                if s.state != SpawnState::Registered {
                    failed_event(t, s, why)?;
                    release_job(t, s.job.as_ref())?;
                    jobs.extend(s.job.clone());
                }
            }
            Ok(jobs)
        })
    }

    /// The spawn that started `peer_id`'s window, if it is still its route.
    pub fn spawn_of(&self, peer_id: &PeerId) -> Result<Option<SpawnRow>> {
        let sql = format!(
            "SELECT {COLS} FROM spawns s LEFT JOIN peers p ON p.id = s.peer_id
             WHERE s.peer_id = ?1 ORDER BY s.id DESC LIMIT 1"
        );
        self.read(|c| {
            Ok(c.prepare_cached(&sql)?
                .query_row([peer_id], from_row)
                .optional()?)
        })
    }
}

#[cfg(test)]
#[path = "spawns_tests.rs"]
mod tests;
