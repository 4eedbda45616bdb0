//! Serving HTTP connections: the accept loop and its limits.
//!
//! `axum::serve` exposes none of hyper's timeouts, so connections are served
//! here with hyper's HTTP/1 builder. What this adds:
//! - a cap on connections served at once; one over it gets a coded JSON 503
//!   `too_many_connections` and is closed (not silently dropped);
//! - a header timeout: a request head must have arrived within it, counted
//!   from when the connection started waiting for one, so it is also the idle
//!   keep-alive timeout;
//! - a body timeout: a request body must have arrived within it of its head
//!   (a trickled body is cut with a coded 408 `timeout`);
//! - a handle ([`Conn`]) a handler can use to close its own connection (a
//!   lagging event stream whose consumer does not read at all);
//! - TCP_NODELAY, and a graceful stop: idle connections close at once,
//!   requests in flight finish (streams and long-polls end on stop by
//!   themselves), and whatever has not finished a few seconds later is cut.
//!
//! No domain rules here; routes live in `http/mod.rs`.

use super::DaemonHandle;
use super::auth::ApiError;
use super::edge::Guard;
use axum::Router;
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use repowire_core::error::{Error, ErrorCode};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

/// The daemon's connection and stream limits (flags of `repowire daemon`).
#[derive(Debug, Clone)]
pub struct NetLimits {
    /// Most connections served at once; one more is refused with a 503.
    pub max_connections: usize,
    /// A request head must arrive within this (also the idle keep-alive timeout).
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head. Also how long a
    /// lagging stream's consumer has to read its final event.
    pub body_timeout: Duration,
    /// Most event and inbox streams one token may have open at once.
    pub max_streams_per_token: usize,
    /// How many batches of events a stream may fall behind before it is dropped.
    pub stream_buffer: usize,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_streams_per_token: 16,
            stream_buffer: 256,
        }
    }
}

/// hyper's per-connection read buffer may grow to this (its floor is 8 KiB).
/// Bodies are read in pieces, so this bounds what one slow connection holds.
const MAX_BUF: usize = 64 * 1024;
/// Refusals being written at once; past this an excess connection is just closed.
const REFUSING_AT_ONCE: usize = 1024;
/// How long a refusal may take (write, then read what the client sent).
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// After a stop, connections still busy this long are cut.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Handed to every request (an extension): closes the connection it came on.
#[derive(Clone)]
pub struct Conn {
    kill: Arc<Notify>,
}

impl Conn {
    /// Close the connection now, whatever it is doing.
    pub fn close(&self) {
        self.kill.notify_one();
    }
}

/// Accept and serve connections until the daemon stops; then wait (a little)
/// for the ones in flight.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    h: DaemonHandle,
    limits: NetLimits,
) -> std::io::Result<()> {
    let max = limits.max_connections.max(1);
    let conns = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let refusal = refusal(max);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF);
    super::edge::table_ready();
    let mut stop = h.shutdown.subscribe();
    let loopback_only = super::edge::loopback_url(&h.url);
    let body_limit = repowire_core::limits::body_bytes(&h.store.policy);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: wait a
                    // moment rather than spin on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        // Small JSON answers go out at once (no Nagle delay against delayed ACKs).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            refuse(tcp, &refusing, refusal.clone());
            continue;
        };
        let conn = Conn {
            kill: Arc::new(Notify::new()),
        };
        let kill = conn.kill.clone();
        let (app, hh, body_timeout) = (app.clone(), h.clone(), limits.body_timeout);
        let svc = hyper::service::service_fn(move |req| {
            let edge = Edge {
                loopback_only,
                body_limit,
                body_timeout,
            };
            handle(app.clone(), hh.clone(), conn.clone(), edge, req)
        });
        let served = http.serve_connection(TokioIo::new(tcp), svc);
        let mut stop = h.shutdown.subscribe();
        tokio::spawn(async move {
            let _permit = permit;
            let mut served = std::pin::pin!(served);
            tokio::select! {
                r = served.as_mut() => if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                _ = stopped(&mut stop) => {
                    served.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(STOP_GRACE, served.as_mut()).await;
                }
                _ = kill.notified() => tracing::debug!("connection closed by its handler"),
            }
        });
    }
    drop(listener);
    // Every connection task holds a permit: all back means all done.
    let _ = conns.acquire_many(max as u32).await;
    Ok(())
}

/// Resolves once the daemon is stopping.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// What every request meets before the router.
#[derive(Clone, Copy)]
struct Edge {
    /// Only loopback names in `Host` (a daemon on a loopback address).
    loopback_only: bool,
    /// The cap on a JSON body (`limits::body_bytes`).
    body_limit: usize,
    /// A request body must have arrived within this of its head.
    body_timeout: Duration,
}

/// One request: the edge's checks (Host, target and header sizes), the
/// body under its deadline and its size limit, the connection handle in
/// the extensions, the route's checks (`edge::guard`), then the router.
async fn handle(
    mut app: Router,
    h: DaemonHandle,
    conn: Conn,
    edge: Edge,
    req: hyper::Request<Incoming>,
) -> Result<axum::response::Response, Infallible> {
    if let Some(refusal) = super::edge::refused(edge.loopback_only, &req) {
        return Ok(refusal);
    }
    let body_timeout = edge.body_timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = tokio::time::Instant::now() + body_timeout;
    let mut req = req.map(|inner| {
        axum::body::Body::new(TimedBody {
            inner,
            deadline,
            sleep: None,
            timed_out: timed_out.clone(),
        })
    });
    req.extensions_mut().insert(conn);
    axum::extract::DefaultBodyLimit::max(edge.body_limit).apply(&mut req);
    let mut router = |req| {
        let routed = tower_service::Service::call(&mut app, req);
        async move {
            let Ok(resp) = routed.await;
            resp
        }
    };
    let resp = match super::edge::guard(&h.store.policy, &req) {
        Guard::Refuse(refusal) => refusal,
        Guard::Unrouted => super::http::admin::not_found().await.into_response(),
        Guard::OtherMethod => {
            let resp = router(req).await;
            if resp.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
                // A method the router has and `edge::ROUTES` lacks ran
                // without the route's checks: a table to mend.
                tracing::error!(status = %resp.status(), "a route missing from edge::ROUTES answered");
                if cfg!(debug_assertions) {
                    panic!("a route missing from edge::ROUTES answered");
                }
            }
            resp
        }
        Guard::Route(spec) => super::edge::run_route(&h, spec, req, router).await,
    };
    if timed_out.load(Ordering::Relaxed) {
        let err = Error::new(
            ErrorCode::Timeout,
            format!(
                "the request body did not arrive within {}",
                humantime::format_duration(body_timeout)
            ),
        );
        let mut resp = ApiError(err).into_response();
        // What is left of the body is not read: the connection cannot be reused.
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return Ok(resp);
    }
    Ok(resp)
}

/// A request body that fails once its deadline has passed. The timer is only
/// armed when the body is not all there at once (small bodies never need it).
struct TimedBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(f) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(f.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err("request body timed out".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The whole answer to a connection over the cap.
fn refusal(max: usize) -> Bytes {
    let body = serde_json::json!({
        "code": ErrorCode::TooManyConnections.as_str(),
        "message": format!(
            "the daemon is serving its maximum of {max} connections (--max-connections); retry shortly"
        ),
    })
    .to_string();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Answer a connection over the cap with the coded 503 and close it. The
/// answer is written first; then what the client sent is read until it
/// closes (a close with unread input would reset the connection and could
/// lose the answer). Bounded in time and in how many at once.
fn refuse(tcp: TcpStream, refusing: &Arc<Semaphore>, answer: Bytes) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        tracing::debug!("over the connection cap and the refusal budget: closed");
        return;
    };
    tracing::debug!("over the connection cap: refused");
    tokio::spawn(async move {
        let _permit = permit;
        let mut tcp = tcp;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            tcp.write_all(&answer).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}
