//! The persona host: Luau scripts that decide dispatch, review routing and
//! check-ins, each in its own sandboxed VM with memory and time budgets.
//!
//! A [`Persona`] is compiled from source in a fresh VM ([`Persona::compile`]);
//! its entry points are called with read-only views ([`views`]) and must
//! return routes, which are then validated ([`crate::core::route`]). Any
//! failure — a script error, a timeout, a memory error, an invalid route —
//! falls back to the built-in policy ([`builtin`]) and is reported with
//! file:line. Nothing here does I/O except reading persona files in
//! [`catalog`].

pub mod builtin;
pub mod catalog;
pub mod views;

use crate::core::mesh::{JobInput, MeshSnapshot, ReviewInput};
use crate::core::route::{Entry, Route, RouteLimits, validate};
use mlua::{Function, Lua, LuaOptions, StdLib, Value, VmState};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The entry points a persona may define.
pub const ENTRY_POINTS: [&str; 4] = ["dispatch", "review", "checkin", "on_event"];

/// Per-persona budgets.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory the VM may hold (default 16 MiB).
    pub memory_bytes: usize,
    /// Wall time one call may take (default 50 ms), enforced by interrupt.
    pub budget: Duration,
    pub routes: RouteLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 << 20,
            budget: Duration::from_millis(50),
            routes: RouteLimits::default(),
        }
    }
}

/// Why a persona could not be loaded or answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PersonaError {
    pub message: String,
    /// `file:line` when the error points into the script.
    pub location: Option<String>,
}

impl PersonaError {
    fn new(message: impl Into<String>) -> Self {
        let message = message.into();
        let location = locate(&message);
        Self { message, location }
    }
}

/// Find `name.lua:LINE` in an error message.
fn locate(msg: &str) -> Option<String> {
    let at = msg.find(".lua:")?;
    let start = msg[..at]
        .rfind(|c: char| c.is_whitespace() || c == '[' || c == '"' || c == '=')
        .map_or(0, |i| i + 1);
    let digits: String = msg[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("{}.lua:{digits}", &msg[start..at]))
}

fn lua_err(e: mlua::Error) -> PersonaError {
    let msg = match &e {
        mlua::Error::MemoryError(_) => "persona exceeded its memory limit".to_string(),
        mlua::Error::CallbackError { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    // Keep the first line: mlua appends a Rust-side stack that means nothing to authors.
    let first = msg.lines().next().unwrap_or_default().to_string();
    PersonaError::new(first)
}

/// One loaded persona: its VM and what we know about it.
pub struct Persona {
    pub name: String,
    /// `shipped`, `user` or `file`.
    pub origin: String,
    /// Where it came from (`personas/NAME.lua` for shipped ones).
    pub path: String,
    /// SHA-256 of the source, hex.
    pub sha256: String,
    pub entry_points: Vec<String>,
    /// Lint findings that do not stop loading (unknown entry points…).
    pub warnings: Vec<String>,
    vm: Mutex<Vm>,
    limits: Limits,
}

impl std::fmt::Debug for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persona")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("entry_points", &self.entry_points)
            .finish()
    }
}

struct Vm {
    lua: Lua,
    deadline_ms: Arc<AtomicU64>,
    epoch: Instant,
    /// The prelude's `make_mesh`, kept out of the script's reach.
    make_mesh: Function,
    /// The mesh view last built, and the snapshot it was built from: a
    /// decision over the same snapshot reuses it.
    mesh_cache: Option<(Arc<MeshSnapshot>, mlua::Table)>,
}

impl Vm {
    /// A sandboxed Luau VM (see STACK.md's recipe): string, table, math,
    /// utf8 and coroutine only; no require/load/getfenv/collectgarbage/print;
    /// read-only builtins; memory cap; an interrupt that enforces the budget.
    fn new(limits: &Limits, persona: &str) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE,
            LuaOptions::default(),
        )?;
        let g = lua.globals();
        for name in [
            "require",
            "loadstring",
            "load",
            "dofile",
            "getfenv",
            "setfenv",
            "collectgarbage",
            "print",
            "debug",
            "newproxy",
        ] {
            g.raw_set(name, Value::Nil)?;
        }
        let who = persona.to_string();
        g.set(
            "log",
            lua.create_function(move |_, msg: String| {
                tracing::info!(target: "persona", persona = %who, "{msg}");
                Ok(())
            })?,
        )?;
        g.set("route", views::route_module(&lua)?)?;
        let make_mesh: Function = lua
            .load(views::PRELUDE)
            .set_name("=repowire/prelude")
            .eval()?;
        lua.sandbox(true)?;
        lua.set_memory_limit(limits.memory_bytes)?;
        let deadline_ms = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let d = deadline_ms.clone();
        lua.set_interrupt(move |_| {
            let dl = d.load(Relaxed);
            if dl != 0 && epoch.elapsed().as_millis() as u64 > dl {
                return Err(mlua::Error::runtime("persona exceeded its time budget"));
            }
            Ok(VmState::Continue)
        });
        Ok(Vm {
            lua,
            deadline_ms,
            epoch,
            make_mesh,
            mesh_cache: None,
        })
    }

    /// The `mesh` view of a snapshot, reused while the snapshot is the same.
    fn mesh_view(&mut self, mesh: &Arc<MeshSnapshot>) -> mlua::Result<mlua::Table> {
        if let Some((snap, t)) = &self.mesh_cache
            && Arc::ptr_eq(snap, mesh)
        {
            return Ok(t.clone());
        }
        let t = views::build_mesh(&self.lua, &self.make_mesh, mesh)?;
        self.mesh_cache = Some((mesh.clone(), t.clone()));
        Ok(t)
    }

    /// Run `f` under the time budget; after a memory error, collect garbage
    /// so the next call starts clean.
    fn budgeted<T>(
        &self,
        budget: Duration,
        f: impl FnOnce(&Lua) -> mlua::Result<T>,
    ) -> mlua::Result<T> {
        let until = self.epoch.elapsed() + budget;
        self.deadline_ms
            .store(until.as_millis().max(1) as u64, Relaxed);
        let out = f(&self.lua);
        self.deadline_ms.store(0, Relaxed);
        if matches!(out, Err(mlua::Error::MemoryError(_))) {
            // The garbage still counts against the limit until collected.
            let _ = self.lua.gc_collect();
        }
        out
    }
}

/// Edit distance, for "did you mean" on misspelt entry points.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Persona {
    /// Compile `source` in a fresh VM: run its top level under the budget,
    /// find its entry points (at least one), lint the rest.
    pub fn compile(
        name: &str,
        origin: &str,
        path: &str,
        source: &str,
        limits: Limits,
    ) -> Result<Persona, PersonaError> {
        let vm = Vm::new(&limits, name).map_err(lua_err)?;
        let chunk = format!("={path}");
        vm.budgeted(limits.budget, |lua| lua.load(source).set_name(chunk).exec())
            .map_err(lua_err)?;
        let mut entry_points = Vec::new();
        let mut warnings = Vec::new();
        let globals = vm.lua.globals();
        for pair in globals.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(lua_err)?;
            let (Value::String(k), Value::Function(_)) = (&k, &v) else {
                continue;
            };
            let k = k.to_string_lossy();
            if ENTRY_POINTS.contains(&k.as_str()) {
                entry_points.push(k);
            } else if let Some(near) = ENTRY_POINTS.iter().find(|e| distance(&k, e) <= 2) {
                warnings.push(format!(
                    "{path}: global function `{k}` is not an entry point (did you mean `{near}`?)"
                ));
            }
        }
        entry_points.sort_by_key(|e| ENTRY_POINTS.iter().position(|x| x == e));
        if entry_points.is_empty() {
            let mut msg = format!(
                "{path}: defines no entry point (one of {})",
                ENTRY_POINTS.join(", ")
            );
            if let Some(w) = warnings.first() {
                msg.push_str(&format!("; {w}"));
            }
            return Err(PersonaError {
                message: msg,
                location: Some(format!("{path}:1")),
            });
        }
        let sha256 = Sha256::digest(source.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Persona {
            name: name.to_string(),
            origin: origin.to_string(),
            path: path.to_string(),
            sha256,
            entry_points,
            warnings,
            vm: Mutex::new(vm),
            limits,
        })
    }

    pub fn has(&self, entry: &str) -> bool {
        self.entry_points.iter().any(|e| e == entry)
    }

    /// Call `entry` with `make_args` built inside the VM; parse one route.
    fn call_one(
        &self,
        entry: &Entry,
        mesh: &Arc<MeshSnapshot>,
        arg: impl FnOnce(&Lua) -> mlua::Result<Value>,
    ) -> Result<Route, PersonaError> {
        let mut vm = self.vm.lock().unwrap_or_else(|p| p.into_inner());
        let m = vm.mesh_view(mesh).map_err(lua_err)?;
        let out = vm
            .budgeted(self.limits.budget, |lua| {
                let f: Function = lua.globals().get(entry.name())?;
                let a = arg(lua)?;
                f.call::<Value>((a, m))
            })
            .map_err(lua_err)?;
        let route = views::parse_route(out)
            .map_err(|e| PersonaError::new(format!("{}: {} {e}", self.path, entry.name())))?;
        validate(&route, mesh, entry, &self.limits.routes).map_err(|e| {
            PersonaError::new(format!(
                "{}: {} chose an invalid route: {e}",
                self.path,
                entry.name()
            ))
        })?;
        Ok(route)
    }

    /// `dispatch(job, mesh)`: which peer gets the job.
    pub fn dispatch(
        &self,
        job: &JobInput,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Route, PersonaError> {
        if !self.has("dispatch") {
            return Err(PersonaError::new(format!(
                "{} defines no dispatch",
                self.path
            )));
        }
        self.call_one(&Entry::Dispatch, mesh, |lua| {
            Ok(Value::Table(views::job_table(lua, job)?))
        })
    }

    /// `review(item, mesh)`: who reviews.
    pub fn review(
        &self,
        item: &ReviewInput,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Route, PersonaError> {
        if !self.has("review") {
            return Err(PersonaError::new(format!(
                "{} defines no review",
                self.path
            )));
        }
        let entry = Entry::Review {
            author: item.author.clone(),
        };
        self.call_one(&entry, mesh, |lua| {
            Ok(Value::Table(views::item_table(lua, item)?))
        })
    }
}

/// Dynamic lint: call each decision entry point on a small sample mesh and
/// report any that returns nothing or something that is not a route (an
/// invalid target on the sample is fine: the sample is not the real mesh).
pub fn lint_returns(p: &Persona) -> Vec<String> {
    let sample = |name: &str, backend: &str, tags: &[&str]| crate::core::mesh::PeerSnap {
        name: name.into(),
        circle: "default".into(),
        role: "agent".into(),
        backend: backend.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        status: "online".into(),
        load: 0,
        description: String::new(),
        last_seen_age_s: 0,
    };
    let mesh = Arc::new(MeshSnapshot {
        circle: "default".into(),
        now_ms: 1_795_510_800_000,
        peers: vec![
            sample("alice", "claude-code", &["rust"]),
            sample("bob", "codex", &[]),
        ],
        jobs: vec![],
    });
    let shape = |r: Result<Route, PersonaError>| match r {
        Err(e) if !e.message.contains("invalid route") => Some(e.message),
        _ => None,
    };
    let mut out = Vec::new();
    let job = JobInput {
        id: "job-sample".into(),
        title: "sample".into(),
        tags: vec!["rust".into()],
        creator: "bob".into(),
        ..Default::default()
    };
    if p.has("dispatch")
        && let Some(e) = shape(p.dispatch(&job, &mesh))
    {
        out.push(e);
    }
    let item = ReviewInput {
        reference: "sample-ref".into(),
        head_sha: "abc123".into(),
        author: "bob".into(),
        requested_by: "bob".into(),
        tags: vec![],
    };
    if p.has("review")
        && let Some(e) = shape(p.review(&item, &mesh))
    {
        out.push(e);
    }
    out
}

impl Persona {
    /// Call an entry point that returns a list of routes (`checkin`,
    /// `on_event`): each must be valid, or the whole answer is refused.
    fn call_many(
        &self,
        entry: &Entry,
        input: &serde_json::Value,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Vec<Route>, PersonaError> {
        use mlua::LuaSerdeExt;
        if !self.has(entry.name()) {
            return Err(PersonaError::new(format!(
                "{} defines no {}",
                self.path,
                entry.name()
            )));
        }
        let mut vm = self.vm.lock().unwrap_or_else(|p| p.into_inner());
        let m = vm.mesh_view(mesh).map_err(lua_err)?;
        let out = vm
            .budgeted(self.limits.budget, |lua| {
                let f: Function = lua.globals().get(entry.name())?;
                let opts = mlua::serde::ser::Options::new().serialize_none_to_null(false);
                let arg = lua.to_value_with(input, opts)?;
                if let Value::Table(t) = &arg {
                    t.set_readonly(true);
                }
                f.call::<Value>((arg, m))
            })
            .map_err(lua_err)?;
        let items: Vec<Value> = match out {
            Value::Nil => Vec::new(),
            Value::Table(t) if t.contains_key("route").unwrap_or(false) => vec![Value::Table(t)],
            Value::Table(t) => t
                .sequence_values::<Value>()
                .collect::<mlua::Result<_>>()
                .map_err(lua_err)?,
            other => {
                return Err(PersonaError::new(format!(
                    "{}: {} returned a {}, not a list of routes",
                    self.path,
                    entry.name(),
                    other.type_name()
                )));
            }
        };
        if items.len() > self.limits.routes.max_fanout {
            return Err(PersonaError::new(format!(
                "{}: {} returned {} routes; at most {}",
                self.path,
                entry.name(),
                items.len(),
                self.limits.routes.max_fanout
            )));
        }
        let mut routes = Vec::with_capacity(items.len());
        for v in items {
            let r = views::parse_route(v)
                .map_err(|e| PersonaError::new(format!("{}: {} {e}", self.path, entry.name())))?;
            validate(&r, mesh, entry, &self.limits.routes).map_err(|e| {
                PersonaError::new(format!(
                    "{}: {} chose an invalid route: {e}",
                    self.path,
                    entry.name()
                ))
            })?;
            routes.push(r);
        }
        Ok(routes)
    }

    /// `checkin(ctx, mesh)`: the messages a scheduled check-in sends.
    pub fn checkin(
        &self,
        ctx: &serde_json::Value,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Vec<Route>, PersonaError> {
        self.call_many(&Entry::Checkin, ctx, mesh)
    }

    /// `on_event(event, mesh)`: routes in answer to a mesh event (optional).
    pub fn on_event(
        &self,
        event: &serde_json::Value,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Vec<Route>, PersonaError> {
        self.call_many(&Entry::OnEvent, event, mesh)
    }
}

/// A decision with its provenance: the persona's route, or the built-in
/// policy's with the persona's error.
pub struct Decision {
    pub route: Route,
    pub error: Option<PersonaError>,
}

impl Decision {
    pub fn out(&self) -> crate::core::route::RouteOut {
        let err = self.error.as_ref().map(|e| match &e.location {
            Some(loc) if !e.message.contains(loc.as_str()) => format!("{loc}: {}", e.message),
            _ => e.message.clone(),
        });
        self.route.out(err)
    }
}

/// The persona's answer, or the built-in policy's (with the persona's error).
fn decide(
    answer: Option<Result<Route, PersonaError>>,
    fallback: impl FnOnce() -> Route,
) -> Decision {
    match answer {
        Some(Ok(route)) => Decision { route, error: None },
        Some(Err(e)) => Decision {
            route: fallback(),
            error: Some(e),
        },
        None => Decision {
            route: fallback(),
            error: None,
        },
    }
}

/// Dispatch through `persona`, falling back to the built-in policy.
pub fn decide_dispatch(
    persona: Option<&Persona>,
    job: &JobInput,
    mesh: &Arc<MeshSnapshot>,
) -> Decision {
    decide(persona.map(|p| p.dispatch(job, mesh)), || {
        builtin::dispatch(job, mesh)
    })
}

/// Review routing through `persona`, falling back to the built-in policy.
pub fn decide_review(
    persona: Option<&Persona>,
    item: &ReviewInput,
    mesh: &Arc<MeshSnapshot>,
) -> Decision {
    decide(persona.map(|p| p.review(item, mesh)), || {
        builtin::review(item, mesh)
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn locations_and_distance() {
        assert_eq!(
            locate("personas/x.lua:12: attempt to call a nil value").as_deref(),
            Some("personas/x.lua:12")
        );
        assert_eq!(locate("[string \"a.lua\"]:3: oops"), None);
        assert_eq!(locate("no location"), None);
        assert_eq!(distance("dispatc", "dispatch"), 1);
        assert_eq!(distance("review", "review"), 0);
    }
}

#[cfg(test)]
mod tests;
