//! The work tools through real `repowire mcp` sessions, with their error
//! paths: orchestration (and claim contention between two sessions), jobs,
//! reviews and schedules. The mesh tools are in `mcp_tools.rs`.

use crate::mcp::{Catcher, call, session, transport};
use crate::mcp_tools::{fails, refuses, works};
use crate::support::*;
use rmcp::ServiceExt;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn work_tools_and_their_errors() {
    let d = Daemon::start(&["--cancel-grace", "60s"]);
    let alice = session(&d, "alice").await;
    let bob = session(&d, "bob").await;
    let olga = session(&d, "olga").await;

    // Orchestration.
    works(&olga, "claim_orchestrator_role", json!({})).await;
    assert_eq!(
        fails(&alice, "claim_orchestrator_role", json!({})).await,
        "role_held"
    );
    let st = works(&alice, "orchestrator_status", json!({})).await;
    assert_eq!(st["name"], "olga");
    refuses(
        &alice,
        [
            (
                "orchestrator_status",
                json!({"circle": "ops"}),
                "cross_circle",
            ),
            ("persona_status", json!({"circle": "ops"}), "cross_circle"),
            // alice does not hold it
            ("release_orchestrator_role", json!({}), "invalid_state"),
        ],
    )
    .await;

    // Jobs: create (errors), status, show, list, dispatch, cancel with a reason.
    refuses(
        &alice,
        [
            (
                "job_create",
                json!({"title": "x", "deadline_at": "whenever"}),
                "bad_request",
            ),
            (
                "job_create",
                json!({"title": "x", "assigned_peer": "nobody"}),
                "unknown_peer",
            ),
            ("job_create", json!({}), "bad_request"),
        ],
    )
    .await;
    let job = works(
        &alice,
        "job_create",
        json!({"title": "bump deps", "brief": "cargo update", "tags": ["rust"], "priority": 2, "assigned_peer": "bob", "deadline_at": "2h", "max_attempts": 2}),
    )
    .await;
    let jid = job["job_id"].as_str().unwrap().to_string();
    let st = works(&alice, "job_status", json!({"job_id": jid})).await;
    assert_eq!(
        (st["state"].as_str(), st["assignee"].as_str()),
        (Some("dispatched"), Some("bob"))
    );
    // The dispatch reached bob's inbox, naming the job.
    let inbox = works(&bob, "inbox", json!({})).await;
    assert_eq!(inbox["deliveries"][0]["job_id"], jid.as_str(), "{inbox}");
    works(
        &bob,
        "job_update",
        json!({"job_id": jid, "state": "running", "phase": "updating"}),
    )
    .await;
    refuses(
        &alice,
        [
            ("job_status", json!({"job_id": "job-nope"}), "not_found"),
            ("job_show", json!({"job_id": "nonsense"}), "not_found"),
            ("job_result", json!({"job_id": "job-nope"}), "not_found"),
        ],
    )
    .await;
    let c = works(
        &alice,
        "job_cancel",
        json!({"job_id": jid, "reason": "superseded"}),
    )
    .await;
    assert_eq!(
        c["state"], "running",
        "a cancel of work in progress is a request"
    );
    let show = works(&alice, "job_show", json!({"job_id": jid})).await;
    assert!(show.to_string().contains("cancel: superseded"), "{show}");
    assert!(show["cancel_requested_at_ms"].is_i64(), "{show}");
    let told = works(&bob, "inbox", json!({})).await;
    let stop = &told["deliveries"][0];
    assert_eq!(stop["job_id"], jid.as_str());
    assert!(
        stop["text"].as_str().unwrap().contains("superseded"),
        "{told}"
    );
    works(
        &bob,
        "job_update",
        json!({"job_id": jid, "state": "canceled"}),
    )
    .await;
    assert_eq!(
        fails(
            &bob,
            "job_update",
            json!({"job_id": jid, "state": "running"})
        )
        .await,
        "invalid_state"
    );
    assert_eq!(
        fails(&alice, "job_cancel", json!({"job_id": "job-nope"})).await,
        "not_found"
    );
    let list = works(
        &alice,
        "job_list",
        json!({"state": "canceled", "circle": "default"}),
    )
    .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let list = works(
        &alice,
        "job_list",
        json!({"assignee": "bob", "owner": "alice"}),
    )
    .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(
        fails(&alice, "job_list", json!({"state": "sleeping"})).await,
        "bad_request"
    );
    // An unassigned job is routed by the persona; dispatch re-routes a queued one.
    works(&bob, "claim_orchestrator_role", json!({"force": true})).await;
    works(&bob, "release_orchestrator_role", json!({})).await;
    let q = works(&alice, "job_create", json!({"title": "write docs"})).await;
    let qid = q["job_id"].as_str().unwrap().to_string();
    let dry = works(&alice, "dispatch", json!({"job_id": qid, "dry_run": true})).await;
    assert_eq!(dry["outcome"], "dry_run", "{dry}");
    assert_eq!(
        fails(&bob, "dispatch", json!({"job_id": qid})).await,
        "forbidden",
        "only the orchestrator or the owner dispatches"
    );
    assert_eq!(
        fails(&alice, "dispatch", json!({"job_id": "job-nope"})).await,
        "not_found"
    );

    // Reviews.
    works(
        &alice,
        "request_review",
        json!({"ref": "pr-9", "head_sha": "a1", "tags": ["rust"]}),
    )
    .await;
    assert_eq!(
        fails(&alice, "request_review", json!({"ref": "pr-10"})).await,
        "bad_request"
    );
    // The persona picks a reviewer other than the author: bob or olga.
    let owed = [
        works(&alice, "review_queue", json!({"peer_name": "bob"})).await,
        works(&alice, "review_queue", json!({"peer_name": "olga"})).await,
    ];
    assert_eq!(
        owed.iter()
            .filter(|q| q["queue"].to_string().contains("pr-9"))
            .count(),
        1,
        "{owed:?}"
    );
    let mine = works(&alice, "review_queue", json!({})).await;
    assert!(
        !mine["queue"].to_string().contains("review-needed"),
        "{mine}"
    );
    assert_eq!(
        fails(&alice, "review_queue", json!({"peer_name": "nobody"})).await,
        "unknown_peer"
    );
    refuses(
        &bob,
        [
            ("mark_reviewed", json!({"pr_url": "pr-404"}), "not_found"),
            (
                "mark_reviewed",
                json!({"pr_url": "pr-9", "verdict": "meh"}),
                "bad_request",
            ),
        ],
    )
    .await;

    // Schedules.
    let one = works(
        &alice,
        "schedule_create",
        json!({"to_peer": "bob", "text": "standup", "fire_at": "1h", "circle": "default"}),
    )
    .await;
    let cron = works(
        &alice,
        "schedule_cron",
        json!({"to_peer": "bob", "text": "daily sync", "cron": "0 9 * * 1-5", "kind": "ask"}),
    )
    .await;
    works(
        &alice,
        "schedule_self",
        json!({"text": "weekly", "cron": "@weekly"}),
    )
    .await;
    d.peer("carol", Some("ops")).await;
    refuses(
        &alice,
        [
            (
                "schedule_create",
                json!({"to_peer": "carol", "text": "x", "fire_at": "1h", "circle": "ops"}),
                "cross_circle",
            ),
            // Another circle is refused before any lookup: whether a bob
            // exists in ops is not for alice to learn.
            (
                "schedule_create",
                json!({"to_peer": "bob", "text": "x", "fire_at": "1h", "circle": "ops"}),
                "cross_circle",
            ),
            (
                "schedule_create",
                json!({"to_peer": "nobody", "text": "x", "fire_at": "1h"}),
                "unknown_peer",
            ),
            (
                "schedule_create",
                json!({"to_peer": "bob", "text": "x", "fire_at": "soonish"}),
                "bad_request",
            ),
            (
                "schedule_create",
                json!({"to_peer": "bob", "text": "x", "fire_at": "1h", "kind": "party"}),
                "bad_request",
            ),
            (
                "schedule_cron",
                json!({"to_peer": "bob", "text": "x", "cron": "every day"}),
                "bad_request",
            ),
            // fire_at or cron
            ("schedule_self", json!({"text": "x"}), "bad_request"),
        ],
    )
    .await;
    let ids = |v: &Value| -> Vec<String> {
        v["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["schedule_id"].as_str().unwrap().to_string())
            .collect()
    };
    let only_once = works(&alice, "schedule_list", json!({})).await;
    assert_eq!(ids(&only_once), [one["schedule_id"].as_str().unwrap()]);
    let with_cron = works(&alice, "schedule_list", json!({"include_cron": true})).await;
    assert_eq!(ids(&with_cron).len(), 3);
    assert!(ids(&with_cron).contains(&cron["schedule_id"].as_str().unwrap().to_string()));
    assert!(ids(&works(&bob, "schedule_list", json!({"include_cron": true})).await).is_empty());
    let circle = works(
        &bob,
        "schedule_list",
        json!({"mine_only": false, "include_cron": true}),
    )
    .await;
    assert_eq!(ids(&circle).len(), 3);
    assert_eq!(
        fails(
            &bob,
            "schedule_delete",
            json!({"schedule_id": one["schedule_id"]})
        )
        .await,
        "forbidden",
        "only the owner or the orchestrator"
    );
    works(
        &alice,
        "schedule_delete",
        json!({"schedule_id": one["schedule_id"]}),
    )
    .await;
    assert_eq!(
        fails(
            &alice,
            "schedule_delete",
            json!({"schedule_id": one["schedule_id"]})
        )
        .await,
        "not_found"
    );
    for s in [alice, bob, olga] {
        s.cancel().await.unwrap();
    }
}

/// Two sessions claim the role at once: exactly one wins; force takes it
/// over and the old holder is told in its session.
#[tokio::test]
async fn orchestrator_claim_contention_between_sessions() {
    let d = Daemon::start(&[]);
    let (tx_a, mut rx_a) = tokio::sync::mpsc::unbounded_channel();
    let (tx_b, mut rx_b) = tokio::sync::mpsc::unbounded_channel();
    let a = Catcher::new(tx_a)
        .serve(transport(&d, "ann", "push"))
        .await
        .unwrap();
    let b = Catcher::new(tx_b)
        .serve(transport(&d, "ben", "push"))
        .await
        .unwrap();
    for round in 0..5 {
        let (ra, rb) = tokio::join!(
            call(&a, "claim_orchestrator_role", json!({})),
            call(&b, "claim_orchestrator_role", json!({}))
        );
        let won: Vec<&str> = [("ann", &ra), ("ben", &rb)]
            .iter()
            .filter(|(_, r)| !r.0)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one holder: {ra:?} {rb:?}"
        );
        let lost = if won[0] == "ann" { &rb } else { &ra };
        assert_eq!(lost.1["code"], "role_held", "{lost:?}");
        let st = call(&a, "orchestrator_status", json!({})).await.1;
        assert_eq!(st["name"], won[0]);
        let holder = if won[0] == "ann" { &a } else { &b };
        let (err, _) = call(holder, "release_orchestrator_role", json!({})).await;
        assert!(!err);
    }
    // ann holds it; ben forces it away; ann's session hears of it.
    assert!(!call(&a, "claim_orchestrator_role", json!({})).await.0);
    let (err, r) = call(&b, "claim_orchestrator_role", json!({"force": true})).await;
    assert!(!err, "{r}");
    let told = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ev = rx_a.recv().await.unwrap();
            if ev["content"]
                .as_str()
                .unwrap()
                .contains("no longer the orchestrator")
            {
                return ev;
            }
        }
    })
    .await
    .expect("the old holder is told");
    assert_eq!(told["meta"]["kind"], "system");
    assert_eq!(call(&a, "whoami", json!({})).await.1["role"], "agent");
    assert_eq!(
        call(&b, "whoami", json!({})).await.1["role"],
        "orchestrator"
    );
    // A session started with --role orchestrator while ben holds it is
    // refused, with the reason on stderr and nothing on stdout.
    let r = run_cli(
        d.home_path(),
        &["mcp", "--name", "cy", "--role", "orchestrator"],
        &[],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("role_held") || r.stderr.contains("held"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    while rx_b.try_recv().is_ok() {}
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}
