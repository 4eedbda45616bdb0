//! Wire types of the daemon's HTTP API, shared by the daemon and the client.
//!
//! Every body is JSON. Times are Unix milliseconds (`*_ms`). Errors are
//! [`ErrorBody`]. `docs/http-api.md` documents each route.

use repowire_core::ask::AskState;
use repowire_core::delivery::{DeliveryKind, DeliveryRoute, DeliveryState};
use repowire_core::peer::{Role, Status};
use serde::{Deserialize, Serialize};

mod convert;
mod validate;
pub use validate::Validate;

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub version: String,
    pub pid: u32,
    pub url: String,
    pub home: String,
    pub started_at_ms: i64,
    pub uptime_ms: i64,
}

/// A peer as clients see it. `stale` is computed from `last_seen_ms`; a
/// `ghost` is a stale peer whose status still claims it is there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: String,
    pub circle: String,
    pub role: Role,
    pub backend: String,
    pub project_path: String,
    pub tags: Vec<String>,
    pub description: String,
    pub status: Status,
    pub route: String,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
    pub last_seen_age_s: i64,
    pub stale: bool,
    pub ghost: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    pub name: String,
    #[serde(default)]
    pub circle: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub project_path: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub route: Option<String>,
    /// With a tmux route: the claim this registration set on the pane (the
    /// pane option `@repowire_claim_<claim>`, 32 hex characters), which the
    /// daemon looks for before it records the route
    /// (`repowire_core::tmux::claim_option`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmux_claim: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResp {
    pub peer: PeerInfo,
    /// The peer's bearer token: only when the peer is new (a resume keeps the
    /// token the caller already holds).
    pub token: Option<String>,
    pub resumed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePeerReq {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatReq {
    #[serde(default)]
    pub status: Option<Status>,
}

/// `POST /v1/debug/clock` (a daemon started with `--manual-clock` only):
/// move its clock forward by `advance_ms` (0 to one year).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockReq {
    pub advance_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneReq {
    /// Prune peers not seen for this long (default: the daemon's stale_after;
    /// then offline peers routed to a tmux pane go too, however recent).
    #[serde(default)]
    pub older_than_ms: Option<i64>,
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneResp {
    pub pruned: Vec<PeerInfo>,
}

/// `POST /v1/peers/spawn`: start an agent session for a new peer in a tmux
/// window (the circle's orchestrator, or the admin).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnReq {
    /// The project directory: an absolute path to an existing directory.
    pub path: String,
    /// A configured backend (`claude-code`, `codex`, others the daemon's
    /// `--spawn-command` adds) or `shell` (runs `command`). Default:
    /// `shell` with a command, else `claude-code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The peer's name (must be free); default: the directory's name, made
    /// unique in the circle (`app`, `app-2`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default: the caller's circle (the admin's: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<String>,
    /// Admin only: what the window runs instead of the backend's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The tmux server: a socket name (`-L`) or path (`-S`); default the
    /// daemon's `--tmux-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A first note to the new peer, from the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpawnResp {
    /// The new peer: `offline` until its session registers.
    pub peer: PeerInfo,
    /// Its tmux pane (`%N`).
    pub pane: String,
    /// The tmux server's socket path.
    pub server: String,
    /// The tmux session holding its window (named after the circle).
    pub session: String,
    /// A command line that shows the pane.
    pub attach: String,
}

/// `POST /v1/peers/kill`: stop a peer's session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillReq {
    /// The peer: `NAME`, `NAME@CIRCLE` or its peer id (`peer_identifier`,
    /// repowire 0.17's name, is accepted too).
    #[serde(alias = "peer_identifier")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillResp {
    /// The peer, offline now.
    pub peer: PeerInfo,
    /// Whether its tmux pane was closed (false: it had none, or it was gone).
    pub pane_killed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimReq {
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimResp {
    pub circle: String,
    pub holder: PeerInfo,
    /// The demoted holder's name, if the role was taken over.
    pub previous: Option<String>,
    /// `stale` or `forced` when the role was taken over.
    pub takeover: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrchestratorStatus {
    pub circle: String,
    pub present: bool,
    pub name: Option<String>,
    pub peer_id: Option<String>,
    pub last_seen_ms: Option<i64>,
    pub last_seen_age_s: Option<i64>,
    pub stale: bool,
    pub stale_after_s: i64,
    /// The circle's active persona (None: the built-in policy).
    pub persona: Option<PersonaBrief>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonaBrief {
    pub name: String,
    pub sha256: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskReq {
    /// `NAME` or `NAME@CIRCLE`.
    pub to: String,
    /// The target's circle (default: the sender's).
    #[serde(default)]
    pub circle: Option<String>,
    pub text: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Admin only: allow a target in another circle.
    #[serde(default)]
    pub bypass_circle: bool,
    /// The correlation id of an ask this one follows up (the caller must
    /// have sent or received it).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Wait up to this long (at most an hour) for the ask to end, and answer
    /// with it as it is then (`AskResp::done` says whether it ended): an ask
    /// and its wait in one request, as repowire 0.17's blocking `/query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AskInfo {
    pub correlation_id: String,
    pub parent_id: Option<String>,
    pub from: String,
    pub from_peer_id: String,
    pub to: String,
    pub to_peer_id: String,
    pub circle: String,
    pub text: String,
    pub state: AskState,
    pub answer: Option<String>,
    pub ack_message: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
    pub reminded_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// The ask this one follows up.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The job this ask dispatches.
    #[serde(default)]
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskResp {
    pub ask: AskInfo,
    pub delivery_id: String,
    /// The recipient is offline or stale: the ask waits in its inbox.
    pub queued_offline: bool,
    /// Only for an ask sent with `wait_ms`: whether it ended within the wait
    /// (`ask` then holds its answer or how it ended); false: it is still
    /// open, as after a timed-out `GET /v1/asks/{id}/wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskManyReq {
    pub to: Vec<String>,
    #[serde(default)]
    pub circle: Option<String>,
    pub text: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub bypass_circle: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskManyResp {
    pub parent_id: String,
    pub asks: Vec<AskResp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskManyEntry {
    pub peer: String,
    pub correlation_id: String,
    pub state: AskState,
    pub answer: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskManyResult {
    pub parent_id: String,
    pub text: String,
    pub entries: Vec<AskManyEntry>,
    /// Names whose ask is not yet terminal.
    pub open: Vec<String>,
    pub done: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckReq {
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /v1/asks/{id}/decline`: the recipient refuses the ask.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineReq {
    /// Why (delivered to the asker).
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerReq {
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitResp {
    pub ask: AskInfo,
    /// The ask reached a terminal state; false means the wait timed out.
    pub done: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyReq {
    pub to: String,
    #[serde(default)]
    pub circle: Option<String>,
    pub text: String,
    #[serde(default)]
    pub bypass_circle: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyResp {
    pub delivery_id: String,
    pub to: String,
    pub circle: String,
    pub queued_offline: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastReq {
    pub text: String,
    /// The circle to broadcast to (default: the sender's).
    #[serde(default)]
    pub circle: Option<String>,
    /// Admin only: allow another circle than the sender's.
    #[serde(default)]
    pub bypass_circle: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastResp {
    pub circle: String,
    pub deliveries: Vec<NotifyResp>,
    /// Peers whose inbox was full (max_pending_per_peer): they got nothing.
    pub skipped_inbox_full: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseReq {
    /// At most this many (default 100).
    #[serde(default)]
    pub max: Option<u32>,
    /// Long-poll up to this long when nothing is pending (default 0).
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// Lease length (default: the daemon's lease).
    #[serde(default)]
    pub lease_ms: Option<u64>,
    /// The route that carries what is leased, recorded in its
    /// `delivery_leased` event: `pull` (default: the agent takes its inbox)
    /// or `hook` (`repowire hook <event>` injects it as context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<DeliveryRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryInfo {
    pub delivery_id: String,
    pub seq: i64,
    pub kind: DeliveryKind,
    pub from: Option<String>,
    pub from_circle: Option<String>,
    pub correlation_id: Option<String>,
    pub text: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub lease_until_ms: Option<i64>,
    /// The job it is about (a dispatch, a cancel request, a job's end).
    #[serde(default)]
    pub job_id: Option<String>,
    /// For an ask: the earlier ask it follows up.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// A channel push already sent it into the session as a live hint
    /// (the agent may or may not have seen it); it is still unconfirmed.
    #[serde(default)]
    pub pushed: bool,
    /// When it was pushed live (with `pushed`).
    #[serde(default)]
    pub pushed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxResp {
    pub deliveries: Vec<DeliveryInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmReq {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfirmResp {
    /// How many of the ids were newly marked delivered.
    pub confirmed: usize,
}

/// `POST /v1/inbox/pushed`: deliveries a channel push sent into the session
/// as live hints (the caller's own, leased to its stream).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedReq {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushedResp {
    /// How many of the ids were newly recorded as pushed (the others were
    /// confirmed or dropped meanwhile, or recorded already).
    pub pushed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventInfo {
    pub seq: i64,
    pub ts_ms: i64,
    pub kind: String,
    pub subject: String,
    pub related: Option<String>,
    pub circle: Option<String>,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventsResp {
    pub events: Vec<EventInfo>,
}

/// A one-time dashboard login (`POST /v1/dashboard/login`, admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardLogin {
    /// The link to open: good once, for `expires_in_s`.
    pub url: String,
    pub expires_in_s: i64,
}

/// An open ask on the dashboard's timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenAsk {
    #[serde(flatten)]
    pub ask: AskInfo,
    /// Open past the daemon's `--reminder-after`.
    pub overdue: bool,
}

/// What the dashboard shows besides the plain lists (`GET
/// /v1/dashboard/overview`, admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardOverview {
    /// Open asks, newest first (at most 200).
    pub asks: Vec<OpenAsk>,
    /// Open reviews, most recently changed first (at most 100).
    pub reviews: Vec<ReviewInfo>,
    /// Each peer's load by peer id (open asks addressed to it, its jobs'
    /// included), as personas see it; peers with none are left out.
    pub loads: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceResp {
    pub id: String,
    pub events: Vec<EventInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoctorResp {
    pub db_ok: bool,
    pub db_check: String,
    pub schema_version: i64,
    pub peers: i64,
    pub stale_peers: Vec<PeerInfo>,
    pub open_asks: i64,
    pub pending_deliveries: i64,
    pub events: i64,
    /// Write transactions committed since the daemon started, and the
    /// writes they held (the frequent requests' writes share commits).
    #[serde(default)]
    pub commits: u64,
    #[serde(default)]
    pub writes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsePersonaReq {
    pub name: String,
    /// Default: the caller's circle, else `default`.
    #[serde(default)]
    pub circle: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleReq {
    #[serde(default)]
    pub circle: Option<String>,
}

/// The active persona of a circle and how it is doing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonaStatus {
    pub circle: String,
    /// None: the built-in policy decides.
    pub persona: Option<String>,
    pub sha256: Option<String>,
    pub source: Option<String>,
    pub generation: Option<u64>,
    pub loaded_at_ms: Option<i64>,
    pub last_reload_ms: Option<i64>,
    /// The last load, reload or decision error, with file:line.
    pub last_error: Option<String>,
    pub decisions: u64,
    pub fallbacks: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    /// The persona's identity text (`NAME.md` beside the script), handed to
    /// the orchestrator agent at session start.
    pub identity: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideReq {
    #[serde(default)]
    pub circle: Option<String>,
    #[serde(default)]
    pub job: Option<repowire_core::mesh::JobInput>,
    #[serde(default)]
    pub review: Option<repowire_core::mesh::ReviewInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecideResp {
    pub circle: String,
    pub persona: Option<String>,
    pub generation: Option<u64>,
    pub route: repowire_core::route::RouteOut,
}

/// A job as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobInfo {
    pub job_id: String,
    pub circle: String,
    pub title: String,
    pub brief: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub priority: i64,
    pub created_by: String,
    pub owner: String,
    pub assignee: Option<String>,
    pub state: repowire_core::job::JobState,
    pub phase: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub previous_assignees: Vec<String>,
    pub result_summary: Option<String>,
    pub result_data: Option<serde_json::Value>,
    pub error: Option<String>,
    pub deadline_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// A cancel waiting for the assignee to confirm (or the grace period).
    pub cancel_requested_at_ms: Option<i64>,
    pub notes: Vec<JobNote>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobNote {
    pub ts_ms: i64,
    pub by: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobCreateReq {
    pub title: String,
    #[serde(default)]
    pub brief: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub priority: Option<i64>,
    /// Assign straight to this peer (else the persona dispatches it).
    #[serde(default)]
    pub assign: Option<String>,
    /// Default: the creator.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// Wait this long × the attempt number before a retry (default 10 s).
    #[serde(default)]
    pub backoff_ms: Option<i64>,
}

/// `POST /v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobCancelReq {
    /// Why: kept as a note on the job and told to the assignee.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobUpdateReq {
    #[serde(default)]
    pub state: Option<repowire_core::job::JobState>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub result_data: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchReq {
    /// Only decide; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchResp {
    pub job: JobInfo,
    pub persona: Option<String>,
    pub route: repowire_core::route::RouteOut,
    /// What was done: `assigned`, `deferred`, `declined`, `asked_user`,
    /// `dry_run`, or `not_applicable` (e.g. an ask route for a job).
    pub outcome: repowire_core::route::DispatchOutcome,
    pub delivery_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequestReq {
    /// A PR URL or any ref string.
    #[serde(rename = "ref")]
    pub reference: String,
    pub head_sha: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Default: the caller.
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReviewerState {
    pub reviewer: String,
    pub last_reviewed_sha: Option<String>,
    pub verdict: Option<String>,
    pub notes: Option<String>,
    pub my_action: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReviewInfo {
    pub review_id: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub circle: String,
    pub title: String,
    pub head_sha: String,
    pub author: String,
    pub requested_by: String,
    pub tags: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    pub reviewers: Vec<ReviewerState>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewRequestResp {
    pub review: ReviewInfo,
    pub persona: Option<String>,
    pub route: repowire_core::route::RouteOut,
}

/// One line of a peer's review queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueEntry {
    #[serde(rename = "ref")]
    pub reference: String,
    pub title: String,
    pub head_sha: String,
    pub author: String,
    pub last_reviewed_sha: Option<String>,
    pub verdict: Option<String>,
    /// `review-needed`, `re-review-suggested`, `none-needed` or `closed`.
    pub my_action: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRefReq {
    #[serde(rename = "ref")]
    pub reference: String,
    /// update: the new head; mark: the sha reviewed (default: the head).
    #[serde(default)]
    pub sha: Option<String>,
    /// mark: `approve`, `changes` or `comment`.
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleReq {
    /// A peer name (or NAME@CIRCLE), or `self`.
    pub to: String,
    /// The target's circle (default: the owner's; another one is refused).
    #[serde(default)]
    pub circle: Option<String>,
    /// `notify` (default), `ask`, `job` (text = the job's title), `checkin`.
    #[serde(default)]
    pub kind: Option<repowire_core::schedule::ScheduleKind>,
    /// The message; for `checkin`, JSON arguments handed to the script (or text).
    #[serde(default)]
    pub text: String,
    /// One-shot: a delay (`10m`) or a time (RFC 3339).
    #[serde(default)]
    pub fire_at: Option<String>,
    /// Recurring: 5-field cron or @hourly/@daily/@weekly.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone for cron (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
    /// `fire_once` (default) or `skip`: fires missed while the daemon was down.
    #[serde(default)]
    pub missed: Option<repowire_core::schedule::MissedPolicy>,
    /// `checkin`: the persona (or check-in script file) to run; default the
    /// circle's active persona.
    #[serde(default)]
    pub persona: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduleInfo {
    pub schedule_id: String,
    pub circle: String,
    pub owner: String,
    pub to: String,
    pub kind: repowire_core::schedule::ScheduleKind,
    pub text: String,
    pub persona: Option<String>,
    pub fire_at_ms: Option<i64>,
    pub cron: Option<String>,
    pub tz: String,
    pub missed: repowire_core::schedule::MissedPolicy,
    pub next_fire_ms: Option<i64>,
    pub last_fired_ms: Option<i64>,
    pub fire_count: i64,
    pub failures: i64,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub enabled: bool,
    pub created_at_ms: i64,
}
