//! File modes: after a real daemon (`repowire daemon start`), a real
//! `repowire mcp` session and CLI activity, every directory in the home is
//! 0700 and every file 0600; a home left 0755 is tightened with a warning.

use crate::support::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every path below `dir` (and `dir`) whose mode is not 0700 (directories)
/// or 0600 (files), and every file seen.
fn loose_modes(dir: &Path, loose: &mut Vec<String>, files: &mut Vec<PathBuf>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o700 {
        loose.push(format!("{} {mode:o}", dir.display()));
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // gone while we walked
        };
        if meta.is_dir() {
            loose_modes(&path, loose, files);
        } else {
            let mode = meta.permissions().mode() & 0o777;
            if mode != 0o600 {
                loose.push(format!("{} {mode:o}", path.display()));
            }
            files.push(path);
        }
    }
}

/// Stops a `repowire daemon start` daemon when the test ends, pass or fail.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = run_cli(&self.0, &["daemon", "stop"], &[]);
    }
}

#[tokio::test]
async fn every_file_in_the_home_is_its_owners_only() {
    // A home another tool made 0755, with files an older version left 0644.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    let open = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(&home, 0o755);
    std::fs::write(home.join("daemon.log"), "an older daemon's log\n").unwrap();
    open(&home.join("daemon.log"), 0o644);
    std::fs::write(home.join("state.db"), "").unwrap();
    open(&home.join("state.db"), 0o644);
    std::fs::create_dir(home.join("personas")).unwrap();
    open(&home.join("personas"), 0o755);
    std::fs::write(home.join("personas/old.lua"), "-- old\n").unwrap();
    open(&home.join("personas/old.lua"), 0o644);

    // `daemon start` tightens it, and says so. (REPOWIRE_URL: its "is one
    // already running?" probe must not find another daemon on the default port.)
    let r = run_cli(
        &home,
        &["daemon", "start", "--listen", "127.0.0.1:0", "--json"],
        &[("REPOWIRE_URL", "http://127.0.0.1:9")],
    );
    let _stop = StopOnDrop(home.clone());
    r.ok();
    assert!(
        r.stderr
            .contains("the home was readable by other users; setting mode 0700"),
        "a loosened home is reported: {}",
        r.stderr
    );
    let url = r.json()["url"].as_str().unwrap().to_string();
    let d = Daemon {
        home: dir,
        url,
        child: None,
        args: Vec::new(),
    };

    // Activity through the CLI and a real MCP session.
    d.cli(&["peer", "register", "alice"]).ok();
    d.cli(&["--as", "alice", "peer", "notify", "alice", "to myself"])
        .ok();
    d.cli(&["--as", "alice", "jobs", "create", "write docs"])
        .ok();
    d.cli(&["orchestrator", "persona", "new", "mine"]).ok();
    let s = crate::mcp::session(&d, "agent").await;
    let (err, _) = crate::mcp::call(
        &s,
        "notify_peer",
        json!({"peer_name": "alice", "message": "from the session"}),
    )
    .await;
    assert!(!err);

    let mut loose = Vec::new();
    let mut files = Vec::new();
    loose_modes(&home, &mut loose, &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&home).unwrap().display().to_string())
        .collect();
    for want in [
        "state.db",
        "state.db-wal",
        "state.db-shm",
        "token",
        "daemon.json",
        "daemon.pid",
        "daemon.lock",
        "daemon.log",
        "personas/mine.lua",
        "personas/old.lua",
        "mcp/default@agent.lock",
        "mcp/default@agent.token",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(loose.is_empty(), "readable by others: {loose:?}");
    s.cancel().await.unwrap();
}
