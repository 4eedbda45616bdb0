//! The web dashboard: the login that trades a one-time code for a session
//! cookie, and the page with its script and style, served from the binary
//! (no build step, no CDN). The page reads and acts through the same
//! `/v1/…` API as the CLI (see `crate::dashboard` for how a session is
//! authenticated there).

use crate::DaemonHandle;
use crate::auth::{ApiResult, Caller, Query};
use crate::dashboard::SESSION_MS;
use crate::service::admin;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use repowire_client::api::{DashboardLogin, DashboardOverview};
use serde::Deserialize;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");

/// What every dashboard answer carries: nothing but this origin's own
/// script and style may run or load, no framing, no referrer, no caching.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn secured(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A short page saying why the dashboard cannot be shown.
fn refusal(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>repowire</title><p>{why}</p><p>Run <code>repowire dashboard</code> for a new login link.</p>\n"
    );
    secured(status, "text/html; charset=utf-8", body)
}

/// `POST /v1/dashboard/login` (admin): a one-time login link.
pub async fn login_link(
    State(h): State<DaemonHandle>,
    c: Caller,
) -> ApiResult<Json<DashboardLogin>> {
    Ok(Json(admin::dashboard_login(&h, &c)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleQuery {
    circle: Option<String>,
}

/// `GET /v1/dashboard/overview` (admin): open asks and open reviews.
pub async fn overview(
    State(h): State<DaemonHandle>,
    c: Caller,
    Query(q): Query<CircleQuery>,
) -> ApiResult<Json<DashboardOverview>> {
    Ok(Json(admin::dashboard_overview(&h, &c, q.circle)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeQuery {
    code: Option<String>,
}

/// `GET /dashboard/login?code=…`: trade the code for a session — its
/// cookie set here, its key handed to the page in the fragment of the page
/// this one moves to (a same-origin move: the `SameSite=Strict` cookie goes
/// along even when the link was opened from elsewhere). A `HEAD` (a link
/// checker) does not use the code up.
pub async fn login(
    State(h): State<DaemonHandle>,
    method: axum::http::Method,
    Query(q): Query<CodeQuery>,
) -> Response {
    if method == axum::http::Method::HEAD {
        return secured(StatusCode::OK, "text/html; charset=utf-8", String::new());
    }
    let now = h.clock.now_ms();
    let Some(s) = q.code.and_then(|c| h.dashboard.redeem(&c, now)) else {
        return refusal(
            StatusCode::FORBIDDEN,
            "This login link was already used, has expired, or is not one.",
        );
    };
    // Tokens are `rw_` and hex: nothing to escape in the page.
    let to = format!("/dashboard#key={}", s.key);
    let body = format!(
        "<!doctype html><meta charset=utf-8><meta http-equiv=\"refresh\" content=\"0; url={to}\"><title>repowire</title><p><a href=\"{to}\">Open the dashboard</a></p>\n"
    );
    let mut r = secured(StatusCode::OK, "text/html; charset=utf-8", body);
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        h.dashboard.cookie,
        s.cookie,
        SESSION_MS / 1000
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `GET /dashboard`: the page, for a live session only.
pub async fn page(State(h): State<DaemonHandle>, headers: HeaderMap) -> Response {
    if !h.dashboard.page_allowed(&headers, h.clock.now_ms()) {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "You are not logged in to this daemon's dashboard.",
        );
    }
    secured(
        StatusCode::OK,
        "text/html; charset=utf-8",
        INDEX.to_string(),
    )
}

pub async fn app_js() -> Response {
    secured(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        APP_JS.to_string(),
    )
}

pub async fn app_css() -> Response {
    secured(
        StatusCode::OK,
        "text/css; charset=utf-8",
        APP_CSS.to_string(),
    )
}
