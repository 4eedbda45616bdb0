//! One sandboxed Luau VM and the budget every piece of script code runs
//! under.
//!
//! The budget is closed by default: the interrupt refuses to run any Lua at
//! all unless a [`Vm::budgeted`] call is open. A path that would run script
//! code outside a budget — a metamethod of a returned value, `__tostring` of
//! an error object — therefore fails at once instead of spinning forever.
//! Values a script returns are read raw ([`super::returned`]), so such a path
//! does not exist today; the closed budget keeps it that way.

use super::views;
use super::{Limits, PersonaError, locate};
use mlua::{Function, Lua, LuaOptions, StdLib, Value, VmState};
use repowire_core::mesh::MeshSnapshot;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// `deadline_ms` when no budget is open: every interrupt fails.
const CLOSED: u64 = 0;

/// Error messages are cut to this many bytes: a script can throw a
/// multi-megabyte string, and the message ends up in an event row.
const MAX_MESSAGE: usize = 1000;

/// `log()` lines one call may write, and their length: the budget bounds a
/// call's time, not how much it can print in that time.
const MAX_LOG_LINES: u32 = 100;
const MAX_LOG_BYTES: usize = 500;

/// Cut `s` to at most `max` bytes on a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A Lua error as a persona error: first line only (mlua appends a Rust-side
/// stack that means nothing to authors), cut to [`MAX_MESSAGE`], with the
/// `file:line` it names — or, if it names none, `fallback_at` (the line that
/// defines the entry point that failed).
pub(crate) fn lua_err(e: mlua::Error, fallback_at: Option<&str>) -> PersonaError {
    let msg = match &e {
        mlua::Error::MemoryError(_) => "persona exceeded its memory limit".to_string(),
        mlua::Error::CallbackError { cause, .. } => cause.to_string(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let first = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("persona failed without a message");
    let first = first.strip_prefix("runtime error: ").unwrap_or(first);
    let message = clip(first, MAX_MESSAGE);
    let location = locate(&message)
        .or_else(|| locate(&msg))
        .or_else(|| fallback_at.map(str::to_string));
    PersonaError { message, location }
}

pub(crate) struct Vm {
    pub lua: Lua,
    deadline_ms: Arc<AtomicU64>,
    epoch: Instant,
    logged: Arc<AtomicU64>,
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
    pub fn new(limits: &Limits, persona: &str) -> mlua::Result<Vm> {
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
        let logged = Arc::new(AtomicU64::new(0));
        let count = logged.clone();
        g.set(
            "log",
            lua.create_function(move |_, msg: mlua::LuaString| {
                let n = count.fetch_add(1, Relaxed);
                if n < u64::from(MAX_LOG_LINES) {
                    // Cut before copying: a script may log a 15 MiB string.
                    let bytes = msg.as_bytes();
                    let text = if bytes.len() > MAX_LOG_BYTES {
                        let head = String::from_utf8_lossy(&bytes[..MAX_LOG_BYTES]);
                        format!("{head}… ({} bytes)", bytes.len())
                    } else {
                        String::from_utf8_lossy(&bytes).into_owned()
                    };
                    tracing::info!(target: "persona", persona = %who, "{}", text.escape_debug());
                } else if n == u64::from(MAX_LOG_LINES) {
                    tracing::info!(target: "persona", persona = %who, "(further log lines of this call dropped)");
                }
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
        let deadline_ms = Arc::new(AtomicU64::new(CLOSED));
        let epoch = Instant::now();
        let d = deadline_ms.clone();
        lua.set_interrupt(move |lua| {
            let dl = d.load(Relaxed);
            let why = if dl == CLOSED {
                "persona code ran outside its budget"
            } else if epoch.elapsed().as_millis() as u64 > dl {
                "persona exceeded its time budget"
            } else {
                return Ok(VmState::Continue);
            };
            // Name the line that was running: a loop is found where it spins.
            let at = (0..4).find_map(|level| {
                lua.inspect_stack(level, |s| {
                    let src = s.source().short_src.map(|c| c.into_owned());
                    match (src, s.current_line()) {
                        (Some(src), Some(line)) if !src.starts_with("repowire/") => {
                            Some(format!("{src}:{line}: "))
                        }
                        _ => None,
                    }
                })
                .flatten()
            });
            Err(mlua::Error::runtime(format!(
                "{}{why}",
                at.unwrap_or_default()
            )))
        });
        Ok(Vm {
            lua,
            deadline_ms,
            epoch,
            logged,
            make_mesh,
            mesh_cache: None,
        })
    }

    /// The `mesh` view of a snapshot, reused while the snapshot is the same.
    /// Built under a budget of its own (the prelude is Lua too): at least a
    /// second, as the prelude is ours and its work grows with the mesh, not
    /// with anything a script does.
    pub fn mesh_view(
        &mut self,
        budget: Duration,
        mesh: &Arc<MeshSnapshot>,
    ) -> mlua::Result<mlua::Table> {
        if let Some((snap, t)) = &self.mesh_cache
            && Arc::ptr_eq(snap, mesh)
        {
            return Ok(t.clone());
        }
        let budget = budget.max(Duration::from_secs(1));
        let deadline = Deadline {
            ms: self.deadline_ms.clone(),
            epoch: self.epoch,
        };
        let t = self.budgeted(budget, |lua| {
            views::build_mesh(lua, &self.make_mesh, mesh, &deadline)
        })?;
        self.mesh_cache = Some((mesh.clone(), t.clone()));
        Ok(t)
    }

    /// Run `f` with the budget open; it closes again before this returns, so
    /// nothing done with the result can run script code. After a memory
    /// error, collect garbage so the next call starts clean.
    pub fn budgeted<T>(
        &self,
        budget: Duration,
        f: impl FnOnce(&Lua) -> mlua::Result<T>,
    ) -> mlua::Result<T> {
        let until = self.epoch.elapsed() + budget;
        self.logged.store(0, Relaxed);
        // Nested, the outer deadline comes back afterwards (none is today).
        let outer = self
            .deadline_ms
            .swap((until.as_millis() as u64).max(1), Relaxed);
        let out = f(&self.lua);
        self.deadline_ms.store(outer, Relaxed);
        if matches!(out, Err(mlua::Error::MemoryError(_))) {
            // The garbage still counts against the limit until collected.
            let _ = self.lua.gc_collect();
        }
        out
    }

    /// A global function of the script, read raw (no `__index` of `_G`).
    pub fn entry(&self, name: &str) -> Option<Function> {
        match self.lua.globals().raw_get::<Value>(name) {
            Ok(Value::Function(f)) => Some(f),
            _ => None,
        }
    }
}

/// The open budget's deadline, for host work done on a script's behalf that
/// must not count against it.
#[derive(Clone)]
pub struct Deadline {
    ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Deadline {
    /// Run `f`, then move the open deadline (if any) later by the time `f`
    /// took, at most a second.
    pub fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        let t0 = self.epoch.elapsed();
        let out = f();
        let took = (self.epoch.elapsed() - t0).min(Duration::from_secs(1));
        let _ = self.ms.fetch_update(Relaxed, Relaxed, |d| {
            (d != CLOSED).then(|| d + took.as_millis() as u64)
        });
        out
    }
}

/// `file:line` where `f` is defined, if it is a script function.
pub(crate) fn defined_at(f: &Function) -> Option<String> {
    let info = f.info();
    match (info.short_src, info.line_defined) {
        (Some(src), Some(line)) if info.what != "C" => Some(format!("{src}:{line}")),
        _ => None,
    }
}
