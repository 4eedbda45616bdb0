//! Schedules over HTTP: parse, one `service::schedules` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Path, Query};
use crate::service::schedules::{self, Change};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{ScheduleInfo, ScheduleReq};
use repowire_core::ids::ScheduleId;
use serde::Deserialize;

type H = State<DaemonHandle>;

pub async fn create(
    State(h): H,
    c: Caller,
    Body(req): Body<ScheduleReq>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(schedules::create(&h, &c, req)?.into()))
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
    let list = schedules::list(&h, &c, q.all)?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

pub async fn show(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<ScheduleInfo>> {
    let id = ScheduleId::parse(&id)?;
    Ok(Json(schedules::show(&h, &c, &id)?.into()))
}

pub async fn delete(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    let id = ScheduleId::parse(&id)?;
    Ok(Json(schedules::change(&h, &c, &id, Change::Delete)?.into()))
}

pub async fn pause(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    let id = ScheduleId::parse(&id)?;
    Ok(Json(schedules::change(&h, &c, &id, Change::Pause)?.into()))
}

pub async fn resume(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    let id = ScheduleId::parse(&id)?;
    Ok(Json(schedules::change(&h, &c, &id, Change::Resume)?.into()))
}
