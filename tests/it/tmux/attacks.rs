//! The tmux route as an attacker would use it: pointing a peer's
//! deliveries at a pane it cannot reach (another user's shell), a pane id
//! that a restarted server gave to someone else, a window whose panes are
//! synchronised. Each must type nothing where it does not belong; each test
//! also shows the same pane does get the text once the way is legitimate,
//! so a test that types nothing for another reason fails.

use super::support::*;
use crate::support::*;
use repowire::core::ErrorCode;
use repowire::core::tmux::new_claim;

/// A pane that logs every line typed into it; its pane id and log.
fn logger(srv: &Server, dir: &Path, name: &str) -> (String, PathBuf) {
    let log = dir.join(name);
    (srv.window(&logger_cmd(&log)), log)
}

async fn note_to(from: &Client, to: &str, text: &str) -> String {
    from.notify(&NotifyReq {
        to: to.into(),
        text: text.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .delivery_id
}

/// A peer may not point its route at a pane it did not claim: without a
/// claim, with a made-up one, with one set on its own pane, the route is
/// refused (`pane_unverified`), nothing is recorded, the pane is not bound
/// and nothing is typed there. A claim set on that pane (which takes access
/// to its server) is accepted, and then the pane gets the text.
#[tokio::test]
async fn a_route_to_a_pane_not_claimed_is_refused_and_nothing_is_typed_there() {
    let d = Daemon::start(&["--tmux-check-every", "500ms", "--tmux-quiet", "100ms"]);
    let srv = Server::start();
    let logs = tempfile::tempdir().unwrap();
    let (victim, log) = logger(&srv, logs.path(), "victim");
    let own = srv.window("sleep 600");
    let route = format!("tmux:{}:{victim}", srv.socket());
    let mallory = Client::new(&d.url, Some(d.peer_token("mallory", None).await), None);
    let alice = d.peer("alice", None).await;
    let req = |claim: Option<String>| RegisterReq {
        name: "mallory".into(),
        route: Some(route.clone()),
        tmux_claim: claim,
        ..Default::default()
    };
    let attempts = [
        (None, ErrorCode::PaneUnverified),
        (Some(new_claim()), ErrorCode::PaneUnverified),
        (Some(srv.claim(&own)), ErrorCode::PaneUnverified),
        (Some("}#{pane_id} #(true)".into()), ErrorCode::BadRequest),
    ];
    for (claim, code) in attempts {
        let e = mallory.register(&req(claim.clone())).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "claim {claim:?}: {e}");
    }
    // A claim serves one registration, even one refused after it was
    // checked (alice's name is taken): it cannot be used again.
    let used = srv.claim(&victim);
    let e = d
        .admin()
        .register(&RegisterReq {
            name: "alice".into(),
            route: Some(route.clone()),
            tmux_claim: Some(used.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NameTaken), "{e}");
    let e = mallory.register(&req(Some(used))).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PaneUnverified), "{e}");
    // A socket path through a symbolic link (which could be re-pointed
    // between a check and an action) is refused, claim or not.
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("sock");
    std::os::unix::fs::symlink(srv.socket(), &link).unwrap();
    let e = mallory
        .register(&RegisterReq {
            name: "mallory".into(),
            route: Some(format!("tmux:{}:{victim}", link.display())),
            tmux_claim: Some(srv.claim(&victim)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PaneUnverified), "{e}");
    // Nor may the admin create a peer with that route.
    let e = d
        .admin()
        .register(&RegisterReq {
            name: "eve".into(),
            route: Some(route.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PaneUnverified), "{e}");
    let e = d.admin().describe("eve", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownPeer), "{e}");
    assert_eq!(
        d.admin().describe("mallory", None).await.unwrap().route,
        "pull"
    );
    assert_eq!(srv.field(&victim, "#{@repowire_peer}"), "");

    let marks = tempfile::tempdir().unwrap();
    let n = note_to(
        &alice,
        "mallory",
        &format!("; touch {}/ran", marks.path().display()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(read_lines(&log).is_empty(), "{:?}", read_lines(&log));
    assert!(!confirmed(&d, &n));

    // The same pane, claimed by a process that can reach its server.
    let ok = mallory
        .register(&req(Some(srv.claim(&victim))))
        .await
        .unwrap();
    assert_eq!(ok.peer.route, route);
    assert_eq!(srv.field(&victim, "#{@repowire_peer}"), ok.peer.peer_id);
    let left = srv.ok(&["show-options", "-p", "-t", &victim]);
    assert_eq!(
        left.matches("@repowire_claim_").count(),
        1,
        "only the symbolic-link attempt's claim, never read, is left: {left}"
    );
    let typed = eventually(Duration::from_secs(10), "the note typed", || async {
        let l = read_lines(&log);
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(
        typed,
        [typed_line(
            DeliveryKind::Notify,
            &n,
            Some("alice"),
            None,
            &format!("; touch {}/ran", marks.path().display())
        )
        .line]
    );
    assert!(
        std::fs::read_dir(marks.path()).unwrap().next().is_none(),
        "a typed text ran"
    );
}

/// A restarted tmux server numbers its panes from the start again: a new
/// pane may get the id a peer recorded. It is not that peer's pane (it is
/// not bound to it): nothing is typed into it, a kill does not close it,
/// and liveness takes the peer offline. (Liveness is slowed here so the
/// carrier meets the reused pane first.)
#[tokio::test]
async fn a_pane_id_reused_after_a_server_restart_is_not_typed_into() {
    let d = Daemon::start(&["--tmux-check-every", "1h", "--tmux-quiet", "100ms"]);
    let srv = Server::start();
    let alice = d.peer("alice", None).await;
    let bob = Agent::start(&srv, &d, "bob").await;
    let n0 = note(&alice, "before the restart").await;
    assert_eq!(
        bob.wait_lines(1, Duration::from_secs(10)).await,
        [note_line(&n0, "before the restart")]
    );
    srv.restart();
    let logs = tempfile::tempdir().unwrap();
    let (pane, log) = logger(&srv, logs.path(), "stranger");
    assert_eq!(pane, bob.pane, "the new server did not reuse the pane id");
    assert_eq!(peer_json(&d, "bob")["status"], "online");
    let n1 = note(&alice, "after the restart").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(read_lines(&log).is_empty(), "{:?}", read_lines(&log));
    assert!(!confirmed(&d, &n1));
    let k = d.cli(&["peer", "kill", "bob", "--json"]).ok().json();
    assert_eq!(k["pane_killed"], false, "{k}");
    assert_eq!(srv.field(&pane, "#{pane_dead}"), "0", "the stranger's pane");
    assert_eq!(peer_json(&d, "bob")["status"], "offline");
}

/// Liveness, at its usual cadence, takes a peer whose pane id now belongs
/// to another session offline (a live pane of that id is not a sign of
/// its life).
#[tokio::test]
async fn liveness_tells_a_reused_pane_from_the_peers_own() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let bob = Agent::start(&srv, &d, "bob").await;
    srv.restart();
    let logs = tempfile::tempdir().unwrap();
    let (pane, _log) = logger(&srv, logs.path(), "stranger");
    assert_eq!(pane, bob.pane);
    let took = offline_after(&d, "bob", Instant::now()).await;
    assert!(took <= GONE_WITHIN, "{took:?}");
    // It stays offline: the reused pane does not bring it back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(peer_json(&d, "bob")["status"], "offline");
}

/// With synchronize-panes on, keys typed into one pane of a window reach
/// them all: nothing is typed until it is off, and then only bob's pane
/// gets the line.
#[tokio::test]
async fn nothing_is_typed_while_the_window_synchronizes_its_panes() {
    let d = Daemon::start(&["--tmux-check-every", "500ms", "--tmux-quiet", "100ms"]);
    let srv = Server::start();
    let alice = d.peer("alice", None).await;
    let bob = Agent::start(&srv, &d, "bob").await;
    let logs = tempfile::tempdir().unwrap();
    let other = logs.path().join("other");
    srv.ok(&["split-window", "-d", "-t", &bob.pane, &logger_cmd(&other)]);
    srv.ok(&[
        "set-option",
        "-w",
        "-t",
        &bob.pane,
        "synchronize-panes",
        "on",
    ]);
    assert_eq!(srv.field(&bob.pane, "#{pane_synchronized}"), "1");
    let n = note(&alice, "for bob alone").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bob.log(), Vec::<String>::new(), "typed while synchronised");
    assert!(read_lines(&other).is_empty());
    assert!(!confirmed(&d, &n));
    srv.ok(&[
        "set-option",
        "-w",
        "-t",
        &bob.pane,
        "synchronize-panes",
        "off",
    ]);
    assert_eq!(
        bob.wait_lines(1, Duration::from_secs(10)).await,
        [note_line(&n, "for bob alone")]
    );
    assert!(read_lines(&other).is_empty(), "{:?}", read_lines(&other));
}

/// A claim is a secret until the daemon used it: it is in no command line
/// (which every user of the machine can read), neither the daemon's tmux
/// calls (they name the option by the claim's hash) nor the CLI's (it hands
/// tmux its command on stdin).
#[tokio::test]
async fn claims_never_show_in_a_command_line() {
    let bin = tempfile::tempdir().unwrap();
    let daemon_log = bin.path().join("daemon-argv");
    let stand_in = tmux_stand_in(
        bin.path(),
        "log-argv.sh",
        &[("ARGV_LOG", daemon_log.to_str().unwrap().to_string())],
    );
    let d = Daemon::start(&["--tmux-bin", stand_in.to_str().unwrap()]);
    let srv = Server::start();
    let pane = srv.window("sleep 600");
    let claim = srv.claim(&pane);
    let r = d
        .admin()
        .register(&RegisterReq {
            name: "bob".into(),
            route: Some(format!("tmux:{}:{pane}", srv.socket())),
            tmux_claim: Some(claim.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.peer.route.starts_with("tmux:"));
    let argv = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(
        argv.contains("display-message"),
        "the stand-in logged: {argv}"
    );
    assert!(
        !argv.contains(&claim),
        "the claim in the daemon's tmux command line: {argv}"
    );

    // The CLI, with the logging stand-in first in its PATH.
    let cli_bin = tempfile::tempdir().unwrap();
    let cli_log = cli_bin.path().join("cli-argv");
    tmux_stand_in(
        cli_bin.path(),
        "log-argv.sh",
        &[("ARGV_LOG", cli_log.to_str().unwrap().to_string())],
    );
    let path = format!(
        "{}:{}",
        cli_bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let route = format!("tmux:{}:{}", srv.name, srv.window("sleep 600"));
    d.cli_env(
        &["peer", "register", "carol", "--route", &route],
        &[("PATH", path.as_str())],
    )
    .ok();
    let argv = std::fs::read_to_string(&cli_log).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [format!("-L {} source-file - ", srv.name)],
        "the CLI's tmux command lines"
    );
}
