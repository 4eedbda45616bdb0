//! The ask lifecycle: every state, reminders, expiry, cancel, failure, wait, ask-many.

use crate::support::*;
use repowire::api::{AskManyReq, AskReq, HeartbeatReq, LeaseReq};
use repowire::core::ErrorCode;
use repowire::core::ask::AskState;
use repowire::core::delivery::DeliveryKind;
use repowire::core::peer::Status;
use std::time::Duration;

fn ask(to: &str, text: &str) -> AskReq {
    AskReq {
        to: to.into(),
        text: text.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_state_from_queued_offline_to_closed() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    bob.heartbeat(&HeartbeatReq {
        status: Some(Status::Offline),
    })
    .await
    .unwrap();

    // Asking an offline peer queues, and says so.
    let r = alice.ask(&ask("bob", "ready for review?")).await.unwrap();
    assert!(r.queued_offline);
    assert_eq!(r.ask.state, AskState::Queued);
    let id = r.ask.correlation_id.clone();
    assert!(id.starts_with("ask-"));
    assert!(r.delivery_id.starts_with("dlv-"));

    // Bob comes back and takes his inbox: leased, then confirmed → delivered.
    bob.heartbeat(&HeartbeatReq {
        status: Some(Status::Online),
    })
    .await
    .unwrap();
    let got = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, DeliveryKind::Ask);
    assert_eq!(got[0].correlation_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        alice.get_ask(&id).await.unwrap().state,
        AskState::Queued,
        "leased is not delivered"
    );
    bob.confirm(vec![got[0].delivery_id.clone()]).await.unwrap();
    assert_eq!(alice.get_ask(&id).await.unwrap().state, AskState::Delivered);

    // Only the recipient may pick up / answer / ack; only the asker may cancel.
    assert_eq!(code_of(alice.pickup(&id).await), ErrorCode::Forbidden);
    assert_eq!(code_of(alice.answer(&id, "me").await), ErrorCode::Forbidden);
    assert_eq!(code_of(bob.cancel(&id).await), ErrorCode::Forbidden);
    assert_eq!(bob.pickup(&id).await.unwrap().state, AskState::PickedUp);

    let waiter = {
        let alice = alice.clone();
        let id = id.clone();
        tokio::spawn(async move { alice.wait(&id, Duration::from_secs(30)).await })
    };
    let a = bob.answer(&id, "yes, PR 42").await.unwrap();
    assert_eq!(a.state, AskState::Closed);
    let w = waiter.await.unwrap().unwrap();
    assert!(w.done);
    assert_eq!(w.ask.answer.as_deref(), Some("yes, PR 42"));
    // The reply reaches the asker as a message.
    let reply = alice.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].kind, DeliveryKind::Reply);
    assert_eq!(reply[0].text, "yes, PR 42");
    assert_eq!(reply[0].from.as_deref(), Some("bob"));
    // Closed is final.
    assert_eq!(
        code_of(bob.answer(&id, "again").await),
        ErrorCode::InvalidState
    );
    assert_eq!(code_of(alice.cancel(&id).await), ErrorCode::InvalidState);

    // The trace shows every stage, in order.
    let t = d.cli(&["trace", &id, "--json"]);
    let kinds: Vec<String> = t.ok().json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    let want = [
        "ask_queued",
        "delivery_queued",
        "delivery_leased",
        "delivery_confirmed",
        "ask_delivered",
        "ask_picked_up",
        "ask_answered",
        "ask_closed",
    ];
    let mut it = kinds.iter();
    for w in want {
        assert!(
            it.any(|k| k == w),
            "{w} missing or out of order in {kinds:?}"
        );
    }
    let text = d.cli(&["trace", &id]);
    assert!(text.ok().stdout.contains("ask_picked_up") && text.stdout.contains(" ms "));
}

#[test]
fn cli_ask_answer_wait_ack_cancel() {
    let d = Daemon::start(&[]);
    for n in ["alice", "bob"] {
        d.cli(&["peer", "register", n]).ok();
    }
    let r = d.cli(&[
        "--as",
        "alice",
        "peer",
        "ask",
        "bob",
        "which branch?",
        "--json",
    ]);
    let id = r.ok().json()["ask"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inbox = d.cli(&["--as", "bob", "peer", "inbox"]);
    assert!(inbox.ok().stdout.contains("which branch?") && inbox.stdout.contains(&id));
    d.cli(&["--as", "alice", "peer", "answer", &id, "nope"])
        .fails(1, "forbidden");
    d.cli(&["--as", "bob", "peer", "answer", &id, "main"]).ok();
    let w = d.cli(&["--as", "alice", "peer", "wait", &id, "--timeout", "5s"]);
    assert_eq!(w.ok().stdout.trim(), "main");

    // ack with a message closes and tells the asker.
    let id2 = cli_ask(&d, "seen the RFC?");
    d.cli(&[
        "--as",
        "bob",
        "peer",
        "ack",
        &id2,
        "--message",
        "skimmed it",
    ])
    .ok();
    let asks = d.cli(&["--as", "alice", "peer", "asks", &id2, "--json"]);
    let v = asks.ok().json();
    assert_eq!(v["state"], "closed");
    assert_eq!(v["ack_message"], "skimmed it");

    // decline: closed, with the reason for the asker; a reason is required.
    let id4 = cli_ask(&d, "review my PR?");
    d.cli(&["--as", "bob", "peer", "decline", &id4, " "])
        .fails(1, "bad_request");
    d.cli(&["--as", "alice", "peer", "decline", &id4, "mine"])
        .fails(1, "forbidden");
    d.cli(&["--as", "bob", "peer", "decline", &id4, "on leave"])
        .ok();
    let v = d
        .cli(&["--as", "alice", "peer", "asks", &id4, "--json"])
        .ok()
        .json();
    assert_eq!(
        (v["state"].as_str(), v["ack_message"].as_str()),
        (Some("closed"), Some("Declined: on leave"))
    );

    // wait on an ask that stays open: exit 4 with a timeout code.
    let id3 = cli_ask(&d, "lunch?");
    let w = d.cli(&["--as", "alice", "peer", "wait", &id3, "--timeout", "300ms"]);
    w.fails(4, "timeout");
    d.cli(&["--as", "alice", "peer", "cancel", &id3]).ok();
    d.cli(&["--as", "alice", "peer", "wait", &id3, "--timeout", "1s"])
        .fails(1, "invalid_state");
    // The canceled ask's undelivered copy is withdrawn from bob's inbox.
    let peek = d.cli(&["--as", "bob", "peer", "inbox", "--peek", "--json"]);
    let items = peek.ok().json();
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["correlation_id"] != id3.as_str()),
        "{items}"
    );
    // Lists: sent/received/open.
    assert_eq!(d.open_asks_to("bob"), serde_json::json!([]));
    let sent = d.cli(&["--as", "alice", "peer", "asks", "--sent", "--json"]);
    assert_eq!(sent.ok().json().as_array().unwrap().len(), 4);
    d.cli(&["--as", "alice", "peer", "asks", "ask-nonsense"])
        .fails(1, "unknown_ask");
}

#[tokio::test]
async fn reminder_then_expiry() {
    let d = Daemon::start(&["--reminder-after", "10m", "--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let r = alice
        .ask(&AskReq {
            to: "bob".into(),
            text: "ping".into(),
            timeout_ms: Some(30 * 60_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = r.ask.correlation_id;
    // Not picked up: re-delivered once as a reminder.
    d.advance_clock(5 * 60_000).await;
    assert!(
        alice.get_ask(&id).await.unwrap().reminded_at_ms.is_none(),
        "too early"
    );
    d.advance_clock(5 * 60_000 + 1).await;
    let a = alice.get_ask(&id).await.unwrap();
    assert!(a.reminded_at_ms.is_some(), "reminded");
    assert_eq!(a.state, AskState::Queued);
    let inbox = bob.peek(10).await.unwrap().deliveries;
    let kinds: Vec<DeliveryKind> = inbox.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [DeliveryKind::Ask, DeliveryKind::Reminder],
        "exactly one reminder"
    );
    d.advance_clock(11 * 60_000).await;
    assert_eq!(
        bob.peek(10).await.unwrap().deliveries.len(),
        2,
        "still only one reminder"
    );

    // Then it expires; wait returns at once with the terminal state.
    d.advance_clock(10 * 60_000).await;
    let w = alice.wait(&id, Duration::from_secs(10)).await.unwrap();
    assert!(w.done);
    assert_eq!(w.ask.state, AskState::Expired);
    assert!(
        bob.peek(10).await.unwrap().deliveries.is_empty(),
        "an expired ask is withdrawn"
    );
    assert_eq!(
        code_of(bob.answer(&id, "late").await),
        ErrorCode::InvalidState
    );
}

#[tokio::test]
async fn picked_up_asks_get_no_reminder_and_unregister_fails_open_asks() {
    let d = Daemon::start(&["--reminder-after", "10m", "--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let id = alice
        .ask(&ask("bob", "a"))
        .await
        .unwrap()
        .ask
        .correlation_id;
    bob.pickup(&id).await.unwrap();
    d.advance_clock(30 * 60_000).await;
    assert!(alice.get_ask(&id).await.unwrap().reminded_at_ms.is_none());

    let waiter = {
        let alice = alice.clone();
        let id = id.clone();
        tokio::spawn(async move { alice.wait(&id, Duration::from_secs(30)).await })
    };
    bob.unregister_me().await.unwrap();
    let w = waiter.await.unwrap().unwrap();
    assert_eq!(w.ask.state, AskState::Failed);
    assert_eq!(
        code_of(alice.ask(&ask("bob", "b")).await),
        ErrorCode::UnknownPeer
    );
}

#[tokio::test]
async fn ask_many_collects_answers() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let carol = d.peer("carol", None).await;
    d.peer("dave", None).await;
    let r = alice
        .ask_many(&AskManyReq {
            to: vec!["bob".into(), "carol".into(), "dave".into()],
            text: "estimate for the migration?".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.parent_id.starts_with("askm-"));
    assert_eq!(r.asks.len(), 3);
    let id_of = |n: &str| {
        r.asks
            .iter()
            .find(|a| a.ask.to == n)
            .unwrap()
            .ask
            .correlation_id
            .clone()
    };
    bob.answer(&id_of("bob"), "2 days").await.unwrap();
    carol.ack(&id_of("carol"), None).await.unwrap();
    let res = alice.ask_many_result(&r.parent_id).await.unwrap();
    assert!(!res.done);
    assert_eq!(res.open, ["dave"]);
    let bob_e = res.entries.iter().find(|e| e.peer == "bob").unwrap();
    assert_eq!(bob_e.answer.as_deref(), Some("2 days"));
    // Only the asker reads the result.
    assert_eq!(
        code_of(bob.ask_many_result(&r.parent_id).await),
        ErrorCode::Forbidden
    );
    // Bad input is refused whole.
    for bad in [
        vec![],
        vec!["bob".to_string(), "bob".to_string()],
        vec!["bob".into(), "ghost".into()],
    ] {
        let e = alice
            .ask_many(&AskManyReq {
                to: bad.clone(),
                text: "q".into(),
                ..Default::default()
            })
            .await;
        assert!(
            matches!(code_of(e), ErrorCode::BadRequest | ErrorCode::UnknownPeer),
            "{bad:?}"
        );
    }
    // CLI form: names… then text, then the result.
    let out = d.cli(&[
        "--as", "alice", "peer", "ask-many", "bob", "carol", "ship it?", "--json",
    ]);
    let parent = out.ok().json()["parent_id"].as_str().unwrap().to_string();
    let res = d.cli(&["--as", "alice", "peer", "ask-many-result", &parent]);
    assert!(
        res.ok().stdout.contains("0 of 2 answered"),
        "{}",
        res.stdout
    );
    let tr = d.cli(&["trace", &parent, "--json"]);
    assert!(tr.ok().json()["events"].as_array().unwrap().len() >= 5);
}

#[tokio::test]
async fn canceling_a_handed_out_ask_tells_the_recipient() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let id = alice
        .ask(&ask("bob", "still needed?"))
        .await
        .unwrap()
        .ask
        .correlation_id;
    let leased = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(leased.len(), 1);
    alice.cancel(&id).await.unwrap();
    // The withdrawn copy is not handed out again; a notice is.
    let got = bob.peek(10).await.unwrap().deliveries;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind, DeliveryKind::System);
    assert!(got[0].text.contains("canceled"));
    assert_eq!(
        bob.confirm(vec![leased[0].delivery_id.clone()])
            .await
            .unwrap()
            .confirmed,
        0
    );
    assert_eq!(
        code_of(bob.answer(&id, "late").await),
        ErrorCode::InvalidState
    );
}

#[tokio::test]
async fn withdrawn_asks_leave_a_trail_and_a_notice() {
    let d = Daemon::start(&["--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    // Expiry of an ask bob already holds: bob is told.
    let r = alice
        .ask(&AskReq {
            to: "bob".into(),
            text: "quick?".into(),
            timeout_ms: Some(10 * 60_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = r.ask.correlation_id;
    assert_eq!(
        bob.lease(&LeaseReq::default())
            .await
            .unwrap()
            .deliveries
            .len(),
        1
    );
    d.advance_clock(10 * 60_000 + 1).await;
    let w = alice.wait(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(w.ask.state, AskState::Expired);
    let got = bob.peek(10).await.unwrap().deliveries;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].text.contains("expired"), "{}", got[0].text);
    // The trace shows where the delivery ended.
    let kinds: Vec<String> = d
        .admin()
        .trace(&id)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"delivery_dropped".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"ask_expired".to_string()));
    // A cross-circle ask (admin bypass) can be traced by its asker.
    d.peer("olga", Some("ops")).await;
    let admin_as_alice = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("alice".into()));
    let x = admin_as_alice
        .ask(&AskReq {
            to: "olga@ops".into(),
            text: "x".into(),
            bypass_circle: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !alice
            .trace(&x.ask.correlation_id)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(
        code_of(bob.trace(&x.ask.correlation_id).await),
        ErrorCode::CrossCircle
    );
}

/// alice asks bob through the CLI; the correlation id.
fn cli_ask(d: &Daemon, text: &str) -> String {
    d.cli(&["--as", "alice", "peer", "ask", "bob", text, "--json"])
        .json()["ask"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `wait_ms`: an ask and its wait in one request. Bob long-polls first, so
/// the ask is handed to him by the transaction that queues it and he
/// answers at once: the answer can land before Alice's request goes on to
/// wait, and must not be missed.
#[tokio::test]
async fn a_blocking_ask_returns_the_answer_in_one_request() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let answerer = {
        let bob = bob.clone();
        tokio::spawn(async move {
            loop {
                let got = bob
                    .lease(&LeaseReq {
                        wait_ms: Some(30_000),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                for d in got.deliveries {
                    let id = d.correlation_id.as_deref().unwrap();
                    bob.answer(id, &format!("re: {}", d.text)).await.unwrap();
                }
            }
        })
    };
    for i in 0..20 {
        let r = alice
            .ask(&AskReq {
                wait_ms: Some(30_000),
                ..ask("bob", &format!("q{i}"))
            })
            .await
            .unwrap();
        assert_eq!(r.done, Some(true), "{r:?}");
        assert_eq!(r.ask.state, AskState::Closed);
        assert_eq!(r.ask.answer, Some(format!("re: q{i}")));
        assert!(r.delivery_id.starts_with("dlv-"));
    }
    // The responses carried the answers: no reply waits in alice's inbox
    // (it would be shown again, and pile up for a client that only asks
    // this way), and each reply's trace says it was taken.
    let inbox = alice.peek(100).await.unwrap().deliveries;
    assert!(inbox.is_empty(), "{inbox:?}");
    let ev = d.admin().events(Some(0), None, None).await.unwrap().events;
    let confirmed = ev
        .iter()
        .filter(|e| e.kind == "delivery_confirmed" && e.payload["kind"] == "reply")
        .count();
    assert_eq!(confirmed, 20, "{ev:?}");
    // An ask then a wait keeps the reply in the inbox, as documented.
    let id = alice
        .ask(&ask("bob", "q20"))
        .await
        .unwrap()
        .ask
        .correlation_id;
    let w = alice.wait(&id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(w.ask.answer.as_deref(), Some("re: q20"));
    let inbox = alice.peek(100).await.unwrap().deliveries;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].kind, DeliveryKind::Reply);
    answerer.abort();
    // Without wait_ms the answer is at once, and says nothing of done.
    let r = alice.ask(&ask("bob", "later?")).await.unwrap();
    assert_eq!((r.done, r.ask.state), (None, AskState::Queued));
}

/// A blocking ask nobody answers comes back open when its wait ends (and
/// stays answerable); one the daemon refuses is refused at once, not after
/// its wait.
#[tokio::test]
async fn a_blocking_ask_nobody_answers_comes_back_open() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let t0 = std::time::Instant::now();
    let r = alice
        .ask(&AskReq {
            wait_ms: Some(300),
            ..ask("bob", "anyone?")
        })
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!((r.done, r.ask.state), (Some(false), AskState::Queued));
    assert_eq!(r.ask.answer, None);
    let id = r.ask.correlation_id;
    bob.answer(&id, "late, but here").await.unwrap();
    let w = alice.wait(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(w.ask.answer.as_deref(), Some("late, but here"));

    let long = |to: &str| AskReq {
        wait_ms: Some(600_000),
        ..ask(to, "q")
    };
    let refused = tokio::time::timeout(Duration::from_secs(20), async {
        (
            code_of(alice.ask(&long("nobody")).await),
            code_of(alice.ask(&long("alice")).await),
            code_of(
                alice
                    .ask(&AskReq {
                        text: " ".into(),
                        ..long("bob")
                    })
                    .await,
            ),
        )
    })
    .await
    .expect("refused without waiting");
    assert_eq!(
        refused,
        (
            ErrorCode::UnknownPeer,
            ErrorCode::BadRequest,
            ErrorCode::BadRequest
        )
    );
}

/// `peer ask --wait`: the answer on stdout (as `peer wait`); an ask still
/// open when the wait ends exits 4 with `timeout` and names the ask; only
/// an ask sent with a wait says whether it is done.
#[test]
fn cli_ask_wait_prints_the_answer() {
    let d = Daemon::start(&[]);
    for n in ["alice", "bob"] {
        d.cli(&["peer", "register", n]).ok();
    }
    let args = ["--as", "alice", "peer", "ask", "bob", "ship it?", "--wait"];
    let bobs_open = || d.open_asks_to("bob");
    let asking = cli_command(d.home_path(), &[&args[..], &["30s"]].concat(), &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = loop {
        let v = bobs_open();
        if let Some(id) = v[0]["correlation_id"].as_str() {
            break id.to_string();
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    d.cli(&["--as", "bob", "peer", "answer", &id, "shipped"])
        .ok();
    let out: Run = asking.wait_with_output().unwrap().into();
    assert_eq!(out.ok().stdout.trim(), "shipped");

    let r = d.cli(&[&args[..], &["200ms", "--json"]].concat());
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains(r#""code":"timeout""#), "{}", r.stderr);
    let v = r.json();
    assert_eq!(
        (v["done"].as_bool(), v["ask"]["state"].as_str()),
        (Some(false), Some("queued"))
    );
    let open = v["ask"]["correlation_id"].as_str().unwrap();
    assert!(r.stderr.contains(open), "{}", r.stderr);
    let r = d.cli(&["--as", "alice", "peer", "ask", "bob", "no wait", "--json"]);
    assert!(r.ok().json().get("done").is_none(), "{}", r.stdout);
    // A wait too long to count is refused before anything is sent.
    let open_before = bobs_open();
    let r = d.cli(&[&args[..], &["18446744073709551615s"]].concat());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--wait is too large"), "{}", r.stderr);
    let open_after = bobs_open();
    assert_eq!(open_before, open_after);
}

/// A peer waiting on its ask (a blocking ask here; `GET …/wait` shares the
/// wait) is alive, as one long-polling its inbox: a wait longer than
/// `--stale-after` does not make it stale or a ghost.
#[tokio::test]
async fn a_peer_waiting_on_its_ask_stays_alive() {
    let d = Daemon::start(&["--stale-after", "1s"]);
    let alice = d.peer("alice", None).await;
    d.peer("bob", None).await;
    let r = alice
        .ask(&repowire::api::AskReq {
            to: "bob".into(),
            text: "anyone?".into(),
            wait_ms: Some(2500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.done, Some(false));
    let me = alice.whoami().await.unwrap();
    assert!(
        !me.stale,
        "waiting on an ask counts as a sign of life: {me:?}"
    );
    let ev = d.admin().events(Some(0), None, None).await.unwrap().events;
    assert!(
        !ev.iter()
            .any(|e| e.kind == "peer_ghost" && e.payload["name"] == "alice"),
        "{ev:?}"
    );
}
