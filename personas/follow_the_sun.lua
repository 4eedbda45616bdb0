--[[ follow_the_sun — send work to whoever's day it is.

Peers say when they work with a tag `hours-FROM-TO` (UTC hours, TO exclusive;
`hours-22-6` wraps past midnight). At the current hour (from mesh.now()),
dispatch prefers available agents whose hours cover it, least loaded first;
if nobody is on shift, any available agent; if nobody at all, wait.

review: the same preference among available peers other than the author. ]]

local function available(p)
  return p.status == "online" or p.status == "idle"
end

local function on_shift(p, hour)
  for _, t in ipairs(p.tags) do
    local from, to = string.match(t, "^hours%-(%d+)%-(%d+)$")
    if from then
      from, to = tonumber(from), tonumber(to)
      if from <= to and hour >= from and hour < to then
        return true
      end
      if from > to and (hour >= from or hour < to) then
        return true
      end
    end
  end
  return false
end

local function pick(candidates, hour)
  local shift = {}
  for _, p in ipairs(candidates) do
    if on_shift(p, hour) then
      table.insert(shift, p)
    end
  end
  local pool = #shift > 0 and shift or candidates
  local best = nil
  for _, p in ipairs(pool) do
    if best == nil or p.load < best.load or (p.load == best.load and p.name < best.name) then
      best = p
    end
  end
  return best, #shift > 0
end

local function hour_now(mesh)
  return math.floor(mesh.now() / 3600) % 24
end

function dispatch(job, mesh)
  local hour = hour_now(mesh)
  local agents = {}
  for _, p in ipairs(mesh.peers({ role = "agent" })) do
    if available(p) then
      table.insert(agents, p)
    end
  end
  local p, in_shift = pick(agents, hour)
  if p == nil then
    return route.defer("30m", "nobody is available")
  end
  return route.assign(p, { note = in_shift and `on shift at {hour}:00 UTC` or `nobody on shift at {hour}:00 UTC` })
end

function review(item, mesh)
  local hour = hour_now(mesh)
  local others = {}
  for _, p in ipairs(mesh.peers()) do
    if p.name ~= item.author and available(p) and (p.role == "agent" or p.role == "human") then
      table.insert(others, p)
    end
  end
  local p = pick(others, hour)
  if p == nil then
    return route.defer("30m", "no reviewer is available")
  end
  return route.assign(p, { note = `review {item.ref} at {hour}:00 UTC` })
end
