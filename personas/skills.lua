--[[ skills — match the work to what peers say they are good at.

dispatch: every available agent gets a score: 3 per job tag it carries, 1 per
word of the job's title found in its description (words of 4+ letters), minus
its load. The best score wins (ties: lower load, then name). If nobody scores
above zero, the least-loaded available agent gets it; nobody at all: wait.

review: the same scoring against the item's tags, never the author. ]]

local function available(p)
  return p.status == "online" or p.status == "idle"
end

local function score(p, tags, text)
  local s = 0
  for _, t in ipairs(tags) do
    if p:has_tag(t) then
      s += 3
    end
  end
  local desc = string.lower(p.description)
  for word in string.gmatch(string.lower(text), "%a+") do
    if #word >= 4 and string.find(desc, word, 1, true) then
      s += 1
    end
  end
  return s - p.load
end

local function best(candidates, tags, text)
  local top, top_score = nil, nil
  for _, p in ipairs(candidates) do
    local s = score(p, tags, text)
    if top == nil or s > top_score or (s == top_score and (p.load < top.load or (p.load == top.load and p.name < top.name))) then
      top, top_score = p, s
    end
  end
  return top, top_score
end

function dispatch(job, mesh)
  local agents = {}
  for _, p in ipairs(mesh.peers({ role = "agent" })) do
    if available(p) then
      table.insert(agents, p)
    end
  end
  local pick, s = best(agents, job.tags, job.title .. " " .. job.brief)
  if pick == nil then
    return route.defer("1m", "no agent is available")
  end
  return route.assign(pick, { note = `skills score {s}` })
end

function review(item, mesh)
  local others = {}
  for _, p in ipairs(mesh.peers()) do
    if p.name ~= item.author and available(p) and (p.role == "agent" or p.role == "human") then
      table.insert(others, p)
    end
  end
  local pick, s = best(others, item.tags, item.ref)
  if pick == nil then
    return route.defer("5m", "no reviewer is available")
  end
  return route.assign(pick, { note = `review {item.ref}, skills score {s}` })
end
