--[[ cross_review — a second pair of eyes from another model family.

review: reviewers are never on the author's backend (a Codex change gets a
Claude or Gemini reviewer, and so on), least loaded first. Items tagged
`risky` get two such reviewers (a fan-out ask). If no peer on another backend
is available, the review waits rather than going to the same family.

dispatch: the least-loaded available agent whose tags cover the job's. ]]

local function available(p)
  return p.status == "online" or p.status == "idle"
end

local function by_load(list)
  table.sort(list, function(a, b)
    if a.load ~= b.load then
      return a.load < b.load
    end
    return a.name < b.name
  end)
  return list
end

local function has_tag(list, t)
  for _, x in ipairs(list) do
    if x == t then
      return true
    end
  end
  return false
end

function dispatch(job, mesh)
  local fits = {}
  for _, p in ipairs(mesh.peers({ role = "agent" })) do
    local ok = available(p)
    for _, t in ipairs(job.tags) do
      ok = ok and p:has_tag(t)
    end
    if ok then
      table.insert(fits, p)
    end
  end
  local pick = by_load(fits)[1]
  if pick then
    return route.assign(pick)
  end
  return route.defer("1m", "no agent is available")
end

function review(item, mesh)
  local author = mesh.peer(item.author)
  local backend = author and author.backend or ""
  local cross = {}
  for _, p in ipairs(mesh.peers()) do
    if p.name ~= item.author and available(p) and (p.role == "agent" or p.role == "human") and p.backend ~= backend then
      table.insert(cross, p)
    end
  end
  by_load(cross)
  if has_tag(item.tags, "risky") and #cross >= 2 then
    return route.fanout({ cross[1], cross[2] }, `Please review {item.ref} at {item.head_sha} (risky: two reviewers).`)
  end
  if cross[1] then
    return route.assign(cross[1], { note = `cross-backend review of {item.ref}` })
  end
  return route.defer("10m", "no reviewer on another backend than " .. (backend ~= "" and backend or "the author's"))
end
