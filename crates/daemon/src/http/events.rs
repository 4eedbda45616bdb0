//! The event log over HTTP (read and SSE-followed) and waiting on an ask.
//! Parse, one `service::events` call, render.

use crate::DaemonHandle;
use crate::auth::{ApiResult, Caller, Path, Query};
use crate::service::events::{self, From};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use repowire_client::api::{EventsResp, WaitResp};
use repowire_core::ids::AskId;
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::wrappers::ReceiverStream;

type H = State<DaemonHandle>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    timeout_ms: Option<u64>,
}

/// Long-poll until the ask is terminal or the timeout passes.
pub async fn wait_ask(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<WaitResp>> {
    let id = AskId::parse(&id)?;
    let (ask, done) = events::wait_ask(&h, &c, &id, q.timeout_ms).await?;
    Ok(Json(WaitResp {
        ask: ask.into(),
        done,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    since: Option<i64>,
    /// The newest N events (ignored when `since` is given).
    tail: Option<u32>,
    limit: Option<u32>,
    circle: Option<String>,
}

impl EventsQuery {
    fn from(&self) -> From {
        From {
            since: self.since,
            tail: self.tail,
            circle: self.circle.clone(),
        }
    }
}

pub async fn list(
    State(h): H,
    c: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<EventsResp>> {
    let list = events::list(&h, &c, q.from(), q.limit)?;
    Ok(Json(EventsResp {
        events: list.into_iter().map(Into::into).collect(),
    }))
}

/// Server-sent events: the backlog after `since`, then live events.
pub async fn stream(
    State(h): H,
    c: Caller,
    conn: Option<axum::Extension<crate::serve::Conn>>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<axum::response::Response> {
    use futures_util::StreamExt;
    let conn = conn.map(|axum::Extension(c)| c);
    let (slot, rx) = events::follow(&h, &c, q.from(), conn)?;
    // The body holds the slot: the stream counts until its response ends.
    let body = ReceiverStream::new(rx).map(move |b| {
        let _held = &slot;
        Ok::<_, Infallible>(b)
    });
    let headers = [
        (axum::http::header::CONTENT_TYPE, "text/event-stream"),
        (axum::http::header::CACHE_CONTROL, "no-cache"),
    ];
    Ok((headers, axum::body::Body::from_stream(body)).into_response())
}
