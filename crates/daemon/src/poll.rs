//! Long-polls and streams: `wait` on an ask, inbox leases that wait for a
//! delivery, and the event log (read and SSE-followed). Each ends early when
//! the daemon is stopping, so a graceful stop never waits on them. Each
//! stream counts against its token's open streams (`streams.rs`).
//!
//! Two delivery routes are served here: pull ([`lease`]) and the stream
//! ([`inbox_stream`]); what each does with a lease follows its promises
//! (`repowire_core::delivery::Route`), not a flag of its own.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, Path, Query};
use super::streams;
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use repowire_client::api::{EventsResp, InboxResp, LeaseReq, WaitResp};
use repowire_core::delivery::{self, Route};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::event::{Event, EventKind, EventRecord};
use repowire_core::ids::AskId;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;

type H = State<DaemonHandle>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WaitQuery {
    timeout_ms: Option<u64>,
}

/// Why a long-poll woke up.
enum Wake {
    /// An event of interest (or a lag: re-check).
    Event,
    /// The deadline passed.
    Done,
    /// The daemon is stopping.
    Stopping,
}

/// Sleep until an event matching `wanted`, `until`, shutdown, or a move of a
/// manual clock (tests: a lease may have run out; callers look again).
async fn next_wake(
    h: &DaemonHandle,
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<EventRecord>>,
    until: tokio::time::Instant,
    wanted: impl Fn(&EventRecord) -> bool,
) -> Result<Wake, Error> {
    loop {
        let got = tokio::select! {
            r = tokio::time::timeout_at(until, rx.recv()) => r,
            _ = h.stopping() => return Ok(Wake::Stopping),
            _ = h.clock_moved.notified() => return Ok(Wake::Event),
        };
        match got {
            Err(_) => return Ok(Wake::Done),
            Ok(Ok(e)) if wanted(&e) => return Ok(Wake::Event),
            Ok(Ok(_)) => continue,
            Ok(Err(RecvError::Lagged(_))) => return Ok(Wake::Event),
            Ok(Err(RecvError::Closed)) => return Err(Error::internal("event bus closed")),
        }
    }
}

/// Long-poll until the ask is terminal or the timeout passes.
pub(super) async fn wait_ask(
    State(h): H,
    c: Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<WaitResp>> {
    let id = AskId::parse(&id)?;
    let viewer = c.viewer().map(|p| p.id.clone());
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(600_000).min(3_600_000));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rx = h.store.subscribe();
    loop {
        let a = h.store.get_ask(&id, viewer.as_ref())?;
        let done = a.state.is_terminal();
        if done {
            return Ok(Json(WaitResp {
                ask: a.into(),
                done,
            }));
        }
        match next_wake(&h, &mut rx, deadline, |e| e.subject == id).await? {
            Wake::Event => {}
            Wake::Done => {
                let a = h.store.get_ask(&id, viewer.as_ref())?;
                let done = a.state.is_terminal();
                return Ok(Json(WaitResp {
                    ask: a.into(),
                    done,
                }));
            }
            Wake::Stopping => {
                return Err(Error::new(
                    ErrorCode::ShuttingDown,
                    "the daemon is shutting down; wait again once it is back",
                )
                .into());
            }
        }
    }
}

/// The lease a consumer asked for (1 s to 1 h), else the daemon's.
fn lease_for(h: &DaemonHandle, asked_ms: Option<u64>) -> i64 {
    asked_ms
        .map(|v| v.clamp(1_000, 3_600_000) as i64)
        .unwrap_or(h.store.policy.lease_ms)
}

/// Does `e` say a delivery was queued for `peer_id`?
fn queued_for(e: &EventRecord, peer_id: &str) -> bool {
    matches!(EventKind::parse(&e.kind), Ok(EventKind::DeliveryQueued))
        && matches!(Event::parse(&e.kind, &e.payload), Ok(Event::DeliveryQueued { to_peer_id, .. }) if to_peer_id == peer_id)
}

/// Lease pending deliveries, long-polling up to `wait_ms` for the first
/// (the pull route).
pub(super) async fn lease(
    State(h): H,
    c: Caller,
    Body(req): Body<LeaseReq>,
) -> ApiResult<Json<InboxResp>> {
    let me = c.me()?.clone();
    let max = req.max.unwrap_or(100).clamp(1, 1000);
    let lease_ms = lease_for(&h, req.lease_ms);
    let wait = Duration::from_millis(req.wait_ms.unwrap_or(0).min(600_000));
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = h.store.subscribe();
    loop {
        let items = h
            .store
            .lease(&me.id, max, lease_ms, delivery::Pull.signals_life())?;
        let now = tokio::time::Instant::now();
        if !items.is_empty() || now >= deadline {
            return Ok(Json(InboxResp {
                deliveries: items.into_iter().map(Into::into).collect(),
            }));
        }
        // Wake on a new delivery for this peer, or now and then for leases
        // that expired elsewhere.
        // The nap is short enough for the lease to count as a heartbeat.
        let nap =
            Duration::from_millis((h.store.policy.stale_after_ms / 4).clamp(50, 2_000) as u64);
        let wake = now + (deadline - now).min(nap);
        let mine = |e: &EventRecord| queued_for(e, &me.id);
        next_wake(&h, &mut rx, wake, mine).await?;
        if *h.shutdown_flag() {
            return Ok(Json(InboxResp {
                deliveries: Vec::new(),
            }));
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    /// Lease at most this many at a time (default 50).
    max: Option<u32>,
    lease_ms: Option<u64>,
}

/// Server-sent deliveries (the stream route): the caller's deliveries (one `delivery` event of
/// JSON each, its SSE id the delivery id), then live ones as they come. Each
/// is leased when there is room to send it (a few ahead at most). The
/// consumer confirms them (`POST /v1/inbox/confirm`); one it never confirms
/// (the stream broke) is handed out again after its lease. An open stream
/// is not a sign of life (the consumer heartbeats); a failing lease ends
/// the stream with an `error` event `{code, message}`; so does nothing
/// else but the daemon stopping or the consumer leaving.
pub(super) async fn inbox_stream(
    State(h): H,
    c: Caller,
    Query(q): Query<StreamQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let me = c.me()?.clone();
    let slot = streams::open_slot(&h, &c)?;
    let max = q.max.unwrap_or(50).clamp(1, 1000);
    let lease_ms = lease_for(&h, q.lease_ms);
    // Small: deliveries are leased only as fast as the consumer reads.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(8);
    let mut bus = h.store.subscribe();
    let nap = Duration::from_millis((h.store.policy.stale_after_ms / 4).clamp(50, 2_000) as u64);
    tokio::spawn(async move {
        loop {
            // Lease only what the channel has room for now, so little is
            // leased but unsent when the consumer goes away.
            let Ok(permit) = tx.reserve().await else {
                return;
            };
            let room = (tx.capacity() as u32 + 1).min(max);
            let alive = delivery::Stream.signals_life();
            let items = match h.store.lease(&me.id, room, lease_ms, alive) {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "inbox stream lease failed");
                    let body = serde_json::json!({"code": e.code.as_str(), "message": e.message});
                    permit.send(Ok(SseEvent::default()
                        .event("error")
                        .data(body.to_string())));
                    return;
                }
            };
            let mut permit = Some(permit);
            let any = !items.is_empty();
            for d in items {
                let d = repowire_client::api::DeliveryInfo::from(d);
                let ev = SseEvent::default()
                    .id(&d.delivery_id)
                    .event("delivery")
                    .json_data(d)
                    .unwrap_or_default();
                let sent = match permit.take() {
                    Some(p) => {
                        p.send(Ok(ev));
                        true
                    }
                    None => tx.try_send(Ok(ev)).is_ok(),
                };
                if !sent {
                    return; // gone: what it did not confirm comes back after its lease
                }
            }
            if any {
                continue;
            }
            drop(permit);
            // Wake on a new delivery for this peer, now and then for leases
            // that expired, or to end with the daemon or the consumer.
            let mine = |e: &EventRecord| queued_for(e, &me.id);
            let until = tokio::time::Instant::now() + nap;
            tokio::select! {
                w = next_wake(&h, &mut bus, until, mine) => match w {
                    Ok(Wake::Stopping) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = tx.closed() => return,
            }
        }
    });
    // The body holds the slot: the stream counts until its response ends.
    let events = futures_util::StreamExt::map(ReceiverStream::new(rx), move |e| {
        let _held = &slot;
        e
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    since: Option<i64>,
    /// The newest N events (ignored when `since` is given).
    tail: Option<u32>,
    limit: Option<u32>,
    circle: Option<String>,
}

fn start_seq(h: &DaemonHandle, q: &EventsQuery, circle: Option<&str>) -> Result<i64, Error> {
    match (q.since, q.tail) {
        (Some(s), _) => Ok(s),
        (None, Some(n)) => h.store.tail_start(n, circle),
        (None, None) => Ok(0),
    }
}

pub(super) async fn events(
    State(h): H,
    c: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<EventsResp>> {
    let circle = c.scope_circle(q.circle.clone())?;
    let since = start_seq(&h, &q, circle.as_deref())?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(EventsResp {
        events: h
            .store
            .events_since(since, limit, circle.as_deref())?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Server-sent events: the backlog after `since`, then live events (see
/// `streams.rs`: serialized once for every stream, a stream that falls
/// behind ends with a `lagged` event). Counted against the token's streams.
pub(super) async fn events_stream(
    State(h): H,
    c: Caller,
    conn: Option<axum::Extension<super::serve::Conn>>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use futures_util::StreamExt;
    let circle = c.scope_circle(q.circle.clone())?;
    let since = start_seq(&h, &q, circle.as_deref())?;
    let slot = std::sync::Arc::new(streams::open_slot(&h, &c)?);
    let conn = conn.map(|axum::Extension(c)| c);
    let rx = streams::events(&h, circle, since, conn, std::sync::Arc::downgrade(&slot));
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
