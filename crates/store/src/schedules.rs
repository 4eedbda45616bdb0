//! Schedules: future deliveries to a peer, one-shot or cron. A fire is one
//! transaction: the delivery (or job) and the advance of `next_fire_ms`, so
//! a crash never fires twice nor loses a fire beyond the missed policy.

use super::circles::resolve_for;
use super::deliveries::{NewDelivery, enqueue};
use super::peers::{by_id, must};
use super::{NewEvent, Store, Tx, parse_col};
use repowire_core::delivery::DeliveryKind;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::Event;
use repowire_core::ids::{PeerId, ScheduleId};
use repowire_core::job::NewJob;
use repowire_core::peer::Peer;
use repowire_core::schedule::{
    MissedPolicy, NewSchedule, Schedule, ScheduleKind, next_cron, parse_cron, parse_tz, parse_when,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

macro_rules! cols {
    () => {
        "id, circle, owner_name, target_name, kind, text, persona, fire_at_ms, cron, tz, missed, \
         next_fire_ms, last_fired_ms, fire_count, failures, last_outcome, last_error, enabled, \
         created_ms, owner, target"
    };
}

/// A schedule plus the peer ids it acts between.
pub struct SchedRow {
    pub info: Schedule,
    pub owner_id: PeerId,
    pub target_id: PeerId,
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
            let owner = must(t.conn(), owner_id)?;
            let target = if req.to == "self" {
                // `self` with a circle: that circle must be the owner's.
                resolve_for(t.conn(), &owner, &owner.name, req.circle.as_deref(), false)?
            } else {
                resolve_for(t.conn(), &owner, &req.to, req.circle.as_deref(), false)?
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
            actor.map(|a| must(t.conn(), a)).transpose()?;
            match change {
                "delete" => {
                    t.conn().prepare_cached("DELETE FROM schedules WHERE id = ?1")?.execute([id])?;
                }
                "pause" => {
                    t.conn().prepare_cached("UPDATE schedules SET enabled = 0, updated_ms = ?2 WHERE id = ?1")?.execute(params![id, t.now])?;
                }
                _ => {
                    // Resume: a cron schedule starts from its next occurrence.
                    let next = match &s.info.cron {
                        Some(c) => Some(next_cron(c, &s.info.tz, t.now)?),
                        None => s.info.next_fire_ms,
                    };
                    t.conn()
                        .prepare_cached("UPDATE schedules SET enabled = 1, next_fire_ms = ?2, updated_ms = ?3 WHERE id = ?1")?
                        .execute(params![id, next, t.now])?;
                }
            }
            let changed = match change {
                "delete" => Event::ScheduleDeleted {},
                "pause" => Event::SchedulePaused {},
                _ => Event::ScheduleResumed {},
            };
            sched_event(t, &s.info, changed)?;
            Ok(if change == "delete" { s.info } else { get(t.conn(), id)?.info })
        })
    }

    /// When the next enabled schedule is due, if any.
    pub fn next_due_ms(&self) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT MIN(next_fire_ms) FROM schedules WHERE enabled = 1 AND next_fire_ms IS NOT NULL",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Schedules due now: (id, whether it is a check-in).
    pub fn due_schedules(&self, now_ms: i64) -> Result<Vec<(ScheduleId, bool)>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT id, kind = 'checkin' FROM schedules
                 WHERE enabled = 1 AND next_fire_ms IS NOT NULL AND next_fire_ms <= ?1
                 ORDER BY next_fire_ms",
            )?
            .query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
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

/// One fire, inside the caller's transaction (None: nothing was due).
fn fire_in(
    t: &mut Tx<'_>,
    id: &ScheduleId,
    checkin: Option<Checkin<'_>>,
) -> Result<Option<Schedule>> {
    let s = get(t.conn(), id)?;
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
    t.conn()
        .prepare_cached(
            "UPDATE schedules SET next_fire_ms = ?2, enabled = ?3, last_fired_ms = ?4,
               fire_count = fire_count + ?5, failures = 0, last_outcome = ?6, last_error = NULL,
               updated_ms = ?4 WHERE id = ?1",
        )?
        .execute(params![
            id,
            next,
            next.is_some(),
            t.now,
            i64::from(!what.starts_with("skipped")),
            what
        ])?;
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
    let owner = by_id(t.conn(), &s.owner_id)?.ok_or_else(|| {
        Error::new(
            ErrorCode::UnknownPeer,
            format!("{} (the owner) is gone", s.info.owner),
        )
    })?;
    let target = by_id(t.conn(), &s.target_id)?.ok_or_else(|| {
        Error::new(
            ErrorCode::UnknownPeer,
            format!("{} (the target) is gone", s.info.to),
        )
    })?;
    let text = format!("[schedule {}] {}", s.info.schedule_id, s.info.text);
    Ok(match s.info.kind {
        ScheduleKind::Notify => {
            let from = (owner.id != target.id).then_some(&owner);
            let id = enqueue(
                t,
                NewDelivery {
                    to: &target,
                    from,
                    kind: DeliveryKind::Notify,
                    ask_id: None,
                    job_id: None,
                    text: &text,
                },
            )?;
            format!("notified {} ({id})", target.name)
        }
        ScheduleKind::Ask => {
            if owner.id == target.id {
                let id = enqueue(
                    t,
                    NewDelivery {
                        to: &target,
                        from: None,
                        kind: DeliveryKind::System,
                        ask_id: None,
                        job_id: None,
                        text: &text,
                    },
                )?;
                format!("reminded {} ({id})", target.name)
            } else {
                let timeout = t.policy.ask_timeout_ms;
                let a = super::asks::create_in(t, &owner, &target, &text, timeout, None, None)?;
                format!("asked {} ({})", target.name, a.ask.correlation_id)
            }
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
