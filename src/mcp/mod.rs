//! The MCP server (`repowire mcp`): agents join the mesh over stdio.
//!
//! A thin adapter: each tool is one call of the typed [`Client`]; results
//! are JSON (text + structured content), failures are `isError` results
//! carrying the daemon's error code. Nothing but JSON-RPC goes to stdout;
//! logs go to stderr.
//!
//! It registers (or resumes) the session's peer, keeps its heartbeat,
//! offers the mesh, orchestration, job, review and schedule tools, and
//! pushes the peer's deliveries into the session as Claude Code channel
//! events (`--delivery pull`: the `inbox` tool only). docs/mcp-tools.md is
//! generated from the tool definitions here.

mod args;
mod hello;
mod link;
mod params;
mod push;
mod session;

pub use args::*;
pub use hello::backend_of;
pub use params::ALIASES;
pub use session::{Delivery, Join, serve};

use crate::api::{
    AskManyReq, AskReq, BroadcastReq, JobCreateReq, JobUpdateReq, KillReq, LeaseReq, NotifyReq,
    ReviewRefReq, ReviewRequestReq, ScheduleReq, SpawnReq, UpdatePeerReq,
};
use crate::client::{Client, ClientError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, tool, tool_handler, tool_router};
use serde_json::json;
use std::time::Duration;

type ToolResult = Result<CallToolResult, McpError>;

fn ok<T: serde::Serialize>(v: &T) -> ToolResult {
    Ok(CallToolResult::structured(
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
    ))
}

fn fail(e: ClientError) -> ToolResult {
    let code = e.code_str();
    let message = match &e {
        ClientError::Api(e) => e.message.clone(),
        ClientError::Unreachable { .. } => {
            format!(
                "{e}. Start it with `repowire daemon start` (plus --home DIR for another home); this session follows it."
            )
        }
        other => other.to_string(),
    };
    Ok(CallToolResult::structured_error(
        json!({"code": code, "message": message}),
    ))
}

/// A list result, as an object under `key` (structured content is an object).
fn done_as<T: serde::Serialize>(key: &str, r: Result<T, ClientError>) -> ToolResult {
    match r {
        Ok(v) => ok(&json!({ key: v })),
        Err(e) => fail(e),
    }
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
    /// The session's peer: a client acting as it, once the session has
    /// joined the mesh (its own peer id too, which list_peers leaves out).
    client: link::Link,
    /// Extra text for the session's instructions (the orchestrator's
    /// persona identity, `NAME.md`).
    identity: Option<String>,
    /// What the agent was shown (shared with the push loop).
    seen: push::Shared,
    /// What the client says about itself (backend, channels).
    hello: std::sync::Arc<hello::Hello>,
    tool_router: ToolRouter<Self>,
}

/// Create a schedule for one of the schedule tools (`kind` as text).
async fn schedule(client: &Client, kind: Option<String>, req: ScheduleReq) -> ToolResult {
    match parsed(kind.as_deref(), crate::core::schedule::ScheduleKind::parse) {
        Ok(kind) => done(client.create_schedule(&ScheduleReq { kind, ..req }).await),
        Err(e) => fail(e),
    }
}

/// An optional text parameter read as its type (a bad value is refused
/// with the same coded error the daemon gives).
fn parsed<T>(
    v: Option<&str>,
    parse: impl Fn(&str) -> Result<T, crate::core::error::Error>,
) -> Result<Option<T>, ClientError> {
    v.map(parse).transpose().map_err(ClientError::Api)
}

#[tool_router]
impl Mesh {
    fn new(
        client: link::Link,
        identity: Option<String>,
        seen: push::Shared,
        hello: std::sync::Arc<hello::Hello>,
    ) -> Self {
        let mut tool_router = Self::tool_router();
        for (name, route) in tool_router.map.iter_mut() {
            let mut schema = (*route.attr.input_schema).clone();
            params::portable(name, &mut schema);
            route.attr.input_schema = std::sync::Arc::new(schema);
        }
        Self {
            client,
            identity,
            seen,
            hello,
            tool_router,
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
        let (offline, me) = (
            a.show_offline.unwrap_or(false),
            a.include_self.unwrap_or(false),
        );
        let peers = self.client.list_peers(a.circle.as_deref()).await.map(|ps| {
            ps.into_iter()
                .filter(|p| offline || (!p.stale && p.status.as_str() != "offline"))
                .filter(|p| me || p.peer_id != self.client.peer_id())
                .collect::<Vec<_>>()
        });
        done_as("peers", peers)
    }

    #[tool(
        description = "Ask a peer a tracked question. Returns a correlation_id; the answer arrives as a reply (see inbox) and wait_on_ack returns it. With wait_seconds, waits for the answer in the same call and returns it (done=false: still open after the wait; an answer returned here is not left in the inbox too). Asking an offline peer queues the question."
    )]
    async fn ask(&self, Parameters(a): Parameters<AskArgs>) -> ToolResult {
        let req = AskReq {
            to: a.peer_name,
            circle: a.circle,
            text: a.query,
            reply_to: a.reply_to,
            wait_ms: a.wait_seconds.map(|s| s.min(3600) * 1000),
            ..Default::default()
        };
        done(self.client.ask(&req).await.map(|r| {
            let mut out = json!({
                "correlation_id": r.ask.correlation_id,
                "to": r.ask.to,
                "state": r.ask.state,
                "reply_to": r.ask.reply_to,
                "queued_offline": r.queued_offline,
            });
            if let Some(done) = r.done {
                out["done"] = json!(done);
                out["answer"] = json!(r.ask.answer);
                out["ack_message"] = json!(r.ask.ack_message);
            }
            out
        }))
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

    #[tool(
        description = "Refuse an ask you received: it is closed and the asker gets your reason."
    )]
    async fn decline(&self, Parameters(a): Parameters<DeclineArgs>) -> ToolResult {
        done(self.client.decline(&a.correlation_id, &a.reason).await)
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
        description = "Take your pending deliveries (asks to answer, replies, notes, notices) in order; each is returned once and confirmed as delivered. One with pushed=true was sent to you live earlier as a channel event that you may not have seen; it was unconfirmed until now. recent=true instead shows again the last ones this session already showed you (pushed or taken), up to limit."
    )]
    async fn inbox(&self, Parameters(a): Parameters<InboxArgs>) -> ToolResult {
        let limit = a.limit.unwrap_or(100).clamp(1, 1000);
        if a.recent.unwrap_or(false) {
            let recent = self.seen.lock().map(|s| s.recent(limit as usize));
            return ok(&json!({"deliveries": recent.unwrap_or_default()}));
        }
        let req = LeaseReq {
            max: Some(limit),
            ..Default::default()
        };
        match push::take_new(&self.client, &self.seen, &req).await {
            Ok(new) => {
                // Confirmed now; a failed confirmation is retried on the next
                // take, and the deliveries are not shown again meanwhile.
                let confirmed = push::confirm_pending(&self.client, &self.seen)
                    .await
                    .is_ok();
                let new: Vec<_> = new.iter().map(push::marked).collect();
                ok(&json!({"deliveries": new, "confirmed": confirmed}))
            }
            Err(e) => fail(e),
        }
    }

    #[tool(
        description = "Ask several peers the same question. Returns a parent_id for ask_many_result."
    )]
    async fn ask_many(&self, Parameters(a): Parameters<AskManyArgs>) -> ToolResult {
        let req = AskManyReq {
            to: a.peer_names,
            circle: a.circle,
            text: a.query,
            timeout_ms: Some(a.timeout_seconds.unwrap_or(300).saturating_mul(1000)),
            bypass_circle: false,
        };
        done(self.client.ask_many(&req).await)
    }

    #[tool(description = "Who answered an ask_many, what, and who is still open.")]
    async fn ask_many_result(&self, Parameters(a): Parameters<ParentArgs>) -> ToolResult {
        done(self.client.ask_many_result(&a.parent_id).await)
    }

    #[tool(description = "Set what you are working on; other peers see it in list_peers.")]
    async fn set_description(&self, Parameters(a): Parameters<DescriptionArgs>) -> ToolResult {
        let req = UpdatePeerReq {
            description: Some(a.description),
            tags: None,
        };
        done(self.client.update_me(&req).await)
    }

    #[tool(
        description = "Claim the orchestrator role of your circle (one holder per circle; a stale holder is taken over; force takes it from a live one)."
    )]
    async fn claim_orchestrator_role(&self, Parameters(a): Parameters<ClaimArgs>) -> ToolResult {
        done(
            self.client
                .claim_orchestrator(a.force.unwrap_or(false))
                .await,
        )
    }

    #[tool(description = "Give up the orchestrator role.")]
    async fn release_orchestrator_role(&self) -> ToolResult {
        done(self.client.release_orchestrator().await)
    }

    #[tool(
        description = "Who holds the orchestrator role of a circle, whether it is live, and the active persona."
    )]
    async fn orchestrator_status(&self, Parameters(a): Parameters<CircleArgs>) -> ToolResult {
        done(self.client.orchestrator_status(a.circle.as_deref()).await)
    }

    #[tool(
        description = "Orchestrator (or admin) only: start a coding session for a new peer in a tmux window (in the tmux session named after the circle), working in `path`. The peer is offline until the session registers (within the daemon's --spawn-timeout, else it is stopped and reported as peer_spawn_failed); `message` reaches it as its first note. Returns the new peer, its tmux pane and an `attach` command line to watch it. Address it by name with ask or notify_peer."
    )]
    async fn spawn_peer(&self, Parameters(a): Parameters<SpawnPeerArgs>) -> ToolResult {
        if a.profile.is_some() {
            return fail(ClientError::Api(crate::core::error::Error::bad_request(
                "spawn profiles are not supported: leave `profile` out and choose a `backend` (the daemon's --spawn-command BACKEND=COMMAND configures what each runs)",
            )));
        }
        let req = SpawnReq {
            path: a.path,
            backend: a.backend,
            name: a.name,
            circle: a.circle,
            command: a.command,
            server: None,
            message: a.message,
        };
        done(self.client.spawn_peer(&req).await)
    }

    #[tool(
        description = "Orchestrator (or admin) only: stop a peer's session. Its tmux pane is closed (unless already gone, or the peer has none) and it goes offline; jobs it was running go back to the queue. Returns the peer and pane_killed."
    )]
    async fn kill_peer(&self, Parameters(a): Parameters<KillPeerArgs>) -> ToolResult {
        let req = KillReq {
            name: a.peer_identifier,
            circle: a.circle,
        };
        done(self.client.kill_peer(&req).await)
    }

    #[tool(
        description = "The circle's routing persona: name, generation, last error, decisions and their timing."
    )]
    async fn persona_status(&self, Parameters(a): Parameters<CircleArgs>) -> ToolResult {
        done(self.client.persona_status(a.circle.as_deref()).await)
    }

    #[tool(
        description = "Route a queued job through the circle's persona and carry the route out (dry_run: only show it)."
    )]
    async fn dispatch(&self, Parameters(a): Parameters<DispatchArgs>) -> ToolResult {
        done(
            self.client
                .dispatch_job(&a.job_id, a.dry_run.unwrap_or(false))
                .await,
        )
    }

    #[tool(
        description = "Create a job. Without assigned_peer the circle's persona routes it as soon as someone fits."
    )]
    async fn job_create(&self, Parameters(a): Parameters<JobCreateArgs>) -> ToolResult {
        let now = crate::core::time::now_ms();
        let deadline_ms = match parsed(a.deadline_at.as_deref(), |w| {
            crate::core::schedule::parse_when(w, now)
        }) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let req = JobCreateReq {
            title: a.title,
            brief: a.brief.or(a.prompt),
            tags: a.tags,
            priority: a.priority,
            assign: a.assigned_peer,
            owner: a.owner_peer,
            deadline_ms,
            max_attempts: a.max_attempts,
            ..Default::default()
        };
        done(self.client.create_job(&req).await)
    }

    #[tool(description = "List jobs (newest first), filtered by state, owner, assignee or circle.")]
    async fn job_list(&self, Parameters(a): Parameters<JobListArgs>) -> ToolResult {
        let mut q: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("state", a.state),
            ("owner", a.owner),
            ("assignee", a.assignee),
            ("circle", a.circle),
        ] {
            if let Some(v) = v {
                q.push((k, v));
            }
        }
        done_as("jobs", self.client.list_jobs(&q).await)
    }

    #[tool(description = "A job's state, phase, assignee and attempts.")]
    async fn job_status(&self, Parameters(a): Parameters<JobIdArgs>) -> ToolResult {
        done(self.client.job(&a.job_id).await.map(|j| {
            json!({"job_id": j.job_id, "state": j.state, "phase": j.phase, "assignee": j.assignee, "attempts": j.attempts})
        }))
    }

    #[tool(description = "Everything about a job, with its progress notes.")]
    async fn job_show(&self, Parameters(a): Parameters<JobIdArgs>) -> ToolResult {
        done(self.client.job(&a.job_id).await)
    }

    #[tool(
        description = "Move a job you work on: running, succeeded, failed, canceled; add a progress note or a result."
    )]
    async fn job_update(&self, Parameters(a): Parameters<JobUpdateArgs>) -> ToolResult {
        let state = match parsed(a.state.as_deref(), crate::core::job::JobState::parse) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let req = JobUpdateReq {
            state,
            phase: a.phase,
            note: a.progress_note,
            result: a.result_summary,
            result_data: a.result_data.map(serde_json::Value::Object),
            error: a.error,
        };
        done(self.client.update_job(&a.job_id, &req).await)
    }

    #[tool(description = "A job's result: summary, structured data, error.")]
    async fn job_result(&self, Parameters(a): Parameters<JobIdArgs>) -> ToolResult {
        done(self.client.job(&a.job_id).await.map(|j| {
            json!({"job_id": j.job_id, "state": j.state, "result_summary": j.result_summary, "result_data": j.result_data, "error": j.error})
        }))
    }

    #[tool(description = "Cancel a job (work in progress: its assignee is asked to stop).")]
    async fn job_cancel(&self, Parameters(a): Parameters<JobCancelArgs>) -> ToolResult {
        done(self.client.cancel_job(&a.job_id, a.reason).await)
    }

    #[tool(
        description = "What a peer owes: each review with my_action (review-needed, re-review-suggested, none-needed, closed)."
    )]
    async fn review_queue(&self, Parameters(a): Parameters<ReviewQueueArgs>) -> ToolResult {
        done_as(
            "queue",
            self.client.review_queue(a.peer_name.as_deref()).await,
        )
    }

    #[tool(
        description = "Record your review of a PR or ref (verdict approve, changes or comment); the author is told."
    )]
    async fn mark_reviewed(&self, Parameters(a): Parameters<MarkArgs>) -> ToolResult {
        let req = ReviewRefReq {
            reference: a.pr_url,
            sha: a.last_reviewed_sha,
            verdict: a.verdict,
            notes: a.notes,
        };
        done(self.client.mark_review(&req).await)
    }

    #[tool(
        description = "Ask for a review of a PR or ref; the circle's persona picks the reviewer (never you)."
    )]
    async fn request_review(&self, Parameters(a): Parameters<RequestReviewArgs>) -> ToolResult {
        let req = ReviewRequestReq {
            reference: a.reference,
            head_sha: a.head_sha,
            tags: a.tags,
            ..Default::default()
        };
        done(self.client.request_review(&req).await)
    }

    #[tool(
        description = "Schedule a delivery to a peer once: fire_at is a delay (10m) or a time (RFC 3339)."
    )]
    async fn schedule_create(&self, Parameters(a): Parameters<ScheduleArgs>) -> ToolResult {
        let req = ScheduleReq {
            to: a.to_peer,
            circle: a.circle,
            text: a.text,
            fire_at: Some(a.fire_at),
            ..Default::default()
        };
        schedule(&self.client, a.kind, req).await
    }

    #[tool(description = "Remind yourself later (fire_at) or on a cron schedule.")]
    async fn schedule_self(&self, Parameters(a): Parameters<ScheduleSelfArgs>) -> ToolResult {
        let req = ScheduleReq {
            to: "self".into(),
            text: a.text,
            fire_at: a.fire_at,
            cron: a.cron,
            ..Default::default()
        };
        schedule(&self.client, a.kind, req).await
    }

    #[tool(
        description = "Schedule a recurring delivery to a peer (5-field cron or @hourly/@daily/@weekly, UTC)."
    )]
    async fn schedule_cron(&self, Parameters(a): Parameters<ScheduleCronArgs>) -> ToolResult {
        let req = ScheduleReq {
            to: a.to_peer,
            text: a.text,
            cron: Some(a.cron),
            ..Default::default()
        };
        schedule(&self.client, a.kind, req).await
    }

    #[tool(
        description = "Your one-shot schedules (include_cron: the recurring ones too; mine_only=false: every schedule of your circle)."
    )]
    async fn schedule_list(&self, Parameters(a): Parameters<ScheduleListArgs>) -> ToolResult {
        let cron = a.include_cron.unwrap_or(false);
        let r = self
            .client
            .list_schedules(!a.mine_only.unwrap_or(true))
            .await
            .map(|v| {
                v.into_iter()
                    .filter(|s| cron || s.cron.is_none())
                    .collect::<Vec<_>>()
            });
        done_as("schedules", r)
    }

    #[tool(description = "Delete one of your schedules.")]
    async fn schedule_delete(&self, Parameters(a): Parameters<ScheduleIdArgs>) -> ToolResult {
        done(self.client.delete_schedule(&a.schedule_id).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Mesh {
    /// Arguments are checked before rmcp decodes them: 0.17 aliases are
    /// renamed and an unknown name is refused (serde would drop it). The
    /// router's own failures (a missing or mistyped parameter, an unknown
    /// tool) become `isError` results with the code `bad_request`, like
    /// every other failure: one shape for the agent to read.
    async fn call_tool(
        &self,
        mut request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        use rmcp::model::CallToolResponse;
        // rmcp's decode errors quote the whole mistyped value: cut echoes to
        // 200 characters, as the HTTP edge does.
        let bad = |message: String| {
            let message = crate::core::limits::cut_echoes(&message);
            Ok(CallToolResult::structured_error(
                json!({"code": crate::core::ErrorCode::BadRequest.as_str(), "message": message}),
            )
            .into())
        };
        // What the request's `_meta` says is taken in (and recorded once
        // the session has joined), and the arguments are checked, before
        // and without a daemon: a refusal needs none.
        self.hello.request(&context.meta, &context.peer).await;
        if let Some(tool) = self.tool_router.get(&request.name) {
            let mut args = request.arguments.take().unwrap_or_default();
            if let Err(m) = params::check(&request.name, &tool.input_schema, &mut args) {
                return bad(m);
            }
            request.arguments = Some(args);
            // Before the session has joined the mesh (no daemon yet), a
            // tool answers why, and how to start one. (An unknown tool is
            // the router's to refuse, daemon or not.)
            if let Err(why) = self.client.ready().await {
                return Ok(why.into());
            }
        }
        // rmcp's words for arguments that do not fit a tool's parameters.
        const DECODE: &str = "failed to deserialize parameters";
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        match self.tool_router.call(tcc).await {
            Ok(CallToolResponse::Complete(r))
                if r.is_error == Some(true) && r.structured_content.is_none() =>
            {
                let text: Vec<String> = r
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect();
                let text = text.join(" ");
                if text.contains(DECODE) {
                    bad(text)
                } else {
                    Ok(r.into())
                }
            }
            Err(e)
                if e.code == rmcp::model::ErrorCode::INVALID_PARAMS
                    && e.message.contains(DECODE) =>
            {
                bad(e.message.to_string())
            }
            other => other,
        }
    }

    /// The tool list; the request's `_meta` (protocol 2026-07-28) is taken
    /// in as at `call_tool`.
    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, McpError> {
        self.hello.request(&context.meta, &context.peer).await;
        let modern = context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        Ok(rmcp::model::ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools: self.tool_router.list_all(),
            meta: None,
            next_cursor: None,
            ttl_ms: modern.then_some(0),
            cache_scope: modern.then_some(rmcp::model::CacheScope::Public),
        })
    }

    fn get_info(&self) -> ServerConfig {
        // Claude Code reads pushed messages as channel events.
        let mut experimental = rmcp::model::ExperimentalCapabilities::new();
        experimental.insert("claude/channel".into(), serde_json::Map::new());
        let caps = ServerCapabilities::builder()
            .enable_experimental_with(experimental)
            .enable_tools()
            .build();
        let mut text = String::from(
            "repowire: this session is a peer in a local mesh of coding agents. Ask peers tracked questions (ask, then wait_on_ack), answer the asks you receive (answer, ack or decline), and send notes (notify_peer, broadcast). Messages for you (asks to answer, replies, notes, jobs, reviews) may also arrive live as channel events when this server is enabled as a channel; either way take them with the inbox tool (one you may have seen live is marked pushed; answering or acking an ask settles it too): call it at the start, between tasks, and whenever you wait on others.",
        );
        if let Some(id) = &self.identity {
            text.push_str("\n\nYou are this circle's orchestrator. Your persona:\n\n");
            text.push_str(id);
        }
        let me = rmcp::model::Implementation::new("repowire", env!("CARGO_PKG_VERSION"))
            .with_title("repowire mesh")
            .with_description(env!("CARGO_PKG_DESCRIPTION"));
        ServerConfig::new(caps)
            .with_server_info(me)
            .with_instructions(text)
    }
}
