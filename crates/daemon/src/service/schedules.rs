//! Schedules: create, list, show, pause, resume, delete, and what one fire
//! does. `checkin` fires run the persona's `checkin(ctx, mesh)` first
//! (through the pipeline); the routes it returns are carried out in the
//! fire's transaction. The timing loop is [`crate::scheduler`].

use crate::DaemonHandle;
use crate::auth::Caller;
use crate::pipeline::{self, Input, Target};
use crate::policy::{self, Action};
use repowire_client::api::ScheduleReq;
use repowire_core::error::Error;
use repowire_core::ids::ScheduleId;
use repowire_core::peer::Peer;
use repowire_core::route::Route;
use repowire_core::schedule::{Schedule, ScheduleKind};
use repowire_store::{Checkin, SchedRow, Tx};

/// Run the check-in script of a schedule; its routes, or why not.
fn checkin_routes(h: &DaemonHandle, row: &SchedRow) -> Result<Vec<Route>, Error> {
    let circle = &row.info.circle;
    let args = serde_json::from_str::<serde_json::Value>(&row.info.text)
        .unwrap_or_else(|_| serde_json::json!({"text": row.info.text}));
    let ctx = serde_json::json!({
        "schedule": row.info.schedule_id,
        "owner": row.info.owner,
        "to": row.info.to,
        "fired_at_ms": h.clock.now_ms(),
        "args": args,
        "open_reviews": h.store.open_review_assignments(circle)?,
    });
    let input = Input::Checkin {
        persona: row.info.persona.as_deref(),
        ctx: &ctx,
    };
    Ok(pipeline::decide(h, circle, input, serde_json::json!({}))?.routes)
}

/// Fire one schedule. A check-in's script runs first (outside the write
/// lock); its routes are carried out as the owner inside the fire's
/// transaction, so a route that fails undoes the whole fire (retried).
pub fn fire(h: &DaemonHandle, id: &ScheduleId) {
    let checkin: Option<Checkin<'_>> = match h.store.schedule_row(id) {
        Ok(r) if r.info.kind == ScheduleKind::Checkin => {
            let routes = checkin_routes(h, &r);
            Some(Box::new(move |t: &mut Tx<'_>, owner: &Peer| {
                let mut sent = 0;
                for route in &routes? {
                    sent += pipeline::execute_in(t, &Target::As(owner), route)?.messages();
                }
                Ok(format!("check-in sent {sent} message(s)"))
            }))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(schedule = %id, error = %e, "schedule vanished before firing");
            return;
        }
    };
    if let Err(e) = h.store.fire_schedule(id, checkin) {
        tracing::error!(schedule = %id, error = %e, "schedule fire failed");
    }
}

/// A schedule owned by the caller (a check-in script by file: the admin).
pub fn create(h: &DaemonHandle, c: &Caller, req: ScheduleReq) -> Result<Schedule, Error> {
    if let Some(p) = &req.persona
        && (p.contains('/') || p.ends_with(".lua"))
    {
        policy::authorize(c, Action::NameScriptFile, policy::Target::none())?;
    }
    let s = h.store.create_schedule(&c.me()?.id, &req.into())?;
    h.schedules_changed.notify_one();
    Ok(s)
}

/// The caller's schedules, or (`all`) its circle's.
pub fn list(h: &DaemonHandle, c: &Caller, all: bool) -> Result<Vec<Schedule>, Error> {
    let circle = policy::read_scope(c, None)?;
    let owner = match (all, c.me()) {
        (false, Ok(me)) => Some(&me.id),
        _ => None,
    };
    h.store.list_schedules(circle.as_deref(), owner)
}

pub fn show(h: &DaemonHandle, c: &Caller, id: &ScheduleId) -> Result<Schedule, Error> {
    let s = h.store.get_schedule(id)?;
    policy::authorize(c, Action::ReadObject, policy::Target::circle(&s.circle))?;
    Ok(s)
}

/// What can be done to a schedule.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    Delete,
    Pause,
    Resume,
}

/// Delete, pause or resume: its owner, the orchestrator or the admin.
pub fn change(
    h: &DaemonHandle,
    c: &Caller,
    id: &ScheduleId,
    what: Change,
) -> Result<Schedule, Error> {
    let s = h.store.get_schedule(id)?;
    let target = policy::Target {
        circle: Some(&s.circle),
        managers: &[s.owner.as_str()],
        ..policy::Target::default()
    };
    policy::authorize(c, Action::Manage, target)?;
    let actor = c.me().ok().map(|p| &p.id);
    let what = match what {
        Change::Delete => "delete",
        Change::Pause => "pause",
        Change::Resume => "resume",
    };
    let s = h.store.change_schedule(id, actor, what)?;
    h.schedules_changed.notify_one();
    Ok(s)
}
