//! What a script is handed: read-only views built from snapshots that hold
//! no identity internals, and the `route` module that builds decisions.
//!
//! Every view is a frozen table (assigning a field, `rawset` or
//! `setmetatable` on one fails); peers share a protected metatable that
//! gives them `has_tag` and `is_online`.

use mlua::{Function, Lua, Table, Value};
use repowire_core::mesh::{JobInput, MeshSnapshot, ReviewInput};

/// Host-side Lua, run before the sandbox is sealed and kept out of the
/// script's globals: turns plain data into the frozen `mesh` view. Filtering
/// runs in Lua over the cached peer list, which is far cheaper than a Rust
/// callback per peer.
pub const PRELUDE: &str = r#"
local Peer = {}
Peer.__index = Peer
function Peer:has_tag(t)
  for _, x in ipairs(self.tags) do
    if x == t then return true end
  end
  return false
end
function Peer:is_online() return self.status ~= "offline" end
Peer.__tostring = function(p) return "peer " .. p.name end
table.freeze(Peer)

local function keep(p, f)
  if f == nil then return true end
  if f.status ~= nil and p.status ~= f.status then return false end
  if f.role ~= nil and p.role ~= f.role then return false end
  if f.backend ~= nil and p.backend ~= f.backend then return false end
  if f.circle ~= nil and p.circle ~= f.circle then return false end
  if f.tag ~= nil and not p:has_tag(f.tag) then return false end
  if f.available and p.status ~= "online" and p.status ~= "idle" then return false end
  if f.tags ~= nil then
    for _, t in ipairs(f.tags) do
      if not p:has_tag(t) then return false end
    end
  end
  return true
end

return function(circle, now_s, peers, load_jobs, pick)
  local by_name, orchestrator = {}, nil
  local memo = {}
  for _, p in ipairs(peers) do
    table.freeze(p.tags)
    setmetatable(p, Peer)
    table.freeze(p)
    by_name[p.name] = p
    if p.role == "orchestrator" then orchestrator = p end
  end
  -- The job list is read from the daemon the first time a script asks.
  -- Kept only once every entry is frozen: a budget that runs out halfway
  -- leaves nothing half-frozen for the next decision on this view.
  local jobs = nil
  local function all_jobs()
    if jobs == nil then
      local list = load_jobs()
      for _, j in ipairs(list) do
        table.freeze(j.tags)
        table.freeze(j)
      end
      jobs = list
    end
    return jobs
  end
  local mesh = {
    circle = circle,
    now = function() return now_s end,
    peer = function(name) return by_name[name] end,
    orchestrator = function() return orchestrator end,
    peers = function(f)
      -- The same filter over the same snapshot gives the same (frozen) list.
      local key = f and table.concat({ tostring(f.status), tostring(f.role), tostring(f.backend),
        tostring(f.circle), tostring(f.tag), tostring(f.available),
        f.tags and table.concat(f.tags, ",") or "" }, "\0") or ""
      local hit = memo[key]
      if hit then return hit end
      local out = {}
      for _, p in ipairs(peers) do
        if keep(p, f) then out[#out + 1] = p end
      end
      memo[key] = table.freeze(out)
      return memo[key]
    end,
    least_loaded = function(f)
      local i = pick(f)
      return i and peers[i]
    end,
    jobs = function(f)
      local out = {}
      for _, j in ipairs(all_jobs()) do
        if f == nil or f.state == nil or j.state == f.state then out[#out + 1] = j end
      end
      return table.freeze(out)
    end,
  }
  return table.freeze(mesh)
end
"#;

fn frozen_list(lua: &Lua, items: &[String]) -> mlua::Result<Table> {
    let t = lua.create_sequence_from(items.iter().cloned())?;
    t.set_readonly(true);
    Ok(t)
}

/// Build the frozen `mesh` view of `mesh` with the prelude's `make_mesh`.
/// Peers carry only what `PeerSnap` has: no ids, tokens, pids, panes, paths.
pub fn build_mesh(
    lua: &Lua,
    make_mesh: &Function,
    mesh: &std::sync::Arc<MeshSnapshot>,
    budget: &crate::vm::Deadline,
) -> mlua::Result<Table> {
    let peers = lua.create_table_with_capacity(mesh.peers.len(), 0)?;
    for (i, p) in mesh.peers.iter().enumerate() {
        let t = lua.create_table_with_capacity(0, 9)?;
        t.raw_set("name", p.name.as_str())?;
        t.raw_set("circle", p.circle.as_str())?;
        t.raw_set("role", p.role.as_str())?;
        t.raw_set("backend", p.backend.as_str())?;
        t.raw_set(
            "tags",
            lua.create_sequence_from(p.tags.iter().map(String::as_str))?,
        )?;
        t.raw_set("status", p.status.as_str())?;
        t.raw_set("load", p.load)?;
        t.raw_set("description", p.description.as_str())?;
        t.raw_set("last_seen_age_s", p.last_seen_age_s)?;
        peers.raw_set(i + 1, t)?;
    }
    // Built when a script first calls `mesh.jobs` (most never do). Reading
    // the list from the daemon (waiting for its store, too) does not count
    // against the script's budget, as when snapshots were read up front;
    // making the tables does.
    let snap = mesh.clone();
    let budget = budget.clone();
    let load_jobs = lua.create_function(move |lua, ()| {
        let list = budget
            .paused(|| snap.jobs.get())
            .map_err(mlua::Error::runtime)?;
        let jobs = lua.create_table_with_capacity(list.len(), 0)?;
        for (i, j) in list.iter().enumerate() {
            let t = lua.create_table()?;
            t.raw_set("id", j.id.as_str())?;
            t.raw_set("title", j.title.as_str())?;
            t.raw_set("state", j.state.as_str())?;
            t.raw_set("assignee", j.assignee.as_deref())?;
            t.raw_set(
                "tags",
                lua.create_sequence_from(j.tags.iter().map(String::as_str))?,
            )?;
            t.raw_set("updated_age_s", j.updated_age_s)?;
            jobs.raw_set(i + 1, t)?;
        }
        Ok(jobs)
    })?;
    let snap = mesh.clone();
    let pick = lua.create_function(move |_, f: Option<Table>| pick(&snap, f.as_ref()))?;
    make_mesh.call((
        mesh.circle.as_str(),
        mesh.now_ms as f64 / 1000.0,
        peers,
        load_jobs,
        pick,
    ))
}

/// `mesh.least_loaded{…}`: the least-loaded peer matching a filter (ties by
/// name), found in Rust: one call instead of a Lua loop over the mesh.
/// Filter keys: `status`, `available` (online or idle), `role`, `backend`,
/// `not_backend`, `tag`, `tags` (all of), `exclude` (names).
fn pick(mesh: &MeshSnapshot, f: Option<&Table>) -> mlua::Result<Option<usize>> {
    let s = |k: &str| -> mlua::Result<Option<String>> {
        match f {
            Some(t) => t.get(k),
            None => Ok(None),
        }
    };
    let list = |k: &str| -> mlua::Result<Vec<String>> {
        match f {
            Some(t) => Ok(t.get::<Option<Vec<String>>>(k)?.unwrap_or_default()),
            None => Ok(Vec::new()),
        }
    };
    let (status, role, backend, not_backend, tag) = (
        s("status")?,
        s("role")?,
        s("backend")?,
        s("not_backend")?,
        s("tag")?,
    );
    let available = match f {
        Some(t) => t.get::<Option<bool>>("available")?.unwrap_or(false),
        None => false,
    };
    let (tags, exclude) = (list("tags")?, list("exclude")?);
    let mut best: Option<(usize, &repowire_core::mesh::PeerSnap)> = None;
    for (i, p) in mesh.peers.iter().enumerate() {
        let ok = status.as_ref().is_none_or(|v| *v == p.status)
            && (!available || p.status == "online" || p.status == "idle")
            && role.as_ref().is_none_or(|v| *v == p.role)
            && backend.as_ref().is_none_or(|v| *v == p.backend)
            && not_backend.as_ref().is_none_or(|v| *v != p.backend)
            && tag.as_ref().is_none_or(|v| p.tags.contains(v))
            && tags.iter().all(|t| p.tags.contains(t))
            && !exclude.contains(&p.name);
        if ok && best.is_none_or(|(_, b)| (p.load, &p.name) < (b.load, &b.name)) {
            best = Some((i, p));
        }
    }
    Ok(best.map(|(i, _)| i + 1))
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

/// The most peers `route.fanout` reads (the route limit is lower still).
const MAX_FANOUT_LIST: usize = 1000;

/// A peer argument: a name, or a peer view (anything with a `name`).
fn peer_name(v: &Value) -> mlua::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::Table(t) => t.get::<String>("name"),
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
        "spawn",
        lua.create_function(|lua, opts: Table| {
            // Plain fields only: the options table is the script's, read
            // inside the call's budget.
            let field = |k: &str| -> mlua::Result<Value> {
                match opts.raw_get::<Value>(k)? {
                    v @ (Value::Nil | Value::String(_)) => Ok(v),
                    other => Err(mlua::Error::runtime(format!(
                        "route.spawn: {k} is a {}, not a string",
                        other.type_name()
                    ))),
                }
            };
            route_table(
                lua,
                "spawn",
                &[
                    ("path", field("path")?),
                    ("backend", field("backend")?),
                    ("name", field("name")?),
                ],
            )
        })?,
    )?;
    r.set(
        "fanout",
        lua.create_function(|lua, (peers, text): (Table, String)| {
            let names = lua.create_table()?;
            for (i, v) in peers.sequence_values::<Value>().enumerate() {
                // Far over any fan-out limit: stop before a huge list is walked.
                if i == MAX_FANOUT_LIST {
                    return Err(mlua::Error::runtime(format!(
                        "route.fanout: more than {MAX_FANOUT_LIST} peers"
                    )));
                }
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
