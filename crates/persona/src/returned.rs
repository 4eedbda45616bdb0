//! Reading what a script returned — raw, so no script code runs.
//!
//! A returned value is read after its call's budget has closed, so reading
//! it must not run Lua: fields are read with `rawget`/`rawlen`, never through
//! `__index`, `__len`, `__iter`, `__tostring`, `__eq`…; a table that has a
//! metatable is refused outright (the `route` builders return plain frozen
//! tables). Only the fields a route needs are read, one level deep, so a
//! cyclic or deeply nested value cannot make the reader recurse. Strings
//! must be valid UTF-8 and are size-checked before they are copied; numbers
//! must be finite.

use mlua::{Table, Value};
use repowire_core::route::{Route, RouteLimits};

/// Longest peer name or duration a route may carry.
const MAX_NAME: usize = 256;

/// The table a script returned, if it is a plain one.
fn returned<'a>(v: &'a Value, want: &str) -> Result<&'a Table, String> {
    match v {
        Value::Table(t) if t.metatable().is_some() => Err("returned a table with a metatable; \
             return a plain table (build routes with route.assign, route.defer, …)"
            .into()),
        Value::Table(t) => Ok(t),
        Value::Nil => Err("returned nothing (every path must return a route)".into()),
        other => Err(format!(
            "returned a {}, not {want} (build one with route.assign, route.defer, …)",
            other.type_name()
        )),
    }
}

/// A string field, checked for size and encoding before it is copied.
fn text(v: Value, field: &str, max: usize) -> Result<Option<String>, String> {
    match v {
        Value::Nil => Ok(None),
        Value::String(s) => {
            let n = s.as_bytes().len();
            if n > max {
                return Err(format!("route field {field} is {n} bytes, over {max}"));
            }
            s.to_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| format!("route field {field} is not valid UTF-8"))
        }
        Value::Integer(i) => Ok(Some(i.to_string())),
        Value::Number(n) if n.is_finite() => Ok(Some(n.to_string())),
        Value::Number(n) => Err(format!("route field {field} is {n}, not a finite number")),
        other => Err(format!(
            "route field {field} is a {}, not a string",
            other.type_name()
        )),
    }
}

/// Read a route table a script returned.
pub fn parse_route(v: &Value, limits: &RouteLimits) -> Result<Route, String> {
    let t = returned(v, "a route")?;
    let raw = |k: &str| -> Result<Value, String> {
        t.raw_get::<Value>(k)
            .map_err(|e| format!("route field {k}: {e}"))
    };
    let get = |k: &str, max: usize| -> Result<Option<String>, String> { text(raw(k)?, k, max) };
    let need = |k: &str, max: usize| -> Result<String, String> {
        get(k, max)?.ok_or_else(|| format!("route is missing `{k}`"))
    };
    let body = limits.max_text_bytes;
    let kind = need("route", MAX_NAME)?;
    Ok(match kind.as_str() {
        "assign" => Route::Assign {
            peer: need("peer", MAX_NAME)?,
            note: get("note", body)?,
        },
        "ask" => Route::Ask {
            peer: need("peer", MAX_NAME)?,
            text: need("text", body)?,
        },
        "notify" => Route::Notify {
            peer: need("peer", MAX_NAME)?,
            text: need("text", body)?,
        },
        "defer" => Route::Defer {
            after: need("after", MAX_NAME)?,
            why: get("why", body)?.unwrap_or_default(),
        },
        "ask_user" => Route::AskUser {
            question: need("text", body)?,
        },
        "decline" => Route::Decline {
            why: need("why", body)?,
        },
        "spawn" => Route::Spawn {
            path: need("path", repowire_core::limits::PATH_BYTES)?,
            backend: need("backend", MAX_NAME)?,
            name: get("name", MAX_NAME)?,
        },
        "fanout" => {
            let list = match raw("peers")? {
                Value::Table(t) if t.metatable().is_none() => t,
                Value::Table(_) => return Err("route field peers has a metatable".into()),
                Value::Nil => return Err("route is missing `peers`".into()),
                other => {
                    return Err(format!(
                        "route field peers is a {}, not a list",
                        other.type_name()
                    ));
                }
            };
            let n = list.raw_len();
            if n > limits.max_fanout {
                return Err(format!(
                    "fanout to {n} peers, over the limit of {}",
                    limits.max_fanout
                ));
            }
            let mut peers = Vec::with_capacity(n);
            for i in 1..=n {
                let v = list
                    .raw_get::<Value>(i)
                    .map_err(|e| format!("route field peers[{i}]: {e}"))?;
                let name = text(v, &format!("peers[{i}]"), MAX_NAME)?
                    .ok_or_else(|| format!("route field peers[{i}] is nil"))?;
                peers.push(name);
            }
            Route::Fanout {
                peers,
                text: need("text", body)?,
            }
        }
        other => return Err(format!("unknown route kind {:?}", clip_kind(other))),
    })
}

fn clip_kind(s: &str) -> String {
    super::vm::clip(s, 40)
}

/// The routes of an entry point that returns a list (`checkin`,
/// `on_event`): nil (none), one route, or a list of at most `max` routes.
pub fn route_list(v: &Value, limits: &RouteLimits) -> Result<Vec<Route>, String> {
    if v.is_nil() {
        return Ok(Vec::new());
    }
    let t = returned(v, "a list of routes")?;
    if !t
        .raw_get::<Value>("route")
        .map_err(|e| e.to_string())?
        .is_nil()
    {
        return parse_route(v, limits).map(|r| vec![r]);
    }
    let n = t.raw_len();
    if n > limits.max_fanout {
        return Err(format!(
            "returned {n} routes; at most {}",
            limits.max_fanout
        ));
    }
    (1..=n)
        .map(|i| {
            let item = t.raw_get::<Value>(i).map_err(|e| e.to_string())?;
            parse_route(&item, limits).map_err(|e| format!("route {i}: {e}"))
        })
        .collect()
}
