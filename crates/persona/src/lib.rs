//! The persona host: Luau scripts that decide dispatch, review routing and
//! check-ins, each run sandboxed with memory and time budgets.
//!
//! A script is compiled once into a [`Program`] ([`Persona::compile`]) and
//! run in [`Persona`] instances, each a VM of its own (`vm`); the daemon
//! gives every circle its own instance. Entry points are called with
//! read-only views ([`views`]); whatever they return is read raw, with no
//! script code running (`returned`), then validated
//! ([`repowire_core::route`]). Any failure — a script error, a timeout, a
//! memory error, a value that is not a plain route, an invalid route — falls
//! back to the built-in policy ([`builtin`]) and is reported with file:line.
//! Nothing here does I/O except reading persona files in [`catalog`].
#![forbid(unsafe_code)]

pub mod builtin;
pub mod catalog;
mod returned;
pub mod views;
mod vm;

use mlua::{Lua, Value};
use repowire_core::mesh::{JobInput, MeshSnapshot, ReviewInput};
pub use repowire_core::route::PersonaOrigin;
use repowire_core::route::{Entry, Route, RouteLimits, validate};
use repowire_core::text::edit_distance as distance;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vm::Vm;

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
    /// The message, led by its `file:line` unless it already names it.
    pub fn described(&self) -> String {
        match &self.location {
            Some(loc) if !self.message.contains(loc.as_str()) => format!("{loc}: {}", self.message),
            _ => self.message.clone(),
        }
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

/// A persona's compiled program: its bytecode and what was learnt checking
/// it. Compiled once per version of the file; every circle that uses the
/// persona runs it in its own [`Persona`] instance (its own VM and state).
pub struct Program {
    pub name: String,
    pub origin: PersonaOrigin,
    /// Where it came from (`personas/NAME.lua` for shipped ones).
    pub path: String,
    /// SHA-256 of the source, hex.
    pub sha256: String,
    pub entry_points: Vec<String>,
    /// Lint findings that do not stop loading (unknown entry points…).
    pub warnings: Vec<String>,
    bytecode: Vec<u8>,
    limits: Limits,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("entry_points", &self.entry_points)
            .finish()
    }
}

impl Program {
    pub fn has(&self, entry: &str) -> bool {
        self.entry_points.iter().any(|e| e == entry)
    }

    /// A fresh instance: a new VM that runs the top level under the budget.
    /// Its state (top-level locals) is its own.
    pub fn instantiate(self: &Arc<Self>) -> Result<Persona, PersonaError> {
        let vm = start(&self.name, &self.path, &self.bytecode, &self.limits)?;
        Ok(Persona {
            program: self.clone(),
            vm: Mutex::new(vm),
        })
    }
}

/// A new VM with `bytecode`'s top level run in it.
fn start(name: &str, path: &str, bytecode: &[u8], limits: &Limits) -> Result<Vm, PersonaError> {
    let vm = Vm::new(limits, name).map_err(|e| vm::lua_err(e, None))?;
    vm.budgeted(limits.budget, |lua| {
        lua.load(bytecode)
            .set_name(format!("={path}"))
            .set_mode(mlua::chunk::ChunkMode::Binary)
            .exec()
    })
    .map_err(|e| vm::lua_err(e, Some(&format!("{path}:1"))))?;
    Ok(vm)
}

/// One running instance of a persona: the program, and a VM of its own.
pub struct Persona {
    program: Arc<Program>,
    vm: Mutex<Vm>,
}

impl std::ops::Deref for Persona {
    type Target = Program;
    fn deref(&self) -> &Program {
        &self.program
    }
}

impl std::fmt::Debug for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.program.fmt(f)
    }
}

impl Persona {
    /// Compile `source`, run its top level under the budget in a fresh VM,
    /// find its entry points (at least one) and lint the rest. The result
    /// is the program's first instance.
    pub fn compile(
        name: &str,
        origin: PersonaOrigin,
        path: &str,
        source: &str,
        limits: Limits,
    ) -> Result<Persona, PersonaError> {
        let bytecode = mlua::chunk::Compiler::new().compile(source).map_err(|e| {
            // Luau's compiler does not know the chunk name: "LINE: msg".
            let mut err = vm::lua_err(e, Some(&format!("{path}:1")));
            err.message = format!("{path}:{}", err.message.trim_start_matches(':'));
            err.location = locate(&err.message).or(err.location);
            err
        })?;
        let vm = start(name, path, &bytecode, &limits)?;
        let mut entry_points = Vec::new();
        let mut warnings = Vec::new();
        // `pairs` is `next`: raw, no `__iter`/`__index` of `_G` runs.
        for pair in vm.lua.globals().pairs::<Value, Value>() {
            let (k, v) = pair.map_err(|e| vm::lua_err(e, None))?;
            let (Value::String(k), Value::Function(_)) = (&k, &v) else {
                continue;
            };
            let k = k.to_string_lossy();
            if ENTRY_POINTS.contains(&k.as_str()) {
                entry_points.push(k);
            } else if k.len() < 64
                && let Some(near) = ENTRY_POINTS.iter().find(|e| distance(&k, e) <= 2)
            {
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
        let program = Arc::new(Program {
            name: name.to_string(),
            origin,
            path: path.to_string(),
            sha256,
            entry_points,
            warnings,
            bytecode,
            limits,
        });
        Ok(Persona {
            program,
            vm: Mutex::new(vm),
        })
    }

    /// The program this is an instance of.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// Call `entry` under the budget with the argument `arg` builds and the
    /// circle's mesh view; the raw result goes to `read` once the budget has
    /// closed. Errors name `file:line` — where the script failed, or else
    /// where the entry point is defined.
    fn call<T>(
        &self,
        entry: &Entry,
        mesh: &Arc<MeshSnapshot>,
        arg: impl FnOnce(&Lua) -> mlua::Result<Value>,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, PersonaError> {
        let name = entry.name();
        let budget = self.limits.budget;
        let mut vm = self.vm.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = vm.entry(name) else {
            // Never defined, or the script removed it from `_G` since.
            return Err(PersonaError {
                message: format!("{} defines no {name}", self.path),
                location: Some(format!("{}:1", self.path)),
            });
        };
        let at = vm::defined_at(&f).unwrap_or_else(|| format!("{}:1", self.path));
        let m = vm
            .mesh_view(budget, mesh)
            .map_err(|e| vm::lua_err(e, Some(&at)))?;
        let out = vm
            .budgeted(budget, |lua| f.call::<Value>((arg(lua)?, m)))
            .map_err(|e| vm::lua_err(e, Some(&at)))?;
        // The budget is closed: `read` looks at the value raw.
        read(&out).map_err(|e| PersonaError {
            message: format!("{at}: {name} {e}"),
            location: Some(at.clone()),
        })
    }

    /// Check a route against the mesh (target exists, same circle, …).
    fn checked(&self, route: Route, entry: &Entry, mesh: &MeshSnapshot) -> Result<Route, String> {
        validate(&route, mesh, entry, &self.limits.routes)
            .map(|()| route)
            .map_err(|e| format!("chose an invalid route: {e}"))
    }

    /// Call an entry point that returns one route.
    fn call_one(
        &self,
        entry: &Entry,
        mesh: &Arc<MeshSnapshot>,
        arg: impl FnOnce(&Lua) -> mlua::Result<Value>,
    ) -> Result<Route, PersonaError> {
        self.call(entry, mesh, arg, |v| {
            let route = returned::parse_route(v, &self.limits.routes)?;
            self.checked(route, entry, mesh)
        })
    }

    /// `dispatch(job, mesh)`: which peer gets the job.
    pub fn dispatch(
        &self,
        job: &JobInput,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Route, PersonaError> {
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
        let entry = Entry::Review {
            author: item.author.clone(),
        };
        self.call_one(&entry, mesh, |lua| {
            Ok(Value::Table(views::item_table(lua, item)?))
        })
    }

    /// Call an entry point that returns a list of routes (`checkin`,
    /// `on_event`): each must be valid, or the whole answer is refused.
    fn call_many(
        &self,
        entry: &Entry,
        input: &serde_json::Value,
        mesh: &Arc<MeshSnapshot>,
    ) -> Result<Vec<Route>, PersonaError> {
        use mlua::LuaSerdeExt;
        let arg = |lua: &Lua| {
            let opts = mlua::serde::ser::Options::new().serialize_none_to_null(false);
            let arg = lua.to_value_with(input, opts)?;
            if let Value::Table(t) = &arg {
                t.set_readonly(true);
            }
            Ok(arg)
        };
        self.call(entry, mesh, arg, |v| {
            returned::route_list(v, &self.limits.routes)?
                .into_iter()
                .map(|r| self.checked(r, entry, mesh))
                .collect()
        })
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

/// Dynamic lint: call each decision entry point on a small sample mesh and
/// report any that returns nothing or something that is not a route (an
/// invalid target on the sample is fine: the sample is not the real mesh).
pub fn lint_returns(p: &Persona) -> Vec<String> {
    let sample = |name: &str, backend: &str, tags: &[&str]| repowire_core::mesh::PeerSnap {
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
        jobs: Default::default(),
    });
    let shape = |r: Result<Route, PersonaError>| match r {
        Err(e) if !e.message.contains("invalid route") => Some(e.described()),
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

/// A decision with its provenance: the persona's route, or the built-in
/// policy's with the persona's error.
pub struct Decision {
    pub route: Route,
    pub error: Option<PersonaError>,
}

impl Decision {
    pub fn out(&self) -> repowire_core::route::RouteOut {
        let err = self.error.as_ref().map(PersonaError::described);
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
