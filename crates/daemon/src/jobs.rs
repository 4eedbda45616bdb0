//! Jobs over HTTP, and dispatch through the circle's persona: the persona
//! (else the built-in policy) picks a route and the daemon carries it out.
//! Queued jobs are retried from the background tick.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, OptBody, Path, Query};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{DispatchReq, DispatchResp, JobCreateReq, JobInfo, JobUpdateReq};
use repowire_core::error::Error;
use repowire_core::job::JobState;
use repowire_core::mesh::JobInput;
use repowire_core::route::DispatchOutcome;
use repowire_core::route::Route;
use repowire_persona as persona;
use serde::Deserialize;
use std::time::Instant;

type H = State<DaemonHandle>;

/// Decide a queued job's route and (unless `dry_run`) carry it out.
pub fn dispatch(h: &DaemonHandle, id: &str, dry_run: bool) -> Result<DispatchResp, Error> {
    let job = h.store.get_job(id)?;
    let circle = job.circle.clone();
    let mesh = h.personas.mesh(&h.store, &circle)?;
    let name = h.store.active_persona(&circle)?;
    let p = name
        .as_deref()
        .and_then(|n| h.personas.for_decision(&h.store, &circle, n));
    let input = JobInput {
        id: job.job_id.clone(),
        title: job.title.clone(),
        brief: job.brief.clone(),
        tags: job.tags.clone(),
        priority: job.priority,
        creator: job.created_by.clone(),
        attempt: job.attempts + 1,
        previous_assignees: job.previous_assignees.clone(),
    };
    let started = Instant::now();
    let decision = persona::decide_dispatch(p.as_deref(), &input, &mesh);
    super::personas::account(
        h,
        &circle,
        name.as_deref(),
        "dispatch",
        started,
        &decision,
        serde_json::json!({"job": id}),
    )?;
    let route = decision.out();
    let resp = |job: JobInfo, outcome: DispatchOutcome, delivery_id: Option<String>| DispatchResp {
        job,
        persona: name.clone(),
        route: route.clone(),
        outcome,
        delivery_id,
    };
    if dry_run {
        return Ok(resp(job, DispatchOutcome::DryRun, None));
    }
    if job.state != JobState::Queued {
        return Err(Error::new(
            repowire_core::ErrorCode::InvalidState,
            format!("job {id} is {}: only a queued job is dispatched", job.state),
        ));
    }
    let sender = h.store.orchestrator(&circle)?.map(|o| o.id);
    Ok(match &decision.route {
        Route::Assign { peer, note } => {
            let (job, dlv) = h
                .store
                .dispatch_job(id, peer, sender.as_deref(), note.as_deref())?;
            resp(
                job,
                DispatchOutcome::Assigned,
                (!dlv.is_empty()).then_some(dlv),
            )
        }
        // Not dispatched now: hold the job back so others get their turn.
        Route::Defer { after, .. } => {
            let wait = repowire_core::time::parse_duration(after)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(60_000);
            h.store.hold_job(id, h.clock.now_ms() + wait)?;
            resp(job, DispatchOutcome::Deferred, None)
        }
        Route::Decline { .. } => {
            h.store.hold_job(id, h.clock.now_ms() + 3_600_000)?;
            resp(job, DispatchOutcome::Declined, None)
        }
        Route::AskUser { question } => {
            // The question goes to the circle's orchestrator, else the job's owner.
            let to = h
                .store
                .orchestrator(&circle)?
                .map(|o| o.name)
                .unwrap_or_else(|| job.owner.clone());
            let from = sender.clone().unwrap_or_else(|| job.owner.clone());
            let from_id = match sender.as_deref() {
                Some(s) => s.to_string(),
                None => h.store.resolve_peer(&from, Some(&circle))?.id,
            };
            let sent = h.store.notify(
                &from_id,
                &repowire_client::api::NotifyReq {
                    to,
                    circle: Some(circle.clone()),
                    text: format!("Job {id} \"{}\" needs a decision: {question}", job.title),
                    bypass_circle: false,
                },
                false,
            );
            h.store.hold_job(id, h.clock.now_ms() + 3_600_000)?;
            resp(
                job,
                DispatchOutcome::AskedUser,
                sent.ok().map(|s| s.delivery_id),
            )
        }
        Route::Ask { .. } | Route::Notify { .. } | Route::Fanout { .. } => {
            resp(job, DispatchOutcome::NotApplicable, None)
        }
    })
}

/// Background: try to dispatch queued, unassigned jobs (a few per tick).
pub fn retry_queued(h: &DaemonHandle) -> usize {
    let Ok(queued) = h.store.dispatchable_jobs(20) else {
        return 0;
    };
    let mut n = 0;
    for id in queued {
        match dispatch(h, &id, false) {
            Ok(r) if r.outcome == DispatchOutcome::Assigned => n += 1,
            Ok(_) => {}
            Err(e) => tracing::debug!(job = %id, error = %e, "dispatch retry failed"),
        }
    }
    n
}

pub async fn create(
    State(h): H,
    c: Caller,
    Body(req): Body<JobCreateReq>,
) -> ApiResult<Json<JobInfo>> {
    let me = c.me()?.id.clone();
    let hh = h.clone();
    let job = tokio::task::spawn_blocking(move || -> Result<JobInfo, Error> {
        let job = hh.store.create_job(&me, &req)?;
        if job.state == JobState::Queued {
            // Route it now if someone fits; otherwise it waits for a retry.
            if let Ok(r) = dispatch(&hh, &job.job_id, false) {
                return Ok(r.job);
            }
        }
        Ok(job)
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))??;
    Ok(Json(job))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQ {
    state: Option<String>,
    owner: Option<String>,
    assignee: Option<String>,
    circle: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

pub async fn list(State(h): H, c: Caller, Query(q): Query<ListQ>) -> ApiResult<Json<Vec<JobInfo>>> {
    let circle = c.scope_circle(q.circle)?;
    let state = q.state.as_deref().map(JobState::parse).transpose()?;
    Ok(Json(h.store.list_jobs(
        circle.as_deref(),
        state,
        q.owner.as_deref(),
        q.assignee.as_deref(),
        q.limit.unwrap_or(50).clamp(1, 1000),
        q.offset.unwrap_or(0),
    )?))
}

fn visible(c: &Caller, j: &JobInfo) -> Result<(), Error> {
    match c.viewer() {
        Some(me) if me.circle != j.circle => Err(Error::new(
            repowire_core::ErrorCode::CrossCircle,
            format!("job {} belongs to another circle", j.job_id),
        )),
        _ => Ok(()),
    }
}

pub async fn show(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<JobInfo>> {
    let j = h.store.get_job(&id)?;
    visible(&c, &j)?;
    Ok(Json(j))
}

pub async fn update(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<JobUpdateReq>,
) -> ApiResult<Json<JobInfo>> {
    // The admin without --as acts as nobody in particular (allowed).
    let actor = c.me().ok().map(|p| p.id.clone());
    Ok(Json(h.store.update_job(&id, actor.as_deref(), &req)?))
}

pub async fn cancel(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    OptBody(req): OptBody<repowire_client::api::JobCancelReq>,
) -> ApiResult<Json<JobInfo>> {
    let actor = c.me().ok().map(|p| p.id.clone());
    let req = JobUpdateReq {
        state: Some(JobState::Canceled),
        note: req.reason.map(|r| format!("cancel: {r}")),
        ..Default::default()
    };
    Ok(Json(h.store.update_job(&id, actor.as_deref(), &req)?))
}

pub async fn retry(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<JobInfo>> {
    let actor = c.me().ok().map(|p| p.id.clone());
    Ok(Json(h.store.retry_job(&id, actor.as_deref())?))
}

pub async fn dispatch_route(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<DispatchReq>,
) -> ApiResult<Json<DispatchResp>> {
    let j = h.store.get_job(&id)?;
    visible(&c, &j)?;
    if !req.dry_run
        && let Some(me) = c.viewer()
        && me.role != repowire_core::peer::Role::Orchestrator
        && me.name != j.owner
    {
        return Err(Error::forbidden(
            "only the orchestrator, the job's owner or the admin dispatches a job",
        )
        .into());
    }
    let hh = h.clone();
    let r = tokio::task::spawn_blocking(move || dispatch(&hh, &id, req.dry_run))
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
    Ok(Json(r))
}
