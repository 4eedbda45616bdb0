--[[ default — the built-in policy, written out as a persona.

dispatch: the least-loaded available agent (status online or idle) whose tags
cover all of the job's tags, preferring one that has not had this job before
(a retry goes to someone new); if nobody fits, wait a minute.

review: an available peer on a different backend than the author, least
loaded first (never the author; agents and humans only); else any other available
peer; if nobody is there, wait five minutes.

Copy it (`repowire orchestrator persona new mine --from default`) to start
your own. ]]

-- mesh.least_loaded{…} picks the least-loaded matching peer (ties by name)
-- in one host call, which keeps decisions fast in a mesh of 1,000 peers.

function dispatch(job, mesh)
  local fits = { role = "agent", available = true, tags = job.tags }
  local fresh = { role = "agent", available = true, tags = job.tags, exclude = job.previous_assignees }
  local pick = mesh.least_loaded(fresh) or mesh.least_loaded(fits)
  if pick then
    return route.assign(pick)
  end
  if #job.tags == 0 then
    return route.defer("1m", "no agent is available")
  end
  return route.defer("1m", "no available agent has the tags " .. table.concat(job.tags, ", "))
end

local function lighter(a, b)
  if a == nil then
    return b
  end
  if b == nil then
    return a
  end
  if b.load < a.load or (b.load == a.load and b.name < a.name) then
    return b
  end
  return a
end

-- The least-loaded available agent or human matching `filter`.
local function reviewer(mesh, filter)
  filter.role = "agent"
  local agent = mesh.least_loaded(filter)
  filter.role = "human"
  return lighter(agent, mesh.least_loaded(filter))
end

function review(item, mesh)
  local author = mesh.peer(item.author)
  local pick = nil
  if author then
    pick = reviewer(mesh, { available = true, exclude = { item.author }, not_backend = author.backend })
  end
  pick = pick or reviewer(mesh, { available = true, exclude = { item.author } })
  if pick then
    return route.assign(pick, { note = "review " .. item.ref .. " at " .. item.head_sha })
  end
  return route.defer("5m", "no reviewer is available")
end
