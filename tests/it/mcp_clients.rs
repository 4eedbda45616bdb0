//! `repowire mcp` against MCP clients nobody here wrote: the MCP Inspector
//! CLI (its `--strict` schema-portability check) and the official Python SDK
//! (which negotiates protocol 2026-07-28, where client info and
//! capabilities travel in each request's `_meta`).
//!
//! The clients are installed once per target directory, pinned, from npm
//! and PyPI (`target/tmp/mcp-clients/`, under a lock so parallel tests wait
//! for one install): Node 22 (the `node` package; the Inspector needs
//! ≥ 22.19) with `@modelcontextprotocol/inspector`, and a venv with `mcp`.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";
const NODE: &str = "node@22";
const PYTHON_SDK: &str = "mcp==2.3.0";

/// `target/tmp/mcp-clients/<what>`, made by `install` the first time (a
/// failed install is retried by the next run).
fn installed(what: &str, install: impl FnOnce(&Path)) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-clients");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(format!("{what}.lock"))).unwrap();
    lock.lock().unwrap();
    let dir = root.join(what);
    let done = root.join(format!("{what}.done"));
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        install(&dir);
        std::fs::write(&done, "").unwrap();
    }
    dir
}

fn run(c: &mut Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory whose `node_modules/.bin` has `node` (22) and `mcp-inspector`.
fn inspector() -> PathBuf {
    installed("inspector", |dir| {
        run(
            Command::new("npm")
                .args(["install", "--no-fund", "--no-audit", "--prefix"])
                .arg(dir)
                .args([NODE, INSPECTOR]),
            "npm install (the MCP Inspector and Node 22)",
        )
    })
}

/// The venv with the Python MCP SDK.
fn python_sdk() -> PathBuf {
    installed("python-sdk", |dir| {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(dir),
            "python3 -m venv",
        );
        run(
            Command::new(dir.join("bin/pip")).args(["install", "-q", PYTHON_SDK]),
            "pip install mcp",
        );
    })
}

/// Run `c` to its end (a generous guard against a hang), stdout and stderr
/// through files (a tool list is larger than a pipe's buffer).
fn finish(mut c: Command, what: &str) -> (std::process::ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = c
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = wait_timeout(&mut child, Duration::from_secs(180)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("{what} hung")
    });
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&o), read(&e))
}

/// The Inspector CLI against `repowire mcp` in the daemon's home.
fn inspect(d: &Daemon, name: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let bin = inspector().join("node_modules/.bin");
    let home = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new(bin.join("mcp-inspector"));
    c.env("PATH", path)
        .env("HOME", home.path())
        .arg("--cli")
        .args(args)
        .arg("-e")
        .arg(format!("REPOWIRE_HOME={}", d.home_path().display()))
        .args(["--", BIN, "mcp", "--name", name, "--delivery", "pull"]);
    finish(c, "mcp-inspector")
}

/// `--strict` finds nothing to report in our tool schemas (it reported 48
/// warnings: `type: [X, "null"]`, an untyped `result_data`), and the
/// Inspector lists and calls tools.
#[test]
fn the_inspector_strict_check_reports_nothing() {
    let d = Daemon::start(&[]);
    let (st, out, err) = inspect(&d, "insp", &["--strict", "--method", "tools/list"]);
    assert!(st.success(), "tools/list: {st}\n{out}\n{err}");
    assert!(
        !err.to_lowercase().contains("warning") && !err.to_lowercase().contains("error"),
        "the strict check reported: {err}"
    );
    let list: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let tools = list["tools"].as_array().expect("tools");
    assert!(tools.len() > 30 && tools.iter().any(|t| t["name"] == "whoami"));

    let (st, out, err) = inspect(
        &d,
        "insp",
        &[
            "--format",
            "json",
            "--method",
            "tools/call",
            "--tool-name",
            "whoami",
        ],
    );
    assert!(st.success(), "tools/call: {st}\n{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let me = &r["result"]["structuredContent"];
    assert_eq!(me["name"], "insp", "{r}");
    // The backend is the client's name.
    assert_eq!(me["backend"], "inspector-cli", "{r}");

    // A misspelled parameter is refused (the Inspector exits non-zero on
    // an isError result and prints it).
    let (st, out, _) = inspect(
        &d,
        "insp",
        &[
            "--format",
            "json",
            "--method",
            "tools/call",
            "--tool-name",
            "list_peers",
            "--tool-args-json",
            r#"{"cirle": "ops"}"#,
        ],
    );
    assert!(!st.success());
    assert!(
        out.contains("bad_request") && out.contains("did you mean `circle`"),
        "{out}"
    );
}

/// The official Python SDK, protocol 2026-07-28: serverInfo, the tools, a
/// call, a refused parameter; the capability `experimental["claude/channel"]`
/// sent in each request's `_meta` (there is no `initialize`) makes
/// `--delivery auto` push, as it does at `initialize`, and the events arrive.
#[test]
fn the_python_sdk_on_the_newer_protocol() {
    let d = Daemon::start(&[]);
    let venv = python_sdk();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mcp_clients/python_sdk.py"
    );
    let session = |name: &str, mode: &str| {
        let mut c = Command::new(venv.join("bin/python"));
        c.arg(script).arg(BIN).arg(d.home_path()).args([name, mode]);
        let (st, out, err) = finish(c, "the Python SDK client");
        assert!(st.success(), "{st}\n{out}\n{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect(&out)
    };
    let v = session("py", "channels");
    assert_eq!(v["sdk"], "2.3.0", "{v}");
    assert_eq!(v["protocol_version"], "2026-07-28", "{v}");
    assert_eq!(v["server_info"]["name"], "repowire", "{v}");
    assert_eq!(
        v["server_info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{v}"
    );
    assert!(v["tools"].as_array().unwrap().len() > 30, "{v}");
    assert_eq!(v["whoami_error"], false, "{v}");
    assert_eq!(v["whoami"]["name"], "py", "{v}");
    assert_eq!(v["whoami"]["backend"], "python-agent", "{v}");
    assert_eq!(v["whoami"]["route"], "channel", "{v}");
    assert_eq!(v["bad_error"], true, "{v}");
    assert_eq!(v["bad"]["code"], "bad_request", "{v}");
    assert!(
        v["bad"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `circle`"),
        "{v}"
    );
    // The note to itself came as a channel event.
    assert_eq!(
        v["pushed"]["content"], "notify from py: a note to self",
        "{v}"
    );
    assert_eq!(v["pushed"]["meta"]["kind"], "notify", "{v}");
    // Without the capability: the inbox tool only.
    let v = session("py-plain", "plain");
    assert_eq!(v["whoami"]["route"], "pull", "{v}");
}
