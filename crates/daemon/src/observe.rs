//! Feeding mesh events to personas (`on_event`) and carrying out the routes
//! they return, as the circle's orchestrator.
//!
//! Ask, job and review events (`ask_*`, `job_*`, `review_*`) are observed. Routes are executed as the orchestrator of the circle
//! (no orchestrator: nothing is sent, and that is recorded). Two guards stop
//! feedback loops: events about asks this executor created are not fed back,
//! and a circle may have at most 60 persona-made messages per minute.

use super::DaemonHandle;
use repowire_client::api::{AskManyReq, AskReq, EventInfo, NotifyReq};
use repowire_core::event::{Event, EventKind, Family};
use repowire_core::peer::Status;
use repowire_core::route::Route;
use serde_json::json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

const PER_MINUTE: usize = 60;

#[derive(Default)]
struct Guards {
    /// Asks the executor created (their events are not fed back).
    own: HashSet<String>,
    own_order: VecDeque<String>,
    /// Recent sends per circle.
    sent: HashMap<String, VecDeque<Instant>>,
}

impl Guards {
    fn remember(&mut self, id: String) {
        if self.own_order.len() >= 10_000
            && let Some(old) = self.own_order.pop_front()
        {
            self.own.remove(&old);
        }
        self.own.insert(id.clone());
        self.own_order.push_back(id);
    }

    fn allow(&mut self, circle: &str) -> bool {
        let q = self.sent.entry(circle.to_string()).or_default();
        let now = Instant::now();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            q.pop_front();
        }
        if q.len() >= PER_MINUTE {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// Carry out one route in `circle` as its orchestrator. Returns what was done.
fn execute(
    h: &DaemonHandle,
    guards: &Mutex<Guards>,
    circle: &str,
    route: &Route,
) -> serde_json::Value {
    let out = route.out(None);
    let Ok(Some(orch)) = h.store.orchestrator(circle) else {
        return json!({"route": out, "done": false, "why": "the circle has no orchestrator to act as"});
    };
    if matches!(
        route,
        Route::Ask { .. } | Route::Notify { .. } | Route::Fanout { .. }
    ) && !guards
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .allow(circle)
    {
        return json!({"route": out, "done": false, "why": format!("over {PER_MINUTE} persona messages a minute in this circle")});
    }
    let c = Some(circle.to_string());
    let res = match route {
        Route::Ask { peer, text } => h
            .store
            .ask(
                &orch.id,
                &AskReq {
                    to: peer.clone(),
                    circle: c,
                    text: text.clone(),
                    ..Default::default()
                },
                false,
            )
            .map(|r| {
                guards
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remember(r.ask.correlation_id.clone());
                json!({"correlation_id": r.ask.correlation_id})
            }),
        Route::Notify { peer, text } => h
            .store
            .notify(
                &orch.id,
                &NotifyReq {
                    to: peer.clone(),
                    circle: c,
                    text: text.clone(),
                    bypass_circle: false,
                },
                false,
            )
            .map(|r| json!({"delivery_id": r.delivery_id})),
        Route::Fanout { peers, text } => h
            .store
            .ask_many(
                &orch.id,
                &AskManyReq {
                    to: peers.clone(),
                    circle: c,
                    text: text.clone(),
                    ..Default::default()
                },
                false,
            )
            .map(|r| {
                let mut g = guards.lock().unwrap_or_else(|p| p.into_inner());
                for a in &r.asks {
                    g.remember(a.ask.correlation_id.clone());
                }
                json!({"parent_id": r.parent_id})
            }),
        // Nothing to send: recorded as the decision it is.
        Route::Defer { .. } | Route::Decline { .. } | Route::AskUser { .. } => Ok(json!({})),
        Route::Assign { .. } => {
            return json!({"route": out, "done": false, "why": "assign needs a job; an event has none"});
        }
    };
    match res {
        Ok(v) => json!({"route": out, "done": true, "result": v}),
        Err(e) => json!({"route": out, "done": false, "why": e.to_string()}),
    }
}

/// What `on_event` is handed: the event without identity internals.
fn event_view(e: &EventInfo) -> serde_json::Value {
    json!({"seq": e.seq, "ts_ms": e.ts_ms, "kind": e.kind, "subject": e.subject,
           "related": e.related, "circle": e.circle, "payload": e.payload})
}

/// Run until the daemon stops: feed ask events to the circles' personas.
pub async fn run(h: DaemonHandle) {
    let guards = Arc::new(Mutex::new(Guards::default()));
    let mut rx = h.store.subscribe();
    loop {
        let e = tokio::select! {
            r = rx.recv() => match r {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "persona observer lagged; some events were not observed");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            _ = h.stopping() => return,
        };
        // Every kind on the bus is one this daemon wrote; a kind it cannot name is not acted on.
        let Ok(kind) = EventKind::parse(&e.kind) else {
            continue;
        };
        // A peer arriving gives held-back jobs another chance.
        let arrived = match kind {
            EventKind::PeerRegistered | EventKind::PeerResumed | EventKind::PeerAlive => true,
            EventKind::PeerStatus => matches!(
                Event::parse(&e.kind, &e.payload),
                Ok(Event::PeerStatus {
                    to: Status::Online | Status::Idle,
                    ..
                })
            ),
            _ => false,
        };
        if arrived && let Some(circle) = &e.circle {
            let (hh, circle) = (h.clone(), circle.clone());
            let _ = tokio::task::spawn_blocking(move || hh.store.release_holds(&circle)).await;
        }
        if !matches!(kind.family(), Family::Ask | Family::Job | Family::Review) {
            continue;
        }
        let Some(circle) = e.circle.clone() else {
            continue;
        };
        if guards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .own
            .contains(&e.subject)
        {
            continue;
        }
        let Some(name) = h.personas.active_for(&circle) else {
            continue;
        };
        if !h.personas.program(&name).is_some_and(|p| p.has("on_event")) {
            continue;
        }
        let (hh, g) = (h.clone(), guards.clone());
        let work = move || {
            // The circle's own instance: no script state crosses circles.
            let Some(persona) = hh.personas.for_decision(&hh.store, &circle, &name) else {
                return Ok(());
            };
            let mesh = hh.personas.mesh(&hh.store, &circle)?;
            match persona.on_event(&event_view(&e), &mesh) {
                Ok(routes) => {
                    for r in &routes {
                        let done = execute(&hh, &g, &circle, r);
                        let route = Event::PersonaRoute {
                            persona: name.clone(),
                            entry: "on_event".into(),
                            event: e.seq,
                            outcome: done,
                        };
                        hh.store.persona_event(&name, Some(&circle), route)?;
                    }
                }
                Err(err) => {
                    let failed = Event::PersonaError {
                        persona: name.clone(),
                        entry: "on_event".into(),
                        error: err.message,
                        location: Some(err.location),
                        extra: Default::default(),
                    };
                    hh.store.persona_event(&name, Some(&circle), failed)?
                }
            }
            Ok::<(), repowire_core::error::Error>(())
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(Err(e)) => tracing::error!(error = %e, "persona observer failed"),
            Err(e) => tracing::error!(error = %e, "persona observer panicked"),
            Ok(Ok(())) => {}
        }
    }
}
