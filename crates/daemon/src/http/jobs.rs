//! Jobs over HTTP: parse, one `service::jobs` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, OptBody, Path, Query};
use crate::service::jobs;
use axum::Json;
use axum::extract::State;
use repowire_client::api::{
    DispatchReq, DispatchResp, JobCancelReq, JobCreateReq, JobInfo, JobUpdateReq,
};
use repowire_core::ids::JobId;
use serde::Deserialize;

type H = State<DaemonHandle>;

pub async fn create(
    State(h): H,
    c: Caller,
    Body(req): Body<JobCreateReq>,
) -> ApiResult<Json<JobInfo>> {
    Ok(Json(jobs::create(&h, &c, req).await?))
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
    let f = jobs::ListFilter {
        state: q.state,
        owner: q.owner,
        assignee: q.assignee,
        circle: q.circle,
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(
        jobs::list(&h, &c, f)?.into_iter().map(Into::into).collect(),
    ))
}

pub async fn show(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<JobInfo>> {
    let id = JobId::parse(&id)?;
    Ok(Json(jobs::show(&h, &c, &id)?.into()))
}

pub async fn update(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<JobUpdateReq>,
) -> ApiResult<Json<JobInfo>> {
    let id = JobId::parse(&id)?;
    Ok(Json(jobs::update(&h, &c, &id, req)?.into()))
}

pub async fn cancel(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    OptBody(req): OptBody<JobCancelReq>,
) -> ApiResult<Json<JobInfo>> {
    let id = JobId::parse(&id)?;
    Ok(Json(jobs::cancel(&h, &c, &id, req.reason)?.into()))
}

pub async fn retry(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<JobInfo>> {
    let id = JobId::parse(&id)?;
    Ok(Json(jobs::retry(&h, &c, &id)?.into()))
}

pub async fn dispatch(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<DispatchReq>,
) -> ApiResult<Json<DispatchResp>> {
    let id = JobId::parse(&id)?;
    Ok(Json(jobs::dispatch_for(&h, &c, id, req.dry_run).await?))
}
