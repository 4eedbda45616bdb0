//! Jobs: creation, routing through the persona, the state machine, who may
//! update, cancel, and a dispatch race.

use crate::support::*;
use repowire::api::{HeartbeatReq, JobCreateReq, JobUpdateReq, LeaseReq};
use repowire::core::ErrorCode;
use repowire::core::delivery::DeliveryKind;
use repowire::core::job::JobState;
use repowire::core::peer::Status;
use repowire::core::route::DispatchOutcome;
use std::time::Duration;

fn upd(state: JobState) -> JobUpdateReq {
    JobUpdateReq {
        state: Some(state),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_job_is_routed_worked_and_reported() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    let eve = d.peer("eve", None).await;
    eve.heartbeat(&HeartbeatReq {
        status: Some(Status::Busy),
    })
    .await
    .unwrap();
    olga.claim_orchestrator(false).await.unwrap();
    // No assignee: the built-in policy picks the available agent (bob).
    let j = olga
        .create_job(&JobCreateReq {
            title: "Fix the parser".into(),
            brief: Some("see issue 12".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Dispatched);
    assert_eq!(j.assignee.as_deref(), Some("bob"));
    assert_eq!(j.attempts, 1);
    // Bob got an ask carrying the job id and brief.
    let got = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, DeliveryKind::Ask);
    assert!(
        got[0].text.contains(&j.job_id) && got[0].text.contains("see issue 12"),
        "{}",
        got[0].text
    );
    // Only the assignee, owner, creator or orchestrator may update.
    assert_eq!(
        code_of(eve.update_job(&j.job_id, &upd(JobState::Running)).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(bob.update_job(&j.job_id, &upd(JobState::Queued)).await),
        ErrorCode::BadRequest
    );
    let r = d.cli_env(
        &[
            "jobs",
            "update",
            &j.job_id,
            "--state",
            "running",
            "--note",
            "reproduced it",
        ],
        &[("REPOWIRE_PEER_TOKEN", &d.peer_token("zed", None).await)],
    );
    r.fails(1, "forbidden");
    let r = bob
        .update_job(
            &j.job_id,
            &JobUpdateReq {
                state: Some(JobState::Running),
                note: Some("reproduced it".into()),
                phase: Some("debugging".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.state, JobState::Running);
    let done = bob
        .update_job(
            &j.job_id,
            &JobUpdateReq {
                state: Some(JobState::Succeeded),
                result: Some("fixed in PR 42".into()),
                result_data: Some(serde_json::json!({"pr": 42})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.notes.len(), 1);
    assert_eq!(done.result_data, Some(serde_json::json!({"pr": 42})));
    // Terminal: no more moves nor result edits (notes are fine); the owner was told.
    assert_eq!(
        code_of(bob.update_job(&j.job_id, &upd(JobState::Failed)).await),
        ErrorCode::InvalidState
    );
    let rewrite = JobUpdateReq {
        result: Some("never mind".into()),
        ..Default::default()
    };
    assert_eq!(
        code_of(bob.update_job(&j.job_id, &rewrite).await),
        ErrorCode::InvalidState
    );
    let note = JobUpdateReq {
        note: Some("follow-up filed".into()),
        ..Default::default()
    };
    bob.update_job(&j.job_id, &note).await.unwrap();
    let told = olga.peek(10).await.unwrap().deliveries;
    assert!(
        told.iter().any(|d| d.kind == DeliveryKind::System
            && d.text.contains("succeeded")
            && d.text.contains("PR 42")),
        "{told:?}"
    );
    // CLI views.
    let show = d.cli(&["jobs", "show", &j.job_id]);
    assert!(show.ok().stdout.contains("reproduced it"));
    let res = d.cli(&["jobs", "result", &j.job_id, "--json"]).ok().json();
    assert_eq!(res["result_summary"], "fixed in PR 42");
    let list = d
        .cli(&["jobs", "list", "--state", "succeeded", "--json"])
        .ok()
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let tr = d.cli(&["trace", &j.job_id]);
    assert!(tr.ok().stdout.contains("job_dispatched") && tr.stdout.contains("job_succeeded"));
}

#[tokio::test]
async fn the_persona_routes_queued_jobs_and_retries_when_peers_come_online() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let kim = d.peer("kim", None).await;
    olga.claim_orchestrator(false).await.unwrap();
    kim.heartbeat(&HeartbeatReq {
        status: Some(Status::Offline),
    })
    .await
    .unwrap();
    d.cli(&["orchestrator", "persona", "use", "round_robin"])
        .ok();
    let j = olga
        .create_job(&JobCreateReq {
            title: "Write docs".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Queued, "nobody available: it waits");
    let dry = d
        .cli(&[
            "orchestrator",
            "dispatch",
            "--job",
            &j.job_id,
            "--dry-run",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(dry["outcome"], "dry_run");
    assert_eq!(dry["route"]["route"], "defer");
    assert_eq!(dry["persona"], "round_robin");
    // kim comes online; the background retry dispatches through the persona.
    kim.heartbeat(&HeartbeatReq {
        status: Some(Status::Online),
    })
    .await
    .unwrap();
    let j = eventually(Duration::from_secs(10), "the retry", || async {
        let j = olga.job(&j.job_id).await.unwrap();
        (j.state == JobState::Dispatched).then_some(j)
    })
    .await;
    assert_eq!(j.assignee.as_deref(), Some("kim"));
    // Cancel of work in progress: a request; the assignee is told and confirms.
    d.cli(&["jobs", "cancel", &j.job_id]).ok();
    let notes = kim.peek(10).await.unwrap().deliveries;
    assert!(
        notes
            .iter()
            .any(|d| d.kind == DeliveryKind::System && d.text.contains("stop job")),
        "{notes:?}"
    );
    let x = olga.job(&j.job_id).await.unwrap();
    assert_eq!(x.state, JobState::Dispatched);
    assert!(x.cancel_requested_at_ms.is_some());
    kim.update_job(&j.job_id, &upd(JobState::Canceled))
        .await
        .unwrap();
    assert_eq!(olga.job(&j.job_id).await.unwrap().state, JobState::Canceled);
    d.cli(&["orchestrator", "dispatch", "--job", &j.job_id])
        .fails(1, "invalid_state");
}

#[tokio::test]
async fn two_dispatchers_racing_dispatch_once() {
    // No background retries here: only the racing calls dispatch.
    let d = Daemon::start(&["--tick", "1h"]);
    let olga = d.peer("olga", None).await;
    let a = d.peer("a", None).await;
    d.peer("b", None).await;
    olga.claim_orchestrator(false).await.unwrap();
    a.heartbeat(&HeartbeatReq {
        status: Some(Status::Offline),
    })
    .await
    .unwrap();
    let bp = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("b".into()));
    bp.heartbeat(&HeartbeatReq {
        status: Some(Status::Offline),
    })
    .await
    .unwrap();
    let j = olga
        .create_job(&JobCreateReq {
            title: "race".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Queued);
    a.heartbeat(&HeartbeatReq {
        status: Some(Status::Online),
    })
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let o = olga.clone();
        let id = j.job_id.clone();
        tasks.push(tokio::spawn(
            async move { o.dispatch_job(&id, false).await },
        ));
    }
    let mut assigned = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => assigned += usize::from(r.outcome == DispatchOutcome::Assigned),
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::InvalidState), "{e}"),
        }
    }
    assert_eq!(assigned, 1);
    let j = olga.job(&j.job_id).await.unwrap();
    assert_eq!(j.attempts, 1);
    assert_eq!(
        a.peek(10).await.unwrap().deliveries.len(),
        1,
        "one ask, not eight"
    );
}

#[tokio::test]
async fn lost_executors_requeue_then_fail_deadlines_time_out_and_retry() {
    let d = Daemon::start(&["--stale-after", "10m", "--manual-clock"]);
    let olga = d.peer("olga", None).await;
    let a = d.peer("a", None).await;
    let b = d.peer("b", None).await;
    olga.claim_orchestrator(false).await.unwrap();
    let j = olga
        .create_job(&JobCreateReq {
            backoff_ms: Some(0),
            title: "flaky".into(),
            assign: Some("a".into()),
            max_attempts: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(j.assignee.as_deref(), Some("a"));
    a.update_job(&j.job_id, &upd(JobState::Running))
        .await
        .unwrap();
    // a goes offline mid-job: the attempt is lost, the job goes back and is
    // dispatched again — to b.
    a.heartbeat(&HeartbeatReq {
        status: Some(Status::Offline),
    })
    .await
    .unwrap();
    let j2 = eventually(Duration::from_secs(10), "re-dispatch", || async {
        let x = olga.job(&j.job_id).await.unwrap();
        (x.assignee.as_deref() == Some("b") && x.state == JobState::Dispatched).then_some(x)
    })
    .await;
    assert_eq!(j2.attempts, 2);
    assert_eq!(j2.previous_assignees, ["a", "b"]);
    // b vanishes too (stops its heartbeat): no attempts left, so it fails.
    let _keep = (olga.clone(), b);
    d.advance_clock(10 * 60_000 + 1).await;
    let failed = eventually(Duration::from_secs(10), "failure", || async {
        olga.heartbeat(&HeartbeatReq::default()).await.unwrap();
        let x = olga.job(&j.job_id).await.unwrap();
        (x.state == JobState::Failed).then_some(x)
    })
    .await;
    assert_eq!(failed.error.as_deref(), Some("executor_lost"));
    let ev = d.admin().trace(&j.job_id).await.unwrap().events;
    assert_eq!(
        ev.iter().filter(|e| e.kind == "job_executor_lost").count(),
        2
    );
    // Retry puts it back in the queue.
    let r = d.cli(&["jobs", "retry", &j.job_id, "--json"]).ok().json();
    assert!(r["state"] == "queued" || r["state"] == "dispatched", "{r}");
    assert_eq!(
        code_of(olga.retry_job(&j.job_id).await),
        ErrorCode::InvalidState
    );

    // A deadline passes: timed out, the owner is told.
    let late = d
        .cli(&[
            "--as",
            "olga",
            "jobs",
            "create",
            "late",
            "--assign",
            "olga",
            "--deadline",
            "200ms",
            "--json",
        ])
        .ok()
        .json();
    let id = late["job_id"].as_str().unwrap().to_string();
    let x = eventually(Duration::from_secs(10), "timeout", || async {
        olga.heartbeat(&HeartbeatReq::default()).await.unwrap();
        let x = olga.job(&id).await.unwrap();
        (x.state == JobState::TimedOut).then_some(x)
    })
    .await;
    assert_eq!(x.error.as_deref(), Some("deadline passed"));
    assert_eq!(
        d.cli(&["jobs", "create", "x", "--deadline", "someday"])
            .code,
        2
    );
}

#[tokio::test]
async fn jobs_run_waits_for_the_end() {
    let d = Daemon::start(&[]);
    let olga_t = d.peer_token("olga", None).await;
    let bob = d.peer("bob", None).await;
    let home = d.home_path().to_path_buf();
    let runner = std::thread::spawn(move || {
        run_cli(
            &home,
            &[
                "jobs",
                "run",
                "summarize the logs",
                "--assign",
                "bob",
                "--timeout",
                "20s",
            ],
            &[("REPOWIRE_PEER_TOKEN", &olga_t)],
        )
    });
    let j = eventually(Duration::from_secs(10), "the job", || async {
        bob.list_jobs(&[]).await.unwrap().into_iter().next()
    })
    .await;
    bob.update_job(
        &j.job_id,
        &JobUpdateReq {
            state: Some(JobState::Running),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    bob.update_job(
        &j.job_id,
        &JobUpdateReq {
            state: Some(JobState::Succeeded),
            result: Some("3 errors".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = runner.join().unwrap();
    r.ok();
    assert!(r.stdout.contains("3 errors"), "{}", r.stdout);
}

#[tokio::test]
async fn an_unconfirmed_cancel_lands_after_the_grace_period() {
    // bob stays live through the jump (else its loss would end the job first).
    let d = Daemon::start(&[
        "--cancel-grace",
        "10m",
        "--stale-after",
        "1h",
        "--manual-clock",
    ]);
    let olga = d.peer("olga", None).await;
    d.peer("bob", None).await;
    let j = olga
        .create_job(&JobCreateReq {
            title: "long".into(),
            assign: Some("bob".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let x = olga.cancel_job(&j.job_id, None).await.unwrap();
    assert_eq!(x.state, JobState::Dispatched, "in progress: a request");
    d.advance_clock(5 * 60_000).await;
    assert_eq!(
        olga.job(&j.job_id).await.unwrap().state,
        JobState::Dispatched,
        "within the grace period"
    );
    d.advance_clock(5 * 60_000 + 1).await;
    let x = olga.job(&j.job_id).await.unwrap();
    assert_eq!(x.state, JobState::Canceled, "after the grace period");
    assert!(x.cancel_requested_at_ms.is_some());
    let q = olga
        .create_job(&JobCreateReq {
            title: "never mind".into(),
            assign: Some("olga".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        olga.cancel_job(&q.job_id, None).await.unwrap().state,
        JobState::Canceled,
        "the assignee's own cancel is immediate"
    );
}
