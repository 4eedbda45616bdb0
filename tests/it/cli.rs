//! The CLI and the daemon's lifecycle: status, stop, signals, locks, doctor,
//! events, demo, help.

use crate::support::*;
use repowire::api::NotifyReq;
use repowire::client::Client;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn home_files_status_and_graceful_signals() {
    let mut d = Daemon::start(&[]);
    let home = d.home_path().to_path_buf();
    let mode = std::fs::metadata(home.join("token"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "token is private");
    assert!(home.join("state.db").exists());
    let pid: u32 = std::fs::read_to_string(home.join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, d.pid());

    let st = d.cli(&["daemon", "status", "--json"]);
    let v = st.ok().json();
    assert_eq!(v["pid"], d.pid());
    assert_eq!(v["url"], d.url.as_str());

    // A second daemon on the same home is refused.
    let second = run_cli(&home, &["daemon", "run", "--listen", "127.0.0.1:0"], &[]);
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );

    // SIGTERM: exit 0, record cleared, data kept.
    d.admin()
        .register(&repowire::api::RegisterReq {
            name: "keep".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let st = d.signal_and_wait("-TERM");
    assert_eq!(st.code(), Some(0), "graceful exit on SIGTERM");
    assert!(!home.join("daemon.json").exists());
    d.spawn();
    let names: Vec<String> = d
        .admin()
        .list_peers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["keep"]);
    let st = d.signal_and_wait("-INT");
    assert_eq!(st.code(), Some(0), "graceful exit on SIGINT");
}

#[test]
fn daemon_stop_and_start_in_background() {
    let mut d = Daemon::start(&[]);
    let r = d.cli(&["daemon", "stop", "--json"]);
    assert_eq!(r.ok().json()["stopped"], true);
    let mut child = d.child.take().unwrap();
    let st = wait_timeout(&mut child, Duration::from_secs(10)).expect("daemon exits after stop");
    assert_eq!(st.code(), Some(0));

    // Nothing listening now: a clear message and exit code 3.
    let r = d.cli(&["peer", "list"]);
    r.fails(3, "daemon_unreachable");
    assert!(
        r.stderr.contains("repowire daemon"),
        "says how to start one: {}",
        r.stderr
    );
    d.cli(&["daemon", "status"]).fails(3, "daemon_unreachable");

    // Start in the background, use it, stop it.
    let r = d.cli(&["daemon", "start", "--listen", "127.0.0.1:0", "--json"]);
    let pid = r.ok().json()["pid"].as_u64().unwrap();
    d.cli(&["peer", "register", "alice"]).ok();
    d.cli(&["daemon", "start", "--listen", "127.0.0.1:0"])
        .fails(1, "already_running");
    d.cli(&["daemon", "stop"]).ok();
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(gone, "background daemon exited");
}

#[test]
fn refuses_non_loopback_without_allow_remote() {
    let home = tmp_path();
    let r = run_cli(&home, &["daemon", "run", "--listen", "0.0.0.0:0"], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--allow-remote"), "{}", r.stderr);
    let r = run_cli(
        &home,
        &[
            "daemon",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--stale-after",
            "soon",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "bad flag values are usage errors");
    assert!(r.stderr.contains("soon"));
}

#[tokio::test]
async fn doctor_events_and_trace() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    d.peer("bob", None).await;
    let r = d.cli(&["doctor", "--json"]);
    let v = r.ok().json();
    assert_eq!(v["ok"], true, "{v}");
    let text = d.cli(&["doctor"]);
    assert!(text.ok().stdout.contains("token permissions"));
    // A world-readable token is reported.
    let tok = d.home_path().join("token");
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o644)).unwrap();
    d.cli(&["doctor"]).fails(1, "doctor");
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Follow the stream, then cause an event.
    let mut follow = cli_command(
        d.home_path(),
        &["events", "--follow", "--json", "--tail", "0"],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = alice
        .notify(&NotifyReq {
            to: "bob".into(),
            text: "hi".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a followed event");
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["kind"], "delivery_queued");
    assert_eq!(e["subject"], n.delivery_id.as_str());
    let _ = follow.kill();
    let _ = follow.wait();

    let ev = d.cli(&["events", "--json"]);
    let kinds: Vec<String> = ev
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().into())
        .collect();
    assert!(
        kinds.contains(&"peer_registered".to_string())
            && kinds.contains(&"delivery_queued".to_string())
    );
    let tr = d.cli(&["trace", &n.delivery_id]);
    assert!(tr.ok().stdout.contains("delivery_queued"));
    d.cli(&["trace", "dlv-01ZZZZZZZZZZZZZZZZZZZZZZZZ"])
        .fails(1, "not_found");
}

#[tokio::test]
async fn event_log_retention_by_count() {
    let d = Daemon::start(&["--event-max-count", "20"]);
    let alice = d.peer("alice", None).await;
    d.peer("bob", None).await;
    for i in 0..30 {
        alice
            .notify(&NotifyReq {
                to: "bob".into(),
                text: format!("{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Retention runs on the first background tick and then every 60 ticks (6 s here).
    eventually(Duration::from_secs(20), "retention", || async {
        let ev = d.admin().events(Some(0), None, None).await.unwrap().events;
        (ev.len() <= 20).then_some(())
    })
    .await;
    // Deliveries are state, not log: all 30 are still there.
    let bob = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("bob".into()));
    assert_eq!(bob.peek(100).await.unwrap().deliveries.len(), 30);
}

#[test]
fn demo_runs_end_to_end() {
    let home = tmp_path();
    let r = run_cli(&home, &["demo"], &[]);
    r.ok();
    for want in [
        "orchestrator",
        "role_held",
        "ask_closed",
        "queued_offline=true",
        "carol's inbox",
        "persona cross_review",
        "never the author",
        "check-in sent 1 message",
        "daemon stopped",
    ] {
        assert!(
            r.stdout.contains(want),
            "demo output lacks {want:?}:\n{}",
            r.stdout
        );
    }
    let r = run_cli(&home, &["demo", "--json"], &[]);
    assert!(r.ok().json()["steps"].as_array().unwrap().len() >= 5);
}

#[test]
fn help_explains_commands() {
    let home = tmp_path();
    // Subcommand names as listed under "Commands:" (first word of each line).
    let listed = |args: &[&str]| -> Vec<String> {
        let r = run_cli(&home, args, &[]);
        r.ok();
        let section = r
            .stdout
            .split("Commands:\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        section
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let top = listed(&["--help"]);
    for cmd in [
        "daemon",
        "peer",
        "orchestrator",
        "trace",
        "events",
        "doctor",
        "demo",
    ] {
        assert!(top.iter().any(|c| c == cmd), "--help lists {cmd}: {top:?}");
    }
    let peer = listed(&["peer", "--help"]);
    for cmd in [
        "register",
        "list",
        "whoami",
        "describe",
        "set-description",
        "heartbeat",
        "unregister",
        "prune",
        "claim-role",
        "release-role",
        "ask",
        "ask-many",
        "asks",
        "ack",
        "answer",
        "wait",
        "notify",
        "broadcast",
        "inbox",
    ] {
        assert!(
            peer.iter().any(|c| c == cmd),
            "peer --help lists {cmd}: {peer:?}"
        );
    }
    let daemon = listed(&["daemon", "--help"]);
    for cmd in ["run", "start", "status", "stop"] {
        assert!(
            daemon.iter().any(|c| c == cmd),
            "daemon --help lists {cmd}: {daemon:?}"
        );
    }
    let r = run_cli(&home, &["peer", "frobnicate"], &[]);
    assert_eq!(r.code, 2);
}

/// A blocking ask (`wait_ms`) cut short by a graceful stop is answered
/// with the ask still open, so the asker keeps its id; the ask survives the
/// restart and is answered.
#[tokio::test]
async fn a_blocking_ask_cut_short_by_a_stop_keeps_its_id() {
    let mut d = Daemon::start(&[]);
    let (alice_t, bob_t) = (
        d.peer_token("alice", None).await,
        d.peer_token("bob", None).await,
    );
    let alice = Client::new(&d.url, Some(alice_t.clone()), None);
    let bob = Client::new(&d.url, Some(bob_t.clone()), None);
    let asking = {
        let alice = alice.clone();
        tokio::spawn(async move {
            alice
                .ask(&repowire::api::AskReq {
                    to: "bob".into(),
                    text: "still there?".into(),
                    wait_ms: Some(600_000),
                    ..Default::default()
                })
                .await
        })
    };
    eventually(Duration::from_secs(10), "the ask", || async {
        let open = bob.list_asks("received", true, 10).await.unwrap();
        (!open.is_empty()).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    assert_eq!(d.signal_and_wait("-TERM").code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(9));
    let r = asking.await.unwrap().unwrap();
    assert_eq!(r.done, Some(false));
    assert_eq!(r.ask.state, repowire::core::ask::AskState::Queued);
    d.spawn();
    let alice = Client::new(&d.url, Some(alice_t), None);
    let bob = Client::new(&d.url, Some(bob_t), None);
    bob.answer(&r.ask.correlation_id, "yes").await.unwrap();
    let w = alice
        .wait(&r.ask.correlation_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(w.ask.answer.as_deref(), Some("yes"));
}

/// `peer ask --wait` whose daemon stops and does not come back within the
/// wait: the ask was sent, so the failure names it.
#[tokio::test]
async fn a_cli_blocking_ask_whose_daemon_is_gone_names_the_ask() {
    let mut d = Daemon::start(&[]);
    let bob = d.peer("bob", None).await;
    d.cli(&["peer", "register", "alice"]).ok();
    let args = [
        "--as",
        "alice",
        "peer",
        "ask",
        "bob",
        "still there?",
        "--wait",
        "4s",
    ];
    let asking = cli_command(d.home_path(), &args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = eventually(Duration::from_secs(10), "the ask", || async {
        let open = bob.list_asks("received", true, 10).await.unwrap();
        open.first().map(|a| a.correlation_id.clone())
    })
    .await;
    assert_eq!(d.signal_and_wait("-TERM").code(), Some(0));
    let out: Run = asking.wait_with_output().unwrap().into();
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains(&id), "{}", out.stderr);
    assert!(out.stderr.contains("peer wait"), "{}", out.stderr);
}

#[tokio::test]
async fn graceful_stop_does_not_wait_for_long_polls() {
    let mut d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let id = alice
        .ask(&repowire::api::AskReq {
            to: "bob".into(),
            text: "q".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .ask
        .correlation_id;
    let waiting = tokio::spawn(async move { alice.wait(&id, Duration::from_secs(600)).await });
    bob.lease(&Default::default()).await.unwrap();
    let polling = tokio::spawn(async move {
        bob.lease(&repowire::api::LeaseReq {
            wait_ms: Some(600_000),
            ..Default::default()
        })
        .await
    });
    let admin = d.admin();
    let stream = admin.event_stream(None, Some(0), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let st = d.signal_and_wait("-TERM");
    assert_eq!(st.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "stopped without waiting out the polls"
    );
    // The long-polls were answered (not cut off): the wait is told why.
    let w = waiting.await.unwrap();
    assert_eq!(code_of(w), repowire::core::ErrorCode::ShuttingDown);
    assert!(polling.await.unwrap().unwrap().deliveries.is_empty());
    drop(stream);
}
