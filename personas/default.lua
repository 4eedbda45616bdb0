--[[ default — the built-in policy, written out as a persona.

dispatch: the least-loaded available agent (status online or idle) whose tags
cover all of the job's tags, preferring one that has not had this job before
(a retry goes to someone new); if nobody fits, wait a minute.

review: an available peer on a different backend than the author, least
loaded first (never the author; agents and humans only); else any other available
peer; if nobody is there, wait five minutes.

Copy it (`repowire orchestrator persona new mine --from default`) to start
your own. ]]

local function available(p)
  return p.status == "online" or p.status == "idle"
end

local function covers(p, tags)
  for _, t in ipairs(tags) do
    if not p:has_tag(t) then
      return false
    end
  end
  return true
end

local function contains(list, x)
  for _, v in ipairs(list) do
    if v == x then
      return true
    end
  end
  return false
end

local function least_loaded(list)
  table.sort(list, function(a, b)
    if a.load ~= b.load then
      return a.load < b.load
    end
    return a.name < b.name
  end)
  return list[1]
end

function dispatch(job, mesh)
  local fits, fresh = {}, {}
  for _, p in ipairs(mesh.peers({ role = "agent" })) do
    if available(p) and covers(p, job.tags) then
      table.insert(fits, p)
      if not contains(job.previous_assignees, p.name) then
        table.insert(fresh, p)
      end
    end
  end
  local pick = least_loaded(#fresh > 0 and fresh or fits)
  if pick then
    return route.assign(pick)
  end
  if #job.tags == 0 then
    return route.defer("1m", "no agent is available")
  end
  return route.defer("1m", "no available agent has the tags " .. table.concat(job.tags, ", "))
end

function review(item, mesh)
  local author = mesh.peer(item.author)
  local others, cross = {}, {}
  for _, p in ipairs(mesh.peers()) do
    if p.name ~= item.author and available(p) and (p.role == "agent" or p.role == "human") then
      table.insert(others, p)
      if not author or p.backend ~= author.backend then
        table.insert(cross, p)
      end
    end
  end
  local pick = least_loaded(#cross > 0 and cross or others)
  if pick then
    return route.assign(pick, { note = "review " .. item.ref .. " at " .. item.head_sha })
  end
  return route.defer("5m", "no reviewer is available")
end
