//! The daemon over HTTP: health, traces, doctor, shutdown, the manual
//! clock of tests, and the answers for unknown routes and methods.

use crate::DaemonHandle;
use crate::auth::{ApiError, ApiResult, Body, Caller, Path};
use crate::service::admin;
use axum::Json;
use axum::extract::State;
use repowire_client::api::{ClockReq, DoctorResp, Health, TraceResp};
use repowire_core::error::{Error, ErrorCode};

type H = State<DaemonHandle>;

pub async fn not_found() -> ApiError {
    ApiError(Error::new(ErrorCode::NotFound, "no such route"))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError(Error::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that HTTP method",
    ))
}

pub async fn health(State(h): H) -> Json<Health> {
    Json(admin::health(&h))
}

pub async fn trace(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<TraceResp>> {
    // A trace reads the whole retained log: off the async thread, so the
    // requests it serves go on meanwhile.
    let asked = id.clone();
    let events = tokio::task::spawn_blocking(move || admin::trace(&h, &c, &asked))
        .await
        .map_err(|e| Error::internal(format!("trace: {e}")))??;
    Ok(Json(TraceResp {
        id,
        events: events.into_iter().map(Into::into).collect(),
    }))
}

pub async fn doctor(State(h): H, c: Caller) -> ApiResult<Json<DoctorResp>> {
    Ok(Json(admin::doctor(&h, &c)?))
}

pub async fn shutdown(State(h): H, c: Caller) -> ApiResult<Json<serde_json::Value>> {
    admin::shutdown(&h, &c)?;
    Ok(Json(serde_json::json!({"ok": true, "stopping": true})))
}

pub async fn clock(
    State(h): H,
    c: Caller,
    Body(req): Body<ClockReq>,
) -> ApiResult<Json<serde_json::Value>> {
    let now_ms = admin::advance_clock(&h, &c, req.advance_ms).await?;
    Ok(Json(serde_json::json!({"now_ms": now_ms})))
}
