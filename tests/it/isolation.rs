//! Circles on every field and route that names a peer or another circle's
//! object: one table, swept with a peer token of circle `default` (and the
//! admin acting as that peer, who has no bypass on these) pointing into
//! circle `other`, and with a token of `other` pointing at `default`'s
//! objects. Every row must be refused `cross_circle` (HTTP 403), and
//! nothing may change: no delivery, no job, review, schedule or ask moves.

use crate::support::*;
use repowire::api::{AskManyReq, AskReq, JobCreateReq, ReviewRequestReq, ScheduleReq};
use serde_json::{Value, json};

/// Who sends a row.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// alice's own peer token (circle `default`).
    Alice,
    /// The admin token acting as alice (`X-Repowire-As`): no bypass here.
    AdminAsAlice,
    /// carol's peer token (circle `other`), at `default`'s objects.
    Carol,
}

struct Row {
    what: &'static str,
    who: Who,
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn row(what: &'static str, who: Who, method: &'static str, path: &str, body: Option<Value>) -> Row {
    Row {
        what,
        who,
        method,
        path: path.to_string(),
        body,
    }
}

/// Everything a refused request could have changed, as JSON.
async fn snapshot(d: &Daemon, peers: &[&repowire::client::Client], ask: &str) -> Value {
    let admin = d.admin();
    let jobs: Value = admin.get_q("/v1/jobs", &[("limit", "1000")]).await.unwrap();
    let schedules: Value = admin
        .get_q("/v1/schedules", &[("all", "true")])
        .await
        .unwrap();
    let review: Value = admin
        .get_q("/v1/reviews", &[("ref", "pr-other"), ("circle", "other")])
        .await
        .unwrap();
    let ask: Value = admin.get(&format!("/v1/asks/{ask}")).await.unwrap();
    let mut inboxes = Vec::new();
    for p in peers {
        inboxes.push(serde_json::to_value(p.peek(1000).await.unwrap()).unwrap());
    }
    let people: Value = admin.get("/v1/peers").await.unwrap();
    let people: Vec<Value> = people
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!([p["name"], p["circle"], p["role"]]))
        .collect();
    json!({"jobs": jobs, "schedules": schedules, "review": review, "ask": ask,
           "inboxes": inboxes, "peers": people})
}

#[tokio::test]
async fn every_field_naming_a_peer_stays_inside_the_callers_circle() {
    let d = Daemon::start(&[]);
    let alice_token = d.peer_token("alice", None).await;
    let alice = repowire::client::Client::new(&d.url, Some(alice_token.clone()), None);
    let dave = d.peer("dave", None).await;
    let carol_token = d.peer_token("carol", Some("other")).await;
    let carol = repowire::client::Client::new(&d.url, Some(carol_token.clone()), None);
    let erin = d.peer("erin", Some("other")).await;

    // Objects of circle `other`, made by its own peers.
    let job_o = carol
        .create_job(&JobCreateReq {
            title: "other-job".into(),
            assign: Some("erin".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .job_id;
    let sched_o = carol
        .create_schedule(&ScheduleReq {
            to: "erin".into(),
            text: "later".into(),
            fire_at: Some("1h".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .schedule_id;
    carol
        .request_review(&ReviewRequestReq {
            reference: "pr-other".into(),
            head_sha: "abc123".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ask_o = carol
        .ask(&AskReq {
            to: "erin".into(),
            text: "other-question".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .ask
        .correlation_id;
    let group_o = carol
        .ask_many(&AskManyReq {
            to: vec!["erin".into()],
            text: "other-poll".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .parent_id;
    // And of circle `default`: a job dave works on, owned by alice.
    let job_d = alice
        .create_job(&JobCreateReq {
            title: "default-job".into(),
            assign: Some("dave".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .job_id;
    let ask_d = alice
        .ask(&AskReq {
            to: "dave".into(),
            text: "default-question".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .ask
        .correlation_id;

    use Who::*;
    let title = |extra: Value| {
        let mut b = json!({"title": "sneaky"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Some(b)
    };
    let rows = vec![
        // Fields that name a peer.
        row(
            "job owner",
            Alice,
            "POST",
            "/v1/jobs",
            title(json!({"owner": "carol@other"})),
        ),
        row(
            "job owner as admin --as",
            AdminAsAlice,
            "POST",
            "/v1/jobs",
            title(json!({"owner": "carol@other"})),
        ),
        row(
            "job assignee",
            Alice,
            "POST",
            "/v1/jobs",
            title(json!({"assign": "carol@other"})),
        ),
        row(
            "review author",
            Alice,
            "POST",
            "/v1/reviews",
            Some(json!({"ref": "pr-sneaky", "head_sha": "abc123", "author": "carol@other"})),
        ),
        row(
            "review author as admin --as",
            AdminAsAlice,
            "POST",
            "/v1/reviews",
            Some(json!({"ref": "pr-sneaky", "head_sha": "abc123", "author": "carol@other"})),
        ),
        row(
            "schedule target",
            Alice,
            "POST",
            "/v1/schedules",
            Some(json!({"to": "carol@other", "text": "x", "fire_at": "1h"})),
        ),
        row(
            "schedule target circle",
            Alice,
            "POST",
            "/v1/schedules",
            Some(json!({"to": "carol", "circle": "other", "text": "x", "fire_at": "1h"})),
        ),
        row(
            "schedule self in another circle",
            Alice,
            "POST",
            "/v1/schedules",
            Some(json!({"to": "self", "circle": "other", "text": "x", "fire_at": "1h"})),
        ),
        row(
            "schedule job for",
            Alice,
            "POST",
            "/v1/schedules",
            Some(json!({"to": "carol@other", "kind": "job", "text": "x", "fire_at": "1h"})),
        ),
        row(
            "ask target",
            Alice,
            "POST",
            "/v1/asks",
            Some(json!({"to": "carol@other", "text": "x"})),
        ),
        row(
            "ask target circle",
            Alice,
            "POST",
            "/v1/asks",
            Some(json!({"to": "carol", "circle": "other", "text": "x"})),
        ),
        row(
            "ask reply_to",
            Alice,
            "POST",
            "/v1/asks",
            Some(json!({"to": "dave", "text": "x", "reply_to": ask_o})),
        ),
        row(
            "ask-many recipient",
            Alice,
            "POST",
            "/v1/asks/many",
            Some(json!({"to": ["dave", "carol@other"], "text": "x"})),
        ),
        row(
            "notify target",
            Alice,
            "POST",
            "/v1/notify",
            Some(json!({"to": "carol@other", "text": "x"})),
        ),
        row(
            "notify target circle",
            Alice,
            "POST",
            "/v1/notify",
            Some(json!({"to": "carol", "circle": "other", "text": "x"})),
        ),
        row(
            "broadcast circle",
            Alice,
            "POST",
            "/v1/broadcast",
            Some(json!({"text": "x", "circle": "other"})),
        ),
        row(
            "register into another circle",
            Alice,
            "POST",
            "/v1/peers",
            Some(json!({"name": "mallory", "circle": "other"})),
        ),
        row(
            "review queue of",
            Alice,
            "GET",
            "/v1/reviews/queue?peer=carol@other",
            None,
        ),
        row(
            "describe peer@circle",
            Alice,
            "GET",
            "/v1/peers/by-name/carol@other",
            None,
        ),
        row(
            "describe peer ?circle",
            Alice,
            "GET",
            "/v1/peers/by-name/carol?circle=other",
            None,
        ),
        row(
            "describe nobody@circle",
            Alice,
            "GET",
            "/v1/peers/by-name/nobody@other",
            None,
        ),
        // Reads by circle.
        row("list peers", Alice, "GET", "/v1/peers?circle=other", None),
        row("list jobs", Alice, "GET", "/v1/jobs?circle=other", None),
        row(
            "show review",
            Alice,
            "GET",
            "/v1/reviews?ref=pr-other&circle=other",
            None,
        ),
        row("events", Alice, "GET", "/v1/events?circle=other", None),
        row(
            "event stream",
            Alice,
            "GET",
            "/v1/events/stream?circle=other",
            None,
        ),
        row(
            "orchestrator status",
            Alice,
            "GET",
            "/v1/orchestrator?circle=other",
            None,
        ),
        row(
            "persona status",
            Alice,
            "GET",
            "/v1/personas/status?circle=other",
            None,
        ),
        row(
            "persona use",
            Alice,
            "POST",
            "/v1/personas/use",
            Some(json!({"name": "round_robin", "circle": "other"})),
        ),
        row(
            "persona clear",
            Alice,
            "POST",
            "/v1/personas/clear",
            Some(json!({"circle": "other"})),
        ),
        row(
            "decide",
            Alice,
            "POST",
            "/v1/orchestrator/decide",
            Some(json!({"circle": "other"})),
        ),
        // Another circle's objects, by id.
        row("show job", Alice, "GET", &format!("/v1/jobs/{job_o}"), None),
        row(
            "update job",
            Alice,
            "POST",
            &format!("/v1/jobs/{job_o}/update"),
            Some(json!({"note": "x"})),
        ),
        row(
            "cancel job",
            Alice,
            "POST",
            &format!("/v1/jobs/{job_o}/cancel"),
            Some(json!({})),
        ),
        row(
            "retry job",
            Alice,
            "POST",
            &format!("/v1/jobs/{job_o}/retry"),
            None,
        ),
        row(
            "dispatch job",
            Alice,
            "POST",
            &format!("/v1/jobs/{job_o}/dispatch"),
            Some(json!({})),
        ),
        row(
            "update job as admin --as",
            AdminAsAlice,
            "POST",
            &format!("/v1/jobs/{job_o}/update"),
            Some(json!({"note": "x"})),
        ),
        row(
            "cancel job as admin --as",
            AdminAsAlice,
            "POST",
            &format!("/v1/jobs/{job_o}/cancel"),
            None,
        ),
        row(
            "update default job",
            Carol,
            "POST",
            &format!("/v1/jobs/{job_d}/update"),
            Some(json!({"state": "running"})),
        ),
        row(
            "cancel default job",
            Carol,
            "POST",
            &format!("/v1/jobs/{job_d}/cancel"),
            None,
        ),
        row(
            "show schedule",
            Alice,
            "GET",
            &format!("/v1/schedules/{sched_o}"),
            None,
        ),
        row(
            "pause schedule",
            Alice,
            "POST",
            &format!("/v1/schedules/{sched_o}/pause"),
            None,
        ),
        row(
            "resume schedule",
            Alice,
            "POST",
            &format!("/v1/schedules/{sched_o}/resume"),
            None,
        ),
        row(
            "delete schedule",
            Alice,
            "DELETE",
            &format!("/v1/schedules/{sched_o}"),
            None,
        ),
        row(
            "delete schedule as admin --as",
            AdminAsAlice,
            "DELETE",
            &format!("/v1/schedules/{sched_o}"),
            None,
        ),
        row("read ask", Alice, "GET", &format!("/v1/asks/{ask_o}"), None),
        row(
            "wait on ask",
            Alice,
            "GET",
            &format!("/v1/asks/{ask_o}/wait?timeout_ms=0"),
            None,
        ),
        row(
            "pick up ask",
            Alice,
            "POST",
            &format!("/v1/asks/{ask_o}/pickup"),
            None,
        ),
        row(
            "ack ask",
            Alice,
            "POST",
            &format!("/v1/asks/{ask_o}/ack"),
            Some(json!({})),
        ),
        row(
            "answer ask",
            Alice,
            "POST",
            &format!("/v1/asks/{ask_o}/answer"),
            Some(json!({"text": "x"})),
        ),
        row(
            "decline ask",
            Alice,
            "POST",
            &format!("/v1/asks/{ask_o}/decline"),
            Some(json!({"reason": "x"})),
        ),
        row(
            "cancel ask",
            Alice,
            "POST",
            &format!("/v1/asks/{ask_o}/cancel"),
            None,
        ),
        row(
            "answer default ask",
            Carol,
            "POST",
            &format!("/v1/asks/{ask_d}/answer"),
            Some(json!({"text": "x"})),
        ),
        row(
            "ask-many result",
            Alice,
            "GET",
            &format!("/v1/asks/many/{group_o}"),
            None,
        ),
        row("trace", Alice, "GET", &format!("/v1/trace/{ask_o}"), None),
    ];

    let watched = [&alice, &dave, &carol, &erin];
    let before = snapshot(&d, &watched, &ask_o).await;
    let last_seq = |e: repowire::api::EventsResp| e.events.last().map_or(0, |e| e.seq);
    let seq_before = last_seq(d.admin().events(None, Some(1), None).await.unwrap());

    let http = reqwest::Client::new();
    let admin_token = d.admin_token();
    let mut wrong = Vec::new();
    for r in &rows {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let mut req = http.request(method, format!("{}{}", d.url, r.path));
        req = match r.who {
            Alice => req.bearer_auth(&alice_token),
            Carol => req.bearer_auth(&carol_token),
            AdminAsAlice => req
                .bearer_auth(&admin_token)
                .header("x-repowire-as", "alice"),
        };
        if let Some(b) = &r.body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 403 || body["code"] != "cross_circle" {
            wrong.push(format!(
                "{} ({:?} {} {}): {status} {body}",
                r.what, r.who, r.method, r.path
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows were not refused cross_circle:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );

    // Nothing changed: no job, review, schedule or ask moved, nobody got
    // anything, and no event but peers' own liveness was written.
    assert_eq!(snapshot(&d, &watched, &ask_o).await, before);
    let after = d
        .admin()
        .events(Some(seq_before), None, None)
        .await
        .unwrap();
    let changes: Vec<&str> = after
        .events
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| !k.starts_with("peer_"))
        .collect();
    assert!(
        changes.is_empty(),
        "refused requests wrote events: {changes:?}"
    );
}
