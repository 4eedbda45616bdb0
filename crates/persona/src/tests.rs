//! The sandbox, budgets, fallback and the built-in/default.lua equivalence.

use super::*;
use repowire_core::mesh::PeerSnap;
use std::time::Instant;

fn peer(name: &str, backend: &str, tags: &[&str], load: i64, status: &str) -> PeerSnap {
    PeerSnap {
        name: name.into(),
        circle: "default".into(),
        role: "agent".into(),
        backend: backend.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        status: status.into(),
        load,
        description: String::new(),
        last_seen_age_s: 3,
    }
}

fn mesh() -> Arc<MeshSnapshot> {
    Arc::new(MeshSnapshot {
        circle: "default".into(),
        now_ms: 1_795_510_800_000,
        peers: vec![
            peer("alice", "claude-code", &["rust", "api"], 2, "online"),
            peer("bob", "codex", &["rust"], 0, "online"),
            peer("carol", "gemini", &["docs"], 1, "idle"),
            peer("dave", "codex", &["rust", "api"], 0, "offline"),
        ],
        jobs: Default::default(),
    })
}

fn job(tags: &[&str]) -> JobInput {
    JobInput {
        id: "job-1".into(),
        title: "t".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

fn compile(src: &str) -> Result<Persona, PersonaError> {
    let limits = Limits {
        budget: Duration::from_millis(50),
        memory_bytes: 4 << 20,
        ..Default::default()
    };
    Persona::compile("t", PersonaOrigin::File, "t.lua", src, limits)
}

/// Compile must succeed; the dispatch call must fail with a message
/// containing `want`, and the decision must fall back.
fn dispatch_fails(body: &str, want: &str) {
    let p = compile(&format!("function dispatch(job, mesh)\n{body}\nend"))
        .unwrap_or_else(|e| panic!("compile: {e}"));
    let e = p.dispatch(&job(&[]), &mesh()).unwrap_err();
    assert!(e.message.contains(want), "{body:?}: {:?}", e.message);
    let d = decide_dispatch(Some(&p), &job(&[]), &mesh());
    assert!(d.error.is_some() && d.out().fallback);
}

#[test]
fn sandbox_escapes_fail_cleanly() {
    for (body, want) in [
        ("return io.open('/etc/passwd')", "nil"),
        ("return os.time()", "nil"),
        ("return require('x')", "nil"),
        ("return load('return 1')()", "nil"),
        ("return loadstring('return 1')()", "nil"),
        ("return string.dump(dispatch)", "nil"),
        ("return debug.traceback()", "nil"),
        ("return getfenv(1)", "nil"),
        ("return collectgarbage('count')", "nil"),
        ("print('hi') return nil", "nil"),
        ("setmetatable(mesh.peers()[1], {}) return nil", "readonly"),
        (
            "getmetatable(mesh.peers()[1]).has_tag = nil return nil",
            "readonly",
        ),
        ("table.insert(mesh.peers(), 'x') return nil", "readonly"),
        (
            "local p = mesh.peers()[1]; p.load = 0; return route.assign(p)",
            "readonly",
        ),
        ("mesh.circle = 'x' return nil", "readonly"),
        ("job.tags[1] = 'x' return nil", "readonly"),
        ("rawset(mesh, 'circle', 'x') return nil", "readonly"),
        ("rawset(_G, 'route', nil) return nil", "readonly"),
        ("_G.string = nil return nil", "readonly"),
        ("string.rep = nil return nil", "readonly"),
        ("route.assign = nil return nil", "readonly"),
    ] {
        dispatch_fails(body, want);
    }
}

#[test]
fn budgets_stop_bombs_and_the_vm_recovers() {
    let started = Instant::now();
    dispatch_fails("while true do end", "time budget");
    dispatch_fails("local s = string.rep('x', 1e9) return nil", "memory");
    dispatch_fails(
        "local s = string.rep('a', 20000) return string.find(s, string.rep('a-', 40) .. 'b') and nil",
        "time budget",
    );
    dispatch_fails("local t = {} for i = 1, 1e8 do t[i] = i end return nil", "");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "each was stopped by its budget"
    );
    // After a memory error, the same VM answers again.
    let p = compile(
        "local n = 0\nfunction dispatch(job, mesh)\n n += 1\n if n == 1 then local s = string.rep('x', 1e9) end\n return route.assign('bob')\nend",
    )
    .unwrap();
    assert!(p.dispatch(&job(&[]), &mesh()).is_err());
    assert_eq!(
        p.dispatch(&job(&[]), &mesh()).unwrap(),
        Route::Assign {
            peer: "bob".into(),
            note: None
        }
    );
}

#[test]
fn load_errors_point_at_the_line() {
    let e = compile("local x = 1\nfunction dispatch(job, mesh)\n  return route.assign(\nend")
        .unwrap_err();
    assert_eq!(e.location.as_deref(), Some("t.lua:4"), "{e:?}");
    let e = compile("local x = 1\nerror('boom at load')").unwrap_err();
    assert_eq!(e.location.as_deref(), Some("t.lua:2"), "{e:?}");
    let e = compile("local function helper() end").unwrap_err();
    assert!(e.message.contains("no entry point"), "{e:?}");
    let e = compile("function dispatc(job, mesh) return nil end").unwrap_err();
    assert!(e.message.contains("did you mean `dispatch`"), "{e:?}");
    let p = compile(
        "function dispatch(job, mesh)\n  local p = nil\n  return route.assign(p.name)\nend",
    )
    .unwrap();
    let e = p.dispatch(&job(&[]), &mesh()).unwrap_err();
    assert_eq!(e.location.as_deref(), Some("t.lua:3"), "{e:?}");
}

#[test]
fn invalid_routes_fall_back_with_the_reason() {
    for (body, want) in [
        ("return route.assign('nobody')", "no peer"),
        ("return route.assign('dave')", "offline"),
        ("return {route = 'teleport'}", "unknown route"),
        ("return 42", "not a route"),
        ("return nil", "returned nothing"),
        ("return route.defer('soon', 'x')", "invalid duration"),
        ("return route.fanout({}, 'x')", "no peers"),
    ] {
        dispatch_fails(body, want);
    }
    let p = compile("function review(item, mesh) return route.assign(item.author) end").unwrap();
    let item = ReviewInput {
        reference: "r".into(),
        author: "bob".into(),
        ..Default::default()
    };
    let d = decide_review(Some(&p), &item, &mesh());
    assert!(d.error.unwrap().message.contains("author"));
    assert_ne!(
        d.route,
        Route::Assign {
            peer: "bob".into(),
            note: None
        }
    );
}

#[test]
fn views_expose_the_documented_fields_only() {
    let p = compile(
        r#"function dispatch(job, mesh)
  local p = mesh.peer("alice")
  local parts = {}
  for _, k in ipairs({"name","circle","role","backend","status","load","description","last_seen_age_s"}) do
    table.insert(parts, k .. "=" .. tostring(p[k]))
  end
  table.insert(parts, "tags=" .. table.concat(p.tags, "+"))
  table.insert(parts, "has_rust=" .. tostring(p:has_tag("rust")))
  table.insert(parts, "online=" .. #mesh.peers({status = "online"}))
  table.insert(parts, "rust=" .. #mesh.peers({tag = "rust"}))
  table.insert(parts, "now=" .. mesh.now())
  table.insert(parts, "orch=" .. tostring(mesh.orchestrator()))
  local ok, err = pcall(function() return p.peer_id end)
  table.insert(parts, "peer_id=" .. tostring(ok and err))
  return route.ask_user(table.concat(parts, " "))
end"#,
    )
    .unwrap();
    let Route::AskUser { question } = p.dispatch(&job(&[]), &mesh()).unwrap() else {
        panic!()
    };
    assert_eq!(
        question,
        "name=alice circle=default role=agent backend=claude-code status=online load=2 description= \
         last_seen_age_s=3 tags=rust+api has_rust=true online=2 rust=3 now=1795510800 orch=nil peer_id=nil"
    );
}

#[test]
fn default_lua_is_the_builtin_policy() {
    let src = catalog::find(std::path::Path::new("/nonexistent"), "default").unwrap();
    let p = src.compile(Limits::default()).unwrap();
    let m = mesh();
    for tags in [&[][..], &["rust"], &["rust", "api"], &["docs"], &["nope"]] {
        for prev in [vec![], vec!["bob".to_string()]] {
            let mut j = job(tags);
            j.previous_assignees = prev;
            assert_eq!(
                p.dispatch(&j, &m).unwrap(),
                builtin::dispatch(&j, &m),
                "{tags:?}"
            );
        }
    }
    for author in ["alice", "bob", "carol", "zed"] {
        let item = ReviewInput {
            reference: "pr-1".into(),
            head_sha: "abc".into(),
            author: author.into(),
            ..Default::default()
        };
        assert_eq!(
            p.review(&item, &m).unwrap(),
            builtin::review(&item, &m),
            "{author}"
        );
    }
}

/// The hostile fixtures: (name, source).
fn hostile_fixtures() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hostile");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/hostile")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".lua")?.to_string();
            Some((name, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 20, "the hostile set is there");
    out
}

/// Run `f` on its own thread; panic if it has not finished after a
/// generous guard (a hang is the failure these tests look for).
fn must_finish<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("{what} hung: script code ran outside the budget"),
    }
}

/// The error names `path:LINE`.
fn names_line(e: &PersonaError, path: &str) -> bool {
    e.location.as_deref().is_some_and(|l| {
        l.strip_prefix(path)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

#[test]
fn hostile_personas_fall_back_with_file_and_line_and_never_hang() {
    for (name, src) in hostile_fixtures() {
        let path = format!("hostile/{name}.lua");
        let at_load = src.contains("-- at: load");
        let what = path.clone();
        let report = must_finish(&what, move || -> Vec<String> {
            let mut bad = Vec::new();
            let p = match Persona::compile(
                &name,
                PersonaOrigin::File,
                &path,
                &src,
                Limits::default(),
            ) {
                Err(e) => {
                    if !at_load {
                        bad.push(format!("did not load: {e:?}"));
                    } else if !names_line(&e, &path) {
                        bad.push(format!("load error without {path}:LINE: {e:?}"));
                    }
                    return bad;
                }
                Ok(_) if at_load => return vec!["loaded, but its top level is hostile".into()],
                Ok(p) => p,
            };
            let m = mesh();
            let item = ReviewInput {
                reference: "r".into(),
                author: "alice".into(),
                ..Default::default()
            };
            let ev = serde_json::json!({"kind": "ask_queued", "subject": "a-1"});
            // Three rounds: fixtures that rotate through shapes show each.
            for round in 0..3 {
                let answers = [
                    ("dispatch", p.dispatch(&job(&[]), &m).map(|_| ())),
                    ("review", p.review(&item, &m).map(|_| ())),
                    ("checkin", p.checkin(&serde_json::json!({}), &m).map(|_| ())),
                    ("on_event", p.on_event(&ev, &m).map(|_| ())),
                ];
                for (entry, r) in answers {
                    match r {
                        Ok(()) => bad.push(format!("{entry} #{round} answered")),
                        Err(e) if !names_line(&e, &path) => {
                            bad.push(format!("{entry} #{round} without {path}:LINE: {e:?}"))
                        }
                        Err(e) if e.message.len() > 1200 => {
                            bad.push(format!("{entry} #{round}: message not cut"))
                        }
                        Err(_) => {}
                    }
                }
                let d = decide_dispatch(Some(&p), &job(&[]), &m);
                if !d.out().fallback {
                    bad.push(format!("dispatch #{round} did not fall back"));
                }
            }
            // The lint (`persona check`, hot reload) finds the problem too.
            if lint_returns(&p).is_empty() {
                bad.push("lint found nothing".into());
            }
            bad
        });
        assert!(report.is_empty(), "{what}: {report:#?}");
    }
}

#[test]
fn instances_of_one_program_keep_their_own_state() {
    let first = compile(
        "local n = 0\nfunction dispatch(job, mesh)\n  n += 1\n  return route.ask_user(tostring(n))\nend",
    )
    .unwrap();
    let (a, b) = (
        first.program().instantiate().unwrap(),
        first.program().instantiate().unwrap(),
    );
    let said = |p: &Persona| match p.dispatch(&job(&[]), &mesh()).unwrap() {
        Route::AskUser { question } => question,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (said(&a), said(&a), said(&a)),
        ("1".into(), "2".into(), "3".into())
    );
    assert_eq!(said(&b), "1", "a fresh instance starts from the top level");
    assert_eq!(said(&first), "1");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_is_capped_per_call() {
    let p = compile(
        "function dispatch(job, mesh)\n  local big = string.rep('x', 1e6)\n  for i = 1, 1000 do log(big) end\n  return route.assign('bob')\nend",
    )
    .unwrap();
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let r = tracing::subscriber::with_default(sub, || p.dispatch(&job(&[]), &mesh()));
    assert!(r.is_ok(), "{r:?}");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 101, "100 lines and a note");
    assert!(lines.iter().all(|l| l.len() < 800), "each line is cut");
    assert!(lines[100].contains("dropped"), "{}", lines[100]);
}

#[test]
fn no_lua_runs_outside_a_budget() {
    let vm = vm::Vm::new(&Limits::default(), "t").unwrap();
    // Outside a budget the interrupt refuses at once, so even a path that
    // forgot to open one cannot spin.
    let spin = vm.lua.load("while true do end").into_function().unwrap();
    let e = must_finish("an unbudgeted loop", move || {
        spin.call::<()>(()).unwrap_err()
    });
    assert!(e.to_string().contains("outside its budget"), "{e}");
    let r = vm.budgeted(Duration::from_millis(20), |lua| {
        lua.load("local n = 0 for i = 1, 10 do n += i end return n")
            .eval::<i64>()
    });
    assert_eq!(r.unwrap(), 55, "inside one, Lua runs");
}

#[test]
fn pathological_sources_are_refused_not_crashed_on() {
    let deep = |open: &str, close: &str| {
        format!(
            "function dispatch(job, mesh)\n  local x = {}1{}\n  return route.assign('bob')\nend",
            open.repeat(100_000),
            close.repeat(100_000)
        )
    };
    for src in [deep("(", ")"), deep("{", "}"), deep("-", "")] {
        let e = must_finish("a deeply nested source", move || compile(&src).map(|_| ()));
        let e = e.unwrap_err();
        assert!(e.location.is_some(), "{e:?}");
    }
}

#[test]
fn oversized_scripts_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.lua");
    let body = "-- x\n".repeat(300_000);
    std::fs::write(
        &f,
        format!("{body}function dispatch(job, mesh) return nil end"),
    )
    .unwrap();
    let e = catalog::find(dir.path(), f.to_str().unwrap()).unwrap_err();
    assert!(e.contains("at most 1048576"), "{e}");
}

fn with_jobs(jobs: repowire_core::mesh::Jobs) -> Arc<MeshSnapshot> {
    let mut m = (*mesh()).clone();
    m.jobs = jobs;
    Arc::new(m)
}

fn job_snap(title: &str) -> repowire_core::mesh::JobSnap {
    repowire_core::mesh::JobSnap {
        id: format!("job-{title}"),
        title: title.into(),
        state: "queued".into(),
        assignee: None,
        tags: vec!["rust".into()],
        updated_age_s: 0,
    }
}

/// `mesh.jobs` entries are frozen like every other view, also when the
/// list is read on first use.
#[test]
fn job_views_are_frozen() {
    let list = repowire_core::mesh::Jobs::ready(vec![job_snap("a")]);
    for body in [
        "mesh.jobs()[1].state = 'succeeded' return nil",
        "mesh.jobs()[1].tags[1] = 'x' return nil",
        "table.insert(mesh.jobs(), 'x') return nil",
    ] {
        let p = compile(&format!("function dispatch(job, mesh)\n{body}\nend")).unwrap();
        let e = p.dispatch(&job(&[]), &with_jobs(list.clone())).unwrap_err();
        assert!(e.message.contains("readonly"), "{body}: {}", e.message);
    }
}

/// Reading the job list on first use (the daemon's store may be busy)
/// does not count against the script's budget; a read that fails is an
/// error the script sees, and is tried again by the next call.
#[test]
fn the_job_list_is_read_on_first_use_outside_the_budget() {
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = reads.clone();
    let slow = repowire_core::mesh::Jobs::deferred(Arc::new(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200)); // 4x the 50 ms budget
        Ok(vec![job_snap("a"), job_snap("b")])
    }));
    let p = compile(
        "function dispatch(job, mesh)\n  return route.ask_user(#mesh.jobs() .. ' ' .. mesh.jobs({state = 'queued'})[2].title)\nend",
    )
    .unwrap();
    let m = with_jobs(slow);
    let route = p.dispatch(&job(&[]), &m).unwrap();
    assert_eq!(route.out(None).text.as_deref(), Some("2 b"));
    // Read once, however often the script asks, and kept with the snapshot.
    p.dispatch(&job(&[]), &m).unwrap();
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A persona that never asks never reads.
    let untouched = repowire_core::mesh::Jobs::deferred(Arc::new(|| panic!("read")));
    let p2 = compile("function dispatch(job, mesh) return route.assign('bob') end").unwrap();
    p2.dispatch(&job(&[]), &with_jobs(untouched)).unwrap();

    let fails = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = fails.clone();
    let failing = repowire_core::mesh::Jobs::deferred(Arc::new(move || {
        f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err("the store is gone".to_string())
    }));
    let m = with_jobs(failing);
    let e = p.dispatch(&job(&[]), &m).unwrap_err();
    assert!(e.message.contains("the store is gone"), "{}", e.message);
    let _ = p.dispatch(&job(&[]), &m);
    assert_eq!(fails.load(std::sync::atomic::Ordering::SeqCst), 2);
}
