//! Feeding mesh events to personas (`on_event`) and carrying out the routes
//! they return, as the circle's orchestrator.
//!
//! Ask, job and review events (`ask_*`, `job_*`, `review_*`) are observed. Routes are executed as the orchestrator of the circle
//! (no orchestrator: nothing is sent, and that is recorded). Two guards stop
//! feedback loops: events about asks this executor created are not fed back,
//! and a circle may have at most 60 persona-made messages per minute.

use super::DaemonHandle;
use crate::pipeline::{self, Input, Outcome, Target};
use repowire_core::event::{Event, EventKind, EventRecord, Family};
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

    /// Give back the slot of a send that sent nothing (no orchestrator).
    fn refund(&mut self, circle: &str) {
        if let Some(q) = self.sent.get_mut(circle) {
            q.pop_back();
        }
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

/// Carry out one route in `circle` as its orchestrator, under the guards.
fn execute(
    h: &DaemonHandle,
    guards: &Mutex<Guards>,
    circle: &str,
    route: &Route,
) -> serde_json::Value {
    let sends = matches!(
        route,
        Route::Ask { .. } | Route::Notify { .. } | Route::Fanout { .. }
    );
    let lock = || guards.lock().unwrap_or_else(|p| p.into_inner());
    if sends && !lock().allow(circle) {
        return json!({"route": route.out(None), "done": false, "why": format!("over {PER_MINUTE} persona messages a minute in this circle")});
    }
    match pipeline::execute(h, &Target::Orchestrator(circle), route) {
        Ok(done) => {
            match &done {
                Outcome::Asked { ask_id } => lock().remember(ask_id.to_string()),
                Outcome::FannedOut { ask_ids } => {
                    let mut g = lock();
                    for id in ask_ids {
                        g.remember(id.to_string());
                    }
                }
                Outcome::Skipped { .. } if sends => lock().refund(circle),
                _ => {}
            }
            done.event_json(route)
        }
        Err(e) => json!({"route": route.out(None), "done": false, "why": e.to_string()}),
    }
}

/// What `on_event` is handed: the event without identity internals.
fn event_view(e: &EventRecord) -> serde_json::Value {
    json!({"seq": e.seq, "ts_ms": e.ts_ms, "kind": e.kind, "subject": e.subject,
           "related": e.related, "circle": e.circle, "payload": e.payload_value()})
}

/// Run until the daemon stops: feed ask events to the circles' personas.
pub async fn run(h: DaemonHandle) {
    let guards = Arc::new(Mutex::new(Guards::default()));
    let mut rx = h.store.subscribe();
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
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
            _ = &mut stopping => return,
        };
        // Every event on the bus is one this daemon committed (typed); a
        // kind it cannot name is not acted on.
        let Some(kind) = e
            .event
            .as_ref()
            .map(Event::kind)
            .or_else(|| EventKind::parse(&e.kind).ok())
        else {
            continue;
        };
        // A peer arriving gives held-back jobs another chance.
        let arrived = match kind {
            EventKind::PeerRegistered | EventKind::PeerResumed | EventKind::PeerAlive => true,
            EventKind::PeerStatus => matches!(
                &e.event,
                Some(Event::PeerStatus {
                    to: Status::Online | Status::Idle,
                    ..
                })
            ),
            _ => false,
        };
        // (A read first: a peer arriving where nothing waits costs no write.)
        if arrived
            && let Some(circle) = &e.circle
            && h.store.has_holds(circle).unwrap_or(true)
        {
            let (hh, circle) = (h.clone(), circle.clone());
            let _ = tokio::task::spawn_blocking(move || hh.store.release_holds(&circle)).await;
        }
        if !matches!(kind.family(), Family::Ask | Family::Job | Family::Review) {
            continue;
        }
        // Cheap filters first, before anything is copied or a thread used:
        // is there a persona to ask, and is the event not its own doing?
        let Some(circle) = e.circle.as_deref() else {
            continue;
        };
        if !h.personas.active_has(circle, "on_event") {
            continue;
        }
        if guards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .own
            .contains(&e.subject)
        {
            continue;
        }
        let circle = circle.to_string();
        let (hh, g) = (h.clone(), guards.clone());
        let work = move || {
            let view = event_view(&e);
            let d = pipeline::decide(&hh, &circle, Input::OnEvent(&view), json!({}))?;
            let Some(name) = d.persona else {
                return Ok(());
            };
            for r in &d.routes {
                let done = execute(&hh, &g, &circle, r);
                let route = Event::PersonaRoute {
                    persona: name.clone(),
                    entry: "on_event".into(),
                    event: e.seq,
                    outcome: done,
                };
                hh.store.persona_event(&name, Some(&circle), route)?;
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
