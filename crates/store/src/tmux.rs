//! What the daemon's tmux carrier and pane liveness read and write: the
//! peers routed to a tmux pane, which of them have something to type, a
//! failed typing recorded, and a pane that is there (a sign of life); a
//! pane that is gone is [`Store::mark_gone`].

use super::peers::{from_row, revive};
use super::{NewEvent, Store};
use repowire_core::delivery::{Delivery, DeliveryRoute};
use repowire_core::error::Result;
use repowire_core::event::Event;
use repowire_core::ids::{JobId, PeerId};
use repowire_core::peer::Peer;
use rusqlite::params;

const COLS: &str = "id, name, circle, role, backend, project_path, tags, description, status, \
                    route, created_ms, last_seen_ms";

/// The tmux-routed peers that do not say they are offline.
const LIVE: &str = "WHERE route LIKE 'tmux:%' AND status != 'offline' ORDER BY id";

/// Of those (as `p`), the ones with a delivery to hand out at `?1`: an open
/// one unpushed or pushed (pending, or its lease ran out), or an armed one
/// now visible.
const DUE: &str = "WHERE route LIKE 'tmux:%' AND status != 'offline'
   AND (EXISTS (SELECT 1 FROM deliveries d INDEXED BY deliveries_unpushed
         WHERE d.to_peer = p.id
         AND d.state IN ('pending', 'leased') AND d.pushed_at_ms IS NULL
         AND d.state = 'pending'
         AND (CASE d.state WHEN 'leased' THEN d.lease_until_ms ELSE 0 END) = 0)
    OR EXISTS (SELECT 1 FROM deliveries d INDEXED BY deliveries_unpushed
         WHERE d.to_peer = p.id
         AND d.state IN ('pending', 'leased') AND d.pushed_at_ms IS NULL
         AND d.state = 'leased'
         AND (CASE d.state WHEN 'leased' THEN d.lease_until_ms ELSE 0 END) <= ?1)
    OR EXISTS (SELECT 1 FROM deliveries d INDEXED BY deliveries_pushed
         WHERE d.to_peer = p.id
         AND d.state IN ('pending', 'leased') AND d.pushed_at_ms IS NOT NULL
         AND (d.state = 'pending' OR d.lease_until_ms <= ?1))
    OR EXISTS (SELECT 1 FROM deliveries d INDEXED BY deliveries_armed
         WHERE d.to_peer = p.id
         AND d.state = 'armed' AND d.not_before_ms <= ?1))
 ORDER BY id";

impl Store {
    /// Peers routed to a tmux pane that do not say they are offline.
    pub fn tmux_peers(&self) -> Result<Vec<Peer>> {
        let sql = format!("SELECT {COLS} FROM peers {LIVE}");
        self.read(|c| {
            Ok(c.prepare_cached(&sql)?
                .query_map([], from_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Whether any peer is routed to a tmux pane and does not say it is
    /// offline: what the carrier asks before it looks for deliveries to
    /// type, after every queued delivery. The answer is remembered while
    /// no `peers` row changes (the count [`known`](super::known) keeps),
    /// so a mesh without tmux peers costs no read per delivery; any write
    /// to a peer, even one rolled back, makes the next call read again.
    pub fn tmux_routed(&self) -> Result<bool> {
        let at = self.known.now();
        let lock = || self.tmux_routed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, any)) = *lock()
            && seen == at
        {
            return Ok(any);
        }
        // Read after `at` was taken: a change since makes the next call
        // find the count moved and read again.
        let any = self.read(|c| {
            Ok(c.prepare_cached(concat!(
                "SELECT EXISTS (SELECT 1 FROM peers ",
                "WHERE route LIKE 'tmux:%' AND status != 'offline')"
            ))?
            .query_row([], |r| r.get(0))?)
        })?;
        *lock() = Some((at, any));
        Ok(any)
    }

    /// Whether a peer may be routed to tmux, from what [`Store::tmux_routed`]
    /// remembers alone (no read): `false` only while it knows none is.
    pub(crate) fn tmux_maybe_routed(&self) -> bool {
        let known = *self.tmux_routed.lock().unwrap_or_else(|p| p.into_inner());
        known != Some((self.known.now(), false))
    }

    /// Of those, the ones with a delivery to hand out now.
    pub fn tmux_due(&self) -> Result<Vec<Peer>> {
        let now = self.clock.now_ms();
        let sql = format!("SELECT {COLS} FROM peers p {DUE}");
        self.read(|c| {
            Ok(c.prepare_cached(&sql)?
                .query_map([now], from_row)?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Record that carrying `d` failed on `route`, and end its lease at once
    /// (it is pending again: the carrier tries again after `retry_in_ms`,
    /// or another route takes it first).
    pub fn delivery_failed(
        &self,
        peer: &Peer,
        d: &Delivery,
        route: DeliveryRoute,
        error: &str,
        retry_in_ms: i64,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        self.write(|t| {
            t.conn()
                .prepare_cached(
                    "UPDATE deliveries SET state = 'pending', lease_until_ms = NULL
                     WHERE seq = ?1 AND id = ?3 AND to_peer = ?2 AND state = 'leased'",
                )?
                .execute(params![d.seq, peer.id, d.delivery_id])?;
            t.event(NewEvent {
                subject: &d.delivery_id,
                related: d.correlation_id.as_deref(),
                circle: Some(&peer.circle),
                event: Event::DeliveryFailed {
                    to: peer.name.clone(),
                    route,
                    attempt: d.attempts,
                    error,
                    retry_in_ms,
                },
            })
        })
    }

    /// The panes of these peers are there: a sign of life, written only for
    /// a peer not refreshed within `min_interval_ms`.
    pub fn panes_alive(&self, peers: &[Peer], min_interval_ms: i64) -> Result<()> {
        let now = self.clock.now_ms();
        let due: Vec<&PeerId> = peers
            .iter()
            .filter(|p| now - p.last_seen_ms >= min_interval_ms)
            .map(|p| &p.id)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.write(|t| {
            for id in due {
                revive(t, id)?;
            }
            Ok(())
        })
    }

    /// A spawn a persona asked for was refused at once (the circle's cap, an
    /// unknown backend, no such directory, tmux failing): recorded on the
    /// job as `peer_spawn_failed`, and the job held for `retry_ms` before it
    /// is routed again (a persona that keeps asking is not run every tick).
    pub fn spawn_refused(
        &self,
        job: &JobId,
        name: Option<&str>,
        why: &str,
        retry_ms: i64,
    ) -> Result<()> {
        let why: String = why.chars().take(500).collect();
        self.write(|t| {
            let circle = t.job(job)?.circle;
            t.hold_job(job, t.now + retry_ms)?;
            t.event(NewEvent {
                subject: job,
                related: None,
                circle: Some(&circle),
                event: Event::PeerSpawnFailed {
                    name: name.unwrap_or("").to_string(),
                    why,
                    job: Some(job.to_string()),
                },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::testing::{note, register};

    /// Whether any peer is tmux-routed is remembered, and answered anew
    /// after any write to a peer: a route set, a peer gone offline, one
    /// back, a change rolled back. It always matches the rows.
    #[test]
    fn tmux_routed_follows_every_peer_change() {
        let (_dir, s) = crate::testing::open();
        let (a, _) = register(&s, "a");
        register(&s, "b");
        let rows = |s: &Store| -> bool {
            s.read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) > 0 FROM peers WHERE route LIKE 'tmux:%' AND status != 'offline'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap()
        };
        let set = |sql: &str| {
            s.write(|t| {
                t.conn().execute(sql, [&a])?;
                Ok(())
            })
            .unwrap()
        };
        assert!(!s.tmux_routed().unwrap());
        note(&s, &a, "b", "x");
        assert!(!s.tmux_routed().unwrap(), "a note changes no peer");
        set("UPDATE peers SET route = 'tmux:/tmp/t:%1' WHERE id = ?1");
        assert!(s.tmux_routed().unwrap() && rows(&s));
        note(&s, &a, "b", "y");
        assert!(s.tmux_routed().unwrap());
        s.mark_gone(&a, "pane gone").unwrap();
        assert!(!s.tmux_routed().unwrap() && !rows(&s));
        let undone: crate::Result<()> = s.write(|t| {
            t.conn()
                .execute("UPDATE peers SET status = 'online' WHERE id = ?1", [&a])?;
            Err(repowire_core::Error::internal("undone"))
        });
        assert!(undone.is_err());
        assert!(!s.tmux_routed().unwrap() && !rows(&s));
        set("UPDATE peers SET status = 'idle' WHERE id = ?1");
        assert!(s.tmux_routed().unwrap() && rows(&s));
        s.unregister(&a).unwrap();
        assert!(!s.tmux_routed().unwrap() && !rows(&s));
    }

    /// The carrier's queries read only tmux-routed peers (the partial index
    /// `peers_tmux`), never every peer: they run after every queued delivery
    /// and every registration.
    #[test]
    fn tmux_peers_are_read_from_their_index() {
        for sql in [
            format!("SELECT id FROM peers {}", super::LIVE),
            format!("SELECT id FROM peers p {}", super::DUE),
        ] {
            crate::assert_planned_through(&[(&sql, "peers_tmux")]);
            if sql.contains("EXISTS") {
                // And a peer's open (unpushed: pending, then leases that
                // ran out; pushed) and armed deliveries, never through its
                // delivered history nor a lease still running.
                crate::assert_planned_through(&[
                    (
                        &sql,
                        "deliveries_unpushed (to_peer=? AND state=? AND <expr>=?)",
                    ),
                    (
                        &sql,
                        "deliveries_unpushed (to_peer=? AND state=? AND <expr><?)",
                    ),
                    (&sql, "deliveries_pushed (to_peer=?)"),
                    (&sql, "deliveries_armed (to_peer=?)"),
                ]);
            }
        }
    }
}
