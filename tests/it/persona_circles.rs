//! Persona state is per circle: each circle that uses a persona runs its own
//! instance, so a stateful script never sees another circle's jobs or
//! peers, and round_robin keeps a turn per circle. A reload gives every
//! circle a fresh instance of the new version.

use crate::support::*;
use repowire::api::DecideReq;
use std::time::Duration;

fn decide_req(circle: &str, title: &str) -> DecideReq {
    serde_json::from_value(
        serde_json::json!({"circle": circle, "job": {"id": title, "title": title}}),
    )
    .unwrap()
}

/// Remembers every job title and peer name it was shown, and says them all.
const HOARDER: &str = r#"local seen = {}
function dispatch(job, mesh)
  table.insert(seen, VERSION .. ":" .. job.title)
  for _, p in ipairs(mesh.peers()) do table.insert(seen, p.name) end
  return route.ask_user(table.concat(seen, ","))
end
"#;

#[tokio::test]
async fn a_stateful_persona_never_sees_another_circles_data() {
    let d = Daemon::start(&[]);
    d.peer("alice", None).await;
    d.peer("bob", None).await;
    d.peer("oscar", Some("ops")).await;
    d.peer("olive", Some("ops")).await;
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hoarder.lua");
    std::fs::write(&file, format!("VERSION = 'v1'\n{HOARDER}")).unwrap();
    d.cli(&["orchestrator", "persona", "use", "hoarder"]).ok();
    d.cli(&[
        "orchestrator",
        "persona",
        "use",
        "hoarder",
        "--circle",
        "ops",
    ])
    .ok();
    let admin = d.admin();
    let said = |r: repowire::api::DecideResp| r.route.text.unwrap_or_default();

    let a = said(
        admin
            .decide(&decide_req("default", "secret-plan"))
            .await
            .unwrap(),
    );
    assert!(a.contains("secret-plan") && a.contains("alice"), "{a}");
    let o = said(admin.decide(&decide_req("ops", "ops-chore")).await.unwrap());
    assert!(o.contains("ops-chore") && o.contains("oscar"), "{o}");
    for leak in ["secret-plan", "alice", "bob"] {
        assert!(!o.contains(leak), "ops saw default's {leak:?}: {o}");
    }
    let a = said(
        admin
            .decide(&decide_req("default", "second"))
            .await
            .unwrap(),
    );
    for leak in ["ops-chore", "oscar", "olive"] {
        assert!(!a.contains(leak), "default saw ops' {leak:?}: {a}");
    }
    // State does persist within a circle.
    assert!(a.contains("secret-plan") && a.contains("second"), "{a}");
    // Each circle's status counts its own decisions only.
    assert_eq!(
        admin
            .persona_status(Some("default"))
            .await
            .unwrap()
            .decisions,
        2
    );
    assert_eq!(
        admin.persona_status(Some("ops")).await.unwrap().decisions,
        1
    );

    // A reload swaps every circle's instance: new version, fresh state.
    let after = {
        let ev = admin.events(None, Some(1), None).await.unwrap().events;
        ev.last().map_or(0, |e| e.seq)
    };
    std::fs::write(&file, format!("VERSION = 'v2'\n{HOARDER}")).unwrap();
    eventually(Duration::from_secs(30), "persona_reloaded", || async {
        let ev = admin.events(Some(after), None, None).await.unwrap().events;
        ev.into_iter().find(|e| e.kind == "persona_reloaded")
    })
    .await;
    for (circle, title) in [("default", "third"), ("ops", "fourth")] {
        let t = said(admin.decide(&decide_req(circle, title)).await.unwrap());
        assert!(t.starts_with(&format!("v2:{title}")), "{circle}: {t}");
        assert!(!t.contains("v1:"), "{circle} kept the old state: {t}");
    }
    // Switching away and back starts the circle over; ops keeps its state.
    d.cli(&["orchestrator", "persona", "use", "default"]).ok();
    d.cli(&["orchestrator", "persona", "use", "hoarder"]).ok();
    let t = said(admin.decide(&decide_req("default", "fifth")).await.unwrap());
    assert!(t.starts_with("v2:fifth") && !t.contains("third"), "{t}");
    let t = said(admin.decide(&decide_req("ops", "sixth")).await.unwrap());
    assert!(t.starts_with("v2:fourth") && t.contains("sixth"), "{t}");
}

#[tokio::test]
async fn round_robin_takes_turns_per_circle() {
    let d = Daemon::start(&[]);
    for n in ["a1", "a2", "a3"] {
        d.peer(n, None).await;
    }
    for n in ["o1", "o2", "o3"] {
        d.peer(n, Some("ops")).await;
    }
    d.cli(&["orchestrator", "persona", "use", "round_robin"])
        .ok();
    d.cli(&[
        "orchestrator",
        "persona",
        "use",
        "round_robin",
        "--circle",
        "ops",
    ])
    .ok();
    let admin = d.admin();
    let mut default_turns = Vec::new();
    let mut ops_turns = Vec::new();
    for i in 0..3 {
        for (circle, turns) in [("default", &mut default_turns), ("ops", &mut ops_turns)] {
            let r = admin
                .decide(&decide_req(circle, &format!("job-{i}")))
                .await
                .unwrap();
            assert!(!r.route.fallback, "{r:?}");
            turns.push(r.route.peer.unwrap());
        }
    }
    assert_eq!(default_turns, ["a1", "a2", "a3"]);
    assert_eq!(ops_turns, ["o1", "o2", "o3"]);
}

/// `persona use` takes a persona NAME: one ending in `.lua` used to be read as
/// a file relative to the daemon's working directory, so a circle's
/// orchestrator (any peer that claimed the role) could make the daemon run, or
/// report the first syntax error of, a `.lua` file outside the home.
#[tokio::test]
async fn persona_use_never_reads_a_file_from_the_daemons_directory() {
    let home = tmp_path();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("outside.lua"),
        "function dispatch(job, mesh) return route.ask_user('from outside the home') end\n",
    )
    .unwrap();
    std::fs::write(cwd.path().join("secret.lua"), "TOPSECRET hunter2\n").unwrap();
    /// Killed on drop, so a failed assertion leaves no daemon behind.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _daemon = Killed(
        cli_command(&home, &["daemon", "run", "--listen", "127.0.0.1:0"], &[])
            .current_dir(cwd.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn daemon"),
    );
    let url = eventually(Duration::from_secs(20), "daemon.json", || {
        let home = home.clone();
        async move {
            let s = std::fs::read_to_string(home.join("daemon.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            v["url"].as_str().map(str::to_string)
        }
    })
    .await;
    let token = std::fs::read_to_string(home.join("token")).unwrap();
    let admin = repowire::client::Client::new(&url, Some(token.trim().to_string()), None);
    let olga = admin
        .register(&repowire::api::RegisterReq {
            name: "olga".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let olga = admin.with_identity(olga.token, None);
    olga.claim_orchestrator(false).await.unwrap();
    for (who, c) in [("orchestrator", &olga), ("admin", &admin)] {
        for name in ["outside.lua", "secret.lua", "missing.lua"] {
            let r = c
                .use_persona(&repowire::api::UsePersonaReq {
                    name: name.into(),
                    circle: None,
                })
                .await;
            let e = r.expect_err(&format!("{who} used {name}"));
            let text = format!("{e:?}");
            assert!(
                !text.contains("hunter2")
                    && !text.contains("cannot read")
                    && !text.contains("Incomplete"),
                "{who} {name}: {text}"
            );
        }
    }
    let st = admin.persona_status(None).await.unwrap();
    assert_eq!(st.persona, None, "no persona became active: {st:?}");
}
