//! Who is calling, and how errors leave the API.
//!
//! The bearer token decides identity: the admin token (optionally acting as
//! a peer via `X-Repowire-As: NAME[@CIRCLE]`), or a peer token that acts only
//! as that peer. No request body field can claim an identity. Every error is
//! mapped to JSON `{code, message}` here, in one place.

use super::DaemonHandle;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use repowire_client::api::{ErrorBody, Validate};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::secrets_equal;
use repowire_core::limits::Checker;
use serde::de::DeserializeOwned;

/// The header an admin uses to act as a peer.
pub const AS_HEADER: &str = "x-repowire-as";
/// The header a peer-token client uses to say which peer it means to be.
pub const PEER_HEADER: &str = "x-repowire-peer";

/// An error on its way out as JSON.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.0.code == ErrorCode::Internal {
            tracing::error!(message = %self.0.message, "internal error");
        }
        let body = ErrorBody {
            code: self.0.code.as_str().to_string(),
            // The one place every error leaves: echoed values are cut here.
            message: repowire_core::limits::cut_echoes(&self.0.message),
        };
        (status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub use repowire_core::access::Caller;

fn unauthorized(msg: &str) -> ApiError {
    ApiError(Error::new(ErrorCode::Unauthorized, msg))
}

impl FromRequestParts<DaemonHandle> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        h: &DaemonHandle,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return dashboard_caller(parts, h);
        };
        let header = header
            .to_str()
            .map_err(|_| unauthorized("malformed Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("Authorization must be 'Bearer <token>'"))?
            .trim();
        if secrets_equal(token, &h.admin_token) {
            return admin(parts, h);
        }
        let found = match h.store.remembered_peer(token) {
            Some(p) => Some(p),
            None => {
                // Its look-up reads: after the open group (not committing it).
                h.store.open_group_landed().await;
                h.store.peer_by_token(token)?
            }
        };
        match found {
            Some(p) => {
                // The client may say whom it means to be (REPOWIRE_PEER): a
                // token of another peer is refused rather than silently used.
                if let Some(claimed) = parts.headers.get(PEER_HEADER) {
                    let claimed = claimed.to_str().unwrap_or_default();
                    let (name, circle) = repowire_core::peer::split_address(claimed);
                    if name != p.name || circle.is_some_and(|c| c != p.circle) {
                        return Err(ApiError(Error::new(
                            ErrorCode::Unauthorized,
                            format!(
                                "REPOWIRE_PEER is {claimed:?} but the token belongs to {}@{}",
                                p.name, p.circle
                            ),
                        )));
                    }
                }
                Ok(Caller::Peer(p))
            }
            None => Err(unauthorized(
                "unknown token: not this daemon's admin token nor a registered peer's",
            )),
        }
    }
}

/// The admin, or the admin acting as the peer `X-Repowire-As` names.
fn admin(parts: &Parts, h: &DaemonHandle) -> Result<Caller, ApiError> {
    let Some(as_name) = parts.headers.get(AS_HEADER) else {
        return Ok(Caller::Admin);
    };
    let as_name = as_name
        .to_str()
        .map_err(|_| ApiError(Error::bad_request("malformed X-Repowire-As header")))?;
    Ok(Caller::AdminAs(h.store.resolve_peer(as_name, None)?.into()))
}

/// A request without a bearer token: a dashboard session — its cookie and
/// its key (`X-Repowire-Dashboard`) — acts as the admin (or, with
/// `X-Repowire-As`, as that peer), for the page's own calls only; a write
/// that names an `Origin` must name the daemon's (`crate::dashboard`).
fn dashboard_caller(parts: &Parts, h: &DaemonHandle) -> Result<Caller, ApiError> {
    use crate::dashboard::{ALLOWED, KEY_HEADER};
    let cookies = h.dashboard.cookies(&parts.headers);
    if cookies.is_empty() {
        return Err(unauthorized("missing Authorization: Bearer <token>"));
    }
    let key = parts
        .headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = h.clock.now_ms();
    if !cookies.iter().any(|c| h.dashboard.authorized(c, key, now)) {
        return Err(unauthorized(
            "not a live dashboard session (its cookie and its key): run `repowire dashboard` for a new login link",
        ));
    }
    let forbidden = |m: &str| ApiError(Error::new(ErrorCode::Forbidden, m));
    let path = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("");
    if !ALLOWED
        .iter()
        .any(|(m, p)| *m == parts.method.as_str() && *p == path)
    {
        return Err(forbidden(
            "the dashboard may not do this: use the CLI with the admin token",
        ));
    }
    let read = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !read
        && let Some(origin) = parts.headers.get(axum::http::header::ORIGIN)
        && origin.as_bytes() != h.url.trim_end_matches('/').as_bytes()
    {
        return Err(forbidden("a cross-site request is refused"));
    }
    admin(parts, h)
}

/// A JSON body whose rejections are coded errors, checked against the
/// input limits ([`Validate`]) before any handler sees it.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + Validate> FromRequest<DaemonHandle> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, h: &DaemonHandle) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, h).await {
            Ok(axum::Json(v)) => {
                v.validate(&Checker::new(&h.store.policy))?;
                Ok(Body(v))
            }
            Err(rej) => Err(ApiError(json_rejection(rej))),
        }
    }
}

/// A JSON body that may be left out entirely (no body and no
/// Content-Type): then it is `T::default()`.
pub struct OptBody<T>(pub T);

impl<T: DeserializeOwned + Validate + Default> FromRequest<DaemonHandle> for OptBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &DaemonHandle) -> Result<Self, Self::Rejection> {
        let h = req.headers();
        let empty = !h.contains_key(axum::http::header::CONTENT_TYPE)
            && h.get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(OptBody(T::default()));
        }
        Body::<T>::from_request(req, state)
            .await
            .map(|Body(v)| OptBody(v))
    }
}

fn json_rejection(rej: JsonRejection) -> Error {
    match &rej {
        JsonRejection::BytesRejection(_) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::new(
                ErrorCode::TooLarge,
                "request body is over the daemon's limit",
            )
        }
        JsonRejection::MissingJsonContentType(_) => {
            Error::bad_request("expected Content-Type: application/json")
        }
        _ => Error::bad_request(format!("invalid JSON body: {}", rej.body_text())),
    }
}

/// A path parameter whose rejections (e.g. invalid UTF-8) are coded errors.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rej) => Err(ApiError(Error::bad_request(format!(
                "invalid path: {}",
                rej.body_text()
            )))),
        }
    }
}

/// Query parameters whose rejections are coded errors.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rej) => Err(ApiError(query_rejection(rej))),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> Error {
    Error::bad_request(format!("invalid query: {}", rej.body_text()))
}
