//! The event vocabulary: every kind of event the daemon records, with its payload typed.
//!
//! An event row (and the wire `EventInfo`) carries a `kind` string and a JSON
//! `payload`. Both come from one [`Event`] value here: [`Event::kind`] names it
//! and [`Event::payload`] renders it, so a writer cannot pair a kind with the
//! wrong payload, and a reader matches on [`EventKind`] or on the typed
//! [`Event`] ([`Event::parse`]) instead of comparing strings and indexing
//! `payload["to"]`. The strings and the JSON values are exactly what the log
//! held before these types existed; the unit tests pin both. (The stored text
//! lists an object's keys in field order, not sorted, since the payload is
//! written in one pass, [`Event::payload_json`]; every reader parses it.)
//!
//! Kinds named after a state (`ask_closed`, `job_failed`, …) are written from
//! several places with different payloads, so their payload is an untagged
//! enum of the shapes each place writes ([`AskMove`], [`JobMove`]).

use crate::ask::AskState;
use crate::delivery::{DeliveryKind, DeliveryRoute};
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::peer::{Role, Status, str_enum};
use crate::schedule::ScheduleKind;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

str_enum!(
    /// What an event says happened: the `kind` column and the SSE `event:` name.
    EventKind {
        AskQueued => "ask_queued",
        AskDelivered => "ask_delivered",
        AskPickedUp => "ask_picked_up",
        AskAnswered => "ask_answered",
        AskClosed => "ask_closed",
        AskExpired => "ask_expired",
        AskCanceled => "ask_canceled",
        AskFailed => "ask_failed",
        AskReminded => "ask_reminded",
        AskManyCreated => "ask_many_created",
        DeliveryQueued => "delivery_queued",
        DeliveryLeased => "delivery_leased",
        DeliveryConfirmed => "delivery_confirmed",
        DeliveryDropped => "delivery_dropped",
        DeliveryPushed => "delivery_pushed",
        DeliveryFailed => "delivery_failed",
        JobCreated => "job_created",
        JobQueued => "job_queued",
        JobDispatched => "job_dispatched",
        JobRunning => "job_running",
        JobSucceeded => "job_succeeded",
        JobFailed => "job_failed",
        JobCanceled => "job_canceled",
        JobTimedOut => "job_timed_out",
        JobUpdated => "job_updated",
        JobCancelRequested => "job_cancel_requested",
        JobExecutorLost => "job_executor_lost",
        JobRetried => "job_retried",
        ReviewRequested => "review_requested",
        ReviewReopened => "review_reopened",
        ReviewAssigned => "review_assigned",
        ReviewUpdated => "review_updated",
        ReviewMarked => "review_marked",
        ReviewClosed => "review_closed",
        ScheduleCreated => "schedule_created",
        SchedulePaused => "schedule_paused",
        ScheduleResumed => "schedule_resumed",
        ScheduleDeleted => "schedule_deleted",
        ScheduleFired => "schedule_fired",
        ScheduleFireFailed => "schedule_fire_failed",
        PeerRegistered => "peer_registered",
        PeerResumed => "peer_resumed",
        PeerUpdated => "peer_updated",
        PeerStatus => "peer_status",
        PeerAlive => "peer_alive",
        PeerGhost => "peer_ghost",
        PeerGone => "peer_gone",
        PeerSpawned => "peer_spawned",
        PeerSpawnFailed => "peer_spawn_failed",
        PeerUnregistered => "peer_unregistered",
        PeerRoleChanged => "peer_role_changed",
        RoleClaimed => "role_claimed",
        RoleReleased => "role_released",
        PersonaActivated => "persona_activated",
        PersonaCleared => "persona_cleared",
        PersonaReloaded => "persona_reloaded",
        PersonaReloadFailed => "persona_reload_failed",
        PersonaError => "persona_error",
        PersonaRoute => "persona_route",
    }
);

/// The object family an event is about (what its kind starts with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ask,
    Delivery,
    Job,
    Review,
    Schedule,
    Peer,
    Persona,
}

impl EventKind {
    /// Which kind of object the event is about.
    pub fn family(self) -> Family {
        match self.as_str().split('_').next() {
            Some("ask") => Family::Ask,
            Some("delivery") => Family::Delivery,
            Some("job") => Family::Job,
            Some("review") => Family::Review,
            Some("schedule") => Family::Schedule,
            Some("persona") => Family::Persona,
            _ => Family::Peer,
        }
    }

    /// Whether an event of this kind moves an ask to a terminal state
    /// (what someone waiting for the ask's outcome waits for).
    pub fn ends_an_ask(self) -> bool {
        matches!(
            self,
            Self::AskClosed | Self::AskExpired | Self::AskCanceled | Self::AskFailed
        )
    }
}

/// What of a circle's mesh snapshot an event can change: its `peers` (a
/// peer's fields, status or role, or its load: the open asks to it and the
/// jobs it holds), and its job list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshParts {
    pub peers: bool,
    pub jobs: bool,
}

impl EventKind {
    /// The mesh parts an event of this kind can change. Deliveries, reviews,
    /// schedules and persona bookkeeping change neither (a review or a
    /// check-in that sends an ask says so with the ask's own event).
    pub fn mesh_parts(self) -> MeshParts {
        use EventKind as K;
        match self.family() {
            Family::Peer => MeshParts {
                peers: true,
                jobs: false,
            },
            Family::Ask => MeshParts {
                // Only opening and closing an ask changes a load.
                peers: !matches!(self, K::AskDelivered | K::AskPickedUp | K::AskReminded),
                jobs: false,
            },
            Family::Job => MeshParts {
                // A new job is queued, and an update or a cancel request
                // leaves its state (a state change has its own event).
                peers: !matches!(self, K::JobCreated | K::JobUpdated | K::JobCancelRequested),
                jobs: true,
            },
            Family::Delivery | Family::Review | Family::Schedule | Family::Persona => {
                MeshParts::default()
            }
        }
    }
}

/// Deserialize a field that may be absent (outer `None`) or `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The payloads written for the `ask_<state>` kinds, one shape per writer.
/// Tried in this order when read; each refuses fields it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum AskMove {
    /// A delivery confirmation moved it.
    To {
        to: String,
    },
    /// A party acted on it.
    By {
        by: String,
    },
    Answered {
        by: String,
        answer_bytes: usize,
    },
    Acked {
        by: String,
        ack_message_bytes: Option<usize>,
    },
    /// A party unregistered.
    PeerGone {
        why: String,
        peer: String,
    },
    Expired {
        to: String,
        expires_at_ms: i64,
    },
    Queued {
        from: String,
        to: String,
        expires_at_ms: i64,
        recipient_offline: bool,
        reply_to: Option<String>,
    },
}

/// The payloads written for the `job_<state>` kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum JobMove {
    /// Canceled by the grace period or a lost executor.
    By {
        by: String,
    },
    /// A state change asked for by a party, with its phase if it gave one.
    Update {
        by: String,
        phase: Option<String>,
    },
    Dispatched {
        to: String,
        attempt: i64,
        by: String,
    },
    TimedOut {
        deadline_ms: Option<i64>,
    },
}

/// The payloads of `delivery_confirmed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Confirmed {
    /// The recipient's consumer confirmed it.
    Consumer { to: String, kind: DeliveryKind },
    /// The recipient acted on the ask it carried.
    Acted { by: String },
}

/// One event, its payload typed. Serialized externally tagged, the tag being
/// the kind: `{"<kind>": <payload>}` ([`Event::payload`] takes the payload out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    AskQueued(AskMove),
    AskDelivered(AskMove),
    AskPickedUp(AskMove),
    AskAnswered(AskMove),
    AskClosed(AskMove),
    AskExpired(AskMove),
    AskCanceled(AskMove),
    AskFailed(AskMove),
    AskReminded {
        to: String,
        delivery_id: String,
    },
    AskManyCreated {
        from: String,
        to: Vec<String>,
    },
    DeliveryQueued {
        to: String,
        to_peer_id: String,
        from: Option<String>,
        kind: DeliveryKind,
    },
    DeliveryLeased {
        to: String,
        attempt: i64,
        lease_until_ms: i64,
        /// The route that carries it (absent in logs written before routes
        /// were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<DeliveryRoute>,
    },
    DeliveryConfirmed(Confirmed),
    DeliveryDropped {
        why: String,
    },
    /// A channel push sent it into the session as a live hint; it stays
    /// unconfirmed and its stream lease ended.
    DeliveryPushed {
        to: String,
    },
    /// A route that carries deliveries itself (tmux) could not; the lease
    /// runs out and it is tried again after `retry_in_ms`.
    DeliveryFailed {
        to: String,
        route: DeliveryRoute,
        attempt: i64,
        error: String,
        retry_in_ms: i64,
    },
    JobCreated {
        title: String,
        by: String,
        owner: String,
    },
    JobQueued(JobMove),
    JobDispatched(JobMove),
    JobRunning(JobMove),
    JobSucceeded(JobMove),
    JobFailed(JobMove),
    JobCanceled(JobMove),
    JobTimedOut(JobMove),
    JobUpdated {
        by: String,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        phase: Option<Option<String>>,
        note: bool,
    },
    JobCancelRequested {
        by: String,
        grace_ms: i64,
    },
    JobExecutorLost {
        assignee: String,
        attempt: i64,
        requeued: bool,
    },
    JobRetried {
        attempts: i64,
    },
    ReviewRequested {
        #[serde(rename = "ref")]
        reference: String,
        author: String,
        by: String,
    },
    ReviewReopened {
        #[serde(rename = "ref")]
        reference: String,
        head_sha: String,
        by: String,
    },
    ReviewAssigned {
        #[serde(rename = "ref")]
        reference: String,
        reviewer: String,
    },
    ReviewUpdated {
        #[serde(rename = "ref")]
        reference: String,
        head_sha: String,
    },
    ReviewMarked {
        #[serde(rename = "ref")]
        reference: String,
        reviewer: String,
        sha: String,
        verdict: String,
    },
    ReviewClosed {
        #[serde(rename = "ref")]
        reference: String,
        by: String,
    },
    ScheduleCreated {
        to: String,
        kind: ScheduleKind,
        next_fire_ms: i64,
    },
    SchedulePaused {},
    ScheduleResumed {},
    ScheduleDeleted {},
    ScheduleFired {
        outcome: String,
        missed: bool,
        next_fire_ms: Option<i64>,
    },
    ScheduleFireFailed {
        error: String,
        retry_in_ms: i64,
    },
    PeerRegistered {
        name: String,
        role: Role,
        backend: Option<String>,
    },
    PeerResumed {
        name: String,
    },
    PeerUpdated {
        name: String,
        description: Option<String>,
        tags: Option<Vec<String>>,
    },
    PeerStatus {
        name: String,
        from: Status,
        to: Status,
    },
    PeerAlive {
        name: String,
    },
    PeerGhost {
        name: String,
        last_seen_ms: i64,
    },
    /// The peer's process is known to be gone (its tmux pane no longer
    /// exists, or it was killed): it is offline now.
    PeerGone {
        name: String,
        why: String,
    },
    /// An agent session was started for the peer (`peer spawn`, the MCP
    /// `spawn_peer`, a persona's `route.spawn`); it joins when it registers.
    PeerSpawned {
        name: String,
        backend: String,
        path: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<String>,
    },
    /// A spawned session never registered (or could not start).
    PeerSpawnFailed {
        name: String,
        why: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<String>,
    },
    PeerUnregistered {
        name: String,
        why: String,
    },
    PeerRoleChanged {
        name: String,
        from: Role,
        to: Role,
        why: String,
    },
    RoleClaimed {
        name: String,
        role: Role,
        previous: Option<String>,
        takeover: Option<String>,
    },
    RoleReleased {
        name: String,
        role: Role,
    },
    PersonaActivated {
        persona: String,
        sha256: String,
        by: String,
    },
    PersonaCleared {
        persona: String,
        by: String,
    },
    PersonaReloaded {
        persona: String,
        sha256: String,
        generation: u64,
    },
    PersonaReloadFailed {
        persona: String,
        sha256: String,
        error: String,
    },
    /// A persona failed (`entry` says where: `load`, `dispatch`, `on_event`, …);
    /// `extra` names what it was deciding about (the job, the ref).
    PersonaError {
        persona: String,
        entry: String,
        error: String,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        location: Option<Option<String>>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// A route an `on_event` persona asked for, and what came of it.
    PersonaRoute {
        persona: String,
        entry: String,
        event: i64,
        outcome: Value,
    },
}

impl Event {
    /// The `ask_<state>` event of an ask that moved to `state`.
    pub fn ask_moved(state: AskState, p: AskMove) -> Self {
        match state {
            AskState::Queued => Event::AskQueued(p),
            AskState::Delivered => Event::AskDelivered(p),
            AskState::PickedUp => Event::AskPickedUp(p),
            AskState::Answered => Event::AskAnswered(p),
            AskState::Closed => Event::AskClosed(p),
            AskState::Expired => Event::AskExpired(p),
            AskState::Canceled => Event::AskCanceled(p),
            AskState::Failed => Event::AskFailed(p),
        }
    }

    /// The `job_<state>` event of a job that moved to `state`.
    pub fn job_moved(state: JobState, p: JobMove) -> Self {
        match state {
            JobState::Queued => Event::JobQueued(p),
            JobState::Dispatched => Event::JobDispatched(p),
            JobState::Running => Event::JobRunning(p),
            JobState::Succeeded => Event::JobSucceeded(p),
            JobState::Failed => Event::JobFailed(p),
            JobState::Canceled => Event::JobCanceled(p),
            JobState::TimedOut => Event::JobTimedOut(p),
        }
    }

    /// What kind of event this is.
    pub fn kind(&self) -> EventKind {
        use EventKind as K;
        match self {
            Event::AskQueued(_) => K::AskQueued,
            Event::AskDelivered(_) => K::AskDelivered,
            Event::AskPickedUp(_) => K::AskPickedUp,
            Event::AskAnswered(_) => K::AskAnswered,
            Event::AskClosed(_) => K::AskClosed,
            Event::AskExpired(_) => K::AskExpired,
            Event::AskCanceled(_) => K::AskCanceled,
            Event::AskFailed(_) => K::AskFailed,
            Event::AskReminded { .. } => K::AskReminded,
            Event::AskManyCreated { .. } => K::AskManyCreated,
            Event::DeliveryQueued { .. } => K::DeliveryQueued,
            Event::DeliveryLeased { .. } => K::DeliveryLeased,
            Event::DeliveryConfirmed(_) => K::DeliveryConfirmed,
            Event::DeliveryDropped { .. } => K::DeliveryDropped,
            Event::DeliveryPushed { .. } => K::DeliveryPushed,
            Event::DeliveryFailed { .. } => K::DeliveryFailed,
            Event::JobCreated { .. } => K::JobCreated,
            Event::JobQueued(_) => K::JobQueued,
            Event::JobDispatched(_) => K::JobDispatched,
            Event::JobRunning(_) => K::JobRunning,
            Event::JobSucceeded(_) => K::JobSucceeded,
            Event::JobFailed(_) => K::JobFailed,
            Event::JobCanceled(_) => K::JobCanceled,
            Event::JobTimedOut(_) => K::JobTimedOut,
            Event::JobUpdated { .. } => K::JobUpdated,
            Event::JobCancelRequested { .. } => K::JobCancelRequested,
            Event::JobExecutorLost { .. } => K::JobExecutorLost,
            Event::JobRetried { .. } => K::JobRetried,
            Event::ReviewRequested { .. } => K::ReviewRequested,
            Event::ReviewReopened { .. } => K::ReviewReopened,
            Event::ReviewAssigned { .. } => K::ReviewAssigned,
            Event::ReviewUpdated { .. } => K::ReviewUpdated,
            Event::ReviewMarked { .. } => K::ReviewMarked,
            Event::ReviewClosed { .. } => K::ReviewClosed,
            Event::ScheduleCreated { .. } => K::ScheduleCreated,
            Event::SchedulePaused {} => K::SchedulePaused,
            Event::ScheduleResumed {} => K::ScheduleResumed,
            Event::ScheduleDeleted {} => K::ScheduleDeleted,
            Event::ScheduleFired { .. } => K::ScheduleFired,
            Event::ScheduleFireFailed { .. } => K::ScheduleFireFailed,
            Event::PeerRegistered { .. } => K::PeerRegistered,
            Event::PeerResumed { .. } => K::PeerResumed,
            Event::PeerUpdated { .. } => K::PeerUpdated,
            Event::PeerStatus { .. } => K::PeerStatus,
            Event::PeerAlive { .. } => K::PeerAlive,
            Event::PeerGhost { .. } => K::PeerGhost,
            Event::PeerGone { .. } => K::PeerGone,
            Event::PeerSpawned { .. } => K::PeerSpawned,
            Event::PeerSpawnFailed { .. } => K::PeerSpawnFailed,
            Event::PeerUnregistered { .. } => K::PeerUnregistered,
            Event::PeerRoleChanged { .. } => K::PeerRoleChanged,
            Event::RoleClaimed { .. } => K::RoleClaimed,
            Event::RoleReleased { .. } => K::RoleReleased,
            Event::PersonaActivated { .. } => K::PersonaActivated,
            Event::PersonaCleared { .. } => K::PersonaCleared,
            Event::PersonaReloaded { .. } => K::PersonaReloaded,
            Event::PersonaReloadFailed { .. } => K::PersonaReloadFailed,
            Event::PersonaError { .. } => K::PersonaError,
            Event::PersonaRoute { .. } => K::PersonaRoute,
        }
    }

    /// The payload as it is stored and sent (a JSON object).
    pub fn payload(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.payload_json()?)?)
    }

    /// The payload as JSON text, written in one pass: serde renders the
    /// event as `{"<kind>":<payload>}`, and the kind's wrapper is cut off
    /// (no `Value` tree built and dropped per event).
    pub fn payload_json(&self) -> Result<String> {
        let mut s = serde_json::to_string(self)?;
        let kind = self.kind().as_str();
        let head = kind.len() + 4; // {"<kind>":
        let wrapped = s.len() > head
            && s.ends_with('}')
            && s.as_bytes()[0] == b'{'
            && s.as_bytes()[1] == b'"'
            && s[2..].starts_with(kind)
            && &s.as_bytes()[kind.len() + 2..head] == b"\":";
        if !wrapped {
            return Err(Error::internal(format!("event rendered as {s}")));
        }
        s.pop();
        s.drain(..head);
        Ok(s)
    }

    /// Read an event back from its kind and payload (as stored or received).
    pub fn parse(kind: &str, payload: &Value) -> Result<Self> {
        let kind = EventKind::parse(kind)?;
        let mut m = Map::with_capacity(1);
        m.insert(kind.as_str().to_string(), payload.clone());
        serde_json::from_value(Value::Object(m)).map_err(|e| {
            Error::bad_request(format!(
                "{} event with an unexpected payload: {e}",
                kind.as_str()
            ))
        })
    }
}

/// One committed event as the log holds it: what the store hands out (the
/// wire shape, `api::EventInfo`, converts from it in the client crate).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub ts_ms: i64,
    pub kind: String,
    /// The id of the object it is about (or a name, for circle-wide events).
    pub subject: String,
    pub related: Option<String>,
    pub circle: Option<String>,
    /// The payload as stored: JSON text (an object).
    pub payload: String,
    /// The typed event, on records this daemon committed just now (what
    /// the event bus carries, so its readers match on it without parsing);
    /// `None` on rows read back from the log.
    pub event: Option<Event>,
}

impl EventRecord {
    /// The payload as a JSON value (`Null` if the stored text is not JSON).
    pub fn payload_value(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
