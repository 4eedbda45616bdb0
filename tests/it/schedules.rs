//! Schedules: one-shot and cron, kinds, permissions, missed fires across a
//! restart, failed fires retried, and check-in scripts.

use crate::support::*;
use repowire::api::{JobCreateReq, JobUpdateReq, LeaseReq, ScheduleReq};
use repowire::core::ErrorCode;
use repowire::core::delivery::DeliveryKind;
use repowire::core::job::JobState;
use repowire::core::schedule::{MissedPolicy, ScheduleKind};
use std::time::Duration;

fn once(to: &str, when: &str, text: &str) -> ScheduleReq {
    ScheduleReq {
        to: to.into(),
        text: text.into(),
        fire_at: Some(when.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn one_shot_notify_ask_job_and_self() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    let s = olga
        .create_schedule(&once("bob", "300ms", "stand-up in 5"))
        .await
        .unwrap();
    assert!(s.schedule_id.starts_with("sch-"));
    assert!(s.enabled && s.next_fire_ms.is_some());
    let got = eventually(Duration::from_secs(10), "the fire", || async {
        bob.peek(10)
            .await
            .unwrap()
            .deliveries
            .into_iter()
            .find(|x| x.text.contains("stand-up"))
    })
    .await;
    assert_eq!(got.from.as_deref(), Some("olga"));
    // A note is armed ahead: visible at its instant, and the fire is booked
    // on the schedule just after.
    let s = eventually(Duration::from_secs(10), "the fire booked", || async {
        let x = olga.schedule(&s.schedule_id).await.unwrap();
        (x.fire_count > 0).then_some(x)
    })
    .await;
    assert_eq!(s.fire_count, 1);
    assert!(
        !s.enabled && s.next_fire_ms.is_none(),
        "a one-shot is done after it fires"
    );
    // ask and job kinds; self reminders.
    let ask = ScheduleReq {
        kind: Some(ScheduleKind::Ask),
        ..once("bob", "200ms", "status?")
    };
    olga.create_schedule(&ask).await.unwrap();
    let job = ScheduleReq {
        kind: Some(ScheduleKind::Job),
        ..once("bob", "200ms", "nightly cleanup")
    };
    olga.create_schedule(&job).await.unwrap();
    d.cli(&[
        "--as",
        "olga",
        "schedule",
        "self",
        "200ms",
        "look at the deploy",
    ])
    .ok();
    eventually(Duration::from_secs(10), "all three", || async {
        let b = bob.peek(20).await.unwrap().deliveries;
        let o = olga.peek(20).await.unwrap().deliveries;
        let asked = b
            .iter()
            .any(|x| x.kind == DeliveryKind::Ask && x.text.contains("status?"));
        let jobbed = b
            .iter()
            .any(|x| x.kind == DeliveryKind::Ask && x.text.contains("nightly cleanup"));
        let reminded = o.iter().any(|x| x.text.contains("look at the deploy"));
        (asked && jobbed && reminded).then_some(())
    })
    .await;
    let jobs = olga.list_jobs(&[]).await.unwrap();
    assert_eq!(jobs[0].title, "nightly cleanup");
    assert_eq!(jobs[0].assignee.as_deref(), Some("bob"));
    // Bad input.
    assert_eq!(
        code_of(olga.create_schedule(&once("bob", "soonish", "x")).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code_of(olga.create_schedule(&once("nobody", "1m", "x")).await),
        ErrorCode::UnknownPeer
    );
    let both = ScheduleReq {
        cron: Some("@daily".into()),
        ..once("bob", "1m", "x")
    };
    assert_eq!(
        code_of(olga.create_schedule(&both).await),
        ErrorCode::BadRequest
    );
    d.cli(&["--as", "olga", "schedule", "cron", "bob", "61 * * * *", "x"])
        .fails(1, "bad_request");
    // Cron is 5 fields (minutes up): a seconds (or year) field would let any
    // peer fire a delivery every second.
    for every_second in ["* * * * * *", "* * * * * * *", "*/1 * * * * *"] {
        let r = ScheduleReq {
            cron: Some(every_second.into()),
            fire_at: None,
            ..once("bob", "1m", "x")
        };
        assert_eq!(
            code_of(olga.create_schedule(&r).await),
            ErrorCode::BadRequest,
            "{every_second}"
        );
    }
    d.cli(&[
        "--as",
        "olga",
        "schedule",
        "cron",
        "bob",
        "@daily",
        "x",
        "--tz",
        "Mars/Base",
    ])
    .fails(1, "bad_request");
}

#[tokio::test]
async fn cron_next_fire_pause_resume_delete_and_who_may() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    let r = d.cli(&[
        "--as",
        "olga",
        "schedule",
        "cron",
        "bob",
        "30 9 * * *",
        "daily sync",
        "--tz",
        "Europe/Berlin",
        "--json",
    ]);
    let s: repowire::api::ScheduleInfo = serde_json::from_value(r.ok().json()).unwrap();
    let next = s.next_fire_ms.unwrap();
    assert_eq!(
        next,
        repowire::core::schedule::next_cron("30 9 * * *", "Europe/Berlin", s.created_at_ms)
            .unwrap()
    );
    assert_eq!(s.tz, "Europe/Berlin");
    assert_eq!(
        code_of(bob.pause_schedule(&s.schedule_id, true).await),
        ErrorCode::Forbidden
    );
    assert!(
        !olga
            .pause_schedule(&s.schedule_id, true)
            .await
            .unwrap()
            .enabled
    );
    assert!(
        olga.pause_schedule(&s.schedule_id, false)
            .await
            .unwrap()
            .enabled
    );
    let mine = d
        .cli(&["--as", "olga", "schedule", "list", "--json"])
        .ok()
        .json();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let bobs = d
        .cli(&["--as", "bob", "schedule", "list", "--json"])
        .ok()
        .json();
    assert_eq!(bobs.as_array().unwrap().len(), 0);
    let all = d
        .cli(&["--as", "bob", "schedule", "list", "--all", "--json"])
        .ok()
        .json();
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        code_of(bob.delete_schedule(&s.schedule_id).await),
        ErrorCode::Forbidden
    );
    d.cli(&["--as", "olga", "schedule", "delete", &s.schedule_id])
        .ok();
    assert_eq!(
        code_of(olga.schedule(&s.schedule_id).await),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn missed_fires_follow_the_policy_across_a_restart() {
    let mut d = Daemon::start(&[]);
    let olga_t = d.peer_token("olga", None).await;
    let bob_t = d.peer_token("bob", None).await;
    let olga = d.admin().with_identity(Some(olga_t.clone()), None);
    let skip = ScheduleReq {
        missed: Some(MissedPolicy::Skip),
        ..once("bob", "10m", "skipped one")
    };
    let fire = ScheduleReq {
        missed: Some(MissedPolicy::FireOnce),
        ..once("bob", "10m", "late one")
    };
    let a = olga.create_schedule(&skip).await.unwrap().schedule_id;
    let b = olga.create_schedule(&fire).await.unwrap().schedule_id;
    d.kill9();
    // Back up on a clock moved well past both fires: they are missed (ten
    // minutes late, more than missed-after), as after a long downtime.
    d.args = ["--missed-after", "5m", "--manual-clock"]
        .map(String::from)
        .to_vec();
    d.spawn();
    let olga = d.admin().with_identity(Some(olga_t), None);
    let bob = d.admin().with_identity(Some(bob_t), None);
    d.advance_clock(20 * 60_000).await;
    eventually(
        Duration::from_secs(10),
        "the fires after restart",
        || async {
            let (x, y) = (
                olga.schedule(&a).await.unwrap(),
                olga.schedule(&b).await.unwrap(),
            );
            (x.last_fired_ms.is_some() && y.last_fired_ms.is_some()).then_some(())
        },
    )
    .await;
    let texts: Vec<String> = bob
        .peek(10)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .map(|x| x.text)
        .collect();
    assert!(texts.iter().any(|t| t.contains("late one")), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.contains("skipped one")),
        "{texts:?}"
    );
    let x = olga.schedule(&a).await.unwrap();
    assert!(x.last_outcome.unwrap().contains("skipped"));
    assert_eq!(x.fire_count, 0);
    assert_eq!(
        olga.schedule(&b).await.unwrap().fire_count,
        1,
        "fired once, not once per miss"
    );
}

#[tokio::test]
async fn a_failed_fire_is_retried_not_dropped() {
    let d = Daemon::start(&["--max-pending", "1", "--schedule-retry", "200ms"]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    let dan = d.peer("dan", None).await;
    dan.notify(&repowire::api::NotifyReq {
        to: "bob".into(),
        text: "fills the inbox".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = olga
        .create_schedule(&once("bob", "100ms", "queued note"))
        .await
        .unwrap();
    let failed = eventually(Duration::from_secs(10), "a failed fire", || async {
        let x = olga.schedule(&s.schedule_id).await.unwrap();
        (x.failures > 0).then_some(x)
    })
    .await;
    assert!(failed.last_error.unwrap().contains("inbox_full"));
    assert!(
        failed.enabled && failed.next_fire_ms.is_some(),
        "still pending"
    );
    // Room again: the retry delivers.
    let got = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    bob.confirm(got.into_iter().map(|x| x.delivery_id).collect())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the retry", || async {
        bob.peek(10)
            .await
            .unwrap()
            .deliveries
            .into_iter()
            .find(|x| x.text.contains("queued note"))
    })
    .await;
    assert_eq!(olga.schedule(&s.schedule_id).await.unwrap().fire_count, 1);
}

#[tokio::test]
async fn checkin_scripts_send_their_routes() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    olga.claim_orchestrator(false).await.unwrap();
    let j = olga
        .create_job(&JobCreateReq {
            title: "slow burner".into(),
            assign: Some("bob".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    bob.update_job(
        &j.job_id,
        &JobUpdateReq {
            state: Some(JobState::Running),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/checkins/stale_jobs.lua"
    );
    // Threshold 0 minutes: every running job counts as quiet.
    let req = ScheduleReq {
        to: "self".into(),
        kind: Some(ScheduleKind::Checkin),
        text: r#"{"minutes": 0}"#.into(),
        fire_at: Some("200ms".into()),
        persona: Some(script.into()),
        ..Default::default()
    };
    // Naming a script file takes the admin token (here: the admin acting as olga).
    assert_eq!(
        code_of(olga.create_schedule(&req).await),
        ErrorCode::Forbidden
    );
    let admin_olga = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("olga".into()));
    let s = admin_olga.create_schedule(&req).await.unwrap();
    let nudge = eventually(Duration::from_secs(10), "the nudge", || async {
        bob.peek(20)
            .await
            .unwrap()
            .deliveries
            .into_iter()
            .find(|x| x.kind == DeliveryKind::Notify && x.text.contains("no progress"))
    })
    .await;
    assert!(nudge.text.contains(&j.job_id));
    assert_eq!(nudge.from.as_deref(), Some("olga"));
    let s = admin_olga.schedule(&s.schedule_id).await.unwrap();
    assert!(s.last_outcome.unwrap().contains("1 message"));
    // The review nag, on a review bob owes.
    olga.request_review(&repowire::api::ReviewRequestReq {
        reference: "pr-9".into(),
        head_sha: "abc".into(),
        author: Some("olga".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let nag = ScheduleReq {
        persona: Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/checkins/review_nag.lua"
            )
            .into(),
        ),
        text: r#"{"hours": 0}"#.into(),
        ..req
    };
    admin_olga.create_schedule(&nag).await.unwrap();
    eventually(Duration::from_secs(10), "the nag", || async {
        bob.peek(30)
            .await
            .unwrap()
            .deliveries
            .into_iter()
            .find(|x| x.text.contains("Reviews waiting for you") && x.text.contains("pr-9"))
    })
    .await;
}

/// Plain fires due together are armed ahead: each becomes visible at the
/// instant itself (recorded as its fire time, exactly), a consumer waiting
/// in a long-poll is woken by the first, and every one arrives once.
#[tokio::test]
async fn a_burst_due_together_is_visible_at_its_instant() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    let n = 300;
    let at = repowire::core::time::now_ms() + 1_500;
    let when = repowire::core::time::fmt_ms(at);
    for i in 0..n {
        olga.create_schedule(&once("bob", &when, &format!("burst {i}")))
            .await
            .unwrap();
    }
    assert!(
        repowire::core::time::now_ms() < at,
        "created before the instant"
    );
    let req = LeaseReq {
        max: Some(1),
        wait_ms: Some(10_000),
        ..Default::default()
    };
    let first = bob.lease(&req).await.unwrap().deliveries;
    assert_eq!(first.len(), 1, "the long-poll was woken by a fire");
    assert!(
        repowire::core::time::now_ms() >= at,
        "not before the instant"
    );
    let all = eventually(Duration::from_secs(20), "every fire booked", || async {
        let all = olga.list_schedules(false).await.unwrap();
        all.iter().all(|s| s.fire_count == 1).then_some(all)
    })
    .await;
    assert_eq!(all.len(), n);
    // Fired at the instant, not when a write got to it: armed ahead.
    let off: Vec<i64> = all
        .iter()
        .filter_map(|s| s.last_fired_ms.filter(|t| *t != at).map(|t| t - at))
        .collect();
    assert!(
        off.is_empty(),
        "{} fired off the instant by (ms) {off:?}",
        off.len()
    );
    let mut texts: Vec<String> = bob
        .peek(1000)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .map(|x| x.text)
        .collect();
    texts.extend(first.into_iter().map(|x| x.text));
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), n, "each fire arrives once");
}

/// A crash after the fires were armed and before their instant: the armed
/// deliveries survive, become visible at the instant, and each fire is
/// booked once, at its instant, by the restarted daemon.
#[tokio::test]
async fn armed_fires_survive_a_crash_before_their_instant() {
    // Armed as soon as created (due well within the window): the crash
    // comes after arming, and before the instant.
    let mut d = Daemon::start(&["--schedule-arm-ahead", "10s"]);
    let olga_t = d.peer_token("olga", None).await;
    let bob_t = d.peer_token("bob", None).await;
    let olga = d.admin().with_identity(Some(olga_t.clone()), None);
    let at = repowire::core::time::now_ms() + 4_000;
    let when = repowire::core::time::fmt_ms(at);
    let n = 40;
    for i in 0..n {
        olga.create_schedule(&once("bob", &when, &format!("armed {i}")))
            .await
            .unwrap();
    }
    // Armed at once (the instant is within --schedule-arm-ahead): wait
    // for the rows, then crash before the instant.
    let db = d.home.path().join("state.db");
    eventually(Duration::from_secs(5), "the fires armed", || async {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        c.busy_timeout(Duration::from_secs(2)).unwrap();
        let armed: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'armed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (armed == n as i64).then_some(())
    })
    .await;
    assert!(
        repowire::core::time::now_ms() < at,
        "armed before the instant"
    );
    d.kill9();
    d.spawn();
    let olga = d.admin().with_identity(Some(olga_t), None);
    let bob = d.admin().with_identity(Some(bob_t), None);
    let all = eventually(Duration::from_secs(20), "every fire booked", || async {
        let all = olga.list_schedules(false).await.unwrap();
        all.iter().all(|s| s.fire_count == 1).then_some(all)
    })
    .await;
    assert!(
        all.iter().all(|s| s.last_fired_ms == Some(at)),
        "booked at the instant"
    );
    let mut texts: Vec<String> = bob
        .peek(1000)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .map(|x| x.text)
        .collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), n, "each once");
    assert_eq!(
        bob.peek(1000).await.unwrap().deliveries.len(),
        n,
        "nothing twice"
    );
}

/// A crash between arming and booking (armed fires are written right
/// after these are created, due 300 ms later) loses and doubles nothing.
#[tokio::test]
async fn kill9_during_fires_loses_and_doubles_nothing() {
    let mut d = Daemon::start(&[]);
    let olga_t = d.peer_token("olga", None).await;
    let bob_t = d.peer_token("bob", None).await;
    let olga = d.admin().with_identity(Some(olga_t.clone()), None);
    let mut ids = Vec::new();
    for i in 0..60 {
        let s = olga
            .create_schedule(&once("bob", "300ms", &format!("fire {i}")))
            .await
            .unwrap();
        ids.push(s.schedule_id);
    }
    // Crash somewhere in the middle of the batch firing.
    tokio::time::sleep(Duration::from_millis(320)).await;
    d.kill9();
    d.spawn();
    let olga = d.admin().with_identity(Some(olga_t), None);
    let bob = d.admin().with_identity(Some(bob_t), None);
    eventually(Duration::from_secs(20), "every schedule fired", || async {
        let all = olga.list_schedules(false).await.unwrap();
        all.iter()
            .all(|s| s.fire_count == 1 && !s.enabled)
            .then_some(())
    })
    .await;
    let got = bob.peek(1000).await.unwrap().deliveries;
    let mut texts: Vec<String> = got.into_iter().map(|x| x.text).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 60, "each fire delivered exactly once");
    let total = bob.peek(1000).await.unwrap().deliveries.len();
    assert_eq!(total, 60, "and nothing twice");
}

/// A check-in's routes are carried out inside the fire's transaction: a
/// route that fails when carried out (olga asking herself passes the
/// script's checks but not the executor's) undoes the whole fire, the ask
/// to bob before it too, and the fire is retried, never half-sent.
#[tokio::test]
async fn a_checkin_route_that_fails_undoes_the_whole_fire() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let bob = d.peer("bob", None).await;
    let script = d.home_path().join("twice.lua");
    std::fs::write(
        &script,
        r#"function checkin(ctx, mesh)
  return { route.ask("bob", "first"), route.ask("olga", "myself") }
end
"#,
    )
    .unwrap();
    let admin_olga = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("olga".into()));
    let s = admin_olga
        .create_schedule(&ScheduleReq {
            to: "self".into(),
            kind: Some(ScheduleKind::Checkin),
            text: "{}".into(),
            fire_at: Some("200ms".into()),
            persona: Some(script.display().to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    let failed = eventually(Duration::from_secs(10), "the failed fire", || async {
        let s = olga.schedule(&s.schedule_id).await.unwrap();
        (s.last_outcome.as_deref() == Some("failed")).then_some(s)
    })
    .await;
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot ask itself"),
        "{failed:?}"
    );
    assert_eq!(failed.fire_count, 0);
    assert!(
        bob.peek(20).await.unwrap().deliveries.is_empty(),
        "nothing of the fire was sent"
    );
}
