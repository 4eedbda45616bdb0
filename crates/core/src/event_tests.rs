//! Every kind: its string, its payload exactly as the log held it before the
//! types, and the way back from (kind, payload) to the same typed event.

use super::*;
use serde_json::json;
use std::collections::HashSet;

fn s(v: &str) -> String {
    v.to_string()
}

/// One sample of every kind (every shape of the multi-shape ones), with the
/// payload the untyped writers produced for it.
fn samples() -> Vec<(Event, Value)> {
    use AskMove as A;
    use JobMove as J;
    vec![
        (
            Event::AskQueued(A::Queued {
                from: s("a"),
                to: s("b"),
                expires_at_ms: 9,
                recipient_offline: false,
                reply_to: None,
            }),
            json!({"from": "a", "to": "b", "expires_at_ms": 9, "recipient_offline": false, "reply_to": null}),
        ),
        (
            Event::AskDelivered(A::To { to: s("b") }),
            json!({"to": "b"}),
        ),
        (Event::AskPickedUp(A::By { by: s("b") }), json!({"by": "b"})),
        (
            Event::AskAnswered(A::Answered {
                by: s("b"),
                answer_bytes: 3,
            }),
            json!({"by": "b", "answer_bytes": 3}),
        ),
        (Event::AskClosed(A::By { by: s("b") }), json!({"by": "b"})),
        (
            Event::AskClosed(A::Acked {
                by: s("b"),
                ack_message_bytes: None,
            }),
            json!({"by": "b", "ack_message_bytes": null}),
        ),
        (
            Event::AskClosed(A::Acked {
                by: s("b"),
                ack_message_bytes: Some(2),
            }),
            json!({"by": "b", "ack_message_bytes": 2}),
        ),
        (
            Event::AskExpired(A::Expired {
                to: s("b"),
                expires_at_ms: 5,
            }),
            json!({"to": "b", "expires_at_ms": 5}),
        ),
        (
            Event::AskCanceled(A::PeerGone {
                why: s("asker unregistered"),
                peer: s("a"),
            }),
            json!({"why": "asker unregistered", "peer": "a"}),
        ),
        (
            Event::AskFailed(A::PeerGone {
                why: s("recipient unregistered"),
                peer: s("b"),
            }),
            json!({"why": "recipient unregistered", "peer": "b"}),
        ),
        (
            Event::AskReminded {
                to: s("b"),
                delivery_id: s("dlv-1"),
            },
            json!({"to": "b", "delivery_id": "dlv-1"}),
        ),
        (
            Event::AskManyCreated {
                from: s("a"),
                to: vec![s("b"), s("c@ops")],
            },
            json!({"from": "a", "to": ["b", "c@ops"]}),
        ),
        (
            Event::DeliveryQueued {
                to: s("b"),
                to_peer_id: s("peer-1"),
                from: None,
                kind: DeliveryKind::System,
            },
            json!({"to": "b", "to_peer_id": "peer-1", "from": null, "kind": "system"}),
        ),
        (
            Event::DeliveryLeased {
                to: s("b"),
                attempt: 1,
                lease_until_ms: 7,
                route: None,
            },
            json!({"to": "b", "attempt": 1, "lease_until_ms": 7}),
        ),
        (
            Event::DeliveryLeased {
                to: s("b"),
                attempt: 2,
                lease_until_ms: 7,
                route: Some(DeliveryRoute::Hook),
            },
            json!({"to": "b", "attempt": 2, "lease_until_ms": 7, "route": "hook"}),
        ),
        (
            Event::DeliveryConfirmed(Confirmed::Consumer {
                to: s("b"),
                kind: DeliveryKind::Ask,
            }),
            json!({"to": "b", "kind": "ask"}),
        ),
        (
            Event::DeliveryConfirmed(Confirmed::Acted {
                by: s("recipient acted on the ask"),
            }),
            json!({"by": "recipient acted on the ask"}),
        ),
        (
            Event::DeliveryDropped { why: s("gone") },
            json!({"why": "gone"}),
        ),
        (Event::DeliveryPushed { to: s("b") }, json!({"to": "b"})),
        (
            Event::DeliveryFailed {
                to: s("b"),
                route: DeliveryRoute::Tmux,
                attempt: 2,
                error: s("can't find pane: %9"),
                retry_in_ms: 2000,
            },
            json!({"to": "b", "route": "tmux", "attempt": 2, "error": "can't find pane: %9", "retry_in_ms": 2000}),
        ),
        (
            Event::JobCreated {
                title: s("t"),
                by: s("a"),
                owner: s("a"),
            },
            json!({"title": "t", "by": "a", "owner": "a"}),
        ),
        (Event::JobQueued(J::By { by: s("a") }), json!({"by": "a"})),
        (
            Event::JobDispatched(J::Dispatched {
                to: s("b"),
                attempt: 1,
                by: s("a"),
            }),
            json!({"to": "b", "attempt": 1, "by": "a"}),
        ),
        (
            Event::JobRunning(J::Update {
                by: s("b"),
                phase: Some(s("build")),
            }),
            json!({"by": "b", "phase": "build"}),
        ),
        (
            Event::JobSucceeded(J::Update {
                by: s("b"),
                phase: None,
            }),
            json!({"by": "b", "phase": null}),
        ),
        (
            Event::JobFailed(J::Update {
                by: s("b"),
                phase: None,
            }),
            json!({"by": "b", "phase": null}),
        ),
        (
            Event::JobCanceled(J::By {
                by: s("grace period"),
            }),
            json!({"by": "grace period"}),
        ),
        (
            Event::JobTimedOut(J::TimedOut {
                deadline_ms: Some(4),
            }),
            json!({"deadline_ms": 4}),
        ),
        (
            Event::JobUpdated {
                by: s("b"),
                phase: None,
                note: true,
            },
            json!({"by": "b", "note": true}),
        ),
        (
            Event::JobUpdated {
                by: s("b"),
                phase: Some(None),
                note: false,
            },
            json!({"by": "b", "phase": null, "note": false}),
        ),
        (
            Event::JobCancelRequested {
                by: s("a"),
                grace_ms: 30,
            },
            json!({"by": "a", "grace_ms": 30}),
        ),
        (
            Event::JobExecutorLost {
                assignee: s("b"),
                attempt: 2,
                requeued: true,
            },
            json!({"assignee": "b", "attempt": 2, "requeued": true}),
        ),
        (Event::JobRetried { attempts: 2 }, json!({"attempts": 2})),
        (
            Event::ReviewRequested {
                reference: s("pr-1"),
                author: s("a"),
                by: s("o"),
            },
            json!({"ref": "pr-1", "author": "a", "by": "o"}),
        ),
        (
            Event::ReviewReopened {
                reference: s("pr-1"),
                head_sha: s("abc"),
                by: s("o"),
            },
            json!({"ref": "pr-1", "head_sha": "abc", "by": "o"}),
        ),
        (
            Event::ReviewAssigned {
                reference: s("pr-1"),
                reviewer: s("r"),
            },
            json!({"ref": "pr-1", "reviewer": "r"}),
        ),
        (
            Event::ReviewUpdated {
                reference: s("pr-1"),
                head_sha: s("def"),
            },
            json!({"ref": "pr-1", "head_sha": "def"}),
        ),
        (
            Event::ReviewMarked {
                reference: s("pr-1"),
                reviewer: s("r"),
                sha: s("def"),
                verdict: s("approved"),
            },
            json!({"ref": "pr-1", "reviewer": "r", "sha": "def", "verdict": "approved"}),
        ),
        (
            Event::ReviewClosed {
                reference: s("pr-1"),
                by: s("a"),
            },
            json!({"ref": "pr-1", "by": "a"}),
        ),
        (
            Event::ScheduleCreated {
                to: s("b"),
                kind: ScheduleKind::Notify,
                next_fire_ms: 8,
            },
            json!({"to": "b", "kind": "notify", "next_fire_ms": 8}),
        ),
        (Event::SchedulePaused {}, json!({})),
        (Event::ScheduleResumed {}, json!({})),
        (Event::ScheduleDeleted {}, json!({})),
        (
            Event::ScheduleFired {
                outcome: s("sent"),
                missed: false,
                next_fire_ms: None,
            },
            json!({"outcome": "sent", "missed": false, "next_fire_ms": null}),
        ),
        (
            Event::ScheduleFireFailed {
                error: s("x"),
                retry_in_ms: 1000,
            },
            json!({"error": "x", "retry_in_ms": 1000}),
        ),
        (
            Event::PeerRegistered {
                name: s("a"),
                role: Role::Agent,
                backend: Some(s("claude")),
            },
            json!({"name": "a", "role": "agent", "backend": "claude"}),
        ),
        (Event::PeerResumed { name: s("a") }, json!({"name": "a"})),
        (
            Event::PeerUpdated {
                name: s("a"),
                description: None,
                tags: Some(vec![s("x")]),
            },
            json!({"name": "a", "description": null, "tags": ["x"]}),
        ),
        (
            Event::PeerStatus {
                name: s("a"),
                from: Status::Busy,
                to: Status::Idle,
            },
            json!({"name": "a", "from": "busy", "to": "idle"}),
        ),
        (Event::PeerAlive { name: s("a") }, json!({"name": "a"})),
        (
            Event::PeerGhost {
                name: s("a"),
                last_seen_ms: 3,
            },
            json!({"name": "a", "last_seen_ms": 3}),
        ),
        (
            Event::PeerGone {
                name: s("a"),
                why: s("its tmux pane %3 is gone"),
            },
            json!({"name": "a", "why": "its tmux pane %3 is gone"}),
        ),
        (
            Event::PeerSpawned {
                name: s("w"),
                backend: s("shell"),
                path: s("/src/app"),
                by: s("orch"),
                job: Some(s("job-1")),
            },
            json!({"name": "w", "backend": "shell", "path": "/src/app", "by": "orch", "job": "job-1"}),
        ),
        (
            Event::PeerSpawnFailed {
                name: s("w"),
                why: s("never registered"),
                job: None,
            },
            json!({"name": "w", "why": "never registered"}),
        ),
        (
            Event::PeerUnregistered {
                name: s("a"),
                why: s("asked"),
            },
            json!({"name": "a", "why": "asked"}),
        ),
        (
            Event::PeerRoleChanged {
                name: s("a"),
                from: Role::Agent,
                to: Role::Orchestrator,
                why: s("claimed"),
            },
            json!({"name": "a", "from": "agent", "to": "orchestrator", "why": "claimed"}),
        ),
        (
            Event::RoleClaimed {
                name: s("a"),
                role: Role::Orchestrator,
                previous: None,
                takeover: None,
            },
            json!({"name": "a", "role": "orchestrator", "previous": null, "takeover": null}),
        ),
        (
            Event::RoleReleased {
                name: s("a"),
                role: Role::Orchestrator,
            },
            json!({"name": "a", "role": "orchestrator"}),
        ),
        (
            Event::PersonaActivated {
                persona: s("p"),
                sha256: s("0123"),
                by: s("admin"),
            },
            json!({"persona": "p", "sha256": "0123", "by": "admin"}),
        ),
        (
            Event::PersonaCleared {
                persona: s("p"),
                by: s("admin"),
            },
            json!({"persona": "p", "by": "admin"}),
        ),
        (
            Event::PersonaReloaded {
                persona: s("p"),
                sha256: s("0123"),
                generation: 2,
            },
            json!({"persona": "p", "sha256": "0123", "generation": 2}),
        ),
        (
            Event::PersonaReloadFailed {
                persona: s("p"),
                sha256: s("0123"),
                error: s("bad"),
            },
            json!({"persona": "p", "sha256": "0123", "error": "bad"}),
        ),
        (
            Event::PersonaError {
                persona: s("p"),
                entry: s("load"),
                error: s("bad"),
                location: None,
                extra: Map::new(),
            },
            json!({"persona": "p", "entry": "load", "error": "bad"}),
        ),
        (
            Event::PersonaError {
                persona: s("p"),
                entry: s("dispatch"),
                error: s("bad"),
                location: Some(None),
                extra: [(s("job_id"), json!("job-1"))].into_iter().collect(),
            },
            json!({"persona": "p", "entry": "dispatch", "error": "bad", "location": null, "job_id": "job-1"}),
        ),
        (
            Event::PersonaRoute {
                persona: s("p"),
                entry: s("on_event"),
                event: 4,
                outcome: json!({"done": true}),
            },
            json!({"persona": "p", "entry": "on_event", "event": 4, "outcome": {"done": true}}),
        ),
    ]
}

#[test]
fn every_kind_round_trips_with_todays_payload() {
    let mut seen = HashSet::new();
    for (e, want) in samples() {
        let kind = e.kind();
        seen.insert(kind);
        assert_eq!(EventKind::parse(kind.as_str()).unwrap(), kind);
        let got = e.payload().unwrap();
        assert_eq!(got, want, "{kind} payload");
        // Byte-identical to the untyped writer's text (same key order).
        assert_eq!(got.to_string(), want.to_string());
        assert_eq!(
            Event::parse(kind.as_str(), &got).unwrap(),
            e,
            "{kind} read back"
        );
    }
    let missing: Vec<_> = EventKind::ALL
        .iter()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(missing.is_empty(), "kinds without a sample: {missing:?}");
}

#[test]
fn the_tag_is_the_kind_string() {
    for (e, _) in samples() {
        let v = serde_json::to_value(&e).unwrap();
        let tag = v.as_object().and_then(|m| m.keys().next().cloned());
        assert_eq!(tag.as_deref(), Some(e.kind().as_str()));
    }
}

#[test]
fn unknown_kinds_and_wrong_payloads_are_refused() {
    let e = Event::parse("ask_teleported", &json!({})).unwrap_err();
    assert!(e.message.contains("ask_teleported"), "{}", e.message);
    let e = Event::parse("peer_status", &json!({"name": "a"})).unwrap_err();
    assert!(e.message.contains("peer_status"), "{}", e.message);
}

#[test]
fn state_moves_name_the_state() {
    for st in AskState::ALL {
        let e = Event::ask_moved(*st, AskMove::By { by: s("b") });
        assert_eq!(e.kind().as_str(), format!("ask_{st}"));
        assert_eq!(e.kind().ends_an_ask(), st.is_terminal(), "{st}");
    }
    for st in JobState::ALL {
        let e = Event::job_moved(*st, JobMove::By { by: s("b") });
        assert_eq!(e.kind().as_str(), format!("job_{st}"));
    }
    assert_eq!(EventKind::JobTimedOut.family(), Family::Job);
    assert_eq!(EventKind::RoleClaimed.family(), Family::Peer);
    assert_eq!(EventKind::PersonaRoute.family(), Family::Persona);
}

#[test]
fn the_http_api_doc_lists_every_kind() {
    let doc = include_str!("../../../docs/http-api.md");
    for k in EventKind::ALL {
        assert!(
            doc.contains(&format!("`{k}`")),
            "docs/http-api.md does not list {k}"
        );
    }
}

#[test]
fn mesh_parts_name_what_a_snapshot_shows() {
    let parts = |k: EventKind| {
        let p = k.mesh_parts();
        (p.peers, p.jobs)
    };
    // Peers and roles: the peers part.
    assert_eq!(parts(EventKind::PeerRegistered), (true, false));
    assert_eq!(parts(EventKind::RoleClaimed), (true, false));
    // An ask opening or closing moves a load; its delivery does not.
    assert_eq!(parts(EventKind::AskQueued), (true, false));
    assert_eq!(parts(EventKind::AskClosed), (true, false));
    assert_eq!(parts(EventKind::AskDelivered), (false, false));
    // Every job event changes the job list; a new (queued) job no load.
    assert_eq!(parts(EventKind::JobCreated), (false, true));
    assert_eq!(parts(EventKind::JobDispatched), (true, true));
    assert_eq!(parts(EventKind::JobSucceeded), (true, true));
    assert_eq!(parts(EventKind::JobQueued), (true, true));
    // Deliveries, reviews, schedules and persona bookkeeping: neither.
    for k in [
        EventKind::DeliveryQueued,
        EventKind::DeliveryConfirmed,
        EventKind::ReviewAssigned,
        EventKind::ScheduleFired,
        EventKind::PersonaRoute,
    ] {
        assert_eq!(parts(k), (false, false), "{k}");
    }
}
