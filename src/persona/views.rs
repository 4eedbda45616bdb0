//! What a script is handed: read-only views built from snapshots that hold
//! no identity internals, and the `route` module that builds decisions.
//!
//! Peers are userdata with getters only (assigning a field, `rawset` or
//! `setmetatable` on one fails); everything else is a frozen table.

use crate::core::mesh::{JobInput, MeshSnapshot, PeerSnap, ReviewInput};
use crate::core::route::Route;
use mlua::{Lua, Table, UserData, UserDataFields, UserDataMethods, Value};
use std::sync::Arc;

/// A peer as a script sees it.
#[derive(Clone)]
pub struct PeerView(pub PeerSnap);

fn frozen_list(lua: &Lua, items: &[String]) -> mlua::Result<Table> {
    let t = lua.create_sequence_from(items.iter().cloned())?;
    t.set_readonly(true);
    Ok(t)
}

impl UserData for PeerView {
    fn add_fields<F: UserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("name", |_, p| Ok(p.0.name.clone()));
        f.add_field_method_get("circle", |_, p| Ok(p.0.circle.clone()));
        f.add_field_method_get("role", |_, p| Ok(p.0.role.clone()));
        f.add_field_method_get("backend", |_, p| Ok(p.0.backend.clone()));
        f.add_field_method_get("tags", |lua, p| frozen_list(lua, &p.0.tags));
        f.add_field_method_get("status", |_, p| Ok(p.0.status.clone()));
        f.add_field_method_get("load", |_, p| Ok(p.0.load));
        f.add_field_method_get("description", |_, p| Ok(p.0.description.clone()));
        f.add_field_method_get("last_seen_age_s", |_, p| Ok(p.0.last_seen_age_s));
    }

    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method("has_tag", |_, p, t: String| Ok(p.0.tags.contains(&t)));
        m.add_method("is_online", |_, p, ()| Ok(p.0.status != "offline"));
        m.add_meta_method(mlua::MetaMethod::ToString, |_, p, ()| {
            Ok(format!("peer {}", p.0.name))
        });
    }
}

fn matches(p: &PeerSnap, filter: &Option<Table>) -> mlua::Result<bool> {
    let Some(f) = filter else { return Ok(true) };
    for key in ["status", "role", "backend", "circle"] {
        if let Some(want) = f.get::<Option<String>>(key)? {
            let have = match key {
                "status" => &p.status,
                "role" => &p.role,
                "backend" => &p.backend,
                _ => &p.circle,
            };
            if *have != want {
                return Ok(false);
            }
        }
    }
    if let Some(tag) = f.get::<Option<String>>("tag")?
        && !p.tags.contains(&tag)
    {
        return Ok(false);
    }
    Ok(true)
}

/// The `mesh` table for one call: functions over the snapshot.
pub fn mesh_table(lua: &Lua, mesh: &Arc<MeshSnapshot>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("circle", mesh.circle.clone())?;
    let m = mesh.clone();
    t.set(
        "peers",
        lua.create_function(move |lua, filter: Option<Table>| {
            let out = lua.create_table()?;
            let mut i = 1;
            for p in &m.peers {
                if matches(p, &filter)? {
                    out.raw_set(i, PeerView(p.clone()))?;
                    i += 1;
                }
            }
            out.set_readonly(true);
            Ok(out)
        })?,
    )?;
    let m = mesh.clone();
    t.set(
        "peer",
        lua.create_function(move |_, name: String| {
            Ok(m.peers
                .iter()
                .find(|p| p.name == name)
                .cloned()
                .map(PeerView))
        })?,
    )?;
    let m = mesh.clone();
    t.set(
        "orchestrator",
        lua.create_function(move |_, ()| {
            Ok(m.peers
                .iter()
                .find(|p| p.role == "orchestrator")
                .cloned()
                .map(PeerView))
        })?,
    )?;
    let m = mesh.clone();
    t.set(
        "jobs",
        lua.create_function(move |lua, filter: Option<Table>| {
            let state: Option<String> = match &filter {
                Some(f) => f.get("state")?,
                None => None,
            };
            let out = lua.create_table()?;
            for (i, j) in m
                .jobs
                .iter()
                .filter(|j| state.as_ref().is_none_or(|s| *s == j.state))
                .enumerate()
            {
                let jt = lua.create_table()?;
                jt.set("id", j.id.clone())?;
                jt.set("title", j.title.clone())?;
                jt.set("state", j.state.clone())?;
                jt.set("assignee", j.assignee.clone())?;
                jt.set("tags", frozen_list(lua, &j.tags)?)?;
                jt.set_readonly(true);
                out.raw_set(i + 1, jt)?;
            }
            out.set_readonly(true);
            Ok(out)
        })?,
    )?;
    let now = mesh.now_ms;
    t.set(
        "now",
        lua.create_function(move |_, ()| Ok(now as f64 / 1000.0))?,
    )?;
    t.set_readonly(true);
    Ok(t)
}

/// The `job` table handed to `dispatch`.
pub fn job_table(lua: &Lua, job: &JobInput) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("id", job.id.clone())?;
    t.set("title", job.title.clone())?;
    t.set("brief", job.brief.clone())?;
    t.set("tags", frozen_list(lua, &job.tags)?)?;
    t.set("priority", job.priority)?;
    t.set("creator", job.creator.clone())?;
    t.set("attempt", job.attempt)?;
    t.set(
        "previous_assignees",
        frozen_list(lua, &job.previous_assignees)?,
    )?;
    t.set_readonly(true);
    Ok(t)
}

/// The `item` table handed to `review`.
pub fn item_table(lua: &Lua, item: &ReviewInput) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("ref", item.reference.clone())?;
    t.set("head_sha", item.head_sha.clone())?;
    t.set("author", item.author.clone())?;
    t.set("requested_by", item.requested_by.clone())?;
    t.set("tags", frozen_list(lua, &item.tags)?)?;
    t.set_readonly(true);
    Ok(t)
}

/// A peer argument: a name, or a peer view.
fn peer_name(v: &Value) -> mlua::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::UserData(u) => Ok(u.borrow::<PeerView>()?.0.name.clone()),
        other => Err(mlua::Error::runtime(format!(
            "expected a peer (a name or a mesh peer), got {}",
            other.type_name()
        ))),
    }
}

fn route_table(lua: &Lua, kind: &str, fields: &[(&str, Value)]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("route", kind)?;
    for (k, v) in fields {
        t.set(*k, v.clone())?;
    }
    t.set_readonly(true);
    Ok(t)
}

/// The `route` module: builders that return frozen route tables.
pub fn route_module(lua: &Lua) -> mlua::Result<Table> {
    let r = lua.create_table()?;
    r.set(
        "assign",
        lua.create_function(|lua, (peer, opts): (Value, Option<Table>)| {
            let note: Option<String> = match opts {
                Some(o) => o.get("note")?,
                None => None,
            };
            let note = note.map(|n| lua.create_string(n)).transpose()?;
            route_table(
                lua,
                "assign",
                &[
                    ("peer", Value::String(lua.create_string(peer_name(&peer)?)?)),
                    ("note", note.map(Value::String).unwrap_or(Value::Nil)),
                ],
            )
        })?,
    )?;
    for kind in ["ask", "notify"] {
        r.set(
            kind,
            lua.create_function(move |lua, (peer, text): (Value, String)| {
                route_table(
                    lua,
                    kind,
                    &[
                        ("peer", Value::String(lua.create_string(peer_name(&peer)?)?)),
                        ("text", Value::String(lua.create_string(text)?)),
                    ],
                )
            })?,
        )?;
    }
    r.set(
        "defer",
        lua.create_function(|lua, (after, why): (String, Option<String>)| {
            route_table(
                lua,
                "defer",
                &[
                    ("after", Value::String(lua.create_string(after)?)),
                    (
                        "why",
                        Value::String(lua.create_string(why.unwrap_or_default())?),
                    ),
                ],
            )
        })?,
    )?;
    r.set(
        "ask_user",
        lua.create_function(|lua, q: String| {
            route_table(
                lua,
                "ask_user",
                &[("text", Value::String(lua.create_string(q)?))],
            )
        })?,
    )?;
    r.set(
        "decline",
        lua.create_function(|lua, why: String| {
            route_table(
                lua,
                "decline",
                &[("why", Value::String(lua.create_string(why)?))],
            )
        })?,
    )?;
    r.set(
        "fanout",
        lua.create_function(|lua, (peers, text): (Table, String)| {
            let names = lua.create_table()?;
            for (i, v) in peers.sequence_values::<Value>().enumerate() {
                names.raw_set(i + 1, peer_name(&v?)?)?;
            }
            names.set_readonly(true);
            route_table(
                lua,
                "fanout",
                &[
                    ("peers", Value::Table(names)),
                    ("text", Value::String(lua.create_string(text)?)),
                ],
            )
        })?,
    )?;
    r.set_readonly(true);
    Ok(r)
}

/// Read a route table a script returned.
pub fn parse_route(v: Value) -> Result<Route, String> {
    let t = match v {
        Value::Table(t) => t,
        Value::Nil => return Err("returned nothing (every path must return a route)".into()),
        other => {
            return Err(format!(
                "returned a {}, not a route (build one with route.assign, route.defer, …)",
                other.type_name()
            ));
        }
    };
    let get = |k: &str| -> Result<Option<String>, String> {
        t.get::<Option<String>>(k)
            .map_err(|e| format!("route field {k}: {e}"))
    };
    let need = |k: &str| -> Result<String, String> {
        get(k)?.ok_or_else(|| format!("route is missing `{k}`"))
    };
    let kind = need("route")?;
    Ok(match kind.as_str() {
        "assign" => Route::Assign {
            peer: need("peer")?,
            note: get("note")?,
        },
        "ask" => Route::Ask {
            peer: need("peer")?,
            text: need("text")?,
        },
        "notify" => Route::Notify {
            peer: need("peer")?,
            text: need("text")?,
        },
        "defer" => Route::Defer {
            after: need("after")?,
            why: get("why")?.unwrap_or_default(),
        },
        "ask_user" => Route::AskUser {
            question: need("text")?,
        },
        "decline" => Route::Decline { why: need("why")? },
        "fanout" => {
            let peers: Vec<String> = t
                .get::<Vec<String>>("peers")
                .map_err(|e| format!("route field peers: {e}"))?;
            Route::Fanout {
                peers,
                text: need("text")?,
            }
        }
        other => return Err(format!("unknown route kind {other:?}")),
    })
}
