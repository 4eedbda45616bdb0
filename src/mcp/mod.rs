//! The MCP server (`repowire mcp`): agents join the mesh over stdio.
//!
//! A thin adapter: each tool is one call of the typed [`Client`]; results
//! are JSON (text + structured content), failures are `isError` results
//! carrying the daemon's error code. Nothing but JSON-RPC goes to stdout;
//! logs go to stderr.
//!
//! This first cut registers (or resumes) the session's peer, keeps its
//! heartbeat, and offers the mesh tools. Orchestration, job, review and
//! schedule tools and push delivery into sessions are the rest of issue 6.

use crate::api::{AskReq, BroadcastReq, LeaseReq, NotifyReq, RegisterReq};
use crate::client::{Client, ClientError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

type ToolResult = Result<CallToolResult, McpError>;

fn ok<T: serde::Serialize>(v: &T) -> ToolResult {
    Ok(CallToolResult::structured(
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
    ))
}

fn fail(e: ClientError) -> ToolResult {
    let code = e.code().map_or("client_error", |c| c.as_str());
    let message = match &e {
        ClientError::Api(e) => e.message.clone(),
        other => other.to_string(),
    };
    Ok(CallToolResult::structured_error(
        json!({"code": code, "message": message}),
    ))
}

fn done<T: serde::Serialize>(r: Result<T, ClientError>) -> ToolResult {
    match r {
        Ok(v) => ok(&v),
        Err(e) => fail(e),
    }
}

/// The MCP server of one peer.
#[derive(Clone)]
pub struct Mesh {
    client: Client,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListPeersArgs {
    /// Also list peers that are offline or stale (default false).
    #[serde(default)]
    pub show_offline: Option<bool>,
    /// Include this session's own peer (default false).
    #[serde(default)]
    pub include_self: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AskArgs {
    /// The peer to ask (NAME, or NAME@CIRCLE).
    pub peer_name: String,
    /// The question.
    pub query: String,
    /// The target's circle (default: yours; another circle is refused).
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WaitArgs {
    /// The correlation id `ask` returned.
    pub correlation_id: String,
    /// How long to wait, in seconds (default 600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AnswerArgs {
    /// The correlation id of the ask you received.
    pub correlation_id: String,
    /// Your answer (it is delivered to the asker and closes the ask).
    pub text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AckArgs {
    /// The correlation id of the ask you received.
    pub correlation_id: String,
    /// An optional short message for the asker.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NotifyArgs {
    /// The peer to tell.
    pub peer_name: String,
    /// The note.
    pub message: String,
    /// The target's circle (default: yours).
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BroadcastArgs {
    /// The note for everyone in your circle.
    pub message: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InboxArgs {
    /// Take at most this many deliveries (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[tool_router]
impl Mesh {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Who this session is in the mesh: its peer name, circle, role and status."
    )]
    async fn whoami(&self) -> ToolResult {
        done(self.client.whoami().await)
    }

    #[tool(
        description = "List the peers of your circle (name, role, backend, status, description). Stale and offline peers are left out unless show_offline is true."
    )]
    async fn list_peers(&self, Parameters(a): Parameters<ListPeersArgs>) -> ToolResult {
        let me = self.client.whoami().await.ok();
        match self.client.list_peers(None).await {
            Ok(peers) => {
                let peers: Vec<_> = peers
                    .into_iter()
                    .filter(|p| {
                        a.show_offline.unwrap_or(false)
                            || (!p.stale && p.status.as_str() != "offline")
                    })
                    .filter(|p| {
                        a.include_self.unwrap_or(false)
                            || me.as_ref().is_none_or(|m| m.peer_id != p.peer_id)
                    })
                    .collect();
                ok(&json!({"peers": peers}))
            }
            Err(e) => fail(e),
        }
    }

    #[tool(
        description = "Ask a peer a tracked question. Returns a correlation_id; the answer arrives as a reply (see inbox) and wait_on_ack returns it. Asking an offline peer queues the question."
    )]
    async fn ask(&self, Parameters(a): Parameters<AskArgs>) -> ToolResult {
        let req = AskReq {
            to: a.peer_name,
            circle: a.circle,
            text: a.query,
            ..Default::default()
        };
        match self.client.ask(&req).await {
            Ok(r) => ok(&json!({
                "correlation_id": r.ask.correlation_id,
                "to": r.ask.to,
                "state": r.ask.state,
                "queued_offline": r.queued_offline,
            })),
            Err(e) => fail(e),
        }
    }

    #[tool(
        description = "Wait until an ask you sent is closed (answered or acked) or ends otherwise, up to timeout_seconds. Returns the ask with its answer; done=false means the wait timed out."
    )]
    async fn wait_on_ack(&self, Parameters(a): Parameters<WaitArgs>) -> ToolResult {
        let t = Duration::from_secs(a.timeout_seconds.unwrap_or(600).min(3600));
        done(self.client.wait(&a.correlation_id, t).await)
    }

    #[tool(
        description = "Answer an ask you received: the answer goes back to the asker and the ask is closed."
    )]
    async fn answer(&self, Parameters(a): Parameters<AnswerArgs>) -> ToolResult {
        done(self.client.answer(&a.correlation_id, &a.text).await)
    }

    #[tool(
        description = "Close an ask you received without an answer text (optionally with a short message for the asker)."
    )]
    async fn ack(&self, Parameters(a): Parameters<AckArgs>) -> ToolResult {
        done(self.client.ack(&a.correlation_id, a.message).await)
    }

    #[tool(description = "Send a note to a peer. It is durable until the peer takes it.")]
    async fn notify_peer(&self, Parameters(a): Parameters<NotifyArgs>) -> ToolResult {
        let req = NotifyReq {
            to: a.peer_name,
            circle: a.circle,
            text: a.message,
            bypass_circle: false,
        };
        done(self.client.notify(&req).await)
    }

    #[tool(description = "Send a note to every peer of your circle but you (rate-limited).")]
    async fn broadcast(&self, Parameters(a): Parameters<BroadcastArgs>) -> ToolResult {
        let req = BroadcastReq {
            text: a.message,
            ..Default::default()
        };
        done(self.client.broadcast_to(&req).await)
    }

    #[tool(
        description = "Take your pending deliveries (asks to answer, replies, notes, notices) in order. They are confirmed as delivered once returned."
    )]
    async fn inbox(&self, Parameters(a): Parameters<InboxArgs>) -> ToolResult {
        let req = LeaseReq {
            max: Some(a.limit.unwrap_or(100).clamp(1, 1000)),
            ..Default::default()
        };
        match self.client.lease(&req).await {
            Ok(r) => {
                let ids: Vec<String> = r.deliveries.iter().map(|d| d.delivery_id.clone()).collect();
                if !ids.is_empty()
                    && let Err(e) = self.client.confirm(ids).await
                {
                    return fail(e);
                }
                ok(&json!({"deliveries": r.deliveries}))
            }
            Err(e) => fail(e),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Mesh {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "repowire: this session is a peer in a local mesh of coding agents. Ask peers tracked questions (ask, then wait_on_ack), answer the asks you receive (inbox, then answer or ack), and send notes (notify_peer, broadcast).",
        )
    }
}

/// How `repowire mcp` joins the mesh.
pub struct Join {
    pub name: String,
    pub circle: Option<String>,
    pub backend: Option<String>,
    pub project_path: Option<String>,
}

/// Register (or resume) this session's peer and serve MCP on stdio until
/// the client goes away; then mark the peer offline.
pub async fn serve(home: &crate::home::Home, url: &str, join: Join) -> anyhow::Result<()> {
    use anyhow::Context;
    use rmcp::ServiceExt;
    let admin = Client::new(url, home.read_token(), None);
    admin.health().await.map_err(|e| {
        anyhow::anyhow!(
            "{e}. repowire mcp needs a running daemon: start one with `repowire daemon start`"
        )
    })?;
    // The peer token stays in this process and in <home>/mcp/, never in tool output.
    let circle = join
        .circle
        .clone()
        .unwrap_or_else(|| crate::core::peer::DEFAULT_CIRCLE.into());
    let dir = home.dir.join("mcp");
    std::fs::create_dir_all(&dir).context("while creating <home>/mcp")?;
    let token_file = dir.join(format!("{circle}@{}.token", join.name));
    let req = RegisterReq {
        name: join.name.clone(),
        circle: join.circle.clone(),
        backend: join.backend.clone(),
        project_path: join.project_path.clone(),
        ..Default::default()
    };
    let saved = std::fs::read_to_string(&token_file)
        .ok()
        .map(|t| t.trim().to_string());
    let token = match saved {
        Some(t) => {
            let me = admin.with_identity(Some(t.clone()), None);
            me.register(&req)
                .await
                .context("while resuming this session's peer")?;
            t
        }
        None => {
            let r = admin
                .register(&req)
                .await
                .context("while registering this session's peer")?;
            let t = r.token.context("the daemon issued no token")?;
            write_private(&token_file, &t)?;
            t
        }
    };
    let client = admin.with_identity(Some(token), None);
    let beat = client.clone();
    let heart = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let _ = beat.heartbeat(&Default::default()).await;
        }
    });
    let server = Mesh::new(client.clone())
        .serve(rmcp::transport::stdio())
        .await
        .context("while starting the MCP session")?;
    let _ = server.waiting().await;
    heart.abort();
    let offline = crate::api::HeartbeatReq {
        status: Some(crate::core::peer::Status::Offline),
    };
    let _ = client.heartbeat(&offline).await;
    Ok(())
}

fn write_private(path: &std::path::Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(token.as_bytes())?;
    Ok(())
}
