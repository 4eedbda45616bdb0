--[[ cross_review — a second pair of eyes from another model family.

review: reviewers are never on the author's backend (a Codex change gets a
Claude or Gemini reviewer, and so on), least loaded first. Items tagged
`risky` get two such reviewers (a fan-out ask). If no peer on another backend
is available, the review waits rather than going to the same family.

dispatch: the least-loaded available agent whose tags cover the job's. ]]

local function available(p)
  return p.status == "online" or p.status == "idle"
end

local function has_tag(list, t)
  for _, x in ipairs(list) do
    if x == t then
      return true
    end
  end
  return false
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

-- The least-loaded available agent or human off the author's backend.
local function reviewer(mesh, backend, exclude)
  local f = { available = true, exclude = exclude }
  if backend ~= "" then
    f.not_backend = backend
  end
  f.role = "agent"
  local agent = mesh.least_loaded(f)
  f.role = "human"
  return lighter(agent, mesh.least_loaded(f))
end

function dispatch(job, mesh)
  local pick = mesh.least_loaded({ role = "agent", available = true, tags = job.tags })
  if pick then
    return route.assign(pick)
  end
  return route.defer("1m", "no agent is available")
end

function review(item, mesh)
  local author = mesh.peer(item.author)
  local backend = author and author.backend or ""
  local first = reviewer(mesh, backend, { item.author })
  if first == nil then
    return route.defer("10m", "no reviewer on another backend than " .. (backend ~= "" and backend or "the author's"))
  end
  if has_tag(item.tags, "risky") then
    local second = reviewer(mesh, backend, { item.author, first.name })
    if second then
      return route.fanout({ first, second }, `Please review {item.ref} at {item.head_sha} (risky: two reviewers).`)
    end
  end
  return route.assign(first, { note = `cross-backend review of {item.ref}` })
end
