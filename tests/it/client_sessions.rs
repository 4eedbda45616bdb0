//! A real Codex CLI session runs the hooks `repowire setup` wrote, end to
//! end: Codex 0.171.0 (`codex exec`) talks to a stand-in Responses API on
//! loopback (tests/it/fixtures/hooks/mock_responses.py, which logs every
//! request the model would get), inside a private network namespace as in
//! `mcp_real_clients`. The test reads what reached "the model":
//! SessionStart's identity context, and a note sent mid-turn that the Stop
//! hook put in front of the agent by blocking the stop. The delivery is
//! confirmed by the hook route, the session's MCP server and its hooks were
//! one peer, and the peer is offline once the session ends.

use crate::mcp_real_clients::{World, client};
use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `repowire --home HOME --json ARGS` inside the world's namespace.
fn rw_json(w: &World, home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--home", home.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let (ok, out) = w.run(Path::new(BIN), &all);
    assert!(ok, "repowire {args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} ({e}): {out}"))
}

#[test]
fn codex_exec_runs_the_hooks_setup_wrote_and_a_stop_shows_a_pending_note() {
    let Some(codex) = client("codex") else {
        return;
    };
    let Some(w) = World::new() else {
        return;
    };
    let d = w.net.daemon(tempfile::tempdir().unwrap());
    let dh = d.home_path().to_path_buf();
    let dhs = dh.display().to_string();
    rw_json(&w, &dh, &["peer", "register", "bob"]);

    // The stand-in model API; on the first request it has bob send the
    // session's peer (named after the project directory) a note.
    let log = w.home.path().join("requests.log");
    let portfile = w.home.path().join("port");
    let on_first = format!(
        "{BIN} --home '{dhs}' --as bob --json peer notify project 'NOTE-e2e-7 please rebase'"
    );
    let mock =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/hooks/mock_responses.py");
    let mut api = w
        .net
        .command(Path::new("python3"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg(&mock)
        .arg(&portfile)
        .arg(&log)
        .arg(&on_first)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the stand-in model API");
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&portfile) {
            break p;
        }
        assert!(Instant::now() < deadline, "the stand-in API did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The user's Codex config names that provider; setup merges into it.
    let codex_home = w.home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "# a model on loopback\nmodel = \"mock-model\"\nmodel_provider = \"mock\"\n\n\
[model_providers.mock]\nname = \"mock\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
wire_api = \"responses\"\nrequires_openai_auth = false\n"
        ),
    )
    .unwrap();
    let out = w
        .command(Path::new(BIN), &["setup", "--codex"])
        .env("REPOWIRE_HOME", &dh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (ok, out) = w.run(&codex, &["exec", "--skip-git-repo-check", "say hi"]);
    let _ = api.kill();
    let _ = api.wait();
    assert!(ok, "codex exec: {out}");
    assert!(out.contains("done-reply"), "{out}");

    // What the model was sent: the identity first, the note after a stop.
    let requests: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        requests.len() >= 2,
        "one turn, then one more for the note: {requests:?}"
    );
    assert!(
        requests[0].contains("this session is peer") && requests[0].contains("project"),
        "SessionStart context missing from the first request: {}",
        requests[0]
    );
    assert!(
        !requests[0].contains("NOTE-e2e-7"),
        "the note was sent after it"
    );
    let with_note = requests
        .iter()
        .position(|r| r.contains("NOTE-e2e-7 please rebase"))
        .unwrap_or_else(|| panic!("the note never reached the model: {requests:?}"));
    assert!(with_note >= 1);
    assert_eq!(
        requests.iter().filter(|r| r.contains("NOTE-e2e-7")).count(),
        requests.len() - with_note,
        "shown once, then kept in the conversation"
    );

    // Confirmed through the hook route.
    let sent: Value = serde_json::from_str(
        &std::fs::read_to_string(w.home.path().join("requests.log.first")).unwrap(),
    )
    .unwrap();
    let id = sent["delivery_id"].as_str().unwrap();
    let trace = rw_json(&w, &dh, &["trace", id]);
    let kinds: Vec<(String, Value)> = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect();
    assert!(
        kinds
            .iter()
            .any(|(k, p)| k == "delivery_leased" && p["route"] == "hook"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|(k, _)| k == "delivery_confirmed"),
        "{kinds:?}"
    );

    // One peer for the session (its MCP server and its hooks), offline now.
    let peers = rw_json(&w, &dh, &["peer", "list"]);
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("project")).count(),
        1,
        "{peers:#}"
    );
    let me = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "project")
        .unwrap();
    assert_eq!(me["backend"], "codex", "{me}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.net.status_of(&d, "project").0 != repowire::core::peer::Status::Offline {
        assert!(
            Instant::now() < deadline,
            "the ended session's peer is not offline"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
