//! The inbox over HTTP: peek, lease (pull and hook), the delivery stream
//! (SSE), confirm and pushed. Parse, one `service::inbox` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Body, Caller, Query};
use crate::service::inbox::{self, LeaseAsk, StreamItem};
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use repowire_client::api::{
    ConfirmReq, ConfirmResp, DeliveryInfo, InboxResp, LeaseReq, PushedReq, PushedResp,
};
use repowire_core::error::Error;
use repowire_core::ids::DeliveryId;
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

type H = State<DaemonHandle>;

fn inbox_resp(items: Vec<repowire_core::delivery::Delivery>) -> Json<InboxResp> {
    Json(InboxResp {
        deliveries: items.into_iter().map(Into::into).collect(),
    })
}

fn ids(raw: &[String]) -> Result<Vec<DeliveryId>, Error> {
    raw.iter().map(|id| DeliveryId::parse(id)).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeekQuery {
    limit: Option<u32>,
}

pub async fn peek(
    State(h): H,
    c: Caller,
    Query(q): Query<PeekQuery>,
) -> ApiResult<Json<InboxResp>> {
    Ok(inbox_resp(inbox::peek(&h, &c, q.limit)?))
}

/// Lease pending deliveries for the pull or hook route, long-polling up to
/// `wait_ms` for the first.
pub async fn lease(
    State(h): H,
    c: Caller,
    Body(req): Body<LeaseReq>,
) -> ApiResult<Json<InboxResp>> {
    let ask = LeaseAsk {
        max: req.max,
        wait_ms: req.wait_ms,
        lease_ms: req.lease_ms,
        route: req.route,
    };
    Ok(inbox_resp(inbox::lease(&h, &c, ask).await?))
}

/// One of the caller's deliveries, whole.
pub async fn show(
    State(h): H,
    c: Caller,
    crate::auth::Path(id): crate::auth::Path<String>,
) -> ApiResult<Json<DeliveryInfo>> {
    Ok(Json(inbox::show(&h, &c, &DeliveryId::parse(&id)?)?.into()))
}

pub async fn confirm(
    State(h): H,
    c: Caller,
    Body(req): Body<ConfirmReq>,
) -> ApiResult<Json<ConfirmResp>> {
    Ok(Json(ConfirmResp {
        confirmed: inbox::confirm(&h, &c, &ids(&req.ids)?)?,
    }))
}

pub async fn pushed(
    State(h): H,
    c: Caller,
    Body(req): Body<PushedReq>,
) -> ApiResult<Json<PushedResp>> {
    Ok(Json(PushedResp {
        pushed: inbox::pushed(&h, &c, &ids(&req.ids)?)?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Lease at most this many at a time (default 50).
    max: Option<u32>,
    lease_ms: Option<u64>,
}

/// Server-sent deliveries (the stream route): one `delivery` event of JSON
/// each, its SSE id the delivery id; a failing lease ends the stream with
/// an `error` event `{code, message}`.
pub async fn stream(
    State(h): H,
    c: Caller,
    Query(q): Query<StreamQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let (slot, rx) = inbox::stream(&h, &c, q.max, q.lease_ms)?;
    // The body holds the slot: the stream counts until its response ends.
    let events = futures_util::StreamExt::map(ReceiverStream::new(rx), move |item| {
        let _held = &slot;
        Ok::<_, Infallible>(match item {
            StreamItem::Delivery(d) => {
                let d = DeliveryInfo::from(*d);
                // Serialized whole, then framed in one write: `json_data`
                // frames serde's every small write (about 15k instructions
                // a delivery). JSON escapes line breaks, so the data is one
                // `data:` line either way.
                let json = serde_json::to_string(&d).unwrap_or_default();
                SseEvent::default()
                    .id(&d.delivery_id)
                    .event("delivery")
                    .data(json)
            }
            StreamItem::Failed(e) => {
                let body = serde_json::json!({"code": e.code.as_str(), "message": e.message});
                SseEvent::default().event("error").data(body.to_string())
            }
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
