--[[ review_nag — a check-in script: remind reviewers of what they owe.

  repowire schedule cron self "@daily" '{"hours": 4}' \
    --kind checkin --persona examples/checkins/review_nag.lua

Each reviewer with a review still needed (or a re-review suggested) that has
waited at least `args.hours` (default 4) gets one note listing them. ]]

function checkin(ctx, mesh)
  local limit = (ctx.args.hours or 4) * 3600
  local owed = {}
  for _, r in ipairs(ctx.open_reviews) do
    if r.my_action ~= "none-needed" and r.age_s >= limit then
      owed[r.reviewer] = owed[r.reviewer] or {}
      table.insert(owed[r.reviewer], `{r.ref} ({r.my_action}, by {r.author})`)
    end
  end
  local out = {}
  for reviewer, refs in pairs(owed) do
    if mesh.peer(reviewer) then
      table.insert(out, route.notify(reviewer, "Reviews waiting for you: " .. table.concat(refs, "; ")))
    end
  end
  return out
end
