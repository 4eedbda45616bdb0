//! Personas in the daemon: loading the active ones at boot, the file watcher
//! behind hot reload, and choosing, clearing, reading and trying a circle's
//! persona. The host itself (programs and per-circle instances) is
//! [`crate::persona_host`]; decisions are the pipeline's. Decisions run on
//! blocking threads, never on the event loop.

use super::blocking;
use crate::DaemonHandle;
use crate::auth::Caller;
use crate::pipeline::{self, Input};
use crate::policy::{self, Action};
use repowire_client::api::{DecideReq, DecideResp, PersonaStatus, UsePersonaReq};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::event::Event;
use repowire_persona::catalog;
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

/// How long the personas directory must stay quiet before a reload: an
/// editor's save is often several events (write, rename, attributes).
const SETTLE: Duration = Duration::from_millis(100);

/// Watch `<home>/personas` and reload changed personas. The watcher lives as
/// long as the returned value. It wakes the daemon only when the directory
/// changes (inotify; the debouncer crate it replaces woke every 25 ms).
pub fn watch(h: DaemonHandle) -> anyhow::Result<impl Send + 'static> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let dir = catalog::user_dir(&h.home.dir);
    repowire_client::home::private_dir(&dir)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reading a file is an Access event: never reload on those, or
        // every reload would trigger the next.
        let relevant = match res {
            Ok(e) => !matches!(e.kind, EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Reload once no event has come for SETTLE: each event of the
            // same save starts the wait over.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            let hh = h.clone();
            let changes = tokio::task::spawn_blocking(move || hh.personas.reload_changed())
                .await
                .unwrap_or_default();
            for (name, sha, res) in changes {
                let (persona, sha256) = (name.clone(), sha.clone());
                let event = match &res {
                    Ok(g) => Event::PersonaReloaded {
                        persona,
                        sha256,
                        generation: *g,
                    },
                    Err(e) => Event::PersonaReloadFailed {
                        persona,
                        sha256,
                        error: e.to_string(),
                    },
                };
                match &res {
                    Ok(g) => tracing::info!(persona = %name, generation = g, "persona reloaded"),
                    Err(e) => {
                        tracing::warn!(persona = %name, error = %e, "persona reload failed; keeping the last good version")
                    }
                }
                if let Err(e) = h.store.persona_event(&name, None, event) {
                    tracing::error!(error = %e, "could not record a persona event");
                }
            }
        }
    });
    Ok(watcher)
}

/// The circle a persona command is about: asked, else the caller's, else
/// the default; the caller must be allowed `action` there.
fn circle_of(c: &Caller, asked: Option<String>, action: Action) -> Result<String, Error> {
    let circle = asked
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| repowire_core::peer::DEFAULT_CIRCLE.to_string());
    repowire_core::peer::validate_name("circle", &circle)?;
    policy::authorize(c, action, policy::Target::circle(&circle))?;
    Ok(circle)
}

/// Who changed a persona, for its event.
fn by(c: &Caller) -> String {
    c.viewer()
        .map_or_else(|| "admin".to_string(), |p| p.name.clone())
}

/// Make `req.name` the persona of a circle (its own instance starts now, so
/// a top level that fails is refused here rather than at the first
/// decision).
pub async fn use_persona(
    h: &DaemonHandle,
    c: &Caller,
    req: UsePersonaReq,
) -> Result<PersonaStatus, Error> {
    let circle = circle_of(c, req.circle, Action::ManagePersona)?;
    repowire_core::peer::validate_name("persona name", &req.name)
        .map_err(|e| Error::new(ErrorCode::UnknownPersona, e.message))?;
    // The catalog reads a name ending in `.lua` as a file path (for the
    // offline CLI and the admin's check-in scripts); here it would be a file
    // relative to the daemon's working directory, outside the home.
    if req.name.ends_with(".lua") {
        return Err(Error::new(
            ErrorCode::UnknownPersona,
            "a persona is used by its name (NAME for <home>/personas/NAME.lua or a shipped one), not by a file",
        ));
    }
    let (hh, name, c2) = (h.clone(), req.name.clone(), circle.clone());
    let p = blocking(move || hh.personas.instance(&c2, &name)).await?;
    h.store.set_persona(&circle, &p.name, &p.sha256, &by(c))?;
    h.personas.set_active(&circle, Some(&p.name));
    Ok(h.personas.status(&circle, Some(&p.name)))
}

/// Back to the built-in policy.
pub fn clear_persona(
    h: &DaemonHandle,
    c: &Caller,
    circle: Option<String>,
) -> Result<PersonaStatus, Error> {
    let circle = circle_of(c, circle, Action::ManagePersona)?;
    h.store.clear_persona(&circle, &by(c))?;
    h.personas.set_active(&circle, None);
    Ok(h.personas.status(&circle, None))
}

pub fn status(
    h: &DaemonHandle,
    c: &Caller,
    circle: Option<String>,
) -> Result<PersonaStatus, Error> {
    let circle = circle_of(c, circle, Action::ReadPersona)?;
    let name = h.store.active_persona(&circle)?;
    Ok(h.personas.status(&circle, name.as_deref()))
}

/// The active personas the caller may see.
pub fn active(h: &DaemonHandle, c: &Caller) -> Result<Vec<PersonaStatus>, Error> {
    let scope = policy::read_scope(c, None)?;
    Ok(h.store
        .active_personas()?
        .into_iter()
        .filter(|(circle, _)| scope.as_ref().is_none_or(|s| s == circle))
        .map(|(circle, name)| h.personas.status(&circle, Some(&name)))
        .collect())
}

/// Ask the circle's active persona (else the built-in policy) for a route
/// over the live mesh. Nothing is executed: this is the dry run.
pub async fn decide(h: &DaemonHandle, c: &Caller, req: DecideReq) -> Result<DecideResp, Error> {
    let circle = circle_of(c, req.circle.clone(), Action::DispatchDryRun)?;
    if req.job.is_some() == req.review.is_some() {
        return Err(Error::bad_request("give exactly one of `job` or `review`"));
    }
    let hh = h.clone();
    blocking(move || {
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
}
