//! The scheduler: one task that sleeps until the next due fire (woken early
//! when schedules change — no polling), then fires everything due
//! concurrently on blocking threads, so one slow target never delays the
//! rest. `checkin` fires run the persona's `checkin(ctx, mesh)` first; the
//! routes it returns are sent in the fire's transaction.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, Path, Query};
use crate::pipeline::{self, Input, Target};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{ScheduleInfo, ScheduleReq};
use repowire_core::error::Error;
use repowire_core::route::Route;
use repowire_core::schedule::ScheduleKind;
use repowire_core::time::now_ms;
use repowire_store::{Checkin, PeerRow, SchedRow, Tx};
use serde::Deserialize;
use std::time::Duration;

/// Run the check-in script of a schedule; its routes, or why not.
fn checkin_routes(h: &DaemonHandle, row: &SchedRow) -> Result<Vec<Route>, Error> {
    let circle = &row.info.circle;
    let args = serde_json::from_str::<serde_json::Value>(&row.info.text)
        .unwrap_or_else(|_| serde_json::json!({"text": row.info.text}));
    let ctx = serde_json::json!({
        "schedule": row.info.schedule_id,
        "owner": row.info.owner,
        "to": row.info.to,
        "fired_at_ms": now_ms(),
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
fn fire(h: &DaemonHandle, id: &str) {
    let checkin: Option<Checkin<'_>> = match h.store.schedule_row(id) {
        Ok(r) if r.info.kind == ScheduleKind::Checkin => {
            let routes = checkin_routes(h, &r);
            Some(Box::new(move |t: &mut Tx<'_>, owner: &PeerRow| {
                let mut sent = 0;
                for route in &routes? {
                    sent += pipeline::execute_in(t, &Target::As(owner), route)?.messages();
                }
                Ok(format!("check-in sent {sent} message(s)"))
            }))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(schedule = id, error = %e, "schedule vanished before firing");
            return;
        }
    };
    if let Err(e) = h.store.fire_schedule(id, checkin) {
        tracing::error!(schedule = id, error = %e, "schedule fire failed");
    }
}

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let mut last_round = tokio::time::Instant::now() - Duration::from_secs(1);
    loop {
        let mut wait = match h.store.next_due_ms() {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(0, 3_600_000) as u64),
            Ok(None) => Duration::from_secs(3600),
            Err(e) => {
                tracing::error!(error = %e, "scheduler could not read the next due time");
                Duration::from_secs(5)
            }
        };
        // A fire that keeps failing (its retry could not be recorded) must
        // not make this loop spin.
        if wait.is_zero() && last_round.elapsed() < Duration::from_millis(100) {
            wait = Duration::from_millis(100);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = h.schedules_changed.notified() => continue,
            _ = h.stopping() => return,
        }
        let due = match h.store.due_schedules(now_ms()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "scheduler could not list due schedules");
                continue;
            }
        };
        // Check-ins run scripts: each on its own thread, so a slow one never
        // delays the rest. Plain fires go in batches, one commit per batch.
        let (checkins, plain): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, c)| *c);
        let mut fires: Vec<_> = checkins
            .into_iter()
            .map(|(id, _)| {
                let hh = h.clone();
                tokio::task::spawn_blocking(move || fire(&hh, &id))
            })
            .collect();
        let plain: Vec<String> = plain.into_iter().map(|(id, _)| id).collect();
        for chunk in plain.chunks(500) {
            let (hh, ids) = (h.clone(), chunk.to_vec());
            fires.push(tokio::task::spawn_blocking(move || {
                if let Err(e) = hh.store.fire_batch(&ids) {
                    tracing::error!(error = %e, "schedule batch failed; it is retried");
                }
            }));
        }
        for f in fires {
            let _ = f.await;
        }
        last_round = tokio::time::Instant::now();
    }
}

type H = State<DaemonHandle>;

pub async fn create(
    State(h): H,
    c: Caller,
    Body(req): Body<ScheduleReq>,
) -> ApiResult<Json<ScheduleInfo>> {
    if let Some(p) = &req.persona
        && (p.contains('/') || p.ends_with(".lua"))
        && !c.is_admin()
    {
        return Err(Error::forbidden(
            "a check-in script file may only be named with the admin token; peers name personas",
        )
        .into());
    }
    let s = h.store.create_schedule(&c.me()?.id, &req)?;
    h.schedules_changed.notify_one();
    Ok(Json(s))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQ {
    #[serde(default)]
    all: bool,
}

pub async fn list(
    State(h): H,
    c: Caller,
    Query(q): Query<ListQ>,
) -> ApiResult<Json<Vec<ScheduleInfo>>> {
    let circle = c.scope_circle(None)?;
    let owner = match (q.all, c.me()) {
        (false, Ok(me)) => Some(me.id.clone()),
        _ => None,
    };
    Ok(Json(
        h.store
            .list_schedules(circle.as_deref(), owner.as_deref())?,
    ))
}

pub async fn show(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<ScheduleInfo>> {
    let s = h.store.get_schedule(&id)?;
    if let Some(me) = c.viewer()
        && me.circle != s.circle
    {
        return Err(Error::new(
            repowire_core::ErrorCode::CrossCircle,
            "another circle's schedule",
        )
        .into());
    }
    Ok(Json(s))
}

async fn change(
    h: DaemonHandle,
    c: Caller,
    id: String,
    what: &str,
) -> ApiResult<Json<ScheduleInfo>> {
    let actor = c.me().ok().map(|p| p.id.clone());
    let s = h.store.change_schedule(&id, actor.as_deref(), what)?;
    h.schedules_changed.notify_one();
    Ok(Json(s))
}

pub async fn delete(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    change(h, c, id, "delete").await
}
pub async fn pause(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    change(h, c, id, "pause").await
}
pub async fn resume(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    change(h, c, id, "resume").await
}
