//! The active persona of each circle, persona decision events, and the mesh
//! snapshot personas are handed (views without identity internals).

use super::{NewEvent, Store};
use repowire_core::error::Result;
use repowire_core::event::Event;
use repowire_core::mesh::{JobSnap, Jobs, MeshSnapshot, PeerSnap};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Make `persona` the active persona of `circle`.
    pub fn set_persona(&self, circle: &str, persona: &str, sha256: &str, by: &str) -> Result<()> {
        self.write(|t| {
            t.conn()
                .prepare_cached(
                    "INSERT INTO circle_personas (circle, persona, set_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (circle) DO UPDATE SET persona = ?2, set_ms = ?3",
                )?
                .execute(params![circle, persona, t.now])?;
            t.event(NewEvent {
                subject: persona,
                related: None,
                circle: Some(circle),
                event: Event::PersonaActivated {
                    persona: persona.to_string(),
                    sha256: sha256[..12.min(sha256.len())].to_string(),
                    by: by.to_string(),
                },
            })
        })
    }

    /// Go back to the built-in policy in `circle`. Returns the persona that was active.
    pub fn clear_persona(&self, circle: &str, by: &str) -> Result<Option<String>> {
        self.write(|t| {
            let old: Option<String> = t
                .conn()
                .prepare_cached("DELETE FROM circle_personas WHERE circle = ?1 RETURNING persona")?
                .query_row([circle], |r| r.get(0))
                .optional()?;
            if let Some(p) = &old {
                t.event(NewEvent {
                    subject: p,
                    related: None,
                    circle: Some(circle),
                    event: Event::PersonaCleared {
                        persona: p.clone(),
                        by: by.to_string(),
                    },
                })?;
            }
            Ok(old)
        })
    }

    pub fn active_persona(&self, circle: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT persona FROM circle_personas WHERE circle = ?1")?
                    .query_row([circle], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    /// (circle, persona) for every circle with an active persona.
    pub fn active_personas(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT circle, persona FROM circle_personas ORDER BY circle")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?,
            )
        })
    }

    /// Record a persona event (`persona_error`, `persona_reloaded`, …).
    pub fn persona_event(&self, persona: &str, circle: Option<&str>, event: Event) -> Result<()> {
        self.write(|t| {
            t.event(NewEvent {
                subject: persona,
                related: None,
                circle,
                event,
            })
        })
    }

    /// Each peer's load (by peer id): the open asks addressed to it, which
    /// include its open jobs' asks; peers with none are left out.
    pub fn peer_loads(
        &self,
        circle: Option<&str>,
    ) -> Result<std::collections::HashMap<String, i64>> {
        self.read(|c| {
            // The open asks only (`asks_open`), not every ask's entry in
            // `asks_to`, which SQLite would otherwise scan.
            Ok(c.prepare_cached(concat!(
                "SELECT to_peer, COUNT(*) FROM asks INDEXED BY asks_open
                 WHERE (?1 IS NULL OR circle = ?1) AND ",
                crate::asks::open!(),
                " AND state != 'answered' GROUP BY to_peer"
            ))?
            .query_map([circle], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The circle as a persona sees it: peers as views (load = open asks
    /// addressed to the peer + open jobs assigned to it), and `jobs` for its
    /// job list (see [`Store::mesh_jobs`]; read when a script asks for it).
    pub fn mesh_snapshot(&self, circle: &str, jobs: Jobs) -> Result<MeshSnapshot> {
        let now = self.clock.now_ms();
        let stale_after = self.policy.stale_after_ms;
        let rows = self.list_peers(Some(circle))?;
        let loads = self.peer_loads(Some(circle))?;
        // Load counts every open job of the peer.
        let job_loads: std::collections::HashMap<String, i64> = self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT assignee_name, COUNT(*) FROM jobs
                 WHERE circle = ?1 AND state IN ('dispatched','running') AND assignee_name IS NOT NULL
                 GROUP BY assignee_name",
            )?
            .query_map([circle], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
        })?;
        let peers = rows
            .into_iter()
            .map(|p| {
                // A ghost is not there, whatever its row says.
                let status = if p.ghost(now, stale_after) {
                    "offline".to_string()
                } else {
                    p.status.to_string()
                };
                PeerSnap {
                    load: loads.get(p.id.as_str()).copied().unwrap_or(0)
                        + job_loads.get(&p.name).copied().unwrap_or(0),
                    last_seen_age_s: (now - p.last_seen_ms).max(0) / 1000,
                    name: p.name,
                    circle: p.circle,
                    role: p.role.to_string(),
                    backend: p.backend,
                    tags: p.tags,
                    status,
                    description: p.description,
                }
            })
            .collect();
        Ok(MeshSnapshot {
            circle: circle.to_string(),
            now_ms: now,
            peers,
            jobs,
        })
    }

    /// The newest 1,000 jobs of `circle` (any state), as a persona sees them.
    pub fn mesh_jobs(&self, circle: &str) -> Result<Vec<JobSnap>> {
        let now = self.clock.now_ms();
        let open_jobs = self.list_jobs(Some(circle), None, None, None, 1000, 0)?;
        Ok(open_jobs
            .into_iter()
            .map(|j| JobSnap {
                updated_age_s: (now - j.updated_at_ms).max(0) / 1000,
                id: j.job_id.into_string(),
                title: j.title,
                state: j.state.to_string(),
                assignee: j.assignee,
                tags: j.tags,
            })
            .collect())
    }
}
