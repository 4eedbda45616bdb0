//! Bad input over raw HTTP: each a coded JSON error; the daemon keeps running.

use crate::support::*;
use repowire::api::{AskReq, NotifyReq};
use repowire::core::ErrorCode;
use serde_json::{Value, json};

struct Raw {
    http: reqwest::Client,
    url: String,
}

impl Raw {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, v)
    }
}

fn assert_coded(got: (u16, Value), status: u16, code: &str) -> Value {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    got.1
}

#[tokio::test]
async fn bad_requests_get_coded_errors_and_the_daemon_survives() {
    let d = Daemon::start(&[]);
    let raw = Raw {
        http: reqwest::Client::new(),
        url: d.url.clone(),
    };
    let admin = d.admin_token();
    let bob_t = d.peer_token("bob", None).await;
    d.peer("carol", None).await;

    // Health needs no token.
    let (st, h) = raw.send("GET", "/health", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(h["ok"], true);

    // Tokens.
    assert_coded(
        raw.send("GET", "/v1/peers", None, None).await,
        401,
        "unauthorized",
    );
    assert_coded(
        raw.send("GET", "/v1/peers", Some("rw_wrong"), None).await,
        401,
        "unauthorized",
    );
    let r = raw
        .http
        .get(format!("{}/v1/peers", d.url))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Malformed JSON, missing fields, wrong types, unknown fields.
    assert_coded(
        raw.send("POST", "/v1/peers", Some(&admin), Some("{not json"))
            .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send("POST", "/v1/peers", Some(&admin), Some("{}"))
            .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send("POST", "/v1/peers", Some(&admin), Some(r#"{"name": 5}"#))
            .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send(
            "POST",
            "/v1/peers",
            Some(&admin),
            Some(r#"{"name":"x","colour":"red"}"#),
        )
        .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send(
            "POST",
            "/v1/peers",
            Some(&admin),
            Some(r#"{"name":"x","role":"boss"}"#),
        )
        .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send(
            "POST",
            "/v1/notify",
            Some(&bob_t),
            Some(r#"{"to":"carol"}"#),
        )
        .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send(
            "POST",
            "/v1/notify",
            Some(&bob_t),
            Some(r#"{"to":"carol","text":"  "}"#),
        )
        .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send("GET", "/v1/asks?dir=sideways", Some(&bob_t), None)
            .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send(
            "GET",
            "/v1/asks/ask-x/wait?timeout_ms=soon",
            Some(&bob_t),
            None,
        )
        .await,
        400,
        "bad_request",
    );

    // Unknown things.
    assert_coded(
        raw.send(
            "POST",
            "/v1/notify",
            Some(&bob_t),
            Some(r#"{"to":"nobody","text":"hi"}"#),
        )
        .await,
        404,
        "unknown_peer",
    );
    assert_coded(
        raw.send(
            "GET",
            "/v1/asks/ask-01ZZZZZZZZZZZZZZZZZZZZZZZZ",
            Some(&bob_t),
            None,
        )
        .await,
        404,
        "unknown_ask",
    );
    assert_coded(
        raw.send("GET", "/v1/asks/garbage", Some(&bob_t), None)
            .await,
        404,
        "unknown_ask",
    );
    assert_coded(
        raw.send("GET", "/v1/nope", Some(&admin), None).await,
        404,
        "not_found",
    );
    assert_coded(
        raw.send("DELETE", "/health", None, None).await,
        405,
        "method_not_allowed",
    );
    assert_coded(
        raw.send("GET", "/v1/trace/whatever", Some(&admin), None)
            .await,
        400,
        "bad_request",
    );

    // Over-long text: a bad_request that names the limit.
    let big = "x".repeat(64 * 1024 + 1);
    let body = json!({"to": "carol", "text": big}).to_string();
    let v = assert_coded(
        raw.send("POST", "/v1/notify", Some(&bob_t), Some(&body))
            .await,
        400,
        "bad_request",
    );
    assert!(v["message"].as_str().unwrap().contains("65536"), "{v}");
    let body = json!({"to": "carol", "text": "x".repeat(64 * 1024)}).to_string();
    assert_eq!(
        raw.send("POST", "/v1/notify", Some(&bob_t), Some(&body))
            .await
            .0,
        200,
        "exactly at the limit is fine"
    );
    // A body far over any limit is refused as too large, still JSON.
    // (On its own connection: the server closes a connection whose body it refused.)
    let huge = json!({"to": "carol", "text": "x".repeat(1 << 20)}).to_string();
    let alone = Raw {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        url: d.url.clone(),
    };
    assert_coded(
        alone
            .send("POST", "/v1/notify", Some(&bob_t), Some(&huge))
            .await,
        413,
        "too_large",
    );

    // Admin-only routes refuse peers.
    assert_coded(
        raw.send("GET", "/v1/doctor", Some(&bob_t), None).await,
        403,
        "forbidden",
    );
    assert_coded(
        raw.send("POST", "/v1/shutdown", Some(&bob_t), Some("{}"))
            .await,
        403,
        "forbidden",
    );

    // Still up, and nothing was corrupted: the one good note is there.
    assert!(d.healthy().await);
    let bob = d.admin().with_identity(Some(bob_t.clone()), None);
    let carol = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("carol".into()));
    assert_eq!(carol.peek(10).await.unwrap().deliveries.len(), 1);
    assert_eq!(
        code_of(
            bob.ask(&AskReq {
                to: "bob".into(),
                text: "me?".into(),
                ..Default::default()
            })
            .await
        ),
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn message_limit_is_configurable() {
    let d = Daemon::start(&["--max-message-bytes", "10"]);
    let bob = d.peer("bob", None).await;
    d.peer("carol", None).await;
    let e = bob
        .notify(&NotifyReq {
            to: "carol".into(),
            text: "x".repeat(11),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    assert!(e.to_string().contains("10 bytes"), "{e}");
    bob.notify(&NotifyReq {
        to: "carol".into(),
        text: "x".repeat(10),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = bob
        .ask(&AskReq {
            to: "carol".into(),
            text: "y".repeat(11),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
}

#[tokio::test]
async fn odd_paths_names_and_identities() {
    let d = Daemon::start(&[]);
    let raw = Raw {
        http: reqwest::Client::new(),
        url: d.url.clone(),
    };
    let admin = d.admin_token();
    // Invalid UTF-8 in a path segment: still a JSON error.
    assert_coded(
        raw.send("GET", "/v1/peers/by-name/%FF", Some(&admin), None)
            .await,
        400,
        "bad_request",
    );
    assert_coded(
        raw.send("GET", "/v1/asks/%FF/wait", Some(&admin), None)
            .await,
        400,
        "bad_request",
    );
    // Peers named like routes are still reachable by name.
    for n in ["me", "prune", "by-name"] {
        d.peer(n, None).await;
        let p = d.admin().describe(n, None).await.unwrap();
        assert_eq!(p.name, n);
    }
    d.cli(&["peer", "unregister", "me"]).ok();
    // REPOWIRE_PEER that does not match the token is refused, not ignored.
    let bob_t = d.peer_token("bob", None).await;
    let r = d.cli_env(
        &["peer", "whoami"],
        &[("REPOWIRE_PEER", "alice"), ("REPOWIRE_PEER_TOKEN", &bob_t)],
    );
    r.fails(1, "unauthorized");
    assert!(r.stderr.contains("bob"), "{}", r.stderr);
    d.cli_env(
        &["peer", "whoami"],
        &[("REPOWIRE_PEER", "bob"), ("REPOWIRE_PEER_TOKEN", &bob_t)],
    )
    .ok();
    // Duplicates by another spelling are caught too.
    let bob = d.admin().with_identity(Some(bob_t), None);
    let e = bob
        .ask_many(&repowire::api::AskManyReq {
            to: vec!["prune".into(), "prune@default".into()],
            text: "q".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(e), ErrorCode::BadRequest);
    assert!(d.healthy().await);
}

/// A cancel may carry a reason, or no body at all; a body that is there must
/// be JSON.
#[tokio::test]
async fn a_job_cancel_takes_a_reason_or_no_body() {
    let d = Daemon::start(&[]);
    let raw = Raw {
        http: reqwest::Client::new(),
        url: d.admin().base(),
    };
    let alice_t = d.peer_token("alice", None).await;
    let alice = d.admin().with_identity(Some(alice_t.clone()), None);
    let job = |t: &str| repowire::api::JobCreateReq {
        title: t.into(),
        ..Default::default()
    };
    let a = alice.create_job(&job("one")).await.unwrap();
    let b = alice.create_job(&job("two")).await.unwrap();
    let (s, v) = raw
        .send(
            "POST",
            &format!("/v1/jobs/{}/cancel", a.job_id),
            Some(&alice_t),
            None,
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("canceled")), "{v}");
    let (s, v) = raw
        .send(
            "POST",
            &format!("/v1/jobs/{}/cancel", b.job_id),
            Some(&alice_t),
            Some(r#"{"reason": "not needed"}"#),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains("cancel: not needed"), "{v}");
    assert_coded(
        raw.send(
            "POST",
            &format!("/v1/jobs/{}/cancel", b.job_id),
            Some(&alice_t),
            Some("{nope"),
        )
        .await,
        400,
        "bad_request",
    );
}
