//! Personas in the daemon: loading the active ones at boot, the file watcher
//! behind hot reload, decision accounting, and the HTTP routes. The host
//! itself (programs and per-circle instances) is [`super::persona_host`].
//! Decisions run on blocking threads, never on the event loop.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, Query};
pub use super::persona_host::PersonaHost;
use crate::pipeline::{self, Input};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{CircleReq, DecideReq, DecideResp, PersonaStatus, UsePersonaReq};
use repowire_core::error::{Error, ErrorCode};
use repowire_persona::catalog;
use serde::Deserialize;
use std::time::Duration;

/// Load the personas active in the database (at boot).
pub fn load_active(h: &DaemonHandle) {
    match h.store.active_personas() {
        Ok(list) => {
            for (circle, name) in list {
                h.personas.set_active(&circle, Some(&name));
                if let Err(e) = h.personas.ensure(&name) {
                    tracing::warn!(%circle, persona = %name, error = %e, "active persona failed to load; the built-in policy decides");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "could not read active personas"),
    }
}

/// Watch `<home>/personas` and reload changed personas. The watcher lives as
/// long as the returned value.
pub fn watch(h: DaemonHandle) -> anyhow::Result<impl Send + 'static> {
    use notify_debouncer_full::notify::{EventKind, RecursiveMode};
    let dir = catalog::user_dir(&h.home.dir);
    repowire_client::home::private_dir(&dir)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(100),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            // Reading a file is an Access event: never reload on those, or
            // every reload would trigger the next.
            let relevant = match res {
                Ok(events) => events
                    .iter()
                    .any(|e| !matches!(e.event.kind, EventKind::Access(_))),
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        },
    )?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
            let hh = h.clone();
            let changes = tokio::task::spawn_blocking(move || hh.personas.reload_changed())
                .await
                .unwrap_or_default();
            for (name, sha, res) in changes {
                let (kind, payload) = match &res {
                    Ok(g) => (
                        "persona_reloaded",
                        serde_json::json!({"persona": name, "sha256": sha, "generation": g}),
                    ),
                    Err(e) => (
                        "persona_reload_failed",
                        serde_json::json!({"persona": name, "sha256": sha, "error": e}),
                    ),
                };
                match &res {
                    Ok(g) => tracing::info!(persona = %name, generation = g, "persona reloaded"),
                    Err(e) => {
                        tracing::warn!(persona = %name, error = %e, "persona reload failed; keeping the last good version")
                    }
                }
                if let Err(e) = h.store.persona_event(kind, &name, None, payload) {
                    tracing::error!(error = %e, "could not record a persona event");
                }
            }
        }
    });
    Ok(debouncer)
}

type H = State<DaemonHandle>;

/// The circle a persona command is about: asked, else the caller's, else default.
fn circle_of(c: &Caller, asked: Option<String>) -> Result<String, Error> {
    let circle = asked
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| repowire_core::peer::DEFAULT_CIRCLE.to_string());
    repowire_core::peer::validate_name("circle", &circle)?;
    if let Some(me) = c.viewer()
        && me.circle != circle
    {
        return Err(Error::new(
            ErrorCode::CrossCircle,
            format!("{} may only manage its own circle {:?}", me.name, me.circle),
        ));
    }
    Ok(circle)
}

/// Changing a circle's persona: admin, or that circle's orchestrator.
fn may_manage(c: &Caller) -> Result<String, Error> {
    match c.viewer() {
        None => Ok("admin".into()),
        Some(p) if p.role == repowire_core::peer::Role::Orchestrator => Ok(p.name.clone()),
        Some(p) => Err(Error::forbidden(format!(
            "{} is not the orchestrator of {:?}; only it (or the admin) may change the persona",
            p.name, p.circle
        ))),
    }
}

pub async fn use_persona(
    State(h): H,
    c: Caller,
    Body(req): Body<UsePersonaReq>,
) -> ApiResult<Json<PersonaStatus>> {
    let circle = circle_of(&c, req.circle)?;
    let by = may_manage(&c)?;
    repowire_core::peer::validate_name("persona name", &req.name)
        .map_err(|e| Error::new(ErrorCode::UnknownPersona, e.message))?;
    // The catalog reads a name ending in `.lua` as a file path (for the
    // offline CLI and the admin's check-in scripts); here it would be a file
    // relative to the daemon's working directory, outside the home.
    if req.name.ends_with(".lua") {
        return Err(Error::new(
            ErrorCode::UnknownPersona,
            "a persona is used by its name (NAME for <home>/personas/NAME.lua or a shipped one), not by a file",
        )
        .into());
    }
    let hh = h.clone();
    let name = req.name.clone();
    let c2 = circle.clone();
    // The circle's own instance starts now, so a top level that fails in it
    // is refused here rather than at the first decision.
    let p = tokio::task::spawn_blocking(move || hh.personas.instance(&c2, &name))
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
    h.store.set_persona(&circle, &p.name, &p.sha256, &by)?;
    h.personas.set_active(&circle, Some(&p.name));
    Ok(Json(h.personas.status(&circle, Some(&p.name))))
}

pub async fn clear_persona(
    State(h): H,
    c: Caller,
    Body(req): Body<CircleReq>,
) -> ApiResult<Json<PersonaStatus>> {
    let circle = circle_of(&c, req.circle)?;
    let by = may_manage(&c)?;
    h.store.clear_persona(&circle, &by)?;
    h.personas.set_active(&circle, None);
    Ok(Json(h.personas.status(&circle, None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircleQ {
    circle: Option<String>,
}

pub async fn persona_status(
    State(h): H,
    c: Caller,
    Query(q): Query<CircleQ>,
) -> ApiResult<Json<PersonaStatus>> {
    let circle = circle_of(&c, q.circle)?;
    let name = h.store.active_persona(&circle)?;
    Ok(Json(h.personas.status(&circle, name.as_deref())))
}

pub async fn active(State(h): H, c: Caller) -> ApiResult<Json<Vec<PersonaStatus>>> {
    let scope = c.scope_circle(None)?;
    let list = h.store.active_personas()?;
    Ok(Json(
        list.into_iter()
            .filter(|(circle, _)| scope.as_ref().is_none_or(|s| s == circle))
            .map(|(circle, name)| h.personas.status(&circle, Some(&name)))
            .collect(),
    ))
}

/// Ask the circle's active persona (else the built-in policy) for a route
/// over the live mesh. Nothing is executed: this is the dry run.
pub async fn decide(
    State(h): H,
    c: Caller,
    Body(req): Body<DecideReq>,
) -> ApiResult<Json<DecideResp>> {
    let circle = circle_of(&c, req.circle.clone())?;
    if req.job.is_some() == req.review.is_some() {
        return Err(Error::bad_request("give exactly one of `job` or `review`").into());
    }
    let hh = h.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<DecideResp, Error> {
        let input = match (&req.job, &req.review) {
            (Some(job), _) => Input::Dispatch(job),
            (_, Some(item)) => Input::Review(item),
            _ => unreachable!("checked above"),
        };
        let d = pipeline::decide(&hh, &circle, input, serde_json::json!({}))?;
        let generation = d
            .persona
            .as_deref()
            .and_then(|n| hh.personas.status(&circle, Some(n)).generation);
        Ok(DecideResp {
            route: d.out(),
            persona: d.persona,
            generation,
            circle,
        })
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))??;
    Ok(Json(res))
}
