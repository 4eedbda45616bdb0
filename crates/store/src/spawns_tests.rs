//! Unit tests of the spawn bookkeeping (`spawns.rs`).

use super::*;
use repowire_core::job::NewJob;
use repowire_core::peer::Registration;

fn store() -> (tempfile::TempDir, Store) {
    let (dir, s) = crate::testing::open();
    (dir, s)
}

fn new<'a>(base: &'a str, job: Option<&'a JobId>, max_live: usize) -> NewSpawn<'a> {
    NewSpawn {
        name: None,
        base,
        circle: "default",
        backend: "shell",
        path: "/tmp",
        server: "repowire",
        session: "default",
        by: "olga",
        job,
        max_live,
    }
}

fn pane(n: u32) -> PaneAddr {
    PaneAddr::new("/tmp/tmux-0/repowire", &format!("%{n}")).unwrap()
}

/// Names are made unique; an asked-for name must be free; the cap
/// counts open and live registered spawns only.
#[test]
fn names_and_the_cap() {
    let (_d, s) = store();
    let (a, _, sa) = s.begin_spawn(&new("app", None, 2)).unwrap();
    assert_eq!((a.name.as_str(), a.status), ("app", Status::Offline));
    assert_eq!(sa.state, SpawnState::Starting);
    let (b, _, _) = s.begin_spawn(&new("app", None, 2)).unwrap();
    assert_eq!(b.name, "app-2");
    let e = s.begin_spawn(&new("app", None, 2)).unwrap_err();
    assert_eq!(e.code, ErrorCode::SpawnLimit);
    // A failed spawn frees its place.
    assert!(s.spawn_failed(sa.id, "never registered").unwrap().is_some());
    let (c, _, _) = s.begin_spawn(&new("app", None, 2)).unwrap();
    assert_eq!(c.name, "app-3", "the failed peer keeps its name");
    let taken = NewSpawn {
        name: Some("app"),
        ..new("x", None, 9)
    };
    assert_eq!(
        s.begin_spawn(&taken).unwrap_err().code,
        ErrorCode::NameTaken
    );
    let long = "x".repeat(64);
    s.begin_spawn(&new(&long, None, 9)).unwrap();
    let (l2, _, _) = s.begin_spawn(&new(&long, None, 9)).unwrap();
    assert_eq!(l2.name.len(), 64);
    assert!(l2.name.ends_with("-2"));
}

/// A registered spawn gets the job it was started for, if still queued;
/// a failed one releases it.
#[test]
fn registration_assigns_the_job() {
    let (_d, s) = store();
    let olga = s
        .register(
            Registration {
                name: "olga".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .0;
    let job = s
        .create_job(
            &olga.id,
            &NewJob {
                title: "t".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let id = job.job_id.clone();
    let (p, _, sp) = s.begin_spawn(&new("w", Some(&id), 4)).unwrap();
    let started = s.spawn_started(sp.id, &pane(3), Some("hello")).unwrap();
    assert_eq!(started.route, "tmux:/tmp/tmux-0/repowire:%3");
    assert_eq!(s.peek(&p.id, 10).unwrap()[0].from.as_deref(), Some("olga"));
    // Offline: not registered yet.
    assert_eq!(s.spawn_registered(sp.id).unwrap(), None);
    s.heartbeat(&p.id, None).unwrap();
    assert_eq!(s.spawn_registered(sp.id).unwrap(), Some(true));
    let j = s.get_job(&id).unwrap();
    assert_eq!(j.state, JobState::Dispatched);
    assert_eq!(j.assignee.as_deref(), Some("w"));
    assert_eq!(s.spawn_registered(sp.id).unwrap(), None, "once");
    assert!(s.open_spawns().unwrap().is_empty());
    // A failed spawn leaves a job it was started for to be routed again.
    let job2 = s
        .create_job(
            &olga.id,
            &NewJob {
                title: "t2".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let id2 = job2.job_id.clone();
    s.write(|t| t.hold_job(&id2, t.now + 60_000)).unwrap();
    let (_, _, sp2) = s.begin_spawn(&new("w", Some(&id2), 4)).unwrap();
    s.spawn_started(sp2.id, &pane(4), None).unwrap();
    let f = s.spawn_failed(sp2.id, "never registered").unwrap().unwrap();
    assert_eq!(f.job.as_ref(), Some(&id2));
    assert_eq!(s.dispatchable_jobs(10).unwrap(), vec![id2]);
    assert!(s.spawn_failed(sp2.id, "again").unwrap().is_none());
}

/// A window that could not start takes its peer back out.
#[test]
fn an_aborted_spawn_removes_its_peer() {
    let (_d, s) = store();
    let (p, _, sp) = s.begin_spawn(&new("app", None, 1)).unwrap();
    s.spawn_aborted(sp.id, "tmux: no such file").unwrap();
    assert!(s.peer_by_id(&p.id).unwrap().is_none());
    let (again, _, _) = s.begin_spawn(&new("app", None, 1)).unwrap();
    assert_eq!(again.name, "app", "its name and place are free again");
    let kinds: Vec<String> = s
        .events_since(0, 100, None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"peer_spawn_failed".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"peer_unregistered".to_string()),
        "{kinds:?}"
    );
}

/// Killing a peer ends its spawns; gone is recorded once.
#[test]
fn kills_end_spawns_and_mark_gone_once() {
    let (_d, s) = store();
    let (p, _, sp) = s.begin_spawn(&new("app", None, 1)).unwrap();
    s.spawn_started(sp.id, &pane(1), None).unwrap();
    s.heartbeat(&p.id, None).unwrap();
    s.spawn_registered(sp.id).unwrap();
    assert!(s.spawns_ended(&p.id, "killed by olga").unwrap().is_empty());
    let gone = s.mark_gone(&p.id, "killed by olga").unwrap().unwrap();
    assert_eq!(gone.status, Status::Offline);
    assert!(s.mark_gone(&p.id, "again").unwrap().is_none());
    assert_eq!(s.spawn_of(&p.id).unwrap().unwrap().state, SpawnState::Ended);
    // Its place is free.
    s.begin_spawn(&new("app", None, 1)).unwrap();
}
