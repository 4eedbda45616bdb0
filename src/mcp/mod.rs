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

use crate::api::{
    AskManyReq, AskReq, BroadcastReq, JobCreateReq, JobUpdateReq, LeaseReq, NotifyReq, RegisterReq,
    ReviewRefReq, ReviewRequestReq, ScheduleReq, UpdatePeerReq,
};
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
    client: Client,
    /// Extra text for the session's instructions (the orchestrator's
    /// persona identity, `NAME.md`).
    identity: Option<String>,
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
    /// List this circle (default: yours; another circle is refused).
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AskArgs {
    /// The peer to ask (NAME, or NAME@CIRCLE).
    pub peer_name: String,
    /// The question.
    pub query: String,
    /// The correlation id of an ask this one follows up (one you sent or received).
    #[serde(default)]
    pub reply_to: Option<String>,
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
pub struct DeclineArgs {
    /// The correlation id of the ask you received.
    pub correlation_id: String,
    /// Why you decline (delivered to the asker).
    pub reason: String,
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AskManyArgs {
    /// The peers to ask.
    pub peer_names: Vec<String>,
    /// The question.
    pub query: String,
    /// The peers' circle (default: yours; another circle is refused).
    #[serde(default)]
    pub circle: Option<String>,
    /// Expire the asks after this many seconds (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ParentArgs {
    /// The parent id ask_many returned.
    pub parent_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DescriptionArgs {
    /// What you are working on, for the other peers.
    pub description: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ClaimArgs {
    /// Take the role even from a live holder (it is demoted and told).
    #[serde(default)]
    pub force: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CircleArgs {
    /// The circle (default: yours).
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JobIdArgs {
    /// The job id.
    pub job_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JobCancelArgs {
    /// The job id.
    pub job_id: String,
    /// Why (kept as a note on the job and told to its assignee).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DispatchArgs {
    /// The queued job to route through the circle's persona.
    pub job_id: String,
    /// Only show the route; change nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JobCreateArgs {
    /// A short title.
    pub title: String,
    /// The prompt for whoever takes it.
    #[serde(default)]
    pub brief: Option<String>,
    /// The same as brief (repowire's name).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Tags the persona matches against peers (e.g. rust, docs).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Higher runs first (default 0).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Give it to this peer (else the persona routes it).
    #[serde(default)]
    pub assigned_peer: Option<String>,
    /// Who is told when it ends (default: you).
    #[serde(default)]
    pub owner_peer: Option<String>,
    /// When it must be done: RFC 3339 or a delay like 2h.
    #[serde(default)]
    pub deadline_at: Option<String>,
    /// How many times it may be tried (default: the daemon's).
    #[serde(default)]
    pub max_attempts: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JobListArgs {
    /// queued, dispatched, running, succeeded, failed, canceled or timed_out.
    #[serde(default)]
    pub state: Option<String>,
    /// Only jobs owned by this peer.
    #[serde(default)]
    pub owner: Option<String>,
    /// Only jobs assigned to this peer.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Only this circle (default: yours).
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JobUpdateArgs {
    /// The job id.
    pub job_id: String,
    /// running, succeeded, failed or canceled.
    #[serde(default)]
    pub state: Option<String>,
    /// What you are doing now, in a few words (e.g. testing).
    #[serde(default)]
    pub phase: Option<String>,
    /// A progress note.
    #[serde(default)]
    pub progress_note: Option<String>,
    /// A summary of the result (for succeeded or failed).
    #[serde(default)]
    pub result_summary: Option<String>,
    /// Structured result (any JSON).
    #[serde(default)]
    pub result_data: Option<serde_json::Value>,
    /// What went wrong (for failed).
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReviewQueueArgs {
    /// Whose queue (default: yours).
    #[serde(default)]
    pub peer_name: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MarkArgs {
    /// The PR URL or ref you reviewed.
    pub pr_url: String,
    /// The sha you reviewed (default: the current head).
    #[serde(default)]
    pub last_reviewed_sha: Option<String>,
    /// approve, changes or comment.
    #[serde(default)]
    pub verdict: Option<String>,
    /// Your review notes (sent to the author).
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RequestReviewArgs {
    /// A PR URL or any ref string.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The commit under review; a new sha re-opens the review.
    pub head_sha: String,
    /// Tags the persona matches against reviewers.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScheduleArgs {
    /// A peer name, or self.
    pub to_peer: String,
    /// The message (kind job: the job's title; checkin: JSON arguments for the script).
    pub text: String,
    /// A delay (10m) or a time (RFC 3339).
    pub fire_at: String,
    /// notify (default), ask, job or checkin.
    #[serde(default)]
    pub kind: Option<String>,
    /// The target's circle (default: yours; another circle is refused).
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScheduleSelfArgs {
    /// The reminder text.
    pub text: String,
    /// A delay (10m) or a time (RFC 3339); or give cron.
    #[serde(default)]
    pub fire_at: Option<String>,
    /// Recurring instead: 5-field cron or @hourly/@daily/@weekly (UTC).
    #[serde(default)]
    pub cron: Option<String>,
    /// notify (default), ask, job or checkin.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScheduleCronArgs {
    /// A peer name, or self.
    pub to_peer: String,
    /// The message (kind job: the job's title; checkin: JSON arguments for the script).
    pub text: String,
    /// 5-field cron or @hourly/@daily/@weekly (UTC).
    pub cron: String,
    /// notify (default), ask, job or checkin.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScheduleListArgs {
    /// Only your schedules (default true).
    #[serde(default)]
    pub mine_only: Option<bool>,
    /// Also list recurring (cron) schedules (default false: one-shot ones only).
    #[serde(default)]
    pub include_cron: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScheduleIdArgs {
    /// The schedule id (schedule_create, schedule_self and schedule_cron return it).
    pub schedule_id: String,
}

/// Create a schedule for one of the schedule tools (`kind` as text).
async fn schedule(client: &Client, kind: Option<String>, req: ScheduleReq) -> ToolResult {
    match kind_of(kind) {
        Ok(kind) => done(client.create_schedule(&ScheduleReq { kind, ..req }).await),
        Err(e) => fail(e),
    }
}

fn kind_of(k: Option<String>) -> Result<Option<crate::core::schedule::ScheduleKind>, ClientError> {
    k.map(|k| crate::core::schedule::ScheduleKind::parse(&k))
        .transpose()
        .map_err(ClientError::Api)
}

#[tool_router]
impl Mesh {
    pub fn new(client: Client, identity: Option<String>) -> Self {
        Self {
            client,
            identity,
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
        match self.client.list_peers(a.circle.as_deref()).await {
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
            reply_to: a.reply_to,
            ..Default::default()
        };
        match self.client.ask(&req).await {
            Ok(r) => ok(&json!({
                "correlation_id": r.ask.correlation_id,
                "to": r.ask.to,
                "state": r.ask.state,
                "reply_to": r.ask.reply_to,
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

    #[tool(
        description = "Refuse an ask you received: it is closed and the asker gets your reason."
    )]
    async fn decline(&self, Parameters(a): Parameters<DeclineArgs>) -> ToolResult {
        let msg = format!("Declined: {}", a.reason);
        done(self.client.ack(&a.correlation_id, Some(msg)).await)
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
        let deadline_ms = match a.deadline_at.as_deref() {
            Some(w) => match crate::core::schedule::parse_when(w, crate::core::time::now_ms()) {
                Ok(v) => Some(v),
                Err(e) => return fail(ClientError::Api(e)),
            },
            None => None,
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
        match self.client.job(&a.job_id).await {
            Ok(j) => ok(
                &json!({"job_id": j.job_id, "state": j.state, "phase": j.phase, "assignee": j.assignee, "attempts": j.attempts}),
            ),
            Err(e) => fail(e),
        }
    }

    #[tool(description = "Everything about a job, with its progress notes.")]
    async fn job_show(&self, Parameters(a): Parameters<JobIdArgs>) -> ToolResult {
        done(self.client.job(&a.job_id).await)
    }

    #[tool(
        description = "Move a job you work on: running, succeeded, failed, canceled; add a progress note or a result."
    )]
    async fn job_update(&self, Parameters(a): Parameters<JobUpdateArgs>) -> ToolResult {
        let state = match a
            .state
            .as_deref()
            .map(crate::core::job::JobState::parse)
            .transpose()
        {
            Ok(s) => s,
            Err(e) => return fail(ClientError::Api(e)),
        };
        let req = JobUpdateReq {
            state,
            phase: a.phase,
            note: a.progress_note,
            result: a.result_summary,
            result_data: a.result_data,
            error: a.error,
        };
        done(self.client.update_job(&a.job_id, &req).await)
    }

    #[tool(description = "A job's result: summary, structured data, error.")]
    async fn job_result(&self, Parameters(a): Parameters<JobIdArgs>) -> ToolResult {
        match self.client.job(&a.job_id).await {
            Ok(j) => ok(
                &json!({"job_id": j.job_id, "state": j.state, "result_summary": j.result_summary, "result_data": j.result_data, "error": j.error}),
            ),
            Err(e) => fail(e),
        }
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
        // NAME@CIRCLE: the daemon refuses a circle that is not yours.
        let to = match a.circle {
            Some(c) if a.to_peer != "self" && !a.to_peer.contains('@') => {
                format!("{}@{c}", a.to_peer)
            }
            _ => a.to_peer,
        };
        let req = ScheduleReq {
            to,
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
    /// The router's own failures (a missing or mistyped parameter, an
    /// unknown tool) become `isError` results with the code `bad_request`,
    /// like every other failure: one shape for the agent to read.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        use rmcp::model::CallToolResponse;
        let bad =
            |message: String| {
                Ok(CallToolResult::structured_error(
                    json!({"code": "bad_request", "message": message}),
                )
                .into())
            };
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
                bad(text.join(" "))
            }
            Err(e) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
                bad(e.message.to_string())
            }
            other => other,
        }
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
            "repowire: this session is a peer in a local mesh of coding agents. Ask peers tracked questions (ask, then wait_on_ack), answer the asks you receive (answer, ack or decline), and send notes (notify_peer, broadcast). Messages for you arrive as channel events, or through the inbox tool.",
        );
        if let Some(id) = &self.identity {
            text.push_str("\n\nYou are this circle's orchestrator. Your persona:\n\n");
            text.push_str(id);
        }
        ServerConfig::new(caps).with_instructions(text)
    }
}

/// How `repowire mcp` joins the mesh.
pub struct Join {
    /// Push deliveries into the session (else: the `inbox` tool only).
    pub push: bool,
    pub name: String,
    pub circle: Option<String>,
    pub backend: Option<String>,
    pub role: Option<crate::core::peer::Role>,
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
        role: join.role,
        project_path: join.project_path.clone(),
        route: Some(if join.push { "channel" } else { "pull" }.into()),
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
    // The orchestrator gets its persona's identity text at session start.
    let identity = match client.whoami().await {
        Ok(me) if me.role == crate::core::peer::Role::Orchestrator => client
            .persona_status(None)
            .await
            .ok()
            .and_then(|s| s.identity),
        _ => None,
    };
    let server = Mesh::new(client.clone(), identity)
        .serve(rmcp::transport::stdio())
        .await
        .context("while starting the MCP session")?;
    let pusher = join
        .push
        .then(|| tokio::spawn(push(client.clone(), server.peer().clone(), home.clone())));
    let _ = server.waiting().await;
    heart.abort();
    if let Some(p) = pusher {
        p.abort();
    }
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

/// What a pushed message says: who, what kind, the id to answer with.
fn channel_text(d: &crate::api::DeliveryInfo) -> String {
    let from = d.from.as_deref().unwrap_or("repowire");
    match (d.kind, d.correlation_id.as_deref()) {
        (
            crate::core::delivery::DeliveryKind::Ask
            | crate::core::delivery::DeliveryKind::Reminder,
            Some(id),
        ) => format!(
            "{from} asks ({}): {}\n(Reply with the answer tool, correlation_id {id}; or ack / decline.)",
            d.kind, d.text
        ),
        (crate::core::delivery::DeliveryKind::Reply, Some(id)) => {
            format!("{from} answered your ask {id}: {}", d.text)
        }
        (kind, _) => format!("{kind} from {from}: {}", d.text),
    }
}

/// Which deliveries this session has already pushed, so that one handed out
/// again (its confirmation was lost to a daemon restart, say) is confirmed
/// but not shown twice. Bounded: the oldest ids are forgotten first.
#[derive(Default)]
struct Pushed {
    order: std::collections::VecDeque<String>,
    ids: std::collections::HashSet<String>,
    /// Pushed but not yet confirmed to the daemon.
    unconfirmed: Vec<String>,
}

impl Pushed {
    const KEEP: usize = 10_000;

    /// Record `id` as pushed; false if it was pushed before.
    fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_string());
        self.order.push_back(id.to_string());
        if self.order.len() > Self::KEEP
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

/// Push this peer's deliveries into the session as Claude Code channel
/// events (`notifications/claude/channel`), each once, confirmed after it
/// was sent. A confirmation that fails is retried; one that is lost comes
/// back after its lease and is confirmed without being pushed again; one
/// leased but never pushed comes back after its lease and is pushed. So a
/// daemon restart or a dropped connection loses and doubles nothing.
async fn push(client: Client, peer: rmcp::Peer<rmcp::RoleServer>, home: crate::home::Home) {
    use rmcp::model::{CustomNotification, ServerNotification};
    let mut pushed = Pushed::default();
    let mut backoff = Duration::from_millis(200);
    loop {
        let unconfirmed = std::mem::take(&mut pushed.unconfirmed);
        let r = if unconfirmed.is_empty() {
            Ok(())
        } else {
            client.confirm(unconfirmed.clone()).await.map(|_| ())
        };
        let r = match r {
            Ok(_) => {
                let req = LeaseReq {
                    max: Some(50),
                    wait_ms: Some(25_000),
                    lease_ms: None,
                };
                client.lease(&req).await
            }
            Err(e) => {
                pushed.unconfirmed = unconfirmed;
                Err(e)
            }
        };
        let items = match r {
            Ok(r) => {
                backoff = Duration::from_millis(200);
                r.deliveries
            }
            Err(e) => {
                tracing::debug!("push: {e}; retrying");
                // The daemon may have restarted elsewhere: follow its record.
                // (Tool calls share this client, so they follow too.)
                client.set_base(&home.daemon_url(None));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        for d in &items {
            if pushed.first_time(&d.delivery_id) {
                let n = ServerNotification::CustomNotification(CustomNotification::new(
                    "notifications/claude/channel",
                    Some(channel_event(d)),
                ));
                if peer.send_notification(n).await.is_err() {
                    return; // the session is gone: the lease expires and they come back
                }
            }
            pushed.unconfirmed.push(d.delivery_id.clone());
        }
    }
}

/// The params of one channel event: `{content, meta}`.
fn channel_event(d: &crate::api::DeliveryInfo) -> serde_json::Value {
    let mut meta = json!({
        "kind": d.kind,
        "from": d.from,
        "delivery_id": d.delivery_id,
    });
    if let Some(c) = &d.correlation_id {
        meta["correlation_id"] = json!(c);
    }
    if let Some(j) = &d.job_id {
        meta["job_id"] = json!(j);
    }
    json!({"content": channel_text(d), "meta": meta})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_pushed_once_and_old_ids_are_forgotten() {
        let mut p = Pushed::default();
        assert!(p.first_time("dl-1"));
        assert!(!p.first_time("dl-1"), "a second hand-out is not pushed");
        for i in 0..Pushed::KEEP {
            assert!(p.first_time(&format!("x-{i}")));
        }
        assert_eq!(p.ids.len(), Pushed::KEEP, "bounded");
        assert!(p.first_time("dl-1"), "the oldest was forgotten");
    }
}
