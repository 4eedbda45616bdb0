//! The daemon's persona host: the compiled persona behind each circle's
//! active name, hot reload, decision stats, and the HTTP routes for them.
//!
//! Reload follows STYLE.md: a changed file is compiled in a fresh VM and
//! checked; only then is the `Arc` swapped and the generation bumped. A
//! broken edit keeps the last good version and records the error. Decisions
//! clone the `Arc` first, so calls in flight finish on the version they
//! started with. Decisions run on blocking threads, never on the event loop.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, Query};
use crate::api::{CircleReq, DecideReq, DecideResp, PersonaBrief, PersonaStatus, UsePersonaReq};
use crate::core::error::{Error, ErrorCode};
use crate::core::time::now_ms;
use crate::persona::{self, Limits, Persona, PersonaError, catalog};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One loaded persona and its history.
struct Slot {
    persona: Arc<Persona>,
    generation: u64,
    loaded_at_ms: i64,
    last_reload_ms: Option<i64>,
    last_error: Option<String>,
    decisions: u64,
    fallbacks: u64,
    /// Recent decision times, µs (the last 1,000).
    samples: VecDeque<u32>,
}

/// Compiled personas by name, shared by every circle that uses them.
pub struct PersonaHost {
    home: PathBuf,
    limits: Limits,
    slots: RwLock<HashMap<String, Mutex<Slot>>>,
    generation: AtomicU64,
    /// The last mesh snapshot per circle: (store version, built at, snapshot).
    /// Reused while nothing was written and it is under a second old, so
    /// back-to-back decisions share one snapshot (and its compiled view).
    meshes: Mutex<HashMap<String, CachedMesh>>,
    /// circle → active persona name (mirrors the database, for hot paths).
    active: RwLock<HashMap<String, String>>,
    /// Personas that failed to compile, by name: (source sha, error). A
    /// failure is not retried until the source changes.
    failed: Mutex<HashMap<String, (String, Error)>>,
}

/// (store version, built at, snapshot).
type CachedMesh = (u64, Instant, Arc<crate::core::mesh::MeshSnapshot>);

fn describe(e: &PersonaError) -> String {
    match &e.location {
        Some(loc) if !e.message.contains(loc.as_str()) => format!("{loc}: {}", e.message),
        _ => e.message.clone(),
    }
}

fn sha_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn percentile(sorted: &[u32], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as u64)
}

impl PersonaHost {
    pub fn new(home: PathBuf, limits: Limits) -> Self {
        Self {
            home,
            limits,
            slots: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            meshes: Mutex::new(HashMap::new()),
            active: RwLock::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled persona for a decision, or None (the built-in policy
    /// decides). A compile failure is recorded as a `persona_error` event
    /// once per source version, and not recompiled until the file changes.
    pub fn for_decision(
        &self,
        store: &crate::store::Store,
        circle: &str,
        name: &str,
    ) -> Option<Arc<Persona>> {
        if let Some(p) = self.current(name) {
            return Some(p);
        }
        let src = catalog::find(&self.home, name).ok()?;
        let sha = sha_hex(&src.text);
        if let Some((s, _)) = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && *s == sha
        {
            return None;
        }
        match self.ensure(name) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = store.persona_event(
                    "persona_error",
                    name,
                    Some(circle),
                    serde_json::json!({"persona": name, "entry": "load", "error": e.message}),
                );
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), (sha, e));
                None
            }
        }
    }

    /// Record (or, with None, forget) a circle's active persona.
    pub fn set_active(&self, circle: &str, name: Option<&str>) {
        let mut a = self.active.write().unwrap_or_else(|e| e.into_inner());
        match name {
            Some(n) => a.insert(circle.to_string(), n.to_string()),
            None => a.remove(circle),
        };
    }

    /// The active persona of a circle, from memory.
    pub fn active_for(&self, circle: &str) -> Option<String> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(circle)
            .cloned()
    }

    /// The circle's mesh as personas see it, cached while unchanged.
    pub fn mesh(
        &self,
        store: &crate::store::Store,
        circle: &str,
    ) -> Result<Arc<crate::core::mesh::MeshSnapshot>, Error> {
        let version = store.version();
        if let Some((v, at, snap)) = self
            .meshes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(circle)
            && *v == version
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(snap.clone());
        }
        let snap = Arc::new(store.mesh_snapshot(circle)?);
        self.meshes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(circle.to_string(), (version, Instant::now(), snap.clone()));
        Ok(snap)
    }

    fn compile(&self, name: &str) -> Result<Persona, Error> {
        let src = catalog::find(&self.home, name)
            .map_err(|e| Error::new(ErrorCode::UnknownPersona, e))?;
        src.compile(self.limits.clone())
            .map_err(|e| Error::new(ErrorCode::PersonaError, describe(&e)))
    }

    /// Load `name` if it is not loaded yet.
    pub fn ensure(&self, name: &str) -> Result<Arc<Persona>, Error> {
        if let Some(p) = self.current(name) {
            return Ok(p);
        }
        let p = Arc::new(self.compile(name)?);
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(name.to_string()).or_insert_with(|| {
            Mutex::new(Slot {
                persona: p.clone(),
                generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
                loaded_at_ms: now_ms(),
                last_reload_ms: None,
                last_error: None,
                decisions: 0,
                fallbacks: 0,
                samples: VecDeque::new(),
            })
        });
        Ok(slot
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .persona
            .clone())
    }

    /// The live version of `name`, if loaded.
    pub fn current(&self, name: &str) -> Option<Arc<Persona>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .get(name)
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).persona.clone())
    }

    fn with_slot<T>(&self, name: &str, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .get(name)
            .map(|s| f(&mut s.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Count a decision and its time; keep its error if it fell back.
    pub fn record(&self, name: &str, took: Duration, error: Option<&PersonaError>) {
        self.with_slot(name, |s| {
            s.decisions += 1;
            if let Some(e) = error {
                s.fallbacks += 1;
                s.last_error = Some(describe(e));
            }
            if s.samples.len() == 1000 {
                s.samples.pop_front();
            }
            s.samples
                .push_back(took.as_micros().min(u32::MAX as u128) as u32);
        });
    }

    /// Re-read every loaded persona; recompile and swap the changed ones.
    /// Returns (name, Ok(generation) | Err(error)) for each change seen.
    pub fn reload_changed(&self) -> Vec<(String, String, Result<u64, String>)> {
        let names: Vec<String> = {
            let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
            slots.keys().cloned().collect()
        };
        let mut out = Vec::new();
        for name in names {
            let Ok(src) = catalog::find(&self.home, &name) else {
                continue; // gone entirely: keep the last good version
            };
            let sha = sha_hex(&src.text);
            let unchanged = self
                .with_slot(&name, |s| s.persona.sha256 == sha)
                .unwrap_or(true);
            if unchanged {
                continue;
            }
            // Compile in a fresh VM and check it answers with routes.
            let built = src
                .compile(self.limits.clone())
                .and_then(|p| match persona::lint_returns(&p).into_iter().next() {
                    Some(problem) => Err(PersonaError {
                        location: None,
                        message: format!("{}: {problem}", p.path),
                    }),
                    None => Ok(p),
                });
            let res = match built {
                Ok(p) => {
                    let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    self.with_slot(&name, |s| {
                        s.persona = Arc::new(p);
                        s.generation = g;
                        s.last_reload_ms = Some(now_ms());
                        s.last_error = None;
                    });
                    Ok(g)
                }
                Err(e) => {
                    let msg = describe(&e);
                    self.with_slot(&name, |s| s.last_error = Some(msg.clone()));
                    Err(msg)
                }
            };
            out.push((name, sha[..12].to_string(), res));
        }
        out
    }

    pub fn status(&self, circle: &str, name: Option<&str>) -> PersonaStatus {
        let mut st = PersonaStatus {
            circle: circle.to_string(),
            persona: name.map(str::to_string),
            sha256: None,
            source: None,
            generation: None,
            loaded_at_ms: None,
            last_reload_ms: None,
            last_error: None,
            decisions: 0,
            fallbacks: 0,
            p50_us: None,
            p99_us: None,
            identity: None,
        };
        if let Some(name) = name {
            let found = self.with_slot(name, |s| {
                let mut v: Vec<u32> = s.samples.iter().copied().collect();
                v.sort_unstable();
                st.sha256 = Some(s.persona.sha256.clone());
                st.source = Some(s.persona.origin.clone());
                st.generation = Some(s.generation);
                st.loaded_at_ms = Some(s.loaded_at_ms);
                st.last_reload_ms = s.last_reload_ms;
                st.last_error = s.last_error.clone();
                st.decisions = s.decisions;
                st.fallbacks = s.fallbacks;
                st.p50_us = percentile(&v, 0.5);
                st.p99_us = percentile(&v, 0.99);
            });
            if found.is_none() {
                st.last_error = Some(format!("{name} is not loaded (see the daemon log)"));
            }
            st.identity = catalog::find(&self.home, name)
                .ok()
                .and_then(|s| s.identity);
        }
        st
    }

    pub fn brief(&self, name: &str) -> PersonaBrief {
        let st = self.status("", Some(name));
        PersonaBrief {
            name: name.to_string(),
            sha256: st.sha256,
            last_error: st.last_error,
        }
    }
}

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
    crate::home::private_dir(&dir)?;
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

/// After a decision: count it and its time; a fallback becomes a
/// `persona_error` event (with `extra` fields such as the job or ref).
pub fn account(
    h: &DaemonHandle,
    circle: &str,
    name: Option<&str>,
    entry: &str,
    started: Instant,
    decision: &persona::Decision,
    extra: serde_json::Value,
) -> Result<(), Error> {
    let Some(n) = name else { return Ok(()) };
    h.personas
        .record(n, started.elapsed(), decision.error.as_ref());
    if let Some(e) = &decision.error {
        let mut payload = serde_json::json!({"persona": n, "entry": entry, "error": e.message, "location": e.location});
        if let (Some(p), Some(x)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(x.clone());
        }
        h.store
            .persona_event("persona_error", n, Some(circle), payload)?;
    }
    Ok(())
}

type H = State<DaemonHandle>;

/// The circle a persona command is about: asked, else the caller's, else default.
fn circle_of(c: &Caller, asked: Option<String>) -> Result<String, Error> {
    let circle = asked
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| crate::core::peer::DEFAULT_CIRCLE.to_string());
    crate::core::peer::validate_name("circle", &circle)?;
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
        Some(p) if p.role == crate::core::peer::Role::Orchestrator => Ok(p.name.clone()),
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
    crate::core::peer::validate_name("persona name", &req.name)
        .map_err(|e| Error::new(ErrorCode::UnknownPersona, e.message))?;
    let hh = h.clone();
    let name = req.name.clone();
    let p = tokio::task::spawn_blocking(move || hh.personas.ensure(&name))
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
    let name = h.store.active_persona(&circle)?;
    let hh = h.clone();
    let circle2 = circle.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<DecideResp, Error> {
        let mesh = hh.personas.mesh(&hh.store, &circle2)?;
        let persona = name
            .as_deref()
            .and_then(|n| hh.personas.for_decision(&hh.store, &circle2, n));
        let started = Instant::now();
        let (decision, entry) = match (&req.job, &req.review) {
            (Some(job), _) => (
                persona::decide_dispatch(persona.as_deref(), job, &mesh),
                "dispatch",
            ),
            (_, Some(item)) => (
                persona::decide_review(persona.as_deref(), item, &mesh),
                "review",
            ),
            _ => unreachable!("checked above"),
        };
        account(
            &hh,
            &circle2,
            name.as_deref(),
            entry,
            started,
            &decision,
            serde_json::json!({}),
        )?;
        let generation = name
            .as_deref()
            .and_then(|n| hh.personas.status(&circle2, Some(n)).generation);
        Ok(DecideResp {
            circle: circle2,
            persona: name,
            generation,
            route: decision.out(),
        })
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))??;
    Ok(Json(res))
}
