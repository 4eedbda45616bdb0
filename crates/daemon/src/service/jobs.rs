//! Jobs: create, read, update, and dispatch through the circle's persona
//! (the pipeline decides and carries the route out). Queued jobs are retried
//! from the background tick ([`retry_queued`]).

use super::blocking;
use crate::DaemonHandle;
use crate::auth::Caller;
use crate::pipeline::{self, Input, Outcome, Target};
use crate::policy::{self, Action};
use repowire_client::api::{DispatchResp, JobCreateReq, JobInfo, JobUpdateReq};
use repowire_core::error::Error;
use repowire_core::ids::{JobId, PeerId};
use repowire_core::job::{Job, JobState, JobUpdate};
use repowire_core::mesh::JobInput;
use repowire_core::route::DispatchOutcome;

/// The filters of a job list.
pub struct ListFilter {
    pub state: Option<String>,
    pub owner: Option<String>,
    pub assignee: Option<String>,
    pub circle: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// Decide a queued job's route and (unless `dry_run`) carry it out.
pub fn dispatch(h: &DaemonHandle, id: &JobId, dry_run: bool) -> Result<DispatchResp, Error> {
    let job = JobInfo::from(h.store.get_job(id)?);
    let input = JobInput {
        id: job.job_id.clone(),
        title: job.title.clone(),
        brief: job.brief.clone(),
        tags: job.tags.clone(),
        priority: job.priority,
        creator: job.created_by.clone(),
        attempt: job.attempts + 1,
        previous_assignees: job.previous_assignees.clone(),
    };
    let decision = pipeline::decide(
        h,
        &job.circle,
        Input::Dispatch(&input),
        serde_json::json!({"job": id}),
    )?;
    let resp = |job, outcome, delivery_id: Option<_>| DispatchResp {
        job,
        persona: decision.persona.clone(),
        route: decision.out(),
        outcome,
        delivery_id: delivery_id.map(String::from),
    };
    if dry_run {
        return Ok(resp(job, DispatchOutcome::DryRun, None));
    }
    let route = decision
        .routes
        .first()
        .ok_or_else(|| Error::internal("a dispatch decision without a route"))?;
    let done = pipeline::execute(h, &Target::Job(id), route)?;
    let outcome = done.dispatch_outcome();
    Ok(match done {
        Outcome::Assigned { delivery_id } => {
            resp(h.store.get_job(id)?.into(), outcome, delivery_id)
        }
        Outcome::AskedUser { delivery_id } => resp(job, outcome, delivery_id),
        Outcome::Spawn {
            path,
            backend,
            name,
        } => {
            let by = match &decision.persona {
                Some(p) => format!("persona {p}"),
                None => "the built-in policy".to_string(),
            };
            start_worker(h, &job, path, backend, name, by);
            resp(job, outcome, None)
        }
        _ => resp(job, outcome, None),
    })
}

/// Start the session a persona's `route.spawn` asked for, after the
/// decision committed (the job is held meanwhile). The spawn's watcher
/// assigns the job when the session registers and lets it go again when it
/// never does; a spawn refused at once (the circle's cap, an unknown
/// backend, a path that is no directory, tmux failing) is recorded as
/// `peer_spawn_failed` and the job is routed again a minute later.
fn start_worker(
    h: &DaemonHandle,
    job: &JobInfo,
    path: String,
    backend: String,
    name: Option<String>,
    by: String,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(job = %job.job_id, "no runtime to start a spawned worker on");
        return;
    };
    let Ok(id) = JobId::parse(&job.job_id) else {
        return;
    };
    let spec = crate::tmux::spawn::SpawnSpec {
        path: path.into(),
        backend,
        name: name.clone(),
        circle: job.circle.clone(),
        command: None,
        server: None,
        message: None,
        by,
        job: Some(id.clone()),
    };
    let h = h.clone();
    rt.spawn(async move {
        if let Err(e) = crate::tmux::spawn::spawn(&h, spec).await {
            tracing::info!(job = %id, error = %e, "a persona's spawn was refused");
            if let Err(e2) = h
                .store
                .spawn_refused(&id, name.as_deref(), &e.message, RETRY_SPAWN_MS)
            {
                tracing::warn!(job = %id, error = %e2, "recording a refused spawn failed");
            }
        }
    });
}

/// How long a job waits after its persona's spawn was refused at once.
const RETRY_SPAWN_MS: i64 = 60_000;

/// Background: try to dispatch queued, unassigned jobs (a few per tick).
pub fn retry_queued(h: &DaemonHandle) -> usize {
    let Ok(queued) = h.store.dispatchable_jobs(20) else {
        return 0;
    };
    let mut n = 0;
    for id in queued {
        match dispatch(h, &id, false) {
            // Only an assignment moves the job out of the queue.
            Ok(r) if r.job.state != JobState::Queued => n += 1,
            Ok(_) => {}
            Err(e) => tracing::debug!(job = %id, error = %e, "dispatch retry failed"),
        }
    }
    n
}

/// Create a job as the caller, and route it now if someone fits (else it
/// waits for a retry).
pub async fn create(h: &DaemonHandle, c: &Caller, req: JobCreateReq) -> Result<JobInfo, Error> {
    policy::authorize(c, Action::ActAsPeer, policy::Target::none())?;
    let me = c.me()?.id.clone();
    let h = h.clone();
    blocking(move || {
        let job = h.store.create_job(&me, &req.into())?;
        if job.state == JobState::Queued
            && let Ok(r) = dispatch(&h, &job.job_id, false)
        {
            return Ok(r.job);
        }
        Ok(job.into())
    })
    .await
}

/// Jobs of the caller's circle (the admin: any, or all).
pub fn list(h: &DaemonHandle, c: &Caller, f: ListFilter) -> Result<Vec<Job>, Error> {
    let circle = policy::read_scope(c, f.circle)?;
    let state = f.state.as_deref().map(JobState::parse).transpose()?;
    h.store.list_jobs(
        circle.as_deref(),
        state,
        f.owner.as_deref(),
        f.assignee.as_deref(),
        f.limit.unwrap_or(50).clamp(1, 1000),
        f.offset.unwrap_or(0),
    )
}

/// One job, if the caller may see its circle.
pub fn show(h: &DaemonHandle, c: &Caller, id: &JobId) -> Result<Job, Error> {
    let j = h.store.get_job(id)?;
    policy::authorize(c, Action::ReadObject, policy::Target::circle(&j.circle))?;
    Ok(j)
}

/// The peer a job change is made as (the admin without `--as`: nobody in
/// particular, allowed).
fn actor(c: &Caller) -> Option<&PeerId> {
    c.me().ok().map(|p| &p.id)
}

/// Update a job (the store checks, inside the write, that the actor is its
/// assignee, owner, creator or the orchestrator: the assignee changes).
pub fn update(h: &DaemonHandle, c: &Caller, id: &JobId, req: JobUpdateReq) -> Result<Job, Error> {
    h.store.update_job(id, actor(c), &req.into())
}

/// Cancel a job, with an optional reason.
pub fn cancel(
    h: &DaemonHandle,
    c: &Caller,
    id: &JobId,
    reason: Option<String>,
) -> Result<Job, Error> {
    let req = JobUpdate {
        state: Some(JobState::Canceled),
        note: reason.map(|r| format!("cancel: {r}")),
        ..Default::default()
    };
    h.store.update_job(id, actor(c), &req)
}

/// Put a failed, timed-out or canceled job back in the queue: its owner,
/// its creator, the orchestrator or the admin.
pub fn retry(h: &DaemonHandle, c: &Caller, id: &JobId) -> Result<Job, Error> {
    let j = h.store.get_job(id)?;
    let managers = [j.owner.as_str(), j.created_by.as_str()];
    let target = policy::Target {
        circle: Some(&j.circle),
        managers: &managers,
        ..policy::Target::default()
    };
    policy::authorize(c, Action::Manage, target)?;
    h.store.retry_job(id, actor(c))
}

/// Dispatch (or, with `dry_run`, only decide) a job for the caller.
pub async fn dispatch_for(
    h: &DaemonHandle,
    c: &Caller,
    id: JobId,
    dry_run: bool,
) -> Result<DispatchResp, Error> {
    let j = h.store.get_job(&id)?;
    let action = if dry_run {
        Action::DispatchDryRun
    } else {
        Action::Dispatch
    };
    policy::authorize(
        c,
        action,
        policy::Target {
            circle: Some(&j.circle),
            owner: Some(&j.owner),
            ..policy::Target::default()
        },
    )?;
    let h = h.clone();
    blocking(move || dispatch(&h, &id, dry_run)).await
}
