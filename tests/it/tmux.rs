//! The tmux delivery route and pane liveness (issue 13, points 1, 2 and 5),
//! on real tmux. Each test runs its own daemon and its own private tmux
//! server (`tmux -L rw-…`, killed when the test ends, panic or not). A
//! scripted agent (`fixtures/tmux/agent.sh`) registers itself from inside its
//! pane with the CLI, logs every line the daemon types into the pane and
//! answers asks; what must arrive is computed with
//! `repowire::core::tmux::typed_line`, so a test compares bytes, not
//! impressions. Nothing here skips when tmux is missing: it fails, and
//! `.ci/run` installs tmux.

mod attacks;
mod support;

use crate::support::*;
use support::*;

/// Point 1: an agent in tmux registers with the CLI (`--route tmux`: the
/// CLI reads $TMUX and $TMUX_PANE and claims the pane) and its pane becomes
/// its route, bound to its peer; an ask is typed into the pane, leased by the tmux route and
/// confirmed, and the agent answers it from the pane.
#[tokio::test]
async fn an_ask_typed_into_the_pane_is_answered_from_it() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let alice = cli_peer(&d, "alice");
    let bob = Agent::start(&srv, &d, "bob").await;
    // The CLI inside the pane read $TMUX and $TMUX_PANE.
    let want_route = format!("tmux:{}:{}", srv.socket(), bob.pane);
    assert_eq!(bob.route, want_route);
    assert_eq!(
        d.cli(&["peer", "describe", "bob", "--json"]).ok().json()["route"],
        want_route.as_str()
    );
    // Bound: the pane names its peer, and the claim is gone.
    assert_eq!(srv.field(&bob.pane, "#{@repowire_peer}"), bob.peer_id);
    let opts = srv.ok(&["show-options", "-p", "-t", &bob.pane]);
    assert!(!opts.contains("@repowire_claim_"), "{opts}");

    let text = "which branch holds the parser fix?";
    let r = d
        .cli_env(
            &["peer", "ask", "bob", text, "--json"],
            &[("REPOWIRE_PEER_TOKEN", &alice)],
        )
        .ok()
        .json();
    let id = r["ask"]["correlation_id"].as_str().unwrap().to_string();
    let dl = r["delivery_id"].as_str().unwrap().to_string();
    let w = d.cli_env(
        &["peer", "wait", &id, "--timeout", "30s"],
        &[("REPOWIRE_PEER_TOKEN", &alice)],
    );
    assert_eq!(
        w.ok().stdout.trim(),
        format!("bob got {id}"),
        "pane log: {:?}",
        bob.log()
    );
    assert_eq!(
        bob.log(),
        [typed_line(DeliveryKind::Ask, &dl, Some("alice"), Some(&id), text).line]
    );
    assert_carried_by_tmux(&d, &dl);
    let t = trace(&d, &id);
    let k = kinds(&t);
    let pos = |w: &str| k.iter().position(|x| *x == w);
    assert!(
        pos("ask_delivered").is_some() && pos("ask_delivered") < pos("ask_answered"),
        "{k:?}"
    );
}

/// Point 1 (what is typed): hostile texts arrive as one literal line each,
/// exactly `typed_line`, in order; nothing runs, the agent's loop survives,
/// the pane's title and the server are untouched; a 100 KB text is typed as
/// a summary and `peer delivery` prints it whole.
#[tokio::test]
async fn hostile_texts_arrive_as_literal_lines_and_nothing_else_happens() {
    let d = Daemon::start(&[
        "--tmux-check-every",
        "500ms",
        "--tmux-quiet",
        "100ms",
        "--max-message-bytes",
        "200000",
    ]);
    let srv = Server::start();
    let alice = d.peer("alice", None).await;
    let bob = Agent::start(&srv, &d, "bob").await;
    let title = srv.field(&bob.pane, "#{pane_title}");
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display().to_string();

    let c0c1: String = (1u32..0x20)
        .chain([0x7f])
        .chain(0x80..0xa0)
        .map(|c| char::from_u32(c).unwrap())
        .chain("ok".chars())
        .collect();
    let mut big = String::new();
    let mut i = 0;
    while big.len() < 100 * 1024 {
        big.push_str(&format!(
            "line {i:05}: é 中 🚀 $(touch {m}/big) `x` ; C-c #{{pane_id}} the quick brown fox\n"
        ));
        i += 1;
    }
    big.push_str("the end");
    let texts: Vec<String> = vec![
        "\x1b[2J\x1b[H screen cleared?".into(),
        "\x1b]0;pwned-title\x07 title set?".into(),
        "\x1b]2;pwned-title\x1b\\ title set (ST)?".into(),
        format!("; touch {m}/semicolon"),
        format!("$(touch {m}/subst)"),
        format!("`touch {m}/backtick`"),
        "C-c".into(),
        "Enter".into(),
        format!("#{{pane_id}} #(touch {m}/format)"),
        "a text ending in ;".into(),
        r"a text ending in \;".into(),
        "-l -- -t %0 send-keys C-d q".into(),
        "a\nb\r\nc".into(),
        c0c1,
        "\u{202e}evil\u{202c} \u{2066}isolate\u{2069} \u{200f}rtl\u{200e} \u{2028}sep\u{2029}"
            .into(),
        big.clone(),
    ];
    let mut ids = Vec::new();
    for t in &texts {
        ids.push(note(&alice, t).await);
    }
    let log = bob.wait_lines(texts.len(), Duration::from_secs(60)).await;
    let want: Vec<String> = ids
        .iter()
        .zip(&texts)
        .map(|(id, t)| note_line(id, t))
        .collect();
    for (n, (got, want)) in log.iter().zip(&want).enumerate() {
        assert_eq!(
            got,
            want,
            "note {n} ({:?})",
            &texts[n].chars().take(40).collect::<String>()
        );
    }
    assert_eq!(log.len(), texts.len(), "one line per note: {log:#?}");
    let summary = want.last().unwrap();
    assert!(
        summary.ends_with(&format!(
            "the whole text: repowire peer delivery {})",
            ids.last().unwrap()
        )),
        "{summary}"
    );
    for id in &ids {
        assert_carried_by_tmux(&d, id);
    }
    // Nothing ran.
    let ran: Vec<_> = std::fs::read_dir(marks.path()).unwrap().collect();
    assert!(ran.is_empty(), "a typed text ran a command: {ran:?}");
    assert!(!bob.path("ended").exists(), "the agent's read loop ended");
    // The loop is still alive: it answers an ask.
    let ask = alice
        .ask(&AskReq {
            to: "bob".into(),
            text: "still there?".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = ask.ask.correlation_id;
    let w = alice.wait(&id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        w.ask.answer.as_deref(),
        Some(format!("bob got {id}").as_str())
    );
    // The pane and the server are unaffected.
    assert_eq!(srv.field(&bob.pane, "#{pane_title}"), title);
    assert_eq!(srv.field(&bob.pane, "#{pane_dead} #{pane_in_mode}"), "0 0");
    srv.ok(&["ls"]);
    // The whole 100 KB text, to the recipient.
    let whole = d.cli_env(&["peer", "delivery", ids.last().unwrap()], &bob.env());
    whole.ok();
    assert_eq!(
        whole.stdout.len(),
        big.len() + 1,
        "{} bytes",
        whole.stdout.len()
    );
    assert!(whole.stdout == format!("{big}\n"), "not byte-exact");
    let exact = d.cli_env(
        &["peer", "delivery", ids.last().unwrap(), "--json"],
        &bob.env(),
    );
    assert!(
        exact.ok().json()["text"] == big.as_str(),
        "--json text is not the text"
    );
    // Not to a third peer.
    let carol = d.peer_token("carol", None).await;
    let other = d.cli_env(
        &["peer", "delivery", ids.last().unwrap()],
        &[("REPOWIRE_PEER_TOKEN", &carol)],
    );
    assert_ne!(
        other.code,
        0,
        "carol read bob's delivery: {}",
        &other.stdout[..other.stdout.len().min(200)]
    );
}

/// How long a test watches that nothing is typed, and how long it allows
/// for typing once nothing holds it back.
const HOLD: Duration = Duration::from_secs(2);
const SOON: Duration = Duration::from_secs(10);

/// Point 1 (when): nothing is typed while the peer says it is busy; it is
/// typed once it says idle.
#[tokio::test]
async fn nothing_is_typed_while_the_agent_is_busy() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let alice = d.peer("alice", None).await;
    let bob = Agent::start(&srv, &d, "bob").await;
    d.cli_env(&["peer", "heartbeat", "--status", "busy"], &bob.env())
        .ok();
    let n1 = note(&alice, "typed only when idle").await;
    tokio::time::sleep(HOLD).await;
    assert_eq!(bob.log(), Vec::<String>::new(), "typed while busy");
    assert!(!confirmed(&d, &n1), "confirmed while busy");
    d.cli_env(&["peer", "heartbeat", "--status", "idle"], &bob.env())
        .ok();
    assert_eq!(
        bob.wait_lines(1, SOON).await,
        [note_line(&n1, "typed only when idle")]
    );
    assert_carried_by_tmux(&d, &n1);
}

/// Hold a note while the pane is in copy mode; once copy mode ends it is
/// typed. `before`: lines already in the log.
async fn held_by_copy_mode(
    d: &Daemon,
    srv: &Server,
    alice: &Client,
    bob: &Agent,
    before: usize,
    text: &str,
) {
    let n = note(alice, text).await;
    tokio::time::sleep(HOLD).await;
    let t = kinds(&trace(d, &n)).join(" ");
    assert_eq!(
        srv.field(&bob.pane, "#{pane_in_mode}"),
        "1",
        "copy mode ended under the carrier: keys were typed into it ({t}; note {})",
        before + 1
    );
    assert_eq!(
        bob.log().len(),
        before,
        "typed in copy mode: {:?}",
        bob.log()
    );
    assert!(!confirmed(d, &n), "confirmed in copy mode: {t}");
    srv.ok(&["send-keys", "-t", &bob.pane, "-X", "cancel"]);
    assert_eq!(
        bob.wait_lines(before + 1, SOON).await[before],
        note_line(&n, text)
    );
    assert_carried_by_tmux(d, &n);
}

/// Point 1 (when): nothing is typed into a pane in copy mode (the keys
/// would drive copy mode, not the agent: a `q` ends it) — whether copy
/// mode began while all was quiet, or right after a delivery (a person
/// scrolling back through what the agent just printed, while the carrier
/// waits out --tmux-quiet before the next one).
#[tokio::test]
async fn nothing_is_typed_into_copy_mode() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let alice = d.peer("alice", None).await;
    let bob = Agent::start(&srv, &d, "bob").await;
    // Entered while nothing is in flight.
    srv.ok(&["copy-mode", "-t", &bob.pane]);
    assert_eq!(srv.field(&bob.pane, "#{pane_in_mode}"), "1");
    held_by_copy_mode(&d, &srv, &alice, &bob, 0, "quit quietly: q q q").await;
    // Entered right after a delivery was typed.
    let n = note(&alice, "look back at this").await;
    assert_eq!(
        bob.wait_lines(2, SOON).await[1],
        note_line(&n, "look back at this")
    );
    srv.ok(&["copy-mode", "-t", &bob.pane]);
    assert_eq!(srv.field(&bob.pane, "#{pane_in_mode}"), "1");
    held_by_copy_mode(&d, &srv, &alice, &bob, 2, "quit again: q q q").await;
}

/// Point 1 (when): nothing is typed while the pane's screen keeps changing
/// (the agent at work); it is typed once the screen has been still.
#[tokio::test]
async fn nothing_is_typed_while_the_screen_changes() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let alice = d.peer("alice", None).await;
    let bob = Agent::start(&srv, &d, "bob").await;
    std::fs::write(bob.path("spin"), "").unwrap();
    eventually(SOON, "the agent to print", || async {
        srv.ok(&["capture-pane", "-p", "-t", &bob.pane])
            .contains("working")
            .then_some(())
    })
    .await;
    let n = note(&alice, "wait for the screen to settle").await;
    tokio::time::sleep(HOLD).await;
    assert_eq!(
        bob.log(),
        Vec::<String>::new(),
        "typed into a changing screen"
    );
    assert!(!confirmed(&d, &n), "confirmed while the screen changed");
    std::fs::remove_file(bob.path("spin")).unwrap();
    assert_eq!(
        bob.wait_lines(1, SOON).await,
        [note_line(&n, "wait for the screen to settle")]
    );
    assert_carried_by_tmux(&d, &n);
}

/// Point 5: a killed pane takes its peer offline within 10 s (default
/// check interval), with a `peer_gone` event; the job it was running goes
/// back to the queue by the executor-lost rule. A killed server does too.
#[tokio::test]
async fn a_killed_pane_or_server_takes_its_peer_offline_and_requeues_its_job() {
    let d = Daemon::start(&[]);
    let srv = Server::start();
    let alice = cli_peer(&d, "alice");
    let bob = Agent::start(&srv, &d, "bob").await;
    let job = d
        .cli_env(
            &[
                "jobs",
                "create",
                "port the parser",
                "--assign",
                "bob",
                "--backoff",
                "1h",
                "--json",
            ],
            &[("REPOWIRE_PEER_TOKEN", &alice)],
        )
        .ok()
        .json();
    let job_id = job["job_id"].as_str().unwrap().to_string();
    assert_eq!(job["assignee"], "bob", "{job}");
    // The job's ask reaches bob's pane.
    let line = bob.wait_lines(1, Duration::from_secs(10)).await.remove(0);
    assert!(
        line.starts_with("[repowire ask from alice ")
            && line.contains(&format!("] Job {job_id}: port the parser")),
        "{line}"
    );
    d.cli_env(
        &["jobs", "update", &job_id, "--state", "running"],
        &bob.env(),
    )
    .ok();
    assert_eq!(peer_json(&d, "bob")["status"], "online");

    srv.ok(&["kill-pane", "-t", &bob.pane]);
    let t0 = Instant::now();
    let took = offline_after(&d, "bob", t0).await;
    assert!(
        took <= GONE_WITHIN,
        "bob went offline {took:?} after its pane was killed"
    );
    assert!(
        has_event(&d, &bob.peer_id, "peer_gone"),
        "{:?}",
        kinds(&trace(&d, &bob.peer_id))
    );
    let j = eventually(
        Duration::from_secs(10),
        "the job back in the queue",
        || async {
            let j = d.cli(&["jobs", "show", &job_id, "--json"]).ok().json();
            (j["state"] == "queued").then_some(j)
        },
    )
    .await;
    // Requeued by the executor-lost rule: attempt 1 lost, the next
    // dispatch is attempt 2.
    assert_eq!(j["error"], "executor_lost", "{j}");
    assert_eq!(j["attempts"], 1, "{j}");
    assert_eq!(j["assignee"], Value::Null, "{j}");
    let lost: Vec<Value> = trace(&d, &job_id)
        .into_iter()
        .filter(|(k, _)| k == "job_executor_lost")
        .map(|(_, e)| e["payload"].clone())
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["assignee"], "bob");
    assert_eq!(lost[0]["requeued"], true);

    // The whole server.
    let srv2 = Server::start();
    let carol = Agent::start(&srv2, &d, "carol").await;
    assert!(carol.route.starts_with("tmux:"), "{}", carol.route);
    srv2.kill();
    let t0 = Instant::now();
    let took = offline_after(&d, "carol", t0).await;
    assert!(
        took <= GONE_WITHIN,
        "carol went offline {took:?} after her server was killed"
    );
    assert!(has_event(&d, &carol.peer_id, "peer_gone"));
}

/// Point 5: `peer prune` removes a peer whose pane is gone, without waiting
/// for it to be stale by age.
#[tokio::test]
async fn a_peer_whose_pane_is_gone_can_be_pruned() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let bob = Agent::start(&srv, &d, "bob").await;
    srv.ok(&["kill-pane", "-t", &bob.pane]);
    offline_after(&d, "bob", Instant::now()).await;
    let r = d.cli(&["peer", "prune", "--json"]).ok().json();
    let pruned: Vec<&str> = r["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pruned, ["bob"], "{r}");
    assert!(
        d.cli(&["peer", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A tmux stand-in (`--tmux-bin`, `fixtures/tmux/fail-typing.sh`) that
/// refuses the first `fails` typing calls, and a daemon using it, with bob
/// registered explicitly (`RegisterReq.route`, socket path form) on a pane
/// that logs what it reads. Returns the daemon, the server, the log path and
/// the temp dirs to keep.
async fn failing_tmux_setup(fails: u32) -> (Daemon, Server, PathBuf, [tempfile::TempDir; 2]) {
    let fake = tempfile::tempdir().unwrap();
    let count = fake.path().join("count").to_str().unwrap().to_string();
    let wrapper = tmux_stand_in(
        fake.path(),
        "fail-typing.sh",
        &[("COUNT", count), ("FAILS", fails.to_string())],
    );
    let d = Daemon::start(&[
        "--tmux-check-every",
        "500ms",
        "--tmux-bin",
        wrapper.to_str().unwrap(),
    ]);
    let srv = Server::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("log");
    let pane = srv.window(&logger_cmd(&log));
    let route = format!("tmux:{}:{pane}", srv.socket());
    let r = d
        .admin()
        .register(&RegisterReq {
            name: "bob".into(),
            route: Some(route.clone()),
            tmux_claim: Some(srv.claim(&pane)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.peer.route, route);
    (d, srv, log, [fake, logs])
}

/// Point 1 (failures): tmux failing is retried with backoff; each failure
/// is a `delivery_failed` event (route tmux, the error, when it is tried
/// again), and the delivery is typed once and confirmed in the end.
#[tokio::test]
async fn a_failing_tmux_is_retried_with_backoff_and_traced() {
    let (d, _srv, log, _keep) = failing_tmux_setup(2).await;
    let alice = d.peer("alice", None).await;
    let text = "typed once, after two failures";
    let dl = note(&alice, text).await;
    eventually(Duration::from_secs(30), "the note confirmed", || async {
        confirmed(&d, &dl).then_some(())
    })
    .await;
    assert_eq!(read_lines(&log), [note_line(&dl, text)]);
    let t = trace(&d, &dl);
    let failed: Vec<&Value> = t
        .iter()
        .filter(|(k, _)| k == "delivery_failed")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(failed.len(), 2, "{:?}", kinds(&t));
    let mut last_retry = 0;
    for (n, e) in failed.iter().enumerate() {
        let p = &e["payload"];
        assert_eq!(p["route"], "tmux", "{e}");
        assert_eq!(p["to"], "bob", "{e}");
        assert_eq!(p["attempt"], n as i64 + 1, "{e}");
        assert!(
            p["error"]
                .as_str()
                .unwrap()
                .contains(&format!("typing refused ({} of 2)", n + 1)),
            "{e}"
        );
        let retry = p["retry_in_ms"].as_i64().unwrap();
        assert!(retry > 0 && retry >= last_retry, "no backoff: {e}");
        last_retry = retry;
        // The next try waited at least as long as announced.
        let next = t
            .iter()
            .map(|(_, x)| x)
            .find(|x| x["seq"].as_i64() > e["seq"].as_i64() && x["kind"] == "delivery_leased")
            .unwrap_or_else(|| panic!("no lease after {e}: {:?}", kinds(&t)));
        let waited = next["ts_ms"].as_i64().unwrap() - e["ts_ms"].as_i64().unwrap();
        assert!(
            waited + 50 >= retry,
            "retried after {waited} ms, announced {retry}: {e}"
        );
    }
    assert_carried_by_tmux(&d, &dl);
    let k = kinds(&t);
    assert!(
        k.iter().rposition(|x| *x == "delivery_failed")
            < k.iter().position(|x| *x == "delivery_confirmed"),
        "{k:?}"
    );
}

/// Typing is only for a program that reads lines as messages: a shell
/// prompt would run them (`[repowire note from alice] ; touch X` runs
/// `touch X`). A peer registered with `--route tmux` from a shell prompt
/// (as a person does) is bound to the foreground the pane had then (the
/// CLI's own): once the prompt is back, its deliveries are not typed into
/// that shell, nor confirmed as seen.
#[tokio::test]
async fn nothing_is_typed_into_a_shell_prompt() {
    let d = Daemon::start(&["--tmux-check-every", "500ms"]);
    let srv = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display().to_string();
    let pane = srv.window("sh -i");
    let reg = dir.path().join("register.json");
    let line = format!(
        "{} --home {} peer register bob --route tmux --json > {}",
        sh_quote(BIN),
        sh_quote(d.home_path().to_str().unwrap()),
        sh_quote(reg.to_str().unwrap())
    );
    srv.ok(&["send-keys", "-t", &pane, "-l", "--", &line]);
    srv.ok(&["send-keys", "-t", &pane, "Enter"]);
    let v = eventually(
        Duration::from_secs(20),
        "register from the shell",
        || async {
            let s = std::fs::read_to_string(&reg).ok()?;
            serde_json::from_str::<Value>(&s).ok()
        },
    )
    .await;
    let route = v["peer"]["route"].as_str().unwrap().to_string();
    assert_eq!(route, format!("tmux:{}:{pane}", srv.socket()));
    let alice = d.peer("alice", None).await;
    let ids = [
        note(&alice, &format!("; touch {m}/semicolon")).await,
        note(&alice, &format!("$(touch {m}/subst)")).await,
        note(&alice, &format!("`touch {m}/backtick`")).await,
    ];
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ran: Vec<_> = std::fs::read_dir(marks.path()).unwrap().collect();
    assert!(
        ran.is_empty(),
        "deliveries typed into a shell prompt ran commands (route {route}): {ran:?}\n{}",
        srv.ok(&["capture-pane", "-p", "-t", &pane])
    );
    for id in &ids {
        assert!(!confirmed(&d, id), "{id} confirmed (route {route})");
    }
}

/// A tmux-routed peer that never heartbeats is not stale while its pane
/// exists (a pull peer registered with it is, so the threshold bites); once
/// the pane is gone it is offline. The route here is given explicitly with
/// the CLI, in the socket name (`-L`) form.
#[tokio::test]
async fn a_live_pane_is_a_sign_of_life() {
    let d = Daemon::start(&[
        "--manual-clock",
        "--stale-after",
        "2s",
        "--tmux-check-every",
        "500ms",
    ]);
    let srv = Server::start();
    let pane = srv.window("sleep 600");
    let route = format!("tmux:{}:{pane}", srv.name);
    let v = d
        .cli(&["peer", "register", "bob", "--route", &route, "--json"])
        .ok()
        .json();
    assert_eq!(v["peer"]["route"], route.as_str());
    cli_peer(&d, "carol");
    // Past the stale threshold, without sleeping: neither has heartbeated
    // since; bob's pane is checked again every 500 ms.
    d.advance_clock(4_000).await;
    let carol = peer_json(&d, "carol");
    assert!(
        carol["stale"] == true,
        "the control peer is not stale: {carol}"
    );
    eventually(
        Duration::from_secs(10),
        "bob's pane to count as life",
        || async {
            let bob = peer_json(&d, "bob");
            (bob["stale"] == false && bob["ghost"] == false && bob["status"] != "offline")
                .then_some(())
        },
    )
    .await;
    srv.ok(&["kill-pane", "-t", &pane]);
    let took = offline_after(&d, "bob", Instant::now()).await;
    assert!(took <= GONE_WITHIN, "{took:?}");
}

/// `peer register --route tmux` records the pane it runs in ($TMUX names
/// the socket, $TMUX_PANE the pane) and claims it with its own access to
/// that server; without `--route` the route stays pull even inside tmux
/// (typing is opt-in); outside tmux `--route tmux` is refused, and a pane
/// the CLI cannot reach is refused too — neither recorded as something else.
#[test]
fn register_route_tmux_records_this_pane() {
    let d = Daemon::start(&[]);
    let srv = Server::start();
    let pane = srv.window("sleep 600");
    let tmux = format!("{},1,0", srv.socket());
    let env = [("TMUX", tmux.as_str()), ("TMUX_PANE", pane.as_str())];
    let v = d
        .cli_env(&["peer", "register", "dave", "--json"], &env)
        .ok()
        .json();
    assert_eq!(v["peer"]["route"], "pull", "typing into a pane is opt-in");
    let v = d
        .cli_env(
            &["peer", "register", "bob", "--route", "tmux", "--json"],
            &env,
        )
        .ok()
        .json();
    assert_eq!(v["peer"]["route"], format!("tmux:{}:{pane}", srv.socket()));
    assert_eq!(
        srv.field(&pane, "#{@repowire_peer}"),
        v["peer"]["peer_id"].as_str().unwrap()
    );
    let r = d.cli(&["peer", "register", "carol", "--route", "tmux"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("inside tmux"), "{}", r.stderr);
    let gone = [
        ("TMUX", "/tmp/rw-no-such-tmux/sock,4242,0"),
        ("TMUX_PANE", "%7"),
    ];
    d.cli_env(&["peer", "register", "erin", "--route", "tmux"], &gone)
        .fails(1, "tmux_failed");
    assert_eq!(
        d.peer_names(),
        ["bob", "dave"],
        "carol or erin was registered anyway"
    );
}
