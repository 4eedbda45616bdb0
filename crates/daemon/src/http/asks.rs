//! Asks, messages and the inbox over HTTP: parse, one `service::asks`
//! call, render. (The inbox is `inbox`, waiting on an ask `events`.)

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Path, Query};
use crate::service::asks::{self, Direction};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{
    AckReq, AnswerReq, AskInfo, AskManyReq, AskManyResp, AskManyResult, AskReq, AskResp,
    BroadcastReq, BroadcastResp, DeclineReq, NotifyReq, NotifyResp,
};
use repowire_core::ask::AskAction;
use repowire_core::ids::{AskGroupId, AskId};
use serde::Deserialize;

type H = State<DaemonHandle>;

pub async fn ask(State(h): H, c: Caller, Body(req): Body<AskReq>) -> ApiResult<Json<AskResp>> {
    let Some(wait_ms) = req.wait_ms else {
        return Ok(Json(asks::ask(&h, &c, req)?.into()));
    };
    let (sent, done) = asks::ask_and_wait(&h, &c, req, wait_ms).await?;
    Ok(Json(AskResp {
        done: Some(done),
        ..sent.into()
    }))
}

pub async fn ask_many(
    State(h): H,
    c: Caller,
    Body(req): Body<AskManyReq>,
) -> ApiResult<Json<AskManyResp>> {
    Ok(Json(asks::ask_many(&h, &c, req)?.into()))
}

pub async fn ask_many_result(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AskManyResult>> {
    let id = AskGroupId::parse(&id)?;
    Ok(Json(asks::ask_many_result(&h, &c, &id)?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsksQuery {
    /// `sent`, `received` or `all` (default).
    dir: Option<String>,
    #[serde(default)]
    open: bool,
    limit: Option<u32>,
}

pub async fn list_asks(
    State(h): H,
    c: Caller,
    Query(q): Query<AsksQuery>,
) -> ApiResult<Json<Vec<AskInfo>>> {
    let dir = Direction::parse(q.dir.as_deref())?;
    let list = asks::list(&h, &c, dir, q.open, q.limit)?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

pub async fn get_ask(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<AskInfo>> {
    let id = AskId::parse(&id)?;
    Ok(Json(asks::get(&h, &c, &id)?.into()))
}

pub async fn pickup(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<AskInfo>> {
    let id = AskId::parse(&id)?;
    Ok(Json(
        asks::act(&h, &c, &id, AskAction::Pickup, None)?.into(),
    ))
}

pub async fn ack(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<AckReq>,
) -> ApiResult<Json<AskInfo>> {
    let id = AskId::parse(&id)?;
    let text = req.message.as_deref();
    Ok(Json(asks::act(&h, &c, &id, AskAction::Ack, text)?.into()))
}

pub async fn decline(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<DeclineReq>,
) -> ApiResult<Json<AskInfo>> {
    let id = AskId::parse(&id)?;
    Ok(Json(asks::decline(&h, &c, &id, &req.reason)?.into()))
}

pub async fn answer(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<AnswerReq>,
) -> ApiResult<Json<AskInfo>> {
    let id = AskId::parse(&id)?;
    let text = Some(req.text.as_str());
    Ok(Json(
        asks::act(&h, &c, &id, AskAction::Answer, text)?.into(),
    ))
}

pub async fn cancel(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<AskInfo>> {
    let id = AskId::parse(&id)?;
    Ok(Json(
        asks::act(&h, &c, &id, AskAction::Cancel, None)?.into(),
    ))
}

pub async fn notify(
    State(h): H,
    c: Caller,
    Body(req): Body<NotifyReq>,
) -> ApiResult<Json<NotifyResp>> {
    Ok(Json(asks::notify(&h, &c, req)?.into()))
}

pub async fn broadcast(
    State(h): H,
    c: Caller,
    Body(req): Body<BroadcastReq>,
) -> ApiResult<Json<BroadcastResp>> {
    Ok(Json(asks::broadcast(&h, &c, req)?.into()))
}
