//! Personas through the real CLI, offline: every shipped persona against
//! fixtures (insta snapshots of the routes), check/new/list/path/show, and
//! fallback on broken scripts.

use crate::support::*;
use std::path::PathBuf;

const SHIPPED: [&str; 5] = [
    "default",
    "round_robin",
    "skills",
    "cross_review",
    "follow_the_sun",
];

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/personas")
        .join(name)
        .display()
        .to_string()
}

fn route(
    home: &std::path::Path,
    persona: &str,
    mesh: &str,
    flag: &str,
    input: &str,
) -> serde_json::Value {
    let r = run_cli(
        home,
        &[
            "orchestrator",
            "persona",
            "test",
            persona,
            "--fixture",
            &fixture(mesh),
            flag,
            &fixture(input),
        ],
        &[],
    );
    r.ok().json()
}

#[test]
fn shipped_personas_route_the_fixtures() {
    let home = tmp_path();
    for persona in SHIPPED {
        let mut all = serde_json::Map::new();
        for mesh in ["team.json", "night.json", "empty.json"] {
            for (flag, input) in [
                ("--job", "job_api.json"),
                ("--job", "job_docs.json"),
                ("--review", "review_risky.json"),
                ("--review", "review_plain.json"),
            ] {
                let v = route(&home, persona, mesh, flag, input);
                assert_eq!(v["fallback"], false, "{persona} {mesh} {input}: {v}");
                all.insert(format!("{mesh} {input}"), v);
            }
        }
        insta::assert_json_snapshot!(format!("persona_{persona}"), all);
    }
}

#[test]
fn new_list_path_show_check_and_user_override() {
    let home = tmp_path();
    let r = run_cli(&home, &["orchestrator", "persona", "new", "mine"], &[]);
    assert!(r.ok().stdout.contains("mine.lua"));
    run_cli(&home, &["orchestrator", "persona", "new", "mine"], &[]).fails(1, "exists");
    run_cli(&home, &["orchestrator", "persona", "check", "mine"], &[]).ok();
    // The starter answers a fixture.
    let v = route(&home, "mine", "team.json", "--job", "job_api.json");
    assert_eq!(v["route"], "assign");
    assert_eq!(v["peer"], "alice");
    // A user file of a shipped name overrides it.
    run_cli(
        &home,
        &[
            "orchestrator",
            "persona",
            "new",
            "default",
            "--from",
            "round_robin",
        ],
        &[],
    )
    .ok();
    let list = run_cli(&home, &["orchestrator", "persona", "list", "--json"], &[]);
    let rows = list.ok().json();
    let row = |n: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(row("default")["source"], "user");
    assert_eq!(row("skills")["source"], "shipped");
    assert_eq!(
        row("mine")["entry_points"],
        serde_json::json!(["dispatch", "review"])
    );
    assert_eq!(row("skills")["sha256"].as_str().unwrap().len(), 64);
    let path = run_cli(&home, &["orchestrator", "persona", "path", "skills"], &[]);
    assert!(path.ok().stdout.contains("personas/skills.lua"));
    let show = run_cli(&home, &["orchestrator", "persona", "show", "default"], &[]);
    assert!(
        show.ok().stdout.contains("round_robin"),
        "the user's copy is shown"
    );
    std::fs::write(home.join("personas/mine.md"), "Terse. Prefers small PRs.").unwrap();
    let show = run_cli(&home, &["orchestrator", "persona", "show", "mine"], &[]);
    assert!(show.ok().stdout.contains("Prefers small PRs"));
    run_cli(&home, &["orchestrator", "persona", "show", "nope"], &[]).fails(1, "persona");
}

#[test]
fn broken_scripts_are_reported_with_file_and_line_and_fall_back() {
    let home = tmp_path();
    let dir = home.join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.lua"),
        "function dispatch(job, mesh)\n  return route.assign(\nend\n",
    )
    .unwrap();
    let r = run_cli(&home, &["orchestrator", "persona", "check", "broken"], &[]);
    r.fails(1, "persona_error");
    assert!(r.stderr.contains("broken.lua:3"), "{}", r.stderr);
    // `test` still answers, from the built-in policy, and says why.
    let v = route(&home, "broken", "team.json", "--job", "job_api.json");
    assert_eq!(v["fallback"], true);
    assert!(v["error"].as_str().unwrap().contains("broken.lua:3"), "{v}");
    assert_eq!(v["peer"], "alice");
    // A route the core refuses: the author reviewing their own change.
    let file = dir.join("selfie.lua");
    std::fs::write(
        &file,
        "function review(item, mesh)\n  return route.assign(item.author)\nend\n",
    )
    .unwrap();
    let v = route(
        &home,
        file.to_str().unwrap(),
        "team.json",
        "--review",
        "review_risky.json",
    );
    assert_eq!(v["fallback"], true);
    assert!(v["error"].as_str().unwrap().contains("author"), "{v}");
    // Lint: a misspelt entry point, and a path that returns nothing.
    std::fs::write(dir.join("lint.lua"), "function dispatch(job, mesh)\n  if #job.tags > 5 then return route.decline('big') end\nend\nfunction reviw(item, mesh) end\n").unwrap();
    let r = run_cli(
        &home,
        &["orchestrator", "persona", "check", "lint", "--json"],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("\"persona_lint\""), "{}", r.stderr);
    let problems = r.json()["problems"].to_string();
    assert!(problems.contains("did you mean `review`"), "{problems}");
    assert!(problems.contains("returned nothing"), "{problems}");
    // Bad fixtures are clear errors.
    std::fs::write(
        home.join("bad.json"),
        "{\"peers\": [{\"name\": \"a\", \"peer_id\": \"x\"}]}",
    )
    .unwrap();
    let r = run_cli(
        &home,
        &[
            "orchestrator",
            "persona",
            "test",
            "default",
            "--fixture",
            home.join("bad.json").to_str().unwrap(),
            "--job",
            &fixture("job_api.json"),
        ],
        &[],
    );
    r.fails(1, "bad_fixture");
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

async fn wait_event(d: &Daemon, kind: &str, after: i64) -> serde_json::Value {
    let admin = d.admin();
    eventually(std::time::Duration::from_secs(15), kind, || async {
        let ev = admin.events(Some(after), None, None).await.unwrap().events;
        ev.into_iter()
            .find(|e| e.kind == kind)
            .map(|e| serde_json::to_value(e).unwrap())
    })
    .await
}

fn job_req(tags: &[&str]) -> repowire::api::DecideReq {
    serde_json::from_value(serde_json::json!({"job": {"id": "j1", "title": "t", "tags": tags}}))
        .unwrap()
}

#[tokio::test]
async fn use_status_decide_and_views_without_identity_internals() {
    let d = Daemon::start(&[]);
    let alice_t = d.peer_token("alice", None).await;
    let bob_t = d.peer_token("bob", None).await;
    let alice = d.admin().with_identity(Some(alice_t.clone()), None);
    let bob = d.admin().with_identity(Some(bob_t.clone()), None);
    // Only the admin or the circle's orchestrator may change the persona.
    let as_bob = [("REPOWIRE_PEER_TOKEN", bob_t.as_str())];
    let as_alice = [("REPOWIRE_PEER_TOKEN", alice_t.as_str())];
    d.cli_env(&["orchestrator", "persona", "use", "skills"], &as_bob)
        .fails(1, "forbidden");
    d.cli_env(&["peer", "claim-role", "orchestrator"], &as_alice)
        .ok();
    d.cli_env(
        &[
            "orchestrator",
            "persona",
            "use",
            "skills",
            "--circle",
            "ops",
        ],
        &as_alice,
    )
    .fails(1, "cross_circle");
    let r = d.cli_env(
        &["orchestrator", "persona", "use", "round_robin", "--json"],
        &as_alice,
    );
    let v = r.ok().json();
    assert_eq!(v["persona"], "round_robin");
    assert_eq!(v["source"], "shipped");
    d.cli(&["orchestrator", "persona", "use", "nope"])
        .fails(1, "unknown_persona");
    let st = d.cli(&["orchestrator", "status", "--json"]).ok().json();
    assert_eq!(st["persona"]["name"], "round_robin");
    let list = d.cli(&["orchestrator", "persona", "list"]);
    assert!(
        list.ok()
            .stdout
            .lines()
            .any(|l| l.starts_with('*') && l.contains("round_robin")),
        "{}",
        list.stdout
    );

    // Decisions over the live mesh: round robin takes turns (between the
    // agents: alice is the orchestrator now).
    d.peer("dan", None).await;
    let a = alice.decide(&job_req(&[])).await.unwrap();
    let b = alice.decide(&job_req(&[])).await.unwrap();
    assert_eq!(a.persona.as_deref(), Some("round_robin"));
    assert_ne!(a.route.peer, b.route.peer, "{a:?} {b:?}");
    let st = bob.persona_status(None).await.unwrap();
    assert_eq!(st.decisions, 2);
    assert_eq!(st.identity, None);
    assert!(st.p99_us.is_some() && st.generation.is_some());

    // A persona that dumps everything it can reach sees no ids, tokens or paths.
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir.join("snoop.lua"),
        r#"function dispatch(job, mesh)
  local out = {}
  for _, p in ipairs(mesh.peers()) do
    for _, k in ipairs({"name","circle","role","backend","status","load","description","last_seen_age_s","id","peer_id","token","pid","pane","project_path","route"}) do
      table.insert(out, k .. "=" .. tostring(p[k]))
    end
    table.insert(out, "tags=" .. table.concat(p.tags, ","))
  end
  for k, v in pairs(mesh) do table.insert(out, "mesh." .. tostring(k)) end
  return route.ask_user(table.concat(out, " "))
end"#,
    );
    let admin = d.admin();
    admin
        .register(&repowire::api::RegisterReq {
            name: "carol".into(),
            project_path: Some("/secret/project".into()),
            tags: Some(vec!["rust".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    d.cli(&["orchestrator", "persona", "use", "snoop"]).ok();
    let r = admin.decide(&job_req(&[])).await.unwrap();
    let seen = r.route.text.unwrap();
    assert!(
        seen.contains("name=carol") && seen.contains("tags=rust"),
        "{seen}"
    );
    for secret in ["peer-", "rw_", "/secret/project", d.admin_token().as_str()] {
        assert!(!seen.contains(secret), "the view leaked {secret:?}: {seen}");
    }
    for k in [
        "id",
        "peer_id",
        "token",
        "pid",
        "pane",
        "project_path",
        "route",
    ] {
        assert!(
            seen.contains(&format!(" {k}=nil")),
            "{k} is not in the view: {seen}"
        );
    }

    // Bombs are stopped within budget; the daemon keeps serving.
    for (name, body) in [
        ("spin", "while true do end"),
        ("hog", "local s = string.rep('x', 1e9)"),
        (
            "pattern",
            "local s = string.rep('a', 30000); string.find(s, string.rep('a-', 40) .. 'b')",
        ),
    ] {
        write(
            &dir.join(format!("{name}.lua")),
            &format!("function dispatch(job, mesh)\n  {body}\n  return route.assign('bob')\nend\n"),
        );
        d.cli(&["orchestrator", "persona", "use", name]).ok();
        let r = admin.decide(&job_req(&[])).await.unwrap();
        assert!(r.route.fallback, "{name}: {r:?}");
        assert!(d.healthy().await, "{name}");
    }
    let st = admin.persona_status(None).await.unwrap();
    assert!(st.last_error.is_some() && st.fallbacks == 1, "{st:?}");

    // Back to the built-in policy.
    d.cli(&["orchestrator", "persona", "clear"]).ok();
    let r = admin.decide(&job_req(&[])).await.unwrap();
    assert_eq!(r.persona, None);
    assert_eq!(r.route.route, "assign");
    assert!(!r.route.fallback);
}

/// The persona watcher wakes the daemon only when its directory changes:
/// an idle daemon (background pass once a second) blocks a few times a
/// second in all. The debouncer it replaced polled every 25 ms, 40
/// wake-ups a second on its own.
#[tokio::test]
async fn an_idle_daemon_is_not_polled_by_its_persona_watcher() {
    let d = Daemon::start(&["--tick", "1s"]);
    let wakeups = || -> u64 {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap();
        tasks
            .map(|t| {
                let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
                let line = status
                    .lines()
                    .find(|l| l.starts_with("voluntary_ctxt_switches:"))
                    .unwrap()
                    .to_string();
                line.split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = wakeups();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let n = wakeups() - before;
    assert!(n < 45, "{n} wake-ups in 3 s of idling");
}

#[tokio::test]
async fn hot_reload_swaps_keeps_last_good_and_records_errors() {
    let d = Daemon::start(&[]);
    d.peer("alice", None).await;
    d.peer("bob", None).await;
    let admin = d.admin();
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("live.lua");
    let version = |who: &str| {
        format!(
            "function dispatch(job, mesh)\n  return route.assign(\"{who}\", {{note = \"v-{who}\"}})\nend\n"
        )
    };
    write(&file, &version("alice"));
    write(&dir.join("live.md"), "Brisk. Prefers small PRs.");
    d.cli(&["orchestrator", "persona", "use", "live"]).ok();
    let st = admin.persona_status(None).await.unwrap();
    assert_eq!(
        st.identity.as_deref(),
        Some("Brisk. Prefers small PRs."),
        "the identity text is served"
    );
    let g0 = admin
        .persona_status(None)
        .await
        .unwrap()
        .generation
        .unwrap();
    assert_eq!(
        admin
            .decide(&job_req(&[]))
            .await
            .unwrap()
            .route
            .peer
            .as_deref(),
        Some("alice")
    );

    // An in-place edit: a new generation goes live.
    let newest = admin.events(None, Some(1), None).await.unwrap().events;
    let after = newest.last().map_or(0, |e| e.seq);
    write(&file, &version("bob"));
    let ev = wait_event(&d, "persona_reloaded", after).await;
    assert_eq!(ev["payload"]["persona"], "live");
    assert!(ev["payload"]["generation"].as_u64().unwrap() > g0);
    assert_eq!(
        admin
            .decide(&job_req(&[]))
            .await
            .unwrap()
            .route
            .peer
            .as_deref(),
        Some("bob")
    );

    // A broken edit: the last good version stays live, the error has the line.
    let after = ev["seq"].as_i64().unwrap();
    write(
        &file,
        "function dispatch(job, mesh)\n  return route.assign(\nend\n",
    );
    let ev = wait_event(&d, "persona_reload_failed", after).await;
    assert!(
        ev["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("live.lua:3"),
        "{ev}"
    );
    let r = admin.decide(&job_req(&[])).await.unwrap();
    assert_eq!(
        r.route.peer.as_deref(),
        Some("bob"),
        "still the last good version"
    );
    assert!(!r.route.fallback);
    let st = admin.persona_status(None).await.unwrap();
    assert!(st.last_error.unwrap().contains("live.lua:3"));
    let text = d.cli(&["orchestrator", "persona", "status"]);
    assert!(text.ok().stdout.contains("live.lua:3"));

    // Rename-on-save (write a temp file, rename it over): picked up too.
    let after = ev["seq"].as_i64().unwrap();
    let tmp = dir.join(".live.lua.tmp");
    write(&tmp, &version("alice"));
    std::fs::rename(&tmp, &file).unwrap();
    let ev = wait_event(&d, "persona_reloaded", after).await;
    assert_eq!(ev["payload"]["persona"], "live");
    assert_eq!(
        admin
            .decide(&job_req(&[]))
            .await
            .unwrap()
            .route
            .peer
            .as_deref(),
        Some("alice")
    );
    assert!(
        admin
            .persona_status(None)
            .await
            .unwrap()
            .last_error
            .is_none()
    );

    // A decision that fails at run time falls back and is recorded.
    let after = ev["seq"].as_i64().unwrap();
    write(
        &file,
        "function dispatch(job, mesh)\n  if job.id == 'boom' then error('kaboom') end\n  return route.assign('alice')\nend\n",
    );
    wait_event(&d, "persona_reloaded", after).await;
    let req: repowire::api::DecideReq =
        serde_json::from_value(serde_json::json!({"job": {"id": "boom"}})).unwrap();
    let r = admin.decide(&req).await.unwrap();
    assert!(r.route.fallback);
    assert!(r.route.error.as_deref().unwrap().contains("kaboom"));
    let ev = wait_event(&d, "persona_error", after).await;
    assert_eq!(ev["payload"]["entry"], "dispatch");
    assert_eq!(
        ev["payload"]["location"],
        "live.lua:2".replace("live", &format!("{}/live", dir.display()))
    );
    assert!(d.healthy().await);
}

#[tokio::test]
async fn on_event_routes_are_carried_out_by_the_orchestrator_without_loops() {
    let d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    olga.claim_orchestrator(false).await.unwrap();
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir.join("watcher.lua"),
        r#"function on_event(event, mesh)
  if event.kind == "ask_expired" then
    return route.notify(event.payload.to, "You let an ask expire: " .. event.subject)
  end
  if event.kind == "ask_queued" then
    -- Would loop forever if the daemon fed the persona's own asks back to it.
    return { route.ask(event.payload.to, "Did you see the ask " .. event.subject .. "?") }
  end
  return nil
end"#,
    );
    d.cli(&["orchestrator", "persona", "use", "watcher"]).ok();
    let id = alice
        .ask(&repowire::api::AskReq {
            to: "bob".into(),
            text: "quick one".into(),
            timeout_ms: Some(300),
            ..Default::default()
        })
        .await
        .unwrap()
        .ask
        .correlation_id;
    // The expiry makes the orchestrator tell bob.
    let note = eventually(
        std::time::Duration::from_secs(10),
        "the persona's notify",
        || async {
            bob.peek(50)
                .await
                .unwrap()
                .deliveries
                .into_iter()
                .find(|d| d.kind == repowire::core::delivery::DeliveryKind::Notify)
        },
    )
    .await;
    assert_eq!(note.from.as_deref(), Some("olga"));
    assert!(note.text.contains(&id), "{}", note.text);
    // The ask_queued reaction happened once, not in a loop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let asks_from_olga = bob
        .peek(100)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .filter(|d| {
            d.kind == repowire::core::delivery::DeliveryKind::Ask
                && d.from.as_deref() == Some("olga")
        })
        .count();
    assert_eq!(asks_from_olga, 1);
    let ev = d.admin().events(Some(0), None, None).await.unwrap().events;
    let routes = ev.iter().filter(|e| e.kind == "persona_route").count();
    assert_eq!(routes, 2, "one ask, one notify");
    assert!(d.healthy().await);
}

/// The mesh snapshot is kept between decisions, but never shows less than
/// what was committed before the decision: a job created or a peer
/// registered just before is seen at once (not after the snapshot's second
/// is up), whether or not the cached snapshot had read its job list.
#[tokio::test]
async fn the_kept_mesh_snapshot_follows_jobs_and_peers_at_once() {
    let d = Daemon::start(&[]);
    let alice = d
        .admin()
        .with_identity(Some(d.peer_token("alice", None).await), None);
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    // Reads the job list only when the job's title is "look".
    write(
        &dir.join("count.lua"),
        r#"function dispatch(job, mesh)
  local names = {}
  for _, p in ipairs(mesh.peers()) do table.insert(names, p.name) end
  local seen = "peers=" .. table.concat(names, ",")
  if job.title == "look" then
    local titles = {}
    for _, j in ipairs(mesh.jobs()) do table.insert(titles, j.title) end
    table.sort(titles)
    seen = seen .. " jobs=" .. table.concat(titles, ",")
  end
  return route.ask_user(seen)
end"#,
    );
    d.cli(&["orchestrator", "persona", "use", "count"]).ok();
    let decide = |title: &str| {
        let req: repowire::api::DecideReq =
            serde_json::from_value(serde_json::json!({"job": {"id": "j1", "title": title}}))
                .unwrap();
        let alice = alice.clone();
        async move { alice.decide(&req).await.unwrap().route.text.unwrap() }
    };
    let create = |title: &str| {
        let req = repowire::api::JobCreateReq {
            title: title.into(),
            ..Default::default()
        };
        let alice = alice.clone();
        async move { alice.create_job(&req).await.unwrap() }
    };
    assert_eq!(decide("look").await, "peers=alice jobs=");
    // The list was read: a new job makes a new snapshot.
    create("j1").await;
    assert_eq!(decide("look").await, "peers=alice jobs=j1");
    // Not read by this decision (the snapshot is kept), read fresh by the next.
    assert_eq!(decide("skip").await, "peers=alice");
    create("j2").await;
    assert_eq!(decide("skip").await, "peers=alice");
    assert_eq!(decide("look").await, "peers=alice jobs=j1,j2");
    // A new peer is in the very next decision.
    d.peer_token("bob", None).await;
    assert_eq!(decide("skip").await, "peers=alice,bob");
}
