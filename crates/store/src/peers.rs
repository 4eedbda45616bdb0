//! Peers: registration, resume, heartbeat, unregister/prune, ghosts and the
//! orchestrator role.

use super::deliveries::{NewDelivery, enqueue};
use super::{NewEvent, Store, Tx, parse_col};
use repowire_core::access::{Action, Caller, Target, authorize};
use repowire_core::delivery::DeliveryKind;
use repowire_core::delivery::DeliveryRoute;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::Event;
use repowire_core::ids::{PeerId, new_token, token_hash};
use repowire_core::peer::{
    Claim, Claimed, DEFAULT_CIRCLE, Holder, Peer, PeerUpdate, Registration, Role, Status,
    decide_claim, split_address, validate_name, validate_route,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::sync::Arc;

const MAX_TAGS: usize = repowire_core::limits::TAGS;

macro_rules! cols {
    () => {
        "id, name, circle, role, backend, project_path, tags, description, status, \
                    route, created_ms, last_seen_ms"
    };
}

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<Peer> {
    let tags: String = r.get(6)?;
    Ok(Peer {
        id: r.get(0)?,
        name: r.get(1)?,
        circle: r.get(2)?,
        role: parse_col(r.get(3)?, Role::parse)?,
        backend: r.get(4)?,
        project_path: r.get(5)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        description: r.get(7)?,
        status: parse_col(r.get(8)?, Status::parse)?,
        route: r.get(9)?,
        created_ms: r.get(10)?,
        last_seen_ms: r.get(11)?,
    })
}

/// Where peers are read: a connection as it is, or a write's transaction,
/// which first asks the peers the store remembers ([`known`](super::known)).
pub(super) trait Lookup {
    /// The connection, for any other statement.
    fn conn(&self) -> &Connection;

    /// A peer `hit` finds among those remembered, else `read` from the
    /// database (and remembered, when it may be).
    fn peer(
        &self,
        hit: impl FnOnce(&super::known::Known, u64) -> Option<Arc<Peer>>,
        read: impl FnOnce(&Connection) -> Result<Option<Peer>>,
    ) -> Result<Option<Arc<Peer>>>;
}

impl Lookup for Connection {
    fn conn(&self) -> &Connection {
        self
    }

    fn peer(
        &self,
        _: impl FnOnce(&super::known::Known, u64) -> Option<Arc<Peer>>,
        read: impl FnOnce(&Connection) -> Result<Option<Peer>>,
    ) -> Result<Option<Arc<Peer>>> {
        Ok(read(self)?.map(Arc::new))
    }
}

impl Lookup for Tx<'_> {
    fn conn(&self) -> &Connection {
        Tx::conn(self)
    }

    fn peer(
        &self,
        hit: impl FnOnce(&super::known::Known, u64) -> Option<Arc<Peer>>,
        read: impl FnOnce(&Connection) -> Result<Option<Peer>>,
    ) -> Result<Option<Arc<Peer>>> {
        let at = self.known.now();
        if let Some(p) = hit(self.known, at) {
            return Ok(Some(p));
        }
        let found = read(self.conn())?.map(Arc::new);
        // Committed: nothing in this transaction changed a peer.
        if let Some(p) = &found
            && at == self.known_at
        {
            self.known.keep(p, at);
        }
        Ok(found)
    }
}

pub(super) fn by_id(c: &impl Lookup, id: &PeerId) -> Result<Option<Peer>> {
    Ok(shared_by_id(c, id)?.map(Arc::unwrap_or_clone))
}

/// [`by_id`], shared with the peers remembered (no copy of the row).
pub(super) fn shared_by_id(c: &impl Lookup, id: &PeerId) -> Result<Option<Arc<Peer>>> {
    c.peer(
        |k, at| k.by_id(id, at),
        |c| {
            Ok(
                c.prepare_cached(concat!("SELECT ", cols!(), " FROM peers WHERE id = ?1"))?
                    .query_row([id], from_row)
                    .optional()?,
            )
        },
    )
}

/// Load a peer that must exist (inside a write, after auth looked it up).
pub(super) fn must(c: &impl Lookup, id: &PeerId) -> Result<Peer> {
    Ok(Arc::unwrap_or_clone(must_shared(c, id)?))
}

/// [`must`], shared with the peers remembered (no copy of the row).
pub(super) fn must_shared(c: &impl Lookup, id: &PeerId) -> Result<Arc<Peer>> {
    shared_by_id(c, id)?
        .ok_or_else(|| Error::new(ErrorCode::UnknownPeer, format!("peer {id} is gone")))
}

/// The orchestrator of `circle`, if it has one.
pub(super) fn orchestrator_of(c: &Connection, circle: &str) -> Result<Option<Peer>> {
    Ok(c.prepare_cached(concat!(
        "SELECT ",
        cols!(),
        " FROM peers WHERE circle = ?1 AND role = 'orchestrator'"
    ))?
    .query_row([circle], from_row)
    .optional()?)
}

pub(super) fn by_name(c: &impl Lookup, circle: &str, name: &str) -> Result<Option<Peer>> {
    Ok(shared_by_name(c, circle, name)?.map(Arc::unwrap_or_clone))
}

/// [`by_name`], shared with the peers remembered (no copy of the row).
pub(super) fn shared_by_name(
    c: &impl Lookup,
    circle: &str,
    name: &str,
) -> Result<Option<Arc<Peer>>> {
    c.peer(
        |k, at| k.by_name(circle, name, at),
        |c| {
            Ok(c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM peers WHERE circle = ?1 AND name = ?2"
            ))?
            .query_row([circle, name], from_row)
            .optional()?)
        },
    )
}

/// A name in any circle (two rows tell it is ambiguous).
const BY_BARE_NAME: &str = concat!("SELECT ", cols!(), " FROM peers WHERE name = ?1 LIMIT 2");

/// Resolve `NAME` or `NAME@CIRCLE`; a bare name is looked up in `circle`
/// when given, else across circles (ambiguous if it exists in several).
pub(super) fn resolve(c: &impl Lookup, addr: &str, circle: Option<&str>) -> Result<Peer> {
    let (name, at) = split_address(addr);
    validate_name("peer name", name)?;
    let circle = at.or(circle);
    if let Some(circle) = circle {
        validate_name("circle", circle)?;
        return by_name(c, circle, name)?.ok_or_else(|| {
            Error::new(
                ErrorCode::UnknownPeer,
                format!("no peer named {name:?} in circle {circle:?}"),
            )
        });
    }
    let mut st = c.conn().prepare_cached(BY_BARE_NAME)?;
    let mut rows: Vec<Peer> = st
        .query_map([name], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    match rows.len() {
        0 => Err(Error::new(
            ErrorCode::UnknownPeer,
            format!("no peer named {name:?}"),
        )),
        1 => Ok(rows.remove(0)),
        _ => Err(Error::new(
            ErrorCode::AmbiguousPeer,
            format!("{name:?} exists in several circles: say {name}@CIRCLE"),
        )),
    }
}

fn validate_tags(tags: &[String]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::bad_request(format!(
            "{} tags given; at most {MAX_TAGS}",
            tags.len()
        )));
    }
    for t in tags {
        validate_name("tag", t)?;
    }
    Ok(())
}

fn check_field(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::bad_request(format!(
            "{what} is {} bytes, over the limit of {max} bytes",
            s.len()
        )));
    }
    Ok(())
}

/// Set a peer's role. Becoming orchestrator remembers the role it had, so
/// giving the role up ([`step_down`]) restores it.
fn set_role(t: &mut Tx<'_>, p: &Peer, role: Role, why: &str) -> Result<()> {
    t.conn()
        .prepare_cached(
            "UPDATE peers SET role = ?2,
               prior_role = CASE WHEN ?2 = 'orchestrator' THEN role ELSE NULL END
             WHERE id = ?1",
        )?
        .execute(params![p.id, role.as_str()])?;
    t.event(NewEvent {
        subject: &p.id,
        related: None,
        circle: Some(&p.circle),
        event: Event::PeerRoleChanged {
            name: p.name.clone(),
            from: p.role,
            to: role,
            why: why.to_string(),
        },
    })
}

/// Leave the orchestrator role for the role held before it (default agent).
fn step_down(t: &mut Tx<'_>, p: &Peer, why: &str) -> Result<()> {
    let prior: Option<String> = t
        .conn()
        .prepare_cached("SELECT prior_role FROM peers WHERE id = ?1")?
        .query_row([&p.id], |r| r.get(0))?;
    let back = prior
        .as_deref()
        .and_then(|r| Role::parse(r).ok())
        .filter(|r| *r != Role::Orchestrator)
        .unwrap_or(Role::Agent);
    set_role(t, p, back, why)
}

/// The claim, inside a transaction: decide, demote a previous holder, promote.
fn claim_in(t: &mut Tx<'_>, p: &Peer, force: bool, stale_after: i64) -> Result<Claimed> {
    let holder = t
        .conn()
        .prepare_cached(concat!(
            "SELECT ",
            cols!(),
            " FROM peers WHERE circle = ?1 AND role = 'orchestrator'"
        ))?
        .query_row([&p.circle], from_row)
        .optional()?;
    let h = holder.as_ref().map(|h| Holder {
        peer_id: h.id.clone(),
        name: h.name.clone(),
        last_seen_ms: h.last_seen_ms,
        status: h.status,
    });
    let decision = decide_claim(&p.id, h.as_ref(), force, t.now, stale_after)?;
    let (previous, takeover) = match (&decision, holder) {
        (Claim::Free, _) | (_, None) => (None, None),
        (Claim::TakeOverStale(_) | Claim::TakeOverForced(_), Some(old)) => {
            let how = if matches!(decision, Claim::TakeOverForced(_)) {
                "forced"
            } else {
                "stale"
            };
            step_down(t, &old, &format!("demoted: {} claimed ({how})", p.name))?;
            enqueue(
                t,
                NewDelivery {
                    to: &old,
                    from: None,
                    kind: DeliveryKind::System,
                    ask_id: None,
                    job_id: None,
                    text: &format!(
                        "You are no longer the orchestrator of circle {:?}: {} took the role ({how}).",
                        p.circle, p.name
                    ),
                },
            )?;
            (Some(old.name), Some(how.to_string()))
        }
    };
    if p.role != Role::Orchestrator {
        set_role(t, p, Role::Orchestrator, "claimed")?;
    }
    t.event(NewEvent {
        subject: &p.id,
        related: None,
        circle: Some(&p.circle),
        event: Event::RoleClaimed {
            name: p.name.clone(),
            role: Role::Orchestrator,
            previous: previous.clone(),
            takeover: takeover.clone(),
        },
    })?;
    let holder = must(t, &p.id)?;
    Ok(Claimed {
        circle: p.circle.clone(),
        holder,
        previous,
        takeover,
        at_ms: t.now,
    })
}

/// A sign of life: refresh `last_seen`; a peer that was flagged a ghost gets
/// a `peer_alive` event as the flag clears.
pub(super) fn revive(t: &mut Tx<'_>, peer_id: &PeerId) -> Result<()> {
    let was_ghost: Option<(String, String)> = t
        .conn()
        .prepare_cached(
            "SELECT name, circle FROM peers WHERE id = ?1 AND ghost_since_ms IS NOT NULL",
        )?
        .query_row([peer_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    t.conn()
        .prepare_cached("UPDATE peers SET last_seen_ms = ?2, ghost_since_ms = NULL WHERE id = ?1")?
        .execute(params![peer_id, t.now])?;
    if let Some((name, circle)) = was_ghost {
        t.event(NewEvent {
            subject: peer_id,
            related: None,
            circle: Some(&circle),
            event: Event::PeerAlive { name },
        })?;
    }
    Ok(())
}

/// A consumer's sign of life (a lease, a delivery handed to it): as
/// [`revive`], but written only when the last one is older than an eighth
/// of `--stale-after` (at most a second) or the peer is a ghost. A peer
/// that long-polls all the time would otherwise write its row on every
/// poll (a WAL page, and every remembered peer read again: `known`),
/// for a `last_seen` no reader needs to the millisecond.
pub(super) fn alive(t: &mut Tx<'_>, peer_id: &PeerId) -> Result<()> {
    let every = (t.policy.stale_after_ms / 8).clamp(0, 1_000);
    let due: bool = t
        .conn()
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM peers WHERE id = ?1
               AND (ghost_since_ms IS NOT NULL OR last_seen_ms <= ?2))",
        )?
        .query_row(params![peer_id, t.now - every], |r| r.get(0))?;
    if due { revive(t, peer_id) } else { Ok(()) }
}

/// Remove a peer: its open asks fail, its undelivered messages are dropped.
pub(super) fn remove_in(t: &mut Tx<'_>, p: &Peer, why: &str) -> Result<()> {
    super::asks::end_for_removed_peer(t, p)?;
    super::schedules::settle_armed_for_peer(t, &p.id)?;
    // Its open deliveries, by their two partial indexes (not its history).
    super::deliveries::drop_where(
        t,
        "seq IN (SELECT seq FROM deliveries INDEXED BY deliveries_unpushed
                 WHERE to_peer = ?1 AND state IN ('pending','leased') AND pushed_at_ms IS NULL
                UNION ALL
                SELECT seq FROM deliveries INDEXED BY deliveries_pushed
                 WHERE to_peer = ?1 AND state IN ('pending','leased') AND pushed_at_ms IS NOT NULL)",
        &[&p.id],
        &format!("{} was {why}", p.name),
    )?;
    t.conn()
        .prepare_cached("DELETE FROM peers WHERE id = ?1")?
        .execute([&p.id])?;
    t.event(NewEvent {
        subject: &p.id,
        related: None,
        circle: Some(&p.circle),
        event: Event::PeerUnregistered {
            name: p.name.clone(),
            why: why.to_string(),
        },
    })
}

impl Store {
    /// The peer of `token` if it is remembered ([`known`](super::known)),
    /// without reading the database.
    pub fn remembered_peer(&self, token: &str) -> Option<std::sync::Arc<Peer>> {
        self.known.get(token, self.known.now())
    }

    /// The peer whose token this is (remembered while no peer changes:
    /// [`known`](super::known)).
    pub fn peer_by_token(&self, token: &str) -> Result<Option<std::sync::Arc<Peer>>> {
        let at = self.known.now();
        if let Some(p) = self.known.get(token, at) {
            return Ok(Some(p));
        }
        let h = token_hash(token);
        let found = self
            .read(|c| {
                Ok(c.prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM peers WHERE token_hash = ?1"
                ))?
                .query_row([h], from_row)
                .optional()?)
            })?
            .map(std::sync::Arc::new);
        if let Some(p) = &found {
            self.known.put(token, p, at);
        }
        Ok(found)
    }

    /// The peer `id` (remembered while no peer changes: [`known`](super::known)).
    pub fn peer_by_id(&self, id: &PeerId) -> Result<Option<Peer>> {
        let at = self.known.now();
        if let Some(p) = self.known.by_id(id, at) {
            return Ok(Some(Arc::unwrap_or_clone(p)));
        }
        let found = self.read(|c| shared_by_id(c, id))?;
        if let Some(p) = &found {
            self.known.keep(p, at);
        }
        Ok(found.map(Arc::unwrap_or_clone))
    }

    pub fn resolve_peer(&self, addr: &str, circle: Option<&str>) -> Result<Peer> {
        self.read(|c| resolve(c, addr, circle))
    }

    pub fn list_peers(&self, circle: Option<&str>) -> Result<Vec<Peer>> {
        self.read(|c| {
            let mut st = c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM peers WHERE ?1 IS NULL OR circle = ?1 ORDER BY circle, name"
            ))?;
            Ok(st
                .query_map([circle], from_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Register a new peer (admin), or resume one with its own token.
    pub fn register(
        &self,
        req: Registration,
        token_peer: Option<&Peer>,
    ) -> Result<(Peer, Option<String>, bool)> {
        // Resuming with a peer token defaults to that peer's own circle.
        let circle = req
            .circle
            .clone()
            .or_else(|| token_peer.map(|p| p.circle.clone()))
            .unwrap_or_else(|| DEFAULT_CIRCLE.into());
        validate_name("peer name", &req.name)?;
        validate_name("circle", &circle)?;
        if let Some(r) = &req.route {
            validate_route(r)?;
        }
        if let Some(tags) = &req.tags {
            validate_tags(tags)?;
        }
        let max = self.policy.max_message_bytes;
        check_field("description", req.description.as_deref().unwrap_or(""), max)?;
        check_field(
            "backend",
            req.backend.as_deref().unwrap_or(""),
            repowire_core::limits::LINE_BYTES,
        )?;
        check_field(
            "project_path",
            req.project_path.as_deref().unwrap_or(""),
            repowire_core::limits::PATH_BYTES,
        )?;
        let stale_after = self.policy.stale_after_ms;
        self.write(|t| {
            let existing = by_name(t, &circle, &req.name)?;
            if let Some(tp) = token_peer {
                // A peer token resumes its own peer, and nothing else.
                let own: Vec<&str> = existing.iter().map(|o| o.id.as_str()).collect();
                let who = format!(
                    "the peer {:?} of circle {circle:?}: a peer token can only resume its own peer",
                    req.name
                );
                let target = Target {
                    circle: Some(&circle),
                    parties: &own,
                    who: Some(&who),
                    ..Target::default()
                };
                authorize(&Caller::Peer(tp.clone().into()), Action::ActAsParty, target)?;
            }
            let tags_json = req.tags.as_ref().map(serde_json::to_string).transpose()?;
            match (existing, token_peer) {
                (Some(old), Some(_)) => {
                    t.conn()
                        .prepare_cached(
                            "UPDATE peers SET backend = COALESCE(?2, backend),
                               project_path = COALESCE(?3, project_path), tags = COALESCE(?4, tags),
                               description = COALESCE(?5, description), route = COALESCE(?6, route),
                               status = 'online', last_seen_ms = ?7
                             WHERE id = ?1",
                        )?
                        .execute(params![
                            old.id,
                            req.backend,
                            req.project_path,
                            tags_json,
                            req.description,
                            req.route,
                            t.now
                        ])?;
                    revive(t, &old.id)?;
                    t.event(NewEvent {
                        subject: &old.id,
                        related: None,
                        circle: Some(&old.circle),
                        event: Event::PeerResumed { name: old.name.clone() },
                    })?;
                    let mut row = must(t, &old.id)?;
                    match req.role {
                        Some(Role::Orchestrator) if row.role != Role::Orchestrator => {
                            claim_in(t, &row, false, stale_after)?;
                        }
                        Some(r) if r != row.role => set_role(t, &row, r, "re-registered")?,
                        _ => {}
                    }
                    row = must(t, &old.id)?;
                    Ok((row, None, true))
                }
                // Refused above already; kept so that no peer token ever creates a peer.
                (None, Some(_)) => Err(Error::forbidden("a peer token can only resume its own peer")),
                (Some(_), None) => Err(Error::new(
                    ErrorCode::NameTaken,
                    format!(
                        "a peer named {:?} already exists in circle {circle:?}: resume it with its token, or unregister it first",
                        req.name
                    ),
                )),
                (None, None) => {
                    let id = PeerId::generate(t.now);
                    let token = new_token();
                    let role = req.role.unwrap_or(Role::Agent);
                    let initial_role = if role == Role::Orchestrator { Role::Agent } else { role };
                    t.conn()
                        .prepare_cached(
                            "INSERT INTO peers (id, name, circle, role, backend, project_path, tags,
                               description, status, route, token_hash, created_ms, last_seen_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'online', ?9, ?10, ?11, ?11)",
                        )?
                        .execute(params![
                            id,
                            req.name,
                            circle,
                            initial_role.as_str(),
                            req.backend.as_deref().unwrap_or(""),
                            req.project_path.as_deref().unwrap_or(""),
                            tags_json.as_deref().unwrap_or("[]"),
                            req.description.as_deref().unwrap_or(""),
                            req.route.as_deref().unwrap_or(DeliveryRoute::Pull.as_str()),
                            token_hash(&token),
                            t.now
                        ])?;
                    t.event(NewEvent {
                        subject: &id,
                        related: None,
                        circle: Some(&circle),
                        event: Event::PeerRegistered { name: req.name.clone(), role, backend: req.backend.clone() },
                    })?;
                    if role == Role::Orchestrator {
                        let row = must(t, &id)?;
                        claim_in(t, &row, false, stale_after)?;
                    }
                    Ok((must(t, &id)?, Some(token), false))
                }
            }
        })
    }

    pub fn update_peer(&self, peer_id: &PeerId, req: PeerUpdate) -> Result<Peer> {
        if let Some(tags) = &req.tags {
            validate_tags(tags)?;
        }
        if let Some(d) = &req.description {
            check_field("description", d, self.policy.max_message_bytes)?;
        }
        self.write(|t| {
            let p = must(t, peer_id)?;
            let tags_json = req.tags.as_ref().map(serde_json::to_string).transpose()?;
            t.conn()
                .prepare_cached(
                    "UPDATE peers SET description = COALESCE(?2, description),
                       tags = COALESCE(?3, tags) WHERE id = ?1",
                )?
                .execute(params![peer_id, req.description, tags_json])?;
            t.event(NewEvent {
                subject: peer_id,
                related: None,
                circle: Some(&p.circle),
                event: Event::PeerUpdated {
                    name: p.name.clone(),
                    description: req.description.clone(),
                    tags: req.tags.clone(),
                },
            })?;
            must(t, peer_id)
        })
    }

    /// A sign of life: refresh last_seen, optionally set the status.
    pub fn heartbeat(&self, peer_id: &PeerId, status: Option<Status>) -> Result<Peer> {
        self.write(|t| {
            let p = must(t, peer_id)?;
            let status = status.unwrap_or(if p.status == Status::Offline {
                Status::Online
            } else {
                p.status
            });
            revive(t, peer_id)?;
            t.conn()
                .prepare_cached("UPDATE peers SET status = ?2 WHERE id = ?1")?
                .execute(params![peer_id, status.as_str()])?;
            if status != p.status {
                t.event(NewEvent {
                    subject: peer_id,
                    related: None,
                    circle: Some(&p.circle),
                    event: Event::PeerStatus {
                        name: p.name.clone(),
                        from: p.status,
                        to: status,
                    },
                })?;
            }
            must(t, peer_id)
        })
    }

    /// Refresh `last_seen` if it is older than `min_interval_ms` (a cheap
    /// sign of life from consumers; writes only when needed).
    pub fn touch(&self, peer_id: &PeerId, min_interval_ms: i64) -> Result<()> {
        let now = self.clock.now_ms();
        let seen = self.peer_by_id(peer_id)?.map(|p| p.last_seen_ms);
        if seen.is_some_and(|s| now - s >= min_interval_ms) {
            self.write(|t| revive(t, peer_id))?;
        }
        Ok(())
    }

    pub fn unregister(&self, peer_id: &PeerId) -> Result<Peer> {
        self.write(|t| {
            let p = must(t, peer_id)?;
            remove_in(t, &p, "unregistered")?;
            Ok(p)
        })
    }

    /// Remove every peer not seen for `older_than_ms` (in `circle`, if
    /// given), and with `gone` every offline peer routed to a tmux pane
    /// however recently seen (its pane is gone, or it was killed or ended:
    /// nothing brings it back but a new session).
    pub fn prune(&self, older_than_ms: i64, circle: Option<&str>, gone: bool) -> Result<Vec<Peer>> {
        self.write(|t| {
            let cutoff = t.now - older_than_ms;
            let rows: Vec<Peer> = t
                .conn()
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM peers WHERE (last_seen_ms < ?1",
                    " OR (?3 AND status = 'offline' AND route LIKE 'tmux:%'))",
                    " AND (?2 IS NULL OR circle = ?2)"
                ))?
                .query_map(params![cutoff, circle, gone], from_row)?
                .collect::<rusqlite::Result<_>>()?;
            for p in &rows {
                remove_in(t, p, "pruned")?;
            }
            Ok(rows)
        })
    }

    pub fn claim_orchestrator(&self, peer_id: &PeerId, force: bool) -> Result<Claimed> {
        let stale_after = self.policy.stale_after_ms;
        self.write(|t| {
            let p = must(t, peer_id)?;
            claim_in(t, &p, force, stale_after)
        })
    }

    pub fn release_orchestrator(&self, peer_id: &PeerId) -> Result<Peer> {
        self.write(|t| {
            let p = must(t, peer_id)?;
            if p.role != Role::Orchestrator {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    format!("{} does not hold the orchestrator role", p.name),
                ));
            }
            step_down(t, &p, "released")?;
            t.event(NewEvent {
                subject: &p.id,
                related: None,
                circle: Some(&p.circle),
                event: Event::RoleReleased {
                    name: p.name.clone(),
                    role: Role::Orchestrator,
                },
            })?;
            must(t, peer_id)
        })
    }

    pub fn orchestrator(&self, circle: &str) -> Result<Option<Peer>> {
        self.read(|c| orchestrator_of(c, circle))
    }

    /// Flag peers that went quiet while claiming to be there; one
    /// `peer_ghost` event each, once. Returns how many were flagged.
    pub fn mark_ghosts(&self) -> Result<usize> {
        let stale_after = self.policy.stale_after_ms;
        // Looked for first, outside a write transaction: this runs every
        // tick, and nearly always finds nobody (no BEGIN IMMEDIATE, commit
        // or store version change for nothing).
        let now = self.clock.now_ms();
        let any: bool = self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM peers
                   WHERE ghost_since_ms IS NULL AND status != 'offline' AND last_seen_ms < ?1 - ?2)",
            )?
            .query_row(params![now, stale_after], |r| r.get(0))?)
        })?;
        if !any {
            return Ok(0);
        }
        self.write(|t| {
            let rows: Vec<(String, String, String, i64)> = t
                .conn()
                .prepare_cached(
                    "UPDATE peers SET ghost_since_ms = ?1
                     WHERE ghost_since_ms IS NULL AND status != 'offline' AND last_seen_ms < ?1 - ?2
                     RETURNING id, name, circle, last_seen_ms",
                )?
                .query_map(params![t.now, stale_after], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (id, name, circle, seen) in &rows {
                t.event(NewEvent {
                    subject: id,
                    related: None,
                    circle: Some(circle),
                    event: Event::PeerGhost {
                        name: name.clone(),
                        last_seen_ms: *seen,
                    },
                })?;
            }
            Ok(rows.len())
        })
    }
}

impl Store {
    /// The peer's process is known to be gone (`why`: it was killed, its
    /// pane closed): it goes offline with a `peer_gone` event. `None` when
    /// it was offline (or removed) already. Its jobs then follow the
    /// executor-lost rule ([`Store::repair_jobs`]).
    /// Make the peer's token useless (a new random hash no token has): a
    /// killed session cannot come back with what it held.
    pub fn revoke_token(&self, peer_id: &PeerId) -> Result<()> {
        self.write(|t| {
            t.conn()
                .prepare_cached("UPDATE peers SET token_hash = ?2 WHERE id = ?1")?
                .execute(params![peer_id, token_hash(&new_token())])?;
            Ok(())
        })
    }

    pub fn mark_gone(&self, peer_id: &PeerId, why: &str) -> Result<Option<Peer>> {
        self.write(|t| {
            let Some(p) = by_id(t, peer_id)? else {
                return Ok(None);
            };
            if p.status == Status::Offline {
                return Ok(None);
            }
            t.conn()
                .prepare_cached("UPDATE peers SET status = 'offline' WHERE id = ?1")?
                .execute([peer_id])?;
            t.event(NewEvent {
                subject: peer_id,
                related: None,
                circle: Some(&p.circle),
                event: Event::PeerGone {
                    name: p.name.clone(),
                    why: why.to_string(),
                },
            })?;
            must(t, peer_id).map(Some)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_name_is_looked_up_by_its_index() {
        crate::assert_planned_through(&[(super::BY_BARE_NAME, "peers_by_name")]);
    }
}
