//! The one typed client of the daemon's HTTP API, used by the CLI and the
//! MCP server. It holds no rules: each method is one request.

use crate::api::*;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use repowire_core::delivery::DeliveryRoute;
use repowire_core::error::{Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with a coded error.
    #[error("{0}")]
    Api(Error),
    /// Nothing answered at the URL.
    #[error("no repowire daemon answers at {url} ({reason})")]
    Unreachable { url: String, reason: String },
    /// Something else went wrong on the way.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// The stable code of any failure: the daemon's, or `daemon_unreachable`
    /// / `client_error` for the two that happen before a daemon answers.
    pub fn code_str(&self) -> &'static str {
        match self {
            ClientError::Api(e) => e.code.as_str(),
            ClientError::Unreachable { .. } => ErrorCode::DaemonUnreachable.as_str(),
            ClientError::Other(_) => ErrorCode::ClientError.as_str(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Where the daemon is now (see [`Client::following`]).
pub type Relocate = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

type Http = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;
type Response = hyper::Response<hyper::body::Incoming>;

/// One request, kept whole so it can be sent again elsewhere (a daemon
/// that moved) with the base and identity of that moment.
struct Req {
    method: Method,
    /// Path and query, after the base URL.
    target: String,
    body: Option<Bytes>,
    /// Carry the client's identity (every route but `/health`).
    auth: bool,
}

impl Req {
    fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            target: path.to_string(),
            body: None,
            auth: true,
        }
    }

    fn query<Q: Serialize + ?Sized>(mut self, q: &Q) -> Result<Self> {
        let q = serde_urlencoded::to_string(q)
            .map_err(|e| ClientError::Other(format!("bad request: {e}")))?;
        if !q.is_empty() {
            self.target
                .push(if self.target.contains('?') { '&' } else { '?' });
            self.target.push_str(&q);
        }
        Ok(self)
    }

    fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Self> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Other(format!("bad request: {e}")))?;
        self.body = Some(body.into());
        Ok(self)
    }
}

/// A client bound to one daemon URL and one identity.
#[derive(Clone)]
pub struct Client {
    http: Http,
    /// Shared by clones, so a moved daemon is followed by all of them.
    base: std::sync::Arc<std::sync::RwLock<String>>,
    relocate: Option<Relocate>,
    token: Option<String>,
    as_peer: Option<String>,
    expect_peer: Option<String>,
}

impl Client {
    /// `token` is the admin or a peer token; `as_peer` (admin only) acts as a peer.
    pub fn new(base: &str, token: Option<String>, as_peer: Option<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        connector.set_nodelay(true);
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                // Under the daemon's idle keep-alive timeout (10 s): a pooled
                // connection is not reused just as the daemon closes it.
                .pool_idle_timeout(Duration::from_secs(5))
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(connector);
        Self {
            http,
            base: std::sync::Arc::new(std::sync::RwLock::new(
                base.trim_end_matches('/').to_string(),
            )),
            relocate: None,
            token,
            as_peer,
            expect_peer: None,
        }
    }

    /// Follow a daemon that moves (restarted on another port): when no
    /// daemon answers, ask `relocate` where it is now and, if that is
    /// elsewhere, point this client (and its clones) there and send the
    /// request once more. Safe: unanswered means the request never reached
    /// a daemon.
    pub fn following(mut self, relocate: Relocate) -> Self {
        self.relocate = Some(relocate);
        self
    }

    /// With a peer token: the peer this client means to be (`NAME` or
    /// `NAME@CIRCLE`); the daemon refuses the token if it belongs to another.
    pub fn expecting_peer(mut self, name: Option<String>) -> Self {
        self.expect_peer = name;
        self
    }

    pub fn base(&self) -> String {
        self.base.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Point this client (and its clones) at another daemon URL, e.g. after
    /// the daemon restarted on a new port.
    pub fn set_base(&self, base: &str) {
        *self.base.write().unwrap_or_else(|p| p.into_inner()) =
            base.trim_end_matches('/').to_string();
    }

    /// Send a request; if no daemon answered and this client follows a
    /// moving daemon that is now elsewhere, send it there once more.
    async fn execute(&self, req: Req) -> Result<Response> {
        let sent_to = self.base();
        let e = match self.http.request(self.build(&sent_to, &req)?).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        if let (true, Some(relocate)) = (e.is_connect(), &self.relocate) {
            let now = relocate().trim_end_matches('/').to_string();
            if now != sent_to {
                // Follow only a base a request can be built for.
                let again = self.build(&now, &req)?;
                self.set_base(&now);
                return self
                    .http
                    .request(again)
                    .await
                    .map_err(|e| self.unreachable(&e));
            }
        }
        Err(self.unreachable(&e))
    }

    /// The HTTP request for `req` at `base`, with this client's identity.
    fn build(&self, base: &str, req: &Req) -> Result<hyper::Request<Full<Bytes>>> {
        let mut b = hyper::Request::builder()
            .method(req.method.clone())
            .uri(format!("{base}{}", req.target));
        if req.auth {
            if let Some(t) = &self.token {
                b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if let Some(a) = &self.as_peer {
                b = b.header("x-repowire-as", a);
            }
            if let Some(p) = &self.expect_peer {
                b = b.header("x-repowire-peer", p);
            }
        }
        if req.body.is_some() {
            b = b.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(req.body.clone().unwrap_or_default()))
            .map_err(|e| ClientError::Other(format!("bad request: {e}")))
    }

    /// The same daemon, another identity.
    pub fn with_identity(&self, token: Option<String>, as_peer: Option<String>) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            relocate: self.relocate.clone(),
            token,
            as_peer,
            expect_peer: None,
        }
    }

    /// `Unreachable` only when the request never reached a daemon (no
    /// connection): callers may then retry without doing anything twice
    /// (`repowire mcp` does, after re-reading daemon.json).
    fn unreachable(&self, e: &hyper_util::client::legacy::Error) -> ClientError {
        if e.is_connect() {
            ClientError::Unreachable {
                url: self.base(),
                reason: root_cause(e),
            }
        } else {
            self.broke(e)
        }
    }

    /// A failure after a daemon was reached.
    fn broke(&self, e: &(dyn std::error::Error + 'static)) -> ClientError {
        ClientError::Other(format!(
            "request to {} failed: {}",
            self.base(),
            root_cause(e)
        ))
    }

    /// A whole answer's body.
    async fn body(&self, resp: Response) -> Result<Bytes> {
        match resp.into_body().collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) => Err(self.broke(&e)),
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: Req) -> Result<T> {
        let bytes = self.call(req).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Other(format!("unreadable answer from daemon: {e}")))
    }

    /// A successful answer's body, or the coded error. Not generic, so the
    /// request's machinery is compiled once, not once per answer type.
    async fn call(&self, req: Req) -> Result<Bytes> {
        let resp = self.execute(req).await?;
        let status = resp.status();
        let bytes = self.body(resp).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(error_from(status, &bytes))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Req::new(Method::GET, path)).await
    }

    pub async fn get_q<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        q: &Q,
    ) -> Result<T> {
        self.send(Req::new(Method::GET, path).query(q)?).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.send(Req::new(Method::POST, path).json(body)?).await
    }

    pub async fn delete<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        q: &Q,
    ) -> Result<T> {
        self.send(Req::new(Method::DELETE, path).query(q)?).await
    }

    pub async fn health(&self) -> Result<Health> {
        let mut req = Req::new(Method::GET, "/health");
        req.auth = false;
        self.send(req).await
    }

    pub async fn register(&self, req: &RegisterReq) -> Result<RegisterResp> {
        self.post("/v1/peers", req).await
    }
    pub async fn list_peers(&self, circle: Option<&str>) -> Result<Vec<PeerInfo>> {
        self.get_q("/v1/peers", &[("circle", circle)]).await
    }
    pub async fn whoami(&self) -> Result<PeerInfo> {
        self.get("/v1/peers/me").await
    }
    pub async fn describe(&self, name: &str, circle: Option<&str>) -> Result<PeerInfo> {
        self.get_q(
            &format!("/v1/peers/by-name/{}", enc(name)),
            &[("circle", circle)],
        )
        .await
    }
    pub async fn update_me(&self, req: &UpdatePeerReq) -> Result<PeerInfo> {
        self.send(Req::new(Method::PATCH, "/v1/peers/me").json(req)?)
            .await
    }
    pub async fn heartbeat(&self, req: &HeartbeatReq) -> Result<PeerInfo> {
        self.post("/v1/peers/me/heartbeat", req).await
    }
    pub async fn unregister_me(&self) -> Result<PeerInfo> {
        self.delete("/v1/peers/me", &()).await
    }
    pub async fn unregister(&self, name: &str, circle: Option<&str>) -> Result<PeerInfo> {
        self.delete(
            &format!("/v1/peers/by-name/{}", enc(name)),
            &[("circle", circle)],
        )
        .await
    }
    /// Start an agent session for a new peer in a tmux window.
    pub async fn spawn_peer(&self, req: &SpawnReq) -> Result<SpawnResp> {
        self.post("/v1/peers/spawn", req).await
    }
    /// Stop a peer's session (its tmux pane) and take it offline.
    pub async fn kill_peer(&self, req: &KillReq) -> Result<KillResp> {
        self.post("/v1/peers/kill", req).await
    }
    pub async fn prune(&self, req: &PruneReq) -> Result<PruneResp> {
        self.post("/v1/peers/prune", req).await
    }
    pub async fn claim_orchestrator(&self, force: bool) -> Result<ClaimResp> {
        self.post("/v1/roles/orchestrator/claim", &ClaimReq { force })
            .await
    }
    pub async fn release_orchestrator(&self) -> Result<PeerInfo> {
        self.post("/v1/roles/orchestrator/release", &serde_json::json!({}))
            .await
    }
    pub async fn orchestrator_status(&self, circle: Option<&str>) -> Result<OrchestratorStatus> {
        self.get_q("/v1/orchestrator", &[("circle", circle)]).await
    }
    pub async fn use_persona(&self, req: &UsePersonaReq) -> Result<PersonaStatus> {
        self.post("/v1/personas/use", req).await
    }
    pub async fn clear_persona(&self, circle: Option<String>) -> Result<PersonaStatus> {
        self.post("/v1/personas/clear", &CircleReq { circle }).await
    }
    pub async fn persona_status(&self, circle: Option<&str>) -> Result<PersonaStatus> {
        self.get_q("/v1/personas/status", &[("circle", circle)])
            .await
    }
    pub async fn active_personas(&self) -> Result<Vec<PersonaStatus>> {
        self.get("/v1/personas").await
    }
    pub async fn decide(&self, req: &DecideReq) -> Result<DecideResp> {
        self.post("/v1/orchestrator/decide", req).await
    }
    pub async fn create_schedule(&self, req: &ScheduleReq) -> Result<ScheduleInfo> {
        self.post("/v1/schedules", req).await
    }
    pub async fn list_schedules(&self, all: bool) -> Result<Vec<ScheduleInfo>> {
        self.get_q("/v1/schedules", &[("all", all)]).await
    }
    pub async fn schedule(&self, id: &str) -> Result<ScheduleInfo> {
        self.get(&format!("/v1/schedules/{}", enc(id))).await
    }
    pub async fn delete_schedule(&self, id: &str) -> Result<ScheduleInfo> {
        self.delete(&format!("/v1/schedules/{}", enc(id)), &())
            .await
    }
    pub async fn pause_schedule(&self, id: &str, pause: bool) -> Result<ScheduleInfo> {
        let what = if pause { "pause" } else { "resume" };
        self.post(
            &format!("/v1/schedules/{}/{what}", enc(id)),
            &serde_json::json!({}),
        )
        .await
    }
    pub async fn request_review(&self, req: &ReviewRequestReq) -> Result<ReviewRequestResp> {
        self.post("/v1/reviews", req).await
    }
    pub async fn review(&self, reference: &str) -> Result<ReviewInfo> {
        self.get_q("/v1/reviews", &[("ref", reference)]).await
    }
    pub async fn review_queue(&self, peer: Option<&str>) -> Result<Vec<QueueEntry>> {
        self.get_q("/v1/reviews/queue", &[("peer", peer)]).await
    }
    pub async fn update_review(&self, req: &ReviewRefReq) -> Result<ReviewInfo> {
        self.post("/v1/reviews/update", req).await
    }
    pub async fn mark_review(&self, req: &ReviewRefReq) -> Result<ReviewInfo> {
        self.post("/v1/reviews/mark", req).await
    }
    pub async fn close_review(&self, reference: &str) -> Result<ReviewInfo> {
        let req = ReviewRefReq {
            reference: reference.into(),
            ..Default::default()
        };
        self.post("/v1/reviews/close", &req).await
    }
    pub async fn create_job(&self, req: &JobCreateReq) -> Result<JobInfo> {
        self.post("/v1/jobs", req).await
    }
    pub async fn list_jobs(&self, q: &[(&str, String)]) -> Result<Vec<JobInfo>> {
        self.get_q("/v1/jobs", q).await
    }
    pub async fn job(&self, id: &str) -> Result<JobInfo> {
        self.get(&format!("/v1/jobs/{}", enc(id))).await
    }
    pub async fn update_job(&self, id: &str, req: &JobUpdateReq) -> Result<JobInfo> {
        self.post(&format!("/v1/jobs/{}/update", enc(id)), req)
            .await
    }
    pub async fn cancel_job(&self, id: &str, reason: Option<String>) -> Result<JobInfo> {
        self.post(
            &format!("/v1/jobs/{}/cancel", enc(id)),
            &crate::api::JobCancelReq { reason },
        )
        .await
    }
    /// A one-time dashboard login link (admin).
    pub async fn dashboard_login(&self) -> Result<DashboardLogin> {
        self.post("/v1/dashboard/login", &serde_json::json!({}))
            .await
    }
    pub async fn retry_job(&self, id: &str) -> Result<JobInfo> {
        self.post(
            &format!("/v1/jobs/{}/retry", enc(id)),
            &serde_json::json!({}),
        )
        .await
    }
    pub async fn dispatch_job(&self, id: &str, dry_run: bool) -> Result<DispatchResp> {
        self.post(
            &format!("/v1/jobs/{}/dispatch", enc(id)),
            &DispatchReq { dry_run },
        )
        .await
    }
    pub async fn ask(&self, req: &AskReq) -> Result<AskResp> {
        self.post("/v1/asks", req).await
    }
    pub async fn ask_many(&self, req: &AskManyReq) -> Result<AskManyResp> {
        self.post("/v1/asks/many", req).await
    }
    pub async fn ask_many_result(&self, parent: &str) -> Result<AskManyResult> {
        self.get(&format!("/v1/asks/many/{}", enc(parent))).await
    }
    pub async fn list_asks(&self, dir: &str, open: bool, limit: u32) -> Result<Vec<AskInfo>> {
        self.get_q(
            "/v1/asks",
            &[
                ("dir", dir.to_string()),
                ("open", open.to_string()),
                ("limit", limit.to_string()),
            ],
        )
        .await
    }
    pub async fn get_ask(&self, id: &str) -> Result<AskInfo> {
        self.get(&format!("/v1/asks/{}", enc(id))).await
    }
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<WaitResp> {
        let ms = timeout.as_millis() as u64;
        let req = Req::new(Method::GET, &format!("/v1/asks/{}/wait", enc(id)))
            .query(&[("timeout_ms", ms)])?;
        self.send(req).await
    }
    pub async fn pickup(&self, id: &str) -> Result<AskInfo> {
        self.post(
            &format!("/v1/asks/{}/pickup", enc(id)),
            &serde_json::json!({}),
        )
        .await
    }
    pub async fn ack(&self, id: &str, message: Option<String>) -> Result<AskInfo> {
        self.post(&format!("/v1/asks/{}/ack", enc(id)), &AckReq { message })
            .await
    }
    pub async fn decline(&self, id: &str, reason: &str) -> Result<AskInfo> {
        let req = crate::api::DeclineReq {
            reason: reason.into(),
        };
        self.post(&format!("/v1/asks/{}/decline", enc(id)), &req)
            .await
    }
    pub async fn answer(&self, id: &str, text: &str) -> Result<AskInfo> {
        self.post(
            &format!("/v1/asks/{}/answer", enc(id)),
            &AnswerReq { text: text.into() },
        )
        .await
    }
    pub async fn cancel(&self, id: &str) -> Result<AskInfo> {
        self.post(
            &format!("/v1/asks/{}/cancel", enc(id)),
            &serde_json::json!({}),
        )
        .await
    }
    pub async fn notify(&self, req: &NotifyReq) -> Result<NotifyResp> {
        self.post("/v1/notify", req).await
    }
    /// Broadcast to the caller's own circle.
    pub async fn broadcast(&self, text: &str) -> Result<BroadcastResp> {
        let req = BroadcastReq {
            text: text.into(),
            ..Default::default()
        };
        self.broadcast_to(&req).await
    }
    pub async fn broadcast_to(&self, req: &BroadcastReq) -> Result<BroadcastResp> {
        self.post("/v1/broadcast", req).await
    }
    pub async fn peek(&self, limit: u32) -> Result<InboxResp> {
        self.get_q("/v1/inbox", &[("limit", limit)]).await
    }
    pub async fn lease(&self, req: &LeaseReq) -> Result<InboxResp> {
        self.post("/v1/inbox/lease", req).await
    }
    /// Lease pending deliveries for the route that will carry them (`pull`
    /// or `hook`; the daemon refuses others), recorded in their
    /// `delivery_leased` events. What a channel push already sent live comes
    /// too, with `pushed` set. Confirm what was put in front of the agent.
    pub async fn lease_via(&self, route: DeliveryRoute, req: &LeaseReq) -> Result<InboxResp> {
        let req = LeaseReq {
            route: Some(route),
            ..req.clone()
        };
        self.lease(&req).await
    }
    /// One of this peer's deliveries, whole and in any state.
    pub async fn delivery(&self, id: &str) -> Result<DeliveryInfo> {
        self.get(&format!("/v1/inbox/deliveries/{}", enc(id))).await
    }
    pub async fn confirm(&self, ids: Vec<String>) -> Result<ConfirmResp> {
        self.post("/v1/inbox/confirm", &ConfirmReq { ids }).await
    }
    /// Record deliveries a channel push sent into the session as live
    /// hints: they stay unconfirmed, and the delivery stream does not hand
    /// them out again.
    pub async fn pushed(&self, ids: Vec<String>) -> Result<PushedResp> {
        self.post("/v1/inbox/pushed", &PushedReq { ids }).await
    }
    pub async fn events(
        &self,
        since: Option<i64>,
        tail: Option<u32>,
        circle: Option<&str>,
    ) -> Result<EventsResp> {
        let q = events_query(since, tail, circle);
        self.get_q("/v1/events", &q).await
    }
    pub async fn trace(&self, id: &str) -> Result<TraceResp> {
        self.get(&format!("/v1/trace/{}", enc(id))).await
    }
    pub async fn doctor(&self) -> Result<DoctorResp> {
        self.get("/v1/doctor").await
    }
    pub async fn shutdown(&self) -> Result<serde_json::Value> {
        self.post("/v1/shutdown", &serde_json::json!({})).await
    }

    /// Follow the event stream (SSE) from after `since` (or the newest `tail`).
    pub async fn event_stream(
        &self,
        since: Option<i64>,
        tail: Option<u32>,
        circle: Option<&str>,
    ) -> Result<impl Stream<Item = Result<EventInfo>> + use<>> {
        let q = events_query(since, tail, circle);
        let blocks = self.sse("/v1/events/stream", &q).await?;
        Ok(blocks.filter_map(|b| async move {
            match b {
                Ok(None) => None, // keep-alive
                Ok(Some((event, data))) => Some(sse_item::<EventInfo>(&event, &data)),
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// Open an SSE route: its blocks, or the coded error it answered with.
    async fn sse(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<impl Stream<Item = Result<SseBlock>> + use<>> {
        let resp = self
            .execute(Req::new(Method::GET, path).query(query)?)
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = self.body(resp).await?;
            return Err(error_from(status, &bytes));
        }
        Ok(sse_blocks(resp.into_body().into_data_stream()))
    }

    /// Follow this peer's deliveries (SSE): each is leased as the daemon
    /// sends it; confirm them with [`Client::confirm`]. `Ok(None)` items are
    /// keep-alives (the connection lives; nothing arrived).
    pub async fn delivery_stream(
        &self,
        max: u32,
    ) -> Result<impl Stream<Item = Result<Option<DeliveryInfo>>> + use<>> {
        let blocks = self
            .sse("/v1/inbox/stream", &[("max", max.to_string())])
            .await?;
        Ok(blocks.map(|b| {
            b.and_then(|b| {
                b.map(|(event, data)| delivery_item(&event, &data))
                    .transpose()
            })
        }))
    }
}

/// A delivery from the stream. One this client cannot read in full (a
/// newer daemon's kind, say) still comes through, as a `system` delivery
/// carrying what it can read, rather than breaking the stream on every
/// reconnect; only data without a delivery id is an error.
fn delivery_item(event: &str, data: &str) -> Result<DeliveryInfo> {
    match sse_item::<DeliveryInfo>(event, data) {
        Err(ClientError::Other(why)) => lenient_delivery(data).ok_or(ClientError::Other(why)),
        other => other,
    }
}

fn lenient_delivery(data: &str) -> Option<DeliveryInfo> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    let s = |k: &str| v[k].as_str().map(str::to_string);
    Some(DeliveryInfo {
        delivery_id: s("delivery_id")?,
        seq: v["seq"].as_i64().unwrap_or(0),
        kind: repowire_core::delivery::DeliveryKind::System,
        from: s("from"),
        from_circle: s("from_circle"),
        correlation_id: s("correlation_id"),
        text: s("text").unwrap_or_else(|| data.to_string()),
        state: repowire_core::delivery::DeliveryState::Leased,
        attempts: v["attempts"].as_i64().unwrap_or(1),
        created_at_ms: v["created_at_ms"].as_i64().unwrap_or(0),
        lease_until_ms: v["lease_until_ms"].as_i64(),
        job_id: s("job_id"),
        reply_to: s("reply_to"),
        pushed: v["pushed"].as_bool().unwrap_or(false),
        pushed_at_ms: v["pushed_at_ms"].as_i64(),
    })
}

/// One SSE block: its `event:` name and its `data:`; `None` for a
/// keep-alive comment (proof the connection lives).
type SseBlock = Option<(String, String)>;

/// Split an SSE byte stream into blocks.
fn sse_blocks<S>(bytes: S) -> impl Stream<Item = Result<SseBlock>>
where
    S: Stream<Item = std::result::Result<Bytes, hyper::Error>> + Unpin,
{
    futures_util::stream::unfold(
        (bytes, Vec::<u8>::new()),
        |(mut bytes, mut buf)| async move {
            loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buf.drain(..end + 2).collect();
                    let block = String::from_utf8_lossy(&block);
                    let field = |name: &str| {
                        block
                            .lines()
                            .filter_map(|l| l.strip_prefix(name))
                            .map(str::trim_start)
                            .collect::<Vec<_>>()
                            .join("\n")
                    };
                    let data = field("data:");
                    let item = (!data.is_empty()).then(|| (field("event:"), data));
                    return Some((Ok(item), (bytes, buf)));
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        return Some((
                            Err(ClientError::Other(format!("event stream broke: {e}"))),
                            (bytes, buf),
                        ));
                    }
                    None => return None,
                }
            }
        },
    )
}

/// Parse a block's JSON data; an `error` event is the daemon's coded error.
fn sse_item<T: DeserializeOwned>(event: &str, data: &str) -> Result<T> {
    if event == "error" {
        return Err(error_from(StatusCode::OK, data.as_bytes()));
    }
    if event == "lagged" {
        // The daemon dropped a stream that fell behind; its message says where to resume.
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        let why = v["message"]
            .as_str()
            .unwrap_or("the stream fell behind and was closed");
        return Err(ClientError::Other(why.to_string()));
    }
    serde_json::from_str::<T>(data).map_err(|e| ClientError::Other(format!("bad event: {e}")))
}

/// `since`/`tail`/`circle` query pairs for the event routes.
fn events_query(
    since: Option<i64>,
    tail: Option<u32>,
    circle: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(s) = since {
        q.push(("since", s.to_string()));
    }
    if let Some(t) = tail {
        q.push(("tail", t.to_string()));
    }
    if let Some(c) = circle {
        q.push(("circle", c.to_string()));
    }
    q
}

/// A non-success answer: the daemon's coded error, or what it said.
fn error_from(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => ClientError::Api(Error::new(
            ErrorCode::parse(&b.code).unwrap_or(ErrorCode::Internal),
            b.message,
        )),
        Err(_) => ClientError::Other(format!(
            "daemon answered HTTP {status}: {}",
            String::from_utf8_lossy(bytes)
        )),
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_form_encoded_after_the_path() {
        let r = Req::new(Method::GET, "/v1/asks")
            .query(&[("dir", "to me"), ("open", "true")])
            .unwrap();
        assert_eq!(r.target, "/v1/asks?dir=to+me&open=true");
        let empty: [(&str, &str); 0] = [];
        assert_eq!(
            Req::new(Method::GET, "/x").query(&empty).unwrap().target,
            "/x"
        );
    }

    #[test]
    fn requests_carry_the_identity_but_health_does_not() {
        let c = Client::new(
            "http://127.0.0.1:9/",
            Some("tok".into()),
            Some("bob".into()),
        )
        .expecting_peer(Some("ann".into()));
        let r = c
            .build(
                &c.base(),
                &Req::new(Method::POST, "/v1/notify").json(&1).unwrap(),
            )
            .unwrap();
        assert_eq!(r.uri(), "http://127.0.0.1:9/v1/notify");
        let h = r.headers();
        assert_eq!(h["authorization"], "Bearer tok");
        assert_eq!(h["x-repowire-as"], "bob");
        assert_eq!(h["x-repowire-peer"], "ann");
        assert_eq!(h["content-type"], "application/json");
        let mut health = Req::new(Method::GET, "/health");
        health.auth = false;
        let r = c.build(&c.base(), &health).unwrap();
        assert!(r.headers().is_empty(), "{:?}", r.headers());
    }

    #[tokio::test]
    async fn a_bad_token_or_url_is_a_clear_error_not_a_panic() {
        let c = Client::new("http://127.0.0.1:9", Some("a\nb".into()), None);
        let e = c.doctor().await.unwrap_err();
        assert!(e.to_string().starts_with("bad request"), "{e}");
        let c = Client::new("not a url", None, None);
        let e = c.health().await.unwrap_err();
        assert!(e.to_string().starts_with("bad request"), "{e}");
    }

    /// Nothing listens at the base; the daemon "moved" to an address no
    /// request can be built for: the error says so and the base stays.
    #[tokio::test]
    async fn a_client_follows_a_moved_daemon_only_to_a_usable_base() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let c =
            Client::new(&closed, None, None).following(std::sync::Arc::new(|| "not a url".into()));
        let e = c.health().await.unwrap_err();
        assert!(e.to_string().starts_with("bad request"), "{e}");
        assert_eq!(c.base(), closed);
        let c = Client::new(&closed, None, None);
        assert!(matches!(
            c.health().await,
            Err(ClientError::Unreachable { .. })
        ));
    }

    #[test]
    fn a_delivery_of_an_unknown_kind_still_comes_through() {
        let data = r#"{"delivery_id":"dlv-1","seq":4,"kind":"telepathy","from":"ann","text":"hi","state":"leased","attempts":1,"created_at_ms":5}"#;
        let d = delivery_item("delivery", data).unwrap();
        assert_eq!((d.delivery_id.as_str(), d.text.as_str()), ("dlv-1", "hi"));
        assert_eq!(d.kind, repowire_core::delivery::DeliveryKind::System);
        assert_eq!(d.from.as_deref(), Some("ann"));
        assert!(delivery_item("delivery", r#"{"text":"no id"}"#).is_err());
        assert!(matches!(
            delivery_item("error", r#"{"code":"unauthorized","message":"x"}"#),
            Err(ClientError::Api(_))
        ));
    }
}
