//! The HTTP API: routes → one store call each. See `docs/http-api.md`.

use super::DaemonHandle;
use super::policy::{self, Action};
use super::auth::{ApiError, ApiResult, Body, Caller, Path, Query};
use super::http::{jobs, personas, reviews, schedules as scheduler};
use super::{edge, poll};
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::{Json, Router};
use repowire_client::api::*;
use repowire_core::ask::AskAction;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::time::now_ms;
use serde::Deserialize;

type H = State<DaemonHandle>;

pub fn router(h: DaemonHandle) -> Router {
    let body_limit = repowire_core::limits::body_bytes(&h.store.policy);
    Router::new()
        .route("/health", get(health))
        .route("/v1/peers", post(register).get(list_peers))
        .route("/v1/peers/prune", post(prune))
        .route(
            "/v1/peers/me",
            get(whoami).patch(update_me).delete(unregister_me),
        )
        .route("/v1/peers/me/heartbeat", post(heartbeat))
        .route(
            "/v1/peers/by-name/{name}",
            get(describe).delete(unregister_named),
        )
        .route("/v1/roles/orchestrator/claim", post(claim))
        .route("/v1/roles/orchestrator/release", post(release))
        .route("/v1/orchestrator", get(orchestrator_status))
        .route("/v1/orchestrator/decide", post(personas::decide))
        .route("/v1/reviews", post(reviews::request).get(reviews::show))
        .route("/v1/reviews/queue", get(reviews::queue))
        .route("/v1/reviews/update", post(reviews::update))
        .route("/v1/reviews/mark", post(reviews::mark))
        .route("/v1/reviews/close", post(reviews::close))
        .route(
            "/v1/schedules",
            post(scheduler::create).get(scheduler::list),
        )
        .route(
            "/v1/schedules/{id}",
            get(scheduler::show).delete(scheduler::delete),
        )
        .route("/v1/schedules/{id}/pause", post(scheduler::pause))
        .route("/v1/schedules/{id}/resume", post(scheduler::resume))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::show))
        .route("/v1/jobs/{id}/update", post(jobs::update))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/dispatch", post(jobs::dispatch))
        .route("/v1/personas", get(personas::active))
        .route("/v1/personas/use", post(personas::use_persona))
        .route("/v1/personas/clear", post(personas::clear_persona))
        .route("/v1/personas/status", get(personas::persona_status))
        .route("/v1/asks", post(ask).get(list_asks))
        .route("/v1/asks/many", post(ask_many))
        .route("/v1/asks/many/{id}", get(ask_many_result))
        .route("/v1/asks/{id}", get(get_ask))
        .route("/v1/asks/{id}/wait", get(poll::wait_ask))
        .route("/v1/asks/{id}/pickup", post(pickup))
        .route("/v1/asks/{id}/ack", post(ack))
        .route("/v1/asks/{id}/decline", post(decline))
        .route("/v1/asks/{id}/answer", post(answer))
        .route("/v1/asks/{id}/cancel", post(cancel))
        .route("/v1/notify", post(notify))
        .route("/v1/broadcast", post(broadcast))
        .route("/v1/inbox", get(peek))
        .route("/v1/inbox/lease", post(poll::lease))
        .route("/v1/inbox/stream", get(poll::inbox_stream))
        .route("/v1/inbox/confirm", post(confirm))
        .route("/v1/events", get(poll::events))
        .route("/v1/events/stream", get(poll::events_stream))
        .route("/v1/trace/{id}", get(trace))
        .route("/v1/doctor", get(doctor))
        .route("/v1/shutdown", post(shutdown))
        // Query names, path parameters and body presence of each route.
        .route_layer(from_fn_with_state(h.clone(), edge::guard_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // Target and header sizes of every request, routed or not.
        .layer(from_fn(edge::guard_head))
        .with_state(h)
}

async fn not_found() -> ApiError {
    ApiError(Error::new(ErrorCode::NotFound, "no such route"))
}

async fn method_not_allowed() -> ApiError {
    ApiError(Error::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that HTTP method",
    ))
}

async fn health(State(h): H) -> Json<Health> {
    Json(Health {
        ok: true,
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        url: h.url.clone(),
        home: h.home.dir.display().to_string(),
        started_at_ms: h.started_at_ms,
        uptime_ms: now_ms() - h.started_at_ms,
    })
}

fn info(h: &DaemonHandle, p: &repowire_store::PeerRow) -> PeerInfo {
    p.info(now_ms(), h.store.policy.stale_after_ms)
}

async fn register(
    State(h): H,
    c: Caller,
    Body(req): Body<RegisterReq>,
) -> ApiResult<Json<RegisterResp>> {
    policy::authorize(&c, Action::Register, policy::Target::none())?;
    let token_peer = c.viewer();
    let (row, token, resumed) = h.store.register(req, token_peer)?;
    Ok(Json(RegisterResp {
        peer: info(&h, &row),
        token,
        resumed,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CircleQuery {
    circle: Option<String>,
}

async fn list_peers(
    State(h): H,
    c: Caller,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<Vec<PeerInfo>>> {
    let circle = c.scope_circle(q.circle)?;
    let rows = h.store.list_peers(circle.as_deref())?;
    Ok(Json(rows.iter().map(|p| info(&h, p)).collect()))
}

async fn whoami(State(h): H, c: Caller) -> ApiResult<Json<PeerInfo>> {
    Ok(Json(info(&h, c.me()?)))
}

async fn describe(
    State(h): H,
    c: Caller,
    Path(name): Path<String>,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<PeerInfo>> {
    let p = c.resolve_peer_in_caller_circle(&h, &name, q.circle.as_deref())?;
    Ok(Json(info(&h, &p)))
}

async fn update_me(
    State(h): H,
    c: Caller,
    Body(req): Body<UpdatePeerReq>,
) -> ApiResult<Json<PeerInfo>> {
    let row = h.store.update_peer(&c.me()?.id, req)?;
    Ok(Json(info(&h, &row)))
}

async fn heartbeat(
    State(h): H,
    c: Caller,
    Body(req): Body<HeartbeatReq>,
) -> ApiResult<Json<PeerInfo>> {
    let row = h.store.heartbeat(&c.me()?.id, req.status)?;
    Ok(Json(info(&h, &row)))
}

async fn unregister_me(State(h): H, c: Caller) -> ApiResult<Json<PeerInfo>> {
    let row = h.store.unregister(&c.me()?.id)?;
    Ok(Json(info(&h, &row)))
}

async fn unregister_named(
    State(h): H,
    c: Caller,
    Path(name): Path<String>,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<PeerInfo>> {
    c.require_admin()?;
    let p = h.store.resolve_peer(&name, q.circle.as_deref())?;
    let row = h.store.unregister(&p.id)?;
    Ok(Json(info(&h, &row)))
}

async fn prune(State(h): H, c: Caller, Body(req): Body<PruneReq>) -> ApiResult<Json<PruneResp>> {
    c.require_admin()?;
    let older = req.older_than_ms.unwrap_or(h.store.policy.stale_after_ms);
    if older < 0 {
        return Err(Error::bad_request("older_than_ms must not be negative").into());
    }
    let rows = h.store.prune(older, req.circle.as_deref())?;
    Ok(Json(PruneResp {
        pruned: rows.iter().map(|p| info(&h, p)).collect(),
    }))
}

async fn claim(State(h): H, c: Caller, Body(req): Body<ClaimReq>) -> ApiResult<Json<ClaimResp>> {
    Ok(Json(h.store.claim_orchestrator(&c.me()?.id, req.force)?))
}

async fn release(State(h): H, c: Caller) -> ApiResult<Json<PeerInfo>> {
    let row = h.store.release_orchestrator(&c.me()?.id)?;
    Ok(Json(info(&h, &row)))
}

async fn orchestrator_status(
    State(h): H,
    c: Caller,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<OrchestratorStatus>> {
    let circle = c
        .scope_circle(q.circle)?
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| repowire_core::peer::DEFAULT_CIRCLE.to_string());
    repowire_core::peer::validate_name("circle", &circle)?;
    let stale_after = h.store.policy.stale_after_ms;
    let holder = h.store.orchestrator(&circle)?;
    let now = now_ms();
    Ok(Json(OrchestratorStatus {
        present: holder.is_some(),
        stale: holder
            .as_ref()
            .is_some_and(|p| !p.reachable(now, stale_after)),
        name: holder.as_ref().map(|p| p.name.clone()),
        peer_id: holder.as_ref().map(|p| p.id.clone()),
        last_seen_ms: holder.as_ref().map(|p| p.last_seen_ms),
        last_seen_age_s: holder
            .as_ref()
            .map(|p| (now - p.last_seen_ms).max(0) / 1000),
        stale_after_s: stale_after / 1000,
        persona: h
            .store
            .active_persona(&circle)?
            .map(|n| h.personas.brief(&circle, &n)),
        circle,
    }))
}

async fn ask(State(h): H, c: Caller, Body(req): Body<AskReq>) -> ApiResult<Json<AskResp>> {
    let bypass = c.bypass(req.bypass_circle)?;
    Ok(Json(h.store.ask(&c.me()?.id, &req, bypass)?))
}

async fn ask_many(
    State(h): H,
    c: Caller,
    Body(req): Body<AskManyReq>,
) -> ApiResult<Json<AskManyResp>> {
    let bypass = c.bypass(req.bypass_circle)?;
    Ok(Json(h.store.ask_many(&c.me()?.id, &req, bypass)?))
}

async fn ask_many_result(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AskManyResult>> {
    let viewer = c.viewer().map(|p| p.id.as_str());
    Ok(Json(h.store.ask_many_result(&id, viewer)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsksQuery {
    /// `sent`, `received` or `all` (default).
    dir: Option<String>,
    #[serde(default)]
    open: bool,
    limit: Option<u32>,
}

async fn list_asks(
    State(h): H,
    c: Caller,
    Query(q): Query<AsksQuery>,
) -> ApiResult<Json<Vec<AskInfo>>> {
    let (sent, received) = match q.dir.as_deref().unwrap_or("all") {
        "sent" => (true, false),
        "received" => (false, true),
        "all" => (true, true),
        other => {
            return Err(Error::bad_request(format!(
                "dir must be sent, received or all, not {other:?}"
            ))
            .into());
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(h.store.list_asks(
        &c.me()?.id,
        sent,
        received,
        q.open,
        limit,
    )?))
}

async fn get_ask(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<AskInfo>> {
    let viewer = c.viewer().map(|p| p.id.as_str());
    Ok(Json(h.store.get_ask(&id, viewer)?))
}

async fn act(
    h: DaemonHandle,
    c: Caller,
    id: String,
    action: AskAction,
    text: Option<String>,
) -> ApiResult<Json<AskInfo>> {
    Ok(Json(h.store.act_on_ask(
        &id,
        &c.me()?.id,
        action,
        text.as_deref(),
    )?))
}

async fn pickup(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<AskInfo>> {
    act(h, c, id, AskAction::Pickup, None).await
}

async fn ack(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<AckReq>,
) -> ApiResult<Json<AskInfo>> {
    act(h, c, id, AskAction::Ack, req.message).await
}

/// A refusal closes the ask like an ack; the asker reads the reason.
async fn decline(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<repowire_client::api::DeclineReq>,
) -> ApiResult<Json<AskInfo>> {
    if req.reason.trim().is_empty() {
        return Err(Error::bad_request("a decline needs a reason").into());
    }
    let message = format!("Declined: {}", req.reason.trim());
    act(h, c, id, AskAction::Ack, Some(message)).await
}

async fn answer(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Body(req): Body<AnswerReq>,
) -> ApiResult<Json<AskInfo>> {
    act(h, c, id, AskAction::Answer, Some(req.text)).await
}

async fn cancel(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<AskInfo>> {
    act(h, c, id, AskAction::Cancel, None).await
}

async fn notify(State(h): H, c: Caller, Body(req): Body<NotifyReq>) -> ApiResult<Json<NotifyResp>> {
    let bypass = c.bypass(req.bypass_circle)?;
    Ok(Json(h.store.notify(&c.me()?.id, &req, bypass)?))
}

async fn broadcast(
    State(h): H,
    c: Caller,
    Body(req): Body<BroadcastReq>,
) -> ApiResult<Json<BroadcastResp>> {
    let me = c.me()?;
    let bypass = c.bypass(req.bypass_circle)?;
    h.store.policy.check_text("message", &req.text)?;
    if !h.allow_broadcast(&me.id) {
        return Err(Error::new(
            ErrorCode::RateLimited,
            format!(
                "{} sent {} broadcasts in the last minute, the limit (broadcast_per_minute)",
                me.name, h.store.policy.broadcast_per_minute
            ),
        )
        .into());
    }
    // A refused broadcast does not use up the sender's budget.
    let sent = h.store.broadcast(&me.id, &req, bypass);
    if sent.is_err() {
        h.refund_broadcast(&me.id);
    }
    Ok(Json(sent?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeekQuery {
    limit: Option<u32>,
}

async fn peek(State(h): H, c: Caller, Query(q): Query<PeekQuery>) -> ApiResult<Json<InboxResp>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(InboxResp {
        deliveries: h.store.peek(&c.me()?.id, limit)?,
    }))
}

async fn confirm(
    State(h): H,
    c: Caller,
    Body(req): Body<ConfirmReq>,
) -> ApiResult<Json<ConfirmResp>> {
    Ok(Json(ConfirmResp {
        confirmed: h.store.confirm(&c.me()?.id, &req.ids)?,
    }))
}

async fn trace(State(h): H, c: Caller, Path(id): Path<String>) -> ApiResult<Json<TraceResp>> {
    if repowire_core::ids::IdKind::of(&id).is_none() {
        return Err(Error::bad_request(format!(
            "{id:?} is not a traceable id (ask-…, askm-…, dlv-…, peer-…)"
        ))
        .into());
    }
    let events = h.store.trace(&id)?;
    if events.is_empty() {
        return Err(Error::new(ErrorCode::NotFound, format!("no events about {id}")).into());
    }
    // A peer traces what happened in its circle, and its own asks (an
    // admin-bypassed ask crosses circles).
    let party = |me: &repowire_store::PeerRow| {
        repowire_core::ids::IdKind::of(&id) == Some(repowire_core::ids::IdKind::Ask)
            && h.store.get_ask(&id, Some(&me.id)).is_ok()
    };
    if let Some(me) = c.viewer()
        && events
            .iter()
            .any(|e| e.circle.as_deref().is_some_and(|cl| cl != me.circle))
        && !party(me)
    {
        return Err(Error::new(
            ErrorCode::CrossCircle,
            format!("{id} belongs to another circle"),
        )
        .into());
    }
    Ok(Json(TraceResp { id, events }))
}

async fn doctor(State(h): H, c: Caller) -> ApiResult<Json<DoctorResp>> {
    c.require_admin()?;
    let counts = h.store.counts()?;
    let now = now_ms();
    let stale_after = h.store.policy.stale_after_ms;
    let stale_peers = h
        .store
        .list_peers(None)?
        .iter()
        .filter(|p| repowire_core::peer::is_stale(p.last_seen_ms, now, stale_after))
        .map(|p| p.info(now, stale_after))
        .collect();
    Ok(Json(DoctorResp {
        db_ok: counts.check == "ok",
        db_check: counts.check,
        schema_version: counts.schema_version,
        peers: counts.peers,
        stale_peers,
        open_asks: counts.open_asks,
        pending_deliveries: counts.pending_deliveries,
        events: counts.events,
    }))
}

async fn shutdown(State(h): H, c: Caller) -> ApiResult<Json<serde_json::Value>> {
    c.require_admin()?;
    h.request_shutdown();
    Ok(Json(serde_json::json!({"ok": true, "stopping": true})))
}
