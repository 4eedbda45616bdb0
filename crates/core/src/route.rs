//! Routes: what a persona decides, and the checks every route passes before
//! the daemon acts on it. Pure; the persona host parses, this validates.

use super::mesh::MeshSnapshot;
use super::peer::str_enum;
use serde::{Deserialize, Serialize};

str_enum!(
    /// What a dispatch did with the route its persona chose (`outcome` on
    /// the wire); `not_applicable`: a route that means nothing for a job
    /// (ask, notify, fanout).
    DispatchOutcome {
        Assigned => "assigned",
        Deferred => "deferred",
        Declined => "declined",
        AskedUser => "asked_user",
        Spawning => "spawning",
        DryRun => "dry_run",
        NotApplicable => "not_applicable",
    }
);

str_enum!(
    /// Where a persona's source was found: shipped with repowire, the
    /// user's personas directory, or a file named on the command line.
    PersonaOrigin { Shipped => "shipped", User => "user", File => "file" }
);

/// A decision returned by a persona entry point.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Assign {
        peer: String,
        note: Option<String>,
    },
    Ask {
        peer: String,
        text: String,
    },
    Notify {
        peer: String,
        text: String,
    },
    Defer {
        after: String,
        why: String,
    },
    AskUser {
        question: String,
    },
    Decline {
        why: String,
    },
    Fanout {
        peers: Vec<String>,
        text: String,
    },
    /// Start an agent session for the job (`dispatch` only): a tmux window
    /// in `path` running the operator's command for `backend`
    /// (`--spawn-command`), named `name` (default: the directory's name).
    /// The job is assigned to the session when it registers.
    Spawn {
        path: String,
        backend: String,
        name: Option<String>,
    },
}

/// The entry point a route answers, with what validation needs to know.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Dispatch,
    /// Review routing: the author may never be chosen.
    Review {
        author: String,
    },
    Checkin,
    OnEvent,
}

impl Entry {
    pub fn name(&self) -> &'static str {
        match self {
            Entry::Dispatch => "dispatch",
            Entry::Review { .. } => "review",
            Entry::Checkin => "checkin",
            Entry::OnEvent => "on_event",
        }
    }
}

/// The stable JSON form of a route (`persona test`, dry-run dispatch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteOut {
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    pub fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Route {
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Assign { .. } => "assign",
            Route::Ask { .. } => "ask",
            Route::Notify { .. } => "notify",
            Route::Defer { .. } => "defer",
            Route::AskUser { .. } => "ask_user",
            Route::Decline { .. } => "decline",
            Route::Fanout { .. } => "fanout",
            Route::Spawn { .. } => "spawn",
        }
    }

    /// The JSON form; `error` set means the persona failed and this route
    /// came from the built-in policy.
    pub fn out(&self, error: Option<String>) -> RouteOut {
        let mut o = RouteOut {
            route: self.kind().into(),
            peer: None,
            peers: None,
            text: None,
            after: None,
            why: None,
            note: None,
            path: None,
            backend: None,
            fallback: error.is_some(),
            error,
        };
        match self {
            Route::Assign { peer, note } => {
                o.peer = Some(peer.clone());
                o.note = note.clone();
            }
            Route::Ask { peer, text } | Route::Notify { peer, text } => {
                o.peer = Some(peer.clone());
                o.text = Some(text.clone());
            }
            Route::Defer { after, why } => {
                o.after = Some(after.clone());
                o.why = Some(why.clone());
            }
            Route::AskUser { question } => o.text = Some(question.clone()),
            Route::Decline { why } => o.why = Some(why.clone()),
            Route::Fanout { peers, text } => {
                o.peers = Some(peers.clone());
                o.text = Some(text.clone());
            }
            Route::Spawn {
                path,
                backend,
                name,
            } => {
                o.path = Some(path.clone());
                o.backend = Some(backend.clone());
                o.peer = name.clone();
            }
        }
        o
    }
}

/// Limits a route must respect.
#[derive(Debug, Clone)]
pub struct RouteLimits {
    pub max_fanout: usize,
    pub max_text_bytes: usize,
    pub max_defer_ms: u64,
}

impl Default for RouteLimits {
    fn default() -> Self {
        Self {
            max_fanout: 16,
            max_text_bytes: 64 * 1024,
            max_defer_ms: 7 * 86_400_000,
        }
    }
}

/// Check a route against the mesh: targets exist (the mesh is one circle, so
/// "exists" is "same circle"), are not offline unless the route can queue
/// (ask, notify, fanout), are never a review's author; fan-out is bounded;
/// texts fit; a deferral parses and is not absurd.
pub fn validate(
    route: &Route,
    mesh: &MeshSnapshot,
    entry: &Entry,
    limits: &RouteLimits,
) -> Result<(), String> {
    let author = match entry {
        Entry::Review { author } => Some(author.as_str()),
        _ => None,
    };
    let target = |name: &str, may_queue: bool| -> Result<(), String> {
        let p = mesh
            .peers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no peer {name:?} in circle {:?}", mesh.circle))?;
        if !may_queue && p.status == "offline" {
            return Err(format!(
                "{name} is offline; an assignment needs an online peer"
            ));
        }
        if author == Some(name) {
            return Err(format!(
                "{name} is the author; a reviewer is never the author"
            ));
        }
        Ok(())
    };
    let text = |t: &str| -> Result<(), String> {
        if t.len() > limits.max_text_bytes {
            Err(format!(
                "text is {} bytes, over {}",
                t.len(),
                limits.max_text_bytes
            ))
        } else {
            Ok(())
        }
    };
    match route {
        Route::Assign { peer, note } => {
            target(peer, false)?;
            text(note.as_deref().unwrap_or(""))
        }
        Route::Ask { peer, text: t } | Route::Notify { peer, text: t } => {
            target(peer, true)?;
            text(t)
        }
        Route::Fanout { peers, text: t } => {
            if peers.is_empty() {
                return Err("fanout names no peers".into());
            }
            if peers.len() > limits.max_fanout {
                return Err(format!(
                    "fanout to {} peers, over the limit of {}",
                    peers.len(),
                    limits.max_fanout
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for p in peers {
                if !seen.insert(p) {
                    return Err(format!("fanout names {p} twice"));
                }
                target(p, true)?;
            }
            text(t)
        }
        Route::Defer { after, why } => {
            let d = super::time::parse_duration(after)?;
            if d.as_millis() as u64 > limits.max_defer_ms {
                return Err(format!("defer of {after} is over the limit of 7 days"));
            }
            text(why)
        }
        Route::AskUser { question } => text(question),
        Route::Decline { why } => text(why),
        Route::Spawn {
            path,
            backend,
            name,
        } => {
            if *entry != Entry::Dispatch {
                return Err(format!(
                    "spawn starts a session for a job: only dispatch may return it, not {}",
                    entry.name()
                ));
            }
            if !path.starts_with('/') || path.chars().any(char::is_control) {
                return Err(format!("spawn path {path:?} is not an absolute path"));
            }
            super::peer::validate_name("spawn backend", backend).map_err(|e| e.message)?;
            if let Some(n) = name {
                super::peer::validate_name("spawn name", n).map_err(|e| e.message)?;
                if mesh.peers.iter().any(|p| p.name == *n) {
                    return Err(format!(
                        "spawn name {n:?} is taken in circle {:?}",
                        mesh.circle
                    ));
                }
            }
            text(path)
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn outcomes_and_origins_keep_their_wire_strings() {
        let want = [
            "assigned",
            "deferred",
            "declined",
            "asked_user",
            "spawning",
            "dry_run",
            "not_applicable",
        ];
        let got: Vec<&str> = DispatchOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(got, want);
        for o in DispatchOutcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
            assert_eq!(DispatchOutcome::parse(o.as_str()).unwrap(), *o);
        }
        for o in PersonaOrigin::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert!(PersonaOrigin::parse("elsewhere").is_err());
        use crate::delivery::DeliveryRoute;
        assert_eq!(
            DeliveryRoute::parse("channel").unwrap(),
            DeliveryRoute::Channel
        );
        let e = crate::peer::validate_route("push").unwrap_err();
        assert!(
            e.message.contains("\"pull\" or \"channel\""),
            "{}",
            e.message
        );
    }

    use super::*;
    use crate::mesh::PeerSnap;

    fn mesh() -> MeshSnapshot {
        let p = |name: &str, status: &str| PeerSnap {
            name: name.into(),
            circle: "default".into(),
            role: "agent".into(),
            backend: "codex".into(),
            tags: vec![],
            status: status.into(),
            load: 0,
            description: String::new(),
            last_seen_age_s: 0,
        };
        MeshSnapshot {
            circle: "default".into(),
            now_ms: 0,
            peers: vec![p("a", "online"), p("b", "offline")],
            jobs: Default::default(),
        }
    }

    #[test]
    fn checks() {
        let m = mesh();
        let l = RouteLimits::default();
        let assign = |p: &str| Route::Assign {
            peer: p.into(),
            note: None,
        };
        assert!(validate(&assign("a"), &m, &Entry::Dispatch, &l).is_ok());
        assert!(
            validate(&assign("zed"), &m, &Entry::Dispatch, &l)
                .unwrap_err()
                .contains("no peer")
        );
        assert!(
            validate(&assign("b"), &m, &Entry::Dispatch, &l)
                .unwrap_err()
                .contains("offline")
        );
        let ask_b = Route::Ask {
            peer: "b".into(),
            text: "hi".into(),
        };
        assert!(
            validate(&ask_b, &m, &Entry::Dispatch, &l).is_ok(),
            "asks queue"
        );
        let review = Entry::Review { author: "a".into() };
        assert!(
            validate(&assign("a"), &m, &review, &l)
                .unwrap_err()
                .contains("author")
        );
        let fan = Route::Fanout {
            peers: vec!["a".into(), "a".into()],
            text: "x".into(),
        };
        assert!(
            validate(&fan, &m, &Entry::Checkin, &l)
                .unwrap_err()
                .contains("twice")
        );
        let defer = Route::Defer {
            after: "soon".into(),
            why: String::new(),
        };
        assert!(validate(&defer, &m, &Entry::Dispatch, &l).is_err());
        let defer = Route::Defer {
            after: "10m".into(),
            why: "wait".into(),
        };
        assert!(validate(&defer, &m, &Entry::Dispatch, &l).is_ok());
        let o = assign("a").out(Some("boom".into()));
        assert!(o.fallback);
        assert_eq!(serde_json::to_value(&o).unwrap()["route"], "assign");
    }
}
