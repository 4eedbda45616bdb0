//! The session's link to the mesh: whether it has joined (its peer
//! registered or resumed, and the client acting as it), and joining.
//!
//! A session starts whether or not a daemon answers: the MCP handshake never
//! waits for one. Until the session has joined, every tool call answers
//! `daemon_unreachable` saying which command starts a daemon; the session's
//! membership task (in `session`) keeps trying and joins as soon as one
//! answers. What happens after joining (heartbeat, push, leaving) lives in
//! `session`; the registration itself lives here.

use crate::api::RegisterReq;
use crate::client::{Client, ClientError};
use rmcp::model::CallToolResult;
use serde_json::json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What joining registers.
pub(super) struct Plan {
    pub locate: crate::sessions::Daemon,
    /// The peer to register or resume (its name already claimed).
    pub req: RegisterReq,
    /// Where the peer token is kept (`<home>/mcp/<circle>@<name>.token`).
    pub token_file: std::path::PathBuf,
    /// Started by an agent client (`--client`): the peer is the client
    /// session's, shared with its hooks ([`crate::sessions`]), instead of
    /// the name claimed and the token file.
    pub session: Option<crate::sessions::Want>,
}

/// The session's peer, once joined.
pub(super) struct Joined {
    pub client: Client,
    pub peer: crate::api::PeerInfo,
}

/// The outcome of the latest join attempt (`n` counts them).
#[derive(Clone, Default)]
struct Attempt {
    n: u64,
    error: Option<(String, String)>,
}

/// The session's link to the mesh; cheap to clone.
#[derive(Clone)]
pub(super) struct Link(Arc<Inner>);

struct Inner {
    plan: Plan,
    joined: OnceLock<Joined>,
    /// Stands in for the peer's client until the session joins (tool calls
    /// are answered by [`Link::ready`] before they get this far).
    unjoined: Client,
    attempts: tokio::sync::watch::Sender<Attempt>,
    /// A tool call wants an attempt now.
    nudge: tokio::sync::Notify,
}

/// The tools reach the daemon through the link as through the client of
/// the session's peer (the peer exists only once the session has joined).
impl std::ops::Deref for Link {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0
            .joined
            .get()
            .map(|j| &j.client)
            .unwrap_or(&self.0.unjoined)
    }
}

impl Link {
    pub fn new(plan: Plan) -> Self {
        let unjoined = plan.locate.admin().with_identity(None, None);
        Self(Arc::new(Inner {
            plan,
            joined: OnceLock::new(),
            unjoined,
            attempts: tokio::sync::watch::Sender::new(Attempt::default()),
            nudge: tokio::sync::Notify::new(),
        }))
    }

    pub fn joined(&self) -> Option<&Joined> {
        self.0.joined.get()
    }

    /// This session's peer id ("" before the session joined).
    pub fn peer_id(&self) -> &str {
        self.joined().map(|j| j.peer.peer_id.as_str()).unwrap_or("")
    }

    /// Register (or resume) the session's peer, once; the membership task is
    /// the only caller, so one attempt is in flight at a time.
    pub async fn join(&self) -> Result<&Joined, ClientError> {
        if let Some(j) = self.joined() {
            return Ok(j);
        }
        let r = self.attempt().await;
        self.0.attempts.send_modify(|a| {
            a.n += 1;
            a.error = r.as_ref().err().map(|e| self.explain(e));
        });
        let joined = r?;
        Ok(self.0.joined.get_or_init(|| joined))
    }

    async fn attempt(&self) -> Result<Joined, ClientError> {
        let plan = &self.0.plan;
        // A daemon writes the home's admin token before it listens: without
        // one, none has started here (whatever else may answer the URL).
        if plan.locate.home.read_token().is_none() {
            return Err(ClientError::Unreachable {
                url: plan.locate.url(),
                reason: "no daemon has started in this home yet".into(),
            });
        }
        if let Some(want) = &plan.session {
            let j = crate::sessions::join(&plan.locate, want).await?;
            return Ok(Joined {
                client: j.client,
                peer: j.peer,
            });
        }
        let admin = plan.locate.admin();
        let saved = std::fs::read_to_string(&plan.token_file)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        // The peer token stays in this process and in <home>/mcp/, never in
        // tool output.
        let (token, peer) = match saved {
            Some(t) => {
                let me = admin.with_identity(Some(t.clone()), None);
                (t, me.register(&plan.req).await?.peer)
            }
            None => {
                let r = admin.register(&plan.req).await?;
                let t = r
                    .token
                    .ok_or_else(|| ClientError::Other("the daemon issued no token".into()))?;
                super::session::write_private(&plan.token_file, &t).map_err(|e| {
                    ClientError::Other(format!(
                        "while saving the peer token in {}: {e}",
                        plan.token_file.display()
                    ))
                })?;
                (t, r.peer)
            }
        };
        Ok(Joined {
            client: admin.with_identity(Some(token), None),
            peer,
        })
    }

    /// Wait for a nudge from a tool call, or `t`.
    pub async fn nudged_or(&self, t: Duration) {
        let _ = tokio::time::timeout(t, self.0.nudge.notified()).await;
    }

    /// `Ok` once the session has joined; before, a tool call asks for a join
    /// attempt now and, if that fails too, answers why as an `isError`
    /// result (`daemon_unreachable` with the command that starts a daemon).
    pub async fn ready(&self) -> Result<(), CallToolResult> {
        if self.joined().is_some() {
            return Ok(());
        }
        let mut rx = self.0.attempts.subscribe();
        let before = rx.borrow_and_update().n;
        self.0.nudge.notify_one();
        let next =
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|a| a.n > before)).await;
        if self.joined().is_some() {
            return Ok(());
        }
        let (code, message) = match next {
            Ok(Ok(a)) => a.error.clone(),
            _ => None,
        }
        .unwrap_or_else(|| {
            self.explain(&ClientError::Unreachable {
                url: self.0.plan.locate.url(),
                reason: "no answer yet".into(),
            })
        });
        Err(CallToolResult::structured_error(
            json!({"code": code, "message": message}),
        ))
    }

    /// Why the session has not joined, as `(code, message)`; the message of
    /// an unreachable daemon says how to start one.
    pub fn explain(&self, e: &ClientError) -> (String, String) {
        let code = e.code_str().to_string();
        match e {
            ClientError::Unreachable { .. } => (
                code,
                format!(
                    "{e}. Start one with `{}`: this session joins the mesh as soon as it answers, without a restart.",
                    self.start_command()
                ),
            ),
            ClientError::Api(a) => (
                code,
                format!(
                    "joining the mesh as {}: {}",
                    self.0.plan.req.name, a.message
                ),
            ),
            other => (code, format!("joining the mesh: {other}")),
        }
    }

    /// The command that starts this session's daemon.
    pub fn start_command(&self) -> String {
        let default =
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".repowire"));
        start_command(&self.0.plan.locate.home.dir, default.as_deref())
    }
}

/// `repowire daemon start`, naming `home` unless it is the default one
/// (quoted for a shell when it needs to be).
fn start_command(home: &std::path::Path, default: Option<&std::path::Path>) -> String {
    if default == Some(home) {
        return "repowire daemon start".into();
    }
    let home = home.display().to_string();
    if home.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
        format!(
            "repowire --home '{}' daemon start",
            home.replace('\'', "'\\''")
        )
    } else {
        format!("repowire --home {home} daemon start")
    }
}

#[cfg(test)]
mod tests {
    use super::start_command;
    use std::path::Path;

    #[test]
    fn the_start_command_names_a_home_that_is_not_the_default() {
        let default = Path::new("/home/ann/.repowire");
        assert_eq!(
            start_command(default, Some(default)),
            "repowire daemon start"
        );
        assert_eq!(
            start_command(Path::new("/srv/rw"), Some(default)),
            "repowire --home /srv/rw daemon start"
        );
        assert_eq!(
            start_command(Path::new("/tmp/it's here"), None),
            "repowire --home '/tmp/it'\\''s here' daemon start"
        );
    }
}
