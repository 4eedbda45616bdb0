//! `repowire setup` / `uninstall` / `doctor` on temporary HOMEs: a fresh
//! home, config merged into (unknown keys, TOML comments and other hooks
//! kept), a rerun that changes nothing, `--dry-run` that writes nothing,
//! uninstall that gives the files back as they were (backups aside), a file
//! that does not parse, no client found. Then the real clients read what
//! setup wrote: `claude mcp list` connects to the server, and Codex's own
//! app-server lists repowire's hooks as trusted (each in a private network
//! namespace, as in `mcp_real_clients`).

use crate::mcp_real_clients::{World, client};
use crate::support::*;
use repowire::setup::hooks::parse_ours;
use repowire::wiring::{self, Client};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `repowire ARGS` as a user with this HOME would run it in `cwd`.
fn rw(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run repowire").into()
}

/// Every file under `dir` (path relative to it → bytes).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn without_backups(t: &BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    t.iter()
        .filter(|(p, _)| !p.to_string_lossy().contains(".repowire-backup-"))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The repowire hooks in a hooks block: (client event, subcommand, handler).
fn our_hooks(doc: &Value) -> Vec<(String, wiring::HookEvent, Value)> {
    let mut out = Vec::new();
    for (ev, groups) in doc["hooks"].as_object().into_iter().flatten() {
        for g in groups.as_array().unwrap() {
            for h in g["hooks"].as_array().unwrap() {
                if let Some((exe, e, c)) = h["command"].as_str().and_then(parse_ours) {
                    assert_eq!(exe, BIN, "{h}");
                    assert!(c.is_some(), "{h}");
                    out.push((ev.clone(), e, h.clone()));
                }
            }
        }
    }
    out
}

fn assert_all_hooks(doc: &Value, client: Client) {
    let ours = our_hooks(doc);
    let want: Vec<_> = wiring::hooks(client).collect();
    assert_eq!(ours.len(), want.len(), "{doc:#}");
    for row in want {
        let (_, _, h) = ours
            .iter()
            .find(|(ev, e, _)| ev == row.client_event && *e == row.event)
            .unwrap_or_else(|| panic!("{} {:?} missing: {doc:#}", row.client_event, row.event));
        assert_eq!(h["type"], "command");
        assert_eq!(h["timeout"], row.timeout_s);
        assert_eq!(
            h["asyncRewake"].as_bool().unwrap_or(false),
            row.async_rewake
        );
    }
}

#[test]
fn setup_on_a_fresh_home_wires_both_clients_and_a_rerun_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let r = rw(h, h, &["--json", "setup", "--claude", "--codex"], &[]);
    r.ok();
    assert_eq!(r.json()["changed"], true);
    // Claude Code: the MCP entry in ~/.claude.json, the hooks in settings.
    let cj = json(&h.join(".claude.json"));
    let entry = &cj["mcpServers"]["repowire"];
    assert_eq!(entry["command"], BIN);
    assert_eq!(
        entry["args"],
        serde_json::json!(["mcp", "--client", "claude"])
    );
    assert_eq!(entry["type"], "stdio");
    assert_eq!(
        entry["env"],
        serde_json::json!({}),
        "the default home needs no env"
    );
    assert_all_hooks(&json(&h.join(".claude/settings.json")), Client::Claude);
    // Codex: hooks.json, and config.toml with the server and the trust.
    assert_all_hooks(&json(&h.join(".codex/hooks.json")), Client::Codex);
    let toml = std::fs::read_to_string(h.join(".codex/config.toml")).unwrap();
    assert!(toml.contains("[mcp_servers.repowire]"), "{toml}");
    assert!(
        toml.contains(r#"args = ["mcp", "--client", "codex"]"#),
        "{toml}"
    );
    assert_eq!(
        toml.matches("trusted_hash = \"sha256:").count(),
        wiring::hooks(Client::Codex).count(),
        "{toml}"
    );
    assert!(
        !toml.contains("[mcp_servers]\n"),
        "no empty parent tables: {toml}"
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [
        ".claude.json",
        ".claude/settings.json",
        ".codex/config.toml",
    ] {
        let mode = std::fs::metadata(h.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // A rerun: nothing changes, not a byte, and no backup is made.
    let before = tree(h);
    let r = rw(h, h, &["--json", "setup", "--claude", "--codex"], &[]);
    r.ok();
    assert_eq!(r.json()["changed"], false, "{}", r.stdout);
    assert_eq!(tree(h), before);
    let r = rw(h, h, &["setup", "--claude", "--codex"], &[]);
    r.ok();
    assert!(r.stdout.contains("nothing to change"), "{}", r.stdout);
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(h.join(".claude.json"), "{\n  \"numStartups\": 2\n}\n").unwrap();
    let before = tree(h);
    let r = rw(h, h, &["setup", "--claude", "--codex", "--dry-run"], &[]);
    r.ok();
    assert!(r.stdout.contains("--- /dev/null"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("+++ {}", h.join(".claude.json").display()))
    );
    assert!(r.stdout.contains("+  \"mcpServers\": {"), "{}", r.stdout);
    assert!(r.stdout.contains("would create"), "{}", r.stdout);
    assert!(r.stdout.contains("dry run: nothing was written"));
    assert_eq!(tree(h), before, "a dry run wrote something");
    // As JSON, with the diffs.
    let r = rw(h, h, &["--json", "setup", "--claude", "--dry-run"], &[]);
    let v = r.json();
    assert_eq!(v["dry_run"], true);
    let files = v["clients"][0]["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| f["diff"].as_str().is_some_and(|d| d.contains("+++")))
    );
    assert_eq!(tree(h), before);
    // Uninstall's dry run on a wired home writes nothing either.
    rw(h, h, &["setup", "--claude", "--codex"], &[]).ok();
    let wired = tree(h);
    let r = rw(h, h, &["uninstall", "--dry-run"], &[]);
    r.ok();
    assert!(r.stdout.contains("-        \"hooks\": ["), "{}", r.stdout);
    assert_eq!(tree(h), wired);
}

const CLAUDE_JSON: &str = r#"{
  "numStartups": 12,
  "theme": "dark",
  "mcpServers": {
    "other": {
      "type": "stdio",
      "command": "other-server",
      "args": [],
      "env": {}
    }
  },
  "projects": {
    "/home/ann/app": {
      "allowedTools": [],
      "note": "héllo ✓"
    }
  },
  "userID": "abc"
}
"#;

const CLAUDE_SETTINGS: &str = r#"{
  "model": "opus",
  "hooks": {
    "Stop": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "notify-send done"
          }
        ]
      }
    ]
  },
  "permissions": {
    "allow": [
      "Bash(cargo test:*)"
    ]
  }
}
"#;

const CODEX_TOML: &str = r#"# My Codex settings: keep this comment.
model = "o3" # and this one

[mcp_servers.other]
command = "other-server"
args = ["--flag"]

[hooks.state."/somewhere/else/hooks.json:stop:0:0"]
trusted_hash = "sha256:0000"
"#;

const CODEX_HOOKS: &str = r#"{
  "hooks": {
    "Stop": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "say done",
            "timeout": 30
          }
        ]
      }
    ]
  }
}
"#;

#[test]
fn setup_merges_into_existing_config_and_uninstall_restores_it() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join(".claude")).unwrap();
    std::fs::create_dir_all(h.join(".codex")).unwrap();
    std::fs::write(h.join(".claude.json"), CLAUDE_JSON).unwrap();
    std::fs::write(h.join(".claude/settings.json"), CLAUDE_SETTINGS).unwrap();
    std::fs::write(h.join(".codex/config.toml"), CODEX_TOML).unwrap();
    std::fs::write(h.join(".codex/hooks.json"), CODEX_HOOKS).unwrap();
    let original = tree(h);

    let r = rw(h, h, &["setup", "--claude", "--codex"], &[]);
    r.ok();
    assert!(r.stdout.contains("backup: "), "{}", r.stdout);
    // Unknown keys, their order and other servers are kept.
    let cj = std::fs::read_to_string(h.join(".claude.json")).unwrap();
    let keys: Vec<&str> = ["numStartups", "theme", "mcpServers", "projects", "userID"].to_vec();
    let at: Vec<usize> = keys
        .iter()
        .map(|k| cj.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "key order changed: {cj}"
    );
    assert!(cj.contains("héllo ✓"));
    let cjv: Value = serde_json::from_str(&cj).unwrap();
    assert_eq!(cjv["mcpServers"]["other"]["command"], "other-server");
    assert_eq!(cjv["mcpServers"]["repowire"]["command"], BIN);
    // The user's own Stop hook stays first; repowire's come after it.
    let st = json(&h.join(".claude/settings.json"));
    assert_eq!(st["model"], "opus");
    assert_eq!(st["permissions"]["allow"][0], "Bash(cargo test:*)");
    assert_eq!(
        st["hooks"]["Stop"][0]["hooks"][0]["command"],
        "notify-send done"
    );
    assert_all_hooks(&st, Client::Claude);
    // TOML comments, other tables and other trust entries are kept.
    let toml = std::fs::read_to_string(h.join(".codex/config.toml")).unwrap();
    assert!(
        toml.starts_with(
            "# My Codex settings: keep this comment.\nmodel = \"o3\" # and this one\n"
        ),
        "{toml}"
    );
    assert!(
        toml.contains("[mcp_servers.other]\ncommand = \"other-server\""),
        "{toml}"
    );
    assert!(
        toml.contains("/somewhere/else/hooks.json:stop:0:0"),
        "{toml}"
    );
    let hooks_json = h.join(".codex/hooks.json");
    let cx = json(&hooks_json);
    assert_eq!(cx["hooks"]["Stop"][0]["hooks"][0]["command"], "say done");
    assert_all_hooks(&cx, Client::Codex);
    // Repowire's Stop hook is the second group: its trust entry says so,
    // and the user's hook (group 0) got none from setup.
    assert!(
        toml.contains(&format!("\"{}:stop:1:0\"", hooks_json.display())),
        "{toml}"
    );
    assert!(
        !toml.contains(&format!("\"{}:stop:0:0\"", hooks_json.display())),
        "{toml}"
    );
    // Each changed file was backed up as it was.
    for (f, text) in [
        (".claude.json", CLAUDE_JSON),
        (".claude/settings.json", CLAUDE_SETTINGS),
        (".codex/config.toml", CODEX_TOML),
        (".codex/hooks.json", CODEX_HOOKS),
    ] {
        let dir = h.join(f).parent().unwrap().to_path_buf();
        let name = h
            .join(f)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let backups: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.repowire-backup-"))
            })
            .collect();
        assert_eq!(backups.len(), 1, "{f}");
        assert_eq!(
            std::fs::read_to_string(backups[0].path()).unwrap(),
            text,
            "{f}"
        );
    }

    // Uninstall gives every file back as it was.
    let r = rw(h, h, &["uninstall"], &[]);
    r.ok();
    assert_eq!(without_backups(&tree(h)), original, "{}", r.stdout);
    // And again: nothing left to remove.
    let r = rw(h, h, &["--json", "uninstall"], &[]);
    r.ok();
    assert_eq!(r.json()["changed"], false);
}

#[test]
fn a_home_that_is_not_the_default_reaches_the_clients() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let rw_home = h.join("my rw home");
    let rh = rw_home.display().to_string();
    rw(
        h,
        h,
        &["setup", "--claude", "--codex"],
        &[("REPOWIRE_HOME", &rh)],
    )
    .ok();
    let cj = json(&h.join(".claude.json"));
    assert_eq!(
        cj["mcpServers"]["repowire"]["env"]["REPOWIRE_HOME"],
        rh.as_str()
    );
    let toml = std::fs::read_to_string(h.join(".codex/config.toml")).unwrap();
    let doc: toml_edit::DocumentMut = toml.parse().unwrap();
    assert_eq!(
        doc["mcp_servers"]["repowire"]["env"]["REPOWIRE_HOME"].as_str(),
        Some(rh.as_str()),
        "{toml}"
    );
    for f in [".claude/settings.json", ".codex/hooks.json"] {
        for (_, _, hk) in our_hooks(&json(&h.join(f))) {
            let argv = repowire::setup::hooks::split(hk["command"].as_str().unwrap());
            let i = argv.iter().position(|a| a == "--home").expect("--home");
            assert_eq!(argv[i + 1], rh, "{f}");
        }
    }
}

#[test]
fn a_config_file_that_does_not_parse_stops_setup_before_anything_is_written() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join(".codex")).unwrap();
    std::fs::write(h.join(".claude.json"), CLAUDE_JSON).unwrap();
    std::fs::write(h.join(".codex/config.toml"), "model = \"o3\"\n[broken\n").unwrap();
    let before = tree(h);
    let r = rw(h, h, &["setup", "--claude", "--codex"], &[]);
    r.fails(1, "client_config");
    assert!(r.stderr.contains(".codex/config.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(tree(h), before, "setup wrote before it failed");
    // A JSON file that is not an object, likewise.
    std::fs::write(h.join(".codex/config.toml"), "").unwrap();
    std::fs::create_dir_all(h.join(".claude")).unwrap();
    std::fs::write(h.join(".claude/settings.json"), "[1, 2]").unwrap();
    let before = tree(h);
    let r = rw(h, h, &["setup", "--claude"], &[]);
    r.fails(1, "client_config");
    assert!(
        r.stderr.contains("settings.json is not a JSON object"),
        "{}",
        r.stderr
    );
    assert_eq!(tree(h), before);
}

#[test]
fn setup_without_a_client_found_says_how_to_pick_one() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let empty = tempfile::tempdir().unwrap();
    let empty_path = empty.path().display().to_string();
    let r = rw(h, h, &["setup"], &[("PATH", &empty_path)]);
    r.fails(1, "no_client");
    assert!(r.stderr.contains("--claude or --codex"), "{}", r.stderr);
    assert!(tree(h).is_empty());
    // A client's configuration directory is enough to find it.
    std::fs::create_dir_all(h.join(".codex")).unwrap();
    let r = rw(h, h, &["--json", "setup"], &[("PATH", &empty_path)]);
    r.ok();
    let clients: Vec<String> = r.json()["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(clients, ["codex"]);
}

#[test]
fn project_scope_writes_the_project_files() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let proj = h.join("app");
    std::fs::create_dir_all(&proj).unwrap();
    rw(
        h,
        &proj,
        &["setup", "--claude", "--codex", "--scope", "project"],
        &[],
    )
    .ok();
    assert_eq!(
        json(&proj.join(".mcp.json"))["mcpServers"]["repowire"]["command"],
        BIN
    );
    assert_all_hooks(&json(&proj.join(".claude/settings.json")), Client::Claude);
    assert_all_hooks(&json(&proj.join(".codex/hooks.json")), Client::Codex);
    let project_toml = std::fs::read_to_string(proj.join(".codex/config.toml")).unwrap();
    assert!(project_toml.contains("[mcp_servers.repowire]"));
    // Codex honours trust only from the user's config.toml.
    assert!(!project_toml.contains("trusted_hash"), "{project_toml}");
    let user_toml = std::fs::read_to_string(h.join(".codex/config.toml")).unwrap();
    assert!(
        user_toml.contains(&proj.join(".codex/hooks.json").display().to_string()),
        "{user_toml}"
    );
    assert!(!h.join(".claude.json").exists(), "user scope untouched");
    rw(h, &proj, &["uninstall", "--scope", "project"], &[]).ok();
    for f in [
        ".mcp.json",
        ".claude/settings.json",
        ".codex/hooks.json",
        ".codex/config.toml",
    ] {
        assert!(!proj.join(f).exists(), "{f} left behind");
    }
    assert!(
        !h.join(".codex/config.toml").exists(),
        "trust entries left behind"
    );
}

#[test]
fn doctor_reports_what_is_wired_and_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let wiring_of = |r: &Run| -> Vec<Value> { r.json()["wiring"].as_array().unwrap().clone() };
    rw(h, h, &["setup", "--claude", "--codex"], &[]).ok();
    // (No daemon runs: doctor fails on that, and reports the wiring.)
    let r = rw(h, h, &["--json", "doctor"], &[]);
    let w = wiring_of(&r);
    let claude = w
        .iter()
        .find(|c| c["client"] == "claude" && c["scope"] == "user")
        .unwrap();
    assert_eq!(claude["missing"], serde_json::json!([]), "{claude}");
    assert_eq!(claude["problems"], serde_json::json!([]), "{claude}");
    let codex = w
        .iter()
        .find(|c| c["client"] == "codex" && c["scope"] == "user")
        .unwrap();
    assert_eq!(codex["problems"], serde_json::json!([]), "{codex}");
    let checks = r.json()["checks"].as_array().unwrap().clone();
    let check = |name: &str| checks.iter().find(|c| c["name"] == name).cloned().unwrap();
    assert_eq!(check("claude (user)")["ok"], true);
    assert_eq!(check("codex (user)")["ok"], true);
    // Take one hook out by hand, and change one Codex hook's timeout (its
    // trust no longer matches): both are reported.
    let sp = h.join(".claude/settings.json");
    let mut st = json(&sp);
    st["hooks"].as_object_mut().unwrap().remove("Notification");
    std::fs::write(&sp, serde_json::to_string_pretty(&st).unwrap()).unwrap();
    let hp = h.join(".codex/hooks.json");
    let mut cx = json(&hp);
    cx["hooks"]["Stop"][0]["hooks"][0]["timeout"] = 99.into();
    std::fs::write(&hp, serde_json::to_string_pretty(&cx).unwrap()).unwrap();
    let r = rw(h, h, &["doctor"], &[]);
    r.fails(1, "doctor");
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {}", r.stdout))
            .to_string()
    };
    assert!(line("claude (user)").starts_with("FAIL"), "{}", r.stdout);
    assert!(
        line("claude (user)").contains("missing: Notification:notification"),
        "{}",
        r.stdout
    );
    assert!(
        line("codex (user)").contains("Stop hook is not trusted"),
        "{}",
        r.stdout
    );
    // Setup repairs both.
    rw(h, h, &["setup", "--claude", "--codex"], &[]).ok();
    let r = rw(h, h, &["--json", "doctor"], &[]);
    let checks = r.json()["checks"].as_array().unwrap().clone();
    for name in ["claude (user)", "codex (user)"] {
        let c = checks.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(c["ok"], true, "{c}");
    }
}

/// Claude Code 2.1.197 reads the entry setup wrote and connects to the
/// server (no daemon needed for the handshake).
#[test]
fn claude_mcp_list_connects_to_the_server_setup_wrote() {
    let Some(claude) = client("claude") else {
        return;
    };
    let Some(w) = World::new() else {
        return;
    };
    let (ok, out) = w.run(Path::new(BIN), &["setup", "--claude"]);
    assert!(ok, "{out}");
    let (ok, out) = w.run(&claude, &["mcp", "list"]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("repowire:"))
        .unwrap_or_else(|| panic!("no repowire server listed: {out}"));
    assert!(line.contains("mcp --client claude"), "{line}");
    assert!(line.contains("Connected"), "{line}");
}

/// Codex 0.171.0's own app-server lists the hooks setup wrote as trusted
/// (a hook it does not trust never runs), and `codex mcp get` shows the
/// server entry.
#[test]
fn codex_lists_the_hooks_setup_wrote_as_trusted() {
    let Some(codex) = client("codex") else {
        return;
    };
    let Some(w) = World::new() else {
        return;
    };
    let (ok, out) = w.run(Path::new(BIN), &["setup", "--codex"]);
    assert!(ok, "{out}");
    let (ok, out) = w.run(&codex, &["mcp", "get", "repowire", "--json"]);
    assert!(ok, "{out}");
    let json_start = out.find('{').unwrap_or_else(|| panic!("{out}"));
    let entry: Value = serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(entry["transport"]["command"], BIN, "{entry}");
    assert_eq!(
        entry["transport"]["args"],
        serde_json::json!(["mcp", "--client", "codex"])
    );

    let mut app = w
        .command(&codex, &["app-server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = app.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = app.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    // A notification (id u64::MAX here) gets no answer.
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        let req = if id == u64::MAX {
            serde_json::json!({"method": method})
        } else {
            serde_json::json!({"id": id, "method": method, "params": params})
        };
        writeln!(stdin, "{req}").unwrap();
        stdin.flush().unwrap();
        if id == u64::MAX {
            return Value::Null;
        }
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("codex app-server did not answer {method}"));
            if v["id"] == id {
                return v;
            }
        }
    };
    call(
        0,
        "initialize",
        serde_json::json!({"clientInfo": {"name": "repowire-test", "version": "1"}}),
    );
    call(u64::MAX, "initialized", Value::Null);
    let cwd = w.project.display().to_string();
    let listed = call(1, "hooks/list", serde_json::json!({"cwds": [cwd]}));
    let _ = app.kill();
    let _ = app.wait();
    let text = listed.to_string();
    let mut seen = Vec::new();
    let mut visit = vec![&listed];
    while let Some(v) = visit.pop() {
        match v {
            Value::Object(m) => {
                if let (Some(cmd), Some(trust)) = (
                    m.get("command").and_then(Value::as_str),
                    m.get("trustStatus").and_then(Value::as_str),
                ) && let Some((_, e, _)) = parse_ours(cmd)
                {
                    seen.push((e, trust.to_string()));
                }
                visit.extend(m.values());
            }
            Value::Array(a) => visit.extend(a),
            _ => {}
        }
    }
    assert_eq!(seen.len(), wiring::hooks(Client::Codex).count(), "{text}");
    for (e, trust) in seen {
        assert_eq!(trust, "trusted", "{e:?}: {text}");
    }
}

#[test]
fn channels_make_the_claude_server_push_until_setup_runs_without() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let args = |h: &Path| json(&h.join(".claude.json"))["mcpServers"]["repowire"]["args"].clone();
    rw(h, h, &["setup", "--claude", "--channels"], &[]).ok();
    assert_eq!(
        args(h),
        serde_json::json!(["mcp", "--client", "claude", "--delivery", "push"])
    );
    rw(h, h, &["setup", "--claude"], &[]).ok();
    assert_eq!(args(h), serde_json::json!(["mcp", "--client", "claude"]));
}

/// Setup writes through a config file's symlink (dotfile managers), a
/// dangling one included, and never through anything planted beside it.
#[test]
fn symlinks_are_followed_and_nothing_planted_is_written_through() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let dots = h.join("dotfiles");
    std::fs::create_dir_all(h.join(".claude")).unwrap();
    std::fs::create_dir_all(&dots).unwrap();
    // ~/.claude/settings.json → a file not made yet.
    std::os::unix::fs::symlink(dots.join("settings.json"), h.join(".claude/settings.json"))
        .unwrap();
    // A repository could plant these (git keeps symlinks).
    let victim = h.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    for planted in [".settings.json.repowire-tmp", "..claude.json.repowire-tmp"] {
        let at = if planted.starts_with("..") {
            h.join(planted)
        } else {
            h.join(".claude").join(planted)
        };
        std::os::unix::fs::symlink(&victim, at).unwrap();
    }
    rw(h, h, &["setup", "--claude"], &[]).ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let link = std::fs::symlink_metadata(h.join(".claude/settings.json")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    assert_all_hooks(&json(&dots.join("settings.json")), Client::Claude);
    // Uninstall removes the file it made, and leaves the link as it was.
    rw(h, h, &["uninstall", "--claude"], &[]).ok();
    assert!(!dots.join("settings.json").exists());
    assert!(std::fs::symlink_metadata(h.join(".claude/settings.json")).is_ok());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// Setups and uninstalls at once never leave a torn or mixed file.
#[test]
fn concurrent_setups_and_uninstalls_leave_whole_files() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_path_buf();
    let big = (0..2000)
        .map(|i| format!("\"/p/{i}\": {{\"x\": \"{}\"}}", "y".repeat(50)))
        .collect::<Vec<_>>()
        .join(",\n    ");
    std::fs::write(
        h.join(".claude.json"),
        format!("{{\n  \"projects\": {{\n    {big}\n  }}\n}}\n"),
    )
    .unwrap();
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || {
                let args: &[&str] = if i % 2 == 0 {
                    &["setup", "--claude", "--codex"]
                } else {
                    &["uninstall"]
                };
                let other = h.join(format!("rw{i}")).display().to_string();
                rw(&h, &h, args, &[("REPOWIRE_HOME", &other)])
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap().ok();
    }
    let cj = json(&h.join(".claude.json"));
    assert_eq!(cj["projects"].as_object().unwrap().len(), 2000);
    for f in [".claude/settings.json", ".codex/hooks.json"] {
        if h.join(f).exists() {
            json(&h.join(f));
        }
    }
    let leftovers: Vec<_> = tree(&h)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("repowire-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Codex keys trust by a hook's position: when uninstall moves the user's
/// own hook up, its trust entry moves with it.
#[test]
fn a_users_own_codex_hook_stays_trusted_across_uninstall() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    rw(h, h, &["setup", "--codex"], &[]).ok();
    let hp = h.join(".codex/hooks.json");
    let mut cx = json(&hp);
    cx["hooks"]["Stop"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"hooks": [{"type": "command", "command": "say done"}]}));
    std::fs::write(&hp, serde_json::to_string_pretty(&cx).unwrap()).unwrap();
    let cp = h.join(".codex/config.toml");
    let mut toml = std::fs::read_to_string(&cp).unwrap();
    let key = |g: u32| format!("\"{}:stop:{g}:0\"", hp.display());
    toml.push_str(&format!(
        "\n[hooks.state.{}]\ntrusted_hash = \"sha256:users-own\"\n",
        key(1)
    ));
    std::fs::write(&cp, toml).unwrap();
    rw(h, h, &["uninstall", "--codex"], &[]).ok();
    assert_eq!(
        json(&hp)["hooks"]["Stop"][0]["hooks"][0]["command"],
        "say done"
    );
    let toml = std::fs::read_to_string(&cp).unwrap();
    let doc: toml_edit::DocumentMut = toml.parse().unwrap();
    let state = doc["hooks"]["state"].as_table().unwrap();
    assert_eq!(state.len(), 1, "{toml}");
    let k = key(0);
    assert_eq!(
        state[k.trim_matches('"')]["trusted_hash"].as_str(),
        Some("sha256:users-own"),
        "{toml}"
    );
}

#[test]
fn setup_from_a_binary_not_named_repowire_says_so_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let other = h.join("bin").join("rw-copy");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::copy(BIN, &other).unwrap();
    let out = Command::new(&other)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", h)
        .current_dir(h)
        .args(["setup", "--claude", "--codex"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r: Run = out.into();
    r.fails(1, "client_config");
    assert!(
        r.stderr.contains("binary named `repowire`") && r.stderr.contains("rw-copy"),
        "{}",
        r.stderr
    );
    let mut left = tree(h);
    left.retain(|p, _| !p.starts_with("bin"));
    assert!(left.is_empty(), "{left:?}");
}
