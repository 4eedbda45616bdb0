//! Schedules: future deliveries to a peer, one-shot or cron. An ordinary
//! fire is one transaction: the delivery (or job) and the advance of
//! `next_fire_ms`, so a crash never fires twice nor loses a fire beyond the
//! missed policy.
//!
//! A plain fire (a note, a reminder to oneself) is *armed* ahead of its
//! due time (`schedule_arm_ahead_ms`): its delivery is written then,
//! invisible until the due instant, when leases and peeks start to see it
//! with no write at all; the fire is *booked* just after (the delivery's
//! `delivery_queued` and the schedule's `schedule_fired` events, the
//! advance). So a burst of fires due together costs its instant nothing,
//! and every fire is still durable before it is due. Pausing, deleting or
//! removing a peer before the instant withdraws the armed delivery; after
//! it, books the fire first (it happened).

use super::circles::resolve_for;
use super::deliveries::{NewDelivery, enqueue};
use super::peers::{by_id, must};
use super::{NewEvent, Store, Tx, parse_col};
use repowire_core::delivery::DeliveryKind;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::Event;
use repowire_core::ids::{DeliveryId, PeerId, ScheduleId};
use repowire_core::job::NewJob;
use repowire_core::peer::Peer;
use repowire_core::schedule::{
    MissedPolicy, NewSchedule, Schedule, ScheduleKind, next_cron, parse_cron, parse_tz, parse_when,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;

macro_rules! cols {
    () => {
        "id, circle, owner_name, target_name, kind, text, persona, fire_at_ms, cron, tz, missed, \
         next_fire_ms, last_fired_ms, fire_count, failures, last_outcome, last_error, enabled, \
         created_ms, owner, target, armed_delivery, armed_for_ms"
    };
}

/// Which schedules can be armed: the same condition as the index
/// `schedules_to_arm` (migration 14) and [`armable`].
macro_rules! to_arm {
    () => {
        "enabled = 1 AND next_fire_ms IS NOT NULL AND armed_for_ms IS NULL
         AND (kind = 'notify' OR (kind = 'ask' AND owner = target))"
    };
}

/// A schedule plus the peer ids it acts between.
pub struct SchedRow {
    pub info: Schedule,
    pub owner_id: PeerId,
    pub target_id: PeerId,
    /// The delivery written ahead for the due time `armed_for_ms`.
    armed_delivery: Option<DeliveryId>,
    /// Set with `armed_delivery`; alone, arming was refused for this due
    /// time (it fires the ordinary way).
    armed_for_ms: Option<i64>,
}

/// A schedule due now, as the scheduler sorts it.
pub struct Due {
    pub id: ScheduleId,
    /// Its fire runs a check-in script (on a thread of its own).
    pub checkin: bool,
    /// The peer it delivers to.
    pub target: PeerId,
}

/// Fires of this schedule can be armed: plain deliveries only. (An ask to
/// another peer starts its deadline, a job runs the persona, a check-in
/// its script: those are done when due.) Matches [`TO_ARM`].
fn armable(s: &SchedRow) -> bool {
    s.info.kind == ScheduleKind::Notify
        || (s.info.kind == ScheduleKind::Ask && s.owner_id == s.target_id)
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<SchedRow> {
    Ok(SchedRow {
        info: Schedule {
            schedule_id: r.get(0)?,
            circle: r.get(1)?,
            owner: r.get(2)?,
            to: r.get(3)?,
            kind: parse_col(r.get(4)?, ScheduleKind::parse)?,
            text: r.get(5)?,
            persona: r.get(6)?,
            fire_at_ms: r.get(7)?,
            cron: r.get(8)?,
            tz: r.get(9)?,
            missed: parse_col(r.get(10)?, MissedPolicy::parse)?,
            next_fire_ms: r.get(11)?,
            last_fired_ms: r.get(12)?,
            fire_count: r.get(13)?,
            failures: r.get(14)?,
            last_outcome: r.get(15)?,
            last_error: r.get(16)?,
            enabled: r.get(17)?,
            created_at_ms: r.get(18)?,
        },
        owner_id: r.get(19)?,
        target_id: r.get(20)?,
        armed_delivery: r.get(21)?,
        armed_for_ms: r.get(22)?,
    })
}

fn get(c: &Connection, id: &ScheduleId) -> Result<SchedRow> {
    c.prepare_cached(concat!("SELECT ", cols!(), " FROM schedules WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("no schedule {id}")))
}

fn sched_event(t: &mut Tx<'_>, s: &Schedule, event: Event) -> Result<()> {
    t.event(NewEvent {
        subject: &s.schedule_id,
        related: None,
        circle: Some(&s.circle),
        event,
    })
}

/// The act of a check-in fire, handed in by the daemon: it carries out the
/// script's routes as the schedule's owner inside the fire's transaction and
/// says what it did (an error rolls the whole fire back).
pub type Checkin<'a> = Box<dyn FnOnce(&mut Tx<'_>, &Peer) -> Result<String> + Send + 'a>;

impl Store {
    pub fn create_schedule(&self, owner_id: &PeerId, req: &NewSchedule) -> Result<Schedule> {
        let kind = req.kind.unwrap_or(ScheduleKind::Notify);
        if kind != ScheduleKind::Checkin {
            self.policy.check_text("text", &req.text)?;
        }
        let tz = req.tz.clone().unwrap_or_else(|| "UTC".into());
        parse_tz(&tz)?;
        let now = self.clock.now_ms();
        let (fire_at, next) = match (&req.fire_at, &req.cron) {
            (Some(w), None) => {
                let at = parse_when(w, now)?;
                if at < now - 1_000 {
                    return Err(Error::bad_request(format!("{w:?} is in the past")));
                }
                (Some(at), at)
            }
            (None, Some(c)) => {
                parse_cron(c)?;
                (None, next_cron(c, &tz, now)?)
            }
            _ => {
                return Err(Error::bad_request(
                    "give exactly one of fire_at (a delay or a time) and cron",
                ));
            }
        };
        self.write(|t| {
            let owner = must(t, owner_id)?;
            let target = if req.to == "self" {
                // `self` with a circle: that circle must be the owner's.
                resolve_for(t, &owner, &owner.name, req.circle.as_deref(), false)?
            } else {
                resolve_for(t, &owner, &req.to, req.circle.as_deref(), false)?
            };
            let id = ScheduleId::generate(t.now);
            t.conn()
                .prepare_cached(
                    "INSERT INTO schedules (id, circle, owner, owner_name, target, target_name, kind, text,
                       persona, fire_at_ms, cron, tz, missed, next_fire_ms, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
                )?
                .execute(params![
                    id,
                    owner.circle,
                    owner.id,
                    owner.name,
                    target.id,
                    target.name,
                    kind.as_str(),
                    req.text,
                    req.persona,
                    fire_at,
                    req.cron,
                    tz,
                    req.missed.unwrap_or(MissedPolicy::FireOnce).as_str(),
                    next,
                    t.now
                ])?;
            let s = get(t.conn(), &id)?.info;
            sched_event(t, &s, Event::ScheduleCreated { to: s.to.clone(), kind: s.kind, next_fire_ms: next })?;
            Ok(s)
        })
    }

    pub fn get_schedule(&self, id: &ScheduleId) -> Result<Schedule> {
        self.read(|c| Ok(get(c, id)?.info))
    }

    /// Schedules of a circle (all, or the owner's only).
    pub fn list_schedules(
        &self,
        circle: Option<&str>,
        owner_id: Option<&PeerId>,
    ) -> Result<Vec<Schedule>> {
        self.read(|c| {
            let rows = c
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM schedules WHERE (?1 IS NULL OR circle = ?1) AND (?2 IS NULL OR owner = ?2)
                     ORDER BY enabled DESC, next_fire_ms"
                ))?
                .query_map(params![circle, owner_id], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().map(|r| r.info).collect())
        })
    }

    /// Delete, pause or resume (who may is the daemon's policy; `actor` is
    /// the peer it is done as, None for the admin).
    pub fn change_schedule(
        &self,
        id: &ScheduleId,
        actor: Option<&PeerId>,
        change: &str,
    ) -> Result<Schedule> {
        self.write(|t| {
            let s = get(t.conn(), id)?;
            // The peer it is done as must still exist.
            actor.map(|a| must(t, a)).transpose()?;
            // An armed fire first: booked (it happened) or withdrawn. Then
            // the schedule as that left it.
            settle_armed(t, &s)?;
            let s = get(t.conn(), id)?;
            match change {
                "delete" => {
                    t.conn()
                        .prepare_cached("DELETE FROM schedules WHERE id = ?1")?
                        .execute([id])?;
                }
                "pause" => {
                    t.conn()
                        .prepare_cached(
                            "UPDATE schedules SET enabled = 0, updated_ms = ?2 WHERE id = ?1",
                        )?
                        .execute(params![id, t.now])?;
                }
                _ => {
                    // Resume: a cron schedule starts from its next occurrence.
                    let next = match &s.info.cron {
                        Some(c) => Some(next_cron(c, &s.info.tz, t.now)?),
                        None => s.info.next_fire_ms,
                    };
                    t.conn()
                        .prepare_cached(
                            "UPDATE schedules SET enabled = 1, next_fire_ms = ?2, updated_ms = ?3,
                           armed_for_ms = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, next, t.now])?;
                }
            }
            let changed = match change {
                "delete" => Event::ScheduleDeleted {},
                "pause" => Event::SchedulePaused {},
                _ => Event::ScheduleResumed {},
            };
            sched_event(t, &s.info, changed)?;
            Ok(if change == "delete" {
                s.info
            } else {
                get(t.conn(), id)?.info
            })
        })
    }

    /// When the scheduler has work next, if ever: the next enabled
    /// schedule due, or `arm_ahead_ms` before the next one to arm.
    pub fn next_wake_ms(&self, arm_ahead_ms: i64) -> Result<Option<i64>> {
        self.read(|c| {
            let due: Option<i64> = c.prepare_cached(NEXT_DUE)?.query_row([], |r| r.get(0))?;
            let arm: Option<i64> = c.prepare_cached(NEXT_TO_ARM)?.query_row([], |r| r.get(0))?;
            Ok(match (due, arm.map(|a| a - arm_ahead_ms)) {
                (Some(d), Some(a)) => Some(d.min(a)),
                (d, a) => d.or(a),
            })
        })
    }

    /// When the next enabled schedule is due (armed or not), if any.
    pub fn next_due_ms(&self) -> Result<Option<i64>> {
        self.read(|c| Ok(c.prepare_cached(NEXT_DUE)?.query_row([], |r| r.get(0))?))
    }

    /// Schedules to arm: due after `now_ms`, by `until_ms`, earliest first,
    /// with their due times.
    pub fn schedules_to_arm(&self, now_ms: i64, until_ms: i64) -> Result<Vec<(ScheduleId, i64)>> {
        self.read(|c| {
            Ok(c.prepare_cached(TO_ARM_BY)?
                .query_map([now_ms, until_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Arm these schedules' next fires, in one transaction (each in its own
    /// savepoint). One that cannot be armed (a peer gone, the recipient's
    /// inbox full, no longer due ahead) is marked refused for that due time
    /// and fires the ordinary way. Returns how many were armed.
    pub fn arm_schedules(&self, ids: &[ScheduleId]) -> Result<usize> {
        self.write(|t| {
            let mut armed_to: HashMap<PeerId, i64> = HashMap::new();
            let mut armed = 0;
            for id in ids {
                match t.attempt(|t| arm_in(t, id, &mut armed_to)) {
                    Ok(done) => armed += usize::from(done),
                    Err(_) => {
                        // Its ordinary fire will meet the same error and
                        // record it (and retry).
                        t.conn()
                            .prepare_cached(
                                "UPDATE schedules SET armed_for_ms = next_fire_ms
                                 WHERE id = ?1 AND armed_for_ms IS NULL",
                            )?
                            .execute([id])?;
                    }
                }
            }
            Ok(armed)
        })
    }

    /// Schedules due now, earliest first.
    pub fn due_schedules(&self, now_ms: i64) -> Result<Vec<Due>> {
        self.read(|c| {
            Ok(c.prepare_cached(DUE)?
                .query_map([now_ms], |r| {
                    Ok(Due {
                        id: r.get(0)?,
                        checkin: r.get(1)?,
                        target: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The schedule as the firing code needs it.
    pub fn schedule_row(&self, id: &ScheduleId) -> Result<SchedRow> {
        self.read(|c| get(c, id))
    }

    /// Fire one schedule in one transaction: deliver (or create the job, or
    /// send the check-in's routes) and advance. A miss under `skip` only
    /// advances. A failure keeps the fire pending and retries with backoff.
    pub fn fire_schedule(&self, id: &ScheduleId, checkin: Option<Checkin<'_>>) -> Result<Schedule> {
        match self.write(|t| fire_in(t, id, checkin)) {
            Ok(Some(info)) => Ok(info),
            Ok(None) => self.get_schedule(id),
            Err(e) => self.write(|t| record_failure(t, id, &e)),
        }
    }

    /// Fire many (non-check-in) schedules in one transaction, each inside
    /// its own savepoint: a failing fire rolls back alone and is retried
    /// later; the others commit together (one commit for the whole batch).
    pub fn fire_batch(&self, ids: &[ScheduleId]) -> Result<usize> {
        self.write(|t| {
            let mut fired = 0;
            for id in ids {
                match t.attempt(|t| fire_in(t, id, None)) {
                    Ok(done) => fired += usize::from(done.is_some()),
                    Err(e) => {
                        record_failure(t, id, &e)?;
                    }
                }
            }
            Ok(fired)
        })
    }
}

const NEXT_DUE: &str =
    "SELECT MIN(next_fire_ms) FROM schedules WHERE enabled = 1 AND next_fire_ms IS NOT NULL";

const NEXT_TO_ARM: &str = concat!("SELECT MIN(next_fire_ms) FROM schedules WHERE ", to_arm!());

const TO_ARM_BY: &str = concat!(
    "SELECT id, next_fire_ms FROM schedules WHERE ",
    to_arm!(),
    " AND next_fire_ms > ?1 AND next_fire_ms <= ?2 ORDER BY next_fire_ms"
);

const DUE: &str = "SELECT id, kind = 'checkin', target FROM schedules
     WHERE enabled = 1 AND next_fire_ms IS NOT NULL AND next_fire_ms <= ?1
     ORDER BY next_fire_ms";

/// Arm one schedule's next fire (false: nothing to arm). An error rolls it
/// back; the caller marks it refused.
fn arm_in(t: &mut Tx<'_>, id: &ScheduleId, armed_to: &mut HashMap<PeerId, i64>) -> Result<bool> {
    let s = get(t.conn(), id)?;
    let Some(due) = s.info.next_fire_ms.filter(|d| *d > t.now && s.info.enabled) else {
        return Ok(false);
    };
    if s.armed_for_ms.is_some() || !armable(&s) {
        return Ok(false);
    }
    let (owner, target) = peers_of(t, &s)?;
    let text = fire_text(&s);
    let d = plain(&s, &owner, &target, &text);
    let already = match armed_to.get(&target.id) {
        Some(n) => *n,
        None => super::deliveries::count_armed(t, &target.id)?,
    };
    let dlv = super::deliveries::arm(t, &d, due, already)?;
    armed_to.insert(target.id.clone(), already + 1);
    t.conn()
        .prepare_cached(
            "UPDATE schedules SET armed_delivery = ?2, armed_for_ms = ?3 WHERE id = ?1",
        )?
        .execute(params![id, dlv, due])?;
    Ok(true)
}

/// An armed fire before anything changes its schedule: booked if its time
/// came (it happened), withdrawn if not.
fn settle_armed(t: &mut Tx<'_>, s: &SchedRow) -> Result<()> {
    let (Some(dlv), Some(at)) = (&s.armed_delivery, s.armed_for_ms) else {
        return Ok(());
    };
    if at <= t.now {
        book(t, s, dlv, at)?;
    } else {
        super::deliveries::disarm(t, dlv)?;
        t.conn()
            .prepare_cached(
                "UPDATE schedules SET armed_delivery = NULL, armed_for_ms = NULL WHERE id = ?1",
            )?
            .execute([&s.info.schedule_id])?;
    }
    Ok(())
}

/// A peer is being removed: every armed fire it sends or receives is
/// settled first (booked or withdrawn), so none is left behind.
pub(super) fn settle_armed_for_peer(t: &mut Tx<'_>, peer_id: &PeerId) -> Result<()> {
    let rows: Vec<SchedRow> = t
        .conn()
        .prepare_cached(concat!(
            "SELECT ",
            cols!(),
            " FROM schedules WHERE armed_delivery IS NOT NULL AND (owner = ?1 OR target = ?1)"
        ))?
        .query_map([peer_id], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for s in &rows {
        settle_armed(t, s)?;
    }
    Ok(())
}

/// Book an armed fire whose time `at` came: the delivery becomes an
/// ordinary one (or, missed under `skip` and never read, is withdrawn),
/// and the schedule advances as after any fire, fired at `at`.
fn book(t: &mut Tx<'_>, s: &SchedRow, dlv: &DeliveryId, at: i64) -> Result<Schedule> {
    let id = &s.info.schedule_id;
    let missed = t.now - at > t.policy.missed_after_ms;
    let skip = missed && s.info.missed == MissedPolicy::Skip;
    let (owner, target) = peers_of(t, s)?;
    let text = fire_text(s);
    let d = plain(s, &owner, &target, &text);
    let what = if super::deliveries::book_armed(t, dlv, &d, skip)? {
        outcome(&d, dlv)
    } else {
        "skipped (missed while the daemon was down)".to_string()
    };
    let next = match &s.info.cron {
        Some(c) => Some(next_cron(c, &s.info.tz, t.now.max(at))?),
        None => None,
    };
    // Fired at its instant, when it became visible; after a downtime, now.
    advance(t, s, next, if missed { t.now } else { at }, &what)?;
    let info = get(t.conn(), id)?.info;
    let fired = Event::ScheduleFired {
        outcome: what,
        missed,
        next_fire_ms: next,
    };
    sched_event(t, &info, fired)?;
    Ok(info)
}

/// Record a fire (at `at`) and move to `next`; the arming is over.
fn advance(t: &mut Tx<'_>, s: &SchedRow, next: Option<i64>, at: i64, what: &str) -> Result<()> {
    t.conn()
        .prepare_cached(
            "UPDATE schedules SET next_fire_ms = ?2, enabled = ?3, last_fired_ms = ?4,
               fire_count = fire_count + ?5, failures = 0, last_outcome = ?6, last_error = NULL,
               updated_ms = ?7, armed_delivery = NULL, armed_for_ms = NULL WHERE id = ?1",
        )?
        .execute(params![
            s.info.schedule_id,
            next,
            next.is_some() && s.info.enabled,
            at,
            i64::from(!what.starts_with("skipped")),
            what,
            t.now
        ])?;
    Ok(())
}

/// The schedule's owner and target, both still registered.
fn peers_of(t: &mut Tx<'_>, s: &SchedRow) -> Result<(Peer, Peer)> {
    let owner = by_id(t, &s.owner_id)?.ok_or_else(|| {
        Error::new(
            ErrorCode::UnknownPeer,
            format!("{} (the owner) is gone", s.info.owner),
        )
    })?;
    let target = by_id(t, &s.target_id)?.ok_or_else(|| {
        Error::new(
            ErrorCode::UnknownPeer,
            format!("{} (the target) is gone", s.info.to),
        )
    })?;
    Ok((owner, target))
}

fn fire_text(s: &SchedRow) -> String {
    format!("[schedule {}] {}", s.info.schedule_id, s.info.text)
}

/// The delivery of a plain fire: a note (from the owner unless it is to
/// itself), or a reminder to oneself.
fn plain<'a>(s: &SchedRow, owner: &'a Peer, target: &'a Peer, text: &'a str) -> NewDelivery<'a> {
    let (from, kind) = if s.info.kind == ScheduleKind::Notify {
        (
            (owner.id != target.id).then_some(owner),
            DeliveryKind::Notify,
        )
    } else {
        (None, DeliveryKind::System)
    };
    NewDelivery {
        to: target,
        from,
        kind,
        ask_id: None,
        job_id: None,
        text,
    }
}

/// What a plain fire did, as its `last_outcome` says.
fn outcome(d: &NewDelivery<'_>, id: &DeliveryId) -> String {
    match d.kind {
        DeliveryKind::Notify => format!("notified {} ({id})", d.to.name),
        _ => format!("reminded {} ({id})", d.to.name),
    }
}

/// One fire, inside the caller's transaction (None: nothing was due).
fn fire_in(
    t: &mut Tx<'_>,
    id: &ScheduleId,
    checkin: Option<Checkin<'_>>,
) -> Result<Option<Schedule>> {
    let s = get(t.conn(), id)?;
    if let (Some(dlv), Some(at)) = (&s.armed_delivery, s.armed_for_ms) {
        // Armed: visible since `at`; only the booking is left.
        return if at <= t.now {
            book(t, &s, dlv, at).map(Some)
        } else {
            Ok(None)
        };
    }
    let Some(due) = s
        .info
        .next_fire_ms
        .filter(|d| *d <= t.now && s.info.enabled)
    else {
        return Ok(None); // already fired (or paused): nothing to do
    };
    let missed = t.now - due > t.policy.missed_after_ms;
    let next = match &s.info.cron {
        Some(c) => Some(next_cron(c, &s.info.tz, t.now.max(due))?),
        None => None,
    };
    // An error here rolls the whole fire back: nothing half-sent.
    let what = if missed && s.info.missed == MissedPolicy::Skip {
        "skipped (missed while the daemon was down)".to_string()
    } else {
        deliver(t, &s, checkin)?
    };
    advance(t, &s, next, t.now, &what)?;
    let info = get(t.conn(), id)?.info;
    let fired = Event::ScheduleFired {
        outcome: what.to_string(),
        missed,
        next_fire_ms: next,
    };
    sched_event(t, &info, fired)?;
    Ok(Some(info))
}

/// Not fired: record why and retry with backoff (never dropped).
fn record_failure(t: &mut Tx<'_>, id: &ScheduleId, e: &Error) -> Result<Schedule> {
    let failures = get(t.conn(), id)?.info.failures;
    let backoff = (t.policy.schedule_retry_ms << failures.min(6)).min(300_000);
    t.conn()
        .prepare_cached(
            "UPDATE schedules SET failures = failures + 1, last_error = ?2, last_outcome = 'failed',
               next_fire_ms = ?3, updated_ms = ?4 WHERE id = ?1",
        )?
        .execute(params![id, e.to_string(), t.now + backoff, t.now])?;
    let info = get(t.conn(), id)?.info;
    let failed = Event::ScheduleFireFailed {
        error: e.to_string(),
        retry_in_ms: backoff,
    };
    sched_event(t, &info, failed)?;
    Ok(info)
}

/// The delivery part of a fire. Errors roll the whole fire back.
fn deliver(t: &mut Tx<'_>, s: &SchedRow, checkin: Option<Checkin<'_>>) -> Result<String> {
    let (owner, target) = peers_of(t, s)?;
    let text = fire_text(s);
    if armable(s) {
        let d = plain(s, &owner, &target, &text);
        let id = enqueue(t, d)?;
        return Ok(outcome(&d, &id));
    }
    Ok(match s.info.kind {
        // (A note is always plain, above.) An ask to another peer.
        ScheduleKind::Notify | ScheduleKind::Ask => {
            let timeout = t.policy.ask_timeout_ms;
            let a = super::asks::create_in(t, &owner, &target, &text, timeout, None, None)?;
            format!("asked {} ({})", target.name, a.ask.correlation_id)
        }
        ScheduleKind::Job => {
            let req = NewJob {
                title: s.info.text.clone(),
                assign: (owner.id != target.id).then(|| target.name.clone()),
                ..Default::default()
            };
            let j = super::jobs::create_job_in(t, &owner.id, &req)?;
            format!("created {}", j.job_id)
        }
        ScheduleKind::Checkin => match checkin {
            Some(act) => act(t, &owner)?,
            None => "check-in sent 0 message(s)".to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;
    use repowire_core::delivery::{DeliveryRoute, DeliveryState};
    use repowire_core::peer::Registration;
    use repowire_core::time::Clock;

    const T0: i64 = 1_800_000_000_000;

    struct World {
        s: Store,
        clock: Clock,
        olga: PeerId,
        bob: PeerId,
        _dir: tempfile::TempDir,
    }

    fn world() -> World {
        world_with(Policy::default())
    }

    /// Olga and bob on a store at T0 (a fixed clock) under `policy`.
    fn world_with(policy: Policy) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::fixed(T0);
        let s = Store::open(&dir.path().join("t.db"), policy)
            .unwrap()
            .with_clock(clock.clone());
        let reg = |name: &str| {
            let req = Registration {
                name: name.into(),
                ..Default::default()
            };
            s.register(req, None).unwrap().0.id
        };
        let (olga, bob) = (reg("olga"), reg("bob"));
        World {
            s,
            clock,
            olga,
            bob,
            _dir: dir,
        }
    }

    impl World {
        /// A note from olga to `to` due in `in_ms`.
        fn note(&self, to: &str, in_ms: i64) -> ScheduleId {
            let req = NewSchedule {
                to: to.into(),
                text: "tick".into(),
                fire_at: Some(format!("{in_ms}ms")),
                ..Default::default()
            };
            self.s
                .create_schedule(&self.olga, &req)
                .unwrap()
                .schedule_id
        }

        /// What the scheduler does 2 s ahead: arm everything due by then.
        fn arm(&self) -> usize {
            let now = self.clock.now_ms();
            let ids: Vec<ScheduleId> = self
                .s
                .schedules_to_arm(now, now + 2_000)
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            self.s.arm_schedules(&ids).unwrap()
        }

        /// What the scheduler does at a due instant.
        fn fire_due(&self) -> usize {
            let ids: Vec<ScheduleId> = self
                .s
                .due_schedules(self.clock.now_ms())
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect();
            self.s.fire_batch(&ids).unwrap()
        }

        fn armed_rows(&self) -> i64 {
            self.s
                .read(|c| {
                    Ok(c.query_row(
                        "SELECT COUNT(*) FROM deliveries WHERE state = 'armed'",
                        [],
                        |r| r.get(0),
                    )?)
                })
                .unwrap()
        }

        /// The event kinds naming `id`, in order.
        fn kinds(&self, id: &str) -> Vec<String> {
            self.s
                .trace(id)
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect()
        }

        /// The in-memory counter of bob's undelivered messages, and a recount.
        fn bob_counts(&self) -> (i64, i64) {
            let kept = self
                .s
                .open_counts()
                .into_iter()
                .find(|(p, _)| p.as_str() == self.bob.as_str())
                .map_or(0, |(_, n)| n);
            self.s
                .read(|c| {
                    let real: i64 = c.query_row(
                        "SELECT COUNT(*) FROM deliveries WHERE to_peer = ?1 AND state IN ('pending','leased')",
                        [&self.bob],
                        |r| r.get(0),
                    )?;
                    Ok((kept, real))
                })
                .unwrap()
        }
    }

    /// An armed fire is written ahead and invisible; at its instant a lease
    /// sees it with nothing written for it; the booking after records the
    /// fire at that instant, its `delivery_queued` once.
    #[test]
    fn an_armed_fire_becomes_visible_at_its_instant_and_is_booked_after() {
        let w = world();
        let sid = w.note("bob", 5_000);
        let due = T0 + 5_000;
        assert_eq!(w.arm(), 0, "not yet within the window");
        w.clock.advance(3_500);
        assert_eq!(w.s.next_armed_ms(&w.bob).unwrap(), None);
        assert_eq!(w.arm(), 1);
        assert_eq!(w.arm(), 0, "armed once");
        assert_eq!(w.armed_rows(), 1);
        // What a waiting consumer wakes for.
        assert_eq!(w.s.next_armed_ms(&w.bob).unwrap(), Some(due));
        let route = DeliveryRoute::Pull;
        assert!(
            w.s.peek(&w.bob, 10).unwrap().is_empty(),
            "invisible before its time"
        );
        assert!(w.s.lease(&w.bob, 10, 30_000, route).unwrap().is_empty());
        assert_eq!(w.s.get_schedule(&sid).unwrap().fire_count, 0);
        w.clock.advance(1_499);
        assert!(w.s.peek(&w.bob, 10).unwrap().is_empty(), "1 ms early");
        w.clock.advance(1);
        assert_eq!(
            w.s.next_armed_ms(&w.bob).unwrap(),
            None,
            "visible: nothing to wait for"
        );
        let seen = w.s.peek(&w.bob, 10).unwrap();
        assert_eq!(seen.len(), 1, "visible at its instant");
        assert_eq!(seen[0].state, DeliveryState::Pending);
        let dlv = seen[0].delivery_id.clone();
        let got = w.s.lease(&w.bob, 10, 30_000, route).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].text.contains("tick"));
        assert_eq!(w.bob_counts(), (1, 1), "counted once leased");
        w.clock.advance(40);
        assert_eq!(w.fire_due(), 1);
        let s = w.s.get_schedule(&sid).unwrap();
        assert_eq!(s.fire_count, 1);
        assert_eq!(s.last_fired_ms, Some(due), "fired at its instant");
        assert_eq!(s.next_fire_ms, None);
        assert!(!s.enabled);
        assert_eq!(
            s.last_outcome.as_deref(),
            Some(&*format!("notified bob ({dlv})"))
        );
        assert_eq!(w.armed_rows(), 0);
        assert_eq!(w.bob_counts(), (1, 1));
        let kinds = w.kinds(&dlv);
        assert_eq!(
            kinds.iter().filter(|k| *k == "delivery_queued").count(),
            1,
            "{kinds:?}"
        );
        assert_eq!(w.fire_due(), 0, "booked once");
        assert_eq!(w.s.get_schedule(&sid).unwrap().fire_count, 1);
    }

    /// Booked while nobody read it: it is an ordinary pending delivery.
    #[test]
    fn an_unread_armed_fire_is_booked_as_pending() {
        let w = world();
        w.note("bob", 1_000);
        assert_eq!(w.arm(), 1);
        assert_eq!(w.bob_counts(), (0, 0), "armed is not counted");
        w.clock.advance(1_000);
        assert_eq!(w.fire_due(), 1);
        assert_eq!(w.armed_rows(), 0);
        assert_eq!(w.bob_counts(), (1, 1));
        let got = w.s.lease(&w.bob, 10, 30_000, DeliveryRoute::Pull).unwrap();
        assert_eq!(got.len(), 1);
    }

    /// Paused or deleted before its instant: the armed delivery is
    /// withdrawn and never seen. After it: the fire happened and is booked.
    #[test]
    fn changes_before_the_instant_withdraw_and_after_it_book() {
        let w = world();
        let early = w.note("bob", 1_000);
        let late = w.note("bob", 1_000);
        assert_eq!(w.arm(), 2);
        w.s.change_schedule(&early, None, "pause").unwrap();
        assert_eq!(w.armed_rows(), 1);
        w.clock.advance(1_000);
        let seen = w.s.peek(&w.bob, 10).unwrap();
        assert_eq!(seen.len(), 1, "only the one not paused");
        let gone = w.s.change_schedule(&late, None, "delete").unwrap();
        assert_eq!(gone.schedule_id, late);
        assert_eq!(w.armed_rows(), 0);
        assert_eq!(
            w.s.peek(&w.bob, 10).unwrap().len(),
            1,
            "the fire that happened stays"
        );
        let kinds = w.kinds(&late);
        assert_eq!(
            kinds,
            ["schedule_created", "schedule_fired", "schedule_deleted"]
        );
        let paused = w.s.get_schedule(&early).unwrap();
        assert_eq!(paused.fire_count, 0);
        assert!(!paused.enabled);
        // Resumed after its time: it fires the ordinary way.
        w.s.change_schedule(&early, None, "resume").unwrap();
        assert_eq!(w.fire_due(), 1);
        assert_eq!(w.s.peek(&w.bob, 10).unwrap().len(), 2);
        assert_eq!(w.bob_counts(), (2, 2));
    }

    /// Removing a peer settles every armed fire to or from it first.
    #[test]
    fn removing_a_peer_leaves_no_armed_fire_behind() {
        let w = world();
        w.note("bob", 1_000);
        assert_eq!(w.arm(), 1);
        w.s.unregister(&w.bob).unwrap();
        assert_eq!(w.armed_rows(), 0);
        w.clock.advance(1_000);
        // The ordinary fire now fails (bob is gone) and is retried.
        assert_eq!(w.fire_due(), 0);
        let s = &w.s.list_schedules(None, None).unwrap()[0];
        assert_eq!(s.last_outcome.as_deref(), Some("failed"));
    }

    /// Missed under `skip` (the daemon was down past its instant) and never
    /// read: withdrawn, recorded as skipped.
    #[test]
    fn a_missed_armed_fire_under_skip_is_withdrawn() {
        let w = world();
        let req = NewSchedule {
            to: "bob".into(),
            text: "tick".into(),
            fire_at: Some("1s".into()),
            missed: Some(MissedPolicy::Skip),
            ..Default::default()
        };
        let sid = w.s.create_schedule(&w.olga, &req).unwrap().schedule_id;
        assert_eq!(w.arm(), 1);
        w.clock
            .advance(1_000 + Policy::default().missed_after_ms + 1);
        assert_eq!(w.fire_due(), 1);
        let s = w.s.get_schedule(&sid).unwrap();
        assert_eq!(s.fire_count, 0);
        assert!(s.last_outcome.unwrap().starts_with("skipped"));
        assert_eq!(w.armed_rows(), 0);
        assert!(w.s.peek(&w.bob, 10).unwrap().is_empty());
        assert_eq!(w.bob_counts(), (0, 0));
        // Dropped with its reason, as every withdrawn delivery is.
        let dropped =
            w.s.trace(&sid)
                .unwrap()
                .into_iter()
                .chain(w.s.events_since(0, 1000, None).unwrap())
                .filter(|e| e.kind == "delivery_dropped")
                .count();
        assert_eq!(dropped, 1);
    }

    /// Resuming a one-shot between its instant and its booking books it
    /// and leaves it done: it never fires a second time.
    #[test]
    fn a_resume_after_the_instant_does_not_fire_again() {
        let w = world();
        let sid = w.note("bob", 1_000);
        assert_eq!(w.arm(), 1);
        w.clock.advance(1_000);
        let s = w.s.change_schedule(&sid, None, "resume").unwrap();
        assert_eq!(s.fire_count, 1);
        assert_eq!(s.next_fire_ms, None);
        assert_eq!(w.fire_due(), 0);
        assert_eq!(w.s.peek(&w.bob, 10).unwrap().len(), 1, "one fire, once");
    }

    /// A note sent directly counts the armed fires waiting for the same
    /// recipient: at their instant the inbox never holds more than the limit.
    /// So does a store opened again on the file (the armed rows are read
    /// at open: one that skipped the count would let the note in).
    #[test]
    fn armed_fires_count_against_the_inbox_limit() {
        let policy = Policy {
            max_pending_per_peer: 1,
            ..Policy::default()
        };
        let w = world_with(policy.clone());
        w.note("bob", 1_000);
        assert_eq!(w.arm(), 1);
        let note = repowire_core::delivery::NewNotify {
            to: "bob".into(),
            text: "direct".into(),
            ..Default::default()
        };
        let refused = |s: &Store| {
            let Err(err) = s.notify(&s.peer_by_id(&w.olga).unwrap().unwrap(), &note, false) else {
                panic!("a note past the limit was accepted")
            };
            assert_eq!(err.code, ErrorCode::InboxFull);
        };
        refused(&w.s);
        let again = Store::open(&w._dir.path().join("t.db"), policy)
            .unwrap()
            .with_clock(w.clock.clone());
        refused(&again);
    }

    /// A fire that cannot be armed (the inbox would be full) is marked and
    /// fires the ordinary way, where the same limit is met and recorded.
    #[test]
    fn a_refused_arming_falls_back_to_the_ordinary_fire() {
        let w = world_with(Policy {
            max_pending_per_peer: 1,
            ..Policy::default()
        });
        let a = w.note("bob", 1_000);
        let b = w.note("bob", 1_001);
        assert_eq!(w.arm(), 1, "the second would pass the limit");
        assert_eq!(w.arm(), 0, "and is not tried again");
        assert_eq!(w.s.next_wake_ms(2_000).unwrap(), Some(T0 + 1_000));
        w.clock.advance(1_001);
        assert_eq!(w.fire_due(), 1);
        assert_eq!(w.s.get_schedule(&a).unwrap().fire_count, 1);
        let refused = w.s.get_schedule(&b).unwrap();
        assert_eq!(refused.last_outcome.as_deref(), Some("failed"));
        assert!(refused.last_error.unwrap().contains("undelivered"));
    }

    /// The scheduler's reads use their indexes, however many schedules.
    #[test]
    fn the_scheduler_reads_its_indexes() {
        crate::assert_planned_through(&[
            (NEXT_DUE, "schedules_due"),
            (NEXT_TO_ARM, "schedules_to_arm"),
            (TO_ARM_BY, "schedules_to_arm"),
            (DUE, "schedules_due"),
        ]);
    }
}
