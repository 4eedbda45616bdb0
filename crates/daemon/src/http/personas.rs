//! Personas over HTTP: parse, one `service::personas` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Query};
use crate::service::personas;
use axum::Json;
use axum::extract::State;
use repowire_client::api::{CircleReq, DecideReq, DecideResp, PersonaStatus, UsePersonaReq};
use serde::Deserialize;

type H = State<DaemonHandle>;

pub async fn use_persona(
    State(h): H,
    c: Caller,
    Body(req): Body<UsePersonaReq>,
) -> ApiResult<Json<PersonaStatus>> {
    Ok(Json(personas::use_persona(&h, &c, req).await?))
}

pub async fn clear_persona(
    State(h): H,
    c: Caller,
    Body(req): Body<CircleReq>,
) -> ApiResult<Json<PersonaStatus>> {
    Ok(Json(personas::clear_persona(&h, &c, req.circle)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleQ {
    circle: Option<String>,
}

pub async fn persona_status(
    State(h): H,
    c: Caller,
    Query(q): Query<CircleQ>,
) -> ApiResult<Json<PersonaStatus>> {
    Ok(Json(personas::status(&h, &c, q.circle)?))
}

pub async fn active(State(h): H, c: Caller) -> ApiResult<Json<Vec<PersonaStatus>>> {
    Ok(Json(personas::active(&h, &c)?))
}

/// The dry run of a decision over the live mesh.
pub async fn decide(
    State(h): H,
    c: Caller,
    Body(req): Body<DecideReq>,
) -> ApiResult<Json<DecideResp>> {
    Ok(Json(personas::decide(&h, &c, req).await?))
}
