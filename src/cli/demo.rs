//! `repowire demo`: a scripted tour on a daemon in a temporary home.
//!
//! Starts a real daemon in this process on a free loopback port, drives it
//! through the same client every command uses, prints a timeline, stops
//! cleanly and removes the temporary home.

use super::events::timeline;
use super::inbox::delivery_line;
use super::{CmdResult, Ctx, Failure};
use crate::api::*;
use crate::client::{Client, ClientError};
use crate::core::job::JobState;
use crate::core::peer::Status;
use crate::core::schedule::ScheduleKind;
use crate::daemon::{self, Config};
use crate::home::Home;
use serde_json::{Value, json};
use std::time::Duration;

struct Tour {
    json: bool,
    steps: Vec<Value>,
}

impl Tour {
    fn step(&mut self, title: &str, lines: Vec<String>) {
        if !self.json {
            super::term::emit(&format!("\n== {title}"));
            for l in &lines {
                super::term::emit(&format!("   {}", super::term::escape(l)));
            }
        }
        self.steps.push(json!({"step": title, "lines": lines}));
    }
}

pub async fn run(ctx: &Ctx) -> CmdResult {
    let dir = std::env::temp_dir().join(format!(
        "repowire-demo-{}",
        &crate::core::ids::new_token()[3..15]
    ));
    let home = Home { dir: dir.clone() };
    let cfg = Config {
        home: home.clone(),
        listen: "127.0.0.1:0".parse().expect("literal address"),
        allow_remote: false,
        policy: Default::default(),
        tick: Duration::from_millis(200),
        persona_limits: Default::default(),
        net: Default::default(),
        clock: Default::default(),
        tmux: Default::default(),
    };
    let running = daemon::start(cfg).await?;
    let out = tour(ctx.json, &running.url, &home).await;
    running.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let tour = out?;
    if ctx.json {
        super::term::emit(
            &serde_json::to_string_pretty(&json!({"steps": tour.steps})).unwrap_or_default(),
        );
    } else {
        super::term::emit(
            "\ndaemon stopped; temporary home removed. Run your own: `repowire daemon`.",
        );
    }
    Ok(())
}

async fn reg(admin: &Client, name: &str, backend: &str, desc: &str) -> Result<Client, ClientError> {
    let r = admin
        .register(&RegisterReq {
            name: name.into(),
            backend: Some(backend.into()),
            description: Some(desc.into()),
            ..Default::default()
        })
        .await?;
    Ok(admin.with_identity(r.token, None))
}

async fn take(c: &Client) -> Result<Vec<String>, ClientError> {
    let r = c.lease(&LeaseReq::default()).await?;
    let lines = r.deliveries.iter().map(delivery_line).collect();
    c.confirm(r.deliveries.into_iter().map(|d| d.delivery_id).collect())
        .await?;
    Ok(lines)
}

async fn tour(json: bool, url: &str, home: &Home) -> Result<Tour, Failure> {
    let mut t = Tour {
        json,
        steps: Vec::new(),
    };
    let admin = Client::new(url, home.read_token(), None);
    let h = admin.health().await?;
    t.step(
        "daemon",
        vec![format!(
            "listening on {} (pid {}), home {}",
            h.url, h.pid, h.home
        )],
    );

    let alice = reg(&admin, "alice", "claude-code", "plans and dispatches").await?;
    let bob = reg(&admin, "bob", "codex", "backend repo").await?;
    let carol = reg(&admin, "carol", "gemini", "docs").await?;
    let peers = admin.list_peers(None).await?;
    t.step(
        "three peers register in circle `default`",
        peers.iter().map(super::peer::peer_line).collect(),
    );

    let claim = alice.claim_orchestrator(false).await?;
    let refused = match bob.claim_orchestrator(false).await {
        Err(ClientError::Api(e)) => format!("bob tries too: refused, {}: {}", e.code, e.message),
        other => format!("bob tries too: unexpected {other:?}"),
    };
    let st = admin.orchestrator_status(Some("default")).await?;
    t.step(
        "alice claims the orchestrator role",
        vec![
            format!("{} holds it in {}", claim.holder.name, claim.circle),
            refused,
            format!(
                "status: present={} name={} stale_after={}s",
                st.present,
                st.name.unwrap_or_default(),
                st.stale_after_s
            ),
        ],
    );

    let ask = alice
        .ask(&AskReq {
            to: "bob".into(),
            text: "Which branch has the flaky-test fix?".into(),
            ..Default::default()
        })
        .await?;
    let id = ask.ask.correlation_id.clone();
    let waiter = {
        let alice = alice.clone();
        let id = id.clone();
        tokio::spawn(async move { alice.wait(&id, Duration::from_secs(10)).await })
    };
    let got = take(&bob).await?;
    bob.pickup(&id).await?;
    bob.answer(&id, "fix/flaky-retry, rebased on main this morning")
        .await?;
    let waited = waiter
        .await
        .map_err(|e| Failure::from(anyhow::anyhow!(e)))??;
    let reply = take(&alice).await?;
    let mut lines = vec![format!("alice asks bob: {id}")];
    lines.extend(got.iter().map(|l| format!("bob's inbox: {l}")));
    lines.push("bob picks it up and answers".into());
    lines.push(format!(
        "alice's wait returns: {} — {:?}",
        waited.ask.state,
        waited.ask.answer.unwrap_or_default()
    ));
    lines.extend(reply.iter().map(|l| format!("alice's inbox: {l}")));
    t.step("an ask, answered and closed", lines);

    carol
        .heartbeat(&HeartbeatReq {
            status: Some(Status::Offline),
        })
        .await?;
    let n = alice
        .notify(&NotifyReq {
            to: "carol".into(),
            text: "Docs for the retry flag, when you are back.".into(),
            ..Default::default()
        })
        .await?;
    let b = alice.broadcast("Standup notes are in the tracker.").await?;
    let bob_got = take(&bob).await?;
    carol
        .heartbeat(&HeartbeatReq {
            status: Some(Status::Online),
        })
        .await?;
    let carol_got = take(&carol).await?;
    let mut lines = vec![
        format!(
            "alice notifies carol (offline): {} queued_offline={}",
            n.delivery_id, n.queued_offline
        ),
        format!("alice broadcasts to {} peers", b.deliveries.len()),
    ];
    lines.extend(bob_got.iter().map(|l| format!("bob's inbox: {l}")));
    lines.push("carol comes back online".into());
    lines.extend(carol_got.iter().map(|l| format!("carol's inbox: {l}")));
    t.step("notes, durable until delivered", lines);

    let trace = admin.trace(&id).await?;
    t.step(
        &format!("trace {id}"),
        timeline(&trace.events)
            .lines()
            .map(str::to_string)
            .collect(),
    );

    // The orchestrator's routing policy is a persona: a sandboxed Luau script.
    let used = admin
        .use_persona(&UsePersonaReq {
            name: "cross_review".into(),
            circle: None,
        })
        .await?;
    let job = alice
        .create_job(&JobCreateReq {
            title: "Add retries to the fetcher".into(),
            brief: Some("Exponential backoff, max 5 tries.".into()),
            ..Default::default()
        })
        .await?;
    // Whoever the persona chose takes it.
    let worker = match job.assignee.as_deref() {
        Some("carol") => &carol,
        Some("alice") => &alice,
        _ => &bob,
    };
    worker
        .update_job(
            &job.job_id,
            &JobUpdateReq {
                state: Some(JobState::Running),
                ..Default::default()
            },
        )
        .await?;
    let done = worker
        .update_job(
            &job.job_id,
            &JobUpdateReq {
                state: Some(JobState::Succeeded),
                result: Some("merged as PR 51".into()),
                ..Default::default()
            },
        )
        .await?;
    let review = bob
        .request_review(&ReviewRequestReq {
            reference: "https://example.test/pr/51".into(),
            head_sha: "5f3a9c1".into(),
            ..Default::default()
        })
        .await?;
    t.step(
        "a persona routes a job and a review",
        vec![
            format!(
                "persona {} (sha256 {}) is active",
                used.persona.unwrap_or_default(),
                used.sha256
                    .as_deref()
                    .and_then(|h| h.get(..12))
                    .unwrap_or("-")
            ),
            format!(
                "job {} went to {}; it ended {}: {}",
                done.job_id,
                done.assignee.unwrap_or_default(),
                done.state,
                done.result_summary.unwrap_or_default()
            ),
            format!(
                "review of {} by bob ({}) goes to {} — never the author, never the same backend",
                review.review.reference,
                "codex",
                review
                    .review
                    .reviewers
                    .iter()
                    .map(|r| r.reviewer.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ],
    );
    // A check-in script on a schedule nudges a job that went quiet.
    crate::home::private_dir(&home.dir.join("personas"))
        .map_err(|e| Failure::from(anyhow::anyhow!(e)))?;
    crate::home::write_private(
        &home.dir.join("personas/stale_jobs.lua"),
        include_str!("../../examples/checkins/stale_jobs.lua").as_bytes(),
    )?;
    let slow = alice
        .create_job(&JobCreateReq {
            title: "Write the changelog".into(),
            assign: Some("carol".into()),
            ..Default::default()
        })
        .await?;
    carol
        .update_job(
            &slow.job_id,
            &JobUpdateReq {
                state: Some(JobState::Running),
                ..Default::default()
            },
        )
        .await?;
    let sched = alice
        .create_schedule(&ScheduleReq {
            to: "self".into(),
            kind: Some(ScheduleKind::Checkin),
            text: r#"{"minutes": 0}"#.into(),
            fire_at: Some("300ms".into()),
            persona: Some("stale_jobs".into()),
            ..Default::default()
        })
        .await?;
    let mut nudge = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let inbox = carol.peek(50).await?.deliveries;
        if let Some(n) = inbox.into_iter().find(|d| d.text.contains("no progress")) {
            nudge = Some(n);
            break;
        }
    }
    let fired = alice.schedule(&sched.schedule_id).await?;
    t.step(
        "a scheduled check-in nudges a quiet job",
        vec![
            format!("job {} \"{}\" is running at carol", slow.job_id, slow.title),
            format!(
                "schedule {} runs stale_jobs.lua in 300 ms",
                sched.schedule_id
            ),
            format!("it fired: {}", fired.last_outcome.unwrap_or_default()),
            format!(
                "carol's inbox: {}",
                nudge
                    .map(|n| delivery_line(&n))
                    .unwrap_or_else(|| "(nothing yet)".into())
            ),
        ],
    );
    Ok(t)
}
