//! Reviews over HTTP: parse, one `service::reviews` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Query};
use crate::service::reviews;
use axum::Json;
use axum::extract::State;
use repowire_client::api::{
    QueueEntry, ReviewInfo, ReviewRefReq, ReviewRequestReq, ReviewRequestResp,
};
use serde::Deserialize;

type H = State<DaemonHandle>;

pub async fn request(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRequestReq>,
) -> ApiResult<Json<ReviewRequestResp>> {
    Ok(Json(reviews::request(&h, &c, req).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQ {
    peer: Option<String>,
}

pub async fn queue(
    State(h): H,
    c: Caller,
    Query(q): Query<QueueQ>,
) -> ApiResult<Json<Vec<QueueEntry>>> {
    let queue = reviews::queue(&h, &c, q.peer)?;
    Ok(Json(queue.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQ {
    #[serde(rename = "ref")]
    reference: String,
    circle: Option<String>,
}

pub async fn show(State(h): H, c: Caller, Query(q): Query<ShowQ>) -> ApiResult<Json<ReviewInfo>> {
    Ok(Json(reviews::show(&h, &c, &q.reference, q.circle)?.into()))
}

pub async fn update(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRefReq>,
) -> ApiResult<Json<ReviewInfo>> {
    Ok(Json(reviews::update(&h, &c, req)?.into()))
}

pub async fn mark(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRefReq>,
) -> ApiResult<Json<ReviewInfo>> {
    Ok(Json(reviews::mark(&h, &c, req)?.into()))
}

pub async fn close(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRefReq>,
) -> ApiResult<Json<ReviewInfo>> {
    Ok(Json(reviews::close(&h, &c, &req)?.into()))
}
