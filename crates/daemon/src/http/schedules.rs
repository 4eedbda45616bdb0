//! Schedules over HTTP: parse, one `service::schedules` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Path, Query};
use crate::service::schedules::{self, Change};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{ScheduleInfo, ScheduleReq};
use serde::Deserialize;

type H = State<DaemonHandle>;

pub async fn create(
    State(h): H,
    c: Caller,
    Body(req): Body<ScheduleReq>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(schedules::create(&h, &c, &req)?))
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
    Ok(Json(schedules::list(&h, &c, q.all)?))
}

pub async fn show(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(schedules::show(&h, &c, &id)?))
}

pub async fn delete(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(schedules::change(&h, &c, &id, Change::Delete)?))
}

pub async fn pause(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(schedules::change(&h, &c, &id, Change::Pause)?))
}

pub async fn resume(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(schedules::change(&h, &c, &id, Change::Resume)?))
}
