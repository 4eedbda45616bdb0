//! What a persona may see: a snapshot of one circle's mesh, and the job or
//! review item being decided. These are the documented fixture formats of
//! `repowire orchestrator persona test` (see docs/personas.md).
//!
//! By construction nothing here carries an identity internal: no peer ids,
//! tokens, pids, panes or paths.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::{Arc, Mutex};

/// One peer as a persona sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSnap {
    pub name: String,
    #[serde(default = "default_circle")]
    pub circle: String,
    #[serde(default = "default_role")]
    pub role: String,
    #[serde(default)]
    pub backend: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_status")]
    pub status: String,
    /// Open jobs plus open asks.
    #[serde(default)]
    pub load: i64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub last_seen_age_s: i64,
}

/// A job summary in the mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSnap {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default = "default_job_state")]
    pub state: String,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seconds since the job last changed (progress, state).
    #[serde(default)]
    pub updated_age_s: i64,
}

/// A circle's mesh at one instant. Peers are in name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshSnapshot {
    pub circle: String,
    /// Unix milliseconds.
    pub now_ms: i64,
    pub peers: Vec<PeerSnap>,
    /// The newest open jobs: read only when a script asks (`mesh.jobs`).
    pub jobs: Jobs,
}

/// Reads a circle's job list when first asked for.
pub type JobsLoader = dyn Fn() -> Result<Vec<JobSnap>, String> + Send + Sync;

/// A snapshot's job list: given, or read on first use and then kept. Most
/// decisions never look at it, so a snapshot does not pay for a list that
/// grows with the queue.
#[derive(Clone)]
pub struct Jobs {
    loaded: Arc<Mutex<Option<Arc<Vec<JobSnap>>>>>,
    loader: Option<Arc<JobsLoader>>,
}

impl Jobs {
    /// A list known now.
    pub fn ready(jobs: Vec<JobSnap>) -> Self {
        Self {
            loaded: Arc::new(Mutex::new(Some(Arc::new(jobs)))),
            loader: None,
        }
    }

    /// A list `load` reads when it is first asked for (a failed read is
    /// tried again on the next ask).
    pub fn deferred(load: Arc<JobsLoader>) -> Self {
        Self {
            loaded: Arc::new(Mutex::new(None)),
            loader: Some(load),
        }
    }

    /// Whether the list has been read (or was given).
    pub fn is_loaded(&self) -> bool {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The list, read now if it was not yet.
    pub fn get(&self) -> Result<Arc<Vec<JobSnap>>, String> {
        let mut slot = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = &*slot {
            return Ok(v.clone());
        }
        let v = Arc::new(match &self.loader {
            Some(load) => load()?,
            None => Vec::new(),
        });
        *slot = Some(v.clone());
        Ok(v)
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Self::ready(Vec::new())
    }
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.loaded.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(v) => v.fmt(f),
            None => f.write_str("[not read yet]"),
        }
    }
}

impl PartialEq for Jobs {
    fn eq(&self, other: &Self) -> bool {
        matches!((self.get(), other.get()), (Ok(a), Ok(b)) if a == b)
    }
}

impl Serialize for Jobs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Jobs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<JobSnap>::deserialize(d).map(Self::ready)
    }
}

/// The `--fixture mesh.json` format: `now` is RFC 3339.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshFixture {
    #[serde(default = "default_circle")]
    pub circle: String,
    #[serde(default)]
    pub now: Option<String>,
    #[serde(default)]
    pub peers: Vec<PeerSnap>,
    #[serde(default)]
    pub jobs: Vec<JobSnap>,
}

impl MeshFixture {
    /// The snapshot this fixture describes (`now` defaults to `fallback_now_ms`).
    pub fn snapshot(self, fallback_now_ms: i64) -> Result<MeshSnapshot, String> {
        let now_ms = match &self.now {
            None => fallback_now_ms,
            Some(s) => {
                let t = humantime::parse_rfc3339_weak(s)
                    .map_err(|e| format!("fixture `now` {s:?} is not RFC 3339: {e}"))?;
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| format!("fixture `now` {s:?} is before 1970"))?
                    .as_millis() as i64
            }
        };
        let mut peers = self.peers;
        for p in &mut peers {
            p.circle = self.circle.clone();
        }
        // Personas see peers in name order (as the daemon lists them).
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(MeshSnapshot {
            circle: self.circle,
            now_ms,
            peers,
            jobs: Jobs::ready(self.jobs),
        })
    }
}

/// The job a `dispatch` decides (`--job job.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub brief: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub creator: String,
    #[serde(default = "one")]
    pub attempt: i64,
    #[serde(default)]
    pub previous_assignees: Vec<String>,
}

/// The review item a `review` decides (`--review item.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default)]
    pub head_sha: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub requested_by: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_circle() -> String {
    crate::peer::DEFAULT_CIRCLE.to_string()
}
fn default_role() -> String {
    "agent".into()
}
fn default_status() -> String {
    "online".into()
}
fn default_job_state() -> String {
    "queued".into()
}
fn one() -> i64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_defaults() {
        let f: MeshFixture = serde_json::from_str(
            r#"{"circle":"ops","now":"2026-11-24T09:00:00Z","peers":[{"name":"a"}]}"#,
        )
        .unwrap();
        let m = f.snapshot(0).unwrap();
        assert_eq!(m.now_ms, 1_795_510_800_000);
        assert_eq!(m.peers[0].status, "online");
        assert_eq!(m.peers[0].role, "agent");
        assert_eq!(m.peers[0].circle, "ops");
        let bad: MeshFixture = serde_json::from_str(r#"{"now":"yesterday"}"#).unwrap();
        assert!(bad.snapshot(0).unwrap_err().contains("RFC 3339"));
        assert!(
            serde_json::from_str::<MeshFixture>(r#"{"peers":[{"name":"a","peer_id":"x"}]}"#)
                .is_err()
        );
    }
}
