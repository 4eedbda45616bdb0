--[[ stale_jobs — a check-in script: nudge assignees of jobs that went quiet.

Schedule it, for example every 30 minutes, as the orchestrator:

  repowire schedule cron self "*/30 * * * *" '{"minutes": 45}' \
    --kind checkin --persona examples/checkins/stale_jobs.lua

Every running or dispatched job with no progress (no note, no state change)
for `args.minutes` (default 30) gets a note to its assignee. ]]

function checkin(ctx, mesh)
  local limit = (ctx.args.minutes or 30) * 60
  local out = {}
  for _, state in ipairs({ "running", "dispatched" }) do
    for _, job in ipairs(mesh.jobs({ state = state })) do
      if job.assignee and job.updated_age_s >= limit then
        table.insert(out, route.notify(job.assignee,
          `Job {job.id} "{job.title}" has had no progress for {math.floor(job.updated_age_s / 60)} min. ` ..
          `Add a note (repowire jobs update {job.id} --note …) or say if you are stuck.`))
      end
    end
  end
  return out
end
