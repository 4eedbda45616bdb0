//! The test-only manual clock (`daemon run --manual-clock`, `POST
//! /v1/debug/clock`): absent without the flag, admin-only, checked input, and
//! the daemon's deadlines follow it.

use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

async fn post_clock(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/debug/clock", d.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn without_the_flag_there_is_no_clock_to_move() {
    let d = Daemon::start(&[]);
    let (st, body) = post_clock(&d, &d.admin_token(), json!({"advance_ms": 1000})).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn only_the_admin_moves_it_forward_and_deadlines_follow() {
    let d = Daemon::start(&["--manual-clock", "--stale-after", "10m"]);
    let bob = d.peer("bob", None).await;
    let token = d.peer_token("carol", None).await;
    let (st, body) = post_clock(&d, &token, json!({"advance_ms": 1000})).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    for bad in [
        json!({"advance_ms": -1}),
        json!({}),
        json!({"advance_ms": 1, "x": 2}),
    ] {
        let (st, body) = post_clock(&d, &d.admin_token(), bad.clone()).await;
        assert_eq!(
            (st, body["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    let before = d.admin().health().await.unwrap().uptime_ms;
    let now = d.advance_clock(3_600_000).await;
    let h = d.admin().health().await.unwrap();
    assert!(
        h.uptime_ms >= before + 3_600_000,
        "{} then {}",
        before,
        h.uptime_ms
    );
    assert!(now >= h.started_at_ms + 3_600_000);
    // The ghost scan ran before the answer: bob is flagged at once.
    let ev = d.admin().events(Some(0), None, None).await.unwrap().events;
    assert!(
        ev.iter()
            .any(|e| e.kind == "peer_ghost" && e.payload["name"] == "bob"),
        "{ev:?}"
    );
    assert!(bob.whoami().await.is_ok());
}

/// The scheduler sleeps until the next due fire; moving the clock past it
/// wakes it (without the wake it would sleep ten real minutes).
#[tokio::test]
async fn a_schedule_fires_when_the_clock_passes_its_time() {
    let d = Daemon::start(&["--manual-clock"]);
    let olga_t = d.peer_token("olga", None).await;
    let bob = d.peer("bob", None).await;
    let olga = d.admin().with_identity(Some(olga_t), None);
    let req = repowire::api::ScheduleReq {
        to: "bob".into(),
        text: "in ten minutes".into(),
        fire_at: Some("10m".into()),
        ..Default::default()
    };
    let id = olga.create_schedule(&req).await.unwrap().schedule_id;
    d.advance_clock(5 * 60_000).await;
    assert!(
        olga.schedule(&id).await.unwrap().last_fired_ms.is_none(),
        "not yet"
    );
    d.advance_clock(5 * 60_000 + 1).await;
    eventually(Duration::from_secs(10), "the fire", || async {
        olga.schedule(&id).await.unwrap().last_fired_ms.map(|_| ())
    })
    .await;
    let inbox = bob.peek(10).await.unwrap().deliveries;
    assert_eq!(inbox.len(), 1);
    assert!(
        inbox[0].text.ends_with("in ten minutes"),
        "{}",
        inbox[0].text
    );
}
