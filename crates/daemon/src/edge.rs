//! The HTTP edge: what every request must pass before a handler runs.
//!
//! Two guards, both answering coded JSON errors like every handler:
//! - [`refused`] (every request, routed or not, before the router: called
//!   by `serve::handle`, not a layer, so it costs no boxed service): a
//!   loopback daemon is named by a loopback `Host` (`forbidden`); the
//!   request target and the header block are within [`limits`]
//!   (`uri_too_long`, `headers_too_large`).
//! - [`guard`] and [`run_route`] (requests that reach a route; also
//!   before the router, in `serve::handle`): [`ROUTES`] says which query
//!   parameters each route takes and whether it takes a body; an unknown
//!   parameter, an over-long query value or path parameter, or a body sent
//!   to a route that takes none is `bad_request`.
//!
//! Body fields are checked by the body extractor ([`repowire_client::api::Validate`]).
//! What hyper refuses itself, before any of this runs, is listed in
//! `docs/http-api.md` ("Limits").

use super::DaemonHandle;
use super::auth::ApiError;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::limits::{self, Checker};

/// Whether a route takes a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// No body: an empty one or `{}` is accepted, anything else refused.
    Nothing,
    /// A JSON body (required or optional: the handler's extractor says).
    Json,
}

/// One route: method, path pattern, query parameter names, body.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub query: &'static [&'static str],
    pub body: Takes,
}

const fn r(
    method: &'static str,
    path: &'static str,
    query: &'static [&'static str],
    body: Takes,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        query,
        body,
    }
}

use Takes::{Json, Nothing};

const CIRCLE: &[&str] = &["circle"];
const EVENTS: &[&str] = &["since", "tail", "limit", "circle"];

/// Every route of the router. A path missing here answers `not_found`
/// ([`Guard::Unrouted`]); a method missing here on a path that is here is
/// logged as an error when it runs (a test sweeps this table against the
/// router and `docs/http-api.md`).
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/health", &[], Nothing),
    r("POST", "/v1/peers", &[], Json),
    r("GET", "/v1/peers", CIRCLE, Nothing),
    r("POST", "/v1/peers/prune", &[], Json),
    r("POST", "/v1/peers/spawn", &[], Json),
    r("POST", "/v1/peers/kill", &[], Json),
    r("GET", "/v1/peers/me", &[], Nothing),
    r("PATCH", "/v1/peers/me", &[], Json),
    r("DELETE", "/v1/peers/me", &[], Nothing),
    r("POST", "/v1/peers/me/heartbeat", &[], Json),
    r("GET", "/v1/peers/by-name/{name}", CIRCLE, Nothing),
    r("DELETE", "/v1/peers/by-name/{name}", CIRCLE, Nothing),
    r("POST", "/v1/roles/orchestrator/claim", &[], Json),
    r("POST", "/v1/roles/orchestrator/release", &[], Nothing),
    r("GET", "/v1/orchestrator", CIRCLE, Nothing),
    r("POST", "/v1/orchestrator/decide", &[], Json),
    r("POST", "/v1/reviews", &[], Json),
    r("GET", "/v1/reviews", &["ref", "circle"], Nothing),
    r("GET", "/v1/reviews/queue", &["peer"], Nothing),
    r("POST", "/v1/reviews/update", &[], Json),
    r("POST", "/v1/reviews/mark", &[], Json),
    r("POST", "/v1/reviews/close", &[], Json),
    r("POST", "/v1/schedules", &[], Json),
    r("GET", "/v1/schedules", &["all"], Nothing),
    r("GET", "/v1/schedules/{id}", &[], Nothing),
    r("DELETE", "/v1/schedules/{id}", &[], Nothing),
    r("POST", "/v1/schedules/{id}/pause", &[], Nothing),
    r("POST", "/v1/schedules/{id}/resume", &[], Nothing),
    r("POST", "/v1/jobs", &[], Json),
    r(
        "GET",
        "/v1/jobs",
        &["state", "owner", "assignee", "circle", "limit", "offset"],
        Nothing,
    ),
    r("GET", "/v1/jobs/{id}", &[], Nothing),
    r("POST", "/v1/jobs/{id}/update", &[], Json),
    r("POST", "/v1/jobs/{id}/cancel", &[], Json),
    r("POST", "/v1/jobs/{id}/retry", &[], Nothing),
    r("POST", "/v1/jobs/{id}/dispatch", &[], Json),
    r("GET", "/v1/personas", &[], Nothing),
    r("POST", "/v1/personas/use", &[], Json),
    r("POST", "/v1/personas/clear", &[], Json),
    r("GET", "/v1/personas/status", CIRCLE, Nothing),
    r("POST", "/v1/asks", &[], Json),
    r("GET", "/v1/asks", &["dir", "open", "limit"], Nothing),
    r("POST", "/v1/asks/many", &[], Json),
    r("GET", "/v1/asks/many/{id}", &[], Nothing),
    r("GET", "/v1/asks/{id}", &[], Nothing),
    r("GET", "/v1/asks/{id}/wait", &["timeout_ms"], Nothing),
    r("POST", "/v1/asks/{id}/pickup", &[], Nothing),
    r("POST", "/v1/asks/{id}/ack", &[], Json),
    r("POST", "/v1/asks/{id}/decline", &[], Json),
    r("POST", "/v1/asks/{id}/answer", &[], Json),
    r("POST", "/v1/asks/{id}/cancel", &[], Nothing),
    r("POST", "/v1/notify", &[], Json),
    r("POST", "/v1/broadcast", &[], Json),
    r("GET", "/v1/inbox", &["limit"], Nothing),
    r("POST", "/v1/inbox/lease", &[], Json),
    r("GET", "/v1/inbox/stream", &["max", "lease_ms"], Nothing),
    r("POST", "/v1/inbox/confirm", &[], Json),
    r("POST", "/v1/inbox/pushed", &[], Json),
    r("GET", "/v1/inbox/deliveries/{id}", &[], Nothing),
    r("GET", "/v1/events", EVENTS, Nothing),
    r("GET", "/v1/events/stream", EVENTS, Nothing),
    r("POST", "/v1/dashboard/login", &[], Nothing),
    r("GET", "/v1/dashboard/overview", CIRCLE, Nothing),
    r("GET", "/dashboard", &[], Nothing),
    r("GET", "/dashboard/login", &["code"], Nothing),
    r("GET", "/dashboard/app.js", &[], Nothing),
    r("GET", "/dashboard/app.css", &[], Nothing),
    r("GET", "/v1/trace/{id}", &[], Nothing),
    r("GET", "/v1/doctor", &[], Nothing),
    r("POST", "/v1/shutdown", &[], Nothing),
    r("POST", "/v1/debug/clock", &[], Json),
];

fn refuse(code: ErrorCode, message: String) -> Response {
    ApiError(Error::new(code, message)).into_response()
}

/// Every request, routed or not, in this order, before the router sees it
/// (`serve::handle` calls it: a layer would box a future and clone a
/// service per request); `Some` is the refusal to answer:
///
/// 1. A daemon on a loopback address answers only requests naming a
///    loopback host (`127.0.0.1`, `localhost`, `[::1]`, any port): a web
///    page whose own name was made to resolve to 127.0.0.1 (DNS rebinding)
///    is refused, so it cannot read even what needs no token. A daemon
///    listening beyond loopback (`--allow-remote`) takes any Host.
/// 2. The request target and the header block are within [`limits`].
pub fn refused<B>(loopback_only: bool, req: &axum::http::Request<B>) -> Option<Response> {
    if loopback_only
        && let Some(host) = req.headers().get(axum::http::header::HOST)
        && !loopback_host(host.as_bytes())
    {
        return Some(refuse(
            ErrorCode::Forbidden,
            format!(
                "the Host header {:?} is not this daemon's: it answers 127.0.0.1, localhost or [::1]",
                String::from_utf8_lossy(host.as_bytes())
            ),
        ));
    }
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > limits::URI_BYTES {
        return Some(refuse(
            ErrorCode::UriTooLong,
            format!(
                "the request target is {target} bytes, over the limit of {} bytes",
                limits::URI_BYTES
            ),
        ));
    }
    let headers = req.headers();
    if headers.len() > limits::HEADERS {
        return Some(refuse(
            ErrorCode::HeadersTooLarge,
            format!(
                "{} request headers, over the limit of {}",
                headers.len(),
                limits::HEADERS
            ),
        ));
    }
    // As on the wire: `name: value\r\n`.
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size > limits::HEADER_BYTES {
        return Some(refuse(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request headers are {size} bytes, over the limit of {} bytes",
                limits::HEADER_BYTES
            ),
        ));
    }
    None
}

/// The daemon at `url` listens on loopback only.
pub fn loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    loopback_host(rest.split('/').next().unwrap_or("").as_bytes())
}

/// `host[:port]` names this machine's loopback (any case; no allocation:
/// it runs for every request).
fn loopback_host(host: &[u8]) -> bool {
    let name = match host.strip_prefix(b"[") {
        Some(rest) => rest.split(|&b| b == b']').next().unwrap_or_default(),
        None => host.split(|&b| b == b':').next().unwrap_or_default(),
    };
    [&b"127.0.0.1"[..], b"localhost", b"::1"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// A body-less route reads at most this much before refusing the body.
const NO_BODY_PEEK: usize = 64;

/// The routes of [`ROUTES`] by path pattern, matched the way the router
/// matches them (the same `matchit`), each with its specs by method.
static TABLE: std::sync::LazyLock<matchit::Router<Vec<&'static RouteSpec>>> =
    std::sync::LazyLock::new(|| {
        let mut by_path: Vec<(&str, Vec<&'static RouteSpec>)> = Vec::new();
        for spec in ROUTES {
            match by_path.iter_mut().find(|(p, _)| *p == spec.path) {
                Some((_, specs)) => specs.push(spec),
                None => by_path.push((spec.path, vec![spec])),
            }
        }
        let mut table = matchit::Router::new();
        for (path, specs) in by_path {
            table
                .insert(path, specs)
                .unwrap_or_else(|e| panic!("route {path}: {e}"));
        }
        table
    });

/// What the route guard found out about a request before the router
/// sees it.
pub enum Guard {
    /// No route of [`ROUTES`] has its path: `not_found`, without the
    /// router, so that a route the router has and the table lacks answers
    /// nothing rather than run unchecked (fails closed).
    Unrouted,
    /// Routes have its path, none its method: the router answers 405.
    OtherMethod,
    /// The route the router will pick, its checks passed.
    Route(&'static RouteSpec),
    /// A check failed: the answer.
    Refuse(Response),
}

/// Build the route table now (at start-up), not at the first request.
pub fn table_ready() {
    std::sync::LazyLock::force(&TABLE);
}

/// The route guard's checks that need no body, for the route the router
/// will pick (HEAD is answered by the GET route): query names and values,
/// path parameters (percent-decoded, as the handlers' extractors see
/// them). Called by `serve::handle` before the router, not as a layer: a
/// route layer boxes a future and clones the route per request.
pub fn guard(policy: &repowire_core::policy::Policy, req: &Request) -> Guard {
    let Ok(found) = TABLE.at(req.uri().path()) else {
        return Guard::Unrouted;
    };
    let method = if req.method() == Method::HEAD {
        "GET"
    } else {
        req.method().as_str()
    };
    let Some(spec) = found.value.iter().find(|s| s.method == method).copied() else {
        return Guard::OtherMethod;
    };
    if let Err(e) = check_query(spec, req.uri()) {
        return Guard::Refuse(ApiError(e).into_response());
    }
    // Unreadable parameters (bad UTF-8) are left to the handler's extractor.
    let decoded: Option<Vec<(&str, std::borrow::Cow<'_, str>)>> = found
        .params
        .iter()
        .map(|(name, raw)| {
            let value = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?;
            Some((name, value))
        })
        .collect();
    for (name, value) in decoded.unwrap_or_default() {
        let c = Checker::new(policy);
        let checked = match name {
            "name" => c.address("peer name", &value),
            _ => c.id(name, &value),
        };
        if let Err(e) = checked {
            return Guard::Refuse(ApiError(e).into_response());
        }
    }
    Guard::Route(spec)
}

/// Run the router for a request the guard passed: a body sent to a route
/// that takes none is refused; the writes of a grouped route share a
/// commit; a read first waits for the open group's commit.
pub async fn run_route<F: Future<Output = Response>>(
    h: &DaemonHandle,
    spec: &'static RouteSpec,
    req: Request,
    router: impl FnOnce(Request) -> F,
) -> Response {
    let req = if spec.body == Takes::Nothing {
        match empty_body(req, spec).await {
            Ok(req) => req,
            Err(e) => return ApiError(e).into_response(),
        }
    } else {
        req
    };
    if grouped(spec) {
        crate::commit::deferred(h, router(req)).await
    } else {
        if spec.method == "GET" && spec.path.starts_with("/v1/") {
            // A read commits a group left open (nothing reads a part not
            // yet committed): it waits for the group's own commit instead,
            // so that the writes of the requests ready now still share it.
            // (`/health` and the dashboard's files read no store.)
            h.store.open_group_landed().await;
        }
        router(req).await
    }
}

/// The routes whose writes share a commit with other requests' (group
/// commit: docs/durability.md): the frequent ones, whose handlers act on
/// nothing outside the database after they write (a registration that
/// binds a tmux pane lands its writes first). Every other route's writes
/// commit before its handler goes on (a broadcast's too: its rate budget
/// is refunded when its write fails, which needs the outcome at once).
const GROUPED: &[(&str, &str)] = &[
    ("POST", "/v1/peers"),
    ("PATCH", "/v1/peers/me"),
    ("POST", "/v1/peers/me/heartbeat"),
    ("POST", "/v1/asks"),
    ("POST", "/v1/asks/many"),
    ("POST", "/v1/asks/{id}/pickup"),
    ("POST", "/v1/asks/{id}/ack"),
    ("POST", "/v1/asks/{id}/decline"),
    ("POST", "/v1/asks/{id}/answer"),
    ("POST", "/v1/asks/{id}/cancel"),
    ("POST", "/v1/notify"),
    ("POST", "/v1/inbox/lease"),
    ("POST", "/v1/inbox/confirm"),
    ("POST", "/v1/inbox/pushed"),
];

fn grouped(spec: &RouteSpec) -> bool {
    GROUPED
        .iter()
        .any(|(m, p)| *m == spec.method && *p == spec.path)
}

fn check_query(spec: &RouteSpec, uri: &axum::http::Uri) -> Result<(), Error> {
    if uri.query().is_none_or(str::is_empty) {
        return Ok(());
    }
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| Error::bad_request(format!("invalid query: {}", e.body_text())))?
        .0;
    for (name, value) in &pairs {
        if !spec.query.contains(&name.as_str()) {
            let takes = if spec.query.is_empty() {
                "it takes no query parameters".to_string()
            } else {
                format!("it takes {}", spec.query.join(", "))
            };
            return Err(Error::bad_request(format!(
                "unknown query parameter {name:?} for {} {}: {takes}",
                spec.method, spec.path
            )));
        }
        if value.len() > limits::QUERY_VALUE_BYTES {
            return Err(Error::bad_request(format!(
                "query parameter {name} is {} bytes, over the limit of {} bytes",
                value.len(),
                limits::QUERY_VALUE_BYTES
            )));
        }
    }
    Ok(())
}

/// Let a body-less request through only with no body or `{}` (what
/// clients send to a POST without fields), passing on an empty body.
async fn empty_body(req: Request, spec: &RouteSpec) -> Result<Request, Error> {
    let refuse = |why: &str| {
        Error::bad_request(format!(
            "{} {} takes no body: {why}",
            spec.method, spec.path
        ))
    };
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > NO_BODY_PEEK as u64) {
        return Err(refuse("send none, or {}"));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, NO_BODY_PEEK)
        .await
        .map_err(|_| refuse("send none, or {}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.trim().is_empty() {
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
            Ok(m) if m.is_empty() => {}
            Ok(_) => return Err(refuse("send none, or {}")),
            Err(e) => return Err(refuse(&format!("not JSON ({e})"))),
        }
    }
    Ok(Request::from_parts(parts, axum::body::Body::empty()))
}

#[cfg(test)]
mod grouped_tests {
    /// Every grouped route is a route (a typo would stop it grouping).
    #[test]
    fn every_grouped_route_exists() {
        for (m, p) in super::GROUPED {
            let spec = super::ROUTES
                .iter()
                .find(|r| r.method == *m && r.path == *p)
                .unwrap_or_else(|| panic!("{m} {p} is not in ROUTES"));
            assert!(super::grouped(spec));
        }
    }
}

#[cfg(test)]
mod host_tests {
    #[test]
    fn loopback_hosts() {
        use super::{loopback_host as h, loopback_url as u};
        for ok in [
            "127.0.0.1:8377",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "127.0.0.1",
        ] {
            assert!(h(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "evil.example:8377",
            "127.0.0.2:1",
            "localhost.evil.example",
            "[::2]:1",
            "",
        ] {
            assert!(!h(bad.as_bytes()), "{bad}");
        }
        assert!(u("http://127.0.0.1:8377"));
        assert!(!u("http://0.0.0.0:8377"));
        assert!(!u("http://192.168.1.5:8377"));
    }
}

#[cfg(test)]
mod guard_tests {
    use super::{Guard, ROUTES, guard};
    use axum::extract::Request;

    fn classify(method: &str, target: &str) -> Guard {
        let req = Request::builder()
            .method(method)
            .uri(target)
            .body(axum::body::Body::empty())
            .unwrap();
        guard(&repowire_core::policy::Policy::default(), &req)
    }

    /// Each route of the table is found as itself (HEAD as its GET); a
    /// path no route has is `Unrouted` (answered `not_found` without the
    /// router: a route the table lacks fails closed), a method no route of
    /// that path has is left to the router's 405.
    #[test]
    fn the_guard_finds_each_route_and_fails_closed_on_the_rest() {
        for r in ROUTES {
            let target = r.path.replace("{id}", "x1").replace("{name}", "n1");
            for method in [r.method]
                .into_iter()
                .chain((r.method == "GET").then_some("HEAD"))
            {
                match classify(method, &target) {
                    Guard::Route(spec) => {
                        assert_eq!(
                            (spec.method, spec.path),
                            (r.method, r.path),
                            "{method} {target}"
                        )
                    }
                    _ => panic!("{method} {target} was not found as its route"),
                }
            }
        }
        for target in ["/v1/nope", "/v1/peers/", "/V1/peers", "/v1/asks/x/y/z", "/"] {
            assert!(
                matches!(classify("GET", target), Guard::Unrouted),
                "{target}"
            );
        }
        for (method, target) in [
            ("PUT", "/v1/notify"),
            ("OPTIONS", "/health"),
            ("HEAD", "/v1/notify"),
        ] {
            assert!(
                matches!(classify(method, target), Guard::OtherMethod),
                "{method} {target}"
            );
        }
        // The checks still run: an unknown query parameter, a percent-
        // decoded path parameter.
        assert!(matches!(
            classify("GET", "/v1/asks/x1/wait?nope=1"),
            Guard::Refuse(_)
        ));
        assert!(matches!(
            classify("GET", "/v1/peers/by-name/a%20b"),
            Guard::Refuse(_)
        ));
        assert!(matches!(
            classify("GET", "/v1/peers/by-name/a%5Fb"),
            Guard::Route(_)
        ));
    }
}
