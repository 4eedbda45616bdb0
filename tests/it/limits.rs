//! The input limits at the HTTP edge, against a real daemon: each limit just
//! under passes and just over is refused with its documented code; echoed
//! values come back cut; every edge refusal is coded JSON; unknown query
//! parameters and bodies on body-less routes are refused on every route.
//! (A full disk is in `storage.rs`.)

use crate::support::*;
use repowire::core::limits::{self, TABLE};
use repowire::daemon::edge::{ROUTES, Takes};
use serde_json::{Value, json};
use std::io::{Read, Write};

/// One request over its own connection (a refused body closes it).
async fn send(
    url: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut r = http
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

/// Exactly these bytes over TCP; the status and body of the answer.
fn raw_http(url: &str, request: &[u8]) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The server may answer (and close) before it read everything.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (status, body)
}

fn request_with(url: &str, target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let host = url.trim_start_matches("http://");
    let mut r = format!("GET {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn coded(got: &(u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(got.1["code"], code, "{what}: {}", got.1);
}

fn tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

/// A limit probed at `n` (passes: `ok` status) and `n + 1` (refused with
/// the table's code for `row`).
struct Probe {
    what: &'static str,
    /// A substring of the table row this probes.
    row: &'static str,
    method: &'static str,
    n: usize,
    ok: u16,
    /// Sent with the admin token (else as bob).
    admin: bool,
    /// (path, body) for a size.
    req: Box<dyn Fn(usize) -> (String, Option<String>)>,
}

fn probe(
    what: &'static str,
    row: &'static str,
    method: &'static str,
    n: usize,
    ok: u16,
    req: impl Fn(usize) -> (String, Option<String>) + 'static,
) -> Probe {
    Probe {
        what,
        row,
        method,
        n,
        ok,
        admin: false,
        req: Box::new(req),
    }
}

fn as_admin(p: Probe) -> Probe {
    Probe { admin: true, ..p }
}

#[tokio::test]
async fn each_limit_just_under_passes_and_just_over_is_refused() {
    let d = Daemon::start(&[]);
    let bob = d.peer_token("bob", None).await;
    d.peer("carol", None).await;
    let admin = d.admin_token();
    let job = send(&d.url, "POST", "/v1/jobs", &bob, Some(r#"{"title":"j"}"#)).await;
    assert_eq!(job.0, 200, "{}", job.1);
    let job = job.1["job_id"].as_str().unwrap().to_string();
    let x = |n: usize| "x".repeat(n);
    fn body(v: Value) -> Option<String> {
        Some(v.to_string())
    }
    let uniq = std::sync::atomic::AtomicUsize::new(0);
    let uniq = std::sync::Arc::new(uniq);
    let next = move || uniq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nested = |n: usize| {
        let mut v = json!(1);
        for _ in 0..n {
            v = json!([v]);
        }
        v
    };
    let upd = format!("/v1/jobs/{job}/update");
    let probes = vec![
        probe("note text", "message text", "POST", 65536, 200, move |n| {
            (
                "/v1/notify".into(),
                body(json!({"to": "carol", "text": x(n)})),
            )
        }),
        probe(
            "job title",
            "one-line",
            "POST",
            limits::LINE_BYTES,
            200,
            move |n| ("/v1/jobs".into(), body(json!({"title": x(n)}))),
        ),
        probe("job brief", "message text", "POST", 65536, 200, move |n| {
            (
                "/v1/jobs".into(),
                body(json!({"title": "t", "brief": x(n)})),
            )
        }),
        probe("job tags", "`tags`", "POST", limits::TAGS, 200, |n| {
            (
                "/v1/jobs".into(),
                body(json!({"title": "t", "tags": tags(n)})),
            )
        }),
        probe("head sha", "commit sha", "POST", limits::SHA_BYTES, 200, {
            let next = next.clone();
            move |n| {
                let r = format!("pr-sha-{}", next());
                let sha = "a".repeat(n);
                (
                    "/v1/reviews".into(),
                    body(json!({"ref": r, "head_sha": sha})),
                )
            }
        }),
        probe(
            "job schedule title",
            "one-line",
            "POST",
            limits::LINE_BYTES,
            200,
            move |n| {
                (
                    "/v1/schedules".into(),
                    body(json!({"to": "self", "kind": "job", "text": x(n), "fire_at": "1h"})),
                )
            },
        ),
        probe(
            "decide input tags",
            "`tags`",
            "POST",
            limits::TAGS,
            200,
            |n| {
                (
                    "/v1/orchestrator/decide".into(),
                    body(json!({"job": {"title": "t", "tags": tags(n)}})),
                )
            },
        ),
        probe(
            "schedule text",
            "message text",
            "POST",
            65536,
            200,
            move |n| {
                (
                    "/v1/schedules".into(),
                    body(json!({"to": "self", "text": x(n), "fire_at": "1h"})),
                )
            },
        ),
        probe(
            "a tag",
            "a peer, circle or tag",
            "POST",
            limits::NAME_BYTES,
            200,
            move |n| {
                (
                    "/v1/jobs".into(),
                    body(json!({"title": "t", "tags": [x(n)]})),
                )
            },
        ),
        probe("review tags", "`tags`", "POST", limits::TAGS, 200, {
            let next = next.clone();
            move |n| {
                let r = format!("pr-{}", next());
                (
                    "/v1/reviews".into(),
                    body(json!({"ref": r, "head_sha": "abc", "tags": tags(n)})),
                )
            }
        }),
        probe(
            "review ref",
            "review `ref`",
            "POST",
            limits::REF_BYTES,
            200,
            move |n| {
                (
                    "/v1/reviews".into(),
                    body(json!({"ref": x(n), "head_sha": "abc"})),
                )
            },
        ),
        probe("peer tags", "`tags`", "PATCH", limits::TAGS, 200, |n| {
            ("/v1/peers/me".into(), body(json!({"tags": tags(n)})))
        }),
        probe(
            "peer description",
            "message text",
            "PATCH",
            65536,
            200,
            move |n| ("/v1/peers/me".into(), body(json!({"description": x(n)}))),
        ),
        as_admin(probe(
            "project path",
            "`project_path`",
            "POST",
            limits::PATH_BYTES,
            200,
            {
                let next = next.clone();
                move |n| {
                    let name = format!("p{}", next());
                    (
                        "/v1/peers".into(),
                        body(json!({"name": name, "project_path": x(n)})),
                    )
                }
            },
        )),
        probe(
            "result_data size",
            "`result_data` (as JSON)",
            "POST",
            limits::RESULT_DATA_BYTES,
            200,
            {
                let upd = upd.clone();
                // A JSON string of n - 2 characters is n bytes.
                move |n| (upd.clone(), body(json!({"result_data": x(n - 2)})))
            },
        ),
        probe(
            "result_data depth",
            "nesting",
            "POST",
            limits::RESULT_DATA_DEPTH,
            200,
            {
                let upd = upd.clone();
                move |n| (upd.clone(), body(json!({"result_data": nested(n)})))
            },
        ),
        probe(
            "reply_to id",
            "an id",
            "POST",
            limits::ID_BYTES,
            404,
            move |n| {
                (
                    "/v1/asks".into(),
                    body(json!({"to": "carol", "text": "q", "reply_to": x(n)})),
                )
            },
        ),
        probe(
            "pushed ids",
            "confirm and pushed `ids`",
            "POST",
            limits::CONFIRM_IDS,
            404,
            |n| {
                let ids: Vec<String> = (0..n).map(|i| format!("dlv-{i:026}")).collect();
                ("/v1/inbox/pushed".into(), body(json!({"ids": ids})))
            },
        ),
        probe(
            "confirm ids",
            "confirm and pushed `ids`",
            "POST",
            limits::CONFIRM_IDS,
            200,
            |n| {
                let ids: Vec<String> = (0..n).map(|i| format!("dlv-{i:026}")).collect();
                ("/v1/inbox/confirm".into(), body(json!({"ids": ids})))
            },
        ),
        probe("ask-many recipients", "ask-many", "POST", 64, 404, |n| {
            let to: Vec<String> = (0..n).map(|i| format!("nobody{i}")).collect();
            ("/v1/asks/many".into(), body(json!({"to": to, "text": "q"})))
        }),
        probe(
            "a peer field",
            "a peer, circle or tag",
            "POST",
            limits::NAME_BYTES,
            404,
            move |n| ("/v1/notify".into(), body(json!({"to": x(n), "text": "hi"}))),
        ),
        probe(
            "job owner",
            "a peer, circle or tag",
            "POST",
            limits::NAME_BYTES,
            404,
            move |n| {
                (
                    "/v1/jobs".into(),
                    body(json!({"title": "t", "owner": x(n)})),
                )
            },
        ),
        probe(
            "an id in a path",
            "an id",
            "GET",
            limits::ID_BYTES,
            404,
            move |n| (format!("/v1/jobs/{}", x(n)), None),
        ),
        probe(
            "a query value",
            "query parameter value",
            "GET",
            limits::QUERY_VALUE_BYTES,
            200,
            move |n| (format!("/v1/reviews?ref={}", x(n)), None),
        ),
    ];
    for p in &probes {
        let row = TABLE
            .iter()
            .find(|l| l.what.contains(p.row))
            .unwrap_or_else(|| panic!("no limit row {:?}", p.row));
        let token = if p.admin { &admin } else { &bob };
        let (path, b) = (p.req)(p.n);
        let got = send(&d.url, p.method, &path, token, b.as_deref()).await;
        assert_eq!(got.0, p.ok, "{} at the limit ({}): {}", p.what, p.n, got.1);
        let (path, b) = (p.req)(p.n + 1);
        let got = send(&d.url, p.method, &path, token, b.as_deref()).await;
        coded(&got, row.code.http_status(), row.code.as_str(), p.what);
    }

    // The request target and headers, byte for byte over TCP.
    let pad = |n: usize| format!("/v1/nope/{}", "x".repeat(n - "/v1/nope/".len()));
    let (st, b) = raw_http(&d.url, &request_with(&d.url, &pad(limits::URI_BYTES), &[]));
    assert_eq!(st, 404, "target at the limit: {b}");
    let (st, b) = raw_http(
        &d.url,
        &request_with(&d.url, &pad(limits::URI_BYTES + 1), &[]),
    );
    assert_eq!((st, json_code(&b)), (414, "uri_too_long".into()), "{b}");
    // Headers: host and connection are sent too.
    let host = d.url.trim_start_matches("http://");
    let fixed = "host".len() + host.len() + 4 + "connection".len() + "close".len() + 4;
    let auth = ("authorization".to_string(), format!("Bearer {admin}"));
    let fixed = fixed + auth.0.len() + auth.1.len() + 4;
    let sized = |total: usize| {
        let v = "y".repeat(total - fixed - "x-pad".len() - 4);
        vec![auth.clone(), ("x-pad".to_string(), v)]
    };
    let (st, b) = raw_http(
        &d.url,
        &request_with(&d.url, "/v1/peers", &sized(limits::HEADER_BYTES)),
    );
    assert_eq!(st, 200, "headers at the limit: {b}");
    let (st, b) = raw_http(
        &d.url,
        &request_with(&d.url, "/v1/peers", &sized(limits::HEADER_BYTES + 1)),
    );
    assert_eq!(
        (st, json_code(&b)),
        (431, "headers_too_large".into()),
        "{b}"
    );
    let counted = |n: usize| {
        let mut h = vec![auth.clone()];
        h.extend((0..n - 3).map(|i| (format!("x-h{i}"), "1".to_string())));
        h
    };
    let (st, b) = raw_http(
        &d.url,
        &request_with(&d.url, "/v1/peers", &counted(limits::HEADERS)),
    );
    assert_eq!(st, 200, "headers at the count limit: {b}");
    let (st, b) = raw_http(
        &d.url,
        &request_with(&d.url, "/v1/peers", &counted(limits::HEADERS + 1)),
    );
    assert_eq!(
        (st, json_code(&b)),
        (431, "headers_too_large".into()),
        "{b}"
    );
    assert!(d.healthy().await);
}

fn json_code(body: &str) -> String {
    serde_json::from_str::<Value>(body).map_or_else(
        |_| format!("not JSON: {body:?}"),
        |v| v["code"].as_str().unwrap_or("no code").to_string(),
    )
}

#[tokio::test]
async fn echoed_values_are_cut() {
    let d = Daemon::start(&[]);
    let bob = d.peer_token("bob", None).await;
    let admin = d.admin_token();
    let big = "z".repeat(900 * 1024);
    let spaced = "z ".repeat(450 * 1024);
    for (what, method, path, token, body) in [
        (
            "a peer name",
            "POST",
            "/v1/notify",
            &bob,
            json!({"to": big, "text": "hi"}),
        ),
        (
            "an enum value",
            "POST",
            "/v1/peers",
            &admin,
            json!({"name": "n", "role": spaced}),
        ),
        (
            "a route",
            "POST",
            "/v1/peers",
            &admin,
            json!({"name": "n", "route": "q".repeat(1000)}),
        ),
    ] {
        let (st, v) = send(&d.url, method, path, token, Some(&body.to_string())).await;
        assert_eq!(st, 400, "{what}: {v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.len() < 1000, "{what}: {} bytes came back", m.len());
    }
    // Cut, not dropped: the first 200 characters are there.
    let (_, v) = send(
        &d.url,
        "POST",
        "/v1/notify",
        &bob,
        Some(&json!({"to": big, "text": "hi"}).to_string()),
    )
    .await;
    assert!(
        v["message"].as_str().unwrap().contains(&"z".repeat(200)),
        "{v}"
    );
}

#[tokio::test]
async fn every_edge_refusal_is_coded_json() {
    let d = Daemon::start(&[]);
    let admin = d.admin_token();
    let u = &d.url;
    coded(
        &send(u, "GET", "/v1/nope", &admin, None).await,
        404,
        "not_found",
        "unknown route",
    );
    coded(
        &send(u, "PUT", "/v1/peers", &admin, None).await,
        405,
        "method_not_allowed",
        "method",
    );
    let huge = json!({"to": "x", "text": "x".repeat(2 << 20)}).to_string();
    coded(
        &send(u, "POST", "/v1/notify", &admin, Some(&huge)).await,
        413,
        "too_large",
        "body",
    );
    coded(
        &send(u, "POST", "/v1/notify", &admin, Some("{oops")).await,
        400,
        "bad_request",
        "json",
    );
    coded(
        &send(u, "GET", "/v1/peers/by-name/%FF", &admin, None).await,
        400,
        "bad_request",
        "utf-8",
    );
    let long = format!("/v1/peers?circle={}", "c".repeat(9000));
    coded(
        &send(u, "GET", &long, &admin, None).await,
        414,
        "uri_too_long",
        "target",
    );
    // No Content-Type on a route with a body.
    let r = reqwest::Client::new()
        .post(format!("{u}/v1/notify"))
        .header("authorization", format!("Bearer {admin}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_request");
    // Any JSON media type is taken (parameters, a `+json` suffix); other
    // types are not. (`application/json` alone is read without parsing it.)
    for (ct, ok) in [
        ("application/json; charset=utf-8", true),
        ("application/merge-patch+json", true),
        ("text/plain", false),
        ("application/jsonx", false),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{u}/v1/peers"))
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", ct)
            .body(json!({"name": format!("ct-{}", ct.len())}).to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if ok {
            assert!(status < 300, "{ct}: {status} {v}");
        } else {
            assert_eq!(
                (status, v["code"].as_str()),
                (400, Some("bad_request")),
                "{ct}: {v}"
            );
            assert!(
                v["message"].as_str().unwrap().contains("Content-Type"),
                "{ct}: {v}"
            );
        }
    }
    // What hyper refuses itself, as documented (docs/http-api.md, Limits):
    // a target over 65,534 bytes is a bare 414 before any daemon code runs
    // (a bare 431 if the serve loop's read buffer is set below that).
    let req = request_with(u, &format!("/{}", "x".repeat(70_000)), &[]);
    let (st, body) = raw_http(u, &req);
    assert!(matches!(st, 414 | 431) && body.is_empty(), "{st} {body:?}");
    assert!(d.healthy().await);
}

/// `?cirle=x` on every route is `bad_request` naming it, before anything
/// runs; a route that takes no body refuses one (anything but `{}`).
#[tokio::test]
async fn unknown_query_parameters_and_stray_bodies_are_refused_on_every_route() {
    let d = Daemon::start(&[]);
    let admin = d.admin_token();
    for r in ROUTES {
        let path = r.path.replace("{id}", "x").replace("{name}", "x");
        let body = (r.body == Takes::Json).then_some("{}");
        let got = send(&d.url, r.method, &format!("{path}?cirle=x"), &admin, body).await;
        let what = format!("{} {}?cirle=x", r.method, r.path);
        coded(&got, 400, "bad_request", &what);
        assert!(
            got.1["message"].as_str().unwrap().contains("cirle"),
            "{what}: {}",
            got.1
        );
        if r.body == Takes::Nothing {
            for stray in [r#"{"circle":"x"}"#, "{nope", "[]"] {
                let got = send(&d.url, r.method, &path, &admin, Some(stray)).await;
                let what = format!("{} {} with body {stray}", r.method, r.path);
                coded(&got, 400, "bad_request", &what);
                assert!(
                    got.1["message"].as_str().unwrap().contains("takes no body"),
                    "{what}: {}",
                    got.1
                );
            }
        }
    }
    // `{}` and no body stay fine where there is nothing to send.
    let got = send(&d.url, "GET", "/v1/peers", &admin, Some("{}")).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(d.healthy().await);
}

mod docs;
