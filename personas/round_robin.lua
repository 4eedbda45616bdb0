--[[ round_robin — take turns.

dispatch: available agents (online or idle) whose tags cover the job's, in
name order; each decision goes to the next one after the last pick, so work
spreads evenly whatever the load says. Nobody fits: wait a minute.

review: the same turn-taking over available peers other than the author.

The turn is kept in a local of this persona's VM. Each circle runs its own
instance, so each circle takes its own turns; the turn survives between calls
and starts over when the file is reloaded. ]]

local turn = 0

local function available(p)
  return p.status == "online" or p.status == "idle"
end

local function next_of(list)
  if #list == 0 then
    return nil
  end
  -- mesh.peers() lists peers in name order, so turns are stable.
  turn = turn % #list + 1
  return list[turn]
end

function dispatch(job, mesh)
  -- One filtered, memoized list per mesh snapshot: cheap even with 1,000 peers.
  local pick = next_of(mesh.peers({ role = "agent", available = true, tags = job.tags }))
  if pick then
    return route.assign(pick, { note = "round robin" })
  end
  return route.defer("1m", "nobody available to take a turn")
end

function review(item, mesh)
  local others = {}
  for _, p in ipairs(mesh.peers()) do
    if p.name ~= item.author and available(p) and (p.role == "agent" or p.role == "human") then
      table.insert(others, p)
    end
  end
  local pick = next_of(others)
  if pick then
    return route.assign(pick, { note = "review " .. item.ref })
  end
  return route.defer("5m", "no reviewer is available")
end
