//! Conversions between the wire types and the domain records, written once:
//! records (what the store hands out) become response bodies, request bodies
//! become the store's commands. Ids are parsed here, once, at the edge (a
//! malformed id is the coded error of its kind); names and circles stay
//! strings until the store resolves them.

use super::*;
use repowire_core::ask::{self, Ask, AskManySent, AskSent, NewAsk, NewAskMany};
use repowire_core::delivery::{Broadcasted, Delivery, NewBroadcast, NewNotify, Notified};
use repowire_core::error::Result;
use repowire_core::event::EventRecord;
use repowire_core::ids::AskId;
use repowire_core::job::{self, Job, JobUpdate, NewJob};
use repowire_core::peer::{Claimed, Peer, PeerUpdate, Registration};
use repowire_core::review::{self, NewReview, Review, ReviewRef};
use repowire_core::schedule::{NewSchedule, Schedule};

impl PeerInfo {
    /// A peer as clients see it at `now`: its age and whether it is stale
    /// (not seen for `stale_after_ms`) or a ghost.
    pub fn of(p: &Peer, now: i64, stale_after_ms: i64) -> Self {
        PeerInfo {
            peer_id: p.id.to_string(),
            name: p.name.clone(),
            circle: p.circle.clone(),
            role: p.role,
            backend: p.backend.clone(),
            project_path: p.project_path.clone(),
            tags: p.tags.clone(),
            description: p.description.clone(),
            status: p.status,
            route: p.route.clone(),
            created_at_ms: p.created_ms,
            last_seen_ms: p.last_seen_ms,
            last_seen_age_s: (now - p.last_seen_ms).max(0) / 1000,
            stale: p.stale(now, stale_after_ms),
            ghost: p.ghost(now, stale_after_ms),
        }
    }
}

impl ClaimResp {
    /// The claim as clients see it, the holder aged at the claim's time.
    pub fn of(c: Claimed, stale_after_ms: i64) -> Self {
        ClaimResp {
            holder: PeerInfo::of(&c.holder, c.at_ms, stale_after_ms),
            circle: c.circle,
            previous: c.previous,
            takeover: c.takeover,
        }
    }
}

impl From<RegisterReq> for Registration {
    fn from(r: RegisterReq) -> Self {
        Registration {
            name: r.name,
            circle: r.circle,
            role: r.role,
            backend: r.backend,
            project_path: r.project_path,
            tags: r.tags,
            description: r.description,
            route: r.route,
        }
    }
}

impl From<UpdatePeerReq> for PeerUpdate {
    fn from(r: UpdatePeerReq) -> Self {
        PeerUpdate {
            description: r.description,
            tags: r.tags,
        }
    }
}

impl From<Ask> for AskInfo {
    fn from(a: Ask) -> Self {
        AskInfo {
            correlation_id: a.correlation_id.into(),
            parent_id: a.parent_id.map(Into::into),
            from: a.from,
            from_peer_id: a.from_peer_id.into(),
            to: a.to,
            to_peer_id: a.to_peer_id.into(),
            circle: a.circle,
            text: a.text,
            state: a.state,
            answer: a.answer,
            ack_message: a.ack_message,
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
            expires_at_ms: a.expires_at_ms,
            reminded_at_ms: a.reminded_at_ms,
            closed_at_ms: a.closed_at_ms,
            reply_to: a.reply_to.map(Into::into),
            job_id: a.job_id.map(Into::into),
        }
    }
}

impl From<AskSent> for AskResp {
    fn from(s: AskSent) -> Self {
        AskResp {
            ask: s.ask.into(),
            delivery_id: s.delivery_id.into(),
            queued_offline: s.queued_offline,
            done: None,
        }
    }
}

impl From<AskManySent> for AskManyResp {
    fn from(s: AskManySent) -> Self {
        AskManyResp {
            parent_id: s.parent_id.into(),
            asks: s.asks.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ask::AskManyResult> for AskManyResult {
    fn from(r: ask::AskManyResult) -> Self {
        AskManyResult {
            parent_id: r.parent_id.into(),
            text: r.text,
            entries: r
                .entries
                .into_iter()
                .map(|e| AskManyEntry {
                    peer: e.peer,
                    correlation_id: e.correlation_id.into(),
                    state: e.state,
                    answer: e.answer,
                })
                .collect(),
            open: r.open,
            done: r.done,
        }
    }
}

impl TryFrom<AskReq> for NewAsk {
    type Error = repowire_core::Error;
    /// `reply_to` must be an ask id (`unknown_ask` otherwise).
    fn try_from(r: AskReq) -> Result<Self> {
        Ok(NewAsk {
            reply_to: r.reply_to.as_deref().map(AskId::parse).transpose()?,
            to: r.to,
            circle: r.circle,
            text: r.text,
            timeout_ms: r.timeout_ms,
        })
    }
}

impl From<AskManyReq> for NewAskMany {
    fn from(r: AskManyReq) -> Self {
        NewAskMany {
            to: r.to,
            circle: r.circle,
            text: r.text,
            timeout_ms: r.timeout_ms,
        }
    }
}

impl From<Delivery> for DeliveryInfo {
    fn from(d: Delivery) -> Self {
        DeliveryInfo {
            delivery_id: d.delivery_id.into(),
            seq: d.seq,
            kind: d.kind,
            from: d.from,
            from_circle: d.from_circle,
            correlation_id: d.correlation_id.map(Into::into),
            text: d.text,
            state: d.state,
            attempts: d.attempts,
            created_at_ms: d.created_at_ms,
            lease_until_ms: d.lease_until_ms,
            job_id: d.job_id.map(Into::into),
            reply_to: d.reply_to.map(Into::into),
            pushed: d.pushed_at_ms.is_some(),
            pushed_at_ms: d.pushed_at_ms,
        }
    }
}

impl From<NotifyReq> for NewNotify {
    fn from(r: NotifyReq) -> Self {
        NewNotify {
            to: r.to,
            circle: r.circle,
            text: r.text,
        }
    }
}

impl From<Notified> for NotifyResp {
    fn from(n: Notified) -> Self {
        NotifyResp {
            delivery_id: n.delivery_id.into(),
            to: n.to,
            circle: n.circle,
            queued_offline: n.queued_offline,
        }
    }
}

impl From<BroadcastReq> for NewBroadcast {
    fn from(r: BroadcastReq) -> Self {
        NewBroadcast {
            text: r.text,
            circle: r.circle,
        }
    }
}

impl From<Broadcasted> for BroadcastResp {
    fn from(b: Broadcasted) -> Self {
        BroadcastResp {
            circle: b.circle,
            deliveries: b.deliveries.into_iter().map(Into::into).collect(),
            skipped_inbox_full: b.skipped_inbox_full,
        }
    }
}

impl From<&EventRecord> for EventInfo {
    fn from(e: &EventRecord) -> Self {
        EventInfo {
            seq: e.seq,
            ts_ms: e.ts_ms,
            kind: e.kind.clone(),
            subject: e.subject.clone(),
            related: e.related.clone(),
            circle: e.circle.clone(),
            payload: e.payload_value(),
        }
    }
}

impl From<EventRecord> for EventInfo {
    fn from(e: EventRecord) -> Self {
        let payload = e.payload_value();
        EventInfo {
            payload,
            seq: e.seq,
            ts_ms: e.ts_ms,
            kind: e.kind,
            subject: e.subject,
            related: e.related,
            circle: e.circle,
        }
    }
}

impl From<Job> for JobInfo {
    fn from(j: Job) -> Self {
        JobInfo {
            job_id: j.job_id.into(),
            circle: j.circle,
            title: j.title,
            brief: j.brief,
            kind: j.kind,
            tags: j.tags,
            priority: j.priority,
            created_by: j.created_by,
            owner: j.owner,
            assignee: j.assignee,
            state: j.state,
            phase: j.phase,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            previous_assignees: j.previous_assignees,
            result_summary: j.result_summary,
            result_data: j.result_data,
            error: j.error,
            deadline_ms: j.deadline_ms,
            created_at_ms: j.created_at_ms,
            updated_at_ms: j.updated_at_ms,
            cancel_requested_at_ms: j.cancel_requested_at_ms,
            notes: j.notes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<job::JobNote> for JobNote {
    fn from(n: job::JobNote) -> Self {
        JobNote {
            ts_ms: n.ts_ms,
            by: n.by,
            text: n.text,
        }
    }
}

impl From<JobCreateReq> for NewJob {
    fn from(r: JobCreateReq) -> Self {
        NewJob {
            title: r.title,
            brief: r.brief,
            kind: r.kind,
            tags: r.tags,
            priority: r.priority,
            assign: r.assign,
            owner: r.owner,
            deadline_ms: r.deadline_ms,
            max_attempts: r.max_attempts,
            backoff_ms: r.backoff_ms,
        }
    }
}

impl From<JobUpdateReq> for JobUpdate {
    fn from(r: JobUpdateReq) -> Self {
        JobUpdate {
            state: r.state,
            phase: r.phase,
            note: r.note,
            result: r.result,
            result_data: r.result_data,
            error: r.error,
        }
    }
}

impl From<Review> for ReviewInfo {
    fn from(r: Review) -> Self {
        ReviewInfo {
            review_id: r.review_id.into(),
            reference: r.reference,
            circle: r.circle,
            title: r.title,
            head_sha: r.head_sha,
            author: r.author,
            requested_by: r.requested_by,
            tags: r.tags,
            state: r.state,
            reviewers: r.reviewers.into_iter().map(Into::into).collect(),
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

impl From<review::ReviewerState> for ReviewerState {
    fn from(s: review::ReviewerState) -> Self {
        ReviewerState {
            reviewer: s.reviewer,
            last_reviewed_sha: s.last_reviewed_sha,
            verdict: s.verdict,
            notes: s.notes,
            my_action: s.my_action,
        }
    }
}

impl From<review::QueueEntry> for QueueEntry {
    fn from(q: review::QueueEntry) -> Self {
        QueueEntry {
            reference: q.reference,
            title: q.title,
            head_sha: q.head_sha,
            author: q.author,
            last_reviewed_sha: q.last_reviewed_sha,
            verdict: q.verdict,
            my_action: q.my_action,
        }
    }
}

impl From<ReviewRequestReq> for NewReview {
    fn from(r: ReviewRequestReq) -> Self {
        NewReview {
            reference: r.reference,
            head_sha: r.head_sha,
            title: r.title,
            author: r.author,
            tags: r.tags,
        }
    }
}

impl From<ReviewRefReq> for ReviewRef {
    fn from(r: ReviewRefReq) -> Self {
        ReviewRef {
            reference: r.reference,
            sha: r.sha,
            verdict: r.verdict,
            notes: r.notes,
        }
    }
}

impl From<Schedule> for ScheduleInfo {
    fn from(s: Schedule) -> Self {
        ScheduleInfo {
            schedule_id: s.schedule_id.into(),
            circle: s.circle,
            owner: s.owner,
            to: s.to,
            kind: s.kind,
            text: s.text,
            persona: s.persona,
            fire_at_ms: s.fire_at_ms,
            cron: s.cron,
            tz: s.tz,
            missed: s.missed,
            next_fire_ms: s.next_fire_ms,
            last_fired_ms: s.last_fired_ms,
            fire_count: s.fire_count,
            failures: s.failures,
            last_outcome: s.last_outcome,
            last_error: s.last_error,
            enabled: s.enabled,
            created_at_ms: s.created_at_ms,
        }
    }
}

impl From<ScheduleReq> for NewSchedule {
    fn from(r: ScheduleReq) -> Self {
        NewSchedule {
            to: r.to,
            circle: r.circle,
            kind: r.kind,
            text: r.text,
            fire_at: r.fire_at,
            cron: r.cron,
            tz: r.tz,
            missed: r.missed,
            persona: r.persona,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repowire_core::ids::PeerId;
    use repowire_core::peer::{Role, Status};

    fn peer(status: Status, last_seen_ms: i64) -> Peer {
        Peer {
            id: PeerId::generate(1),
            name: "ann".into(),
            circle: "default".into(),
            role: Role::Agent,
            backend: String::new(),
            project_path: String::new(),
            tags: vec!["rust".into()],
            description: String::new(),
            status,
            route: "pull".into(),
            created_ms: 1,
            last_seen_ms,
        }
    }

    /// Age, stale and ghost are computed once, here, from the stored peer.
    #[test]
    fn a_peer_is_aged_stale_and_ghost_as_of_now() {
        let now = 1_000_000;
        let live = PeerInfo::of(&peer(Status::Online, now - 5_500), now, 120_000);
        assert_eq!(
            (live.last_seen_age_s, live.stale, live.ghost),
            (5, false, false)
        );
        let quiet = PeerInfo::of(&peer(Status::Online, now - 150_000), now, 120_000);
        assert_eq!(
            (quiet.last_seen_age_s, quiet.stale, quiet.ghost),
            (150, true, true)
        );
        let gone = PeerInfo::of(&peer(Status::Offline, now - 150_000), now, 120_000);
        assert_eq!(
            (gone.stale, gone.ghost),
            (true, false),
            "offline is no ghost"
        );
        // The id is the same string on the wire.
        let p = peer(Status::Online, now);
        let json = serde_json::to_value(PeerInfo::of(&p, now, 120_000)).unwrap();
        assert_eq!(json["peer_id"], p.id.as_str());
    }
}
