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
use crate::persona::{self, Limits, Persona, PersonaError, Program, catalog};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One circle's use of a persona: its own instance (VM and script state)
/// and its own decision statistics.
#[derive(Default)]
struct CircleUse {
    /// The circle's instance: of the current program, or the last one that
    /// started in this circle if the current one failed to.
    instance: Option<Arc<Persona>>,
    last_error: Option<String>,
    decisions: u64,
    fallbacks: u64,
    /// Recent decision times, µs (the last 1,000).
    samples: VecDeque<u32>,
}

/// One loaded persona: the program (compiled and checked once per version
/// of the file) and each circle's use of it.
struct Slot {
    program: Arc<Program>,
    generation: u64,
    loaded_at_ms: i64,
    last_reload_ms: Option<i64>,
    /// Why the last reload was refused, with the sha it was refused for
    /// (it ran on a sample mesh, so it holds no circle's data).
    reload_error: Option<(String, String)>,
    circles: HashMap<String, CircleUse>,
}

impl Slot {
    /// The circle's instance of the current program, started on first use.
    /// If it cannot start, the circle keeps its last good instance.
    fn instance(&mut self, circle: &str) -> Result<Arc<Persona>, PersonaError> {
        let program = self.program.clone();
        let u = self.circles.entry(circle.to_string()).or_default();
        if let Some(p) = &u.instance
            && Arc::ptr_eq(p.program(), &program)
        {
            return Ok(p.clone());
        }
        match program.instantiate() {
            Ok(p) => {
                let p = Arc::new(p);
                u.instance = Some(p.clone());
                Ok(p)
            }
            Err(e) => {
                u.last_error = Some(describe(&e));
                u.instance.clone().ok_or(e)
            }
        }
    }
}

/// Compiled personas by name; each circle that uses one runs its own
/// instance, so no script state crosses a circle.
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
    e.described()
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

    /// The circle's instance of a persona for a decision, or None (the
    /// built-in policy decides). A compile failure is recorded as a
    /// `persona_error` event once per source version, and not recompiled
    /// until the file changes.
    pub fn for_decision(
        &self,
        store: &crate::store::Store,
        circle: &str,
        name: &str,
    ) -> Option<Arc<Persona>> {
        if self.program(name).is_none() {
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
            if let Err(e) = self.ensure(name) {
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
                return None;
            }
        }
        match self.instance(circle, name) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = store.persona_event(
                    "persona_error",
                    name,
                    Some(circle),
                    serde_json::json!({"persona": name, "entry": "load", "error": e.message}),
                );
                None
            }
        }
    }

    /// Record (or, with None, forget) a circle's active persona. A circle
    /// that changes persona drops its instance of the old one: choosing it
    /// again starts from fresh state.
    pub fn set_active(&self, circle: &str, name: Option<&str>) {
        let old = {
            let mut a = self.active.write().unwrap_or_else(|e| e.into_inner());
            match name {
                Some(n) => a.insert(circle.to_string(), n.to_string()),
                None => a.remove(circle),
            }
        };
        if let Some(old) = old
            && Some(old.as_str()) != name
        {
            self.with_slot(&old, |s| {
                if let Some(u) = s.circles.get_mut(circle) {
                    u.instance = None;
                }
            });
        }
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

    /// Compile `name` and check it: the program, or why not.
    fn compile(&self, name: &str) -> Result<Arc<Program>, Error> {
        let src = catalog::find(&self.home, name)
            .map_err(|e| Error::new(ErrorCode::UnknownPersona, e))?;
        src.compile(self.limits.clone())
            .map(|p| p.program().clone())
            .map_err(|e| Error::new(ErrorCode::PersonaError, describe(&e)))
    }

    /// Load `name` if it is not loaded yet.
    pub fn ensure(&self, name: &str) -> Result<Arc<Program>, Error> {
        if let Some(p) = self.program(name) {
            return Ok(p);
        }
        let p = self.compile(name)?;
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(name.to_string()).or_insert_with(|| {
            Mutex::new(Slot {
                program: p,
                generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
                loaded_at_ms: now_ms(),
                last_reload_ms: None,
                reload_error: None,
                circles: HashMap::new(),
            })
        });
        Ok(slot
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .program
            .clone())
    }

    /// The circle's own instance of `name` (loading the persona first if
    /// need be).
    pub fn instance(&self, circle: &str, name: &str) -> Result<Arc<Persona>, Error> {
        self.ensure(name)?;
        self.with_slot(name, |s| s.instance(circle))
            .ok_or_else(|| Error::new(ErrorCode::UnknownPersona, format!("{name} is not loaded")))?
            .map_err(|e| Error::new(ErrorCode::PersonaError, describe(&e)))
    }

    /// The live program of `name`, if loaded.
    pub fn program(&self, name: &str) -> Option<Arc<Program>> {
        self.with_slot(name, |s| s.program.clone())
    }

    fn with_slot<T>(&self, name: &str, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .get(name)
            .map(|s| f(&mut s.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Count a circle's decision and its time; keep its error if it fell back.
    pub fn record(&self, circle: &str, name: &str, took: Duration, error: Option<&PersonaError>) {
        self.with_slot(name, |s| {
            let u = s.circles.entry(circle.to_string()).or_default();
            u.decisions += 1;
            if let Some(e) = error {
                u.fallbacks += 1;
                u.last_error = Some(describe(e));
            }
            if u.samples.len() == 1000 {
                u.samples.pop_front();
            }
            u.samples
                .push_back(took.as_micros().min(u32::MAX as u128) as u32);
        });
    }

    /// Re-read every loaded persona; recompile and check the changed ones,
    /// then give every circle that uses one a fresh instance of the new
    /// version (a circle whose instance cannot start keeps its last good
    /// one). Returns (name, sha, Ok(generation) | Err(error)) per change.
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
                .with_slot(&name, |s| {
                    s.program.sha256 == sha
                        || s.reload_error.as_ref().is_some_and(|(bad, _)| *bad == sha)
                })
                .unwrap_or(true);
            if unchanged {
                continue;
            }
            // Compile in a fresh VM and check it answers with routes. The
            // checking instance is thrown away: circles start fresh ones.
            let built = src
                .compile(self.limits.clone())
                .and_then(|p| match persona::lint_returns(&p).into_iter().next() {
                    Some(problem) => Err(PersonaError {
                        location: None,
                        message: format!("{}: {problem}", p.path),
                    }),
                    None => Ok(p.program().clone()),
                });
            let res = match built {
                Ok(program) => {
                    let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    self.with_slot(&name, |s| {
                        s.program = program;
                        s.generation = g;
                        s.last_reload_ms = Some(now_ms());
                        s.reload_error = None;
                        let circles: Vec<String> = s
                            .circles
                            .iter()
                            .filter(|(_, u)| u.instance.is_some())
                            .map(|(c, _)| c.clone())
                            .collect();
                        for c in circles {
                            if s.instance(&c).is_ok()
                                && let Some(u) = s.circles.get_mut(&c)
                            {
                                u.last_error = None;
                            }
                        }
                    });
                    Ok(g)
                }
                Err(e) => {
                    let msg = describe(&e);
                    self.with_slot(&name, |s| s.reload_error = Some((sha.clone(), msg.clone())));
                    Err(msg)
                }
            };
            out.push((name, sha[..12].to_string(), res));
        }
        out
    }

    /// A circle's view of its persona: the program's version, and this
    /// circle's own decisions and errors (never another circle's).
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
                st.sha256 = Some(s.program.sha256.clone());
                st.source = Some(s.program.origin.clone());
                st.generation = Some(s.generation);
                st.loaded_at_ms = Some(s.loaded_at_ms);
                st.last_reload_ms = s.last_reload_ms;
                st.last_error = s.reload_error.as_ref().map(|(_, e)| e.clone());
                if let Some(u) = s.circles.get(circle) {
                    let mut v: Vec<u32> = u.samples.iter().copied().collect();
                    v.sort_unstable();
                    st.last_error = st.last_error.take().or_else(|| u.last_error.clone());
                    st.decisions = u.decisions;
                    st.fallbacks = u.fallbacks;
                    st.p50_us = percentile(&v, 0.5);
                    st.p99_us = percentile(&v, 0.99);
                }
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

    pub fn brief(&self, circle: &str, name: &str) -> PersonaBrief {
        let st = self.status(circle, Some(name));
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
    std::fs::create_dir_all(&dir)?;
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
        .record(circle, n, started.elapsed(), decision.error.as_ref());
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
