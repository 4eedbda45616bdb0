//! Unit tests of what `spawn.rs` decides without tmux: names, sessions,
//! and the checks of a spawn request.

use super::*;
use crate::TmuxConfig;
use repowire_core::policy::Policy;

fn spec(path: &str, backend: &str, command: Option<&str>) -> SpawnSpec {
    SpawnSpec {
        path: PathBuf::from(path),
        backend: backend.into(),
        name: None,
        circle: "dev.team".into(),
        command: command.map(String::from),
        server: None,
        message: None,
        by: "admin".into(),
        job: None,
    }
}

#[test]
fn names_come_from_the_directory() {
    assert_eq!(base_name(Path::new("/src/my app!")), "my-app");
    assert_eq!(base_name(Path::new("/src/api.v2")), "api.v2");
    assert_eq!(base_name(Path::new("/")), "agent");
    assert_eq!(base_name(Path::new("/x/..")), "agent");
    assert_eq!(base_name(Path::new("/x/ééé")), "agent");
    assert_eq!(
        base_name(&PathBuf::from(format!("/{}", "a".repeat(99)))).len(),
        64
    );
    assert_eq!(session_name("dev.team"), "dev_team");
}

/// Every refusal is a `bad_request` that says what to do.
#[test]
fn specs_are_checked() {
    let cfg = TmuxConfig::default();
    let pol = Policy::default();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let ok = plan(&cfg, &pol, &spec(d, "claude-code", None)).unwrap();
    assert_eq!(ok.command, "claude");
    assert_eq!(ok.server, "repowire");
    assert_eq!(ok.session, "dev_team");
    let shell = plan(&cfg, &pol, &spec(d, SHELL, Some("sh run.sh"))).unwrap();
    assert_eq!(shell.command, "sh run.sh");
    let file = dir.path().join("f");
    std::fs::write(&file, "").unwrap();
    for (s, says) in [
        (spec("rel/dir", "codex", None), "not absolute"),
        (spec("/no/such/dir/x", "codex", None), "cannot be used"),
        (
            spec(file.to_str().unwrap(), "codex", None),
            "not a directory",
        ),
        (spec(d, SHELL, None), "pass a command"),
        (spec(d, "gemini", None), "claude-code, codex"),
        (spec(d, SHELL, Some("a\nb")), "control characters"),
        (spec(d, SHELL, Some("  ")), "empty"),
        (
            SpawnSpec {
                server: Some("a,b".into()),
                ..spec(d, "codex", None)
            },
            "invalid tmux server",
        ),
        (
            SpawnSpec {
                server: Some(file.to_str().unwrap().into()),
                ..spec(d, "codex", None)
            },
            "not a socket",
        ),
        (
            SpawnSpec {
                server: Some(format!("{d}/no-such-socket")),
                ..spec(d, "codex", None)
            },
            "No such file",
        ),
    ] {
        let e = plan(&cfg, &pol, &s).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{s:?}");
        assert!(e.message.contains(says), "{s:?}: {}", e.message);
    }
    let bad_name = SpawnSpec {
        name: Some("no spaces".into()),
        ..spec(d, "codex", None)
    };
    assert_eq!(
        plan(&cfg, &pol, &bad_name).unwrap_err().code,
        ErrorCode::InvalidName
    );
}
