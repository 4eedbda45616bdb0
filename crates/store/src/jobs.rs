//! Jobs: create, read, list, update (one compare-and-swap per transition),
//! cancel, and dispatch to a chosen peer (which sends it an ask carrying the
//! job id and brief).

use super::circles::{resolve_for, resolve_within};
use super::deliveries::{NewDelivery, enqueue};
use super::peers::{by_id, must};
use super::{NewEvent, Store, Tx, parse_col, states_in};
use repowire_core::access::{Action, Caller, Target, authorize};
use repowire_core::delivery::DeliveryKind;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::{Event, JobMove};
use repowire_core::ids::{DeliveryId, JobId, PeerId};
use repowire_core::job::{Job, JobAction, JobNote, JobState, JobUpdate, NewJob};
use repowire_core::peer::Peer;
use rusqlite::{Connection, OptionalExtension, Row, params};

macro_rules! cols {
    () => {
        "id, circle, title, brief, kind, tags, priority, created_by_name, owner_name, assignee_name, \
         state, phase, attempts, max_attempts, previous, result_summary, result_data, error, \
         deadline_ms, created_ms, updated_ms, created_by, owner, assignee, cancel_requested_ms"
    };
}

/// A job row plus the peer ids that decide who may act on it.
struct JobRow {
    info: Job,
    created_by: PeerId,
    owner: PeerId,
    assignee: Option<PeerId>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let tags: String = r.get(5)?;
    let prev: String = r.get(14)?;
    let data: Option<String> = r.get(16)?;
    Ok(JobRow {
        info: Job {
            job_id: r.get(0)?,
            circle: r.get(1)?,
            title: r.get(2)?,
            brief: r.get(3)?,
            kind: r.get(4)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            priority: r.get(6)?,
            created_by: r.get(7)?,
            owner: r.get(8)?,
            assignee: r.get(9)?,
            state: parse_col(r.get(10)?, JobState::parse)?,
            phase: r.get(11)?,
            attempts: r.get(12)?,
            max_attempts: r.get(13)?,
            previous_assignees: serde_json::from_str(&prev).unwrap_or_default(),
            result_summary: r.get(15)?,
            result_data: data.and_then(|d| serde_json::from_str(&d).ok()),
            error: r.get(17)?,
            deadline_ms: r.get(18)?,
            created_at_ms: r.get(19)?,
            updated_at_ms: r.get(20)?,
            cancel_requested_at_ms: r.get(24)?,
            notes: Vec::new(),
        },
        created_by: r.get(21)?,
        owner: r.get(22)?,
        assignee: r.get(23)?,
    })
}

fn get(c: &Connection, id: &JobId) -> Result<JobRow> {
    let mut row = c
        .prepare_cached(concat!("SELECT ", cols!(), " FROM jobs WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("no job {id}")))?;
    row.info.notes = c
        .prepare_cached(
            "SELECT ts_ms, by_name, text FROM job_notes WHERE job_id = ?1 ORDER BY ts_ms, rowid",
        )?
        .query_map([id], |r| {
            Ok(JobNote {
                ts_ms: r.get(0)?,
                by: r.get(1)?,
                text: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(row)
}

fn job_event(t: &mut Tx<'_>, j: &Job, event: Event) -> Result<()> {
    t.event(NewEvent {
        subject: &j.job_id,
        related: None,
        circle: Some(&j.circle),
        event,
    })
}

/// Compare-and-swap the state; `invalid_state` names where it really is.
fn cas(t: &mut Tx<'_>, id: &JobId, action: JobAction) -> Result<JobRow> {
    let allowed: Vec<&'static str> = action.allowed_from().iter().map(|s| s.as_str()).collect();
    let [s1, s2, s3, s4, s5] = states_in::<5>(&allowed)?;
    let n = t
        .conn()
        .prepare_cached(
            "UPDATE jobs SET state = ?2, updated_ms = ?3
             WHERE id = ?1 AND (state = ?4 OR state = ?5 OR state = ?6 OR state = ?7 OR state = ?8)",
        )?
        .execute(params![
            id,
            action.target().as_str(),
            t.now,
            s1,
            s2,
            s3,
            s4,
            s5
        ])?;
    let row = get(t.conn(), id)?;
    if n == 0 {
        action.apply(id, row.info.state)?;
    }
    Ok(row)
}

/// Tell the owner (else the creator) how a job ended, unless they ended it.
fn tell_owner(t: &mut Tx<'_>, j: &JobRow, actor: Option<&PeerId>) -> Result<()> {
    let orchestrator: Option<Peer> = t
        .conn()
        .prepare_cached("SELECT id FROM peers WHERE circle = ?1 AND role = 'orchestrator'")?
        .query_row([&j.info.circle], |r| r.get::<_, PeerId>(0))
        .optional()?
        .map(|id| by_id(t, &id))
        .transpose()?
        .flatten();
    // Only someone of the job's circle hears of it (an owner named across
    // circles before that was refused is passed over).
    let inside = |p: Option<Peer>| p.filter(|p| p.circle == j.info.circle);
    let who = inside(by_id(t, &j.owner)?)
        .or(inside(by_id(t, &j.created_by)?))
        .or(orchestrator);
    if let Some(owner) = who
        && Some(&owner.id) != actor
    {
        let summary = j
            .info
            .result_summary
            .as_deref()
            .or(j.info.error.as_deref())
            .unwrap_or("");
        enqueue(
            t,
            NewDelivery {
                to: &owner,
                from: None,
                kind: DeliveryKind::System,
                ask_id: None,
                job_id: Some(&j.info.job_id),
                text: &format!(
                    "Job {} \"{}\" {}. {summary}",
                    j.info.job_id, j.info.title, j.info.state
                ),
            },
        )?;
    }
    Ok(())
}

/// The job list's statement for the filters given (column, whether given):
/// only those go into the WHERE clause, so the planner can walk an index in
/// created_ms order instead of sorting the table.
fn list_sql(filters: &[(&str, bool)], limit: u32, offset: u32) -> String {
    let mut sql = String::from(concat!("SELECT ", cols!(), " FROM jobs WHERE 1 = 1"));
    let mut n = 0;
    for (col, given) in filters {
        if *given {
            n += 1;
            sql.push_str(&format!(" AND {col} = ?{n}"));
        }
    }
    sql.push_str(&format!(
        " ORDER BY created_ms DESC, rowid DESC LIMIT {limit} OFFSET {offset}"
    ));
    sql
}

impl Store {
    pub fn create_job(&self, creator_id: &PeerId, req: &NewJob) -> Result<Job> {
        self.write(|t| create_job_in(t, creator_id, req))
    }

    pub fn get_job(&self, id: &JobId) -> Result<Job> {
        self.read(|c| Ok(get(c, id)?.info))
    }

    /// A peer came online in `circle`: queued jobs a persona held back
    /// (deferred or declined) get another chance now. Retry backoffs after a
    /// lost executor stay.
    /// Whether `circle` has a queued job held back (what
    /// [`Store::release_holds`] would release): a read, so that a peer
    /// arriving costs no write when nothing waits.
    pub fn has_holds(&self, circle: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE circle = ?1 AND state = 'queued'
                   AND not_before_ms IS NOT NULL AND error IS NULL)",
            )?
            .query_row([circle], |r| r.get(0))?)
        })
    }

    pub fn release_holds(&self, circle: &str) -> Result<usize> {
        self.write(|t| {
            Ok(t.conn()
                .prepare_cached(
                    "UPDATE jobs SET not_before_ms = NULL WHERE circle = ?1 AND state = 'queued'
                       AND not_before_ms IS NOT NULL AND error IS NULL",
                )?
                .execute([circle])?)
        })
    }

    /// Queued jobs whose retry backoff has passed, oldest first (the
    /// background dispatcher's work list).
    pub fn dispatchable_jobs(&self, limit: u32) -> Result<Vec<JobId>> {
        let now = self.clock.now_ms();
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT id FROM jobs WHERE state = 'queued' AND (not_before_ms IS NULL OR not_before_ms <= ?1)
                 ORDER BY priority DESC, created_ms LIMIT ?2",
            )?
            .query_map(params![now, limit], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Jobs of a circle, newest first, filtered and paginated.
    pub fn list_jobs(
        &self,
        circle: Option<&str>,
        state: Option<JobState>,
        owner: Option<&str>,
        assignee: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Job>> {
        let state_str = state.map(|s| s.as_str());
        let filters = [
            ("circle", &circle),
            ("state", &state_str),
            ("owner_name", &owner),
            ("assignee_name", &assignee),
        ];
        let sql = list_sql(&filters.map(|(col, v)| (col, v.is_some())), limit, offset);
        let args: Vec<&dyn rusqlite::ToSql> = filters
            .iter()
            .filter_map(|(_, v)| v.as_ref().map(|v| v as &dyn rusqlite::ToSql))
            .collect();
        self.read(|c| {
            let rows = c
                .prepare_cached(&sql)?
                .query_map(args.as_slice(), from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().map(|r| r.info).collect())
        })
    }

    /// Update a job: only its assignee, owner, creator, or the circle's
    /// orchestrator (or the admin: `actor` None).
    pub fn update_job(&self, id: &JobId, actor: Option<&PeerId>, req: &JobUpdate) -> Result<Job> {
        for (what, v) in [
            ("note", &req.note),
            ("result", &req.result),
            ("error", &req.error),
            ("phase", &req.phase),
        ] {
            if let Some(v) = v {
                self.policy.check_text(what, v)?;
            }
        }
        let action = req.state.map(JobAction::to_reach).transpose()?;
        self.write(|t| {
            let j = get(t.conn(), id)?;
            let caller = match actor {
                Some(a) => Caller::Peer(must(t, a)?.into()),
                None => Caller::Admin,
            };
            // Read here, in the write: the assignee changes under writes.
            let who = format!("the assignee, owner or creator of job {id}");
            let parties: Vec<&str> = [Some(&j.owner), Some(&j.created_by), j.assignee.as_ref()]
                .into_iter()
                .flatten()
                .map(|p| p.as_str())
                .collect();
            let target = Target {
                circle: Some(&j.info.circle),
                parties: &parties,
                who: Some(&who),
                ..Target::default()
            };
            authorize(&caller, Action::Manage, target)?;
            let by = caller.viewer().map_or("admin".to_string(), |a| a.name.clone());
            let edits = req.phase.is_some() || req.result.is_some() || req.result_data.is_some() || req.error.is_some();
            if j.info.state.is_terminal() && (edits || action.is_some()) {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    format!("job {id} is {}: only notes can be added now", j.info.state),
                ));
            }
            t.conn()
                .prepare_cached(
                    "UPDATE jobs SET phase = COALESCE(?2, phase), result_summary = COALESCE(?3, result_summary),
                       result_data = COALESCE(?4, result_data), error = COALESCE(?5, error), updated_ms = ?6
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    req.phase,
                    req.result,
                    req.result_data.as_ref().map(|v| v.to_string()),
                    req.error,
                    t.now
                ])?;
            if let Some(note) = &req.note {
                t.conn()
                    .prepare_cached("INSERT INTO job_notes (job_id, ts_ms, by_name, text) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![id, t.now, by, note])?;
            }
            // A cancel of work in progress by anyone but its assignee is a
            // request: the assignee is told, and the job is canceled when
            // it confirms (its own cancel) or after the grace period.
            let in_progress = matches!(j.info.state, JobState::Dispatched | JobState::Running);
            let assignee = j.assignee.clone();
            if action == Some(JobAction::Cancel) && in_progress && assignee.as_ref() != actor {
                if j.info.cancel_requested_at_ms.is_none() {
                    t.conn()
                        .prepare_cached("UPDATE jobs SET cancel_requested_ms = ?2, updated_ms = ?2 WHERE id = ?1")?
                        .execute(params![id, t.now])?;
                    job_event(t, &j.info, Event::JobCancelRequested { by: by.clone(), grace_ms: t.policy.cancel_grace_ms })?;
                    if let Some(who) = assignee.as_ref().map(|a| by_id(t, a)).transpose()?.flatten() {
                        enqueue(
                            t,
                            NewDelivery {
                                to: &who,
                                from: None,
                                kind: DeliveryKind::System,
                                ask_id: None,
                                job_id: Some(id),
                                text: &format!(
                                    "{by} asks you to stop job {id} \"{}\"{}. Confirm with: repowire jobs update {id} --state canceled (it is canceled in {} s anyway).",
                                    j.info.title,
                                    req.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
                                    t.policy.cancel_grace_ms / 1000
                                ),
                            },
                        )?;
                    }
                } else if req.note.is_some() {
                    // Asked again, with a note: keep the rule (an event per change).
                    job_event(t, &j.info, Event::JobUpdated { by: by.clone(), phase: None, note: true })?;
                }
                return Ok(get(t.conn(), id)?.info);
            }
            let j = match action {
                Some(a) => {
                    let j = cas(t, id, a)?;
                    job_event(t, &j.info, Event::job_moved(j.info.state, JobMove::Update { by: by.clone(), phase: req.phase.clone() }))?;
                    if j.info.state.is_terminal() {
                        tell_owner(t, &j, actor)?;
                    }
                    j
                }
                None => {
                    let j = get(t.conn(), id)?;
                    job_event(t, &j.info, Event::JobUpdated { by: by.clone(), phase: Some(req.phase.clone()), note: req.note.is_some() })?;
                    j
                }
            };
            Ok(get(t.conn(), &j.info.job_id)?.info)
        })
    }
}

impl Tx<'_> {
    /// The job `id` as it is inside this transaction.
    pub fn job(&self, id: &JobId) -> Result<Job> {
        Ok(get(self.conn(), id)?.info)
    }

    /// Keep a queued job out of the background dispatcher until `until_ms`
    /// (a persona deferred it, declined it, or asked a human).
    pub fn hold_job(&mut self, id: &JobId, until_ms: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE jobs SET not_before_ms = ?2 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![id, until_ms])?;
        Ok(())
    }

    /// Dispatch a queued job to `peer`, as `sender` (who sends the ask).
    pub fn dispatch_job(
        &mut self,
        id: &JobId,
        peer: &str,
        sender_id: Option<&PeerId>,
        note: Option<&str>,
    ) -> Result<(Job, Option<DeliveryId>)> {
        let t = self;
        let j = get(t.conn(), id)?;
        let to = resolve_within(
            t.conn(),
            &j.info.circle,
            &format!("job {id}"),
            peer,
            None,
            false,
        )?;
        let sender = match sender_id {
            Some(s) => must(t, s)?,
            None => must(t, &j.owner).or_else(|_| must(t, &j.created_by))?,
        };
        let dlv = dispatch_in(t, id, &to, &sender, note)?;
        Ok((get(t.conn(), id)?.info, dlv))
    }
}

/// The dispatch transition: queued → dispatched to `to`, one more attempt,
/// and an ask to the assignee carrying the job id and brief.
fn dispatch_in(
    t: &mut Tx<'_>,
    id: &JobId,
    to: &Peer,
    sender: &Peer,
    note: Option<&str>,
) -> Result<Option<DeliveryId>> {
    let j = get(t.conn(), id)?;
    if to.circle != j.info.circle {
        return Err(Error::new(
            ErrorCode::CrossCircle,
            format!("{} is not in the job's circle", to.name),
        ));
    }
    JobAction::Dispatch.apply(id, j.info.state)?;
    let mut previous = j.info.previous_assignees.clone();
    if !previous.contains(&to.name) {
        previous.push(to.name.clone());
    }
    t.conn()
        .prepare_cached(
            "UPDATE jobs SET state = 'dispatched', assignee = ?2, assignee_name = ?3, attempts = attempts + 1,
               previous = ?4, updated_ms = ?5 WHERE id = ?1 AND state = 'queued'",
        )?
        .execute(params![id, to.id, to.name, serde_json::to_string(&previous)?, t.now])?;
    let j = get(t.conn(), id)?;
    let dispatched = JobMove::Dispatched {
        to: to.name.clone(),
        attempt: j.info.attempts,
        by: sender.name.clone(),
    };
    job_event(t, &j.info, Event::JobDispatched(dispatched))?;
    let text = format!(
        "Job {id}: {}\n\n{}{}\n\nTake it with: repowire jobs update {id} --state running, then --state succeeded|failed [--note …] [--result …]",
        j.info.title,
        j.info.brief,
        note.map(|n| format!("\n\n({n})")).unwrap_or_default()
    );
    if to.id == sender.id {
        // Self-assigned: nobody to ask.
        return Ok(None);
    }
    let timeout = t.policy.ask_timeout_ms;
    let ask = super::asks::create_in(t, sender, to, &text, timeout, None, None)?;
    t.conn()
        .prepare_cached(concat!(
            "UPDATE asks SET job_id = ?2 WHERE ",
            super::asks::at_ask!("asks", "?1")
        ))?
        .execute(params![ask.ask.correlation_id, id])?;
    Ok(Some(ask.delivery_id))
}

/// Open jobs past their deadline, from the partial index
/// `jobs_open_deadline` (its WHERE, word for word). Named, because the
/// planner otherwise takes `jobs_by_state` and reads every queued job.
const LATE: &str = "SELECT id FROM jobs INDEXED BY jobs_open_deadline WHERE deadline_ms IS NOT NULL
       AND (state = 'queued' OR state = 'dispatched' OR state = 'running') AND deadline_ms <= ?1";

impl Store {
    /// Background repair: jobs whose assignee went away (offline, stale, or
    /// unregistered) lose the attempt (`executor_lost`) and go back to the
    /// queue, up to `max_attempts`, then fail. Jobs past their deadline time
    /// out. Owners are told of every end. Returns how many jobs moved.
    pub fn repair_jobs(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let stale_cut = now - self.policy.stale_after_ms;
        const LOST: &str = "SELECT j.id FROM jobs j LEFT JOIN peers p ON p.id = j.assignee
             WHERE j.state IN ('dispatched','running')
               AND (p.id IS NULL OR p.status = 'offline' OR p.last_seen_ms < ?1)";
        const GRACE: &str = "SELECT id FROM jobs WHERE state IN ('dispatched','running')
               AND cancel_requested_ms IS NOT NULL AND cancel_requested_ms <= ?1";
        let grace_cut = now - self.policy.cancel_grace_ms;
        let (lost, late, graced) = self.read(|c| {
            let q = |sql: &str, arg: i64| -> Result<Vec<JobId>> {
                Ok(c.prepare_cached(sql)?
                    .query_map([arg], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            };
            Ok((q(LOST, stale_cut)?, q(LATE, now)?, q(GRACE, grace_cut)?))
        })?;
        if lost.is_empty() && late.is_empty() && graced.is_empty() {
            return Ok(0);
        }
        self.write(|t| {
            let mut n = 0;
            for id in &graced {
                let Ok(j) = cas(t, id, JobAction::Cancel) else { continue };
                job_event(t, &j.info, Event::JobCanceled(JobMove::By { by: "grace period".into() }))?;
                tell_owner(t, &j, None)?;
                n += 1;
            }
            for id in &late {
                let Ok(j) = cas(t, id, JobAction::TimeOut) else { continue };
                t.conn()
                    .prepare_cached("UPDATE jobs SET error = 'deadline passed' WHERE id = ?1")?
                    .execute([id])?;
                let j = get(t.conn(), &j.info.job_id)?;
                job_event(t, &j.info, Event::JobTimedOut(JobMove::TimedOut { deadline_ms: j.info.deadline_ms }))?;
                tell_owner(t, &j, None)?;
                n += 1;
            }
            for id in &lost {
                let j = get(t.conn(), id)?;
                if !matches!(j.info.state, JobState::Dispatched | JobState::Running) {
                    continue;
                }
                let who = j.info.assignee.clone().unwrap_or_default();
                if j.info.cancel_requested_at_ms.is_some() {
                    // It was being canceled anyway: cancel, don't retry.
                    let j = cas(t, id, JobAction::Cancel)?;
                    job_event(t, &j.info, Event::JobCanceled(JobMove::By { by: "executor lost during a cancel".into() }))?;
                    tell_owner(t, &j, None)?;
                    n += 1;
                    continue;
                }
                if j.info.attempts < j.info.max_attempts {
                    let j = cas(t, id, JobAction::Requeue)?;
                    t.conn()
                        .prepare_cached(
                            "UPDATE jobs SET assignee = NULL, assignee_name = NULL, error = 'executor_lost',
                               not_before_ms = ?2 + backoff_ms * attempts, cancel_requested_ms = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, t.now])?;
                    job_event(t, &j.info, Event::JobExecutorLost { assignee: who, attempt: j.info.attempts, requeued: true })?;
                } else {
                    let j = cas(t, id, JobAction::Fail)?;
                    t.conn()
                        .prepare_cached("UPDATE jobs SET error = 'executor_lost' WHERE id = ?1")?
                        .execute([id])?;
                    let j = get(t.conn(), &j.info.job_id)?;
                    job_event(t, &j.info, Event::JobExecutorLost { assignee: who, attempt: j.info.attempts, requeued: false })?;
                    tell_owner(t, &j, None)?;
                }
                n += 1;
            }
            Ok(n)
        })
    }

    /// Put a failed, timed-out or canceled job back in the queue (who may is
    /// the daemon's policy).
    pub fn retry_job(&self, id: &JobId, actor: Option<&PeerId>) -> Result<Job> {
        self.write(|t| {
            let j = get(t.conn(), id)?;
            // Who may retry is the daemon's policy; the peer must still exist.
            actor.map(|a| must(t, a)).transpose()?;
            if !j.info.state.is_terminal() || j.info.state == JobState::Succeeded {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    format!(
                        "job {id} is {}: only a failed, timed-out or canceled job is retried",
                        j.info.state
                    ),
                ));
            }
            let j = cas(t, id, JobAction::Requeue)?;
            t.conn()
                .prepare_cached(
                    "UPDATE jobs SET assignee = NULL, assignee_name = NULL, error = NULL,
                       cancel_requested_ms = NULL, not_before_ms = NULL,
                       max_attempts = MAX(max_attempts, attempts + 1) WHERE id = ?1",
                )?
                .execute([id])?;
            job_event(
                t,
                &j.info,
                Event::JobRetried {
                    attempts: j.info.attempts,
                },
            )?;
            Ok(get(t.conn(), id)?.info)
        })
    }
}

/// Create a job inside a transaction (also used by job schedules).
pub(super) fn create_job_in(t: &mut Tx<'_>, creator_id: &PeerId, req: &NewJob) -> Result<Job> {
    if req.title.trim().is_empty() {
        return Err(Error::bad_request("a job needs a title"));
    }
    t.policy.check_text("title", &req.title)?;
    if let Some(b) = &req.brief
        && b.len() > t.policy.max_message_bytes
    {
        t.policy.check_text("brief", b)?;
    }
    let max_attempts = req.max_attempts.unwrap_or(3);
    if !(1..=100).contains(&max_attempts) {
        return Err(Error::bad_request("max_attempts must be 1 to 100"));
    }
    let tags = req.tags.clone().unwrap_or_default();
    for t in &tags {
        repowire_core::peer::validate_name("tag", t)?;
    }
    {
        let creator = must(t, creator_id)?;
        let owner = match &req.owner {
            Some(o) => std::sync::Arc::unwrap_or_clone(resolve_for(t, &creator, o, None, false)?),
            None => creator.clone(),
        };
        let id = JobId::generate(t.now);
        t.conn()
            .prepare_cached(
                "INSERT INTO jobs (id, circle, title, brief, kind, tags, priority, created_by,
                   created_by_name, owner, owner_name, state, max_attempts, deadline_ms,
                   created_ms, updated_ms, backoff_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'queued', ?12, ?13, ?14, ?14, ?15)",
            )?
            .execute(params![
                id,
                creator.circle,
                req.title,
                req.brief.as_deref().unwrap_or(""),
                req.kind.as_deref().unwrap_or(""),
                serde_json::to_string(&tags)?,
                req.priority.unwrap_or(0),
                creator.id,
                creator.name,
                owner.id,
                owner.name,
                max_attempts,
                req.deadline_ms,
                t.now,
                req.backoff_ms.unwrap_or(10_000).clamp(0, 86_400_000)
            ])?;
        let j = get(t.conn(), &id)?;
        let created = Event::JobCreated {
            title: req.title.clone(),
            by: creator.name.clone(),
            owner: owner.name.clone(),
        };
        job_event(t, &j.info, created)?;
        if let Some(peer) = &req.assign {
            let to = resolve_for(t, &creator, peer, None, false)?;
            dispatch_in(t, &id, &to, &creator, None)?;
        }
        Ok(get(t.conn(), &id)?.info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists the dashboard and the CLI ask for most (everything, a
    /// circle, a state, a state in a circle) walk an index newest first:
    /// no sort of every job, however many are kept (jobs are never pruned).
    #[test]
    fn job_queries_walk_an_index() {
        let q = |circle: bool, state: bool| {
            list_sql(
                &[
                    ("circle", circle),
                    ("state", state),
                    ("owner_name", false),
                    ("assignee_name", false),
                ],
                50,
                0,
            )
        };
        let (all, by_circle, by_state, both) = (
            q(false, false),
            q(true, false),
            q(false, true),
            q(true, true),
        );
        crate::assert_planned_through(&[
            (LATE, "jobs_open_deadline"),
            (&all, "jobs_by_created"),
            (&by_circle, "jobs_created"),
            (&by_state, "jobs_by_state"),
            (&both, "jobs_state_created"),
        ]);
    }
}
