//! The parameters of the MCP tools: each field's doc comment is its
//! description in the tool's JSON schema (and in docs/mcp-tools.md).

use rmcp::schemars;
use serde::Deserialize;

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
    /// Wait up to this many seconds (at most 3600) for the answer and
    /// return it with the ask, as `wait_on_ack` would; omit to return at once.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
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
    /// Show again the last deliveries this session already showed you
    /// (at most 100 are kept), instead of taking new ones.
    #[serde(default)]
    pub recent: Option<bool>,
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
    /// Structured result (a JSON object).
    #[serde(default)]
    pub result_data: Option<serde_json::Map<String, serde_json::Value>>,
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SpawnPeerArgs {
    /// Absolute path of the project directory the session starts in.
    pub path: String,
    /// What runs: claude-code (default), codex, another backend the daemon configures (--spawn-command), or shell (runs `command`).
    #[serde(default)]
    pub backend: Option<String>,
    /// Admin only: the command the window runs instead of the backend's (a peer is refused: choose a backend).
    #[serde(default)]
    pub command: Option<String>,
    /// The circle to spawn into (default: yours); its tmux session is named after it.
    #[serde(default)]
    pub circle: Option<String>,
    /// A first note to the new peer (its task, who you are), delivered once it registers.
    #[serde(default)]
    pub message: Option<String>,
    /// The new peer's name (default: the directory's name, made unique in the circle).
    #[serde(default)]
    pub name: Option<String>,
    /// Not supported here (repowire 0.17's spawn profiles): giving one is refused with bad_request; configure a backend instead.
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct KillPeerArgs {
    /// The peer: its name (NAME or NAME@CIRCLE) or its peer_id, as list_peers shows them.
    pub peer_identifier: String,
    /// The peer's circle (default: yours).
    #[serde(default)]
    pub circle: Option<String>,
}
