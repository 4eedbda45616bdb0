//! Jobs over HTTP, and dispatch through the circle's persona: the persona
//! (else the built-in policy) picks a route and the daemon carries it out.
//! Queued jobs are retried from the background tick.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, OptBody, Path, Query};
use crate::pipeline::{self, Input, Outcome, Target};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{DispatchReq, DispatchResp, JobCreateReq, JobInfo, JobUpdateReq};
use repowire_core::error::Error;
use repowire_core::job::JobState;
use repowire_core::mesh::JobInput;
use serde::Deserialize;

type H = State<DaemonHandle>;

/// Decide a queued job's route and (unless `dry_run`) carry it out.
pub fn dispatch(h: &DaemonHandle, id: &str, dry_run: bool) -> Result<DispatchResp, Error> {
    let job = h.store.get_job(id)?;
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
    let decision = pipeline::decide(
        h,
        &job.circle,
        Input::Dispatch(&input),
        serde_json::json!({"job": id}),
    )?;
    let resp = |job, outcome: &str, delivery_id| DispatchResp {
        job,
        persona: decision.persona.clone(),
        route: decision.out(),
        outcome: outcome.to_string(),
        delivery_id,
    };
    if dry_run {
        return Ok(resp(job, "dry_run", None));
    }
    let route = decision
        .routes
        .first()
        .ok_or_else(|| Error::internal("a dispatch decision without a route"))?;
    let done = pipeline::execute(h, &Target::Job(id), route)?;
    Ok(match &done {
        Outcome::Assigned { delivery_id } => {
            resp(h.store.get_job(id)?, done.as_str(), delivery_id.clone())
        }
        Outcome::AskedUser { delivery_id } => resp(job, done.as_str(), delivery_id.clone()),
        _ => resp(job, done.as_str(), None),
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
            // Only an assignment moves the job out of the queue.
            Ok(r) if r.job.state != JobState::Queued => n += 1,
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
