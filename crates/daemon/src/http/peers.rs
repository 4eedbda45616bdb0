//! Peers and the orchestrator role over HTTP: parse, one
//! `service::peers` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Path, Query};
use crate::service::{peers, spawn};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{
    ClaimReq, ClaimResp, HeartbeatReq, KillReq, KillResp, OrchestratorStatus, PeerInfo, PruneReq,
    PruneResp, RegisterReq, RegisterResp, SpawnReq, SpawnResp, UpdatePeerReq,
};
use serde::Deserialize;

type H = State<DaemonHandle>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleQuery {
    circle: Option<String>,
}

pub async fn register(
    State(h): H,
    c: Caller,
    Body(req): Body<RegisterReq>,
) -> ApiResult<Json<RegisterResp>> {
    Ok(Json(peers::register(&h, &c, req).await?))
}

pub async fn list_peers(
    State(h): H,
    c: Caller,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<Vec<PeerInfo>>> {
    Ok(Json(peers::list(&h, &c, q.circle)?))
}

pub async fn whoami(State(h): H, c: Caller) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::whoami(&h, &c)?))
}

pub async fn describe(
    State(h): H,
    c: Caller,
    Path(name): Path<String>,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::describe(&h, &c, &name, q.circle.as_deref())?))
}

pub async fn update_me(
    State(h): H,
    c: Caller,
    Body(req): Body<UpdatePeerReq>,
) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::update_me(&h, &c, req)?))
}

pub async fn heartbeat(
    State(h): H,
    c: Caller,
    Body(req): Body<HeartbeatReq>,
) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::heartbeat(&h, &c, req.status)?))
}

pub async fn unregister_me(State(h): H, c: Caller) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::unregister_me(&h, &c)?))
}

pub async fn unregister_named(
    State(h): H,
    c: Caller,
    Path(name): Path<String>,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::unregister_named(
        &h,
        &c,
        &name,
        q.circle.as_deref(),
    )?))
}

pub async fn prune(
    State(h): H,
    c: Caller,
    Body(req): Body<PruneReq>,
) -> ApiResult<Json<PruneResp>> {
    Ok(Json(peers::prune(
        &h,
        &c,
        req.older_than_ms,
        req.circle.as_deref(),
    )?))
}

pub async fn claim(
    State(h): H,
    c: Caller,
    Body(req): Body<ClaimReq>,
) -> ApiResult<Json<ClaimResp>> {
    Ok(Json(peers::claim(&h, &c, req.force)?))
}

pub async fn release(State(h): H, c: Caller) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(peers::release(&h, &c)?))
}

pub async fn orchestrator_status(
    State(h): H,
    c: Caller,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<OrchestratorStatus>> {
    Ok(Json(peers::orchestrator_status(&h, &c, q.circle)?))
}

pub async fn spawn(
    State(h): H,
    c: Caller,
    Body(req): Body<SpawnReq>,
) -> ApiResult<Json<SpawnResp>> {
    Ok(Json(spawn::spawn(&h, &c, req).await?))
}

pub async fn kill(State(h): H, c: Caller, Body(req): Body<KillReq>) -> ApiResult<Json<KillResp>> {
    Ok(Json(spawn::kill(&h, &c, req).await?))
}
