//! The persona host: one compiled, checked program per persona (per version
//! of its file) and, for every circle that uses it, an instance of its own —
//! a VM whose script state no other circle can see — with that circle's
//! decision stats and last error.
//!
//! Reload follows STYLE.md: a changed file is compiled in a fresh VM and
//! checked; only then is the `Arc` swapped, the generation bumped and every
//! circle given a fresh instance. A broken edit keeps the last good version
//! and records the error; a circle whose new instance cannot start keeps its
//! last good one. Decisions clone the `Arc` first, so calls in flight finish
//! on the version they started with.

use repowire_client::api::{PersonaBrief, PersonaStatus};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::event::Event;
use repowire_core::mesh::Jobs;
use repowire_core::time::Clock;
use repowire_persona::{self as persona, Limits, Persona, PersonaError, Program, catalog};
use repowire_store::MeshGen;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
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
    /// The daemon's clock (load and reload times).
    clock: Clock,
    slots: RwLock<HashMap<String, Mutex<Slot>>>,
    generation: AtomicU64,
    /// The last mesh snapshot per circle: (its mesh generation, built at,
    /// snapshot). Reused while no committed event changed what it shows and
    /// it is under a second old (ages and ghosts move with time), so
    /// decisions share one snapshot and its compiled view however many jobs
    /// are created meanwhile.
    meshes: Mutex<HashMap<String, CachedMesh>>,
    /// circle → active persona name (mirrors the database, for hot paths).
    active: RwLock<HashMap<String, String>>,
    /// Personas that failed to compile, by name: (source sha, error). A
    /// failure is not retried until the source changes.
    failed: Mutex<HashMap<String, (String, Error)>>,
}

/// (mesh generation, built at, snapshot).
type CachedMesh = (MeshGen, Instant, Arc<repowire_core::mesh::MeshSnapshot>);

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
    pub fn new(home: PathBuf, limits: Limits, clock: Clock) -> Self {
        Self {
            home,
            limits,
            clock,
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
        store: &repowire_store::Store,
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
                let _ = store.persona_event(name, Some(circle), load_error(name, &e.message));
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
                let _ = store.persona_event(name, Some(circle), load_error(name, &e.message));
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

    /// The circle's mesh as personas see it, cached while unchanged. A
    /// snapshot whose job list was never read stays good when only jobs
    /// changed: the list is read when a script first asks for it.
    pub fn mesh(
        &self,
        h: &crate::DaemonHandle,
        circle: &str,
    ) -> Result<Arc<repowire_core::mesh::MeshSnapshot>, Error> {
        // Read before the snapshot is built: a change committed meanwhile
        // makes the next call build anew.
        let now_gen = h.store.mesh_generation(circle);
        // Out of the lock first: asking whether a snapshot's job list was
        // read waits while another decision reads it.
        let kept = self
            .meshes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(circle)
            .cloned();
        if let Some((g, at, snap)) = kept
            && g.peers == now_gen.peers
            && (g.jobs == now_gen.jobs || !snap.jobs.is_loaded())
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(snap);
        }
        let weak = h.downgrade();
        let c = circle.to_string();
        let jobs = Jobs::deferred(Arc::new(move || match weak.upgrade() {
            Some(inner) => inner.store.mesh_jobs(&c).map_err(|e| e.to_string()),
            None => Err("the daemon is stopping".into()),
        }));
        let snap = Arc::new(h.store.mesh_snapshot(circle, jobs)?);
        self.meshes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(circle.to_string(), (now_gen, Instant::now(), snap.clone()));
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
                loaded_at_ms: self.clock.now_ms(),
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
    /// Whether the circle's active persona has the entry point `entry`
    /// (no allocation: what the observer asks of every event). Takes the
    /// slots' lock inside the active map's read lock; nothing takes them
    /// the other way round.
    pub fn active_has(&self, circle: &str, entry: &str) -> bool {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active
            .get(circle)
            .and_then(|n| self.with_slot(n, |s| s.program.has(entry)))
            .unwrap_or(false)
    }

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
            let src = match catalog::find(&self.home, &name) {
                Ok(src) => src,
                Err(e) => {
                    // Gone entirely: keep the last good version, quietly.
                    // There but unreadable (too big, not UTF-8…): keep it
                    // too, and say why once.
                    let file = catalog::user_dir(&self.home).join(format!("{name}.lua"));
                    let there = file.exists() || Path::new(&name).exists();
                    let key = format!("unreadable:{e}");
                    let told = self
                        .with_slot(&name, |s| {
                            s.reload_error.as_ref().is_some_and(|(k, _)| *k == key)
                        })
                        .unwrap_or(true);
                    if there && !told {
                        self.with_slot(&name, |s| s.reload_error = Some((key, e.clone())));
                        out.push((name, String::new(), Err(e)));
                    }
                    continue;
                }
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
                        s.last_reload_ms = Some(self.clock.now_ms());
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
                st.source = Some(s.program.origin.to_string());
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

/// The `persona_error` event of a persona that does not load.
fn load_error(name: &str, message: &str) -> Event {
    Event::PersonaError {
        persona: name.to_string(),
        entry: "load".into(),
        error: message.to_string(),
        location: None,
        extra: Default::default(),
    }
}
