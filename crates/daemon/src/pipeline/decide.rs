//! [`decide`]: persona choice, budgets, stats, errors and fallback for every
//! entry point, in one place.

use crate::DaemonHandle;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::event::Event;
use repowire_core::mesh::{JobInput, ReviewInput};
use repowire_core::route::{Route, RouteOut};
use repowire_persona::{self as persona, PersonaError};
use std::time::Instant;

/// What a persona is asked, one variant per entry point.
pub enum Input<'a> {
    /// `dispatch(job, mesh)`: the active persona, else the built-in policy.
    Dispatch(&'a JobInput),
    /// `review(item, mesh)`: the active persona, else the built-in policy.
    Review(&'a ReviewInput),
    /// `checkin(ctx, mesh)`: the persona the schedule names, else the
    /// active one; no fallback (a failed script is a failed fire).
    Checkin {
        persona: Option<&'a str>,
        ctx: &'a serde_json::Value,
    },
    /// `on_event(event, mesh)`: the active persona if it has the entry
    /// point; a failure sends nothing.
    OnEvent(&'a serde_json::Value),
}

impl Input<'_> {
    /// The entry point's name (as in events and stats).
    pub fn entry(&self) -> &'static str {
        match self {
            Input::Dispatch(_) => "dispatch",
            Input::Review(_) => "review",
            Input::Checkin { .. } => "checkin",
            Input::OnEvent(_) => "on_event",
        }
    }
}

/// A decision: who made it, the routes, and the persona's error if it
/// failed (then the routes are the fallback's, or none).
pub struct Decision {
    /// The persona asked (None: the built-in policy decided).
    pub persona: Option<String>,
    /// One route for dispatch and review; any number for check-ins and
    /// `on_event`.
    pub routes: Vec<Route>,
    pub error: Option<PersonaError>,
}

impl Decision {
    /// The first route in its stable JSON form, with the error that made it
    /// a fallback (dispatch and review answer with exactly one route).
    pub fn out(&self) -> RouteOut {
        let err = self.error.as_ref().map(PersonaError::described);
        match self.routes.first() {
            Some(r) => r.out(err),
            None => Route::Decline {
                why: "no route".into(),
            }
            .out(err),
        }
    }
}

/// Ask `circle`'s persona for a decision over the live mesh. `about` adds
/// fields (the job, the ref, the event) to a `persona_error` event. Runs
/// Lua: call it from a blocking thread.
pub fn decide(
    h: &DaemonHandle,
    circle: &str,
    input: Input<'_>,
    about: serde_json::Value,
) -> Result<Decision, Error> {
    let entry = input.entry();
    match input {
        Input::Dispatch(job) => with_fallback(h, circle, entry, about, |p, mesh| {
            persona::decide_dispatch(p, job, mesh)
        }),
        Input::Review(item) => with_fallback(h, circle, entry, about, |p, mesh| {
            persona::decide_review(p, item, mesh)
        }),
        Input::Checkin { persona, ctx } => {
            let name = match persona {
                Some(p) => p.to_string(),
                None => h.personas.active_for(circle).ok_or_else(|| {
                    Error::bad_request(format!(
                        "circle {circle:?} has no active persona and the schedule names none"
                    ))
                })?,
            };
            let p = h.personas.instance(circle, &name)?;
            let mesh = h.personas.mesh(h, circle)?;
            match p.checkin(ctx, &mesh) {
                Ok(routes) => Ok(Decision {
                    persona: Some(name),
                    routes,
                    error: None,
                }),
                Err(e) => {
                    let _ = persona_error(h, circle, &name, entry, &e, about);
                    Err(Error::new(ErrorCode::PersonaError, e.message))
                }
            }
        }
        Input::OnEvent(event) => {
            let none = |persona| Decision {
                persona,
                routes: Vec::new(),
                error: None,
            };
            let Some(name) = h.personas.active_for(circle) else {
                return Ok(none(None));
            };
            if !h.personas.program(&name).is_some_and(|p| p.has("on_event")) {
                return Ok(none(None));
            }
            // The circle's own instance: no script state crosses circles.
            let Some(p) = h.personas.for_decision(&h.store, circle, &name) else {
                return Ok(none(None));
            };
            let mesh = h.personas.mesh(h, circle)?;
            match p.on_event(event, &mesh) {
                Ok(routes) => Ok(Decision {
                    persona: Some(name),
                    routes,
                    error: None,
                }),
                Err(e) => {
                    persona_error(h, circle, &name, entry, &e, about)?;
                    Ok(Decision {
                        error: Some(e),
                        ..none(Some(name))
                    })
                }
            }
        }
    }
}

/// Dispatch and review: the active persona's answer (its own circle
/// instance), else the built-in policy's; the decision is counted and a
/// fallback recorded.
fn with_fallback(
    h: &DaemonHandle,
    circle: &str,
    entry: &str,
    about: serde_json::Value,
    ask: impl FnOnce(
        Option<&persona::Persona>,
        &std::sync::Arc<repowire_core::mesh::MeshSnapshot>,
    ) -> persona::Decision,
) -> Result<Decision, Error> {
    let mesh = h.personas.mesh(h, circle)?;
    let name = h.store.active_persona(circle)?;
    let p = name
        .as_deref()
        .and_then(|n| h.personas.for_decision(&h.store, circle, n));
    let started = Instant::now();
    let d = ask(p.as_deref(), &mesh);
    if let Some(n) = name.as_deref() {
        h.personas
            .record(circle, n, started.elapsed(), d.error.as_ref());
        if let Some(e) = &d.error {
            persona_error(h, circle, n, entry, e, about)?;
        }
    }
    Ok(Decision {
        persona: name,
        routes: vec![d.route],
        error: d.error,
    })
}

/// A `persona_error` event (with `about`'s fields).
fn persona_error(
    h: &DaemonHandle,
    circle: &str,
    name: &str,
    entry: &str,
    e: &PersonaError,
    about: serde_json::Value,
) -> Result<(), Error> {
    let failed = Event::PersonaError {
        persona: name.to_string(),
        entry: entry.to_string(),
        error: e.message.clone(),
        location: Some(e.location.clone()),
        extra: about.as_object().cloned().unwrap_or_default(),
    };
    h.store.persona_event(name, Some(circle), failed)
}
