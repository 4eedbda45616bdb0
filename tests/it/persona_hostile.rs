//! Hostile personas (tests/fixtures/hostile) against the real binary: the
//! offline CLI (`persona check`, `persona test`) over every fixture, and a
//! daemon that keeps answering, falls back with a `persona_error` naming
//! file:line, reloads a fixed file, and stops on SIGTERM.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Far longer than any persona budget: only a hang reaches it.
const GUARD: Duration = Duration::from_secs(60);

fn hostile_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/personas")
        .join(name)
        .display()
        .to_string()
}

/// Run the CLI offline; fail the test if it does not finish.
fn cli_guarded(home: &Path, args: &[&str]) -> Run {
    let mut child = cli_command(home, args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cli");
    if wait_timeout(&mut child, GUARD).is_none() {
        let _ = child.kill();
        panic!("`repowire {}` hung", args.join(" "));
    }
    child.wait_with_output().expect("cli output").into()
}

/// `text` names `file:LINE` for the fixture file.
fn names_line(text: &str, file: &str) -> bool {
    text.match_indices(file).any(|(i, _)| {
        let rest = &text[i + file.len()..];
        rest.strip_prefix(':')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[test]
fn cli_check_and_test_refuse_every_hostile_fixture_with_file_and_line() {
    let home = tmp_path();
    let mut files: Vec<PathBuf> = std::fs::read_dir(hostile_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .collect();
    files.sort();
    assert!(files.len() >= 20);
    for f in files {
        let path = f.display().to_string();
        let file = f.file_name().unwrap().to_str().unwrap().to_string();
        let r = cli_guarded(&home, &["orchestrator", "persona", "check", &path]);
        assert_eq!(r.code, 1, "{file}: check passed\n{}{}", r.stdout, r.stderr);
        assert!(
            names_line(&format!("{}{}", r.stdout, r.stderr), &file),
            "{file}: check does not name the line\n{}{}",
            r.stdout,
            r.stderr
        );
        for (flag, input) in [("--job", "job_api.json"), ("--review", "review_plain.json")] {
            let args = [
                "orchestrator",
                "persona",
                "test",
                &path,
                "--fixture",
                &fixture("team.json"),
                flag,
                &fixture(input),
            ];
            let v = cli_guarded(&home, &args).ok().json();
            assert_eq!(v["fallback"], true, "{file} {flag}: {v}");
            let err = v["error"].as_str().unwrap_or_default();
            assert!(names_line(err, &file), "{file} {flag}: {v}");
        }
        let ctx = home.join("ctx.json");
        std::fs::write(&ctx, "{}").unwrap();
        let v = cli_guarded(
            &home,
            &[
                "orchestrator",
                "persona",
                "test",
                &path,
                "--fixture",
                &fixture("team.json"),
                "--checkin",
                ctx.to_str().unwrap(),
            ],
        )
        .ok()
        .json();
        assert_eq!(v["fallback"], true, "{file} --checkin: {v}");
        assert!(
            names_line(v["error"].as_str().unwrap_or_default(), &file),
            "{file} --checkin: {v}"
        );
    }
}

/// A persona path that is not a regular file: a FIFO (opening it would block
/// forever: the CLI, or the daemon's reload of `<home>/personas/`) or a device
/// such as /dev/zero (its size says 0; reading it would never end).
#[test]
fn a_persona_file_that_is_not_a_regular_file_is_refused_at_once() {
    let home = tmp_path();
    let dir = tmp_path();
    let fifo = dir.join("fifo.lua");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    // The identity text beside a good script is read under the same rule.
    let good = dir.join("good.lua");
    std::fs::write(
        &good,
        "function dispatch(job, mesh) return route.decline('x') end\n",
    )
    .unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(dir.join("good.md"))
        .status()
        .expect("mkfifo");
    assert!(st.success());
    cli_guarded(
        &home,
        &["orchestrator", "persona", "check", good.to_str().unwrap()],
    )
    .ok();
    let zero = dir.join("zero.lua");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for path in [&fifo, &zero] {
        let path = path.to_str().unwrap();
        let r = cli_guarded(&home, &["orchestrator", "persona", "check", path]);
        assert_eq!(r.code, 1, "{path}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("not a regular file"),
            "{path}: {}{}",
            r.stdout,
            r.stderr
        );
    }
}

async fn events_after(d: &Daemon, after: i64) -> Vec<serde_json::Value> {
    d.admin()
        .events(Some(after), None, None)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

async fn wait_kind(
    d: &Daemon,
    kind: &str,
    after: i64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(Duration::from_secs(30), kind, || async {
        events_after(d, after)
            .await
            .into_iter()
            .find(|e| e["kind"] == kind && pred(e))
    })
    .await
}

async fn last_seq(d: &Daemon) -> i64 {
    let ev = d.admin().events(None, Some(1), None).await.unwrap().events;
    ev.last().map_or(0, |e| e.seq)
}

/// Bound a request: a persona that hangs the daemon fails here, not by
/// hanging the test run.
async fn guarded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer (the daemon hung)"))
}

#[tokio::test]
async fn a_hostile_persona_never_stops_the_daemon() {
    let mut d = Daemon::start(&[]);
    let olga = d.peer("olga", None).await;
    olga.claim_orchestrator(false).await.unwrap();
    let alice = d.peer("alice", None).await;
    d.peer("bob", None).await;
    // A second circle with a persona of its own, to see its reload survive.
    d.peer("oscar", Some("ops")).await;
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    let evil = dir.join("evil.lua");
    // Every entry point returns a table whose metamethods spin forever.
    std::fs::copy(hostile_dir().join("index_loop.lua"), &evil).unwrap();
    std::fs::write(
        dir.join("other.lua"),
        "function dispatch(job, mesh)\n  return route.assign('oscar', {note = 'other v1'})\nend\n",
    )
    .unwrap();
    d.cli(&["orchestrator", "persona", "use", "evil"]).ok();
    d.cli(&["orchestrator", "persona", "use", "other", "--circle", "ops"])
        .ok();

    // POST /v1/jobs answers, through the built-in policy.
    let after = last_seq(&d).await;
    let req: repowire::api::JobCreateReq =
        serde_json::from_value(serde_json::json!({"title": "parser"})).unwrap();
    let job = guarded("job create", alice.create_job(&req)).await.unwrap();
    assert!(job.assignee.is_some(), "the fallback assigned it: {job:?}");
    let ev = wait_kind(&d, "persona_error", after, |e| {
        e["payload"]["entry"] == "dispatch"
    })
    .await;
    let loc = ev["payload"]["location"].as_str().unwrap_or_default();
    assert!(names_line(loc, "evil.lua"), "{ev}");
    // A review request answers through the built-in policy too.
    let rr: repowire::api::ReviewRequestReq =
        serde_json::from_value(serde_json::json!({"ref": "pr-1", "head_sha": "abc"})).unwrap();
    let r = guarded("review request", alice.request_review(&rr))
        .await
        .unwrap();
    assert!(r.route.fallback, "{r:?}");
    assert!(
        names_line(r.route.error.as_deref().unwrap(), "evil.lua"),
        "{r:?}"
    );
    assert!(
        !r.review.reviewers.is_empty() && !r.review.reviewers.iter().any(|p| p.reviewer == "alice")
    );
    // The dry run, too, and the rest of the API keeps answering.
    let decide: repowire::api::DecideReq =
        serde_json::from_value(serde_json::json!({"job": {"id": "j", "title": "t"}})).unwrap();
    let r = guarded("decide", d.admin().decide(&decide)).await.unwrap();
    assert!(r.route.fallback && names_line(r.route.error.as_deref().unwrap(), "evil.lua"));
    assert!(guarded("health", d.healthy()).await);
    guarded("peers", d.admin().list_peers(None)).await.unwrap();

    // on_event: an ask wakes it; the error is recorded and nothing hangs.
    let after = last_seq(&d).await;
    guarded(
        "ask",
        alice.ask(&repowire::api::AskReq {
            to: "bob".into(),
            text: "ping".into(),
            timeout_ms: Some(500),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let ev = wait_kind(&d, "persona_error", after, |e| {
        e["payload"]["entry"] == "on_event"
    })
    .await;
    assert!(
        names_line(
            ev["payload"]["location"].as_str().unwrap_or_default(),
            "evil.lua"
        ),
        "{ev}"
    );
    // The background tick keeps running: the unanswered ask expires.
    wait_kind(&d, "ask_expired", after, |_| true).await;

    // A check-in: the schedule fires, the error is recorded.
    let after = last_seq(&d).await;
    let sched: repowire::api::ScheduleReq = serde_json::from_value(
        serde_json::json!({"to": "self", "kind": "checkin", "fire_at": "1s", "text": "{}"}),
    )
    .unwrap();
    guarded("schedule", olga.create_schedule(&sched))
        .await
        .unwrap();
    let ev = wait_kind(&d, "persona_error", after, |e| {
        e["payload"]["entry"] == "checkin"
    })
    .await;
    assert!(
        names_line(
            ev["payload"]["location"].as_str().unwrap_or_default(),
            "evil.lua"
        ),
        "{ev}"
    );
    assert!(guarded("health", d.healthy()).await);

    // Saving a hostile version of another persona is refused at reload, and
    // hot reload still works for the others afterwards.
    let after = last_seq(&d).await;
    std::fs::copy(
        hostile_dir().join("every_metamethod.lua"),
        dir.join("other.lua"),
    )
    .unwrap();
    let ev = wait_kind(&d, "persona_reload_failed", after, |e| {
        e["payload"]["persona"] == "other"
    })
    .await;
    assert!(
        names_line(ev["payload"]["error"].as_str().unwrap(), "other.lua"),
        "{ev}"
    );
    let ops: repowire::api::DecideReq = serde_json::from_value(
        serde_json::json!({"circle": "ops", "job": {"id": "j", "title": "t"}}),
    )
    .unwrap();
    let r = guarded("decide ops", d.admin().decide(&ops)).await.unwrap();
    assert_eq!(
        r.route.note.as_deref(),
        Some("other v1"),
        "the last good version: {r:?}"
    );
    // A file that is not UTF-8 is refused with a reason, once.
    let after = last_seq(&d).await;
    std::fs::write(dir.join("other.lua"), b"\xff\xfe function dispatch() end").unwrap();
    let ev = wait_kind(&d, "persona_reload_failed", after, |e| {
        e["payload"]["persona"] == "other"
    })
    .await;
    assert!(
        ev["payload"]["error"].as_str().unwrap().contains("UTF-8"),
        "{ev}"
    );
    let r = guarded("decide ops", d.admin().decide(&ops)).await.unwrap();
    assert_eq!(r.route.note.as_deref(), Some("other v1"), "{r:?}");

    // The fixed file reloads and dispatches.
    let after = last_seq(&d).await;
    std::fs::write(
        &evil,
        "function dispatch(job, mesh)\n  return route.assign('bob', {note = 'fixed'})\nend\n",
    )
    .unwrap();
    wait_kind(&d, "persona_reloaded", after, |e| {
        e["payload"]["persona"] == "evil"
    })
    .await;
    let req: repowire::api::JobCreateReq =
        serde_json::from_value(serde_json::json!({"title": "lexer"})).unwrap();
    let job = guarded("job create", alice.create_job(&req)).await.unwrap();
    assert_eq!(job.assignee.as_deref(), Some("bob"), "{job:?}");

    // And SIGTERM stops it.
    let st = d.signal_and_wait("-TERM");
    assert!(st.success(), "{st:?}");
}
