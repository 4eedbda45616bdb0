//! Who the client is and what it reads, wherever it says so: in the
//! `initialize` handshake, or — on protocol 2026-07-28, which has no
//! handshake — in each request's `_meta` (`io.modelcontextprotocol/clientInfo`
//! and `…/clientCapabilities`). Both are honoured alike.
//!
//! Two things follow from it: the peer's backend (`clientInfo.name`, unless
//! `--backend` was given; before the environment guess, since Codex passes
//! no `CODEX_HOME` to its servers) and, with `--delivery auto`, whether
//! deliveries are pushed as channel events (the capability
//! `experimental["claude/channel"]`). A change is recorded in the peer's row
//! before the request that carried it is served — once the session has
//! joined the mesh: before that (no daemon yet) it is kept, and recorded,
//! with the pusher started, when the session joins (the membership task in
//! `session` calls [`Hello::joined`]).

use super::link::Link;
use super::{Delivery, push};
use crate::api::RegisterReq;
use crate::core::delivery::DeliveryRoute;
use rmcp::model::{ClientCapabilities, Implementation};

/// The session's view of its client, shared by the tool handlers and the
/// session's start and end.
pub(super) struct Hello {
    link: Link,
    delivery: Delivery,
    /// `--backend` was given: the client's name does not override it.
    backend_fixed: bool,
    /// The route is the session's tmux pane, recorded at registration: the
    /// client's word on channels changes nothing and nothing is pushed.
    pinned: bool,
    /// The registration to resume with a new backend or route.
    base: RegisterReq,
    seen: push::Shared,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Something was heard from the client already (a request's `_meta`
    /// may be handled before the session's start looks at `initialize`).
    heard: bool,
    /// What the client's word makes of the peer.
    want: Want,
    /// What the peer's row says (recorded once joined).
    backend: Option<String>,
    route: Option<DeliveryRoute>,
    /// The session, to push into (known once the client said hello).
    peer: Option<rmcp::Peer<rmcp::RoleServer>>,
    pusher: Option<tokio::task::JoinHandle<()>>,
    /// The session is ending: no pusher starts any more.
    stopped: bool,
}

/// The peer's backend, its route to record (auto), and the route that
/// reaches the session (the pusher runs when that is channel push).
#[derive(Clone, PartialEq)]
struct Want {
    backend: Option<String>,
    route: Option<DeliveryRoute>,
    carried: DeliveryRoute,
}

impl Default for Want {
    /// Until the client says it reads channel events, the agent pulls.
    fn default() -> Self {
        Want {
            backend: None,
            route: None,
            carried: DeliveryRoute::Pull,
        }
    }
}

/// The backend a client name stands for: the known clients by their
/// product name, any other by its own name (lower case, `[a-z0-9._-]`),
/// except the SDKs' default names (`rmcp`, `mcp`), which say nothing about
/// the agent (the environment's guess stands).
pub fn backend_of(client_name: &str) -> Option<String> {
    let known = match client_name {
        "rmcp" | "mcp" | "" => return None,
        "claude-code" => Some("claude-code"),
        "codex-mcp-client" | "codex" => Some("codex"),
        "gemini-cli-mcp-client" => Some("gemini"),
        _ => None,
    };
    if let Some(k) = known {
        return Some(k.into());
    }
    let name: String = client_name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let name = name.trim_matches('-').to_string();
    (!name.is_empty()).then_some(name)
}

/// Does the client say it reads channel events (the capability
/// `experimental["claude/channel"]`)? Its name is not enough: Claude Code
/// drops channel events from a server that was not enabled as a channel
/// (a pushed delivery then waits, unconfirmed, for the inbox or a hook).
fn reads_channels(caps: &ClientCapabilities) -> bool {
    caps.experimental
        .as_ref()
        .is_some_and(|e| e.contains_key("claude/channel"))
}

impl Hello {
    pub(super) fn new(
        link: Link,
        delivery: Delivery,
        backend_fixed: bool,
        pinned: bool,
        base: RegisterReq,
        seen: push::Shared,
    ) -> Self {
        let backend = base.backend.clone();
        Hello {
            link,
            delivery,
            backend_fixed,
            pinned,
            base,
            seen,
            state: tokio::sync::Mutex::new(State {
                want: Want {
                    backend: backend.clone(),
                    ..Default::default()
                },
                backend,
                ..Default::default()
            }),
        }
    }

    /// At session start: what `initialize` said (nothing, on 2026-07-28).
    /// Saying nothing means no channels: `--delivery auto` pulls until a
    /// request's capabilities say otherwise.
    pub(super) async fn started(
        &self,
        info: Option<&rmcp::model::InitializeRequestParams>,
        peer: &rmcp::Peer<rmcp::RoleServer>,
    ) {
        let none = ClientCapabilities::default();
        let (who, caps) = match info {
            Some(i) => (Some(&i.client_info), &i.capabilities),
            None => (None, &none),
        };
        if !self.state.lock().await.heard || info.is_some() {
            self.apply(who, Some(caps), peer).await;
        }
    }

    /// On a request: what its `_meta` says, if anything.
    pub(super) async fn request(
        &self,
        meta: &rmcp::model::RequestMetaObject,
        peer: &rmcp::Peer<rmcp::RoleServer>,
    ) {
        let (who, caps) = (meta.client_info(), meta.client_capabilities());
        if who.is_some() || caps.is_some() {
            self.apply(who.as_ref(), caps.as_ref(), peer).await;
        }
    }

    async fn apply(
        &self,
        who: Option<&Implementation>,
        caps: Option<&ClientCapabilities>,
        peer: &rmcp::Peer<rmcp::RoleServer>,
    ) {
        let mut st = self.state.lock().await;
        st.heard = true;
        st.peer.get_or_insert_with(|| peer.clone());
        let backend = match who {
            Some(w) if !self.backend_fixed => backend_of(&w.name).or(st.want.backend.clone()),
            _ => st.want.backend.clone(),
        };
        let carried = if self.pinned {
            DeliveryRoute::Tmux
        } else {
            self.delivery
                .route(caps.map(reads_channels), st.want.carried)
        };
        // auto: the route is recorded once known (push and pull say so at
        // registration already).
        let route = match self.delivery.fixed() {
            None if self.pinned => st.want.route,
            None => Some(carried),
            Some(_) => st.want.route,
        };
        st.want = Want {
            backend,
            route,
            carried,
        };
        self.sync(&mut st).await;
    }

    /// The session has joined the mesh (maybe long after its start): record
    /// what the client said and start pushing, as `apply` would have.
    pub(super) async fn joined(&self) {
        let mut st = self.state.lock().await;
        self.sync(&mut st).await;
    }

    /// Bring the peer's row and the pusher in line with what the client
    /// said; before the session has joined there is nothing to do yet.
    async fn sync(&self, st: &mut State) {
        let Some(joined) = self.link.joined() else {
            return;
        };
        let want = st.want.clone();
        if want.backend != st.backend || want.route != st.route {
            let req = RegisterReq {
                backend: want.backend.clone(),
                route: want.route.map(|r| r.as_str().to_string()),
                role: None,
                ..self.base.clone()
            };
            match joined.client.register(&req).await {
                Ok(_) => (st.backend, st.route) = (want.backend, want.route),
                Err(e) => tracing::warn!("could not record the client's backend and route: {e}"),
            }
        }
        let push = want.carried == push::ROUTE;
        match (push && !st.stopped, st.pusher.is_some()) {
            (true, false) => {
                let Some(peer) = st.peer.clone() else {
                    return; // no hello yet: it starts the pusher
                };
                tracing::debug!("pushing deliveries as channel events");
                st.pusher = Some(tokio::spawn(push::push(
                    joined.client.clone(),
                    self.seen.clone(),
                    peer,
                )));
            }
            (false, true) => {
                // Leased but unconfirmed deliveries come back after their lease.
                if let Some(p) = st.pusher.take() {
                    p.abort();
                }
            }
            _ => {}
        }
    }

    /// At session end: stop pushing.
    pub(super) async fn stop(&self) {
        let mut st = self.state.lock().await;
        st.stopped = true;
        if let Some(p) = st.pusher.take() {
            p.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backend_of;

    #[test]
    fn backends_from_client_names() {
        assert_eq!(backend_of("claude-code").as_deref(), Some("claude-code"));
        assert_eq!(backend_of("codex-mcp-client").as_deref(), Some("codex"));
        assert_eq!(backend_of("My Client 2").as_deref(), Some("my-client-2"));
        assert_eq!(backend_of("  "), None);
        assert_eq!(backend_of("rmcp"), None, "an SDK's default name");
    }
}
