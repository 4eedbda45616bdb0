//! Notes and broadcasts: order, leases, confirmation, durability across kill -9.

use crate::support::*;
use repowire::api::{LeaseReq, NotifyReq};
use repowire::client::Client;
use repowire::core::ErrorCode;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

fn note(to: &str, text: &str) -> NotifyReq {
    NotifyReq {
        to: to.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// kill -9 the daemon, start it again, and lease everything the peer
/// with `token` has waiting.
async fn crash_and_lease_all(d: &mut Daemon, token: String) -> Vec<repowire::api::DeliveryInfo> {
    d.kill9();
    d.spawn();
    Client::new(&d.url, Some(token), None)
        .lease(&LeaseReq {
            max: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .deliveries
}

#[tokio::test]
async fn order_is_preserved_per_recipient_and_nothing_is_lost_on_kill9() {
    let mut d = Daemon::start(&[]);
    let alice_t = d.peer_token("alice", None).await;
    let bob_t = d.peer_token("bob", None).await;
    let carol_t = d.peer_token("carol", None).await;
    let alice = Client::new(&d.url, Some(alice_t.clone()), None);
    let carol = Client::new(&d.url, Some(carol_t.clone()), None);
    let mut acked = Vec::new();
    for i in 0..40 {
        let r = if i % 5 == 0 {
            alice
                .broadcast(&format!("msg {i}"))
                .await
                .unwrap()
                .deliveries
                .into_iter()
                .find(|d| d.to == "bob")
                .unwrap()
        } else {
            alice
                .notify(&note("bob", &format!("msg {i}")))
                .await
                .unwrap()
        };
        acked.push(r.delivery_id);
        carol
            .notify(&note("bob", &format!("carol {i}")))
            .await
            .unwrap();
    }
    // Crash the daemon right after the acknowledgements; no clean shutdown.
    let got = crash_and_lease_all(&mut d, bob_t).await;
    assert_eq!(got.len(), 80, "every acknowledged message survived");
    let from_alice: Vec<&str> = got
        .iter()
        .filter(|d| d.from.as_deref() == Some("alice"))
        .map(|d| d.text.as_str())
        .collect();
    let want: Vec<String> = (0..40).map(|i| format!("msg {i}")).collect();
    assert_eq!(from_alice, want, "order preserved");
    let ids: Vec<&str> = got
        .iter()
        .filter(|d| d.from.as_deref() == Some("alice"))
        .map(|d| d.delivery_id.as_str())
        .collect();
    assert_eq!(ids, acked.iter().map(String::as_str).collect::<Vec<_>>());
    let seqs: Vec<i64> = got.iter().map(|d| d.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

/// Sixteen senders at once: their notes share commits (group commit),
/// and still every note acknowledged survives a kill -9 right after, in
/// each sender's order.
#[tokio::test]
async fn concurrent_notes_share_commits_and_every_acknowledged_one_survives_kill9() {
    let mut d = Daemon::start(&[]);
    let bob_t = d.peer_token("bob", None).await;
    let (senders, per) = (16, 25);
    let mut clients = Vec::new();
    for k in 0..senders {
        let t = d.peer_token(&format!("s{k:02}"), None).await;
        clients.push(Client::new(&d.url, Some(t), None));
    }
    let before = d.admin().doctor().await.unwrap();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..per {
                    let r = c
                        .notify(&note("bob", &format!("s{k:02} {i}")))
                        .await
                        .unwrap();
                    acked.push(r.delivery_id);
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    let after = d.admin().doctor().await.unwrap();
    let (writes, commits) = (after.writes - before.writes, after.commits - before.commits);
    assert!(writes >= (senders * per) as u64, "{writes} writes");
    assert!(
        commits < writes,
        "{writes} writes in {commits} commits: some shared one"
    );
    let got = crash_and_lease_all(&mut d, bob_t).await;
    assert_eq!(got.len(), senders * per, "every acknowledged note survived");
    for (k, ids) in acked.iter().enumerate() {
        let from = format!("s{k:02}");
        let mine: Vec<&str> = got
            .iter()
            .filter(|d| d.from.as_deref() == Some(from.as_str()))
            .map(|d| d.delivery_id.as_str())
            .collect();
        assert_eq!(mine, ids.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn leases_expire_peek_consumes_nothing_confirm_is_idempotent() {
    // The clock is moved past the lease instead of waiting for it.
    let d = Daemon::start(&["--lease", "10m", "--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    alice.notify(&note("bob", "one")).await.unwrap();
    alice.notify(&note("bob", "two")).await.unwrap();
    assert_eq!(bob.peek(10).await.unwrap().deliveries.len(), 2);
    assert_eq!(
        bob.peek(10).await.unwrap().deliveries.len(),
        2,
        "peek consumes nothing"
    );

    // A consumer takes them and dies before confirming: they come back.
    let first = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(first.len(), 2);
    assert!(
        bob.lease(&LeaseReq::default())
            .await
            .unwrap()
            .deliveries
            .is_empty(),
        "leased ones are not handed out twice"
    );
    d.advance_clock(10 * 60_000 + 1).await;
    let again = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(again.len(), 2, "expired leases are handed out again");
    assert_eq!(
        again[0].delivery_id, first[0].delivery_id,
        "same ids, so duplicates can be dropped"
    );
    assert_eq!(again[0].attempts, 2);
    let ids: Vec<String> = again.iter().map(|d| d.delivery_id.clone()).collect();
    assert_eq!(bob.confirm(ids.clone()).await.unwrap().confirmed, 2);
    assert_eq!(
        bob.confirm(ids.clone()).await.unwrap().confirmed,
        0,
        "confirming twice is harmless"
    );
    assert!(bob.peek(10).await.unwrap().deliveries.is_empty());
    // Alice cannot confirm bob's deliveries.
    alice.notify(&note("bob", "three")).await.unwrap();
    let three = bob.peek(10).await.unwrap().deliveries[0]
        .delivery_id
        .clone();
    assert_eq!(alice.confirm(vec![three]).await.unwrap().confirmed, 0);
    assert_eq!(bob.peek(10).await.unwrap().deliveries.len(), 1);
    assert_eq!(
        code_of(bob.confirm(vec!["not-an-id".into()]).await),
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn inbox_cap_and_broadcast_rate_limit_are_clear_errors() {
    let d = Daemon::start(&["--max-pending", "3", "--broadcast-per-minute", "2"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    for i in 0..3 {
        alice.notify(&note("bob", &format!("{i}"))).await.unwrap();
    }
    let e = alice.notify(&note("bob", "overflow")).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InboxFull));
    assert!(e.to_string().contains("max_pending_per_peer"), "{e}");
    // Draining makes room again.
    let got = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    bob.confirm(got.into_iter().map(|d| d.delivery_id).collect())
        .await
        .unwrap();
    alice.notify(&note("bob", "fits now")).await.unwrap();

    // A refused broadcast does not use up the budget.
    let other = repowire::api::BroadcastReq {
        text: "x".into(),
        circle: Some("elsewhere".into()),
        bypass_circle: false,
    };
    assert_eq!(
        code_of(alice.broadcast_to(&other).await),
        ErrorCode::CrossCircle
    );
    assert_eq!(
        code_of(alice.broadcast_to(&other).await),
        ErrorCode::CrossCircle
    );
    alice.broadcast("b1").await.unwrap();
    alice.broadcast("b2").await.unwrap();
    let e = alice.broadcast("b3").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited));
    assert!(e.to_string().contains("broadcast_per_minute"), "{e}");
    // Another sender has its own budget.
    bob.broadcast("from bob").await.unwrap();
}

#[tokio::test]
async fn inbox_follow_streams_and_rides_out_a_daemon_restart() {
    let mut d = Daemon::start(&[]);
    let alice_t = d.peer_token("alice", None).await;
    let bob_t = d.peer_token("bob", None).await;
    let mut follower = cli_command(
        d.home_path(),
        &["peer", "inbox", "--follow", "--json"],
        &[("REPOWIRE_PEER_TOKEN", &bob_t)],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = |rx: &std::sync::mpsc::Receiver<String>| -> serde_json::Value {
        serde_json::from_str(
            &rx.recv_timeout(Duration::from_secs(20))
                .expect("a streamed delivery"),
        )
        .unwrap()
    };
    let alice = Client::new(&d.url, Some(alice_t.clone()), None);
    alice.notify(&note("bob", "first")).await.unwrap();
    assert_eq!(next(&rx)["text"], "first");
    let bob = Client::new(&d.url, Some(bob_t.clone()), None);
    eventually(Duration::from_secs(10), "first confirmation", || async {
        bob.peek(10)
            .await
            .unwrap()
            .deliveries
            .is_empty()
            .then_some(())
    })
    .await;

    d.kill9();
    d.spawn(); // same home: the follower finds the new address in daemon.json
    let alice = Client::new(&d.url, Some(alice_t), None);
    alice.notify(&note("bob", "after restart")).await.unwrap();
    assert_eq!(next(&rx)["text"], "after restart");
    // Confirmed once printed: nothing is left pending.
    let bob = Client::new(&d.url, Some(bob_t), None);
    eventually(Duration::from_secs(10), "confirmation", || async {
        bob.peek(10)
            .await
            .unwrap()
            .deliveries
            .is_empty()
            .then_some(())
    })
    .await;
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(rx.try_recv().is_err(), "nothing printed twice");
}

#[tokio::test]
async fn full_inboxes_never_block_answers_takeovers_or_other_recipients() {
    let d = Daemon::start(&[
        "--max-pending",
        "2",
        "--stale-after",
        "10m",
        "--manual-clock",
    ]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let carol = d.peer("carol", None).await;
    // bob asks alice, then alice's inbox fills up.
    let id = bob
        .ask(&repowire::api::AskReq {
            to: "alice".into(),
            text: "q".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .ask
        .correlation_id;
    carol.notify(&note("alice", "fill")).await.unwrap();
    assert_eq!(
        code_of(carol.notify(&note("alice", "over")).await),
        ErrorCode::InboxFull
    );
    // bob's own inbox is full too; alice can still answer (replies are never refused).
    alice.notify(&note("bob", "1")).await.unwrap();
    carol.notify(&note("bob", "2")).await.unwrap();
    alice.answer(&id, "a").await.unwrap();
    assert_eq!(
        bob.peek(10).await.unwrap().deliveries.len(),
        3,
        "the reply went through"
    );
    // A broadcast skips the full inbox and says so; the others still get it
    // (alice has room again: the answered ask's copy was withdrawn).
    let r = carol.broadcast("all hands").await.unwrap();
    let to: Vec<&str> = r.deliveries.iter().map(|d| d.to.as_str()).collect();
    assert_eq!(to, ["alice"]);
    assert_eq!(r.skipped_inbox_full, ["bob"]);
    // A stale holder with a full inbox can still be taken over (notices are never refused).
    alice.claim_orchestrator(false).await.unwrap();
    d.advance_clock(10 * 60_000 + 1).await;
    let r = carol.claim_orchestrator(false).await.unwrap();
    assert_eq!(r.previous.as_deref(), Some("alice"));
}

#[tokio::test]
async fn an_idle_consumer_is_not_a_ghost_and_inbox_takes_everything() {
    let d = Daemon::start(&["--stale-after", "1s"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    // bob long-polls an empty inbox for longer than stale-after.
    let r = bob
        .lease(&LeaseReq {
            wait_ms: Some(2500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.deliveries.is_empty());
    let me = bob.whoami().await.unwrap();
    assert!(!me.stale, "long-polling counts as a sign of life: {me:?}");
    let ev = d.admin().events(Some(0), None, None).await.unwrap().events;
    assert!(
        !ev.iter()
            .any(|e| e.kind == "peer_ghost" && e.payload["name"] == "bob")
    );

    // `peer inbox` takes everything pending, not one page.
    for i in 0..250 {
        alice.notify(&note("bob", &format!("n{i}"))).await.unwrap();
    }
    let out = d.cli(&["--as", "bob", "peer", "inbox", "--json"]);
    let items = out.ok().json();
    let texts: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 250);
    assert_eq!(texts[0], "n0");
    assert_eq!(texts[249], "n249");
    assert!(
        bob.peek(10).await.unwrap().deliveries.is_empty(),
        "all confirmed"
    );
    let out = d.cli(&["--as", "bob", "peer", "inbox"]);
    assert!(out.ok().stdout.contains("inbox empty"));
}

/// The delivery stream (SSE) sends each delivery once, leased, in order,
/// live; what is confirmed is gone, what is not comes back after its lease.
#[tokio::test]
async fn the_delivery_stream_leases_in_order_and_confirm_settles() {
    use futures_util::StreamExt;
    let d = Daemon::start(&["--lease", "3s"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    for i in 0..3 {
        alice.notify(&note("bob", &format!("n{i}"))).await.unwrap();
    }
    let mut s = Box::pin(bob.delivery_stream(2).await.unwrap());
    // The next delivery (keep-alives, `None`, are skipped).
    let mut next = async || loop {
        let item = tokio::time::timeout(Duration::from_secs(20), s.next())
            .await
            .expect("a delivery")
            .unwrap()
            .unwrap();
        if let Some(d) = item {
            return d;
        }
    };
    let first: Vec<_> = vec![next().await, next().await, next().await];
    let texts: Vec<&str> = first.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["n0", "n1", "n2"]);
    assert!(first.iter().all(|d| d.state.as_str() == "leased"));
    // Live: a note sent now arrives on the open stream.
    alice.notify(&note("bob", "live")).await.unwrap();
    let live = next().await;
    assert_eq!(live.text, "live");
    // Confirm all but n1: after its lease it is handed out again, same id.
    let ids: Vec<String> = first
        .iter()
        .chain([&live])
        .filter(|d| d.text != "n1")
        .map(|d| d.delivery_id.clone())
        .collect();
    bob.confirm(ids).await.unwrap();
    let again = next().await;
    assert_eq!((again.text.as_str(), again.attempts), ("n1", 2));
    assert_eq!(again.delivery_id, first[1].delivery_id);
    bob.confirm(vec![again.delivery_id.clone()]).await.unwrap();
    assert!(bob.peek(10).await.unwrap().deliveries.is_empty());
    // Only a peer has a stream.
    let nobody = Client::new(&d.admin().base(), Some("not-a-token".into()), None);
    assert_eq!(
        code_of(nobody.delivery_stream(1).await.map(|_| ())),
        ErrorCode::Unauthorized
    );
}

/// An open delivery stream is not a sign of life: a consumer that stopped
/// heartbeating goes stale although its socket is still open.
#[tokio::test]
async fn an_open_stream_does_not_keep_a_peer_alive() {
    use futures_util::StreamExt;
    let d = Daemon::start(&["--stale-after", "1s"]);
    let bob = d.peer("bob", None).await;
    let mut s = Box::pin(bob.delivery_stream(10).await.unwrap());
    let admin = d.admin();
    eventually(Duration::from_secs(10), "bob stale", || async {
        admin
            .describe("bob", None)
            .await
            .unwrap()
            .stale
            .then_some(())
    })
    .await;
    // The stream still works: a note arrives on it.
    let alice = d.peer("alice", None).await;
    alice.notify(&note("bob", "still here?")).await.unwrap();
    let got = loop {
        let item = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("a delivery")
            .unwrap()
            .unwrap();
        if let Some(d) = item {
            break d;
        }
    };
    assert_eq!(got.text, "still here?");
}
